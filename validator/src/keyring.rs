//! The validator's KEM keys: its identity and one epoch key per (vault,
//! epoch) it holds or is about to hold, wrapped on disk and erased once
//! the vault has moved past their epoch (issue 10, attack 5; D42).
//!
//! ```text
//! <data_dir>/keys/CURRENT     "<g>": the generation in force
//! <data_dir>/keys/wrap-<g>    32 random bytes: generation g's wrapping key
//! <data_dir>/keys/ring-<g>    "PQVY" v1: AES-256-GCM under wrap-<g> of every live epoch key
//! ```
//!
//! Every change writes a new generation under a new wrapping key, switches
//! `CURRENT`, then overwrites the old wrapping key with zeros before
//! unlinking both old files. An erased key's ciphertext may linger in
//! freed blocks of any disk; its wrapping key is 32 bytes overwritten in
//! place, and on disks that remap writes (flash, copy-on-write) the
//! deployment may keep `keys/` on a memory-backed volume (D42 says what
//! that costs). A crash between steps leaves either generation complete:
//! files of a generation `CURRENT` does not name are removed at start.
//!
//! Shards of version 1 (sealed to the identity, as `vault create` made
//! them before initial keys) open with the identity key; version 2 shards
//! with the epoch key their header names. Genesis shards `vault create`
//! sealed to this validator's initial key (`vault keygen`'s `NAME.ikey`,
//! [`vault::initial_key`]) open with that key, which [`Keyring::import_initial`]
//! moves into the ring and [`Keyring::settle_initial`] erases once no vault
//! held here is at an epoch sealed to it (D45).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::epoch_key::{EpochKey, EpochKeyError};
use vault::fsio::{self, FsError, Mode};
use vault::identity::{Fingerprint, SecretIdentity};
use vault::initial_key::{INITIAL_EPOCH, INITIAL_VAULT};
use vault::kem::hybrid::Suite;
use vault::manifest::VaultId;
use vault::seal::{SealError, SealedShard};
use vault::share::ShareRecord;
use zeroize::Zeroizing;

/// Format of the wrapped key ring (`keys/ring-<g>`).
pub const RING_KIND: Kind = Kind {
    magic: *b"PQVY",
    name: "pqvault epoch key ring",
    version: 1,
};

/// Most epoch keys kept at once: two per vault (the epoch held and the one
/// being prepared) for up to 512 vaults. A key is about 12.8 KB with the
/// standard suite, so a full ring is about 13 MB.
pub const MAX_KEYS: usize = 1024;
/// Largest ring file accepted.
const MAX_RING: u64 = 16 << 20;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// Why the key ring could not be read, written or used.
#[derive(Debug, Error)]
pub enum KeyringError {
    /// File-system failure.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A key-ring file is unreadable: never reset, the operator decides.
    #[error("key ring is corrupt at {path}: {reason}")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A key could not be generated.
    #[error(transparent)]
    Key(#[from] EpochKeyError),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An initial key file is unreadable or not ours: left as it is.
    #[error("initial KEM key {path}: {reason}")]
    InitialKey {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ring is full.
    #[error("key ring is full ({MAX_KEYS} epoch keys): refusing to make another")]
    Full,
    /// Encryption failed.
    #[error("AEAD failure while wrapping the key ring")]
    Aead,
}

type Keys = BTreeMap<(VaultId, u64), Arc<EpochKey>>;

struct Ring {
    generation: u64,
    keys: Keys,
}

/// The identity and the epoch keys, shared by every handler.
pub struct Keyring {
    identity: Arc<SecretIdentity>,
    /// `None` for a ring read by someone other than its validator (tests,
    /// `--check`): nothing is ever written.
    dir: Option<PathBuf>,
    ring: Mutex<Ring>,
}

impl Keyring {
    /// Opens (creating if absent) the key ring under `data_dir`, removing
    /// files an interrupted change left behind.
    pub fn open(data_dir: &Path, identity: Arc<SecretIdentity>) -> Result<Self, KeyringError> {
        let dir = data_dir.join("keys");
        fsio::create_private_dir(&dir)?;
        let ring = load(&dir)?;
        remove_other_generations(&dir, ring.generation);
        Ok(Keyring {
            identity,
            dir: Some(dir),
            ring: Mutex::new(ring),
        })
    }

    /// Reads the key ring under `data_dir` without changing anything on
    /// disk; an absent ring is empty.
    pub fn open_read_only(
        data_dir: &Path,
        identity: Arc<SecretIdentity>,
    ) -> Result<Self, KeyringError> {
        let dir = data_dir.join("keys");
        let ring = if dir.exists() {
            load(&dir)?
        } else {
            Ring {
                generation: 0,
                keys: Keys::new(),
            }
        };
        Ok(Keyring {
            identity,
            dir: None,
            ring: Mutex::new(ring),
        })
    }

    /// A ring that lives in memory only (unit tests).
    pub fn in_memory(identity: Arc<SecretIdentity>) -> Self {
        Keyring {
            identity,
            dir: None,
            ring: Mutex::new(Ring {
                generation: 0,
                keys: Keys::new(),
            }),
        }
    }

    /// The long-term identity (signing keys, and the KEM key of genesis
    /// shards made without an initial key).
    pub fn identity(&self) -> &Arc<SecretIdentity> {
        &self.identity
    }

    /// The (vault, epoch) pairs whose keys are held, in order (the
    /// initial key, which serves no one vault, is [`Keyring::initial`]).
    pub fn epochs(&self) -> Vec<(VaultId, u64)> {
        self.lock()
            .keys
            .keys()
            .copied()
            .filter(|(v, _)| *v != INITIAL_VAULT)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the map half-changed
        // (every change is one insert or one retain), so a poisoned lock
        // is still consistent.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, vault: &VaultId, epoch: u64) -> Option<Arc<EpochKey>> {
        self.lock().keys.get(&(*vault, epoch)).cloned()
    }

    /// The initial key the ring holds, if any.
    pub fn initial(&self) -> Option<Fingerprint> {
        self.key(&INITIAL_VAULT, INITIAL_EPOCH)
            .map(|k| k.fingerprint())
    }

    /// Moves the initial key `key` into the ring (durably, before the
    /// caller erases its file). Returns false, changing nothing, if the
    /// ring already holds another initial key that a vault here still
    /// needs: `needed` says which initial key fingerprints are.
    pub fn import_initial(
        &self,
        key: EpochKey,
        needed: impl Fn(&Fingerprint) -> bool,
    ) -> Result<bool, KeyringError> {
        let mut ring = self.lock();
        let slot = (INITIAL_VAULT, INITIAL_EPOCH);
        match ring.keys.get(&slot) {
            Some(k) if k.fingerprint() == key.fingerprint() => return Ok(true),
            Some(k) if needed(&k.fingerprint()) => return Ok(false),
            _ => {}
        }
        if ring.keys.len() >= MAX_KEYS {
            return Err(KeyringError::Full);
        }
        let mut next = ring.keys.clone();
        next.insert(slot, Arc::new(key));
        self.replace(&mut ring, next)?;
        Ok(true)
    }

    /// Reads the initial key waiting at `path` (`None`: no file), refusing
    /// one that does not parse or belongs to another identity, with the
    /// file named. Changes nothing.
    pub fn read_initial_file(&self, path: &Path) -> Result<Option<EpochKey>, KeyringError> {
        if !path.exists() {
            return Ok(None);
        }
        let refused = |reason: String| KeyringError::InitialKey {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = Zeroizing::new(fsio::read_limited(path, 1 << 20)?);
        let (owner, key) =
            vault::initial_key::decode_secret(&bytes).map_err(|e| refused(e.to_string()))?;
        let me = self.identity.public().fingerprint();
        if owner != me {
            return Err(refused(format!(
                "the initial key of identity {}, not of this validator's {}",
                owner.short(),
                me.short()
            )));
        }
        Ok(Some(key))
    }

    /// Moves the initial key waiting at `path` (`vault keygen`'s
    /// `NAME.ikey`), if any, into the ring, then erases the file (zeros
    /// over it, then unlinked). A key of another identity, or a file that
    /// does not parse, stops the start with the file named. When the ring
    /// still needs an earlier initial key, the file is left for a later
    /// start. Returns what happened, for the log.
    pub fn take_initial_file(
        &self,
        path: &Path,
        needed: impl Fn(&Fingerprint) -> bool,
    ) -> Result<InitialFile, KeyringError> {
        let Some(key) = self.read_initial_file(path)? else {
            return Ok(InitialFile::None);
        };
        let fp = key.fingerprint();
        if !self.import_initial(key, needed)? {
            return Ok(InitialFile::Deferred(fp));
        }
        match erase_file(path) {
            Ok(()) => Ok(InitialFile::Moved(fp)),
            Err(e) => Ok(InitialFile::NotErased(fp, e.to_string())),
        }
    }

    /// Erases the initial key once it is spent: no vault held here is at
    /// epoch 1 with a shard sealed to it, and some vault held here has
    /// moved past epoch 1 (an initial key nothing ever used waits for the
    /// vault it was made for). `held` is each held vault's epoch and the
    /// epoch key its shard is sealed to. Returns whether it erased.
    pub fn settle_initial(
        &self,
        held: &[(u64, Option<Fingerprint>)],
    ) -> Result<bool, KeyringError> {
        let Some(fp) = self.initial() else {
            return Ok(false);
        };
        let needed = held.iter().any(|(e, k)| *e == 1 && *k == Some(fp));
        let moved_on = held.iter().any(|(e, _)| *e > 1);
        if needed || !moved_on {
            return Ok(false);
        }
        Ok(self.erase_matching(|v, e| *v == INITIAL_VAULT && e == INITIAL_EPOCH)? > 0)
    }

    /// Opens one of our sealed shards: version 1 with the identity key,
    /// version 2 with the epoch key its header names (for epoch 1, the
    /// initial key).
    pub fn open_shard(&self, sealed: &[u8]) -> Result<ShareRecord, SealError> {
        let shard = SealedShard::parse(sealed)?;
        match shard.header.epoch_key {
            None => shard.open(&self.identity),
            Some(fp) => {
                let h = &shard.header;
                if h.recipient != self.identity.public().fingerprint() {
                    return Err(SealError::WrongRecipient {
                        shard_for: h.recipient,
                        key: self.identity.public().fingerprint(),
                    });
                }
                let initial = || {
                    self.key(&INITIAL_VAULT, INITIAL_EPOCH)
                        .filter(|k| h.epoch == 1 && k.fingerprint() == fp)
                };
                match self.key(&h.vault_id, h.epoch).or_else(initial) {
                    Some(k) => shard.open_with_epoch_key(&k),
                    None => Err(SealError::EpochKeyGone { key: fp }),
                }
            }
        }
    }

    /// Seals our own share `record` to our epoch key for its vault and
    /// epoch, making (and durably storing) that key first if needed.
    /// Slow (key generation, HQC): call from a blocking thread.
    pub fn seal_own(&self, record: &ShareRecord, suite: Suite) -> Result<Vec<u8>, KeyringError> {
        let key = self.key_for(suite, record.vault_id, record.epoch)?;
        Ok(vault::seal::seal_to_epoch_key(
            record,
            self.identity.public().fingerprint(),
            key.public(),
        )?)
    }

    /// Makes (and durably stores) our epoch key for `epoch` of `vault`
    /// ahead of the [`Keyring::seal_own`] that will use it, so that key
    /// generation and the ring's write are off that step's path. Nothing
    /// if the key exists. Slow: call from a blocking thread.
    pub fn prepare_key(
        &self,
        suite: Suite,
        vault: VaultId,
        epoch: u64,
    ) -> Result<(), KeyringError> {
        self.key_for(suite, vault, epoch).map(|_| ())
    }

    fn key_for(
        &self,
        suite: Suite,
        vault: VaultId,
        epoch: u64,
    ) -> Result<Arc<EpochKey>, KeyringError> {
        let existing = |ring: &Ring| {
            ring.keys
                .get(&(vault, epoch))
                .filter(|k| k.public().suite == suite)
                .cloned()
        };
        {
            let ring = self.lock();
            if let Some(k) = existing(&ring) {
                return Ok(k);
            }
            if ring.keys.len() >= MAX_KEYS {
                return Err(KeyringError::Full);
            }
        }
        // Generated without the lock (HQC key generation takes a while):
        // opening shards meanwhile must not wait for it. If another thread
        // made the same key meanwhile, theirs is kept and ours dropped.
        let key = Arc::new(EpochKey::generate(suite, vault, epoch)?);
        let mut ring = self.lock();
        if let Some(k) = existing(&ring) {
            return Ok(k);
        }
        if ring.keys.len() >= MAX_KEYS {
            return Err(KeyringError::Full);
        }
        let mut next = ring.keys.clone();
        next.insert((vault, epoch), key.clone());
        self.replace(&mut ring, next)?;
        Ok(key)
    }

    /// Erases every key of `vault` for an epoch before `epoch`: called
    /// once `epoch` is committed. Returns how many were erased.
    pub fn erase_before(&self, vault: &VaultId, epoch: u64) -> Result<usize, KeyringError> {
        self.erase_where(|v, e| v == vault && e < epoch)
    }

    /// Erases the epoch keys `gone(vault, epoch)` selects, in one new
    /// generation; never the initial key ([`Keyring::settle_initial`]).
    pub fn erase_where(&self, gone: impl Fn(&VaultId, u64) -> bool) -> Result<usize, KeyringError> {
        self.erase_matching(|v, e| *v != INITIAL_VAULT && gone(v, e))
    }

    fn erase_matching(&self, gone: impl Fn(&VaultId, u64) -> bool) -> Result<usize, KeyringError> {
        let mut ring = self.lock();
        let next: Keys = ring
            .keys
            .iter()
            .filter(|((v, e), _)| !gone(v, *e))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let erased = ring.keys.len() - next.len();
        if erased > 0 {
            self.replace(&mut ring, next)?;
        }
        Ok(erased)
    }

    /// Writes `keys` as a new generation, switches to it, destroys the old
    /// one, and only then takes `keys` in memory.
    fn replace(&self, ring: &mut Ring, keys: Keys) -> Result<(), KeyringError> {
        if let Some(dir) = &self.dir {
            let g = ring.generation + 1;
            let wrap = Zeroizing::new(random_key()?);
            let sealed = wrap_keys(&keys, &wrap)?;
            fsio::write_atomic(
                &dir.join(format!("wrap-{g}")),
                &wrap[..],
                Mode::Secret,
                true,
            )?;
            fsio::write_atomic(&dir.join(format!("ring-{g}")), &sealed, Mode::Secret, true)?;
            fsio::write_atomic(
                &dir.join("CURRENT"),
                format!("{g}\n").as_bytes(),
                Mode::Secret,
                true,
            )?;
            destroy_generation(dir, ring.generation);
            ring.generation = g;
        }
        ring.keys = keys;
        Ok(())
    }
}

/// What [`Keyring::take_initial_file`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum InitialFile {
    /// No file was waiting.
    None,
    /// The key is in the ring and the file is erased.
    Moved(Fingerprint),
    /// The key is in the ring but the file could not be erased (a
    /// read-only mount?): the operator must delete it.
    NotErased(Fingerprint, String),
    /// An earlier initial key is still needed: the file waits.
    Deferred(Fingerprint),
}

/// Overwrites `path` with zeros, syncs, and unlinks it.
fn erase_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let len = fs::metadata(path)?.len();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])?;
    f.sync_data()?;
    drop(f);
    fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        // The unlink itself made durable; a failure here changes nothing.
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn corrupt(path: &Path, reason: impl ToString) -> KeyringError {
    KeyringError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn random_key() -> Result<[u8; 32], KeyringError> {
    let mut k = [0u8; 32];
    aws_lc_rs::rand::fill(&mut k).map_err(|_| KeyringError::Aead)?;
    Ok(k)
}

fn aead(wrap: &[u8; 32]) -> Result<aws_lc_rs::aead::LessSafeKey, KeyringError> {
    aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, wrap)
        .map(aws_lc_rs::aead::LessSafeKey::new)
        .map_err(|_| KeyringError::Aead)
}

/// Each wrapping key encrypts exactly one ring, so the nonce is fixed.
fn nonce() -> aws_lc_rs::aead::Nonce {
    aws_lc_rs::aead::Nonce::assume_unique_for_key([0u8; aws_lc_rs::aead::NONCE_LEN])
}

/// `"PQVY" 1 count:u16 sealed_len:u32 AES-256-GCM(keys) || tag`, the
/// header as associated data.
fn wrap_keys(keys: &Keys, wrap: &[u8; 32]) -> Result<Vec<u8>, KeyringError> {
    let mut plain = Writer::raw();
    for k in keys.values() {
        k.write(&mut plain);
    }
    let mut body = Zeroizing::new(plain.finish());
    let mut w = Writer::new(RING_KIND);
    w.u16(keys.len() as u16);
    let aad = w.as_slice().to_vec();
    aead(wrap)?
        .seal_in_place_append_tag(nonce(), aws_lc_rs::aead::Aad::from(&aad[..]), &mut *body)
        .map_err(|_| KeyringError::Aead)?;
    w.var_bytes(&body);
    Ok(w.finish())
}

/// Decrypts and parses a ring written by [`wrap_keys`].
pub fn unwrap_keys(
    bytes: &[u8],
    wrap: &[u8; 32],
) -> Result<Vec<EpochKey>, Box<dyn std::error::Error + Send + Sync>> {
    let mut r = Reader::open(bytes, RING_KIND)?;
    let count = r.u16("key count")? as usize;
    if count > MAX_KEYS {
        return Err(FormatError::invalid("key count", format!("over {MAX_KEYS}")).into());
    }
    let aad = r.consumed().to_vec();
    let sealed = r.var_bytes("wrapped keys", MAX_RING as usize)?;
    r.finish()?;
    if sealed.len() < TAG_LEN {
        return Err(FormatError::invalid("wrapped keys", "shorter than the AEAD tag").into());
    }
    let mut buf = Zeroizing::new(sealed.to_vec());
    let plain = aead(wrap)?
        .open_in_place(nonce(), aws_lc_rs::aead::Aad::from(&aad[..]), &mut buf[..])
        .map_err(|_| "the ring does not authenticate under its wrapping key")?;
    let mut keys = Vec::with_capacity(count);
    let mut r = Reader::raw(plain);
    for _ in 0..count {
        keys.push(EpochKey::read(&mut r)?);
    }
    r.finish()?;
    Ok(keys)
}

fn load(dir: &Path) -> Result<Ring, KeyringError> {
    let current = dir.join("CURRENT");
    if !current.exists() {
        return Ok(Ring {
            generation: 0,
            keys: Keys::new(),
        });
    }
    let text = fsio::read_limited(&current, 64)?;
    let generation: u64 = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| corrupt(&current, "not a generation number"))?;
    let wrap_path = dir.join(format!("wrap-{generation}"));
    let wrap: Zeroizing<[u8; 32]> = Zeroizing::new(
        fsio::read_limited(&wrap_path, 32)?
            .try_into()
            .map_err(|_| corrupt(&wrap_path, "not 32 bytes"))?,
    );
    let ring_path = dir.join(format!("ring-{generation}"));
    let bytes = fsio::read_limited(&ring_path, MAX_RING)?;
    let mut keys = Keys::new();
    for k in unwrap_keys(&bytes, &wrap).map_err(|e| corrupt(&ring_path, e))? {
        let at = (k.public().vault_id, k.public().epoch);
        keys.insert(at, Arc::new(k));
    }
    Ok(Ring { generation, keys })
}

/// Overwrites generation `g`'s wrapping key with zeros, then unlinks its
/// files. Best effort: a failure leaves files the next start removes.
fn destroy_generation(dir: &Path, g: u64) {
    let wrap = dir.join(format!("wrap-{g}"));
    if let Ok(mut f) = fs::OpenOptions::new().write(true).open(&wrap) {
        let _ = f.write_all(&[0u8; 32]).and_then(|_| f.sync_data());
    }
    let _ = fs::remove_file(&wrap);
    let _ = fs::remove_file(dir.join(format!("ring-{g}")));
}

fn remove_other_generations(dir: &Path, keep: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let g = name
            .strip_prefix("wrap-")
            .or_else(|| name.strip_prefix("ring-"))
            .and_then(|g| g.parse::<u64>().ok());
        if let Some(g) = g {
            if g != keep {
                destroy_generation(dir, g);
            }
        }
        if name.starts_with(".tmp") || name.contains(".tmp.") {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::shamir::Share;

    fn record(vault: VaultId, epoch: u64) -> ShareRecord {
        ShareRecord {
            vault_id: vault,
            epoch,
            threshold: 2,
            n: 3,
            share: Share {
                index: 1,
                value: Zeroizing::new(vec![9u8; 48]),
            },
        }
    }

    fn identity() -> Arc<SecretIdentity> {
        static ID: std::sync::OnceLock<Arc<SecretIdentity>> = std::sync::OnceLock::new();
        ID.get_or_init(|| Arc::new(SecretIdentity::generate("keyring-test").unwrap()))
            .clone()
    }

    #[test]
    fn a_share_sealed_to_an_epoch_key_opens_until_the_key_is_erased() {
        let dir = tempfile::tempdir().unwrap();
        let v = VaultId::from_bytes([3; 16]);
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        let s2 = ring.seal_own(&record(v, 2), Suite::DEFAULT).unwrap();
        let s3 = ring.seal_own(&record(v, 3), Suite::DEFAULT).unwrap();
        // The identity alone opens neither.
        let err = SealedShard::parse(&s2)
            .unwrap()
            .open(&identity())
            .unwrap_err();
        assert!(matches!(err, SealError::EpochKeyNeeded { .. }), "{err}");
        // A restart reads both keys back.
        drop(ring);
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        assert_eq!(ring.open_shard(&s2).unwrap().epoch, 2);
        assert_eq!(ring.open_shard(&s3).unwrap().epoch, 3);
        // Epoch 3 committed: epoch 2's key goes, on disk too.
        assert_eq!(ring.erase_before(&v, 3).unwrap(), 1);
        assert!(ring.open_shard(&s2).is_err());
        drop(ring);
        let stolen = Keyring::open_read_only(dir.path(), identity()).unwrap();
        assert!(stolen.open_shard(&s2).is_err());
        assert_eq!(stolen.open_shard(&s3).unwrap().epoch, 3);
        // One generation on disk, and no old wrapping key.
        let mut names: Vec<String> = fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["CURRENT", "ring-3", "wrap-3"]);
    }

    #[test]
    fn an_initial_key_file_moves_into_the_ring_and_is_erased_once_spent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keyring-test.ikey");
        let (public, secret) = vault::initial_key::generate(&identity()).unwrap();
        fs::write(&file, &secret[..]).unwrap();
        let key = vault::initial_key::verify_public(&public, identity().public()).unwrap();
        let v = VaultId::from_bytes([4; 16]);
        let genesis =
            vault::seal::seal_to_epoch_key(&record(v, 1), identity().public().fingerprint(), &key)
                .unwrap();
        let fp = key.fingerprint();

        let ring = Keyring::open(dir.path(), identity()).unwrap();
        assert!(matches!(
            ring.open_shard(&genesis),
            Err(SealError::EpochKeyGone { .. })
        ));
        let moved = ring.take_initial_file(&file, |_| false).unwrap();
        assert_eq!(moved, InitialFile::Moved(fp));
        assert!(!file.exists(), "the file is erased");
        assert_eq!(ring.open_shard(&genesis).unwrap().epoch, 1);
        assert!(ring.epochs().is_empty(), "not counted as an epoch key");
        // A restart finds it in the ring.
        drop(ring);
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        assert_eq!(ring.initial(), Some(fp));

        // Still needed while the vault is at epoch 1 sealed to it, and kept
        // while nothing has moved on; spent once the vault is at epoch 2.
        assert!(!ring.settle_initial(&[(1, Some(fp))]).unwrap());
        assert!(!ring.settle_initial(&[]).unwrap());
        assert!(ring.settle_initial(&[(2, Some(fp))]).is_ok_and(|e| e));
        assert!(matches!(
            ring.open_shard(&genesis),
            Err(SealError::EpochKeyGone { .. })
        ));
        drop(ring);
        let stolen = Keyring::open_read_only(dir.path(), identity()).unwrap();
        assert!(stolen.open_shard(&genesis).is_err());
        assert_eq!(stolen.initial(), None);
    }

    #[test]
    fn an_initial_key_file_of_another_identity_or_while_one_is_needed_is_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        let other = SecretIdentity::generate("someone-else").unwrap();
        let file = dir.path().join("x.ikey");
        fs::write(&file, &vault::initial_key::generate(&other).unwrap().1[..]).unwrap();
        let err = ring.take_initial_file(&file, |_| false).unwrap_err();
        assert!(err.to_string().contains("x.ikey"), "{err}");
        assert!(file.exists(), "a refused file is left alone");

        // Ours: taken. A second one waits while the first is needed.
        fs::write(
            &file,
            &vault::initial_key::generate(&identity()).unwrap().1[..],
        )
        .unwrap();
        let InitialFile::Moved(first) = ring.take_initial_file(&file, |_| true).unwrap() else {
            panic!("not moved");
        };
        fs::write(
            &file,
            &vault::initial_key::generate(&identity()).unwrap().1[..],
        )
        .unwrap();
        assert!(matches!(
            ring.take_initial_file(&file, |fp| *fp == first).unwrap(),
            InitialFile::Deferred(_)
        ));
        assert!(file.exists());
        assert_eq!(ring.initial(), Some(first));
        // Once the first is not needed, the new one replaces it.
        assert!(matches!(
            ring.take_initial_file(&file, |_| false).unwrap(),
            InitialFile::Moved(fp) if fp != first
        ));
        assert!(!file.exists());
    }

    /// Checked-in vectors (TEST KEYS ONLY): a ring of one epoch key, its
    /// wrapping key, a `PQVS` v2 shard sealed to that key and the share
    /// record inside. Written once by `write_vectors`, never regenerated.
    #[test]
    fn the_checked_in_ring_and_epoch_shard_still_open() {
        let hex = |s: &str| hex::decode(s.trim()).unwrap();
        let wrap: [u8; 32] = hex(include_str!("../tests/vectors/pqvy-v1-wrap.hex"))
            .try_into()
            .unwrap();
        let ring = hex(include_str!("../tests/vectors/pqvy-v1-ring.hex"));
        let shard = hex(include_str!("../tests/vectors/pqvs-v2-shard.hex"));
        let share = hex(include_str!("../tests/vectors/pqvu-v1-share.hex"));
        let keys = unwrap_keys(&ring, &wrap).unwrap();
        assert_eq!(keys.len(), 1);
        let parsed = SealedShard::parse(&shard).unwrap();
        assert_eq!(parsed.header.epoch_key, Some(keys[0].fingerprint()));
        assert_eq!(
            keys[0].fingerprint().to_hex(),
            "f3a208fe5cd82d3aeb769f5665ba5c2bfe42934512420d50480cb2d5cf0422da"
        );
        let record = parsed.open_with_epoch_key(&keys[0]).unwrap();
        assert_eq!(&record.encode()[..], &share[..]);
        // Layout: the header is the AEAD's associated data, the epoch key
        // fingerprint its last 32 bytes.
        assert_eq!(&shard[..6], b"PQVS\x00\x02");
        assert_eq!(
            &shard[6 + 2 + 16 + 8 + 3 + 32..][..32],
            keys[0].fingerprint().as_bytes()
        );
        // The ring does not open under another wrapping key.
        assert!(unwrap_keys(&ring, &[0u8; 32]).is_err());
    }

    #[test]
    #[ignore = "writes the checked-in vectors; run once by hand"]
    fn write_vectors() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        let v = VaultId::from_bytes(*b"TEST-ONLY-vault!");
        let key = EpochKey::generate(Suite::DEFAULT, v, 2).unwrap();
        let mut keys = Keys::new();
        let key = Arc::new(key);
        keys.insert((v, 2), key.clone());
        let wrap = [0x5a; 32];
        let mut r = record(v, 2);
        r.share.value =
            Zeroizing::new(b"TEST-ONLY share value of the PQVS v2 vector, not a secret".to_vec());
        let owner = vault::identity::Fingerprint::from_bytes(*b"TEST-ONLY-recipient-fingerprint!");
        let shard = vault::seal::seal_to_epoch_key(&r, owner, key.public()).unwrap();
        let w = |name: &str, bytes: &[u8]| {
            fs::write(dir.join(name), format!("{}\n", hex::encode(bytes))).unwrap()
        };
        w("pqvy-v1-wrap.hex", &wrap);
        w("pqvy-v1-ring.hex", &wrap_keys(&keys, &wrap).unwrap());
        w("pqvs-v2-shard.hex", &shard);
        w("pqvu-v1-share.hex", &r.encode());
        println!("fingerprint {}", key.fingerprint().to_hex());
    }

    #[test]
    fn a_corrupt_ring_is_named_never_reset() {
        let dir = tempfile::tempdir().unwrap();
        let v = VaultId::from_bytes([4; 16]);
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        ring.seal_own(&record(v, 2), Suite::DEFAULT).unwrap();
        drop(ring);
        let p = dir.path().join("keys/ring-1");
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&p, &bytes).unwrap();
        let err = Keyring::open(dir.path(), identity()).err().unwrap();
        assert!(err.to_string().contains("ring-1"), "{err}");
        assert!(p.exists());
    }

    #[test]
    fn a_crash_after_the_switch_leaves_the_new_generation_and_destroys_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let v = VaultId::from_bytes([6; 16]);
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        let s2 = ring.seal_own(&record(v, 2), Suite::DEFAULT).unwrap();
        let keys = dir.path().join("keys");
        let (old_wrap, old_ring) = (
            fs::read(keys.join("wrap-1")).unwrap(),
            fs::read(keys.join("ring-1")).unwrap(),
        );
        let s3 = ring.seal_own(&record(v, 3), Suite::DEFAULT).unwrap();
        ring.erase_before(&v, 3).unwrap();
        drop(ring);
        // A crash between switching CURRENT and destroying generation 1
        // (here: its files put back) leaves generation 3 in force.
        fs::write(keys.join("wrap-1"), &old_wrap).unwrap();
        fs::write(keys.join("ring-1"), &old_ring).unwrap();
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        assert!(ring.open_shard(&s2).is_err(), "the erased key came back");
        assert_eq!(ring.open_shard(&s3).unwrap().epoch, 3);
        assert!(!keys.join("wrap-1").exists() && !keys.join("ring-1").exists());
    }

    #[test]
    fn leftovers_of_an_interrupted_change_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let v = VaultId::from_bytes([5; 16]);
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        let s = ring.seal_own(&record(v, 2), Suite::DEFAULT).unwrap();
        drop(ring);
        // A crash after writing generation 2 but before switching CURRENT.
        fs::write(dir.path().join("keys/wrap-2"), [1u8; 32]).unwrap();
        fs::write(dir.path().join("keys/ring-2"), b"partial").unwrap();
        let ring = Keyring::open(dir.path(), identity()).unwrap();
        assert_eq!(ring.open_shard(&s).unwrap().epoch, 2);
        assert!(!dir.path().join("keys/wrap-2").exists());
        assert!(!dir.path().join("keys/ring-2").exists());
    }
}
