//! The re-share wire: the plan, the `PQVX` messages and the statements
//! dealers and recipients sign (docs/protocol.md, docs/formats.md).

use crate::epochs::PrepareReply;
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::identity::Fingerprint;
use vault::manifest::VaultId;
use vault::share::MAX_SHARE_LEN;
use vault::sign::HybridSignature;
use zeroize::Zeroizing;

/// Wire kind of re-share messages.
pub const RESHARE_KIND: Kind = Kind {
    magic: *b"PQVX",
    name: "pqvault re-share message",
    version: 1,
};

pub(super) const MAX_SEALED: usize = MAX_SHARE_LEN + 16 * 1024;

/// Domain of a dealer's signature over a sub-share it sends
/// ([`subshare_statement`]).
pub const SUBSHARE_DOMAIN: &str = "pqvault/v1 subshare";

/// Domain of a recipient's signature over the check values it publishes
/// ([`check_statement`]).
pub const CHECK_DOMAIN: &str = "pqvault/v1 check-values";

/// Domain of a recipient's receipt for a sub-share it accepted
/// ([`receipt_statement`]).
pub const RECEIPT_DOMAIN: &str = "pqvault/v1 subshare-receipt";

/// Domain of a recipient's signature over its entry in the next manifest
/// ([`entry_statement`]).
pub const ENTRY_DOMAIN: &str = "pqvault/v1 reshare-entry";

/// The leader's proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Random round id.
    pub round: [u8; 16],
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch being left.
    pub epoch: u64,
    /// New threshold.
    pub t_new: u8,
    /// Dealers: `t` share indices of `epoch`, sorted, distinct.
    pub dealers: Vec<u8>,
    /// Recipients: recipient `k` (1-based) gets new index `k`.
    pub recipients: Vec<Fingerprint>,
}

/// A re-share message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The plan, from the leader to every recipient and dealer.
    Plan(Plan),
    /// A dealer's sub-share for one recipient.
    Subshare {
        /// Round id.
        round: [u8; 16],
        /// Dealer's share index in the old epoch.
        from: u8,
        /// `PQVS` sealed to the recipient (epoch + 1, new t and n, index k).
        sealed: Vec<u8>,
        /// The dealer's signature over the point it sealed
        /// ([`subshare_statement`]), so a dispute over it can be settled
        /// (type 3); `None` from a dealer that predates it (type 2).
        signature: Option<HybridSignature>,
    },
    /// A signer's view of the dealing check: every recipient's check
    /// values with that recipient's signature, in recipient order (the
    /// body of `POST /v1/reshare/{round}/reveal`).
    View {
        /// Round id.
        round: [u8; 16],
        /// One per recipient, in order.
        entries: Vec<SignedValues>,
    },
    /// A recipient's sub-shares with their dealers' signatures, revealed
    /// to settle a dispute over its check values (the answer of `POST
    /// /v1/reshare/{round}/reveal`).
    Reveal {
        /// Round id.
        round: [u8; 16],
        /// The recipient's new index.
        index: u8,
        /// One per dealer, in the plan's order.
        subs: Vec<Revealed>,
    },
}

/// One recipient's published check values, signed by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedValues {
    /// The recipient's new index.
    pub index: u8,
    /// Its `d - t` check values.
    pub values: Vec<Vec<u8>>,
    /// Its signature over them ([`check_statement`]).
    pub signature: HybridSignature,
}

/// One revealed sub-share.
#[derive(Clone, PartialEq, Eq)]
pub struct Revealed {
    /// Dealer's share index in the old epoch.
    pub from: u8,
    /// The point the dealer sent.
    pub value: Zeroizing<Vec<u8>>,
    /// The dealer's signature over it ([`subshare_statement`]).
    pub signature: HybridSignature,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revealed")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// What a dealer signs for the sub-share it sends recipient `index`:
/// `round:[16] vault_id:[16] epoch:u64 (the new epoch) t_new:u8 n_new:u8
/// from:u8 index:u8 value:var` (docs/formats.md, `PQVX`).
pub fn subshare_statement(plan: &Plan, from: u8, index: u8, value: &[u8]) -> Vec<u8> {
    let mut w = statement_head(plan);
    w.u8(plan.t_new)
        .u8(plan.recipients.len() as u8)
        .u8(from)
        .u8(index)
        .var_bytes(value);
    w.finish()
}

/// The start of both signed statements: `round:[16] vault_id:[16]
/// epoch:u64` (the new epoch).
pub(super) fn statement_head(plan: &Plan) -> Writer {
    let mut w = Writer::raw();
    w.bytes(&plan.round)
        .bytes(plan.vault_id.as_bytes())
        .u64(plan.epoch + 1);
    w
}

/// What a recipient signs over the check values it publishes:
/// `round:[16] vault_id:[16] epoch:u64 (the new epoch) index:u8 count:u8`
/// then `count × value:var` (docs/formats.md, `PQVX`).
pub fn check_statement(plan: &Plan, index: u8, values: &[Vec<u8>]) -> Vec<u8> {
    let mut w = statement_head(plan);
    w.u8(index).u8(values.len() as u8);
    for v in values {
        w.var_bytes(v);
    }
    w.finish()
}

/// What a recipient signs when it accepts dealer `from`'s sub-share
/// (sealed bytes hashing to `sealed_hash`) as new index `index`:
/// `round:[16] vault_id:[16] epoch:u64 (the new epoch) from:u8 index:u8
/// sealed_hash:[32]`. The dealer keeps it: a recipient that later calls
/// that sub-share missing is shown lying by its own signature.
pub fn receipt_statement(plan: &Plan, from: u8, index: u8, sealed_hash: &[u8; 32]) -> Vec<u8> {
    let mut w = statement_head(plan);
    w.u8(from).u8(index).bytes(sealed_hash);
    w.finish()
}

/// What a recipient signs over its entry in the next manifest:
/// `round:[16] vault_id:[16] epoch:u64 (the new epoch) index:u8
/// recipient:[32] blob_hash:[32] share_commitment:[32]`. Signed, the entry
/// can reach the leader through any member the recipient showed it to
/// ([`relayed`]); `None` if `entry` is not well formed.
pub fn entry_statement(plan: &Plan, entry: &PrepareReply) -> Option<Vec<u8>> {
    let b32 = |h: &str| -> Option<[u8; 32]> { hex::decode(h).ok()?.try_into().ok() };
    let mut w = statement_head(plan);
    w.u8(entry.index)
        .bytes(&b32(&entry.recipient)?)
        .bytes(&b32(&entry.blob_hash)?)
        .bytes(&b32(&entry.share_commitment)?);
    Some(w.finish())
}

pub(super) fn write_signature(w: &mut Writer, sig: &HybridSignature) {
    w.bytes(&sig.ed25519).bytes(&sig.mldsa);
}

impl Message {
    /// Canonical encoding: `"PQVX" u16 type:u8 round:[16]`, then for a plan
    /// `vault_id:[16] epoch:u64 t_new:u8 dealers:var count:u8
    /// count×fingerprint:[32]`, for a sub-share `from:u8 sealed:var`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(RESHARE_KIND);
        match self {
            Message::Plan(p) => {
                w.u8(1)
                    .bytes(&p.round)
                    .bytes(p.vault_id.as_bytes())
                    .u64(p.epoch)
                    .u8(p.t_new)
                    .var_bytes(&p.dealers)
                    .u8(p.recipients.len() as u8);
                for r in &p.recipients {
                    w.bytes(r.as_bytes());
                }
            }
            Message::Subshare {
                round,
                from,
                sealed,
                signature,
            } => {
                w.u8(if signature.is_some() { 3 } else { 2 })
                    .bytes(round)
                    .u8(*from)
                    .var_bytes(sealed);
                if let Some(sig) = signature {
                    write_signature(&mut w, sig);
                }
            }
            Message::View { round, entries } => {
                w.u8(5).bytes(round).u8(entries.len() as u8);
                for e in entries {
                    w.u8(e.index).u8(e.values.len() as u8);
                    for v in &e.values {
                        w.var_bytes(v);
                    }
                    write_signature(&mut w, &e.signature);
                }
            }
            Message::Reveal { round, index, subs } => {
                w.u8(4).bytes(round).u8(*index).u8(subs.len() as u8);
                for s in subs {
                    w.u8(s.from).var_bytes(&s.value);
                    write_signature(&mut w, &s.signature);
                }
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, RESHARE_KIND)?;
        let kind = r.u8("message type")?;
        let round = r.array("round id")?;
        let msg = match kind {
            1 => {
                let vault_id = VaultId::from_bytes(r.array("vault id")?);
                let epoch = r.u64("epoch")?;
                let t_new = r.u8("new threshold")?;
                let dealers = r.var_bytes("dealer list", 255)?.to_vec();
                let count = r.u8("recipient count")?;
                let mut recipients = Vec::with_capacity(count.into());
                for _ in 0..count {
                    recipients.push(Fingerprint::from_bytes(r.array("recipient fingerprint")?));
                }
                Message::Plan(Plan {
                    round,
                    vault_id,
                    epoch,
                    t_new,
                    dealers,
                    recipients,
                })
            }
            2 | 3 => Message::Subshare {
                round,
                from: r.u8("dealer index")?,
                sealed: r.var_bytes("sealed sub-share", MAX_SEALED)?.to_vec(),
                signature: if kind == 3 {
                    Some(HybridSignature::read(&mut r)?)
                } else {
                    None
                },
            },
            4 => {
                let index = r.u8("recipient index")?;
                let count = r.u8("sub-share count")?;
                let mut subs = Vec::with_capacity(count.into());
                for _ in 0..count {
                    subs.push(Revealed {
                        from: r.u8("dealer index")?,
                        value: Zeroizing::new(r.var_bytes("sub-share", MAX_SHARE_LEN)?.to_vec()),
                        signature: HybridSignature::read(&mut r)?,
                    });
                }
                Message::Reveal { round, index, subs }
            }
            5 => {
                let count = r.u8("recipient count")?;
                let mut entries = Vec::with_capacity(count.into());
                for _ in 0..count {
                    let index = r.u8("recipient index")?;
                    let m = r.u8("value count")?;
                    let mut values = Vec::with_capacity(m.into());
                    for _ in 0..m {
                        values.push(r.var_bytes("check value", MAX_SHARE_LEN)?.to_vec());
                    }
                    entries.push(SignedValues {
                        index,
                        values,
                        signature: HybridSignature::read(&mut r)?,
                    });
                }
                Message::View { round, entries }
            }
            other => {
                return Err(FormatError::invalid(
                    "message type",
                    format!("unknown type {other}"),
                ))
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

pub(super) fn signature_hex(sig: &HybridSignature) -> String {
    let mut w = Writer::raw();
    write_signature(&mut w, sig);
    hex::encode(w.finish())
}

pub(super) fn signature_from_hex(h: &str) -> Option<HybridSignature> {
    let b = hex::decode(h).ok()?;
    let mut r = Reader::raw(&b);
    let sig = HybridSignature::read(&mut r).ok()?;
    r.finish().ok()?;
    Some(sig)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::reshare) fn plan() -> Plan {
        Plan {
            round: [7; 16],
            vault_id: VaultId::from_bytes([3; 16]),
            epoch: 4,
            t_new: 3,
            dealers: vec![1, 2, 4, 6],
            recipients: (1..=5u8)
                .map(|i| Fingerprint::from_bytes([i; 32]))
                .collect(),
        }
    }

    /// The reveal of `pqvx-v1-reveal.hex`.
    fn vector_reveal() -> Message {
        Message::Reveal {
            round: [0x11; 16],
            index: 4,
            subs: vec![
                Revealed {
                    from: 1,
                    value: Zeroizing::new(vec![0x51; 32]),
                    signature: signature(0x46),
                },
                Revealed {
                    from: 5,
                    value: Zeroizing::new(vec![0x55; 32]),
                    signature: signature(0x47),
                },
            ],
        }
    }

    /// The view of `pqvx-v1-view.hex`.
    fn vector_view() -> Message {
        Message::View {
            round: [0x11; 16],
            entries: vec![
                SignedValues {
                    index: 1,
                    values: vec![vec![0x61; 32], vec![0x62; 32]],
                    signature: signature(0x48),
                },
                SignedValues {
                    index: 2,
                    values: vec![vec![0x63; 32], vec![0x64; 32]],
                    signature: signature(0x49),
                },
            ],
        }
    }

    /// A signature-shaped filler (the layout does not check signatures).
    fn signature(b: u8) -> HybridSignature {
        HybridSignature {
            ed25519: [b; vault::sign::ED25519_SIG_LEN],
            mldsa: vec![b + 1; vault::sign::MLDSA65_SIG_LEN],
        }
    }

    /// The signed statements' bytes as docs/formats.md lays them out.
    #[test]
    fn statements_follow_the_documented_layout() {
        let p = plan();
        let mut sub = vec![7u8; 16];
        sub.extend_from_slice(&[3; 16]);
        sub.extend_from_slice(&5u64.to_be_bytes());
        let mut check = sub.clone();
        sub.extend_from_slice(&[3, 5, 2, 4, 0, 0, 0, 2, 0xaa, 0xbb]);
        assert_eq!(subshare_statement(&p, 2, 4, &[0xaa, 0xbb]), sub);
        check.extend_from_slice(&[4, 2, 0, 0, 0, 1, 0xaa, 0, 0, 0, 1, 0xbb]);
        assert_eq!(check_statement(&p, 4, &[vec![0xaa], vec![0xbb]]), check);
    }

    #[test]
    fn messages_round_trip_and_refuse_garbage() {
        let msgs = [
            Message::Plan(plan()),
            Message::Subshare {
                round: [9; 16],
                from: 2,
                sealed: vec![1, 2, 3],
                signature: None,
            },
            Message::Subshare {
                round: [9; 16],
                from: 2,
                sealed: vec![1, 2, 3],
                signature: Some(signature(0x44)),
            },
            vector_view(),
            vector_reveal(),
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(Message::decode(&bytes).unwrap(), m);
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "truncated at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode(&longer).is_err(), "trailing byte");
        }
        let mut bad_type = Message::Plan(plan()).encode();
        bad_type[6] = 9;
        assert!(Message::decode(&bad_type).is_err());
    }

    /// Both ways against vectors laid out by hand from docs/formats.md
    /// (`tests/vectors/make_pqvx.py`): the bytes decode to the documented
    /// fields, and those fields encode to the same bytes.
    #[test]
    fn messages_match_the_checked_in_vectors() {
        let read = |s: &str| hex::decode(s.trim()).unwrap();
        let plan_bytes = read(include_str!("../../tests/vectors/pqvx-v1-plan.hex"));
        let plan = Message::Plan(Plan {
            round: [0x11; 16],
            vault_id: VaultId::from_bytes([0x22; 16]),
            epoch: 7,
            t_new: 3,
            dealers: vec![1, 2, 5],
            recipients: (0..5u8)
                .map(|i| Fingerprint::from_bytes([0x31 + i; 32]))
                .collect(),
        });
        assert_eq!(Message::decode(&plan_bytes).unwrap(), plan);
        assert_eq!(plan.encode(), plan_bytes);
        let sub_bytes = read(include_str!("../../tests/vectors/pqvx-v1-subshare.hex"));
        let sub = Message::Subshare {
            round: [0x11; 16],
            from: 2,
            sealed: b"PQVS-not-a-real-shard".to_vec(),
            signature: None,
        };
        assert_eq!(Message::decode(&sub_bytes).unwrap(), sub);
        assert_eq!(sub.encode(), sub_bytes);
        let signed_bytes = read(include_str!(
            "../../tests/vectors/pqvx-v1-signed-subshare.hex"
        ));
        let signed = Message::Subshare {
            round: [0x11; 16],
            from: 2,
            sealed: b"PQVS-not-a-real-shard".to_vec(),
            signature: Some(signature(0x44)),
        };
        assert_eq!(Message::decode(&signed_bytes).unwrap(), signed);
        assert_eq!(signed.encode(), signed_bytes);
        let reveal_bytes = read(include_str!("../../tests/vectors/pqvx-v1-reveal.hex"));
        let reveal = vector_reveal();
        assert_eq!(Message::decode(&reveal_bytes).unwrap(), reveal);
        assert_eq!(reveal.encode(), reveal_bytes);
        let view_bytes = read(include_str!("../../tests/vectors/pqvx-v1-view.hex"));
        let view = vector_view();
        assert_eq!(Message::decode(&view_bytes).unwrap(), view);
        assert_eq!(view.encode(), view_bytes);
    }

    /// The four signed statements against vectors laid out from
    /// docs/formats.md (`tests/vectors/make_pqvx.py`), each under its
    /// documented domain, for the vector plan.
    #[test]
    fn statements_match_the_checked_in_vectors() {
        let plan_bytes =
            hex::decode(include_str!("../../tests/vectors/pqvx-v1-plan.hex").trim()).unwrap();
        let Message::Plan(plan) = Message::decode(&plan_bytes).unwrap() else {
            panic!("the plan vector is not a plan");
        };
        let hex32 = |b: u8| hex::encode([b; 32]);
        let entry = PrepareReply {
            index: 4,
            recipient: hex32(0x34),
            recipient_name: "validator-4".into(),
            blob_hash: hex32(0x72),
            share_commitment: hex32(0x73),
        };
        let ours = [
            (
                SUBSHARE_DOMAIN,
                subshare_statement(&plan, 2, 4, b"PQVS-not-a-real-shard"),
            ),
            (
                CHECK_DOMAIN,
                check_statement(&plan, 1, &[vec![0x61; 32], vec![0x62; 32]]),
            ),
            (RECEIPT_DOMAIN, receipt_statement(&plan, 2, 4, &[0x71; 32])),
            (ENTRY_DOMAIN, entry_statement(&plan, &entry).unwrap()),
        ];
        let vectors: Vec<(String, Vec<u8>)> =
            include_str!("../../tests/vectors/pqvx-v1-statements.txt")
                .lines()
                .map(|l| {
                    let (d, h) = l.split_once('\t').unwrap();
                    (d.to_string(), hex::decode(h).unwrap())
                })
                .collect();
        assert_eq!(vectors.len(), ours.len());
        for ((domain, bytes), (d, b)) in ours.iter().zip(&vectors) {
            assert_eq!(domain, d);
            assert_eq!(bytes, b, "{domain}");
        }
    }
}
