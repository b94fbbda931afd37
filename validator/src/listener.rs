//! The limits every listening port applies, and serving plain HTTP with them.
//!
//! Each port (peer, ops, app) caps its open connections: past the cap a new
//! connection is closed as soon as it is accepted, and counted. Every
//! connection must send its request headers within the header timeout, and
//! a kept-alive connection must start its next request within the same
//! time (hyper's header-read timer runs from the moment it waits for a
//! request head), so half-sent requests and idle connections cannot pile
//! up and hold memory.

use crate::retry::{Backoff, Retry};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connection cap, header/idle timeout, and the peer port's body limits
/// (`[listen]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections allowed on one port.
    pub max_connections: usize,
    /// Time to send a request's headers, or to start the next request.
    pub header_timeout: Duration,
    /// Time to send a request's body, from its head (`crate::bodies`).
    pub body_timeout: Duration,
    /// Bytes of request bodies the peer port holds at once
    /// (`crate::bodies`).
    pub body_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_budget: 32 << 20,
        }
    }
}

/// Accepts connections on one port within the connection cap.
pub struct Gate {
    listener: TcpListener,
    slots: Arc<Pool>,
    port: &'static str,
    retry: Retry,
}

/// How a port backs off after failed accepts (out of file descriptors,
/// say): from 50 ms up to 1 s, so a full table is not spun on.
pub const ACCEPT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));

/// What a port hands out under a cap (its connection slots; the peer
/// port's body bytes, `crate::bodies`), and whether a flood took many at
/// once since the pool was last whole.
pub(crate) struct Pool {
    units: Arc<Semaphore>,
    cap: usize,
    /// Units out at once that make a flood.
    busy_at: usize,
    busy: AtomicBool,
}

impl Pool {
    /// A pool of `cap` units (at most `Semaphore::MAX_PERMITS`) where
    /// `busy_at` out at once make a flood.
    pub(crate) fn new(cap: usize, busy_at: usize) -> Arc<Self> {
        Arc::new(Pool {
            units: Arc::new(Semaphore::new(cap)),
            cap,
            busy_at,
            busy: AtomicBool::new(false),
        })
    }

    /// The semaphore to take units from.
    pub(crate) fn units(&self) -> Arc<Semaphore> {
        self.units.clone()
    }

    /// The units the pool holds.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Units out now.
    pub(crate) fn in_use(&self) -> usize {
        self.cap - self.units.available_permits()
    }

    /// Holds `permit`'s units until the slot drops, noting a flood.
    pub(crate) fn hold(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        if self.in_use() >= self.busy_at {
            self.busy.store(true, Ordering::Release);
        }
        Slot {
            permit,
            pool: self.clone(),
        }
    }
}

/// Units held from a pool (one connection's slot under the cap, or one
/// body's bytes), until dropped. When the last units out after a flood
/// (a quarter of the pool or more out at once) come back, the heap's free
/// pages go back to the system, so a flood leaves no lasting growth.
pub struct Slot {
    permit: OwnedSemaphorePermit,
    pool: Arc<Pool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Our own units go back right after this body.
        let whole =
            self.pool.units.available_permits() + self.permit.num_permits() >= self.pool.cap;
        if whole && self.pool.busy.swap(false, Ordering::AcqRel) {
            release_free_heap();
        }
    }
}

/// Returns the allocator's free pages to the system (glibc's
/// `malloc_trim`; other allocators return memory on their own or not at
/// all, and are left alone).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes no pointers and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Gate {
    /// A gate for `listener`, named `port` in logs and metrics; failed
    /// accepts back off and count with `retry`.
    pub fn new(listener: TcpListener, limits: &Limits, port: &'static str, retry: Retry) -> Self {
        Gate {
            listener,
            retry,
            slots: Pool::new(limits.max_connections, (limits.max_connections / 4).max(16)),
            port,
        }
    }

    /// The next connection within the cap, with the slot that holds its
    /// place (drop it when the connection ends). Connections over the cap
    /// are closed at once and reported to `refused`.
    pub async fn accept(&mut self, refused: &(dyn Fn(&'static str) + Sync)) -> (TcpStream, Slot) {
        loop {
            let (tcp, addr) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    let wait = self.retry.failed();
                    tracing::warn!(
                        port = self.port,
                        failures = self.retry.failures(),
                        next_try_ms = wait.as_millis() as u64,
                        "accept failed: {e}"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            if self.retry.failures() > 0 {
                self.retry.succeeded();
            }
            match self.slots.units().try_acquire_owned() {
                Ok(permit) => {
                    // Responses go out in several writes: without this, Nagle
                    // plus the client's delayed ACK adds about 40 ms.
                    let _ = tcp.set_nodelay(true);
                    return (tcp, self.slots.hold(permit));
                }
                Err(_) => {
                    tracing::debug!(port = self.port, %addr, "connection cap reached; closed");
                    refused(self.port);
                }
            }
        }
    }
}

/// Bytes a connection may buffer while reading a request (hyper's default
/// is about 400 KiB): request heads here are a few hundred bytes, and
/// bodies are read in pieces of at most this much.
const READ_BUFFER: usize = 64 << 10;

/// An HTTP/1 connection builder with the header/idle timeout and a bounded
/// read buffer.
pub fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER);
    b
}

/// Serves `router` as plain HTTP on `listener` under `limits`, forever;
/// failed accepts back off and count with `retry`.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    port: &'static str,
    refused: Arc<dyn Fn(&'static str) + Send + Sync>,
    retry: Retry,
) {
    let mut gate = Gate::new(listener, &limits, port, retry);
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
