//! Identities: a named set of KEM and signing keys, and their fingerprints.
//!
//! A validator (or operator) identity holds a hybrid KEM key pair (to receive
//! sealed shards) and a hybrid signing key pair (to sign manifests and,
//! later, epoch certificates). The public half is freely shareable; its
//! fingerprint, a hash of every public key but not the name, is how
//! manifests and shard headers name a recipient.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::kem::hybrid::{self, HybridPublicKey, HybridSecretKey, Suite};
use crate::kem::KemError;
use crate::sign::{self, HybridSigningKey, HybridVerifyingKey, SignError};
use aws_lc_rs::digest::{digest, SHA256};
use thiserror::Error;
use zeroize::Zeroizing;

/// File kind of a public identity (`*.pub`).
pub const PUBLIC_KIND: Kind = Kind {
    magic: *b"PQVI",
    name: "pqvault public identity",
    version: 1,
};

/// File kind of a secret identity (`*.key`).
pub const SECRET_KIND: Kind = Kind {
    magic: *b"PQVK",
    name: "pqvault secret key",
    version: 1,
};

/// Longest identity name.
pub const MAX_NAME_LEN: usize = 64;

/// Why an identity could not be created or loaded.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The encoding is malformed.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A KEM key is invalid or does not match its public key.
    #[error("{0}")]
    Kem(#[from] KemError),
    /// A signing key is invalid.
    #[error("{0}")]
    Sign(#[from] SignError),
    /// The name is not acceptable.
    #[error("invalid identity name {0:?}: use 1-64 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// The secret key's signing seeds do not produce the embedded public keys.
    #[error("secret key file is inconsistent: its signing keys do not match its public identity")]
    SigningKeyMismatch,
}

/// SHA-256 over an identity's public keys: how shards and manifests name it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Wraps raw bytes (as read from a file).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Fingerprint(b)
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Full lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// First 16 hex digits, for tables and logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

/// The shareable half of an identity.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    name: String,
    suite: Suite,
    kem: HybridPublicKey,
    sig: HybridVerifyingKey,
    fingerprint: Fingerprint,
}

/// A full identity; secret parts are zeroized on drop and never printed.
pub struct SecretIdentity {
    public: PublicIdentity,
    kem: HybridSecretKey,
    sig: HybridSigningKey,
}

fn check_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadName(name.to_string()))
    }
}

impl PublicIdentity {
    fn new(
        name: String,
        suite: Suite,
        kem: HybridPublicKey,
        sig: HybridVerifyingKey,
    ) -> Result<Self, IdentityError> {
        check_name(&name)?;
        kem.check(suite)?;
        sig.check()?;
        let mut id = PublicIdentity {
            name,
            suite,
            kem,
            sig,
            fingerprint: Fingerprint([0; 32]),
        };
        let mut w = Writer::raw();
        w.bytes(b"pqvault/v1 identity");
        id.write_keys(&mut w);
        id.fingerprint = Fingerprint::from_bytes(sha256(w.as_slice()));
        Ok(id)
    }

    /// Display name (not authenticated: the fingerprint is what counts).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// KEM suite the keys belong to.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Hybrid KEM public keys.
    pub fn kem(&self) -> &HybridPublicKey {
        &self.kem
    }

    /// Hybrid signature verification keys.
    pub fn verifying_key(&self) -> &HybridVerifyingKey {
        &self.sig
    }

    /// Fingerprint over all public keys.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn write_keys(&self, w: &mut Writer) {
        w.u16(self.suite.id())
            .bytes(&self.kem.x25519)
            .bytes(&self.kem.mlkem)
            .bytes(&self.kem.hqc)
            .u16(sign::SIG_SUITE_ED25519_MLDSA65)
            .bytes(&self.sig.ed25519)
            .bytes(&self.sig.mldsa);
    }

    /// Canonical encoding (a `.pub` file).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(PUBLIC_KIND);
        w.var_bytes(self.name.as_bytes());
        self.write_keys(&mut w);
        w.finish()
    }

    /// Decodes and checks a `.pub` file.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::open(bytes, PUBLIC_KIND)?;
        let id = Self::read_body(&mut r)?;
        r.finish()?;
        Ok(id)
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, IdentityError> {
        let name = r.var_bytes("identity name", MAX_NAME_LEN)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| FormatError::invalid("identity name", "not UTF-8"))?;
        let suite_id = r.u16("kem suite")?;
        let suite = Suite::from_id_or_err(suite_id)
            .map_err(|e| FormatError::invalid("kem suite", e.to_string()))?;
        let kem = HybridPublicKey::read(r, suite)?;
        let sig_suite = r.u16("signature suite")?;
        if sig_suite != sign::SIG_SUITE_ED25519_MLDSA65 {
            return Err(FormatError::invalid(
                "signature suite",
                format!("unknown suite id {sig_suite}"),
            )
            .into());
        }
        let sig = HybridVerifyingKey {
            ed25519: r.array("ed25519 public key")?,
            mldsa: r
                .take(sign::MLDSA65_PUBLIC_LEN, "ml-dsa-65 public key")?
                .to_vec(),
        };
        PublicIdentity::new(name, suite, kem, sig)
    }
}

impl std::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicIdentity")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecretIdentity {
    /// Generates a new identity with fresh keys of the default suite.
    pub fn generate(name: &str) -> Result<Self, IdentityError> {
        Self::generate_with_suite(name, Suite::DEFAULT)
    }

    /// Generates a new identity whose KEM keys belong to `suite`. Only tests
    /// and compatibility checks want anything but [`Suite::DEFAULT`]: suite 1
    /// is kept to read and extend existing vaults.
    pub fn generate_with_suite(name: &str, suite: Suite) -> Result<Self, IdentityError> {
        check_name(name)?;
        let (kem_sk, kem_pk) = hybrid::generate(suite)?;
        let sig = HybridSigningKey::generate()?;
        let public = PublicIdentity::new(name.to_string(), suite, kem_pk, sig.verifying_key()?)?;
        Ok(SecretIdentity {
            public,
            kem: kem_sk,
            sig,
        })
    }

    /// The public half.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// KEM secret keys (for unsealing).
    pub fn kem(&self) -> &HybridSecretKey {
        &self.kem
    }

    /// Signing key (for manifests and certificates).
    pub fn signing_key(&self) -> &HybridSigningKey {
        &self.sig
    }

    /// Canonical encoding (a `.key` file). The buffer is zeroized on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(SECRET_KIND);
        w.var_bytes(&self.public.encode());
        let (ed, ml) = self.sig.seeds();
        w.bytes(&self.kem.x25519)
            .bytes(&self.kem.mlkem)
            .bytes(&self.kem.hqc)
            .bytes(ed)
            .bytes(ml);
        Zeroizing::new(w.finish())
    }

    /// Decodes a `.key` file and checks every secret key against its public key.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::open(bytes, SECRET_KIND)?;
        let public = PublicIdentity::decode(r.var_bytes("public identity", 16 * 1024)?)?;
        let kem = HybridSecretKey::read(&mut r, public.suite())?;
        let ed = Zeroizing::new(r.array::<{ sign::SEED_LEN }>("ed25519 seed")?);
        let ml = Zeroizing::new(r.array::<{ sign::SEED_LEN }>("ml-dsa-65 seed")?);
        r.finish()?;
        hybrid::check_key_pair(public.suite(), &kem, public.kem())?;
        let sig = HybridSigningKey::from_seeds(&ed, &ml);
        if &sig.verifying_key()? != public.verifying_key() {
            return Err(IdentityError::SigningKeyMismatch);
        }
        Ok(SecretIdentity { public, kem, sig })
    }
}

impl std::fmt::Debug for SecretIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretIdentity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of `data` as an array.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fingerprint_ignores_name() {
        let id = SecretIdentity::generate("validator-1").unwrap();
        let pub_bytes = id.public().encode();
        let p = PublicIdentity::decode(&pub_bytes).unwrap();
        assert!(p == *id.public());
        let back = SecretIdentity::decode(&id.encode()).unwrap();
        assert_eq!(back.public().fingerprint(), id.public().fingerprint());

        // Renaming keeps the fingerprint.
        let renamed = PublicIdentity::new(
            "other".into(),
            p.suite(),
            p.kem().clone(),
            p.verifying_key().clone(),
        )
        .unwrap();
        assert_eq!(renamed.fingerprint(), p.fingerprint());
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(matches!(
            SecretIdentity::generate("bad name"),
            Err(IdentityError::BadName(_))
        ));
        assert!(matches!(
            SecretIdentity::generate(""),
            Err(IdentityError::BadName(_))
        ));
        let id = SecretIdentity::generate("v").unwrap();
        let pub_bytes = id.public().encode();
        assert!(PublicIdentity::decode(&pub_bytes[..pub_bytes.len() - 1]).is_err());
        let mut extra = pub_bytes.clone();
        extra.push(0);
        assert!(PublicIdentity::decode(&extra).is_err());
        // A secret key file with another identity's public half is refused.
        let other = SecretIdentity::generate("w").unwrap();
        let mut key = id.encode().to_vec();
        let other_pub = other.public().encode();
        let start = 6 + 4;
        key.splice(start..start + pub_bytes.len(), other_pub.iter().copied());
        assert!(SecretIdentity::decode(&key).is_err());
        // Feeding a public file as a key names the mismatch.
        let err = SecretIdentity::decode(&pub_bytes).unwrap_err().to_string();
        assert!(err.contains("pqvault secret key"), "{err}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let id = SecretIdentity::generate("v").unwrap();
        let dbg = format!("{id:?}");
        assert!(dbg.contains("fingerprint"));
        assert!(!dbg.contains(&hex::encode(&id.kem().x25519[..])));
    }
}
