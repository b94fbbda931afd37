//! Crash-safe shard custody on local disk.
//!
//! ```text
//! <data_dir>/LOCK                                   held (flock) while the daemon runs
//! <data_dir>/vaults/<vault-id>/epoch-<n>/shard.pqvs  the sealed shard, addressed to us
//! <data_dir>/vaults/<vault-id>/epoch-<n>/manifest.pqvm
//! <data_dir>/vaults/<vault-id>/CURRENT              "<n>": the committed epoch
//! ```
//!
//! Every file is written atomically (temp, fsync, link/rename, dir fsync).
//! An import writes the new epoch's files first and switches `CURRENT`
//! last, so a crash at any moment leaves the previous epoch in force; an
//! epoch directory that `CURRENT` does not name is an interrupted import and
//! is removed on the next attempt. At start every committed epoch is
//! re-verified (manifest signature, signer, shard hash, recipient); a
//! mismatch stops the daemon with the path and the reason, never a reset.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use thiserror::Error;
use vault::fsio::{self, FsError, Mode};
use vault::identity::{Fingerprint, SecretIdentity};
use vault::manifest::{Manifest, VaultId, VerifiedManifest};
use vault::recover::{check_record, check_sealed};

/// Largest manifest or shard file accepted.
const MAX_FILE: u64 = 2 << 20;

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
}

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
}

/// The on-disk store.
pub struct Store {
    root: PathBuf,
    _lock: File,
    trusted: Fingerprint,
    vaults: BTreeMap<VaultId, Held>,
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
        let mut store = Store {
            root: root.to_path_buf(),
            _lock: lock,
            trusted,
            vaults: BTreeMap::new(),
        };
        let dir = root.join("vaults");
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
        let m = self
            .verify_manifest(&manifest)
            .map_err(|e| corrupt(&edir, e))?;
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
        })
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
        key: &SecretIdentity,
    ) -> Result<&Held, StoreError> {
        let m = self
            .verify_manifest(manifest)
            .map_err(StoreError::Rejected)?;
        let (parsed, entry) =
            check_sealed(&m, shard).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let record = parsed
            .open(key)
            .map_err(|e| StoreError::Rejected(e.to_string()))?;
        check_record(&m, &record).map_err(|e| StoreError::Rejected(e.to_string()))?;
        let (id, epoch, index) = (m.body().vault_id, m.body().epoch, entry.index);
        if let Some(h) = self.vaults.get(&id) {
            if h.epoch > epoch || (h.epoch == epoch && h.shard != shard) {
                return Err(StoreError::Rejected(format!(
                    "vault {id} is already at epoch {} here; refusing epoch {epoch}",
                    h.epoch
                )));
            }
        }
        let vdir = self.root.join("vaults").join(id.to_string());
        let edir = vdir.join(format!("epoch-{epoch}"));
        let is_current = self.vaults.get(&id).is_some_and(|h| h.epoch == epoch);
        if !is_current {
            if edir.exists() {
                // Left by an interrupted import: never committed, safe to drop.
                fs::remove_dir_all(&edir).map_err(|e| corrupt(&edir, e))?;
            }
            fsio::create_private_dir(&edir)?;
            fsio::write_atomic(&edir.join("shard.pqvs"), shard, Mode::Public, false)?;
            fsio::write_atomic(&edir.join("manifest.pqvm"), manifest, Mode::Public, false)?;
            fsio::write_atomic(
                &vdir.join("CURRENT"),
                format!("{epoch}\n").as_bytes(),
                Mode::Public,
                true,
            )?;
        }
        let old = self.vaults.insert(
            id,
            Held {
                epoch,
                index,
                manifest: manifest.to_vec(),
                shard: shard.to_vec(),
            },
        );
        if let Some(old) = old.filter(|o| o.epoch != epoch) {
            // The new epoch is committed; the old one may go.
            let _ = fs::remove_dir_all(vdir.join(format!("epoch-{}", old.epoch)));
        }
        self.vaults
            .get(&id)
            .ok_or_else(|| StoreError::Rejected("internal: vault vanished".into()))
    }

    /// The shard held for `id`.
    pub fn get(&self, id: &VaultId) -> Option<&Held> {
        self.vaults.get(id)
    }

    /// Every vault held.
    pub fn vaults(&self) -> impl Iterator<Item = (&VaultId, &Held)> {
        self.vaults.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let err = s.import(&w.manifest, &w.shards[1], &w.keys[0]).unwrap_err();
            assert!(err.to_string().contains("wrong key"), "{err}");
            let h = s.import(&w.manifest, &w.shards[0], &w.keys[0]).unwrap();
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
            .import(&w.manifest, &w.shards[0], &w.keys[0])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not by the trusted signer"), "{err}");
        assert_eq!(fs::read_dir(dir.path().join("vaults")).unwrap().count(), 0);
    }
}
