//! The repair (enrolment) round: messages and the two state machines.
//!
//! Transport-agnostic: the peer API decodes a [`Message`], maps the
//! authenticated mTLS caller to its share index, and hands both here. The
//! arithmetic is `vault::repair`; the protocol is `docs/protocol.md`.
//!
//! One round rebuilds every lost share of a healing at once (up to the
//! size a sealed record can carry): the `k` targets share one set of
//! helpers, so each helper-to-helper message carries the pieces of every
//! target under one seal. That is `t(t-1)` seals for the pieces instead of
//! `k t(t-1)`, and HQC dominates a repair's cost.
//!
//! * [`Helper`]: one of the `t` holders helping. It validates the plan
//!   against its own manifest, sends `t-1` sealed messages, each with one
//!   piece of its masked contribution to every target, and once it holds
//!   `t` of them sends, for every target, the sum of that target's pieces,
//!   sealed to the target's replacement.
//! * [`Replacement`]: the new validator at one lost index. It adds the `t`
//!   sums and accepts the result only if it matches the manifest's share
//!   commitment for that index, so a lying helper is caught.
//!
//! Every input is untrusted: a message for another round, vault or epoch,
//! from a non-helper, a replay, or sealed to someone else is refused with a
//! typed error and leaves the state unchanged.
//!
//! Wire format `PQVR` v2: `"PQVR" u16 type:u8 round:[16]` then, for a plan
//! (type 1): `vault_id:[16] epoch:u64 helpers:var count:u8` and `count`
//! targets `index:u8 replacement:[32]`; for a piece (2) or a sum (3):
//! `from:u8 sealed:var` where `sealed` is a `PQVS` sealed shard. A piece's
//! share index is its receiving helper's and its value the `k` pieces, one
//! per target in plan order, each as long as a share; a sum's share index
//! is its target.

use std::collections::BTreeMap;
use thiserror::Error;
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use vault::manifest::{VaultId, VerifiedManifest};
use vault::seal::{self, SealError, SealedShard};
use vault::shamir::Share;
use vault::share::{share_commitment, ShareRecord, MAX_SHARE_LEN};
use zeroize::Zeroizing;

/// File/wire kind of repair messages.
pub const REPAIR_KIND: Kind = Kind {
    magic: *b"PQVR",
    name: "pqvault repair message",
    version: 2,
};

/// Largest sealed payload in a message.
const MAX_SEALED: usize = MAX_SHARE_LEN + 16 * 1024;

/// Why a repair message or step was refused.
#[derive(Debug, Error)]
pub enum RoundError {
    /// The bytes are not a well-formed message.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The plan is inconsistent with the manifest this validator holds.
    #[error("bad repair plan: {0}")]
    BadPlan(String),
    /// The message belongs to another round.
    #[error("message for another repair round")]
    WrongRound,
    /// The message's `from` is not the authenticated sender's index.
    #[error("message claims to come from share {claimed}, but the sender holds share {actual}")]
    Impersonation {
        /// Index in the message.
        claimed: u8,
        /// Index of the authenticated sender.
        actual: u8,
    },
    /// The sender is not one of the round's helpers.
    #[error("share {0} is not a helper in this round")]
    NotAHelper(u8),
    /// A message from this sender was already accepted (replay).
    #[error("already have a message from share {0} in this round (replay?)")]
    Duplicate(u8),
    /// The sealed payload is not addressed to this validator.
    #[error("sealed payload is not addressed to this validator")]
    NotForMe,
    /// The sealed payload could not be opened.
    #[error("sealed payload: {0}")]
    Seal(SealError),
    /// The sealed payload's vault, epoch or index is not the round's.
    #[error("sealed payload is for another {0}")]
    Context(&'static str),
    /// The assembled share does not match the manifest: some helper lied.
    #[error("assembled share does not match the manifest's commitment for share {0}")]
    CommitmentMismatch(u8),
    /// The arithmetic refused the inputs.
    #[error(transparent)]
    Arithmetic(#[from] vault::repair::RepairError),
    /// Message of the wrong type for this step.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
}

/// One lost share and where it is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Lost share index.
    pub index: u8,
    /// Identity fingerprint of the replacement validator.
    pub replacement: Fingerprint,
}

/// What the leader proposes: rebuild every target's share at its
/// replacement from the shares of `helpers` (exactly `t` of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Random round id.
    pub round: [u8; 16],
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch whose polynomial is used.
    pub epoch: u64,
    /// Lost shares, by increasing index, each with its own replacement.
    pub targets: Vec<Target>,
    /// Helper share indices, sorted.
    pub helpers: Vec<u8>,
}

impl Plan {
    /// A plan for a single lost share.
    pub fn single(
        round: [u8; 16],
        vault_id: VaultId,
        epoch: u64,
        target: u8,
        helpers: Vec<u8>,
        replacement: Fingerprint,
    ) -> Self {
        Plan {
            round,
            vault_id,
            epoch,
            targets: vec![Target {
                index: target,
                replacement,
            }],
            helpers,
        }
    }

    /// The index `replacement` is to receive, if it is one of the plan's.
    pub fn target_of(&self, replacement: &Fingerprint) -> Option<u8> {
        self.targets
            .iter()
            .find(|t| t.replacement == *replacement)
            .map(|t| t.index)
    }

    /// Target indices, in plan order.
    pub fn indices(&self) -> Vec<u8> {
        self.targets.iter().map(|t| t.index).collect()
    }

    /// The (replacement, index) pairs the plan names: each member gets at
    /// most one index of a polynomial (`crate::store::Store::add_named`).
    pub fn named(&self) -> Vec<(Fingerprint, u8)> {
        self.targets
            .iter()
            .map(|t| (t.replacement, t.index))
            .collect()
    }
}

/// A repair message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The plan, from the leader to helpers and the replacement.
    Plan(Plan),
    /// A piece of a helper's contribution, sealed to another helper.
    Piece {
        /// Round id.
        round: [u8; 16],
        /// Sender's share index.
        from: u8,
        /// `PQVS` sealed to the receiving helper.
        sealed: Vec<u8>,
    },
    /// A helper's partial sum, sealed to the replacement.
    Sum {
        /// Round id.
        round: [u8; 16],
        /// Sender's share index.
        from: u8,
        /// `PQVS` sealed to the replacement.
        sealed: Vec<u8>,
    },
}

impl Message {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(REPAIR_KIND);
        match self {
            Message::Plan(p) => {
                w.u8(1)
                    .bytes(&p.round)
                    .bytes(p.vault_id.as_bytes())
                    .u64(p.epoch)
                    .var_bytes(&p.helpers)
                    .u8(u8::try_from(p.targets.len()).unwrap_or(u8::MAX));
                for t in p.targets.iter().take(usize::from(u8::MAX)) {
                    w.u8(t.index).bytes(t.replacement.as_bytes());
                }
            }
            Message::Piece {
                round,
                from,
                sealed,
            }
            | Message::Sum {
                round,
                from,
                sealed,
            } => {
                let kind = if matches!(self, Message::Piece { .. }) {
                    2
                } else {
                    3
                };
                w.u8(kind).bytes(round).u8(*from).var_bytes(sealed);
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, REPAIR_KIND)?;
        let kind = r.u8("message type")?;
        let round = r.array("round id")?;
        let msg = match kind {
            1 => {
                let vault_id = VaultId::from_bytes(r.array("vault id")?);
                let epoch = r.u64("epoch")?;
                let helpers = r.var_bytes("helper list", 255)?.to_vec();
                let count = r.u8("target count")?;
                let mut targets = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    targets.push(Target {
                        index: r.u8("target index")?,
                        replacement: Fingerprint::from_bytes(r.array("replacement fingerprint")?),
                    });
                }
                Message::Plan(Plan {
                    round,
                    vault_id,
                    epoch,
                    targets,
                    helpers,
                })
            }
            2 | 3 => {
                let from = r.u8("sender index")?;
                let sealed = r.var_bytes("sealed payload", MAX_SEALED)?.to_vec();
                if kind == 2 {
                    Message::Piece {
                        round,
                        from,
                        sealed,
                    }
                } else {
                    Message::Sum {
                        round,
                        from,
                        sealed,
                    }
                }
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

impl Plan {
    /// Checks the plan against the manifest of its epoch.
    fn check(&self, m: &VerifiedManifest) -> Result<(), RoundError> {
        let b = m.body();
        let bad = |why: String| Err(RoundError::BadPlan(why));
        if self.vault_id != b.vault_id {
            return bad(format!("vault {} is not {}", self.vault_id, b.vault_id));
        }
        if self.epoch != b.epoch {
            return bad(format!(
                "epoch {} is not the current epoch {}",
                self.epoch, b.epoch
            ));
        }
        if self.helpers.len() != usize::from(b.threshold) {
            return bad(format!(
                "{} helpers for threshold {}",
                self.helpers.len(),
                b.threshold
            ));
        }
        if !self.helpers.windows(2).all(|w| w[0] < w[1]) {
            return bad("helper list is not sorted and distinct".into());
        }
        if self.targets.is_empty() {
            return bad("no target".into());
        }
        if !self.targets.windows(2).all(|w| w[0].index < w[1].index) {
            return bad("targets are not sorted and distinct".into());
        }
        for (k, t) in self.targets.iter().enumerate() {
            if self.helpers.contains(&t.index) {
                return bad(format!("target {} is also a helper", t.index));
            }
            if self.targets[..k]
                .iter()
                .any(|o| o.replacement == t.replacement)
            {
                return bad(format!(
                    "two targets share the replacement of target {}",
                    t.index
                ));
            }
            if b.shards
                .iter()
                .any(|e| e.index != t.index && e.recipient == t.replacement)
            {
                return bad(format!(
                    "the replacement for target {} already holds another share",
                    t.index
                ));
            }
        }
        for i in self
            .helpers
            .iter()
            .chain(self.targets.iter().map(|t| &t.index))
        {
            if b.entry(*i).is_none() {
                return bad(format!("share {i} is not in the manifest"));
            }
        }
        Ok(())
    }
}

/// Checks a record's vault, epoch and share index against the round's.
fn context_matches(plan: &Plan, rec: &ShareRecord, index: u8) -> Result<(), RoundError> {
    if rec.vault_id != plan.vault_id {
        return Err(RoundError::Context("vault"));
    }
    if rec.epoch != plan.epoch {
        return Err(RoundError::Context("epoch"));
    }
    if rec.share.index != index {
        return Err(RoundError::Context("share index"));
    }
    Ok(())
}

fn open(sealed: &[u8], key: &SecretIdentity) -> Result<ShareRecord, RoundError> {
    let shard = SealedShard::parse(sealed).map_err(RoundError::Seal)?;
    if shard.header.recipient != key.public().fingerprint() {
        return Err(RoundError::NotForMe);
    }
    shard.open(key).map_err(RoundError::Seal)
}

fn sealed_value(
    plan: &Plan,
    m: &VerifiedManifest,
    index: u8,
    value: Zeroizing<Vec<u8>>,
    to: &PublicIdentity,
) -> Result<Vec<u8>, RoundError> {
    let rec = ShareRecord {
        vault_id: plan.vault_id,
        epoch: plan.epoch,
        threshold: m.body().threshold,
        n: m.body().n,
        share: Share { index, value },
    };
    seal::seal(&rec, m.body().suite, to).map_err(RoundError::Seal)
}

/// A helper's side of one round.
pub struct Helper {
    plan: Plan,
    me: u8,
    /// Length of one share (every share of a vault has the same length).
    share_len: usize,
    /// Per sending helper: its pieces for every target, concatenated.
    pieces: BTreeMap<u8, Zeroizing<Vec<u8>>>,
    done: bool,
}

/// Outgoing message: the share index it goes to (a helper for a piece, a
/// target for a sum), and the message.
pub type Outgoing = (u8, Message);

impl Helper {
    /// The helpers whose pieces have not reached us (in plan order): what
    /// a stalled round reports, so the next attempt can leave them out.
    pub fn missing(&self) -> Vec<u8> {
        self.plan
            .helpers
            .iter()
            .copied()
            .filter(|j| !self.pieces.contains_key(j))
            .collect()
    }

    /// Starts helping: validates `plan` against `manifest` and our share,
    /// and returns the pieces to send (one message per other helper).
    /// `identities` must hold every other helper's public identity; each is
    /// checked against the manifest's fingerprint for its index.
    pub fn start(
        plan: Plan,
        manifest: &VerifiedManifest,
        mine: &ShareRecord,
        identities: &BTreeMap<u8, PublicIdentity>,
    ) -> Result<(Helper, Vec<Outgoing>), RoundError> {
        plan.check(manifest)?;
        let me = mine.share.index;
        if !plan.helpers.contains(&me) {
            return Err(RoundError::NotAHelper(me));
        }
        if mine.vault_id != plan.vault_id || mine.epoch != plan.epoch {
            return Err(RoundError::BadPlan(
                "our share is not of the plan's vault and epoch".into(),
            ));
        }
        let share_len = mine.share.value.len();
        if plan.targets.len().saturating_mul(share_len) > MAX_SHARE_LEN {
            return Err(RoundError::BadPlan(format!(
                "{} targets of {share_len}-byte shares do not fit one sealed record",
                plan.targets.len()
            )));
        }
        // For every helper (in plan order), its pieces of every target.
        let t = plan.helpers.len();
        let mut bundles: Vec<Zeroizing<Vec<u8>>> = (0..t)
            .map(|_| Zeroizing::new(Vec::with_capacity(plan.targets.len() * share_len)))
            .collect();
        for target in &plan.targets {
            let contribution =
                vault::repair::contribution(&mine.share, &plan.helpers, target.index)?;
            let pieces = vault::repair::split_additive(&contribution, t)?;
            for (bundle, piece) in bundles.iter_mut().zip(pieces.iter()) {
                bundle.extend_from_slice(piece);
            }
        }
        let mut out = Vec::new();
        let mut own = None;
        for (&j, bundle) in plan.helpers.iter().zip(bundles) {
            if j == me {
                own = Some(bundle);
                continue;
            }
            let to = identities
                .get(&j)
                .ok_or_else(|| RoundError::BadPlan(format!("no identity for helper {j}")))?;
            let expected = manifest.body().entry(j).map(|e| e.recipient);
            if expected != Some(to.fingerprint()) {
                return Err(RoundError::BadPlan(format!(
                    "identity given for helper {j} is not its manifest recipient"
                )));
            }
            out.push((
                j,
                Message::Piece {
                    round: plan.round,
                    from: me,
                    sealed: sealed_value(&plan, manifest, j, bundle, to)?,
                },
            ));
        }
        let mut h = Helper {
            plan,
            me,
            share_len,
            pieces: BTreeMap::new(),
            done: false,
        };
        if let Some(p) = own {
            h.pieces.insert(me, p);
        }
        Ok((h, out))
    }

    /// Accepts the pieces from helper `sender` (authenticated index). Once
    /// `t` are in, returns for every target the sum of its pieces, sealed
    /// to its replacement (`replacements`: target index to identity).
    pub fn receive_piece(
        &mut self,
        sender: u8,
        msg: &Message,
        manifest: &VerifiedManifest,
        key: &SecretIdentity,
        replacements: &BTreeMap<u8, PublicIdentity>,
    ) -> Result<Vec<Outgoing>, RoundError> {
        let Message::Piece {
            round,
            from,
            sealed,
        } = msg
        else {
            return Err(RoundError::Unexpected("non-piece"));
        };
        if *round != self.plan.round {
            return Err(RoundError::WrongRound);
        }
        if *from != sender {
            return Err(RoundError::Impersonation {
                claimed: *from,
                actual: sender,
            });
        }
        if !self.plan.helpers.contains(&sender) || sender == self.me {
            return Err(RoundError::NotAHelper(sender));
        }
        if self.pieces.contains_key(&sender) {
            return Err(RoundError::Duplicate(sender));
        }
        let rec = open(sealed, key)?;
        context_matches(&self.plan, &rec, self.me)?;
        if rec.share.value.len() != self.plan.targets.len() * self.share_len {
            return Err(RoundError::Context("piece length"));
        }
        self.pieces.insert(sender, rec.share.value.clone());
        if self.done || self.pieces.len() < self.plan.helpers.len() {
            return Ok(Vec::new());
        }
        for t in &self.plan.targets {
            if replacements.get(&t.index).map(|p| p.fingerprint()) != Some(t.replacement) {
                return Err(RoundError::BadPlan(format!(
                    "replacement identity for target {} does not match the plan",
                    t.index
                )));
            }
        }
        let mut out = Vec::with_capacity(self.plan.targets.len());
        for (k, t) in self.plan.targets.iter().enumerate() {
            let span = k * self.share_len..(k + 1) * self.share_len;
            let parts: Vec<&[u8]> = self.pieces.values().map(|v| &v[span.clone()]).collect();
            let sum = vault::repair::sum_pieces(&parts)?;
            let to = replacements
                .get(&t.index)
                .ok_or_else(|| RoundError::BadPlan(format!("no replacement for {}", t.index)))?;
            out.push((
                t.index,
                Message::Sum {
                    round: self.plan.round,
                    from: self.me,
                    sealed: sealed_value(&self.plan, manifest, t.index, sum, to)?,
                },
            ));
        }
        self.done = true;
        Ok(out)
    }
}

/// The replacement's side of one round.
pub struct Replacement {
    plan: Plan,
    /// The share index rebuilt here.
    target: u8,
    manifest: VerifiedManifest,
    sums: BTreeMap<u8, Zeroizing<Vec<u8>>>,
}

impl Replacement {
    /// Joins a round as one of the replacements named in `plan`.
    pub fn new(
        plan: Plan,
        manifest: VerifiedManifest,
        key: &SecretIdentity,
    ) -> Result<Self, RoundError> {
        plan.check(&manifest)?;
        let target = plan.target_of(&key.public().fingerprint()).ok_or_else(|| {
            RoundError::BadPlan("this validator is not a replacement in the plan".into())
        })?;
        Ok(Replacement {
            plan,
            target,
            manifest,
            sums: BTreeMap::new(),
        })
    }

    /// The share index rebuilt here.
    pub fn target(&self) -> u8 {
        self.target
    }

    /// Accepts a partial sum from helper `sender`. Returns the rebuilt share
    /// (of the plan's epoch) once all `t` sums are in and it matches the
    /// manifest's commitment.
    pub fn receive_sum(
        &mut self,
        sender: u8,
        msg: &Message,
        key: &SecretIdentity,
    ) -> Result<Option<ShareRecord>, RoundError> {
        let Message::Sum {
            round,
            from,
            sealed,
        } = msg
        else {
            return Err(RoundError::Unexpected("non-sum"));
        };
        if *round != self.plan.round {
            return Err(RoundError::WrongRound);
        }
        if *from != sender {
            return Err(RoundError::Impersonation {
                claimed: *from,
                actual: sender,
            });
        }
        if !self.plan.helpers.contains(&sender) {
            return Err(RoundError::NotAHelper(sender));
        }
        if self.sums.contains_key(&sender) {
            return Err(RoundError::Duplicate(sender));
        }
        let rec = open(sealed, key)?;
        context_matches(&self.plan, &rec, self.target)?;
        self.sums.insert(sender, rec.share.value.clone());
        if self.sums.len() < self.plan.helpers.len() {
            return Ok(None);
        }
        let parts: Vec<&[u8]> = self.sums.values().map(|v| &v[..]).collect();
        let share = vault::repair::assemble(self.target, &parts)?;
        let b = self.manifest.body();
        let expected = b.entry(self.target).map(|e| e.share_commitment);
        let got = share_commitment(&b.vault_id, b.epoch, share.index, &share.value);
        if expected != Some(got) {
            // Start over: one of the sums was wrong.
            self.sums.clear();
            return Err(RoundError::CommitmentMismatch(self.target));
        }
        Ok(Some(ShareRecord {
            vault_id: b.vault_id,
            epoch: b.epoch,
            threshold: b.threshold,
            n: b.n,
            share,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::create::{create, NewVault};
    use vault::manifest::Manifest;
    use vault::policy::ThresholdSpec;

    struct World {
        keys: Vec<SecretIdentity>,
        replacement: SecretIdentity,
        manifest: VerifiedManifest,
        records: Vec<ShareRecord>,
    }

    /// A 3-of-5 vault; share 4 will be lost.
    fn world() -> World {
        let op = SecretIdentity::generate("op").unwrap();
        let keys: Vec<SecretIdentity> = (1..=5)
            .map(|i| SecretIdentity::generate(&format!("v{i}")).unwrap())
            .collect();
        let pubs: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
        let v = create(&NewVault {
            initial_keys: &[],
            secret: Some(b"repair me"),
            recipients: &pubs,
            threshold: ThresholdSpec::Exact(3),
            signer: &op,
            created_unix: 1,
        })
        .unwrap();
        let manifest = Manifest::decode(&v.manifest).unwrap().verify(None).unwrap();
        let records = v
            .shards
            .iter()
            .zip(&keys)
            .map(|(s, k)| SealedShard::parse(&s.bytes).unwrap().open(k).unwrap())
            .collect();
        World {
            keys,
            replacement: SecretIdentity::generate("v6").unwrap(),
            manifest,
            records,
        }
    }

    fn plan(w: &World) -> Plan {
        Plan::single(
            [9; 16],
            w.manifest.body().vault_id,
            1,
            4,
            vec![1, 2, 5],
            w.replacement.public().fingerprint(),
        )
    }

    fn replacements(w: &World) -> BTreeMap<u8, PublicIdentity> {
        BTreeMap::from([(4, w.replacement.public().clone())])
    }

    fn identities(w: &World) -> BTreeMap<u8, PublicIdentity> {
        (1..=5u8)
            .map(|i| (i, w.keys[usize::from(i) - 1].public().clone()))
            .collect()
    }

    /// Runs the round; returns the rebuilt share and all messages seen.
    /// Messages on the wire: (from, to, message).
    type Wire = Vec<(u8, u8, Message)>;

    /// Starts every helper of `p`; returns them and their piece messages.
    fn start_all(w: &World, p: &Plan) -> (BTreeMap<u8, Helper>, Wire) {
        let ids = identities(w);
        let mut helpers = BTreeMap::new();
        let mut wire = Vec::new();
        for &i in &p.helpers {
            let (h, out) =
                Helper::start(p.clone(), &w.manifest, &w.records[usize::from(i) - 1], &ids)
                    .unwrap();
            helpers.insert(i, h);
            wire.extend(out.into_iter().map(|(to, m)| (i, to, m)));
        }
        (helpers, wire)
    }

    fn run(w: &World) -> (ShareRecord, Wire) {
        let p = plan(w);
        let (mut helpers, wire) = start_all(w, &p);
        let mut rep = Replacement::new(p.clone(), w.manifest.clone(), &w.replacement).unwrap();
        let mut result = None;
        let mut seen = wire.clone();
        for (from, to, m) in wire {
            let key = &w.keys[usize::from(to) - 1];
            let sums = helpers
                .get_mut(&to)
                .unwrap()
                .receive_piece(from, &m, &w.manifest, key, &replacements(w))
                .unwrap();
            for (target, sum) in sums {
                assert_eq!(target, 4);
                seen.push((to, 6, sum.clone()));
                if let Some(r) = rep.receive_sum(to, &sum, &w.replacement).unwrap() {
                    result = Some(r);
                }
            }
        }
        (result.expect("round completed"), seen)
    }

    #[test]
    fn the_round_rebuilds_the_lost_share_and_nothing_else_reveals_it() {
        let w = world();
        let (share, seen) = run(&w);
        assert_eq!(share.share.index, 4);
        assert_eq!(&share.share.value[..], &w.records[3].share.value[..]);
        // 3 helpers x 2 pieces + 3 sums, every one sealed: no message
        // carries the lost share, a contribution or a helper's share in clear.
        assert_eq!(seen.len(), 9);
        for (_, _, m) in &seen {
            let bytes = m.encode();
            for secret in [&w.records[3].share.value[..], &w.records[0].share.value[..]] {
                assert!(!bytes.windows(secret.len()).any(|x| x == secret));
            }
            assert_eq!(&Message::decode(&bytes).unwrap(), m, "wire round trip");
        }
    }

    /// What a message's plaintext must never be: any helper's share, or a
    /// helper's Lagrange contribution to the target (from which, with the
    /// public coefficient, its share follows).
    fn reveals_a_helper_share(w: &World, p: &Plan, value: &[u8]) -> bool {
        p.helpers.iter().any(|&i| {
            let share = &w.records[usize::from(i) - 1].share;
            let c = vault::repair::contribution(share, &p.helpers, 4).unwrap();
            value == &share.value[..] || value == &c[..]
        })
    }

    /// Masking, checked on what is actually decrypted: every piece a helper
    /// opens and every sum the replacement opens. The same check run on an
    /// unmasked contribution (what a helper that skipped masking would
    /// send) flags it, so this test fails if masking is skipped.
    #[test]
    fn decrypted_pieces_and_sums_reveal_no_helper_share() {
        let w = world();
        let p = plan(&w);
        let (_, seen) = run(&w);
        let mut opened = 0;
        for (from, to, m) in &seen {
            let (Message::Piece { sealed, .. } | Message::Sum { sealed, .. }) = m else {
                continue;
            };
            let key = if *to == 6 {
                &w.replacement
            } else {
                &w.keys[usize::from(*to) - 1]
            };
            let rec = open(sealed, key).unwrap();
            assert!(
                !reveals_a_helper_share(&w, &p, &rec.share.value),
                "message from {from} to {to} reveals a helper's share"
            );
            opened += 1;
        }
        assert_eq!(opened, 9);
        // The check is not vacuous: an unmasked contribution is caught.
        let raw = vault::repair::contribution(&w.records[0].share, &p.helpers, 4).unwrap();
        assert!(reveals_a_helper_share(&w, &p, &raw));
    }

    #[test]
    fn bad_plans_are_refused() {
        let w = world();
        let ids = identities(&w);
        let mine = &w.records[0];
        let mut p = plan(&w);
        p.helpers = vec![1, 2];
        assert!(matches!(
            Helper::start(p, &w.manifest, mine, &ids),
            Err(RoundError::BadPlan(_))
        ));
        let mut p = plan(&w);
        p.helpers = vec![1, 2, 4];
        assert!(matches!(
            Helper::start(p, &w.manifest, mine, &ids),
            Err(RoundError::BadPlan(_))
        ));
        let mut p = plan(&w);
        p.epoch = 2;
        assert!(matches!(
            Helper::start(p, &w.manifest, mine, &ids),
            Err(RoundError::BadPlan(_))
        ));
        let mut p = plan(&w);
        p.targets[0].replacement = w.keys[1].public().fingerprint();
        assert!(matches!(
            Helper::start(p, &w.manifest, mine, &ids),
            Err(RoundError::BadPlan(_))
        ));
        // No target; targets out of order or repeated; one replacement twice.
        let other = SecretIdentity::generate("v7")
            .unwrap()
            .public()
            .fingerprint();
        let t = |index, replacement| Target { index, replacement };
        let r6 = w.replacement.public().fingerprint();
        for targets in [
            vec![],
            vec![t(4, r6), t(3, other)],
            vec![t(4, r6), t(4, other)],
            vec![t(3, r6), t(4, r6)],
            vec![t(4, r6), t(9, other)],
        ] {
            let p = Plan {
                targets,
                helpers: vec![1, 2, 5],
                ..plan(&w)
            };
            assert!(
                matches!(
                    Helper::start(p.clone(), &w.manifest, mine, &ids),
                    Err(RoundError::BadPlan(_))
                ),
                "{p:?}"
            );
        }
        // Not a helper.
        assert!(matches!(
            Helper::start(plan(&w), &w.manifest, &w.records[2], &ids),
            Err(RoundError::NotAHelper(3))
        ));
        // A wrong identity for a helper (would seal pieces to an outsider).
        let mut bad = ids.clone();
        bad.insert(2, w.replacement.public().clone());
        assert!(matches!(
            Helper::start(plan(&w), &w.manifest, mine, &bad),
            Err(RoundError::BadPlan(_))
        ));
        // The replacement must be the one named.
        assert!(Replacement::new(plan(&w), w.manifest.clone(), &w.keys[4]).is_err());
    }

    #[test]
    fn bad_messages_are_refused_and_change_nothing() {
        let w = world();
        let p = plan(&w);
        let ids = identities(&w);
        let (mut h1, _) = Helper::start(p.clone(), &w.manifest, &w.records[0], &ids).unwrap();
        let (_, out2) = Helper::start(p.clone(), &w.manifest, &w.records[1], &ids).unwrap();
        let to1 = out2.iter().find(|(to, _)| *to == 1).unwrap().1.clone();
        let to5 = out2.iter().find(|(to, _)| *to == 5).unwrap().1.clone();
        let k1 = &w.keys[0];
        let r = &replacements(&w);
        let m = &w.manifest;

        // Sender authenticated as 3 (not a helper) but claiming 2.
        assert!(matches!(
            h1.receive_piece(3, &to1, m, k1, r),
            Err(RoundError::Impersonation {
                claimed: 2,
                actual: 3
            })
        ));
        // Another round.
        let mut other = to1.clone();
        if let Message::Piece { round, .. } = &mut other {
            round[0] ^= 1;
        }
        assert!(matches!(
            h1.receive_piece(2, &other, m, k1, r),
            Err(RoundError::WrongRound)
        ));
        // A piece sealed to helper 5 delivered to helper 1.
        assert!(matches!(
            h1.receive_piece(2, &to5, m, k1, r),
            Err(RoundError::NotForMe)
        ));
        // A tampered sealed payload.
        let mut bad = to1.clone();
        if let Message::Piece { sealed, .. } = &mut bad {
            let last = sealed.len() - 1;
            sealed[last] ^= 1;
        }
        assert!(matches!(
            h1.receive_piece(2, &bad, m, k1, r),
            Err(RoundError::Seal(_))
        ));
        // The right piece is accepted once; a replay is refused.
        assert!(h1.receive_piece(2, &to1, m, k1, r).unwrap().is_empty());
        assert!(matches!(
            h1.receive_piece(2, &to1, m, k1, r),
            Err(RoundError::Duplicate(2))
        ));
        // A sum where a piece is expected.
        let sum = Message::Sum {
            round: p.round,
            from: 2,
            sealed: vec![],
        };
        assert!(matches!(
            h1.receive_piece(2, &sum, m, k1, r),
            Err(RoundError::Unexpected(_))
        ));

        // Truncated and oversized wire messages.
        let enc = to1.encode();
        assert!(Message::decode(&enc[..enc.len() - 1]).is_err());
        let mut huge = Writer::new(REPAIR_KIND);
        huge.u8(2).bytes(&[0; 16]).u8(1).u32(u32::MAX);
        assert!(matches!(
            Message::decode(&huge.finish()),
            Err(FormatError::TooLong { .. })
        ));
        assert!(Message::decode(b"PQVR\x00\x01\x07").is_err());
    }

    #[test]
    fn a_lying_helper_is_caught_by_the_commitment() {
        let w = world();
        let p = plan(&w);
        let ids = identities(&w);
        // Helper 5 contributes from a corrupted share.
        let mut forged = ShareRecord::decode(&w.records[4].encode()).unwrap();
        forged.share.value[0] ^= 1;
        let mut helpers = BTreeMap::new();
        let mut wire = Vec::new();
        for (&i, rec) in p
            .helpers
            .iter()
            .zip([&w.records[0], &w.records[1], &forged])
        {
            let (h, out) = Helper::start(p.clone(), &w.manifest, rec, &ids).unwrap();
            helpers.insert(i, h);
            wire.extend(out.into_iter().map(|(to, m)| (i, to, m)));
        }
        let mut rep = Replacement::new(p, w.manifest.clone(), &w.replacement).unwrap();
        let mut outcome = None;
        for (from, to, m) in wire {
            let key = &w.keys[usize::from(to) - 1];
            for (_, sum) in helpers
                .get_mut(&to)
                .unwrap()
                .receive_piece(from, &m, &w.manifest, key, &replacements(&w))
                .unwrap()
            {
                match rep.receive_sum(to, &sum, &w.replacement) {
                    Ok(None) => {}
                    other => outcome = Some(other),
                }
            }
        }
        assert!(matches!(
            outcome,
            Some(Err(RoundError::CommitmentMismatch(4)))
        ));
    }

    #[test]
    fn one_round_rebuilds_two_lost_shares_with_one_seal_per_helper_pair() {
        let w = world();
        let second = SecretIdentity::generate("v7").unwrap();
        // Shares 3 and 4 lost; helpers 1, 2, 5; replacements v6 and v7.
        let p = Plan {
            targets: vec![
                Target {
                    index: 3,
                    replacement: second.public().fingerprint(),
                },
                Target {
                    index: 4,
                    replacement: w.replacement.public().fingerprint(),
                },
            ],
            ..plan(&w)
        };
        let reps = BTreeMap::from([
            (3, second.public().clone()),
            (4, w.replacement.public().clone()),
        ]);
        let (mut helpers, wire) = start_all(&w, &p);
        // t(t-1) piece messages for both targets together, not 2 t(t-1).
        assert_eq!(wire.len(), 6);
        let mut r3 = Replacement::new(p.clone(), w.manifest.clone(), &second).unwrap();
        let mut r4 = Replacement::new(p.clone(), w.manifest.clone(), &w.replacement).unwrap();
        assert_eq!((r3.target(), r4.target()), (3, 4));
        let (mut got3, mut got4, mut sums) = (None, None, 0);
        for (from, to, m) in wire {
            let key = &w.keys[usize::from(to) - 1];
            for (target, sum) in helpers
                .get_mut(&to)
                .unwrap()
                .receive_piece(from, &m, &w.manifest, key, &reps)
                .unwrap()
            {
                sums += 1;
                // A sum for the other replacement is not for this one.
                let (mine, other, other_key) = match target {
                    3 => (&mut r3, &mut r4, &w.replacement),
                    _ => (&mut r4, &mut r3, &second),
                };
                assert!(other.receive_sum(to, &sum, other_key).is_err());
                let key = if target == 3 { &second } else { &w.replacement };
                if let Some(rec) = mine.receive_sum(to, &sum, key).unwrap() {
                    match target {
                        3 => got3 = Some(rec),
                        _ => got4 = Some(rec),
                    }
                }
            }
        }
        assert_eq!(sums, 6);
        assert_eq!(
            &got3.unwrap().share.value[..],
            &w.records[2].share.value[..]
        );
        assert_eq!(
            &got4.unwrap().share.value[..],
            &w.records[3].share.value[..]
        );
    }

    /// `validator/tests/vectors/pqvr-v2-plan.hex`: a two-target plan laid
    /// out by hand from `docs/formats.md`, not by the encoder.
    #[test]
    fn plan_matches_the_checked_in_vector() {
        let hex_text = include_str!("../tests/vectors/pqvr-v2-plan.hex");
        let bytes = hex::decode(hex_text.trim()).unwrap();
        let plan = Plan {
            round: [0x11; 16],
            vault_id: VaultId::from_bytes([0x22; 16]),
            epoch: 7,
            targets: vec![
                Target {
                    index: 3,
                    replacement: Fingerprint::from_bytes([0x33; 32]),
                },
                Target {
                    index: 4,
                    replacement: Fingerprint::from_bytes([0x44; 32]),
                },
            ],
            helpers: vec![1, 2, 5],
        };
        assert_eq!(Message::Plan(plan.clone()).encode(), bytes);
        assert_eq!(Message::decode(&bytes).unwrap(), Message::Plan(plan));
    }
}
