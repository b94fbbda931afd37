//! Recovering a secret from shards, naming every bad one.
//!
//! Each candidate (a sealed shard plus the keys that may open it, or an
//! unsealed share file) is checked on its own against the verified manifest
//! before anything is combined: vault id, epoch, index, sealed-file hash,
//! recipient, share commitment, duplicates. Only shares that pass are
//! combined, and the result must match the manifest's secret commitment.
//! With more than t candidates and some bad, recovery succeeds from the good
//! ones and reports the bad.

use crate::codec::FormatError;
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
    /// The plaintext share does not match the manifest's commitment.
    #[error("share {0} does not match its commitment in the manifest")]
    CommitmentMismatch(u8),
    /// Another candidate already supplied this index.
    #[error("duplicate of share {0}")]
    Duplicate(u8),
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
    /// Good shares combined to something that is not the committed secret:
    /// the manifest itself is inconsistent (its signer made it so).
    #[error("shares {0:?} passed every check but do not combine to the committed secret: the manifest is inconsistent")]
    SecretMismatch(Vec<u8>),
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
    /// Candidates refused.
    pub rejected: Vec<Rejected>,
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
) -> Result<ShareRecord, Rejection> {
    let rec = match c {
        Candidate::Sealed { bytes, .. } => {
            let (shard, entry) = check_sealed(m, bytes)?;
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
) -> Vec<Result<ShareRecord, Rejection>> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(candidates.len())
        .max(1);
    if workers == 1 {
        return candidates
            .iter()
            .map(|c| open_candidate(m, c, keys))
            .collect();
    }
    let mut results: Vec<Option<Result<ShareRecord, Rejection>>> =
        (0..candidates.len()).map(|_| None).collect();
    let chunk = candidates.len().div_ceil(workers);
    std::thread::scope(|scope| {
        for (cs, outs) in candidates.chunks(chunk).zip(results.chunks_mut(chunk)) {
            scope.spawn(move || {
                for (c, out) in cs.iter().zip(outs.iter_mut()) {
                    *out = Some(open_candidate(m, c, keys));
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
    let body = manifest.body();
    let mut good: Vec<Share> = Vec::new();
    let mut rejected = Vec::new();
    for (c, opened) in candidates.iter().zip(open_all(manifest, candidates, keys)) {
        let source = match c {
            Candidate::Sealed { source, .. } | Candidate::Unsealed { source, .. } => source.clone(),
        };
        match opened {
            Ok(rec) if good.iter().any(|s| s.index == rec.share.index) => rejected.push(Rejected {
                source,
                reason: Rejection::Duplicate(rec.share.index),
            }),
            Ok(rec) => good.push(rec.share.clone()),
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
    good.sort_by_key(|s| s.index);
    let spare = good[t..].iter().map(|s| s.index).collect();
    let used: Vec<u8> = good[..t].iter().map(|s| s.index).collect();
    let mut payload = shamir::combine(&good[..t])?;
    let secret_len = body.secret_len as usize;
    if payload.len() != secret_len + BLIND_LEN {
        return Err(RecoverError::SecretMismatch(used));
    }
    let commitment = secret_commitment(
        &body.vault_id,
        &payload[..secret_len],
        &payload[secret_len..],
    );
    if !bool::from(commitment.ct_eq(&body.secret_commitment)) {
        return Err(RecoverError::SecretMismatch(used));
    }
    payload.truncate(secret_len);
    Ok(Recovered {
        secret: payload,
        used,
        spare,
        rejected,
    })
}
