//! Whether an input may act: the one place that decides.
//!
//! [`authorize`] decides whether a certified proposal may make this
//! validator help, deal or receive; [`judge`] decides whether this
//! validator votes for a proposal; [`judge_abort`] and [`authorize_abort`]
//! whether it gives up an attempt. Both are pure: the chain, the rules and
//! this validator's own view come in as values, a decision comes out. The
//! drivers (`crate::proposals`) fetch those values and carry the decision
//! out; unit tests feed every attack in directly.

use super::proposal::{
    Abort, Action, CertifiedAbort, CertifiedProposal, Proposal, Vote, ABORT_DOMAIN, VOTE_DOMAIN,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;
use vault::identity::Fingerprint;
use vault::manifest::ManifestBody;
use vault::policy::Policy;

/// How long a vote for one attempt blocks a vote for another attempt of
/// the same epoch: longer than a leader spends on an attempt's rounds
/// (15 to 20 s) before it gives up on it.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(25);

/// The verified chain of the vault a proposal is about.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a> {
    /// Every manifest body from genesis to the current epoch, in order
    /// (the last one is the current epoch's). Verified by the caller.
    pub history: &'a [ManifestBody],
}

impl Chain<'_> {
    /// The current epoch's manifest body.
    pub fn current(&self) -> Option<&ManifestBody> {
        self.history.last()
    }
}

/// Rules the operator sets (`vault::governance`): how many members may
/// lie, the threshold floor and the shrink rule. A vault without a signed
/// policy runs with f = 0, floor 2 and the validator's configured rule.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How a shrink chooses t' for n' holders (never below `floor`).
    pub policy: Policy,
    /// Members that may lie.
    pub f: u8,
    /// Lowest threshold a transition may reach.
    pub floor: u8,
}

impl Rules {
    /// The rules of a vault without a signed policy: f = 0, floor 2, and
    /// the validator's configured shrink rule (`heal.policy`).
    pub fn legacy(shrink: Policy) -> Self {
        Rules {
            policy: shrink,
            f: 0,
            floor: 2,
        }
    }

    /// The rules of a signed transition policy.
    pub fn from_policy(p: &vault::governance::TransitionPolicy) -> Self {
        Rules {
            policy: p.shrink,
            f: p.f,
            floor: p.floor,
        }
    }

    /// Votes (and certificate signatures) a `t`-of-`n` epoch needs:
    /// `max(t, ceil((n + f + 1) / 2))`.
    pub fn quorum(&self, t: u8, n: u8) -> usize {
        usize::from(vault::governance::quorum(t, n, self.f))
    }

    /// The threshold a shrink to `n_new` holders takes, if any.
    pub fn shrink_threshold(&self, n_new: u8) -> Option<u8> {
        vault::governance::shrink_threshold(self.policy, self.floor, n_new)
    }
}

/// Why an input may not act. Each maps to a status and a bounded metric
/// reason (`pqvault_transition_refusals_total{reason}`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The proposal is for another vault or epoch than ours.
    #[error("proposal is for epoch {found}, this vault is at epoch {current}")]
    Stale {
        /// Epoch proposed from.
        found: u64,
        /// Our current epoch.
        current: u64,
    },
    /// We hold no verified chain of this vault.
    #[error("no verified chain of this vault here")]
    NoChain,
    /// A plan sent on its own, outside a certified proposal.
    #[error("a plan acts only inside a certified proposal (POST /v1/transition); refused")]
    BarePlan,
    /// Too few valid votes of distinct holders.
    #[error("not certified: {valid} valid votes of distinct holders, {needed} needed")]
    Uncertified {
        /// Valid votes.
        valid: usize,
        /// Quorum.
        needed: usize,
    },
    /// A vote is not a holder's or its signature does not verify.
    #[error("bad vote: {0}")]
    BadVote(String),
    /// The plans are malformed for this epoch.
    #[error("plan refused: {0}")]
    Plan(String),
    /// The plan would give a member a second share of one polynomial.
    #[error(
        "replacement {replacement} already held or was given share {had} of this vault; it may never receive share {asked} too"
    )]
    ReplacementReused {
        /// Replacement (short fingerprint).
        replacement: String,
        /// Index it held or was named for.
        had: u8,
        /// Index asked for.
        asked: u8,
    },
    /// The new threshold breaks the rules.
    #[error("policy: {0}")]
    Policy(String),
    /// A target or left-out holder is not lost in our own view.
    #[error("share {0} is not lost in this validator's own view (alive, or not dead for the grace period)")]
    NotLost(u8),
    /// A shrink before its holders were lost for long enough.
    #[error("holders left out have been lost for {waited_ms} ms, a shrink waits {needed_ms} ms for spares")]
    TooEarly {
        /// Waited so far.
        waited_ms: u64,
        /// Needed.
        needed_ms: u64,
    },
    /// We voted for another proposal of this epoch recently.
    #[error("already voted for attempt {attempt} of this epoch {age_ms} ms ago; a new attempt waits {timeout_ms} ms")]
    AlreadyVoted {
        /// Attempt voted for.
        attempt: u32,
        /// How long ago.
        age_ms: u64,
        /// [`ATTEMPT_TIMEOUT`].
        timeout_ms: u64,
    },
    /// We gave this attempt up (signed its abort, or saw it fail): its
    /// proposal never acts here again.
    #[error("attempt {0} of this epoch was aborted here; its proposal may not act")]
    Aborted(u32),
    /// The proposer was convicted of lying about this vault (it split the
    /// signers, or dealt badly): it leads nothing here any more.
    #[error("the proposer was convicted of lying about this vault; it leads nothing here")]
    ProposerConvicted,
    /// We do not sign this abort.
    #[error("abort refused: {0}")]
    AbortRefused(String),
    /// A certified repair in which we neither help, receive, nor hold a
    /// share to witness it with.
    #[error("we have no part in this proposal")]
    NoPart,
}

impl Refusal {
    /// The metric reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Stale { .. } | Refusal::NoChain => "stale",
            Refusal::Uncertified { .. } | Refusal::BarePlan => "uncertified",
            Refusal::BadVote(_) => "bad_certificate",
            Refusal::Plan(_) => "plan_mismatch",
            Refusal::ReplacementReused { .. } => "replacement_reused",
            Refusal::Policy(_) => "policy",
            Refusal::NotLost(_) | Refusal::TooEarly { .. } | Refusal::AlreadyVoted { .. } => {
                "vote_refused"
            }
            Refusal::Aborted(_) => "aborted",
            Refusal::ProposerConvicted => "proposer_convicted",
            Refusal::AbortRefused(_) => "abort_refused",
            Refusal::NoPart => "no_part",
        }
    }

    /// The HTTP status a driver answers with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Stale { .. } | Refusal::AlreadyVoted { .. } | Refusal::NotLost(_) => 409,
            Refusal::TooEarly { .. } | Refusal::Aborted(_) | Refusal::AbortRefused(_) => 409,
            Refusal::NoChain => 404,
            Refusal::Plan(_) | Refusal::Policy(_) | Refusal::NoPart => 422,
            Refusal::Uncertified { .. }
            | Refusal::BarePlan
            | Refusal::BadVote(_)
            | Refusal::ReplacementReused { .. }
            | Refusal::ProposerConvicted => 403,
        }
    }
}

fn plan(why: impl Into<String>) -> Refusal {
    Refusal::Plan(why.into())
}

fn current<'a>(chain: &Chain<'a>, p: &Proposal) -> Result<&'a ManifestBody, Refusal> {
    current_of(chain, &p.vault_id, p.from_epoch)
}

fn current_of<'a>(
    chain: &Chain<'a>,
    vault: &vault::manifest::VaultId,
    epoch: u64,
) -> Result<&'a ManifestBody, Refusal> {
    let c = chain.history.last().ok_or(Refusal::NoChain)?;
    if *vault != c.vault_id {
        return Err(Refusal::NoChain);
    }
    if epoch != c.epoch {
        return Err(Refusal::Stale {
            found: epoch,
            current: c.epoch,
        });
    }
    Ok(c)
}

/// Strictly increasing, distinct, every index in the manifest.
fn indices_ok(xs: &[u8], c: &ManifestBody) -> bool {
    xs.windows(2).all(|w| w[0] < w[1]) && xs.iter().all(|i| c.entry(*i).is_some())
}

/// Checks the proposal's plans against the chain: who may help, deal or
/// receive, and what t' may be. Says nothing about votes or views.
pub fn check_action(chain: &Chain, rules: &Rules, p: &Proposal) -> Result<(), Refusal> {
    let c = current(chain, p)?;
    match &p.action {
        Action::Repair(plans) => check_repair(chain, c, plans),
        Action::Reshare(x) => check_reshare(c, rules, x),
    }
}

fn check_repair(
    chain: &Chain,
    c: &ManifestBody,
    plans: &[crate::repair::Plan],
) -> Result<(), Refusal> {
    if plans.is_empty() {
        return Err(plan("a repair proposal needs at least one plan"));
    }
    let (mut targets, mut replacements, mut rounds) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for x in plans {
        if !rounds.insert(x.round) {
            return Err(plan("two plans share a round id"));
        }
        if x.helpers.len() != usize::from(c.threshold) || !indices_ok(&x.helpers, c) {
            return Err(plan("helpers must be t distinct share indices, sorted"));
        }
        let idx = x.indices();
        if idx.is_empty() || !indices_ok(&idx, c) {
            return Err(plan(
                "targets must be distinct share indices of the manifest, sorted",
            ));
        }
        for t in &x.targets {
            if x.helpers.contains(&t.index) {
                return Err(plan(format!("share {} is both target and helper", t.index)));
            }
            if !targets.insert(t.index) || !replacements.insert(t.replacement) {
                return Err(plan("a target or replacement appears twice"));
            }
            // A current holder receives no second share, except its own
            // index back (a holder returning with an empty disk).
            let own = c.entry(t.index).map(|e| e.recipient) == Some(t.replacement);
            if let Some(e) = c.shards.iter().find(|e| e.recipient == t.replacement) {
                if !own {
                    return Err(Refusal::ReplacementReused {
                        replacement: t.replacement.short(),
                        had: e.index,
                        asked: t.index,
                    });
                }
            }
            check_once(chain, c, &t.replacement, t.index)?;
        }
    }
    Ok(())
}

/// Every member receives at most one share of a polynomial: a replacement
/// may not appear at another index in any manifest since the polynomial's
/// (t, n) was last set (conservative: a refresh keeps (t, n) but changes
/// the polynomial, so this also refuses some safe cases; see
/// docs/decisions.md D27).
pub fn check_once(
    chain: &Chain,
    c: &ManifestBody,
    replacement: &Fingerprint,
    index: u8,
) -> Result<(), Refusal> {
    for body in chain
        .history
        .iter()
        .rev()
        .take_while(|b| (b.threshold, b.n) == (c.threshold, c.n))
    {
        if let Some(e) = body.shards.iter().find(|e| e.recipient == *replacement) {
            if e.index != index {
                return Err(Refusal::ReplacementReused {
                    replacement: replacement.short(),
                    had: e.index,
                    asked: index,
                });
            }
        }
    }
    Ok(())
}

fn check_reshare(c: &ManifestBody, rules: &Rules, x: &crate::reshare::Plan) -> Result<(), Refusal> {
    if x.dealers.len() < usize::from(c.threshold) || !indices_ok(&x.dealers, c) {
        return Err(plan(
            "dealers must be at least t distinct share indices, sorted",
        ));
    }
    // Verify before delete: the dealing check needs dealers beyond t, f of
    // them to catch f liars (vault::dealing).
    if rules.f > 0 && x.dealers.len() < usize::from(c.threshold) + usize::from(rules.f) {
        return Err(Refusal::Policy(format!(
            "{} dealers at threshold {} cannot check for {} lying dealer(s); a re-share needs {}",
            x.dealers.len(),
            c.threshold,
            rules.f,
            usize::from(c.threshold) + usize::from(rules.f)
        )));
    }
    let mut seen = BTreeSet::new();
    for r in &x.recipients {
        if !seen.insert(*r) || c.shards.iter().all(|e| e.recipient != *r) {
            return Err(plan(
                "recipients must be distinct holders of the current epoch",
            ));
        }
    }
    let n_new = x.recipients.len();
    let refresh = (x.t_new, n_new) == (c.threshold, usize::from(c.n));
    let shrink = n_new < usize::from(c.n)
        && u8::try_from(n_new)
            .ok()
            .and_then(|n| rules.shrink_threshold(n))
            == Some(x.t_new);
    if !refresh && !shrink {
        return Err(Refusal::Policy(format!(
            "({}, {n_new}) is neither a refresh of ({}, {}) nor the {} rule's threshold for {n_new} (floor {})",
            x.t_new,
            c.threshold,
            c.n,
            rules.policy.name(),
            rules.floor
        )));
    }
    if x.t_new < rules.floor {
        return Err(Refusal::Policy(format!(
            "t' = {} is below the operator's floor {}",
            x.t_new, rules.floor
        )));
    }
    // f lying recipients must not be able to pass a bad dealing: the
    // honest recipients' values alone must pin the polynomial.
    if rules.f > 0 && n_new < usize::from(x.t_new) + usize::from(rules.f) {
        return Err(Refusal::Policy(format!(
            "{n_new} recipients at t' = {} cannot check a dealing against {} lying recipient(s)",
            x.t_new, rules.f
        )));
    }
    Ok(())
}

/// Counts the valid votes of distinct holders of the current epoch.
pub fn valid_votes(c: &ManifestBody, cert: &CertifiedProposal) -> Result<usize, Refusal> {
    count_votes(c, &cert.votes, VOTE_DOMAIN, &cert.proposal.digest())
}

/// True if `refusals` hold a quorum (`quorum`) of distinct holders of
/// `c` refusing the successor `manifest` of `c`'s epoch (D53): no quorum
/// can sign it then, as two quorums share an honest holder.
pub fn refused_by_quorum(
    c: &ManifestBody,
    refusals: &[Vote],
    manifest: &[u8; 32],
    quorum: usize,
) -> bool {
    let digest = super::proposal::refusal_digest(&c.vault_id, c.epoch, manifest);
    count_votes(c, refusals, super::proposal::REFUSAL_DOMAIN, &digest).is_ok_and(|n| n >= quorum)
}

/// Counts the votes of distinct holders of `c` over `digest` under
/// `domain`; any vote by a non-holder or that does not verify refuses all.
fn count_votes(
    c: &ManifestBody,
    votes: &[Vote],
    domain: &str,
    digest: &[u8; 32],
) -> Result<usize, Refusal> {
    let mut signers = BTreeSet::new();
    for v in votes {
        let fp = v.signer.fingerprint();
        if c.shards.iter().all(|e| e.recipient != fp) {
            return Err(Refusal::BadVote(format!(
                "{} holds no share of epoch {}",
                fp.short(),
                c.epoch
            )));
        }
        v.signer
            .verifying_key()
            .verify(domain, digest, &v.signature)
            .map_err(|e| Refusal::BadVote(format!("vote of {}: {e}", fp.short())))?;
        signers.insert(fp);
    }
    Ok(signers.len())
}

/// Decides whether a certified proposal may act at this validator: it is
/// for the current epoch of the verified chain, its plans are well formed
/// for that epoch (and give no member a second share of the polynomial),
/// and a quorum of the epoch's holders signed it. Returns the proposal.
pub fn authorize<'c>(
    chain: &Chain,
    rules: &Rules,
    cert: &'c CertifiedProposal,
) -> Result<&'c Proposal, Refusal> {
    let c = current(chain, &cert.proposal)?;
    check_action(chain, rules, &cert.proposal)?;
    let valid = valid_votes(c, cert)?;
    let needed = rules.quorum(c.threshold, c.n);
    if valid < needed {
        return Err(Refusal::Uncertified { valid, needed });
    }
    Ok(&cert.proposal)
}

/// Our last vote for an epoch: (attempt, proposal digest, age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastVote {
    /// Attempt voted for.
    pub attempt: u32,
    /// Digest voted for.
    pub digest: [u8; 32],
    /// Time since the vote.
    pub age: Duration,
}

/// What this validator's own view says, for its vote.
#[derive(Debug, Clone, Default)]
pub struct OwnView {
    /// Share indices lost in our own settled view: holders dead for the
    /// grace period, failing custody, or answering without their shard.
    /// `None` while the view is not settled (someone suspect, dead for less
    /// than the grace period, ourselves just started).
    pub lost: Option<BTreeSet<u8>>,
    /// How long the vault has had lost shares in our view.
    pub lost_for: Duration,
    /// How long lost shares wait for spares before a shrink.
    pub reshare_after: Duration,
    /// Our last vote for this epoch, if any.
    pub voted: Option<PastVote>,
    /// Replacements we voted for in this vault, with the index each was
    /// named for.
    pub named: BTreeMap<Fingerprint, u8>,
    /// Whether we convicted the proposer of lying about this vault.
    pub proposer_convicted: bool,
}

/// Decides whether we vote for `p`: its plans are well formed; every share
/// it replaces or leaves out is lost in our own settled view (a shrink also
/// only after `reshare_after`); it names no replacement we already voted
/// to give another index; and it is the one proposal we vote for in this
/// (epoch, attempt), or a new attempt after the previous one timed out.
pub fn judge(chain: &Chain, rules: &Rules, view: &OwnView, p: &Proposal) -> Result<(), Refusal> {
    let c = current(chain, p)?;
    check_action(chain, rules, p)?;
    if view.proposer_convicted {
        return Err(Refusal::ProposerConvicted);
    }
    if view.voted.is_some_and(|v| v.digest == p.digest()) {
        return Ok(()); // the same proposal again: the same vote
    }
    let lost = |i: u8| -> Result<(), Refusal> {
        match &view.lost {
            Some(l) if l.contains(&i) => Ok(()),
            _ => Err(Refusal::NotLost(i)),
        }
    };
    match &p.action {
        Action::Repair(plans) => {
            for t in plans.iter().flat_map(|x| &x.targets) {
                lost(t.index)?;
                if let Some(had) = view.named.get(&t.replacement) {
                    if *had != t.index {
                        return Err(Refusal::ReplacementReused {
                            replacement: t.replacement.short(),
                            had: *had,
                            asked: t.index,
                        });
                    }
                }
            }
        }
        Action::Reshare(_) => {
            let left_out = p.taken_from(c);
            for i in &left_out {
                lost(*i)?;
            }
            if !left_out.is_empty() && view.lost_for < view.reshare_after {
                return Err(Refusal::TooEarly {
                    waited_ms: view.lost_for.as_millis() as u64,
                    needed_ms: view.reshare_after.as_millis() as u64,
                });
            }
        }
    }
    if let Some(v) = view.voted {
        if p.attempt <= v.attempt || v.age < ATTEMPT_TIMEOUT {
            return Err(Refusal::AlreadyVoted {
                attempt: v.attempt,
                age_ms: v.age.as_millis() as u64,
                timeout_ms: ATTEMPT_TIMEOUT.as_millis() as u64,
            });
        }
    }
    Ok(())
}

/// Refuses a certified proposal of an attempt we gave up: `released` is the
/// attempt of our released vote on its epoch (we signed its abort, or saw
/// its dealing fail), which binds us never to act on it or an older one
/// (but for finishing a successor copy another holder signed first:
/// [`judge_abort`]).
pub fn not_aborted(released: Option<u32>, p: &Proposal) -> Result<(), Refusal> {
    match released {
        Some(a) if p.attempt <= a => Err(Refusal::Aborted(p.attempt)),
        _ => Ok(()),
    }
}

/// What this validator knows when asked to abort an attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct AbortView {
    /// Our vote on the abort's epoch, if any.
    pub voted: Option<PastVote>,
    /// Whether the member asking is the one that asked us for that vote:
    /// only an attempt's proposer ends it (anyone else could abort every
    /// attempt, and a certified abort needs no asker).
    pub from_proposer: bool,
    /// Whether we signed a successor of the epoch, or the epoch log decided
    /// one: that attempt may already be certified, and an abort signed now
    /// could be the vote that lets a quorum both certify and abort it.
    pub successor: bool,
}

/// Decides whether we sign the abort of `a`: it is for our current epoch,
/// the attempt and proposal we voted for, asked by their proposer, and we
/// signed no successor of the epoch. Signing binds us ([`not_aborted`]):
/// the attempt's plans never act here again, and we never start signing
/// its successor. A certified abort frees the votes at once, as the
/// attempt timeout would later. A re-share attempt can then never complete
/// (its round, which the dealing check needs, is forgotten). A repair's
/// can: a holder that signed the abort still finishes a successor copy
/// another holder signed first (`crate::epochs::sign`, D49), so a leader
/// splitting the holders cannot leave the epoch stuck. That is safe for
/// the reasons several certified attempts of one epoch are (D27): every
/// target is lost in honest views, no member receives two indices of a
/// polynomial, and one successor per epoch is signed
/// (`transition::simulation` checks them together, D44).
pub fn judge_abort(chain: &Chain, view: &AbortView, a: &Abort) -> Result<(), Refusal> {
    current_of(chain, &a.vault_id, a.from_epoch)?;
    if view.successor {
        return Err(Refusal::AbortRefused(
            "this holder signed a successor of the epoch (or the epoch log decided one)".into(),
        ));
    }
    match view.voted {
        Some(v) if v.attempt == a.attempt && v.digest == a.proposal => {}
        _ => {
            return Err(Refusal::AbortRefused(format!(
                "this holder did not vote for attempt {}'s proposal",
                a.attempt
            )))
        }
    }
    if !view.from_proposer {
        return Err(Refusal::AbortRefused(
            "only the member that proposed an attempt asks to abort it".into(),
        ));
    }
    Ok(())
}

/// Decides whether a certified abort may release us: it is for our current
/// epoch and a quorum of the epoch's holders signed it. Returns the abort.
pub fn authorize_abort<'c>(
    chain: &Chain,
    rules: &Rules,
    cert: &'c CertifiedAbort,
) -> Result<&'c Abort, Refusal> {
    let a = &cert.abort;
    let c = current_of(chain, &a.vault_id, a.from_epoch)?;
    let valid = count_votes(c, &cert.votes, ABORT_DOMAIN, &a.digest())?;
    let needed = rules.quorum(c.threshold, c.n);
    if valid < needed {
        return Err(Refusal::Uncertified { valid, needed });
    }
    Ok(a)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Every refusal path of the transition core, fed directly.
    use super::*;
    use crate::repair::{Plan as RepairPlan, Target};
    use crate::reshare::Plan as ResharePlan;
    use crate::transition::proposal::{CertifiedProposal, Vote};
    use std::sync::OnceLock;
    use vault::identity::SecretIdentity;
    use vault::manifest::VaultId;

    /// Seven members: 1..=5 hold a 3-of-5 vault, 6 and 7 are spares.
    pub(crate) fn keys() -> &'static Vec<SecretIdentity> {
        static K: OnceLock<Vec<SecretIdentity>> = OnceLock::new();
        K.get_or_init(|| {
            (1..=7)
                .map(|i| SecretIdentity::generate(&format!("validator-{i}")).unwrap())
                .collect()
        })
    }

    pub(crate) fn fp(i: usize) -> Fingerprint {
        keys()[i - 1].public().fingerprint()
    }

    pub(crate) fn body(epoch: u64, holders: &[usize], t: u8) -> ManifestBody {
        crate::transition::test_body(epoch, holders, t, fp)
    }

    pub(crate) fn genesis() -> Vec<ManifestBody> {
        vec![body(1, &[1, 2, 3, 4, 5], 3)]
    }

    pub(crate) const RULES: Rules = Rules {
        policy: Policy::Majority,
        f: 0,
        floor: 2,
    };

    pub(crate) fn repair(epoch: u64, target: u8, replacement: usize, helpers: Vec<u8>) -> Proposal {
        Proposal {
            vault_id: VaultId::from_bytes([9; 16]),
            from_epoch: epoch,
            attempt: 0,
            action: Action::Repair(vec![RepairPlan {
                round: [target; 16],
                vault_id: VaultId::from_bytes([9; 16]),
                epoch,
                targets: vec![Target {
                    index: target,
                    replacement: fp(replacement),
                }],
                helpers,
            }]),
        }
    }

    pub(crate) fn shrink(t_new: u8, recipients: &[usize]) -> Proposal {
        Proposal {
            vault_id: VaultId::from_bytes([9; 16]),
            from_epoch: 1,
            attempt: 0,
            action: Action::Reshare(ResharePlan {
                round: [7; 16],
                vault_id: VaultId::from_bytes([9; 16]),
                epoch: 1,
                t_new,
                dealers: vec![1, 2, 3],
                recipients: recipients.iter().map(|i| fp(*i)).collect(),
            }),
        }
    }

    pub(crate) fn certify(p: &Proposal, voters: &[usize]) -> CertifiedProposal {
        CertifiedProposal {
            proposal: p.clone(),
            votes: voters
                .iter()
                .map(|i| Vote::sign(p, &keys()[i - 1]).unwrap())
                .collect(),
        }
    }

    /// `a` with the abort votes of `voters`.
    pub(crate) fn certify_abort(a: &Abort, voters: &[usize]) -> CertifiedAbort {
        CertifiedAbort {
            abort: a.clone(),
            votes: voters
                .iter()
                .map(|i| Vote::sign_abort(a, &keys()[i - 1]).unwrap())
                .collect(),
        }
    }

    pub(crate) fn view(lost: &[u8]) -> OwnView {
        OwnView {
            lost: Some(lost.iter().copied().collect()),
            lost_for: Duration::from_secs(60),
            reshare_after: Duration::from_secs(30),
            ..OwnView::default()
        }
    }

    #[test]
    fn a_quorum_certified_repair_is_authorized() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        assert!(authorize(&chain, &RULES, &certify(&p, &[1, 2, 3])).is_ok());
        // Votes are checked in any order; duplicates count once.
        let mut c = certify(&p, &[1, 2, 3]);
        c.votes.reverse();
        assert!(authorize(&chain, &RULES, &c).is_ok());
    }

    /// A proposer convicted of splitting the signers (or of a bad dealing)
    /// leads nothing: not even the proposal we voted for before.
    #[test]
    fn a_convicted_proposer_gets_no_vote() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        assert!(judge(&chain, &RULES, &view(&[5]), &p).is_ok());
        let mut v = view(&[5]);
        v.proposer_convicted = true;
        assert_eq!(
            judge(&chain, &RULES, &v, &p),
            Err(Refusal::ProposerConvicted)
        );
        v.voted = Some(PastVote {
            attempt: 0,
            digest: p.digest(),
            age: Duration::ZERO,
        });
        assert_eq!(
            judge(&chain, &RULES, &v, &p),
            Err(Refusal::ProposerConvicted)
        );
        assert_eq!(Refusal::ProposerConvicted.reason(), "proposer_convicted");
    }

    /// Attack 1 at the core: a plan without a quorum of holders' votes, or
    /// with votes of non-holders or repeated votes, never acts.
    #[test]
    fn an_uncertified_or_padded_proposal_is_refused() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        for voters in [&[][..], &[1], &[1, 2], &[2, 2, 2]] {
            let e = authorize(&chain, &RULES, &certify(&p, voters)).unwrap_err();
            assert!(matches!(e, Refusal::Uncertified { needed: 3, .. }), "{e}");
        }
        // The spare votes for itself: not a holder.
        let e = authorize(&chain, &RULES, &certify(&p, &[1, 2, 6])).unwrap_err();
        assert_eq!(e.reason(), "bad_certificate");
        // A vote for another proposal does not transfer.
        let mut c = certify(&p, &[1, 2, 3]);
        c.votes[2] = Vote::sign(&repair(1, 4, 6, vec![1, 2, 3]), &keys()[2]).unwrap();
        assert_eq!(
            authorize(&chain, &RULES, &c).unwrap_err().reason(),
            "bad_certificate"
        );
    }

    /// Replay: a certificate of epoch 1 does nothing at epoch 2.
    #[test]
    fn a_replayed_certificate_of_an_older_epoch_is_refused() {
        let mut h = genesis();
        h.push(body(2, &[1, 2, 3, 4, 6], 3));
        let chain = Chain { history: &h };
        let c = certify(&repair(1, 5, 7, vec![1, 2, 3]), &[1, 2, 3]);
        assert_eq!(
            authorize(&chain, &RULES, &c).unwrap_err(),
            Refusal::Stale {
                found: 1,
                current: 2
            }
        );
    }

    /// Harvest across rounds: a member that held or received one index of
    /// the polynomial never receives another, even with a full quorum.
    #[test]
    fn no_member_receives_a_second_share_of_one_polynomial() {
        let mut h = genesis();
        h.push(body(2, &[1, 2, 3, 4, 6], 3)); // 6 replaced 5
        let chain = Chain { history: &h };
        // 6 holds share 5 now: it may not also take share 4...
        let e = authorize(
            &chain,
            &RULES,
            &certify(&repair(2, 4, 6, vec![1, 2, 3]), &[1, 2, 3]),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::ReplacementReused {
                    had: 5,
                    asked: 4,
                    ..
                }
            ),
            "{e}"
        );
        // ...and 5, which held share 5 of this polynomial, may not take 4.
        let e = authorize(
            &chain,
            &RULES,
            &certify(&repair(2, 4, 5, vec![1, 2, 3]), &[1, 2, 3]),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Refusal::ReplacementReused {
                    had: 5,
                    asked: 4,
                    ..
                }
            ),
            "{e}"
        );
        // 5 may take its own share 5 back (an empty disk), if lost again.
        let mut h2 = genesis();
        h2.push(body(2, &[1, 2, 3, 4, 5], 3));
        let chain2 = Chain { history: &h2 };
        assert!(authorize(
            &chain2,
            &RULES,
            &certify(&repair(2, 5, 5, vec![1, 2, 3]), &[1, 2, 3])
        )
        .is_ok());
        // A current holder is never the replacement of another index.
        let e = authorize(
            &chain2,
            &RULES,
            &certify(&repair(2, 5, 4, vec![1, 2, 3]), &[1, 2, 3]),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "replacement_reused");
    }

    /// Malformed plans: a target that helps, too few helpers, two plans
    /// naming one replacement.
    #[test]
    fn malformed_repair_plans_are_refused() {
        let h = genesis();
        let chain = Chain { history: &h };
        for p in [
            repair(1, 3, 6, vec![1, 2, 3]),
            repair(1, 5, 6, vec![1, 2]),
            repair(1, 5, 6, vec![2, 1, 3]),
            repair(1, 9, 6, vec![1, 2, 3]),
        ] {
            let e = authorize(&chain, &RULES, &certify(&p, &[1, 2, 3])).unwrap_err();
            assert_eq!(e.reason(), "plan_mismatch", "{e}");
        }
        let mut p = repair(1, 5, 6, vec![1, 2, 3]);
        if let Action::Repair(plans) = &mut p.action {
            let mut second = plans[0].clone();
            second.round = [1; 16];
            second.targets[0].index = 4;
            plans.push(second);
        }
        let e = authorize(&chain, &RULES, &certify(&p, &[1, 2, 3])).unwrap_err();
        assert_eq!(e.reason(), "plan_mismatch", "{e}");
    }

    /// Attack 2 at the core: t' below the policy's, or a shrink whose left
    /// out holders are not lost (for long enough) in the voter's own view.
    #[test]
    fn a_threshold_lowering_shrink_gets_no_vote() {
        let h = genesis();
        let chain = Chain { history: &h };
        // Policy: t' = 2 for n' = 3 (majority). t' = 1 is never allowed.
        let e = judge(&chain, &RULES, &view(&[4, 5]), &shrink(1, &[1, 2, 3])).unwrap_err();
        assert_eq!(e.reason(), "policy");
        // Holders 4 and 5 only paused: not lost in our view.
        let e = judge(&chain, &RULES, &view(&[]), &shrink(2, &[1, 2, 3])).unwrap_err();
        assert_eq!(e, Refusal::NotLost(4));
        // Lost, but not yet for reshare_after.
        let mut v = view(&[4, 5]);
        v.lost_for = Duration::from_secs(5);
        let e = judge(&chain, &RULES, &v, &shrink(2, &[1, 2, 3])).unwrap_err();
        assert!(matches!(e, Refusal::TooEarly { .. }), "{e}");
        // Unsettled view: no vote at all.
        let mut v = view(&[4, 5]);
        v.lost = None;
        assert!(judge(&chain, &RULES, &v, &shrink(2, &[1, 2, 3])).is_err());
        // Really lost for long enough: the vote is given.
        assert!(judge(&chain, &RULES, &view(&[4, 5]), &shrink(2, &[1, 2, 3])).is_ok());
        // A refresh leaves no one out and needs nobody lost.
        assert!(judge(&chain, &RULES, &view(&[]), &shrink(3, &[1, 2, 3, 4, 5])).is_ok());
    }

    /// Attack 4 at the voter: under f = 1 a re-share must bring the dealers
    /// (t + f) and recipients (t' + f) its dealing check needs, or a liar
    /// could deal or report badly unseen.
    #[test]
    fn a_reshare_without_room_for_the_dealing_check_gets_no_vote() {
        let h = genesis();
        let chain = Chain { history: &h };
        let rules = Rules { f: 1, ..RULES };
        let with_dealers = |t_new: u8, recipients: &[usize], dealers: Vec<u8>| {
            let mut p = shrink(t_new, recipients);
            if let Action::Reshare(x) = &mut p.action {
                x.dealers = dealers;
            }
            p
        };
        let refresh = [1, 2, 3, 4, 5];
        let e = judge(
            &chain,
            &rules,
            &view(&[]),
            &with_dealers(3, &refresh, vec![1, 2, 3]),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "policy", "{e}");
        assert!(e.to_string().contains("lying dealer"), "{e}");
        assert!(judge(
            &chain,
            &rules,
            &view(&[]),
            &with_dealers(3, &refresh, vec![1, 2, 3, 4])
        )
        .is_ok());
        // Fewer than t dealers are malformed at any f.
        let e = judge(
            &chain,
            &RULES,
            &view(&[]),
            &with_dealers(3, &refresh, vec![1, 2]),
        )
        .unwrap_err();
        assert_eq!(e.reason(), "plan_mismatch", "{e}");
        // Two recipients at t' = 2 leave no room for one lying recipient.
        let e = judge(
            &chain,
            &rules,
            &view(&[3, 4, 5]),
            &with_dealers(2, &[1, 2], vec![1, 2, 3, 4]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("lying recipient"), "{e}");
    }

    /// Attack 1 at the voter: a target that is alive in our view gets no
    /// vote, nor does a replacement we voted to give another index.
    #[test]
    fn a_voter_judges_targets_on_its_own_view() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        assert_eq!(
            judge(&chain, &RULES, &view(&[4]), &p).unwrap_err(),
            Refusal::NotLost(5)
        );
        assert!(judge(&chain, &RULES, &view(&[5]), &p).is_ok());
        let mut v = view(&[4, 5]);
        v.named.insert(fp(6), 4);
        assert_eq!(
            judge(&chain, &RULES, &v, &p).unwrap_err().reason(),
            "replacement_reused"
        );
    }

    /// One vote per (epoch, attempt); a new attempt only after the last
    /// one timed out; the same proposal again gets the same vote.
    #[test]
    fn a_voter_votes_once_per_attempt() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let mut v = view(&[4, 5]);
        v.voted = Some(PastVote {
            attempt: 0,
            digest: p.digest(),
            age: Duration::from_secs(1),
        });
        assert!(judge(&chain, &RULES, &v, &p).is_ok());
        let rival = repair(1, 4, 6, vec![1, 2, 3]);
        assert!(matches!(
            judge(&chain, &RULES, &v, &rival).unwrap_err(),
            Refusal::AlreadyVoted { attempt: 0, .. }
        ));
        let mut next = rival.clone();
        next.attempt = 1;
        assert!(judge(&chain, &RULES, &v, &next).is_err(), "too soon");
        v.voted = Some(PastVote {
            attempt: 0,
            digest: p.digest(),
            age: ATTEMPT_TIMEOUT,
        });
        assert!(judge(&chain, &RULES, &v, &next).is_ok());
        // Never two proposals under one attempt number, however late.
        assert!(judge(&chain, &RULES, &v, &rival).is_err());
    }

    /// Only the proposer ends an attempt, only a voter of exactly that
    /// proposal signs its end, and never a holder that signed a successor.
    #[test]
    fn an_abort_is_signed_only_by_a_voter_of_the_attempt_asked_by_its_proposer() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let a = Abort::of(&p);
        let voted = Some(PastVote {
            attempt: 0,
            digest: p.digest(),
            age: Duration::from_secs(1),
        });
        let ok = AbortView {
            voted,
            from_proposer: true,
            successor: false,
        };
        assert!(judge_abort(&chain, &ok, &a).is_ok());
        for (why, view) in [
            (
                "not the proposer",
                AbortView {
                    from_proposer: false,
                    ..ok
                },
            ),
            (
                "signed a successor",
                AbortView {
                    successor: true,
                    ..ok
                },
            ),
            ("never voted", AbortView { voted: None, ..ok }),
        ] {
            assert!(
                matches!(
                    judge_abort(&chain, &view, &a),
                    Err(Refusal::AbortRefused(_))
                ),
                "{why}"
            );
        }
        // Another proposal under the same attempt number, another attempt,
        // another epoch: nothing of ours to give up.
        let rival = Abort::of(&repair(1, 4, 6, vec![1, 2, 3]));
        assert!(judge_abort(&chain, &ok, &rival).is_err());
        let later = Abort {
            attempt: 1,
            ..a.clone()
        };
        assert!(judge_abort(&chain, &ok, &later).is_err());
        let old = Abort {
            from_epoch: 2,
            ..a.clone()
        };
        assert!(matches!(
            judge_abort(&chain, &ok, &old),
            Err(Refusal::Stale { .. })
        ));
    }

    /// A certified abort needs a quorum of holders' abort votes: votes on
    /// the proposal itself, a non-holder's, or too few do not release.
    #[test]
    fn a_certified_abort_needs_a_quorum_of_holders_abort_votes() {
        let h = genesis();
        let chain = Chain { history: &h };
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let a = Abort::of(&p);
        let cert = |voters: &[usize]| certify_abort(&a, voters);
        assert_eq!(
            authorize_abort(&chain, &RULES, &cert(&[1, 2, 3])).unwrap(),
            &a
        );
        assert!(matches!(
            authorize_abort(&chain, &RULES, &cert(&[1, 2, 2])),
            Err(Refusal::Uncertified {
                valid: 2,
                needed: 3
            })
        ));
        assert!(matches!(
            authorize_abort(&chain, &RULES, &cert(&[1, 2, 6])),
            Err(Refusal::BadVote(_))
        ));
        // Proposal votes are not abort votes (another signature domain).
        let proposal_votes = CertifiedAbort {
            abort: a.clone(),
            votes: certify(&p, &[1, 2, 3]).votes,
        };
        assert!(matches!(
            authorize_abort(&chain, &RULES, &proposal_votes),
            Err(Refusal::BadVote(_))
        ));
        // Round trip, and every truncation is an error.
        let c = cert(&[1, 2, 3]);
        let bytes = c.encode();
        assert!(CertifiedAbort::decode(&bytes).unwrap() == c);
        for cut in [0, 6, 30, bytes.len() / 2, bytes.len() - 1] {
            assert!(CertifiedAbort::decode(&bytes[..cut]).is_err(), "{cut}");
        }
    }

    /// Once we gave an attempt up, its certified proposal (and any older
    /// one) never acts here; a newer attempt does.
    #[test]
    fn a_given_up_attempt_never_acts_again() {
        let mut p = repair(1, 5, 6, vec![1, 2, 3]);
        p.attempt = 4;
        assert!(not_aborted(None, &p).is_ok());
        assert_eq!(not_aborted(Some(4), &p), Err(Refusal::Aborted(4)));
        assert!(not_aborted(Some(5), &p).is_err());
        assert!(not_aborted(Some(3), &p).is_ok());
    }

    #[test]
    fn proposals_round_trip_and_truncations_are_refused() {
        for p in [repair(1, 5, 6, vec![1, 2, 3]), shrink(2, &[1, 2, 3])] {
            let c = certify(&p, &[1, 2, 3]);
            let bytes = c.encode();
            assert_eq!(CertifiedProposal::decode(&bytes).unwrap(), c);
            assert_eq!(Proposal::decode(&p.encode()).unwrap(), p);
            for cut in [0, 6, 20, bytes.len() / 2, bytes.len() - 1] {
                assert!(CertifiedProposal::decode(&bytes[..cut]).is_err(), "{cut}");
            }
        }
        // A plan for another epoch inside a proposal is refused on decode.
        let mut p = repair(1, 5, 6, vec![1, 2, 3]);
        p.from_epoch = 2;
        assert!(Proposal::decode(&p.encode()).is_err());
    }
}
