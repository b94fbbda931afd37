//! Peer-API bodies: `PQVR` repair messages, `PQVX` re-share messages,
//! `PQVC` proof chains, and `PQVP` proposals, `PQVV` votes and `PQVQ`
//! certified proposals. Every input goes to every decoder (each refuses a
//! wrong magic at once), so every seed reaches the decoder of its kind.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = validator::repair::Message::decode(data) {
        // A decoded message re-encodes to exactly the input.
        assert_eq!(m.encode(), data);
    }
    let _ = validator::reshare::Message::decode(data);
    let _ = validator::rounds::decode_proof(data);
    if let Ok(p) = validator::transition::Proposal::decode(data) {
        // A decoded proposal re-encodes to exactly the input.
        assert_eq!(p.encode(), data);
    }
    let _ = validator::transition::Vote::decode(data);
    let _ = validator::transition::CertifiedProposal::decode(data);
});
