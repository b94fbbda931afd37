//! The limits every listening port applies, and serving plain HTTP with them.
//!
//! Each port (peer, ops, app) caps its open connections: past the cap a new
//! connection is closed as soon as it is accepted, and counted. Every
//! connection must send its request headers within the header timeout, and
//! a kept-alive connection must start its next request within the same
//! time (hyper's header-read timer runs from the moment it waits for a
//! request head), so half-sent requests and idle connections cannot pile
//! up and hold memory.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection cap and header/idle timeout (`[listen]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections allowed on one port.
    pub max_connections: usize,
    /// Time to send a request's headers, or to start the next request.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Accepts connections on one port within the connection cap.
pub struct Gate {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    port: &'static str,
}

impl Gate {
    /// A gate for `listener`, named `port` in logs and metrics.
    pub fn new(listener: TcpListener, limits: &Limits, port: &'static str) -> Self {
        Gate {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            port,
        }
    }

    /// The next connection within the cap, with the permit that holds its
    /// slot (drop it when the connection ends). Connections over the cap
    /// are closed at once and reported to `refused`.
    pub async fn accept(
        &self,
        refused: &(dyn Fn(&'static str) + Sync),
    ) -> (TcpStream, OwnedSemaphorePermit) {
        loop {
            let (tcp, addr) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(port = self.port, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    // Responses go out in several writes: without this, Nagle
                    // plus the client's delayed ACK adds about 40 ms.
                    let _ = tcp.set_nodelay(true);
                    return (tcp, permit);
                }
                Err(_) => {
                    tracing::debug!(port = self.port, %addr, "connection cap reached; closed");
                    refused(self.port);
                }
            }
        }
    }
}

/// An HTTP/1 connection builder with the header/idle timeout.
pub fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    b
}

/// Serves `router` as plain HTTP on `listener` under `limits`, forever.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    port: &'static str,
    refused: Arc<dyn Fn(&'static str) + Send + Sync>,
) {
    let gate = Gate::new(listener, &limits, port);
    loop {
        let (tcp, permit) = gate.accept(refused.as_ref()).await;
        let svc = TowerToHyperService::new(router.clone());
        let builder = http1(&limits);
        tokio::spawn(async move {
            if let Err(e) = builder.serve_connection(TokioIo::new(tcp), svc).await {
                tracing::debug!(port, "connection ended: {e}");
            }
            drop(permit);
        });
    }
}
