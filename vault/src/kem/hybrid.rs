//! The hybrid KEM suite and its combiner.
//!
//! Suite 1, `x25519-mlkem768-hqc192r4`, encapsulates to all three components
//! and derives one AEAD key:
//!
//! ```text
//! label      = "pqvault/v1 hybrid-kem x25519-mlkem768-hqc192r4"
//! transcript = SHA-256(label || suite_id || ct_x25519 || ct_mlkem || ct_hqc || recipient_fingerprint)
//! prk        = HKDF-Extract(salt = transcript, ikm = label || ss_mlkem || ss_hqc || ss_x25519)
//! key        = HKDF-Expand(prk, "pqvault/v1 aead-key", 32)
//! ```
//!
//! The recipient fingerprint is a hash of all of the recipient's public keys,
//! so every public key and every ciphertext is bound. Why this stays secure
//! while any one component holds is argued in `docs/combiner.md`.

use super::hqc::Hqc192;
use super::mlkem::MlKem768;
use super::x25519::X25519;
use super::{Kem, KemError};
use crate::identity::Fingerprint;
use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use zeroize::Zeroizing;

/// Length of the derived AEAD key.
pub const KEY_LEN: usize = 32;

/// A hybrid KEM suite: which components, at which parameters.
///
/// New suites (e.g. ML-KEM-1024 + HQC-256, or the standardised HQC) get new
/// ids; the formats carry the id so old files keep opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// X25519 + ML-KEM-768 + HQC-192 (round-4 revision, 2023).
    X25519MlKem768Hqc192R4,
}

impl Suite {
    /// The suite new vaults use.
    pub const DEFAULT: Suite = Suite::X25519MlKem768Hqc192R4;

    /// Wire id.
    pub fn id(self) -> u16 {
        match self {
            Suite::X25519MlKem768Hqc192R4 => 1,
        }
    }

    /// Looks a suite up by wire id.
    pub fn from_id(id: u16) -> Option<Suite> {
        match id {
            1 => Some(Suite::X25519MlKem768Hqc192R4),
            _ => None,
        }
    }

    /// Stable name, used in the combiner label and shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Suite::X25519MlKem768Hqc192R4 => "x25519-mlkem768-hqc192r4",
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Suite::X25519MlKem768Hqc192R4 => b"pqvault/v1 hybrid-kem x25519-mlkem768-hqc192r4",
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A recipient's three public keys.
#[derive(Clone, PartialEq, Eq)]
pub struct HybridPublicKey {
    /// X25519 public key.
    pub x25519: Vec<u8>,
    /// ML-KEM-768 encapsulation key.
    pub mlkem: Vec<u8>,
    /// HQC-192 public key.
    pub hqc: Vec<u8>,
}

/// A recipient's three secret keys, zeroized on drop.
pub struct HybridSecretKey {
    /// X25519 private scalar.
    pub x25519: Zeroizing<Vec<u8>>,
    /// ML-KEM-768 decapsulation key.
    pub mlkem: Zeroizing<Vec<u8>>,
    /// HQC-192 secret key.
    pub hqc: Zeroizing<Vec<u8>>,
}

/// The three component ciphertexts.
#[derive(Clone, PartialEq, Eq)]
pub struct HybridCiphertext {
    /// X25519 ephemeral public key.
    pub x25519: Vec<u8>,
    /// ML-KEM-768 ciphertext.
    pub mlkem: Vec<u8>,
    /// HQC-192 ciphertext.
    pub hqc: Vec<u8>,
}

impl HybridPublicKey {
    /// Checks each component key (sizes, ML-KEM modulus check).
    pub fn check(&self) -> Result<(), KemError> {
        X25519::check_public_key(&self.x25519)?;
        MlKem768::check_public_key(&self.mlkem)?;
        Hqc192::check_public_key(&self.hqc)
    }
}

/// Generates a fresh hybrid key pair.
pub fn generate() -> Result<(HybridSecretKey, HybridPublicKey), KemError> {
    let x = X25519::generate()?;
    let m = MlKem768::generate()?;
    let h = Hqc192::generate()?;
    Ok((
        HybridSecretKey {
            x25519: x.secret,
            mlkem: m.secret,
            hqc: h.secret,
        },
        HybridPublicKey {
            x25519: x.public,
            mlkem: m.public,
            hqc: h.public,
        },
    ))
}

/// Checks that `secret` belongs to `public`, component by component.
pub fn check_key_pair(secret: &HybridSecretKey, public: &HybridPublicKey) -> Result<(), KemError> {
    X25519::check_key_pair(&secret.x25519, &public.x25519)?;
    MlKem768::check_key_pair(&secret.mlkem, &public.mlkem)?;
    Hqc192::check_key_pair(&secret.hqc, &public.hqc)
}

/// Encapsulates to all three components and derives the AEAD key.
pub fn encapsulate(
    suite: Suite,
    public: &HybridPublicKey,
    recipient: &Fingerprint,
) -> Result<(HybridCiphertext, Zeroizing<[u8; KEY_LEN]>), KemError> {
    let x = X25519::encapsulate(&public.x25519)?;
    let m = MlKem768::encapsulate(&public.mlkem)?;
    let h = Hqc192::encapsulate(&public.hqc)?;
    let ct = HybridCiphertext {
        x25519: x.ciphertext,
        mlkem: m.ciphertext,
        hqc: h.ciphertext,
    };
    let key = combine(
        suite,
        &x.shared_secret,
        &m.shared_secret,
        &h.shared_secret,
        &ct,
        recipient,
    )?;
    Ok((ct, key))
}

/// Decapsulates all three components and derives the AEAD key.
///
/// A rejected component is reported as [`KemError::Rejected`] with no detail
/// beyond the component; callers fold it into one authentication failure.
pub fn decapsulate(
    suite: Suite,
    secret: &HybridSecretKey,
    ct: &HybridCiphertext,
    recipient: &Fingerprint,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KemError> {
    let ss_x = X25519::decapsulate(&secret.x25519, &ct.x25519)?;
    let ss_m = MlKem768::decapsulate(&secret.mlkem, &ct.mlkem)?;
    let ss_h = Hqc192::decapsulate(&secret.hqc, &ct.hqc)?;
    combine(suite, &ss_x, &ss_m, &ss_h, ct, recipient)
}

/// The combiner (see module docs and `docs/combiner.md`).
pub fn combine(
    suite: Suite,
    ss_x25519: &[u8],
    ss_mlkem: &[u8],
    ss_hqc: &[u8],
    ct: &HybridCiphertext,
    recipient: &Fingerprint,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KemError> {
    let label = suite.label();
    let mut t = Context::new(&SHA256);
    t.update(label);
    t.update(&suite.id().to_be_bytes());
    t.update(&ct.x25519);
    t.update(&ct.mlkem);
    t.update(&ct.hqc);
    t.update(recipient.as_bytes());
    let transcript = t.finish();

    let mut ikm = Zeroizing::new(Vec::with_capacity(label.len() + 128));
    ikm.extend_from_slice(label);
    ikm.extend_from_slice(ss_mlkem);
    ikm.extend_from_slice(ss_hqc);
    ikm.extend_from_slice(ss_x25519);

    let internal = KemError::Internal {
        kem: "hybrid",
        op: "key derivation",
    };
    let prk = Salt::new(HKDF_SHA256, transcript.as_ref()).extract(&ikm);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    prk.expand(&[b"pqvault/v1 aead-key"], Len(KEY_LEN))
        .and_then(|okm| okm.fill(&mut key[..]))
        .map_err(|_| internal)?;
    Ok(key)
}

/// HKDF output length marker.
struct Len(usize);

impl aws_lc_rs::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint::from_bytes([b; 32])
    }

    #[test]
    fn round_trip_and_binding() {
        let suite = Suite::DEFAULT;
        let (sk, pk) = generate().unwrap();
        check_key_pair(&sk, &pk).unwrap();
        let (ct, key) = encapsulate(suite, &pk, &fp(1)).unwrap();
        let key2 = decapsulate(suite, &sk, &ct, &fp(1)).unwrap();
        assert_eq!(*key, *key2);

        // A different recipient fingerprint gives a different key.
        let key3 = decapsulate(suite, &sk, &ct, &fp(2)).unwrap();
        assert_ne!(*key, *key3);
    }

    #[test]
    fn every_secret_and_ciphertext_matters() {
        let suite = Suite::DEFAULT;
        let ct = HybridCiphertext {
            x25519: vec![1; 32],
            mlkem: vec![2; 1088],
            hqc: vec![3; 100],
        };
        let base = combine(suite, &[4; 32], &[5; 32], &[6; 64], &ct, &fp(7)).unwrap();
        let variants = [
            combine(suite, &[9; 32], &[5; 32], &[6; 64], &ct, &fp(7)),
            combine(suite, &[4; 32], &[9; 32], &[6; 64], &ct, &fp(7)),
            combine(suite, &[4; 32], &[5; 32], &[9; 64], &ct, &fp(7)),
            combine(suite, &[4; 32], &[5; 32], &[6; 64], &ct, &fp(9)),
        ];
        for v in variants {
            assert_ne!(*base, *v.unwrap());
        }
        for i in 0..3 {
            let mut c = ct.clone();
            match i {
                0 => c.x25519[0] ^= 1,
                1 => c.mlkem[0] ^= 1,
                _ => c.hqc[0] ^= 1,
            }
            let k = combine(suite, &[4; 32], &[5; 32], &[6; 64], &c, &fp(7)).unwrap();
            assert_ne!(*base, *k);
        }
    }

    #[test]
    fn suite_ids() {
        assert_eq!(Suite::from_id(1), Some(Suite::DEFAULT));
        assert_eq!(Suite::from_id(0), None);
        assert_eq!(Suite::from_id(2), None);
        assert_eq!(Suite::DEFAULT.to_string(), "x25519-mlkem768-hqc192r4");
    }
}
