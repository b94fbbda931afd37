//! `PQVU` share records, `PQVI` public identities and `PQVK` secret keys, of
//! both KEM suites, and the initial KEM key files `PQVJ` (checked against
//! the identity of the checked-in vector) and `PQVO`. Every input goes to
//! every decoder (each refuses a wrong magic at once), so each seed reaches
//! the decoder of its kind: the old first-byte dispatch sent every `P…`
//! seed to one decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// `v1-suite2/`'s validator 1, whose initial key is the `PQVJ` seed.
fn validator_1() -> &'static vault::identity::PublicIdentity {
    static KEY: OnceLock<vault::identity::PublicIdentity> = OnceLock::new();
    KEY.get_or_init(|| {
        vault::identity::PublicIdentity::decode(include_bytes!(
            "../../vault/tests/vectors/v1-suite2/keys/TEST-ONLY-validator-1.pub"
        ))
        .expect("vector identity")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = vault::share::ShareRecord::decode(data);
    if let Ok(p) = vault::identity::PublicIdentity::decode(data) {
        // A decoded identity re-encodes to exactly the input.
        assert_eq!(p.encode(), data);
    }
    if let Ok(k) = vault::identity::SecretIdentity::decode(data) {
        assert_eq!(&k.encode()[..], data);
    }
    if let Ok(k) = vault::initial_key::verify_public(data, validator_1()) {
        assert!(vault::initial_key::is_initial(&k));
    }
    if let Ok((_, k)) = vault::initial_key::decode_secret(data) {
        assert!(vault::initial_key::is_initial(k.public()));
    }
});
