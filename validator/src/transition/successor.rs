//! Whether we may sign a successor: the decisions of `crate::epochs::sign`,
//! without I/O.
//!
//! Before a holder signs the step from epoch `e` to `e+1` (and so lets
//! anyone delete epoch `e`), [`shape`] checks what the two manifests and
//! our own prepared share say: it is the next epoch of this vault; it keeps
//! the suite and the secret; `(t, n)` changes only as the policy's shrink;
//! our entry is the share we prepared, made in a way that may be signed;
//! a re-share keeps only current holders; and a share changes hands only
//! to the replacement we named for it in a certified repair. It gives the
//! holders the successor leaves out or replaces, which the driver
//! (`crate::epochs::sign`) must then find lost in its own view before
//! anything else (the epoch log, the proposal, the dealing check, the
//! pre-sign exchange) is asked.
//!
//! Then [`carry`] says whether the successor carries out what we stand by
//! (the log's decision, or a certified proposal written by its proposer;
//! a proposal we gave up, or asked of us by another holder, is only
//! finished) from a round we can still check; [`finish`] applies the
//! pre-sign exchange's answer to a copy we may only finish; and [`Vote`]
//! keeps us to one successor per epoch. The simulation
//! (`transition::simulation`) calls these same functions.

use super::authorize::Rules;
use std::collections::BTreeMap;
use thiserror::Error;
use vault::identity::Fingerprint;
use vault::manifest::ManifestBody;

/// How our prepared share was made (`crate::epochs::Origin`, without the
/// round id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Re-sealed or repaired: the same polynomial.
    SamePolynomial,
    /// Combined from a re-share's sub-shares.
    Reshare,
    /// Read back from disk after a restart.
    Restored,
}

/// Our prepared share, as the successor must list it.
#[derive(Debug, Clone, Copy)]
pub struct Ours<'a> {
    /// Our identity.
    pub me: &'a Fingerprint,
    /// The epoch it leaves.
    pub from_epoch: u64,
    /// Its share index.
    pub index: u8,
    /// The hash of its sealed bytes.
    pub blob_hash: [u8; 32],
    /// How it was made.
    pub made: Made,
}

/// Why a successor's shape is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Misshapen {
    /// Another vault, or not the epoch after ours.
    #[error("not the next epoch of this vault")]
    NotNext,
    /// The suite, the secret's length or its commitment changed.
    #[error("a new epoch keeps the suite and the secret")]
    SecretChanged,
    /// `(t, n)` changed other than as the policy's shrink.
    #[error("({t}, {n}) is not the {policy} policy's re-share of ({t_was}, {n_was})")]
    NotPolicyShrink {
        /// The successor's threshold.
        t: u8,
        /// The successor's number of shares.
        n: u8,
        /// The policy's name.
        policy: &'static str,
        /// The current threshold.
        t_was: u8,
        /// The current number of shares.
        n_was: u8,
    },
    /// Our prepared share's index is not in the successor.
    #[error("our index is missing")]
    OurIndexMissing,
    /// Our entry is not the share we prepared.
    #[error("our entry is not the shard we prepared")]
    NotOurShard,
    /// A new `(t, n)` from a share that was not re-dealt.
    #[error("a new (t, n) comes only from a re-share; our share was not re-dealt")]
    NotRedealt,
    /// Our share was read back after a restart: its check state is gone.
    #[error(
        "we restarted since preparing our share; not signing a successor we can no longer check"
    )]
    Restored,
    /// A re-share that lists someone who holds nothing now.
    #[error("a re-share only keeps holders of the current epoch")]
    NewHolder,
    /// A share given to someone we never named for it.
    #[error(
        "share {index} changes hands to {to} without a certified repair we voted for or helped"
    )]
    Unnamed {
        /// The share.
        index: u8,
        /// Its new holder, short.
        to: String,
    },
}

impl Misshapen {
    /// The HTTP status it is answered with: 409 where the successor may be
    /// right but we cannot stand by it, 422 where it is wrong.
    pub fn status(&self) -> u16 {
        match self {
            Misshapen::Restored | Misshapen::Unnamed { .. } => 409,
            _ => 422,
        }
    }
}

/// A successor whose shape we may sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Whether `(t, n)` changes (a shrink).
    pub reshaped: bool,
    /// Shares the successor leaves out (a shrink), with their holders:
    /// each must be lost in our view.
    pub left_out: Vec<(u8, Fingerprint)>,
    /// Shares that change hands (a repair), with their old holders: each
    /// must be lost in our view.
    pub replaced: Vec<(u8, Fingerprint)>,
}

/// Checks the shape of the step from `c` to `n`, asked as leaving
/// `from_epoch`, under `rules`, for our prepared share `ours`, where
/// `named` maps each replacement we named in a certified repair to its
/// index.
pub fn shape(
    c: &ManifestBody,
    n: &ManifestBody,
    from_epoch: u64,
    rules: &Rules,
    ours: &Ours,
    named: &BTreeMap<Fingerprint, u8>,
) -> Result<Shape, Misshapen> {
    if n.vault_id != c.vault_id || n.epoch != c.epoch + 1 || from_epoch != c.epoch {
        return Err(Misshapen::NotNext);
    }
    if (n.suite, n.secret_len, n.secret_commitment) != (c.suite, c.secret_len, c.secret_commitment)
    {
        return Err(Misshapen::SecretChanged);
    }
    // (t, n) changes only by re-sharing to fewer holders, as the policy says.
    let reshaped = (n.threshold, n.n) != (c.threshold, c.n);
    if reshaped {
        let indices_ok = n.shards.iter().map(|e| e.index).eq(1..=n.n);
        if n.n >= c.n || rules.shrink_threshold(n.n) != Some(n.threshold) || !indices_ok {
            return Err(Misshapen::NotPolicyShrink {
                t: n.threshold,
                n: n.n,
                policy: rules.policy.name(),
                t_was: c.threshold,
                n_was: c.n,
            });
        }
    }
    // Our own entry must be the share we prepared.
    let mine = n.entry(ours.index).ok_or(Misshapen::OurIndexMissing)?;
    if ours.from_epoch != c.epoch || mine.recipient != *ours.me || mine.blob_hash != ours.blob_hash
    {
        return Err(Misshapen::NotOurShard);
    }
    match ours.made {
        Made::SamePolynomial if reshaped => return Err(Misshapen::NotRedealt),
        Made::Restored => return Err(Misshapen::Restored),
        Made::SamePolynomial | Made::Reshare => {}
    }
    let mut shape = Shape {
        reshaped,
        left_out: Vec::new(),
        replaced: Vec::new(),
    };
    if reshaped {
        if n.shards
            .iter()
            .any(|e| c.shards.iter().all(|o| o.recipient != e.recipient))
        {
            return Err(Misshapen::NewHolder);
        }
        shape.left_out = c
            .shards
            .iter()
            .filter(|o| n.shards.iter().all(|e| e.recipient != o.recipient))
            .map(|o| (o.index, o.recipient))
            .collect();
        return Ok(shape);
    }
    // A share changes hands only as a certified repair we voted for or
    // took part in (we recorded its replacement and index then), never on
    // a leader's word: else an insider could hand a dead holder's index to
    // an accomplice that holds nothing, and the share would be gone.
    for e in &n.shards {
        let Some(old) = c.entry(e.index).map(|o| o.recipient) else {
            continue;
        };
        if old == e.recipient {
            continue;
        }
        if named.get(&e.recipient) != Some(&e.index) {
            return Err(Misshapen::Unnamed {
                index: e.index,
                to: e.recipient.short(),
            });
        }
        shape.replaced.push((e.index, old));
    }
    Ok(shape)
}

/// Our one successor signature of an epoch, against a successor we are
/// asked to sign. The store's vote file enforces it across restarts
/// (`crate::store::Store::vote`); this says what the driver does first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// We signed this very successor: sign it again, whoever asks (every
    /// check ran when we first signed it).
    Again,
    /// We signed no successor of this epoch yet.
    Fresh,
    /// We signed another successor of this epoch: never this one.
    Spent,
}

impl Vote {
    /// Our vote of the epoch (`voted`, the digest we signed, if any)
    /// against the successor `digest`.
    pub fn of(voted: Option<[u8; 32]>, digest: &[u8; 32]) -> Vote {
        match voted {
            Some(d) if d == *digest => Vote::Again,
            Some(_) => Vote::Spent,
            None => Vote::Fresh,
        }
    }
}

/// What we know of the certified proposal a successor says it carries
/// out, when the holders decide alone (the epoch log off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// The proposal's proposer wrote (signed) the successor.
    pub written_by_proposer: bool,
    /// The proposal's proposer is who asks us.
    pub asked_by_proposer: bool,
    /// We still stand by the proposal (we did not give its attempt up,
    /// nor convict its proposer).
    pub standing: bool,
}

/// Who decides which successor of the epoch is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decider {
    /// The epoch log decided it (the driver waited for it and compared
    /// digests): one successor per epoch, whoever proposed it.
    Log,
    /// The holders, each by the certified proposal it carries out: the
    /// proposal if we know it certified, else `None`.
    Holders(Option<Carried>),
}

/// The re-share round our prepared share was dealt in, if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OurRound {
    /// The round is one of the carried proposal's (`true` under the log,
    /// which carries no proposal).
    pub in_proposal: bool,
    /// We still keep the round, whose dealing check needs it (an abort
    /// forgets it).
    pub kept: bool,
}

/// How we may sign a successor that passed its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// Sign, unless the pre-sign exchange shows another copy signed.
    Sign,
    /// Only finish: sign only a copy another holder has signed already
    /// (the proposal is not the asker's, or we gave it up; D49).
    FinishOnly,
}

/// Why a successor does not carry out anything we stand by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NotCarried {
    /// We know no certified proposal by the id the request names.
    #[error("a successor is signed only as the certified repair we voted for or helped (or the re-share we dealt in), and we know no such certified proposal")]
    UnknownProposal,
    /// Someone other than the proposal's proposer wrote the successor.
    #[error("the successor is not written by the proposal's proposer")]
    NotProposersCopy,
    /// Our re-dealt share comes from another round.
    #[error("our re-dealt share is not from the round of the proposal this successor carries out")]
    RoundElsewhere,
    /// The round our share was dealt in is forgotten (aborted or pruned).
    #[error("the re-share round is gone here; cannot check its dealing")]
    RoundGone,
    /// Finishing only, and no other holder signed this copy.
    #[error("only the proposer writes copies of its successor; another holder may only ask us to finish a copy a holder already signed")]
    NotFinishing,
}

impl NotCarried {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            NotCarried::NotProposersCopy => 422,
            _ => 409,
        }
    }
}

/// Whether a successor of the right shape carries out what we stand by:
/// the proposal (holders deciding) or the log's decision, and, for a
/// share we re-dealt, the round we can still check. Gives how we may sign;
/// the pre-sign exchange then settles it ([`finish`]), and the vote file
/// last ([`Vote`]).
pub fn carry(decider: Decider, round: Option<OurRound>) -> Result<Carry, NotCarried> {
    let mut how = Carry::Sign;
    if let Decider::Holders(known) = decider {
        let p = known.ok_or(NotCarried::UnknownProposal)?;
        if !p.written_by_proposer {
            return Err(NotCarried::NotProposersCopy);
        }
        if !p.asked_by_proposer || !p.standing {
            how = Carry::FinishOnly;
        }
    }
    if let Some(r) = round {
        if !r.in_proposal {
            return Err(NotCarried::RoundElsewhere);
        }
        if !r.kept {
            return Err(NotCarried::RoundGone);
        }
    }
    Ok(how)
}

/// After the pre-sign exchange: a copy we may only finish is signed only
/// when `signed_elsewhere` (another holder's signature on this very copy
/// was shown). Other verdicts of the exchange (another copy signed or
/// asked) are the exchange's own (`crate::successor::apply`).
pub fn finish(how: Carry, signed_elsewhere: bool) -> Result<(), NotCarried> {
    match how {
        Carry::FinishOnly if !signed_elsewhere => Err(NotCarried::NotFinishing),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::policy::Policy;

    fn fp(i: usize) -> Fingerprint {
        Fingerprint::from_bytes([i as u8; 32])
    }

    fn body(epoch: u64, holders: &[usize], t: u8) -> ManifestBody {
        crate::transition::test_body(epoch, holders, t, fp)
    }

    const RULES: Rules = Rules {
        policy: Policy::Majority,
        f: 0,
        floor: 2,
    };

    /// We are member 2, holding share 2 of a 3-of-5 epoch 4 held by 1..=5.
    fn ours(made: Made) -> Ours<'static> {
        static ME: std::sync::OnceLock<Fingerprint> = std::sync::OnceLock::new();
        Ours {
            me: ME.get_or_init(|| fp(2)),
            from_epoch: 4,
            index: 2,
            blob_hash: [0; 32],
            made,
        }
    }

    /// A repair of share 5 to member 6, named; a shrink leaving 5 out.
    #[test]
    fn a_named_repair_and_a_policy_shrink_are_shaped_to_sign() {
        let c = body(4, &[1, 2, 3, 4, 5], 3);
        let named = BTreeMap::from([(fp(6), 5)]);
        let repaired = body(5, &[1, 2, 3, 4, 6], 3);
        assert_eq!(
            shape(
                &c,
                &repaired,
                4,
                &RULES,
                &ours(Made::SamePolynomial),
                &named
            ),
            Ok(Shape {
                reshaped: false,
                left_out: vec![],
                replaced: vec![(5, fp(5))],
            })
        );
        let t4 = RULES.shrink_threshold(4).unwrap();
        let shrunk = body(5, &[1, 2, 3, 4], t4);
        assert_eq!(
            shape(&c, &shrunk, 4, &RULES, &ours(Made::Reshare), &named),
            Ok(Shape {
                reshaped: true,
                left_out: vec![(5, fp(5))],
                replaced: vec![],
            })
        );
        // A refresh: same holders, same (t, n), re-dealt.
        let refreshed = body(5, &[1, 2, 3, 4, 5], 3);
        assert!(shape(&c, &refreshed, 4, &RULES, &ours(Made::Reshare), &named).is_ok());
    }

    /// Every refusal, each on an otherwise signable successor.
    #[test]
    fn misshapen_successors_are_refused_with_their_reason() {
        let c = body(4, &[1, 2, 3, 4, 5], 3);
        let named = BTreeMap::from([(fp(6), 5)]);
        let good = body(5, &[1, 2, 3, 4, 6], 3);
        let same = ours(Made::SamePolynomial);
        let check = |n: &ManifestBody, from: u64, o: &Ours| shape(&c, n, from, &RULES, o, &named);
        assert_eq!(
            check(&body(6, &[1, 2, 3, 4, 6], 3), 4, &same),
            Err(Misshapen::NotNext)
        );
        assert_eq!(check(&good, 3, &same), Err(Misshapen::NotNext));
        let mut other_vault = good.clone();
        other_vault.vault_id = vault::manifest::VaultId::from_bytes([1; 16]);
        assert_eq!(check(&other_vault, 4, &same), Err(Misshapen::NotNext));
        let mut new_secret = good.clone();
        new_secret.secret_commitment = [7; 32];
        assert_eq!(check(&new_secret, 4, &same), Err(Misshapen::SecretChanged));
        // A lower threshold at the same n, a shrink below the policy's t.
        let lowered = body(5, &[1, 2, 3, 4, 6], 2);
        assert!(matches!(
            check(&lowered, 4, &same),
            Err(Misshapen::NotPolicyShrink { t: 2, n: 5, .. })
        ));
        let too_low = body(5, &[1, 2, 3, 4], 1);
        assert!(matches!(
            check(&too_low, 4, &ours(Made::Reshare)),
            Err(Misshapen::NotPolicyShrink { .. })
        ));
        // Our entry: missing, another member's, other bytes, an older epoch.
        let without_us = body(5, &[1, 3, 4, 6], RULES.shrink_threshold(4).unwrap());
        let ours_at_5 = Ours {
            index: 5,
            ..ours(Made::Reshare)
        };
        assert_eq!(
            check(&without_us, 4, &ours_at_5),
            Err(Misshapen::OurIndexMissing)
        );
        let swapped = body(5, &[1, 3, 2, 4, 6], 3);
        assert_eq!(check(&swapped, 4, &same), Err(Misshapen::NotOurShard));
        let other_bytes = Ours {
            blob_hash: [1; 32],
            ..same
        };
        assert_eq!(check(&good, 4, &other_bytes), Err(Misshapen::NotOurShard));
        let stale = Ours {
            from_epoch: 3,
            ..same
        };
        assert_eq!(check(&good, 4, &stale), Err(Misshapen::NotOurShard));
        // A shrink from a share that was not re-dealt; a restarted share.
        let shrunk = body(5, &[1, 2, 3, 4], RULES.shrink_threshold(4).unwrap());
        assert_eq!(check(&shrunk, 4, &same), Err(Misshapen::NotRedealt));
        let restored = ours(Made::Restored);
        assert_eq!(check(&good, 4, &restored), Err(Misshapen::Restored));
        // A shrink that brings in a member holding nothing now.
        let brought_in = body(5, &[1, 2, 3, 6], RULES.shrink_threshold(4).unwrap());
        assert_eq!(
            check(&brought_in, 4, &ours(Made::Reshare)),
            Err(Misshapen::NewHolder)
        );
        // Share 5 to member 7, or share 4 to member 6: never named so.
        for (holders, index, to) in [([1, 2, 3, 4, 7], 5, 7), ([1, 2, 3, 6, 5], 4, 6)] {
            let n = body(5, &holders, 3);
            let got = check(&n, 4, &same).unwrap_err();
            assert_eq!(
                got,
                Misshapen::Unnamed {
                    index,
                    to: fp(to).short()
                }
            );
            assert_eq!(got.status(), 409);
        }
        assert_eq!(Misshapen::Restored.status(), 409);
        assert_eq!(Misshapen::NotNext.status(), 422);
    }

    /// The carrying rule: who wrote and asked, whether we stand by the
    /// proposal, and the round our share was re-dealt in.
    #[test]
    fn a_successor_carries_out_what_we_stand_by_or_is_only_finished() {
        let by_proposer = Carried {
            written_by_proposer: true,
            asked_by_proposer: true,
            standing: true,
        };
        let held = |p| carry(Decider::Holders(Some(p)), None);
        assert_eq!(held(by_proposer), Ok(Carry::Sign));
        assert_eq!(carry(Decider::Log, None), Ok(Carry::Sign));
        // Asked by another holder, or given up: only finished.
        for p in [
            Carried {
                asked_by_proposer: false,
                ..by_proposer
            },
            Carried {
                standing: false,
                ..by_proposer
            },
        ] {
            assert_eq!(held(p), Ok(Carry::FinishOnly));
            assert_eq!(
                finish(Carry::FinishOnly, false),
                Err(NotCarried::NotFinishing)
            );
            assert_eq!(finish(Carry::FinishOnly, true), Ok(()));
        }
        assert_eq!(finish(Carry::Sign, false), Ok(()));
        assert_eq!(
            carry(Decider::Holders(None), None),
            Err(NotCarried::UnknownProposal)
        );
        let forged = Carried {
            written_by_proposer: false,
            ..by_proposer
        };
        assert_eq!(held(forged), Err(NotCarried::NotProposersCopy));
        assert_eq!(NotCarried::NotProposersCopy.status(), 422);
        // A re-dealt share: from the proposal's round, still kept.
        let round = |in_proposal, kept| OurRound { in_proposal, kept };
        for decider in [Decider::Log, Decider::Holders(Some(by_proposer))] {
            assert_eq!(carry(decider, Some(round(true, true))), Ok(Carry::Sign));
            assert_eq!(
                carry(decider, Some(round(false, true))),
                Err(NotCarried::RoundElsewhere)
            );
            assert_eq!(
                carry(decider, Some(round(true, false))),
                Err(NotCarried::RoundGone)
            );
        }
        assert_eq!(NotCarried::RoundGone.status(), 409);
    }

    /// One successor per epoch: the same one again, never another.
    #[test]
    fn one_successor_signature_per_epoch() {
        assert_eq!(Vote::of(None, &[1; 32]), Vote::Fresh);
        assert_eq!(Vote::of(Some([1; 32]), &[1; 32]), Vote::Again);
        assert_eq!(Vote::of(Some([2; 32]), &[1; 32]), Vote::Spent);
    }
}
