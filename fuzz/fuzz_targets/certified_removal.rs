//! `PQVZ` certified removals and `PQVT` removal votes (decoded with every
//! vote's signature checked, then counted against a fixed member set).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let _ = vault::membership::RemovalVote::open(data);
    if let Ok(c) = vault::membership::CertifiedRemoval::open(data) {
        let statement = vault::membership::Removal {
            version: 3,
            dead_after_s: 600,
            ..Default::default()
        };
        let members: BTreeMap<String, Option<vault::identity::Fingerprint>> = (1..=3)
            .map(|i| {
                (
                    format!("validator-{i}"),
                    Some(vault::identity::Fingerprint::from_bytes([i; 32])),
                )
            })
            .collect();
        let _ = c.check(&statement, &members, 2);
    }
});
