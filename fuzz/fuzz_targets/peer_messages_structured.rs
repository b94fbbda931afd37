//! Structure-aware fuzzing of the peer messages (`arbitrary`): well-formed
//! `PQVR`, `PQVX` (every type, signed sub-shares, reveals and views
//! included) and `PQVC` values are generated field by field, encoded
//! with the real encoders, and must decode to exactly the same value, so
//! the fuzzer explores the messages' semantics rather than mostly bad
//! magic. (The byte-level `peer_messages` target covers malformed input.)
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use validator::{repair, reshare, rounds};
use vault::identity::Fingerprint;
use vault::manifest::VaultId;

#[derive(Arbitrary, Debug)]
enum Input {
    RepairPlan {
        round: [u8; 16],
        vault: [u8; 16],
        epoch: u64,
        helpers: Vec<u8>,
        targets: Vec<(u8, [u8; 32])>,
    },
    RepairPiece {
        round: [u8; 16],
        from: u8,
        sealed: Vec<u8>,
        sum: bool,
    },
    ResharePlan {
        round: [u8; 16],
        vault: [u8; 16],
        epoch: u64,
        t_new: u8,
        dealers: Vec<u8>,
        recipients: Vec<[u8; 32]>,
    },
    Subshare {
        round: [u8; 16],
        from: u8,
        sealed: Vec<u8>,
        /// A signature-shaped filler (Ed25519 byte, ML-DSA-65 byte), or
        /// none (the unsigned type 2).
        signature: Option<(u8, u8)>,
    },
    Reveal {
        round: [u8; 16],
        index: u8,
        subs: Vec<(u8, Vec<u8>, (u8, u8))>,
    },
    View {
        round: [u8; 16],
        entries: Vec<(u8, Vec<Vec<u8>>, (u8, u8))>,
    },
    Proof {
        anchor: Vec<u8>,
        steps: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

fuzz_target!(|input: Input| {
    match input {
        Input::RepairPlan {
            round,
            vault,
            epoch,
            helpers,
            targets,
        } => {
            // The documented limits: at most 255 helpers and targets.
            if helpers.len() > 255 || targets.len() > 255 {
                return;
            }
            let m = repair::Message::Plan(repair::Plan {
                round,
                vault_id: VaultId::from_bytes(vault),
                epoch,
                targets: targets
                    .into_iter()
                    .map(|(index, fp)| repair::Target {
                        index,
                        replacement: Fingerprint::from_bytes(fp),
                    })
                    .collect(),
                helpers,
            });
            assert_eq!(repair::Message::decode(&m.encode()).unwrap(), m);
        }
        Input::RepairPiece {
            round,
            from,
            sealed,
            sum,
        } => {
            let m = if sum {
                repair::Message::Sum {
                    round,
                    from,
                    sealed,
                }
            } else {
                repair::Message::Piece {
                    round,
                    from,
                    sealed,
                }
            };
            assert_eq!(repair::Message::decode(&m.encode()).unwrap(), m);
        }
        Input::ResharePlan {
            round,
            vault,
            epoch,
            t_new,
            dealers,
            recipients,
        } => {
            if dealers.len() > 255 || recipients.len() > 255 {
                return;
            }
            let m = reshare::Message::Plan(reshare::Plan {
                round,
                vault_id: VaultId::from_bytes(vault),
                epoch,
                t_new,
                dealers,
                recipients: recipients
                    .into_iter()
                    .map(Fingerprint::from_bytes)
                    .collect(),
            });
            assert_eq!(reshare::Message::decode(&m.encode()).unwrap(), m);
        }
        Input::Subshare {
            round,
            from,
            sealed,
            signature,
        } => {
            let signature = signature.map(filler);
            let m = reshare::Message::Subshare {
                round,
                from,
                sealed,
                signature,
            };
            assert_eq!(reshare::Message::decode(&m.encode()).unwrap(), m);
        }
        Input::Reveal { round, index, subs } => {
            if subs.len() > 255
                || subs
                    .iter()
                    .any(|(_, v, _)| v.len() > vault::share::MAX_SHARE_LEN)
            {
                return;
            }
            let subs = subs
                .into_iter()
                .map(|(from, value, sig)| reshare::Revealed {
                    from,
                    value: zeroize::Zeroizing::new(value),
                    signature: filler(sig),
                })
                .collect();
            let m = reshare::Message::Reveal { round, index, subs };
            assert_eq!(reshare::Message::decode(&m.encode()).unwrap(), m);
        }
        Input::View { round, entries } => {
            if entries.len() > 255
                || entries.iter().any(|(_, values, _)| {
                    values.len() > 255
                        || values.iter().any(|v| v.len() > vault::share::MAX_SHARE_LEN)
                })
            {
                return;
            }
            let entries = entries
                .into_iter()
                .map(|(index, values, sig)| reshare::SignedValues {
                    index,
                    values,
                    signature: filler(sig),
                })
                .collect();
            let m = reshare::Message::View { round, entries };
            assert_eq!(reshare::Message::decode(&m.encode()).unwrap(), m);
        }
        Input::Proof { anchor, steps } => {
            let bytes = rounds::encode_proof(&anchor, &steps);
            assert_eq!(rounds::decode_proof(&bytes).unwrap(), (anchor, steps));
        }
    }
});

/// A signature-shaped filler: the layout does not check signatures.
fn filler((ed, ml): (u8, u8)) -> vault::sign::HybridSignature {
    vault::sign::HybridSignature {
        ed25519: [ed; vault::sign::ED25519_SIG_LEN],
        mldsa: vec![ml; vault::sign::MLDSA65_SIG_LEN],
    }
}
