//! The mesh client: dials a peer over mutual TLS and makes one request.
//!
//! The peer is addressed by its validator id (the TLS server name, checked
//! against its certificate's DNS SAN) and the URI SAN is checked too, so a
//! response always comes from the validator we meant to ask.
//!
//! A client made [`PeerClient::with_keepalive`] (the prober's) keeps one
//! idle connection per peer for up to [`KEEPALIVE_MAX_AGE`] instead of a
//! TLS handshake per request: probing every member every interval with
//! fresh handshakes was a fifth of a 2-core host running ten validators.
//! A kept connection that fails is dropped and the request is tried once
//! on a fresh one, so a restarted peer is never suspected for it. That
//! retry may deliver a request twice, so only GETs reuse connections unless
//! the client is [`PeerClient::idempotent`] (the epoch log's, whose Raft
//! RPCs are safe to repeat).

use crate::config::Member;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a request to a peer failed.
#[derive(Debug, Error)]
pub enum PeerError {
    /// No answer in time.
    #[error("peer {0} timed out")]
    Timeout(String),
    /// TCP, TLS or HTTP failure.
    #[error("peer {peer}: {reason}")]
    Transport {
        /// Peer id.
        peer: String,
        /// What failed.
        reason: String,
    },
    /// The peer's certificate names another validator.
    #[error("peer at {addr} presented id {found:?}, expected {expected:?}")]
    WrongPeer {
        /// Address dialled.
        addr: String,
        /// Id expected.
        expected: String,
        /// Id found.
        found: String,
    },
}

impl PeerError {
    /// True if no connection could be opened at all (refused, unreachable):
    /// nobody listens there. Unlike a timeout, this cannot be our own
    /// process being slow.
    pub fn refused(&self) -> bool {
        matches!(self, PeerError::Transport { reason, .. } if reason.starts_with("connect:"))
    }
}

/// A response from a peer.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body (bounded).
    pub body: Bytes,
    /// The key-exchange group the TLS session negotiated.
    pub kx_group: Option<String>,
    /// The identity fingerprint the peer's certificate binds, if any: a
    /// peer's identity is the one its certificate names (docs/formats.md).
    pub identity: Option<vault::identity::Fingerprint>,
}

/// Longest a kept-alive connection is reused (then a fresh handshake
/// re-checks the peer's certificate).
pub const KEEPALIVE_MAX_AGE: Duration = Duration::from_secs(60);

/// An idle kept-alive connection to one peer.
struct Kept {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    kx_group: Option<String>,
    identity: Option<vault::identity::Fingerprint>,
    opened: Instant,
}

/// Idle connections by peer id and address.
type Pool = Arc<Mutex<HashMap<(String, String), Kept>>>;

/// Dials peers with the mesh TLS client configuration.
#[derive(Clone)]
pub struct PeerClient {
    connector: TlsConnector,
    timeout: Duration,
    pool: Option<Pool>,
    /// Every request may be delivered twice: POSTs reuse connections too.
    idempotent: bool,
}

impl PeerClient {
    /// A client using `config` with a per-request `timeout`.
    pub fn new(config: Arc<ClientConfig>, timeout: Duration) -> Self {
        PeerClient {
            connector: TlsConnector::from(config),
            timeout,
            pool: None,
            idempotent: false,
        }
    }

    /// The same client, keeping one idle connection per peer for reuse.
    pub fn with_keepalive(mut self) -> Self {
        self.pool = Some(Arc::new(Mutex::new(HashMap::new())));
        self
    }

    /// The same client, keeping connections for every method: for callers
    /// whose requests may be applied twice without harm (Raft's RPCs), as a
    /// kept connection that fails is retried on a fresh one.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self.with_keepalive()
    }

    /// The same client (and pool) with another per-request timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        PeerClient {
            connector: self.connector.clone(),
            timeout,
            pool: self.pool.clone(),
            idempotent: self.idempotent,
        }
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Completes a TLS handshake with whoever listens at `addr` and returns
    /// the validator id its mesh certificate names. Needs a client built
    /// from `MeshTls::discover`.
    pub async fn identify(&self, addr: std::net::SocketAddr) -> Result<String, PeerError> {
        let fail = |reason: String| PeerError::Transport {
            peer: addr.to_string(),
            reason,
        };
        let work = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| fail(format!("connect: {e}")))?;
            let name = ServerName::try_from("pqvault-discovery.invalid")
                .map_err(|e| fail(format!("server name: {e}")))?;
            let tls = self
                .connector
                .connect(name, tcp)
                .await
                .map_err(|e| fail(format!("tls: {e}")))?;
            let (_, conn) = tls.get_ref();
            let cert = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| fail("no certificate".into()))?;
            vault::meshca::validator_id(cert).map_err(|e| fail(format!("certificate: {e}")))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| PeerError::Timeout(addr.to_string()))?
    }

    /// GETs `path` from `peer`, reading at most `max_body` bytes.
    pub async fn get(
        &self,
        peer: &Member,
        path: &str,
        max_body: usize,
    ) -> Result<Response, PeerError> {
        self.request(peer, hyper::Method::GET, path, Vec::new(), max_body)
            .await
    }

    /// POSTs `body` to `path` on `peer`, reading at most `max_body` bytes.
    pub async fn post(
        &self,
        peer: &Member,
        path: &str,
        body: Vec<u8>,
        max_body: usize,
    ) -> Result<Response, PeerError> {
        self.request(peer, hyper::Method::POST, path, body, max_body)
            .await
    }

    async fn request(
        &self,
        peer: &Member,
        method: hyper::Method,
        path: &str,
        body: Vec<u8>,
        max_body: usize,
    ) -> Result<Response, PeerError> {
        tokio::time::timeout(
            self.timeout,
            self.request_inner(peer, method, path, body, max_body),
        )
        .await
        .map_err(|_| PeerError::Timeout(peer.id.clone()))?
    }

    async fn request_inner(
        &self,
        peer: &Member,
        method: hyper::Method,
        path: &str,
        body: Vec<u8>,
        max_body: usize,
    ) -> Result<Response, PeerError> {
        // Only GETs (and an idempotent client's requests) reuse
        // connections: retrying one on a fresh connection after a kept one
        // failed must never apply a request twice that matters.
        let pool = self
            .pool
            .as_ref()
            .filter(|_| self.idempotent || method == hyper::Method::GET);
        let key = (peer.id.clone(), peer.addr.clone());
        let kept = pool
            .and_then(|p| p.lock().ok()?.remove(&key))
            .filter(|k| k.opened.elapsed() < KEEPALIVE_MAX_AGE && !k.sender.is_closed());
        if let Some(mut k) = kept {
            let req = build(peer, method.clone(), path, body.clone())?;
            if k.sender.ready().await.is_ok() {
                if let Ok(r) = exchange(peer, &mut k.sender, req, max_body).await {
                    let resp = Response {
                        status: r.0,
                        body: r.1,
                        kx_group: k.kx_group.clone(),
                        identity: k.identity,
                    };
                    keep(pool, key, k);
                    return Ok(resp);
                }
            }
            // The kept connection failed (peer restarted, or it timed the
            // connection out): fall through to a fresh one.
        }
        let (mut sender, kx_group, identity) = self.connect(peer).await?;
        let req = build(peer, method, path, body)?;
        let (status, body) = exchange(peer, &mut sender, req, max_body).await?;
        keep(
            pool,
            key,
            Kept {
                sender,
                kx_group: kx_group.clone(),
                identity,
                opened: Instant::now(),
            },
        );
        Ok(Response {
            status,
            body,
            kx_group,
            identity,
        })
    }

    /// A fresh mutual-TLS connection to `peer`, its certificate checked.
    async fn connect(
        &self,
        peer: &Member,
    ) -> Result<
        (
            hyper::client::conn::http1::SendRequest<Full<Bytes>>,
            Option<String>,
            Option<vault::identity::Fingerprint>,
        ),
        PeerError,
    > {
        let fail = |reason: String| PeerError::Transport {
            peer: peer.id.clone(),
            reason,
        };
        let tcp = TcpStream::connect(peer.addr.as_str())
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let name =
            ServerName::try_from(peer.id.clone()).map_err(|e| fail(format!("server name: {e}")))?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| fail(format!("tls: {e}")))?;
        let (_, conn) = tls.get_ref();
        let name = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| vault::meshca::mesh_name(c).ok());
        let found = name.as_ref().map(|n| n.id.clone()).unwrap_or_default();
        if found != peer.id {
            return Err(PeerError::WrongPeer {
                addr: peer.addr.clone(),
                expected: peer.id.clone(),
                found,
            });
        }
        let kx_group = conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()));
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fail(format!("http: {e}")))?;
        tokio::spawn(connection);
        Ok((sender, kx_group, name.and_then(|n| n.identity)))
    }
}

/// Returns an idle connection to `pool` (if any: otherwise it closes).
fn keep(pool: Option<&Pool>, key: (String, String), kept: Kept) {
    if let Some(mut pool) = pool.and_then(|p| p.lock().ok()) {
        pool.insert(key, kept);
    }
}

fn build(
    peer: &Member,
    method: hyper::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<hyper::Request<Full<Bytes>>, PeerError> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", peer.id.as_str())
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| PeerError::Transport {
            peer: peer.id.clone(),
            reason: format!("request: {e}"),
        })
}

/// Sends `req` and reads the whole answer (at most `max_body` bytes), so
/// the connection is ready for another request afterwards.
async fn exchange(
    peer: &Member,
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<(u16, Bytes), PeerError> {
    let fail = |reason: String| PeerError::Transport {
        peer: peer.id.clone(),
        reason,
    };
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| fail(format!("http: {e}")))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), max_body)
        .collect()
        .await
        .map_err(|e| fail(format!("body: {e}")))?
        .to_bytes();
    Ok((status, body))
}
