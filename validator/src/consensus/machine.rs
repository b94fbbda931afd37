//! The epoch log's state machine: per (vault, epoch left) the first
//! committed proposal wins, then the certificate for it. Pure and
//! deterministic: every node applying the same entries holds the same state.

use super::record::{bytes_hex, digest_hex, manifest_digest, vault_hex, Applied, Record, Removal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vault::manifest::VaultId;

/// What the log decided for one (vault, epoch left).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Vault.
    #[serde(with = "vault_hex")]
    pub vault: VaultId,
    /// Epoch being left.
    pub from_epoch: u64,
    /// SHA-256 of the decided manifest.
    #[serde(with = "digest_hex")]
    pub digest: [u8; 32],
    /// The decided manifest of `from_epoch + 1`.
    #[serde(with = "bytes_hex")]
    pub manifest: Vec<u8>,
    /// Its certificate, once committed.
    #[serde(default, with = "opt_bytes_hex")]
    pub certificate: Option<Vec<u8>>,
}

/// Every decision, keyed by (vault, epoch left), and the certified
/// removals ordered, by target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct Machine {
    decided: BTreeMap<(VaultId, u64), Decision>,
    removals: BTreeMap<String, Removal>,
}

/// How the machine is written: the bare list of decisions while no
/// removal was ordered (the version 1 shape, so files written before
/// removals existed still open and are written the same), else an object.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Decisions(Vec<Decision>),
    WithRemovals {
        decisions: Vec<Decision>,
        removals: Vec<Removal>,
    },
}

impl From<Stored> for Machine {
    fn from(s: Stored) -> Self {
        let (decisions, removals) = match s {
            Stored::Decisions(d) => (d, Vec::new()),
            Stored::WithRemovals {
                decisions,
                removals,
            } => (decisions, removals),
        };
        Machine {
            decided: decisions
                .into_iter()
                .map(|d| ((d.vault, d.from_epoch), d))
                .collect(),
            removals: removals
                .into_iter()
                .map(|r| (r.target.clone(), r))
                .collect(),
        }
    }
}

impl From<Machine> for Stored {
    fn from(m: Machine) -> Self {
        let decisions = m.decided.into_values().collect();
        if m.removals.is_empty() {
            Stored::Decisions(decisions)
        } else {
            Stored::WithRemovals {
                decisions,
                removals: m.removals.into_values().collect(),
            }
        }
    }
}

impl Machine {
    /// Applies one committed record.
    pub fn apply(&mut self, record: &Record) -> Applied {
        match record {
            Record::Proposal(p) => {
                if let Some(d) = self.decided.get(&(p.vault, p.from_epoch)) {
                    return Applied::AlreadyDecided { digest: d.digest };
                }
                let digest = manifest_digest(&p.manifest);
                self.decided.insert(
                    (p.vault, p.from_epoch),
                    Decision {
                        vault: p.vault,
                        from_epoch: p.from_epoch,
                        digest,
                        manifest: p.manifest.clone(),
                        certificate: None,
                    },
                );
                Applied::Accepted { digest }
            }
            Record::Certified(c) => {
                let Some(d) = self.decided.get_mut(&(c.vault, c.from_epoch)) else {
                    return Applied::CertificateRejected {
                        reason: "no proposal decided for that vault and epoch".into(),
                    };
                };
                if d.digest != c.manifest_digest {
                    return Applied::CertificateRejected {
                        reason: "certifies another manifest than the decided one".into(),
                    };
                }
                match &d.certificate {
                    None => {
                        d.certificate = Some(c.certificate.clone());
                        Applied::Certified
                    }
                    Some(have) if *have == c.certificate => Applied::Certified,
                    Some(_) => Applied::CertificateRejected {
                        reason: "a different certificate was recorded first".into(),
                    },
                }
            }
            // Kept per target, the newest statement's: the daemon verifies
            // each before adopting it (the log decides nothing alone).
            Record::Removal(r) => {
                let newer = self
                    .removals
                    .get(&r.target)
                    .is_none_or(|have| have.base_version < r.base_version);
                if newer {
                    self.removals.insert(r.target.clone(), r.clone());
                }
                Applied::RemovalOrdered
            }
        }
    }

    /// The certified removal ordered for `target`, if any.
    pub fn removal(&self, target: &str) -> Option<&Removal> {
        self.removals.get(target)
    }

    /// Every certified removal ordered.
    pub fn removals(&self) -> impl Iterator<Item = &Removal> {
        self.removals.values()
    }

    /// The decision for (vault, epoch left), if any.
    pub fn get(&self, vault: &VaultId, from_epoch: u64) -> Option<&Decision> {
        self.decided.get(&(*vault, from_epoch))
    }

    /// Number of decisions held.
    pub fn len(&self) -> usize {
        self.decided.len()
    }

    /// True if nothing was decided yet.
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty()
    }
}

mod opt_bytes_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_some(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::record::{Certified, Proposal};

    fn proposal(epoch: u64, manifest: &[u8]) -> Record {
        Record::Proposal(Proposal {
            vault: VaultId::from_bytes([7; 16]),
            from_epoch: epoch,
            manifest: manifest.to_vec(),
        })
    }

    fn certified(epoch: u64, manifest: &[u8], cert: &[u8]) -> Record {
        Record::Certified(Certified {
            vault: VaultId::from_bytes([7; 16]),
            from_epoch: epoch,
            manifest_digest: manifest_digest(manifest),
            certificate: cert.to_vec(),
        })
    }

    #[test]
    fn first_proposal_wins() {
        let mut m = Machine::default();
        let a = manifest_digest(b"plan A");
        assert_eq!(
            m.apply(&proposal(1, b"plan A")),
            Applied::Accepted { digest: a }
        );
        // A rival plan, and the same plan again, change nothing.
        assert_eq!(
            m.apply(&proposal(1, b"plan B")),
            Applied::AlreadyDecided { digest: a }
        );
        assert_eq!(
            m.apply(&proposal(1, b"plan A")),
            Applied::AlreadyDecided { digest: a }
        );
        let v = VaultId::from_bytes([7; 16]);
        assert_eq!(
            m.get(&v, 1).map(|d| d.manifest.as_slice()),
            Some(&b"plan A"[..])
        );
        // Another epoch is decided on its own.
        assert!(matches!(
            m.apply(&proposal(2, b"plan B")),
            Applied::Accepted { .. }
        ));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn certificates_follow_the_decided_proposal() {
        let mut m = Machine::default();
        assert!(matches!(
            m.apply(&certified(1, b"plan A", b"cert")),
            Applied::CertificateRejected { .. }
        ));
        m.apply(&proposal(1, b"plan A"));
        assert!(matches!(
            m.apply(&certified(1, b"plan B", b"cert")),
            Applied::CertificateRejected { .. }
        ));
        assert_eq!(
            m.apply(&certified(1, b"plan A", b"cert")),
            Applied::Certified
        );
        assert_eq!(
            m.apply(&certified(1, b"plan A", b"cert")),
            Applied::Certified
        );
        assert!(matches!(
            m.apply(&certified(1, b"plan A", b"other")),
            Applied::CertificateRejected { .. }
        ));
        let v = VaultId::from_bytes([7; 16]);
        assert_eq!(
            m.get(&v, 1).and_then(|d| d.certificate.clone()),
            Some(b"cert".to_vec())
        );
    }

    #[test]
    fn survives_serialization() {
        let mut m = Machine::default();
        m.apply(&proposal(1, b"plan A"));
        m.apply(&certified(1, b"plan A", b"cert"));
        m.apply(&proposal(2, b"plan C"));
        let json = serde_json::to_vec(&m).unwrap();
        let back: Machine = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, m);
    }
}

#[cfg(test)]
mod vectors {
    use super::*;

    /// `validator/tests/vectors/epoch-log-v1.json`: record encodings, what
    /// applying them in order answers, and the node id mapping.
    #[test]
    fn checked_in_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/epoch-log-v1.json")).unwrap();
        for (id, n) in v["node_ids"].as_object().unwrap() {
            assert_eq!(Some(super::super::record::node_id(id)), n.as_u64(), "{id}");
        }
        let mut m = Machine::default();
        for case in v["records"].as_array().unwrap() {
            let r: Record = serde_json::from_value(case["record"].clone()).unwrap();
            assert!(r.check().is_ok());
            assert_eq!(
                serde_json::to_value(&r).unwrap(),
                case["record"],
                "canonical"
            );
            let applied = m.apply(&r);
            assert_eq!(serde_json::to_value(&applied).unwrap(), case["applied"]);
        }
        // Unknown fields and record types are refused.
        let mut bad = v["records"][0]["record"].clone();
        bad["proposal"]["extra"] = 1.into();
        assert!(serde_json::from_value::<Record>(bad).is_err());
        let other = serde_json::json!({"membership": {}});
        assert!(serde_json::from_value::<Record>(other).is_err());
    }

    #[test]
    fn removals_are_kept_per_target_and_the_old_shape_still_reads() {
        let mut m = Machine::default();
        let r = |base: u32, cert: &[u8]| {
            Record::Removal(Removal {
                target: "validator-4".into(),
                base_version: base,
                certificate: cert.to_vec(),
            })
        };
        // Without removals the machine is written as before: a bare list.
        assert_eq!(serde_json::to_string(&m).unwrap(), "[]");
        assert_eq!(m.apply(&r(2, b"two")), Applied::RemovalOrdered);
        assert_eq!(m.apply(&r(1, b"one")), Applied::RemovalOrdered);
        assert_eq!(m.removal("validator-4").unwrap().certificate, b"two");
        assert_eq!(m.apply(&r(3, b"three")), Applied::RemovalOrdered);
        assert_eq!(m.removal("validator-4").unwrap().base_version, 3);
        let json = serde_json::to_string(&m).unwrap();
        let back: Machine = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let old: Machine = serde_json::from_str("[]").unwrap();
        assert_eq!(old, Machine::default());
    }
}
