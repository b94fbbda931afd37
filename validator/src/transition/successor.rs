//! Whether a successor's shape lets us sign it: the structural half of the
//! decision, without I/O.
//!
//! Before a holder signs the step from epoch `e` to `e+1` (and so lets
//! anyone delete epoch `e`), [`shape`] checks what the two manifests and
//! our own prepared share say: it is the next epoch of this vault; it keeps
//! the suite and the secret; `(t, n)` changes only as the policy's shrink;
//! our entry is the share we prepared, made in a way that may be signed;
//! a re-share keeps only current holders; and a share changes hands only
//! to the replacement we named for it in a certified repair. It gives the
//! holders the successor leaves out or replaces, which the driver
//! (`crate::epochs::sign`) must then find lost in its own view before
//! anything else (the epoch log, the proposal, the dealing check, the
//! pre-sign exchange) is asked.

use super::authorize::Rules;
use std::collections::BTreeMap;
use thiserror::Error;
use vault::identity::Fingerprint;
use vault::manifest::ManifestBody;

/// How our prepared share was made (`crate::epochs::Origin`, without the
/// round id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Re-sealed or repaired: the same polynomial.
    SamePolynomial,
    /// Combined from a re-share's sub-shares.
    Reshare,
    /// Read back from disk after a restart.
    Restored,
}

/// Our prepared share, as the successor must list it.
#[derive(Debug, Clone, Copy)]
pub struct Ours<'a> {
    /// Our identity.
    pub me: &'a Fingerprint,
    /// The epoch it leaves.
    pub from_epoch: u64,
    /// Its share index.
    pub index: u8,
    /// The hash of its sealed bytes.
    pub blob_hash: [u8; 32],
    /// How it was made.
    pub made: Made,
}

/// Why a successor's shape is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Misshapen {
    /// Another vault, or not the epoch after ours.
    #[error("not the next epoch of this vault")]
    NotNext,
    /// The suite, the secret's length or its commitment changed.
    #[error("a new epoch keeps the suite and the secret")]
    SecretChanged,
    /// `(t, n)` changed other than as the policy's shrink.
    #[error("({t}, {n}) is not the {policy} policy's re-share of ({t_was}, {n_was})")]
    NotPolicyShrink {
        /// The successor's threshold.
        t: u8,
        /// The successor's number of shares.
        n: u8,
        /// The policy's name.
        policy: &'static str,
        /// The current threshold.
        t_was: u8,
        /// The current number of shares.
        n_was: u8,
    },
    /// Our prepared share's index is not in the successor.
    #[error("our index is missing")]
    OurIndexMissing,
    /// Our entry is not the share we prepared.
    #[error("our entry is not the shard we prepared")]
    NotOurShard,
    /// A new `(t, n)` from a share that was not re-dealt.
    #[error("a new (t, n) comes only from a re-share; our share was not re-dealt")]
    NotRedealt,
    /// Our share was read back after a restart: its check state is gone.
    #[error(
        "we restarted since preparing our share; not signing a successor we can no longer check"
    )]
    Restored,
    /// A re-share that lists someone who holds nothing now.
    #[error("a re-share only keeps holders of the current epoch")]
    NewHolder,
    /// A share given to someone we never named for it.
    #[error(
        "share {index} changes hands to {to} without a certified repair we voted for or helped"
    )]
    Unnamed {
        /// The share.
        index: u8,
        /// Its new holder, short.
        to: String,
    },
}

impl Misshapen {
    /// The HTTP status it is answered with: 409 where the successor may be
    /// right but we cannot stand by it, 422 where it is wrong.
    pub fn status(&self) -> u16 {
        match self {
            Misshapen::Restored | Misshapen::Unnamed { .. } => 409,
            _ => 422,
        }
    }
}

/// A successor whose shape we may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Whether `(t, n)` changes (a shrink).
    pub reshaped: bool,
    /// Shares the successor leaves out (a shrink), with their holders:
    /// each must be lost in our view.
    pub left_out: Vec<(u8, Fingerprint)>,
    /// Shares that change hands (a repair), with their old holders: each
    /// must be lost in our view.
    pub replaced: Vec<(u8, Fingerprint)>,
}

/// Checks the shape of the step from `c` to `n`, asked as leaving
/// `from_epoch`, under `rules`, for our prepared share `ours`, where
/// `named` maps each replacement we named in a certified repair to its
/// index.
pub fn shape(
    c: &ManifestBody,
    n: &ManifestBody,
    from_epoch: u64,
    rules: &Rules,
    ours: &Ours,
    named: &BTreeMap<Fingerprint, u8>,
) -> Result<Shape, Misshapen> {
    if n.vault_id != c.vault_id || n.epoch != c.epoch + 1 || from_epoch != c.epoch {
        return Err(Misshapen::NotNext);
    }
    if (n.suite, n.secret_len, n.secret_commitment) != (c.suite, c.secret_len, c.secret_commitment)
    {
        return Err(Misshapen::SecretChanged);
    }
    // (t, n) changes only by re-sharing to fewer holders, as the policy says.
    let reshaped = (n.threshold, n.n) != (c.threshold, c.n);
    if reshaped {
        let indices_ok = n.shards.iter().map(|e| e.index).eq(1..=n.n);
        if n.n >= c.n || rules.shrink_threshold(n.n) != Some(n.threshold) || !indices_ok {
            return Err(Misshapen::NotPolicyShrink {
                t: n.threshold,
                n: n.n,
                policy: rules.policy.name(),
                t_was: c.threshold,
                n_was: c.n,
            });
        }
    }
    // Our own entry must be the share we prepared.
    let mine = n.entry(ours.index).ok_or(Misshapen::OurIndexMissing)?;
    if ours.from_epoch != c.epoch || mine.recipient != *ours.me || mine.blob_hash != ours.blob_hash
    {
        return Err(Misshapen::NotOurShard);
    }
    match ours.made {
        Made::SamePolynomial if reshaped => return Err(Misshapen::NotRedealt),
        Made::Restored => return Err(Misshapen::Restored),
        Made::SamePolynomial | Made::Reshare => {}
    }
    let mut shape = Shape {
        reshaped,
        left_out: Vec::new(),
        replaced: Vec::new(),
    };
    if reshaped {
        if n.shards
            .iter()
            .any(|e| c.shards.iter().all(|o| o.recipient != e.recipient))
        {
            return Err(Misshapen::NewHolder);
        }
        shape.left_out = c
            .shards
            .iter()
            .filter(|o| n.shards.iter().all(|e| e.recipient != o.recipient))
            .map(|o| (o.index, o.recipient))
            .collect();
        return Ok(shape);
    }
    // A share changes hands only as a certified repair we voted for or
    // took part in (we recorded its replacement and index then), never on
    // a leader's word: else an insider could hand a dead holder's index to
    // an accomplice that holds nothing, and the share would be gone.
    for e in &n.shards {
        let Some(old) = c.entry(e.index).map(|o| o.recipient) else {
            continue;
        };
        if old == e.recipient {
            continue;
        }
        if named.get(&e.recipient) != Some(&e.index) {
            return Err(Misshapen::Unnamed {
                index: e.index,
                to: e.recipient.short(),
            });
        }
        shape.replaced.push((e.index, old));
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::policy::Policy;

    fn fp(i: usize) -> Fingerprint {
        Fingerprint::from_bytes([i as u8; 32])
    }

    fn body(epoch: u64, holders: &[usize], t: u8) -> ManifestBody {
        crate::transition::test_body(epoch, holders, t, fp)
    }

    const RULES: Rules = Rules {
        policy: Policy::Majority,
        f: 0,
        floor: 2,
    };

    /// We are member 2, holding share 2 of a 3-of-5 epoch 4 held by 1..=5.
    fn ours(made: Made) -> Ours<'static> {
        static ME: std::sync::OnceLock<Fingerprint> = std::sync::OnceLock::new();
        Ours {
            me: ME.get_or_init(|| fp(2)),
            from_epoch: 4,
            index: 2,
            blob_hash: [0; 32],
            made,
        }
    }

    /// A repair of share 5 to member 6, named; a shrink leaving 5 out.
    #[test]
    fn a_named_repair_and_a_policy_shrink_are_shaped_to_sign() {
        let c = body(4, &[1, 2, 3, 4, 5], 3);
        let named = BTreeMap::from([(fp(6), 5)]);
        let repaired = body(5, &[1, 2, 3, 4, 6], 3);
        assert_eq!(
            shape(
                &c,
                &repaired,
                4,
                &RULES,
                &ours(Made::SamePolynomial),
                &named
            ),
            Ok(Shape {
                reshaped: false,
                left_out: vec![],
                replaced: vec![(5, fp(5))],
            })
        );
        let t4 = RULES.shrink_threshold(4).unwrap();
        let shrunk = body(5, &[1, 2, 3, 4], t4);
        assert_eq!(
            shape(&c, &shrunk, 4, &RULES, &ours(Made::Reshare), &named),
            Ok(Shape {
                reshaped: true,
                left_out: vec![(5, fp(5))],
                replaced: vec![],
            })
        );
        // A refresh: same holders, same (t, n), re-dealt.
        let refreshed = body(5, &[1, 2, 3, 4, 5], 3);
        assert!(shape(&c, &refreshed, 4, &RULES, &ours(Made::Reshare), &named).is_ok());
    }

    /// Every refusal, each on an otherwise signable successor.
    #[test]
    fn misshapen_successors_are_refused_with_their_reason() {
        let c = body(4, &[1, 2, 3, 4, 5], 3);
        let named = BTreeMap::from([(fp(6), 5)]);
        let good = body(5, &[1, 2, 3, 4, 6], 3);
        let same = ours(Made::SamePolynomial);
        let check = |n: &ManifestBody, from: u64, o: &Ours| shape(&c, n, from, &RULES, o, &named);
        assert_eq!(
            check(&body(6, &[1, 2, 3, 4, 6], 3), 4, &same),
            Err(Misshapen::NotNext)
        );
        assert_eq!(check(&good, 3, &same), Err(Misshapen::NotNext));
        let mut other_vault = good.clone();
        other_vault.vault_id = vault::manifest::VaultId::from_bytes([1; 16]);
        assert_eq!(check(&other_vault, 4, &same), Err(Misshapen::NotNext));
        let mut new_secret = good.clone();
        new_secret.secret_commitment = [7; 32];
        assert_eq!(check(&new_secret, 4, &same), Err(Misshapen::SecretChanged));
        // A lower threshold at the same n, a shrink below the policy's t.
        let lowered = body(5, &[1, 2, 3, 4, 6], 2);
        assert!(matches!(
            check(&lowered, 4, &same),
            Err(Misshapen::NotPolicyShrink { t: 2, n: 5, .. })
        ));
        let too_low = body(5, &[1, 2, 3, 4], 1);
        assert!(matches!(
            check(&too_low, 4, &ours(Made::Reshare)),
            Err(Misshapen::NotPolicyShrink { .. })
        ));
        // Our entry: missing, another member's, other bytes, an older epoch.
        let without_us = body(5, &[1, 3, 4, 6], RULES.shrink_threshold(4).unwrap());
        let ours_at_5 = Ours {
            index: 5,
            ..ours(Made::Reshare)
        };
        assert_eq!(
            check(&without_us, 4, &ours_at_5),
            Err(Misshapen::OurIndexMissing)
        );
        let swapped = body(5, &[1, 3, 2, 4, 6], 3);
        assert_eq!(check(&swapped, 4, &same), Err(Misshapen::NotOurShard));
        let other_bytes = Ours {
            blob_hash: [1; 32],
            ..same
        };
        assert_eq!(check(&good, 4, &other_bytes), Err(Misshapen::NotOurShard));
        let stale = Ours {
            from_epoch: 3,
            ..same
        };
        assert_eq!(check(&good, 4, &stale), Err(Misshapen::NotOurShard));
        // A shrink from a share that was not re-dealt; a restarted share.
        let shrunk = body(5, &[1, 2, 3, 4], RULES.shrink_threshold(4).unwrap());
        assert_eq!(check(&shrunk, 4, &same), Err(Misshapen::NotRedealt));
        let restored = ours(Made::Restored);
        assert_eq!(check(&good, 4, &restored), Err(Misshapen::Restored));
        // A shrink that brings in a member holding nothing now.
        let brought_in = body(5, &[1, 2, 3, 6], RULES.shrink_threshold(4).unwrap());
        assert_eq!(
            check(&brought_in, 4, &ours(Made::Reshare)),
            Err(Misshapen::NewHolder)
        );
        // Share 5 to member 7, or share 4 to member 6: never named so.
        for (holders, index, to) in [([1, 2, 3, 4, 7], 5, 7), ([1, 2, 3, 6, 5], 4, 6)] {
            let n = body(5, &holders, 3);
            let got = check(&n, 4, &same).unwrap_err();
            assert_eq!(
                got,
                Misshapen::Unnamed {
                    index,
                    to: fp(to).short()
                }
            );
            assert_eq!(got.status(), 409);
        }
        assert_eq!(Misshapen::Restored.status(), 409);
        assert_eq!(Misshapen::NotNext.status(), 422);
    }
}
