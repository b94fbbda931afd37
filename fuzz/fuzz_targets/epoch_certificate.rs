//! `PQVE` epoch certificates.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vault::epoch::EpochCertificate::decode(data);
});
