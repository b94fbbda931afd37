//! Robust reconstruction: Berlekamp-Welch decoding of Shamir shares.
//!
//! This module owns finding the sharing polynomial when some of the shares
//! given are wrong, and naming those shares. [`crate::shamir::combine`]
//! trusts its t shares; [`decode`] takes k >= t shares of which up to
//! [`correctable`]`(k, t)` = floor((k - t) / 2) may be wrong, returns the
//! value at 0 and exactly the wrong ones. Shamir shares of one epoch are a
//! Reed-Solomon codeword (the evaluations of a degree < t polynomial per
//! byte), so this is Reed-Solomon error correction; a search over subsets
//! of t shares would be exponential in k, this is polynomial.
//!
//! **Errors are per share.** A holder who lies may change any bytes of its
//! share, so a share is wrong as a whole if it is wrong at any byte
//! position: the wrong set is the union over byte positions of the shares
//! that disagree with that position's polynomial, and decoding fails when
//! that union has more than floor((k - t) / 2) members, even if every
//! position alone could be corrected (docs/decisions.md, D24).
//!
//! **Algorithm.** Decoding every byte position with Berlekamp-Welch would
//! cost O(k^3) per byte. Instead, with W the shares known wrong (initially
//! none):
//!
//! 1. interpolate the polynomial through the t lowest-index shares not in
//!    W, evaluate it at every other share not in W, over all positions;
//! 2. if every one agrees, done: the wrong shares are W;
//! 3. otherwise, at the first position where one disagrees, solve the
//!    Berlekamp-Welch system over all k shares (Gaussian elimination over
//!    GF(256)) for the error locator E (monic, degree e = floor((k-t)/2))
//!    and Q (degree < t + e), divide P = Q / E, and add to W every share
//!    that disagrees with P at that position; if there is no solution, a
//!    remainder, or W grows beyond e, the shares are not correctable.
//!
//! Each round of step 3 adds at least one share to W (a position where a
//! share outside W disagrees has an error outside W), so there are at most
//! e + 1 rounds: O((e + 1) * (k * t * len + k^3)). When it ends, every
//! position's polynomial is within distance |W| <= e of the shares, hence
//! the unique one; the result is the same as decoding each position alone
//! and taking the union.
//!
//! **Beyond the bound** decoding usually fails, but it can return another
//! polynomial within distance e of the shares (then the shares are closer
//! to it than to the true one, and no decoder could tell). Callers must
//! check the result: recovery checks the secret commitment.
//!
//! **Side channels.** Shares reaching this module have passed their
//! commitment checks; which ones disagree, and where, is what it reports.
//! Pivot choice and comparisons branch on share bytes, so decoding is not
//! constant time (the field arithmetic itself is). Share bytes and every
//! buffer derived from them are zeroized on drop and never logged.

use crate::gf256::{mul_acc, Gf256};
use crate::shamir::{self, lagrange_coefficients, ShamirError, Share};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why shares could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The shares are malformed (duplicate or zero index, lengths differ,
    /// fewer than t, t below 2).
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// More shares are wrong than k shares at threshold t can correct.
    #[error(
        "more than {correctable} of the {shares} shares are wrong; with threshold {threshold}, \
         correcting {} wrong share(s) needs at least {} shares",
        .correctable + 1,
        shares_needed(usize::from(*.threshold), .correctable + 1)
    )]
    TooManyErrors {
        /// Shares given (k).
        shares: usize,
        /// Threshold t.
        threshold: u8,
        /// floor((k - t) / 2).
        correctable: usize,
    },
}

/// How many wrong shares decoding `k` shares at threshold `t` corrects:
/// floor((k - t) / 2) (0 when k <= t + 1).
pub fn correctable(k: usize, t: usize) -> usize {
    k.saturating_sub(t) / 2
}

/// How many shares correct `errors` wrong ones at threshold `t`: t + 2 errors.
pub fn shares_needed(t: usize, errors: usize) -> usize {
    t + 2 * errors
}

/// The outcome of decoding.
pub struct Decoded {
    /// The polynomial's value at 0 (for a vault: secret and blinding).
    pub value: Zeroizing<Vec<u8>>,
    /// Indices of the shares that disagree with it, ascending.
    pub wrong: Vec<u8>,
    /// Indices of the t shares it was interpolated from, ascending.
    pub basis: Vec<u8>,
    /// Indices of the other shares that agree with it, ascending.
    pub agreeing: Vec<u8>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("wrong", &self.wrong)
            .field("basis", &self.basis)
            .field("agreeing", &self.agreeing)
            .finish_non_exhaustive()
    }
}

/// Decodes `shares` (k >= t of one sharing at threshold `t`, any order),
/// correcting up to [`correctable`]`(k, t)` wrong ones; see the module docs.
pub fn decode(shares: &[Share], t: u8) -> Result<Decoded, DecodeError> {
    let k = shares.len();
    let tu = usize::from(t);
    if t < 2 {
        return Err(ShamirError::BadThreshold {
            t,
            n: u8::try_from(k).unwrap_or(u8::MAX),
        }
        .into());
    }
    if k < tu {
        return Err(ShamirError::NotEnoughShares { needed: tu, got: k }.into());
    }
    let mut sorted: Vec<&Share> = shares.iter().collect();
    sorted.sort_by_key(|s| s.index);
    // Index checks (zero, duplicates, more than 255) on all k points at once.
    let xs: Vec<u8> = sorted.iter().map(|s| s.index).collect();
    lagrange_coefficients(&xs, 0)?;
    let len = sorted[0].value.len();
    if let Some(s) = sorted.iter().find(|s| s.value.len() != len) {
        return Err(ShamirError::LengthMismatch {
            a: len,
            b: s.value.len(),
        }
        .into());
    }
    if len == 0 {
        return Err(ShamirError::EmptySecret.into());
    }

    let e = correctable(k, tu);
    let too_many = || DecodeError::TooManyErrors {
        shares: k,
        threshold: t,
        correctable: e,
    };
    let mut wrong = vec![false; k];
    loop {
        let good: Vec<&Share> = sorted
            .iter()
            .zip(&wrong)
            .filter(|(_, &w)| !w)
            .map(|(s, _)| *s)
            .collect();
        let (basis, rest) = good.split_at(tu);
        match first_disagreement(basis, rest)? {
            None => {
                let basis_shares: Vec<Share> = basis.iter().map(|s| (*s).clone()).collect();
                let value = shamir::combine(&basis_shares)?;
                return Ok(Decoded {
                    value,
                    wrong: sorted
                        .iter()
                        .zip(&wrong)
                        .filter(|(_, &w)| w)
                        .map(|(s, _)| s.index)
                        .collect(),
                    basis: basis.iter().map(|s| s.index).collect(),
                    agreeing: rest.iter().map(|s| s.index).collect(),
                });
            }
            Some(pos) => {
                let column: Zeroizing<Vec<u8>> =
                    Zeroizing::new(sorted.iter().map(|s| s.value[pos]).collect());
                let errors = berlekamp_welch(&xs, &column, tu, e).ok_or_else(too_many)?;
                let mut grew = false;
                for i in errors {
                    grew |= !wrong[i];
                    wrong[i] = true;
                }
                // `grew` always holds (see the module docs); the check keeps
                // the loop finite whatever happens.
                if !grew || wrong.iter().filter(|&&w| w).count() > e {
                    return Err(too_many());
                }
            }
        }
    }
}

/// The first byte position at which some share of `rest` disagrees with
/// the polynomial through `basis`, if any.
fn first_disagreement(basis: &[&Share], rest: &[&Share]) -> Result<Option<usize>, ShamirError> {
    let xs: Vec<u8> = basis.iter().map(|s| s.index).collect();
    let mut first: Option<usize> = None;
    for s in rest {
        let lambdas = lagrange_coefficients(&xs, s.index)?;
        let mut diff = Zeroizing::new(s.value.to_vec());
        for (b, l) in basis.iter().zip(lambdas) {
            mul_acc(&mut diff, &b.value, l);
        }
        if let Some(pos) = diff.iter().position(|&d| d != 0) {
            first = Some(first.map_or(pos, |f| f.min(pos)));
        }
    }
    Ok(first)
}

/// Berlekamp-Welch on one byte position: points (xs[i], ys[i]), degree < t,
/// at most e errors. Returns the positions i where ys[i] disagrees with the
/// unique polynomial within distance e, or `None` if there is none.
///
/// Solves Q(x_i) = y_i E(x_i) for E = x^e + a_{e-1} x^{e-1} + ... + a_0 and
/// Q of degree < t + e (unknowns a_0..a_{e-1}, b_0..b_{t+e-1}; in
/// characteristic 2: sum_j b_j x_i^j + sum_j a_j y_i x_i^j = y_i x_i^e),
/// then P = Q / E. Any solution gives Q = P E when at most e of the points
/// are wrong, so the first one found is used.
fn berlekamp_welch(xs: &[u8], ys: &[u8], t: usize, e: usize) -> Option<Vec<usize>> {
    let k = xs.len();
    let unknowns = t + 2 * e;
    if ys.len() != k || k < unknowns {
        return None;
    }
    let cols = unknowns + 1;
    // Row i: [y_i x_i^j, j < e] [x_i^j, j < t + e] | y_i x_i^e.
    let mut m: Zeroizing<Vec<Gf256>> = Zeroizing::new(vec![Gf256::ZERO; k * cols]);
    for (i, (&x, &y)) in xs.iter().zip(ys).enumerate() {
        let (x, y) = (Gf256(x), Gf256(y));
        let row = &mut m[i * cols..(i + 1) * cols];
        let mut xj = Gf256::ONE;
        // t >= 1, so j reaches e and the right-hand side is always set.
        for j in 0..t + e {
            if j < e {
                row[j] = y * xj;
            }
            row[e + j] = xj;
            if j == e {
                row[unknowns] = y * xj;
            }
            xj = xj * x;
        }
    }
    let solution = solve(&mut m, k, unknowns)?;

    // E = a_0 + ... + a_{e-1} x^{e-1} + x^e, Q = b_0 + ... + b_{t+e-1} x^{t+e-1}.
    let mut locator: Zeroizing<Vec<Gf256>> = Zeroizing::new(solution[..e].to_vec());
    locator.push(Gf256::ONE);
    let q: Zeroizing<Vec<Gf256>> = Zeroizing::new(solution[e..].to_vec());
    let p = divide_exact(&q, &locator)?;

    let errors: Vec<usize> = xs
        .iter()
        .zip(ys)
        .enumerate()
        .filter(|(_, (&x, &y))| eval(&p, Gf256(x)) != Gf256(y))
        .map(|(i, _)| i)
        .collect();
    (errors.len() <= e).then_some(errors)
}

/// Gaussian elimination on the `rows` x (`unknowns` + 1) augmented matrix
/// `m`; returns one solution (free unknowns set to zero) or `None` if the
/// system is inconsistent.
fn solve(m: &mut [Gf256], rows: usize, unknowns: usize) -> Option<Zeroizing<Vec<Gf256>>> {
    let cols = unknowns + 1;
    let mut pivots: Vec<(usize, usize)> = Vec::new(); // (row, column)
    let mut r = 0;
    for c in 0..unknowns {
        let Some(p) = (r..rows).find(|&i| m[i * cols + c] != Gf256::ZERO) else {
            continue;
        };
        if p != r {
            for j in 0..cols {
                m.swap(p * cols + j, r * cols + j);
            }
        }
        let inv = m[r * cols + c].inv()?;
        for j in c..cols {
            m[r * cols + j] = m[r * cols + j] * inv;
        }
        for i in 0..rows {
            let f = m[i * cols + c];
            if i != r && f != Gf256::ZERO {
                for j in c..cols {
                    let v = m[r * cols + j];
                    m[i * cols + j] = m[i * cols + j] - f * v;
                }
            }
        }
        pivots.push((r, c));
        r += 1;
        if r == rows {
            break;
        }
    }
    // A zero row with a nonzero right-hand side: inconsistent.
    if (r..rows).any(|i| m[i * cols + unknowns] != Gf256::ZERO) {
        return None;
    }
    let mut x = Zeroizing::new(vec![Gf256::ZERO; unknowns]);
    for (row, c) in pivots {
        x[c] = m[row * cols + unknowns];
    }
    Some(x)
}

/// `num / den` for a monic `den`, or `None` if the remainder is nonzero.
/// Coefficients are lowest degree first.
fn divide_exact(num: &[Gf256], den: &[Gf256]) -> Option<Zeroizing<Vec<Gf256>>> {
    let d = den.len().checked_sub(1)?;
    if num.len() <= d {
        return num
            .iter()
            .all(|&c| c == Gf256::ZERO)
            .then(|| Zeroizing::new(vec![Gf256::ZERO; 1]));
    }
    let mut rem = Zeroizing::new(num.to_vec());
    let mut quot = Zeroizing::new(vec![Gf256::ZERO; num.len() - d]);
    for i in (0..quot.len()).rev() {
        let c = rem[i + d];
        quot[i] = c;
        if c != Gf256::ZERO {
            for (j, &dj) in den.iter().enumerate() {
                rem[i + j] = rem[i + j] - c * dj;
            }
        }
    }
    rem.iter().all(|&c| c == Gf256::ZERO).then_some(quot)
}

/// Horner evaluation; coefficients lowest degree first.
fn eval(p: &[Gf256], x: Gf256) -> Gf256 {
    p.iter().rev().fold(Gf256::ZERO, |acc, &c| acc * x + c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(101) ^ 0xc3)
            .collect()
    }

    #[test]
    fn clean_shares_decode_with_nothing_wrong() {
        let s = secret(40);
        let shares = shamir::split(&s, 3, 6).unwrap();
        for k in 3..=6 {
            let d = decode(&shares[..k], 3).unwrap();
            assert_eq!(*d.value, s);
            assert!(d.wrong.is_empty());
            assert_eq!(d.basis, [1, 2, 3]);
            assert_eq!(d.agreeing, (4..=k as u8).collect::<Vec<_>>());
        }
    }

    #[test]
    fn corrects_and_names_up_to_the_bound_in_any_order() {
        let s = secret(17);
        let mut shares = shamir::split(&s, 4, 9).unwrap();
        // Two liars (floor((9 - 4) / 2) = 2): one whole share, one byte.
        shares[0].value.iter_mut().for_each(|b| *b = !*b);
        shares[6].value[16] ^= 0x80;
        shares.reverse();
        let d = decode(&shares, 4).unwrap();
        assert_eq!(*d.value, s);
        assert_eq!(d.wrong, [1, 7]);
        assert_eq!(d.basis, [2, 3, 4, 5]);
        assert_eq!(d.agreeing, [6, 8, 9]);
    }

    #[test]
    fn errors_at_different_positions_count_as_a_union() {
        // k = 5, t = 3: one error correctable. Shares 1 and 2 are each
        // wrong at one position only (different ones): two wrong shares.
        let s = secret(8);
        let mut shares = shamir::split(&s, 3, 5).unwrap();
        shares[0].value[0] ^= 1;
        shares[1].value[5] ^= 1;
        let err = decode(&shares, 3).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooManyErrors {
                shares: 5,
                threshold: 3,
                correctable: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "more than 1 of the 5 shares are wrong; with threshold 3, correcting 2 wrong share(s) needs at least 7 shares"
        );
    }

    #[test]
    fn one_more_share_detects_but_does_not_correct() {
        let s = secret(8);
        let mut shares = shamir::split(&s, 3, 4).unwrap();
        shares[3].value[2] ^= 9;
        assert!(matches!(
            decode(&shares, 3),
            Err(DecodeError::TooManyErrors { correctable: 0, .. })
        ));
    }

    #[test]
    fn refuses_malformed_input() {
        let s = secret(8);
        let shares = shamir::split(&s, 3, 4).unwrap();
        assert_eq!(
            decode(&shares[..2], 3).unwrap_err(),
            ShamirError::NotEnoughShares { needed: 3, got: 2 }.into()
        );
        assert!(matches!(
            decode(&shares, 1),
            Err(DecodeError::Shamir(ShamirError::BadThreshold { .. }))
        ));
        let mut dup = shares.clone();
        dup[1].index = 1;
        assert_eq!(
            decode(&dup, 3).unwrap_err(),
            ShamirError::DuplicateIndex(1).into()
        );
        let mut short = shares.clone();
        short[2].value = Zeroizing::new(vec![1]);
        assert!(matches!(
            decode(&short, 3),
            Err(DecodeError::Shamir(ShamirError::LengthMismatch { .. }))
        ));
        let mut zero = shares.clone();
        zero[0].index = 0;
        assert_eq!(decode(&zero, 3).unwrap_err(), ShamirError::ZeroIndex.into());
    }

    #[test]
    fn polynomial_helpers() {
        // (x + 2)(x + 3) = x^2 + x + 6 in GF(2^8).
        let den = [Gf256(2), Gf256::ONE];
        let num = [Gf256(6), Gf256(1), Gf256(1)];
        assert_eq!(*divide_exact(&num, &den).unwrap(), [Gf256(3), Gf256::ONE]);
        assert!(divide_exact(&[Gf256(7), Gf256(1), Gf256(1)], &den).is_none());
        assert_eq!(eval(&num, Gf256(2)), Gf256::ZERO);
        assert_eq!(eval(&num, Gf256(3)), Gf256::ZERO);
        assert_eq!(eval(&num, Gf256(0)), Gf256(6));
    }

    proptest! {
        #[test]
        fn any_column_within_the_bound_decodes(
            ys in proptest::collection::vec(any::<u8>(), 3),
            (k, e) in (3usize..=12).prop_flat_map(|k| (Just(k), 0..=(k - 3) / 2)),
            flips in proptest::collection::vec((0usize..12, 1u8..=255), 0..6),
        ) {
            // A degree < 3 polynomial through (1..=3, ys), evaluated at 1..=k.
            let base: Vec<Share> = (1..=3u8)
                .zip(&ys)
                .map(|(i, &y)| Share { index: i, value: Zeroizing::new(vec![y]) })
                .collect();
            let xs: Vec<u8> = (1..=k as u8).collect();
            let clean: Vec<u8> = xs
                .iter()
                .map(|&x| shamir::interpolate(&base, x).unwrap()[0])
                .collect();
            let mut col = clean.clone();
            for &(i, d) in flips.iter().take(e) {
                col[i % k] ^= d;
            }
            let wrong: Vec<usize> = (0..k).filter(|&i| col[i] != clean[i]).collect();
            prop_assert_eq!(berlekamp_welch(&xs, &col, 3, e), Some(wrong));
        }
    }
}
