//! `PQVM` manifests: decoding and signature verification never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = vault::manifest::Manifest::decode(data) {
        let _ = m.verify(None);
    }
});
