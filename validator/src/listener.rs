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
    spell: Arc<Spell>,
    port: &'static str,
    retry: Retry,
}

/// How a port backs off after failed accepts (out of file descriptors,
/// say): from 50 ms up to 1 s, so a full table is not spun on.
pub const ACCEPT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));

/// A port's connection slots, and whether many were taken at once since
/// the port was last idle.
struct Spell {
    slots: Arc<Semaphore>,
    cap: usize,
    busy: AtomicBool,
}

/// One connection's slot under the cap, held until the connection ends.
/// When the last connection of a busy spell (a quarter of the cap or more
/// open at once: a flood) closes, the heap's free pages go back to the
/// system, so a slow-client flood leaves no lasting growth.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    spell: Arc<Spell>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Our own permit is released right after this body.
        let last = self.spell.slots.available_permits() + 1 >= self.spell.cap;
        if last && self.spell.busy.swap(false, Ordering::AcqRel) {
            release_free_heap();
        }
    }
}

/// Returns the allocator's free pages to the system (glibc's
/// `malloc_trim`; other allocators return memory on their own or not at
/// all, and are left alone).
pub(crate) fn release_free_heap() {
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
            spell: Arc::new(Spell {
                slots: Arc::new(Semaphore::new(limits.max_connections)),
                cap: limits.max_connections,
                busy: AtomicBool::new(false),
            }),
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
            match self.spell.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    // Responses go out in several writes: without this, Nagle
                    // plus the client's delayed ACK adds about 40 ms.
                    let _ = tcp.set_nodelay(true);
                    let open = self.spell.cap - self.spell.slots.available_permits();
                    if open >= (self.spell.cap / 4).max(16) {
                        self.spell.busy.store(true, Ordering::Release);
                    }
                    let slot = Slot {
                        _permit: permit,
                        spell: self.spell.clone(),
                    };
                    return (tcp, slot);
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
