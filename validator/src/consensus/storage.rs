//! Crash-safe storage of the epoch log under `<data_dir>/raft/`: the vote,
//! the log entries, the last purged log id, the applied state machine and
//! the latest snapshot, each a small JSON file (format version 1) written
//! with [`vault::fsio::write_atomic`] (temp file, fsync, rename, fsync of
//! the directory).
//!
//! ```text
//! raft/vote.json                 {"version":1,"vote":...}
//! raft/purged.json               {"version":1,"purged":LogId}
//! raft/log/<index:020>.json      {"version":1,"entry":Entry}   one per entry
//! raft/state.json                {"version":1,"last_applied","membership","machine"}
//! raft/snapshot.json             {"version":1,"meta","machine"}
//! ```
//!
//! Every file is replaced atomically, so a kill -9 leaves each one old or
//! new, never torn; a write interrupted before its rename leaves only a
//! `.<name>.tmp-*` file, which is ignored and removed at the next start.
//! The log stays a contiguous run of indices: entries are appended in
//! order, a conflicting suffix is deleted from the highest index down, and
//! a purge records `purged.json` before deleting from the lowest index up.
//! A file that fails to parse cannot come from a crash: the store refuses
//! to open and names it, rather than drop an entry the cluster may have
//! counted on. The applied state machine is written at most every
//! [`SAVE_STATE_EVERY`] entries (and at once for a membership change, and
//! before any purge): on restart it resumes at the last entry written and
//! openraft applies the rest again from the log, which still holds them.
//!
//! I/O is synchronous inside the async trait methods: the files are a few
//! KiB, one transition writes a handful of them.

use super::machine::Machine;
use super::record::{Applied, PeerNode, TypeConfig};
use openraft::storage::{LogState, RaftLogReader, RaftSnapshotBuilder, RaftStorage, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use vault::fsio::{write_atomic, Mode};

/// Version of every file under `raft/`.
pub const FORMAT_VERSION: u32 = 1;
/// Largest file read back (a log entry holds at most a manifest or a certificate).
const MAX_FILE: u64 = 64 << 20;

/// A storage failure, naming the file.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Reading, writing or removing a file failed.
    #[error("raft store {path}: {reason}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A file is not what this version writes.
    #[error("raft store {path} is corrupt: {reason}")]
    Corrupt {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

type Sto = StorageError<u64>;
type Membership = StoredMembership<u64, PeerNode>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteFile {
    version: u32,
    vote: Vote<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgedFile {
    version: u32,
    purged: LogId<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    version: u32,
    entry: Entry<TypeConfig>,
}

#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    last_applied: Option<LogId<u64>>,
    membership: Membership,
    machine: Machine,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    version: u32,
    meta: SnapshotMeta<u64, PeerNode>,
    machine: Machine,
}

/// Snapshot payload sent to a lagging follower.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotData {
    version: u32,
    machine: Machine,
}

struct Inner {
    dir: PathBuf,
    vote: Option<Vote<u64>>,
    purged: Option<LogId<u64>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    state: StateFile,
    /// Entries applied to `state` since `state.json` was last written.
    unsaved: usize,
    snapshot: Option<SnapshotFile>,
    snapshot_seq: u64,
}

/// At most this many applied entries are missing from `state.json` (and
/// re-applied from the log after a restart).
pub const SAVE_STATE_EVERY: usize = 32;

impl Inner {
    /// Writes `state.json` if entries were applied since it was written.
    fn save_state(&mut self) -> Result<(), StoreError> {
        if self.unsaved > 0 {
            write_json(&self.dir.join("state.json"), &self.state)?;
            self.unsaved = 0;
        }
        Ok(())
    }
}

/// The on-disk log store. Clones share one state (log reader, snapshot
/// builder and the [`super::Consensus`] handle's reads).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    applied: Arc<tokio::sync::watch::Sender<u64>>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_json<T: for<'a> Deserialize<'a>>(path: &Path) -> Result<Option<T>, StoreError> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = vault::fsio::read_limited(path, MAX_FILE).map_err(|e| io(path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| corrupt(path, e))?;
    match v.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => return Err(corrupt(path, format!("unsupported version {v}"))),
        None => return Err(corrupt(path, "no version")),
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| corrupt(path, e))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(v).map_err(|e| io(path, e))?;
    write_atomic(path, &bytes, Mode::Public, true).map_err(|e| io(path, e))
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn entry_path(dir: &Path, index: u64) -> PathBuf {
    dir.join("log").join(format!("{index:020}.json"))
}

impl LogStore {
    /// Opens (or creates) the store in `<data_dir>/raft/`.
    pub fn open(data_dir: &Path) -> Result<LogStore, StoreError> {
        let dir = data_dir.join("raft");
        let log_dir = dir.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|e| io(&log_dir, e))?;
        for d in [&dir, &log_dir] {
            // Writes interrupted before their rename.
            for e in std::fs::read_dir(d).map_err(|e| io(d, e))? {
                let path = e.map_err(|e| io(d, e))?.path();
                let temp = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"));
                if temp {
                    remove(&path)?;
                }
            }
        }
        let vote = read_json::<VoteFile>(&dir.join("vote.json"))?.map(|v| v.vote);
        let purged = read_json::<PurgedFile>(&dir.join("purged.json"))?.map(|p| p.purged);
        let state = read_json::<StateFile>(&dir.join("state.json"))?.unwrap_or(StateFile {
            version: FORMAT_VERSION,
            ..StateFile::default()
        });
        let snapshot = read_json::<SnapshotFile>(&dir.join("snapshot.json"))?;
        let floor = purged.map(|p| p.index);
        let mut indices = Vec::new();
        for e in std::fs::read_dir(&log_dir).map_err(|e| io(&log_dir, e))? {
            let path = e.map_err(|e| io(&log_dir, e))?.path();
            let index = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| n.len() == 20)
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| corrupt(&path, "not a log entry file name"))?;
            indices.push(index);
        }
        indices.sort_unstable();
        let mut log = BTreeMap::new();
        for index in indices {
            let path = entry_path(&dir, index);
            if floor.is_some_and(|f| index <= f) {
                // A purge interrupted after recording purged.json.
                remove(&path)?;
                continue;
            }
            let e = read_json::<EntryFile>(&path)?
                .ok_or_else(|| corrupt(&path, "vanished while reading"))?
                .entry;
            if e.log_id.index != index {
                return Err(corrupt(
                    &path,
                    format!("holds entry {}, not {index}", e.log_id.index),
                ));
            }
            if let Some((last, _)) = log.last_key_value() {
                if index != last + 1 {
                    return Err(corrupt(&path, format!("gap in the log after entry {last}")));
                }
            } else if let Some(f) = floor {
                if index != f + 1 {
                    return Err(corrupt(&path, format!("gap in the log after purged {f}")));
                }
            }
            log.insert(index, e);
        }
        let applied = state.last_applied.map(|l| l.index + 1).unwrap_or(0);
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir,
                vote,
                purged,
                log,
                state,
                unsaved: 0,
                snapshot,
                snapshot_seq: 0,
            })),
            applied: Arc::new(tokio::sync::watch::channel(applied).0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the applied state machine.
    pub fn read<T>(&self, f: impl FnOnce(&Machine) -> T) -> T {
        f(&self.lock().state.machine)
    }

    /// Changes every time entries are applied or a snapshot installed.
    pub fn applied_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Index of the last applied entry, if any.
    pub fn last_applied(&self) -> Option<u64> {
        self.lock().state.last_applied.map(|l| l.index)
    }

    fn notify(&self) {
        self.applied.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn sto(e: StoreError) -> Sto {
    StorageIOError::write(AnyError::new(&e)).into()
}

fn sto_read(e: StoreError) -> Sto {
    StorageIOError::read(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Sto> {
        Ok(self
            .lock()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for LogStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Sto> {
        let mut g = self.lock();
        g.snapshot_seq += 1;
        let last = g.state.last_applied;
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: g.state.membership.clone(),
            snapshot_id: format!(
                "{}-{}-{}",
                last.map(|l| l.leader_id.term).unwrap_or(0),
                last.map(|l| l.index).unwrap_or(0),
                g.snapshot_seq
            ),
        };
        let file = SnapshotFile {
            version: FORMAT_VERSION,
            meta: meta.clone(),
            machine: g.state.machine.clone(),
        };
        write_json(&g.dir.join("snapshot.json"), &file).map_err(sto)?;
        let data = snapshot_bytes(&file.machine).map_err(sto)?;
        g.snapshot = Some(file);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

fn snapshot_bytes(machine: &Machine) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&SnapshotData {
        version: FORMAT_VERSION,
        machine: machine.clone(),
    })
    .map_err(|e| io(Path::new("snapshot"), e))
}

impl RaftStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;
    type SnapshotBuilder = LogStore;

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Sto> {
        let mut g = self.lock();
        let file = VoteFile {
            version: FORMAT_VERSION,
            vote: *vote,
        };
        write_json(&g.dir.join("vote.json"), &file)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        g.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Sto> {
        Ok(self.lock().vote)
    }

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Sto> {
        let g = self.lock();
        let last = g.log.last_key_value().map(|(_, e)| e.log_id).or(g.purged);
        Ok(LogState {
            last_purged_log_id: g.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn append_to_log<I>(&mut self, entries: I) -> Result<(), Sto>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
    {
        let mut g = self.lock();
        for e in entries {
            let path = entry_path(&g.dir, e.log_id.index);
            let file = EntryFile {
                version: FORMAT_VERSION,
                entry: e,
            };
            write_json(&path, &file).map_err(|err| {
                StorageIOError::write_log_entry(file.entry.log_id, AnyError::new(&err))
            })?;
            g.log.insert(file.entry.log_id.index, file.entry);
        }
        Ok(())
    }

    async fn delete_conflict_logs_since(&mut self, log_id: LogId<u64>) -> Result<(), Sto> {
        let mut g = self.lock();
        // Highest first: a crash leaves a shorter, contiguous log.
        let doomed: Vec<u64> = g.log.range(log_id.index..).map(|(i, _)| *i).rev().collect();
        for i in doomed {
            remove(&entry_path(&g.dir, i)).map_err(sto)?;
            g.log.remove(&i);
        }
        sync_dir(&g.dir.join("log")).map_err(sto)
    }

    async fn purge_logs_upto(&mut self, log_id: LogId<u64>) -> Result<(), Sto> {
        let mut g = self.lock();
        if g.purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        // Entries leave the log only once the saved state includes them.
        g.save_state().map_err(sto)?;
        let file = PurgedFile {
            version: FORMAT_VERSION,
            purged: log_id,
        };
        write_json(&g.dir.join("purged.json"), &file).map_err(sto)?;
        g.purged = Some(log_id);
        let doomed: Vec<u64> = g.log.range(..=log_id.index).map(|(i, _)| *i).collect();
        for i in doomed {
            remove(&entry_path(&g.dir, i)).map_err(sto)?;
            g.log.remove(&i);
        }
        sync_dir(&g.dir.join("log")).map_err(sto)
    }

    async fn last_applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), Sto> {
        let g = self.lock();
        Ok((g.state.last_applied, g.state.membership.clone()))
    }

    async fn apply_to_state_machine(
        &mut self,
        entries: &[Entry<TypeConfig>],
    ) -> Result<Vec<Applied>, Sto> {
        let mut out = Vec::with_capacity(entries.len());
        {
            let mut g = self.lock();
            let mut next = g.state.clone();
            let mut membership = false;
            for e in entries {
                next.last_applied = Some(e.log_id);
                out.push(match &e.payload {
                    EntryPayload::Blank => Applied::Nothing,
                    EntryPayload::Normal(r) => next.machine.apply(r),
                    EntryPayload::Membership(m) => {
                        membership = true;
                        next.membership = StoredMembership::new(Some(e.log_id), m.clone());
                        Applied::Nothing
                    }
                });
            }
            g.state = next;
            g.unsaved += entries.len();
            // The log holds every entry applied since the last save, and
            // openraft re-applies them after a restart: writing the state
            // at every apply put two fsyncs on each transition's path, on
            // every member, for nothing a crash could lose.
            if membership || g.unsaved >= SAVE_STATE_EVERY {
                g.save_state().map_err(sto)?;
            }
        }
        self.notify();
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Sto> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, PeerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Sto> {
        let data: SnapshotData = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| sto_read(corrupt(Path::new("received snapshot"), e)))?;
        if data.version != FORMAT_VERSION {
            return Err(sto_read(corrupt(
                Path::new("received snapshot"),
                format!("unsupported version {}", data.version),
            )));
        }
        {
            let mut g = self.lock();
            let file = SnapshotFile {
                version: FORMAT_VERSION,
                meta: meta.clone(),
                machine: data.machine,
            };
            write_json(&g.dir.join("snapshot.json"), &file).map_err(sto)?;
            let state = StateFile {
                version: FORMAT_VERSION,
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
                machine: file.machine.clone(),
            };
            write_json(&g.dir.join("state.json"), &state).map_err(sto)?;
            g.state = state;
            g.unsaved = 0;
            g.snapshot = Some(file);
        }
        self.notify();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Sto> {
        let g = self.lock();
        match &g.snapshot {
            None => Ok(None),
            Some(f) => Ok(Some(Snapshot {
                meta: f.meta.clone(),
                snapshot: Box::new(Cursor::new(snapshot_bytes(&f.machine).map_err(sto)?)),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::record::{Proposal, Record};
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::BTreeSet;
    use vault::manifest::VaultId;

    fn log_id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn proposal_entry(index: u64, epoch: u64, manifest: &[u8]) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Normal(Record::Proposal(Proposal {
                vault: VaultId::from_bytes([1; 16]),
                from_epoch: epoch,
                manifest: manifest.to_vec(),
            })),
        }
    }

    fn membership_entry(index: u64) -> Entry<TypeConfig> {
        let m = Membership::new(vec![BTreeSet::from([1u64])], None);
        Entry {
            log_id: log_id(1, index),
            payload: EntryPayload::Membership(m),
        }
    }

    async fn last_index(s: &mut LogStore) -> Option<u64> {
        s.get_log_state()
            .await
            .unwrap()
            .last_log_id
            .map(|l| l.index)
    }

    #[tokio::test]
    async fn the_state_is_saved_every_few_entries_and_before_a_purge() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        let n = SAVE_STATE_EVERY as u64;
        let entries: Vec<_> = (1..=n + 2).map(|i| proposal_entry(i, i, b"plan")).collect();
        s.append_to_log(entries.clone()).await.unwrap();
        s.apply_to_state_machine(&entries[..2]).await.unwrap();
        drop(s);
        // Not saved yet: a restart resumes before them, and the log still
        // holds them for openraft to apply again.
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(s.last_applied_state().await.unwrap().0, None);
        assert_eq!(last_index(&mut s).await, Some(n + 2));
        // A full batch is saved.
        s.apply_to_state_machine(&entries[..n as usize])
            .await
            .unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(s.last_applied_state().await.unwrap().0, Some(log_id(1, n)));
        // Entries leave the log only once the saved state holds them.
        s.apply_to_state_machine(&entries[n as usize..])
            .await
            .unwrap();
        s.purge_logs_upto(log_id(1, n + 1)).await.unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            s.last_applied_state().await.unwrap().0,
            Some(log_id(1, n + 2))
        );
        let v = VaultId::from_bytes([1; 16]);
        assert!(s.read(|m| m.get(&v, n + 2).is_some()));
    }

    #[tokio::test]
    async fn everything_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        let vote = Vote::new(3, 1);
        s.save_vote(&vote).await.unwrap();
        let entries = vec![
            membership_entry(0),
            proposal_entry(1, 1, b"plan A"),
            proposal_entry(2, 1, b"plan B"),
            proposal_entry(3, 2, b"plan C"),
        ];
        s.append_to_log(entries.clone()).await.unwrap();
        let applied = s.apply_to_state_machine(&entries[..3]).await.unwrap();
        assert!(matches!(applied[1], Applied::Accepted { .. }));
        assert!(matches!(applied[2], Applied::AlreadyDecided { .. }));
        s.purge_logs_upto(log_id(1, 1)).await.unwrap();
        drop(s);

        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(vote));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(st.last_log_id, Some(log_id(1, 3)));
        assert_eq!(
            s.try_get_log_entries(0..10).await.unwrap(),
            entries[2..].to_vec()
        );
        let (applied, membership) = s.last_applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 2)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
        let v = VaultId::from_bytes([1; 16]);
        assert_eq!(
            s.read(|m| m.get(&v, 1).map(|d| d.manifest.clone())),
            Some(b"plan A".to_vec())
        );
        assert_eq!(
            s.read(|m| m.get(&v, 2).cloned()),
            None,
            "entry 3 not applied yet"
        );

        // A conflicting suffix goes, and stays gone.
        s.delete_conflict_logs_since(log_id(1, 3)).await.unwrap();
        drop(s);
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(last_index(&mut s).await, Some(2));
    }

    #[tokio::test]
    async fn snapshots_are_built_installed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        let entries = vec![membership_entry(0), proposal_entry(1, 1, b"plan A")];
        s.append_to_log(entries.clone()).await.unwrap();
        s.apply_to_state_machine(&entries).await.unwrap();
        let snap = s.build_snapshot().await.unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1)));

        // A fresh follower installs it.
        let other = tempfile::tempdir().unwrap();
        let mut f = LogStore::open(other.path()).unwrap();
        f.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
        drop(f);
        let mut f = LogStore::open(other.path()).unwrap();
        let v = VaultId::from_bytes([1; 16]);
        assert!(f.read(|m| m.get(&v, 1).is_some()));
        assert_eq!(f.last_applied_state().await.unwrap().0, Some(log_id(1, 1)));
        let cur = f
            .get_current_snapshot()
            .await
            .unwrap()
            .expect("snapshot kept");
        assert_eq!(cur.meta, snap.meta);

        // Garbage is refused, and changes nothing.
        let bad = Box::new(Cursor::new(b"{\"version\":1}".to_vec()));
        assert!(f.install_snapshot(&snap.meta, bad).await.is_err());
        assert!(f.read(|m| m.get(&v, 1).is_some()));
    }

    #[tokio::test]
    async fn a_torn_write_is_ignored_and_corruption_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        s.append_to_log(vec![membership_entry(0), proposal_entry(1, 1, b"plan A")])
            .await
            .unwrap();
        drop(s);
        let log = dir.path().join("raft/log");
        // kill -9 in the middle of appending entry 2: only its temp file exists.
        let torn = log.join(format!(".{:020}.json.tmp-0011223344556677", 2));
        std::fs::write(&torn, b"{\"version\":1,\"entry\":{\"log_id\":").unwrap();
        let torn_state = dir.path().join("raft/.state.json.tmp-8899aabbccddeeff");
        std::fs::write(&torn_state, b"{\"vers").unwrap();
        let mut s = LogStore::open(dir.path()).unwrap();
        assert_eq!(last_index(&mut s).await, Some(1));
        assert!(!torn.exists() && !torn_state.exists(), "temp files cleaned");
        drop(s);

        // A damaged entry file cannot come from a crash: refuse, name it.
        let victim = log.join(format!("{:020}.json", 1));
        std::fs::write(&victim, b"{\"version\":1,\"entry\":").unwrap();
        let err = LogStore::open(dir.path())
            .err()
            .expect("corrupt entry refused")
            .to_string();
        assert!(
            err.contains(&format!("{:020}.json", 1)) && err.contains("corrupt"),
            "{err}"
        );
        // Nor is a hole in the log accepted.
        std::fs::remove_file(&victim).unwrap();
        std::fs::write(
            log.join(format!("{:020}.json", 2)),
            serde_json::to_vec(&EntryFile {
                version: FORMAT_VERSION,
                entry: proposal_entry(2, 2, b"x"),
            })
            .unwrap(),
        )
        .unwrap();
        let err = LogStore::open(dir.path())
            .err()
            .expect("gap refused")
            .to_string();
        assert!(err.contains("gap"), "{err}");
        // A future format version is named as such.
        std::fs::write(dir.path().join("raft/vote.json"), b"{\"version\":9}").unwrap();
        let err = LogStore::open(dir.path())
            .err()
            .expect("version refused")
            .to_string();
        assert!(
            err.contains("vote.json") && err.contains("version 9"),
            "{err}"
        );
    }
}
