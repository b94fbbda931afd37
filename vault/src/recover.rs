//! Recovering a secret from shards, naming every bad one.
//!
//! Each candidate (a sealed shard plus the keys that may open it, or an
//! unsealed share file) is checked on its own against the verified manifest
//! before anything is combined: vault id, epoch, index, sealed-file hash,
//! recipient, share commitment, share length, duplicates. Only shares that pass are
//! combined, and the result must match the manifest's secret commitment.
//! With more than t candidates and some bad, recovery succeeds from the good
//! ones and reports the bad.
//!
//! A share can pass its own checks and still be wrong: from epoch 2 on the
//! manifest lists the commitments the holders reported, so a lying holder's
//! commitment matches its lie. With exactly t shares such a lie is caught
//! by the secret commitment only ([`RecoverError::SecretMismatch`]). With
//! k > t shares recovery decodes ([`crate::decode`], Berlekamp-Welch): up
//! to floor((k - t) / 2) wrong shares are corrected and named
//! ([`Rejection::Inconsistent`]); with more, recovery refuses and says how
//! many shares would be needed ([`RecoverError::TooManyWrong`]). The
//! decoded secret must still match the secret commitment.

use crate::codec::FormatError;
use crate::decode::{self, DecodeError};
use crate::epoch_key::EpochKey;
use crate::identity::{Fingerprint, SecretIdentity};
use crate::manifest::{shard_hash, ShardEntry, VaultId, VerifiedManifest};
use crate::seal::{SealError, SealedShard};
use crate::shamir::{self, ShamirError, Share};
use crate::share::{secret_commitment, ShareRecord, BLIND_LEN};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

/// Why one candidate share was not used.
#[derive(Debug, Error)]
pub enum Rejection {
    /// The file is not a sealed shard or share file.
    #[error("not a usable shard: {0}")]
    Unreadable(String),
    /// The share belongs to another vault.
    #[error("belongs to another vault ({found}, expected {expected})")]
    OtherVault {
        /// Vault id found.
        found: VaultId,
        /// Vault id of the manifest.
        expected: VaultId,
    },
    /// The share is from an older epoch: stale since a repair or refresh.
    #[error("stale: epoch {found}, but the manifest is epoch {current}")]
    StaleEpoch {
        /// Epoch found.
        found: u64,
        /// Manifest epoch.
        current: u64,
    },
    /// The share is from a newer epoch than the manifest.
    #[error(
        "from epoch {found}, newer than the manifest's epoch {current}: use the newer manifest"
    )]
    NewerEpoch {
        /// Epoch found.
        found: u64,
        /// Manifest epoch.
        current: u64,
    },
    /// The manifest has no shard at this index.
    #[error("share index {0} is not in the manifest")]
    UnknownIndex(u8),
    /// Threshold or share count disagree with the manifest.
    #[error("parameters t = {t}, n = {n} disagree with the manifest")]
    Parameters {
        /// Threshold found.
        t: u8,
        /// Share count found.
        n: u8,
    },
    /// The sealed file's hash is not the one the manifest signed.
    #[error("shard {0} was modified: its SHA-256 does not match the manifest")]
    Tampered(u8),
    /// The shard is sealed to someone other than the manifest's recipient.
    #[error("shard {index} is sealed to {found}, the manifest says {expected}")]
    WrongRecipient {
        /// Index.
        index: u8,
        /// Fingerprint in the shard.
        found: Fingerprint,
        /// Fingerprint in the manifest.
        expected: Fingerprint,
    },
    /// No key offered matches the shard's recipient.
    #[error("no key given for recipient {recipient} ({name})")]
    NoKey {
        /// Recipient fingerprint.
        recipient: Fingerprint,
        /// Recipient name from the manifest.
        name: String,
    },
    /// Unsealing failed.
    #[error("cannot unseal: {0}")]
    Unseal(#[from] SealError),
    /// The share's length is not the manifest's secret length plus the
    /// blinding (a holder can commit to a share of any length).
    #[error("share {index} is {found} bytes, the manifest's secret needs {expected}")]
    Length {
        /// Index.
        index: u8,
        /// Length found.
        found: usize,
        /// Secret length plus blinding.
        expected: usize,
    },
    /// The plaintext share does not match the manifest's commitment.
    #[error("share {0} does not match its commitment in the manifest")]
    CommitmentMismatch(u8),
    /// Another candidate already supplied this index.
    #[error("duplicate of share {0}")]
    Duplicate(u8),
    /// The share passed its own checks but decoding all the good shares
    /// found it off their polynomial.
    #[error("share {index} disagrees with the other shares (Berlekamp-Welch): its holder lied or its shard was corrupted")]
    Inconsistent {
        /// Index of the wrong share.
        index: u8,
    },
}

/// A candidate that was not used, and why.
#[derive(Debug)]
pub struct Rejected {
    /// Where the candidate came from (a file name).
    pub source: String,
    /// Why it was refused.
    pub reason: Rejection,
}

/// Why recovery failed as a whole.
#[derive(Debug, Error)]
pub enum RecoverError {
    /// Too few good shares.
    #[error("only {good} good share(s), threshold is {needed}{}", summary(.rejected))]
    NotEnoughShares {
        /// Good shares found.
        good: usize,
        /// Threshold.
        needed: u8,
        /// Every rejected candidate.
        rejected: Vec<Rejected>,
    },
    /// Combining failed.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// Exactly t good shares combined to something that is not the
    /// committed secret: one of them is wrong though its commitment matches
    /// (its holder reported the commitment of a lie), or the manifest is
    /// inconsistent (its signer made it so). t shares cannot tell which.
    #[error("shares {0:?} passed every check but do not combine to the committed secret: one of them is wrong (its holder reported a false commitment) or the manifest is inconsistent; with more shares, recovery can find which")]
    SecretMismatch(Vec<u8>),
    /// More than t shares passed their own checks but they do not decode
    /// to the committed secret: more of them are wrong than they can
    /// correct (or the manifest is inconsistent). No secret is returned.
    #[error(
        "shares {shares:?} passed their own checks but do not decode to the committed secret: \
         more than {correctable} of them are wrong, or the manifest is inconsistent; with threshold {threshold}, \
         correcting {} wrong share(s) needs at least {needed} shares{}",
        .correctable + 1,
        summary(.rejected)
    )]
    TooManyWrong {
        /// Indices of the shares that passed their own checks.
        shares: Vec<u8>,
        /// Threshold.
        threshold: u8,
        /// Wrong shares these shares correct: floor((k - t) / 2).
        correctable: usize,
        /// Shares needed to correct one more: t + 2 (correctable + 1).
        needed: usize,
        /// Every candidate rejected before decoding.
        rejected: Vec<Rejected>,
    },
}

fn summary(rejected: &[Rejected]) -> String {
    rejected
        .iter()
        .map(|r| format!("; {}: {}", r.source, r.reason))
        .collect()
}

/// One candidate share.
pub enum Candidate<'a> {
    /// A sealed shard file.
    Sealed {
        /// Label for reports (file name).
        source: String,
        /// File content.
        bytes: &'a [u8],
    },
    /// An unsealed share file (from `vault unseal`).
    Unsealed {
        /// Label for reports.
        source: String,
        /// File content.
        bytes: &'a [u8],
    },
}

/// A recovered secret and the report of how.
pub struct Recovered {
    /// The secret, zeroized on drop.
    pub secret: Zeroizing<Vec<u8>>,
    /// Indices combined.
    pub used: Vec<u8>,
    /// Indices that were good but not needed.
    pub spare: Vec<u8>,
    /// Candidates refused, including the shares decoding found wrong.
    pub rejected: Vec<Rejected>,
}

impl Recovered {
    /// Indices of the shares decoding corrected ([`Rejection::Inconsistent`]).
    pub fn corrected(&self) -> Vec<u8> {
        self.rejected
            .iter()
            .filter_map(|r| match r.reason {
                Rejection::Inconsistent { index } => Some(index),
                _ => None,
            })
            .collect()
    }
}

/// Checks a sealed shard against the manifest without opening it.
pub fn check_sealed<'m>(
    manifest: &'m VerifiedManifest,
    bytes: &[u8],
) -> Result<(SealedShard, &'m ShardEntry), Rejection> {
    let shard = SealedShard::parse(bytes).map_err(|e| Rejection::Unreadable(e.to_string()))?;
    let h = &shard.header;
    let entry = check_context(manifest, h.vault_id, h.epoch, h.index, h.threshold, h.n)?;
    if !bool::from(shard_hash(bytes).ct_eq(&entry.blob_hash)) {
        return Err(Rejection::Tampered(h.index));
    }
    if h.recipient != entry.recipient {
        return Err(Rejection::WrongRecipient {
            index: h.index,
            found: h.recipient,
            expected: entry.recipient,
        });
    }
    Ok((shard, entry))
}

/// Checks a plaintext share record against the manifest.
pub fn check_record(manifest: &VerifiedManifest, rec: &ShareRecord) -> Result<(), Rejection> {
    let entry = check_context(
        manifest,
        rec.vault_id,
        rec.epoch,
        rec.share.index,
        rec.threshold,
        rec.n,
    )?;
    if !bool::from(rec.commitment().ct_eq(&entry.share_commitment)) {
        return Err(Rejection::CommitmentMismatch(rec.share.index));
    }
    let expected = manifest.body().secret_len as usize + BLIND_LEN;
    if rec.share.value.len() != expected {
        return Err(Rejection::Length {
            index: rec.share.index,
            found: rec.share.value.len(),
            expected,
        });
    }
    Ok(())
}

fn check_context(
    m: &VerifiedManifest,
    vault_id: VaultId,
    epoch: u64,
    index: u8,
    t: u8,
    n: u8,
) -> Result<&ShardEntry, Rejection> {
    let b = m.body();
    if vault_id != b.vault_id {
        return Err(Rejection::OtherVault {
            found: vault_id,
            expected: b.vault_id,
        });
    }
    if epoch < b.epoch {
        return Err(Rejection::StaleEpoch {
            found: epoch,
            current: b.epoch,
        });
    }
    if epoch > b.epoch {
        return Err(Rejection::NewerEpoch {
            found: epoch,
            current: b.epoch,
        });
    }
    let entry = b.entry(index).ok_or(Rejection::UnknownIndex(index))?;
    if t != b.threshold || n != b.n {
        return Err(Rejection::Parameters { t, n });
    }
    Ok(entry)
}

fn open_candidate(
    m: &VerifiedManifest,
    c: &Candidate<'_>,
    keys: &[SecretIdentity],
    epoch_keys: &[EpochKey],
) -> Result<ShareRecord, Rejection> {
    let rec = match c {
        Candidate::Sealed { bytes, .. } => {
            let (shard, entry) = check_sealed(m, bytes)?;
            let sealed_to = shard.header.epoch_key;
            if let Some(k) = epoch_keys
                .iter()
                .find(|k| Some(k.fingerprint()) == sealed_to)
            {
                let rec = shard.open_with_epoch_key(k)?;
                check_record(m, &rec)?;
                return Ok(rec);
            }
            let key = keys
                .iter()
                .find(|k| k.public().fingerprint() == entry.recipient)
                .ok_or_else(|| Rejection::NoKey {
                    recipient: entry.recipient,
                    name: entry.recipient_name.clone(),
                })?;
            shard.open(key)?
        }
        Candidate::Unsealed { bytes, .. } => ShareRecord::decode(bytes)
            .map_err(|e: FormatError| Rejection::Unreadable(e.to_string()))?,
    };
    check_record(m, &rec)?;
    Ok(rec)
}

/// Checks and opens every candidate, in parallel on scoped OS threads
/// (unsealing is HQC-bound); results come back in candidate order.
fn open_all(
    m: &VerifiedManifest,
    candidates: &[Candidate<'_>],
    keys: &[SecretIdentity],
    epoch_keys: &[EpochKey],
) -> Vec<Result<ShareRecord, Rejection>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(candidates.len())
        .max(1);
    if workers == 1 {
        return candidates
            .iter()
            .map(|c| open_candidate(m, c, keys, epoch_keys))
            .collect();
    }
    let mut results: Vec<Option<Result<ShareRecord, Rejection>>> =
        (0..candidates.len()).map(|_| None).collect();
    let chunk = candidates.len().div_ceil(workers);
    std::thread::scope(|scope| {
        for (cs, outs) in candidates.chunks(chunk).zip(results.chunks_mut(chunk)) {
            scope.spawn(move || {
                for (c, out) in cs.iter().zip(outs.iter_mut()) {
                    *out = Some(open_candidate(m, c, keys, epoch_keys));
                }
            });
        }
    });
    // A worker that panicked leaves `None`: report it, never combine it.
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Rejection::Unreadable("unsealing thread failed".into()))))
        .collect()
}

/// Recovers the secret from `candidates`, opening sealed ones with `keys`
/// (in parallel).
pub fn recover(
    manifest: &VerifiedManifest,
    candidates: &[Candidate<'_>],
    keys: &[SecretIdentity],
) -> Result<Recovered, RecoverError> {
    recover_with(manifest, candidates, keys, &[])
}

/// [`recover`], also opening shards sealed to one of `epoch_keys` (the
/// initial keys genesis shards are sealed to, while their owners still
/// hold them: [`crate::initial_key`]).
pub fn recover_with(
    manifest: &VerifiedManifest,
    candidates: &[Candidate<'_>],
    keys: &[SecretIdentity],
    epoch_keys: &[EpochKey],
) -> Result<Recovered, RecoverError> {
    let body = manifest.body();
    let mut good: Vec<(Share, String)> = Vec::new();
    let mut rejected = Vec::new();
    for (c, opened) in candidates
        .iter()
        .zip(open_all(manifest, candidates, keys, epoch_keys))
    {
        let source = match c {
            Candidate::Sealed { source, .. } | Candidate::Unsealed { source, .. } => source.clone(),
        };
        match opened {
            Ok(rec) if good.iter().any(|(s, _)| s.index == rec.share.index) => {
                rejected.push(Rejected {
                    source,
                    reason: Rejection::Duplicate(rec.share.index),
                })
            }
            Ok(rec) => good.push((rec.share.clone(), source)),
            Err(reason) => rejected.push(Rejected { source, reason }),
        }
    }
    let t = usize::from(body.threshold);
    if good.len() < t {
        return Err(RecoverError::NotEnoughShares {
            good: good.len(),
            needed: body.threshold,
            rejected,
        });
    }
    good.sort_by_key(|(s, _)| s.index);
    let secret_len = body.secret_len as usize;
    let commits = |payload: &[u8]| {
        payload.len() == secret_len + BLIND_LEN
            && bool::from(
                secret_commitment(
                    &body.vault_id,
                    &payload[..secret_len],
                    &payload[secret_len..],
                )
                .ct_eq(&body.secret_commitment),
            )
    };

    let shares: Vec<Share> = good.iter().map(|(s, _)| s.clone()).collect();
    let (mut payload, used, spare) = if shares.len() == t {
        let used: Vec<u8> = shares.iter().map(|s| s.index).collect();
        let payload = shamir::combine(&shares)?;
        if !commits(&payload) {
            return Err(RecoverError::SecretMismatch(used));
        }
        (payload, used, Vec::new())
    } else {
        let indices: Vec<u8> = shares.iter().map(|s| s.index).collect();
        let correctable = decode::correctable(shares.len(), t);
        let too_many = |rejected| RecoverError::TooManyWrong {
            shares: indices.clone(),
            threshold: body.threshold,
            correctable,
            needed: decode::shares_needed(t, correctable + 1),
            rejected,
        };
        let d = match decode::decode(&shares, body.threshold) {
            Ok(d) if commits(&d.value) => d,
            Ok(_) | Err(DecodeError::TooManyErrors { .. }) => return Err(too_many(rejected)),
            Err(DecodeError::Shamir(e)) => return Err(e.into()),
        };
        for index in &d.wrong {
            if let Some((_, source)) = good.iter().find(|(s, _)| s.index == *index) {
                rejected.push(Rejected {
                    source: source.clone(),
                    reason: Rejection::Inconsistent { index: *index },
                });
            }
        }
        (d.value, d.basis, d.agreeing)
    };
    payload.truncate(secret_len);
    Ok(Recovered {
        secret: payload,
        used,
        spare,
        rejected,
    })
}
