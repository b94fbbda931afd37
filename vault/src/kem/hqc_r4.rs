//! HQC-192, round-4 revision (2023), via `pqcrypto-hqc` 0.2.2.
//!
//! HQC is the code-based leg: it keeps the hybrid safe if lattices fall.
//! Known defects routed around here (docs/decisions.md): the crate's safe
//! `decapsulate` panics when PQClean rejects a ciphertext (rustpq/pqcrypto#102),
//! so decapsulation calls the C function through `ffi` and turns its
//! non-zero return into [`KemError::Rejected`]. This revision is not the 2025
//! NIST selection, so the suite that uses it is named `...-hqc192r4`; it has
//! a CCA weakness (salt not bound by the FO transform, explicit rejection),
//! so it is kept only for vaults sealed with suite 1: new identities and
//! vaults use [`super::hqc_v5`] (docs/decisions.md D22).
//!
//! HQC is slow (milliseconds per operation): never call it on an async
//! runtime thread.

use super::{check_len, Encapsulated, Kem, KemError, KeyPair, LenOf};
use pqcrypto_hqc::ffi;
use pqcrypto_hqc::hqc192;
use pqcrypto_traits::kem::{Ciphertext as _, PublicKey as _, SecretKey as _, SharedSecret as _};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The HQC-192 (round 4) component.
pub struct Hqc192R4;

const NAME: &str = "hqc-192-r4";

impl Kem for Hqc192R4 {
    const NAME: &'static str = NAME;
    const PUBLIC_KEY_LEN: usize = ffi::PQCLEAN_HQC192_CLEAN_CRYPTO_PUBLICKEYBYTES;
    const SECRET_KEY_LEN: usize = ffi::PQCLEAN_HQC192_CLEAN_CRYPTO_SECRETKEYBYTES;
    const CIPHERTEXT_LEN: usize = ffi::PQCLEAN_HQC192_CLEAN_CRYPTO_CIPHERTEXTBYTES;
    const SHARED_SECRET_LEN: usize = ffi::PQCLEAN_HQC192_CLEAN_CRYPTO_BYTES;

    fn generate() -> Result<KeyPair, KemError> {
        let (pk, sk) = hqc192::keypair();
        Ok(KeyPair {
            secret: Zeroizing::new(sk.as_bytes().to_vec()),
            public: pk.as_bytes().to_vec(),
        })
    }

    fn check_public_key(public: &[u8]) -> Result<(), KemError> {
        check_len(NAME, LenOf::Public, public.len(), Self::PUBLIC_KEY_LEN)
    }

    fn check_key_pair(secret: &[u8], public: &[u8]) -> Result<(), KemError> {
        Self::check_public_key(public)?;
        check_len(NAME, LenOf::Secret, secret.len(), Self::SECRET_KEY_LEN)?;
        // PQClean's HQC secret key ends with a copy of the public key.
        let embedded = &secret[Self::SECRET_KEY_LEN - Self::PUBLIC_KEY_LEN..];
        if !bool::from(embedded.ct_eq(public)) {
            return Err(KemError::InvalidSecretKey {
                kem: NAME,
                reason: "does not match the public key",
            });
        }
        Ok(())
    }

    fn encapsulate(public: &[u8]) -> Result<Encapsulated, KemError> {
        Self::check_public_key(public)?;
        let pk = hqc192::PublicKey::from_bytes(public).map_err(|_| KemError::InvalidPublicKey {
            kem: NAME,
            reason: "wrong length",
        })?;
        // Encapsulation cannot fail for a key of the right length.
        let (ss, ct) = hqc192::encapsulate(&pk);
        Ok(Encapsulated {
            ciphertext: ct.as_bytes().to_vec(),
            shared_secret: Zeroizing::new(ss.as_bytes().to_vec()),
        })
    }

    fn decapsulate(secret: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KemError> {
        check_len(NAME, LenOf::Secret, secret.len(), Self::SECRET_KEY_LEN)?;
        check_len(
            NAME,
            LenOf::Ciphertext,
            ciphertext.len(),
            Self::CIPHERTEXT_LEN,
        )?;
        let mut ss = Zeroizing::new(vec![0u8; Self::SHARED_SECRET_LEN]);
        // SAFETY: the three buffers have exactly the sizes PQClean's
        // crypto_kem_dec reads or writes (checked above), and live for the call.
        let rc = unsafe {
            ffi::PQCLEAN_HQC192_CLEAN_crypto_kem_dec(
                ss.as_mut_ptr(),
                ciphertext.as_ptr(),
                secret.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(KemError::Rejected { kem: NAME });
        }
        Ok(ss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        crate::kem::test_support::contract::<Hqc192R4>();
    }

    #[test]
    fn wrong_key_is_an_error_not_a_panic() {
        let a = Hqc192R4::generate().unwrap();
        let b = Hqc192R4::generate().unwrap();
        let enc = Hqc192R4::encapsulate(&a.public).unwrap();
        match Hqc192R4::decapsulate(&b.secret, &enc.ciphertext) {
            Err(KemError::Rejected { .. }) => {}
            Ok(ss) => assert_ne!(&ss[..], &enc.shared_secret[..]),
            Err(e) => panic!("unexpected error {e}"),
        }
        // Random garbage as ciphertext.
        let garbage = vec![0xa5u8; Hqc192R4::CIPHERTEXT_LEN];
        let _ = Hqc192R4::decapsulate(&a.secret, &garbage);
    }
}
