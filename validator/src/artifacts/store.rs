//! The artifact store: content-addressed objects on disk, crash-safe.
//!
//! ```text
//! <data_dir>/artifacts/
//!   objects/<manifest-digest-hex>/
//!     artifact.pqva   the signed manifest, exactly as received
//!     payload         preallocated to the payload length; chunk i at i·chunk_size
//!     verified        bitmap of chunks verified on arrival (PQAB): a progress
//!                     hint for operators and tests, written lazily, never trusted
//!     complete        present only once every chunk and the whole payload
//!                     (`check_payload`) verified and the payload was fsynced:
//!                     the only objects served to the application
//!   staging/          objects being created; emptied at start
//!   quarantine/       objects that failed their checks at start (not expired)
//!   abandoned         digests of abandoned partial artifacts, one per line:
//!                     not fetched back from peers after a restart
//! ```
//!
//! An object directory appears (by rename) only once its manifest and fully
//! preallocated payload are on disk, so a full disk is reported when an
//! artifact is admitted, never half-way through it, and nothing already
//! stored is touched. Chunks are written without an fsync each; which
//! chunks are verified is known in memory. At start every chunk slot of a
//! partial payload is hashed again against the manifest, and the slots that
//! match are verified: after a kill the page cache still holds every chunk
//! written, so none is fetched twice; after a power loss an unflushed chunk
//! fails its hash and is fetched again. The payload (and its directory) is
//! fsynced once, before the `complete` marker is written. The store never
//! reads a whole payload into memory: chunks are written and hashed as they
//! stream in.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use thiserror::Error;
use vault::fsio::{self, Mode};

use crate::crash_point;
#[cfg(feature = "failpoints")]
use crate::failpoint as fp;

/// Largest signed manifest accepted.
pub const MAX_MANIFEST_BYTES: u64 = vault::artifact::MAX_MANIFEST_LEN as u64;

const MANIFEST: &str = "artifact.pqva";
const PAYLOAD: &str = "payload";
const BITMAP: &str = "verified";
const COMPLETE: &str = "complete";
/// Least time between two writes of the `verified` hint of one object.
const HINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
const BITMAP_MAGIC: &[u8; 4] = b"PQAB";
const BITMAP_VERSION: u8 = 1;
const ABANDONED: &str = "abandoned";
/// First line of the `abandoned` list (format and version).
const ABANDONED_HEADER: &str = "pqvault abandoned artifacts v1";

/// What the store needs to know of a verified manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: semver::Version,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Chunk size in bytes (the last chunk may be shorter).
    pub chunk_size: u64,
    /// SHA-256 of every chunk, in order.
    pub chunks: Vec<[u8; 32]>,
    /// The manifest's payload digest (the ETag): SHA-256 of the payload
    /// at format 1, of the chunk list at format 2.
    pub payload_digest: [u8; 32],
    /// Expiry of the signed manifest (Unix seconds), if any: checked again
    /// at every request, not only when the manifest was admitted.
    pub expires_unix: Option<u64>,
    /// Digest of the signed manifest: the object's address.
    pub digest: [u8; 32],
}

impl Meta {
    /// Offset and length of chunk `i`.
    pub fn chunk_range(&self, i: usize) -> Option<(u64, u64)> {
        if i >= self.chunks.len() {
            return None;
        }
        let off = (i as u64).checked_mul(self.chunk_size)?;
        let len = self.chunk_size.min(self.payload_len.checked_sub(off)?);
        Some((off, len))
    }
}

/// Why a store operation failed; every variant names what is wrong.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file-system operation failed.
    #[error("artifact store: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The disk is full: the artifact was not admitted, nothing stored was lost.
    #[error("artifact store: no space left on the device for {need} more bytes at {}; nothing stored was changed", path.display())]
    NoSpace {
        /// Where.
        path: PathBuf,
        /// Bytes needed.
        need: u64,
    },
    /// The payload is larger than `max_artifact_bytes`.
    #[error("artifact of {size} bytes exceeds max_artifact_bytes ({max})")]
    TooLarge {
        /// Payload length.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// Admitting the artifact would exceed `max_store_bytes`.
    #[error(
        "artifact of {size} bytes does not fit: store holds {used} of max_store_bytes ({max})"
    )]
    StoreFull {
        /// Payload length.
        size: u64,
        /// Bytes already held.
        used: u64,
        /// Limit.
        max: u64,
    },
    /// No object with that manifest digest.
    #[error("no artifact with manifest digest {0}")]
    Unknown(String),
    /// The chunk index is out of range.
    #[error("chunk {index} out of range: the artifact has {count} chunks")]
    ChunkIndex {
        /// Index asked for.
        index: usize,
        /// Chunks in the artifact.
        count: usize,
    },
    /// Another transfer is writing that chunk right now.
    #[error("chunk {0} is being received by another transfer")]
    Busy(usize),
    /// A file of the store is not in its documented format.
    #[error("artifact store: {} is not a valid {what}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| {
        if source.raw_os_error() == Some(28) {
            // ENOSPC
            StoreError::NoSpace {
                path: path.to_path_buf(),
                need: 0,
            }
        } else {
            StoreError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn fs_err(e: fsio::FsError) -> StoreError {
    match e {
        fsio::FsError::Io { op, path, source } => io_err(op, &path)(source),
        other => StoreError::Io {
            op: "write",
            path: PathBuf::new(),
            source: io::Error::other(other.to_string()),
        },
    }
}

/// SHA-256 of `bytes` (the chunk hash).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Size limits of the store.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest payload accepted.
    pub max_artifact_bytes: u64,
    /// Largest total of all payloads (complete and in progress).
    pub max_store_bytes: u64,
}

/// One object: a verified manifest and the state of its payload.
#[derive(Debug, Clone)]
pub struct Object {
    /// The manifest's contents.
    pub meta: Meta,
    /// Its directory.
    pub dir: PathBuf,
    verified: Vec<bool>,
    /// Every chunk and the whole payload verified: may be served.
    pub complete: bool,
    hint_written: Option<Instant>,
    /// When it was admitted (or loaded at start), or last gained a
    /// verified chunk.
    progress: Instant,
}

impl Object {
    /// Path of the payload file.
    /// Whether the signed manifest has expired at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.meta.expires_unix.is_some_and(|e| now >= e)
    }

    /// Path of the payload file.
    pub fn payload_path(&self) -> PathBuf {
        self.dir.join(PAYLOAD)
    }
    /// Path of the signed manifest.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }
    /// Number of chunks verified so far.
    pub fn verified_count(&self) -> usize {
        self.verified.iter().filter(|v| **v).count()
    }
    /// Payload bytes in verified chunks.
    pub fn verified_bytes(&self) -> u64 {
        (0..self.verified.len())
            .filter(|&i| self.verified[i])
            .filter_map(|i| self.meta.chunk_range(i).map(|(_, len)| len))
            .sum()
    }
    /// Indices of chunks not yet verified.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.verified.len())
            .filter(|&i| !self.verified[i])
            .collect()
    }
    /// Which chunks are verified, by index.
    pub fn verified_bits(&self) -> Vec<bool> {
        self.verified.clone()
    }
    /// True if chunk `i` is verified.
    pub fn is_verified(&self, i: usize) -> bool {
        self.verified.get(i).copied().unwrap_or(false)
    }
    /// Writes the `verified` hint file (not fsynced: it is never trusted)
    /// unless one was written less than 10 ms ago and `force` is false.
    fn write_hint(&mut self, force: bool) {
        if !force
            && self
                .hint_written
                .is_some_and(|t| t.elapsed() < HINT_INTERVAL)
        {
            return;
        }
        self.hint_written = Some(Instant::now());
        let tmp = self.dir.join(".verified.tmp");
        let r = fs::write(&tmp, bitmap_encode(&self.verified))
            .and_then(|()| fs::rename(&tmp, self.dir.join(BITMAP)));
        if let Err(e) = r {
            tracing::debug!(dir = %self.dir.display(), "cannot write the verified hint: {e}");
        }
    }
    /// The verified chunks as a `PQAB` bitmap (what peers are told).
    pub fn bitmap(&self) -> Vec<u8> {
        bitmap_encode(&self.verified)
    }
}

/// A chunk reserved for one writer: where to write and what it must hash to.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Manifest digest of the artifact.
    pub digest: [u8; 32],
    /// Chunk index.
    pub index: usize,
    /// Offset in the payload file.
    pub offset: u64,
    /// Exact length of the chunk.
    pub len: u64,
    /// Its SHA-256.
    pub expected: [u8; 32],
    /// The payload file.
    pub payload: PathBuf,
}

/// Outcome of [`Store::claim`].
#[derive(Debug)]
pub enum ClaimResult {
    /// The caller must write and verify the chunk, then release it.
    Claimed(Claim),
    /// Already verified: nothing to do.
    AlreadyVerified,
}

/// An object found on disk at start that could not be loaded as it was:
/// deleted if it expired (it can never verify again), else moved to
/// `quarantine/` for the operator. Either way its digest can be admitted
/// again.
#[derive(Debug)]
pub struct Skipped {
    /// Where it was.
    pub dir: PathBuf,
    /// Where it was moved (`None`: deleted).
    pub quarantined: Option<PathBuf>,
    /// Failure reason (`ArtifactError::reason` vocabulary, or `format`).
    pub reason: &'static str,
    /// What was wrong.
    pub message: String,
}

/// Checks run on stored objects at start.
pub trait Checker {
    /// Decodes and verifies a stored signed manifest.
    fn load(&self, encoded: &[u8]) -> Result<Meta, (&'static str, String)>;
    /// Verifies a complete payload in full (bounded memory).
    fn check_payload(&self, encoded: &[u8], payload: &Path) -> Result<(), (&'static str, String)>;
}

/// The store: objects by manifest digest.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    limits: Limits,
    objects: BTreeMap<[u8; 32], Object>,
    claims: HashSet<([u8; 32], usize)>,
}

/// Encodes a `verified` bitmap (format in docs/artifact-carriage.md).
pub fn bitmap_encode(bits: &[bool]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + bits.len().div_ceil(8));
    out.extend_from_slice(BITMAP_MAGIC);
    out.push(BITMAP_VERSION);
    out.extend_from_slice(&(bits.len() as u32).to_le_bytes());
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        if *b {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&bytes);
    out
}

/// Decodes a `verified` bitmap of `count` chunks (format in docs/artifacts.md).
pub fn bitmap_decode(bytes: &[u8], count: usize) -> Result<Vec<bool>, String> {
    if bytes.len() < 9 || &bytes[..4] != BITMAP_MAGIC {
        return Err("not a PQAB bitmap".into());
    }
    if bytes[4] != BITMAP_VERSION {
        return Err(format!("bitmap version {} unsupported", bytes[4]));
    }
    let n = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    if n != count || bytes.len() != 9 + count.div_ceil(8) {
        return Err(format!("bitmap is for {n} chunks, artifact has {count}"));
    }
    Ok((0..count)
        .map(|i| bytes[9 + i / 8] & (1 << (i % 8)) != 0)
        .collect())
}

/// Reads the list of abandoned manifest digests under the store `root`
/// (empty if there is none). Format (docs/artifact-carriage.md): the line
/// `pqvault abandoned artifacts v1`, then one lower-case hex digest per
/// line.
pub fn read_abandoned(root: &Path) -> Result<Vec<[u8; 32]>, StoreError> {
    let path = root.join(ABANDONED);
    let bytes = match fsio::read_limited(&path, 1 << 20) {
        Ok(b) => b,
        Err(fsio::FsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(fs_err(e)),
    };
    let bad = |message: String| StoreError::Format {
        path: path.clone(),
        what: "list of abandoned artifacts",
        message,
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(ABANDONED_HEADER) => {}
        Some(other) if other.starts_with("pqvault abandoned artifacts ") => {
            return Err(bad(format!("unsupported version {other:?}")))
        }
        _ => return Err(bad(format!("first line is not {ABANDONED_HEADER:?}"))),
    }
    lines
        .enumerate()
        .map(|(n, l)| {
            hex::decode(l)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| bad(format!("line {} is not a 64-digit hex digest", n + 2)))
        })
        .collect()
}

/// Replaces the list of abandoned manifest digests under `root`,
/// atomically and durably (format in [`read_abandoned`]).
pub fn write_abandoned(root: &Path, digests: &[[u8; 32]]) -> Result<(), StoreError> {
    let mut text = format!("{ABANDONED_HEADER}\n");
    for d in digests {
        text.push_str(&hex::encode(d));
        text.push('\n');
    }
    fsio::write_atomic(&root.join(ABANDONED), text.as_bytes(), Mode::Public, true).map_err(fs_err)
}

/// Reserves `len` bytes for `f` (ENOSPC now rather than half-way through).
fn preallocate(f: &File, path: &Path, len: u64) -> Result<(), StoreError> {
    if len == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSPC || e == rustix::io::Errno::FBIG => {
            Err(StoreError::NoSpace {
                path: path.to_path_buf(),
                need: len,
            })
        }
        // File systems without fallocate: a sparse file of the right length.
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            f.set_len(len).map_err(io_err("size", path))
        }
        Err(e) => Err(io_err("preallocate", path)(e.into())),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

impl Store {
    /// Opens (creating) the store under `root`, loading every object:
    /// manifests are verified again, verified chunks of partial objects are
    /// re-hashed, complete payloads are checked in full. An object that
    /// fails is reported in the returned list and not served: its chunks
    /// are marked unverified so they are fetched again.
    pub fn open(
        root: &Path,
        limits: Limits,
        checker: &dyn Checker,
    ) -> Result<(Store, Vec<Skipped>), StoreError> {
        let objects_dir = root.join("objects");
        let staging = root.join("staging");
        fs::create_dir_all(&objects_dir).map_err(io_err("create", &objects_dir))?;
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io_err("clear", &staging))?;
        }
        fs::create_dir_all(&staging).map_err(io_err("create", &staging))?;
        let mut store = Store {
            root: root.to_path_buf(),
            limits,
            objects: BTreeMap::new(),
            claims: HashSet::new(),
        };
        let mut skipped = Vec::new();
        let entries = fs::read_dir(&objects_dir).map_err(io_err("list", &objects_dir))?;
        for entry in entries {
            let dir = entry.map_err(io_err("list", &objects_dir))?.path();
            match store.load_object(&dir, checker) {
                Ok(obj) => {
                    store.objects.insert(obj.meta.digest, obj);
                }
                Err((reason, message)) => {
                    let quarantined = store.set_aside(&dir, reason);
                    match &quarantined {
                        Some(q) => {
                            tracing::warn!(dir = %dir.display(), reason, quarantine = %q.display(), "stored artifact not loaded, quarantined: {message}")
                        }
                        None => {
                            tracing::warn!(dir = %dir.display(), reason, "stored artifact not loaded, deleted: {message}")
                        }
                    }
                    skipped.push(Skipped {
                        dir,
                        quarantined,
                        reason,
                        message,
                    });
                }
            }
        }
        Ok((store, skipped))
    }

    fn load_object(
        &self,
        dir: &Path,
        checker: &dyn Checker,
    ) -> Result<Object, (&'static str, String)> {
        let fmt = |m: String| ("format", m);
        let encoded = fsio::read_limited(&dir.join(MANIFEST), MAX_MANIFEST_BYTES)
            .map_err(|e| fmt(e.to_string()))?;
        let meta = checker.load(&encoded)?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref() != Some(hex::encode(meta.digest).as_str()) {
            return Err(("digest", "directory name is not the manifest digest".into()));
        }
        let payload = dir.join(PAYLOAD);
        let len = fs::metadata(&payload)
            .map_err(|e| fmt(format!("payload: {e}")))?
            .len();
        if len != meta.payload_len {
            return Err(fmt(format!(
                "payload file is {len} bytes, manifest says {}",
                meta.payload_len
            )));
        }
        let count = meta.chunks.len();
        let mut obj = Object {
            meta,
            dir: dir.to_path_buf(),
            verified: vec![false; count],
            complete: false,
            hint_written: None,
            progress: Instant::now(),
        };
        if dir.join(COMPLETE).exists() {
            match checker.check_payload(&encoded, &payload) {
                Ok(()) => {
                    obj.complete = true;
                    obj.verified = vec![true; count];
                    return Ok(obj);
                }
                Err((reason, m)) => {
                    tracing::warn!(dir = %dir.display(), reason, "stored payload failed its check ({m}); fetching the bad chunks again");
                    let _ = fs::remove_file(dir.join(COMPLETE));
                }
            }
        }
        // Which chunks are on disk: hash every slot against the manifest
        // (local reads; the `verified` file is only a hint).
        let f = File::open(&payload).map_err(|e| fmt(e.to_string()))?;
        let mut buf = Vec::new();
        for i in 0..count {
            let (off, len) = obj.meta.chunk_range(i).unwrap_or((0, 0));
            buf.resize(len as usize, 0);
            obj.verified[i] =
                f.read_exact_at(&mut buf, off).is_ok() && sha256(&buf) == obj.meta.chunks[i];
        }
        obj.write_hint(true);
        Ok(obj)
    }

    /// Moves an object that failed its checks at start out of `objects/`:
    /// deleted if it expired, else into `quarantine/` (replacing an older
    /// quarantined copy of the same digest). Returns where it went.
    fn set_aside(&self, dir: &Path, reason: &str) -> Option<PathBuf> {
        let name = dir.file_name()?.to_string_lossy().into_owned();
        if reason == "expired" {
            if let Err(e) = fs::remove_dir_all(dir) {
                tracing::warn!(dir = %dir.display(), "cannot delete expired artifact: {e}");
            }
            return None;
        }
        let q = self.root.join("quarantine");
        let dest = q.join(&name);
        let moved = fs::create_dir_all(&q)
            .and_then(|()| match fs::remove_dir_all(&dest) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .and_then(|()| fs::rename(dir, &dest));
        match moved {
            Ok(()) => Some(dest),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot quarantine artifact, deleting it: {e}");
                let _ = fs::remove_dir_all(dir);
                None
            }
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes of payload held or reserved (complete and partial objects).
    pub fn used_bytes(&self) -> u64 {
        self.objects.values().map(|o| o.meta.payload_len).sum()
    }

    /// The object with manifest digest `digest`.
    pub fn get(&self, digest: &[u8; 32]) -> Option<&Object> {
        self.objects.get(digest)
    }

    /// Every object (complete or not).
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// Manifest digests of the partial objects (admitted, not complete).
    pub fn partial(&self) -> Vec<[u8; 32]> {
        self.objects
            .values()
            .filter(|o| !o.complete)
            .map(|o| o.meta.digest)
            .collect()
    }

    /// Complete objects: the only ones served to the application.
    pub fn complete(&self) -> impl Iterator<Item = &Object> {
        self.objects.values().filter(|o| o.complete)
    }

    /// The newest complete version of `name`.
    pub fn newest(&self, name: &str) -> Option<&Object> {
        self.complete()
            .filter(|o| o.meta.name == name)
            .max_by(|a, b| a.meta.version.cmp(&b.meta.version))
    }

    /// The complete object of `name` at `version` (its textual form).
    pub fn find(&self, name: &str, version: &str) -> Option<&Object> {
        self.complete()
            .find(|o| o.meta.name == name && o.meta.version.to_string() == version)
    }

    /// Records a new object for a verified manifest, preallocating its
    /// payload. Refuses it (changing nothing) if it is too large for the
    /// limits or the disk. Returns false if it was already known.
    pub fn admit(&mut self, meta: Meta, encoded: &[u8]) -> Result<bool, StoreError> {
        if self.objects.contains_key(&meta.digest) {
            return Ok(false);
        }
        if meta.payload_len > self.limits.max_artifact_bytes {
            return Err(StoreError::TooLarge {
                size: meta.payload_len,
                max: self.limits.max_artifact_bytes,
            });
        }
        let used = self.used_bytes();
        if used.saturating_add(meta.payload_len) > self.limits.max_store_bytes {
            return Err(StoreError::StoreFull {
                size: meta.payload_len,
                used,
                max: self.limits.max_store_bytes,
            });
        }
        let hexd = hex::encode(meta.digest);
        let stage = self.root.join("staging").join(&hexd);
        let result = (|| {
            if stage.exists() {
                fs::remove_dir_all(&stage).map_err(io_err("clear", &stage))?;
            }
            fs::create_dir_all(&stage).map_err(io_err("create", &stage))?;
            fsio::write_atomic(&stage.join(MANIFEST), encoded, Mode::Public, false)
                .map_err(fs_err)?;
            let payload = stage.join(PAYLOAD);
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&payload)
                .map_err(io_err("create", &payload))?;
            preallocate(&f, &payload, meta.payload_len)?;
            f.set_len(meta.payload_len)
                .map_err(io_err("size", &payload))?;
            f.sync_all().map_err(io_err("fsync", &payload))?;
            sync_dir(&stage)?;
            crash_point!(fp::ARTIFACT_ADMIT_STAGED);
            let dest = self.root.join("objects").join(&hexd);
            fs::rename(&stage, &dest).map_err(io_err("move into place", &dest))?;
            sync_dir(&self.root.join("objects"))?;
            crash_point!(fp::ARTIFACT_ADMIT_MOVED);
            Ok(dest)
        })();
        match result {
            Ok(dir) => {
                let count = meta.chunks.len();
                self.objects.insert(
                    meta.digest,
                    Object {
                        meta,
                        dir,
                        verified: vec![false; count],
                        complete: false,
                        hint_written: None,
                        progress: Instant::now(),
                    },
                );
                Ok(true)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&stage);
                Err(match e {
                    StoreError::NoSpace { path, .. } => StoreError::NoSpace {
                        path,
                        need: meta.payload_len,
                    },
                    other => other,
                })
            }
        }
    }

    /// Reserves chunk `index` of `digest` for one writer.
    pub fn claim(&mut self, digest: &[u8; 32], index: usize) -> Result<ClaimResult, StoreError> {
        let obj = self
            .objects
            .get(digest)
            .ok_or_else(|| StoreError::Unknown(hex::encode(digest)))?;
        let count = obj.meta.chunks.len();
        let (offset, len) = obj
            .meta
            .chunk_range(index)
            .ok_or(StoreError::ChunkIndex { index, count })?;
        if obj.is_verified(index) {
            return Ok(ClaimResult::AlreadyVerified);
        }
        if !self.claims.insert((*digest, index)) {
            return Err(StoreError::Busy(index));
        }
        Ok(ClaimResult::Claimed(Claim {
            digest: *digest,
            index,
            offset,
            len,
            expected: obj.meta.chunks[index],
            payload: obj.payload_path(),
        }))
    }

    /// Chunks of `digest` being received right now (claimed by a push or a
    /// download, not yet verified).
    pub fn in_flight(&self, digest: &[u8; 32]) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .claims
            .iter()
            .filter(|(d, _)| d == digest)
            .map(|(_, i)| *i)
            .collect();
        v.sort_unstable();
        v
    }

    /// Partial objects with chunks missing and none in flight that gained
    /// no verified chunk for `after` (since admission or start, if none).
    pub fn stalled(&self, after: std::time::Duration) -> Vec<[u8; 32]> {
        self.objects
            .values()
            .filter(|o| !o.complete && o.verified.iter().any(|v| !*v))
            .filter(|o| o.progress.elapsed() >= after)
            .filter(|o| !self.claims.iter().any(|(d, _)| *d == o.meta.digest))
            .map(|o| o.meta.digest)
            .collect()
    }

    /// Releases a claim without marking the chunk (it failed).
    pub fn release(&mut self, claim: &Claim) {
        self.claims.remove(&(claim.digest, claim.index));
    }

    /// Marks a claimed chunk verified (its bytes must already be written;
    /// they are fsynced with the whole payload in [`Store::mark_complete`]).
    /// Returns true when every chunk of the artifact is verified.
    pub fn mark_verified(&mut self, claim: &Claim) -> Result<bool, StoreError> {
        self.claims.remove(&(claim.digest, claim.index));
        let obj = self
            .objects
            .get_mut(&claim.digest)
            .ok_or_else(|| StoreError::Unknown(hex::encode(claim.digest)))?;
        if let Some(v) = obj.verified.get_mut(claim.index) {
            *v = true;
        }
        obj.progress = Instant::now();
        let all = obj.verified.iter().all(|v| *v);
        obj.write_hint(all);
        Ok(all)
    }

    /// Marks a fully verified object complete (servable), durably.
    pub fn mark_complete(&mut self, digest: &[u8; 32]) -> Result<(), StoreError> {
        let obj = self
            .objects
            .get_mut(digest)
            .ok_or_else(|| StoreError::Unknown(hex::encode(digest)))?;
        let payload = obj.payload_path();
        File::open(&payload)
            .and_then(|f| f.sync_all())
            .map_err(io_err("fsync", &payload))?;
        crash_point!(fp::ARTIFACT_COMPLETE_SYNCED);
        let marker = format!("{}\n", hex::encode(obj.meta.payload_digest));
        fsio::write_atomic(
            &obj.dir.join(COMPLETE),
            marker.as_bytes(),
            Mode::Public,
            true,
        )
        .map_err(fs_err)?;
        crash_point!(fp::ARTIFACT_COMPLETE_MARKED);
        obj.complete = true;
        Ok(())
    }

    /// Deletes an object that can never verify (its signed manifest names a
    /// payload that fails the full check).
    pub fn remove(&mut self, digest: &[u8; 32]) -> Result<(), StoreError> {
        if let Some(obj) = self.objects.remove(digest) {
            let trash = self
                .root
                .join("staging")
                .join(format!("removed-{}", hex::encode(digest)));
            fs::rename(&obj.dir, &trash).map_err(io_err("move out", &obj.dir))?;
            let _ = fs::remove_dir_all(&trash);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test manifests: `name|version|chunk_size|` then the payload itself
    /// (the test checker derives chunk hashes from it). With `true`, names
    /// starting with `exp` are expired and `pol` are outside the policy.
    struct TestChecker(bool);

    fn meta_for(name: &str, version: &str, chunk: u64, payload: &[u8]) -> (Meta, Vec<u8>) {
        let encoded = [format!("{name}|{version}|{chunk}|").as_bytes(), payload].concat();
        (TestChecker(false).load(&encoded).unwrap(), encoded)
    }

    impl Checker for TestChecker {
        fn load(&self, encoded: &[u8]) -> Result<Meta, (&'static str, String)> {
            let mut parts = encoded.splitn(4, |b| *b == b'|');
            let name = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
            let version = std::str::from_utf8(parts.next().unwrap()).unwrap();
            let chunk: u64 = std::str::from_utf8(parts.next().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            let payload = parts.next().ok_or(("format", "no payload".to_string()))?;
            if self.0 && name.starts_with("exp") {
                return Err(("expired", "expired".into()));
            }
            if self.0 && name.starts_with("pol") {
                return Err(("policy", "not delegated".into()));
            }
            Ok(Meta {
                name,
                version: version.parse().unwrap(),
                payload_len: payload.len() as u64,
                chunk_size: chunk,
                chunks: payload.chunks(chunk as usize).map(sha256).collect(),
                payload_digest: sha256(payload),
                expires_unix: None,
                digest: sha256(encoded),
            })
        }
        fn check_payload(&self, encoded: &[u8], p: &Path) -> Result<(), (&'static str, String)> {
            let meta = self.load(encoded)?;
            let bytes = fs::read(p).unwrap();
            (sha256(&bytes) == meta.payload_digest)
                .then_some(())
                .ok_or(("digest", "payload digest mismatch".into()))
        }
    }

    fn limits() -> Limits {
        Limits {
            max_artifact_bytes: 1 << 20,
            max_store_bytes: 4 << 20,
        }
    }

    fn write_chunk(store: &mut Store, m: &Meta, payload: &[u8], i: usize) -> bool {
        let ClaimResult::Claimed(c) = store.claim(&m.digest, i).unwrap() else {
            panic!("already verified");
        };
        let f = OpenOptions::new().write(true).open(&c.payload).unwrap();
        f.write_all_at(
            &payload[c.offset as usize..(c.offset + c.len) as usize],
            c.offset,
        )
        .unwrap();
        assert_eq!(
            sha256(&payload[c.offset as usize..(c.offset + c.len) as usize]),
            c.expected
        );
        store.mark_verified(&c).unwrap()
    }

    #[test]
    fn chunks_survive_restart_and_complete_objects_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let (m, enc) = meta_for("net", "1.0.0", 4096, &payload);
        let (mut s, skipped) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        assert!(skipped.is_empty());
        assert!(s.admit(m.clone(), &enc).unwrap());
        assert!(!s.admit(m.clone(), &enc).unwrap(), "idempotent");
        assert!(!write_chunk(&mut s, &m, &payload, 0));
        assert!(matches!(
            s.claim(&m.digest, 0).unwrap(),
            ClaimResult::AlreadyVerified
        ));
        let ClaimResult::Claimed(c1) = s.claim(&m.digest, 1).unwrap() else {
            panic!()
        };
        assert!(matches!(s.claim(&m.digest, 1), Err(StoreError::Busy(1))));
        s.release(&c1);
        assert!(matches!(
            s.claim(&m.digest, 3),
            Err(StoreError::ChunkIndex { index: 3, count: 3 })
        ));
        assert!(
            s.newest("net").is_none(),
            "partial objects are never served"
        );
        drop(s);

        // Restart: chunk 0 stays verified, the rest is missing.
        let (mut s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        assert_eq!(s.get(&m.digest).unwrap().missing(), vec![1, 2]);
        assert!(!write_chunk(&mut s, &m, &payload, 1));
        assert!(write_chunk(&mut s, &m, &payload, 2));
        s.mark_complete(&m.digest).unwrap();
        assert_eq!(s.newest("net").unwrap().meta.digest, m.digest);
        assert!(s.find("net", "1.0.0").is_some());
        drop(s);
        let (s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        assert!(s.get(&m.digest).unwrap().complete);
    }

    #[test]
    fn corruption_on_disk_is_detected_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let payload = vec![5u8; 9000];
        let (m, enc) = meta_for("net", "1.0.0", 4096, &payload);
        let (mut s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        s.admit(m.clone(), &enc).unwrap();
        for i in 0..3 {
            write_chunk(&mut s, &m, &payload, i);
        }
        s.mark_complete(&m.digest).unwrap();
        let path = s.get(&m.digest).unwrap().payload_path();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        bytes[5000] ^= 1;
        fs::write(&path, bytes).unwrap();
        let (s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        let obj = s.get(&m.digest).unwrap();
        assert!(!obj.complete, "a corrupted payload is not served");
        assert_eq!(
            obj.missing(),
            vec![1],
            "only the bad chunk is fetched again"
        );

        // The bitmap file is a hint only: garbage in it changes nothing,
        // the chunks on disk are hashed.
        let bm = obj.dir.join(BITMAP);
        drop(s);
        fs::write(&bm, b"junk").unwrap();
        let (s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        assert_eq!(s.get(&m.digest).unwrap().missing(), vec![1]);
    }

    #[test]
    fn chunks_written_but_never_marked_count_after_a_crash() {
        // A kill after a chunk's bytes reached the page cache but before
        // anything recorded it: restart finds it by its hash. Slots still
        // holding the preallocated zeros are not verified.
        let dir = tempfile::tempdir().unwrap();
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let (m, enc) = meta_for("net", "1.0.0", 4096, &payload);
        let (mut s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        s.admit(m.clone(), &enc).unwrap();
        write_chunk(&mut s, &m, &payload, 0);
        let path = s.get(&m.digest).unwrap().payload_path();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&payload[2 * 4096..3 * 4096], 2 * 4096)
            .unwrap();
        // A torn chunk (half written) does not verify.
        f.write_all_at(&payload[4 * 4096..4 * 4096 + 100], 4 * 4096)
            .unwrap();
        drop(f);
        let hint = fs::read(s.get(&m.digest).unwrap().dir.join(BITMAP)).unwrap();
        assert_eq!(
            bitmap_decode(&hint, 5).unwrap(),
            [true, false, false, false, false]
        );
        drop(s);
        let (s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        let o = s.get(&m.digest).unwrap();
        assert_eq!(o.missing(), vec![1, 3, 4]);
        assert_eq!(o.verified_count(), 2);
        assert!(!o.complete);
    }

    #[test]
    fn objects_failing_at_start_free_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (e, enc_e) = meta_for("exp-net", "1.0.0", 4096, &[3u8; 5000]);
        let (p, enc_p) = meta_for("pol-net", "1.0.0", 4096, &[4u8; 5000]);
        let (mut s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        s.admit(e.clone(), &enc_e).unwrap();
        s.admit(p.clone(), &enc_p).unwrap();
        drop(s);
        // Restart after the first expired and the second left the policy.
        let (mut s, skipped) = Store::open(dir.path(), limits(), &TestChecker(true)).unwrap();
        assert_eq!(skipped.len(), 2);
        assert_eq!(s.objects().count(), 0);
        let exp = skipped.iter().find(|k| k.reason == "expired").unwrap();
        assert!(
            exp.quarantined.is_none() && !exp.dir.exists(),
            "expired: deleted"
        );
        let pol = skipped.iter().find(|k| k.reason == "policy").unwrap();
        let q = pol.quarantined.as_ref().unwrap();
        assert!(
            q.join(MANIFEST).exists() && !pol.dir.exists(),
            "policy: quarantined"
        );
        // Neither blocks admitting the same digest again.
        assert!(s.admit(e.clone(), &enc_e).unwrap());
        assert!(s.admit(p.clone(), &enc_p).unwrap());
        assert_eq!(s.objects().count(), 2);
    }

    #[test]
    fn limits_and_full_disk_refuse_without_touching_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(dir.path(), limits(), &TestChecker(false)).unwrap();
        let (big, enc) = meta_for("big", "1.0.0", 65536, &vec![0u8; (1 << 20) + 1]);
        let e = s.admit(big, &enc).unwrap_err();
        assert!(e.to_string().contains("max_artifact_bytes"), "{e}");
        let (a, enc_a) = meta_for("a", "1.0.0", 65536, &vec![1u8; 1 << 20]);
        s.admit(a.clone(), &enc_a).unwrap();
        for i in 0..3u8 {
            let (m, enc) = meta_for("fill", &format!("1.0.{i}"), 65536, &vec![i; 1 << 20]);
            s.admit(m, &enc).unwrap();
        }
        let (m, enc) = meta_for("over", "1.0.0", 65536, &[9u8; 10]);
        let e = s.admit(m, &enc).unwrap_err();
        assert!(e.to_string().contains("max_store_bytes"), "{e}");

        // A payload the disk cannot hold: ENOSPC (or EFBIG) at admission.
        let mut s2 = Store {
            limits: Limits {
                max_artifact_bytes: u64::MAX,
                max_store_bytes: u64::MAX,
            },
            ..Store::open(dir.path(), limits(), &TestChecker(false))
                .unwrap()
                .0
        };
        let mut huge = a.clone();
        huge.payload_len = 1 << 60;
        huge.digest = [0xEE; 32];
        huge.chunks = vec![[0; 32]];
        huge.chunk_size = 1 << 60;
        let e = s2.admit(huge, b"x").unwrap_err();
        assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
        assert!(e.to_string().contains("no space left"), "{e}");
        assert_eq!(s2.objects().count(), 4, "nothing stored was lost");
        assert!(s2.get(&a.digest).is_some());
        assert_eq!(
            fs::read_dir(dir.path().join("staging")).unwrap().count(),
            0,
            "no debris"
        );
    }

    #[test]
    fn the_abandoned_list_round_trips_and_refuses_junk() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_abandoned(dir.path()).unwrap().is_empty(), "no file");
        let list = [[0xAB; 32], [0x01; 32]];
        write_abandoned(dir.path(), &list).unwrap();
        assert_eq!(read_abandoned(dir.path()).unwrap(), list);
        let text = fs::read_to_string(dir.path().join(ABANDONED)).unwrap();
        assert_eq!(
            text,
            format!(
                "{ABANDONED_HEADER}\n{}\n{}\n",
                "ab".repeat(32),
                "01".repeat(32)
            )
        );
        write_abandoned(dir.path(), &[]).unwrap();
        assert!(read_abandoned(dir.path()).unwrap().is_empty());
        for (junk, says) in [
            ("pqvault abandoned artifacts v2\n", "unsupported version"),
            ("something else\n", "first line"),
            ("pqvault abandoned artifacts v1\nabcd\n", "line 2"),
        ] {
            fs::write(dir.path().join(ABANDONED), junk).unwrap();
            let e = read_abandoned(dir.path()).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn bitmap_round_trips_and_rejects_junk() {
        let bits = vec![true, false, true, true, false, false, false, false, true];
        let enc = bitmap_encode(&bits);
        assert_eq!(bitmap_decode(&enc, 9).unwrap(), bits);
        assert!(bitmap_decode(&enc, 8).is_err());
        assert!(bitmap_decode(b"PQAB\x02\x00\x00\x00\x00", 0).is_err());
        assert!(bitmap_decode(&enc[..10], 9).is_err());
        // Test vector (docs/artifacts.md): 9 chunks, bits 0, 2, 3 and 8 set.
        assert_eq!(hex::encode(&enc), "5051414201090000000d01");
    }

    /// Crash walk, child side (see
    /// [`every_crash_point_leaves_nothing_half_served`]): with
    /// `PQVAULT_CRASH_DIR` set, admits and completes one artifact with one
    /// crash point armed, which ends the process (exit 137).
    #[cfg(feature = "failpoints")]
    #[test]
    fn crash_child() {
        let Ok(dir) = std::env::var("PQVAULT_CRASH_DIR") else {
            return;
        };
        let point = std::env::var("PQVAULT_CRASH_AT").unwrap();
        let payload = crash_payload();
        let (m, enc) = meta_for("net", "1.0.0", 4096, &payload);
        let (mut s, _) = Store::open(Path::new(&dir), limits(), &TestChecker(false)).unwrap();
        fail::cfg(point.as_str(), "return").unwrap();
        s.admit(m.clone(), &enc).unwrap();
        for i in 0..m.chunks.len() {
            write_chunk(&mut s, &m, &payload, i);
        }
        s.mark_complete(&m.digest).unwrap();
        std::process::exit(3);
    }

    #[cfg(feature = "failpoints")]
    fn crash_payload() -> Vec<u8> {
        (0..10_000u32).map(|i| (i * 13) as u8).collect()
    }

    /// Crash walk: a real process is killed at every crash point of
    /// admission and completion; after a restart the store opens, never
    /// serves a partial or unverified object, and finishing the transfer
    /// serves exactly the payload.
    #[cfg(feature = "failpoints")]
    #[test]
    fn every_crash_point_leaves_nothing_half_served() {
        use crate::failpoint as fp;
        let payload = crash_payload();
        let (m, enc) = meta_for("net", "1.0.0", 4096, &payload);
        let points = fp::points("artifact.");
        assert_eq!(points.len(), 4);
        for point in points {
            let dir = tempfile::tempdir().unwrap();
            let status = crate::failpoint::run_crash_child(
                "artifacts::store::tests::crash_child",
                dir.path(),
                point,
            );
            assert_eq!(status.code(), Some(137), "{point} was not reached");
            let (mut s, skipped) = Store::open(dir.path(), limits(), &TestChecker(false))
                .unwrap_or_else(|e| panic!("after a crash at {point}: {e}"));
            assert!(skipped.is_empty(), "{point}: {skipped:?}");
            let served = s.newest("net").map(|o| o.meta.digest);
            if point == fp::ARTIFACT_COMPLETE_MARKED {
                assert_eq!(served, Some(m.digest), "{point}");
            } else {
                assert_eq!(served, None, "{point}: a partial object is served");
                if !s.admit(m.clone(), &enc).unwrap() {
                    assert!(
                        point != fp::ARTIFACT_ADMIT_STAGED,
                        "staged objects are not kept"
                    );
                }
                for i in s.get(&m.digest).unwrap().missing() {
                    write_chunk(&mut s, &m, &payload, i);
                }
                s.mark_complete(&m.digest).unwrap();
            }
            let obj = s.newest("net").unwrap();
            assert!(obj.complete, "{point}");
            assert_eq!(fs::read(obj.payload_path()).unwrap(), payload, "{point}");
        }
    }
}
