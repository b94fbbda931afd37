//! Byte-wise Shamir secret sharing over GF(2^8).
//!
//! This module owns splitting a master secret into shares, reconstructing it,
//! and the share arithmetic (interpolation at arbitrary points, addition,
//! scaling, polynomial evaluation) that share repair and re-sharing build on.
//!
//! It is written in-house rather than taken from the `sharks` crate, which
//! drew polynomial coefficients from 1..=255 instead of the whole field
//! (RUSTSEC-2024-0398) and so leaked information about the secret. Here:
//!
//! - coefficients are uniform over all of 0..=255, straight from the system
//!   RNG, and a statistical test guards this;
//! - all arithmetic on secret bytes is constant time (see [`crate::gf256`]);
//! - secrets, shares and coefficient buffers are zeroized when dropped;
//! - bad input yields a [`ShamirError`], never a panic.
//!
//! Each secret byte gets its own random polynomial of degree t - 1 whose
//! constant term is that byte; share `k` holds the evaluations at x = k.

use core::fmt;

use zeroize::Zeroizing;

use crate::gf256::{mul_acc, Gf256};

/// Why a Shamir operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    /// The threshold or share count does not allow a secure, recoverable split.
    #[error("threshold {t} is out of range: need 2 <= t <= n ({n})")]
    BadThreshold { t: u8, n: u8 },
    /// More points than the field has nonzero elements.
    #[error("share count n = {n} out of range: need 2 <= n <= 255")]
    BadShareCount { n: usize },
    /// A share claims evaluation point 0, where the secret lives.
    #[error("share index 0 is reserved for the secret")]
    ZeroIndex,
    /// Two shares have the same evaluation point.
    #[error("duplicate share index {0}")]
    DuplicateIndex(u8),
    /// Shares or vectors that must line up byte for byte do not.
    #[error("shares have different lengths ({a} and {b} bytes)")]
    LengthMismatch { a: usize, b: usize },
    /// Too few shares to interpolate.
    #[error("need at least {needed} shares, got {got}")]
    NotEnoughShares { needed: usize, got: usize },
    /// There is nothing to share (or a share or polynomial carries no bytes).
    #[error("secret is empty")]
    EmptySecret,
    /// The system RNG failed; no shares were produced.
    #[error("system random number generator failed")]
    Rng,
}

/// One share: evaluation point `index` (1..=255) and one field element per
/// secret byte.
///
/// `Debug` shows only the index and length, never the value.
#[derive(Clone, zeroize::ZeroizeOnDrop)]
pub struct Share {
    /// The evaluation point x (nonzero).
    pub index: u8,
    /// f(x) for each byte's polynomial f.
    pub value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("index", &self.index)
            .field("len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// Split `secret` into `n` shares at points 1..=n, any `t` of which recover it.
///
/// Coefficients come from the system RNG (`aws_lc_rs::rand::fill`).
pub fn split(secret: &[u8], t: u8, n: u8) -> Result<Vec<Share>, ShamirError> {
    split_with(secret, t, n, |buf| {
        aws_lc_rs::rand::fill(buf).map_err(|_| ShamirError::Rng)
    })
}

/// Bytes of secret processed per round, bounding the coefficient buffer to
/// (t - 1) * CHUNK bytes and keeping the working set in cache.
const CHUNK: usize = 4096;

/// [`split`] with a caller-supplied coefficient source, for tests and
/// statistics.
///
/// `fill` must fill its argument with uniformly random bytes; it is called
/// once per chunk of up to 4 KiB of secret, with (t - 1) bytes per secret
/// byte (the coefficients of degrees 1..t), and its errors are passed on.
pub fn split_with<F>(secret: &[u8], t: u8, n: u8, mut fill: F) -> Result<Vec<Share>, ShamirError>
where
    F: FnMut(&mut [u8]) -> Result<(), ShamirError>,
{
    if n < 2 || t < 2 || t > n {
        return Err(ShamirError::BadThreshold { t, n });
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }

    let mut shares: Vec<Share> = (1..=n)
        .map(|index| Share {
            index,
            value: Zeroizing::new(secret.to_vec()),
        })
        .collect();

    // One vector per degree 1..t for the current chunk, laid out back to back.
    let degrees = usize::from(t - 1);
    let mut coeffs = Zeroizing::new(vec![0u8; degrees * CHUNK.min(secret.len())]);

    for start in (0..secret.len()).step_by(CHUNK) {
        let len = CHUNK.min(secret.len() - start);
        let coeffs = &mut coeffs[..degrees * len];
        fill(coeffs)?;
        for share in &mut shares {
            // f(x) = a0 + sum_k a_k x^k; a0 (the secret) is already in place.
            let x = Gf256(share.index);
            let out = &mut share.value[start..start + len];
            let mut xk = Gf256::ONE;
            for a_k in coeffs.chunks_exact(len) {
                xk = xk * x;
                mul_acc(out, a_k, xk);
            }
        }
    }
    Ok(shares)
}

/// Lagrange basis coefficients for evaluating at `at` the polynomial through
/// the distinct nonzero points `xs`:
/// lambda_i = prod_{j != i} (at - x_j) / (x_i - x_j).
///
/// Requires at least two points; points are public, so the index checks may
/// branch on them.
pub fn lagrange_coefficients(xs: &[u8], at: u8) -> Result<Vec<Gf256>, ShamirError> {
    if xs.len() < 2 {
        return Err(ShamirError::NotEnoughShares {
            needed: 2,
            got: xs.len(),
        });
    }
    if xs.len() > 255 {
        return Err(ShamirError::BadShareCount { n: xs.len() });
    }
    let mut seen = [false; 256];
    for &x in xs {
        if x == 0 {
            return Err(ShamirError::ZeroIndex);
        }
        if seen[usize::from(x)] {
            return Err(ShamirError::DuplicateIndex(x));
        }
        seen[usize::from(x)] = true;
    }

    let at = Gf256(at);
    xs.iter()
        .enumerate()
        .map(|(i, &xi)| {
            let xi = Gf256(xi);
            let (num, den) = xs
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold((Gf256::ONE, Gf256::ONE), |(num, den), (_, &xj)| {
                    (num * (at - Gf256(xj)), den * (xi - Gf256(xj)))
                });
            // `den` is nonzero because the points are distinct.
            num.div(den).ok_or(ShamirError::DuplicateIndex(xi.0))
        })
        .collect()
}

/// Evaluate the unique polynomial of degree < `shares.len()` through
/// `shares` at `at`: `at = 0` reconstructs the secret, `at = k` recomputes
/// share `k` (share repair).
pub fn interpolate(shares: &[Share], at: u8) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let xs: Vec<u8> = shares.iter().map(|s| s.index).collect();
    let lambdas = lagrange_coefficients(&xs, at)?;

    let len = shares.first().map_or(0, |s| s.value.len());
    if let Some(s) = shares.iter().find(|s| s.value.len() != len) {
        return Err(ShamirError::LengthMismatch {
            a: len,
            b: s.value.len(),
        });
    }
    if len == 0 {
        return Err(ShamirError::EmptySecret);
    }

    let mut out = Zeroizing::new(vec![0u8; len]);
    for (share, lambda) in shares.iter().zip(lambdas) {
        mul_acc(&mut out, &share.value, lambda);
    }
    Ok(out)
}

/// Reconstruct the secret from the given shares (at least two; the caller
/// must supply at least the threshold, or the result is garbage).
pub fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    interpolate(shares, 0)
}

/// `acc += other`, value-wise, for share arithmetic in repair and re-sharing.
/// Both must have the same length (and, for shares, the same index).
pub fn add_into(acc: &mut [u8], other: &[u8]) -> Result<(), ShamirError> {
    if acc.len() != other.len() {
        return Err(ShamirError::LengthMismatch {
            a: acc.len(),
            b: other.len(),
        });
    }
    acc.iter_mut().zip(other).for_each(|(a, b)| *a ^= b);
    Ok(())
}

/// `c * value`, value-wise, into a fresh zeroizing buffer.
pub fn scale(value: &[u8], c: Gf256) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(value.to_vec());
    crate::gf256::scale_in_place(&mut out, c);
    out
}

/// Evaluate at `x` the polynomial whose coefficient vectors are `coeffs`
/// (`coeffs[0]` is the constant term), for re-sharing.
///
/// All vectors must have the same nonzero length (`LengthMismatch`), and
/// there must be at least one (`EmptySecret`).
pub fn evaluate<C: AsRef<[u8]>>(coeffs: &[C], x: u8) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let Some((a0, rest)) = coeffs.split_first() else {
        return Err(ShamirError::EmptySecret);
    };
    let a0 = a0.as_ref();
    if a0.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    if let Some(c) = rest.iter().find(|c| c.as_ref().len() != a0.len()) {
        return Err(ShamirError::LengthMismatch {
            a: a0.len(),
            b: c.as_ref().len(),
        });
    }

    let mut out = Zeroizing::new(a0.to_vec());
    let mut xk = Gf256::ONE;
    for a_k in rest {
        xk = xk * Gf256(x);
        mul_acc(&mut out, a_k.as_ref(), xk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(167) ^ 0x5a)
            .collect()
    }

    fn pick(shares: &[Share], idx: &[usize]) -> Vec<Share> {
        idx.iter().map(|&i| shares[i].clone()).collect()
    }

    #[test]
    fn round_trips() {
        for &(t, n, len) in &[
            (2u8, 2u8, 32usize),
            (2, 3, 1),
            (3, 5, 33),
            (4, 7, 4097),
            (5, 9, 100),
            (2, 255, 32),
            (128, 255, 16),
            (255, 255, 5),
        ] {
            let s = secret(len);
            let shares = split(&s, t, n).unwrap();
            assert_eq!(shares.len(), usize::from(n));
            assert!(shares.iter().map(|s| s.index).eq(1..=n));
            assert!(shares.iter().all(|sh| sh.value.len() == len));
            // First t, last t, and all n shares.
            let t = usize::from(t);
            assert_eq!(*combine(&shares[..t]).unwrap(), s, "t={t} n={n}");
            assert_eq!(*combine(&shares[shares.len() - t..]).unwrap(), s);
            assert_eq!(*combine(&shares).unwrap(), s);
        }
    }

    #[test]
    fn every_threshold_subset_recovers_and_smaller_ones_do_not() {
        let s = secret(32);
        let (t, n) = (3usize, 6u8);
        let shares = split(&s, t as u8, n).unwrap();
        for mask in 0u32..(1 << n) {
            let idx: Vec<usize> = (0..usize::from(n)).filter(|i| mask >> i & 1 == 1).collect();
            match idx.len() {
                0 | 1 => assert!(combine(&pick(&shares, &idx)).is_err()),
                k if k < t => assert_ne!(*combine(&pick(&shares, &idx)).unwrap(), s),
                _ => assert_eq!(*combine(&pick(&shares, &idx)).unwrap(), s),
            }
        }
    }

    #[test]
    fn split_rejects_bad_parameters() {
        let s = [1u8, 2, 3];
        let bad = |t, n| Err(ShamirError::BadThreshold { t, n });
        assert_eq!(split(&s, 4, 3).map(drop), bad(4, 3));
        assert_eq!(split(&s, 1, 3).map(drop), bad(1, 3));
        assert_eq!(split(&s, 0, 3).map(drop), bad(0, 3));
        assert_eq!(split(&s, 1, 1).map(drop), bad(1, 1));
        assert_eq!(split(&s, 2, 1).map(drop), bad(2, 1));
        assert_eq!(split(&s, 2, 0).map(drop), bad(2, 0));
        assert_eq!(split(&[], 2, 3).map(drop), Err(ShamirError::EmptySecret));
        assert_eq!(
            split_with(&s, 2, 3, |_| Err(ShamirError::Rng)).map(drop),
            Err(ShamirError::Rng)
        );
    }

    #[test]
    fn combine_rejects_bad_shares() {
        let shares = split(&secret(8), 2, 4).unwrap();

        assert_eq!(
            combine(&shares[..1]),
            Err(ShamirError::NotEnoughShares { needed: 2, got: 1 })
        );
        assert_eq!(
            combine(&[]),
            Err(ShamirError::NotEnoughShares { needed: 2, got: 0 })
        );

        let mut zero = pick(&shares, &[0, 1]);
        zero[1].index = 0;
        assert_eq!(combine(&zero), Err(ShamirError::ZeroIndex));

        let dup = pick(&shares, &[0, 1, 0]);
        assert_eq!(combine(&dup), Err(ShamirError::DuplicateIndex(1)));

        let mut short = pick(&shares, &[0, 1]);
        short[1].value.pop();
        assert_eq!(
            combine(&short),
            Err(ShamirError::LengthMismatch { a: 8, b: 7 })
        );

        let mut empty = pick(&shares, &[0, 1]);
        empty.iter_mut().for_each(|s| s.value.clear());
        assert_eq!(combine(&empty), Err(ShamirError::EmptySecret));

        let many: Vec<u8> = (0..=255u16).map(|i| i as u8).collect();
        assert_eq!(
            lagrange_coefficients(&many, 0),
            Err(ShamirError::BadShareCount { n: 256 })
        );
    }

    #[test]
    fn interpolating_a_missing_index_repairs_the_share() {
        let s = secret(100);
        let shares = split(&s, 4, 7).unwrap();
        let survivors = pick(&shares, &[0, 2, 5, 6]);
        for lost in [1usize, 3, 4] {
            let repaired = interpolate(&survivors, shares[lost].index).unwrap();
            assert_eq!(repaired, shares[lost].value);
        }
        // Interpolating at a known point returns that share unchanged.
        assert_eq!(interpolate(&survivors, 3).unwrap(), shares[2].value);
    }

    #[test]
    fn lagrange_coefficients_sum_to_one() {
        // Interpolating the constant polynomial 1 must give 1 everywhere.
        let xs = [3u8, 9, 77, 200, 255];
        for at in [0u8, 1, 3, 100] {
            let l = lagrange_coefficients(&xs, at).unwrap();
            assert_eq!(l.iter().fold(Gf256::ZERO, |a, &b| a + b), Gf256::ONE);
        }
    }

    #[test]
    fn share_arithmetic() {
        let mut acc = vec![1u8, 2, 3];
        add_into(&mut acc, &[1, 0, 1]).unwrap();
        assert_eq!(acc, [0, 2, 2]);
        assert_eq!(
            add_into(&mut acc, &[1]),
            Err(ShamirError::LengthMismatch { a: 3, b: 1 })
        );
        assert_eq!(*scale(&[0x57, 0, 1], Gf256(0x83)), [0xc1, 0, 0x83]);

        // Sharing is linear: shares of s1 + s2 combine to s1 + s2.
        let (s1, s2) = (secret(16), vec![0xee; 16]);
        let (a, b) = (split(&s1, 3, 5).unwrap(), split(&s2, 3, 5).unwrap());
        let summed: Vec<Share> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| {
                let mut v = x.value.clone();
                add_into(&mut v, &y.value).unwrap();
                Share {
                    index: x.index,
                    value: v,
                }
            })
            .collect();
        let mut expected = s1.clone();
        add_into(&mut expected, &s2).unwrap();
        assert_eq!(*combine(&summed[1..4]).unwrap(), expected);
    }

    #[test]
    fn evaluate_matches_split_and_checks_input() {
        // f(x) = 5 + 7x + 9x^2 at x = 2: 5 ^ (7*2) ^ (9*4) = 5 ^ 14 ^ 36.
        let coeffs = [vec![5u8], vec![7], vec![9]];
        assert_eq!(*evaluate(&coeffs, 2).unwrap(), [5 ^ 14 ^ 36]);
        assert_eq!(*evaluate(&coeffs, 0).unwrap(), [5]);

        // Feed split a known coefficient stream and re-evaluate it.
        let s = secret(10);
        let stream = [0x11u8; 20];
        let shares = split_with(&s, 3, 4, |b| {
            b.copy_from_slice(&stream[..b.len()]);
            Ok(())
        })
        .unwrap();
        let poly = [s.clone(), vec![0x11; 10], vec![0x11; 10]];
        for sh in &shares {
            assert_eq!(evaluate(&poly, sh.index).unwrap(), sh.value);
        }

        assert_eq!(
            evaluate::<Vec<u8>>(&[], 1).map(drop),
            Err(ShamirError::EmptySecret)
        );
        assert_eq!(
            evaluate(&[vec![], vec![]], 1).map(drop),
            Err(ShamirError::EmptySecret)
        );
        assert_eq!(
            evaluate(&[vec![1, 2], vec![3]], 1).map(drop),
            Err(ShamirError::LengthMismatch { a: 2, b: 1 })
        );
    }

    #[test]
    fn debug_hides_value() {
        let share = Share {
            index: 3,
            value: Zeroizing::new(vec![0xab; 4]),
        };
        let dbg = format!("{share:?}");
        assert_eq!(dbg, "Share { index: 3, len: 4, .. }");
    }

    /// With an all-zero secret, t = 2 and x = 1, share 1 is exactly the
    /// degree-1 coefficient, so its bytes sample the real coefficient path.
    /// A 1..=255 sampler (RUSTSEC-2024-0398) would never produce zero.
    #[test]
    fn coefficients_are_uniform_over_the_whole_field() {
        const ROUNDS: usize = 64;
        const LEN: usize = 4096;
        let zeros = [0u8; LEN];
        let mut counts = [0u64; 256];
        for _ in 0..ROUNDS {
            let shares = split(&zeros, 2, 2).unwrap();
            for &b in shares[0].value.iter() {
                counts[usize::from(b)] += 1;
            }
        }

        let n = (ROUNDS * LEN) as f64;
        let expected = n / 256.0;
        let sd = (n * (1.0 / 256.0) * (255.0 / 256.0)).sqrt();
        let dev = (counts[0] as f64 - expected).abs();
        assert!(
            dev < 5.0 * sd,
            "coefficient 0 seen {} times, expected {expected} +- {sd}",
            counts[0]
        );

        // 255 degrees of freedom: mean 255, sd ~22.6; 400 is ~6.4 sd out.
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 400.0, "chi-square {chi2} over 255 d.o.f.");
    }

    proptest! {
        #[test]
        fn random_threshold_subsets_recover(
            s in proptest::collection::vec(any::<u8>(), 1..64),
            (t, n) in (2u8..=8).prop_flat_map(|t| (Just(t), t..=12)),
            order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let shares = split(&s, t, n).unwrap();
            let idx: Vec<usize> = order
                .into_iter()
                .filter(|&i| i < usize::from(n))
                .take(usize::from(t))
                .collect();
            prop_assert_eq!(&*combine(&pick(&shares, &idx)).unwrap(), &s);
        }
    }
}
