//! HQC-192, version 5 (specification of 2025-08-22, the FIPS 207 track), via
//! RustCrypto's `hqc-kem` (pure Rust), pinned to `=0.1.0-rc.0`.
//!
//! This is the revision that fixes round 4's CCA weakness: the salt is hashed
//! into the FO transform together with a hash of the encapsulation key, and
//! decapsulation rejects *implicitly* (a modified ciphertext yields a
//! pseudorandom key derived from the secret `sigma`, selected in constant
//! time), so [`Kem::decapsulate`] here never returns
//! [`KemError::Rejected`]: the hybrid's AEAD is what fails, with the same
//! single error as any other tampering.
//!
//! What this module adds around the crate (docs/decisions.md D22):
//! * Randomness comes from aws-lc-rs; the crate's deterministic entry points
//!   take it (a 32-byte key seed; a 24-byte message and a 16-byte salt per
//!   encapsulation), so no second RNG is linked and the known-answer tests
//!   drive exactly the code the suite runs.
//! * A public key must be a canonical encoding: the bits of `s` above
//!   `n = 35851` are zero (the crate loads them without checking).
//! * A secret key is checked by regenerating the key pair from its trailing
//!   `seed_kem` and comparing every byte in constant time (the crate imports
//!   a key with a tampered seed silently, RustCrypto/KEMs#325).
//!
//! HQC costs about a millisecond per operation: never call it on an async
//! runtime thread.

use super::{check_len, Encapsulated, Kem, KemError, KeyPair, LenOf};
use hqc_kem::hqc192;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The HQC-192 (version 5) component.
pub struct Hqc192V5;

const NAME: &str = "hqc-192-v5";
/// Length of the seed a key pair is derived from (the secret key's tail).
const SEED_LEN: usize = 32;
/// Ring dimension n of HQC-192: `s` has n significant bits.
const N_BITS: usize = 35_851;
/// Bits used in the last byte of `s` (n mod 8); the rest must be zero.
const LAST_BYTE_BITS: u32 = (N_BITS % 8) as u32;

fn random<const N: usize>(op: &'static str) -> Result<Zeroizing<[u8; N]>, KemError> {
    let mut buf = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(&mut buf[..]).map_err(|_| KemError::Internal { kem: NAME, op })?;
    Ok(buf)
}

/// The key pair for `seed`, as (public, secret) bytes; the secret is zeroized on drop.
fn derive(seed: &[u8; SEED_LEN]) -> (Vec<u8>, Zeroizing<Vec<u8>>) {
    let (ek, dk) = hqc192::generate_key_deterministic(seed);
    // `dk` zeroizes itself on drop; the copy is zeroized by `Zeroizing`.
    (ek.as_ref().to_vec(), Zeroizing::new(dk.as_ref().to_vec()))
}

impl Kem for Hqc192V5 {
    const NAME: &'static str = NAME;
    const PUBLIC_KEY_LEN: usize = hqc192::PUBLIC_KEY_SIZE;
    const SECRET_KEY_LEN: usize = hqc192::SECRET_KEY_SIZE;
    const CIPHERTEXT_LEN: usize = hqc192::CIPHERTEXT_SIZE;
    const SHARED_SECRET_LEN: usize = hqc192::SHARED_SECRET_SIZE;

    fn generate() -> Result<KeyPair, KemError> {
        let seed = random::<SEED_LEN>("keygen")?;
        let (public, secret) = derive(&seed);
        Ok(KeyPair { secret, public })
    }

    fn check_public_key(public: &[u8]) -> Result<(), KemError> {
        check_len(NAME, LenOf::Public, public.len(), Self::PUBLIC_KEY_LEN)?;
        // pk = seed (32 bytes) || s (ceil(n / 8) bytes, little-endian bits).
        let last = public[Self::PUBLIC_KEY_LEN - 1];
        if last >> LAST_BYTE_BITS != 0 {
            return Err(KemError::InvalidPublicKey {
                kem: NAME,
                reason: "not a canonical encoding (bits above n are set)",
            });
        }
        Ok(())
    }

    fn check_key_pair(secret: &[u8], public: &[u8]) -> Result<(), KemError> {
        Self::check_public_key(public)?;
        check_len(NAME, LenOf::Secret, secret.len(), Self::SECRET_KEY_LEN)?;
        // sk = pk || dk_pke seed || sigma || seed_kem: everything follows from
        // seed_kem, so regenerate and compare the whole key pair.
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        seed.copy_from_slice(&secret[Self::SECRET_KEY_LEN - SEED_LEN..]);
        let (pk, sk) = derive(&seed);
        let same = sk[..].ct_eq(secret) & pk[..].ct_eq(public);
        if !bool::from(same) {
            return Err(KemError::InvalidSecretKey {
                kem: NAME,
                reason: "does not match the public key or its own seed",
            });
        }
        Ok(())
    }

    fn encapsulate(public: &[u8]) -> Result<Encapsulated, KemError> {
        Self::check_public_key(public)?;
        let ek =
            hqc192::EncapsulationKey::try_from(public).map_err(|_| KemError::InvalidPublicKey {
                kem: NAME,
                reason: "wrong length",
            })?;
        let m = random::<{ hqc192::MESSAGE_SIZE }>("encapsulation")?;
        let salt = random::<{ hqc192::SALT_SIZE }>("encapsulation")?;
        let (ct, ss) =
            ek.encapsulate_deterministic(&m[..], &salt)
                .map_err(|_| KemError::Internal {
                    kem: NAME,
                    op: "encapsulation",
                })?;
        Ok(Encapsulated {
            ciphertext: ct.as_ref().to_vec(),
            shared_secret: Zeroizing::new(ss.as_ref().to_vec()),
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
        let dk =
            hqc192::DecapsulationKey::try_from(secret).map_err(|_| KemError::InvalidSecretKey {
                kem: NAME,
                reason: "wrong length",
            })?;
        let ct =
            hqc192::Ciphertext::try_from(ciphertext).map_err(|_| KemError::CiphertextLength {
                kem: NAME,
                len: ciphertext.len(),
                expected: Self::CIPHERTEXT_LEN,
            })?;
        // Implicit rejection: a modified ciphertext gives an unrelated key,
        // never an error, in the same time as a valid one.
        let ss = dk.decapsulate(&ct);
        Ok(Zeroizing::new(ss.as_ref().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        crate::kem::test_support::contract::<Hqc192V5>();
    }

    #[test]
    fn a_modified_ciphertext_is_implicitly_rejected() {
        let kp = Hqc192V5::generate().unwrap();
        let enc = Hqc192V5::encapsulate(&kp.public).unwrap();
        // Flip a byte in u, in v, and in the salt: each gives a key, never an
        // error, and each a different one.
        let mut seen = vec![enc.shared_secret.to_vec()];
        for at in [0, 4482, Hqc192V5::CIPHERTEXT_LEN - 1] {
            let mut ct = enc.ciphertext.clone();
            ct[at] ^= 0x10;
            let ss = Hqc192V5::decapsulate(&kp.secret, &ct).expect("implicit rejection");
            assert_eq!(ss.len(), 32);
            assert!(!seen.iter().any(|s| s[..] == ss[..]), "flip at {at}");
            seen.push(ss.to_vec());
            // Deterministic: the same bad ciphertext gives the same key.
            assert_eq!(Hqc192V5::decapsulate(&kp.secret, &ct).unwrap(), ss);
        }
    }

    #[test]
    fn non_canonical_and_tampered_keys_are_refused() {
        let kp = Hqc192V5::generate().unwrap();
        let mut pk = kp.public.clone();
        *pk.last_mut().unwrap() |= 0x80;
        assert!(matches!(
            Hqc192V5::check_public_key(&pk),
            Err(KemError::InvalidPublicKey { .. })
        ));
        assert!(Hqc192V5::encapsulate(&pk).is_err());

        // Every part of the secret key is checked: the embedded public key,
        // the PKE seed, sigma and the trailing seed (the crate alone accepts
        // a tampered seed).
        for at in [
            0,
            Hqc192V5::PUBLIC_KEY_LEN,
            Hqc192V5::PUBLIC_KEY_LEN + 32,
            Hqc192V5::SECRET_KEY_LEN - 1,
        ] {
            let mut sk = kp.secret.to_vec();
            sk[at] ^= 1;
            assert!(
                matches!(
                    Hqc192V5::check_key_pair(&sk, &kp.public),
                    Err(KemError::InvalidSecretKey { .. })
                ),
                "tampered byte {at} accepted"
            );
        }
    }
}
