//! X25519, the classical leg of the hybrid (via aws-lc-rs).
//!
//! Used as a KEM in the DHKEM shape: the "ciphertext" is an ephemeral public
//! key, the shared secret is the raw Diffie-Hellman output. X25519 is not
//! ciphertext-binding, which is why the hybrid combiner hashes its ciphertext
//! and the recipient's public key.

use super::{check_len, Encapsulated, Kem, KemError, KeyPair, LenOf};
use aws_lc_rs::agreement::{
    self, EphemeralPrivateKey, PrivateKey, UnparsedPublicKey, X25519 as ALG,
};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use aws_lc_rs::rand::SystemRandom;
use zeroize::Zeroizing;

/// The X25519 component.
pub struct X25519;

const NAME: &str = "x25519";

fn internal(op: &'static str) -> KemError {
    KemError::Internal { kem: NAME, op }
}

impl Kem for X25519 {
    const NAME: &'static str = NAME;
    const PUBLIC_KEY_LEN: usize = 32;
    const SECRET_KEY_LEN: usize = 32;
    const CIPHERTEXT_LEN: usize = 32;
    const SHARED_SECRET_LEN: usize = 32;

    fn generate() -> Result<KeyPair, KemError> {
        let sk = PrivateKey::generate(&ALG).map_err(|_| internal("keygen"))?;
        let seed: Curve25519SeedBin = sk.as_be_bytes().map_err(|_| internal("keygen"))?;
        let public = sk
            .compute_public_key()
            .map_err(|_| internal("keygen"))?
            .as_ref()
            .to_vec();
        Ok(KeyPair {
            secret: Zeroizing::new(seed.as_ref().to_vec()),
            public,
        })
    }

    fn check_public_key(public: &[u8]) -> Result<(), KemError> {
        check_len(NAME, LenOf::Public, public.len(), Self::PUBLIC_KEY_LEN)
    }

    fn check_key_pair(secret: &[u8], public: &[u8]) -> Result<(), KemError> {
        Self::check_public_key(public)?;
        let sk = private_key(secret)?;
        let derived = sk
            .compute_public_key()
            .map_err(|_| internal("public key derivation"))?;
        if derived.as_ref() != public {
            return Err(KemError::InvalidSecretKey {
                kem: NAME,
                reason: "does not match the public key",
            });
        }
        Ok(())
    }

    fn encapsulate(public: &[u8]) -> Result<Encapsulated, KemError> {
        Self::check_public_key(public)?;
        let rng = SystemRandom::new();
        let eph = EphemeralPrivateKey::generate(&ALG, &rng).map_err(|_| internal("encapsulate"))?;
        let ciphertext = eph
            .compute_public_key()
            .map_err(|_| internal("encapsulate"))?
            .as_ref()
            .to_vec();
        // aws-lc-rs refuses low-order points (all-zero output), so a bad
        // recipient key surfaces here as an error rather than a weak secret.
        let shared_secret = agreement::agree_ephemeral(
            eph,
            UnparsedPublicKey::new(&ALG, public),
            KemError::InvalidPublicKey {
                kem: NAME,
                reason: "low-order or invalid point",
            },
            |ss| Ok(Zeroizing::new(ss.to_vec())),
        )?;
        Ok(Encapsulated {
            ciphertext,
            shared_secret,
        })
    }

    fn decapsulate(secret: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, KemError> {
        check_len(
            NAME,
            LenOf::Ciphertext,
            ciphertext.len(),
            Self::CIPHERTEXT_LEN,
        )?;
        let sk = private_key(secret)?;
        agreement::agree(
            &sk,
            UnparsedPublicKey::new(&ALG, ciphertext),
            KemError::Rejected { kem: NAME },
            |ss| Ok(Zeroizing::new(ss.to_vec())),
        )
    }
}

fn private_key(secret: &[u8]) -> Result<PrivateKey, KemError> {
    check_len(NAME, LenOf::Secret, secret.len(), X25519::SECRET_KEY_LEN)?;
    PrivateKey::from_private_key(&ALG, secret).map_err(|_| KemError::InvalidSecretKey {
        kem: NAME,
        reason: "rejected by aws-lc-rs",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        crate::kem::test_support::contract::<X25519>();
    }

    #[test]
    fn low_order_point_is_refused() {
        // The all-zero point has order 1: the DH output would be all zeros.
        assert!(X25519::encapsulate(&[0u8; 32]).is_err());
        let kp = X25519::generate().unwrap();
        assert_eq!(
            X25519::decapsulate(&kp.secret, &[0u8; 32]).err(),
            Some(KemError::Rejected { kem: NAME })
        );
    }
}
