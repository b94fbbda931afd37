//! Epoch KEM keys: a fresh hybrid KEM key pair per (vault, epoch).
//!
//! From epoch 2 on, a validator seals its own share of an epoch to a key
//! pair it generated for that epoch alone, and erases the secret half once
//! the vault has moved to a later epoch (issue 10, attack 5; decisions
//! D42). A thief who archives sealed shards of epoch e and steals a
//! validator's keys later, at epoch e' > e, finds no key that opens them:
//! the identity's KEM key never sealed them, and epoch e's key is gone.
//!
//! The key is named by its fingerprint, which the sealed shard's header
//! carries (`PQVS` version 2, `docs/formats.md`) and the epoch manifest
//! commits to through the shard's hash.

use crate::codec::{FormatError, Reader, Writer};
use crate::identity::Fingerprint;
use crate::kem::hybrid::{self, HybridPublicKey, HybridSecretKey, Suite};
use crate::kem::KemError;
use crate::manifest::VaultId;
use aws_lc_rs::digest::{Context, SHA256};
use thiserror::Error;

/// Domain label of an epoch key's fingerprint.
const LABEL: &[u8] = b"pqvault epoch kem key v1\0";

/// Why an epoch key could not be made or read.
#[derive(Debug, Error)]
pub enum EpochKeyError {
    /// The encoding is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A component key is invalid or does not match its public key.
    #[error("epoch key: {0}")]
    Kem(#[from] KemError),
}

/// The public half of an epoch key: what a share is sealed to.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochPublicKey {
    /// KEM suite of the key.
    pub suite: Suite,
    /// Vault the key serves.
    pub vault_id: VaultId,
    /// Epoch the key serves.
    pub epoch: u64,
    /// The three public keys.
    pub kem: HybridPublicKey,
}

impl EpochPublicKey {
    /// SHA-256 over the label, suite, vault, epoch and the three public
    /// keys: how a sealed shard names the key it was sealed to.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut c = Context::new(&SHA256);
        c.update(LABEL);
        c.update(&self.suite.id().to_be_bytes());
        c.update(self.vault_id.as_bytes());
        c.update(&self.epoch.to_be_bytes());
        c.update(&self.kem.x25519);
        c.update(&self.kem.mlkem);
        c.update(&self.kem.hqc);
        let mut out = [0u8; 32];
        out.copy_from_slice(c.finish().as_ref());
        Fingerprint::from_bytes(out)
    }
}

/// An epoch key pair. The secret half is zeroized when dropped.
pub struct EpochKey {
    public: EpochPublicKey,
    secret: HybridSecretKey,
    fingerprint: Fingerprint,
}

impl EpochKey {
    /// Generates a fresh key pair of `suite` for `(vault_id, epoch)`.
    pub fn generate(suite: Suite, vault_id: VaultId, epoch: u64) -> Result<Self, EpochKeyError> {
        let (secret, kem) = hybrid::generate(suite)?;
        Ok(Self::from_parts(
            EpochPublicKey {
                suite,
                vault_id,
                epoch,
                kem,
            },
            secret,
        ))
    }

    fn from_parts(public: EpochPublicKey, secret: HybridSecretKey) -> Self {
        let fingerprint = public.fingerprint();
        EpochKey {
            public,
            secret,
            fingerprint,
        }
    }

    /// The public half.
    pub fn public(&self) -> &EpochPublicKey {
        &self.public
    }

    /// The KEM secret keys (for unsealing).
    pub fn secret(&self) -> &HybridSecretKey {
        &self.secret
    }

    /// The public key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Appends the key pair: suite, vault, epoch, public keys, secret keys.
    /// Callers encrypt what they write (a keyring), never store it plain.
    pub fn write(&self, w: &mut Writer) {
        let p = &self.public;
        w.u16(p.suite.id())
            .bytes(p.vault_id.as_bytes())
            .u64(p.epoch)
            .bytes(&p.kem.x25519)
            .bytes(&p.kem.mlkem)
            .bytes(&p.kem.hqc)
            .bytes(&self.secret.x25519)
            .bytes(&self.secret.mlkem)
            .bytes(&self.secret.hqc);
    }

    /// Reads what [`EpochKey::write`] wrote and checks that the secret
    /// keys belong to the public keys.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, EpochKeyError> {
        let suite = Suite::from_id_or_err(r.u16("epoch key suite")?)
            .map_err(|e| FormatError::invalid("epoch key suite", e.to_string()))?;
        let vault_id = VaultId::from_bytes(r.array("epoch key vault id")?);
        let epoch = r.u64("epoch key epoch")?;
        let kem = HybridPublicKey::read(r, suite)?;
        let secret = HybridSecretKey::read(r, suite)?;
        hybrid::check_key_pair(suite, &secret, &kem)?;
        Ok(Self::from_parts(
            EpochPublicKey {
                suite,
                vault_id,
                epoch,
                kem,
            },
            secret,
        ))
    }
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochKey")
            .field("vault", &self.public.vault_id.to_string())
            .field("epoch", &self.public.epoch)
            .field("fingerprint", &self.fingerprint.short())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kem::mlkem::MlKem768;
    use crate::kem::x25519::X25519;
    use crate::kem::Kem;

    #[test]
    fn a_key_round_trips_and_a_swapped_secret_is_refused() {
        let v = VaultId::from_bytes([7; 16]);
        let a = EpochKey::generate(Suite::DEFAULT, v, 3).unwrap();
        let mut w = Writer::raw();
        a.write(&mut w);
        let bytes = w.finish();
        let b = EpochKey::read(&mut Reader::raw(&bytes)).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(b.public().epoch, 3);

        // Another key's secret under this public key is refused.
        let other = EpochKey::generate(Suite::DEFAULT, v, 3).unwrap();
        let mut w = Writer::raw();
        other.write(&mut w);
        let mut spliced = bytes.clone();
        let tail = other_secret_offset(&bytes);
        spliced[tail..].copy_from_slice(&w.finish()[tail..]);
        assert!(EpochKey::read(&mut Reader::raw(&spliced)).is_err());

        // The fingerprint binds vault and epoch.
        let mut moved = a.public().clone();
        moved.epoch = 4;
        assert_ne!(moved.fingerprint(), a.fingerprint());
    }

    fn other_secret_offset(bytes: &[u8]) -> usize {
        bytes.len()
            - X25519::SECRET_KEY_LEN
            - MlKem768::SECRET_KEY_LEN
            - Suite::DEFAULT.hqc_secret_key_len()
    }
}
