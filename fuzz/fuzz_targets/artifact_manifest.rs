//! `PQVA` signed artifact manifests and `PQVD` drafts, including their
//! quantization metadata.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vault::artifact::SignedArtifact::decode(data);
    let _ = vault::artifact::ArtifactBody::decode_draft(data);
});
