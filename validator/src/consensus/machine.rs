//! The epoch log's state machine: per (vault, epoch left) every committed
//! proposal in commit order (the first, then up to [`MAX_RIVALS`] rivals),
//! each with the certificates committed for it. Pure and deterministic:
//! every node applying the same entries holds the same state.
//!
//! The machine orders; it cannot judge, as it holds no chain. Readers do
//! (`super::valid`, decisions D52): the decision is the first proposal, in
//! commit order, that is a successor of the reader's epoch, with the first
//! of its certificates that verifies. So an insider who writes junk first,
//! or a junk certificate, holds no epoch.

use super::record::{
    bytes_hex, digest_hex, manifest_digest, vault_hex, vec_bytes_hex, Applied, Record, Removal,
    Withdrawal,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vault::manifest::VaultId;

/// Proposals kept per (vault, epoch left) after the first: enough for a few
/// honest leaders behind an insider's junk, bounded against a flood.
pub const MAX_RIVALS: usize = 8;
/// Certificates kept per proposal (the first and later ones): a junk
/// certificate committed first cannot keep the real one out.
pub const MAX_CERTIFICATES: usize = 4;
/// Withdrawals kept per (vault, epoch left): one per proposal kept, and
/// as many again for junk ones.
pub const MAX_WITHDRAWALS: usize = 2 * (1 + MAX_RIVALS);

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
    /// Other certificates committed for it after the first (a reader uses
    /// the first that verifies); absent while there are none, so files
    /// without them read and are written as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "vec_bytes_hex")]
    pub later_certificates: Vec<Vec<u8>>,
}

impl Decision {
    /// Every certificate committed for this proposal, in commit order.
    pub fn certificates(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.certificate.iter().chain(&self.later_certificates)
    }

    /// Records `cert` unless it is held already; false when full.
    fn add_certificate(&mut self, cert: &[u8]) -> bool {
        if self.certificates().any(|c| c == cert) {
            return true;
        }
        if self.certificate.is_none() {
            self.certificate = Some(cert.to_vec());
            return true;
        }
        if self.certificates().count() >= MAX_CERTIFICATES {
            return false;
        }
        self.later_certificates.push(cert.to_vec());
        true
    }
}

/// Every first proposal, keyed by (vault, epoch left), the rivals
/// committed after it, and the certified removals ordered, by target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct Machine {
    decided: BTreeMap<(VaultId, u64), Decision>,
    rivals: BTreeMap<(VaultId, u64), Vec<Decision>>,
    withdrawals: BTreeMap<(VaultId, u64), Vec<Withdrawal>>,
    removals: BTreeMap<String, Removal>,
}

/// How the machine is written: the bare list of first proposals while no
/// removal or rival was committed (the version 1 shape, so files written
/// before either existed still open and are written the same), else an
/// object.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Decisions(Vec<Decision>),
    WithRemovals {
        decisions: Vec<Decision>,
        #[serde(default)]
        removals: Vec<Removal>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rivals: Vec<Decision>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        withdrawals: Vec<Withdrawal>,
    },
}

impl From<Stored> for Machine {
    fn from(s: Stored) -> Self {
        let (decisions, removals, rivals, withdrawals) = match s {
            Stored::Decisions(d) => (d, Vec::new(), Vec::new(), Vec::new()),
            Stored::WithRemovals {
                decisions,
                removals,
                rivals,
                withdrawals,
            } => (decisions, removals, rivals, withdrawals),
        };
        let mut by_key: BTreeMap<(VaultId, u64), Vec<Decision>> = BTreeMap::new();
        for r in rivals {
            by_key.entry((r.vault, r.from_epoch)).or_default().push(r);
        }
        let mut withdrawn: BTreeMap<(VaultId, u64), Vec<Withdrawal>> = BTreeMap::new();
        for w in withdrawals {
            withdrawn
                .entry((w.vault, w.from_epoch))
                .or_default()
                .push(w);
        }
        Machine {
            decided: decisions
                .into_iter()
                .map(|d| ((d.vault, d.from_epoch), d))
                .collect(),
            rivals: by_key,
            withdrawals: withdrawn,
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
        if m.removals.is_empty() && m.rivals.is_empty() && m.withdrawals.is_empty() {
            Stored::Decisions(decisions)
        } else {
            Stored::WithRemovals {
                decisions,
                removals: m.removals.into_values().collect(),
                rivals: m.rivals.into_values().flatten().collect(),
                withdrawals: m.withdrawals.into_values().flatten().collect(),
            }
        }
    }
}

impl Machine {
    /// Applies one committed record.
    pub fn apply(&mut self, record: &Record) -> Applied {
        match record {
            Record::Proposal(p) => {
                let key = (p.vault, p.from_epoch);
                let digest = manifest_digest(&p.manifest);
                let candidate = Decision {
                    vault: p.vault,
                    from_epoch: p.from_epoch,
                    digest,
                    manifest: p.manifest.clone(),
                    certificate: None,
                    later_certificates: Vec::new(),
                };
                let Some(first) = self.decided.get(&key) else {
                    self.decided.insert(key, candidate);
                    return Applied::Accepted { digest };
                };
                let first = first.digest;
                // Kept in commit order for the readers, who judge which
                // one is a successor (the first may be junk).
                let rivals = self.rivals.entry(key).or_default();
                if digest != first
                    && rivals.len() < MAX_RIVALS
                    && rivals.iter().all(|r| r.digest != digest)
                {
                    rivals.push(candidate);
                }
                Applied::AlreadyDecided { digest: first }
            }
            Record::Certified(c) => {
                let key = (c.vault, c.from_epoch);
                if !self.decided.contains_key(&key) {
                    return Applied::CertificateRejected {
                        reason: "no proposal decided for that vault and epoch".into(),
                    };
                }
                let first = self
                    .decided
                    .get_mut(&key)
                    .filter(|d| d.digest == c.manifest_digest);
                let held = match first {
                    Some(d) => Some(d),
                    None => self
                        .rivals
                        .get_mut(&key)
                        .and_then(|r| r.iter_mut().find(|d| d.digest == c.manifest_digest)),
                };
                let Some(d) = held else {
                    return Applied::CertificateRejected {
                        reason: "certifies a manifest the log holds no proposal of".into(),
                    };
                };
                if d.add_certificate(&c.certificate) {
                    Applied::Certified
                } else {
                    Applied::CertificateRejected {
                        reason: format!(
                            "{MAX_CERTIFICATES} certificates are held for that manifest"
                        ),
                    }
                }
            }
            // Kept in commit order for the readers, who verify them.
            Record::Withdrawal(w) => {
                let held = self.withdrawals.entry((w.vault, w.from_epoch)).or_default();
                if held.len() < MAX_WITHDRAWALS && !held.contains(w) {
                    held.push(w.clone());
                }
                Applied::WithdrawalOrdered
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

    /// The first proposal committed for (vault, epoch left), if any.
    pub fn get(&self, vault: &VaultId, from_epoch: u64) -> Option<&Decision> {
        self.decided.get(&(*vault, from_epoch))
    }

    /// Every withdrawal committed for (vault, epoch left), in commit order.
    pub fn withdrawals(&self, vault: &VaultId, from_epoch: u64) -> Vec<&Withdrawal> {
        self.withdrawals
            .get(&(*vault, from_epoch))
            .into_iter()
            .flatten()
            .collect()
    }

    /// Every proposal committed for (vault, epoch left), in commit order:
    /// the first, then its rivals.
    pub fn candidates(&self, vault: &VaultId, from_epoch: u64) -> Vec<&Decision> {
        let key = (*vault, from_epoch);
        self.decided
            .get(&key)
            .into_iter()
            .chain(self.rivals.get(&key).into_iter().flatten())
            .collect()
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
        // A later certificate is kept too (the first may be junk: readers
        // use the first that verifies), up to a bound.
        assert_eq!(
            m.apply(&certified(1, b"plan A", b"other")),
            Applied::Certified
        );
        assert_eq!(
            m.apply(&certified(1, b"plan A", b"third")),
            Applied::Certified
        );
        assert_eq!(
            m.apply(&certified(1, b"plan A", b"fourth")),
            Applied::Certified
        );
        assert!(matches!(
            m.apply(&certified(1, b"plan A", b"fifth")),
            Applied::CertificateRejected { .. }
        ));
        let v = VaultId::from_bytes([7; 16]);
        let d = m.get(&v, 1).unwrap();
        assert_eq!(d.certificate.as_deref(), Some(&b"cert"[..]));
        let all: Vec<&[u8]> = d.certificates().map(|c| c.as_slice()).collect();
        assert_eq!(all, [&b"cert"[..], b"other", b"third", b"fourth"]);
    }

    #[test]
    fn rivals_are_kept_in_commit_order_bounded_and_certifiable() {
        let mut m = Machine::default();
        let v = VaultId::from_bytes([7; 16]);
        m.apply(&proposal(1, b"junk"));
        let a = manifest_digest(b"junk");
        for k in 0..20u8 {
            // Each answered with the first, as before.
            assert_eq!(
                m.apply(&proposal(1, &[b'r', k])),
                Applied::AlreadyDecided { digest: a }
            );
        }
        // The same rival again and the first again add nothing.
        m.apply(&proposal(1, &[b'r', 0]));
        m.apply(&proposal(1, b"junk"));
        let c = m.candidates(&v, 1);
        assert_eq!(c.len(), 1 + MAX_RIVALS);
        assert_eq!(c[0].manifest, b"junk");
        assert_eq!(c[1].manifest, [b'r', 0]);
        assert_eq!(c[MAX_RIVALS].manifest, [b'r', MAX_RIVALS as u8 - 1]);
        // A rival's certificate is recorded on the rival.
        assert_eq!(
            m.apply(&certified(1, &[b'r', 1], b"cert")),
            Applied::Certified
        );
        assert_eq!(
            m.candidates(&v, 1)[2].certificate.as_deref(),
            Some(&b"cert"[..])
        );
        assert!(m.candidates(&v, 1)[0].certificate.is_none());
        // Withdrawals are kept in order, once each, bounded; readers
        // verify them.
        let w = |k: u8| {
            Record::Withdrawal(Withdrawal {
                vault: v,
                from_epoch: 1,
                manifest_digest: a,
                refusals: vec![vec![k]],
            })
        };
        for k in 0..40u8 {
            assert_eq!(m.apply(&w(k)), Applied::WithdrawalOrdered);
        }
        assert_eq!(m.apply(&w(0)), Applied::WithdrawalOrdered);
        assert_eq!(m.withdrawals(&v, 1).len(), MAX_WITHDRAWALS);
        assert_eq!(m.withdrawals(&v, 1)[1].refusals, vec![vec![1]]);
        // And all of it survives the files.
        let json = serde_json::to_vec(&m).unwrap();
        let back: Machine = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, m);
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
