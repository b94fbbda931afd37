//! The one place that decides whether a transition input may act, and
//! what it then does.
//!
//! Every proposal, certified proposal, abort and certified abort a
//! validator receives goes through [`admit`]: given what the validator
//! knows ([`Facts`], gathered by the driver: its verified chain, its rules,
//! its released vote, its own view) it either refuses the input, saying
//! why ([`Refusal`]), or returns the [`Effect`]s to carry out, in order.
//! The rules themselves stay where they are documented
//! ([`super::authorize`](mod@super::authorize)); this module only composes them, so no driver
//! can act on an input after checking one rule and forgetting another.
//! Nothing here touches the network, the store or a clock: the driver
//! (`crate::proposals`) reads the facts, calls [`admit`] and carries out
//! the effects, and the unit tests below feed inputs and read the
//! effects, as quinn-proto's and openraft's engines are tested.

use super::authorize::{self, AbortView, Chain, OwnView, Refusal, Rules};
use super::proposal::{Abort, Action, CertifiedAbort, CertifiedProposal, Proposal};
use vault::identity::Fingerprint;

/// What the validator knows when an input arrives.
pub struct Facts<'a> {
    /// Its verified chain of the input's vault (for a replacement that
    /// held nothing, the chain the caller sent, verified from the
    /// operator).
    pub chain: Chain<'a>,
    /// The vault's transition rules.
    pub rules: &'a Rules,
    /// Its own identity fingerprint.
    pub me: Fingerprint,
    /// The attempt whose vote it released on the input's epoch (it gave
    /// that attempt up), if any.
    pub released: Option<u32>,
}

/// An input that asks the validator to act.
pub enum Input<'a> {
    /// `POST /v1/vote`: a proposal to vote for, judged on our own view.
    Proposal {
        /// The proposal.
        proposal: &'a Proposal,
        /// Our own view of the vault.
        view: &'a OwnView,
        /// Whether we hold a shard of the current epoch (then our share
        /// and next key are made ready while the proposer gathers votes).
        holds_shard: bool,
    },
    /// `POST /v1/transition`: a certified proposal to act on.
    Certified(&'a CertifiedProposal),
    /// `POST /v1/abort` (`PQVB`): the attempt's proposer asks us to sign
    /// its abort.
    Abort {
        /// The abort.
        abort: &'a Abort,
        /// What we know about the attempt.
        view: &'a AbortView,
    },
    /// `POST /v1/abort` (`PQVW`): a quorum aborted the attempt.
    CertifiedAbort {
        /// The certified abort.
        cert: &'a CertifiedAbort,
        /// What we know about the attempt.
        view: &'a AbortView,
    },
}

/// What an admitted input does, carried out by the driver in order. The
/// first effect that fails stops the rest (a durable record that fails
/// means no answer is signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Durably record the (replacement, index) pairs of the repair we vote
    /// for; the store refuses a pair that gives a member a second index of
    /// the epoch's polynomial.
    Name(Vec<(Fingerprint, u8)>),
    /// Durably record our vote for this attempt's proposal.
    RecordVote {
        /// Attempt.
        attempt: u32,
        /// Proposal digest.
        digest: [u8; 32],
    },
    /// Remember the proposal we voted for and who sent it (only that
    /// proposer may later ask us to abort it).
    RememberVote,
    /// Answer with our signed vote.
    SignVote,
    /// Unseal our share and make epoch `epoch`'s KEM key ahead of
    /// `prepare`.
    Prewarm {
        /// The successor epoch.
        epoch: u64,
    },
    /// Start our part (helper or target) in repair plan `i` of the
    /// proposal.
    StartRepair(usize),
    /// Start our part in the proposal's re-share.
    StartReshare,
    /// We have no round in a certified repair but hold a share of the
    /// epoch: record its (replacement, index) pairs and stand by it as a
    /// witness, able to sign its successor (D46).
    Witness(Vec<(Fingerprint, u8)>),
    /// Remember the certified proposal we act on and who sent it.
    RememberActed,
    /// Durably release our vote for the attempt: its proposal never acts
    /// here again ([`authorize::not_aborted`]).
    ReleaseVote,
    /// Forget the attempt's rounds, with our dealing in them.
    ForgetRounds,
    /// Answer with our signed abort vote.
    SignAbortVote,
}

/// Decides whether `input` may act here and what it does.
pub fn admit(facts: &Facts, input: Input) -> Result<Vec<Effect>, Refusal> {
    match input {
        Input::Proposal {
            proposal: p,
            view,
            holds_shard,
        } => {
            // An attempt we gave up never gets our vote again, not even
            // the same proposal's (a re-vote would un-release it).
            authorize::not_aborted(facts.released, p)?;
            authorize::judge(&facts.chain, facts.rules, view, p)?;
            let mut out = Vec::new();
            if matches!(p.action, Action::Repair(_)) {
                out.push(Effect::Name(p.action.named()));
            }
            let digest = p.digest();
            if view.voted.is_none_or(|v| v.digest != digest) {
                out.push(Effect::RecordVote {
                    attempt: p.attempt,
                    digest,
                });
            }
            out.extend([Effect::RememberVote, Effect::SignVote]);
            if holds_shard {
                out.push(Effect::Prewarm {
                    epoch: p.from_epoch + 1,
                });
            }
            Ok(out)
        }
        Input::Certified(cert) => {
            let p = authorize::authorize(&facts.chain, facts.rules, cert)?;
            authorize::not_aborted(facts.released, p)?;
            let holder = facts
                .chain
                .current()
                .and_then(|c| c.shards.iter().find(|e| e.recipient == facts.me))
                .map(|e| e.index);
            let mut out = Vec::new();
            match &p.action {
                Action::Repair(plans) => {
                    for (i, plan) in plans.iter().enumerate() {
                        let helper = holder.is_some_and(|k| plan.helpers.contains(&k));
                        if helper || plan.target_of(&facts.me).is_some() {
                            out.push(Effect::StartRepair(i));
                        }
                    }
                    if out.is_empty() {
                        if holder.is_none() {
                            return Err(Refusal::NoPart);
                        }
                        out.push(Effect::Witness(p.action.named()));
                    }
                }
                Action::Reshare(_) => out.push(Effect::StartReshare),
            }
            out.push(Effect::RememberActed);
            Ok(out)
        }
        Input::Abort { abort, view } => {
            authorize::judge_abort(&facts.chain, view, abort)?;
            Ok(vec![
                Effect::ReleaseVote,
                Effect::ForgetRounds,
                Effect::SignAbortVote,
            ])
        }
        Input::CertifiedAbort { cert, view } => {
            let a = authorize::authorize_abort(&facts.chain, facts.rules, cert)?;
            if view.successor {
                // Our signed successor stays what it is.
                return Ok(Vec::new());
            }
            let ours = view
                .voted
                .is_some_and(|v| v.attempt == a.attempt && v.digest == a.proposal);
            Ok(if ours {
                vec![Effect::ReleaseVote, Effect::ForgetRounds]
            } else {
                // Not our vote, but maybe our dealing: a holder that dealt
                // in the attempt's round without voting for it (its vote
                // came too late) would otherwise refuse every next round
                // for REDEAL_AFTER.
                vec![Effect::ForgetRounds]
            })
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each input kind fed to the gate: the exact effects it admits, in
    //! order, and the refusal that stops it before any effect.
    use super::*;
    use crate::transition::authorize::tests::{
        certify, certify_abort, fp, genesis, repair, shrink, view, RULES,
    };
    use crate::transition::authorize::PastVote;
    use std::time::Duration;
    use vault::manifest::ManifestBody;

    fn facts(history: &[ManifestBody], me: usize, released: Option<u32>) -> Facts<'_> {
        Facts {
            chain: Chain { history },
            rules: &RULES,
            me: fp(me),
            released,
        }
    }

    fn voted(p: &Proposal) -> Option<PastVote> {
        Some(PastVote {
            attempt: p.attempt,
            digest: p.digest(),
            age: Duration::from_secs(1),
        })
    }

    /// A vote names its replacements and records itself durably before it
    /// is signed; the share and next key are made ready last, by holders.
    #[test]
    fn a_vote_is_recorded_before_it_is_signed() {
        let h = genesis();
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let v = view(&[5]);
        let input = |holds_shard| Input::Proposal {
            proposal: &p,
            view: &v,
            holds_shard,
        };
        assert_eq!(
            admit(&facts(&h, 1, None), input(true)).unwrap(),
            vec![
                Effect::Name(vec![(fp(6), 5)]),
                Effect::RecordVote {
                    attempt: 0,
                    digest: p.digest()
                },
                Effect::RememberVote,
                Effect::SignVote,
                Effect::Prewarm { epoch: 2 },
            ]
        );
        // Asked again for the same proposal: the vote on disk stands.
        let again = OwnView {
            voted: voted(&p),
            ..view(&[5])
        };
        assert_eq!(
            admit(
                &facts(&h, 1, None),
                Input::Proposal {
                    proposal: &p,
                    view: &again,
                    holds_shard: false,
                }
            )
            .unwrap(),
            vec![
                Effect::Name(vec![(fp(6), 5)]),
                Effect::RememberVote,
                Effect::SignVote,
            ]
        );
        // A re-share names nobody.
        let s = shrink(2, &[1, 2, 3]);
        let v = view(&[4, 5]);
        let effects = admit(
            &facts(&h, 1, None),
            Input::Proposal {
                proposal: &s,
                view: &v,
                holds_shard: false,
            },
        )
        .unwrap();
        assert_eq!(
            effects[0],
            Effect::RecordVote {
                attempt: 0,
                digest: s.digest()
            }
        );
    }

    /// A proposal of an attempt we gave up, or one our own view does not
    /// bear out, has no effect at all.
    #[test]
    fn a_refused_proposal_has_no_effect() {
        let h = genesis();
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let v = view(&[5]);
        let input = Input::Proposal {
            proposal: &p,
            view: &v,
            holds_shard: true,
        };
        assert_eq!(
            admit(&facts(&h, 1, Some(0)), input),
            Err(Refusal::Aborted(0))
        );
        let alive = view(&[]);
        assert_eq!(
            admit(
                &facts(&h, 1, None),
                Input::Proposal {
                    proposal: &p,
                    view: &alive,
                    holds_shard: true,
                }
            ),
            Err(Refusal::NotLost(5))
        );
    }

    /// A certified repair starts the rounds of its helpers and its
    /// replacement; a holder with no round witnesses it; a member with no
    /// part, an uncertified or an aborted one is refused.
    #[test]
    fn a_certified_repair_starts_exactly_our_part() {
        let h = genesis();
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let cert = certify(&p, &[1, 2, 3]);
        for me in [1, 2, 3, 6] {
            assert_eq!(
                admit(&facts(&h, me, None), Input::Certified(&cert)).unwrap(),
                vec![Effect::StartRepair(0), Effect::RememberActed],
                "validator-{me}"
            );
        }
        assert_eq!(
            admit(&facts(&h, 4, None), Input::Certified(&cert)).unwrap(),
            vec![Effect::Witness(vec![(fp(6), 5)]), Effect::RememberActed]
        );
        assert_eq!(
            admit(&facts(&h, 7, None), Input::Certified(&cert)),
            Err(Refusal::NoPart)
        );
        assert!(matches!(
            admit(&facts(&h, 1, None), Input::Certified(&certify(&p, &[1, 2]))),
            Err(Refusal::Uncertified { .. })
        ));
        assert_eq!(
            admit(&facts(&h, 1, Some(0)), Input::Certified(&cert)),
            Err(Refusal::Aborted(0))
        );
        let s = shrink(2, &[1, 2, 3]);
        assert_eq!(
            admit(
                &facts(&h, 7, None),
                Input::Certified(&certify(&s, &[1, 2, 3]))
            )
            .unwrap(),
            vec![Effect::StartReshare, Effect::RememberActed]
        );
    }

    /// An abort asked by its proposer of a voter releases the vote and
    /// forgets the rounds before the abort vote is signed; a certified
    /// abort releases only our own vote, and nothing once we signed a
    /// successor.
    #[test]
    fn aborts_release_before_they_are_signed() {
        let h = genesis();
        let p = repair(1, 5, 6, vec![1, 2, 3]);
        let a = Abort::of(&p);
        let ours = AbortView {
            voted: voted(&p),
            from_proposer: true,
            successor: false,
        };
        assert_eq!(
            admit(
                &facts(&h, 1, None),
                Input::Abort {
                    abort: &a,
                    view: &ours
                }
            )
            .unwrap(),
            vec![
                Effect::ReleaseVote,
                Effect::ForgetRounds,
                Effect::SignAbortVote
            ]
        );
        let stranger = AbortView {
            from_proposer: false,
            ..ours
        };
        assert!(matches!(
            admit(
                &facts(&h, 1, None),
                Input::Abort {
                    abort: &a,
                    view: &stranger
                }
            ),
            Err(Refusal::AbortRefused(_))
        ));
        let cert = |voters: &[usize]| certify_abort(&a, voters);
        let quorum = cert(&[1, 2, 3]);
        let certified = |view: &AbortView| {
            admit(
                &facts(&h, 4, None),
                Input::CertifiedAbort {
                    cert: &quorum,
                    view,
                },
            )
        };
        assert_eq!(
            certified(&ours).unwrap(),
            vec![Effect::ReleaseVote, Effect::ForgetRounds]
        );
        let not_ours = AbortView {
            voted: None,
            ..ours
        };
        assert_eq!(certified(&not_ours).unwrap(), vec![Effect::ForgetRounds]);
        let signed = AbortView {
            successor: true,
            ..ours
        };
        assert_eq!(certified(&signed).unwrap(), vec![]);
        assert!(matches!(
            admit(
                &facts(&h, 4, None),
                Input::CertifiedAbort {
                    cert: &cert(&[1, 2]),
                    view: &ours,
                }
            ),
            Err(Refusal::Uncertified { .. })
        ));
    }

    /// Every refusal's metric reason is exported from the start (an alert
    /// on a family with no series never fires).
    #[test]
    fn every_refusal_reason_is_a_known_metric_label() {
        let all = [
            Refusal::Stale {
                found: 1,
                current: 2,
            },
            Refusal::NoChain,
            Refusal::BarePlan,
            Refusal::Uncertified {
                valid: 1,
                needed: 2,
            },
            Refusal::BadVote(String::new()),
            Refusal::Plan(String::new()),
            Refusal::ReplacementReused {
                replacement: String::new(),
                had: 1,
                asked: 2,
            },
            Refusal::Policy(String::new()),
            Refusal::NotLost(1),
            Refusal::TooEarly {
                waited_ms: 1,
                needed_ms: 2,
            },
            Refusal::AlreadyVoted {
                attempt: 0,
                age_ms: 1,
                timeout_ms: 2,
            },
            Refusal::Aborted(0),
            Refusal::ProposerConvicted,
            Refusal::AbortRefused(String::new()),
            Refusal::NoPart,
        ];
        for r in all {
            assert!(
                crate::metrics::REFUSAL_REASONS.contains(&r.reason()),
                "{} ({r:?}) is not in REFUSAL_REASONS",
                r.reason()
            );
        }
    }
}
