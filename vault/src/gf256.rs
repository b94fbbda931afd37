//! Constant-time arithmetic in GF(2^8) with the AES polynomial
//! x^8 + x^4 + x^3 + x + 1 (0x11b).
//!
//! Shamir shares are computed from secret bytes, so every operation here runs
//! in time independent of its operands: there are no lookup tables indexed by
//! field elements and no branches on their values. Multiplication is
//! shift-and-xor where each bit of the multiplier selects a partial product
//! through an all-ones/all-zeros mask, and inversion is a fixed
//! square-and-multiply chain computing a^254.
//!
//! Bulk operations ([`mul_acc`], [`scale_in_place`]) use SWAR: eight field
//! elements packed in a `u64` are multiplied at once, with the scalar's bits
//! expanded to masks up front, so they are constant time in both operands.

use core::ops::{Add, Mul, Sub};

/// An element of GF(2^8).
///
/// `Debug` is derived because field elements also appear publicly (share
/// indices, Lagrange coefficients); do not log elements derived from secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Gf256(pub u8);

// Zeroized like a byte: buffers of field elements derived from shares
// (decoding) are `Zeroizing<Vec<Gf256>>`.
impl zeroize::DefaultIsZeroes for Gf256 {}

// `add`/`sub`/`mul` are kept as inherent methods (callers need not import the
// operator traits); the traits below delegate to them.
#[allow(clippy::should_implement_trait)]
impl Gf256 {
    /// The additive identity.
    pub const ZERO: Gf256 = Gf256(0);
    /// The multiplicative identity.
    pub const ONE: Gf256 = Gf256(1);

    /// Field addition (xor).
    #[inline]
    pub fn add(self, o: Gf256) -> Gf256 {
        Gf256(self.0 ^ o.0)
    }

    /// Field subtraction; identical to addition in characteristic 2.
    #[inline]
    pub fn sub(self, o: Gf256) -> Gf256 {
        Gf256(self.0 ^ o.0)
    }

    /// Constant-time field multiplication.
    #[inline]
    pub fn mul(self, o: Gf256) -> Gf256 {
        Gf256(mul_u8(self.0, o.0))
    }

    /// Multiplicative inverse, or `None` for zero.
    ///
    /// a^254 is computed with a fixed chain whatever `self` is; only the final
    /// zero check branches, on a value that is public wherever inverses are
    /// taken (evaluation points).
    pub fn inv(self) -> Option<Gf256> {
        let a = self;
        let a2 = a.mul(a);
        let a3 = a2.mul(a);
        let a6 = a3.mul(a3);
        let a12 = a6.mul(a6);
        let a15 = a12.mul(a3);
        let a30 = a15.mul(a15);
        let a60 = a30.mul(a30);
        let a120 = a60.mul(a60);
        let a240 = a120.mul(a120);
        let a252 = a240.mul(a12);
        let a254 = a252.mul(a2);
        (self.0 != 0).then_some(a254)
    }

    /// `self / o`, or `None` when `o` is zero.
    pub fn div(self, o: Gf256) -> Option<Gf256> {
        o.inv().map(|i| self.mul(i))
    }

    /// `self^e` by square-and-multiply over all eight exponent bits, constant
    /// time in both base and exponent. `pow(0)` is 1, including `0^0`.
    pub fn pow(self, e: u8) -> Gf256 {
        let mut r = 1u8;
        let mut b = self.0;
        for i in 0..8 {
            let m = mask8(e >> i);
            r = mul_u8(r, (b & m) | (1 & !m));
            b = mul_u8(b, b);
        }
        Gf256(r)
    }
}

impl Add for Gf256 {
    type Output = Gf256;
    #[inline]
    fn add(self, o: Gf256) -> Gf256 {
        Gf256::add(self, o)
    }
}

impl Sub for Gf256 {
    type Output = Gf256;
    #[inline]
    fn sub(self, o: Gf256) -> Gf256 {
        Gf256::sub(self, o)
    }
}

impl Mul for Gf256 {
    type Output = Gf256;
    #[inline]
    fn mul(self, o: Gf256) -> Gf256 {
        Gf256::mul(self, o)
    }
}

/// `dst[i] ^= c * src[i]`, eight bytes at a time.
///
/// Never panics: if the lengths differ only the first
/// `min(dst.len(), src.len())` bytes are processed.
pub fn mul_acc(dst: &mut [u8], src: &[u8], c: Gf256) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let masks = masks(c.0);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        store(d, load(d) ^ mul_packed(load(s), &masks));
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    store(d, load(d) ^ mul_packed(load(s), &masks));
}

/// `buf[i] = c * buf[i]`, eight bytes at a time.
pub fn scale_in_place(buf: &mut [u8], c: Gf256) {
    let masks = masks(c.0);
    let mut chunks = buf.chunks_exact_mut(8);
    for b in &mut chunks {
        store(b, mul_packed(load(b), &masks));
    }
    let b = chunks.into_remainder();
    store(b, mul_packed(load(b), &masks));
}

/// All ones if the low bit of `bit` is set, else zero.
#[inline(always)]
fn mask8(bit: u8) -> u8 {
    (bit & 1).wrapping_neg()
}

/// Multiplication by x, reducing by 0x11b through a mask.
#[inline(always)]
fn xtime(a: u8) -> u8 {
    (a << 1) ^ (mask8(a >> 7) & 0x1b)
}

#[inline(always)]
fn mul_u8(mut a: u8, b: u8) -> u8 {
    let mut r = 0;
    for i in 0..8 {
        r ^= a & mask8(b >> i);
        a = xtime(a);
    }
    r
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const LSB: u64 = 0x0101_0101_0101_0101;

/// [`xtime`] on eight packed elements. The top bits move to bit 0 of their
/// own byte and `* 0x1b` cannot carry across bytes.
#[inline(always)]
fn xtime_packed(v: u64) -> u64 {
    ((v & LOW7) << 1) ^ (((v >> 7) & LSB) * 0x1b)
}

/// Expands the bits of the scalar `c` to full-width masks.
#[inline(always)]
fn masks(c: u8) -> [u64; 8] {
    core::array::from_fn(|i| u64::from((c >> i) & 1).wrapping_neg())
}

/// Multiplies eight packed elements by the scalar whose bit masks are given.
#[inline(always)]
fn mul_packed(mut v: u64, masks: &[u64; 8]) -> u64 {
    let mut r = 0;
    for m in masks {
        r ^= v & m;
        v = xtime_packed(v);
    }
    r
}

/// Loads up to eight bytes (missing ones read as zero).
#[inline(always)]
fn load(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    u64::from_ne_bytes(w)
}

/// Stores the first `b.len()` (at most eight) bytes of `v`.
#[inline(always)]
fn store(b: &mut [u8], v: u64) {
    let n = b.len();
    b.copy_from_slice(&v.to_ne_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Slow, branchy reference multiplication (Russian peasant).
    fn ref_mul(mut a: u8, mut b: u8) -> u8 {
        let mut r = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                r ^= a;
            }
            let hi = a & 0x80 != 0;
            a <<= 1;
            if hi {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        r
    }

    #[test]
    fn all_products_match_reference() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(Gf256(a) * Gf256(b), Gf256(ref_mul(a, b)), "{a} * {b}");
            }
        }
    }

    #[test]
    fn known_aes_values() {
        // FIPS-197 section 4.2: {57} * {83} = {c1}, {57} * {13} = {fe}.
        assert_eq!(Gf256(0x57) * Gf256(0x83), Gf256(0xc1));
        assert_eq!(Gf256(0x57) * Gf256(0x13), Gf256(0xfe));
        assert_eq!(Gf256(0x53).inv(), Some(Gf256(0xca)));
    }

    #[test]
    fn inverses() {
        assert_eq!(Gf256::ZERO.inv(), None);
        assert_eq!(Gf256(7).div(Gf256::ZERO), None);
        for a in 1..=255u8 {
            let a = Gf256(a);
            let i = a.inv().unwrap();
            assert_eq!(a * i, Gf256::ONE, "{a:?}");
            assert_eq!(a.div(a), Some(Gf256::ONE));
        }
    }

    #[test]
    fn pow_matches_repeated_mul() {
        for a in 0..=255u8 {
            let mut acc = Gf256::ONE;
            for e in 0..=255u8 {
                assert_eq!(Gf256(a).pow(e), acc, "{a}^{e}");
                acc = acc * Gf256(a);
            }
        }
    }

    #[test]
    fn add_sub_are_xor() {
        assert_eq!(Gf256(0x53) + Gf256(0xca), Gf256(0x99));
        assert_eq!(Gf256(0x53) - Gf256(0xca), Gf256(0x99));
        assert_eq!(Gf256(0x53).add(Gf256(0x53)), Gf256::ZERO);
        assert_eq!(Gf256(0x53).sub(Gf256::ZERO), Gf256(0x53));
    }

    proptest! {
        #[test]
        fn field_laws(a: u8, b: u8, c: u8) {
            let (a, b, c) = (Gf256(a), Gf256(b), Gf256(c));
            prop_assert_eq!((a * b) * c, a * (b * c));
            prop_assert_eq!(a * b, b * a);
            prop_assert_eq!(a * (b + c), a * b + a * c);
            prop_assert_eq!(a * Gf256::ONE, a);
        }

        #[test]
        fn bulk_matches_scalar(
            src in proptest::collection::vec(any::<u8>(), 0..100),
            seed: u8,
            c: u8,
        ) {
            let dst: Vec<u8> = (0..src.len()).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();

            let mut acc = dst.clone();
            mul_acc(&mut acc, &src, Gf256(c));
            for i in 0..src.len() {
                prop_assert_eq!(acc[i], dst[i] ^ ref_mul(c, src[i]));
            }

            let mut scaled = src.clone();
            scale_in_place(&mut scaled, Gf256(c));
            for i in 0..src.len() {
                prop_assert_eq!(scaled[i], ref_mul(c, src[i]));
            }
        }

        #[test]
        fn mul_acc_uses_shorter_length(dst_len in 0usize..40, src_len in 0usize..40, c: u8) {
            let src = vec![0xa5u8; src_len];
            let mut dst = vec![0x3cu8; dst_len];
            mul_acc(&mut dst, &src, Gf256(c));
            let n = dst_len.min(src_len);
            prop_assert!(dst[..n].iter().all(|&d| d == 0x3c ^ ref_mul(c, 0xa5)));
            prop_assert!(dst[n..].iter().all(|&d| d == 0x3c));
        }
    }
}
