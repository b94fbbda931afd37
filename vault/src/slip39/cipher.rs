//! The SLIP-39 passphrase cipher: a four-round Feistel network whose round
//! function is PBKDF2-HMAC-SHA256 (from `aws-lc-rs`), keyed by the round
//! number and the passphrase.
//!
//! There is no authentication: decrypting with a different passphrase is
//! not an error, it yields a different master secret. SLIP-39 chose this so
//! a passphrase can protect a decoy and a real secret with the same shares.

use aws_lc_rs::pbkdf2;
use core::num::NonZeroU32;
use zeroize::Zeroizing;

/// PBKDF2 iterations at exponent 0, spread over the four rounds.
pub const BASE_ITERATION_COUNT: u32 = 10_000;
/// Feistel rounds.
pub const ROUND_COUNT: u8 = 4;

fn salt_prefix(identifier: u16, extendable: bool) -> Vec<u8> {
    if extendable {
        Vec::new()
    } else {
        let mut s = b"shamir".to_vec();
        s.extend_from_slice(&identifier.to_be_bytes());
        s
    }
}

fn round(i: u8, passphrase: &[u8], exponent: u8, salt_prefix: &[u8], r: &[u8], out: &mut [u8]) {
    let mut key = Zeroizing::new(Vec::with_capacity(passphrase.len() + 1));
    key.push(i);
    key.extend_from_slice(passphrase);
    let mut salt = Zeroizing::new(salt_prefix.to_vec());
    salt.extend_from_slice(r);
    // exponent <= 15: (10000 << 15) / 4 = 81_920_000, nonzero and in range.
    let iterations = (BASE_ITERATION_COUNT << (exponent & 15)) / u32::from(ROUND_COUNT);
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, &key, out);
}

fn feistel(
    input: &[u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
    rounds: impl Iterator<Item = u8>,
) -> Zeroizing<Vec<u8>> {
    let half = input.len() / 2;
    let salt = salt_prefix(identifier, extendable);
    let mut l = Zeroizing::new(input[..half].to_vec());
    let mut r = Zeroizing::new(input[half..].to_vec());
    let mut f = Zeroizing::new(vec![0u8; half]);
    for i in rounds {
        round(i, passphrase, exponent, &salt, &r, &mut f);
        // (l, r) = (r, l ^ f)
        l.iter_mut().zip(f.iter()).for_each(|(a, b)| *a ^= b);
        core::mem::swap(&mut l, &mut r);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(input.len()));
    out.extend_from_slice(&r);
    out.extend_from_slice(&l);
    out
}

/// Encrypts a master secret (even length, checked by the caller) into the
/// encrypted master secret that is shared.
pub fn encrypt(
    master: &[u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
) -> Zeroizing<Vec<u8>> {
    feistel(
        master,
        passphrase,
        exponent,
        identifier,
        extendable,
        0..ROUND_COUNT,
    )
}

/// Decrypts an encrypted master secret. Any passphrase "works".
pub fn decrypt(
    ems: &[u8],
    passphrase: &[u8],
    exponent: u8,
    identifier: u16,
    extendable: bool,
) -> Zeroizing<Vec<u8>> {
    feistel(
        ems,
        passphrase,
        exponent,
        identifier,
        extendable,
        (0..ROUND_COUNT).rev(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_passphrase_changes_result() {
        let ms: Vec<u8> = (0..16).collect();
        for ext in [false, true] {
            let ems = encrypt(&ms, b"TREZOR", 0, 7, ext);
            assert_ne!(&ems[..], &ms[..]);
            assert_eq!(&decrypt(&ems, b"TREZOR", 0, 7, ext)[..], &ms[..]);
            assert_ne!(&decrypt(&ems, b"TREZOS", 0, 7, ext)[..], &ms[..]);
        }
        // The identifier salts only non-extendable shares.
        assert_ne!(
            encrypt(&ms, b"", 0, 1, false),
            encrypt(&ms, b"", 0, 2, false)
        );
        assert_eq!(encrypt(&ms, b"", 0, 1, true), encrypt(&ms, b"", 0, 2, true));
    }
}
