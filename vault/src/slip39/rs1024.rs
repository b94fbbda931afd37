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

fn polymod(customization: &[u8], data: &[u16]) -> u32 {
    let values = customization
        .iter()
        .map(|&b| u32::from(b))
        .chain(data.iter().map(|&v| u32::from(v)));
    let mut chk: u32 = 1;
    for v in values {
        let b = chk >> 20;
        chk = ((chk & 0xF_FFFF) << 10) ^ v;
        for (i, g) in GEN.iter().enumerate() {
            // A mask, not a branch: the words are secret share data.
            chk ^= g & ((b >> i) & 1).wrapping_neg();
        }
    }
    chk
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
/// (it depends on the extendable flag, which is in word 2).
/// Only tried for mnemonics of at most `max_words` words (the search is
/// quadratic); `None` otherwise.
pub fn locate_single_error(
    words: &[u16],
    customization_of: impl Fn(&[u16]) -> &'static [u8],
    max_words: usize,
) -> Option<(usize, u16)> {
    if words.len() > max_words {
        return None;
    }
    let mut found = None;
    let mut candidate = words.to_vec();
    for pos in 0..words.len() {
        for v in 0..1024u16 {
            if v == words[pos] {
                continue;
            }
            candidate[pos] = v;
            if verify(customization_of(&candidate), &candidate) {
                if found.is_some() {
                    return None;
                }
                found = Some((pos, v));
            }
        }
        candidate[pos] = words[pos];
    }
    found
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
            for pos in [0, 5, 29] {
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
}
