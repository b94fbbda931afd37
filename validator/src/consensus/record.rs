//! What the replicated epoch log carries: public records only (signed
//! manifests, epoch certificates), their bounds, and the openraft type
//! configuration built on them.

use serde::{Deserialize, Serialize};
use vault::manifest::VaultId;

/// Largest manifest a proposal may carry (bytes).
pub const MAX_MANIFEST: usize = 512 << 10;
/// Largest epoch certificate a record may carry (bytes).
pub const MAX_CERTIFICATE: usize = 512 << 10;

/// The leader's plan for leaving `from_epoch`: the next epoch's signed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// Vault moving.
    #[serde(with = "vault_hex")]
    pub vault: VaultId,
    /// Epoch being left.
    pub from_epoch: u64,
    /// Encoded signed manifest of `from_epoch + 1` (`PQVM`).
    #[serde(with = "bytes_hex")]
    pub manifest: Vec<u8>,
}

/// The certificate of a decided proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certified {
    /// Vault moving.
    #[serde(with = "vault_hex")]
    pub vault: VaultId,
    /// Epoch being left.
    pub from_epoch: u64,
    /// SHA-256 of the proposal's manifest it certifies.
    #[serde(with = "digest_hex")]
    pub manifest_digest: [u8; 32],
    /// Encoded epoch certificate (`PQVE`).
    #[serde(with = "bytes_hex")]
    pub certificate: Vec<u8>,
}

/// One application entry of the log (format version 1, see docs/protocol.md).
/// A certified removal of a dead member (`PQVZ`, decisions D40), ordered
/// through the log. The log orders; the certificate decides: every node
/// verifies it before adopting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    /// The member removed.
    pub target: String,
    /// The operator statement the votes were made under.
    pub base_version: u32,
    /// The `PQVZ` bytes.
    #[serde(with = "bytes_hex")]
    pub certificate: Vec<u8>,
}

/// A stalled decision withdrawn (decisions D53): refusals of the manifest
/// `manifest_digest` by holders of `from_epoch`, each a `PQVV` vote over
/// `transition::proposal::refusal_digest`. The log orders; every reader
/// verifies a quorum of them before passing the proposal over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    /// Vault.
    #[serde(with = "vault_hex")]
    pub vault: VaultId,
    /// Epoch being left.
    pub from_epoch: u64,
    /// SHA-256 of the withdrawn proposal's manifest.
    #[serde(with = "digest_hex")]
    pub manifest_digest: [u8; 32],
    /// The refusals (`PQVV` each).
    #[serde(with = "vec_bytes_hex")]
    pub refusals: Vec<Vec<u8>>,
}

/// Most refusals one withdrawal carries (a quorum of at most 255 holders
/// is never needed here: manifests of more than 64 holders are rare, and
/// the bound keeps a record small).
pub const MAX_REFUSALS: usize = 64;
/// Largest refusal (a `PQVV` vote: identity and hybrid signature).
pub const MAX_REFUSAL: usize = 16 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// A plan for leaving an epoch.
    Proposal(Proposal),
    /// A certificate for a decided plan.
    Certified(Certified),
    /// A certified removal of a dead member.
    Removal(Removal),
    /// A stalled decision withdrawn on a quorum of refusals.
    Withdrawal(Withdrawal),
}

impl Record {
    /// Checks the size bounds; the reason names the field.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Record::Proposal(p) if p.manifest.is_empty() => Err("proposal: empty manifest".into()),
            Record::Proposal(p) if p.manifest.len() > MAX_MANIFEST => Err(format!(
                "proposal: manifest of {} bytes exceeds {MAX_MANIFEST}",
                p.manifest.len()
            )),
            Record::Certified(c) if c.certificate.is_empty() => {
                Err("certified: empty certificate".into())
            }
            Record::Certified(c) if c.certificate.len() > MAX_CERTIFICATE => Err(format!(
                "certified: certificate of {} bytes exceeds {MAX_CERTIFICATE}",
                c.certificate.len()
            )),
            Record::Removal(r) if r.certificate.is_empty() => {
                Err("removal: empty certificate".into())
            }
            Record::Removal(r) if r.certificate.len() > MAX_CERTIFICATE * 6 => Err(format!(
                "removal: certificate of {} bytes exceeds {}",
                r.certificate.len(),
                MAX_CERTIFICATE * 6
            )),
            Record::Removal(r) if vault::meshca::check_id(&r.target).is_err() => {
                Err("removal: not a member id".into())
            }
            Record::Withdrawal(w) if w.refusals.is_empty() || w.refusals.len() > MAX_REFUSALS => {
                Err(format!(
                    "withdrawal: {} refusals, not 1 to {MAX_REFUSALS}",
                    w.refusals.len()
                ))
            }
            Record::Withdrawal(w) if w.refusals.iter().any(|r| r.len() > MAX_REFUSAL) => {
                Err(format!("withdrawal: a refusal exceeds {MAX_REFUSAL} bytes"))
            }
            _ => Ok(()),
        }
    }
}

/// What applying an entry did (the response of a committed write).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Applied {
    /// Membership or blank entry: nothing for the application.
    Nothing,
    /// The proposal was the first for its (vault, epoch): it is decided.
    Accepted {
        /// Digest of its manifest.
        #[serde(with = "digest_hex")]
        digest: [u8; 32],
    },
    /// Another proposal was decided first; this one changed nothing.
    AlreadyDecided {
        /// Digest of the decided manifest.
        #[serde(with = "digest_hex")]
        digest: [u8; 32],
    },
    /// The certificate was recorded (or the same one already was).
    Certified,
    /// The certificate was not recorded; the reason says why.
    CertificateRejected {
        /// Why.
        reason: String,
    },
    /// A certified removal is in the log (this one, or one under a newer
    /// statement recorded first).
    RemovalOrdered,
    /// A withdrawal is in the log (readers verify it).
    WithdrawalOrdered,
}

/// A validator as a Raft node: its id and peer address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerNode {
    /// Validator id (as in its certificate).
    pub id: String,
    /// Peer API address (`host:port`) as the initializing node knew it: a
    /// hint only; RPCs dial the address the live member list gives for
    /// `id` ([`crate::consensus::network::dial`]).
    pub addr: String,
}

impl std::fmt::Display for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

openraft::declare_raft_types!(
    /// openraft types of the epoch log.
    pub TypeConfig:
        D = Record,
        R = Applied,
        Node = PeerNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// Raft node id of a validator: the first 8 bytes (big-endian) of
/// SHA-256(validator id). Stable across restarts and membership changes;
/// [`crate::consensus::Consensus::start`] refuses a membership in which
/// two ids collide (probability about m²/2⁶⁵ for m members).
pub fn node_id(validator: &str) -> u64 {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, validator.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b)
}

/// SHA-256 of a manifest's bytes (how certificates name it).
pub fn manifest_digest(manifest: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, manifest);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Serde for byte strings as lowercase hex.
pub mod bytes_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    /// Deserializes from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// Serde for lists of byte strings as lists of lowercase hex.
pub mod vec_bytes_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as a list of hex strings.
    pub fn serialize<S: Serializer>(b: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(b.iter().map(hex::encode))
    }

    /// Deserializes from a list of hex strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Serde for 32-byte digests as lowercase hex.
pub mod digest_hex {
    use serde::{Deserializer, Serializer};

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        super::bytes_hex::serialize(b, s)
    }

    /// Deserializes from 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        super::bytes_hex::deserialize(d)?
            .try_into()
            .map_err(|_| serde::de::Error::custom("digest must be 32 bytes"))
    }
}

/// Serde for vault ids as 32 hex digits.
pub mod vault_hex {
    use serde::{Deserializer, Serializer};
    use vault::manifest::VaultId;

    /// Serializes as hex.
    pub fn serialize<S: Serializer>(v: &VaultId, s: S) -> Result<S::Ok, S::Error> {
        super::bytes_hex::serialize(v.as_bytes(), s)
    }

    /// Deserializes from 32 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VaultId, D::Error> {
        let b: [u8; 16] = super::bytes_hex::deserialize(d)?
            .try_into()
            .map_err(|_| serde::de::Error::custom("vault id must be 16 bytes"))?;
        Ok(VaultId::from_bytes(b))
    }
}
