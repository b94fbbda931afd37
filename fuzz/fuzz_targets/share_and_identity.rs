//! `PQVU` share records, `PQVI` public identities and `PQVK` secret keys, of
//! both KEM suites. Every input goes to all three decoders (each refuses a
//! wrong magic at once), so each seed reaches the decoder of its kind: the
//! old first-byte dispatch sent every `P…` seed to one decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vault::share::ShareRecord::decode(data);
    if let Ok(p) = vault::identity::PublicIdentity::decode(data) {
        // A decoded identity re-encodes to exactly the input.
        assert_eq!(p.encode(), data);
    }
    if let Ok(k) = vault::identity::SecretIdentity::decode(data) {
        assert_eq!(&k.encode()[..], data);
    }
});
