//! `PQVS` sealed shards of both KEM suites: parsing must never panic, and
//! opening runs with the *recipient's real key* (the published TEST-ONLY
//! keys of the checked-in vectors), so mutations of the seeds reach all
//! three decapsulations (round-4 HQC through ffi, HQC v5 with implicit
//! rejection, ML-KEM, X25519), the combiner and the AEAD, not just the
//! fingerprint check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vault::identity::SecretIdentity;

/// Validators 1-3 of `v1/` (suite 1) and `v1-suite2/` (suite 2).
fn keys() -> &'static [SecretIdentity] {
    static KEYS: OnceLock<Vec<SecretIdentity>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let files: [&[u8]; 6] = [
            include_bytes!("../../vault/tests/vectors/v1/keys/TEST-ONLY-validator-1.key"),
            include_bytes!("../../vault/tests/vectors/v1/keys/TEST-ONLY-validator-2.key"),
            include_bytes!("../../vault/tests/vectors/v1/keys/TEST-ONLY-validator-3.key"),
            include_bytes!("../../vault/tests/vectors/v1-suite2/keys/TEST-ONLY-validator-1.key"),
            include_bytes!("../../vault/tests/vectors/v1-suite2/keys/TEST-ONLY-validator-2.key"),
            include_bytes!("../../vault/tests/vectors/v1-suite2/keys/TEST-ONLY-validator-3.key"),
        ];
        files
            .iter()
            .map(|b| SecretIdentity::decode(b).expect("vector key"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = vault::seal::SealedShard::parse(data) {
        let keys = keys();
        // The recipient's key when the header names one we hold; otherwise
        // a key of the shard's suite, which must fail as WrongRecipient.
        let key = keys
            .iter()
            .find(|k| k.public().fingerprint() == s.header.recipient)
            .or_else(|| keys.iter().find(|k| k.public().suite() == s.header.suite))
            .unwrap_or(&keys[0]);
        let _ = s.open(key);
    }
});
