//! Pull-based anti-entropy for artifacts.
//!
//! Every `sync_interval_ms` a validator (1) resumes the artifacts it holds
//! in part, fetching missing chunks from any live peer that has them, and
//! (2) asks one random live peer (the failure detector decides who is
//! live) for the manifest digests it holds. For each name, the newest
//! version it does not have is fetched: manifest first, verified (digest,
//! signature, policy, expiry, rollback) before anything is stored, then the
//! chunks, `fetch_concurrency` at a time, spread over the peers. Each chunk
//! is hashed as it streams in; a bad chunk is fetched again from another
//! peer, and the peer that sent it gets an integrity strike in its health
//! score. Chunks come over one kept-alive mutual-TLS connection per worker.

use super::api::HeldList;
use super::{Artifacts, ChunkOutcome};
use crate::config::Member;
use crate::daemon::State;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mesh_agent::detector::State as MemberState;
use mesh_agent::health::{HealthConfig, PeerHealth};
use rustls_pki_types::ServerName;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Time allowed for one chunk (connect, request, whole body).
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for a list or manifest request.
const SMALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `GET /v1/artifacts` answer read.
const MAX_LIST: usize = 4 << 20;

/// Runs anti-entropy rounds forever.
pub async fn sync_loop(state: Arc<State>, art: Arc<Artifacts>) {
    let mut tick = tokio::time::interval(Duration::from_millis(art.settings.sync_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        round(&state, &art).await;
    }
}

/// Members the failure detector currently considers alive.
fn alive_peers(state: &State) -> Vec<Member> {
    let members = state.members();
    let Ok(d) = state.detector.lock() else {
        return Vec::new();
    };
    members
        .into_iter()
        .filter(|m| d.state(&m.id) == Some(MemberState::Alive))
        .collect()
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b)
}

fn shuffle<T>(v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = (random_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// One anti-entropy round.
pub async fn round(state: &Arc<State>, art: &Arc<Artifacts>) {
    art.refresh_lag();
    let mut peers = alive_peers(state);
    if peers.is_empty() {
        return;
    }
    shuffle(&mut peers);
    // (1) Resume partial objects (after a restart, or an earlier failure).
    let partial: Vec<[u8; 32]> = art
        .lock()
        .objects()
        .filter(|o| !o.complete)
        .map(|o| o.meta.digest)
        .collect();
    for d in partial {
        download(state, art, d, peers.clone()).await;
    }
    // (2) Learn what one random live peer holds.
    let peer = peers[0].clone();
    let list = match state.ctl.get(&peer, "/v1/artifacts", MAX_LIST).await {
        Ok(r) if r.status == 200 => match serde_json::from_slice::<HeldList>(&r.body) {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(peer = %peer.id, "bad artifact list: {e}");
                return;
            }
        },
        Ok(r) => {
            tracing::debug!(peer = %peer.id, status = r.status, "artifact list refused");
            return;
        }
        Err(e) => {
            tracing::debug!(peer = %peer.id, "artifact list: {e}");
            return;
        }
    };
    for digest in wanted(art, &list) {
        let path = format!("/v1/artifacts/{}/manifest", hex::encode(digest));
        let manifest = match tokio::time::timeout(
            SMALL_TIMEOUT,
            state
                .ctl
                .get(&peer, &path, super::store::MAX_MANIFEST_BYTES as usize),
        )
        .await
        {
            Ok(Ok(r)) if r.status == 200 => r.body,
            _ => continue,
        };
        let a = art.clone();
        let admitted = tokio::task::spawn_blocking(move || a.admit(&manifest, Some(&digest))).await;
        match admitted {
            Ok(Ok(_)) => {
                let mut sources = peers.clone();
                // The peer that listed it first.
                sources.sort_by_key(|m| m.id != peer.id);
                download(state, art, digest, sources).await;
            }
            Ok(Err(r)) => {
                tracing::warn!(peer = %peer.id, digest = %hex::encode(digest), "artifact from peer refused: {r}")
            }
            Err(e) => tracing::warn!("admission task failed: {e}"),
        }
    }
}

/// Digests from a peer's list worth fetching: per name the newest version
/// hinted, if newer than anything of that name held or in progress here,
/// and not refused before. (Hints are unauthenticated: the manifest is
/// verified after fetching.)
fn wanted(art: &Artifacts, list: &HeldList) -> Vec<[u8; 32]> {
    let mut best: BTreeMap<&str, (semver::Version, [u8; 32])> = BTreeMap::new();
    for h in &list.artifacts {
        let (Ok(v), Some(d)) = (
            h.version.parse::<semver::Version>(),
            hex::decode(&h.digest)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok()),
        ) else {
            continue;
        };
        if best.get(h.name.as_str()).is_none_or(|(bv, _)| *bv < v) {
            best.insert(&h.name, (v, d));
        }
    }
    let store = art.lock();
    best.into_iter()
        .filter(|(name, (v, d))| {
            store.get(d).is_none()
                && !art.was_refused(d)
                && store
                    .objects()
                    .filter(|o| o.meta.name == *name)
                    .all(|o| o.meta.version < *v)
        })
        .map(|(_, (_, d))| d)
        .collect()
}

/// Shared state of one download.
struct Job {
    digest: [u8; 32],
    queue: Mutex<VecDeque<usize>>,
    excluded: Mutex<HashSet<String>>,
    sources: Vec<Member>,
}

impl Job {
    fn next_chunk(&self) -> Option<usize> {
        self.queue.lock().ok()?.pop_front()
    }
    fn requeue(&self, i: usize) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(i);
        }
    }
    fn exclude(&self, id: &str) {
        if let Ok(mut e) = self.excluded.lock() {
            e.insert(id.to_string());
        }
    }
    /// A source not excluded, starting at position `k`.
    fn source(&self, k: usize) -> Option<Member> {
        let ex = self.excluded.lock().ok()?;
        (0..self.sources.len())
            .map(|j| &self.sources[(k + j) % self.sources.len()])
            .find(|m| !ex.contains(&m.id))
            .cloned()
    }
}

/// Fetches the missing chunks of `digest` from `sources` with bounded
/// concurrency. Returns when every chunk is verified or no source is left
/// (the next round resumes).
pub async fn download(
    state: &Arc<State>,
    art: &Arc<Artifacts>,
    digest: [u8; 32],
    sources: Vec<Member>,
) {
    let missing = match art.lock().get(&digest) {
        Some(o) if !o.complete => o.missing(),
        _ => return,
    };
    if missing.is_empty() || sources.is_empty() {
        return;
    }
    let workers = art.settings.fetch_concurrency.min(missing.len()).max(1);
    let job = Arc::new(Job {
        digest,
        queue: Mutex::new(missing.into()),
        excluded: Mutex::new(HashSet::new()),
        sources,
    });
    let handles: Vec<_> = (0..workers)
        .map(|k| tokio::spawn(worker(state.clone(), art.clone(), job.clone(), k)))
        .collect();
    for h in handles {
        let _ = h.await;
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// Dials `peer` over mutual TLS (checking its certificate names it) and
/// returns an HTTP/1.1 connection to reuse for several chunks.
async fn connect(state: &State, peer: &Member) -> Result<Sender, String> {
    let tcp = TcpStream::connect(peer.addr.as_str())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(peer.id.clone()).map_err(|e| format!("server name: {e}"))?;
    let tls = TlsConnector::from(state.tls.client.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (_, conn) = tls.get_ref();
    let found = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| vault::meshca::validator_id(c).ok());
    if found.as_deref() != Some(peer.id.as_str()) {
        return Err(format!("certificate names {found:?}, not {}", peer.id));
    }
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Lowers `peer`'s health score after it served data that failed
/// verification.
fn integrity_strike(state: &State, peer: &str) {
    if let Ok(mut health) = state.health.lock() {
        let h = health
            .entry(peer.to_string())
            .or_insert_with(|| PeerHealth::new(HealthConfig::default()));
        h.integrity_failure();
        state
            .metrics
            .peer_health
            .with_label_values(&[peer])
            .set(h.score());
    }
}

enum Step {
    /// Go on with the same connection.
    Next,
    /// The peer served a chunk that failed verification.
    Bad,
    /// The artifact is gone (refused as a whole): stop.
    Stop,
    /// Drop this source for the rest of the download.
    Exclude,
    /// The connection broke: dial a source again.
    Reconnect,
}

async fn worker(state: Arc<State>, art: Arc<Artifacts>, job: Arc<Job>, k: usize) {
    let mut failures = 0usize;
    'sources: while let Some(peer) = job.source(k + failures) {
        let mut sender = match tokio::time::timeout(SMALL_TIMEOUT, connect(&state, &peer)).await {
            Ok(Ok(s)) => s,
            other => {
                let why =
                    other.map_or_else(|_| "timeout".to_string(), |r| r.err().unwrap_or_default());
                tracing::debug!(peer = %peer.id, "artifact source unreachable: {why}");
                job.exclude(&peer.id);
                continue;
            }
        };
        loop {
            let Some(i) = job.next_chunk() else {
                return;
            };
            let step = match tokio::time::timeout(
                CHUNK_TIMEOUT,
                fetch_one(&art, &mut sender, &peer, job.digest, i),
            )
            .await
            {
                Ok(s) => s,
                Err(_) => {
                    job.requeue(i);
                    Step::Reconnect
                }
            };
            match step {
                Step::Next => {}
                Step::Stop => return,
                Step::Bad => {
                    integrity_strike(&state, &peer.id);
                    job.requeue(i);
                    job.exclude(&peer.id);
                    continue 'sources;
                }
                Step::Exclude => {
                    job.requeue(i);
                    job.exclude(&peer.id);
                    continue 'sources;
                }
                Step::Reconnect => {
                    failures += 1;
                    if failures > 3 * job.sources.len() {
                        job.requeue(i);
                        return;
                    }
                    continue 'sources;
                }
            }
        }
    }
}

async fn fetch_one(
    art: &Arc<Artifacts>,
    sender: &mut Sender,
    peer: &Member,
    digest: [u8; 32],
    i: usize,
) -> Step {
    let state_err = |e: String| {
        tracing::debug!(peer = %peer.id, chunk = i, "chunk request failed: {e}");
        Step::Reconnect
    };
    if let Err(e) = sender.ready().await {
        return state_err(e.to_string());
    }
    let req = match hyper::Request::builder()
        .uri(format!("/v1/artifacts/{}/chunks/{i}", hex::encode(digest)))
        .header("host", peer.id.as_str())
        .body(Empty::<Bytes>::new())
    {
        Ok(r) => r,
        Err(e) => return state_err(e.to_string()),
    };
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => return state_err(e.to_string()),
    };
    if resp.status() != 200 {
        tracing::debug!(peer = %peer.id, chunk = i, status = %resp.status(), "peer does not serve the chunk");
        return Step::Exclude;
    }
    match art.receive_chunk(digest, i, resp.into_body(), true).await {
        Ok(ChunkOutcome::Stored | ChunkOutcome::Completed | ChunkOutcome::AlreadyHad) => Step::Next,
        Err(r) if r.reason == Some("chunk") => {
            tracing::warn!(peer = %peer.id, chunk = i, "peer served a bad chunk; fetching it elsewhere: {r}");
            Step::Bad
        }
        Err(r) if r.reason.is_some() || r.status == 404 => {
            tracing::warn!(digest = %hex::encode(digest), "artifact refused: {r}");
            Step::Stop
        }
        Err(r) if r.status == 409 => Step::Next, // another transfer has it
        Err(r) => {
            tracing::debug!(peer = %peer.id, chunk = i, "chunk not stored: {r}");
            Step::Reconnect
        }
    }
}
