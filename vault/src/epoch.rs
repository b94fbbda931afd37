//! Epoch certificates: how a vault moves from one epoch to the next without
//! its operator, and how anyone can check that it did so legitimately.
//!
//! After a repair or re-sharing, the mesh writes the new epoch's manifest
//! (signed by the validator that led the round) and a quorum of the
//! *previous* epoch's validators sign an [`EpochCertificate`] naming the old
//! and new manifests by digest. Holding the operator-signed genesis manifest
//! is enough to verify the whole chain ([`verify_chain`]): every step must
//! be certified by a [`quorum`] of the previous epoch's recipients (at least
//! t, and a majority), keep the vault id, the secret commitment and the
//! secret length, and advance the epoch by exactly one.
//!
//! Layout (see docs/formats.md): `"PQVE" version:u16 vault_id:[16]
//! from_epoch:u64 prev_digest:[32] next_digest:[32] count:u8` then `count`
//! times `signer_identity:var signature(ed25519:[64] mldsa:[3309])`.

use crate::codec::{FormatError, Kind, Reader, Writer};
use crate::identity::{PublicIdentity, SecretIdentity};
use crate::manifest::{Manifest, ManifestError, VaultId, VerifiedManifest};
use crate::sign::{HybridSignature, SignError};
use std::collections::BTreeSet;
use thiserror::Error;

/// File kind of an epoch certificate.
pub const CERT_KIND: Kind = Kind {
    magic: *b"PQVE",
    name: "pqvault epoch certificate",
    version: 1,
};

/// Signature domain for epoch certificates.
pub const CERT_SIG_DOMAIN: &str = "epoch-certificate";

/// Why a certificate or a chain step is not acceptable.
#[derive(Debug, Error)]
pub enum EpochError {
    /// Malformed encoding.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A manifest in the chain is malformed or its own signature fails.
    #[error("manifest of epoch step {step}: {source}")]
    Manifest {
        /// Position in the chain (1 = first step after genesis).
        step: usize,
        /// Cause.
        source: ManifestError,
    },
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Signing(SignError),
    /// The certificate does not name the manifests it is given with.
    #[error("step {step}: certificate names other manifests (vault, epoch or digest differ)")]
    WrongManifests {
        /// Position in the chain.
        step: usize,
    },
    /// The new manifest changes what may never change.
    #[error("step {step}: new epoch changes the {what}")]
    Changed {
        /// Position in the chain.
        step: usize,
        /// Which invariant.
        what: &'static str,
    },
    /// A signer is not a recipient of the previous epoch.
    #[error("step {step}: signer {signer} is not a validator of epoch {epoch}")]
    NotAValidator {
        /// Position in the chain.
        step: usize,
        /// Signer fingerprint (short).
        signer: String,
        /// Previous epoch.
        epoch: u64,
    },
    /// A signature does not verify.
    #[error("step {step}: signature of {signer} is invalid: {source}")]
    BadSignature {
        /// Position in the chain.
        step: usize,
        /// Signer fingerprint (short).
        signer: String,
        /// Cause.
        source: SignError,
    },
    /// Too few distinct valid signers.
    #[error("step {step}: {got} distinct signer(s), need {needed} (the previous epoch's quorum: its threshold, a majority of its holders, and f + 1 in common with any other quorum)")]
    BelowThreshold {
        /// Position in the chain.
        step: usize,
        /// Signers found.
        got: usize,
        /// Signers needed: max(t, a majority of the previous epoch's n).
        needed: u8,
    },
}

/// The statement validators sign: "epoch `from` (manifest `prev`) became
/// epoch `from + 1` (manifest `next`)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Vault id.
    pub vault_id: VaultId,
    /// The epoch being left.
    pub from_epoch: u64,
    /// Digest of the previous epoch's manifest.
    pub prev_digest: [u8; 32],
    /// Digest of the new epoch's manifest.
    pub next_digest: [u8; 32],
}

impl Transition {
    /// The transition from `prev` to the manifest whose bytes are `next`.
    pub fn between(prev: &VerifiedManifest, next: &Manifest) -> Self {
        Transition {
            vault_id: prev.body().vault_id,
            from_epoch: prev.body().epoch,
            prev_digest: prev.digest(),
            next_digest: next.digest(),
        }
    }

    fn message(&self) -> Vec<u8> {
        let mut w = Writer::raw();
        self.write(&mut w);
        w.finish()
    }

    fn write(&self, w: &mut Writer) {
        w.bytes(self.vault_id.as_bytes())
            .u64(self.from_epoch)
            .bytes(&self.prev_digest)
            .bytes(&self.next_digest);
    }

    /// Checks one validator's signature over this transition (as
    /// [`verify_step`] checks each of a certificate's).
    pub fn verify_signature(
        &self,
        signer: &PublicIdentity,
        sig: &HybridSignature,
    ) -> Result<(), crate::sign::SignError> {
        signer
            .verifying_key()
            .verify(CERT_SIG_DOMAIN, &self.message(), sig)
    }

    /// One validator's signature over this transition.
    pub fn sign(
        &self,
        key: &SecretIdentity,
    ) -> Result<(PublicIdentity, HybridSignature), EpochError> {
        let sig = key
            .signing_key()
            .sign(CERT_SIG_DOMAIN, &self.message())
            .map_err(EpochError::Signing)?;
        Ok((key.public().clone(), sig))
    }
}

/// A transition and the validators' signatures over it.
#[derive(Debug, Clone)]
pub struct EpochCertificate {
    /// What is certified.
    pub transition: Transition,
    /// Signers and their signatures.
    pub signatures: Vec<(PublicIdentity, HybridSignature)>,
}

impl EpochCertificate {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(CERT_KIND);
        self.transition.write(&mut w);
        w.u8(u8::try_from(self.signatures.len()).unwrap_or(u8::MAX));
        for (id, sig) in self.signatures.iter().take(255) {
            w.var_bytes(&id.encode())
                .bytes(&sig.ed25519)
                .bytes(&sig.mldsa);
        }
        w.finish()
    }

    /// Decodes a certificate (signatures are checked by [`verify_step`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, EpochError> {
        let mut r = Reader::open(bytes, CERT_KIND)?;
        let transition = Transition {
            vault_id: VaultId::from_bytes(r.array("vault id")?),
            from_epoch: r.u64("from epoch")?,
            prev_digest: r.array("previous manifest digest")?,
            next_digest: r.array("next manifest digest")?,
        };
        let count = r.u8("signature count")?;
        let mut signatures = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let id = PublicIdentity::decode(r.var_bytes("signer identity", 16 * 1024)?)
                .map_err(|e| FormatError::invalid("signer identity", e.to_string()))?;
            let sig = HybridSignature::read(&mut r)?;
            signatures.push((id, sig));
        }
        r.finish()?;
        Ok(EpochCertificate {
            transition,
            signatures,
        })
    }
}

/// Signatures a step needs from the previous epoch's holders: at least its
/// threshold `t` (so fewer than t holders cannot move the vault) and at
/// least a majority of its `n` (so two different successors of one epoch
/// always share a signer, and each holder signs one successor per epoch:
/// the chain cannot fork even when t ≤ n/2).
pub fn quorum(t: u8, n: u8) -> u8 {
    t.max(n / 2 + 1)
}

/// Verifies one step: `cert` moves `prev` to the manifest `next_bytes`.
/// `step` is only used in error messages. Counts signatures against the
/// crash-only quorum; see [`verify_step_with`] for a vault whose operator
/// tolerates liars.
pub fn verify_step(
    prev: &VerifiedManifest,
    next_bytes: &[u8],
    cert: &EpochCertificate,
    step: usize,
) -> Result<VerifiedManifest, EpochError> {
    verify_step_with(prev, next_bytes, cert, step, 0)
}

/// Like [`verify_step`], requiring the quorum of a policy with up to `f`
/// liars, `max(t, ceil((n + f + 1) / 2))` ([`crate::governance::quorum`]):
/// two certified successors of one epoch then share `f + 1` signers, so
/// `f` equivocating signers cannot fork the chain.
pub fn verify_step_with(
    prev: &VerifiedManifest,
    next_bytes: &[u8],
    cert: &EpochCertificate,
    step: usize,
    f: u8,
) -> Result<VerifiedManifest, EpochError> {
    let next =
        Manifest::decode(next_bytes).map_err(|source| EpochError::Manifest { step, source })?;
    if cert.transition != Transition::between(prev, &next) {
        return Err(EpochError::WrongManifests { step });
    }
    let (p, n) = (prev.body(), next.body());
    let changed = if n.vault_id != p.vault_id {
        Some("vault id")
    } else if n.epoch != p.epoch.saturating_add(1) {
        Some("epoch (must advance by one)")
    } else if n.secret_commitment != p.secret_commitment {
        Some("secret commitment")
    } else if n.secret_len != p.secret_len {
        Some("secret length")
    } else if n.suite != p.suite {
        Some("KEM suite")
    } else {
        None
    };
    if let Some(what) = changed {
        return Err(EpochError::Changed { step, what });
    }
    let message = cert.transition.message();
    let mut signers = BTreeSet::new();
    for (id, sig) in &cert.signatures {
        let fp = id.fingerprint();
        if !p.shards.iter().any(|e| e.recipient == fp) {
            return Err(EpochError::NotAValidator {
                step,
                signer: fp.short(),
                epoch: p.epoch,
            });
        }
        id.verifying_key()
            .verify(CERT_SIG_DOMAIN, &message, sig)
            .map_err(|source| EpochError::BadSignature {
                step,
                signer: fp.short(),
                source,
            })?;
        signers.insert(fp);
    }
    let needed = crate::governance::quorum(p.threshold, p.n, f);
    if signers.len() < usize::from(needed) {
        return Err(EpochError::BelowThreshold {
            step,
            got: signers.len(),
            needed,
        });
    }
    // The new manifest's own signature must hold too (its signer is the
    // round's leader; trust comes from the certificate, not from it).
    next.verify(None)
        .map_err(|source| EpochError::Manifest { step, source })
}

/// Verifies a chain of (manifest bytes, certificate) steps from a trusted
/// genesis manifest; returns the latest epoch's manifest.
pub fn verify_chain(
    genesis: VerifiedManifest,
    steps: &[(Vec<u8>, EpochCertificate)],
) -> Result<VerifiedManifest, EpochError> {
    verify_chain_with(genesis, steps, |_| 0)
}

/// Like [`verify_chain`], with `f_at(from_epoch)` liars tolerated for the
/// step leaving each epoch (the operator's policy, from the epoch it took
/// effect).
pub fn verify_chain_with(
    genesis: VerifiedManifest,
    steps: &[(Vec<u8>, EpochCertificate)],
    f_at: impl Fn(u64) -> u8,
) -> Result<VerifiedManifest, EpochError> {
    let mut current = genesis;
    for (i, (bytes, cert)) in steps.iter().enumerate() {
        let f = f_at(current.body().epoch);
        current = verify_step_with(&current, bytes, cert, i + 1, f)?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{create, NewVault};
    use crate::manifest::ManifestBody;
    use crate::policy::ThresholdSpec;

    struct Setup {
        op: SecretIdentity,
        keys: Vec<SecretIdentity>,
        genesis: Vec<u8>,
    }

    fn setup() -> Setup {
        setup_with(4, 3)
    }

    fn setup_with(n: usize, t: u8) -> Setup {
        let op = SecretIdentity::generate("op").unwrap();
        let keys: Vec<SecretIdentity> = (0..n)
            .map(|i| SecretIdentity::generate(&format!("v{i}")).unwrap())
            .collect();
        let pubs: Vec<_> = keys.iter().map(|k| k.public().clone()).collect();
        let v = create(&NewVault {
            initial_keys: &[],
            secret: Some(b"s"),
            recipients: &pubs,
            threshold: ThresholdSpec::Exact(t),
            signer: &op,
            created_unix: 1,
        })
        .unwrap();
        Setup {
            op,
            keys,
            genesis: v.manifest,
        }
    }

    fn genesis(s: &Setup) -> VerifiedManifest {
        Manifest::decode(&s.genesis)
            .unwrap()
            .verify(Some(&s.op.public().fingerprint()))
            .unwrap()
    }

    /// The next epoch's manifest, as a leader would write it.
    fn next_manifest(
        prev: &ManifestBody,
        leader: &SecretIdentity,
        edit: impl Fn(&mut ManifestBody),
    ) -> Vec<u8> {
        let mut b = prev.clone();
        b.epoch += 1;
        for e in &mut b.shards {
            e.share_commitment[0] ^= 0x55; // a refresh gives new commitments
        }
        edit(&mut b);
        Manifest::sign(&b, leader.public(), leader.signing_key()).unwrap()
    }

    fn certify(
        prev: &VerifiedManifest,
        next: &[u8],
        signers: &[&SecretIdentity],
    ) -> EpochCertificate {
        let t = Transition::between(prev, &Manifest::decode(next).unwrap());
        EpochCertificate {
            signatures: signers.iter().map(|k| t.sign(k).unwrap()).collect(),
            transition: t,
        }
    }

    #[test]
    fn quorum_is_the_threshold_and_a_majority() {
        assert_eq!(quorum(4, 7), 4);
        assert_eq!(quorum(2, 5), 3, "a low threshold still needs a majority");
        assert_eq!(quorum(5, 7), 5);
        assert_eq!(quorum(2, 2), 2);
        // Any two quorums of the same epoch intersect.
        for n in 2..=255u8 {
            for t in 2..=n {
                assert!(2 * u16::from(quorum(t, n)) > u16::from(n));
            }
        }
    }

    #[test]
    fn a_threshold_certified_chain_verifies() {
        let s = setup();
        let g = genesis(&s);
        let m2 = next_manifest(g.body(), &s.keys[0], |_| {});
        let c2 = certify(&g, &m2, &[&s.keys[0], &s.keys[1], &s.keys[3]]);
        let c2 = EpochCertificate::decode(&c2.encode()).unwrap();
        let v2 = verify_step(&g, &m2, &c2, 1).unwrap();
        let m3 = next_manifest(v2.body(), &s.keys[2], |_| {});
        let c3 = certify(&v2, &m3, &[&s.keys[1], &s.keys[2], &s.keys[3]]);
        let latest = verify_chain(genesis(&s), &[(m2, c2), (m3, c3)]).unwrap();
        assert_eq!(latest.body().epoch, 3);
    }

    #[test]
    fn every_forgery_is_refused() {
        let s = setup();
        let g = genesis(&s);
        let m2 = next_manifest(g.body(), &s.keys[0], |_| {});
        let three = [&s.keys[0], &s.keys[1], &s.keys[2]];

        // Below threshold, and duplicates do not count twice.
        let c = certify(&g, &m2, &[&s.keys[0], &s.keys[1]]);
        assert!(matches!(
            verify_step(&g, &m2, &c, 1),
            Err(EpochError::BelowThreshold {
                got: 2,
                needed: 3,
                ..
            })
        ));
        let c = certify(&g, &m2, &[&s.keys[0], &s.keys[1], &s.keys[1]]);
        assert!(matches!(
            verify_step(&g, &m2, &c, 1),
            Err(EpochError::BelowThreshold { got: 2, .. })
        ));

        // An outsider's signature.
        let outsider = SecretIdentity::generate("x").unwrap();
        let c = certify(&g, &m2, &[&s.keys[0], &s.keys[1], &outsider]);
        assert!(matches!(
            verify_step(&g, &m2, &c, 1),
            Err(EpochError::NotAValidator { .. })
        ));

        // A tampered signature.
        let mut c = certify(&g, &m2, &three);
        c.signatures[1].1.mldsa[7] ^= 1;
        assert!(matches!(
            verify_step(&g, &m2, &c, 1),
            Err(EpochError::BadSignature { .. })
        ));

        // The certificate for one manifest presented with another.
        let other = next_manifest(g.body(), &s.keys[0], |b| b.created_unix = 99);
        let c = certify(&g, &m2, &three);
        assert!(matches!(
            verify_step(&g, &other, &c, 1),
            Err(EpochError::WrongManifests { .. })
        ));

        // Invariants: secret commitment, epoch skip.
        for edit in [
            Box::new(|b: &mut ManifestBody| b.secret_commitment[0] ^= 1)
                as Box<dyn Fn(&mut ManifestBody)>,
            Box::new(|b: &mut ManifestBody| b.epoch += 1),
        ] {
            let bad = next_manifest(g.body(), &s.keys[0], edit);
            let c = certify(&g, &bad, &three);
            assert!(matches!(
                verify_step(&g, &bad, &c, 1),
                Err(EpochError::Changed { .. })
            ));
        }
        // Truncated certificate bytes are a format error.
        let enc = certify(&g, &m2, &three).encode();
        assert!(EpochCertificate::decode(&enc[..enc.len() - 1]).is_err());
    }

    /// A 2-of-5 vault: t signers are not enough (quorum is 3 > t), so two
    /// disjoint groups of t holders cannot certify two different successors
    /// of one epoch; a quorum can.
    #[test]
    fn a_low_threshold_vault_needs_a_majority_to_certify() {
        let s = setup_with(5, 2);
        let g = genesis(&s);
        assert_eq!(quorum(2, 5), 3);
        let a = next_manifest(g.body(), &s.keys[0], |_| {});
        let b = next_manifest(g.body(), &s.keys[3], |b| b.created_unix = 7);
        let ca = certify(&g, &a, &[&s.keys[0], &s.keys[1]]);
        let cb = certify(&g, &b, &[&s.keys[3], &s.keys[4]]);
        for (m, c) in [(&a, &ca), (&b, &cb)] {
            assert!(matches!(
                verify_step(&g, m, c, 1),
                Err(EpochError::BelowThreshold {
                    got: 2,
                    needed: 3,
                    ..
                })
            ));
        }
        let ca = certify(&g, &a, &[&s.keys[0], &s.keys[1], &s.keys[2]]);
        assert_eq!(verify_step(&g, &a, &ca, 1).unwrap().body().epoch, 2);
    }

    /// Attack 6, equivocation: in a 4-of-7 vault two quorums of 4 share one
    /// signer; if that one signs two successors, both certify and the chain
    /// forks. Under a policy with f = 1 the quorum is 5, two certificates
    /// would need two common signers, and the fork with one equivocator is
    /// refused. (Before `verify_step_with`, both verified whatever f.)
    #[test]
    fn one_equivocating_signer_cannot_fork_a_vault_with_f_1() {
        let s = setup_with(7, 4);
        let g = genesis(&s);
        let a = next_manifest(g.body(), &s.keys[0], |_| {});
        let b = next_manifest(g.body(), &s.keys[6], |b| b.created_unix = 7);
        let k = &s.keys;
        // validator 3 signs both.
        let ca = certify(&g, &a, &[&k[0], &k[1], &k[2], &k[3]]);
        let cb = certify(&g, &b, &[&k[3], &k[4], &k[5], &k[6]]);
        for (m, c) in [(&a, &ca), (&b, &cb)] {
            assert!(
                verify_step(&g, m, c, 1).is_ok(),
                "f = 0: the fork certifies"
            );
            assert!(matches!(
                verify_step_with(&g, m, c, 1, 1),
                Err(EpochError::BelowThreshold {
                    got: 4,
                    needed: 5,
                    ..
                })
            ));
        }
        // With 5 signers, two successors need two equivocators.
        let ca = certify(&g, &a, &[&k[0], &k[1], &k[2], &k[3], &k[4]]);
        assert!(verify_step_with(&g, &a, &ca, 1, 1).is_ok());
        // The policy applies from the epoch it took effect.
        let cb4 = certify(&g, &b, &[&k[3], &k[4], &k[5], &k[6]]);
        assert!(
            verify_chain_with(genesis(&s), &[(b.clone(), cb4.clone())], |e| u8::from(
                e >= 2
            ))
            .is_ok()
        );
        assert!(verify_chain_with(genesis(&s), &[(b, cb4)], |e| u8::from(e >= 1)).is_err());
    }
}
