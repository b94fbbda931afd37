//! Hybrid signatures: Ed25519 and ML-DSA-65 (FIPS 204), both via aws-lc-rs.
//!
//! A hybrid signature is valid only if both halves verify, so forging one
//! needs breaking both Ed25519 and ML-DSA. Every signature is domain
//! separated: the signed message is `"pqvault/v1 sig" || len(domain) ||
//! domain || message`, so a manifest signature can never be replayed as,
//! say, an epoch certificate. `pqcrypto-mldsa` is not used: it is
//! unmaintained (RUSTSEC-2026-0166), see docs/decisions.md.

use aws_lc_rs::rand;
use aws_lc_rs::signature::{
    Ed25519KeyPair, KeyPair, PqdsaKeyPair, UnparsedPublicKey, ED25519, ML_DSA_65, ML_DSA_65_SIGNING,
};
use thiserror::Error;
use zeroize::Zeroizing;

/// Ed25519 public key length.
pub const ED25519_PUBLIC_LEN: usize = 32;
/// Ed25519 signature length.
pub const ED25519_SIG_LEN: usize = 64;
/// ML-DSA-65 public key length.
pub const MLDSA65_PUBLIC_LEN: usize = 1952;
/// ML-DSA-65 signature length.
pub const MLDSA65_SIG_LEN: usize = 3309;
/// Length of each seed stored in a secret key file.
pub const SEED_LEN: usize = 32;

/// Wire id of the only signature suite so far.
pub const SIG_SUITE_ED25519_MLDSA65: u16 = 1;

/// Why signing or verification failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The Ed25519 half does not verify.
    #[error("Ed25519 signature does not verify")]
    Ed25519Invalid,
    /// The ML-DSA-65 half does not verify.
    #[error("ML-DSA-65 signature does not verify")]
    MlDsaInvalid,
    /// A key has the wrong size or was refused by the library.
    #[error("invalid {0} key")]
    InvalidKey(&'static str),
    /// The library failed (RNG).
    #[error("signing failed in {0}")]
    Internal(&'static str),
}

/// Public half: both verification keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridVerifyingKey {
    /// Ed25519 public key.
    pub ed25519: [u8; ED25519_PUBLIC_LEN],
    /// ML-DSA-65 public key.
    pub mldsa: Vec<u8>,
}

/// Secret half: both seeds, zeroized on drop.
pub struct HybridSigningKey {
    ed25519_seed: Zeroizing<[u8; SEED_LEN]>,
    mldsa_seed: Zeroizing<[u8; SEED_LEN]>,
}

/// A hybrid signature: both halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridSignature {
    /// Ed25519 signature.
    pub ed25519: [u8; ED25519_SIG_LEN],
    /// ML-DSA-65 signature.
    pub mldsa: Vec<u8>,
}

impl HybridSignature {
    /// Reads the two halves as every format lays them out: Ed25519
    /// `[64]`, then ML-DSA-65 `[3309]`.
    pub fn read(r: &mut crate::codec::Reader) -> Result<Self, crate::codec::FormatError> {
        Ok(HybridSignature {
            ed25519: r.array::<ED25519_SIG_LEN>("ed25519 signature")?,
            mldsa: r.take(MLDSA65_SIG_LEN, "ml-dsa-65 signature")?.to_vec(),
        })
    }
}

fn message(domain: &str, msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + domain.len() + msg.len());
    m.extend_from_slice(b"pqvault/v1 sig");
    m.push(u8::try_from(domain.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(domain.as_bytes());
    m.extend_from_slice(msg);
    m
}

impl HybridSigningKey {
    /// Generates fresh seeds from the system RNG.
    pub fn generate() -> Result<Self, SignError> {
        let mut ed = Zeroizing::new([0u8; SEED_LEN]);
        let mut ml = Zeroizing::new([0u8; SEED_LEN]);
        rand::fill(&mut ed[..]).map_err(|_| SignError::Internal("rng"))?;
        rand::fill(&mut ml[..]).map_err(|_| SignError::Internal("rng"))?;
        Ok(Self::from_seeds(&ed, &ml))
    }

    /// Rebuilds a key from stored seeds.
    pub fn from_seeds(ed25519: &[u8; SEED_LEN], mldsa: &[u8; SEED_LEN]) -> Self {
        HybridSigningKey {
            ed25519_seed: Zeroizing::new(*ed25519),
            mldsa_seed: Zeroizing::new(*mldsa),
        }
    }

    /// The stored seeds (Ed25519, ML-DSA), for writing a key file.
    pub fn seeds(&self) -> (&[u8; SEED_LEN], &[u8; SEED_LEN]) {
        (&self.ed25519_seed, &self.mldsa_seed)
    }

    fn key_pairs(&self) -> Result<(Ed25519KeyPair, PqdsaKeyPair), SignError> {
        let ed = Ed25519KeyPair::from_seed_unchecked(&self.ed25519_seed[..])
            .map_err(|_| SignError::InvalidKey("Ed25519"))?;
        let ml = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, &self.mldsa_seed[..])
            .map_err(|_| SignError::InvalidKey("ML-DSA-65"))?;
        Ok((ed, ml))
    }

    /// Derives the public half.
    pub fn verifying_key(&self) -> Result<HybridVerifyingKey, SignError> {
        let (ed, ml) = self.key_pairs()?;
        let mut ed25519 = [0u8; ED25519_PUBLIC_LEN];
        ed25519.copy_from_slice(ed.public_key().as_ref());
        Ok(HybridVerifyingKey {
            ed25519,
            mldsa: ml.public_key().as_ref().to_vec(),
        })
    }

    /// Signs `msg` under `domain` with both algorithms.
    pub fn sign(&self, domain: &str, msg: &[u8]) -> Result<HybridSignature, SignError> {
        let (ed, ml) = self.key_pairs()?;
        let m = message(domain, msg);
        let mut ed25519 = [0u8; ED25519_SIG_LEN];
        ed25519.copy_from_slice(
            ed.try_sign(&m)
                .map_err(|_| SignError::Internal("Ed25519"))?
                .as_ref(),
        );
        let mut mldsa = vec![0u8; MLDSA65_SIG_LEN];
        let n = ml
            .sign(&m, &mut mldsa)
            .map_err(|_| SignError::Internal("ML-DSA-65"))?;
        mldsa.truncate(n);
        Ok(HybridSignature { ed25519, mldsa })
    }
}

impl HybridVerifyingKey {
    /// Checks key sizes.
    pub fn check(&self) -> Result<(), SignError> {
        if self.mldsa.len() != MLDSA65_PUBLIC_LEN {
            return Err(SignError::InvalidKey("ML-DSA-65"));
        }
        Ok(())
    }

    /// Verifies both halves; both must pass.
    pub fn verify(&self, domain: &str, msg: &[u8], sig: &HybridSignature) -> Result<(), SignError> {
        self.check()?;
        let m = message(domain, msg);
        UnparsedPublicKey::new(&ED25519, &self.ed25519[..])
            .verify(&m, &sig.ed25519)
            .map_err(|_| SignError::Ed25519Invalid)?;
        UnparsedPublicKey::new(&ML_DSA_65, &self.mldsa[..])
            .verify(&m, &sig.mldsa)
            .map_err(|_| SignError::MlDsaInvalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_both_halves_required() {
        let sk = HybridSigningKey::generate().unwrap();
        let vk = sk.verifying_key().unwrap();
        assert_eq!(vk.mldsa.len(), MLDSA65_PUBLIC_LEN);
        let sig = sk.sign("test", b"hello").unwrap();
        assert_eq!(sig.mldsa.len(), MLDSA65_SIG_LEN);
        vk.verify("test", b"hello", &sig).unwrap();

        assert_eq!(
            vk.verify("test", b"hellO", &sig),
            Err(SignError::Ed25519Invalid)
        );
        assert_eq!(
            vk.verify("other", b"hello", &sig),
            Err(SignError::Ed25519Invalid)
        );

        let mut bad = sig.clone();
        bad.ed25519[3] ^= 1;
        assert_eq!(
            vk.verify("test", b"hello", &bad),
            Err(SignError::Ed25519Invalid)
        );
        let mut bad = sig.clone();
        bad.mldsa[100] ^= 1;
        assert_eq!(
            vk.verify("test", b"hello", &bad),
            Err(SignError::MlDsaInvalid)
        );

        // A valid Ed25519 half with another key's ML-DSA half is refused.
        let other = HybridSigningKey::generate().unwrap();
        let osig = other.sign("test", b"hello").unwrap();
        let mixed = HybridSignature {
            ed25519: sig.ed25519,
            mldsa: osig.mldsa,
        };
        assert_eq!(
            vk.verify("test", b"hello", &mixed),
            Err(SignError::MlDsaInvalid)
        );
    }

    #[test]
    fn seeds_are_deterministic() {
        let sk = HybridSigningKey::generate().unwrap();
        let (a, b) = sk.seeds();
        let again = HybridSigningKey::from_seeds(a, b);
        assert!(sk.verifying_key().unwrap() == again.verifying_key().unwrap());
    }
}
