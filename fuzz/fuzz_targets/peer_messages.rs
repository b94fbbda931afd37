//! Peer-API bodies: `PQVR` repair messages, `PQVX` re-share messages,
//! `PQVC` proof chains, `PQVP` proposals, `PQVV` votes and `PQVQ`
//! certified proposals, and `PQSQ` successor requests and `PQSA` answers. Every input goes to every decoder (each refuses a
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
    if let Ok(q) = validator::successor::Request::decode(data) {
        assert_eq!(q.encode(), data);
        let _ = q.verify();
    }
    if data.len() >= 30 {
        // The answer names its vault and epoch: take them from the input.
        let vault = vault::manifest::VaultId::from_bytes(data[6..22].try_into().unwrap());
        let from = u64::from_be_bytes(data[22..30].try_into().unwrap());
        if let Ok(a) = validator::successor::Asked::decode(data, &vault, from) {
            assert_eq!(a.encode(&vault, from), data);
        }
    }
});
