//! The operator-signed membership removal statement (`PQVN`).
//!
//! A validator's members come from its configuration (and DNS discovery);
//! removing one is the operator's decision, not a peer's
//! (../shared/DESIGN.md: "certificates or the operator's signature
//! decide"). `vault mesh remove` signs a statement listing every removed
//! member id; validators adopt it from the operator or from any peer when
//! its version is higher than the one they hold, as they do a `PQVL`
//! policy. The list is cumulative: the newest statement alone says who is
//! removed, and a newer one without an id lets that member back.
//!
//! Version 2 of the statement adds the operator's policy time: a member
//! dead for `dead_after_s` seconds may be removed without a new statement,
//! but only on a [`CertifiedRemoval`]: a quorum of members each signing a
//! [`RemovalVote`] "`target` has been dead in my own view for at least
//! `dead_after_s`, under statement `base_version`" (decisions D40). Version
//! 2 also records, per member the operator let back, the statement version
//! that readmitted it: certificates made under an older statement no
//! longer remove it.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::operator_signed;
use crate::sign::{HybridSignature, SignError};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Wire kind of a signed membership removal (version 2: with the policy
/// time and the readmissions).
pub const REMOVAL_KIND: Kind = Kind {
    magic: *b"PQVN",
    name: "pqvault membership removal",
    version: 2,
};

/// Version 1 of the statement (no policy time), still read, and written
/// when a statement uses nothing of version 2 (so validators that read
/// only version 1 keep opening it during a rolling upgrade).
pub const REMOVAL_KIND_V1: Kind = Kind {
    magic: *b"PQVN",
    name: "pqvault membership removal",
    version: 1,
};

/// Wire kind of one member's vote to remove a dead member.
pub const REMOVAL_VOTE_KIND: Kind = Kind {
    magic: *b"PQVT",
    name: "pqvault removal vote",
    version: 1,
};

/// Wire kind of a certified removal (a quorum of votes).
pub const CERTIFIED_REMOVAL_KIND: Kind = Kind {
    magic: *b"PQVZ",
    name: "pqvault certified removal",
    version: 1,
};

/// Signature domain of removal votes.
pub const REMOVAL_VOTE_DOMAIN: &str = "pqvault/v1 removal-vote";

/// Most votes one certified removal carries.
pub const MAX_VOTES: usize = 128;

/// Largest public identity inside a vote.
const MAX_IDENTITY: usize = 16 << 10;

/// Largest encoded vote inside a certificate.
pub const MAX_VOTE: usize = 24 << 10;

/// Longest policy time, seconds (a year: longer is "never").
pub const MAX_DEAD_AFTER_S: u32 = 366 * 24 * 3600;

/// Signature domain of membership removals.
pub const REMOVAL_SIG_DOMAIN: &str = "membership-removal";

/// Most member ids one statement removes.
pub const MAX_REMOVED: usize = 1024;

/// Longest member id (a mesh certificate's id is at most 63 bytes).
pub const MAX_ID_LEN: usize = 63;

/// Why a removal statement is refused.
#[derive(Debug, Error)]
pub enum MembershipError {
    /// Malformed bytes.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Signature or signer wrong.
    #[error("membership removal signature: {0}")]
    Signature(String),
    /// A member id that no certificate can carry, or too many ids.
    #[error("membership removal: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing the membership removal: {0}")]
    Signing(#[from] SignError),
    /// The operator's statement allows no removal after a policy time.
    #[error("the operator's membership statement sets no policy time: no timed removal")]
    NoPolicyTime,
    /// Made under another statement than the one held.
    #[error("made under membership statement {offered}, not {current}: {why}")]
    Stale {
        /// The certificate's or request's statement version.
        offered: u32,
        /// The statement version we hold.
        current: u32,
        /// What makes it stale.
        why: &'static str,
    },
    /// The target is not a member (or already removed).
    #[error("{0} is not a member that can be removed")]
    NotMember(String),
    /// Fewer valid votes than the quorum.
    #[error("{counted} valid votes, {quorum} needed ({refused})")]
    TooFew {
        /// Votes counted.
        counted: usize,
        /// Votes needed.
        quorum: usize,
        /// Why the others were not counted.
        refused: String,
    },
}

/// Who the operator removed from the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Version: a higher one replaces a lower one (0: nothing removed).
    pub version: u32,
    /// Removed member ids, sorted and distinct.
    pub removed: BTreeSet<String>,
    /// The operator's policy time: a member dead this many seconds may be
    /// removed by a [`CertifiedRemoval`] (0: never, the version 1 rule).
    pub dead_after_s: u32,
    /// Members the operator let back, with the statement version that did:
    /// certificates made under an older statement no longer remove them.
    pub readmitted: BTreeMap<String, u32>,
}

fn check_id(id: &str) -> Result<(), MembershipError> {
    crate::meshca::check_id(id)
        .map_err(|_| MembershipError::Invalid(format!("{id:?} is not a member id")))
}

impl Removal {
    /// True if `id` is removed.
    pub fn removes(&self, id: &str) -> bool {
        self.removed.contains(id)
    }

    /// The statement version that last readmitted `id` (0 if none):
    /// certificates made under an older one do not remove it.
    pub fn readmitted_at(&self, id: &str) -> u32 {
        self.readmitted.get(id).copied().unwrap_or(0)
    }

    /// True if the statement needs format version 2.
    fn needs_v2(&self) -> bool {
        self.dead_after_s != 0 || !self.readmitted.is_empty()
    }

    /// Signs the statement: `"PQVN" u16 version:u32 count:u16
    /// (id:var≤63)*`, in format version 2 then `dead_after_s:u32
    /// readmitted:u16 (id:var≤63 at:u32)*`, then `signer:var
    /// ed25519:[64] mldsa:[3309]`. Written as version 1 when it sets no
    /// policy time and readmits nobody.
    pub fn sign(&self, key: &SecretIdentity) -> Result<Vec<u8>, MembershipError> {
        if self.removed.len() > MAX_REMOVED || self.readmitted.len() > MAX_REMOVED {
            return Err(MembershipError::Invalid(format!(
                "{} ids and {} readmitted, at most {MAX_REMOVED} each",
                self.removed.len(),
                self.readmitted.len()
            )));
        }
        if self.dead_after_s > MAX_DEAD_AFTER_S {
            return Err(MembershipError::Invalid(format!(
                "policy time {} s, at most {MAX_DEAD_AFTER_S}",
                self.dead_after_s
            )));
        }
        let v2 = self.needs_v2();
        let mut w = Writer::new(if v2 { REMOVAL_KIND } else { REMOVAL_KIND_V1 });
        w.u32(self.version).u16(self.removed.len() as u16);
        for id in &self.removed {
            check_id(id)?;
            w.var_bytes(id.as_bytes());
        }
        if v2 {
            w.u32(self.dead_after_s).u16(self.readmitted.len() as u16);
            for (id, at) in &self.readmitted {
                check_id(id)?;
                w.var_bytes(id.as_bytes()).u32(*at);
            }
        }
        Ok(operator_signed::finish_signed(w, key, REMOVAL_SIG_DOMAIN)?)
    }

    /// Decodes a signed statement and verifies it was signed by `trusted`.
    pub fn open(bytes: &[u8], trusted: &Fingerprint) -> Result<Self, MembershipError> {
        let (mut r, v2) = match Reader::open(bytes, REMOVAL_KIND) {
            Ok(r) => (r, true),
            Err(FormatError::UnsupportedVersion { found: 1, .. }) => {
                (Reader::open(bytes, REMOVAL_KIND_V1)?, false)
            }
            Err(e) => return Err(e.into()),
        };
        let version = r.u32("version")?;
        let count = usize::from(r.u16("removed count")?);
        if count > MAX_REMOVED {
            return Err(FormatError::invalid(
                "removed count",
                format!("{count} ids, at most {MAX_REMOVED}"),
            )
            .into());
        }
        let mut removed = BTreeSet::new();
        for _ in 0..count {
            let id = std::str::from_utf8(r.var_bytes("removed member id", MAX_ID_LEN)?)
                .map_err(|_| FormatError::invalid("removed member id", "not UTF-8"))?;
            check_id(id)?;
            if !removed.insert(id.to_string()) {
                return Err(
                    FormatError::invalid("removed member id", format!("{id} twice")).into(),
                );
            }
        }
        let mut dead_after_s = 0;
        let mut readmitted = BTreeMap::new();
        if v2 {
            dead_after_s = r.u32("policy time")?;
            if dead_after_s > MAX_DEAD_AFTER_S {
                return Err(FormatError::invalid(
                    "policy time",
                    format!("{dead_after_s} s, at most {MAX_DEAD_AFTER_S}"),
                )
                .into());
            }
            let count = usize::from(r.u16("readmitted count")?);
            if count > MAX_REMOVED {
                return Err(FormatError::invalid(
                    "readmitted count",
                    format!("{count} ids, at most {MAX_REMOVED}"),
                )
                .into());
            }
            for _ in 0..count {
                let id = read_id(&mut r, "readmitted member id")?;
                let at = r.u32("readmitted at")?;
                if at > version {
                    return Err(FormatError::invalid(
                        "readmitted at",
                        format!("{id} readmitted at {at}, after the statement's version"),
                    )
                    .into());
                }
                if removed.contains(&id) || readmitted.insert(id.clone(), at).is_some() {
                    return Err(FormatError::invalid(
                        "readmitted member id",
                        format!("{id} twice or both removed and readmitted"),
                    )
                    .into());
                }
            }
        }
        operator_signed::verify_tail(
            r,
            trusted,
            REMOVAL_SIG_DOMAIN,
            "mesh",
            MembershipError::Signature,
        )?;
        Ok(Removal {
            version,
            removed,
            dead_after_s,
            readmitted,
        })
    }
}

fn read_id(r: &mut Reader<'_>, field: &'static str) -> Result<String, MembershipError> {
    let id = std::str::from_utf8(r.var_bytes(field, MAX_ID_LEN)?)
        .map_err(|_| FormatError::invalid(field, "not UTF-8"))?;
    check_id(id)?;
    Ok(id.to_string())
}

/// Votes a certified removal needs among `members` members (the removed
/// excluded, ourselves and the target included) when up to `f` may lie:
/// the vault crate's certificate quorum [`crate::governance::quorum`]
/// with `t = f + 1`, `max(f + 1, ceil((members + f + 1) / 2))`. With `f = 0`
/// that is a majority of the members. Never less than 1.
pub fn removal_quorum(members: usize, f: u8) -> usize {
    match u8::try_from(members) {
        Ok(n) => usize::from(crate::governance::quorum(f.saturating_add(1), n, f)),
        Err(_) => (members + usize::from(f) + 1).div_ceil(2),
    }
    .max(1)
}

/// What one vote says: `target` has been dead in the voter's own view for
/// at least the policy time of statement `base_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovalVote {
    /// The member to remove.
    pub target: String,
    /// The operator statement the voter held (its policy time applied).
    pub base_version: u32,
    /// The voter's member id.
    pub voter: String,
    /// The voter's public identity (checked against the one its mesh
    /// certificate binds by whoever counts the vote).
    pub identity: PublicIdentity,
}

impl RemovalVote {
    /// Signs a vote: `"PQVT" u16 target:var≤63 base_version:u32
    /// voter:var≤63 identity:var≤16384 ed25519:[64] mldsa:[3309]`, the
    /// signature over everything before it, domain
    /// [`REMOVAL_VOTE_DOMAIN`].
    pub fn sign(
        target: &str,
        base_version: u32,
        voter: &str,
        key: &SecretIdentity,
    ) -> Result<Vec<u8>, MembershipError> {
        check_id(target)?;
        check_id(voter)?;
        let mut w = Writer::new(REMOVAL_VOTE_KIND);
        w.var_bytes(target.as_bytes())
            .u32(base_version)
            .var_bytes(voter.as_bytes())
            .var_bytes(&key.public().encode());
        let sig = key.signing_key().sign(REMOVAL_VOTE_DOMAIN, w.as_slice())?;
        w.bytes(&sig.ed25519).bytes(&sig.mldsa);
        Ok(w.finish())
    }

    /// Decodes a vote and checks its signature against the identity it
    /// carries (who that identity belongs to is the counter's check).
    pub fn open(bytes: &[u8]) -> Result<Self, MembershipError> {
        let mut r = Reader::open(bytes, REMOVAL_VOTE_KIND)?;
        let target = read_id(&mut r, "target member id")?;
        let base_version = r.u32("base version")?;
        let voter = read_id(&mut r, "voter member id")?;
        let identity = PublicIdentity::decode(r.var_bytes("voter identity", MAX_IDENTITY)?)
            .map_err(|e| FormatError::invalid("voter identity", e.to_string()))?;
        let signed = r.consumed().to_vec();
        let sig = HybridSignature::read(&mut r)?;
        r.finish()?;
        identity
            .verifying_key()
            .verify(REMOVAL_VOTE_DOMAIN, &signed, &sig)
            .map_err(|e| MembershipError::Signature(format!("vote of {voter}: {e}")))?;
        Ok(RemovalVote {
            target,
            base_version,
            voter,
            identity,
        })
    }
}

/// A quorum's votes to remove one dead member (`PQVZ`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedRemoval {
    /// The member removed.
    pub target: String,
    /// The operator statement the votes were made under.
    pub base_version: u32,
    /// The votes, one per voter, in the order carried.
    pub votes: Vec<RemovalVote>,
}

/// Why one vote of a certificate was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncounted {
    /// The voter is not a member (or is removed).
    NotMember,
    /// The vote was signed by another key than the voter's.
    WrongKey,
    /// The target voted for its own removal.
    Target,
    /// The voter's identity is unknown to us (unreachable).
    Unknown,
}

impl Uncounted {
    /// Metric label.
    pub fn name(self) -> &'static str {
        match self {
            Uncounted::NotMember => "not_member",
            Uncounted::WrongKey => "wrong_signer",
            Uncounted::Target => "target",
            Uncounted::Unknown => "unknown_identity",
        }
    }
}

impl CertifiedRemoval {
    /// Encodes: `"PQVZ" u16 target:var≤63 base_version:u32 count:u16
    /// (vote:var≤24576)*`, each vote a whole `PQVT`.
    pub fn encode(target: &str, base_version: u32, votes: &[Vec<u8>]) -> Vec<u8> {
        let mut w = Writer::new(CERTIFIED_REMOVAL_KIND);
        w.var_bytes(target.as_bytes())
            .u32(base_version)
            .u16(u16::try_from(votes.len().min(MAX_VOTES)).unwrap_or(0));
        for v in votes.iter().take(MAX_VOTES) {
            w.var_bytes(v);
        }
        w.finish()
    }

    /// Decodes untrusted bytes: every vote well signed by the identity it
    /// carries, for this target and statement, one per voter.
    pub fn open(bytes: &[u8]) -> Result<Self, MembershipError> {
        let mut r = Reader::open(bytes, CERTIFIED_REMOVAL_KIND)?;
        let target = read_id(&mut r, "target member id")?;
        let base_version = r.u32("base version")?;
        let count = usize::from(r.u16("vote count")?);
        if count == 0 || count > MAX_VOTES {
            return Err(FormatError::invalid(
                "vote count",
                format!("{count} votes (1 to {MAX_VOTES})"),
            )
            .into());
        }
        let mut votes: Vec<RemovalVote> = Vec::with_capacity(count);
        for _ in 0..count {
            let v = RemovalVote::open(r.var_bytes("vote", MAX_VOTE)?)?;
            if v.target != target || v.base_version != base_version {
                return Err(FormatError::invalid(
                    "vote",
                    format!("{}'s vote is for another removal", v.voter),
                )
                .into());
            }
            if votes.iter().any(|o| o.voter == v.voter) {
                return Err(FormatError::invalid("vote", format!("{} twice", v.voter)).into());
            }
            votes.push(v);
        }
        r.finish()?;
        Ok(CertifiedRemoval {
            target,
            base_version,
            votes,
        })
    }

    /// Whether this certificate removes its target under `statement` (the
    /// newest operator statement held), given the members now (not
    /// removed, ourselves included) with the identity fingerprint each one's
    /// mesh certificate binds (`None`: not known) and the votes needed.
    /// Returns the number of votes counted.
    pub fn check(
        &self,
        statement: &Removal,
        members: &BTreeMap<String, Option<Fingerprint>>,
        quorum: usize,
    ) -> Result<usize, MembershipError> {
        if statement.dead_after_s == 0 {
            return Err(MembershipError::NoPolicyTime);
        }
        if self.base_version > statement.version {
            return Err(MembershipError::Stale {
                offered: self.base_version,
                current: statement.version,
                why: "a statement we do not hold yet",
            });
        }
        if self.base_version < statement.readmitted_at(&self.target) {
            return Err(MembershipError::Stale {
                offered: self.base_version,
                current: statement.version,
                why: "the operator readmitted the member since",
            });
        }
        if !members.contains_key(&self.target) || statement.removes(&self.target) {
            return Err(MembershipError::NotMember(self.target.clone()));
        }
        let mut counted = 0;
        let mut refused = Vec::new();
        for v in &self.votes {
            match Self::count(v, &self.target, members) {
                Ok(()) => counted += 1,
                Err(why) => refused.push(format!("{}: {}", v.voter, why.name())),
            }
        }
        if counted < quorum {
            return Err(MembershipError::TooFew {
                counted,
                quorum,
                refused: if refused.is_empty() {
                    "no vote refused".into()
                } else {
                    refused.join(", ")
                },
            });
        }
        Ok(counted)
    }

    /// Whether one vote counts: a member other than the target, signed with
    /// the key its mesh certificate binds.
    pub fn count(
        v: &RemovalVote,
        target: &str,
        members: &BTreeMap<String, Option<Fingerprint>>,
    ) -> Result<(), Uncounted> {
        if v.voter == target {
            return Err(Uncounted::Target);
        }
        match members.get(&v.voter) {
            None => Err(Uncounted::NotMember),
            Some(None) => Err(Uncounted::Unknown),
            Some(Some(fp)) if *fp != v.identity.fingerprint() => Err(Uncounted::WrongKey),
            Some(Some(_)) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(ids: &[&str]) -> Removal {
        Removal {
            version: 3,
            removed: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_and_only_the_operator() {
        let op = SecretIdentity::generate("operator").unwrap();
        let other = SecretIdentity::generate("validator-1").unwrap();
        let r = removal(&["validator-3", "validator-7"]);
        let bytes = r.sign(&op).unwrap();
        assert_eq!(
            Removal::open(&bytes, &op.public().fingerprint()).unwrap(),
            r
        );
        assert!(matches!(
            Removal::open(&bytes, &other.public().fingerprint()),
            Err(MembershipError::Signature(_))
        ));
        // Signed by a validator's own key: refused against the operator.
        let forged = r.sign(&other).unwrap();
        assert!(Removal::open(&forged, &op.public().fingerprint()).is_err());
    }

    #[test]
    fn truncations_and_tampering_are_errors() {
        let op = SecretIdentity::generate("operator").unwrap();
        let fp = op.public().fingerprint();
        let bytes = removal(&["validator-3"]).sign(&op).unwrap();
        for cut in 0..bytes.len() {
            assert!(Removal::open(&bytes[..cut], &fp).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Removal::open(&longer, &fp).is_err());
        let mut bad = bytes.clone();
        bad[9] ^= 1; // version
        assert!(Removal::open(&bad, &fp).is_err());
        let mut bad = bytes.clone();
        bad[16] ^= 1; // a byte of the id
        assert!(Removal::open(&bad, &fp).is_err());
    }

    #[test]
    fn ids_are_bounded_and_checked() {
        let op = SecretIdentity::generate("operator").unwrap();
        assert!(removal(&["Not An Id"]).sign(&op).is_err());
        assert!(removal(&[&"a".repeat(64)]).sign(&op).is_err());
        let many: Vec<String> = (0..=MAX_REMOVED).map(|i| format!("v-{i}")).collect();
        let r = Removal {
            version: 1,
            removed: many.into_iter().collect(),
            ..Default::default()
        };
        assert!(r.sign(&op).is_err());
    }

    #[test]
    fn version_2_carries_the_policy_time_and_version_1_still_opens() {
        let op = SecretIdentity::generate("operator").unwrap();
        let fp = op.public().fingerprint();
        // Nothing of version 2 used: written as version 1.
        let plain = removal(&["validator-3"]).sign(&op).unwrap();
        assert_eq!(u16::from_be_bytes([plain[4], plain[5]]), 1);
        assert_eq!(
            Removal::open(&plain, &fp).unwrap(),
            removal(&["validator-3"])
        );
        let mut r = removal(&["validator-3"]);
        r.dead_after_s = 600;
        r.readmitted.insert("validator-2".into(), 2);
        let bytes = r.sign(&op).unwrap();
        assert_eq!(u16::from_be_bytes([bytes[4], bytes[5]]), 2);
        let back = Removal::open(&bytes, &fp).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.readmitted_at("validator-2"), 2);
        assert_eq!(back.readmitted_at("validator-3"), 0);
        for cut in 0..bytes.len() {
            assert!(Removal::open(&bytes[..cut], &fp).is_err(), "cut at {cut}");
        }
        // Readmitted after the statement's own version, or both removed
        // and readmitted: refused when signing is bypassed.
        let mut bad = r.clone();
        bad.readmitted.insert("validator-3".into(), 1);
        assert!(Removal::open(&bad.sign(&op).unwrap(), &fp).is_err());
        let mut bad = r.clone();
        bad.readmitted.insert("validator-5".into(), 9);
        assert!(Removal::open(&bad.sign(&op).unwrap(), &fp).is_err());
        let mut bad = r;
        bad.dead_after_s = MAX_DEAD_AFTER_S + 1;
        assert!(bad.sign(&op).is_err());
    }

    struct World {
        keys: Vec<SecretIdentity>,
        statement: Removal,
    }

    fn id(i: usize) -> String {
        format!("validator-{}", i + 1)
    }

    /// Five members, validator-5 the target, statement version 4 with a
    /// policy time of 10 s.
    fn world() -> World {
        World {
            keys: (0..5)
                .map(|i| SecretIdentity::generate(&id(i)).unwrap())
                .collect(),
            statement: Removal {
                version: 4,
                dead_after_s: 10,
                ..Default::default()
            },
        }
    }

    impl World {
        fn members(&self) -> BTreeMap<String, Option<Fingerprint>> {
            self.keys
                .iter()
                .enumerate()
                .map(|(i, k)| (id(i), Some(k.public().fingerprint())))
                .collect()
        }
        fn vote(&self, voter: usize, version: u32) -> Vec<u8> {
            RemovalVote::sign("validator-5", version, &id(voter), &self.keys[voter]).unwrap()
        }
        fn cert(&self, voters: &[usize], version: u32) -> CertifiedRemoval {
            let votes: Vec<Vec<u8>> = voters.iter().map(|&v| self.vote(v, version)).collect();
            let bytes = CertifiedRemoval::encode("validator-5", version, &votes);
            CertifiedRemoval::open(&bytes).unwrap()
        }
    }

    #[test]
    fn a_quorum_of_member_votes_removes() {
        let w = world();
        let q = removal_quorum(5, 0);
        assert_eq!(q, 3, "a majority of five");
        let c = w.cert(&[0, 1, 2], 4);
        assert_eq!(c.check(&w.statement, &w.members(), q).unwrap(), 3);
        // An older statement's certificate still removes (no readmission).
        let mut newer = w.statement.clone();
        newer.version = 6;
        assert!(c.check(&newer, &w.members(), q).is_ok());
    }

    #[test]
    fn the_quorum_follows_the_policys_f() {
        assert_eq!(removal_quorum(4, 0), 3);
        assert_eq!(removal_quorum(3, 0), 2);
        assert_eq!(removal_quorum(7, 1), 5);
        assert_eq!(removal_quorum(7, 2), 5);
        assert_eq!(removal_quorum(1, 0), 1);
        assert_eq!(removal_quorum(1000, 0), 501);
    }

    #[test]
    fn too_few_signers_are_refused() {
        let w = world();
        let c = w.cert(&[0, 1], 4);
        assert!(matches!(
            c.check(&w.statement, &w.members(), 3),
            Err(MembershipError::TooFew {
                counted: 2,
                quorum: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_vote_signed_with_another_key_does_not_count() {
        let w = world();
        // validator-1 signs in validator-2's name with its own key.
        let forged = RemovalVote::sign("validator-5", 4, &id(1), &w.keys[0]).unwrap();
        let votes = vec![w.vote(0, 4), forged, w.vote(2, 4)];
        let c =
            CertifiedRemoval::open(&CertifiedRemoval::encode("validator-5", 4, &votes)).unwrap();
        match c.check(&w.statement, &w.members(), 3) {
            Err(MembershipError::TooFew {
                counted: 2,
                refused,
                ..
            }) => {
                assert!(refused.contains("validator-2: wrong_signer"), "{refused}")
            }
            other => panic!("{other:?}"),
        }
        // A tampered signature: the whole certificate is malformed.
        let mut bad = w.vote(1, 4);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let bytes = CertifiedRemoval::encode("validator-5", 4, &[w.vote(0, 4), bad]);
        assert!(matches!(
            CertifiedRemoval::open(&bytes),
            Err(MembershipError::Signature(_))
        ));
    }

    #[test]
    fn a_signer_that_is_not_a_member_does_not_count() {
        let w = world();
        let outsider = SecretIdentity::generate("validator-9").unwrap();
        let votes = vec![
            w.vote(0, 4),
            w.vote(1, 4),
            RemovalVote::sign("validator-5", 4, "validator-9", &outsider).unwrap(),
        ];
        let c =
            CertifiedRemoval::open(&CertifiedRemoval::encode("validator-5", 4, &votes)).unwrap();
        match c.check(&w.statement, &w.members(), 3) {
            Err(MembershipError::TooFew {
                counted: 2,
                refused,
                ..
            }) => {
                assert!(refused.contains("validator-9: not_member"), "{refused}")
            }
            other => panic!("{other:?}"),
        }
        // Nor the target itself, nor a member whose identity is unknown.
        let mut members = w.members();
        members.insert(id(1), None);
        let c = w.cert(&[0, 1, 4], 4);
        match c.check(&w.statement, &members, 3) {
            Err(MembershipError::TooFew {
                counted: 1,
                refused,
                ..
            }) => {
                assert!(refused.contains("validator-5: target"), "{refused}");
                assert!(
                    refused.contains("validator-2: unknown_identity"),
                    "{refused}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A target that is no member, or already removed.
        let mut members = w.members();
        members.remove("validator-5");
        assert!(matches!(
            w.cert(&[0, 1, 2], 4).check(&w.statement, &members, 3),
            Err(MembershipError::NotMember(_))
        ));
    }

    #[test]
    fn stale_or_unknown_statement_versions_are_refused() {
        let w = world();
        // Made under a statement we do not hold.
        assert!(matches!(
            w.cert(&[0, 1, 2], 5).check(&w.statement, &w.members(), 3),
            Err(MembershipError::Stale {
                offered: 5,
                current: 4,
                ..
            })
        ));
        // The operator readmitted validator-5 at version 4: a certificate
        // of version 3 no longer removes it, one of version 4 does.
        let mut s = w.statement.clone();
        s.readmitted.insert("validator-5".into(), 4);
        assert!(matches!(
            w.cert(&[0, 1, 2], 3).check(&s, &w.members(), 3),
            Err(MembershipError::Stale { offered: 3, .. })
        ));
        assert!(w.cert(&[0, 1, 2], 4).check(&s, &w.members(), 3).is_ok());
        // A statement without a policy time removes nobody by certificate.
        let mut none = w.statement.clone();
        none.dead_after_s = 0;
        assert!(matches!(
            w.cert(&[0, 1, 2], 4).check(&none, &w.members(), 3),
            Err(MembershipError::NoPolicyTime)
        ));
    }

    #[test]
    fn certificates_refuse_mixed_or_duplicate_votes_and_truncation() {
        let w = world();
        let twice = CertifiedRemoval::encode("validator-5", 4, &[w.vote(0, 4), w.vote(0, 4)]);
        assert!(CertifiedRemoval::open(&twice).is_err());
        let mixed = CertifiedRemoval::encode("validator-5", 4, &[w.vote(0, 4), w.vote(1, 3)]);
        assert!(CertifiedRemoval::open(&mixed).is_err());
        let other = RemovalVote::sign("validator-4", 4, &id(1), &w.keys[1]).unwrap();
        let wrong = CertifiedRemoval::encode("validator-5", 4, &[w.vote(0, 4), other]);
        assert!(CertifiedRemoval::open(&wrong).is_err());
        assert!(CertifiedRemoval::open(&CertifiedRemoval::encode("validator-5", 4, &[])).is_err());
        let good = CertifiedRemoval::encode("validator-5", 4, &[w.vote(0, 4)]);
        for cut in 0..good.len() {
            assert!(
                CertifiedRemoval::open(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(CertifiedRemoval::open(&longer).is_err());
    }
}
