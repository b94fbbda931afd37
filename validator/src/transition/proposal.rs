//! Transition proposals, votes, certified proposals and aborts: the wire
//! formats (`PQVP`, `PQVV`, `PQVQ`, `PQVB`, `PQVW`; docs/formats.md) and
//! nothing else.
//!
//! A proposal names one transition of one epoch: the repair plans (targets,
//! replacements, helpers) or the re-share plan (dealers, recipients, new
//! threshold), each with its round id. A vote is a holder's hybrid
//! signature over the proposal's digest. A certified proposal carries a
//! proposal and the votes of a quorum of the epoch's holders: the only
//! thing a helper, dealer or replacement acts on. An abort names one
//! certified attempt that failed; a holder's vote on it binds that holder
//! never to act on the attempt again (but for finishing a repair's
//! successor copy another holder signed first), and a quorum of such votes
//! (a certified abort) frees every vote for the next attempt: a re-share
//! attempt can then never complete, and a late successor of a repair is
//! still a valid epoch (docs/protocol.md, "Aborting a failed attempt").

use crate::repair;
use crate::reshare;
use aws_lc_rs::digest::{Context, SHA256};
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use vault::manifest::VaultId;
use vault::sign::HybridSignature;

/// Wire kind of a proposal.
pub const PROPOSAL_KIND: Kind = Kind {
    magic: *b"PQVP",
    name: "pqvault transition proposal",
    version: 1,
};

/// Wire kind of one holder's vote.
pub const VOTE_KIND: Kind = Kind {
    magic: *b"PQVV",
    name: "pqvault proposal vote",
    version: 1,
};

/// Wire kind of a certified proposal.
pub const CERTIFIED_KIND: Kind = Kind {
    magic: *b"PQVQ",
    name: "pqvault certified proposal",
    version: 1,
};

/// Wire kind of an abort of one attempt.
pub const ABORT_KIND: Kind = Kind {
    magic: *b"PQVB",
    name: "pqvault attempt abort",
    version: 1,
};

/// Wire kind of a certified abort.
pub const CERTIFIED_ABORT_KIND: Kind = Kind {
    magic: *b"PQVW",
    name: "pqvault certified abort",
    version: 1,
};

/// Signature domain of votes.
pub const VOTE_DOMAIN: &str = "pqvault/v1 proposal-vote";

/// Signature domain of abort votes.
pub const ABORT_DOMAIN: &str = "pqvault/v1 abort-vote";

/// Signature domain of refusals of a stalled successor (D53).
pub const REFUSAL_DOMAIN: &str = "pqvault/v1 successor-refusal";

/// What a refusal signs: SHA-256 of `"pqvault/v1 refusal"`, the vault id
/// (16 bytes), the epoch left (u64, big-endian) and the refused manifest's
/// digest (32 bytes). A holder signs it only if it has not signed that
/// successor, and never signs it after (`Store::refuse_successor`).
pub fn refusal_digest(vault: &VaultId, from_epoch: u64, manifest: &[u8; 32]) -> [u8; 32] {
    let mut h = Context::new(&SHA256);
    h.update(b"pqvault/v1 refusal");
    h.update(vault.as_bytes());
    h.update(&from_epoch.to_be_bytes());
    h.update(manifest);
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    out
}

/// Largest encoded plan inside a proposal.
const MAX_PLAN: usize = 64 << 10;
/// Largest encoded proposal inside a certificate.
const MAX_PROPOSAL: usize = 1 << 20;
/// Largest public identity inside a vote.
const MAX_IDENTITY: usize = 16 << 10;
/// Most repair plans one proposal carries (one per round of a heal).
pub const MAX_PLANS: usize = 64;

/// What a proposal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Rebuild lost shares at replacements: one plan per round.
    Repair(Vec<repair::Plan>),
    /// Re-share among holders (a refresh, or a shrink to the policy's t').
    Reshare(reshare::Plan),
}

impl Action {
    /// The (replacement, index) pairs a repair names, in plan order; none
    /// for a re-share.
    pub fn named(&self) -> Vec<(Fingerprint, u8)> {
        match self {
            Action::Repair(plans) => plans.iter().flat_map(repair::Plan::named).collect(),
            Action::Reshare(_) => Vec::new(),
        }
    }
}

/// One transition of one epoch, as a holder proposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch the transition leaves.
    pub from_epoch: u64,
    /// Attempt number: a holder votes for one proposal per (epoch, attempt).
    pub attempt: u32,
    /// The plans.
    pub action: Action,
}

impl Proposal {
    /// Canonical encoding: `"PQVP" u16 vault_id:[16] from_epoch:u64
    /// attempt:u32 action:u8`, then for a repair `count:u8` and each plan as
    /// a `var` `PQVR` plan message, for a re-share one `var` `PQVX` plan
    /// message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(PROPOSAL_KIND);
        w.bytes(self.vault_id.as_bytes())
            .u64(self.from_epoch)
            .u32(self.attempt);
        match &self.action {
            Action::Repair(plans) => {
                w.u8(1).u8(u8::try_from(plans.len()).unwrap_or(u8::MAX));
                for p in plans.iter().take(usize::from(u8::MAX)) {
                    w.var_bytes(&repair::Message::Plan(p.clone()).encode());
                }
            }
            Action::Reshare(p) => {
                w.u8(2)
                    .var_bytes(&reshare::Message::Plan(p.clone()).encode());
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes. Every plan must be for the proposal's vault
    /// and epoch.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, PROPOSAL_KIND)?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let from_epoch = r.u64("from epoch")?;
        let attempt = r.u32("attempt")?;
        let action = match r.u8("action")? {
            1 => {
                let count = usize::from(r.u8("plan count")?);
                if count == 0 || count > MAX_PLANS {
                    return Err(FormatError::invalid(
                        "plan count",
                        format!("{count} plans (1 to {MAX_PLANS})"),
                    ));
                }
                let mut plans = Vec::with_capacity(count);
                for _ in 0..count {
                    match repair::Message::decode(r.var_bytes("repair plan", MAX_PLAN)?)? {
                        repair::Message::Plan(p) => plans.push(p),
                        _ => return Err(FormatError::invalid("repair plan", "not a plan")),
                    }
                }
                Action::Repair(plans)
            }
            2 => match reshare::Message::decode(r.var_bytes("re-share plan", MAX_PLAN)?)? {
                reshare::Message::Plan(p) => Action::Reshare(p),
                _ => return Err(FormatError::invalid("re-share plan", "not a plan")),
            },
            other => {
                return Err(FormatError::invalid(
                    "action",
                    format!("unknown action {other}"),
                ))
            }
        };
        r.finish()?;
        let p = Proposal {
            vault_id,
            from_epoch,
            attempt,
            action,
        };
        let consistent = match &p.action {
            Action::Repair(plans) => plans
                .iter()
                .all(|x| (x.vault_id, x.epoch) == (vault_id, from_epoch)),
            Action::Reshare(x) => (x.vault_id, x.epoch) == (vault_id, from_epoch),
        };
        if !consistent {
            return Err(FormatError::invalid(
                "plan",
                "a plan names another vault or epoch than its proposal",
            ));
        }
        Ok(p)
    }

    /// SHA-256 over a label and the encoding: what votes sign.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Context::new(&SHA256);
        h.update(b"pqvault/v1 proposal");
        h.update(&self.encode());
        let mut out = [0u8; 32];
        out.copy_from_slice(h.finish().as_ref());
        out
    }

    /// Round ids of the proposal's plans.
    pub fn rounds(&self) -> Vec<[u8; 16]> {
        match &self.action {
            Action::Repair(plans) => plans.iter().map(|p| p.round).collect(),
            Action::Reshare(p) => vec![p.round],
        }
    }

    /// The share indices of `current` (the epoch the proposal leaves) that
    /// it takes from their holders: those a repair replaces, or those a
    /// re-share leaves out. Each must be lost in a voter's own view.
    pub fn taken_from(&self, current: &vault::manifest::ManifestBody) -> Vec<u8> {
        match &self.action {
            Action::Repair(plans) => plans.iter().flat_map(|p| p.indices()).collect(),
            Action::Reshare(x) => current
                .shards
                .iter()
                .filter(|e| !x.recipients.contains(&e.recipient))
                .map(|e| e.index)
                .collect(),
        }
    }
}

/// The end of one certified attempt that failed: which proposal, and the
/// rounds it started (what a holder forgets when it signs the abort).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch the attempt would have left.
    pub from_epoch: u64,
    /// The attempt aborted.
    pub attempt: u32,
    /// Digest of the attempt's proposal ([`Proposal::digest`]).
    pub proposal: [u8; 32],
    /// Round ids of the proposal's plans.
    pub rounds: Vec<[u8; 16]>,
}

impl Abort {
    /// The abort of `p`.
    pub fn of(p: &Proposal) -> Abort {
        Abort {
            vault_id: p.vault_id,
            from_epoch: p.from_epoch,
            attempt: p.attempt,
            proposal: p.digest(),
            rounds: p.rounds(),
        }
    }

    /// `"PQVB" u16 vault_id:[16] from_epoch:u64 attempt:u32
    /// proposal:[32] count:u8 count×round:[16]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(ABORT_KIND);
        w.bytes(self.vault_id.as_bytes())
            .u64(self.from_epoch)
            .u32(self.attempt)
            .bytes(&self.proposal)
            .u8(u8::try_from(self.rounds.len()).unwrap_or(u8::MAX));
        for r in self.rounds.iter().take(usize::from(u8::MAX)) {
            w.bytes(r);
        }
        w.finish()
    }

    /// Decodes untrusted bytes: 1 to [`MAX_PLANS`] rounds.
    pub fn decode(bytes: &[u8]) -> Result<Abort, FormatError> {
        let mut r = Reader::open(bytes, ABORT_KIND)?;
        let a = Abort::read(&mut r)?;
        r.finish()?;
        Ok(a)
    }

    fn read(r: &mut Reader) -> Result<Abort, FormatError> {
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let from_epoch = r.u64("from epoch")?;
        let attempt = r.u32("attempt")?;
        let proposal = r.array("proposal digest")?;
        let count = usize::from(r.u8("round count")?);
        if count == 0 || count > MAX_PLANS {
            return Err(FormatError::invalid(
                "round count",
                format!("{count} rounds (1 to {MAX_PLANS})"),
            ));
        }
        let rounds = (0..count)
            .map(|_| r.array("round id"))
            .collect::<Result<_, _>>()?;
        Ok(Abort {
            vault_id,
            from_epoch,
            attempt,
            proposal,
            rounds,
        })
    }

    /// SHA-256 over a label and the encoding: what abort votes sign.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Context::new(&SHA256);
        h.update(b"pqvault/v1 abort");
        h.update(&self.encode());
        let mut out = [0u8; 32];
        out.copy_from_slice(h.finish().as_ref());
        out
    }
}

/// An abort and the abort votes collected for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedAbort {
    /// The abort.
    pub abort: Abort,
    /// Abort votes ([`Vote::sign_abort`]); [`super::authorize`] counts the
    /// valid ones of distinct holders.
    pub votes: Vec<Vote>,
}

impl CertifiedAbort {
    /// `"PQVW" u16 abort:var count:u8 count×(signer:var ed25519:[64]
    /// mldsa:[3309])`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(CERTIFIED_ABORT_KIND);
        w.var_bytes(&self.abort.encode())
            .u8(u8::try_from(self.votes.len()).unwrap_or(u8::MAX));
        for v in self.votes.iter().take(usize::from(u8::MAX)) {
            v.write(&mut w);
        }
        w.finish()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, CERTIFIED_ABORT_KIND)?;
        let abort = Abort::decode(r.var_bytes("abort", 4096)?)?;
        let count = r.u8("vote count")?;
        let mut votes = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            votes.push(Vote::read(&mut r)?);
        }
        r.finish()?;
        Ok(CertifiedAbort { abort, votes })
    }
}

/// One holder's signature over a proposal's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The signer (checked against the epoch's manifest by fingerprint).
    pub signer: PublicIdentity,
    /// Hybrid signature over [`Proposal::digest`] under [`VOTE_DOMAIN`].
    pub signature: HybridSignature,
}

impl Vote {
    /// Signs `proposal` with `key`.
    pub fn sign(proposal: &Proposal, key: &SecretIdentity) -> Result<Vote, vault::sign::SignError> {
        Ok(Vote {
            signer: key.public().clone(),
            signature: key.signing_key().sign(VOTE_DOMAIN, &proposal.digest())?,
        })
    }

    /// Signs `abort` with `key`: from now on the signer never acts on the
    /// aborted attempt (the caller makes that true before answering).
    pub fn sign_abort(abort: &Abort, key: &SecretIdentity) -> Result<Vote, vault::sign::SignError> {
        Ok(Vote {
            signer: key.public().clone(),
            signature: key.signing_key().sign(ABORT_DOMAIN, &abort.digest())?,
        })
    }

    /// Signs the refusal `refusal` ([`refusal_digest`]) with `key`: from
    /// now on the signer never signs that successor (the caller records it
    /// durably before answering).
    pub fn sign_refusal(
        refusal: &[u8; 32],
        key: &SecretIdentity,
    ) -> Result<Vote, vault::sign::SignError> {
        Ok(Vote {
            signer: key.public().clone(),
            signature: key.signing_key().sign(REFUSAL_DOMAIN, refusal)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.var_bytes(&self.signer.encode())
            .bytes(&self.signature.ed25519)
            .bytes(&self.signature.mldsa);
    }

    fn read(r: &mut Reader) -> Result<Vote, FormatError> {
        let signer = PublicIdentity::decode(r.var_bytes("signer identity", MAX_IDENTITY)?)
            .map_err(|e| FormatError::invalid("signer identity", e.to_string()))?;
        let signature = HybridSignature::read(r)?;
        Ok(Vote { signer, signature })
    }

    /// `"PQVV" u16 signer:var ed25519:[64] mldsa:[3309]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(VOTE_KIND);
        self.write(&mut w);
        w.finish()
    }

    /// Decodes untrusted bytes (the signature is checked by
    /// [`super::authorize`]).
    pub fn decode(bytes: &[u8]) -> Result<Vote, FormatError> {
        let mut r = Reader::open(bytes, VOTE_KIND)?;
        let v = Vote::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// A proposal and the votes collected for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedProposal {
    /// The proposal.
    pub proposal: Proposal,
    /// Votes; [`super::authorize`] counts the valid ones of distinct holders.
    pub votes: Vec<Vote>,
}

impl CertifiedProposal {
    /// `"PQVQ" u16 proposal:var count:u8 count×(signer:var ed25519:[64]
    /// mldsa:[3309])`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(CERTIFIED_KIND);
        w.var_bytes(&self.proposal.encode())
            .u8(u8::try_from(self.votes.len()).unwrap_or(u8::MAX));
        for v in self.votes.iter().take(usize::from(u8::MAX)) {
            v.write(&mut w);
        }
        w.finish()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, CERTIFIED_KIND)?;
        let proposal = Proposal::decode(r.var_bytes("proposal", MAX_PROPOSAL)?)?;
        let count = r.u8("vote count")?;
        let mut votes = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            votes.push(Vote::read(&mut r)?);
        }
        r.finish()?;
        Ok(CertifiedProposal { proposal, votes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(hex_text: &str) -> Vec<u8> {
        hex::decode(hex_text.trim()).unwrap()
    }

    /// `PQVP` both ways against proposals laid out by hand from
    /// docs/formats.md (`validator/tests/vectors/make_pqvp.py`) around the
    /// checked-in `PQVR` and `PQVX` plan vectors.
    #[test]
    fn proposals_match_the_checked_in_vectors() {
        let repair_bytes = read(include_str!("../../tests/vectors/pqvp-v1-repair.hex"));
        let p = Proposal::decode(&repair_bytes).unwrap();
        assert_eq!(
            (p.vault_id, p.from_epoch, p.attempt),
            (VaultId::from_bytes([0x22; 16]), 7, 3)
        );
        let Action::Repair(plans) = &p.action else {
            panic!("a repair")
        };
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].round, [0x11; 16]);
        assert_eq!(p.encode(), repair_bytes);

        let reshare_bytes = read(include_str!("../../tests/vectors/pqvp-v1-reshare.hex"));
        let p = Proposal::decode(&reshare_bytes).unwrap();
        let Action::Reshare(plan) = &p.action else {
            panic!("a re-share")
        };
        assert_eq!((plan.t_new, plan.dealers.as_slice()), (3, &[1u8, 2, 5][..]));
        assert_eq!(p.encode(), reshare_bytes);
        for cut in [0, 5, 33, reshare_bytes.len() - 1] {
            assert!(Proposal::decode(&reshare_bytes[..cut]).is_err(), "{cut}");
        }
        // Unknown action, and a plan of another epoch than the proposal's.
        let mut bad = reshare_bytes.clone();
        bad[34] = 9;
        assert!(Proposal::decode(&bad).is_err());
        let mut other = reshare_bytes.clone();
        other[29] ^= 1; // from_epoch's last byte
        assert!(Proposal::decode(&other).is_err());
    }

    /// `PQVB` both ways against the abort laid out by hand from
    /// docs/formats.md (`validator/tests/vectors/make_pqvb.py`).
    #[test]
    fn aborts_match_the_checked_in_vector() {
        let bytes = read(include_str!("../../tests/vectors/pqvb-v1-abort.hex"));
        let a = Abort::decode(&bytes).unwrap();
        assert_eq!(
            a,
            Abort {
                vault_id: VaultId::from_bytes([0x22; 16]),
                from_epoch: 7,
                attempt: 3,
                proposal: [0x33; 32],
                rounds: vec![[0x11; 16], [0x44; 16]],
            }
        );
        assert_eq!(a.encode(), bytes);
        for cut in 0..bytes.len() {
            assert!(Abort::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut none = bytes[..66].to_vec();
        none.push(0);
        assert!(Abort::decode(&none).is_err(), "no rounds");
        let mut long = bytes.clone();
        long.push(0);
        assert!(Abort::decode(&long).is_err(), "trailing bytes");
    }
}
