//! Simulation of the vote on transition proposals (issue 10): the epoch's
//! holders, `f` of them lying, receive rival repairs and shrinks in any order
//! with the clock moving between deliveries, and are asked to vote for a
//! rival, to sign its successor (asked by its proposer, or by another
//! holder to finish the copy), or to sign the abort of its attempt. Each
//! honest holder decides with the core's own functions and remembers what
//! it did exactly as the drivers do: the gate ([`admit`], as
//! `crate::proposals` calls it) for a vote, carrying out its effects (one
//! stored vote per epoch with its time, the named map) and for an abort
//! (asked by the proposer, which may lie), after which the attempt is
//! released; and for a successor, the machine `crate::epochs::sign` runs
//! ([`Signing`], applying `successor::carry`, `finish` and [`Vote`]): the
//! rival certified, no other successor of the epoch signed (D38), and, for
//! an attempt it gave up, never for a re-share (the dealing check needs the
//! round the abort forgot) and for a repair only to finish a copy another
//! holder signed first (D49). Liars do everything asked. Over every run proptest tries, safety holds:
//!
//! * no two proposals of one (epoch, attempt) both reach the quorum
//!   (attack 6, equivocation, at the vote);
//! * no two certified proposals, of any attempts, give one replacement two
//!   share indices, so nobody collects two shares of one polynomial
//!   (attack 1, harvest);
//! * no two rivals' successors are both certified (no fork), and no
//!   re-share has both its successor and its abort certified. (A repair
//!   may: a holder that signed its abort still finishes a copy another
//!   holder signed, as docs/protocol.md says; safe for the reasons several
//!   certified attempts are, D27. The simulation showed that two doc
//!   comments claimed otherwise; docs/decisions.md D44.)
//! * a certified shrink keeps the policy's threshold, never below the
//!   floor, though liars propose one lower (attack 2, threshold lowering),
//!   and every share a certified proposal replaces or leaves out is lost
//!   in some honest voter's own view.
//!
//! All rest on the quorum `max(t, ceil((n + f + 1) / 2))`: two quorums
//! share more than `f` holders, so at least one honest holder, which never
//! votes twice in one attempt, names one replacement twice, or signs two
//! successors.
//!
//! The runs are not vacuous (`the_simulation_reaches_every_outcome`), and
//! broken rules are found and shrunk to a minimal run (the figures are in
//! docs/decisions.md D44).

use super::authorize::{not_aborted, AbortView, Chain, OwnView, PastVote, Rules};
use super::gate::{admit, Effect, Facts, Input};
use super::proposal::Abort;
use super::proposal::{Action, Proposal};
use super::signing::{Signing, Work};
use super::successor::{Carried, Decider, Made, OurRound, Shape, Vote};
use crate::repair::{Plan as RepairPlan, Target};
use crate::reshare::Plan as ResharePlan;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use vault::identity::Fingerprint;
use vault::manifest::{ManifestBody, VaultId};
use vault::policy::Policy;

fn fp(member: usize) -> Fingerprint {
    Fingerprint::from_bytes([member as u8; 32])
}

/// One rival repair: share `target` to spare `n + 1 + spare`, helped by
/// the first `t` other holders after `offset`, under `attempt`.
#[derive(Debug, Clone)]
struct Rival {
    target: u8,
    spare: usize,
    offset: usize,
    attempt: u32,
    /// Instead of a repair, a shrink that leaves `target` out: at the
    /// policy's threshold (`Some(false)`), or one lower (`Some(true)`, a
    /// liar trying to lower the threshold).
    shrink: Option<bool>,
}

/// How a holder's own view is drawn.
#[derive(Debug, Clone, Copy)]
enum View {
    /// Every rival's target lost (and maybe more).
    Agrees,
    /// Some shares lost, at random.
    Some,
    /// Every holder alive.
    AllAlive,
}

/// What a holder is asked about a rival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Its vote for the rival.
    Vote,
    /// Its signature on the rival's successor, asked by the proposer.
    Successor,
    /// The same, asked by another holder to finish the copy (D49).
    Finish,
    /// Its signature on the abort of the rival's attempt.
    Abort,
}

/// A run: an `n`-holder, `t`-threshold vault under `f`, its liars, each
/// honest holder's own view of the lost shares, the rivals, and the
/// deliveries `(holder, rival, ask, clock advance)` in order.
#[derive(Debug, Clone)]
struct Run {
    n: u8,
    f: u8,
    t: u8,
    liars: BTreeSet<u8>,
    views: Vec<BTreeSet<u8>>,
    rivals: Vec<Rival>,
    deliveries: Vec<(usize, usize, Ask, Duration)>,
}

fn run() -> impl Strategy<Value = Run> {
    (4u8..=7)
        .prop_flat_map(|n| (Just(n), 0..=(n - 1) / 3))
        .prop_flat_map(|(n, f)| (Just(n), Just(f), (f + 1).max(2)..=n - 1))
        .prop_flat_map(|(n, f, t)| {
            let holder = 1..=n;
            let shrink = prop_oneof![
                3 => Just(None),
                1 => Just(Some(false)),
                1 => Just(Some(true)),
            ];
            let rival = (
                holder.clone(),
                0..3usize,
                0..usize::from(n),
                0..3u32,
                shrink,
            )
                .prop_map(|(target, spare, offset, attempt, shrink)| Rival {
                    target,
                    spare,
                    offset,
                    attempt,
                    shrink,
                });
            // The clock stands, moves a little, or past the attempt timeout.
            let ask = prop_oneof![
                5 => Just(Ask::Vote),
                3 => Just(Ask::Successor),
                1 => Just(Ask::Finish),
                2 => Just(Ask::Abort),
            ];
            let advance = prop_oneof![
                Just(Duration::ZERO),
                Just(Duration::from_secs(1)),
                Just(Duration::from_secs(26)),
            ];
            (
                Just(n),
                Just(f),
                Just(t),
                proptest::sample::subsequence((1..=n).collect::<Vec<u8>>(), usize::from(f)),
                // Each holder's own view: mostly every rival's target lost
                // (the views agree), else some of them, or none (a holder
                // that sees everyone alive, as every holder does of a
                // target that is in fact alive).
                proptest::collection::vec(
                    (
                        proptest::collection::btree_set(holder, 0..=usize::from(n)),
                        prop_oneof![6 => Just(View::Agrees), 1 => Just(View::Some), 3 => Just(View::AllAlive)],
                    ),
                    usize::from(n),
                ),
                proptest::collection::vec(rival, 2..6),
                proptest::collection::vec((0..usize::from(n), 0..6usize, ask, advance), 20..120),
            )
        })
        .prop_map(|(n, f, t, liars, views, rivals, deliveries)| Run {
            n,
            f,
            t,
            liars: liars.into_iter().collect(),
            views: views
                .into_iter()
                .map(|(mut lost, view)| match view {
                    View::Agrees => {
                        lost.extend(rivals.iter().map(|r| r.target));
                        lost
                    }
                    View::Some => lost,
                    View::AllAlive => BTreeSet::new(),
                })
                .collect(),
            deliveries: deliveries
                .into_iter()
                .map(|(h, r, ask, a)| (h, r % rivals.len(), ask, a))
                .collect(),
            rivals,
        })
}

impl Run {
    fn genesis(&self) -> ManifestBody {
        let holders: Vec<usize> = (1..=usize::from(self.n)).collect();
        super::test_body(1, &holders, self.t, fp)
    }

    fn proposal(&self, r: &Rival) -> Proposal {
        let helpers: Vec<u8> = {
            let others: Vec<u8> = (1..=self.n).filter(|i| *i != r.target).collect();
            let mut h: Vec<u8> = (0..usize::from(self.t))
                .map(|k| others[(r.offset + k) % others.len()])
                .collect();
            h.sort_unstable();
            h
        };
        let vault_id = VaultId::from_bytes([9; 16]);
        if let Some(lowered) = r.shrink {
            let kept: Vec<u8> = (1..=self.n).filter(|i| *i != r.target).collect();
            let policy = self.rules().shrink_threshold(self.n - 1).unwrap_or(2);
            return Proposal {
                vault_id,
                from_epoch: 1,
                attempt: r.attempt,
                action: Action::Reshare(ResharePlan {
                    round: [r.target | 0x80; 16],
                    vault_id,
                    epoch: 1,
                    t_new: if lowered { policy - 1 } else { policy },
                    recipients: kept.iter().map(|i| fp(usize::from(*i))).collect(),
                    dealers: kept,
                }),
            };
        }
        Proposal {
            vault_id,
            from_epoch: 1,
            attempt: r.attempt,
            action: Action::Repair(vec![RepairPlan {
                round: [r.target; 16],
                vault_id,
                epoch: 1,
                targets: vec![Target {
                    index: r.target,
                    replacement: fp(usize::from(self.n) + 1 + r.spare),
                }],
                helpers,
            }]),
        }
    }

    fn rules(&self) -> Rules {
        Rules {
            policy: Policy::Majority,
            f: self.f,
            floor: 2,
        }
    }

    /// Plays the deliveries; gives, per rival, who voted for it, who
    /// signed its successor and who signed its abort.
    fn play(&self) -> Outcome {
        let history = vec![self.genesis()];
        let rules = self.rules();
        let quorum = rules.quorum(self.t, self.n);
        let proposals: Vec<Proposal> = self.rivals.iter().map(|r| self.proposal(r)).collect();
        let holders = self.views.len();
        // Per holder: (attempt, digest, voted at), the named map, the
        // attempt released by its last abort signature, and the successor
        // it signed.
        let mut voted: Vec<Option<(u32, [u8; 32], Duration)>> = vec![None; holders];
        let mut named: Vec<BTreeMap<Fingerprint, u8>> = vec![BTreeMap::new(); holders];
        let mut released: Vec<Option<u32>> = vec![None; holders];
        let mut signed: Vec<Option<usize>> = vec![None; holders];
        let mut out = Outcome {
            votes: vec![BTreeSet::new(); proposals.len()],
            successors: vec![BTreeSet::new(); proposals.len()],
            aborts: vec![BTreeSet::new(); proposals.len()],
            finished: 0,
        };
        // What holder `h` knows when asked, as `crate::proposals` gathers it.
        let facts_of = |h: usize, released: Option<u32>| Facts {
            chain: Chain { history: &history },
            rules: &rules,
            me: fp(h + 1),
            released,
        };
        let mut now = Duration::ZERO;
        for &(h, r, ask, advance) in &self.deliveries {
            now += advance;
            let holder = h as u8 + 1;
            let p = &proposals[r];
            let liar = self.liars.contains(&holder);
            let past = voted[h].map(|(attempt, digest, at)| PastVote {
                attempt,
                digest,
                age: now - at,
            });
            match ask {
                Ask::Vote => {
                    if !liar {
                        let view = OwnView {
                            lost: Some(self.views[h].clone()),
                            lost_for: Duration::from_secs(60),
                            reshare_after: Duration::from_secs(30),
                            voted: past,
                            named: named[h].clone(),
                            proposer_convicted: false,
                        };
                        let facts = facts_of(h, released[h]);
                        let input = Input::Proposal {
                            proposal: p,
                            view: &view,
                            holds_shard: true,
                        };
                        let Ok(effects) = admit(&facts, input) else {
                            continue;
                        };
                        for e in effects {
                            match e {
                                Effect::Name(names) => named[h].extend(names),
                                Effect::RecordVote { attempt, digest } => {
                                    voted[h] = Some((attempt, digest, now))
                                }
                                _ => {}
                            }
                        }
                    }
                    out.votes[r].insert(holder);
                }
                Ask::Successor | Ask::Finish => {
                    if !liar {
                        // The driver's rule (`signing::Signing`, applying
                        // `successor::carry`, `finish`, `Vote`): a certified proposal, asked of us by its
                        // proposer; one we gave up only finished, once
                        // another holder signed its copy (D49); a re-share
                        // we gave up never (its round, which the dealing
                        // check needs, was forgotten with the abort); one
                        // successor per epoch. A rival's successor is
                        // named by its index.
                        let certified = out.votes[r].len() >= quorum;
                        let given_up = not_aborted(released[h], p).is_err();
                        let reshare = matches!(p.action, Action::Reshare(_));
                        let decider = Decider::Holders(certified.then_some(Carried {
                            written_by_proposer: true,
                            asked_by_proposer: ask == Ask::Successor,
                            standing: !given_up,
                        }));
                        let round = reshare.then_some(OurRound {
                            in_proposal: true,
                            kept: !given_up,
                        });
                        let digest = |r: usize| [r as u8; 32];
                        let vote = Vote::of(signed[h].map(digest), &digest(r));
                        let Ok(mut signing) = Signing::new(vote == Vote::Again, false, false)
                        else {
                            continue;
                        };
                        // The driver's work, in the machine's order; the
                        // rivals are well shaped and the holders they
                        // replace lost (the vote checked that), so only
                        // what the machine decides, the exchange (one copy
                        // per rival: the verdict is to sign) and the vote
                        // file can refuse.
                        let made = if reshare {
                            Made::Reshare
                        } else {
                            Made::SamePolynomial
                        };
                        let mut signs = false;
                        while let Some(work) = signing.poll() {
                            let go_on = match work {
                                Work::Shape => signing.shaped(Ok(Shape::default()), made).is_ok(),
                                Work::Carry => signing.carried(decider, round).is_ok(),
                                Work::Exchange => signing
                                    .exchanged(true, !out.successors[r].is_empty())
                                    .is_ok(),
                                Work::Vote => vote != Vote::Spent,
                                Work::Sign => {
                                    signs = true;
                                    false
                                }
                                _ => true,
                            };
                            if !go_on {
                                break;
                            }
                        }
                        if !signs {
                            continue;
                        }
                        out.finished += usize::from(ask == Ask::Finish);
                        signed[h] = Some(r);
                    }
                    out.successors[r].insert(holder);
                }
                Ask::Abort => {
                    if !liar {
                        let abort = Abort::of(p);
                        let view = AbortView {
                            voted: past,
                            from_proposer: true,
                            successor: signed[h].is_some(),
                        };
                        let facts = facts_of(h, released[h]);
                        let input = Input::Abort {
                            abort: &abort,
                            view: &view,
                        };
                        let Ok(effects) = admit(&facts, input) else {
                            continue;
                        };
                        if effects.contains(&Effect::ReleaseVote) {
                            released[h] = released[h].max(Some(p.attempt));
                        }
                    }
                    out.aborts[r].insert(holder);
                }
            }
        }
        out
    }

    /// The rivals that reached the quorum of votes.
    fn certified(&self) -> Vec<Proposal> {
        let quorum = self.rules().quorum(self.t, self.n);
        self.play()
            .votes
            .iter()
            .zip(&self.rivals)
            .filter(|(v, _)| v.len() >= quorum)
            .map(|(_, r)| self.proposal(r))
            .collect()
    }
}

/// Who did what for each rival, by holder.
struct Outcome {
    votes: Vec<BTreeSet<u8>>,
    successors: Vec<BTreeSet<u8>>,
    aborts: Vec<BTreeSet<u8>>,
    /// Signatures honest holders gave when asked to finish a copy by a
    /// holder other than its proposer.
    finished: usize,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn certified_proposals_never_conflict(run in run()) {
        let certified = run.certified();
        for (i, a) in certified.iter().enumerate() {
            for b in &certified[i + 1..] {
                if a.digest() == b.digest() {
                    continue;
                }
                prop_assert_ne!(a.attempt, b.attempt, "two proposals of one attempt certified");
                for (ra, ia) in a.action.named() {
                    for (rb, ib) in b.action.named() {
                        prop_assert!(ra != rb || ia == ib, "one replacement given shares {} and {}", ia, ib);
                    }
                }
            }
        }
    }

    #[test]
    fn certified_proposals_keep_the_threshold_and_take_only_the_lost(run in run()) {
        let rules = run.rules();
        let quorum = rules.quorum(run.t, run.n);
        let genesis = run.genesis();
        let out = run.play();
        for (r, rival) in run.rivals.iter().enumerate() {
            if out.votes[r].len() < quorum {
                continue;
            }
            let p = run.proposal(rival);
            if let Action::Reshare(x) = &p.action {
                let n_new = x.recipients.len() as u8;
                prop_assert!(x.t_new >= rules.floor, "t' = {} below the floor", x.t_new);
                prop_assert_eq!(Some(x.t_new), rules.shrink_threshold(n_new), "not the policy's t'");
            }
            // Every share it takes is lost in some honest voter's own view.
            let honest: Vec<u8> = out.votes[r].iter().copied().filter(|h| !run.liars.contains(h)).collect();
            for i in p.taken_from(&genesis) {
                prop_assert!(
                    honest.iter().any(|h| run.views[usize::from(*h) - 1].contains(&i)),
                    "share {} taken though no honest voter saw it lost", i
                );
            }
        }
    }

    #[test]
    fn no_fork_and_no_successor_of_an_aborted_reshare(run in run()) {
        let quorum = run.rules().quorum(run.t, run.n);
        let out = run.play();
        let digests: Vec<[u8; 32]> = run.rivals.iter().map(|r| run.proposal(r).digest()).collect();
        let succeeded: BTreeSet<[u8; 32]> = (0..digests.len())
            .filter(|r| out.successors[*r].len() >= quorum)
            .map(|r| digests[r])
            .collect();
        prop_assert!(succeeded.len() <= 1, "two successors of one epoch certified");
        for (r, digest) in digests.iter().enumerate() {
            let reshare = run.rivals[r].shrink.is_some();
            let aborted = out.aborts[r].len() >= quorum;
            prop_assert!(
                !(reshare && aborted && succeeded.contains(digest)),
                "re-share rival {}'s successor and its abort both certified", r
            );
        }
    }
}

/// The simulation is not vacuous: honest holders that agree certify a
/// proposal, and a rival of the same attempt gets the liars' votes only.
#[test]
fn agreeing_holders_certify_and_a_rival_gets_only_the_liars() {
    let rival = |target, spare, attempt| Rival {
        target,
        spare,
        offset: 0,
        attempt,
        shrink: None,
    };
    let ask = |h, r, ask| (h, r, ask, Duration::ZERO);
    // 7 holders, f = 2 (liars 6 and 7), t = 3: quorum 5.
    let mut run = Run {
        n: 7,
        f: 2,
        t: 3,
        liars: BTreeSet::from([6, 7]),
        views: vec![BTreeSet::from([4]); 7],
        rivals: vec![rival(4, 0, 0), rival(4, 1, 0)],
        deliveries: (0..7).map(|h| ask(h, 0, Ask::Vote)).collect(),
    };
    assert_eq!(run.certified().len(), 1, "five holders agree: certified");
    // The rival of the same attempt reaches the liars and the honest
    // holders that voted already: refused by each, not certified.
    run.deliveries.extend((0..7).map(|h| ask(h, 1, Ask::Vote)));
    assert_eq!(run.certified().len(), 1, "no second proposal of attempt 0");
    assert_eq!(run.play().votes[1], BTreeSet::from([6, 7]));
    // Holders 1 and 2 sign rival 0's abort, then nobody signs its
    // successor but holders 3..=5 and the liars: five, certified; the
    // abort has four signatures (1, 2 and the liars), not certified, and
    // holders 3..=5 now refuse to sign it.
    run.deliveries.extend((0..2).map(|h| ask(h, 0, Ask::Abort)));
    run.deliveries
        .extend((0..7).map(|h| ask(h, 0, Ask::Successor)));
    run.deliveries.extend((0..7).map(|h| ask(h, 0, Ask::Abort)));
    let out = run.play();
    assert_eq!(out.successors[0], BTreeSet::from([3, 4, 5, 6, 7]));
    assert_eq!(out.aborts[0], BTreeSet::from([1, 2, 6, 7]));
}

/// Over the runs proptest draws, every outcome the properties speak of
/// happens: certified proposals (two in some runs, shrinks in some),
/// certified successors and certified aborts.
#[test]
fn the_simulation_reaches_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut one, mut two, mut shrunk, mut succeeded, mut aborted) = (0, 0, 0, 0, 0);
    let mut finished = 0;
    for _ in 0..1024 {
        let Ok(tree) = run().new_tree(&mut runner) else {
            continue;
        };
        let run = tree.current();
        let quorum = run.rules().quorum(run.t, run.n);
        let certified = run.certified();
        one += usize::from(!certified.is_empty());
        two += usize::from(certified.len() >= 2);
        shrunk += usize::from(
            certified
                .iter()
                .any(|p| matches!(p.action, Action::Reshare(_))),
        );
        let out = run.play();
        succeeded += usize::from(out.successors.iter().any(|s| s.len() >= quorum));
        aborted += usize::from(out.aborts.iter().any(|a| a.len() >= quorum));
        finished += usize::from(out.finished > 0);
    }
    eprintln!("of 1024 runs: {one} certify a proposal, {two} two, {shrunk} a shrink, {succeeded} a successor, {aborted} an abort, {finished} a copy finished at another holder's request");
    assert!(
        one > 250 && two > 30 && shrunk > 60 && succeeded > 50 && aborted > 20 && finished > 10
    );
}
