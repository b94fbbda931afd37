//! Signed, quantized spiking-network artifacts (issue 4, format half).
//!
//! An artifact is a safetensors payload (int8 or packed int4 weights with
//! f32 per-channel scales) described by a signed manifest (`PQVA`): name,
//! semantic version, creation and expiry times, payload length and digest,
//! fixed-size chunk hashes, and per-layer quantization and LIF neuron
//! metadata with an optional golden check. This module owns the public API
//! the validator builds on; submodules own one concept each:
//!
//! - [`safetensors`]: strict header parser for untrusted payloads.
//! - [`quant`]: quantization metadata, `meta.toml`, consistency checks.
//! - [`lif`]: the integer-only reference LIF pass (golden check).
//! - [`manifest`]: the `PQVD` draft and `PQVA` signed manifest encodings.
//! - [`policy`]: the trust policy (publishers and their model names).
//! - [`payload`]: packing a payload and checking one against a manifest.
//! - [`testnet`]: deterministic test networks (test data only).
//!
//! The byte layouts, the arithmetic and the files are in docs/artifacts.md.

pub mod abandon;
pub mod derive;
pub mod lif;
pub mod manifest;
pub mod payload;
pub mod policy;
pub mod quant;
pub mod safetensors;
#[doc(hidden)]
pub mod testnet;

pub use manifest::{ArtifactBody, SignedArtifact, VerifiedArtifact};
pub use payload::{check_payload, check_payload_body, pack};
pub use policy::TrustPolicy;

use crate::codec::FormatError;
use crate::identity::{Fingerprint, IdentityError};
use crate::sign::SignError;
use thiserror::Error;

/// Largest encoded manifest (signed or draft) accepted.
pub const MAX_MANIFEST_LEN: usize = 8 << 20;
/// Most chunks in one artifact.
pub const MAX_CHUNKS: usize = 65_536;
/// Default chunk size (1 MiB).
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Smallest chunk size (64 KiB).
pub const MIN_CHUNK_SIZE: u32 = 64 << 10;
/// Largest chunk size (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Largest single tensor a payload check loads into memory (256 MiB).
pub const MAX_TENSOR_BYTES: u64 = 256 << 20;

/// Why an artifact is refused. [`ArtifactError::reason`] gives the metric label.
#[derive(Debug, Error)]
pub enum ArtifactError {
    /// Undecodable manifest or draft.
    #[error("artifact manifest: {0}")]
    Format(#[from] FormatError),
    /// The embedded publisher identity is malformed.
    #[error("artifact publisher identity: {0}")]
    Publisher(#[from] IdentityError),
    /// The payload's safetensors header is malformed.
    #[error("artifact payload: {0}")]
    Safetensors(#[from] safetensors::SafetensorsError),
    /// The payload could not be read.
    #[error("cannot read artifact payload: {0}")]
    Io(String),
    /// The hybrid signature does not verify.
    #[error("artifact signature is invalid: {0}")]
    Signature(SignError),
    /// Signing failed.
    #[error("cannot sign artifact: {0}")]
    Signing(SignError),
    /// The publisher is not in the trust policy.
    #[error("artifact publisher {0} is not in the trust policy")]
    UnknownPublisher(Fingerprint),
    /// The publisher may not publish this model name.
    #[error("publisher {publisher:?} ({fingerprint}) may not publish model {name:?}")]
    NotDelegated {
        /// Model name.
        name: String,
        /// Publisher name from the policy.
        publisher: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The trust policy file is invalid.
    #[error("trust policy: {0}")]
    Policy(String),
    /// The manifest expired.
    #[error("artifact {name} {version} expired at {expires} (now {now})")]
    Expired {
        /// Model name.
        name: String,
        /// Version.
        version: semver::Version,
        /// Expiry (Unix seconds).
        expires: u64,
        /// Time of the check.
        now: u64,
    },
    /// The version is older than the one held (or equal with other content).
    #[error("artifact {name}: version {offered} refused, {held} is already held ({why})")]
    Rollback {
        /// Model name.
        name: String,
        /// Offered version.
        offered: semver::Version,
        /// Held version.
        held: semver::Version,
        /// `older` or `same version, different content`.
        why: &'static str,
    },
    /// Payload length or SHA-256 differs from the manifest.
    #[error("artifact payload {what} mismatch: manifest says {expected}, payload has {found}")]
    Digest {
        /// `length` or `digest`.
        what: &'static str,
        /// From the manifest.
        expected: String,
        /// From the payload.
        found: String,
    },
    /// One chunk's hash differs from the manifest.
    #[error("artifact payload chunk {index} (bytes {start}..{end}) does not match its hash")]
    Chunk {
        /// Chunk index.
        index: usize,
        /// First byte.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
    /// Quantization metadata is inconsistent (with itself or the tensors).
    #[error("artifact metadata: {0}")]
    Metadata(#[from] quant::MetadataError),
    /// The golden check's outputs differ.
    #[error("golden check failed: output {output} spiked {found} times, expected {expected} (counts {counts:?})")]
    Golden {
        /// First differing output neuron.
        output: usize,
        /// Expected count.
        expected: u32,
        /// Computed count.
        found: u32,
        /// All computed counts.
        counts: Vec<u32>,
    },
}

impl ArtifactError {
    /// The metric reason label: `signature`, `digest`, `chunk`, `policy`,
    /// `rollback`, `expired`, `metadata`, `golden` or `format`.
    pub fn reason(&self) -> &'static str {
        match self {
            ArtifactError::Format(_)
            | ArtifactError::Publisher(_)
            | ArtifactError::Safetensors(_)
            | ArtifactError::Io(_) => "format",
            ArtifactError::Signature(_) | ArtifactError::Signing(_) => "signature",
            ArtifactError::UnknownPublisher(_)
            | ArtifactError::NotDelegated { .. }
            | ArtifactError::Policy(_) => "policy",
            ArtifactError::Expired { .. } => "expired",
            ArtifactError::Rollback { .. } => "rollback",
            ArtifactError::Digest { .. } => "digest",
            ArtifactError::Chunk { .. } => "chunk",
            ArtifactError::Metadata(_) => "metadata",
            ArtifactError::Golden { .. } => "golden",
        }
    }
}

/// Refuses `new` if it is older than the `held` version of the same name.
///
/// An *equal* version is refused too: with only a version number this
/// function cannot tell the same artifact from different content under the
/// same version. Callers that hold the artifact's digest use
/// [`check_not_rollback_held`], which accepts the identical artifact.
pub fn check_not_rollback(
    new: &VerifiedArtifact,
    held: Option<&semver::Version>,
) -> Result<(), ArtifactError> {
    let Some(held) = held else {
        return Ok(());
    };
    let offered = new.version();
    let why = if offered < held {
        "older"
    } else if offered == held {
        "same version"
    } else {
        return Ok(());
    };
    Err(ArtifactError::Rollback {
        name: new.name().to_string(),
        offered: offered.clone(),
        held: held.clone(),
        why,
    })
}

/// Like [`check_not_rollback`], but given the held manifest digest too: the
/// very same artifact (equal version, equal digest) is accepted, an equal
/// version with a different digest is refused.
pub fn check_not_rollback_held(
    new: &VerifiedArtifact,
    held: Option<(&semver::Version, &[u8; 32])>,
) -> Result<(), ArtifactError> {
    match held {
        Some((v, d)) if v == new.version() => {
            if crate::artifact::manifest::ct_eq(d, &new.manifest_digest()) {
                Ok(())
            } else {
                Err(ArtifactError::Rollback {
                    name: new.name().to_string(),
                    offered: new.version().clone(),
                    held: v.clone(),
                    why: "same version, different content",
                })
            }
        }
        other => check_not_rollback(new, other.map(|(v, _)| v)),
    }
}
