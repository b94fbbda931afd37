//! Which of the epoch log's proposals and certificates a reader may act on
//! (decisions D52).
//!
//! The log orders records; it holds no chain and verifies nothing, and any
//! member can write to it. So every reader that holds the epoch being left
//! judges what the log holds, with pure functions of that epoch's verified
//! manifest: the decision is the first proposal, in commit order, that is
//! a successor of it written by one of its holders ([`successor`]), and its
//! certificate the first one committed for it that verifies
//! ([`certificate`]). Honest readers of one epoch hold the same manifest,
//! so they judge alike. Junk written first (bytes that are no manifest, an
//! old manifest, one signed by a spare) then holds no epoch; a well-formed
//! successor written first by a lying holder still can (the superseding
//! record of D40 is what would free it).

use super::machine::Decision;
use super::record::Withdrawal;
use crate::transition::authorize::refused_by_quorum;
use crate::transition::Vote;
use thiserror::Error;
use vault::epoch::{verify_step_with, EpochCertificate};
use vault::manifest::{Manifest, VerifiedManifest};

/// Why a proposal in the log is no successor of the epoch being left.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Invalid {
    /// The bytes are no manifest.
    #[error("not a manifest: {0}")]
    Decode(String),
    /// Its own signature does not verify.
    #[error("its signature does not verify: {0}")]
    Signature(String),
    /// Another vault's, or not the next epoch.
    #[error("epoch {got} of another vault or not the next epoch (want epoch {want})")]
    NotNext {
        /// The epoch it claims.
        got: u64,
        /// The next epoch.
        want: u64,
    },
    /// It changes what a new epoch keeps.
    #[error("it changes the {0}")]
    Changed(&'static str),
    /// Its author holds no share of the epoch being left: a spare, or any
    /// other member, cannot write the next epoch.
    #[error("its author {author} holds no share of epoch {epoch}")]
    Author {
        /// The author's fingerprint (short).
        author: String,
        /// The epoch being left.
        epoch: u64,
    },
}

/// Checks that `bytes` is a manifest of the epoch after `prev`, for the
/// same vault, keeping its suite and secret, self-signed by a holder of
/// `prev` (healing's leaders sign the successors they write).
pub fn successor(prev: &VerifiedManifest, bytes: &[u8]) -> Result<(), Invalid> {
    let m = Manifest::decode(bytes).map_err(|e| Invalid::Decode(e.to_string()))?;
    let author = m.signer().fingerprint();
    let next = m
        .verify(None)
        .map_err(|e| Invalid::Signature(e.to_string()))?;
    let (p, n) = (prev.body(), next.body());
    if n.vault_id != p.vault_id || n.epoch != p.epoch.saturating_add(1) {
        return Err(Invalid::NotNext {
            got: n.epoch,
            want: p.epoch.saturating_add(1),
        });
    }
    if n.suite != p.suite {
        return Err(Invalid::Changed("KEM suite"));
    }
    if (n.secret_len, n.secret_commitment) != (p.secret_len, p.secret_commitment) {
        return Err(Invalid::Changed("secret"));
    }
    if p.shards.iter().all(|e| e.recipient != author) {
        return Err(Invalid::Author {
            author: author.short(),
            epoch: p.epoch,
        });
    }
    Ok(())
}

/// True if `cert` certifies the step from `prev` to `manifest` with the
/// quorum of a policy tolerating `f` liars (`vault::epoch::verify_step_with`).
pub fn certificate(prev: &VerifiedManifest, manifest: &[u8], cert: &[u8], f: u8) -> bool {
    EpochCertificate::decode(cert).is_ok_and(|c| verify_step_with(prev, manifest, &c, 0, f).is_ok())
}

/// True if one of `withdrawals` withdraws the successor `digest` of
/// `prev` with refusals of a quorum of its holders (D53).
pub fn withdrawn(
    prev: &VerifiedManifest,
    f: u8,
    digest: &[u8; 32],
    withdrawals: &[Withdrawal],
) -> bool {
    let p = prev.body();
    let quorum = usize::from(vault::governance::quorum(p.threshold, p.n, f));
    withdrawals
        .iter()
        .filter(|w| {
            w.manifest_digest == *digest && w.vault == p.vault_id && w.from_epoch == p.epoch
        })
        .any(|w| {
            let votes: Option<Vec<Vote>> =
                w.refusals.iter().map(|r| Vote::decode(r).ok()).collect();
            votes.is_some_and(|v| refused_by_quorum(p, &v, digest, quorum))
        })
}

/// The decision among `candidates` (a key's proposals in commit order) as
/// a holder of `prev` judges it: the first that is a [`successor`] and not
/// [`withdrawn`], its `certificate` the first of its certificates that
/// verifies ([`certificate`]) or `None`, and no later certificates.
pub fn decision(
    prev: &VerifiedManifest,
    f: u8,
    candidates: Vec<Decision>,
    withdrawals: &[Withdrawal],
) -> Option<Decision> {
    for mut d in candidates {
        if let Err(e) = successor(prev, &d.manifest) {
            tracing::debug!(from_epoch = d.from_epoch, digest = %hex::encode(&d.digest[..8]), "epoch log: passing over a proposal that is no successor: {e}");
            continue;
        }
        if withdrawn(prev, f, &d.digest, withdrawals) {
            continue;
        }
        let found = d
            .certificates()
            .find(|c| certificate(prev, &d.manifest, c, f))
            .cloned();
        d.certificate = found;
        d.later_certificates.clear();
        return Some(d);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::epoch::Transition;
    use vault::identity::{Fingerprint, SecretIdentity};
    use vault::manifest::ManifestBody;

    /// Holders 0..3 of epoch 1 and a spare (4); the manifest of epoch 1
    /// and its successor body.
    fn world() -> (Vec<SecretIdentity>, VerifiedManifest, ManifestBody) {
        let ids: Vec<SecretIdentity> = (0..5)
            .map(|i| SecretIdentity::generate(&format!("validator-{}", i + 1)).unwrap())
            .collect();
        let fps: Vec<Fingerprint> = ids.iter().map(|k| k.public().fingerprint()).collect();
        let body = crate::transition::test_body(1, &[0, 1, 2, 3], 3, |i| fps[i]);
        let prev = Manifest::decode(
            &Manifest::sign(&body, ids[0].public(), ids[0].signing_key()).unwrap(),
        )
        .unwrap()
        .verify(None)
        .unwrap();
        let mut next = body;
        next.epoch = 2;
        (ids, prev, next)
    }

    fn signed(by: &SecretIdentity, b: &ManifestBody) -> Vec<u8> {
        Manifest::sign(b, by.public(), by.signing_key()).unwrap()
    }

    #[test]
    fn a_successor_written_by_a_holder_is_one() {
        let (ids, prev, next) = world();
        assert_eq!(successor(&prev, &signed(&ids[2], &next)), Ok(()));
    }

    #[test]
    fn junk_old_epochs_and_other_authors_are_not() {
        let (ids, prev, next) = world();
        assert!(matches!(
            successor(&prev, b"PQVM not a manifest"),
            Err(Invalid::Decode(_))
        ));
        // The epoch being left, and one two epochs on.
        let mut same = next.clone();
        same.epoch = 1;
        assert!(matches!(
            successor(&prev, &signed(&ids[0], &same)),
            Err(Invalid::NotNext { got: 1, want: 2 })
        ));
        let mut far = next.clone();
        far.epoch = 3;
        assert!(matches!(
            successor(&prev, &signed(&ids[0], &far)),
            Err(Invalid::NotNext { .. })
        ));
        // Another vault.
        let mut other = next.clone();
        other.vault_id = vault::manifest::VaultId::from_bytes([1; 16]);
        assert!(matches!(
            successor(&prev, &signed(&ids[0], &other)),
            Err(Invalid::NotNext { .. })
        ));
        // Another secret.
        let mut secret = next.clone();
        secret.secret_commitment = [1; 32];
        assert_eq!(
            successor(&prev, &signed(&ids[0], &secret)),
            Err(Invalid::Changed("secret"))
        );
        // Written by the spare.
        assert!(matches!(
            successor(&prev, &signed(&ids[4], &next)),
            Err(Invalid::Author { epoch: 1, .. })
        ));
        // A holder's manifest with its signature broken.
        let mut bytes = signed(&ids[0], &next);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(successor(&prev, &bytes).is_err());
    }

    #[test]
    fn the_decision_is_the_first_successor_with_its_first_valid_certificate() {
        let (ids, prev, next) = world();
        let cand = |m: Vec<u8>, certs: Vec<Vec<u8>>| {
            let mut certs = certs.into_iter();
            Decision {
                vault: next.vault_id,
                from_epoch: 1,
                digest: crate::consensus::manifest_digest(&m),
                manifest: m,
                certificate: certs.next(),
                later_certificates: certs.collect(),
            }
        };
        let real = signed(&ids[1], &next);
        let t = Transition::between(&prev, &Manifest::decode(&real).unwrap());
        let good = EpochCertificate {
            transition: t.clone(),
            signatures: [0, 1, 2]
                .iter()
                .map(|&i| t.sign(&ids[i]).unwrap())
                .collect(),
        }
        .encode();
        let mut by_spare = next.clone();
        by_spare.created_unix = 9;
        let candidates = vec![
            cand(b"junk".to_vec(), vec![]),
            cand(signed(&ids[4], &by_spare), vec![good.clone()]),
            cand(real.clone(), vec![b"PQVE junk".to_vec(), good.clone()]),
            cand(signed(&ids[2], &by_spare), vec![]),
        ];
        let d = decision(&prev, 0, candidates.clone(), &[]).unwrap();
        assert_eq!(d.manifest, real);
        assert_eq!(d.certificate, Some(good));
        assert!(d.later_certificates.is_empty());
        // Without a valid certificate it is decided, not certified.
        let mut uncertified = candidates;
        uncertified[2].later_certificates.clear();
        let d = decision(&prev, 0, uncertified, &[]).unwrap();
        assert_eq!((d.manifest, d.certificate), (real, None));
        // Junk alone decides nothing.
        assert!(decision(&prev, 0, vec![cand(b"junk".to_vec(), vec![])], &[]).is_none());
    }

    #[test]
    fn a_quorum_of_holders_refusals_withdraws_a_successor() {
        use crate::transition::proposal::refusal_digest;
        let (ids, prev, next) = world();
        let stalled = signed(&ids[1], &next);
        let digest = crate::consensus::manifest_digest(&stalled);
        let refusal = refusal_digest(&next.vault_id, 1, &digest);
        let by = |who: &[usize], what: &[u8; 32]| Withdrawal {
            vault: next.vault_id,
            from_epoch: 1,
            manifest_digest: digest,
            refusals: who
                .iter()
                .map(|&i| Vote::sign_refusal(what, &ids[i]).unwrap().encode())
                .collect(),
        };
        let cand = Decision {
            vault: next.vault_id,
            from_epoch: 1,
            digest,
            manifest: stalled,
            certificate: None,
            later_certificates: Vec::new(),
        };
        // 3 of 4 holders: the quorum. Two, a spare's third, or refusals
        // of something else withdraw nothing.
        assert!(withdrawn(&prev, 0, &digest, &[by(&[0, 2, 3], &refusal)]));
        assert!(!withdrawn(&prev, 0, &digest, &[by(&[0, 2], &refusal)]));
        assert!(!withdrawn(&prev, 0, &digest, &[by(&[0, 2, 4], &refusal)]));
        assert!(!withdrawn(&prev, 0, &digest, &[by(&[0, 2, 3], &[9; 32])]));
        let mut garbled = by(&[0, 2, 3], &refusal);
        garbled.refusals[0] = b"PQVV junk".to_vec();
        assert!(!withdrawn(&prev, 0, &digest, &[garbled]));
        // Another manifest's withdrawal does not touch this one.
        let mut other = by(&[0, 2, 3], &refusal);
        other.manifest_digest = [1; 32];
        assert!(!withdrawn(&prev, 0, &digest, &[other]));
        // Withdrawn, it is passed over like junk.
        assert!(decision(&prev, 0, vec![cand.clone()], &[by(&[0, 2, 3], &refusal)]).is_none());
        assert!(decision(&prev, 0, vec![cand], &[by(&[0, 2], &refusal)]).is_some());
    }

    #[test]
    fn only_a_quorum_of_holders_certifies() {
        let (ids, prev, next) = world();
        let m = signed(&ids[0], &next);
        let t = Transition::between(&prev, &Manifest::decode(&m).unwrap());
        let cert = |by: &[usize]| {
            EpochCertificate {
                transition: t.clone(),
                signatures: by.iter().map(|&i| t.sign(&ids[i]).unwrap()).collect(),
            }
            .encode()
        };
        // 3 of 4 holders: the quorum at f = 0 (max(t, n/2 + 1) = 3).
        assert!(certificate(&prev, &m, &cert(&[0, 1, 2]), 0));
        assert!(!certificate(&prev, &m, &cert(&[0, 1]), 0));
        // A spare's signature makes no certificate.
        assert!(!certificate(&prev, &m, &cert(&[0, 1, 4]), 0));
        // At f = 1 the quorum is max(3, ceil(6 / 2)) = 3 as well; junk bytes never.
        assert!(certificate(&prev, &m, &cert(&[1, 2, 3]), 1));
        assert!(!certificate(&prev, &m, b"PQVE junk", 0));
        // A certificate of another manifest does not certify this one.
        let mut other = next.clone();
        other.created_unix += 1;
        let m2 = signed(&ids[0], &other);
        assert!(!certificate(&prev, &m2, &cert(&[0, 1, 2]), 0));
    }
}
