//! `POST /v1/vaults/{vault}/recover`: the operator's recovery request
//! (`PQVG` in, `PQVH` out; [`vault::recovery_request`]).
//!
//! Only a connection whose certificate has the operator role is served
//! (identity comes from the certificate, never from the request); a member
//! calling it is refused and counted. The request must be signed by the
//! vault's trusted signer (the one our manifests are pinned to), name our
//! vault at our current certified epoch, and be fresh (at most 5 minutes
//! old, at most 1 minute ahead of our clock), and its nonce must be new to
//! us. Then we open our own shard and answer with the share sealed to the
//! request's one-time key: a replayed request yields an answer only its
//! key holder can open. Every request is counted in
//! `pqvault_recovery_requests_total{outcome}` and logged (never the share).

use crate::api::PeerInfo;
use crate::state::State;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use std::sync::{Arc, Mutex};
use vault::recovery_request::{
    RecoveryRequest, RequestError, MAX_AGE_SECS, MAX_REQUEST_LEN, MAX_SKEW_SECS,
};

/// Every `outcome` label of `pqvault_recovery_requests_total`.
pub const OUTCOMES: &[&str] = &[
    "served",
    "not_operator",
    "malformed",
    "too_large",
    "untrusted_signer",
    "bad_signature",
    "stale",
    "unknown_vault",
    "wrong_epoch",
    "replay",
    "error",
];

/// Nonces remembered to refuse replays (oldest forgotten first).
const MAX_NONCES: usize = 1024;

/// Nonces of requests served, with their issued-at time.
static SEEN: Mutex<Vec<([u8; 32], u64)>> = Mutex::new(Vec::new());

/// The recovery route; merged into the operator's and the members'
/// routers alike, so a member's call is refused here and counted.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/vaults/{vault}/recover", post(recover))
        .layer(DefaultBodyLimit::max(4 * MAX_REQUEST_LEN))
        .with_state(state)
}

/// A refusal: status, outcome label, message.
type Refusal = (StatusCode, &'static str, String);

async fn recover(
    AxState(state): AxState<Arc<State>>,
    Extension(peer): Extension<PeerInfo>,
    Path(vault): Path<String>,
    body: Bytes,
) -> Response {
    let caller = peer.id.clone();
    let result = if peer.operator {
        let state2 = state.clone();
        tokio::task::spawn_blocking(move || serve(&state2, &vault, &body))
            .await
            .unwrap_or_else(|e| {
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    format!("recovery task failed: {e}"),
                ))
            })
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "not_operator",
            "recovery requests are served to operator-role certificates only".into(),
        ))
    };
    let (code, outcome, response) = match result {
        Ok((answer, what)) => {
            tracing::info!(operator = %caller, "served a recovery request: {what}");
            (
                StatusCode::OK,
                "served",
                ([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response(),
            )
        }
        Err((code, outcome, why)) => {
            tracing::warn!(caller = %caller, outcome, "refused a recovery request: {why}");
            (code, outcome, (code, format!("{why}\n")).into_response())
        }
    };
    state
        .metrics
        .recovery_requests
        .with_label_values(&[outcome])
        .inc();
    state.count("recover", code.as_u16());
    response
}

/// Judges the request and, if it passes, answers it: the encoded `PQVH`
/// and a description for the log (never the share).
fn serve(state: &State, vault: &str, body: &[u8]) -> Result<(Vec<u8>, String), Refusal> {
    let bad = |outcome, why: String| (StatusCode::BAD_REQUEST, outcome, why);
    let Some(id) = crate::api::parse_vault(vault) else {
        return Err(bad("malformed", "vault id must be 32 hex digits".into()));
    };
    if body.len() > MAX_REQUEST_LEN {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "recovery request is {} bytes, over the limit of {MAX_REQUEST_LEN}",
                body.len()
            ),
        ));
    }
    let req = RecoveryRequest::decode(body).map_err(|e| bad("malformed", e.to_string()))?;
    if req.vault_id != id {
        return Err(bad(
            "malformed",
            format!("request names vault {}, the path {id}", req.vault_id),
        ));
    }
    let digest = hex::encode(&req.digest()[..8]);
    let (held, trusted) = {
        let store = state
            .store
            .lock()
            .map_err(|_| internal("store lock poisoned"))?;
        (store.get(&id).cloned(), store.trusted())
    };
    req.verify(&trusted).map_err(|e| {
        let outcome = match e {
            RequestError::UntrustedSigner { .. } => "untrusted_signer",
            _ => "bad_signature",
        };
        (
            StatusCode::FORBIDDEN,
            outcome,
            format!("request {digest}: {e}"),
        )
    })?;
    let now = crate::byzantine::clock_now_ms() / 1000;
    req.check_fresh(now).map_err(|e| {
        (
            StatusCode::FORBIDDEN,
            "stale",
            format!("request {digest}: {e}"),
        )
    })?;
    let Some(held) = held else {
        return Err((
            StatusCode::NOT_FOUND,
            "unknown_vault",
            format!("request {digest}: no shard of vault {id} here"),
        ));
    };
    if req.epoch != held.epoch {
        return Err((
            StatusCode::CONFLICT,
            "wrong_epoch",
            format!(
                "request {digest} is for epoch {} of vault {id}; our current certified epoch is {}",
                req.epoch, held.epoch
            ),
        ));
    }
    first_use(&req.nonce, req.issued_at, now).map_err(|why| {
        (
            StatusCode::CONFLICT,
            "replay",
            format!("request {digest}: {why}"),
        )
    })?;
    let mut record = crate::unsealed::open(&held.shard, &state.keys)
        .map_err(|e| internal(&format!("cannot open our shard of vault {id}: {e}")))?;
    crate::byzantine::corrupt_recovery(&mut record.share.value);
    let answer = req
        .answer(&record)
        .map_err(|e| internal(&format!("cannot seal the answer: {e}")))?;
    Ok((
        answer,
        format!(
            "request {digest}, vault {id} epoch {}, share {} sealed to one-time key {}",
            held.epoch,
            record.share.index,
            req.recovery_key.fingerprint().short()
        ),
    ))
}

fn internal(why: &str) -> Refusal {
    (StatusCode::INTERNAL_SERVER_ERROR, "error", why.to_string())
}

/// Records `nonce`; an error if it was seen within the freshness window.
fn first_use(nonce: &[u8; 32], issued_at: u64, now: u64) -> Result<(), String> {
    let mut seen = SEEN
        .lock()
        .map_err(|_| "nonce list lock poisoned".to_string())?;
    let keep = MAX_AGE_SECS + MAX_SKEW_SECS;
    seen.retain(|(_, at)| now.saturating_sub(*at) <= keep);
    if seen.iter().any(|(n, _)| n == nonce) {
        return Err("this request was already answered here (replayed)".into());
    }
    if seen.len() >= MAX_NONCES {
        seen.remove(0);
    }
    seen.push((*nonce, issued_at));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_answered_once_and_forgotten_after_the_window() {
        let n = [0xabu8; 32];
        first_use(&n, 1000, 1000).unwrap();
        assert!(first_use(&n, 1000, 1001).is_err());
        // Past the window the request itself is stale; its nonce may go.
        first_use(&n, 1000 + 2 * MAX_AGE_SECS, 1000 + 2 * MAX_AGE_SECS).unwrap();
        // Bounded.
        for i in 0..(MAX_NONCES + 10) {
            let mut m = [0u8; 32];
            m[..8].copy_from_slice(&(i as u64).to_be_bytes());
            first_use(&m, 5000, 5000).unwrap();
        }
        assert!(SEEN.lock().unwrap().len() <= MAX_NONCES);
    }
}
