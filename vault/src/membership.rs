//! The operator-signed membership removal statement (`PQVN`).
//!
//! A validator's members come from its configuration (and DNS discovery);
//! removing one is the operator's decision, not a peer's
//! (../shared/DESIGN.md: "certificates or the operator's signature
//! decide"). `vault mesh remove` signs a statement listing every removed
//! member id; validators adopt it from the operator or from any peer when
//! its version is higher than the one they hold, as they do a `PQVL`
//! policy. The list is cumulative: the newest statement alone says who is
//! removed, and a newer one without an id lets that member back.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use crate::sign::{HybridSignature, SignError};
use std::collections::BTreeSet;
use thiserror::Error;

/// Wire kind of a signed membership removal.
pub const REMOVAL_KIND: Kind = Kind {
    magic: *b"PQVN",
    name: "pqvault membership removal",
    version: 1,
};

/// Signature domain of membership removals.
pub const REMOVAL_SIG_DOMAIN: &str = "membership-removal";

/// Most member ids one statement removes.
pub const MAX_REMOVED: usize = 1024;

/// Longest member id (a mesh certificate's id is at most 63 bytes).
pub const MAX_ID_LEN: usize = 63;

/// Why a removal statement is refused.
#[derive(Debug, Error)]
pub enum MembershipError {
    /// Malformed bytes.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Signature or signer wrong.
    #[error("membership removal signature: {0}")]
    Signature(String),
    /// A member id that no certificate can carry, or too many ids.
    #[error("membership removal: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing the membership removal: {0}")]
    Signing(#[from] SignError),
}

/// Who the operator removed from the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Version: a higher one replaces a lower one (0: nothing removed).
    pub version: u32,
    /// Removed member ids, sorted and distinct.
    pub removed: BTreeSet<String>,
}

fn check_id(id: &str) -> Result<(), MembershipError> {
    crate::meshca::check_id(id)
        .map_err(|_| MembershipError::Invalid(format!("{id:?} is not a member id")))
}

impl Removal {
    /// True if `id` is removed.
    pub fn removes(&self, id: &str) -> bool {
        self.removed.contains(id)
    }

    /// Signs the statement: `"PQVN" u16 version:u32 count:u16
    /// (id:var≤63)* signer:var ed25519:[64] mldsa:[3309]`.
    pub fn sign(&self, key: &SecretIdentity) -> Result<Vec<u8>, MembershipError> {
        if self.removed.len() > MAX_REMOVED {
            return Err(MembershipError::Invalid(format!(
                "{} ids, at most {MAX_REMOVED}",
                self.removed.len()
            )));
        }
        let mut w = Writer::new(REMOVAL_KIND);
        w.u32(self.version).u16(self.removed.len() as u16);
        for id in &self.removed {
            check_id(id)?;
            w.var_bytes(id.as_bytes());
        }
        w.var_bytes(&key.public().encode());
        let sig = key.signing_key().sign(REMOVAL_SIG_DOMAIN, w.as_slice())?;
        w.bytes(&sig.ed25519).bytes(&sig.mldsa);
        Ok(w.finish())
    }

    /// Decodes a signed statement and verifies it was signed by `trusted`.
    pub fn open(bytes: &[u8], trusted: &Fingerprint) -> Result<Self, MembershipError> {
        let mut r = Reader::open(bytes, REMOVAL_KIND)?;
        let version = r.u32("version")?;
        let count = usize::from(r.u16("removed count")?);
        if count > MAX_REMOVED {
            return Err(FormatError::invalid(
                "removed count",
                format!("{count} ids, at most {MAX_REMOVED}"),
            )
            .into());
        }
        let mut removed = BTreeSet::new();
        for _ in 0..count {
            let id = std::str::from_utf8(r.var_bytes("removed member id", MAX_ID_LEN)?)
                .map_err(|_| FormatError::invalid("removed member id", "not UTF-8"))?;
            check_id(id)?;
            if !removed.insert(id.to_string()) {
                return Err(
                    FormatError::invalid("removed member id", format!("{id} twice")).into(),
                );
            }
        }
        let signer = PublicIdentity::decode(r.var_bytes("signer identity", 16 * 1024)?)
            .map_err(|e| FormatError::invalid("signer identity", e.to_string()))?;
        let signed = r.consumed().to_vec();
        let sig = HybridSignature::read(&mut r)?;
        r.finish()?;
        if signer.fingerprint() != *trusted {
            return Err(MembershipError::Signature(format!(
                "signed by {}, not the mesh's operator {}",
                signer.fingerprint().short(),
                trusted.short()
            )));
        }
        signer
            .verifying_key()
            .verify(REMOVAL_SIG_DOMAIN, &signed, &sig)
            .map_err(|e| MembershipError::Signature(e.to_string()))?;
        Ok(Removal { version, removed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(ids: &[&str]) -> Removal {
        Removal {
            version: 3,
            removed: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn round_trip_and_only_the_operator() {
        let op = SecretIdentity::generate("operator").unwrap();
        let other = SecretIdentity::generate("validator-1").unwrap();
        let r = removal(&["validator-3", "validator-7"]);
        let bytes = r.sign(&op).unwrap();
        assert_eq!(
            Removal::open(&bytes, &op.public().fingerprint()).unwrap(),
            r
        );
        assert!(matches!(
            Removal::open(&bytes, &other.public().fingerprint()),
            Err(MembershipError::Signature(_))
        ));
        // Signed by a validator's own key: refused against the operator.
        let forged = r.sign(&other).unwrap();
        assert!(Removal::open(&forged, &op.public().fingerprint()).is_err());
    }

    #[test]
    fn truncations_and_tampering_are_errors() {
        let op = SecretIdentity::generate("operator").unwrap();
        let fp = op.public().fingerprint();
        let bytes = removal(&["validator-3"]).sign(&op).unwrap();
        for cut in 0..bytes.len() {
            assert!(Removal::open(&bytes[..cut], &fp).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Removal::open(&longer, &fp).is_err());
        let mut bad = bytes.clone();
        bad[9] ^= 1; // version
        assert!(Removal::open(&bad, &fp).is_err());
        let mut bad = bytes.clone();
        bad[16] ^= 1; // a byte of the id
        assert!(Removal::open(&bad, &fp).is_err());
    }

    #[test]
    fn ids_are_bounded_and_checked() {
        let op = SecretIdentity::generate("operator").unwrap();
        assert!(removal(&["Not An Id"]).sign(&op).is_err());
        assert!(removal(&[&"a".repeat(64)]).sign(&op).is_err());
        let many: Vec<String> = (0..=MAX_REMOVED).map(|i| format!("v-{i}")).collect();
        let r = Removal {
            version: 1,
            removed: many.into_iter().collect(),
        };
        assert!(r.sign(&op).is_err());
    }
}
