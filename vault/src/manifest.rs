//! Vault manifests: the signed public record of one epoch of a vault.
//!
//! A manifest names the vault (random id, epoch), the sharing parameters
//! (suite, t, n, secret length) and, per shard, the index, the recipient's
//! fingerprint, the SHA-256 of the sealed shard file and a hiding commitment
//! to the plaintext share; plus a commitment to the secret itself. It is
//! signed with a hybrid signature by the signer identity it embeds. Parsing
//! gives a [`Manifest`]; only [`Manifest::verify`] gives the
//! [`VerifiedManifest`] that recovery accepts.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{Fingerprint, IdentityError, PublicIdentity, MAX_NAME_LEN};
use crate::kem::hybrid::Suite;
use crate::share::MAX_SECRET_LEN;
use crate::sign::{HybridSignature, HybridSigningKey, SignError};
use std::collections::BTreeSet;
use thiserror::Error;

/// File kind of a manifest (`manifest.pqvm`).
pub const MANIFEST_KIND: Kind = Kind {
    magic: *b"PQVM",
    name: "pqvault manifest",
    version: 1,
};

/// Signature domain for manifests.
pub const MANIFEST_SIG_DOMAIN: &str = "manifest";

/// The hash a manifest records for a sealed shard file: SHA-256 of its bytes.
pub fn shard_hash(sealed: &[u8]) -> [u8; 32] {
    crate::identity::sha256(sealed)
}

/// Random 128-bit vault identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultId([u8; 16]);

impl VaultId {
    /// Wraps raw bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        VaultId(b)
    }

    /// A fresh random id.
    pub fn random() -> Result<Self, ManifestError> {
        let mut b = [0u8; 16];
        aws_lc_rs::rand::fill(&mut b).map_err(|_| ManifestError::Rng)?;
        Ok(VaultId(b))
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Display for VaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for VaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultId({self})")
    }
}

/// Why a manifest is unacceptable.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// Malformed encoding.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The embedded signer identity is malformed.
    #[error("manifest signer: {0}")]
    Signer(#[from] IdentityError),
    /// The hybrid signature does not verify.
    #[error("manifest signature is invalid: {0}")]
    Signature(SignError),
    /// Signing failed.
    #[error("cannot sign manifest: {0}")]
    Signing(SignError),
    /// The signer is not the one the caller trusts.
    #[error("manifest is signed by {found}, not by the trusted signer {expected}")]
    UntrustedSigner {
        /// Fingerprint of the trusted signer.
        expected: Fingerprint,
        /// Fingerprint of the manifest's signer.
        found: Fingerprint,
    },
    /// The system RNG failed.
    #[error("system random number generator failed")]
    Rng,
}

/// One shard's line in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardEntry {
    /// Share index (evaluation point, 1..=255).
    pub index: u8,
    /// Recipient identity fingerprint.
    pub recipient: Fingerprint,
    /// Recipient's display name (signed, but not part of the fingerprint).
    pub recipient_name: String,
    /// SHA-256 of the sealed shard file.
    pub blob_hash: [u8; 32],
    /// Hiding commitment to the plaintext share.
    pub share_commitment: [u8; 32],
}

/// The signed content of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBody {
    /// KEM suite of every shard.
    pub suite: Suite,
    /// Vault id.
    pub vault_id: VaultId,
    /// Epoch number (1 for a new vault).
    pub epoch: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Threshold t.
    pub threshold: u8,
    /// Share count n.
    pub n: u8,
    /// Secret length in bytes.
    pub secret_len: u32,
    /// Commitment to the secret (see [`crate::share::secret_commitment`]).
    pub secret_commitment: [u8; 32],
    /// One entry per shard, in index order.
    pub shards: Vec<ShardEntry>,
}

/// A parsed manifest whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct Manifest {
    body: ManifestBody,
    signer: PublicIdentity,
    signature: HybridSignature,
    signed: Vec<u8>,
    digest: [u8; 32],
}

/// A manifest whose hybrid signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedManifest(Manifest);

impl ManifestBody {
    /// Checks the invariants every manifest must hold.
    pub fn validate(&self) -> Result<(), FormatError> {
        let (t, n) = (self.threshold, self.n);
        if n < 2 || t < 2 || t > n {
            return Err(FormatError::invalid(
                "threshold",
                format!("t = {t}, n = {n}: need 2 <= t <= n <= 255"),
            ));
        }
        if self.shards.len() != usize::from(n) {
            return Err(FormatError::invalid(
                "shard list",
                format!("{} entries for n = {n}", self.shards.len()),
            ));
        }
        if self.secret_len == 0 || self.secret_len as usize > MAX_SECRET_LEN {
            return Err(FormatError::invalid(
                "secret length",
                format!("{} bytes (allowed 1..={MAX_SECRET_LEN})", self.secret_len),
            ));
        }
        if self.epoch == 0 {
            return Err(FormatError::invalid("epoch", "epochs start at 1"));
        }
        // Entries are in index order and the indices are exactly 1..=n, as
        // every writer produces them: a reader never has to guess.
        if let Some((k, e)) = (1..=255u8).zip(&self.shards).find(|(k, e)| e.index != *k) {
            return Err(FormatError::invalid(
                "shard list",
                format!(
                    "entry {k} has share index {}; indices must be 1..={n} in order",
                    e.index
                ),
            ));
        }
        let mut indices = BTreeSet::new();
        let mut recipients = BTreeSet::new();
        for e in &self.shards {
            if e.recipient_name.is_empty() || e.recipient_name.chars().any(char::is_control) {
                return Err(FormatError::invalid(
                    "recipient name",
                    format!("share {}: empty or contains control characters", e.index),
                ));
            }
            if e.index == 0 || !indices.insert(e.index) {
                return Err(FormatError::invalid(
                    "shard list",
                    format!("share index {} is zero or repeated", e.index),
                ));
            }
            if !recipients.insert(e.recipient) {
                return Err(FormatError::invalid(
                    "shard list",
                    format!(
                        "recipient {} holds more than one shard",
                        e.recipient.short()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The entry for share `index`, if any.
    pub fn entry(&self, index: u8) -> Option<&ShardEntry> {
        self.shards.iter().find(|e| e.index == index)
    }

    fn write(&self, w: &mut Writer) {
        w.u16(self.suite.id())
            .bytes(self.vault_id.as_bytes())
            .u64(self.epoch)
            .u64(self.created_unix)
            .u8(self.threshold)
            .u8(self.n)
            .u32(self.secret_len)
            .bytes(&self.secret_commitment);
        for e in &self.shards {
            w.u8(e.index)
                .bytes(e.recipient.as_bytes())
                .var_bytes(e.recipient_name.as_bytes())
                .bytes(&e.blob_hash)
                .bytes(&e.share_commitment);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let suite_id = r.u16("kem suite")?;
        let suite = Suite::from_id_or_err(suite_id)
            .map_err(|e| FormatError::invalid("kem suite", e.to_string()))?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let epoch = r.u64("epoch")?;
        let created_unix = r.u64("created time")?;
        let threshold = r.u8("threshold")?;
        let n = r.u8("share count")?;
        let secret_len = r.u32("secret length")?;
        let secret_commitment = r.array("secret commitment")?;
        let mut shards = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let index = r.u8("shard index")?;
            let recipient = Fingerprint::from_bytes(r.array("recipient fingerprint")?);
            let name = r.var_bytes("recipient name", MAX_NAME_LEN)?;
            let recipient_name = String::from_utf8(name.to_vec())
                .map_err(|_| FormatError::invalid("recipient name", "not UTF-8"))?;
            shards.push(ShardEntry {
                index,
                recipient,
                recipient_name,
                blob_hash: r.array("shard hash")?,
                share_commitment: r.array("share commitment")?,
            });
        }
        let body = ManifestBody {
            suite,
            vault_id,
            epoch,
            created_unix,
            threshold,
            n,
            secret_len,
            secret_commitment,
            shards,
        };
        body.validate()?;
        Ok(body)
    }
}

impl Manifest {
    /// Signs `body` with `signer` and returns the encoded manifest.
    pub fn sign(
        body: &ManifestBody,
        signer: &PublicIdentity,
        key: &HybridSigningKey,
    ) -> Result<Vec<u8>, ManifestError> {
        body.validate()?;
        let mut w = Writer::new(MANIFEST_KIND);
        body.write(&mut w);
        w.var_bytes(&signer.encode());
        let sig = key
            .sign(MANIFEST_SIG_DOMAIN, w.as_slice())
            .map_err(ManifestError::Signing)?;
        w.bytes(&sig.ed25519).bytes(&sig.mldsa);
        Ok(w.finish())
    }

    /// Parses a manifest; checks structure and invariants, not the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut r = Reader::open(bytes, MANIFEST_KIND)?;
        let body = ManifestBody::read(&mut r)?;
        let signer = PublicIdentity::decode(r.var_bytes("signer identity", 16 * 1024)?)?;
        let signed = r.consumed().to_vec();
        let signature = HybridSignature::read(&mut r)?;
        r.finish()?;
        Ok(Manifest {
            body,
            signer,
            signature,
            signed,
            digest: crate::identity::sha256(bytes),
        })
    }

    /// The (unverified) content.
    pub fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// The identity the manifest claims signed it.
    pub fn signer(&self) -> &PublicIdentity {
        &self.signer
    }

    /// SHA-256 of the whole encoded manifest: how epoch certificates name it.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Verifies the hybrid signature, and that the signer is `trusted` when given.
    ///
    /// Without a trusted signer, the signature proves only integrity
    /// relative to the embedded signer; callers show its fingerprint so an
    /// operator can compare it.
    pub fn verify(self, trusted: Option<&Fingerprint>) -> Result<VerifiedManifest, ManifestError> {
        if let Some(expected) = trusted {
            let found = self.signer.fingerprint();
            if found != *expected {
                return Err(ManifestError::UntrustedSigner {
                    expected: *expected,
                    found,
                });
            }
        }
        self.signer
            .verifying_key()
            .verify(MANIFEST_SIG_DOMAIN, &self.signed, &self.signature)
            .map_err(ManifestError::Signature)?;
        Ok(VerifiedManifest(self))
    }
}

impl VerifiedManifest {
    /// The verified content.
    pub fn body(&self) -> &ManifestBody {
        &self.0.body
    }

    /// The identity whose signature verified.
    pub fn signer(&self) -> &PublicIdentity {
        &self.0.signer
    }

    /// SHA-256 of the whole encoded manifest.
    pub fn digest(&self) -> [u8; 32] {
        self.0.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SecretIdentity;

    fn body() -> ManifestBody {
        ManifestBody {
            suite: Suite::DEFAULT,
            vault_id: VaultId::from_bytes([1; 16]),
            epoch: 1,
            created_unix: 1_700_000_000,
            threshold: 2,
            n: 3,
            secret_len: 32,
            secret_commitment: [9; 32],
            shards: (1..=3)
                .map(|i| ShardEntry {
                    index: i,
                    recipient: Fingerprint::from_bytes([i; 32]),
                    recipient_name: format!("v{i}"),
                    blob_hash: [i + 10; 32],
                    share_commitment: [i + 20; 32],
                })
                .collect(),
        }
    }

    #[test]
    fn entries_in_order_named_cleanly_from_epoch_one() {
        assert!(body().validate().is_ok());
        let mut b = body();
        b.shards.swap(0, 1);
        let e = b.validate().unwrap_err().to_string();
        assert!(e.contains("indices must be 1..="), "{e}");
        let mut b = body();
        b.shards[0].recipient_name = "v1\x1b[2J".into();
        assert!(b.validate().unwrap_err().to_string().contains("control"));
        let mut b = body();
        b.epoch = 0;
        assert!(b.validate().unwrap_err().to_string().contains("epoch"));
    }

    #[test]
    fn sign_decode_verify_and_tamper() {
        let op = SecretIdentity::generate("operator").unwrap();
        let bytes = Manifest::sign(&body(), op.public(), op.signing_key()).unwrap();
        let m = Manifest::decode(&bytes).unwrap();
        assert_eq!(m.body(), &body());
        let fp = op.public().fingerprint();
        m.clone().verify(Some(&fp)).unwrap();

        let other = SecretIdentity::generate("mallory").unwrap();
        assert!(matches!(
            m.verify(Some(&other.public().fingerprint())),
            Err(ManifestError::UntrustedSigner { .. })
        ));

        // Flip bytes in the body (a blob hash) and the signatures.
        let body_pos = 6 + 2 + 16 + 8 + 8 + 2 + 4 + 32 + 1 + 32 + 4 + 2 + 5;
        for pos in [
            body_pos,
            bytes.len() - 1,
            bytes.len() - crate::sign::MLDSA65_SIG_LEN - 1,
        ] {
            let mut bad = bytes.clone();
            bad[pos] ^= 1;
            let r = Manifest::decode(&bad).and_then(|m| m.verify(None));
            assert!(matches!(r, Err(ManifestError::Signature(_))), "pos {pos}");
        }
    }

    #[test]
    fn invariants_are_enforced() {
        let mut b = body();
        b.threshold = 4;
        assert!(b.validate().is_err());
        let mut b = body();
        b.shards[1].index = 1;
        assert!(b.validate().is_err());
        let mut b = body();
        b.shards[1].recipient = b.shards[0].recipient;
        assert!(b.validate().is_err());
        let mut b = body();
        b.shards.pop();
        assert!(b.validate().is_err());
        let mut b = body();
        b.secret_len = 0;
        assert!(b.validate().is_err());
    }
}
