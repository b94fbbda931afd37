//! `PQVS` sealed shards of both KEM suites: parsing must never panic, and
//! opening runs with the *recipient's real key* (the published TEST-ONLY
//! keys of the checked-in vectors), so mutations of the seeds reach all
//! three decapsulations (round-4 HQC through ffi, HQC v5 with implicit
//! rejection, ML-KEM, X25519), the combiner and the AEAD, not just the
//! fingerprint check. Version 2 shards open with the epoch key of the
//! checked-in key ring vector, and `PQVY` inputs are unwrapped under that
//! ring's wrapping key (both parsers must refuse, never panic); version 2
//! shards of epoch 1 open with the checked-in initial key.
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

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("vector hex"))
        .collect()
}

fn wrap() -> [u8; 32] {
    hex(include_str!(
        "../../validator/tests/vectors/pqvy-v1-wrap.hex"
    ))
    .try_into()
    .expect("32 bytes")
}

/// The epoch key of `validator/tests/vectors/pqvy-v1-ring.hex`.
fn epoch_key() -> &'static vault::epoch_key::EpochKey {
    static KEY: OnceLock<vault::epoch_key::EpochKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let ring = hex(include_str!(
            "../../validator/tests/vectors/pqvy-v1-ring.hex"
        ));
        validator::keyring::unwrap_keys(&ring, &wrap())
            .expect("vector ring")
            .remove(0)
    })
}

/// The initial key of `vault/tests/vectors/initial-key-v1/`.
fn initial_key() -> &'static vault::epoch_key::EpochKey {
    static KEY: OnceLock<vault::epoch_key::EpochKey> = OnceLock::new();
    KEY.get_or_init(|| {
        vault::initial_key::decode_secret(include_bytes!(
            "../../vault/tests/vectors/initial-key-v1/TEST-ONLY-validator-1.ikey"
        ))
        .expect("vector initial key")
        .1
    })
}

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PQVY") {
        let _ = validator::keyring::unwrap_keys(data, &wrap());
        return;
    }
    if let Ok(s) = vault::seal::SealedShard::parse(data) {
        if s.header.epoch_key.is_some() {
            // Epoch 1: a genesis shard sealed to the vector's initial key.
            let key = if s.header.epoch == 1 {
                initial_key()
            } else {
                epoch_key()
            };
            let _ = s.open_with_epoch_key(key);
            return;
        }
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
