//! The local operations port (plain HTTP, bind it to localhost or the pod
//! network for the scraper): `/healthz` (the process is alive), `/readyz`
//! (store verified and peer port listening; the body names the role:
//! `ready: holder`, `ready: spare`, `ready: stale (...)`, `ready: syncing`),
//! `/metrics` (Prometheus).

use crate::state::State;
use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The ops router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(AxState(state): AxState<Arc<State>>) -> impl IntoResponse {
    if !state.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_string());
    }
    // Serving in every role: a spare takes over lost shares, a stale or
    // syncing holder still serves artifacts; the role says which.
    let (role, why) = state.role();
    let body = match why {
        Some(why) => format!("ready: {} ({why})\n", role.name()),
        None => format!("ready: {}\n", role.name()),
    };
    (StatusCode::OK, body)
}

async fn metrics(AxState(state): AxState<Arc<State>>) -> impl IntoResponse {
    state.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
