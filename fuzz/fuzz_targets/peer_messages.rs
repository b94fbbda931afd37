//! Peer-API bodies: `PQVR` repair messages, `PQVX` re-share messages and
//! `PQVC` proof chains (the first byte picks the parser).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = validator::repair::Message::decode(rest);
        }
        1 => {
            let _ = validator::reshare::Message::decode(rest);
        }
        _ => {
            let _ = validator::rounds::decode_proof(rest);
        }
    }
});
