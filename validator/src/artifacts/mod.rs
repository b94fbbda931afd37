//! Signed model artifacts carried across the mesh (issue 4, carriage).
//!
//! This module owns admission: every manifest is decoded and verified
//! against the trust policy (signature, publisher, delegated name, expiry,
//! rollback) *before* anything is stored, and every chunk is hashed as it
//! streams in. Peers may be served a verified manifest and its verified
//! chunks before the rest has arrived; the application sees an artifact
//! only after the whole payload passed `vault::artifact::check_payload`'s
//! checks. Submodules, one concept each:
//!
//! - [`store`]: content-addressed objects on disk, crash-safe, resumable.
//! - [`check`]: the full payload check, run as the chunks arrive.
//! - [`sync`]: pull-based anti-entropy between validators.
//! - [`api`]: the peer routes (mutual TLS) and the local application API
//!   (plain HTTP, `[listen] app`), including push.
//!
//! The protocol is in docs/protocol.md, the carriage design in
//! docs/artifact-carriage.md.

pub mod api;
pub mod check;
mod nowait;
pub mod store;
pub mod sync;

use crate::config::ArtifactsConfig;
use crate::metrics::Metrics;
use hyper::body::{Body, Bytes};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use store::{Checker, ClaimResult, Limits, Meta, Store, StoreError};
use vault::artifact::{check_not_rollback_held, SignedArtifact, TrustPolicy, VerifiedArtifact};

/// Most manifest digests remembered as refused (so a bad manifest offered
/// again by a peer is neither refetched nor counted twice).
const MAX_REFUSED: usize = 4096;
/// Refusal reason of an abandoned artifact (persisted in the store).
pub(crate) const ABANDONED: &str = "abandoned";
/// Bytes of a chunk buffered before each write to the payload file.
const WRITE_BUF: usize = 256 << 10;

/// Why an artifact, or one chunk of it, was refused: an HTTP status, the
/// verification-failure reason if it was one, and a message naming it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status to answer with.
    pub status: u16,
    /// Verification failure reason (metric label), if that is what it was.
    pub reason: Option<&'static str>,
    /// Human-readable explanation.
    pub message: String,
}

impl Refusal {
    fn verification(reason: &'static str, message: String) -> Self {
        Refusal {
            status: 422,
            reason: Some(reason),
            message,
        }
    }

    fn other(status: u16, message: impl Into<String>) -> Self {
        Refusal {
            status,
            reason: None,
            message: message.into(),
        }
    }

    fn store(e: StoreError) -> Self {
        let status = match e {
            StoreError::TooLarge { .. } => 413,
            StoreError::StoreFull { .. } | StoreError::NoSpace { .. } => 507,
            StoreError::Unknown(_) => 404,
            StoreError::ChunkIndex { .. } => 400,
            StoreError::Busy(_) => 409,
            StoreError::Io { .. } | StoreError::Format { .. } => 500,
        };
        Refusal::other(status, e.to_string())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            Some(r) => write!(f, "refused ({r}): {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// An admitted (verified, stored) manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Admitted {
    /// Manifest digest (hex).
    pub digest: String,
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Number of chunks.
    pub chunks: usize,
    /// Chunk size in bytes.
    pub chunk_size: u64,
    /// Indices of chunks still missing.
    pub missing: Vec<usize>,
    /// Of those, the chunks being received right now by another transfer
    /// (a download from a peer, or another push): a pusher need not send
    /// them, and waits for them instead.
    #[serde(default)]
    pub in_flight: Vec<usize>,
    /// True once the artifact is fully verified and served.
    pub complete: bool,
}

/// What receiving one chunk achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Verified and stored.
    Stored,
    /// Verified and stored, and it completed the artifact.
    Completed,
    /// Already verified before; the body was not read.
    AlreadyHad,
}

/// The newest version of a name learned here but not yet verified.
#[derive(Debug, Clone)]
struct Pending {
    version: semver::Version,
    digest: [u8; 32],
    since: Instant,
}

/// Handles on the artifact metrics (cheap clones of the registered ones).
#[derive(Clone)]
struct ArtMetrics {
    held: prometheus::IntGauge,
    expired: prometheus::IntCounterVec,
    replicated: prometheus::IntCounter,
    failures: prometheus::IntCounterVec,
    lag: prometheus::GaugeVec,
    abandoned: prometheus::IntCounterVec,
}

impl ArtMetrics {
    fn fail(&self, reason: &'static str) {
        self.failures.with_label_values(&[reason]).inc();
    }
}

impl Artifacts {
    /// Counts a request refused because the artifact's manifest expired
    /// (`api`: "app" or "peer").
    pub fn count_expired(&self, api: &'static str) {
        self.m.expired.with_label_values(&[api]).inc();
    }
}

/// The artifact service of one validator.
pub struct Artifacts {
    m: ArtMetrics,
    policy: TrustPolicy,
    /// Settings from `[artifacts]`.
    pub settings: ArtifactsConfig,
    /// The store.
    pub store: Mutex<Store>,
    pending: Mutex<BTreeMap<String, Pending>>,
    refused: Mutex<BTreeMap<[u8; 32], &'static str>>,
    /// Wakes the anti-entropy loop (a peer hinted at a new artifact).
    pub wake: tokio::sync::Notify,
    /// The store's directory (for the list of abandoned artifacts).
    root: std::path::PathBuf,
    /// Payload checks running while their chunks arrive.
    early: check::EarlyChecks,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The store's view of a verified manifest.
pub fn meta_of(v: &VerifiedArtifact) -> Meta {
    Meta {
        name: v.name().to_string(),
        version: v.version().clone(),
        payload_len: v.payload_len(),
        chunk_size: u64::from(v.chunk_size()),
        chunks: v.chunks().to_vec(),
        payload_digest: v.payload_digest(),
        expires_unix: v.expires(),
        digest: v.manifest_digest(),
    }
}

/// Verifies stored objects with the trust policy at start.
struct PolicyChecker<'a>(&'a TrustPolicy);

impl PolicyChecker<'_> {
    fn verified(&self, encoded: &[u8]) -> Result<VerifiedArtifact, (&'static str, String)> {
        SignedArtifact::decode(encoded)
            .and_then(|s| s.verify(self.0, now_unix()))
            .map_err(|e| (e.reason(), e.to_string()))
    }
}

impl PolicyChecker<'_> {
    /// The full check of a payload whose chunks were each verified on
    /// arrival (or, after a restart, by hashing their slots): for a
    /// format-1 manifest its length and SHA-256 on one thread while the
    /// tensors (metadata, weights, golden run) are checked on another; for
    /// format 2 the tensors only, since the verified chunks tile the
    /// payload and its digest is that of their list (D47). The tensor half
    /// checks the file's length.
    fn check_received(&self, encoded: &[u8], payload: &Path) -> Result<(), (&'static str, String)> {
        let v = self.verified(encoded)?;
        let open = || {
            std::fs::File::open(payload)
                .map(|f| std::io::BufReader::with_capacity(64 << 10, f))
                .map_err(|e| ("format", e.to_string()))
        };
        if v.body().digest_covered_by_chunks() {
            return vault::artifact::payload::check_payload_tensors(&v, open()?)
                .map_err(|e| (e.reason(), e.to_string()));
        }
        let (digest_reader, tensor_reader) = (open()?, open()?);
        let (digest, tensors) = std::thread::scope(|s| {
            let h = s.spawn(|| vault::artifact::payload::check_payload_digest(&v, digest_reader));
            let tensors = vault::artifact::payload::check_payload_tensors(&v, tensor_reader);
            let digest = h.join().unwrap_or_else(|_| {
                Err(vault::artifact::ArtifactError::Io(
                    "digest thread panicked".into(),
                ))
            });
            (digest, tensors)
        });
        digest.and(tensors).map_err(|e| (e.reason(), e.to_string()))
    }
}

impl Checker for PolicyChecker<'_> {
    fn load(&self, encoded: &[u8]) -> Result<Meta, (&'static str, String)> {
        self.verified(encoded).map(|v| meta_of(&v))
    }

    fn check_payload(&self, encoded: &[u8], payload: &Path) -> Result<(), (&'static str, String)> {
        let v = self.verified(encoded)?;
        let f = std::fs::File::open(payload).map_err(|e| ("format", e.to_string()))?;
        vault::artifact::check_payload(&v, std::io::BufReader::with_capacity(64 << 10, f))
            .map_err(|e| (e.reason(), e.to_string()))
    }
}

impl Artifacts {
    /// Opens the artifact service if `settings.policy` is set (else `None`):
    /// loads the trust policy and the store under `data_dir/artifacts`,
    /// re-verifying what is stored, and finishes objects a crash left fully
    /// received but not yet marked complete.
    pub fn open(
        data_dir: &Path,
        settings: &ArtifactsConfig,
        metrics: &Metrics,
    ) -> anyhow::Result<Option<Arc<Artifacts>>> {
        use anyhow::Context;
        let Some(policy_path) = &settings.policy else {
            return Ok(None);
        };
        let policy = TrustPolicy::load(policy_path)
            .with_context(|| format!("artifacts.policy {}", policy_path.display()))?;
        let limits = Limits {
            max_artifact_bytes: settings.max_artifact_bytes,
            max_store_bytes: settings.max_store_bytes,
        };
        let (store, skipped) =
            Store::open(&data_dir.join("artifacts"), limits, &PolicyChecker(&policy))?;
        let m = ArtMetrics {
            held: metrics.artifacts_held.clone(),
            expired: metrics.artifact_expired_requests.clone(),
            replicated: metrics.artifact_bytes_replicated.clone(),
            failures: metrics.artifact_verification_failures.clone(),
            lag: metrics.artifact_replication_lag.clone(),
            abandoned: metrics.artifacts_abandoned.clone(),
        };
        for s in &skipped {
            m.fail(s.reason);
        }
        let mut store = store;
        let mut refused = BTreeMap::new();
        match store::read_abandoned(store.root()) {
            Ok(list) => {
                for d in list {
                    // Listed, then a crash before its directory went.
                    if store.get(&d).is_some_and(|o| !o.complete) {
                        store.remove(&d)?;
                    }
                    refused.insert(d, ABANDONED);
                }
            }
            Err(e) => tracing::warn!("abandoned artifacts may be fetched again: {e}"),
        }
        let root = store.root().to_path_buf();
        let art = Arc::new(Artifacts {
            m,
            policy,
            settings: settings.clone(),
            store: Mutex::new(store),
            pending: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(refused),
            wake: tokio::sync::Notify::new(),
            root,
            early: check::EarlyChecks::new(settings.early_checks),
        });
        let unfinished: Vec<[u8; 32]> = art
            .lock()
            .objects()
            .filter(|o| !o.complete && o.missing().is_empty())
            .map(|o| o.meta.digest)
            .collect();
        for d in unfinished {
            if let Err(r) = art.finalize(&d) {
                tracing::warn!(digest = %hex::encode(d), "stored artifact refused: {r}");
            }
        }
        let partial = art.lock().partial();
        for d in partial {
            art.start_early(&d);
        }
        for o in art.lock().objects().filter(|o| !o.complete) {
            tracing::info!(
                name = %o.meta.name, version = %o.meta.version,
                verified = o.verified_count(), chunks = o.meta.chunks.len(),
                "resuming artifact: {} of {} chunks already verified ({} bytes)",
                o.verified_count(), o.meta.chunks.len(), o.verified_bytes()
            );
        }
        art.refresh_held();
        Ok(Some(art))
    }

    /// The store, locked (a poisoned lock is recovered: the store's state
    /// is on disk and every update to it is atomic).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if the manifest `digest` was refused before.
    pub fn was_refused(&self, digest: &[u8; 32]) -> bool {
        self.refused
            .lock()
            .map(|r| r.contains_key(digest))
            .unwrap_or(false)
    }

    /// Why the manifest `digest` was refused or abandoned here, if it was.
    pub fn refusal_reason(&self, digest: &[u8; 32]) -> Option<&'static str> {
        self.refused.lock().ok()?.get(digest).copied()
    }

    fn remember_refusal(&self, digest: [u8; 32], reason: &'static str) {
        if let Ok(mut r) = self.refused.lock() {
            if r.len() >= MAX_REFUSED {
                r.pop_first();
            }
            r.insert(digest, reason);
        }
    }

    /// Adds `digest` to the abandoned artifacts (`true`) or takes it off
    /// (`false`), and writes the list when it changed, so that a restart
    /// does not fetch an abandoned artifact back from a peer.
    fn set_abandoned(&self, digest: [u8; 32], abandoned: bool) {
        let Ok(mut r) = self.refused.lock() else {
            return;
        };
        let was = r.get(&digest) == Some(&ABANDONED);
        if was == abandoned {
            return;
        }
        if abandoned {
            if r.len() >= MAX_REFUSED {
                r.pop_first();
            }
            r.insert(digest, ABANDONED);
        } else {
            r.remove(&digest);
        }
        let list: Vec<[u8; 32]> = r
            .iter()
            .filter(|(_, why)| **why == ABANDONED)
            .map(|(d, _)| *d)
            .collect();
        // Written under the lock: two changes cannot land out of order.
        if let Err(e) = store::write_abandoned(&self.root, &list) {
            tracing::warn!(
                "cannot record the abandoned artifacts; a restart may fetch them again: {e}"
            );
        }
    }

    fn refresh_held(&self) {
        self.m.held.set(self.lock().complete().count() as i64);
    }

    /// Verifies a signed manifest (from a push, or from a peer when
    /// `expected` is the digest asked for) and records it in the store.
    /// Nothing is stored unless it verifies; failures are counted.
    pub fn admit(&self, encoded: &[u8], expected: Option<&[u8; 32]>) -> Result<Admitted, Refusal> {
        let refuse = |reason: &'static str, message: String, digest: Option<[u8; 32]>| {
            self.m.fail(reason);
            if let Some(d) = digest {
                self.remember_refusal(d, reason);
            }
            Refusal::verification(reason, message)
        };
        let signed = SignedArtifact::decode(encoded)
            .map_err(|e| refuse(e.reason(), e.to_string(), expected.copied()))?;
        let digest = signed.digest();
        if expected.is_none() {
            // A push is an explicit request: an artifact abandoned here
            // before may be received again.
            self.set_abandoned(digest, false);
        }
        if let Some(want) = expected {
            if !vault::artifact::manifest::ct_eq(want, &digest) {
                return Err(refuse(
                    "digest",
                    format!(
                        "manifest served for {} has digest {}",
                        hex::encode(want),
                        hex::encode(digest)
                    ),
                    Some(*want),
                ));
            }
        }
        let verified = signed
            .verify(&self.policy, now_unix())
            .map_err(|e| refuse(e.reason(), e.to_string(), Some(digest)))?;
        let meta = meta_of(&verified);
        let mut store = self.lock();
        if store.get(&digest).is_none() {
            // Rollback: compare with the newest version of the name held
            // or being received (partial objects are verified manifests).
            let newest = store
                .objects()
                .filter(|o| o.meta.name == meta.name)
                .max_by(|a, b| a.meta.version.cmp(&b.meta.version))
                .map(|o| (o.meta.version.clone(), o.meta.digest));
            check_not_rollback_held(&verified, newest.as_ref().map(|(v, d)| (v, d)))
                .map_err(|e| refuse(e.reason(), e.to_string(), Some(digest)))?;
            store.admit(meta.clone(), encoded).map_err(Refusal::store)?;
            // Under the store lock: no chunk is verified before the check
            // knows of it.
            self.start_early_in(&store, &digest, &verified);
            tracing::info!(name = %meta.name, version = %meta.version, digest = %hex::encode(digest), bytes = meta.payload_len, "artifact manifest verified and admitted");
            if let Ok(mut p) = self.pending.lock() {
                let newer = p
                    .get(&meta.name)
                    .is_none_or(|old| old.version < meta.version);
                if newer {
                    p.insert(
                        meta.name.clone(),
                        Pending {
                            version: meta.version.clone(),
                            digest,
                            since: Instant::now(),
                        },
                    );
                }
            }
        }
        let obj = store
            .get(&digest)
            .ok_or_else(|| Refusal::other(500, "artifact vanished from the store"))?;
        Ok(Admitted {
            digest: hex::encode(digest),
            name: meta.name,
            version: meta.version.to_string(),
            chunks: meta.chunks.len(),
            chunk_size: meta.chunk_size,
            missing: obj.missing(),
            in_flight: store.in_flight(&digest),
            complete: obj.complete,
        })
    }

    /// Receives chunk `index` of artifact `digest` from `body`, streaming it
    /// to disk while hashing; it is marked verified only if the hash and
    /// length match. Completing the last chunk runs the full payload check.
    /// `from_peer` counts the bytes as replicated.
    pub async fn receive_chunk<B>(
        self: &Arc<Self>,
        digest: [u8; 32],
        index: usize,
        body: B,
        from_peer: bool,
    ) -> Result<ChunkOutcome, Refusal>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let claim = match self.lock().claim(&digest, index) {
            Ok(ClaimResult::Claimed(c)) => c,
            Ok(ClaimResult::AlreadyVerified) => return Ok(ChunkOutcome::AlreadyHad),
            Err(e) => return Err(Refusal::store(e)),
        };
        // Releases the claim on every early return.
        struct Guard<'a>(&'a Artifacts, Option<store::Claim>);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                if let Some(c) = self.1.take() {
                    self.0.lock().release(&c);
                }
            }
        }
        let mut guard = Guard(self, Some(claim.clone()));
        let io =
            |e: std::io::Error| Refusal::other(500, format!("artifact store: chunk {index}: {e}"));
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&claim.payload)
                .map_err(io)?,
        );
        // Writes `buf` at `at` on a blocking thread; hands the buffer back.
        let write_at = |buf: Vec<u8>, at: u64| {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&buf, at).map(|()| buf)
            })
        };
        async fn settle(
            h: tokio::task::JoinHandle<std::io::Result<Vec<u8>>>,
        ) -> std::io::Result<Vec<u8>> {
            h.await.map_err(|e| std::io::Error::other(e.to_string()))?
        }
        let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut received = 0u64;
        let mut written = 0u64;
        // Bodies arrive in TLS-record-sized frames: write in larger pieces,
        // double-buffered (one write in flight while the next piece
        // arrives). Every exit path waits for the write in flight, so no
        // write of a failed attempt can land after a later one.
        let mut pending: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>> = None;
        let mut spare: Option<Vec<u8>> = None;
        let mut buf = Vec::with_capacity(WRITE_BUF.min(claim.len as usize));
        let mut body = body;
        let streamed: Result<(), Refusal> = async {
            use http_body_util::BodyExt;
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| Refusal::other(400, format!("chunk {index}: body: {e}")))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                if received > claim.len {
                    self.m.fail("chunk");
                    return Err(Refusal::verification(
                        "chunk",
                        format!("chunk {index} is longer than its {} bytes", claim.len),
                    ));
                }
                hasher.update(&data);
                buf.extend_from_slice(&data);
                if buf.len() >= WRITE_BUF {
                    if let Some(h) = pending.take() {
                        spare = Some(settle(h).await.map_err(io)?);
                    }
                    let next = spare
                        .take()
                        .map(|mut b| {
                            b.clear();
                            b
                        })
                        .unwrap_or_else(|| Vec::with_capacity(WRITE_BUF));
                    let full = std::mem::replace(&mut buf, next);
                    let n = full.len() as u64;
                    pending = Some(write_at(full, claim.offset + written));
                    written += n;
                }
            }
            Ok(())
        }
        .await;
        if let Some(h) = pending.take() {
            let done = settle(h).await.map_err(io);
            streamed.clone()?;
            done?;
        }
        streamed?;
        if !buf.is_empty() {
            settle(write_at(buf, claim.offset + written))
                .await
                .map_err(io)?;
        }
        let hash = hasher.finish();
        if received != claim.len || hash.as_ref() != claim.expected {
            self.m.fail("chunk");
            return Err(Refusal::verification(
                "chunk",
                format!("chunk {index} ({received} bytes) does not match its hash in the manifest"),
            ));
        }
        drop(file);
        let claim = guard.1.take().expect("claim held");
        // In memory (and a small hint file at most every 10 ms): no thread hop.
        let all = {
            let mut store = self.lock();
            let all = store.mark_verified(&claim).map_err(Refusal::store)?;
            // Under the store lock, like the check's start: the check
            // learns of every chunk before the last one finalizes it.
            self.early.verified(&digest, index);
            all
        };
        if from_peer {
            self.m.replicated.inc_by(received);
        }
        if !all {
            return Ok(ChunkOutcome::Stored);
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.finalize(&digest))
            .await
            .map_err(|e| Refusal::other(500, e.to_string()))??;
        Ok(ChunkOutcome::Completed)
    }

    /// Runs the full payload check on a fully received object and marks it
    /// complete; an object that fails is removed and its digest remembered.
    fn finalize(&self, digest: &[u8; 32]) -> Result<(), Refusal> {
        let (encoded_path, payload) = {
            let store = self.lock();
            let o = store
                .get(digest)
                .ok_or_else(|| Refusal::other(404, "unknown artifact"))?;
            (o.manifest_path(), o.payload_path())
        };
        let encoded = vault::fsio::read_limited(&encoded_path, store::MAX_MANIFEST_BYTES)
            .map_err(|e| Refusal::other(500, e.to_string()))?;
        // Chunks were written without an fsync each: make the payload
        // durable once, outside the store lock, before it is marked complete.
        let t = Instant::now();
        std::fs::File::open(&payload)
            .and_then(|f| f.sync_all())
            .map_err(|e| Refusal::other(500, format!("artifact store: fsync payload: {e}")))?;
        let fsync_ms = t.elapsed().as_secs_f64() * 1e3;
        let checker = PolicyChecker(&self.policy);
        let t = Instant::now();
        // The check that ran as the chunks arrived, if one did (the
        // manifest is verified again: policy and expiry as of now).
        let outcome = match self.early.finish(digest) {
            Some(early) => checker.verified(&encoded).and(early),
            None => checker.check_received(&encoded, &payload),
        };
        let check_ms = t.elapsed().as_secs_f64() * 1e3;
        if let Err((reason, message)) = outcome {
            self.m.fail(reason);
            self.remember_refusal(*digest, reason);
            let _ = self.lock().remove(digest);
            tracing::warn!(digest = %hex::encode(digest), reason, "artifact payload refused: {message}");
            return Err(Refusal::verification(reason, message));
        }
        let t = Instant::now();
        let mut store = self.lock();
        store.mark_complete(digest).map_err(Refusal::store)?;
        let complete_ms = t.elapsed().as_secs_f64() * 1e3;
        let o = store
            .get(digest)
            .ok_or_else(|| Refusal::other(404, "unknown artifact"))?;
        let (name, version) = (o.meta.name.clone(), o.meta.version.clone());
        drop(store);
        let lag = self.pending.lock().ok().and_then(|mut p| {
            let done = p.get(&name).is_some_and(|q| q.version <= version);
            done.then(|| p.remove(&name)).flatten()
        });
        // Always logged (with the replication lag when one was pending),
        // so that every completion's breakdown is visible.
        let seconds = lag.as_ref().map(|p| p.since.elapsed().as_secs_f64());
        tracing::info!(name = %name, version = %version, digest = %hex::encode(digest), seconds = ?seconds, fsync_ms, check_ms, complete_ms, "artifact verified in full and served");
        self.m.lag.with_label_values(&[&name]).set(0.0);
        self.refresh_held();
        Ok(())
    }

    /// Starts the payload check of partial object `digest` (found at
    /// start) as its chunks arrive (see [`check`]), verifying its stored
    /// manifest first.
    fn start_early(&self, digest: &[u8; 32]) {
        let Some(path) = self.lock().get(digest).map(|o| o.manifest_path()) else {
            return;
        };
        let Ok(encoded) = vault::fsio::read_limited(&path, store::MAX_MANIFEST_BYTES) else {
            return;
        };
        let Ok(v) = PolicyChecker(&self.policy).verified(&encoded) else {
            return;
        };
        self.start_early_in(&self.lock(), digest, &v);
    }

    /// [`Artifacts::start_early`] with the store locked by the caller, so
    /// that no chunk is verified before the check knows of it.
    fn start_early_in(&self, store: &Store, digest: &[u8; 32], v: &VerifiedArtifact) {
        if let Some(o) = store.get(digest).filter(|o| !o.complete) {
            self.early.start(v, &o.payload_path(), o.verified_bits());
        }
    }

    /// Sets the replication lag of every name with a newer version learned
    /// but not yet verified here.
    pub fn refresh_lag(&self) {
        if let Ok(p) = self.pending.lock() {
            for (name, q) in p.iter() {
                self.m
                    .lag
                    .with_label_values(&[name])
                    .set(q.since.elapsed().as_secs_f64());
            }
        }
    }
}

impl Artifacts {
    /// Abandons partial artifact `digest`: deletes it (releasing its
    /// reserved space), forgets its pending replication lag, and remembers
    /// its digest so anti-entropy does not fetch it again from a peer (a
    /// push of the same manifest still admits it again). `reason` is the
    /// metric label: `stalled` or `publisher`. Complete artifacts are kept.
    pub fn abandon(&self, digest: &[u8; 32], reason: &'static str) -> Result<bool, Refusal> {
        let mut store = self.lock();
        let Some(o) = store.get(digest) else {
            return Ok(false);
        };
        if o.complete {
            return Ok(false);
        }
        let (name, version) = (o.meta.name.clone(), o.meta.version.clone());
        let (verified, chunks) = (o.verified_count(), o.meta.chunks.len());
        // Recorded first: a crash before the removal leaves an object
        // that the next start removes, not one fetched again.
        self.set_abandoned(*digest, true);
        store.remove(digest).map_err(Refusal::store)?;
        drop(store);
        self.early.cancel(digest);
        let forgot = self.pending.lock().ok().is_some_and(|mut p| {
            let ours = p.get(&name).is_some_and(|q| q.digest == *digest);
            ours && p.remove(&name).is_some()
        });
        if forgot {
            self.m.lag.with_label_values(&[&name]).set(0.0);
        }
        self.m.abandoned.with_label_values(&[reason]).inc();
        tracing::warn!(name = %name, version = %version, digest = %hex::encode(digest), reason, "partial artifact abandoned ({verified} of {chunks} chunks verified); its space is released");
        Ok(true)
    }

    /// Abandons every partial artifact that gained no verified chunk for
    /// `abandon_after_secs` (0: never).
    pub fn abandon_stalled(&self) {
        let after = self.settings.abandon_after_secs;
        if after == 0 {
            return;
        }
        let stalled = self.lock().stalled(std::time::Duration::from_secs(after));
        for d in stalled {
            if let Err(r) = self.abandon(&d, "stalled") {
                tracing::warn!(digest = %hex::encode(d), "cannot abandon stalled artifact: {r}");
            }
        }
    }

    /// Abandons partial artifact `name` `version` on the strength of
    /// `statement`, an abandon statement signed by the publisher identity
    /// that signed the artifact's manifest (the application port is
    /// unauthenticated). Returns the digests abandoned.
    pub fn abandon_signed(
        &self,
        name: &str,
        version: &str,
        statement: &[u8],
    ) -> Result<Vec<[u8; 32]>, Refusal> {
        use vault::artifact::abandon::AbandonStatement;
        let refuse = |e: vault::artifact::ArtifactError| {
            self.m.fail(e.reason());
            Refusal::verification(e.reason(), format!("abandon statement refused: {e}"))
        };
        let st = AbandonStatement::decode(statement).map_err(refuse)?;
        if st.name() != name || st.version().to_string() != version {
            return Err(Refusal::other(
                400,
                format!(
                    "the statement abandons {} {}, not {name} {version}",
                    st.name(),
                    st.version()
                ),
            ));
        }
        let matching: Vec<(bool, [u8; 32], std::path::PathBuf)> = self
            .lock()
            .objects()
            .filter(|o| o.meta.name == name && o.meta.version.to_string() == version)
            .map(|o| (o.complete, o.meta.digest, o.manifest_path()))
            .collect();
        if matching.is_empty() {
            return Err(Refusal::other(
                404,
                format!("no artifact {name} {version} here"),
            ));
        }
        let partial: Vec<_> = matching.iter().filter(|(c, _, _)| !c).collect();
        if partial.is_empty() {
            return Err(Refusal::other(
                409,
                format!("{name} {version} is complete here: only partial artifacts are abandoned"),
            ));
        }
        let now = now_unix();
        let mut done = Vec::new();
        for (_, digest, path) in partial {
            let encoded = vault::fsio::read_limited(path, store::MAX_MANIFEST_BYTES)
                .map_err(|e| Refusal::other(500, e.to_string()))?;
            let signed = SignedArtifact::decode(&encoded)
                .map_err(|e| Refusal::other(500, format!("stored manifest: {e}")))?;
            st.verify(signed.publisher(), now).map_err(refuse)?;
            if self.abandon(digest, "publisher")? {
                done.push(*digest);
            }
        }
        Ok(done)
    }

    /// Counts one verification failure under `reason`.
    pub fn count_failure(&self, reason: &'static str) {
        self.m.fail(reason);
    }

    /// Counts verified bytes received from peers.
    pub fn count_replicated(&self, bytes: u64) {
        self.m.replicated.inc_by(bytes);
    }
}
