//! Healing's decision, sans-IO: what this validator does for one vault in
//! one healing pass.
//!
//! `crate::heal::heal_vault` is the driver: it gathers the pass's inputs,
//! calls [`resume`] and [`decide`] and carries out the [`Step`] that comes
//! back (probes, proposals, rounds, signatures, commits, metrics, logs).
//! Nothing here touches the network, the store, a clock or an RNG: elapsed
//! times and fresh round ids come in as values, so unit tests feed each
//! branch directly.
//!
//! Two stages, with I/O between them. [`resume`] runs before anything is
//! probed: a certified transition not yet committed everywhere is finished
//! first, whatever the view (an unsettled view must not hold it up).
//! [`decide`] runs on a settled [`Assessment`] (`crate::heal::assess`,
//! which probes the members). The facts that cost I/O and matter only
//! once the decision reaches them (the refresh marker and the named spares
//! on disk, the peers' epochs over the network, the epoch log, the length
//! of our own share, which opens our shard) are not gathered up front:
//! [`decide`] answers [`Next::Need`] with the one it lacks, and the driver
//! gathers it and calls again. Each is so fetched at the point of the
//! decision where it was fetched before the split, and never by a member
//! that does not lead.

use super::authorize::Rules;
use super::replacements::{self, Candidates};
use crate::repair::{Plan, Target};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;
use vault::identity::Fingerprint;
use vault::manifest::{Manifest, ManifestBody, ManifestError};
use vault::share::MAX_SHARE_LEN;

/// A member as the decision sees it: its id orders spares and picks the
/// leader (`crate::config::Member` in the daemon).
pub trait MemberId {
    /// The member's validator id.
    fn member_id(&self) -> &str;
}

/// Live holders: (share index, member, `None` being ourselves), in
/// manifest (index) order.
pub type Holders<M> = Vec<(u8, Option<M>)>;

/// What our own view says about the holders of one vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment<M> {
    /// Live members by identity fingerprint (`None` is ourselves), without
    /// holders that failed custody.
    pub view: BTreeMap<Fingerprint, Option<M>>,
    /// Holders that answer without any shard (a fresh disk, same key),
    /// which take their own share back: index -> (fingerprint, member).
    pub returning: BTreeMap<u8, (Fingerprint, M)>,
    /// Share indices lost: held by no member in `view`.
    pub lost: Vec<u8>,
}

impl<M: Clone> Assessment<M> {
    /// The live holders of `body`'s shares, in manifest order.
    pub fn holders_of(&self, body: &ManifestBody) -> Holders<M> {
        body.shards
            .iter()
            .filter_map(|e| self.view.get(&e.recipient).map(|m| (e.index, m.clone())))
            .collect()
    }

    /// Live members holding no share of `body`, by fingerprint.
    fn spares<'a>(
        &'a self,
        body: &'a ManifestBody,
    ) -> impl Iterator<Item = (Fingerprint, &'a M)> + 'a {
        self.view.iter().filter_map(|(fp, m)| match m {
            Some(m) if !body.shards.iter().any(|e| e.recipient == *fp) => Some((*fp, m)),
            _ => None,
        })
    }
}

/// The healing gauges of one vault (`pqvault_heal_pending`,
/// `pqvault_heal_spares`) after a settled assessment; `lost == 0` also
/// clears the vault's lost-since clock, anything else starts it if unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Lost shares.
    pub lost: usize,
    /// Live spares (members holding no share of the vault).
    pub spares: usize,
}

/// The gauges for `assessed`, an assessment of `body`.
pub fn gauges<M: Clone>(body: &ManifestBody, assessed: &Assessment<M>) -> Gauges {
    Gauges {
        lost: assessed.lost.len(),
        spares: assessed.spares(body).count(),
    }
}

/// First stage: what to do before assessing the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A transition we certified was not committed everywhere: send its
    /// commit again, and nothing else this pass.
    FinishCommit,
    /// Assess the view and [`decide`].
    Assess {
        /// The unfinished transition is of an earlier epoch (committed
        /// since): forget it.
        forget_unfinished: bool,
    },
}

/// The first stage, for a vault at `epoch` with an unfinished (certified,
/// not committed everywhere) transition from `unfinished_from`, if any;
/// `ours_is_current` says our current manifest is that transition's
/// successor. The leader commits alongside the other holders, so it may
/// already stand on the successor while another holder's commit failed:
/// that commit is still sent again.
pub fn resume(epoch: u64, unfinished_from: Option<u64>, ours_is_current: bool) -> Resume {
    match unfinished_from {
        Some(from) if from == epoch => Resume::FinishCommit,
        Some(from) if from + 1 == epoch && ours_is_current => Resume::FinishCommit,
        Some(_) => Resume::Assess {
            forget_unfinished: true,
        },
        None => Resume::Assess {
            forget_unfinished: false,
        },
    }
}

/// What the peers' epochs say, once probed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Probe {
    /// Not probed yet.
    #[default]
    NotYet,
    /// No live holder reports a later epoch.
    NoneNewer,
    /// The first live holder that reports a later epoch, and that epoch.
    Newer {
        /// Its member id.
        peer: String,
        /// Its epoch.
        epoch: u64,
    },
}

/// The successor the epoch log decided for the current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The decided next manifest (`PQVM`).
    pub manifest: Vec<u8>,
    /// Its epoch certificate, once committed.
    pub certificate: Option<Vec<u8>>,
}

/// What the epoch log says about the current epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    /// The successor it decided, if any.
    pub decided: Option<Decided>,
    /// Whether it has a leader (nothing new is decided without one).
    pub has_leader: bool,
}

/// The inputs of [`decide`] for one vault. The `Option` fields are
/// gathered on demand ([`Need`]): `None` until the driver has them.
#[derive(Debug, Clone)]
pub struct Pass<'a, M> {
    /// Our member id.
    pub me: &'a str,
    /// The current epoch's manifest body.
    pub body: &'a ManifestBody,
    /// Our settled assessment of it.
    pub assessed: &'a Assessment<M>,
    /// The vault's rules (quorum, shrink, floor).
    pub rules: Rules,
    /// Whether this validator refreshes (`heal.refresh`).
    pub refresh: bool,
    /// Whether the current epoch owes a refresh ([`Need::RefreshOwed`]).
    pub refresh_owed: Option<bool>,
    /// Whether a live holder is at a later epoch ([`Need::NewerEpoch`]).
    pub newer: Probe,
    /// Whether the replicated epoch log is on.
    pub log_on: bool,
    /// What the epoch log says ([`Need::Log`]); only asked when it is on.
    pub log: Option<Log>,
    /// Spares named for an index of this polynomial before
    /// (`data/named/`, [`Need::Named`]).
    pub named: Option<BTreeMap<Fingerprint, u8>>,
    /// How long the vault has had lost shares in our view (`None`: no
    /// loss recorded).
    pub lost_for: Option<Duration>,
    /// How long lost shares wait for spares before a shrink re-share
    /// (`heal.reshare_after_ms`).
    pub reshare_after: Duration,
    /// Length of the share we hold, all shares of a vault having one
    /// length ([`Need::Repair`]).
    pub share_len: Option<usize>,
    /// Fresh random round ids for the repair rounds ([`Need::Repair`]).
    pub round_ids: Vec<[u8; 16]>,
    /// A copy of the successor another holder signed, learned when we
    /// refused another copy (`crate::successor`): its manifest and the
    /// proposal it carries out.
    pub signed_copy: Option<(Vec<u8>, [u8; 32])>,
    /// Pairs of share indices in dispute this epoch: a helper of a failed
    /// repair round reported the other's pieces missing (or did not answer
    /// us). One of each pair is faulty, so no repair puts both among its
    /// helpers again ([`pick_helpers`]).
    pub disputes: BTreeSet<(u8, u8)>,
}

/// The dealers of a re-share among `holders` (share indices, in order),
/// given how many recipients of failed attempts of this epoch named each
/// dealer as never having sent its sub-share (`missing`): the holders no
/// recipient named, if at least `needed`; else those named by at most `f`;
/// else every holder. A dealer that withholds from even one recipient thus
/// deals no more while enough others remain (D57). Leaving out an honest
/// dealer a liar named costs nothing then, and a recipient that names
/// ever more dealers is judged by the dealers themselves
/// (`crate::reshare`). Past that, at most `f` recipients lie, so an honest
/// dealer is never left out, and one that withholds from more than `f` is.
pub fn pick_dealers(
    holders: &[u8],
    missing: &BTreeMap<u8, usize>,
    f: u8,
    needed: usize,
) -> Vec<u8> {
    let named_at_most = |most: usize| -> Vec<u8> {
        holders
            .iter()
            .copied()
            .filter(|d| missing.get(d).copied().unwrap_or(0) <= most)
            .collect()
    };
    [named_at_most(0), named_at_most(usize::from(f))]
        .into_iter()
        .find(|kept| kept.len() >= needed)
        .unwrap_or_else(|| holders.to_vec())
}

/// How many helper sets [`pick_helpers`] tries before it gives up.
const HELPER_SETS_TRIED: usize = 10_000;

/// The first `t` of `holders` (in their order, lexicographically over
/// positions) with no pair in `disputes` among them, or simply the first
/// `t` if there is none within [`HELPER_SETS_TRIED`] sets. An honest pair
/// never disputes, so each dispute names at least one faulty helper, and
/// with `t` honest live holders a set of them is always found: a helper
/// that withholds its pieces stalls one attempt, not every one.
pub fn pick_helpers<M: Clone>(
    holders: &Holders<M>,
    t: usize,
    disputes: &BTreeSet<(u8, u8)>,
) -> Holders<M> {
    let first = || holders.iter().take(t).cloned().collect();
    if disputes.is_empty() || t == 0 || holders.len() < t {
        return first();
    }
    let clash = |a: u8, b: u8| disputes.contains(&(a, b)) || disputes.contains(&(b, a));
    // Positions of the current set, advanced like an odometer.
    let mut pos: Vec<usize> = (0..t).collect();
    for _ in 0..HELPER_SETS_TRIED {
        let ok = pos.iter().enumerate().all(|(k, &i)| {
            pos[k + 1..]
                .iter()
                .all(|&j| !clash(holders[i].0, holders[j].0))
        });
        if ok {
            return pos.iter().map(|&i| holders[i].clone()).collect();
        }
        // Next combination.
        let n = holders.len();
        let Some(k) = (0..t).rev().find(|&k| pos[k] < n - t + k) else {
            break;
        };
        pos[k] += 1;
        for m in k + 1..t {
            pos[m] = pos[m - 1] + 1;
        }
    }
    first()
}

/// A fact [`decide`] needs before it can go on; the driver gathers it into
/// the [`Pass`] and calls [`decide`] again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need<M> {
    /// Whether the current epoch owes a refresh (`Store::refresh_owed`).
    RefreshOwed,
    /// The first of `ask` (the live holders but ourselves, in order) that
    /// reports a later epoch of the vault.
    NewerEpoch {
        /// Members to ask, in order.
        ask: Vec<M>,
    },
    /// The epoch log's decision and leader.
    Log,
    /// The spares named before (`Store::named`).
    Named,
    /// The length of our own share, and `round_ids` fresh random round
    /// ids (as many as there are replacements, the most rounds a repair
    /// can need).
    Repair {
        /// Round ids to supply.
        round_ids: usize,
    },
}

/// What [`decide`] answers: a fact it needs, or the step to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<M> {
    /// Gather this and call again.
    Need(Need<M>),
    /// Carry this out.
    Step(Step<M>),
}

/// What this validator does for the vault this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<M> {
    /// Fewer live holders than a quorum: only the operator can act.
    TooFewLive {
        /// Live holders.
        live: usize,
    },
    /// Another live holder leads.
    NotLeader,
    /// Nothing is lost and no refresh is owed (or refresh is off).
    Idle,
    /// A live holder is at a later epoch: we are stale and must not lead.
    Stale {
        /// That holder's member id.
        peer: String,
        /// Its epoch.
        epoch: u64,
        /// Found while about to lead an owed refresh (not a repair).
        refreshing: bool,
    },
    /// Nothing is lost but the epoch owes a refresh: lead a re-share to
    /// the same threshold among every holder.
    Refresh {
        /// Every holder, in index order.
        holders: Holders<M>,
    },
    /// The epoch log decided a successor: finish it (commit it if it is
    /// certified, else certify it), never proposing another.
    FinishDecided {
        /// The decided next manifest.
        manifest: Vec<u8>,
        /// Its certificate, if it has one.
        certificate: Option<Vec<u8>>,
        /// Live holders of the current epoch (its signers).
        holders: Holders<M>,
        /// Live holders of the next epoch.
        next: Holders<M>,
    },
    /// Another holder signed a copy of the successor that never gathered
    /// a quorum (its proposer split the signers, or died while they
    /// signed): finish that copy, never proposing another, as that
    /// holder's one signature of the epoch is spent on it.
    FinishSigned {
        /// The signed copy's manifest.
        manifest: Vec<u8>,
        /// The proposal it carries out (its digest).
        proposal: [u8; 32],
        /// Live holders of the current epoch (its signers).
        holders: Holders<M>,
        /// Live holders of the next epoch.
        next: Holders<M>,
    },
    /// The epoch log has no leader: a proposal now would fail.
    WaitForLogLeader,
    /// No replacements for `reshare_after`: re-share among the live
    /// holders to the policy's (t', n').
    Reshare {
        /// t'.
        t_new: u8,
        /// n': the live holders.
        n_new: u8,
        /// The live holders, in index order.
        holders: Holders<M>,
    },
    /// No replacements for `reshare_after`, and n' live holders are fewer
    /// than the operator's floor allows: only the operator can act.
    CannotReshare {
        /// Live holders.
        n_new: u8,
        /// The policy's floor.
        floor: u8,
    },
    /// Not every lost share has a replacement yet.
    WaitForSpares {
        /// Lost shares.
        lost: usize,
        /// Spares that may take one.
        spares: usize,
    },
    /// Lead a repair: one proposal carrying every group's plan.
    Repair {
        /// Live holders of the current epoch, in index order.
        holders: Holders<M>,
        /// The first t of them, who help.
        helpers: Holders<M>,
        /// Each lost index with its replacement, in index order.
        assignments: Vec<(u8, (Fingerprint, M))>,
        /// The rounds: each plan with its replacements, in plan order.
        groups: Vec<(Plan, Vec<M>)>,
    },
}

/// Why a pass cannot be decided.
#[derive(Debug, Error)]
pub enum HealError {
    /// The epoch log's decided successor does not parse.
    #[error("the epoch log's decided successor: {0}")]
    Decided(#[source] ManifestError),
    /// More live holders than a manifest can count.
    #[error("{holders} live holders are too many")]
    TooManyHolders {
        /// Live holders.
        holders: usize,
    },
    /// The driver supplied fewer round ids than the repair has rounds.
    #[error("{got} round ids for {needed} repair rounds")]
    RoundIds {
        /// Rounds.
        needed: usize,
        /// Round ids supplied.
        got: usize,
    },
}

/// The second stage: given a settled assessment, what this validator does
/// for the vault, or which fact it needs first.
///
/// In order: at least a quorum of live holders; a copy of the successor a
/// holder already signed is finished, by whoever knows of it, unless a
/// peer is past this epoch; we lead (lowest member id
/// among them); nothing lost means a refresh if one is owed; we are not
/// behind a peer; a successor the epoch log decided is finished first,
/// and nothing is proposed while the log has no leader; a replacement for
/// every lost share means a repair, else (after `reshare_after`) a shrink
/// re-share among the live holders, else waiting for spares.
pub fn decide<M: Clone + MemberId>(p: &Pass<M>) -> Result<Next<M>, HealError> {
    let (b, a) = (p.body, p.assessed);
    let step = |s| Ok(Next::Step(s));
    let need = |n| Ok(Next::Need(n));
    let holders = a.holders_of(b);
    if holders.len() < p.rules.quorum(b.threshold, b.n) {
        return step(Step::TooFewLive {
            live: holders.len(),
        });
    }
    // The proposer is chosen by this rule; with the epoch log, what it
    // proposes is decided there (a second proposer's rival is refused and
    // it finishes the decided one instead), so views may differ safely.
    // A copy of the successor a holder already signed (we learned of it
    // when refusing another, or signed it ourselves and it was never
    // committed) is finished before anything new is proposed, by whoever
    // knows of it, leader or not: that holder can sign no other successor
    // of the epoch. Unless a peer is already past this epoch.
    if let Some((manifest, proposal)) = &p.signed_copy {
        return match &p.newer {
            Probe::NotYet => need(Need::NewerEpoch {
                ask: holders.iter().filter_map(|(_, m)| m.clone()).collect(),
            }),
            Probe::Newer { peer, epoch } => step(Step::Stale {
                peer: peer.clone(),
                epoch: *epoch,
                refreshing: false,
            }),
            Probe::NoneNewer => {
                let next_body = Manifest::decode(manifest).map_err(HealError::Decided)?;
                step(Step::FinishSigned {
                    manifest: manifest.clone(),
                    proposal: *proposal,
                    next: a.holders_of(next_body.body()),
                    holders,
                })
            }
        };
    }
    let leader = replacements::leader(
        holders
            .iter()
            .map(|(_, m)| m.as_ref().map_or(p.me, |m| m.member_id())),
    );
    if leader != Some(p.me) {
        return step(Step::NotLeader);
    }
    let refreshing = a.lost.is_empty();
    if refreshing {
        // A refresh the current epoch still owes (made by a repair whose
        // refresh failed, or whose leader died).
        if !p.refresh {
            return step(Step::Idle);
        }
        match p.refresh_owed {
            None => return need(Need::RefreshOwed),
            Some(false) => return step(Step::Idle),
            Some(true) => {}
        }
    }
    // A validator that came back with an old bundle must never lead (or
    // revive, or refresh) an epoch its peers have left.
    match &p.newer {
        Probe::NotYet => {
            return need(Need::NewerEpoch {
                ask: holders.iter().filter_map(|(_, m)| m.clone()).collect(),
            })
        }
        Probe::Newer { peer, epoch } => {
            return step(Step::Stale {
                peer: peer.clone(),
                epoch: *epoch,
                refreshing,
            })
        }
        Probe::NoneNewer => {}
    }
    if refreshing {
        return step(Step::Refresh { holders });
    }
    if p.log_on {
        let Some(log) = &p.log else {
            return need(Need::Log);
        };
        // A successor the log decided (a previous leader's) is finished
        // first: no other proposal for this epoch can ever be decided.
        if let Some(d) = &log.decided {
            let next_body = Manifest::decode(&d.manifest).map_err(HealError::Decided)?;
            return step(Step::FinishDecided {
                manifest: d.manifest.clone(),
                certificate: d.certificate.clone(),
                next: a.holders_of(next_body.body()),
                holders,
            });
        }
        // Nothing new can be decided without a log leader: spending a
        // repair's HQC work on a proposal bound to fail only takes CPU
        // from the election. The next pass tries again.
        if !log.has_leader {
            return step(Step::WaitForLogLeader);
        }
    }
    // A spare named for a share in an earlier attempt may only ever get
    // that share (once per polynomial, `authorize::check_once`): the
    // assignment keeps it for that index and never offers it another.
    let Some(named) = &p.named else {
        return need(Need::Named);
    };
    let mut spares: Vec<(Fingerprint, M)> = a.spares(b).map(|(fp, m)| (fp, m.clone())).collect();
    spares.sort_by(|x, y| x.1.member_id().cmp(y.1.member_id()));
    let candidates = Candidates {
        lost: a.lost.clone(),
        returning: a.returning.clone(),
        spares,
        named: named.clone(),
    };
    if !candidates.enough() {
        // No replacements (yet): after `reshare_after`, the live holders
        // re-share among themselves to the policy's (t', n').
        if p.lost_for.is_some_and(|w| w >= p.reshare_after) {
            let n_new = u8::try_from(holders.len()).map_err(|_| HealError::TooManyHolders {
                holders: holders.len(),
            })?;
            return step(match p.rules.shrink_threshold(n_new) {
                Some(t_new) => {
                    let mut holders = holders;
                    holders.sort_by_key(|(i, _)| *i);
                    Step::Reshare {
                        t_new,
                        n_new,
                        holders,
                    }
                }
                None => Step::CannotReshare {
                    n_new,
                    floor: p.rules.floor,
                },
            });
        }
        return step(Step::WaitForSpares {
            lost: a.lost.len(),
            spares: candidates.usable_spares().len(),
        });
    }
    let assignments = candidates.assign();
    let Some(share_len) = p.share_len else {
        return need(Need::Repair {
            round_ids: assignments.len(),
        });
    };
    let helpers = pick_helpers(&holders, usize::from(b.threshold), &p.disputes);
    // One repair round for every lost share, as many as one sealed record
    // per helper pair can carry (rounds of a split run at once).
    // `assignments` follows the manifest, which lists indices in order, as
    // plans require.
    let per_round = (MAX_SHARE_LEN / share_len.max(1)).max(1);
    let needed = assignments.len().div_ceil(per_round);
    if p.round_ids.len() < needed {
        return Err(HealError::RoundIds {
            needed,
            got: p.round_ids.len(),
        });
    }
    let groups = assignments
        .chunks(per_round)
        .zip(&p.round_ids)
        .map(|(group, round)| {
            let plan = Plan {
                round: *round,
                vault_id: b.vault_id,
                epoch: b.epoch,
                targets: group
                    .iter()
                    .map(|(index, (fp, _))| Target {
                        index: *index,
                        replacement: *fp,
                    })
                    .collect(),
                helpers: helpers.iter().map(|(i, _)| *i).collect(),
            };
            (plan, group.iter().map(|(_, (_, m))| m.clone()).collect())
        })
        .collect();
    step(Step::Repair {
        holders,
        helpers,
        assignments,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::identity::SecretIdentity;
    use vault::policy::Policy;

    impl MemberId for String {
        fn member_id(&self) -> &str {
            self
        }
    }

    const RULES: Rules = Rules {
        policy: Policy::Majority,
        f: 0,
        floor: 2,
    };

    fn fp(i: usize) -> Fingerprint {
        Fingerprint::from_bytes([i as u8; 32])
    }

    fn name(i: usize) -> String {
        format!("validator-{i}")
    }

    /// A t-of-n epoch held by `holders` (index k + 1 by the k-th).
    fn body(epoch: u64, holders: &[usize], t: u8) -> ManifestBody {
        crate::transition::test_body(epoch, holders, t, fp)
    }

    /// 3 of 5, held by validators 1 to 5.
    fn epoch1() -> ManifestBody {
        body(1, &[1, 2, 3, 4, 5], 3)
    }

    /// Our view as validator `me`: `live` members alive (ourselves
    /// included), none failing custody, none returning.
    fn assess(b: &ManifestBody, me: usize, live: &[usize]) -> Assessment<String> {
        let view: BTreeMap<Fingerprint, Option<String>> = live
            .iter()
            .map(|&i| (fp(i), (i != me).then(|| name(i))))
            .collect();
        let lost = b
            .shards
            .iter()
            .filter(|e| !view.contains_key(&e.recipient))
            .map(|e| e.index)
            .collect();
        Assessment {
            view,
            returning: BTreeMap::new(),
            lost,
        }
    }

    /// A pass as validator 1 with nothing gathered yet.
    fn pass<'a>(b: &'a ManifestBody, a: &'a Assessment<String>) -> Pass<'a, String> {
        Pass {
            me: "validator-1",
            body: b,
            assessed: a,
            rules: RULES,
            refresh: true,
            refresh_owed: None,
            newer: Probe::NotYet,
            log_on: false,
            log: None,
            named: None,
            lost_for: Some(Duration::ZERO),
            reshare_after: Duration::from_secs(30),
            share_len: None,
            round_ids: Vec::new(),
            signed_copy: None,
            disputes: BTreeSet::new(),
        }
    }

    /// As validator 1, every fact a leader's pass asks for: no refresh
    /// owed, no newer peer, no log, nobody named, shares short enough for
    /// one round, round ids 1, 2, ….
    fn gathered<'a>(b: &'a ManifestBody, a: &'a Assessment<String>) -> Pass<'a, String> {
        Pass {
            refresh_owed: Some(false),
            newer: Probe::NoneNewer,
            named: Some(BTreeMap::new()),
            share_len: Some(32),
            round_ids: (1..=8).map(|i| [i; 16]).collect(),
            ..pass(b, a)
        }
    }

    fn holders(members: &[(u8, usize)]) -> Holders<String> {
        members
            .iter()
            .map(|&(i, m)| (i, (m != 1).then(|| name(m))))
            .collect()
    }

    fn step(p: &Pass<String>) -> Step<String> {
        match decide(p) {
            Ok(Next::Step(s)) => s,
            other => panic!("expected a step, got {other:?}"),
        }
    }

    fn needs(p: &Pass<String>) -> Need<String> {
        match decide(p) {
            Ok(Next::Need(n)) => n,
            other => panic!("expected a need, got {other:?}"),
        }
    }

    #[test]
    fn an_unfinished_commit_of_this_epoch_is_finished_before_anything_is_assessed() {
        assert_eq!(resume(4, Some(4), false), Resume::FinishCommit);
        // We committed its successor, another holder did not.
        assert_eq!(resume(5, Some(4), true), Resume::FinishCommit);
        // The vault moved on by another transition, or further.
        for (epoch, ours) in [(5, false), (6, false), (6, true)] {
            assert_eq!(
                resume(epoch, Some(4), ours),
                Resume::Assess {
                    forget_unfinished: true
                }
            );
        }
        assert_eq!(
            resume(4, None, false),
            Resume::Assess {
                forget_unfinished: false
            }
        );
    }

    #[test]
    fn gauges_count_lost_shares_and_live_members_holding_none() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6, 7, 8]);
        assert_eq!(gauges(&b, &a), Gauges { lost: 2, spares: 3 });
    }

    #[test]
    fn fewer_live_holders_than_a_quorum_wait_for_the_operator() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 6, 7, 8]);
        // Decided before any costly fact is asked for.
        assert_eq!(step(&pass(&b, &a)), Step::TooFewLive { live: 2 });
    }

    #[test]
    fn only_the_live_holder_with_the_lowest_id_leads() {
        let b = epoch1();
        let a = assess(&b, 2, &[1, 2, 3, 4, 6]);
        // A member that does not lead asks for nothing: no probe, no disk.
        let p = Pass {
            me: "validator-2",
            ..pass(&b, &a)
        };
        assert_eq!(step(&p), Step::NotLeader);
        // Validator 1 dead: 2 leads.
        let a = assess(&b, 2, &[2, 3, 4, 5, 6]);
        let p = Pass {
            me: "validator-2",
            ..gathered(&b, &a)
        };
        assert!(matches!(step(&p), Step::Repair { .. }));
    }

    #[test]
    fn dealers_named_silent_by_more_than_f_recipients_are_left_out() {
        let named = |pairs: &[(u8, usize)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        let h = [1u8, 2, 3, 4, 5, 6];
        // Dealer 2 withheld from all five others.
        assert_eq!(pick_dealers(&h, &named(&[(2, 5)]), 1, 4), [1, 3, 4, 5, 6]);
        // One report leaves a dealer out while enough others remain (it
        // withheld from one recipient, or a liar named it: either way the
        // others deal).
        assert_eq!(pick_dealers(&h, &named(&[(3, 1)]), 1, 4), [1, 2, 4, 5, 6]);
        assert_eq!(pick_dealers(&h, &named(&[(3, 1)]), 0, 3), [1, 2, 4, 5, 6]);
        // Too many named once: those named by at most f deal.
        assert_eq!(
            pick_dealers(&h, &named(&[(1, 1), (2, 1), (3, 5)]), 1, 4),
            [1, 2, 4, 5, 6]
        );
        // Never fewer than needed: then everyone deals again.
        assert_eq!(pick_dealers(&h, &named(&[(1, 5), (2, 5), (3, 5)]), 1, 4), h);
    }

    /// Helpers in dispute (one withheld its pieces, or lied about the
    /// other's) are never picked together; with no clean set, the first t.
    #[test]
    fn disputed_helpers_are_kept_apart() {
        let h: Holders<String> = [1u8, 2, 3, 4, 5].iter().map(|&i| (i, None)).collect();
        let pick = |d: &[(u8, u8)]| -> Vec<u8> {
            pick_helpers(&h, 3, &d.iter().copied().collect())
                .iter()
                .map(|(i, _)| *i)
                .collect()
        };
        assert_eq!(pick(&[]), [1, 2, 3]);
        // Helper 2 withheld: 1 and 3 named it.
        assert_eq!(pick(&[(1, 2), (2, 3)]), [1, 3, 4]);
        // It also blamed them both back: still kept apart from each.
        assert_eq!(pick(&[(1, 2), (2, 3), (2, 1), (3, 2)]), [1, 3, 4]);
        // Two liars, each disputed with everyone it met.
        assert_eq!(pick(&[(1, 2), (2, 3), (1, 3), (2, 4)]), [1, 4, 5]);
        // No clean set: the first t.
        let all: Vec<(u8, u8)> = (1..=5)
            .flat_map(|a| (a + 1..=5).map(move |b| (a, b)))
            .collect();
        assert_eq!(pick(&all), [1, 2, 3]);
    }

    /// A copy of the successor that a holder signed and nobody committed
    /// (its leader died, or split the signers) is finished by whoever
    /// knows of it, leader or not, before anything new is proposed; not by
    /// a validator that is behind.
    #[test]
    fn a_signed_copy_is_finished_first_by_whoever_knows_of_it() {
        let b = epoch1();
        let a = assess(&b, 3, &[2, 3, 4, 6]);
        let key = vault::identity::SecretIdentity::generate("validator-1").unwrap();
        let mut next = b.clone();
        next.epoch = 2;
        let m = Manifest::sign(&next, key.public(), key.signing_key()).unwrap();
        let p = Pass {
            me: "validator-3",
            signed_copy: Some((m.clone(), [7; 32])),
            ..pass(&b, &a)
        };
        assert!(matches!(needs(&p), Need::NewerEpoch { .. }));
        let ahead = Pass {
            newer: Probe::Newer {
                peer: name(2),
                epoch: 2,
            },
            ..p.clone()
        };
        assert!(matches!(step(&ahead), Step::Stale { .. }));
        let p = Pass {
            newer: Probe::NoneNewer,
            ..p
        };
        match step(&p) {
            Step::FinishSigned {
                manifest,
                proposal,
                holders,
                next,
            } => {
                assert_eq!((manifest, proposal), (m, [7; 32]));
                assert_eq!(holders.len(), 3);
                assert_eq!(next.len(), 3);
            }
            other => panic!("expected FinishSigned, got {other:?}"),
        }
    }

    #[test]
    fn nothing_lost_and_no_refresh_owed_is_idle_and_probes_nobody() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 4, 5, 6]);
        // Refresh off: the marker is not even read.
        let p = Pass {
            refresh: false,
            ..pass(&b, &a)
        };
        assert_eq!(step(&p), Step::Idle);
        assert_eq!(needs(&pass(&b, &a)), Need::RefreshOwed);
        let p = Pass {
            refresh_owed: Some(false),
            ..pass(&b, &a)
        };
        assert_eq!(step(&p), Step::Idle);
    }

    #[test]
    fn an_owed_refresh_is_led_among_every_holder_unless_a_peer_is_ahead() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 4, 5, 6]);
        let mut p = Pass {
            refresh_owed: Some(true),
            ..pass(&b, &a)
        };
        assert_eq!(
            needs(&p),
            Need::NewerEpoch {
                ask: [2, 3, 4, 5].map(name).to_vec()
            }
        );
        p.newer = Probe::Newer {
            peer: name(3),
            epoch: 2,
        };
        assert_eq!(
            step(&p),
            Step::Stale {
                peer: name(3),
                epoch: 2,
                refreshing: true
            }
        );
        p.newer = Probe::NoneNewer;
        assert_eq!(
            step(&p),
            Step::Refresh {
                holders: holders(&[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)])
            }
        );
    }

    #[test]
    fn a_stale_leader_does_not_repair() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6, 7]);
        let mut p = pass(&b, &a);
        // Losses skip the refresh marker and go straight to the probe.
        assert_eq!(
            needs(&p),
            Need::NewerEpoch {
                ask: [2, 3].map(name).to_vec()
            }
        );
        p.newer = Probe::Newer {
            peer: name(2),
            epoch: 5,
        };
        assert_eq!(
            step(&p),
            Step::Stale {
                peer: name(2),
                epoch: 5,
                refreshing: false
            }
        );
    }

    #[test]
    fn a_successor_the_log_decided_is_finished_instead_of_a_new_proposal() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6, 7]);
        let mut p = Pass {
            log_on: true,
            ..gathered(&b, &a)
        };
        assert_eq!(needs(&p), Need::Log);
        let key = SecretIdentity::generate("validator-1").unwrap();
        let manifest = Manifest::sign(
            &body(2, &[1, 2, 3, 6, 7], 3),
            key.public(),
            key.signing_key(),
        )
        .unwrap();
        let expected = |certificate: Option<Vec<u8>>| Step::FinishDecided {
            manifest: manifest.clone(),
            certificate,
            holders: holders(&[(1, 1), (2, 2), (3, 3)]),
            next: holders(&[(1, 1), (2, 2), (3, 3), (4, 6), (5, 7)]),
        };
        for certificate in [None, Some(vec![7; 9])] {
            p.log = Some(Log {
                decided: Some(Decided {
                    manifest: manifest.clone(),
                    certificate: certificate.clone(),
                }),
                has_leader: false,
            });
            assert_eq!(step(&p), expected(certificate));
        }
        p.log = Some(Log {
            decided: Some(Decided {
                manifest: b"not a manifest".to_vec(),
                certificate: None,
            }),
            has_leader: true,
        });
        assert!(matches!(decide(&p), Err(HealError::Decided(_))));
    }

    #[test]
    fn nothing_is_proposed_while_the_log_has_no_leader() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6, 7]);
        let mut p = Pass {
            log_on: true,
            log: Some(Log::default()),
            ..gathered(&b, &a)
        };
        assert_eq!(step(&p), Step::WaitForLogLeader);
        p.log = Some(Log {
            decided: None,
            has_leader: true,
        });
        assert!(matches!(step(&p), Step::Repair { .. }));
    }

    #[test]
    fn too_few_spares_wait_until_reshare_after() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6]);
        let mut p = Pass {
            named: None,
            ..gathered(&b, &a)
        };
        assert_eq!(needs(&p), Need::Named);
        p.named = Some(BTreeMap::new());
        p.lost_for = Some(Duration::from_secs(29));
        assert_eq!(step(&p), Step::WaitForSpares { lost: 2, spares: 1 });
        // No loss recorded: never a re-share, even with no wait asked.
        p.lost_for = None;
        p.reshare_after = Duration::ZERO;
        assert_eq!(step(&p), Step::WaitForSpares { lost: 2, spares: 1 });
    }

    /// A spare named for another index of this polynomial is no spare.
    #[test]
    fn a_spare_named_for_another_index_does_not_count() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6, 7]);
        let p = Pass {
            named: Some(BTreeMap::from([(fp(7), 2)])),
            ..gathered(&b, &a)
        };
        assert_eq!(step(&p), Step::WaitForSpares { lost: 2, spares: 1 });
    }

    #[test]
    fn after_reshare_after_the_live_holders_shrink_to_the_policy() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6]);
        let p = Pass {
            lost_for: Some(Duration::from_secs(30)),
            ..gathered(&b, &a)
        };
        assert_eq!(
            step(&p),
            Step::Reshare {
                t_new: 2,
                n_new: 3,
                holders: holders(&[(1, 1), (2, 2), (3, 3)]),
            }
        );
    }

    #[test]
    fn a_shrink_below_the_floor_waits_for_the_operator() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3]);
        let p = Pass {
            lost_for: Some(Duration::from_secs(60)),
            rules: Rules { floor: 4, ..RULES },
            ..gathered(&b, &a)
        };
        assert_eq!(step(&p), Step::CannotReshare { n_new: 3, floor: 4 });
    }

    #[test]
    fn a_repair_gives_each_lost_share_a_spare_with_the_first_t_holders_helping() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 4, 7, 6]);
        let mut p = Pass {
            share_len: None,
            round_ids: Vec::new(),
            signed_copy: None,
            disputes: BTreeSet::new(),
            ..gathered(&b, &a)
        };
        // Our share is measured only once a repair is certain.
        assert_eq!(needs(&p), Need::Repair { round_ids: 1 });
        p.share_len = Some(32);
        p.round_ids = vec![[1; 16]];
        let plan = Plan {
            round: [1; 16],
            vault_id: b.vault_id,
            epoch: 1,
            targets: vec![Target {
                index: 5,
                replacement: fp(6),
            }],
            helpers: vec![1, 2, 3],
        };
        assert_eq!(
            step(&p),
            Step::Repair {
                holders: holders(&[(1, 1), (2, 2), (3, 3), (4, 4)]),
                helpers: holders(&[(1, 1), (2, 2), (3, 3)]),
                assignments: vec![(5, (fp(6), name(6)))],
                groups: vec![(plan, vec![name(6)])],
            }
        );
    }

    #[test]
    fn a_returning_holder_and_a_named_spare_keep_their_own_index() {
        let b = epoch1();
        let mut a = assess(&b, 1, &[1, 2, 3, 6, 7, 8]);
        // Validator 5 is back without its shard (counted lost by assess).
        a.returning.insert(5, (fp(5), name(5)));
        let p = Pass {
            named: Some(BTreeMap::from([(fp(8), 4)])),
            ..gathered(&b, &a)
        };
        let Step::Repair { assignments, .. } = step(&p) else {
            panic!("no repair");
        };
        assert_eq!(
            assignments,
            vec![(4, (fp(8), name(8))), (5, (fp(5), name(5)))]
        );
    }

    #[test]
    fn shares_too_long_for_one_record_split_the_repair_into_rounds() {
        let b = epoch1();
        let a = assess(&b, 1, &[1, 2, 3, 6, 7]);
        let mut p = Pass {
            share_len: Some(MAX_SHARE_LEN),
            ..gathered(&b, &a)
        };
        let Step::Repair { groups, .. } = step(&p) else {
            panic!("no repair");
        };
        let rounds: Vec<_> = groups
            .iter()
            .map(|(plan, to)| (plan.round, plan.indices(), to.clone()))
            .collect();
        assert_eq!(
            rounds,
            [
                ([1; 16], vec![4], vec![name(6)]),
                ([2; 16], vec![5], vec![name(7)])
            ]
        );
        p.share_len = Some(MAX_SHARE_LEN / 2);
        let Step::Repair { groups, .. } = step(&p) else {
            panic!("no repair");
        };
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0.indices(), [4, 5]);
        // Fewer round ids than rounds: refused, never a reused id.
        p.share_len = Some(MAX_SHARE_LEN);
        p.round_ids.truncate(1);
        assert!(matches!(
            decide(&p),
            Err(HealError::RoundIds { needed: 2, got: 1 })
        ));
    }
}
