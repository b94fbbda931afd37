//! The signer's side of a successor request, as a state machine: which
//! checks run, in which order, before a holder signs the step to the next
//! epoch.
//!
//! The order is the rule, and it lives here rather than in the driver:
//! - the successor we signed already is signed again and nothing else runs
//!   (every check ran the first time, and our vote is spent on it);
//! - one we refused for good (it stayed uncertified, D53) never is;
//! - its shape against our own prepared share ([`shape`]: verify before
//!   delete), then that every holder it leaves out or replaces is lost to
//!   us, then that a quorum of the epoch's holders is live in our view
//!   (refused at once where no transition can complete);
//! - with the epoch log on, the log decided this very successor, and the
//!   quorum is checked again after that wait;
//! - what it carries out ([`carry`]), then our share's own check: the
//!   dealing of the re-share round it came from, or, for the same
//!   polynomial, that the successor is the repair we took part in;
//! - without the log, the pre-sign exchange, where a copy we may only
//!   finish is signed only once another holder signed it ([`finish`]);
//! - our one vote of the epoch is recorded durably before the signature
//!   leaves.
//!
//! Sans-IO, driven as [`super::attempt`] is: the driver (`crate::epochs::
//! sign`) takes the next [`Work`] with [`Signing::poll`] and carries it
//! out; a check that fails ends the request there (the driver answers its
//! refusal). The three pieces of work whose results decide what follows
//! are reported back: [`Signing::shaped`], [`Signing::carried`] and
//! [`Signing::exchanged`].
//!
//! [`shape`]: super::successor::shape
//! [`carry`]: super::successor::carry
//! [`finish`]: super::successor::finish

use super::successor::{
    carry, finish, Carry, Decider, Made, Misshapen, NotCarried, OurRound, Shape,
};
use std::collections::VecDeque;
use thiserror::Error;

/// One piece of work for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Check the successor's shape against our prepared share; report
    /// with [`Signing::shaped`].
    Shape,
    /// Every holder the successor leaves out or replaces
    /// ([`Signing::shape`]) is lost to us: no answer, or failed custody.
    HoldersLost,
    /// A quorum of the epoch's holders is live in our view.
    Quorum,
    /// The epoch log decided this very successor (waiting for it).
    LogDecided,
    /// Learn what the successor carries out and our re-share round's
    /// state; report with [`Signing::carried`].
    Carry,
    /// The dealing of the re-share round our share came from passes its
    /// check.
    Dealing,
    /// The successor of the same polynomial is the repair we took part in.
    OurRepair,
    /// Record the request and ask the other live holders what they were
    /// asked and signed; report the judgement with [`Signing::exchanged`].
    Exchange,
    /// Carry out the exchange's judgement (convictions, another copy to
    /// finish instead); it refuses unless the verdict is to sign.
    ApplyExchange,
    /// Record our one successor vote of the epoch, durably.
    Vote,
    /// Sign and answer.
    Sign,
}

/// A successor never signed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("we refused this successor (it stayed uncertified); it is never signed here")]
pub struct RefusedForGood;

/// One successor request being judged.
#[derive(Debug)]
pub struct Signing {
    log: bool,
    queue: VecDeque<Work>,
    shape: Option<Shape>,
    made: Option<Made>,
    how: Option<Carry>,
}

impl Signing {
    /// Starts judging a successor: `again`, we signed this very successor
    /// of our epoch before; `refused`, we refused it for good; `log`,
    /// whether the epoch log is on.
    pub fn new(again: bool, refused: bool, log: bool) -> Result<Self, RefusedForGood> {
        let first = if again {
            Work::Sign
        } else if refused {
            return Err(RefusedForGood);
        } else {
            Work::Shape
        };
        Ok(Signing {
            log,
            queue: VecDeque::from([first]),
            shape: None,
            made: None,
            how: None,
        })
    }

    /// The next piece of work, or `None` when the request is signed (or
    /// while a reported piece of work is awaited).
    pub fn poll(&mut self) -> Option<Work> {
        self.queue.pop_front()
    }

    /// The successor's shape, once [`Work::Shape`] was reported.
    pub fn shape(&self) -> Option<&Shape> {
        self.shape.as_ref()
    }

    /// Reports [`Work::Shape`]: the shape check's result, and how our
    /// prepared share was made.
    pub fn shaped(&mut self, shape: Result<Shape, Misshapen>, made: Made) -> Result<(), Misshapen> {
        let shape = shape?;
        if !shape.left_out.is_empty() || !shape.replaced.is_empty() {
            self.queue.push_back(Work::HoldersLost);
        }
        self.queue.push_back(Work::Quorum);
        if self.log {
            self.queue.extend([Work::LogDecided, Work::Quorum]);
        }
        self.queue.push_back(Work::Carry);
        self.shape = Some(shape);
        self.made = Some(made);
        Ok(())
    }

    /// Reports [`Work::Carry`]: who decides (with the epoch log on, the
    /// log, whose decision [`Work::LogDecided`] checked) and our re-share
    /// round, if our share was dealt in one.
    pub fn carried(&mut self, decider: Decider, round: Option<OurRound>) -> Result<(), NotCarried> {
        let decider = if self.log { Decider::Log } else { decider };
        self.how = Some(carry(decider, round)?);
        match self.made {
            Some(Made::Reshare) => self.queue.push_back(Work::Dealing),
            Some(Made::SamePolynomial) => self.queue.push_back(Work::OurRepair),
            _ => {}
        }
        if self.log {
            self.queue.extend([Work::Vote, Work::Sign]);
        } else {
            self.queue.push_back(Work::Exchange);
        }
        Ok(())
    }

    /// Reports [`Work::Exchange`]: whether its verdict is to sign, and
    /// whether another holder's signature on this very copy was shown.
    pub fn exchanged(
        &mut self,
        verdict_sign: bool,
        signed_elsewhere: bool,
    ) -> Result<(), NotCarried> {
        if verdict_sign {
            finish(self.how.unwrap_or(Carry::FinishOnly), signed_elsewhere)?;
        }
        self.queue
            .extend([Work::ApplyExchange, Work::Vote, Work::Sign]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transition::successor::Carried;
    use vault::identity::Fingerprint;

    fn shape(changes: bool) -> Shape {
        Shape {
            reshaped: false,
            left_out: Vec::new(),
            replaced: if changes {
                vec![(5, Fingerprint::from_bytes([5; 32]))]
            } else {
                Vec::new()
            },
        }
    }

    fn drain(s: &mut Signing) -> Vec<Work> {
        std::iter::from_fn(|| s.poll()).collect()
    }

    const PROPOSERS: Decider = Decider::Holders(Some(Carried {
        written_by_proposer: true,
        asked_by_proposer: true,
        standing: true,
    }));

    /// The successor we signed is signed again with no other check; one
    /// refused for good never is.
    #[test]
    fn a_signed_successor_is_signed_again_and_a_refused_one_never() {
        let mut s = Signing::new(true, true, false).unwrap();
        assert_eq!(drain(&mut s), vec![Work::Sign]);
        assert_eq!(Signing::new(false, true, true).unwrap_err(), RefusedForGood);
    }

    /// Without the log: a repair's successor checks its replaced holders,
    /// the quorum, what it carries out, our repair, the exchange, and
    /// records the vote before signing.
    #[test]
    fn a_repair_successor_without_the_log_runs_every_check_in_order() {
        let mut s = Signing::new(false, false, false).unwrap();
        assert_eq!(drain(&mut s), vec![Work::Shape]);
        s.shaped(Ok(shape(true)), Made::SamePolynomial).unwrap();
        assert_eq!(
            drain(&mut s),
            vec![Work::HoldersLost, Work::Quorum, Work::Carry]
        );
        s.carried(PROPOSERS, None).unwrap();
        assert_eq!(drain(&mut s), vec![Work::OurRepair, Work::Exchange]);
        s.exchanged(true, false).unwrap();
        assert_eq!(
            drain(&mut s),
            vec![Work::ApplyExchange, Work::Vote, Work::Sign]
        );
    }

    /// With the log: the quorum is checked again after waiting for the
    /// log's decision, a re-dealt share's dealing is checked, and there is
    /// no exchange; the log decides, whatever the holders' facts.
    #[test]
    fn with_the_log_the_quorum_is_checked_again_after_its_decision() {
        let mut s = Signing::new(false, false, true).unwrap();
        assert_eq!(drain(&mut s), vec![Work::Shape]);
        s.shaped(Ok(shape(false)), Made::Reshare).unwrap();
        assert_eq!(
            drain(&mut s),
            vec![Work::Quorum, Work::LogDecided, Work::Quorum, Work::Carry]
        );
        let round = OurRound {
            in_proposal: true,
            kept: true,
        };
        s.carried(Decider::Holders(None), Some(round)).unwrap();
        assert_eq!(drain(&mut s), vec![Work::Dealing, Work::Vote, Work::Sign]);
    }

    /// Each refusal stops the request before any vote or signature.
    #[test]
    fn refusals_stop_before_the_vote() {
        let mut s = Signing::new(false, false, false).unwrap();
        let _ = drain(&mut s);
        assert!(s
            .shaped(Err(Misshapen::NotOurShard), Made::Restored)
            .is_err());
        assert_eq!(drain(&mut s), vec![]);

        let mut s = Signing::new(false, false, false).unwrap();
        let _ = drain(&mut s);
        s.shaped(Ok(shape(false)), Made::Restored).unwrap();
        let _ = drain(&mut s);
        assert_eq!(
            s.carried(Decider::Holders(None), None),
            Err(NotCarried::UnknownProposal)
        );
        assert_eq!(drain(&mut s), vec![]);
        let gone = OurRound {
            in_proposal: true,
            kept: false,
        };
        assert_eq!(s.carried(PROPOSERS, Some(gone)), Err(NotCarried::RoundGone));
        assert_eq!(drain(&mut s), vec![]);

        // Asked by a holder other than the proposer: only finished, so
        // refused unless another holder signed this very copy.
        let mut s = Signing::new(false, false, false).unwrap();
        let _ = drain(&mut s);
        s.shaped(Ok(shape(false)), Made::Restored).unwrap();
        let _ = drain(&mut s);
        let other = Decider::Holders(Some(Carried {
            written_by_proposer: true,
            asked_by_proposer: false,
            standing: true,
        }));
        s.carried(other, None).unwrap();
        assert_eq!(drain(&mut s), vec![Work::Exchange]);
        assert_eq!(s.exchanged(true, false), Err(NotCarried::NotFinishing));
        assert_eq!(drain(&mut s), vec![]);
        s.exchanged(true, true).unwrap();
        assert_eq!(
            drain(&mut s),
            vec![Work::ApplyExchange, Work::Vote, Work::Sign]
        );
    }
}
