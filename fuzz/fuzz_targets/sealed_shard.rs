//! `PQVS` sealed shards: parsing must never panic; opening with a fixed
//! key must fail cleanly on anything but a shard sealed to it (HQC's
//! decapsulation goes through ffi: a bad ciphertext must be an error).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vault::identity::SecretIdentity;

fn key() -> &'static SecretIdentity {
    static KEY: OnceLock<SecretIdentity> = OnceLock::new();
    KEY.get_or_init(|| SecretIdentity::generate("fuzz").expect("keygen"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = vault::seal::SealedShard::parse(data) {
        let _ = s.open(key());
    }
});
