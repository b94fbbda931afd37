//! `PQVU` share records, `PQVI` public identities and `PQVK` secret keys
//! (the first byte picks the parser, so one corpus covers all three).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let _ = vault::share::ShareRecord::decode(rest);
        }
        1 => {
            let _ = vault::identity::PublicIdentity::decode(rest);
        }
        _ => {
            let _ = vault::identity::SecretIdentity::decode(rest);
        }
    }
});
