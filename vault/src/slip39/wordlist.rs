//! The SLIP-39 word list: 1024 words, one per 10-bit value.
//!
//! `wordlist.txt` is the list of the reference implementation
//! (`shamir_mnemonic/wordlist.txt` of trezor/python-shamir-mnemonic,
//! sha256 bcc45553…e601eec3), checked in unchanged. Words are 4 to 8
//! lowercase letters, sorted, and their first four letters are unique.

use std::sync::OnceLock;

const WORDLIST_TXT: &str = include_str!("wordlist.txt");

/// Number of words (2^10).
pub const RADIX: usize = 1024;

fn words() -> &'static [&'static str; RADIX] {
    static WORDS: OnceLock<[&'static str; RADIX]> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut out = [""; RADIX];
        // The file is checked in and its shape is a unit test; a short file
        // would leave empty entries, which no input word matches.
        for (slot, w) in out.iter_mut().zip(WORDLIST_TXT.lines()) {
            *slot = w.trim();
        }
        out
    })
}

/// The word for a 10-bit value (values above 1023 are masked).
pub fn word(index: u16) -> &'static str {
    words()[usize::from(index) & (RADIX - 1)]
}

/// The 10-bit value of `word` (lowercase), if it is in the list. A unique
/// prefix of at least four letters also counts, as the SLIP-39 list is
/// designed for (steel plates often carry only the first four letters).
pub fn index(word: &str) -> Option<u16> {
    let list = words();
    if let Ok(i) = list.binary_search(&word) {
        return u16::try_from(i).ok();
    }
    if word.len() < 4 {
        return None;
    }
    // The list is sorted, so the words starting with `word` follow the
    // position where it would be inserted.
    let at = list.partition_point(|w| *w < word);
    match (list.get(at), list.get(at + 1)) {
        (Some(w), next) if w.starts_with(word) && !next.is_some_and(|n| n.starts_with(word)) => {
            u16::try_from(at).ok()
        }
        _ => None,
    }
}

/// The list word closest to `word` by edit distance (ties: the first in
/// list order), for "did you mean" hints. `None` when nothing is within
/// half the word's length.
pub fn closest(word: &str) -> Option<&'static str> {
    let word: Vec<char> = word.chars().take(32).collect();
    // One table for all 1024 comparisons: words are at most 8 letters.
    let mut table = vec![0usize; (word.len() + 1) * 9];
    let (best, dist) = words()
        .iter()
        .map(|w| (*w, edit_distance(&word, w.as_bytes(), &mut table)))
        .min_by_key(|&(_, d)| d)?;
    (dist * 2 <= word.len().max(4)).then_some(best)
}

/// Levenshtein distance, where swapping two adjacent letters also costs 1
/// (the optimal string alignment variant): the typos of copying by hand.
/// `b` is a list word (ASCII, at most 8 letters); `d` has room for
/// (a.len() + 1) × 9 cells.
fn edit_distance(a: &[char], b: &[u8], d: &mut [usize]) -> usize {
    let w = b.len() + 1;
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        d[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        d[at(0, j)] = j;
    }
    let b = |j: usize| char::from(b[j]);
    let n = w - 1;
    for i in 1..=a.len() {
        for j in 1..=n {
            let cost = usize::from(a[i - 1] != b(j - 1));
            let mut v = (d[at(i - 1, j)] + 1)
                .min(d[at(i, j - 1)] + 1)
                .min(d[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b(j - 2) && a[i - 2] == b(j - 1) {
                v = v.min(d[at(i - 2, j - 2)] + 1);
            }
            d[at(i, j)] = v;
        }
    }
    d[at(a.len(), n)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shape() {
        assert_eq!(WORDLIST_TXT.lines().count(), RADIX);
        let list = words();
        assert!(list.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert!(list
            .iter()
            .all(|w| (4..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())));
        let mut prefixes: Vec<&str> = list.iter().map(|w| &w[..4]).collect();
        prefixes.dedup();
        assert_eq!(prefixes.len(), RADIX, "four-letter prefixes are unique");
        assert_eq!(word(0), "academic");
        assert_eq!(word(1023), "zero");
    }

    #[test]
    fn lookup_and_prefixes() {
        for i in 0..RADIX as u16 {
            assert_eq!(index(word(i)), Some(i));
            assert_eq!(index(&word(i)[..4]), Some(i));
        }
        assert_eq!(index("aca"), None);
        assert_eq!(index("academix"), None);
        assert_eq!(index(""), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("acadamic"), Some("academic"));
        assert_eq!(closest("acedemic"), Some("academic"));
        assert_eq!(closest("zreo"), Some("zero"));
        assert_eq!(closest("qqqqqqqqqqqq"), None);
    }
}
