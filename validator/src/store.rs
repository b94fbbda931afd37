//! Crash-safe shard custody on local disk.
//!
//! ```text
//! <data_dir>/LOCK                                   held (flock) while the daemon runs
//! <data_dir>/vaults/<vault-id>/epoch-<n>/shard.pqvs  the sealed shard, addressed to us
//! <data_dir>/vaults/<vault-id>/epoch-<n>/manifest.pqvm
//! <data_dir>/vaults/<vault-id>/epoch-<n>/anchor.pqvm  operator-signed manifest the proof starts from
//! <data_dir>/vaults/<vault-id>/epoch-<n>/step-<k>.pqvm, step-<k>.pqve  certified steps up to n
//! <data_dir>/vaults/<vault-id>/CURRENT              "<n>": the committed epoch
//! <data_dir>/pending/<vault-id>                      our share re-sealed for the next epoch,
//!                                                    kept from `prepare` until the commit
//! <data_dir>/membership.pqvn                         the operator's newest membership removal
//! <data_dir>/keys/                                   epoch keys, wrapped (`crate::keyring`)
//! <data_dir>/removals/<member-id>.pqvz               a certified removal of a dead member
//! ```
//!
//! Each epoch directory carries its own proof: the last manifest signed by
//! the trusted operator (the anchor) and every certified step from there
//! (`vault::epoch`). An epoch reached by operator import is its own anchor.
//!
//! Every file is written atomically (temp, fsync, link/rename, dir fsync).
//! An import writes the new epoch's files first and switches `CURRENT`
//! last, so a crash at any moment leaves the previous epoch in force; an
//! epoch directory that `CURRENT` does not name is an interrupted import and
//! is removed on the next attempt. At start every committed epoch is
//! re-verified (manifest signature, signer, shard hash, recipient); a
//! mismatch stops the daemon with the path and the reason, never a reset.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use thiserror::Error;
use vault::epoch::{self, EpochCertificate};
use vault::fsio::{self, FsError, Mode};
use vault::governance::TransitionPolicy;
use vault::identity::Fingerprint;

use crate::keyring::Keyring;
use vault::manifest::{Manifest, VaultId, VerifiedManifest};
use vault::membership::Removal;
use vault::recover::{check_record, check_sealed};

use crate::crash_point;
#[cfg(feature = "failpoints")]
use crate::failpoint as fp;

/// Largest manifest or shard file accepted.
const MAX_FILE: u64 = 2 << 20;

/// File of the operator's newest membership removal, in the data directory.
pub const REMOVAL_FILE: &str = "membership.pqvn";

/// Directory of certified removals (`PQVZ`), one file per removed member.
pub const CERTIFIED_REMOVALS_DIR: &str = "removals";

/// Largest certified removal accepted (128 votes of up to 24 KiB).
pub const MAX_CERTIFIED_REMOVAL: usize = 3 << 20;
/// Most repair helper pairs kept in dispute per epoch (every pair of 32
/// helpers; a vault has at most 255 shares, and pairs beyond the bound are
/// dropped, which only makes a next attempt's helper choice less informed).
pub const MAX_DISPUTES: usize = 496;

/// Successors of one epoch a validator refuses at most (D53): as many as
/// the epoch log keeps proposals of it.
pub const MAX_REFUSED: usize = 1 + crate::consensus::machine::MAX_RIVALS;

/// Why the store refused to open or to import.
#[derive(Debug, Error)]
pub enum StoreError {
    /// File-system failure.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another validator (LOCK is held)")]
    Locked(PathBuf),
    /// Stored data failed verification: the store is corrupt.
    #[error("store is corrupt at {path}: {reason}")]
    Corrupt {
        /// The offending file or directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An import was refused; nothing stored changed.
    #[error("import refused: {0}")]
    Rejected(String),
    /// A bounded record is full; nothing stored changed.
    #[error("{0}")]
    Full(String),
}

/// Certified steps after an anchor: (manifest bytes, certificate bytes).
pub type Steps = Vec<(Vec<u8>, Vec<u8>)>;

/// The shard held for one vault.
#[derive(Debug, Clone)]
pub struct Held {
    /// Committed epoch.
    pub epoch: u64,
    /// Share index.
    pub index: u8,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Sealed shard bytes.
    pub shard: Vec<u8>,
    /// The operator-signed manifest the proof of this epoch starts from.
    pub anchor: Vec<u8>,
    /// Certified steps from the anchor to this epoch: (manifest, certificate).
    pub steps: Steps,
}

/// The on-disk store.
pub struct Store {
    root: PathBuf,
    /// The data directory's lock; `None` only for a read-only check.
    _lock: Option<File>,
    trusted: Fingerprint,
    vaults: BTreeMap<VaultId, Held>,
    /// Verified operator-signed policies, by vault (from `policies/`).
    policies: BTreeMap<VaultId, TransitionPolicy>,
    /// The operator's newest membership removal (`membership.pqvn`),
    /// verified; version 0 if none.
    removal: Removal,
    /// Certified removals held (`removals/`): target -> (statement version
    /// the votes were made under, the `PQVZ` bytes). Whether one still
    /// removes its target is [`Store::removed`]'s question.
    certified: BTreeMap<String, (u32, Vec<u8>)>,
}

/// Releases the data directory's lock explicitly when the store goes away.
/// Closing the file alone is not enough: a process being spawned at that
/// moment (the crash-walk tests spawn their victims from the same test
/// binary) briefly holds a copy of the descriptor until it execs, and an
/// `flock` lasts while any copy is open, so a store reopened right then
/// would find its own directory "in use".
impl Drop for Store {
    fn drop(&mut self) {
        if let Some(lock) = &self._lock {
            let _ = lock.unlock();
        }
    }
}

fn corrupt(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl Store {
    /// Opens (creating if needed) the store, locks it and verifies it.
    pub fn open(root: &Path, trusted: Fingerprint, me: Fingerprint) -> Result<Store, StoreError> {
        fsio::create_private_dir(&root.join("vaults"))?;
        let lock_path = root.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| corrupt(&lock_path, e))?;
        lock.try_lock()
            .map_err(|_| StoreError::Locked(root.to_path_buf()))?;
        Self::load(root, Some(lock), trusted, me)
    }

    /// Opens and verifies the store without creating or changing anything
    /// (`validator --check`); a missing data directory is an empty store.
    /// It takes a shared lock on an existing `LOCK` (an advisory lock,
    /// nothing is written), so a running validator's store is refused
    /// rather than read in the middle of a commit. Never write through it.
    pub fn open_read_only(
        root: &Path,
        trusted: Fingerprint,
        me: Fingerprint,
    ) -> Result<Store, StoreError> {
        let lock_path = root.join("LOCK");
        let lock = match File::open(&lock_path) {
            Ok(f) => {
                f.try_lock_shared()
                    .map_err(|_| StoreError::Locked(root.to_path_buf()))?;
                Some(f)
            }
            Err(_) => None,
        };
        Self::load(root, lock, trusted, me)
    }

    fn load(
        root: &Path,
        lock: Option<File>,
        trusted: Fingerprint,
        me: Fingerprint,
    ) -> Result<Store, StoreError> {
        let mut store = Store {
            root: root.to_path_buf(),
            _lock: lock,
            trusted,
            vaults: BTreeMap::new(),
            policies: BTreeMap::new(),
            removal: Removal::default(),
            certified: BTreeMap::new(),
        };
        let cdir = root.join(CERTIFIED_REMOVALS_DIR);
        if cdir.exists() {
            for entry in fs::read_dir(&cdir).map_err(|e| corrupt(&cdir, e))? {
                let path = entry.map_err(|e| corrupt(&cdir, e))?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // An interrupted atomic write.
                if name.starts_with('.') {
                    continue;
                }
                let bytes = fsio::read_limited(&path, MAX_CERTIFIED_REMOVAL as u64)?;
                let c = vault::membership::CertifiedRemoval::open(&bytes)
                    .map_err(|e| corrupt(&path, e))?;
                if name != format!("{}.pqvz", c.target) {
                    return Err(corrupt(&path, "certified removal named for another member"));
                }
                store.certified.insert(c.target, (c.base_version, bytes));
            }
        }
        let npath = root.join(REMOVAL_FILE);
        if npath.exists() {
            let bytes = fsio::read_limited(&npath, MAX_FILE)?;
            store.removal =
                Removal::open(&bytes, &store.trusted).map_err(|e| corrupt(&npath, e))?;
        }
        // Policies first: verifying a stored chain counts its certificates
        // under the vault's policy.
        let pdir = root.join("policies");
        if pdir.exists() {
            for entry in fs::read_dir(&pdir).map_err(|e| corrupt(&pdir, e))? {
                let path = entry.map_err(|e| corrupt(&pdir, e))?.path();
                let bytes = fsio::read_limited(&path, MAX_FILE)?;
                let p = TransitionPolicy::open(&bytes, &store.trusted)
                    .map_err(|e| corrupt(&path, e))?;
                if path.file_name() != Some(std::ffi::OsStr::new(&format!("{}.pqvl", p.vault_id))) {
                    return Err(corrupt(&path, "policy file named for another vault"));
                }
                store.policies.insert(p.vault_id, p);
            }
        }
        let dir = root.join("vaults");
        if !dir.exists() {
            return Ok(store);
        }
        let entries = fs::read_dir(&dir).map_err(|e| corrupt(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| corrupt(&dir, e))?.path();
            let held = store.load_vault(&path, &me)?;
            let id = Manifest::decode(&held.manifest)
                .map_err(|e| corrupt(&path, e))?
                .body()
                .vault_id;
            store.vaults.insert(id, held);
        }
        Ok(store)
    }

    fn load_vault(&self, dir: &Path, me: &Fingerprint) -> Result<Held, StoreError> {
        let current = dir.join("CURRENT");
        let text = fs::read_to_string(&current).map_err(|e| corrupt(&current, e))?;
        let epoch: u64 = text
            .trim()
            .parse()
            .map_err(|_| corrupt(&current, "not an epoch number"))?;
        let edir = dir.join(format!("epoch-{epoch}"));
        let manifest = fsio::read_limited(&edir.join("manifest.pqvm"), MAX_FILE)?;
        let shard = fsio::read_limited(&edir.join("shard.pqvs"), MAX_FILE)?;
        let anchor_path = edir.join("anchor.pqvm");
        let anchor = if anchor_path.exists() {
            fsio::read_limited(&anchor_path, MAX_FILE)?
        } else {
            manifest.clone()
        };
        let first = Manifest::decode(&anchor)
            .map_err(|e| corrupt(&anchor_path, e))?
            .body()
            .epoch;
        let mut steps = Vec::new();
        for k in first.saturating_add(1)..=epoch {
            steps.push((
                fsio::read_limited(&edir.join(format!("step-{k}.pqvm")), MAX_FILE)?,
                fsio::read_limited(&edir.join(format!("step-{k}.pqve")), MAX_FILE)?,
            ));
        }
        let m = self
            .verify_chain(&anchor, &steps)
            .map_err(|e| corrupt(&edir, e))?;
        let tip =
            Manifest::decode(&manifest).map_err(|e| corrupt(&edir.join("manifest.pqvm"), e))?;
        if m.digest() != tip.digest() {
            return Err(corrupt(
                &edir,
                "manifest.pqvm is not the end of its proof chain",
            ));
        }
        let (parsed, entry) =
            check_sealed(&m, &shard).map_err(|e| corrupt(&edir.join("shard.pqvs"), e))?;
        if parsed.header.recipient != *me {
            return Err(corrupt(
                &edir,
                "shard is not addressed to this validator's identity",
            ));
        }
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if m.body().epoch != epoch || dir_name != m.body().vault_id.to_string() {
            return Err(corrupt(
                &edir,
                "manifest's vault id or epoch does not match its directory",
            ));
        }
        Ok(Held {
            epoch,
            index: entry.index,
            manifest,
            shard,
            anchor,
            steps,
        })
    }

    /// Verifies an anchor (against the trusted signer) and the certified
    /// steps after it; returns the last manifest.
    pub fn verify_chain(
        &self,
        anchor: &[u8],
        steps: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<VerifiedManifest, String> {
        let start = self.verify_manifest(anchor)?;
        let decoded = steps
            .iter()
            .map(|(m, c)| EpochCertificate::decode(c).map(|c| (m.clone(), c)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        // Certificates count under the vault's policy from the epoch it
        // took effect: with f liars tolerated, max(t, ceil((n+f+1)/2)).
        let policy = self.policies.get(&start.body().vault_id).copied();
        epoch::verify_chain_with(start, &decoded, |from| policy.map_or(0, |p| p.f_at(from)))
            .map_err(|e| e.to_string())
    }

    /// Verifies one more step of a chain ending at `current`, counting its
    /// certificate under the vault's policy as [`Store::verify_chain`]
    /// does: a step that would not verify as part of the chain afterwards
    /// is never taken (with f = 1, four of seven signatures are a fork's).
    fn verify_next(
        &self,
        current: &VerifiedManifest,
        next_manifest: &[u8],
        cert: &EpochCertificate,
        step: usize,
    ) -> Result<VerifiedManifest, StoreError> {
        let f = self
            .policies
            .get(&current.body().vault_id)
            .map_or(0, |p| p.f_at(current.body().epoch));
        epoch::verify_step_with(current, next_manifest, cert, step, f)
            .map_err(|e| StoreError::Rejected(e.to_string()))
    }

    /// Writes epoch `held.epoch` of vault `id` completely, then commits it
    /// (`CURRENT`), then removes the epoch it replaces. A crash at any point
    /// leaves a committed, self-verifying epoch.
    fn commit(&mut self, id: VaultId, held: Held, keys: &Keyring) -> Result<&Held, StoreError> {
        let vdir = self.root.join("vaults").join(id.to_string());
        let edir = vdir.join(format!("epoch-{}", held.epoch));
        if edir.exists() {
            // Left by an interrupted write: never committed, safe to drop.
            fs::remove_dir_all(&edir).map_err(|e| corrupt(&edir, e))?;
        }
        fsio::create_private_dir(&edir)?;
        crash_point!(fp::STORE_COMMIT_DIR);
        fsio::write_atomic(&edir.join("shard.pqvs"), &held.shard, Mode::Public, false)?;
        crash_point!(fp::STORE_COMMIT_SHARD);
        if held.anchor != held.manifest {
            fsio::write_atomic(&edir.join("anchor.pqvm"), &held.anchor, Mode::Public, false)?;
        }
        let first = held.epoch - held.steps.len() as u64;
        for (k, (m, c)) in (first + 1..).zip(&held.steps) {
            fsio::write_atomic(&edir.join(format!("step-{k}.pqvm")), m, Mode::Public, false)?;
            fsio::write_atomic(&edir.join(format!("step-{k}.pqve")), c, Mode::Public, false)?;
        }
        crash_point!(fp::STORE_COMMIT_PROOF);
        fsio::write_atomic(
            &edir.join("manifest.pqvm"),
            &held.manifest,
            Mode::Public,
            false,
        )?;
        crash_point!(fp::STORE_COMMIT_MANIFEST);
        fsio::write_atomic(
            &vdir.join("CURRENT"),
            format!("{}\n", held.epoch).as_bytes(),
            Mode::Public,
            true,
        )?;
        crash_point!(fp::STORE_COMMIT_CURRENT);
        let epoch = held.epoch;
        self.vaults.insert(id, held);
        // The new epoch is committed: every other epoch directory may go,
        // the one it replaces and any left by an earlier crash between
        // switching `CURRENT` and removing the old epoch.
        let keep = format!("epoch-{epoch}");
        if let Ok(entries) = fs::read_dir(&vdir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("epoch-") && name != keep {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        // Keys of the epochs before this one go too (forward secrecy: a
        // shard of an older epoch, archived by anyone, opens no more here).
        match keys.erase_before(&id, epoch) {
            Ok(0) => {}
            Ok(n) => {
                crate::unsealed::clear();
                tracing::info!(vault = %id, epoch, erased = n, "erased the epoch keys of earlier epochs");
            }
            Err(e) => {
                tracing::warn!(vault = %id, "could not erase earlier epoch keys (retried at the next start): {e}")
            }
        }
        // And the initial key, once no vault here is at a genesis epoch
        // sealed to it.
        match keys.settle_initial(&self.sealed_to()) {
            Ok(false) => {}
            Ok(true) => {
                crate::unsealed::clear();
                tracing::info!(vault = %id, epoch, "erased the initial KEM key: no vault here is at a genesis epoch sealed to it");
            }
            Err(e) => {
                tracing::warn!(
                    "could not erase the initial KEM key (retried at the next start): {e}"
                )
            }
        }
        crash_point!(fp::STORE_COMMIT_DONE);
        self.vaults
            .get(&id)
            .ok_or_else(|| StoreError::Rejected("internal: vault vanished".into()))
    }

    /// Checks that `shard` is ours under manifest `m` and that its share
    /// matches the commitment; returns its index.
    fn check_ours(m: &VerifiedManifest, shard: &[u8], keys: &Keyring) -> Result<u8, StoreError> {
        let (_, entry) = check_sealed(m, shard).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let record =
            crate::unsealed::open(shard, keys).map_err(|e| StoreError::Rejected(e.to_string()))?;
        check_record(m, &record).map_err(|e| StoreError::Rejected(e.to_string()))?;
        Ok(entry.index)
    }

    /// Moves vault `id` to the next epoch on the strength of an epoch
    /// certificate: `next_manifest` must be certified by a threshold of the
    /// current epoch's validators, and `shard` must be ours in it. Slow
    /// (unseals): call from a blocking thread. Nothing changes on error.
    pub fn advance(
        &mut self,
        id: &VaultId,
        next_manifest: &[u8],
        certificate: &[u8],
        shard: &[u8],
        keys: &Keyring,
    ) -> Result<&Held, StoreError> {
        let held = self
            .vaults
            .get(id)
            .ok_or_else(|| StoreError::Rejected(format!("no shard of vault {id} is held here")))?;
        let current = self
            .verify_chain(&held.anchor, &held.steps)
            .map_err(StoreError::Rejected)?;
        let cert = EpochCertificate::decode(certificate)
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let next = self.verify_next(&current, next_manifest, &cert, held.steps.len() + 1)?;
        let index = Self::check_ours(&next, shard, keys)?;
        let mut steps = held.steps.clone();
        steps.push((next_manifest.to_vec(), certificate.to_vec()));
        let new = Held {
            epoch: next.body().epoch,
            index,
            manifest: next_manifest.to_vec(),
            shard: shard.to_vec(),
            anchor: held.anchor.clone(),
            steps,
        };
        self.commit(*id, new, keys)
    }

    fn verify_manifest(&self, bytes: &[u8]) -> Result<VerifiedManifest, String> {
        Manifest::decode(bytes)
            .and_then(|m| m.verify(Some(&self.trusted)))
            .map_err(|e| e.to_string())
    }

    /// Verifies and stores a manifest and our shard of it. Refuses anything
    /// not signed by the trusted signer, not addressed to `key`, whose share
    /// does not match its commitment, or older than the epoch held. Slow
    /// (unseals the shard): call from a blocking thread.
    pub fn import(
        &mut self,
        manifest: &[u8],
        shard: &[u8],
        keys: &Keyring,
    ) -> Result<&Held, StoreError> {
        let (id, epoch, index) = self.check_import(manifest, shard, keys)?;
        if self.vaults.get(&id).is_some_and(|h| h.epoch == epoch) {
            // Re-importing what is held changes nothing.
            return self
                .vaults
                .get(&id)
                .ok_or_else(|| StoreError::Rejected("internal: vault vanished".into()));
        }
        let held = Held {
            epoch,
            index,
            manifest: manifest.to_vec(),
            shard: shard.to_vec(),
            anchor: manifest.to_vec(),
            steps: Vec::new(),
        };
        self.commit(id, held, keys)
    }

    /// Every check [`Store::import`] makes, without storing anything:
    /// returns the vault id, epoch and our share index. Slow (unseals).
    pub fn check_import(
        &self,
        manifest: &[u8],
        shard: &[u8],
        keys: &Keyring,
    ) -> Result<(VaultId, u64, u8), StoreError> {
        let m = self
            .verify_manifest(manifest)
            .map_err(StoreError::Rejected)?;
        let index = Self::check_ours(&m, shard, keys)?;
        let (id, epoch) = (m.body().vault_id, m.body().epoch);
        if let Some(h) = self.vaults.get(&id) {
            if h.epoch > epoch || (h.epoch == epoch && h.shard != shard) {
                return Err(StoreError::Rejected(format!(
                    "vault {id} is already at epoch {} here; refusing epoch {epoch}",
                    h.epoch
                )));
            }
        }
        Ok((id, epoch, index))
    }

    /// Takes up a vault this validator did not hold (a repair replacement):
    /// `anchor` and `steps` prove epoch e, `certificate` moves it to
    /// `next_manifest`, in which `shard` must be ours. Slow (unseals).
    pub fn adopt(
        &mut self,
        anchor: &[u8],
        steps: &Steps,
        next_manifest: &[u8],
        certificate: &[u8],
        shard: &[u8],
        keys: &Keyring,
    ) -> Result<&Held, StoreError> {
        let current = self
            .verify_chain(anchor, steps)
            .map_err(StoreError::Rejected)?;
        let id = current.body().vault_id;
        if self.vaults.contains_key(&id) {
            return Err(StoreError::Rejected(format!(
                "vault {id} is already held here"
            )));
        }
        let cert = EpochCertificate::decode(certificate)
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        let next = self.verify_next(&current, next_manifest, &cert, steps.len() + 1)?;
        let index = Self::check_ours(&next, shard, keys)?;
        let mut all = steps.clone();
        all.push((next_manifest.to_vec(), certificate.to_vec()));
        let held = Held {
            epoch: next.body().epoch,
            index,
            manifest: next_manifest.to_vec(),
            shard: shard.to_vec(),
            anchor: anchor.to_vec(),
            steps: all,
        };
        self.commit(id, held, keys)
    }

    /// Records, durably, that we sign `digest` as the successor of epoch
    /// `epoch` of `id`; refuses if we already signed another one. One vote
    /// per epoch, kept across restarts: certificates need a majority of
    /// the epoch's holders, so two successors can never both be certified.
    pub fn vote(&self, id: &VaultId, epoch: u64, digest: &[u8; 32]) -> Result<(), StoreError> {
        let dir = self.root.join("votes");
        fsio::create_private_dir(&dir)?;
        let path = dir.join(format!("{id}-epoch-{epoch}"));
        let check = |path: &Path| -> Result<(), StoreError> {
            let had = fsio::read_limited(path, 64)?;
            if had.as_slice() == digest.as_slice() {
                Ok(())
            } else if had.len() == 32 {
                Err(StoreError::Rejected(format!(
                    "already signed another successor of epoch {epoch}"
                )))
            } else {
                Err(corrupt(path, "a vote is 32 bytes"))
            }
        };
        if path.exists() {
            return check(&path);
        }
        crash_point!(fp::STORE_VOTE_BEFORE);
        match fsio::write_atomic(&path, digest, Mode::Public, false) {
            Ok(()) => {
                crash_point!(fp::STORE_VOTE_WRITTEN);
                Ok(())
            }
            // Lost a race with a concurrent vote: whatever won decides.
            Err(_) if path.exists() => check(&path),
            Err(e) => Err(e.into()),
        }
    }

    /// The digest of the successor of epoch `epoch` of `id` we signed
    /// ([`Store::vote`]), if any (and readable).
    pub fn voted_successor(&self, id: &VaultId, epoch: u64) -> Option<[u8; 32]> {
        let path = self.root.join("votes").join(format!("{id}-epoch-{epoch}"));
        fsio::read_limited(&path, 64).ok()?.try_into().ok()
    }

    /// Keeps the successor request we signed for epoch `epoch` of `id`
    /// and our one-signature certificate (`votes/<id>-epoch-<e>.signed`:
    /// `var(PQSQ) var(PQVE)`), so that after a restart we can still show
    /// the copy our vote is spent on, and finish it (`crate::successor`).
    /// Those of earlier epochs are removed.
    pub fn save_signed_request(
        &self,
        id: &VaultId,
        epoch: u64,
        request: &[u8],
        certificate: &[u8],
    ) -> Result<(), StoreError> {
        let dir = self.root.join("votes");
        fsio::create_private_dir(&dir)?;
        let mut w = vault::codec::Writer::raw();
        w.var_bytes(request).var_bytes(certificate);
        fsio::write_atomic(
            &dir.join(format!("{id}-epoch-{epoch}.signed")),
            &w.finish(),
            Mode::Public,
            true,
        )?;
        remove_earlier_epochs(&dir, id, epoch, ".signed");
        Ok(())
    }

    /// The request and certificate kept by [`Store::save_signed_request`],
    /// if any; an unreadable file counts as none (they are re-checked
    /// wherever they are used).
    pub fn signed_request(&self, id: &VaultId, epoch: u64) -> Option<(Vec<u8>, Vec<u8>)> {
        let path = self
            .root
            .join("votes")
            .join(format!("{id}-epoch-{epoch}.signed"));
        let bytes = fsio::read_limited(&path, 8 << 20).ok()?;
        let mut r = vault::codec::Reader::raw(&bytes);
        let q = r.var_bytes("request", 4 << 20).ok()?.to_vec();
        let c = r.var_bytes("certificate", 64 << 10).ok()?.to_vec();
        r.finish().ok()?;
        Some((q, c))
    }

    /// Records, durably and before we say so, that we refuse to sign the
    /// successor `digest` of epoch `epoch` of `id` (a stalled decision of
    /// the epoch log, withdrawn on a quorum of such refusals: D53)
    /// (`votes/<id>-epoch-<e>.refused`: digests of 32 bytes, at most
    /// [`MAX_REFUSED`]). Those of earlier epochs are removed.
    pub fn refuse_successor(
        &self,
        id: &VaultId,
        epoch: u64,
        digest: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut held = self.refused_successors(id, epoch);
        if held.contains(digest) {
            return Ok(());
        }
        if held.len() >= MAX_REFUSED {
            return Err(StoreError::Full(format!(
                "{MAX_REFUSED} successors of epoch {epoch} refused already"
            )));
        }
        held.push(*digest);
        let dir = self.root.join("votes");
        fsio::create_private_dir(&dir)?;
        fsio::write_atomic(
            &dir.join(format!("{id}-epoch-{epoch}.refused")),
            &held.concat(),
            Mode::Public,
            true,
        )?;
        remove_earlier_epochs(&dir, id, epoch, ".refused");
        Ok(())
    }

    /// The successors of epoch `epoch` of `id` we refused
    /// ([`Store::refuse_successor`]); an unreadable file counts as every
    /// digest it holds whole.
    pub fn refused_successors(&self, id: &VaultId, epoch: u64) -> Vec<[u8; 32]> {
        let path = self
            .root
            .join("votes")
            .join(format!("{id}-epoch-{epoch}.refused"));
        let bytes = fsio::read_limited(&path, 32 * MAX_REFUSED as u64).unwrap_or_default();
        bytes
            .chunks_exact(32)
            .filter_map(|c| c.try_into().ok())
            .collect()
    }

    /// When we first saw the decided successor `digest` of epoch `epoch`
    /// of `id` stalled (Unix ms): kept on disk, so a restarted holder goes
    /// on counting towards `[consensus] stalled_after_ms` instead of
    /// starting again (D53). The first call records `now_ms`; entries are
    /// bounded like refusals ([`MAX_REFUSED`]), and those of earlier
    /// epochs are removed. An unreadable file counts as no entry.
    pub fn stalled_since(
        &self,
        id: &VaultId,
        epoch: u64,
        digest: &[u8; 32],
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let path = self
            .root
            .join("votes")
            .join(format!("{id}-epoch-{epoch}.stalled"));
        let bytes = fsio::read_limited(&path, 40 * MAX_REFUSED as u64).unwrap_or_default();
        let mut seen: Vec<([u8; 32], u64)> = bytes
            .chunks_exact(40)
            .filter_map(|c| {
                let d: [u8; 32] = c[..32].try_into().ok()?;
                let t = u64::from_le_bytes(c[32..].try_into().ok()?);
                Some((d, t))
            })
            .collect();
        if let Some((_, t)) = seen.iter().find(|(d, _)| d == digest) {
            return Ok(*t);
        }
        if seen.len() >= MAX_REFUSED {
            return Err(StoreError::Full(format!(
                "{MAX_REFUSED} stalled successors of epoch {epoch} seen already"
            )));
        }
        seen.push((*digest, now_ms));
        let mut out = Vec::with_capacity(40 * seen.len());
        for (d, t) in &seen {
            out.extend_from_slice(d);
            out.extend_from_slice(&t.to_le_bytes());
        }
        let dir = self.root.join("votes");
        fsio::create_private_dir(&dir)?;
        fsio::write_atomic(&path, &out, Mode::Public, true)?;
        remove_earlier_epochs(&dir, id, epoch, ".stalled");
        Ok(now_ms)
    }

    /// Adds `pairs` to the repair helpers in dispute for epoch `epoch` of
    /// `id` (share index pairs, smaller first; `transition::heal::
    /// pick_helpers` keeps each pair apart), kept on disk so a leader that
    /// restarts does not meet a withholding helper again. At most
    /// [`MAX_DISPUTES`] pairs; earlier epochs' files are removed.
    pub fn add_helper_disputes(
        &self,
        id: &VaultId,
        epoch: u64,
        pairs: &std::collections::BTreeSet<(u8, u8)>,
    ) -> Result<(), StoreError> {
        let mut all = self.helper_disputes(id, epoch);
        all.extend(pairs.iter().copied());
        let bytes: Vec<u8> = all
            .iter()
            .take(MAX_DISPUTES)
            .flat_map(|(a, b)| [*a, *b])
            .collect();
        self.write_disputes(id, epoch, "helpers", &bytes)
    }

    /// The repair helpers in dispute for epoch `epoch` of `id`
    /// ([`Store::add_helper_disputes`]); an unreadable file counts as none.
    pub fn helper_disputes(
        &self,
        id: &VaultId,
        epoch: u64,
    ) -> std::collections::BTreeSet<(u8, u8)> {
        self.read_disputes(id, epoch, "helpers", 2 * MAX_DISPUTES)
            .chunks_exact(2)
            .filter(|c| c[0] < c[1])
            .map(|c| (c[0], c[1]))
            .collect()
    }

    /// Adds to the re-share dealers named silent for epoch `epoch` of
    /// `id`: per dealer index, the most recipients of one failed attempt
    /// that never got its sub-share (`transition::heal::pick_dealers`),
    /// kept on disk like the helpers' disputes. Kept across attempts, so a
    /// dealer left out is not picked again the attempt after.
    pub fn add_silent_dealers(
        &self,
        id: &VaultId,
        epoch: u64,
        named: &BTreeMap<u8, usize>,
    ) -> Result<(), StoreError> {
        let mut all = self.silent_dealers(id, epoch);
        for (d, n) in named {
            let e = all.entry(*d).or_default();
            *e = (*e).max(*n);
        }
        let bytes: Vec<u8> = all
            .iter()
            .flat_map(|(d, n)| {
                let n = u8::try_from(*n).unwrap_or(u8::MAX);
                [*d, n]
            })
            .collect();
        self.write_disputes(id, epoch, "dealers", &bytes)
    }

    /// The re-share dealers named silent for epoch `epoch` of `id`
    /// ([`Store::add_silent_dealers`]); an unreadable file counts as none.
    pub fn silent_dealers(&self, id: &VaultId, epoch: u64) -> BTreeMap<u8, usize> {
        self.read_disputes(id, epoch, "dealers", 2 * 256)
            .chunks_exact(2)
            .map(|c| (c[0], usize::from(c[1])))
            .collect()
    }

    /// Replaces our judgements of the re-share recipients of epoch `epoch`
    /// of `id` (D57): per member id, whether we judged it withholding and
    /// the live dealers it named missing without a receipt. Kept on disk
    /// so a restart does not cost another attempt; at most 255 members,
    /// ids of at most 255 bytes.
    pub fn set_judgements(
        &self,
        id: &VaultId,
        epoch: u64,
        judged: &BTreeMap<String, (bool, BTreeSet<u8>)>,
    ) -> Result<(), StoreError> {
        let mut w = vault::codec::Writer::raw();
        for (peer, (withheld, dealers)) in judged.iter().take(255) {
            let Ok(len) = u8::try_from(peer.len()) else {
                continue;
            };
            let dealers: Vec<u8> = dealers.iter().copied().take(255).collect();
            w.u8(len)
                .bytes(peer.as_bytes())
                .u8(u8::from(*withheld))
                .u8(dealers.len() as u8)
                .bytes(&dealers);
        }
        self.write_disputes(id, epoch, "recipients", &w.finish())
    }

    /// Our judgements of the re-share recipients of epoch `epoch` of `id`
    /// ([`Store::set_judgements`]); a damaged file counts as none.
    pub fn judgements(&self, id: &VaultId, epoch: u64) -> BTreeMap<String, (bool, BTreeSet<u8>)> {
        let bytes = self.read_disputes(id, epoch, "recipients", 255 * (3 + 255 + 255));
        member_records(&bytes, |r| {
            let peer = member_id(r)?;
            let withheld = r.u8("withheld").ok()? == 1;
            let count = r.u8("count").ok()?;
            let dealers = r.take(usize::from(count), "dealers").ok()?;
            Some((peer, (withheld, dealers.iter().copied().collect())))
        })
    }

    /// Adds `peer` to the members we convicted of lying in epoch `epoch`
    /// of `id` (a dealer named by its own signature, D48; a requester that
    /// split the signers, D49), kept so a restart keeps the conviction
    /// until a later epoch commits. At most 255 members, ids of at most
    /// 255 bytes; whether it is new on disk.
    pub fn add_convicted(&self, id: &VaultId, epoch: u64, peer: &str) -> Result<bool, StoreError> {
        let mut all = self.convicted(id, epoch);
        if u8::try_from(peer.len()).is_err() || all.len() >= 255 || !all.insert(peer.to_string()) {
            return Ok(false);
        }
        self.write_convicted(id, epoch, &all)?;
        Ok(true)
    }

    /// Drops `peer` from the members convicted in epoch `epoch` of `id`
    /// (the operator removed it: a new identity under its id starts
    /// clean).
    pub fn unconvict(&self, id: &VaultId, epoch: u64, peer: &str) -> Result<(), StoreError> {
        let mut all = self.convicted(id, epoch);
        if !all.remove(peer) {
            return Ok(());
        }
        self.write_convicted(id, epoch, &all)
    }

    fn write_convicted(
        &self,
        id: &VaultId,
        epoch: u64,
        all: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let mut w = vault::codec::Writer::raw();
        for p in all {
            w.u8(p.len() as u8).bytes(p.as_bytes());
        }
        self.write_disputes(id, epoch, "convicted", &w.finish())
    }

    /// The members convicted in epoch `epoch` of `id`
    /// ([`Store::add_convicted`]); a damaged file counts as none.
    pub fn convicted(&self, id: &VaultId, epoch: u64) -> BTreeSet<String> {
        let bytes = self.read_disputes(id, epoch, "convicted", 255 * 256);
        member_records(&bytes, member_id)
    }

    fn write_disputes(
        &self,
        id: &VaultId,
        epoch: u64,
        kind: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let dir = self.root.join("disputes");
        fsio::create_private_dir(&dir)?;
        let suffix = format!(".{kind}");
        fsio::write_atomic(
            &dir.join(format!("{id}-epoch-{epoch}{suffix}")),
            bytes,
            Mode::Public,
            true,
        )?;
        remove_earlier_epochs(&dir, id, epoch, &suffix);
        Ok(())
    }

    fn read_disputes(&self, id: &VaultId, epoch: u64, kind: &str, max: usize) -> Vec<u8> {
        let path = self
            .root
            .join("disputes")
            .join(format!("{id}-epoch-{epoch}.{kind}"));
        fsio::read_limited(&path, max as u64).unwrap_or_default()
    }

    /// Forgets the disputes of epochs of `id` before `epoch` (called when
    /// `epoch` is committed: they named the helpers and dealers of
    /// polynomials that are gone).
    pub fn forget_disputes_before(&self, id: &VaultId, epoch: u64) {
        let dir = self.root.join("disputes");
        remove_earlier_epochs(&dir, id, epoch, ".helpers");
        remove_earlier_epochs(&dir, id, epoch, ".dealers");
        remove_earlier_epochs(&dir, id, epoch, ".recipients");
        remove_earlier_epochs(&dir, id, epoch, ".convicted");
    }

    /// Whether we signed a successor of epoch `epoch` of `id` ([`Store::vote`]).
    pub fn signed_successor(&self, id: &VaultId, epoch: u64) -> bool {
        self.root
            .join("votes")
            .join(format!("{id}-epoch-{epoch}"))
            .exists()
    }

    /// The operator-signed transition policy of `id` we hold (verified
    /// when it was stored or loaded); the legacy policy (f = 0) if none.
    pub fn policy(&self, id: &VaultId) -> TransitionPolicy {
        self.policies
            .get(id)
            .copied()
            .unwrap_or_else(|| TransitionPolicy::legacy(*id))
    }

    /// The stored signed policy of `id`, as bytes, if any.
    pub fn policy_bytes(&self, id: &VaultId) -> Option<Vec<u8>> {
        fsio::read_limited(&self.policy_path(id), MAX_FILE).ok()
    }

    fn policy_path(&self, id: &VaultId) -> PathBuf {
        self.root.join("policies").join(format!("{id}.pqvl"))
    }

    /// Adopts the signed policy `bytes` if it verifies against the trusted
    /// signer, is for a vault we hold, and has a higher version than the
    /// one we hold (an older or equal one changes nothing: `Ok(false)`).
    pub fn adopt_policy(&mut self, bytes: &[u8]) -> Result<bool, StoreError> {
        let p = TransitionPolicy::open(bytes, &self.trusted)
            .map_err(|e| StoreError::Rejected(format!("policy: {e}")))?;
        if !self.vaults.contains_key(&p.vault_id) {
            return Err(StoreError::Rejected(format!(
                "policy for vault {}, which we do not hold",
                p.vault_id
            )));
        }
        if self.policy(&p.vault_id).version >= p.version {
            return Ok(false);
        }
        // The chain we hold must still verify under it (a policy made
        // effective from an epoch already certified under weaker rules
        // would make our own store unreadable).
        let before = self.policies.insert(p.vault_id, p);
        let check = self
            .vaults
            .get(&p.vault_id)
            .map(|h| self.verify_chain(&h.anchor, &h.steps));
        if let Some(Err(e)) = check {
            match before {
                Some(b) => self.policies.insert(p.vault_id, b),
                None => self.policies.remove(&p.vault_id),
            };
            return Err(StoreError::Rejected(format!(
                "policy version {}: the chain we hold does not meet it ({e}); sign it effective from the current epoch",
                p.version
            )));
        }
        fsio::create_private_dir(&self.root.join("policies"))?;
        if let Err(e) =
            fsio::write_atomic(&self.policy_path(&p.vault_id), bytes, Mode::Public, true)
        {
            match before {
                Some(b) => self.policies.insert(p.vault_id, b),
                None => self.policies.remove(&p.vault_id),
            };
            return Err(e.into());
        }
        Ok(true)
    }

    /// The operator's membership removal we hold (verified when it was
    /// stored or loaded); version 0, nobody removed, if none.
    pub fn removal(&self) -> &Removal {
        &self.removal
    }

    /// The stored signed membership removal, as bytes, if any.
    pub fn removal_bytes(&self) -> Option<Vec<u8>> {
        fsio::read_limited(&self.root.join(REMOVAL_FILE), MAX_FILE).ok()
    }

    /// Adopts the signed membership removal `bytes` if it verifies against
    /// the trusted signer and has a higher version than the one we hold,
    /// persisting it first; `Ok(None)` if not newer, else the adopted one.
    pub fn adopt_removal(&mut self, bytes: &[u8]) -> Result<Option<Removal>, StoreError> {
        let r = Removal::open(bytes, &self.trusted)
            .map_err(|e| StoreError::Rejected(format!("membership removal: {e}")))?;
        if r.version <= self.removal.version {
            return Ok(None);
        }
        fsio::write_atomic(&self.root.join(REMOVAL_FILE), bytes, Mode::Public, true)?;
        self.removal = r.clone();
        Ok(Some(r))
    }

    /// Every member removed now: the operator's list, plus each target of a
    /// certified removal made under a statement no older than the one that
    /// last readmitted it (decisions D40).
    pub fn removed(&self) -> std::collections::BTreeSet<String> {
        let mut out = self.removal.removed.clone();
        for (target, (base, _)) in &self.certified {
            if *base >= self.removal.readmitted_at(target) {
                out.insert(target.clone());
            }
        }
        out
    }

    /// The certified removals that remove their target now, as bytes.
    pub fn certified_removals(&self) -> Vec<Vec<u8>> {
        self.certified
            .iter()
            .filter(|(t, (base, _))| *base >= self.removal.readmitted_at(t))
            .map(|(_, (_, b))| b.clone())
            .collect()
    }

    /// True if we hold a certified removal of `target` made under
    /// statement `base` or a newer one.
    pub fn holds_certified_removal(&self, target: &str, base: u32) -> bool {
        self.certified.get(target).is_some_and(|(b, _)| *b >= base)
    }

    /// Keeps the certified removal `bytes` of `target` (already verified by
    /// the caller against the members and the quorum), persisting it
    /// before it counts; false if we hold one as new.
    pub fn adopt_certified_removal(
        &mut self,
        target: &str,
        base: u32,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        if self.holds_certified_removal(target, base) {
            return Ok(false);
        }
        vault::meshca::check_id(target)
            .map_err(|e| StoreError::Rejected(format!("certified removal: {e}")))?;
        let dir = self.root.join(CERTIFIED_REMOVALS_DIR);
        fs::create_dir_all(&dir).map_err(|e| corrupt(&dir, e))?;
        fsio::write_atomic(
            &dir.join(format!("{target}.pqvz")),
            bytes,
            Mode::Public,
            true,
        )?;
        self.certified
            .insert(target.to_string(), (base, bytes.to_vec()));
        Ok(true)
    }

    /// Our last vote on a transition proposal of epoch `epoch` of `id`:
    /// (attempt, proposal digest, Unix milliseconds of the vote). A file
    /// that does not parse is reported as corrupt, never as "no vote".
    pub fn proposal_vote(
        &self,
        id: &VaultId,
        epoch: u64,
    ) -> Result<Option<(u32, [u8; 32], u64)>, StoreError> {
        let path = self
            .root
            .join("proposals")
            .join(format!("{id}-epoch-{epoch}"));
        if !path.exists() {
            return Ok(None);
        }
        let b = fsio::read_limited(&path, 64)?;
        if b.len() != 44 {
            return Err(corrupt(&path, "a proposal vote is 44 bytes"));
        }
        let attempt = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&b[4..36]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&b[36..44]);
        Ok(Some((attempt, digest, u64::from_be_bytes(at))))
    }

    /// Records, durably and before the vote is answered, that we vote for
    /// proposal `digest` (attempt `attempt`) of epoch `epoch` of `id`, and
    /// forgets our votes on older epochs of `id`.
    pub fn record_proposal_vote(
        &self,
        id: &VaultId,
        epoch: u64,
        attempt: u32,
        digest: &[u8; 32],
        unix_ms: u64,
    ) -> Result<(), StoreError> {
        let dir = self.root.join("proposals");
        fsio::create_private_dir(&dir)?;
        let mut b = Vec::with_capacity(44);
        b.extend_from_slice(&attempt.to_be_bytes());
        b.extend_from_slice(digest);
        b.extend_from_slice(&unix_ms.to_be_bytes());
        fsio::write_atomic(
            &dir.join(format!("{id}-epoch-{epoch}")),
            &b,
            Mode::Public,
            true,
        )?;
        remove_earlier_epochs(&dir, id, epoch, "");
        Ok(())
    }

    /// Releases our proposal vote on `epoch` of `id` because its attempt
    /// failed (its dealing check failed here, or we signed its abort): the
    /// vote keeps its attempt number, so that attempt and older ones stay
    /// refused (voted for and acted on: `transition::not_aborted`), but a
    /// newer attempt need not wait for the attempt timeout. A released
    /// vote reads back with time 0.
    pub fn release_proposal_vote(&self, id: &VaultId, epoch: u64) -> Result<(), StoreError> {
        if let Some((attempt, digest, _)) = self.proposal_vote(id, epoch)? {
            self.record_proposal_vote(id, epoch, attempt, &digest, 0)?;
        }
        Ok(())
    }

    /// Releases every proposal vote we hold, at start: the attempts they
    /// were for can no longer act here (their rounds and proposals lived in
    /// memory, so we would sign no successor of them), which binds us as an
    /// abort does, and a newer attempt need not wait for the timeout.
    /// Returns how many were released.
    pub fn release_proposal_votes_after_restart(&self) -> Result<usize, StoreError> {
        let dir = self.root.join("proposals");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut released = 0;
        for e in entries.flatten() {
            let path = e.path();
            let temporary = e.file_name().to_string_lossy().starts_with('.');
            if !path.is_file() || temporary {
                continue; // an interrupted atomic write's temporary file
            }
            let mut b = fsio::read_limited(&path, 64)?;
            if b.len() != 44 {
                return Err(corrupt(&path, "a proposal vote is 44 bytes"));
            }
            if b[36..44].iter().any(|&x| x != 0) {
                b[36..44].fill(0);
                fsio::write_atomic(&path, &b, Mode::Public, true)?;
                released += 1;
            }
        }
        Ok(released)
    }

    /// Replacements named in transitions of `id` we voted for or helped,
    /// with the share index each was named for.
    pub fn named(&self, id: &VaultId) -> Result<BTreeMap<Fingerprint, u8>, StoreError> {
        let path = self.root.join("named").join(id.to_string());
        if !path.exists() {
            return Ok(BTreeMap::new());
        }
        let b = fsio::read_limited(&path, 255 * 33 * 4)?;
        if b.len() % 33 != 0 {
            return Err(corrupt(&path, "entries are 33 bytes"));
        }
        Ok(b.chunks(33)
            .map(|c| {
                let mut fp = [0u8; 32];
                fp.copy_from_slice(&c[..32]);
                (Fingerprint::from_bytes(fp), c[32])
            })
            .collect())
    }

    /// Adds replacements named for `id` (durably). Refuses, changing
    /// nothing, if one was already named for another index: a member
    /// receives at most one share of a vault's polynomial.
    pub fn add_named(&self, id: &VaultId, add: &[(Fingerprint, u8)]) -> Result<(), StoreError> {
        let mut all = self.named(id)?;
        for (fp, index) in add {
            match all.get(fp) {
                Some(had) if had != index => {
                    return Err(StoreError::Rejected(format!(
                        "{} was already named for share {had}, not {index}",
                        fp.short()
                    )))
                }
                _ => {
                    all.insert(*fp, *index);
                }
            }
        }
        let dir = self.root.join("named");
        fsio::create_private_dir(&dir)?;
        let mut b = Vec::with_capacity(all.len() * 33);
        for (fp, i) in &all {
            b.extend_from_slice(fp.as_bytes());
            b.push(*i);
        }
        fsio::write_atomic(&dir.join(id.to_string()), &b, Mode::Public, true)?;
        Ok(())
    }

    /// Forgets the replacements named for `id`: called when an epoch made
    /// by a re-share (a fresh polynomial) is committed, since "one share
    /// per member" is per polynomial. A spare named in an attempt that
    /// never completed is usable again once the polynomial changes.
    pub fn clear_named(&self, id: &VaultId) -> Result<(), StoreError> {
        let path = self.root.join("named").join(id.to_string());
        if path.exists() {
            fsio::write_atomic(&path, &[], Mode::Public, true)?;
        }
        Ok(())
    }

    /// Keeps, durably, our share re-sealed for the epoch after `id`'s
    /// current one (a `prepare`), replacing any earlier one: the next
    /// epoch's manifest commits to these exact bytes, so a validator that
    /// restarts between `prepare` and `commit` must still have them to
    /// commit (randomized sealing cannot make them again).
    pub fn save_pending(&self, id: &VaultId, sealed: &[u8]) -> Result<(), StoreError> {
        let dir = self.root.join("pending");
        fsio::create_private_dir(&dir)?;
        fsio::write_atomic(&dir.join(id.to_string()), sealed, Mode::Public, true)?;
        Ok(())
    }

    /// Records, durably, whether `id`'s current epoch still owes a refresh:
    /// it was made by a repair, which keeps the polynomial, so a lost
    /// holder's old share still counts towards t until the holders re-share
    /// (`refresh/<vault>`: `1` owed, `0` not; docs/formats.md).
    pub fn set_refresh_owed(&self, id: &VaultId, owed: bool) -> Result<(), StoreError> {
        let dir = self.root.join("refresh");
        fsio::create_private_dir(&dir)?;
        let flag: &[u8] = if owed { b"1" } else { b"0" };
        fsio::write_atomic(&dir.join(id.to_string()), flag, Mode::Public, true)?;
        Ok(())
    }

    /// Whether `id`'s current epoch owes a refresh ([`Store::set_refresh_owed`]);
    /// false when never recorded (epoch 1 is dealt fresh).
    pub fn refresh_owed(&self, id: &VaultId) -> bool {
        fsio::read_limited(&self.root.join("refresh").join(id.to_string()), 8)
            .is_ok_and(|b| b == b"1")
    }

    /// The share kept by [`Store::save_pending`] for `id`, if any. Not
    /// trusted: whatever commits it verifies it like any received shard.
    pub fn pending(&self, id: &VaultId) -> Option<Vec<u8>> {
        fsio::read_limited(&self.root.join("pending").join(id.to_string()), MAX_FILE).ok()
    }

    /// Forgets the pending share of `id` (after its epoch is committed).
    pub fn clear_pending(&self, id: &VaultId) {
        let _ = fs::remove_file(self.root.join("pending").join(id.to_string()));
    }

    /// Reads the sealed shard of `id`'s current epoch back from disk, as
    /// it is now (custody checks compare it with the manifest: a shard
    /// that rots on disk must show, not hide behind the verified copy in
    /// memory).
    pub fn shard_on_disk(&self, id: &VaultId) -> Result<Vec<u8>, StoreError> {
        let held = self
            .vaults
            .get(id)
            .ok_or_else(|| corrupt(&self.root.join("vaults"), format!("no vault {id}")))?;
        let path = self
            .root
            .join("vaults")
            .join(id.to_string())
            .join(format!("epoch-{}", held.epoch))
            .join("shard.pqvs");
        Ok(fsio::read_limited(&path, MAX_FILE)?)
    }

    /// The operator fingerprint every manifest, chain and policy is
    /// verified against.
    pub fn trusted(&self) -> Fingerprint {
        self.trusted
    }

    /// The shard held for `id`.
    pub fn get(&self, id: &VaultId) -> Option<&Held> {
        self.vaults.get(id)
    }

    /// Every vault held.
    pub fn vaults(&self) -> impl Iterator<Item = (&VaultId, &Held)> {
        self.vaults.iter()
    }

    /// Each held vault's epoch and the epoch key its shard is sealed to
    /// (`None`: the identity), for [`Keyring::settle_initial`].
    pub fn sealed_to(&self) -> Vec<(u64, Option<vault::identity::Fingerprint>)> {
        self.vaults
            .values()
            .map(|h| {
                let key = vault::seal::SealedShard::parse(&h.shard)
                    .ok()
                    .and_then(|s| s.header.epoch_key);
                (h.epoch, key)
            })
            .collect()
    }
}

/// Reads `bytes` as records that each start with a member id (`len:u8`
/// then UTF-8), read by `one`; a damaged file reads as none.
fn member_records<T, C: Default + Extend<T>>(
    bytes: &[u8],
    mut one: impl FnMut(&mut vault::codec::Reader) -> Option<T>,
) -> C {
    let mut r = vault::codec::Reader::raw(bytes);
    let mut out = C::default();
    while r.position() < bytes.len() {
        let Some(record) = one(&mut r) else {
            return C::default();
        };
        out.extend([record]);
    }
    out
}

/// A member id as [`member_records`] keep it: `len:u8`, then UTF-8.
fn member_id(r: &mut vault::codec::Reader) -> Option<String> {
    let len = r.u8("id length").ok()?;
    let id = std::str::from_utf8(r.take(usize::from(len), "id").ok()?).ok()?;
    Some(id.to_string())
}

/// Removes, best effort, the files `<id>-epoch-<n><suffix>` in `dir` with
/// `n < epoch`: a per-epoch record that only the latest epoch needs.
fn remove_earlier_epochs(dir: &Path, id: &VaultId, epoch: u64, suffix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{id}-epoch-");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let old = name
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n < epoch);
        if old {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::identity::SecretIdentity;

    /// A memory-only key ring around a copy of `key`.
    fn ring(key: &SecretIdentity) -> Keyring {
        Keyring::in_memory(std::sync::Arc::new(
            SecretIdentity::decode(&key.encode()).unwrap(),
        ))
    }
    use vault::create::{create, NewVault};
    use vault::policy::ThresholdSpec;

    struct World {
        op: SecretIdentity,
        keys: Vec<SecretIdentity>,
        manifest: Vec<u8>,
        shards: Vec<Vec<u8>>,
    }

    fn world() -> World {
        let op = SecretIdentity::generate("op").unwrap();
        let keys: Vec<SecretIdentity> = (0..3)
            .map(|i| SecretIdentity::generate(&format!("v{i}")).unwrap())
            .collect();
        let pubs: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
        let v = create(&NewVault {
            initial_keys: &[],
            secret: None,
            recipients: &pubs,
            threshold: ThresholdSpec::Exact(2),
            signer: &op,
            created_unix: 1,
        })
        .unwrap();
        World {
            op,
            keys,
            manifest: v.manifest,
            shards: v.shards.into_iter().map(|s| s.bytes).collect(),
        }
    }

    #[test]
    fn one_vote_per_epoch_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([5; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            s.vote(&id, 3, &[0xaa; 32]).unwrap();
            s.vote(&id, 3, &[0xaa; 32]).unwrap(); // the same vote again
            s.vote(&id, 4, &[0xbb; 32]).unwrap(); // another epoch
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        let err = s.vote(&id, 3, &[0xcc; 32]).unwrap_err();
        assert!(err.to_string().contains("another successor"), "{err}");
        s.vote(&id, 3, &[0xaa; 32]).unwrap();
    }

    /// A refused successor stays refused across a restart (D53: a
    /// withdrawal counts on it), refusals are bounded, and a later epoch's
    /// replace earlier ones.
    #[test]
    fn refused_successors_are_kept_across_a_restart_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([4; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            assert!(s.refused_successors(&id, 1).is_empty());
            s.refuse_successor(&id, 1, &[7; 32]).unwrap();
            s.refuse_successor(&id, 1, &[7; 32]).unwrap();
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert_eq!(s.refused_successors(&id, 1), vec![[7; 32]]);
        for b in 100..(100 + MAX_REFUSED as u8 - 1) {
            s.refuse_successor(&id, 1, &[b; 32]).unwrap();
        }
        assert_eq!(s.refused_successors(&id, 1).len(), MAX_REFUSED);
        assert!(s.refuse_successor(&id, 1, &[200; 32]).is_err());
        assert_eq!(s.refused_successors(&id, 1).len(), MAX_REFUSED);
        s.refuse_successor(&id, 2, &[8; 32]).unwrap();
        assert!(
            s.refused_successors(&id, 1).is_empty(),
            "an earlier epoch's is removed"
        );
        assert_eq!(s.refused_successors(&id, 2), vec![[8; 32]]);
    }

    /// The time a stalled successor was first seen survives a restart
    /// (D53's refusal clock), is bounded, and a later epoch's entries
    /// replace earlier ones.
    #[test]
    fn the_refusal_clock_is_kept_across_a_restart_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([4; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            assert_eq!(s.stalled_since(&id, 1, &[7; 32], 1_000).unwrap(), 1_000);
            assert_eq!(s.stalled_since(&id, 1, &[7; 32], 5_000).unwrap(), 1_000);
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert_eq!(s.stalled_since(&id, 1, &[7; 32], 9_000).unwrap(), 1_000);
        for b in 100..(100 + MAX_REFUSED as u8 - 1) {
            assert_eq!(s.stalled_since(&id, 1, &[b; 32], 2_000).unwrap(), 2_000);
        }
        assert!(s.stalled_since(&id, 1, &[200; 32], 3_000).is_err());
        assert_eq!(s.stalled_since(&id, 1, &[100; 32], 3_000).unwrap(), 2_000);
        assert_eq!(s.stalled_since(&id, 2, &[7; 32], 4_000).unwrap(), 4_000);
        assert_eq!(
            s.stalled_since(&id, 1, &[7; 32], 5_000).unwrap(),
            5_000,
            "an earlier epoch's are removed"
        );
    }

    /// Judgements of recipients survive a restart, read damaged files as
    /// none, and are forgotten with their epoch.
    #[test]
    fn judgements_of_recipients_are_kept_and_a_damaged_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([4; 16]);
        let judged = BTreeMap::from([
            ("validator-4".to_string(), (true, BTreeSet::from([1, 2]))),
            ("validator-6".to_string(), (false, BTreeSet::from([3]))),
        ]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            assert!(s.judgements(&id, 3).is_empty());
            s.set_judgements(&id, 3, &judged).unwrap();
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert_eq!(s.judgements(&id, 3), judged);
        // Forgotten with their epoch.
        s.forget_disputes_before(&id, 4);
        assert!(s.judgements(&id, 3).is_empty());
        // A truncated file is none, not a panic.
        s.set_judgements(&id, 5, &judged).unwrap();
        let path = dir.path().join(format!("disputes/{id}-epoch-5.recipients"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(s.judgements(&id, 5).is_empty());
    }

    /// Convictions survive a restart, are bounded, read damaged files as
    /// none, and are forgotten with their epoch.
    #[test]
    fn convictions_are_kept_across_a_restart_and_forgotten_with_their_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([4; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            assert!(s.convicted(&id, 3).is_empty());
            assert!(s.add_convicted(&id, 3, "validator-2").unwrap());
            assert!(!s.add_convicted(&id, 3, "validator-2").unwrap());
            assert!(s.add_convicted(&id, 3, "validator-5").unwrap());
            assert!(!s.add_convicted(&id, 3, &"x".repeat(256)).unwrap());
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        let both = BTreeSet::from(["validator-2".to_string(), "validator-5".to_string()]);
        assert_eq!(s.convicted(&id, 3), both);
        assert!(s.convicted(&id, 4).is_empty());
        // The operator removed one: the other stays.
        s.unconvict(&id, 3, "validator-5").unwrap();
        s.unconvict(&id, 3, "validator-9").unwrap();
        assert_eq!(
            s.convicted(&id, 3),
            BTreeSet::from(["validator-2".to_string()])
        );
        // Forgotten with their epoch.
        s.forget_disputes_before(&id, 4);
        assert!(s.convicted(&id, 3).is_empty());
        // At most 255 members.
        for i in 0..300 {
            s.add_convicted(&id, 6, &format!("m-{i}")).unwrap();
        }
        assert_eq!(s.convicted(&id, 6).len(), 255);
        // A truncated file is none, not a panic.
        let path = dir.path().join(format!("disputes/{id}-epoch-6.convicted"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(s.convicted(&id, 6).is_empty());
    }

    /// Helper disputes and silent dealers survive a restart, accumulate
    /// (helpers; dealers keep the most namers of one attempt), are bounded,
    /// read damaged files as none, and are forgotten with their epoch.
    #[test]
    fn disputes_are_kept_across_a_restart_and_forgotten_with_their_epoch() {
        use std::collections::BTreeSet;
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([4; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            assert!(s.helper_disputes(&id, 3).is_empty());
            s.add_helper_disputes(&id, 3, &BTreeSet::from([(1, 4)]))
                .unwrap();
            s.add_helper_disputes(&id, 3, &BTreeSet::from([(2, 5), (1, 4)]))
                .unwrap();
            s.add_silent_dealers(&id, 3, &BTreeMap::from([(2, 1), (5, 3)]))
                .unwrap();
            s.add_silent_dealers(&id, 3, &BTreeMap::from([(5, 2)]))
                .unwrap();
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert_eq!(s.helper_disputes(&id, 3), BTreeSet::from([(1, 4), (2, 5)]));
        // Kept across attempts, the most namers of one attempt each.
        assert_eq!(s.silent_dealers(&id, 3), BTreeMap::from([(2, 1), (5, 3)]));
        let many: BTreeSet<(u8, u8)> = (1..=40u8)
            .flat_map(|a| (a + 1..=40).map(move |b| (a, b)))
            .collect();
        s.add_helper_disputes(&id, 3, &many).unwrap();
        assert_eq!(s.helper_disputes(&id, 3).len(), MAX_DISPUTES);
        let path = dir.path().join(format!("disputes/{id}-epoch-3.helpers"));
        fs::write(&path, vec![0xff; 4 * MAX_DISPUTES]).unwrap();
        assert!(
            s.helper_disputes(&id, 3).is_empty(),
            "an oversized file is none"
        );
        s.forget_disputes_before(&id, 4);
        assert!(!path.exists());
        assert!(s.silent_dealers(&id, 3).is_empty());
    }

    /// The successor request we signed survives a restart, later epochs'
    /// replace earlier ones, and a damaged file reads as none.
    #[test]
    fn the_signed_successor_request_is_kept_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([4; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            assert_eq!(s.signed_request(&id, 1), None);
            s.vote(&id, 1, &[9; 32]).unwrap();
            s.save_signed_request(&id, 1, b"request", b"cert").unwrap();
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert_eq!(s.voted_successor(&id, 1), Some([9; 32]));
        assert_eq!(
            s.signed_request(&id, 1),
            Some((b"request".to_vec(), b"cert".to_vec()))
        );
        s.save_signed_request(&id, 2, b"next", b"c2").unwrap();
        assert_eq!(
            s.signed_request(&id, 1),
            None,
            "an earlier epoch's is removed"
        );
        let path = dir.path().join(format!("votes/{id}-epoch-2.signed"));
        let mut b = fs::read(&path).unwrap();
        b.truncate(b.len() - 1);
        fs::write(&path, &b).unwrap();
        assert_eq!(s.signed_request(&id, 2), None);
        // The vote itself is untouched by its companion file.
        assert_eq!(s.voted_successor(&id, 1), Some([9; 32]));
    }

    /// A restart releases standing proposal votes but keeps their attempt
    /// and digest (older attempts stay refused); a corrupt vote file is an
    /// error, never "no vote".
    #[test]
    fn a_restart_releases_proposal_votes_and_keeps_their_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([5; 16]);
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert_eq!(s.release_proposal_votes_after_restart().unwrap(), 0);
        s.record_proposal_vote(&id, 3, 7, &[0xaa; 32], 1_000)
            .unwrap();
        assert_eq!(s.release_proposal_votes_after_restart().unwrap(), 1);
        assert_eq!(s.release_proposal_votes_after_restart().unwrap(), 0);
        assert_eq!(s.proposal_vote(&id, 3).unwrap(), Some((7, [0xaa; 32], 0)));
        std::fs::write(dir.path().join(format!("proposals/{id}-epoch-4")), b"short").unwrap();
        assert!(s.release_proposal_votes_after_restart().is_err());
    }

    /// One share per member per polynomial: a second index is refused
    /// across restarts, until a fresh polynomial clears the names; the
    /// refresh-owed flag survives restarts too.
    #[test]
    fn a_membership_removal_is_kept_only_if_newer_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let op = SecretIdentity::generate("operator").unwrap();
        let other = SecretIdentity::generate("validator-1").unwrap();
        let (opf, me) = (op.public().fingerprint(), other.public().fingerprint());
        let removal = |version: u32, ids: &[&str]| Removal {
            version,
            removed: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        {
            let mut s = Store::open(dir.path(), opf, me).unwrap();
            assert_eq!(s.removal().version, 0);
            let forged = removal(1, &["validator-2"]).sign(&other).unwrap();
            assert!(s.adopt_removal(&forged).is_err());
            assert!(s.removal_bytes().is_none(), "nothing written");
            let v2 = removal(2, &["validator-3"]).sign(&op).unwrap();
            assert!(s.adopt_removal(&v2).unwrap().is_some());
            for stale in [removal(2, &[]), removal(1, &[])] {
                let b = stale.sign(&op).unwrap();
                assert!(s.adopt_removal(&b).unwrap().is_none());
            }
        }
        let s = Store::open(dir.path(), opf, me).unwrap();
        assert_eq!(s.removal(), &removal(2, &["validator-3"]));
    }

    #[test]
    fn names_hold_until_the_polynomial_changes_and_refresh_owed_persists() {
        let dir = tempfile::tempdir().unwrap();
        let fp = |b| Fingerprint::from_bytes([b; 32]);
        let id = VaultId::from_bytes([5; 16]);
        {
            let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
            s.add_named(&id, &[(fp(9), 4)]).unwrap();
            assert!(!s.refresh_owed(&id));
            s.set_refresh_owed(&id, true).unwrap();
        }
        let s = Store::open(dir.path(), fp(1), fp(2)).unwrap();
        assert!(s.add_named(&id, &[(fp(9), 5)]).is_err());
        assert!(s.refresh_owed(&id));
        s.clear_named(&id).unwrap();
        s.set_refresh_owed(&id, false).unwrap();
        s.add_named(&id, &[(fp(9), 5)]).unwrap();
        assert_eq!(s.named(&id).unwrap().get(&fp(9)), Some(&5));
        assert!(!s.refresh_owed(&id));
    }

    #[test]
    fn import_reopen_and_detect_corruption() {
        let w = world();
        let dir = tempfile::tempdir().unwrap();
        let (op, me) = (
            w.op.public().fingerprint(),
            w.keys[0].public().fingerprint(),
        );
        {
            let mut s = Store::open(dir.path(), op, me).unwrap();
            // Another validator's shard is refused and nothing is written.
            let err = s
                .import(&w.manifest, &w.shards[1], &ring(&w.keys[0]))
                .unwrap_err();
            assert!(err.to_string().contains("wrong key"), "{err}");
            let h = s
                .import(&w.manifest, &w.shards[0], &ring(&w.keys[0]))
                .unwrap();
            assert_eq!((h.epoch, h.index), (1, 1));
            // A second daemon on the same directory is refused.
            assert!(matches!(
                Store::open(dir.path(), op, me),
                Err(StoreError::Locked(_))
            ));
        }
        let s = Store::open(dir.path(), op, me).unwrap();
        assert_eq!(s.vaults().count(), 1);
        drop(s);

        // Flip one byte of the stored shard: the next start refuses, naming it.
        let vdir = fs::read_dir(dir.path().join("vaults"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let shard = vdir.join("epoch-1/shard.pqvs");
        let mut b = fs::read(&shard).unwrap();
        b[100] ^= 1;
        fs::write(&shard, &b).unwrap();
        let err = Store::open(dir.path(), op, me).err().unwrap().to_string();
        assert!(
            err.contains("corrupt") && err.contains("shard.pqvs") && err.contains("modified"),
            "{err}"
        );
    }

    /// Epoch 2 of the world's vault after a refresh (fresh polynomial, same
    /// secret), led by validator 0, certified by `signers`.
    fn refreshed(w: &World, signers: &[usize]) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
        use vault::epoch::{EpochCertificate, Transition};
        use vault::kem::hybrid::Suite;
        use vault::manifest::{shard_hash, ManifestBody};
        use vault::seal::SealedShard;
        use vault::share::ShareRecord;
        let m1 = Manifest::decode(&w.manifest).unwrap().verify(None).unwrap();
        let old: Vec<ShareRecord> = (0..2)
            .map(|i| {
                SealedShard::parse(&w.shards[i])
                    .unwrap()
                    .open(&w.keys[i])
                    .unwrap()
            })
            .collect();
        let dealt: Vec<_> = old
            .iter()
            .map(|r| vault::repair::deal(&r.share, 2, 3).unwrap())
            .collect();
        let b1 = m1.body();
        let records: Vec<ShareRecord> = (1..=3u8)
            .map(|k| {
                let subs: Vec<&[u8]> = dealt
                    .iter()
                    .map(|d| &d[usize::from(k) - 1].value[..])
                    .collect();
                ShareRecord {
                    vault_id: b1.vault_id,
                    epoch: 2,
                    threshold: 2,
                    n: 3,
                    share: vault::repair::combine_subshares(&[1, 2], &subs, k).unwrap(),
                }
            })
            .collect();
        let blobs: Vec<Vec<u8>> = records
            .iter()
            .zip(&w.keys)
            .map(|(r, k)| vault::seal::seal(r, Suite::DEFAULT, k.public()).unwrap())
            .collect();
        let mut body: ManifestBody = b1.clone();
        body.epoch = 2;
        for ((e, r), b) in body.shards.iter_mut().zip(&records).zip(&blobs) {
            e.blob_hash = shard_hash(b);
            e.share_commitment = r.commitment();
        }
        let m2 = Manifest::sign(&body, w.keys[0].public(), w.keys[0].signing_key()).unwrap();
        let t = Transition::between(&m1, &Manifest::decode(&m2).unwrap());
        let cert = EpochCertificate {
            signatures: signers
                .iter()
                .map(|&i| t.sign(&w.keys[i]).unwrap())
                .collect(),
            transition: t,
        };
        (m2, cert.encode(), blobs)
    }

    #[test]
    fn advance_by_certificate_survives_restart_and_refuses_forgeries() {
        let w = world();
        let dir = tempfile::tempdir().unwrap();
        let (op, me) = (
            w.op.public().fingerprint(),
            w.keys[0].public().fingerprint(),
        );
        let (m2, cert, blobs) = refreshed(&w, &[0, 1]);
        let mut weak = vault::epoch::EpochCertificate::decode(&cert).unwrap();
        weak.signatures.truncate(1);
        let weak = weak.encode();
        let id = Manifest::decode(&w.manifest).unwrap().body().vault_id;
        {
            let mut s = Store::open(dir.path(), op, me).unwrap();
            s.import(&w.manifest, &w.shards[0], &ring(&w.keys[0]))
                .unwrap();
            // One signer is below the threshold of 2: refused, nothing changes.
            let err = s
                .advance(&id, &m2, &weak, &blobs[0], &ring(&w.keys[0]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("threshold"), "{err}");
            assert_eq!(s.get(&id).unwrap().epoch, 1);
            // Another validator's new shard is refused.
            assert!(s
                .advance(&id, &m2, &cert, &blobs[1], &ring(&w.keys[0]))
                .is_err());
            let h = s
                .advance(&id, &m2, &cert, &blobs[0], &ring(&w.keys[0]))
                .unwrap();
            assert_eq!((h.epoch, h.steps.len()), (2, 1));
            // Replaying the same step is refused (it does not follow epoch 2).
            let err = s
                .advance(&id, &m2, &cert, &blobs[0], &ring(&w.keys[0]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("certificate names other manifests"), "{err}");
            // An operator import of the older epoch is refused.
            assert!(s
                .import(&w.manifest, &w.shards[0], &ring(&w.keys[0]))
                .is_err());
        }
        // Restart: the chain is re-verified from the operator's anchor; the
        // old epoch's files are gone.
        let s = Store::open(dir.path(), op, me).unwrap();
        assert_eq!(s.get(&id).unwrap().epoch, 2);
        drop(s);
        let vdir = dir.path().join("vaults").join(id.to_string());
        assert!(!vdir.join("epoch-1").exists());
        // Tamper with the stored certificate: the next start refuses.
        let c = vdir.join("epoch-2/step-2.pqve");
        let mut bytes = fs::read(&c).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&c, &bytes).unwrap();
        let err = Store::open(dir.path(), op, me).err().unwrap().to_string();
        assert!(
            err.contains("corrupt") && err.contains("signature"),
            "{err}"
        );
    }

    #[test]
    fn untrusted_signer_is_refused_and_stores_nothing() {
        let w = world();
        let dir = tempfile::tempdir().unwrap();
        let other = SecretIdentity::generate("mallory").unwrap();
        let mut s = Store::open(
            dir.path(),
            other.public().fingerprint(),
            w.keys[0].public().fingerprint(),
        )
        .unwrap();
        let err = s
            .import(&w.manifest, &w.shards[0], &ring(&w.keys[0]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not by the trusted signer"), "{err}");
        assert_eq!(fs::read_dir(dir.path().join("vaults")).unwrap().count(), 0);
    }

    /// Crash walk, child side: when started by
    /// [`every_crash_point_leaves_a_usable_epoch_and_no_lost_vote`] with
    /// `PQVAULT_CRASH_DIR`, performs one store operation with one crash point
    /// armed; the point ends the process (exit 137). Without the variable
    /// (a normal test run) it does nothing.
    #[cfg(feature = "failpoints")]
    #[test]
    fn crash_child() {
        let Ok(dir) = std::env::var("PQVAULT_CRASH_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        let point = std::env::var("PQVAULT_CRASH_AT").unwrap();
        let read = |n: &str| fs::read(dir.join(n)).unwrap();
        let key = SecretIdentity::decode(&read("key")).unwrap();
        let op = Fingerprint::from_bytes(read("op").try_into().unwrap());
        let mut s = Store::open(&dir.join("data"), op, key.public().fingerprint()).unwrap();
        let id = Manifest::decode(&read("m1")).unwrap().body().vault_id;
        fail::cfg(point.as_str(), "return").unwrap();
        if point.starts_with("store.vote") {
            s.vote(&id, 1, &[0xaa; 32]).unwrap();
        } else {
            s.advance(
                &id,
                &read("m2"),
                &read("cert"),
                &read("shard2"),
                &ring(&key),
            )
            .unwrap();
        }
        // Reaching here means the point was never passed.
        std::process::exit(3);
    }

    /// Crash walk: for every crash point of the epoch commit and the vote, a
    /// real process (this test binary, re-run as [`crash_child`]) is killed
    /// at that step; reopening the store must then give the old epoch or the
    /// new one, complete and verified, and a vote that was recorded must
    /// still bind. Each walk takes milliseconds, so CI walks them all.
    #[cfg(feature = "failpoints")]
    #[test]
    fn every_crash_point_leaves_a_usable_epoch_and_no_lost_vote() {
        use crate::failpoint as fp;
        let w = world();
        let (m2, cert, blobs) = refreshed(&w, &[0, 1]);
        let (op, me) = (
            w.op.public().fingerprint(),
            w.keys[0].public().fingerprint(),
        );
        let id = Manifest::decode(&w.manifest).unwrap().body().vault_id;
        let points = fp::points("store.");
        assert_eq!(points.len(), 8);
        for point in points {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            for (name, bytes) in [
                ("key", &w.keys[0].encode()[..]),
                ("op", &op.as_bytes()[..]),
                ("m1", &w.manifest[..]),
                ("m2", &m2[..]),
                ("cert", &cert[..]),
                ("shard2", &blobs[0][..]),
            ] {
                fs::write(d.join(name), bytes).unwrap();
            }
            Store::open(&d.join("data"), op, me)
                .unwrap()
                .import(&w.manifest, &w.shards[0], &ring(&w.keys[0]))
                .unwrap();
            let status = crate::failpoint::run_crash_child("store::tests::crash_child", d, point);
            assert_eq!(status.code(), Some(137), "{point} was not reached");

            // Restart: the store opens (every epoch re-verified) and holds
            // one complete epoch.
            let mut s = Store::open(&d.join("data"), op, me)
                .unwrap_or_else(|e| panic!("after a crash at {point}: {e}"));
            let h = s.get(&id).unwrap().clone();
            let vdir = d.join("data/vaults").join(id.to_string());
            let current = fs::read_to_string(vdir.join("CURRENT")).unwrap();
            assert_eq!(current.trim(), h.epoch.to_string(), "{point}");
            match h.epoch {
                1 => {
                    assert_eq!(h.shard, w.shards[0], "{point}");
                    assert_eq!(h.manifest, w.manifest, "{point}");
                }
                2 => {
                    assert_eq!(h.shard, blobs[0], "{point}");
                    assert_eq!(h.manifest, m2, "{point}");
                }
                e => panic!("{point}: epoch {e}"),
            }
            assert_eq!(s.shard_on_disk(&id).unwrap(), h.shard, "{point}");
            let expect_new = matches!(point, fp::STORE_COMMIT_CURRENT | fp::STORE_COMMIT_DONE);
            if !point.starts_with("store.vote") {
                assert_eq!(h.epoch == 2, expect_new, "{point}");
            }
            // The interrupted work can be done again.
            if h.epoch == 1 {
                s.advance(&id, &m2, &cert, &blobs[0], &ring(&w.keys[0]))
                    .unwrap_or_else(|e| panic!("advance again after {point}: {e}"));
            }
            // After the (re)done commit only epoch 2 is on disk, also when
            // the crash left epoch 1 behind.
            let dirs: Vec<_> = fs::read_dir(&vdir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("epoch-"))
                .collect();
            if h.epoch == 1 || point != fp::STORE_COMMIT_CURRENT {
                assert_eq!(dirs, vec!["epoch-2".to_string()], "{point}");
            }

            // Votes: a recorded vote still binds; an unrecorded one was
            // never answered, so nothing was lost.
            if point == fp::STORE_VOTE_WRITTEN {
                let err = s.vote(&id, 1, &[0xbb; 32]).unwrap_err().to_string();
                assert!(err.contains("another successor"), "{err}");
                s.vote(&id, 1, &[0xaa; 32]).unwrap();
            } else {
                s.vote(&id, 1, &[0xbb; 32]).unwrap();
            }
        }
    }
}
