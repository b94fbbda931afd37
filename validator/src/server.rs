//! Accepting peer connections: TLS handshake, membership check (or the
//! operator role, which reaches only [`crate::status`] and
//! [`crate::recovery`]), HTTP.

use crate::api::PeerInfo;
use crate::listener::{self, Gate, Limits, ACCEPT_BACKOFF};
use crate::retry::{Loop, Retry};
use crate::state::State;
use axum::{Extension, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the peer API on `listener` under `limits` until the task is
/// dropped.
pub async fn serve_peers(listener: TcpListener, state: Arc<State>, router: Router, limits: Limits) {
    let acceptor = TlsAcceptor::from(state.tls.server.clone());
    let retry = Retry::new(&state.metrics, Loop::AcceptPeer, ACCEPT_BACKOFF);
    let mut gate = Gate::new(listener, &limits, "peer", retry);
    let refused = |port: &'static str| state.refused(port);
    // Every body, a member's or the operator's, within one budget.
    if limits.body_budget < crate::bodies::MAX_BODY {
        tracing::warn!(
            body_budget_kib = limits.body_budget / 1024,
            "listen.body_budget_kib is below the largest peer message (4096 KiB): larger messages will be refused"
        );
    }
    let bodies = {
        let state = state.clone();
        crate::bodies::Bodies::new(limits.body_budget, limits.body_timeout, move |why| {
            state
                .metrics
                .request_bodies_refused
                .with_label_values(&["peer", why.label()])
                .inc()
        })
    };
    let bounded = axum::middleware::from_fn_with_state(bodies, crate::bodies::bounded);
    let router = router.layer(bounded.clone());
    // What an operator-role certificate reaches (crate::status).
    let operator_router = crate::status::router(state.clone())
        .merge(crate::recovery::router(state.clone()))
        .layer(bounded);
    loop {
        let (tcp, permit) = gate.accept(&refused).await;
        let addr = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let (acceptor, state, router) = (acceptor.clone(), state.clone(), router.clone());
        let operator_routes = operator_router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%addr, "peer TLS handshake refused: {e}");
                    state.connection("tls_refused");
                    return;
                }
                Err(_) => {
                    state.connection("tls_timeout");
                    return;
                }
            };
            let (_, conn) = tls.get_ref();
            let name = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| vault::meshca::mesh_name(c).ok());
            let kx_group = kx_group(conn);
            let bound = name.as_ref().and_then(|n| n.identity);
            let (id, router, operator) = match name {
                // The operator's client: status and recovery, nothing else.
                Some(op) if op.role == Some(vault::meshca::Role::Operator) => {
                    tracing::info!(%addr, operator = %op.id, "operator connected");
                    state.connection("operator");
                    (op.id, operator_routes, true)
                }
                Some(name) if state.is_member(&name.id) => {
                    if let Err(why) = crate::tls::check_peer_binding(&name, state.require_identity)
                    {
                        tracing::warn!(%addr, peer = %name.id, "refused a member's certificate: {why}");
                        state.connection("unbound_certificate");
                        return;
                    }
                    state.connection("accepted");
                    (name.id, router, false)
                }
                _ => {
                    tracing::warn!(%addr, "refused a mesh certificate that is not a member");
                    state.connection("not_member");
                    return;
                }
            };
            let svc = TowerToHyperService::new(router.layer(Extension(PeerInfo {
                id,
                kx_group,
                operator,
                identity: bound,
            })));
            let result = listener::http1(&limits)
                .serve_connection(TokioIo::new(tls), svc)
                .await;
            if let Err(e) = result {
                tracing::debug!(%addr, "peer connection ended: {e}");
            }
        });
    }
}

/// The key-exchange group a connection negotiated, as rustls names it.
fn kx_group(conn: &rustls::ServerConnection) -> String {
    conn.negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default()
}
