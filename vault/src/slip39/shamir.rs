//! SLIP-39's Shamir layer: GF(256) with the AES polynomial (the field of
//! [`crate::gf256`], reused), points at x = 0..=15, the secret at x = 255
//! and a digest share at x = 254.
//!
//! For a threshold t >= 2, t - 2 shares are random, the share at 254 is a
//! 4-byte HMAC-SHA256 digest of the secret (keyed by the random rest of
//! that share) followed by that random rest, and the share at 255 is the
//! secret; every other share is interpolated from these t points. Combining
//! recomputes both and checks the digest, so shares from different splits
//! are caught. With t = 1 every share is the secret itself.

use crate::gf256::{mul_acc, Gf256};
use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Where the secret lives.
pub const SECRET_INDEX: u8 = 255;
/// Where the digest share lives.
pub const DIGEST_INDEX: u8 = 254;
/// Bytes of digest.
pub const DIGEST_LEN: usize = 4;

/// A point: x and one field element per byte.
pub type Point<'a> = (u8, &'a [u8]);

/// An owned point, as [`split`] makes them.
pub type OwnedPoint = (u8, Zeroizing<Vec<u8>>);

/// The value at `x` of the polynomial through `points` (distinct x, equal
/// lengths, at least one: the caller checks). Lagrange coefficients come
/// from the public x values; the secret bytes go through constant-time
/// [`mul_acc`].
pub fn interpolate(points: &[Point<'_>], x: u8) -> Zeroizing<Vec<u8>> {
    if let Some((_, v)) = points.iter().find(|(xi, _)| *xi == x) {
        return Zeroizing::new(v.to_vec());
    }
    let len = points.first().map_or(0, |(_, v)| v.len());
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, (xi, vi)) in points.iter().enumerate() {
        let (num, den) = points.iter().enumerate().filter(|&(j, _)| j != i).fold(
            (Gf256::ONE, Gf256::ONE),
            |(num, den), (_, (xj, _))| {
                (
                    num * (Gf256(x) - Gf256(*xj)),
                    den * (Gf256(*xi) - Gf256(*xj)),
                )
            },
        );
        // Distinct points: den is nonzero, so the fallback never applies.
        let lambda = num.div(den).unwrap_or(Gf256::ZERO);
        mul_acc(&mut out, vi, lambda);
    }
    out
}

fn digest(key: &[u8], secret: &[u8]) -> [u8; DIGEST_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), secret);
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&tag.as_ref()[..DIGEST_LEN]);
    d
}

/// Splits `secret` into shares at x = 0..count, any `threshold` of which
/// recover it. `fill` supplies random bytes. Parameters are checked by the
/// caller (1 <= threshold <= count <= 16, secret at least 16 bytes).
pub fn split<E>(
    threshold: u8,
    count: u8,
    secret: &[u8],
    fill: &mut dyn FnMut(&mut [u8]) -> Result<(), E>,
) -> Result<Vec<OwnedPoint>, E> {
    if threshold <= 1 {
        return Ok((0..count)
            .map(|i| (i, Zeroizing::new(secret.to_vec())))
            .collect());
    }
    let random_count = threshold - 2;
    let mut shares: Vec<OwnedPoint> = Vec::with_capacity(usize::from(count));
    for i in 0..random_count {
        let mut v = Zeroizing::new(vec![0u8; secret.len()]);
        fill(&mut v)?;
        shares.push((i, v));
    }
    let mut digest_share = Zeroizing::new(vec![0u8; secret.len()]);
    fill(&mut digest_share[DIGEST_LEN..])?;
    let d = digest(&digest_share[DIGEST_LEN..], secret);
    digest_share[..DIGEST_LEN].copy_from_slice(&d);

    let mut base: Vec<Point<'_>> = shares.iter().map(|(x, v)| (*x, &v[..])).collect();
    base.push((DIGEST_INDEX, &digest_share));
    base.push((SECRET_INDEX, secret));
    let rest: Vec<OwnedPoint> = (random_count..count)
        .map(|x| (x, interpolate(&base, x)))
        .collect();
    shares.extend(rest);
    Ok(shares)
}

/// Recovers the secret from exactly `threshold` points with distinct x;
/// `None` when the digest does not match (the points are not all from one
/// split).
pub fn recover(threshold: u8, points: &[Point<'_>]) -> Option<Zeroizing<Vec<u8>>> {
    if threshold <= 1 {
        return points.first().map(|(_, v)| Zeroizing::new(v.to_vec()));
    }
    let secret = interpolate(points, SECRET_INDEX);
    let digest_share = interpolate(points, DIGEST_INDEX);
    if digest_share.len() < DIGEST_LEN {
        return None;
    }
    let d = digest(&digest_share[DIGEST_LEN..], &secret);
    bool::from(d.ct_eq(&digest_share[..DIGEST_LEN])).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_recover_any_subset() {
        let secret: Vec<u8> = (100..132).collect();
        let mut ctr = 0u8;
        let mut fill = |b: &mut [u8]| -> Result<(), ()> {
            for x in b {
                ctr = ctr.wrapping_mul(31).wrapping_add(17);
                *x = ctr;
            }
            Ok(())
        };
        for (t, n) in [(1u8, 1u8), (2, 3), (3, 5), (5, 16), (16, 16)] {
            let shares = split(t, n, &secret, &mut fill).unwrap();
            assert_eq!(shares.len(), usize::from(n));
            let pts: Vec<Point<'_>> = shares.iter().map(|(x, v)| (*x, &v[..])).collect();
            let pick: Vec<Point<'_>> = pts.iter().rev().take(usize::from(t)).copied().collect();
            assert_eq!(&recover(t, &pick).unwrap()[..], &secret[..]);
            if t >= 2 {
                let mut bad = pick.clone();
                let tampered: Vec<u8> = bad[0].1.iter().map(|b| b ^ 1).collect();
                bad[0].1 = &tampered;
                assert!(recover(t, &bad).is_none());
            }
        }
    }
}
