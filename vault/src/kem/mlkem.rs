//! ML-KEM-768 (FIPS 203) via aws-lc-rs.
//!
//! aws-lc-rs is maintained, FIPS-validated and already required by rustls'
//! post-quantum TLS provider, so it replaces the unmaintained `pqcrypto-mlkem`
//! (RUSTSEC-2026-0161; see docs/decisions.md). FIPS 203's input checks are
//! applied here explicitly, whatever the library does underneath: the
//! encapsulation-key modulus check (§7.2) before encapsulating, and the
//! decapsulation-key hash check (§7.3) when a secret key is loaded.

use super::{check_len, Encapsulated, Kem, KemError, KeyPair, LenOf};
use aws_lc_rs::digest::{digest, SHA3_256};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The ML-KEM-768 component.
pub struct MlKem768;

const NAME: &str = "ml-kem-768";
/// ML-KEM modulus q.
const Q: u16 = 3329;
/// Size of the encoded polynomial vector t̂ in an encapsulation key (k·384).
const T_HAT_LEN: usize = 3 * 384;
/// Size of the decryption key part of a decapsulation key (k·384).
const DK_PKE_LEN: usize = 3 * 384;

fn internal(op: &'static str) -> KemError {
    KemError::Internal { kem: NAME, op }
}

impl Kem for MlKem768 {
    const NAME: &'static str = NAME;
    const PUBLIC_KEY_LEN: usize = 1184;
    const SECRET_KEY_LEN: usize = 2400;
    const CIPHERTEXT_LEN: usize = 1088;
    const SHARED_SECRET_LEN: usize = 32;

    fn generate() -> Result<KeyPair, KemError> {
        let dk = DecapsulationKey::generate(&ML_KEM_768).map_err(|_| internal("keygen"))?;
        let secret = Zeroizing::new(
            dk.key_bytes()
                .map_err(|_| internal("keygen"))?
                .as_ref()
                .to_vec(),
        );
        let public = dk
            .encapsulation_key()
            .and_then(|ek| ek.key_bytes().map(|b| b.as_ref().to_vec()))
            .map_err(|_| internal("keygen"))?;
        Ok(KeyPair { secret, public })
    }

    fn check_public_key(public: &[u8]) -> Result<(), KemError> {
        check_len(NAME, LenOf::Public, public.len(), Self::PUBLIC_KEY_LEN)?;
        // FIPS 203 §7.2 modulus check: every 12-bit coefficient of t̂ < q.
        for chunk in public[..T_HAT_LEN].chunks_exact(3) {
            let a = u16::from(chunk[0]) | (u16::from(chunk[1] & 0x0f) << 8);
            let b = u16::from(chunk[1] >> 4) | (u16::from(chunk[2]) << 4);
            if a >= Q || b >= Q {
                return Err(KemError::InvalidPublicKey {
                    kem: NAME,
                    reason: "coefficient not reduced modulo q (FIPS 203 modulus check)",
                });
            }
        }
        Ok(())
    }

    fn check_key_pair(secret: &[u8], public: &[u8]) -> Result<(), KemError> {
        Self::check_public_key(public)?;
        check_len(NAME, LenOf::Secret, secret.len(), Self::SECRET_KEY_LEN)?;
        // dk = dk_pke || ek || H(ek) || z  (FIPS 203 §7.3 hash check).
        let ek = &secret[DK_PKE_LEN..DK_PKE_LEN + Self::PUBLIC_KEY_LEN];
        let h = &secret[DK_PKE_LEN + Self::PUBLIC_KEY_LEN..DK_PKE_LEN + Self::PUBLIC_KEY_LEN + 32];
        if !bool::from(digest(&SHA3_256, ek).as_ref().ct_eq(h)) {
            return Err(KemError::InvalidSecretKey {
                kem: NAME,
                reason: "embedded public-key hash is wrong (FIPS 203 hash check)",
            });
        }
        if !bool::from(ek.ct_eq(public)) {
            return Err(KemError::InvalidSecretKey {
                kem: NAME,
                reason: "does not match the public key",
            });
        }
        Ok(())
    }

    fn encapsulate(public: &[u8]) -> Result<Encapsulated, KemError> {
        Self::check_public_key(public)?;
        let ek =
            EncapsulationKey::new(&ML_KEM_768, public).map_err(|_| KemError::InvalidPublicKey {
                kem: NAME,
                reason: "rejected by aws-lc-rs",
            })?;
        let (ct, ss) = ek.encapsulate().map_err(|_| internal("encapsulate"))?;
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
            DecapsulationKey::new(&ML_KEM_768, secret).map_err(|_| KemError::InvalidSecretKey {
                kem: NAME,
                reason: "rejected by aws-lc-rs",
            })?;
        // ML-KEM rejects implicitly: a bad ciphertext yields a pseudorandom
        // secret, which the AEAD tag then refuses.
        let ss = dk
            .decapsulate(Ciphertext::from(ciphertext))
            .map_err(|_| KemError::Rejected { kem: NAME })?;
        Ok(Zeroizing::new(ss.as_ref().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        crate::kem::test_support::contract::<MlKem768>();
    }

    #[test]
    fn unreduced_public_key_is_refused() {
        let kp = MlKem768::generate().unwrap();
        let mut ek = kp.public.clone();
        ek[0] = 0xff;
        ek[1] |= 0x0f; // first coefficient = 0xfff >= q
        assert!(matches!(
            MlKem768::encapsulate(&ek),
            Err(KemError::InvalidPublicKey { .. })
        ));
    }

    #[test]
    fn decapsulation_key_hash_check() {
        let kp = MlKem768::generate().unwrap();
        let mut sk = kp.secret.clone();
        sk[DK_PKE_LEN + MlKem768::PUBLIC_KEY_LEN] ^= 1;
        assert!(matches!(
            MlKem768::check_key_pair(&sk, &kp.public),
            Err(KemError::InvalidSecretKey { .. })
        ));
    }
}
