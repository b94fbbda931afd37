//! Share repair and re-sharing without reconstruction: the arithmetic.
//!
//! This module is the pure, network-free half of the validator mesh's
//! healing protocol (`docs/protocol.md` describes the messages). No function
//! here ever needs the secret or t shares in one place.
//!
//! **Repair (enrolment)** recomputes the share at a lost index `r` from `t`
//! helpers of the same epoch, keeping the polynomial:
//!
//! 1. Helper `i` computes its Lagrange-weighted contribution
//!    `c_i = λ_i(r) · s_i` ([`contribution`]) and splits it into `t` random
//!    additive pieces, one per helper ([`split_additive`]).
//! 2. Helper `j` sums the pieces it received: `σ_j = Σ_i piece_{i→j}`
//!    ([`sum_pieces`]) and sends only `σ_j` to the new node.
//! 3. The new node adds the `σ_j`: `Σ_j σ_j = Σ_i c_i = s_r`
//!    ([`assemble`]).
//!
//! A helper sees its own share and random pieces; the new node sees `t`
//! values that are jointly uniform subject to summing to `s_r`. Sending
//! `c_i` directly would let the new node divide by the public `λ_i(r)` and
//! learn `t` shares, hence the secret: the additive masking is the point.
//!
//! **Re-sharing** (Desmedt-Jajodia) moves the secret to a fresh polynomial,
//! optionally with a new (t', n'): each of `t` old holders deals its share
//! with a fresh degree-(t'-1) polynomial ([`deal`]); new member `k` combines
//! the `t` sub-shares it received with the old Lagrange weights at 0
//! ([`combine_subshares`]). Old and new shares never combine with each other.

use crate::gf256::{mul_acc, Gf256};
use crate::shamir::{self, lagrange_coefficients, ShamirError, Share};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why a repair or re-sharing step was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RepairError {
    /// The field arithmetic refused the input (duplicate or zero index...).
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// The target index is one of the helpers: nothing to repair.
    #[error("share {0} is held by a helper; repair targets a lost index")]
    TargetIsHelper(u8),
    /// The helper's own index is not in the helper set.
    #[error("share {0} is not in the helper set {1:?}")]
    NotAHelper(u8, Vec<u8>),
    /// Pieces or sub-shares disagree in length.
    #[error("pieces have different lengths ({0} and {1} bytes)")]
    LengthMismatch(usize, usize),
    /// A step received the wrong number of inputs.
    #[error("expected {expected} inputs, got {got}")]
    WrongCount {
        /// Inputs required.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// The system RNG failed.
    #[error("system random number generator failed")]
    Rng,
}

/// Step 1a: helper `share.index`'s contribution `λ_i(target) · s_i` for the
/// helper set `helpers` (which must contain `share.index`, not `target`).
pub fn contribution(
    share: &Share,
    helpers: &[u8],
    target: u8,
) -> Result<Zeroizing<Vec<u8>>, RepairError> {
    if helpers.contains(&target) {
        return Err(RepairError::TargetIsHelper(target));
    }
    if target == 0 {
        return Err(ShamirError::ZeroIndex.into());
    }
    let pos = helpers
        .iter()
        .position(|&h| h == share.index)
        .ok_or_else(|| RepairError::NotAHelper(share.index, helpers.to_vec()))?;
    let lambda = lagrange_coefficients(helpers, target)?[pos];
    Ok(shamir::scale(&share.value, lambda))
}

/// Step 1b: splits `value` into `parts` random pieces whose sum is `value`.
/// All but the last piece are uniformly random.
pub fn split_additive(value: &[u8], parts: usize) -> Result<Vec<Zeroizing<Vec<u8>>>, RepairError> {
    if parts == 0 {
        return Err(RepairError::WrongCount {
            expected: 1,
            got: 0,
        });
    }
    let mut last = Zeroizing::new(value.to_vec());
    let mut pieces = Vec::with_capacity(parts);
    for _ in 1..parts {
        let mut p = Zeroizing::new(vec![0u8; value.len()]);
        aws_lc_rs::rand::fill(&mut p[..]).map_err(|_| RepairError::Rng)?;
        shamir::add_into(&mut last, &p)?;
        pieces.push(p);
    }
    pieces.push(last);
    Ok(pieces)
}

/// Step 2 (and 3): the sum of equally long pieces.
pub fn sum_pieces<P: AsRef<[u8]>>(pieces: &[P]) -> Result<Zeroizing<Vec<u8>>, RepairError> {
    let Some(first) = pieces.first() else {
        return Err(RepairError::WrongCount {
            expected: 1,
            got: 0,
        });
    };
    let mut acc = Zeroizing::new(first.as_ref().to_vec());
    for p in &pieces[1..] {
        shamir::add_into(&mut acc, p.as_ref())
            .map_err(|_| RepairError::LengthMismatch(acc.len(), p.as_ref().len()))?;
    }
    Ok(acc)
}

/// Step 3: the new node's share at `target` from the helpers' partial sums.
pub fn assemble<P: AsRef<[u8]>>(target: u8, partial_sums: &[P]) -> Result<Share, RepairError> {
    if target == 0 {
        return Err(ShamirError::ZeroIndex.into());
    }
    Ok(Share {
        index: target,
        value: sum_pieces(partial_sums)?,
    })
}

/// Re-sharing, old holder side: deals `share` to `n_new` new members with a
/// fresh random polynomial of degree `t_new - 1`; sub-share `k` goes to new
/// member `k` (index `k`, 1-based).
pub fn deal(share: &Share, t_new: u8, n_new: u8) -> Result<Vec<Share>, RepairError> {
    Ok(shamir::split(&share.value, t_new, n_new)?)
}

/// Re-sharing, new member side: combines the sub-shares it received, one
/// from each old holder in `old_indices` (same order), into its new share
/// at `new_index`: `s'_k = Σ_i λ_i(0) · sub_{i→k}`.
pub fn combine_subshares<P: AsRef<[u8]>>(
    old_indices: &[u8],
    subshares: &[P],
    new_index: u8,
) -> Result<Share, RepairError> {
    if old_indices.len() != subshares.len() {
        return Err(RepairError::WrongCount {
            expected: old_indices.len(),
            got: subshares.len(),
        });
    }
    if new_index == 0 {
        return Err(ShamirError::ZeroIndex.into());
    }
    let lambdas: Vec<Gf256> = lagrange_coefficients(old_indices, 0)?;
    let len = subshares.first().map_or(0, |s| s.as_ref().len());
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (sub, lambda) in subshares.iter().zip(lambdas) {
        if sub.as_ref().len() != len {
            return Err(RepairError::LengthMismatch(len, sub.as_ref().len()));
        }
        mul_acc(&mut out, sub.as_ref(), lambda);
    }
    Ok(Share {
        index: new_index,
        value: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(secret: &[u8], t: u8, n: u8) -> Vec<Share> {
        shamir::split(secret, t, n).unwrap()
    }

    /// Runs the three repair steps as t separate parties would.
    fn repair(helpers: &[&Share], target: u8) -> Share {
        let idx: Vec<u8> = helpers.iter().map(|s| s.index).collect();
        // Round 1: piece_{i->j}
        let pieces: Vec<Vec<Zeroizing<Vec<u8>>>> = helpers
            .iter()
            .map(|s| split_additive(&contribution(s, &idx, target).unwrap(), idx.len()).unwrap())
            .collect();
        // Round 2: helper j sums column j.
        let sums: Vec<Zeroizing<Vec<u8>>> = (0..idx.len())
            .map(|j| {
                sum_pieces(&pieces.iter().map(|row| row[j].clone()).collect::<Vec<_>>()).unwrap()
            })
            .collect();
        assemble(target, &sums).unwrap()
    }

    #[test]
    fn repair_recreates_the_lost_share_exactly() {
        let secret = b"thirty-two bytes of master secret";
        for (t, n) in [(2u8, 3u8), (4, 7), (5, 9)] {
            let all = shares(secret, t, n);
            for lost in 1..=n {
                let helpers: Vec<&Share> = all
                    .iter()
                    .filter(|s| s.index != lost)
                    .take(usize::from(t))
                    .collect();
                let new = repair(&helpers, lost);
                assert_eq!(new.index, lost);
                assert_eq!(
                    &new.value[..],
                    &all[usize::from(lost) - 1].value[..],
                    "t={t} n={n} lost={lost}"
                );
            }
        }
    }

    #[test]
    fn partial_sums_are_fresh_randomness_each_run() {
        // The new node's inputs are masked: two runs of the same repair
        // give different partial sums but the same share.
        let all = shares(&[7u8; 32], 3, 5);
        let helpers: Vec<&Share> = all[..3].iter().collect();
        let idx = [1u8, 2, 3];
        let c = contribution(helpers[0], &idx, 5).unwrap();
        let a = split_additive(&c, 3).unwrap();
        let b = split_additive(&c, 3).unwrap();
        assert_ne!(&a[0][..], &b[0][..]);
        assert_eq!(&sum_pieces(&a).unwrap()[..], &c[..]);
        assert_eq!(&sum_pieces(&b).unwrap()[..], &c[..]);
        // No single piece equals the contribution it hides.
        assert!(a.iter().all(|p| p[..] != c[..]));
    }

    #[test]
    fn repair_refuses_bad_plans() {
        let all = shares(&[1u8; 8], 2, 4);
        assert_eq!(
            contribution(&all[0], &[1, 2], 2),
            Err(RepairError::TargetIsHelper(2))
        );
        assert!(matches!(
            contribution(&all[2], &[1, 2], 4),
            Err(RepairError::NotAHelper(3, _))
        ));
        assert!(matches!(
            contribution(&all[0], &[1, 1], 4),
            Err(RepairError::Shamir(ShamirError::DuplicateIndex(1)))
        ));
        assert!(contribution(&all[0], &[1, 2], 0).is_err());
        assert!(split_additive(&[1, 2], 0).is_err());
        assert!(matches!(
            sum_pieces(&[vec![1u8, 2], vec![3u8]]),
            Err(RepairError::LengthMismatch(2, 1))
        ));
        assert!(assemble::<Vec<u8>>(3, &[]).is_err());
    }

    /// Runs a full re-sharing from `old` (t_old of them) to (t_new, n_new).
    fn reshare(old: &[&Share], t_new: u8, n_new: u8) -> Vec<Share> {
        let old_idx: Vec<u8> = old.iter().map(|s| s.index).collect();
        let dealt: Vec<Vec<Share>> = old.iter().map(|s| deal(s, t_new, n_new).unwrap()).collect();
        (1..=n_new)
            .map(|k| {
                let subs: Vec<&[u8]> = dealt
                    .iter()
                    .map(|d| &d[usize::from(k) - 1].value[..])
                    .collect();
                combine_subshares(&old_idx, &subs, k).unwrap()
            })
            .collect()
    }

    #[test]
    fn reshare_keeps_the_secret_and_can_change_t_and_n() {
        let secret = b"re-share me without reconstruction";
        let old = shares(secret, 4, 7);
        // 5 survivors remain; 4 of them take part; new policy 3-of-5.
        let helpers: Vec<&Share> = [&old[1], &old[2], &old[4], &old[6]].to_vec();
        let new = reshare(&helpers, 3, 5);
        for subset in [[0usize, 1, 2], [2, 3, 4], [0, 2, 4]] {
            let picked: Vec<Share> = subset.iter().map(|&i| new[i].clone()).collect();
            assert_eq!(&shamir::combine(&picked).unwrap()[..], &secret[..]);
        }
        // Below the new threshold the secret does not come out.
        assert_ne!(&shamir::combine(&new[..2]).unwrap()[..], &secret[..]);
        // Refresh at the same (t, n): every old share is now useless with
        // the new ones, even at overlapping indices.
        let refreshed = reshare(&helpers, 4, 7);
        let mixed = vec![
            old[0].clone(),
            old[1].clone(),
            refreshed[2].clone(),
            refreshed[3].clone(),
        ];
        assert_ne!(&shamir::combine(&mixed).unwrap()[..], &secret[..]);
        let fresh: Vec<Share> = refreshed[3..].to_vec();
        assert_eq!(&shamir::combine(&fresh).unwrap()[..], &secret[..]);
        // The refreshed shares differ from the old ones at every index.
        assert!(old
            .iter()
            .zip(&refreshed)
            .all(|(a, b)| a.value[..] != b.value[..]));
    }

    #[test]
    fn reshare_refuses_bad_input() {
        let old = shares(&[9u8; 16], 2, 3);
        assert!(deal(&old[0], 1, 3).is_err());
        assert!(deal(&old[0], 4, 3).is_err());
        let subs = [vec![1u8; 16]];
        assert!(matches!(
            combine_subshares(&[1, 2], &subs, 1),
            Err(RepairError::WrongCount { .. })
        ));
        let subs = [vec![1u8; 16], vec![1u8; 15]];
        assert!(matches!(
            combine_subshares(&[1, 2], &subs, 1),
            Err(RepairError::LengthMismatch(16, 15))
        ));
        let subs = [vec![1u8; 16], vec![1u8; 16]];
        assert!(combine_subshares(&[1, 2], &subs, 0).is_err());
    }
}
