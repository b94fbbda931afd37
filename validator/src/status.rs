//! What an operator-role certificate reaches on the peer port (see
//! [`crate::server`]), read-only; members reach these routes too:
//! * `GET /v1/status`: this validator's view, for `vault mesh status`;
//! * `GET /v1/vaults/{vault}/proof`: the vault's public chain (`PQVC`:
//!   anchor and certified steps), for `vault mesh fetch` and for members
//!   adopting a vault;
//! * `GET`, `POST /v1/membership`: the operator's membership removal
//!   (`PQVN`), which carries its own authority ([`crate::membership`]).

use crate::api::PeerInfo;
use crate::state::State;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Version of the [`Status`] document.
pub const STATUS_VERSION: u32 = 1;

/// What `GET /v1/status` answers (JSON).
#[derive(Debug, Serialize)]
pub struct Status {
    /// [`STATUS_VERSION`].
    pub version: u32,
    /// This validator's id.
    pub id: String,
    /// Store verified and peer port listening (what `/readyz` says).
    pub ready: bool,
    /// Its role: holder, spare, stale or syncing ([`crate::role`]).
    pub role: String,
    /// For a stale holder, which vault is behind.
    pub role_detail: Option<String>,
    /// Vaults it holds a share of.
    pub vaults: Vec<VaultStatus>,
    /// Its members (itself excluded) as its failure detector sees them.
    pub members: Vec<MemberStatus>,
    /// Member ids the operator removed (`PQVN`), no longer probed.
    pub removed: Vec<String>,
    /// Version of the membership removal held (0: none).
    pub membership_version: u32,
    /// Vaults for which it keeps a share re-sealed for the next epoch,
    /// waiting for that epoch's certificate (a transition under way).
    pub pending_transitions: Vec<String>,
    /// The key-exchange group of the caller's connection.
    pub kx_group: String,
}

/// One vault held.
#[derive(Debug, Serialize)]
pub struct VaultStatus {
    /// Vault id (hex).
    pub vault: String,
    /// Current epoch here.
    pub epoch: u64,
    /// Threshold t of that epoch.
    pub threshold: u8,
    /// Share count n of that epoch.
    pub shares: u8,
    /// Shares whose holder is not alive, as of the last settled view.
    pub heal_pending: i64,
}

/// One member.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// Member id.
    pub id: String,
    /// Its peer address.
    pub addr: String,
    /// alive, suspect or dead (the failure detector's view).
    pub state: String,
    /// Its health score in [0, 1], once probed.
    pub health: Option<f64>,
}

/// The status route, for operator connections and members alike.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/vaults/{vault}/proof", get(proof))
        .route("/v1/vaults/{vault}/policy", get(policy))
        .with_state(state.clone())
        .merge(crate::membership::router(state))
}

/// `GET /v1/vaults/{vault}/policy`: the operator-signed transition policy
/// (`PQVL`) we hold, for peers adopting a newer one and for the operator's
/// client, which counts the chain's certificates under it.
async fn policy(AxState(state): AxState<Arc<State>>, Path(vault): Path<String>) -> Response {
    let Some(id) = crate::api::parse_vault(&vault) else {
        state.count("policy", 400);
        return (StatusCode::BAD_REQUEST, "vault id must be 32 hex digits\n").into_response();
    };
    match state.store.lock().ok().and_then(|s| s.policy_bytes(&id)) {
        Some(bytes) => {
            state.count("policy", 200);
            (
                [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
                bytes,
            )
                .into_response()
        }
        None => {
            state.count("policy", 404);
            (
                StatusCode::NOT_FOUND,
                "no signed policy for that vault here\n",
            )
                .into_response()
        }
    }
}

async fn proof(AxState(state): AxState<Arc<State>>, Path(vault): Path<String>) -> Response {
    let Some(id) = crate::api::parse_vault(&vault) else {
        state.count("proof", 400);
        return (StatusCode::BAD_REQUEST, "vault id must be 32 hex digits\n").into_response();
    };
    let held = state.store.lock().ok().and_then(|s| s.get(&id).cloned());
    match held {
        Some(h) => {
            state.count("proof", 200);
            crate::rounds::encode_proof(&h.anchor, &h.steps).into_response()
        }
        None => {
            state.count("proof", 404);
            (StatusCode::NOT_FOUND, "no shard of that vault here\n").into_response()
        }
    }
}

async fn status(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
) -> Json<Status> {
    let (role, role_detail) = state.role();
    let vaults = match state.store.lock() {
        Ok(store) => store
            .vaults()
            .map(|(id, h)| {
                let (threshold, shares) = vault::manifest::Manifest::decode(&h.manifest)
                    .map(|m| (m.body().threshold, m.body().n))
                    .unwrap_or((0, 0));
                VaultStatus {
                    vault: id.to_string(),
                    epoch: h.epoch,
                    threshold,
                    shares,
                    heal_pending: state
                        .metrics
                        .heal_pending
                        .with_label_values(&[&id.to_string()])
                        .get(),
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let states: std::collections::BTreeMap<String, String> = state
        .detector
        .lock()
        .map(|d| {
            d.states()
                .map(|(id, s)| (id.to_string(), s.name().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let health = state.health.lock().ok();
    let members = state
        .members()
        .into_iter()
        .map(|m| MemberStatus {
            state: states
                .get(&m.id)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            health: health
                .as_ref()
                .and_then(|h| h.get(&m.id))
                .map(|h| h.score()),
            id: m.id,
            addr: m.addr,
        })
        .collect();
    drop(health);
    let pending_transitions = state
        .pending
        .lock()
        .map(|p| p.keys().map(|id| id.to_string()).collect())
        .unwrap_or_default();
    Json(Status {
        version: STATUS_VERSION,
        id: state.id.clone(),
        ready: state.ready.load(Ordering::Acquire),
        role: role.name().to_string(),
        role_detail,
        vaults,
        members,
        removed: state.removed(),
        membership_version: state.store.lock().map(|s| s.removal().version).unwrap_or(0),
        pending_transitions,
        kx_group: peer.kx_group,
    })
}
