//! The peer API (mutual TLS): what validators ask each other.
//!
//! * `GET /v1/hello`: who we are, who the caller is, the TLS group
//!   negotiated, and the (vault, epoch) pairs held: the probe target.
//! * `GET /v1/vaults/{vault}/shard`: the sealed shard we hold (custody
//!   checks); it is encrypted to us, so serving it reveals nothing. With
//!   `?challenge=<64 hex>`: `{"epoch", "mac"}`, a keyed hash of it under the
//!   checker's nonce (`crate::custody::challenge_mac`).
//! * `GET /v1/probe/{member}`: probe another member on the caller's behalf
//!   (SWIM indirect probe); only members may be named.
//! * `POST /v1/news` (JSON [`NewsBody`] in and out): failure-detector news
//!   pushed when a suspicion starts or is refuted; answered with ours.
//! * `GET /v1/identity`: our public identity (`PQVI`), bound to our member id
//!   by the mTLS certificate it is served under.
//! * `GET /v1/vaults/{vault}/proof`: the anchor and certified steps of the
//!   epoch we hold (`PQVC`), so a replacement can verify the manifest
//!   (served by `crate::status`: the operator reaches it too).
//! * `GET /v1/vaults/{vault}/policy`: the operator-signed transition policy
//!   (`PQVL`) we hold, if any (served by `crate::status`: the operator
//!   reaches it too).
//! * `POST /v1/vote` (`PQVP` in, `PQVV` out): our vote on a transition
//!   proposal, judged on our own view ([`crate::proposals`])
//! * `POST /v1/transition` (`PQVQ`): a certified proposal; starts our part
//! * `POST /v1/repair`, `GET /v1/repair/{round}`: repair rounds
//!   ([`crate::rounds`]).
//! * `POST /v1/reshare`, `GET /v1/reshare/{round}`, `POST
//!   /v1/reshare/{round}/reveal`: re-share rounds and the settlement of a
//!   dispute over one recipient's check values ([`crate::reshare`]);
//!   `GET /v1/reshare/{round}/seen/{k}`: recipient k's signed status as
//!   it showed it to us, for a member it does not answer;
//!   `GET /v1/reshare/{round}/receipt/{k}`: recipient k's signed receipt
//!   for the sub-share we dealt it.
//! * `POST /v1/epoch/{vault}/prepare?from=E`, `.../sign` (`PQSQ`),
//!   `.../commit`: the new epoch after a repair ([`crate::epochs`]).
//! * `GET /v1/epoch/{vault}/asked?from=E` (`PQSA`): the successor requests
//!   we were asked and the one we signed, for a signer's pre-sign
//!   exchange; `POST /v1/epoch/{vault}/evidence`: two requests one leader
//!   signed for one proposal, which convict it ([`crate::successor`]).
//!
//! * `GET /v1/status`: a read-only JSON view (role, vaults and epochs,
//!   members with state and health, removed members, pending transitions),
//!   which an operator-role certificate reaches too ([`crate::status`]).
//! * `POST /v1/vaults/{vault}/recover` (`PQVG` in, `PQVH` out): an
//!   operator's signed recovery request, answered with our share sealed to
//!   its one-time key; refused to members ([`crate::recovery`]).
//! * `GET`, `POST /v1/membership`: the operator's membership removal
//!   (`PQVN`), for the operator's client and peers ([`crate::membership`]).
//!
//! * `POST /v1/raft/{append,vote,snapshot,propose}`, `GET /v1/raft/status`,
//!   `GET /v1/raft/decision/{vault}/{from_epoch}`: the replicated epoch log
//!   ([`crate::consensus::http`]).
//!
//! * `GET /v1/artifacts`, `.../{digest}/manifest`, `.../{digest}/chunks/{i}`:
//!   artifact anti-entropy ([`crate::artifacts::api`]).
//!
//! Connections are accepted only from certificates of the mesh CA whose
//! validator id is a member; see [`crate::server`].

use crate::state::{Probe, State};
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mesh_agent::detector::Indirect;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use vault::manifest::VaultId;

/// What the TLS layer learned about the caller.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Caller's validator id (from its certificate).
    pub id: String,
    /// Negotiated key-exchange group.
    pub kx_group: String,
    /// The certificate has the operator role (an operator's client, not a
    /// member).
    pub operator: bool,
    /// The pqvault identity fingerprint the certificate binds, if any.
    pub identity: Option<vault::identity::Fingerprint>,
}

/// `GET /v1/hello` response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Hello {
    /// Our id.
    pub id: String,
    /// The caller's id as we authenticated it.
    pub peer: String,
    /// Key-exchange group of this connection.
    pub kx_group: String,
    /// Vaults held: (vault id, epoch).
    pub vaults: Vec<(String, u64)>,
    /// Our incarnation: boot time in Unix milliseconds, raised by each
    /// refutation of a suspicion of us (refutes old suspicions and deaths).
    pub incarnation: u64,
    /// Our boot time in Unix milliseconds (0 from older validators).
    #[serde(default)]
    pub booted: u64,
    /// Failure-detector news: the members we suspect or declared dead.
    #[serde(default)]
    pub news: Vec<Gossip>,
    /// Our wall clock when answering, Unix milliseconds (0 from older
    /// validators): lets the prober see a clock far behind or ahead.
    #[serde(default)]
    pub now_ms: u64,
}

/// One item of failure-detector news (see `mesh_agent::detector`): never
/// enough for the receiver to declare anyone dead.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Gossip {
    /// Member the news is about.
    pub id: String,
    /// `alive`, `suspect` or `dead` in the teller's view.
    pub state: String,
    /// Its incarnation in the teller's view.
    pub incarnation: u64,
}

/// `POST /v1/news` request and response body.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NewsBody {
    /// The news.
    #[serde(default)]
    pub news: Vec<Gossip>,
}

/// `GET /v1/probe/{member}` response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ProbeResult {
    /// Member probed.
    pub target: String,
    /// Whether it answered in time.
    pub ok: bool,
    /// Its incarnation, if it answered.
    pub incarnation: u64,
}

/// The peer API router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/hello", get(hello))
        .route("/v1/vaults/{vault}/shard", get(shard))
        .route("/v1/probe/{member}", get(probe))
        .route("/v1/news", post(news))
        .route("/v1/identity", get(identity))
        .route("/v1/vote", post(vote))
        .route("/v1/transition", post(transition))
        .route("/v1/abort", post(abort))
        .route("/v1/repair", post(repair))
        .route("/v1/repair/{round}", get(repair_status))
        .route("/v1/reshare", post(reshare))
        .route("/v1/reshare/{round}", get(reshare_status))
        .route("/v1/reshare/{round}/reveal", post(reshare_reveal))
        .route("/v1/reshare/{round}/seen/{k}", get(reshare_seen))
        .route("/v1/reshare/{round}/receipt/{k}", get(reshare_receipt))
        .route("/v1/epoch/{vault}/prepare", post(epoch_prepare))
        .route("/v1/epoch/{vault}/sign", post(epoch_sign))
        .route("/v1/epoch/{vault}/asked", get(epoch_asked))
        .route("/v1/epoch/{vault}/refuse", post(epoch_refuse))
        .route("/v1/epoch/{vault}/evidence", post(epoch_evidence))
        .route("/v1/epoch/{vault}/commit", post(epoch_commit))
        .merge(crate::artifacts::api::peer_routes())
        .merge(crate::consensus::http::routes())
        .merge(crate::membership::peer_routes())
        .layer(DefaultBodyLimit::max(4 << 20))
        .with_state(state)
}

async fn hello(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
) -> Json<Hello> {
    state.count("hello", 200);
    let vaults = state
        .store
        .lock()
        .map(|s| {
            s.vaults()
                .map(|(id, h)| (id.to_string(), h.epoch))
                .collect()
        })
        .unwrap_or_default();
    Json(Hello {
        id: state.id.clone(),
        peer: peer.id,
        kx_group: peer.kx_group,
        vaults,
        incarnation: state.incarnation(),
        booted: state.booted,
        news: state.gossip(),
        now_ms: crate::byzantine::clock_now_ms(),
    })
}

async fn news(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    let Ok(b) = serde_json::from_slice::<NewsBody>(&body) else {
        state.count("news", 400);
        return (StatusCode::BAD_REQUEST, "not detector news\n").into_response();
    };
    state.absorb(&peer.id, &b.news);
    state.count("news", 200);
    Json(NewsBody {
        news: state.gossip(),
    })
    .into_response()
}

async fn probe(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    Path(member): Path<String>,
) -> Response {
    let Some(target) = state.members().iter().find(|m| m.id == member).cloned() else {
        state.count("probe", 404);
        return (StatusCode::NOT_FOUND, "not a member\n").into_response();
    };
    let incarnation = match state.probe_hello(&target).await {
        Probe::Ok(h, _) => {
            state.answered(&member, &h);
            Some(h.incarnation)
        }
        Probe::Failed(_) | Probe::Refused(_) => {
            // Our own probe failed too: our own evidence, confirmed by the
            // caller's.
            let report = Indirect {
                asked: 0,
                nacked_by: vec![peer.id.clone()],
            };
            let t = state
                .detector
                .lock()
                .ok()
                .and_then(|mut d| d.probes_failed(&member, &report, Instant::now()));
            state.record(t.as_slice());
            None
        }
        Probe::Stalled => {
            // We stalled: no answer is better than a false nack.
            state.count("probe", 503);
            return (StatusCode::SERVICE_UNAVAILABLE, "stalled\n").into_response();
        }
    };
    state.count("probe", 200);
    Json(ProbeResult {
        target: member,
        ok: incarnation.is_some(),
        incarnation: incarnation.unwrap_or(0),
    })
    .into_response()
}

pub(crate) fn parse_vault(s: &str) -> Option<VaultId> {
    let bytes: [u8; 16] = hex::decode(s).ok()?.try_into().ok()?;
    Some(VaultId::from_bytes(bytes))
}

/// `?challenge=<64 hex digits>` on `GET /v1/vaults/{vault}/shard`.
#[derive(serde::Deserialize)]
struct ShardQuery {
    challenge: Option<String>,
}

async fn shard(
    AxState(state): AxState<Arc<State>>,
    Path(vault): Path<String>,
    Query(q): Query<ShardQuery>,
) -> Response {
    let Some(id) = parse_vault(&vault) else {
        state.count("shard", 400);
        return (StatusCode::BAD_REQUEST, "vault id must be 32 hex digits\n").into_response();
    };
    let nonce = match q.challenge.as_deref().map(hex::decode) {
        None => None,
        Some(Ok(n)) if n.len() == 32 => Some(n),
        Some(_) => {
            state.count("shard", 400);
            return (StatusCode::BAD_REQUEST, "challenge must be 64 hex digits\n").into_response();
        }
    };
    // What is on disk now, not the copy verified at start: custody checks
    // must see a shard that rotted.
    let held = state.store.lock().ok().and_then(|s| {
        let h = s.get(&id)?;
        Some((h.epoch, s.shard_on_disk(&id)))
    });
    match held {
        Some((_, Err(e))) => {
            state.count("shard", 500);
            tracing::error!(vault = %id, "cannot read our shard: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "stored shard unreadable\n",
            )
                .into_response()
        }
        Some((epoch, Ok(shard))) if nonce.is_some() => {
            // Custody by challenge: a keyed hash of what is on disk under
            // the checker's fresh nonce, instead of the whole shard.
            state.count("shard", 200);
            let mac = crate::custody::challenge_mac(nonce.as_deref().unwrap_or_default(), &shard);
            Json(serde_json::json!({ "epoch": epoch, "mac": hex::encode(mac) })).into_response()
        }
        Some((epoch, Ok(shard))) => {
            state.count("shard", 200);
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::HeaderName::from_static("x-pqvault-epoch"),
                        epoch.to_string(),
                    ),
                ],
                shard,
            )
                .into_response()
        }
        None => {
            state.count("shard", 404);
            (StatusCode::NOT_FOUND, "no shard of that vault here\n").into_response()
        }
    }
}

async fn identity(AxState(state): AxState<Arc<State>>) -> Response {
    state.count("identity", 200);
    let body =
        crate::byzantine::claimed_identity().unwrap_or_else(|| state.identity.public().encode());
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

async fn vote(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    match crate::proposals::vote(state.clone(), &peer.id, &body).await {
        Ok(v) => {
            state.count("vote", 200);
            ([(header::CONTENT_TYPE, "application/octet-stream")], v).into_response()
        }
        Err(f) => failure(&state, "vote", f),
    }
}

async fn transition(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    match crate::proposals::transition(state.clone(), peer.id, &body).await {
        Ok(msg) => {
            state.count("transition", 202);
            (StatusCode::ACCEPTED, msg).into_response()
        }
        Err(f) => failure(&state, "transition", f),
    }
}

async fn abort(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    match crate::proposals::abort(state.clone(), &peer.id, &body).await {
        Ok(v) => {
            state.count("abort", 200);
            ([(header::CONTENT_TYPE, "application/octet-stream")], v).into_response()
        }
        Err(f) => failure(&state, "abort", f),
    }
}

async fn repair(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    match crate::rounds::handle(state.clone(), peer.id, &body).await {
        Ok(msg) => {
            state.count("repair", 202);
            (StatusCode::ACCEPTED, msg).into_response()
        }
        Err(f) => failure(&state, "repair", f),
    }
}

/// A round id from its hex form in a path.
fn round_id(hex_id: &str) -> Option<[u8; 16]> {
    hex::decode(hex_id).ok().and_then(|b| b.try_into().ok())
}

/// `v` as JSON, or 404 with `missing` when there is none.
fn json_or_404(v: Option<serde_json::Value>, missing: &'static str) -> Response {
    match v {
        Some(v) => Json(v).into_response(),
        None => (StatusCode::NOT_FOUND, missing).into_response(),
    }
}

async fn repair_status(AxState(state): AxState<Arc<State>>, Path(round): Path<String>) -> Response {
    let status = round_id(&round)
        .and_then(|id| state.round(&id))
        .map(|cell| crate::rounds::status(&cell));
    json_or_404(status, "unknown round\n")
}

async fn reshare(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    body: Bytes,
) -> Response {
    match crate::reshare::handle(state.clone(), peer.id, &body).await {
        Ok(msg) => {
            state.count("reshare", 202);
            (StatusCode::ACCEPTED, msg).into_response()
        }
        Err(f) => failure(&state, "reshare", f),
    }
}

async fn reshare_status(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    Path(round): Path<String>,
) -> Response {
    if crate::byzantine::shuns(&peer.id) {
        return Json(serde_json::json!({"complete": false, "missing_from": []})).into_response();
    }
    let status = round_id(&round).and_then(|id| crate::reshare::status(&state, &id));
    json_or_404(status, "unknown round\n")
}

async fn reshare_seen(
    AxState(state): AxState<Arc<State>>,
    Path((round, k)): Path<(String, u8)>,
) -> Response {
    let seen = round_id(&round).and_then(|id| crate::reshare::seen(&state, &id, k));
    json_or_404(seen, "not seen\n")
}

async fn reshare_receipt(
    AxState(state): AxState<Arc<State>>,
    Path((round, k)): Path<(String, u8)>,
) -> Response {
    let receipt = round_id(&round).and_then(|id| crate::reshare::receipt(&state, &id, k));
    json_or_404(receipt, "no receipt\n")
}

async fn reshare_reveal(
    AxState(state): AxState<Arc<State>>,
    Path(round): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = round_id(&round) else {
        return (StatusCode::NOT_FOUND, "unknown round\n").into_response();
    };
    match crate::reshare::reveal(&state, id, &body).await {
        Ok(body) => {
            state.count("reshare_reveal", 200);
            body.into_response()
        }
        Err(f) => failure(&state, "reshare_reveal", f),
    }
}

fn failure(state: &State, endpoint: &str, (code, why): (u16, String)) -> Response {
    state.count(endpoint, code);
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (code, format!("{why}\n")).into_response()
}

/// The `{vault}` path parameter, or the 400 answer counted for `endpoint`.
fn vault_param(state: &State, endpoint: &str, vault: &str) -> Result<VaultId, Box<Response>> {
    parse_vault(vault).ok_or_else(|| {
        Box::new(failure(
            state,
            endpoint,
            (400, "vault id must be 32 hex digits".into()),
        ))
    })
}

/// `?from=E` of `prepare`.
#[derive(serde::Deserialize)]
pub struct FromEpoch {
    /// The epoch being left.
    pub from: u64,
}

async fn epoch_prepare(
    AxState(state): AxState<Arc<State>>,
    Path(vault): Path<String>,
    Query(q): Query<FromEpoch>,
) -> Response {
    let id = match vault_param(&state, "epoch_prepare", &vault) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match crate::epochs::prepare(state.clone(), id, q.from).await {
        Ok(reply) => {
            state.count("epoch_prepare", 200);
            Json(reply).into_response()
        }
        Err(f) => failure(&state, "epoch_prepare", f),
    }
}

async fn epoch_sign(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    Path(vault): Path<String>,
    body: Bytes,
) -> Response {
    let id = match vault_param(&state, "epoch_sign", &vault) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match crate::epochs::sign(state.clone(), id, &body, &peer.id, peer.identity).await {
        Ok(cert) => {
            state.count("epoch_sign", 200);
            cert.into_response()
        }
        Err(f) => failure(&state, "epoch_sign", f),
    }
}

async fn epoch_refuse(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    Path(vault): Path<String>,
    Query(q): Query<FromEpoch>,
    body: Bytes,
) -> Response {
    let id = match vault_param(&state, "epoch_refuse", &vault) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let Ok(digest) = <[u8; 32]>::try_from(&body[..]) else {
        return failure(
            &state,
            "epoch_refuse",
            (400, "the body must be the 32-byte manifest digest".into()),
        );
    };
    tracing::debug!(member = %peer.id, "asked to refuse a stalled successor");
    match crate::withdraw::refuse(&state, id, q.from, &digest) {
        Ok(vote) => {
            state.count("epoch_refuse", 200);
            vote.into_response()
        }
        Err(f) => failure(&state, "epoch_refuse", f),
    }
}

async fn epoch_asked(
    AxState(state): AxState<Arc<State>>,
    Path(vault): Path<String>,
    Query(q): Query<FromEpoch>,
) -> Response {
    let id = match vault_param(&state, "epoch_asked", &vault) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    state.count("epoch_asked", 200);
    crate::successor::answer(&state, &id, q.from).into_response()
}

async fn epoch_evidence(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    Path(vault): Path<String>,
    body: Bytes,
) -> Response {
    let id = match vault_param(&state, "epoch_evidence", &vault) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match crate::successor::receive_evidence(&state, &id, &peer.id, &body).await {
        Ok(text) => {
            state.count("epoch_evidence", 200);
            text.into_response()
        }
        Err(f) => failure(&state, "epoch_evidence", f),
    }
}

async fn epoch_commit(
    AxState(state): AxState<Arc<State>>,
    Path(vault): Path<String>,
    body: Bytes,
) -> Response {
    let id = match vault_param(&state, "epoch_commit", &vault) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match crate::epochs::commit(state.clone(), id, &body).await {
        Ok(epoch) => {
            state.count("epoch_commit", 200);
            format!("epoch {epoch}\n").into_response()
        }
        Err(f) => failure(&state, "epoch_commit", f),
    }
}
