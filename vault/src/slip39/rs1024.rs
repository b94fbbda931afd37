//! RS1024: the Reed-Solomon checksum over GF(1024) that ends every SLIP-39
//! mnemonic (three words). It detects any error in up to three words, and a
//! single wrong word is the only one-word change that makes it valid, which
//! is how [`locate_single_error`] names the word to re-check.

/// Checksum length in words.
pub const CHECKSUM_WORDS: usize = 3;

/// Customization string of shares without the extendable flag.
pub const CUSTOMIZATION_ORIG: &[u8] = b"shamir";
/// Customization string of shares with the extendable flag.
pub const CUSTOMIZATION_EXTENDABLE: &[u8] = b"shamir_extendable";

const GEN: [u32; 10] = [
    0x00E0_E040,
    0x01C1_C080,
    0x0383_8100,
    0x0707_0200,
    0x0E0E_0009,
    0x1C0C_2412,
    0x3808_6C24,
    0x3090_FC48,
    0x21B1_F890,
    0x03F3_F120,
];

/// One step of the checksum's polynomial division: shift in a 10-bit value.
/// Linear over GF(2) in (chk, v), which [`locate_single_error`] relies on.
fn step(chk: u32, v: u32) -> u32 {
    let b = chk >> 20;
    let mut chk = ((chk & 0xF_FFFF) << 10) ^ v;
    for (i, g) in GEN.iter().enumerate() {
        // A mask, not a branch: the words are secret share data.
        chk ^= g & ((b >> i) & 1).wrapping_neg();
    }
    chk
}

fn polymod(customization: &[u8], data: &[u16]) -> u32 {
    customization
        .iter()
        .map(|&b| u32::from(b))
        .chain(data.iter().map(|&v| u32::from(v)))
        .fold(1, step)
}

/// The customization string for a share with or without the extendable flag.
pub fn customization(extendable: bool) -> &'static [u8] {
    if extendable {
        CUSTOMIZATION_EXTENDABLE
    } else {
        CUSTOMIZATION_ORIG
    }
}

/// The three checksum words for `data` (all words before the checksum).
pub fn create(customization: &[u8], data: &[u16]) -> [u16; CHECKSUM_WORDS] {
    let mut padded = data.to_vec();
    padded.extend_from_slice(&[0; CHECKSUM_WORDS]);
    let pm = polymod(customization, &padded) ^ 1;
    // Masked to 10 bits, so the casts cannot truncate.
    [
        ((pm >> 20) & 1023) as u16,
        ((pm >> 10) & 1023) as u16,
        (pm & 1023) as u16,
    ]
}

/// Whether `words` (data followed by checksum) verifies.
pub fn verify(customization: &[u8], words: &[u16]) -> bool {
    polymod(customization, words) == 1
}

/// For a mnemonic whose checksum fails: the one position and word that
/// would make it verify, if exactly one single-word change does.
/// `customization_of` gives the customization string for candidate words
/// (it depends on the extendable flag, which is in word 2). `None` for
/// mnemonics longer than `max_words`.
///
/// The division is linear, so changing word `p` by `d` (xor) changes the
/// result by `L_p(d)`, the division of `d` followed by the words after `p`
/// as zeros, from zero: per position, ten divisions give `L_p` on a basis
/// and every `d` is checked by xoring them. Word 2 carries the extendable
/// flag, which picks the customization string, so it is searched by trying
/// each word.
pub fn locate_single_error(
    words: &[u16],
    customization_of: impl Fn(&[u16]) -> &'static [u8],
    max_words: usize,
) -> Option<(usize, u16)> {
    if words.len() > max_words {
        return None;
    }
    let n = words.len();
    let target = polymod(customization_of(words), words) ^ 1;
    let mut found: Option<(usize, u16)> = None;
    let mut ambiguous = false;
    let mut record = |pos: usize, v: u16| {
        ambiguous |= found.is_some();
        found = Some((pos, v));
    };
    let mut candidate = words.to_vec();
    for pos in 0..n {
        if pos == 1 {
            for v in 0..1024u16 {
                if v == words[pos] {
                    continue;
                }
                candidate[pos] = v;
                if verify(customization_of(&candidate), &candidate) {
                    record(pos, v);
                }
            }
            candidate[pos] = words[pos];
            continue;
        }
        let tail = n - 1 - pos;
        let basis: Vec<u32> = (0..10)
            .map(|bit| (0..tail).fold(step(0, 1 << bit), |c, _| step(c, 0)))
            .collect();
        for d in 1..1024u16 {
            let l = basis
                .iter()
                .enumerate()
                .filter(|(bit, _)| (d >> bit) & 1 == 1)
                .fold(0, |acc, (_, b)| acc ^ b);
            if l == target {
                record(pos, words[pos] ^ d);
            }
        }
    }
    if ambiguous {
        None
    } else {
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_verify_and_detect() {
        let data: Vec<u16> = (0..27).map(|i| (i * 37 + 5) % 1024).collect();
        for cust in [CUSTOMIZATION_ORIG, CUSTOMIZATION_EXTENDABLE] {
            let mut w = data.clone();
            w.extend(create(cust, &data));
            assert!(verify(cust, &w));
            let other = if cust == CUSTOMIZATION_ORIG {
                CUSTOMIZATION_EXTENDABLE
            } else {
                CUSTOMIZATION_ORIG
            };
            assert!(!verify(other, &w));
            for pos in [0, 1, 2, 5, 29] {
                let mut bad = w.clone();
                bad[pos] ^= 0x155;
                assert!(!verify(cust, &bad));
                assert_eq!(
                    locate_single_error(&bad, |_| cust, 100),
                    Some((pos, w[pos]))
                );
            }
        }
    }

    /// The search agrees with trying every single-word change, including
    /// word 2 (which moves the extendable flag) and two-word errors.
    #[test]
    fn search_matches_brute_force() {
        let cust = |w: &[u16]| customization(w.get(1).is_some_and(|x| (x >> 4) & 1 == 1));
        let brute = |w: &[u16]| {
            let mut hits = Vec::new();
            let mut c = w.to_vec();
            for pos in 0..w.len() {
                for v in 0..1024u16 {
                    if v != w[pos] {
                        c[pos] = v;
                        if verify(cust(&c), &c) {
                            hits.push((pos, v));
                        }
                    }
                }
                c[pos] = w[pos];
            }
            (hits.len() == 1).then(|| hits[0])
        };
        let mut x = 12345u32;
        let mut rnd = move || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 8) & 1023) as u16
        };
        for round in 0..12 {
            let data: Vec<u16> = (0..17).map(|_| rnd()).collect();
            let mut w = data.clone();
            w.extend(create(cust(&data), &data));
            let mut bad = w.clone();
            let pos = usize::from(rnd()) % w.len();
            bad[pos] ^= rnd().max(1);
            if round % 3 == 0 {
                bad[(pos + 3) % w.len()] ^= 0x21;
            }
            if round == 1 {
                bad[1] ^= 1 << 4; // flips the extendable flag
            }
            if verify(cust(&bad), &bad) {
                continue;
            }
            assert_eq!(
                locate_single_error(&bad, cust, 100),
                brute(&bad),
                "round {round}"
            );
        }
    }
}
