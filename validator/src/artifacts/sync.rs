//! Pull-based anti-entropy for artifacts.
//!
//! Every `sync_interval_ms`, and at once when a peer hints that it admitted
//! a new artifact, a validator (1) asks every live peer (the failure
//! detector decides who is live) for the manifest digests it holds,
//! complete or in progress; (2) for each name fetches the manifest of the
//! newest version it does not have and verifies it (digest, signature,
//! policy, expiry, rollback) before anything is stored; (3) downloads the
//! missing chunks of every partial object from all live peers at once: a
//! peer serves any chunk it has verified, and says which with a `PQAB`
//! bitmap. Each chunk is hashed as it streams in; a bad chunk is fetched
//! again from another peer, and the peer that sent it gets an integrity
//! strike in its health score. Workers keep one mutual-TLS connection per
//! peer for many chunks.

use super::api::HeldList;
use super::store::bitmap_decode;
use super::{Artifacts, ChunkOutcome};
use crate::config::Member;
use crate::retry::{Backoff, Loop, Retry};
use crate::state::State;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mesh_agent::health::{HealthConfig, PeerHealth};
use rustls_pki_types::ServerName;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Time allowed for one chunk (connect, request, whole body).
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for a list, manifest, bitmap or hint request.
const SMALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `GET /v1/artifacts` answer read.
const MAX_LIST: usize = 4 << 20;
/// A download with no chunk stored for this long ends (the next round
/// resumes it): its sources hold nothing more that it lacks.
const PATIENCE: Duration = Duration::from_secs(2);
/// How long a worker waits when no source holds any chunk still missing
/// (the peers are still receiving them).
const IDLE_WAIT: Duration = Duration::from_millis(25);
/// Chunks are fetched in order by windows of this many, shuffled within
/// each window.
const ORDER_WINDOW: usize = 8;
/// A partial source's bitmap is asked again when older than this.
const HELD_REFRESH: Duration = Duration::from_millis(50);

/// Longest wait after rounds in which no peer answered.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Runs anti-entropy rounds forever: every `sync_interval_ms`, and at once
/// when a peer hints at a new artifact. A round in which no peer asked
/// answered its list fails: the next one backs off from one interval up
/// to [`BACKOFF_CAP`] and the failure is counted (`crate::retry`); a hint
/// still starts a round at once.
pub async fn sync_loop(state: Arc<State>, art: Arc<Artifacts>) {
    let interval = Duration::from_millis(art.settings.sync_interval_ms);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry = Retry::new(
        &state.metrics,
        Loop::ArtifactSync,
        Backoff::new(interval, BACKOFF_CAP.max(interval)),
    );
    // After a backoff, the next round runs at once (hinted or not).
    let mut now: Option<bool> = None;
    loop {
        let hinted = match now.take() {
            Some(hinted) => hinted,
            None => tokio::select! {
                _ = tick.tick() => false,
                () = art.wake.notified() => true,
            },
        };
        match round(&state, &art, hinted).await {
            Ok(()) => retry.succeeded(),
            Err(e) => {
                let wait = retry.failed();
                tracing::debug!(
                    failures = retry.failures(),
                    next_try_ms = wait.as_millis() as u64,
                    "artifact sync: {e}"
                );
                now = Some(tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    () = art.wake.notified() => true,
                });
                tick.reset();
            }
        }
    }
}

/// Tells every live peer that this validator admitted a new artifact, so
/// that they run a round now instead of at their next tick. A hint carries
/// nothing: the peers still pull and verify everything.
pub async fn hint_peers(state: Arc<State>) {
    let peers = state.alive_members();
    let posts = peers.iter().map(|p| {
        tokio::time::timeout(
            SMALL_TIMEOUT,
            state.ctl.post(p, "/v1/artifacts/hint", Vec::new(), 1024),
        )
    });
    futures_util::future::join_all(posts).await;
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

/// One anti-entropy round. After a hint, or while something is being
/// received here, every live peer is asked what it holds (lists are
/// small); otherwise one random live peer, which bounds the TLS handshakes
/// an idle mesh spends on anti-entropy. The round runs whole either way;
/// it fails if no peer asked answered its list (no live peer is no
/// failure: nothing to retry).
pub async fn round(
    state: &Arc<State>,
    art: &Arc<Artifacts>,
    hinted: bool,
) -> Result<(), SyncError> {
    {
        let a = art.clone();
        let _ = tokio::task::spawn_blocking(move || a.abandon_stalled()).await;
    }
    art.refresh_lag();
    let mut peers = state.alive_members();
    if peers.is_empty() {
        return Ok(());
    }
    shuffle(&mut peers);
    let busy = art.lock().objects().any(|o| !o.complete);
    let asked = if hinted || busy { peers.len() } else { 1 };
    // (1) What the peers hold.
    let lists =
        futures_util::future::join_all(peers[..asked].iter().map(|p| list_of(state, p))).await;
    let answered = lists.iter().any(Option::is_some);
    // (2) New manifests: per name the newest version any peer lists.
    let mut offered: BTreeMap<[u8; 32], &Member> = BTreeMap::new();
    for (peer, list) in peers[..asked].iter().zip(&lists) {
        if let Some(list) = list {
            for d in wanted(art, list) {
                offered.entry(d).or_insert(peer);
            }
        }
    }
    for (digest, peer) in newest_per_name(&lists, offered) {
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
            Ok(Ok(_)) => {}
            Ok(Err(r)) => {
                tracing::warn!(peer = %peer.id, digest = %hex::encode(digest), "artifact from peer refused: {r}")
            }
            Err(e) => tracing::warn!("admission task failed: {e}"),
        }
    }
    // (3) Fetch what is missing of every partial object from all live peers.
    let partial = art.lock().partial();
    for d in partial {
        download(state, art, d, peers.clone()).await;
    }
    if answered {
        Ok(())
    } else {
        Err(SyncError::NoList { asked })
    }
}

/// Why an anti-entropy round failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// None of the `asked` live peers answered `GET /v1/artifacts`.
    #[error("none of the {asked} peer(s) asked answered its artifact list")]
    NoList {
        /// Peers asked.
        asked: usize,
    },
}

/// `GET /v1/artifacts` of `peer`, or `None` if it does not answer well.
async fn list_of(state: &State, peer: &Member) -> Option<HeldList> {
    match tokio::time::timeout(
        SMALL_TIMEOUT,
        state.ctl.get(peer, "/v1/artifacts", MAX_LIST),
    )
    .await
    {
        Ok(Ok(r)) if r.status == 200 => serde_json::from_slice::<HeldList>(&r.body)
            .map_err(|e| tracing::debug!(peer = %peer.id, "bad artifact list: {e}"))
            .ok(),
        Ok(Ok(r)) => {
            tracing::debug!(peer = %peer.id, status = r.status, "artifact list refused");
            None
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer.id, "artifact list: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Of the digests offered, the newest version hinted per name, with the
/// peer to fetch its manifest from.
fn newest_per_name(
    lists: &[Option<HeldList>],
    offered: BTreeMap<[u8; 32], &Member>,
) -> Vec<([u8; 32], Member)> {
    let mut best: BTreeMap<String, (semver::Version, [u8; 32])> = BTreeMap::new();
    for list in lists.iter().flatten() {
        for h in &list.artifacts {
            let Some(d) = parse_digest(&h.digest) else {
                continue;
            };
            let Ok(v) = h.version.parse::<semver::Version>() else {
                continue;
            };
            if offered.contains_key(&d) && best.get(&h.name).is_none_or(|(bv, _)| *bv < v) {
                best.insert(h.name.clone(), (v, d));
            }
        }
    }
    best.into_values()
        .filter_map(|(_, d)| offered.get(&d).map(|p| (d, (*p).clone())))
        .collect()
}

fn parse_digest(s: &str) -> Option<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// Digests from a peer's list worth fetching: per name the newest version
/// hinted, if newer than anything of that name held or in progress here,
/// and not refused before. (Hints are unauthenticated: the manifest is
/// verified after fetching.)
fn wanted(art: &Artifacts, list: &HeldList) -> Vec<[u8; 32]> {
    let mut best: BTreeMap<&str, (semver::Version, [u8; 32], bool)> = BTreeMap::new();
    for h in &list.artifacts {
        let (Ok(v), Some(d)) = (
            h.version.parse::<semver::Version>(),
            parse_digest(&h.digest),
        ) else {
            continue;
        };
        if best.get(h.name.as_str()).is_none_or(|(bv, _, _)| *bv < v) {
            best.insert(&h.name, (v, d, h.complete));
        }
    }
    let store = art.lock();
    best.into_iter()
        .filter(|(name, (v, d, complete))| {
            // An artifact abandoned here (it made no progress) is fetched
            // again only once a peer holds it complete: partial copies
            // would otherwise bounce between validators forever.
            let refused = match art.refusal_reason(d) {
                None => false,
                Some(super::ABANDONED) => !complete,
                Some(_) => true,
            };
            store.get(d).is_none()
                && !refused
                && store
                    .objects()
                    .filter(|o| o.meta.name == *name)
                    .all(|o| o.meta.version < *v)
        })
        .map(|(_, (_, d, _))| d)
        .collect()
}

/// What one source holds of the artifact being downloaded.
struct Holding {
    /// `None` until asked; then the verified chunks it reported.
    bits: Option<Vec<bool>>,
    /// It holds every chunk: never asked again.
    complete: bool,
    asked: Instant,
}

/// Shared state of one download.
struct Job {
    digest: [u8; 32],
    chunks: usize,
    queue: Mutex<VecDeque<usize>>,
    excluded: Mutex<HashSet<String>>,
    held: Mutex<HashMap<String, Holding>>,
    progress: Mutex<Instant>,
    sources: Vec<Member>,
}

impl Job {
    fn queue_empty(&self) -> bool {
        self.queue.lock().map(|q| q.is_empty()).unwrap_or(true)
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
    fn stored(&self) {
        if let Ok(mut p) = self.progress.lock() {
            *p = Instant::now();
        }
    }
    fn stalled(&self) -> bool {
        self.progress
            .lock()
            .map(|p| p.elapsed() > PATIENCE)
            .unwrap_or(true)
    }
    /// A source not excluded, starting at position `k`.
    fn source(&self, k: usize) -> Option<Member> {
        let ex = self.excluded.lock().ok()?;
        (0..self.sources.len())
            .map(|j| &self.sources[(k + j) % self.sources.len()])
            .find(|m| !ex.contains(&m.id))
            .cloned()
    }
    /// True if `peer`'s bitmap should be asked (again): never asked, or
    /// partial and asked over [`HELD_REFRESH`] ago. Records the ask, so
    /// that the workers of one download ask each peer at most once per
    /// period.
    fn claim_bitmap_ask(&self, peer: &str) -> bool {
        let Ok(mut h) = self.held.lock() else {
            return false;
        };
        match h.get_mut(peer) {
            None => {
                h.insert(
                    peer.to_string(),
                    Holding {
                        bits: None,
                        complete: false,
                        asked: Instant::now(),
                    },
                );
                true
            }
            Some(x) if !x.complete && x.asked.elapsed() >= HELD_REFRESH => {
                x.asked = Instant::now();
                true
            }
            Some(_) => false,
        }
    }
    fn set_bitmap(&self, peer: &str, bits: Vec<bool>) {
        if let Ok(mut h) = self.held.lock() {
            let complete = bits.iter().all(|b| *b);
            h.insert(
                peer.to_string(),
                Holding {
                    bits: Some(bits),
                    complete,
                    asked: Instant::now(),
                },
            );
        }
    }
    fn not_held(&self, peer: &str, i: usize) {
        if let Ok(mut h) = self.held.lock() {
            if let Some(b) = h.get_mut(peer).and_then(|x| x.bits.as_mut()) {
                if let Some(v) = b.get_mut(i) {
                    *v = false;
                }
            }
            if let Some(x) = h.get_mut(peer) {
                x.complete = false;
            }
        }
    }
    /// Takes the first queued chunk that `peer` holds.
    fn take_for(&self, peer: &str) -> Option<usize> {
        let h = self.held.lock().ok()?;
        let bits = h.get(peer)?.bits.as_ref()?;
        let mut q = self.queue.lock().ok()?;
        let at = q
            .iter()
            .position(|&i| bits.get(i).copied().unwrap_or(false))?;
        q.remove(at)
    }
}

/// Fetches the missing chunks of `digest` from `sources` with bounded
/// concurrency. Returns when every chunk is verified, no source is left, or
/// no chunk arrived for [`PATIENCE`] (the next round resumes).
pub async fn download(
    state: &Arc<State>,
    art: &Arc<Artifacts>,
    digest: [u8; 32],
    sources: Vec<Member>,
) {
    let (mut missing, chunks) = match art.lock().get(&digest) {
        Some(o) if !o.complete => (o.missing(), o.meta.chunks.len()),
        _ => return,
    };
    if missing.is_empty() || sources.is_empty() {
        return;
    }
    // Nearly in order, so that the payload check, which reads the payload
    // as the chunks are verified (`check`), keeps up with the transfer;
    // shuffled within windows per validator, so that replicas hold
    // different chunks early and can serve them to each other.
    for w in missing.chunks_mut(ORDER_WINDOW) {
        shuffle(w);
    }
    let workers = art.settings.fetch_concurrency.min(missing.len()).max(1);
    let job = Arc::new(Job {
        digest,
        chunks,
        queue: Mutex::new(missing.into()),
        excluded: Mutex::new(HashSet::new()),
        held: Mutex::new(HashMap::new()),
        progress: Mutex::new(Instant::now()),
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
    /// The peer does not hold that chunk (yet).
    NotHeld,
    /// The artifact is gone (refused as a whole): stop.
    Stop,
    /// Drop this source for the rest of the download.
    Exclude,
    /// The connection broke: dial a source again.
    Reconnect,
}

async fn request(
    sender: &mut Sender,
    peer: &Member,
    path: String,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = hyper::Request::builder()
        .uri(path)
        .header("host", peer.id.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// Asks `peer` which chunks of the artifact it has verified.
async fn ask_bitmap(job: &Job, sender: &mut Sender, peer: &Member) -> Step {
    let path = format!("/v1/artifacts/{}/held", hex::encode(job.digest));
    let resp = match tokio::time::timeout(SMALL_TIMEOUT, request(sender, peer, path)).await {
        Ok(Ok(r)) => r,
        _ => return Step::Reconnect,
    };
    if resp.status() != 200 {
        return Step::Exclude;
    }
    let limit = 9 + job.chunks.div_ceil(8);
    let body = match tokio::time::timeout(
        SMALL_TIMEOUT,
        Limited::new(resp.into_body(), limit).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return Step::Reconnect,
    };
    match bitmap_decode(&body, job.chunks) {
        Ok(bits) => {
            job.set_bitmap(&peer.id, bits);
            Step::Next
        }
        Err(e) => {
            tracing::debug!(peer = %peer.id, "bad chunk bitmap: {e}");
            Step::Exclude
        }
    }
}

async fn worker(state: Arc<State>, art: Arc<Artifacts>, job: Arc<Job>, k: usize) {
    let mut conns: HashMap<String, Sender> = HashMap::new();
    let n = job.sources.len();
    let mut pos = k;
    let mut failures = 0usize;
    let mut idle = 0usize;
    while !job.queue_empty() && !job.stalled() {
        let Some(peer) = job.source(pos) else {
            return;
        };
        let sender = match conns.get_mut(&peer.id) {
            Some(s) => s,
            None => match tokio::time::timeout(SMALL_TIMEOUT, connect(&state, &peer)).await {
                Ok(Ok(s)) => conns.entry(peer.id.clone()).or_insert(s),
                other => {
                    let why = other
                        .map_or_else(|_| "timeout".to_string(), |r| r.err().unwrap_or_default());
                    tracing::debug!(peer = %peer.id, "artifact source unreachable: {why}");
                    job.exclude(&peer.id);
                    continue;
                }
            },
        };
        let mut chunk = job.take_for(&peer.id);
        if chunk.is_none() && job.claim_bitmap_ask(&peer.id) {
            match ask_bitmap(&job, sender, &peer).await {
                Step::Next => chunk = job.take_for(&peer.id),
                Step::Reconnect => {
                    conns.remove(&peer.id);
                    failures += 1;
                    if failures > 3 * n {
                        return;
                    }
                    pos += 1;
                    continue;
                }
                _ => {
                    job.exclude(&peer.id);
                    continue;
                }
            }
        }
        let Some(i) = chunk else {
            // This source has nothing we lack: try the next; after a whole
            // cycle, wait for the peers to receive more.
            pos += 1;
            idle += 1;
            if idle >= n {
                idle = 0;
                tokio::time::sleep(IDLE_WAIT).await;
            }
            continue;
        };
        idle = 0;
        let step = match tokio::time::timeout(
            CHUNK_TIMEOUT,
            fetch_one(&art, sender, &peer, job.digest, i),
        )
        .await
        {
            Ok(s) => s,
            Err(_) => Step::Reconnect,
        };
        match step {
            Step::Next => job.stored(),
            Step::Stop => return,
            Step::NotHeld => {
                job.not_held(&peer.id, i);
                job.requeue(i);
            }
            Step::Bad => {
                integrity_strike(&state, &peer.id);
                job.requeue(i);
                job.exclude(&peer.id);
            }
            Step::Exclude => {
                job.requeue(i);
                job.exclude(&peer.id);
            }
            Step::Reconnect => {
                job.requeue(i);
                conns.remove(&peer.id);
                failures += 1;
                if failures > 3 * n {
                    return;
                }
                pos += 1;
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
    let path = format!("/v1/artifacts/{}/chunks/{i}", hex::encode(digest));
    let resp = match request(sender, peer, path).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(peer = %peer.id, chunk = i, "chunk request failed: {e}");
            return Step::Reconnect;
        }
    };
    if resp.status() == 404 {
        return Step::NotHeld;
    }
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
