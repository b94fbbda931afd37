//! safetensors files: the 8-byte length prefix and the JSON header, parsed
//! with the same limits the validator applies to a payload it received.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vault::artifact::safetensors::parse_file(data);
});
