//! `PQVN` membership removals (decoded up to the signer check).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trusted = vault::identity::Fingerprint::from_bytes([7; 32]);
    let _ = vault::membership::Removal::open(data, &trusted);
});
