//! Key encapsulation: one small trait, three components, one hybrid.
//!
//! Each component KEM (X25519, ML-KEM-768, and HQC-192 in two revisions:
//! [`hqc_r4`] for existing vaults, [`hqc_v5`] for new ones) sits behind
//! [`Kem`] so a component can be swapped in one place; [`hybrid`] combines
//! them into the suites that seal shards. Keys, ciphertexts and shared secrets cross this
//! boundary as bytes because they are stored in files and checked on load.

pub mod hqc_r4;
pub mod hqc_v5;
pub mod hybrid;
pub mod mlkem;
pub mod x25519;

use thiserror::Error;
use zeroize::Zeroizing;

/// Why a KEM operation failed. Decapsulation failures are deliberately not
/// more specific than [`KemError::Rejected`] so callers cannot build an oracle.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KemError {
    /// A public key has the wrong size or fails the algorithm's input checks.
    #[error("invalid {kem} public key: {reason}")]
    InvalidPublicKey {
        /// Component name.
        kem: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A secret key has the wrong size or is inconsistent with its public key.
    #[error("invalid {kem} secret key: {reason}")]
    InvalidSecretKey {
        /// Component name.
        kem: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A ciphertext has the wrong size.
    #[error("{kem} ciphertext is {len} bytes, expected {expected}")]
    CiphertextLength {
        /// Component name.
        kem: &'static str,
        /// Size found.
        len: usize,
        /// Size required.
        expected: usize,
    },
    /// Decapsulation rejected the ciphertext.
    #[error("{kem} decapsulation rejected the ciphertext")]
    Rejected {
        /// Component name.
        kem: &'static str,
    },
    /// The underlying library failed (RNG, allocation).
    #[error("{kem} internal failure during {op}")]
    Internal {
        /// Component name.
        kem: &'static str,
        /// Operation.
        op: &'static str,
    },
}

/// A freshly generated key pair as bytes; the secret half is zeroized on drop.
pub struct KeyPair {
    /// Secret key bytes.
    pub secret: Zeroizing<Vec<u8>>,
    /// Public key bytes.
    pub public: Vec<u8>,
}

/// Result of an encapsulation: the ciphertext to send and the shared secret.
pub struct Encapsulated {
    /// Ciphertext (for X25519, the ephemeral public key).
    pub ciphertext: Vec<u8>,
    /// Shared secret, zeroized on drop.
    pub shared_secret: Zeroizing<Vec<u8>>,
}

/// One component KEM, byte-oriented.
pub trait Kem {
    /// Stable name used in errors, docs and the combiner label.
    const NAME: &'static str;
    /// Public key size in bytes.
    const PUBLIC_KEY_LEN: usize;
    /// Secret key size in bytes.
    const SECRET_KEY_LEN: usize;
    /// Ciphertext size in bytes.
    const CIPHERTEXT_LEN: usize;
    /// Shared secret size in bytes.
    const SHARED_SECRET_LEN: usize;

    /// Generates a key pair.
    fn generate() -> Result<KeyPair, KemError>;
    /// Checks a public key received from elsewhere (size and algorithm checks).
    fn check_public_key(public: &[u8]) -> Result<(), KemError>;
    /// Checks that a secret key is well formed and belongs to `public`.
    fn check_key_pair(secret: &[u8], public: &[u8]) -> Result<(), KemError>;
    /// Encapsulates a fresh shared secret to `public`.
    fn encapsulate(public: &[u8]) -> Result<Encapsulated, KemError>;
    /// Recovers the shared secret from `ciphertext` with `secret`.
    fn decapsulate(secret: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KemError>;
}

/// Checks an input length, naming the component on failure.
fn check_len(kem: &'static str, what: LenOf, len: usize, expected: usize) -> Result<(), KemError> {
    if len == expected {
        return Ok(());
    }
    Err(match what {
        LenOf::Public => KemError::InvalidPublicKey {
            kem,
            reason: "wrong length",
        },
        LenOf::Secret => KemError::InvalidSecretKey {
            kem,
            reason: "wrong length",
        },
        LenOf::Ciphertext => KemError::CiphertextLength { kem, len, expected },
    })
}

/// Which input [`check_len`] is checking.
#[derive(Clone, Copy)]
enum LenOf {
    Public,
    Secret,
    Ciphertext,
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Exercises the trait contract for one component.
    pub fn contract<K: Kem>() {
        let kp = K::generate().unwrap();
        assert_eq!(kp.public.len(), K::PUBLIC_KEY_LEN);
        assert_eq!(kp.secret.len(), K::SECRET_KEY_LEN);
        K::check_public_key(&kp.public).unwrap();
        K::check_key_pair(&kp.secret, &kp.public).unwrap();

        let enc = K::encapsulate(&kp.public).unwrap();
        assert_eq!(enc.ciphertext.len(), K::CIPHERTEXT_LEN);
        assert_eq!(enc.shared_secret.len(), K::SHARED_SECRET_LEN);
        let ss = K::decapsulate(&kp.secret, &enc.ciphertext).unwrap();
        assert_eq!(&ss[..], &enc.shared_secret[..]);

        // A second encapsulation gives a different secret.
        let enc2 = K::encapsulate(&kp.public).unwrap();
        assert_ne!(&enc2.shared_secret[..], &enc.shared_secret[..]);

        // Wrong sizes are typed errors, never panics.
        assert!(K::encapsulate(&kp.public[1..]).is_err());
        assert!(K::decapsulate(&kp.secret, &enc.ciphertext[1..]).is_err());
        assert!(K::decapsulate(&kp.secret[1..], &enc.ciphertext).is_err());
        assert!(K::check_public_key(&[]).is_err());

        // Another key pair is not accepted as this one's secret half.
        let other = K::generate().unwrap();
        assert!(K::check_key_pair(&other.secret, &kp.public).is_err());

        // A modified ciphertext never yields the same secret.
        let mut ct = enc.ciphertext.clone();
        ct[K::CIPHERTEXT_LEN / 2] ^= 0x01;
        match K::decapsulate(&kp.secret, &ct) {
            Ok(ss2) => assert_ne!(&ss2[..], &enc.shared_secret[..]),
            Err(e) => assert!(matches!(e, KemError::Rejected { .. })),
        }
    }
}
