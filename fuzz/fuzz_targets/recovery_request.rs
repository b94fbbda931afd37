//! `PQVG` recovery requests and `PQVH` recovery answers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vault::recovery_request::RecoveryRequest::decode(data);
    let _ = vault::recovery_request::RecoveryAnswer::decode(data);
});
