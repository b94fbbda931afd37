//! Members the operator removed (`PQVN`, `vault::membership`).
//!
//! * `GET /v1/membership`: the signed removal we hold (404 if none), for
//!   `vault mesh remove` to learn the current version and for peers to
//!   adopt it.
//! * `POST /v1/membership`: a signed removal, from the operator's client
//!   or any member. Adopted if the operator signed it and its version is
//!   higher than ours (persisted first, then applied); 400 malformed, 403
//!   not the operator's, 409 not newer.
//!
//! Both are reachable with an operator-role certificate, like
//! [`crate::status`]: the statement carries its own authority, the
//! operator's signature, whoever delivers it. [`sync_loop`] adopts a newer
//! one from any live member, so a validator down when it was issued
//! catches up. Applying it ([`State::apply_removal`]) takes the members
//! out of [`State::members`] (probes, votes, helpers, spares), refuses
//! their connections, and drops their per-peer metric series.

use crate::state::State;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use vault::membership::{MembershipError, Removal};

/// Path of the removal statement.
pub const MEMBERSHIP_PATH: &str = "/v1/membership";

/// Largest statement read (1024 ids of 63 bytes plus the signature).
pub const MAX_STATEMENT: usize = 128 << 10;

/// Why a statement was not adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// Malformed bytes.
    #[error("malformed membership removal: {0}")]
    Malformed(MembershipError),
    /// Not signed by the operator.
    #[error("membership removal not signed by the operator: {0}")]
    NotOperator(MembershipError),
    /// Our version is the same or higher.
    #[error("membership removal version {offered} is not above ours ({held})")]
    NotNewer {
        /// The statement's version.
        offered: u32,
        /// The version we hold.
        held: u32,
    },
    /// Storing it failed.
    #[error("storing the membership removal: {0}")]
    Store(String),
}

impl AdoptError {
    fn status(&self) -> StatusCode {
        match self {
            AdoptError::Malformed(_) => StatusCode::BAD_REQUEST,
            AdoptError::NotOperator(_) => StatusCode::FORBIDDEN,
            AdoptError::NotNewer { .. } => StatusCode::CONFLICT,
            AdoptError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Verifies `bytes` against the operator, persists it if newer than ours,
/// then applies it; returns the adopted statement.
pub fn adopt(state: &State, bytes: &[u8]) -> Result<Removal, AdoptError> {
    let r = {
        let mut store = state
            .store
            .lock()
            .map_err(|_| AdoptError::Store("poisoned".into()))?;
        let offered = Removal::open(bytes, &store.trusted()).map_err(|e| match e {
            MembershipError::Format(_) | MembershipError::Invalid(_) => AdoptError::Malformed(e),
            _ => AdoptError::NotOperator(e),
        })?;
        let held = store.removal().version;
        match store.adopt_removal(bytes) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(AdoptError::NotNewer {
                    offered: offered.version,
                    held,
                })
            }
            Err(e) => return Err(AdoptError::Store(e.to_string())),
        }
    };
    state.apply_removal(&r);
    Ok(r)
}

/// The membership routes, for operator connections and members alike.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(MEMBERSHIP_PATH, get(held).post(offered))
        .with_state(state)
}

async fn held(AxState(state): AxState<Arc<State>>) -> Response {
    match state.store.lock().ok().and_then(|s| s.removal_bytes()) {
        Some(b) => {
            state.count("membership", 200);
            b.into_response()
        }
        None => {
            state.count("membership", 404);
            (StatusCode::NOT_FOUND, "no member removed\n").into_response()
        }
    }
}

async fn offered(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    if body.len() > MAX_STATEMENT {
        state.count("membership", 413);
        return (StatusCode::PAYLOAD_TOO_LARGE, "statement too large\n").into_response();
    }
    match adopt(&state, &body) {
        Ok(r) => {
            state.count("membership", 200);
            format!("adopted version {}\n", r.version).into_response()
        }
        Err(e) => {
            let code = e.status();
            state.count("membership", code.as_u16());
            tracing::warn!("refused a membership removal: {e}");
            (code, format!("{e}\n")).into_response()
        }
    }
}

/// Every `interval`, asks each live member for its removal statement and
/// adopts any newer than ours.
pub async fn sync_loop(state: Arc<State>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sync_once(&state).await;
    }
}

/// One pass of [`sync_loop`].
pub async fn sync_once(state: &Arc<State>) {
    let alive = state.alive_members();
    for m in alive {
        let Ok(r) = state.client.get(&m, MEMBERSHIP_PATH, MAX_STATEMENT).await else {
            continue;
        };
        if r.status != 200 {
            continue;
        }
        match adopt(state, &r.body) {
            Ok(r) => {
                tracing::info!(peer = %m.id, version = r.version, "adopted a newer membership removal")
            }
            Err(AdoptError::NotNewer { .. }) => {}
            Err(e) => tracing::warn!(peer = %m.id, "{e}"),
        }
    }
}
