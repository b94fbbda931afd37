//! The leader's side of one transition attempt, as a state machine.
//!
//! A certified attempt goes through fixed phases, and what a failure calls
//! for depends on how far the attempt got. Before the successor goes to be
//! signed, the attempt is aborted with a quorum's signatures, so the next
//! need not wait for the attempt timeout, and who withheld is recorded
//! first. After that it is never aborted: votes and signatures are cast,
//! and a later pass finishes the successor. [`Attempt`] keeps that rule in
//! one place, and [`Finish`] keeps the order of finishing:
//! - the epoch log decides the successor before anyone is asked to sign it;
//! - the certificate is in the log before any holder commits (a holder
//!   deletes epoch e only once the log holds the certificate of e + 1);
//! - the commit is kept for a later pass before it is sent;
//! - we commit alongside the other holders, and a commit that failed
//!   anywhere is sent again by a later pass.
//!
//! Sans-IO, driven as quinn-proto's connection is: the driver takes the
//! next [`Work`] with `poll`, carries it out, and reports its result with
//! `handle`, until `poll` returns `None` and `outcome` holds the result.
//! Time comes in as a value (elapsed since the attempt started), for the
//! phase figures. The drivers are `crate::heal::lead_repair`,
//! `crate::heal::lead_reshare` and `crate::heal::finish`.

use std::time::Duration;

/// What kind of attempt is led.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Repair rounds onto replacements, then the next epoch's prepare;
    /// with `refresh`, then a re-share to a fresh polynomial.
    Repair {
        /// Whether a refresh follows the repair.
        refresh: bool,
    },
    /// A re-share among the live holders (a shrink, or a refresh).
    Reshare,
}

/// One piece of I/O for the driver to carry out, then report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Abort the attempt this one supersedes, so its votes are free (its
    /// result does not matter).
    AbortSuperseded,
    /// Have a quorum of the epoch's holders certify the proposal.
    Certify,
    /// Carry the certified proposal out: a repair's rounds (announced to
    /// the replacements, helpers and witnesses, waited for), or a
    /// re-share's dealing (announced, the recipients' entries gathered).
    Carry,
    /// A repair's prepare: every holder of the next epoch re-seals its
    /// share, giving the next manifest body.
    Prepare,
    /// After a failed carry: ask who withheld (helpers in dispute, or
    /// dealers the recipients name silent) and keep it for the next
    /// attempt.
    RecordWithholders,
    /// Have the holders sign the abort of this attempt.
    Abort,
    /// Sign the next manifest ourselves.
    Sign,
    /// Put the signed successor to the epoch log, which decides it.
    Decide,
    /// Gather the epoch's holders' signatures into a certificate.
    GatherSignatures,
    /// Write the certificate to the epoch log.
    LogCertificate,
    /// Keep the commit, so a later pass sends it again if this one fails.
    KeepUnfinished,
    /// Commit at every holder of the next epoch, ourselves included, at
    /// once.
    Commit,
    /// The new epoch is certified and committed: log it and count it.
    Healed,
    /// Re-share the new epoch to a fresh polynomial.
    Refresh,
}

/// A piece of work that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// What went wrong, for the log.
    pub why: String,
    /// Whether it ran out of time, rather than being refused: only then
    /// does a re-share's silence say who withheld.
    pub timed_out: bool,
}

impl Failed {
    /// A refusal or an error.
    pub fn refused(why: impl Into<String>) -> Self {
        Failed {
            why: why.into(),
            timed_out: false,
        }
    }

    /// A window that ran out.
    pub fn timed_out(why: impl Into<String>) -> Self {
        Failed {
            why: why.into(),
            timed_out: true,
        }
    }
}

/// Elapsed time at each phase an attempt reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// The proposal certified.
    pub certified: Option<Duration>,
    /// The rounds or the dealing done.
    pub carried: Option<Duration>,
    /// The next body prepared (repair).
    pub prepared: Option<Duration>,
    /// The new epoch committed.
    pub committed: Option<Duration>,
}

/// Finishing a transition: the successor decided, signed by a quorum,
/// certified and committed. Used within an [`Attempt`], and alone when a
/// pass finishes a successor the epoch log already decided.
#[derive(Debug)]
pub struct Finish {
    log: bool,
    next: Option<Work>,
    /// The work polled and not yet reported.
    pending: Option<Work>,
    outcome: Option<Result<(), String>>,
}

impl Finish {
    /// Starts finishing; `log`: whether the epoch log is on.
    pub fn new(log: bool) -> Self {
        Finish {
            log,
            next: Some(if log {
                Work::Decide
            } else {
                Work::GatherSignatures
            }),
            pending: None,
            outcome: None,
        }
    }

    /// The next piece of work, once; `None` when there is none now.
    pub fn poll(&mut self) -> Option<Work> {
        self.pending = self.next.take();
        self.pending
    }

    /// The result of the last work polled.
    pub fn handle(&mut self, result: Result<(), Failed>) {
        let Some(work) = self.pending.take() else {
            self.outcome = Some(Err("finishing: a result with no work out".into()));
            return;
        };
        if let Err(f) = result {
            // Nothing here is undone: a decided or signed successor is
            // finished by a later pass, never replaced.
            self.outcome = Some(Err(f.why));
            return;
        }
        self.next = match work {
            Work::Decide => Some(Work::GatherSignatures),
            Work::GatherSignatures if self.log => Some(Work::LogCertificate),
            Work::GatherSignatures | Work::LogCertificate => Some(Work::KeepUnfinished),
            Work::KeepUnfinished => Some(Work::Commit),
            _ => {
                self.outcome = Some(Ok(()));
                None
            }
        };
    }

    /// The result, once finishing is over.
    pub fn outcome(&self) -> Option<&Result<(), String>> {
        self.outcome.as_ref()
    }
}

/// Where an attempt is.
#[derive(Debug)]
enum Stage {
    /// Waiting for the result of `Work` (anything but finishing).
    Doing(Work),
    /// Finishing.
    Finishing(Finish),
    /// Over.
    Over,
}

/// One attempt the leader leads, from its proposal to its commit.
#[derive(Debug)]
pub struct Attempt {
    kind: Kind,
    stage: Stage,
    next: Option<Work>,
    log: bool,
    /// Why the carry failed, kept through recording and aborting.
    failed: Option<String>,
    phases: Phases,
    outcome: Option<Result<Phases, String>>,
}

impl Attempt {
    /// Starts an attempt of `kind`; `superseded`: whether an earlier
    /// attempt of ours is aborted first; `log`: whether the epoch log is on.
    pub fn new(kind: Kind, superseded: bool, log: bool) -> Self {
        let first = if superseded {
            Work::AbortSuperseded
        } else {
            Work::Certify
        };
        Attempt {
            kind,
            stage: Stage::Doing(first),
            next: Some(first),
            log,
            failed: None,
            phases: Phases::default(),
            outcome: None,
        }
    }

    /// The next piece of work, once; `None` when there is none now.
    pub fn poll(&mut self) -> Option<Work> {
        match &mut self.stage {
            Stage::Finishing(f) => f.poll(),
            _ => self.next.take(),
        }
    }

    /// The result of the last work polled, `now` after the attempt started.
    pub fn handle(&mut self, now: Duration, result: Result<(), Failed>) {
        let stage = std::mem::replace(&mut self.stage, Stage::Over);
        let next = match stage {
            Stage::Over => None,
            Stage::Finishing(mut f) => {
                f.handle(result);
                match f.outcome().cloned() {
                    None => {
                        self.stage = Stage::Finishing(f);
                        return;
                    }
                    Some(Err(why)) => return self.over(Err(why)),
                    Some(Ok(())) => {
                        self.phases.committed = Some(now);
                        Some(Work::Healed)
                    }
                }
            }
            Stage::Doing(work) => match self.after(work, now, result) {
                Ok(next) => next,
                Err(why) => return self.over(Err(why)),
            },
        };
        match next {
            None => {
                let phases = self.phases;
                self.over(Ok(phases))
            }
            Some(Work::Decide | Work::GatherSignatures) => {
                self.stage = Stage::Finishing(Finish::new(self.log));
            }
            Some(w) => {
                self.stage = Stage::Doing(w);
                self.next = Some(w);
            }
        }
    }

    /// What follows `work` with `result`: the next work, none (done), or
    /// the attempt's failure.
    fn after(
        &mut self,
        work: Work,
        now: Duration,
        result: Result<(), Failed>,
    ) -> Result<Option<Work>, String> {
        let finish = if self.log {
            Work::Decide
        } else {
            Work::GatherSignatures
        };
        Ok(match (work, result) {
            // Its result does not matter: the superseded votes free
            // themselves at the attempt timeout otherwise.
            (Work::AbortSuperseded, _) => Some(Work::Certify),
            (Work::Certify, Ok(())) => {
                self.phases.certified = Some(now);
                Some(Work::Carry)
            }
            // Nothing was certified: nothing to abort.
            (Work::Certify, Err(f)) => return Err(f.why),
            (Work::Carry, Ok(())) => {
                self.phases.carried = Some(now);
                match self.kind {
                    Kind::Repair { .. } => Some(Work::Prepare),
                    Kind::Reshare => Some(Work::Sign),
                }
            }
            (Work::Carry, Err(f)) => {
                // A repair's helpers say whose pieces never came whatever
                // stopped it; a re-share's silence names a dealer only
                // when the dealing window ran out (after a refusal nobody
                // had time to deal).
                let record = match self.kind {
                    Kind::Repair { .. } => true,
                    Kind::Reshare => f.timed_out,
                };
                self.failed = Some(f.why);
                Some(if record {
                    Work::RecordWithholders
                } else {
                    Work::Abort
                })
            }
            (Work::Prepare, Ok(())) => {
                self.phases.prepared = Some(now);
                Some(Work::Sign)
            }
            (Work::Prepare, Err(f)) => {
                self.failed = Some(f.why);
                Some(Work::RecordWithholders)
            }
            (Work::RecordWithholders, _) => Some(Work::Abort),
            (Work::Abort, _) => {
                return Err(self
                    .failed
                    .take()
                    .unwrap_or_else(|| "attempt aborted".into()))
            }
            (Work::Sign, Ok(())) => Some(finish),
            // Signing our own successor fails only on an internal error;
            // nothing went out, and the attempt times out like a crash.
            (Work::Sign, Err(f)) => return Err(f.why),
            (Work::Healed, _) => match self.kind {
                Kind::Repair { refresh: true } => Some(Work::Refresh),
                _ => None,
            },
            (Work::Refresh, Ok(())) => None,
            (Work::Refresh, Err(f)) => return Err(f.why),
            (w, _) => return Err(format!("{w:?} is not a step of an attempt")),
        })
    }

    fn over(&mut self, outcome: Result<Phases, String>) {
        self.stage = Stage::Over;
        self.next = None;
        self.outcome = Some(outcome);
    }

    /// The phases reached so far.
    pub fn phases(&self) -> Phases {
        self.phases
    }

    /// The result, once the attempt is over: the phases, or why it failed.
    pub fn outcome(&self) -> Option<&Result<Phases, String>> {
        self.outcome.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `a`, answering each work from `answers` in turn (a work not
    /// listed succeeds), and returns the works in order and the outcome.
    fn drive(mut a: Attempt, answers: &[(Work, Failed)]) -> (Vec<Work>, Result<Phases, String>) {
        let mut done = Vec::new();
        let mut t = 0;
        while let Some(w) = a.poll() {
            assert!(done.len() < 32, "no end: {done:?}");
            done.push(w);
            t += 10;
            let r = match answers.iter().find(|(x, _)| *x == w) {
                Some((_, f)) => Err(f.clone()),
                None => Ok(()),
            };
            a.handle(Duration::from_millis(t), r);
        }
        (done, a.outcome().cloned().expect("over"))
    }

    use Work::*;

    #[test]
    fn a_repair_runs_every_phase_in_order_and_times_them() {
        let (works, out) = drive(
            Attempt::new(Kind::Repair { refresh: false }, false, true),
            &[],
        );
        assert_eq!(
            works,
            [
                Certify,
                Carry,
                Prepare,
                Sign,
                Decide,
                GatherSignatures,
                LogCertificate,
                KeepUnfinished,
                Commit,
                Healed
            ]
        );
        let p = out.unwrap();
        assert_eq!(p.certified, Some(Duration::from_millis(10)));
        assert_eq!(p.carried, Some(Duration::from_millis(20)));
        assert_eq!(p.prepared, Some(Duration::from_millis(30)));
        assert_eq!(p.committed, Some(Duration::from_millis(90)));
    }

    #[test]
    fn without_the_log_nothing_is_written_to_it_and_a_refresh_follows_when_asked() {
        let (works, out) = drive(
            Attempt::new(Kind::Repair { refresh: true }, true, false),
            &[],
        );
        assert_eq!(
            works,
            [
                AbortSuperseded,
                Certify,
                Carry,
                Prepare,
                Sign,
                GatherSignatures,
                KeepUnfinished,
                Commit,
                Healed,
                Refresh
            ]
        );
        assert!(out.is_ok());
    }

    #[test]
    fn a_superseded_attempt_that_cannot_be_aborted_does_not_stop_the_next() {
        let (works, out) = drive(
            Attempt::new(Kind::Reshare, true, false),
            &[(AbortSuperseded, Failed::refused("no quorum"))],
        );
        assert_eq!(works[..2], [AbortSuperseded, Certify]);
        assert!(out.is_ok());
    }

    #[test]
    fn an_uncertified_proposal_is_not_aborted() {
        let (works, out) = drive(
            Attempt::new(Kind::Repair { refresh: true }, false, true),
            &[(Certify, Failed::refused("2 of 5 votes"))],
        );
        assert_eq!(works, [Certify]);
        assert_eq!(out.unwrap_err(), "2 of 5 votes");
    }

    #[test]
    fn a_failed_repair_records_the_withholders_then_aborts() {
        for failing in [Carry, Prepare] {
            let (works, out) = drive(
                Attempt::new(Kind::Repair { refresh: true }, false, true),
                &[(failing, Failed::timed_out("round timed out"))],
            );
            let upto = works.iter().position(|w| *w == failing).unwrap();
            assert_eq!(works[upto + 1..], [RecordWithholders, Abort], "{failing:?}");
            assert_eq!(out.unwrap_err(), "round timed out");
        }
    }

    #[test]
    fn a_reshare_names_silent_dealers_only_when_its_window_ran_out() {
        let (works, out) = drive(
            Attempt::new(Kind::Reshare, false, true),
            &[(Carry, Failed::timed_out("new share 4 not ready in time"))],
        );
        assert_eq!(works, [Certify, Carry, RecordWithholders, Abort]);
        assert_eq!(out.unwrap_err(), "new share 4 not ready in time");
        let (works, _) = drive(
            Attempt::new(Kind::Reshare, false, true),
            &[(Carry, Failed::refused("a holder refused the announcement"))],
        );
        assert_eq!(works, [Certify, Carry, Abort]);
    }

    #[test]
    fn once_the_successor_goes_to_be_signed_nothing_is_aborted() {
        for failing in [Sign, Decide, GatherSignatures, LogCertificate, Commit] {
            let (works, out) = drive(
                Attempt::new(Kind::Repair { refresh: true }, false, true),
                &[(failing, Failed::refused("lost"))],
            );
            assert_eq!(works.last(), Some(&failing), "{works:?}");
            assert!(!works.contains(&Abort) && !works.contains(&Refresh));
            assert_eq!(out.unwrap_err(), "lost");
        }
    }

    #[test]
    fn the_certificate_is_logged_and_the_commit_kept_before_any_commit() {
        let mut f = Finish::new(true);
        let mut order = Vec::new();
        while let Some(w) = f.poll() {
            order.push(w);
            f.handle(Ok(()));
        }
        assert_eq!(
            order,
            [
                Decide,
                GatherSignatures,
                LogCertificate,
                KeepUnfinished,
                Commit
            ]
        );
        assert_eq!(f.outcome(), Some(&Ok(())));
        // A result with no work out is an error, not a step.
        let mut f = Finish::new(false);
        f.handle(Ok(()));
        assert!(matches!(f.outcome(), Some(Err(_))));
    }

    #[test]
    fn a_failed_refresh_fails_the_pass_after_the_repair_is_committed() {
        let (works, out) = drive(
            Attempt::new(Kind::Repair { refresh: true }, false, false),
            &[(Refresh, Failed::refused("dealer refused"))],
        );
        assert_eq!(works[works.len() - 3..], [Commit, Healed, Refresh]);
        assert_eq!(out.unwrap_err(), "dealer refused");
    }
}
