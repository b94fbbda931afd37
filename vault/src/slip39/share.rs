//! One SLIP-39 share and its mnemonic: parsing every word, the checksum and
//! the header fields, and encoding back to words.
//!
//! Layout in 10-bit words: identifier (15 bits), extendable flag (1),
//! iteration exponent (4); group index, group threshold - 1, group count - 1,
//! member index, member threshold - 1 (4 bits each); the share value,
//! left-padded with at most 8 zero bits; three RS1024 checksum words.

use super::{rs1024, wordlist};
use core::fmt;
use thiserror::Error;
use zeroize::Zeroizing;

/// Words before the share value: identifier + flags (2), parameters (2).
pub const HEADER_WORDS: usize = 4;
/// Words that are not the share value.
pub const METADATA_WORDS: usize = HEADER_WORDS + rs1024::CHECKSUM_WORDS;
/// The shortest valid mnemonic (a 128-bit secret).
pub const MIN_WORDS: usize = METADATA_WORDS + 13;
/// The longest mnemonic accepted (a secret of [`super::MAX_SECRET_LEN`] bytes).
pub const MAX_WORDS: usize = METADATA_WORDS + (super::MAX_SECRET_LEN * 8).div_ceil(10);
/// Mnemonics up to this many words get a single-wrong-word search when
/// their checksum fails: all of them (the search is linear algebra, about
/// a millisecond for the longest).
const LOCATE_MAX_WORDS: usize = MAX_WORDS;

/// What is wrong with one mnemonic. Word positions count from 1.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MnemonicError {
    /// A word is not in the SLIP-39 word list.
    #[error("word {position} {word:?} is not in the SLIP-39 word list{}", hint(.suggestion))]
    UnknownWord {
        /// Position in the mnemonic, from 1.
        position: usize,
        /// The word as given (lowercased, at most 32 characters).
        word: String,
        /// The likely intended word: the only one that makes the checksum
        /// valid, or else the closest by spelling.
        suggestion: Option<&'static str>,
    },
    /// Fewer words than the shortest share.
    #[error(
        "has {0} words; a SLIP-39 share has at least {MIN_WORDS} (a word or line may be missing)"
    )]
    TooShort(usize),
    /// More words than the longest share accepted.
    #[error("has {0} words; longer than any share pqvault reads ({MAX_WORDS} words, a {max}-byte secret)", max = super::MAX_SECRET_LEN)]
    TooLong(usize),
    /// A word count no share length gives.
    #[error("has {0} words, a length no SLIP-39 share has (a word may be missing or repeated)")]
    BadLength(usize),
    /// The checksum does not verify.
    #[error("checksum does not match: {}", checksum_hint(.fix))]
    Checksum {
        /// The position (from 1) and word that would fix it, if a single
        /// word change does.
        fix: Option<(usize, &'static str)>,
    },
    /// The share value's padding bits are not zero.
    #[error("invalid padding: word {} (the first word of the share value) is wrong", HEADER_WORDS + 1)]
    Padding,
    /// The header's group threshold exceeds its group count.
    #[error("group threshold {threshold} is greater than the group count {count}")]
    GroupThreshold {
        /// Group threshold.
        threshold: u8,
        /// Group count.
        count: u8,
    },
}

fn hint(s: &Option<&'static str>) -> String {
    s.map(|w| format!("; did you mean {w:?}?"))
        .unwrap_or_default()
}

fn checksum_hint(fix: &Option<(usize, &'static str)>) -> String {
    match fix {
        Some((pos, w)) => format!(
            "word {pos} is wrong if only one word is: the only word that fits there is {w:?} (check it against the backup)"
        ),
        None => "more than one word is wrong, or words are swapped or out of order".into(),
    }
}

/// One decoded share. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    /// Random identifier common to all shares of one split (15 bits).
    pub identifier: u16,
    /// Extendable backup flag (SLIP-39, 2024): the identifier is not part of
    /// the cipher's salt, so more share sets can be made for one secret.
    pub extendable: bool,
    /// PBKDF2 iteration exponent (0..=15).
    pub iteration_exponent: u8,
    /// Group index (0..=15).
    pub group_index: u8,
    /// Groups needed (1..=16).
    pub group_threshold: u8,
    /// Groups made (1..=16).
    pub group_count: u8,
    /// Member index within the group (0..=15).
    pub member_index: u8,
    /// Members of this group needed (1..=16).
    pub member_threshold: u8,
    /// The share value (a point of the group's polynomial).
    pub value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("identifier", &self.identifier)
            .field("extendable", &self.extendable)
            .field("iteration_exponent", &self.iteration_exponent)
            .field(
                "group",
                &(self.group_index, self.group_threshold, self.group_count),
            )
            .field("member", &(self.member_index, self.member_threshold))
            .field("len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// The extendable flag of (possibly wrong) mnemonic words.
fn extendable_of(words: &[u16]) -> bool {
    words.get(1).is_some_and(|w| (w >> 4) & 1 == 1)
}

fn customization_of(words: &[u16]) -> &'static [u8] {
    rs1024::customization(extendable_of(words))
}

/// Whether `n` words is a length some share has: the value's padding
/// (value bits modulo 16) is at most 8 bits.
fn valid_length(n: usize) -> bool {
    n >= MIN_WORDS && (10 * (n - METADATA_WORDS)) % 16 <= 8
}

impl Share {
    /// Parses a mnemonic: words separated by whitespace, any case.
    pub fn from_mnemonic(mnemonic: &str) -> Result<Share, MnemonicError> {
        let given: Vec<&str> = mnemonic.split_whitespace().collect();
        if given.len() > MAX_WORDS {
            return Err(MnemonicError::TooLong(given.len()));
        }
        let lower: Zeroizing<Vec<String>> = Zeroizing::new(
            given
                .iter()
                .map(|w| w.chars().take(32).collect::<String>().to_lowercase())
                .collect(),
        );
        let indices: Zeroizing<Vec<Option<u16>>> =
            Zeroizing::new(lower.iter().map(|w| wordlist::index(w)).collect());
        let unknown: Vec<usize> = (0..indices.len())
            .filter(|&i| indices[i].is_none())
            .collect();
        if let Some(&first) = unknown.first() {
            let suggestion = if unknown.len() == 1 && valid_length(indices.len()) {
                fill_by_checksum(&indices, first)
            } else {
                None
            }
            .or_else(|| wordlist::closest(&lower[first]));
            return Err(MnemonicError::UnknownWord {
                position: first + 1,
                word: lower[first].clone(),
                suggestion,
            });
        }
        let words: Zeroizing<Vec<u16>> =
            Zeroizing::new(indices.iter().map(|i| i.unwrap_or(0)).collect());
        Share::from_words(&words)
    }

    /// Parses mnemonic words given as 10-bit values.
    pub fn from_words(words: &[u16]) -> Result<Share, MnemonicError> {
        let n = words.len();
        if n > MAX_WORDS {
            return Err(MnemonicError::TooLong(n));
        }
        if n < MIN_WORDS {
            return Err(MnemonicError::TooShort(n));
        }
        if !valid_length(n) {
            return Err(MnemonicError::BadLength(n));
        }
        let extendable = extendable_of(words);
        if !rs1024::verify(rs1024::customization(extendable), words) {
            let fix = rs1024::locate_single_error(words, customization_of, LOCATE_MAX_WORDS)
                .map(|(pos, w)| (pos + 1, wordlist::word(w)));
            return Err(MnemonicError::Checksum { fix });
        }

        let id_exp = (u32::from(words[0]) << 10) | u32::from(words[1]);
        let identifier = (id_exp >> 5) as u16; // 15 bits
        let iteration_exponent = (id_exp & 0xF) as u8;
        let params = (u32::from(words[2]) << 10) | u32::from(words[3]);
        let nibble = |k: u32| ((params >> (4 * k)) & 0xF) as u8;
        let (group_index, group_threshold, group_count, member_index, member_threshold) = (
            nibble(4),
            nibble(3) + 1,
            nibble(2) + 1,
            nibble(1),
            nibble(0) + 1,
        );
        if group_threshold > group_count {
            return Err(MnemonicError::GroupThreshold {
                threshold: group_threshold,
                count: group_count,
            });
        }

        let value_words = &words[HEADER_WORDS..n - rs1024::CHECKSUM_WORDS];
        let value = words_to_bytes(value_words).ok_or(MnemonicError::Padding)?;
        Ok(Share {
            identifier,
            extendable,
            iteration_exponent,
            group_index,
            group_threshold,
            group_count,
            member_index,
            member_threshold,
            value,
        })
    }

    /// The mnemonic words as 10-bit values, checksum included.
    pub fn to_words(&self) -> Zeroizing<Vec<u16>> {
        let id_exp = (u32::from(self.identifier & 0x7FFF) << 5)
            | (u32::from(self.extendable) << 4)
            | u32::from(self.iteration_exponent & 0xF);
        let params = (u32::from(self.group_index & 0xF) << 16)
            | (u32::from(self.group_threshold.wrapping_sub(1) & 0xF) << 12)
            | (u32::from(self.group_count.wrapping_sub(1) & 0xF) << 8)
            | (u32::from(self.member_index & 0xF) << 4)
            | u32::from(self.member_threshold.wrapping_sub(1) & 0xF);
        let mut words = Zeroizing::new(vec![
            (id_exp >> 10) as u16,
            (id_exp & 1023) as u16,
            (params >> 10) as u16,
            (params & 1023) as u16,
        ]);
        words.extend_from_slice(&bytes_to_words(&self.value));
        let checksum = rs1024::create(rs1024::customization(self.extendable), &words);
        words.extend_from_slice(&checksum);
        words
    }

    /// The mnemonic: words separated by single spaces.
    pub fn to_mnemonic(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::new());
        for (i, &w) in self.to_words().iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(wordlist::word(w));
        }
        s
    }

    /// The first words shared by every share of this share's group, for
    /// telling the operator which shares are meant.
    pub fn group_prefix(&self) -> String {
        self.to_words()[..3]
            .iter()
            .map(|&w| wordlist::word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// For a mnemonic with one unknown word at `pos`: the only word that makes
/// the checksum valid, if exactly one does.
fn fill_by_checksum(indices: &[Option<u16>], pos: usize) -> Option<&'static str> {
    let mut words: Zeroizing<Vec<u16>> =
        Zeroizing::new(indices.iter().map(|i| i.unwrap_or(0)).collect());
    let mut found = None;
    for v in 0..1024u16 {
        words[pos] = v;
        if rs1024::verify(customization_of(&words), &words) {
            if found.is_some() {
                return None;
            }
            found = Some(v);
        }
    }
    found.map(wordlist::word)
}

/// Big-endian bytes to 10-bit words, left-padded with zero bits.
fn bytes_to_words(bytes: &[u8]) -> Vec<u16> {
    let n_words = (bytes.len() * 8).div_ceil(10);
    let pad = n_words * 10 - bytes.len() * 8;
    let mut out = Vec::with_capacity(n_words);
    let (mut acc, mut bits) = (0u32, pad);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 10 {
            bits -= 10;
            out.push(((acc >> bits) & 1023) as u16);
        }
        acc &= (1 << bits) - 1;
    }
    zeroize::Zeroize::zeroize(&mut acc);
    out
}

/// 10-bit words to big-endian bytes, or `None` if the padding bits (the
/// leading value bits modulo 16, at most 8 of them) are not zero.
fn words_to_bytes(words: &[u16]) -> Option<Zeroizing<Vec<u8>>> {
    let total = words.len() * 10;
    let pad = total % 16;
    let mut out = Zeroizing::new(Vec::with_capacity((total - pad) / 8));
    let (mut acc, mut bits, mut skip) = (0u32, 0usize, pad);
    let mut padding_bits = 0u32;
    for &w in words {
        acc = (acc << 10) | u32::from(w & 1023);
        bits += 10;
        if skip > 0 {
            let s = skip.min(bits);
            padding_bits |= acc >> (bits - s);
            bits -= s;
            acc &= (1 << bits) - 1;
            skip -= s;
        }
        while bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    zeroize::Zeroize::zeroize(&mut acc);
    (padding_bits == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(len: usize, ext: bool) -> Share {
        Share {
            identifier: 0x5a5a & 0x7fff,
            extendable: ext,
            iteration_exponent: 3,
            group_index: 2,
            group_threshold: 2,
            group_count: 4,
            member_index: 5,
            member_threshold: 3,
            value: Zeroizing::new((0..len).map(|i| (i * 29 + 7) as u8).collect()),
        }
    }

    #[test]
    fn round_trip_lengths() {
        for len in (16..=70).step_by(2) {
            for ext in [false, true] {
                let s = share(len, ext);
                let m = s.to_mnemonic();
                assert_eq!(
                    m.split(' ').count(),
                    METADATA_WORDS + (len * 8).div_ceil(10)
                );
                assert_eq!(Share::from_mnemonic(&m).unwrap(), s);
                assert_eq!(
                    Share::from_mnemonic(&m.to_uppercase().replace(' ', "\n  ")).unwrap(),
                    s
                );
            }
        }
    }

    #[test]
    fn errors_name_the_word() {
        let m = share(16, true).to_mnemonic();
        let mut words: Vec<String> = m.split(' ').map(String::from).collect();
        let original = words[6].clone();
        words[6] = format!("{}x", &original[..original.len() - 1]);
        match Share::from_mnemonic(&words.join(" ")) {
            Err(MnemonicError::UnknownWord {
                position: 7,
                suggestion: Some(s),
                ..
            }) => assert_eq!(s, original),
            other => panic!("{other:?}"),
        }
        // A valid but wrong word: the checksum names it.
        let mut words: Vec<String> = m.split(' ').map(String::from).collect();
        let original = words[9].clone();
        words[9] = if original == "zero" {
            "academic"
        } else {
            "zero"
        }
        .into();
        assert_eq!(
            Share::from_mnemonic(&words.join(" ")),
            Err(MnemonicError::Checksum {
                fix: Some((10, wordlist::word(wordlist::index(&original).unwrap())))
            })
        );
        let short: Vec<&str> = m.split(' ').take(19).collect();
        assert_eq!(
            Share::from_mnemonic(&short.join(" ")),
            Err(MnemonicError::TooShort(19))
        );
    }
}
