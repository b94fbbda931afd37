//! The hybrid KEM suites and their combiner.
//!
//! A suite encapsulates to X25519, ML-KEM-768 and one HQC-192 revision, and
//! derives one AEAD key:
//!
//! ```text
//! label      = "pqvault/v1 hybrid-kem " || suite name
//! transcript = SHA-256(label || suite_id || ct_x25519 || ct_mlkem || ct_hqc || recipient_fingerprint)
//! prk        = HKDF-Extract(salt = transcript, ikm = label || ss_mlkem || ss_hqc || ss_x25519)
//! key        = HKDF-Expand(prk, "pqvault/v1 aead-key", 32)
//! ```
//!
//! | id | name | HQC |
//! | --- | --- | --- |
//! | 1 | `x25519-mlkem768-hqc192r4` | round 4 (2023), `pqcrypto-hqc`: read and kept for existing vaults |
//! | 2 | `x25519-mlkem768-hqc192v5` | version 5 (2025, FIPS 207 track), `hqc-kem`: what new identities and vaults use |
//!
//! The recipient fingerprint is a hash of all of the recipient's public keys,
//! so every public key and every ciphertext is bound. Why this stays secure
//! while any one component holds is argued in `docs/combiner.md`.

use super::hqc_r4::Hqc192R4;
use super::hqc_v5::Hqc192V5;
use super::mlkem::MlKem768;
use super::x25519::X25519;
use super::{Kem, KemError};
use crate::codec::{FormatError, Reader};
use crate::identity::Fingerprint;
use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use zeroize::Zeroizing;

/// Length of the derived AEAD key.
pub const KEY_LEN: usize = 32;

/// A hybrid KEM suite: which components, at which parameters.
///
/// New suites get new ids; the formats carry the id so old files keep
/// opening (`docs/formats.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// X25519 + ML-KEM-768 + HQC-192 (round-4 revision, 2023). Read, and
    /// still sealed to for vaults created with it; no new key is made for it.
    X25519MlKem768Hqc192R4,
    /// X25519 + ML-KEM-768 + HQC-192 (version 5, 2025-08-22, FIPS 207 track).
    X25519MlKem768Hqc192V5,
}

impl Suite {
    /// The suite new identities and vaults use.
    pub const DEFAULT: Suite = Suite::X25519MlKem768Hqc192V5;

    /// Every suite this build reads, oldest first.
    pub const ALL: [Suite; 2] = [Suite::X25519MlKem768Hqc192R4, Suite::X25519MlKem768Hqc192V5];

    /// Wire id.
    pub fn id(self) -> u16 {
        match self {
            Suite::X25519MlKem768Hqc192R4 => 1,
            Suite::X25519MlKem768Hqc192V5 => 2,
        }
    }

    /// Looks a suite up by wire id.
    pub fn from_id(id: u16) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Looks a suite up by wire id, with an error that names the id and
    /// every suite this build knows.
    pub fn from_id_or_err(id: u16) -> Result<Suite, UnknownSuite> {
        Suite::from_id(id).ok_or(UnknownSuite(id))
    }

    /// Stable name, used in the combiner label and shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Suite::X25519MlKem768Hqc192R4 => "x25519-mlkem768-hqc192r4",
            Suite::X25519MlKem768Hqc192V5 => "x25519-mlkem768-hqc192v5",
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Suite::X25519MlKem768Hqc192R4 => b"pqvault/v1 hybrid-kem x25519-mlkem768-hqc192r4",
            Suite::X25519MlKem768Hqc192V5 => b"pqvault/v1 hybrid-kem x25519-mlkem768-hqc192v5",
        }
    }

    /// Name of the suite's HQC component (for errors and field names).
    pub fn hqc_name(self) -> &'static str {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::NAME,
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::NAME,
        }
    }

    /// HQC public key length in this suite.
    pub fn hqc_public_key_len(self) -> usize {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::PUBLIC_KEY_LEN,
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::PUBLIC_KEY_LEN,
        }
    }

    /// HQC secret key length in this suite.
    pub fn hqc_secret_key_len(self) -> usize {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::SECRET_KEY_LEN,
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::SECRET_KEY_LEN,
        }
    }

    /// HQC ciphertext length in this suite.
    pub fn hqc_ciphertext_len(self) -> usize {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::CIPHERTEXT_LEN,
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::CIPHERTEXT_LEN,
        }
    }

    fn hqc_generate(self) -> Result<super::KeyPair, KemError> {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::generate(),
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::generate(),
        }
    }

    fn hqc_check_public_key(self, public: &[u8]) -> Result<(), KemError> {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::check_public_key(public),
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::check_public_key(public),
        }
    }

    fn hqc_check_key_pair(self, secret: &[u8], public: &[u8]) -> Result<(), KemError> {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::check_key_pair(secret, public),
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::check_key_pair(secret, public),
        }
    }

    fn hqc_encapsulate(self, public: &[u8]) -> Result<super::Encapsulated, KemError> {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::encapsulate(public),
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::encapsulate(public),
        }
    }

    fn hqc_decapsulate(self, secret: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, KemError> {
        match self {
            Suite::X25519MlKem768Hqc192R4 => Hqc192R4::decapsulate(secret, ct),
            Suite::X25519MlKem768Hqc192V5 => Hqc192V5::decapsulate(secret, ct),
        }
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A suite id this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown KEM suite id {0} (this build knows: 1 = x25519-mlkem768-hqc192r4, 2 = x25519-mlkem768-hqc192v5)")]
pub struct UnknownSuite(pub u16);

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

impl HybridSecretKey {
    /// Reads the three secret keys of `suite` (X25519, ML-KEM-768,
    /// HQC-192); the caller checks them against their public keys.
    pub fn read(r: &mut Reader<'_>, suite: Suite) -> Result<Self, FormatError> {
        Ok(HybridSecretKey {
            x25519: Zeroizing::new(
                r.take(X25519::SECRET_KEY_LEN, "x25519 secret key")?
                    .to_vec(),
            ),
            mlkem: Zeroizing::new(
                r.take(MlKem768::SECRET_KEY_LEN, "ml-kem-768 secret key")?
                    .to_vec(),
            ),
            hqc: Zeroizing::new(
                r.take(suite.hqc_secret_key_len(), "hqc-192 secret key")?
                    .to_vec(),
            ),
        })
    }
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
    /// Reads the three public keys of `suite`, in the order every format
    /// stores them: X25519, ML-KEM-768, HQC-192.
    pub fn read(r: &mut Reader<'_>, suite: Suite) -> Result<Self, FormatError> {
        Ok(HybridPublicKey {
            x25519: r
                .take(X25519::PUBLIC_KEY_LEN, "x25519 public key")?
                .to_vec(),
            mlkem: r
                .take(MlKem768::PUBLIC_KEY_LEN, "ml-kem-768 public key")?
                .to_vec(),
            hqc: r
                .take(suite.hqc_public_key_len(), "hqc-192 public key")?
                .to_vec(),
        })
    }

    /// Checks each component key for `suite` (sizes, ML-KEM modulus check,
    /// HQC canonical encoding).
    pub fn check(&self, suite: Suite) -> Result<(), KemError> {
        X25519::check_public_key(&self.x25519)?;
        MlKem768::check_public_key(&self.mlkem)?;
        suite.hqc_check_public_key(&self.hqc)
    }
}

/// Generates a fresh hybrid key pair of `suite`.
pub fn generate(suite: Suite) -> Result<(HybridSecretKey, HybridPublicKey), KemError> {
    let x = X25519::generate()?;
    let m = MlKem768::generate()?;
    let h = suite.hqc_generate()?;
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
pub fn check_key_pair(
    suite: Suite,
    secret: &HybridSecretKey,
    public: &HybridPublicKey,
) -> Result<(), KemError> {
    X25519::check_key_pair(&secret.x25519, &public.x25519)?;
    MlKem768::check_key_pair(&secret.mlkem, &public.mlkem)?;
    suite.hqc_check_key_pair(&secret.hqc, &public.hqc)
}

/// Encapsulates to all three components and derives the AEAD key.
pub fn encapsulate(
    suite: Suite,
    public: &HybridPublicKey,
    recipient: &Fingerprint,
) -> Result<(HybridCiphertext, Zeroizing<[u8; KEY_LEN]>), KemError> {
    let x = X25519::encapsulate(&public.x25519)?;
    let m = MlKem768::encapsulate(&public.mlkem)?;
    let h = suite.hqc_encapsulate(&public.hqc)?;
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
/// All three components are always decapsulated, whatever one of them
/// says, so the time taken does not tell which one objected; a rejected
/// component is then reported as [`KemError::Rejected`] with no detail beyond
/// the component, and callers fold it into one authentication failure.
/// (Suite 2's HQC and ML-KEM reject implicitly: a modified ciphertext gives
/// an unrelated key and the AEAD fails.)
pub fn decapsulate(
    suite: Suite,
    secret: &HybridSecretKey,
    ct: &HybridCiphertext,
    recipient: &Fingerprint,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KemError> {
    let ss_x = X25519::decapsulate(&secret.x25519, &ct.x25519);
    let ss_m = MlKem768::decapsulate(&secret.mlkem, &ct.mlkem);
    let ss_h = suite.hqc_decapsulate(&secret.hqc, &ct.hqc);
    combine(suite, &ss_x?, &ss_m?, &ss_h?, ct, recipient)
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
        for suite in Suite::ALL {
            let (sk, pk) = generate(suite).unwrap();
            check_key_pair(suite, &sk, &pk).unwrap();
            pk.check(suite).unwrap();
            let (ct, key) = encapsulate(suite, &pk, &fp(1)).unwrap();
            assert_eq!(ct.hqc.len(), suite.hqc_ciphertext_len());
            let key2 = decapsulate(suite, &sk, &ct, &fp(1)).unwrap();
            assert_eq!(*key, *key2);

            // A different recipient fingerprint gives a different key.
            let key3 = decapsulate(suite, &sk, &ct, &fp(2)).unwrap();
            assert_ne!(*key, *key3);
        }
        // A key of one suite is not a key of the other.
        let (sk, pk) = generate(Suite::X25519MlKem768Hqc192V5).unwrap();
        assert!(pk.check(Suite::X25519MlKem768Hqc192R4).is_err());
        assert!(check_key_pair(Suite::X25519MlKem768Hqc192R4, &sk, &pk).is_err());
    }

    #[test]
    fn every_secret_and_ciphertext_matters() {
        for suite in Suite::ALL {
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
        // The suite is bound: the same inputs under the two labels differ.
        let ct = HybridCiphertext {
            x25519: vec![1; 32],
            mlkem: vec![2; 1088],
            hqc: vec![3; 100],
        };
        let a = combine(Suite::ALL[0], &[4; 32], &[5; 32], &[6; 32], &ct, &fp(7)).unwrap();
        let b = combine(Suite::ALL[1], &[4; 32], &[5; 32], &[6; 32], &ct, &fp(7)).unwrap();
        assert_ne!(*a, *b);
    }

    /// Combiner vectors for both suites, computed outside this code from
    /// docs/combiner.md (Python's hashlib and hmac; see
    /// vault/tests/vectors/combiner/README.md).
    #[test]
    fn combiner_vectors() {
        let ct = HybridCiphertext {
            x25519: vec![0x11; 32],
            mlkem: vec![0x22; 1088],
            hqc: vec![0x33; Suite::X25519MlKem768Hqc192V5.hqc_ciphertext_len()],
        };
        let recipient = fp(0x44);
        let v5 = combine(
            Suite::X25519MlKem768Hqc192V5,
            &[0x55; 32],
            &[0x66; 32],
            &[0x77; 32],
            &ct,
            &recipient,
        )
        .unwrap();
        assert_eq!(hex::encode(*v5), COMBINER_VECTOR_SUITE_2);
        let r4 = combine(
            Suite::X25519MlKem768Hqc192R4,
            &[0x55; 32],
            &[0x66; 32],
            &[0x77; 64],
            &ct,
            &recipient,
        )
        .unwrap();
        assert_eq!(hex::encode(*r4), COMBINER_VECTOR_SUITE_1);
    }

    const COMBINER_VECTOR_SUITE_2: &str =
        "d45e2ab4dff798c8d380c43a39a854b27df64a3a88fc58155b643eeec49352a5";
    const COMBINER_VECTOR_SUITE_1: &str =
        "330db1ecdf773df3696ca161d66f239a8a2395a88bc10591d6be81c9fbed4194";

    #[test]
    fn suite_ids() {
        assert_eq!(Suite::from_id(1), Some(Suite::X25519MlKem768Hqc192R4));
        assert_eq!(Suite::from_id(2), Some(Suite::DEFAULT));
        assert_eq!(Suite::from_id(0), None);
        assert_eq!(Suite::from_id(3), None);
        assert_eq!(Suite::DEFAULT.to_string(), "x25519-mlkem768-hqc192v5");
        let err = Suite::from_id_or_err(7).unwrap_err().to_string();
        assert!(err.contains("unknown KEM suite id 7"), "{err}");
    }
}
