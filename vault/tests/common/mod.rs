//! Helpers shared by the vector tests: the documented constructions,
//! recomputed from raw bytes with plain aws-lc-rs primitives (never the
//! library under test), so `docs/formats.md` and the code cannot drift.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hmac;

/// SHA-256 of `data` as an array.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    digest(&SHA256, data).as_ref().try_into().unwrap()
}

/// Opens the `PQVS` file `s` as docs/formats.md and docs/combiner.md say,
/// given the three component shared secrets: the transcript over the
/// ciphertexts (bytes 67..10165) and the recipient fingerprint (35..67),
/// HKDF as HMAC, then AES-256-GCM with a zero nonce and the 67-byte header
/// as AAD. Returns the plaintext share record.
pub fn open_as_documented(
    label: &[u8],
    suite_id: u16,
    s: &[u8],
    ss_x: &[u8],
    ss_m: &[u8],
    ss_h: &[u8],
) -> Vec<u8> {
    let mut t = label.to_vec();
    t.extend_from_slice(&suite_id.to_be_bytes());
    t.extend_from_slice(&s[67..10165]); // ct_x25519 || ct_mlkem || ct_hqc
    t.extend_from_slice(&s[35..67]); // recipient fingerprint
    let transcript = sha256(&t);
    let mut ikm = label.to_vec();
    ikm.extend_from_slice(ss_m);
    ikm.extend_from_slice(ss_h);
    ikm.extend_from_slice(ss_x);
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &transcript), &ikm);
    let okm = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()),
        b"pqvault/v1 aead-key\x01",
    );
    let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, okm.as_ref()).unwrap());
    let mut payload = s[10169..].to_vec();
    let plain = aead
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(&s[..67]),
            &mut payload,
        )
        .expect("AES-256-GCM open with the documented key, nonce and AAD");
    plain.to_vec()
}
