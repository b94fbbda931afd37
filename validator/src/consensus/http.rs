//! Peer API routes of the epoch log (mutual TLS, members only; the server
//! refuses other certificates before any route runs):
//!
//! * `POST /v1/raft/append`, `/v1/raft/vote`, `/v1/raft/snapshot`:
//!   openraft's RPCs, JSON in, the JSON of the callee's `Result` out. The
//!   caller must be the node the request speaks for (its certificate's
//!   validator id maps to the vote's node id), else 403.
//! * `POST /v1/raft/propose` (body: a JSON [`Record`]): commit through this
//!   node if it leads (200 with the [`super::Applied`] JSON); 503 if it
//!   does not, 400 for a bad record. Followers forward here.
//! * `GET /v1/raft/status`: this node's [`super::Status`].
//! * `GET /v1/raft/decision/{vault}/{from_epoch}`: the decision applied
//!   here (JSON [`super::Decision`]) or 404.
//!
//! Every route answers 503 while the log is not running.

use super::record::{node_id, Record, TypeConfig};
use super::{Consensus, WriteError};
use crate::api::PeerInfo;
use crate::state::State;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Vote;
use std::sync::Arc;

/// The routes, to merge into [`crate::api::router`].
pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/v1/raft/append", post(append))
        .route("/v1/raft/vote", post(vote))
        .route("/v1/raft/snapshot", post(snapshot))
        .route("/v1/raft/propose", post(propose))
        .route("/v1/raft/status", get(status))
        .route("/v1/raft/decision/{vault}/{from_epoch}", get(decision))
}

/// A refusal: status and message.
type Refusal = (StatusCode, String);

fn finish(state: &State, endpoint: &str, r: Result<Response, Refusal>) -> Response {
    match r {
        Ok(resp) => {
            state.count(endpoint, 200);
            resp
        }
        Err((code, msg)) => {
            state.count(endpoint, code.as_u16());
            (code, format!("{msg}\n")).into_response()
        }
    }
}

fn running(state: &State) -> Result<Arc<Consensus>, Refusal> {
    state.consensus.get().cloned().ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the epoch log is not running here".to_string(),
        )
    })
}

/// Parses an RPC body and checks the caller speaks for itself.
fn parse<T: serde::de::DeserializeOwned>(
    peer: &PeerInfo,
    body: &[u8],
    vote: impl Fn(&T) -> Vote<u64>,
) -> Result<T, Refusal> {
    let req: T = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("malformed raft request: {e}"),
        )
    })?;
    if vote(&req).leader_id().voted_for() != Some(node_id(&peer.id)) {
        return Err((
            StatusCode::FORBIDDEN,
            "raft request speaks for another node than the caller".into(),
        ));
    }
    Ok(req)
}

async fn append(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    let r = async {
        let c = running(&state)?;
        let req = parse(&peer, &body, |r: &AppendEntriesRequest<TypeConfig>| r.vote)?;
        if let Some(bad) = req.entries.iter().find_map(|e| match &e.payload {
            openraft::EntryPayload::Normal(r) => r.check().err(),
            _ => None,
        }) {
            return Err((StatusCode::BAD_REQUEST, bad));
        }
        Ok(Json(c.raft().append_entries(req).await).into_response())
    };
    finish(&state, "raft_append", r.await)
}

async fn vote(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    let r = async {
        let c = running(&state)?;
        let req = parse(&peer, &body, |r: &VoteRequest<u64>| r.vote)?;
        Ok(Json(c.raft().vote(req).await).into_response())
    };
    finish(&state, "raft_vote", r.await)
}

async fn snapshot(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    let r = async {
        let c = running(&state)?;
        let req = parse(&peer, &body, |r: &InstallSnapshotRequest<TypeConfig>| {
            r.vote
        })?;
        Ok(Json(c.raft().install_snapshot(req).await).into_response())
    };
    finish(&state, "raft_snapshot", r.await)
}

async fn propose(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    let r = async {
        let c = running(&state)?;
        let record: Record = serde_json::from_slice(&body)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("malformed record: {e}")))?;
        // Readers judge every proposal (D52); one we can already tell is
        // no successor is not written at all.
        if let Record::Proposal(p) = &record {
            if let Err(e) = c.judge_proposal(p) {
                tracing::warn!(member = %peer.id, vault = %p.vault, from_epoch = p.from_epoch, "epoch log: refused a proposal that is no successor: {e}");
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("not a successor of epoch {}: {e}", p.from_epoch),
                ));
            }
        }
        match c.write_local(record).await {
            Ok(applied) => Ok(Json(applied).into_response()),
            Err(WriteError::Forward(leader)) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not the leader (leader: {})",
                    leader.map(|l| l.id).unwrap_or_else(|| "unknown".into())
                ),
            )),
            Err(WriteError::Fatal(e @ super::ConsensusError::Invalid(_))) => {
                Err((StatusCode::BAD_REQUEST, e.to_string()))
            }
            Err(WriteError::Fatal(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        }
    };
    finish(&state, "raft_propose", r.await)
}

async fn status(AxState(state): AxState<Arc<State>>) -> Response {
    let r = running(&state).map(|c| Json(c.status()).into_response());
    finish(&state, "raft_status", r)
}

async fn decision(
    AxState(state): AxState<Arc<State>>,
    Path((vault, from_epoch)): Path<(String, u64)>,
) -> Response {
    let r = (|| {
        let c = running(&state)?;
        let id: Option<[u8; 16]> = hex::decode(&vault).ok().and_then(|b| b.try_into().ok());
        let id = id.map(vault::manifest::VaultId::from_bytes).ok_or((
            StatusCode::BAD_REQUEST,
            "vault id must be 32 hex digits".to_string(),
        ))?;
        c.decision(&id, from_epoch)
            .map(|d| Json(d).into_response())
            .ok_or((
                StatusCode::NOT_FOUND,
                "nothing decided for that epoch".to_string(),
            ))
    })();
    finish(&state, "raft_decision", r)
}
