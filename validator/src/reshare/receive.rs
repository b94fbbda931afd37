//! Whether we join a re-share round and whether we take a sub-share: the
//! one place that decides, without I/O.
//!
//! [`join`]: a certified round is joined once (a replayed round is
//! refused), only by a holder of the current epoch that deals or receives
//! in it, and a dealer deals in one round per epoch until the leader has
//! given the last one up ([`super::REDEAL_AFTER`]).
//!
//! [`Receiving`]: a sub-share is taken only from the holder of the
//! dealer's share in the current epoch (impersonation), only from a dealer
//! of the round (non-dealer), only sealed to us for exactly the round's
//! next epoch, `(t', n')` and our index (wrong recipient, another round),
//! signed by its dealer when the policy expects liars, and only once per
//! dealer (replay). The driver (`on_subshare`) supplies the caller's
//! identity from its certificate, opens the sealed bytes and verifies the
//! signature between [`Receiving::sender`] with [`Receiving::sealed_to`]
//! and [`Receiving::contents`], so no decryption is spent on a sub-share
//! refused already.

use super::wire::Plan;
use std::collections::BTreeSet;
use std::time::Duration;
use thiserror::Error;
use vault::identity::Fingerprint;
use vault::manifest::ManifestBody;
use vault::share::ShareRecord;

/// Why a round or a sub-share was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refused {
    /// The round is known here already.
    #[error("round already known (replay?)")]
    RoundKnown,
    /// We hold no share of the current epoch.
    #[error("re-sharing is among holders; we hold no shard")]
    NoShard,
    /// We neither deal nor receive in the round.
    #[error("we are neither a dealer nor a recipient")]
    NoPart,
    /// We dealt in another round of this epoch that may still complete.
    #[error("already dealt this epoch in another round that may still complete")]
    DealtElsewhere,
    /// We have no new index in the round.
    #[error("we are not a recipient in this round")]
    NotRecipient,
    /// The sender does not hold the share it deals as.
    #[error("{sender} does not hold share {from}")]
    NotHolder {
        /// The sender's identity, from its certificate.
        sender: String,
        /// The share it claims to deal.
        from: u8,
    },
    /// The share it deals is not one the plan deals.
    #[error("share {0} is not a dealer in this round")]
    NotDealer(u8),
    /// Sealed to another member.
    #[error("sub-share is not sealed to us")]
    NotOurs,
    /// Opens to a share of another vault, epoch, `(t, n)` or index.
    #[error("sub-share is for another vault, epoch, (t, n) or index")]
    OtherRound,
    /// Unsigned, where the policy expects liars (f >= 1).
    #[error("unsigned sub-share; a vault whose policy expects liars needs dealers to sign")]
    Unsigned,
    /// The dealer's signature does not verify.
    #[error("dealer's signature over the sub-share: {0}")]
    BadSignature(String),
    /// This dealer's sub-share was taken already.
    #[error("already have share {0}'s sub-share (replay?)")]
    Replay(u8),
}

impl Refused {
    /// The HTTP status the refusal is answered with: 403 for a sender that
    /// may not deal, 409 for a replay, 422 for contents.
    pub fn status(&self) -> u16 {
        match self {
            Refused::NotHolder { .. } | Refused::NotDealer(_) => 403,
            Refused::Replay(_)
            | Refused::RoundKnown
            | Refused::NoShard
            | Refused::DealtElsewhere => 409,
            Refused::NoPart
            | Refused::NotRecipient
            | Refused::NotOurs
            | Refused::OtherRound
            | Refused::Unsigned
            | Refused::BadSignature(_) => 422,
        }
    }
}

/// Our part in a round we join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    /// Our new index, if we receive.
    pub my_index: Option<u8>,
    /// Our share index, if we deal.
    pub dealer: Option<u8>,
}

/// Whether we join the certified round `plan` of the epoch `current`, as
/// `me`: `known` if the round is known here already, `hold_shard` if we
/// hold our share of the epoch, and `dealt` the round we last dealt in for
/// this epoch with the time since. A dealer records this round as dealt.
pub fn join(
    plan: &Plan,
    current: &ManifestBody,
    me: &Fingerprint,
    known: bool,
    hold_shard: bool,
    dealt: Option<([u8; 16], Duration)>,
) -> Result<Role, Refused> {
    if known {
        return Err(Refused::RoundKnown);
    }
    if !hold_shard {
        return Err(Refused::NoShard);
    }
    let my_index = plan
        .recipients
        .iter()
        .position(|r| r == me)
        .map(|k| k as u8 + 1);
    let dealer = current
        .shards
        .iter()
        .find(|e| e.recipient == *me)
        .map(|e| e.index)
        .filter(|i| plan.dealers.contains(i));
    if my_index.is_none() && dealer.is_none() {
        return Err(Refused::NoPart);
    }
    // One dealing at a time per epoch: a rival plan is refused while the
    // round we dealt in may still complete; after REDEAL_AFTER (the leader
    // has given up on it) a new round may have our share. Each round deals
    // a fresh polynomial, and only one successor of the epoch can be
    // certified, so an abandoned round's shares are inert.
    if dealer.is_some() {
        if let Some((round, since)) = dealt {
            if round != plan.round && since < super::REDEAL_AFTER {
                return Err(Refused::DealtElsewhere);
            }
        }
    }
    Ok(Role { my_index, dealer })
}

/// What a recipient knows of a round when a sub-share arrives.
#[derive(Debug, Clone, Copy)]
pub struct Receiving<'a> {
    /// The round's plan.
    pub plan: &'a Plan,
    /// Our new index, if we are a recipient.
    pub my_index: Option<u8>,
    /// The current epoch's manifest (who holds which share).
    pub current: &'a ManifestBody,
    /// Our identity.
    pub me: &'a Fingerprint,
    /// The policy's liar bound.
    pub f: u8,
    /// The dealers whose sub-shares we took already.
    pub taken: &'a BTreeSet<u8>,
}

impl Receiving<'_> {
    /// Before anything is opened: `sender` (from its certificate) may deal
    /// share `from` to us in this round. Gives our new index.
    pub fn sender(&self, sender: &Fingerprint, from: u8) -> Result<u8, Refused> {
        let my_index = self.my_index.ok_or(Refused::NotRecipient)?;
        let holds = self
            .current
            .shards
            .iter()
            .any(|e| e.recipient == *sender && e.index == from);
        if !holds {
            return Err(Refused::NotHolder {
                sender: sender.to_hex(),
                from,
            });
        }
        if !self.plan.dealers.contains(&from) {
            return Err(Refused::NotDealer(from));
        }
        if self.taken.contains(&from) {
            return Err(Refused::Replay(from));
        }
        Ok(my_index)
    }

    /// Before it is opened: it is sealed to us (`sealed_to`, its header's
    /// recipient).
    pub fn sealed_to(&self, sealed_to: &Fingerprint) -> Result<(), Refused> {
        if sealed_to != self.me {
            return Err(Refused::NotOurs);
        }
        Ok(())
    }

    /// Once opened: a sub-share opening to `record`, whose dealer's
    /// signature is absent (`None`) or verified (`Some` with the
    /// verifier's answer), may be taken.
    pub fn contents(
        &self,
        record: &ShareRecord,
        signature: Option<Result<(), String>>,
    ) -> Result<(), Refused> {
        let my_index = self.my_index.ok_or(Refused::NotRecipient)?;
        let n_new = self.plan.recipients.len() as u8;
        if (
            record.vault_id,
            record.epoch,
            record.threshold,
            record.n,
            record.share.index,
        ) != (
            self.plan.vault_id,
            self.plan.epoch + 1,
            self.plan.t_new,
            n_new,
            my_index,
        ) {
            return Err(Refused::OtherRound);
        }
        // Checked now, so we only ever hold signatures that verify: an
        // honest recipient's reveal never fails on one. Under f >= 1 an
        // unsigned point is refused, so a recipient there can never claim
        // it has nothing signed to reveal.
        match signature {
            None if self.f >= 1 => Err(Refused::Unsigned),
            None | Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Refused::BadSignature(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::manifest::VaultId;
    use vault::shamir::Share;
    use zeroize::Zeroizing;

    fn fp(i: u8) -> Fingerprint {
        Fingerprint::from_bytes([i; 32])
    }

    /// Members 1..=5 hold epoch 4 of a 3-of-5 vault; 6 is a spare. Shares
    /// 1, 2 and 4 deal to all five (recipient k is member k); we are
    /// member 3, new index 3, and have share 4's sub-share already.
    fn fixture() -> (Plan, ManifestBody) {
        let plan = Plan {
            round: [7; 16],
            vault_id: VaultId::from_bytes([9; 16]),
            epoch: 4,
            t_new: 3,
            dealers: vec![1, 2, 4],
            recipients: (1..=5).map(fp).collect(),
        };
        let current = crate::transition::test_body(4, &[1, 2, 3, 4, 5], 3, |i| fp(i as u8));
        (plan, current)
    }

    fn receiving<'a>(
        plan: &'a Plan,
        current: &'a ManifestBody,
        me: &'a Fingerprint,
        f: u8,
        taken: &'a BTreeSet<u8>,
    ) -> Receiving<'a> {
        Receiving {
            plan,
            my_index: Some(3),
            current,
            me,
            f,
            taken,
        }
    }

    /// Impersonation, a spare, a holder that is no dealer, a replay and a
    /// member with no new index are refused before anything is opened.
    #[test]
    fn only_the_holder_of_a_dealers_share_may_deal_it_once() {
        let (plan, current) = fixture();
        let me = fp(3);
        let taken = BTreeSet::from([4]);
        let r = receiving(&plan, &current, &me, 1, &taken);
        assert_eq!(r.sender(&fp(2), 2), Ok(3));
        for (sender, from, refused, status) in [
            // Holder 1 dealing as share 2: impersonation.
            (
                1,
                2,
                Refused::NotHolder {
                    sender: fp(1).to_hex(),
                    from: 2,
                },
                403,
            ),
            // A spare dealing as share 2.
            (
                6,
                2,
                Refused::NotHolder {
                    sender: fp(6).to_hex(),
                    from: 2,
                },
                403,
            ),
            // Holder 3 is no dealer in this round.
            (3, 3, Refused::NotDealer(3), 403),
            // Share 4's sub-share came already.
            (4, 4, Refused::Replay(4), 409),
        ] {
            let got = r.sender(&fp(sender), from).unwrap_err();
            assert_eq!(got, refused);
            assert_eq!(got.status(), status);
        }
        let outsider = Receiving {
            my_index: None,
            ..r
        };
        assert_eq!(outsider.sender(&fp(2), 2), Err(Refused::NotRecipient));
    }

    /// Once opened: sealed to us, for exactly the next epoch, (t', n') and
    /// our index, and signed where the policy expects liars.
    #[test]
    fn a_sub_share_is_taken_only_for_us_in_this_round_and_signed_under_f_1() {
        let (plan, current) = fixture();
        let me = fp(3);
        let taken = BTreeSet::new();
        let record = |vault: u8, epoch: u64, t: u8, n: u8, index: u8| ShareRecord {
            vault_id: VaultId::from_bytes([vault; 16]),
            epoch,
            threshold: t,
            n,
            share: Share {
                index,
                value: Zeroizing::new(vec![0x42; 32]),
            },
        };
        let good = record(9, 5, 3, 5, 3);
        let strict = receiving(&plan, &current, &me, 1, &taken);
        let lenient = receiving(&plan, &current, &me, 0, &taken);
        assert_eq!(strict.contents(&good, Some(Ok(()))), Ok(()));
        assert_eq!(lenient.contents(&good, None), Ok(()));
        assert_eq!(strict.contents(&good, None), Err(Refused::Unsigned));
        let bad = strict.contents(&good, Some(Err("forged".into())));
        assert_eq!(bad, Err(Refused::BadSignature("forged".into())));
        assert_eq!(strict.sealed_to(&me), Ok(()));
        assert_eq!(strict.sealed_to(&fp(4)), Err(Refused::NotOurs));
        for other in [
            record(8, 5, 3, 5, 3), // another vault
            record(9, 4, 3, 5, 3), // the current epoch, not the next
            record(9, 5, 2, 5, 3), // another threshold
            record(9, 5, 3, 4, 3), // another n
            record(9, 5, 3, 5, 4), // another recipient's index
        ] {
            assert_eq!(
                strict.contents(&other, Some(Ok(()))),
                Err(Refused::OtherRound)
            );
        }
    }

    /// A round is joined once, by a holder that deals or receives in it,
    /// and a dealer deals in one round of an epoch until the last one was
    /// given up.
    #[test]
    fn a_round_is_joined_once_by_a_holder_with_a_part_and_dealt_once_at_a_time() {
        let (plan, current) = fixture();
        let join = |me: u8, known, held, dealt| join(&plan, &current, &fp(me), known, held, dealt);
        // Member 3 receives index 3; share 3 is no dealer.
        assert_eq!(
            join(3, false, true, None),
            Ok(Role {
                my_index: Some(3),
                dealer: None
            })
        );
        // Member 2 deals share 2 and receives index 2.
        assert_eq!(
            join(2, false, true, None),
            Ok(Role {
                my_index: Some(2),
                dealer: Some(2)
            })
        );
        assert_eq!(join(2, true, true, None), Err(Refused::RoundKnown));
        assert_eq!(join(2, false, false, None), Err(Refused::NoShard));
        let mut p = plan.clone();
        p.recipients.retain(|r| *r != fp(3));
        assert_eq!(
            super::join(&p, &current, &fp(3), false, true, None),
            Err(Refused::NoPart),
            "holder 3, no dealer, left out"
        );
        // A rival round while ours may still complete; then after the
        // leader gave it up; our own round again is not a rival.
        let young = Some(([1; 16], Duration::from_secs(5)));
        let old = Some(([1; 16], super::super::REDEAL_AFTER));
        assert_eq!(join(2, false, true, young), Err(Refused::DealtElsewhere));
        assert!(join(2, false, true, old).is_ok());
        assert!(join(2, false, true, Some((plan.round, Duration::ZERO))).is_ok());
        assert!(join(3, false, true, young).is_ok(), "a recipient only");
        for r in [
            Refused::RoundKnown,
            Refused::NoShard,
            Refused::DealtElsewhere,
        ] {
            assert_eq!(r.status(), 409);
        }
        assert_eq!(Refused::NoPart.status(), 422);
    }
}
