//! The full payload check, run while the chunks arrive.
//!
//! Once a partial object is admitted, two threads run the whole-payload
//! half of the check (`check_payload_digest`: length and SHA-256, one
//! sequential pass) and the tensor half (`check_payload_tensors`: header,
//! metadata, weights, golden run) over readers of the payload file that
//! wait, at each read, until the chunk they are about to read has been
//! verified against the signed manifest. Each chunk is thus read back from
//! the page cache moments after it was written, and the work overlaps the
//! transfer instead of following it: when the last chunk arrives only the
//! rows after it are left. No read ever sees bytes that did not match their
//! chunk hash. The digest thread also starts each chunk's writeback once
//! it read it, so that the fsync before `complete` has little left to
//! write (docs/decisions.md D41). A check is cancelled (its readers fail,
//! its threads end) when the object is abandoned or removed.
//!
//! A format-2 manifest's payload digest is the digest of its chunk list
//! (D47): the chunks verified on arrival tile the payload exactly, so the
//! digest thread reads nothing back and only starts each chunk's
//! writeback as it is verified, in order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Which chunks are verified, for readers to wait on.
#[derive(Debug)]
pub struct Gate {
    state: Mutex<(Vec<bool>, bool)>,
    cv: Condvar,
}

impl Gate {
    fn new(verified: Vec<bool>) -> Self {
        Gate {
            state: Mutex::new((verified, false)),
            cv: Condvar::new(),
        }
    }

    /// Chunk `i` is verified: wakes the readers.
    pub fn verified(&self, i: usize) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = s.0.get_mut(i) {
            *b = true;
        }
        self.cv.notify_all();
    }

    /// Ends the check: every read from now on fails.
    pub fn cancel(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.cv.notify_all();
    }

    /// Waits until chunk `i` is verified (or the check is cancelled).
    fn wait(&self, i: usize) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.1 {
                return Err(io::Error::other("check cancelled"));
            }
            match s.0.get(i) {
                Some(true) => return Ok(()),
                Some(false) => s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                None => return Err(io::Error::other("chunk index out of range")),
            }
        }
    }
}

/// Reads the payload file, never past the verified chunks.
struct GatedReader {
    file: File,
    gate: Arc<Gate>,
    pos: u64,
    len: u64,
    chunk_size: u64,
    /// Starts the writeback of each chunk once read to its end (see
    /// [`start_writeback`]).
    writeback: bool,
}

/// Starts writing `len` bytes of `file` at `offset` back to disk without
/// waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the fsync
/// before `complete` finds most of the payload already written. Called by
/// the digest thread after it read a chunk, never by the threads receiving
/// chunks (a congested disk queue may block the call). Failures change
/// nothing: the fsync still makes the payload durable.
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        // SAFETY: a plain syscall on a descriptor owned by `file`.
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

impl GatedReader {
    /// The digest thread's work for a format-2 manifest: waits for each
    /// chunk in order (already verified against its signed hash, which is
    /// all the payload digest needs) and starts its writeback; reads
    /// nothing.
    fn write_back_in_order(&self) -> io::Result<()> {
        let mut start = 0;
        let mut chunk = 0;
        while start < self.len {
            self.gate.wait(chunk)?;
            let end = (start + self.chunk_size).min(self.len);
            start_writeback(&self.file, start, end - start);
            start = end;
            chunk += 1;
        }
        Ok(())
    }
}

impl Read for GatedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let chunk = self.pos / self.chunk_size;
        self.gate.wait(chunk as usize)?;
        // Up to the end of this chunk: the next one may not be verified.
        let end = ((chunk + 1) * self.chunk_size).min(self.len);
        let n = (buf.len() as u64).min(end - self.pos) as usize;
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "payload file shorter than its manifest",
            ));
        }
        self.pos += got as u64;
        if self.writeback && self.pos == end {
            let start = chunk * self.chunk_size;
            start_writeback(&self.file, start, end - start);
        }
        Ok(got)
    }
}

impl Seek for GatedReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = base.ok_or_else(|| io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}

/// Puts the calling thread under `SCHED_BATCH`: same share of the CPU,
/// but it does not preempt the threads receiving chunks when they wake, so
/// the check slows the transfer less on a busy machine.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let p = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `p` is a valid parameter
        // for SCHED_BATCH (priority 0). A failure changes nothing.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &p) };
    }
}

/// The outcome of a payload check: `ArtifactError::reason` and message.
pub type Outcome = Result<(), (&'static str, String)>;

/// One check under way.
struct Running {
    gate: Arc<Gate>,
    digest: JoinHandle<Outcome>,
    tensors: JoinHandle<Outcome>,
}

/// The checks under way, by manifest digest.
pub struct EarlyChecks {
    running: Mutex<HashMap<[u8; 32], Running>>,
    max: usize,
}

fn joined(h: JoinHandle<Outcome>) -> Outcome {
    h.join()
        .unwrap_or_else(|_| Err(("format", "payload check thread panicked".into())))
}

impl EarlyChecks {
    /// At most `max` checks at once (`[artifacts] early_checks`); any other
    /// object is checked in full once its last chunk arrived.
    pub fn new(max: usize) -> Self {
        EarlyChecks {
            running: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// Starts checking the payload of `artifact` at `payload` as its chunks
    /// are verified (`verified`: those already verified), unless the most
    /// allowed run already. Returns whether it started.
    pub fn start(
        &self,
        artifact: &vault::artifact::VerifiedArtifact,
        payload: &Path,
        verified: Vec<bool>,
    ) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let digest = artifact.manifest_digest();
        if running.len() >= self.max || running.contains_key(&digest) {
            return false;
        }
        let gate = Arc::new(Gate::new(verified));
        let open = |writeback| -> io::Result<GatedReader> {
            Ok(GatedReader {
                file: File::open(payload)?,
                gate: gate.clone(),
                pos: 0,
                len: artifact.payload_len(),
                chunk_size: u64::from(artifact.chunk_size()).max(1),
                writeback,
            })
        };
        // The digest thread reads every chunk once, in order: it starts
        // each chunk's writeback.
        let (Ok(d), Ok(t)) = (open(true), open(false)) else {
            return false;
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() -> Outcome + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    batch_scheduling();
                    f()
                })
                .ok()
        };
        let (a1, a2) = (artifact.clone(), artifact.clone());
        let Some(digest_thread) = spawn(
            "artifact-digest",
            Box::new(move || {
                if a1.body().digest_covered_by_chunks() {
                    // Format 2: no second SHA-256 pass (see the module doc).
                    return d
                        .write_back_in_order()
                        .map_err(|e| ("format", format!("payload check: {e}")));
                }
                // Reads of 256 KiB, up to each chunk's end: no buffer.
                vault::artifact::payload::check_payload_digest(&a1, d)
                    .map_err(|e| (e.reason(), e.to_string()))
            }),
        ) else {
            return false;
        };
        let tensors_thread = spawn(
            "artifact-tensors",
            Box::new(move || {
                let t = io::BufReader::with_capacity(64 << 10, t);
                vault::artifact::payload::check_payload_tensors(&a2, t)
                    .map_err(|e| (e.reason(), e.to_string()))
            }),
        );
        let Some(tensors_thread) = tensors_thread else {
            gate.cancel();
            let _ = digest_thread.join();
            return false;
        };
        running.insert(
            digest,
            Running {
                gate,
                digest: digest_thread,
                tensors: tensors_thread,
            },
        );
        true
    }

    /// Chunk `i` of `digest` is verified.
    pub fn verified(&self, digest: &[u8; 32], i: usize) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.get(digest) {
            r.gate.verified(i);
        }
    }

    /// Cancels the check of `digest`, if one runs (the object is going).
    pub fn cancel(&self, digest: &[u8; 32]) {
        let r = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        if let Some(r) = r {
            r.gate.cancel();
            // The threads end at their next read; nobody waits for them.
        }
    }

    /// The outcome of the check of `digest`, to be asked once every chunk
    /// is verified (blocks until both halves finished), or `None` if none
    /// ran.
    pub fn finish(&self, digest: &[u8; 32]) -> Option<Outcome> {
        let r = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest)?;
        {
            // Every chunk is verified (the caller's precondition): a reader
            // still waiting would be a bookkeeping slip, not a reason to
            // hang the completion.
            let s = r.gate.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.0.iter().any(|b| !*b) {
                tracing::warn!(digest = %hex::encode(digest), "payload check was not told of every chunk; checking again in full");
                drop(s);
                r.gate.cancel();
                return None;
            }
        }
        let d = joined(r.digest);
        let t = joined(r.tensors);
        Some(d.and(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reader(path: &Path, gate: &Arc<Gate>, len: u64) -> GatedReader {
        GatedReader {
            file: File::open(path).unwrap(),
            gate: gate.clone(),
            pos: 0,
            len,
            chunk_size: 4,
            writeback: true,
        }
    }

    /// A 10-byte payload file in 4-byte chunks, the first one verified.
    fn payload() -> (tempfile::TempDir, std::path::PathBuf, Arc<Gate>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("payload");
        File::create(&p).unwrap().write_all(b"abcdefghij").unwrap();
        (dir, p, Arc::new(Gate::new(vec![true, false, false])))
    }

    /// Cancels `gate` after `ms` milliseconds, on another thread.
    fn cancel_after(gate: &Arc<Gate>, ms: u64) -> std::thread::JoinHandle<()> {
        let g = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            g.cancel();
        })
    }

    #[test]
    fn a_gated_reader_reads_only_verified_chunks_and_fails_once_cancelled() {
        let (_dir, p, gate) = payload();
        let mut r = reader(&p, &gate, 10);
        let mut buf = [0u8; 10];
        assert_eq!(r.read(&mut buf).unwrap(), 4, "stops at the chunk's end");
        assert_eq!(&buf[..4], b"abcd");
        // Chunk 1 is verified while a reader waits for it.
        let g = gate.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            g.verified(1);
        });
        let started = std::time::Instant::now();
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert!(started.elapsed() >= std::time::Duration::from_millis(40));
        assert_eq!(&buf[..4], b"efgh");
        t.join().unwrap();
        // Seeking from the end, then a read that waits on chunk 2: cancelled.
        assert_eq!(r.seek(SeekFrom::End(-1)).unwrap(), 9);
        let t = cancel_after(&gate, 20);
        assert!(r.read(&mut buf).is_err());
        t.join().unwrap();
        let mut r = reader(&p, &gate, 10);
        assert!(r.read(&mut buf).is_err(), "every read fails once cancelled");
    }

    #[test]
    fn the_format_2_walk_waits_for_every_chunk_in_order_and_ends_when_cancelled() {
        let (_dir, p, gate) = payload();
        let r = reader(&p, &gate, 10);
        let g = gate.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            g.verified(2);
            std::thread::sleep(std::time::Duration::from_millis(30));
            g.verified(1);
        });
        let started = std::time::Instant::now();
        r.write_back_in_order().unwrap();
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        t.join().unwrap();
        let gate = Arc::new(Gate::new(vec![true, false, false]));
        let r = reader(&p, &gate, 10);
        let t = cancel_after(&gate, 20);
        assert!(r.write_back_in_order().is_err());
        t.join().unwrap();
    }
}
