//! Accepting peer connections: TLS handshake, membership check, HTTP.

use crate::api::PeerInfo;
use crate::daemon::State;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Time allowed for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed to receive request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the peer API on `listener` until the task is dropped.
pub async fn serve_peers(listener: TcpListener, state: Arc<State>, router: Router) {
    let acceptor = TlsAcceptor::from(state.tls.server.clone());
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Responses go out in several writes: without this, Nagle plus the
        // peer's delayed ACK adds about 40 ms to every request.
        let _ = tcp.set_nodelay(true);
        let (acceptor, state, router) = (acceptor.clone(), state.clone(), router.clone());
        tokio::spawn(async move {
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
            let id = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| vault::meshca::validator_id(c).ok());
            let Some(id) = id.filter(|id| state.is_member(id)) else {
                tracing::warn!(%addr, "refused a mesh certificate that is not a member");
                state.connection("not_member");
                return;
            };
            let kx_group = conn
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default();
            state.connection("accepted");
            let svc = TowerToHyperService::new(router.layer(Extension(PeerInfo { id, kx_group })));
            let result = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), svc)
                .await;
            if let Err(e) = result {
                tracing::debug!(%addr, "peer connection ended: {e}");
            }
        });
    }
}
