//! Creating a vault: split a secret, seal each share, sign the manifest.
//!
//! The secret is extended with 32 random blinding bytes before splitting, so
//! the manifest's commitments hide even a short secret (see
//! [`crate::share::secret_commitment`]). Sealing is HQC-bound (milliseconds
//! per shard), so shards are sealed in parallel on scoped OS threads.

use crate::epoch_key::EpochPublicKey;
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::kem::hybrid::Suite;
use crate::manifest::{shard_hash, Manifest, ManifestBody, ManifestError, ShardEntry, VaultId};
use crate::policy::{PolicyError, ThresholdSpec};
use crate::seal::{self, SealError};
use crate::shamir::{self, ShamirError};
use crate::share::{secret_commitment, ShareRecord, BLIND_LEN, MAX_SECRET_LEN};
use std::collections::BTreeSet;
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of a generated master secret.
pub const GENERATED_SECRET_LEN: usize = 32;

/// Why a vault could not be created.
#[derive(Debug, Error)]
pub enum CreateError {
    /// The threshold cannot be satisfied for these recipients.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Splitting failed.
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// The given secret is empty or too large.
    #[error("secret is {0} bytes; allowed 1..={MAX_SECRET_LEN}")]
    SecretSize(usize),
    /// Two recipients have the same keys.
    #[error("recipients {0:?} and {1:?} are the same identity (fingerprint {2}); each shard needs its own validator")]
    DuplicateRecipient(String, String, String),
    /// Sealing one shard failed.
    #[error("sealing shard {index} for {recipient:?} failed: {source}")]
    Seal {
        /// Shard index.
        index: u8,
        /// Recipient name.
        recipient: String,
        /// Cause.
        source: SealError,
    },
    /// The recipients' keys belong to different KEM suites; a vault is
    /// sealed with one suite.
    #[error("recipients {first:?} ({first_suite}) and {other:?} ({other_suite}) have keys of different KEM suites; a vault uses one suite: give every recipient an identity of the same suite (new identities are {default})", default = Suite::DEFAULT)]
    MixedSuites {
        /// The first recipient.
        first: String,
        /// Its suite.
        first_suite: Suite,
        /// The first recipient of another suite.
        other: String,
        /// That suite.
        other_suite: Suite,
    },
    /// Building or signing the manifest failed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The system RNG failed.
    #[error("system random number generator failed")]
    Rng,
    /// The initial keys given do not fit the recipients.
    #[error("initial KEM keys: {0}")]
    InitialKeys(String),
}

/// What to create.
pub struct NewVault<'a> {
    /// The master secret; `None` generates 32 random bytes.
    pub secret: Option<&'a [u8]>,
    /// One recipient per shard, in index order (index = position + 1).
    pub recipients: &'a [PublicIdentity],
    /// Threshold, explicit or chosen by policy.
    pub threshold: ThresholdSpec,
    /// Each recipient's initial KEM key (`vault keygen`'s `NAME.ipub`,
    /// verified), in recipient order: its genesis shard is sealed to that
    /// key (`PQVS` version 2) instead of the identity. Empty: every shard
    /// to its identity (version 1), as identities made before initial keys
    /// need.
    pub initial_keys: &'a [Option<EpochPublicKey>],
    /// Identity that signs the manifest.
    pub signer: &'a SecretIdentity,
    /// Creation time recorded in the manifest (seconds since the Unix epoch).
    pub created_unix: u64,
}

/// One sealed shard ready to be written or shipped.
pub struct SealedOutput {
    /// Share index.
    pub index: u8,
    /// Recipient fingerprint.
    pub recipient: Fingerprint,
    /// Recipient name.
    pub recipient_name: String,
    /// The sealed shard file.
    pub bytes: Vec<u8>,
}

/// The result of [`create`].
pub struct CreatedVault {
    /// New vault id.
    pub vault_id: VaultId,
    /// Threshold chosen.
    pub threshold: u8,
    /// Number of shards.
    pub n: u8,
    /// Encoded, signed manifest.
    pub manifest: Vec<u8>,
    /// Sealed shards in index order.
    pub shards: Vec<SealedOutput>,
}

/// A fresh random master secret of [`GENERATED_SECRET_LEN`] bytes, what
/// [`create`] makes when given none (for callers that need it first, such
/// as a paper backup written before the vault).
pub fn generate_secret() -> Result<Zeroizing<Vec<u8>>, CreateError> {
    let mut s = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
    aws_lc_rs::rand::fill(&mut s[..]).map_err(|_| CreateError::Rng)?;
    Ok(s)
}

/// Creates a vault: splits, seals to every recipient, signs the manifest.
pub fn create(req: &NewVault<'_>) -> Result<CreatedVault, CreateError> {
    let threshold = req.threshold.resolve(req.recipients.len())?;
    let n = u8::try_from(req.recipients.len())
        .map_err(|_| PolicyError::TooManyRecipients(req.recipients.len()))?;
    check_distinct(req.recipients)?;

    let mut payload = Zeroizing::new(Vec::new());
    match req.secret {
        Some(s) if s.is_empty() || s.len() > MAX_SECRET_LEN => {
            return Err(CreateError::SecretSize(s.len()))
        }
        Some(s) => payload.extend_from_slice(s),
        None => {
            payload.resize(GENERATED_SECRET_LEN, 0);
            aws_lc_rs::rand::fill(&mut payload[..]).map_err(|_| CreateError::Rng)?;
        }
    }
    let secret_len = payload.len();
    payload.resize(secret_len + BLIND_LEN, 0);
    aws_lc_rs::rand::fill(&mut payload[secret_len..]).map_err(|_| CreateError::Rng)?;

    let vault_id = VaultId::random()?;
    let epoch = 1;
    let commitment = secret_commitment(&vault_id, &payload[..secret_len], &payload[secret_len..]);
    let records: Vec<ShareRecord> = shamir::split(&payload, threshold, n)?
        .into_iter()
        .map(|share| ShareRecord {
            vault_id,
            epoch,
            threshold,
            n,
            share,
        })
        .collect();
    drop(payload);

    let suite = common_suite(req.recipients)?;
    if !req.initial_keys.is_empty() && req.initial_keys.len() != req.recipients.len() {
        return Err(CreateError::InitialKeys(format!(
            "{} initial keys for {} recipients",
            req.initial_keys.len(),
            req.recipients.len()
        )));
    }
    for (who, key) in req.recipients.iter().zip(req.initial_keys) {
        if let Some(k) = key {
            if !crate::initial_key::is_initial(k) || k.suite != suite {
                return Err(CreateError::InitialKeys(format!(
                    "{}'s initial key is not an initial key of the vault's suite {suite}",
                    who.name()
                )));
            }
        }
    }
    let sealed = seal_all(&records, suite, req.recipients, req.initial_keys)?;

    let shards: Vec<SealedOutput> = records
        .iter()
        .zip(req.recipients)
        .zip(sealed)
        .map(|((rec, who), bytes)| SealedOutput {
            index: rec.share.index,
            recipient: who.fingerprint(),
            recipient_name: who.name().to_string(),
            bytes,
        })
        .collect();
    let body = ManifestBody {
        suite,
        vault_id,
        epoch,
        created_unix: req.created_unix,
        threshold,
        n,
        secret_len: secret_len as u32,
        secret_commitment: commitment,
        shards: records
            .iter()
            .zip(&shards)
            .map(|(rec, out)| ShardEntry {
                index: out.index,
                recipient: out.recipient,
                recipient_name: out.recipient_name.clone(),
                blob_hash: shard_hash(&out.bytes),
                share_commitment: rec.commitment(),
            })
            .collect(),
    };
    let manifest = Manifest::sign(&body, req.signer.public(), req.signer.signing_key())?;
    Ok(CreatedVault {
        vault_id,
        threshold,
        n,
        manifest,
        shards,
    })
}

/// Seals `records[i]` to `recipients[i]` for all i, in parallel: to its
/// initial key `initial[i]` where there is one, else to its identity.
pub fn seal_all(
    records: &[ShareRecord],
    suite: Suite,
    recipients: &[PublicIdentity],
    initial: &[Option<EpochPublicKey>],
) -> Result<Vec<Vec<u8>>, CreateError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(records.len())
        .max(1);
    let mut results: Vec<Option<Result<Vec<u8>, SealError>>> =
        (0..records.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let chunk = records.len().div_ceil(workers);
        for ((recs, whos), outs) in records
            .chunks(chunk)
            .zip(recipients.chunks(chunk))
            .zip(results.chunks_mut(chunk))
        {
            scope.spawn(move || {
                for ((rec, who), out) in recs.iter().zip(whos).zip(outs.iter_mut()) {
                    let key = initial
                        .get(usize::from(rec.share.index) - 1)
                        .and_then(Option::as_ref);
                    *out = Some(match key {
                        Some(k) => seal::seal_to_epoch_key(rec, who.fingerprint(), k),
                        None => seal::seal(rec, suite, who),
                    });
                }
            });
        }
    });
    records
        .iter()
        .zip(recipients)
        .zip(results)
        .map(|((rec, who), res)| {
            res.unwrap_or(Err(SealError::Aead))
                .map_err(|source| CreateError::Seal {
                    index: rec.share.index,
                    recipient: who.name().to_string(),
                    source,
                })
        })
        .collect()
}

/// The suite every recipient has keys for: the vault's suite.
fn common_suite(recipients: &[PublicIdentity]) -> Result<Suite, CreateError> {
    let Some(first) = recipients.first() else {
        return Ok(Suite::DEFAULT);
    };
    match recipients.iter().find(|r| r.suite() != first.suite()) {
        None => Ok(first.suite()),
        Some(other) => Err(CreateError::MixedSuites {
            first: first.name().to_string(),
            first_suite: first.suite(),
            other: other.name().to_string(),
            other_suite: other.suite(),
        }),
    }
}

fn check_distinct(recipients: &[PublicIdentity]) -> Result<(), CreateError> {
    let mut seen = BTreeSet::new();
    for (i, r) in recipients.iter().enumerate() {
        if !seen.insert(r.fingerprint()) {
            let first = recipients[..i]
                .iter()
                .find(|p| p.fingerprint() == r.fingerprint())
                .map(|p| p.name().to_string())
                .unwrap_or_default();
            return Err(CreateError::DuplicateRecipient(
                first,
                r.name().to_string(),
                r.fingerprint().short(),
            ));
        }
    }
    Ok(())
}
