//! SLIP-39 mnemonic backups: a secret split into groups of word shares, as
//! specified in SatoshiLabs SLIP-0039 (including the 2024 extendable-backup
//! flag) and as the reference implementation `shamir-mnemonic` and hardware
//! wallets read them.
//!
//! - [`wordlist`]: the official 1024 words, lookup and "did you mean".
//! - [`rs1024`]: the three-word checksum, and locating a single wrong word.
//! - [`cipher`]: the passphrase Feistel cipher (PBKDF2-HMAC-SHA256).
//! - [`shamir`]: GF(256) sharing with the digest share.
//! - [`share`]: one mnemonic, parsed and encoded.
//!
//! [`split`] and [`combine`] are the two operations. Every input is
//! untrusted: a wrong word, checksum, identifier, threshold or count is a
//! [`Slip39Error`] naming the share (and the word), never a panic.
//!
//! A passphrase is not checked on restore: by design of SLIP-39, a wrong
//! passphrase gives a different secret, not an error.

pub mod cipher;
pub mod rs1024;
pub mod shamir;
pub mod share;
pub mod wordlist;

use core::fmt;
use core::str::FromStr;
use share::{MnemonicError, Share};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// Shortest secret SLIP-39 allows (128 bits).
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret pqvault writes or reads as SLIP-39 (8192 bits): a share
/// of it is 827 words, already far beyond what fits on paper or steel.
pub const MAX_SECRET_LEN: usize = 1024;
/// Most groups, and most members in a group.
pub const MAX_SHARE_COUNT: u8 = 16;
/// Iteration exponent used unless asked otherwise (as the reference does):
/// 20,000 PBKDF2 iterations in all.
pub const DEFAULT_ITERATION_EXPONENT: u8 = 1;

/// Why a SLIP-39 split or restore was refused.
#[derive(Debug, Error)]
pub enum Slip39Error {
    /// Secret shorter than 128 bits.
    #[error("the secret is {0} bytes; SLIP-39 needs at least {MIN_SECRET_LEN} bytes (128 bits)")]
    SecretTooShort(usize),
    /// Secret of odd length.
    #[error("the secret is {0} bytes; SLIP-39 needs an even number of bytes (its cipher splits the secret into two equal halves){hint}", hint = if *.0 > MIN_SECRET_LEN { "; a text file's trailing newline makes a length odd" } else { "" })]
    SecretOddLength(usize),
    /// Secret longer than pqvault writes as mnemonics.
    #[error("the secret is {0} bytes; pqvault writes SLIP-39 backups of at most {MAX_SECRET_LEN} bytes (a share would be longer than 827 words)")]
    SecretTooLong(usize),
    /// A passphrase byte outside printable ASCII.
    #[error("passphrase character {position} is not printable ASCII; SLIP-39 passphrases may use only characters 32 to 126 (space to ~)")]
    Passphrase {
        /// Position, from 1.
        position: usize,
    },
    /// A bad split layout.
    #[error("{0}")]
    Layout(String),
    /// The system RNG failed.
    #[error("system random number generator failed")]
    Rng,
    /// Nothing to combine.
    #[error("no mnemonics given")]
    Empty,
    /// One mnemonic is malformed.
    #[error("{share}: {problem}")]
    Share {
        /// Which share (as labelled by the caller).
        share: String,
        /// What is wrong with it (part of this error's message, so not a
        /// `source`, which would print it twice).
        problem: MnemonicError,
    },
    /// Two shares disagree on a parameter every share of a backup has in
    /// common.
    #[error("{share} does not belong with {first}: their {what} differ{}", mismatch_hint(.what))]
    Mismatch {
        /// The share that differs.
        share: String,
        /// The share it was compared with.
        first: String,
        /// What differs.
        what: String,
    },
    /// The same share given twice.
    #[error("{share} repeats {first} (both are share {member} of group {group}); give a different share of the group instead")]
    Duplicate {
        /// The repeat.
        share: String,
        /// The first occurrence.
        first: String,
        /// Group number, from 1.
        group: u8,
        /// Member number, from 1.
        member: u8,
    },
    /// Two different shares claim the same place.
    #[error("{share} and {first} both claim to be share {member} of group {group} but their words differ: one of them is wrong")]
    Conflict {
        /// The second.
        share: String,
        /// The first.
        first: String,
        /// Group number, from 1.
        group: u8,
        /// Member number, from 1.
        member: u8,
    },
    /// Not enough shares or groups.
    #[error("not enough shares: {0}")]
    TooFew(String),
    /// Shares combined to a wrong digest.
    #[error("{shares} do not combine: the digest check failed, so at least one of them is wrong or from a different backup")]
    Digest {
        /// The shares combined.
        shares: String,
    },
    /// An extra share or group disagrees with the ones combined.
    #[error("{share} does not agree with {with}: it or one of them is wrong (restore without it to see whether the rest agree)")]
    Inconsistent {
        /// The extra share or group.
        share: String,
        /// The shares it was checked against.
        with: String,
    },
}

fn mismatch_hint(what: &str) -> &'static str {
    if what.starts_with("identifier") {
        " (the first words of a mnemonic name its backup: these come from different backups)"
    } else {
        ""
    }
}

/// One group of a split: `threshold` of `count` shares, written "T-of-N".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSpec {
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub count: u8,
}

impl fmt::Display for GroupSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-of-{}", self.threshold, self.count)
    }
}

impl FromStr for GroupSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not T-of-N (for example 2-of-3)");
        let (t, n) = s.split_once("-of-").ok_or_else(bad)?;
        let threshold = t.trim().parse().map_err(|_| bad())?;
        let count = n.trim().parse().map_err(|_| bad())?;
        Ok(GroupSpec { threshold, count })
    }
}

/// How to split: `group_threshold` of the `groups` are needed, each group
/// needing its own threshold of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitSpec {
    /// Groups needed.
    pub group_threshold: u8,
    /// The groups.
    pub groups: Vec<GroupSpec>,
    /// Set the extendable-backup flag (the current specification's default).
    pub extendable: bool,
    /// PBKDF2 iteration exponent, 0..=15 (10,000 × 2^e iterations).
    pub iteration_exponent: u8,
}

impl SplitSpec {
    /// One group, `threshold` of `count` shares, extendable.
    pub fn single(threshold: u8, count: u8) -> SplitSpec {
        SplitSpec {
            group_threshold: 1,
            groups: vec![GroupSpec { threshold, count }],
            extendable: true,
            iteration_exponent: DEFAULT_ITERATION_EXPONENT,
        }
    }

    /// Checks the layout against SLIP-39's limits.
    pub fn validate(&self) -> Result<(), Slip39Error> {
        let layout = |m: String| Err(Slip39Error::Layout(m));
        let n = self.groups.len();
        if n == 0 || n > usize::from(MAX_SHARE_COUNT) {
            return layout(format!("{n} groups; SLIP-39 allows 1 to {MAX_SHARE_COUNT}"));
        }
        if self.group_threshold == 0 || usize::from(self.group_threshold) > n {
            return layout(format!(
                "group threshold {} with {n} group{}: it must be between 1 and the number of groups",
                self.group_threshold,
                if n == 1 { "" } else { "s" }
            ));
        }
        for (i, g) in self.groups.iter().enumerate() {
            let which = if n == 1 {
                String::new()
            } else {
                format!("group {} ", i + 1)
            };
            if g.count == 0 || g.count > MAX_SHARE_COUNT {
                return layout(format!(
                    "{which}{g}: SLIP-39 makes 1 to {MAX_SHARE_COUNT} shares per group"
                ));
            }
            if g.threshold == 0 || g.threshold > g.count {
                return layout(format!(
                    "{which}{g}: the threshold must be between 1 and the number of shares"
                ));
            }
            if g.threshold == 1 && g.count > 1 {
                return layout(format!(
                    "{which}{g}: SLIP-39 does not allow several shares with threshold 1 (each would be the group secret itself); use 1-of-1"
                ));
            }
        }
        if self.iteration_exponent > 15 {
            return layout(format!(
                "iteration exponent {} out of range 0..=15",
                self.iteration_exponent
            ));
        }
        Ok(())
    }
}

/// The mnemonics of a split, by group.
pub struct Backup {
    /// The backup's identifier (15 bits).
    pub identifier: u16,
    /// Whether the extendable flag is set.
    pub extendable: bool,
    /// Groups needed.
    pub group_threshold: u8,
    /// Each group: its threshold and its mnemonics in member order.
    pub groups: Vec<BackupGroup>,
}

/// One group of a [`Backup`].
pub struct BackupGroup {
    /// Members needed.
    pub threshold: u8,
    /// Mnemonics, member 1 first.
    pub mnemonics: Vec<Zeroizing<String>>,
}

/// Checks a secret's length against SLIP-39's rules.
pub fn check_secret_len(len: usize) -> Result<(), Slip39Error> {
    if len < MIN_SECRET_LEN {
        Err(Slip39Error::SecretTooShort(len))
    } else if !len.is_multiple_of(2) {
        Err(Slip39Error::SecretOddLength(len))
    } else if len > MAX_SECRET_LEN {
        Err(Slip39Error::SecretTooLong(len))
    } else {
        Ok(())
    }
}

/// Checks that a passphrase is printable ASCII, as SLIP-39 requires.
pub fn check_passphrase(passphrase: &[u8]) -> Result<(), Slip39Error> {
    match passphrase.iter().position(|b| !(32..=126).contains(b)) {
        Some(i) => Err(Slip39Error::Passphrase { position: i + 1 }),
        None => Ok(()),
    }
}

/// Splits `secret` into SLIP-39 mnemonics, encrypted under `passphrase`
/// (empty for none), with randomness from the system RNG.
pub fn split(secret: &[u8], passphrase: &[u8], spec: &SplitSpec) -> Result<Backup, Slip39Error> {
    split_with(secret, passphrase, spec, &mut |b| {
        aws_lc_rs::rand::fill(b).map_err(|_| Slip39Error::Rng)
    })
}

/// [`split`] with a caller-supplied random source (tests).
pub fn split_with(
    secret: &[u8],
    passphrase: &[u8],
    spec: &SplitSpec,
    fill: &mut dyn FnMut(&mut [u8]) -> Result<(), Slip39Error>,
) -> Result<Backup, Slip39Error> {
    check_secret_len(secret.len())?;
    check_passphrase(passphrase)?;
    spec.validate()?;
    let mut id = [0u8; 2];
    fill(&mut id)?;
    let identifier = u16::from_be_bytes(id) & 0x7FFF;
    let ems = cipher::encrypt(
        secret,
        passphrase,
        spec.iteration_exponent,
        identifier,
        spec.extendable,
    );
    // Checked above: at most 16 groups.
    let group_count = spec.groups.len() as u8;
    let group_secrets = shamir::split(spec.group_threshold, group_count, &ems, fill)?;
    let mut groups = Vec::with_capacity(spec.groups.len());
    for (g, (group_index, group_secret)) in spec.groups.iter().zip(group_secrets) {
        let members = shamir::split(g.threshold, g.count, &group_secret, fill)?;
        let mnemonics = members
            .into_iter()
            .map(|(member_index, value)| {
                Share {
                    identifier,
                    extendable: spec.extendable,
                    iteration_exponent: spec.iteration_exponent,
                    group_index,
                    group_threshold: spec.group_threshold,
                    group_count,
                    member_index,
                    member_threshold: g.threshold,
                    value,
                }
                .to_mnemonic()
            })
            .collect();
        groups.push(BackupGroup {
            threshold: g.threshold,
            mnemonics,
        });
    }
    Ok(Backup {
        identifier,
        extendable: spec.extendable,
        group_threshold: spec.group_threshold,
        groups,
    })
}

/// One mnemonic to combine, with the label errors use for it (for example
/// "share 2 (shares.txt line 3)").
pub struct Input<'a> {
    /// How errors name this share.
    pub label: String,
    /// The words.
    pub mnemonic: &'a str,
}

impl<'a> Input<'a> {
    /// Labels mnemonics "share 1", "share 2", … in order.
    pub fn numbered<S: AsRef<str>>(mnemonics: &'a [S]) -> Vec<Input<'a>> {
        mnemonics
            .iter()
            .enumerate()
            .map(|(i, m)| Input {
                label: format!("share {}", i + 1),
                mnemonic: m.as_ref(),
            })
            .collect()
    }
}

/// A restored secret and what it was made from.
pub struct Restored {
    /// The master secret (the passphrase applied: a wrong passphrase gives a
    /// different secret, not an error).
    pub secret: Zeroizing<Vec<u8>>,
    /// The backup's identifier.
    pub identifier: u16,
    /// Whether the extendable flag is set.
    pub extendable: bool,
    /// Groups needed and made.
    pub group_threshold: u8,
    /// Groups made.
    pub group_count: u8,
    /// Labels of the shares combined.
    pub used: Vec<String>,
    /// Labels of extra shares of complete groups, checked to agree.
    pub checked: Vec<String>,
    /// Labels of shares of incomplete groups, not needed and not used.
    pub unused: Vec<String>,
}

/// Combines mnemonics into the secret, decrypting with `passphrase`.
///
/// More shares than needed are accepted: extra shares of a complete group,
/// and extra complete groups, must agree with the ones combined; shares of
/// groups that are not complete are reported as unused.
pub fn combine(inputs: &[Input<'_>], passphrase: &[u8]) -> Result<Restored, Slip39Error> {
    check_passphrase(passphrase)?;
    if inputs.is_empty() {
        return Err(Slip39Error::Empty);
    }
    let shares = inputs
        .iter()
        .map(|i| {
            Share::from_mnemonic(i.mnemonic).map_err(|problem| Slip39Error::Share {
                share: i.label.clone(),
                problem,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let label = |i: usize| inputs[i].label.clone();

    // Parameters every share of one backup has in common.
    let first = &shares[0];
    for (i, s) in shares.iter().enumerate().skip(1) {
        let what = if s.identifier != first.identifier {
            "identifiers"
        } else if s.extendable != first.extendable {
            "extendable flags"
        } else if s.iteration_exponent != first.iteration_exponent {
            "iteration exponents"
        } else if s.group_threshold != first.group_threshold {
            "group thresholds"
        } else if s.group_count != first.group_count {
            "group counts"
        } else if s.value.len() != first.value.len() {
            "lengths"
        } else {
            continue;
        };
        return Err(Slip39Error::Mismatch {
            share: label(i),
            first: label(0),
            what: what.into(),
        });
    }

    // Sort into groups; members of a group agree on the member threshold
    // and have distinct indices.
    let mut groups: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, s) in shares.iter().enumerate() {
        let members = groups.entry(s.group_index).or_default();
        if let Some(&j) = members.first() {
            if shares[j].member_threshold != s.member_threshold {
                return Err(Slip39Error::Mismatch {
                    share: label(i),
                    first: label(j),
                    what: format!("member thresholds (group {})", s.group_index + 1),
                });
            }
        }
        if let Some(&j) = members
            .iter()
            .find(|&&j| shares[j].member_index == s.member_index)
        {
            let (group, member) = (s.group_index + 1, s.member_index + 1);
            let same: bool = shares[j].value.ct_eq(&s.value).into();
            return Err(if same {
                Slip39Error::Duplicate {
                    share: label(i),
                    first: label(j),
                    group,
                    member,
                }
            } else {
                Slip39Error::Conflict {
                    share: label(i),
                    first: label(j),
                    group,
                    member,
                }
            });
        }
        members.push(i);
    }

    let complete: Vec<(u8, &Vec<usize>)> = groups
        .iter()
        .filter(|(_, m)| m.len() >= usize::from(shares[m[0]].member_threshold))
        .map(|(g, m)| (*g, m))
        .collect();
    let gt = first.group_threshold;
    if complete.len() < usize::from(gt) {
        return Err(Slip39Error::TooFew(too_few(
            &shares,
            &groups,
            complete.len(),
        )));
    }

    let (mut used, mut checked, mut unused) = (Vec::new(), Vec::new(), Vec::new());
    for (_, members) in groups
        .iter()
        .filter(|(g, _)| !complete.iter().any(|c| c.0 == **g))
    {
        unused.extend(members.iter().map(|&i| label(i)));
    }
    let mut group_secrets: Vec<(u8, Zeroizing<Vec<u8>>, String)> = Vec::new();
    for (g, members) in &complete {
        let mut members = (*members).clone();
        members.sort_by_key(|&i| shares[i].member_index);
        let mt = usize::from(shares[members[0]].member_threshold);
        let (base, extra) = members.split_at(mt);
        let names = base
            .iter()
            .map(|&i| label(i))
            .collect::<Vec<_>>()
            .join(", ");
        let points: Vec<shamir::Point<'_>> = base
            .iter()
            .map(|&i| (shares[i].member_index, &shares[i].value[..]))
            .collect();
        let secret =
            shamir::recover(shares[base[0]].member_threshold, &points).ok_or_else(|| {
                Slip39Error::Digest {
                    shares: names.clone(),
                }
            })?;
        for &i in extra {
            let expect = shamir::interpolate(&points, shares[i].member_index);
            if !bool::from(expect.ct_eq(&shares[i].value)) {
                return Err(Slip39Error::Inconsistent {
                    share: label(i),
                    with: names,
                });
            }
            checked.push(label(i));
        }
        used.extend(base.iter().map(|&i| label(i)));
        group_secrets.push((*g, secret, format!("group {} ({names})", g + 1)));
    }

    let (base, extra) = group_secrets.split_at(usize::from(gt));
    let points: Vec<shamir::Point<'_>> = base.iter().map(|(g, s, _)| (*g, &s[..])).collect();
    let names = base
        .iter()
        .map(|(_, _, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    let ems = shamir::recover(gt, &points).ok_or_else(|| Slip39Error::Digest {
        shares: format!("the groups {names}"),
    })?;
    for (g, s, n) in extra {
        let expect = shamir::interpolate(&points, *g);
        if !bool::from(expect.ct_eq(s)) {
            return Err(Slip39Error::Inconsistent {
                share: n.clone(),
                with: names,
            });
        }
    }
    let secret = cipher::decrypt(
        &ems,
        passphrase,
        first.iteration_exponent,
        first.identifier,
        first.extendable,
    );
    Ok(Restored {
        secret,
        identifier: first.identifier,
        extendable: first.extendable,
        group_threshold: gt,
        group_count: first.group_count,
        used,
        checked,
        unused,
    })
}

/// Says how many more shares (and groups) are needed.
fn too_few(shares: &[Share], groups: &BTreeMap<u8, Vec<usize>>, complete: usize) -> String {
    let first = &shares[0];
    let plural = |n: usize, w: &str| format!("{n} more {w}{}", if n == 1 { "" } else { "s" });
    let partial = |members: &Vec<usize>| {
        let t = usize::from(shares[members[0]].member_threshold);
        (members.len(), t, t - members.len())
    };
    if first.group_count == 1 {
        // One group: the usual t-of-n backup.
        let (have, t, more) = groups.values().next().map(partial).unwrap_or((0, 0, 0));
        return format!(
            "given {have} of the {t} shares needed: {} needed",
            plural(more, "share")
        );
    }
    let gt = usize::from(first.group_threshold);
    let mut parts = vec![format!(
        "{complete} of the {gt} groups needed are complete; {} needed",
        plural(gt - complete, "group")
    )];
    for (g, members) in groups {
        let (have, t, more) = partial(members);
        if more > 0 {
            parts.push(format!(
                "group {} (starting \"{} …\") has {have} of {t}: {} needed",
                g + 1,
                shares[members[0]].group_prefix(),
                plural(more, "share")
            ));
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_combine_with_groups_and_extras() {
        let secret: Vec<u8> = (0..32).collect();
        let spec = SplitSpec {
            group_threshold: 2,
            groups: vec![
                GroupSpec {
                    threshold: 1,
                    count: 1,
                },
                GroupSpec {
                    threshold: 2,
                    count: 3,
                },
                GroupSpec {
                    threshold: 3,
                    count: 5,
                },
            ],
            extendable: false,
            iteration_exponent: 0,
        };
        let b = split(&secret, b"pw", &spec).unwrap();
        let m = |g: usize, i: usize| b.groups[g].mnemonics[i].to_string();
        let all = [m(1, 2), m(2, 0), m(1, 0), m(2, 4), m(2, 1), m(1, 1)];
        let r = combine(&Input::numbered(&all), b"pw").unwrap();
        assert_eq!(&r.secret[..], &secret[..]);
        // Group 2 is combined from its members 1 and 2 (shares 3 and 6);
        // its member 3 (share 1) is extra and checked.
        assert_eq!(r.checked, ["share 1"]);
        let r = combine(&Input::numbered(&[m(0, 0), m(2, 3)]), b"pw");
        let e = r.err().unwrap().to_string();
        assert!(e.contains("1 of the 2 groups needed are complete"), "{e}");
        assert!(
            e.contains("group 3") && e.contains("has 1 of 3: 2 more shares needed"),
            "{e}"
        );
        // Wrong passphrase: a different secret, no error.
        let r = combine(&Input::numbered(&[m(0, 0), m(1, 0), m(1, 2)]), b"px").unwrap();
        assert_ne!(&r.secret[..], &secret[..]);
    }

    #[test]
    fn layout_and_secret_errors() {
        assert!(matches!(
            split(&[0; 15], b"", &SplitSpec::single(2, 3)),
            Err(Slip39Error::SecretTooShort(15))
        ));
        assert!(matches!(
            split(&[0; 33], b"", &SplitSpec::single(2, 3)),
            Err(Slip39Error::SecretOddLength(33))
        ));
        for (t, n) in [(0, 3), (4, 3), (1, 2), (2, 17)] {
            assert!(matches!(
                split(&[0; 16], b"", &SplitSpec::single(t, n)),
                Err(Slip39Error::Layout(_))
            ));
        }
        assert!(matches!(
            split(&[0; 16], "é".as_bytes(), &SplitSpec::single(2, 3)),
            Err(Slip39Error::Passphrase { position: 1 })
        ));
        assert_eq!(
            "3-of-5".parse::<GroupSpec>(),
            Ok(GroupSpec {
                threshold: 3,
                count: 5
            })
        );
        assert!("3of5".parse::<GroupSpec>().is_err());
    }
}
