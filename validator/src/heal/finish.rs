//! Finishing a transition: the successor manifest signed by a quorum of
//! the current epoch's holders (through the epoch log when it is on), its
//! certificate, and the commit at every holder of the next epoch.

use super::{fail, post};
use crate::config::Member;
use crate::consensus::record::{manifest_digest, Certified, Proposal as LogProposal};
use crate::consensus::ProposalOutcome;
use crate::epochs::{self, encode_commit};
use crate::proposals;
use crate::state::State;
use std::sync::Arc;
use vault::epoch::EpochCertificate;
use vault::manifest::{Manifest, ManifestBody, VaultId};

/// Signs `body` as the next manifest, carrying out the certified proposal
/// `proposal` (its digest), has the live holders of the current epoch
/// (`signers`) certify it, and commits it at every holder of the next
/// epoch (`next`), ourselves last. Called once per proposal: we never
/// write two copies of one proposal's successor (`crate::successor`
/// convicts a requester that does).
pub(super) async fn certify(
    state: &Arc<State>,
    id: VaultId,
    body: &ManifestBody,
    proposal: [u8; 32],
    signers: &[(u8, Option<Member>)],
    next: &[(u8, Option<Member>)],
) -> Result<(), String> {
    let m2 = Manifest::sign(body, state.identity.public(), state.identity.signing_key())
        .map_err(|e| e.to_string())?;
    certify_manifest(state, id, body.epoch - 1, m2, proposal, signers, next).await
}

/// Has `signers` certify the signed next manifest `m2` of epoch `from + 1`
/// for the certified proposal `proposal` (all zero: the epoch log decided
/// it, and decides it first when there is one) and commits it at `next`.
pub(super) async fn certify_manifest(
    state: &Arc<State>,
    id: VaultId,
    from: u64,
    m2: Vec<u8>,
    proposal: [u8; 32],
    signers: &[(u8, Option<Member>)],
    next: &[(u8, Option<Member>)],
) -> Result<(), String> {
    let log = state.consensus.get();
    if let Some(c) = log {
        let outcome = c
            .propose(LogProposal {
                vault: id,
                from_epoch: from,
                manifest: m2.clone(),
            })
            .await
            .map_err(|e| format!("epoch log: {e}"))?;
        if let ProposalOutcome::AlreadyDecided(_) = outcome {
            return Err("the epoch log decided another successor; finishing it next pass".into());
        }
    }
    tracing::debug!(vault = %id, from, "successor decided; asking for signatures");

    // 3. Signatures from the live holders of the current epoch.
    let cert = gather_signatures(state, id, from, proposal, &m2, signers).await?;
    crate::crash_point!(crate::failpoint::HEAL_SIGNATURES_GATHERED);
    tracing::debug!(vault = %id, from, "signatures gathered");
    let cert = cert.encode();
    if let Some(c) = log {
        c.certify(Certified {
            vault: id,
            from_epoch: from,
            manifest_digest: manifest_digest(&m2),
            certificate: cert.clone(),
        })
        .await
        .map_err(|e| format!("epoch log: {e}"))?;
    }

    tracing::debug!(vault = %id, from, "certificate assembled");
    // 4. Commit everywhere, ourselves last. Kept until every holder has
    // it: a later pass retries rather than proposing a rival successor
    // (which could never gather a quorum: the votes are cast).
    let commit = encode_commit(&m2, &cert);
    if let Ok(mut u) = state.unfinished.lock() {
        u.insert(id, (from, commit.clone(), next.to_vec()));
    }
    finish_commit(state, id, &commit, next).await
}

/// Asks every live holder of epoch `from` (`signers`) to sign `m2`, the
/// successor carrying out `proposal`, and returns the certificate once a
/// quorum of distinct holders signed it.
async fn gather_signatures(
    state: &Arc<State>,
    id: VaultId,
    from: u64,
    proposal: [u8; 32],
    m2: &[u8],
    signers: &[(u8, Option<Member>)],
) -> Result<EpochCertificate, String> {
    // Asked with our signed request, all at once: each signer writes its
    // vote to disk before answering.
    let request = |m: &[u8]| {
        crate::successor::Request::sign(id, from, proposal, m.to_vec(), &state.identity)
            .map(|q| q.encode())
            .map_err(|e| e.to_string())
    };
    let asked = request(m2)?;
    let split = match crate::byzantine::split_copy(m2, &state.identity) {
        Some(other) => Some(request(&other)?),
        None => None,
    };
    let asks: Vec<_> = signers
        .iter()
        .enumerate()
        .map(|(k, (_, who))| {
            let (m2, late) = match &split {
                Some(other) if k % 2 == 1 => (other.clone(), crate::byzantine::split_late()),
                _ => (asked.clone(), None),
            };
            let (state, who) = (state.clone(), who.clone());
            tokio::spawn(async move {
                if let Some(wait) = late {
                    tokio::time::sleep(wait).await;
                }
                match who {
                    None => epochs::sign(
                        state.clone(),
                        id,
                        &m2,
                        &state.id,
                        Some(state.identity.public().fingerprint()),
                    )
                    .await
                    .map_err(|f| fail("local sign", f)),
                    Some(m) => post(&state, &m, &format!("/v1/epoch/{id}/sign"), m2, 200).await,
                }
            })
        })
        .collect();
    // A quorum of the current epoch is enough: a signer that fails (died
    // mid-answer, say) must not sink an attempt whose other votes are
    // already cast, or every later attempt would meet "already signed
    // another successor" and the epoch would never move.
    let needed = {
        let (m, _) = crate::rounds::current_manifest(state, &id).map_err(|f| fail("quorum", f))?;
        proposals::rules(state, &id).quorum(m.body().threshold, m.body().n)
    };
    let mut cert: Option<EpochCertificate> = None;
    let mut failures = Vec::new();
    for ask in asks {
        let one = match ask.await.map_err(|e| e.to_string()) {
            Ok(Ok(bytes)) => EpochCertificate::decode(&bytes).map_err(|e| e.to_string()),
            Ok(Err(e)) | Err(e) => Err(e),
        };
        match (one, &mut cert) {
            (Ok(one), None) => cert = Some(one),
            (Ok(one), Some(c)) => c.signatures.extend(one.signatures),
            (Err(e), _) => failures.push(e),
        }
    }
    // Distinct signers, as verify_step counts them.
    let got = cert.as_ref().map_or(0, |c| {
        c.signatures
            .iter()
            .map(|(id, _)| id.fingerprint())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    });
    if got < needed {
        return Err(format!(
            "{got} of the {needed} signatures needed; failed: {}",
            failures.join("; ")
        ));
    }
    for e in &failures {
        tracing::warn!(vault = %id, from, "certified without one signer: {e}");
    }
    cert.ok_or_else(|| "no signatures".to_string())
}

/// Sends a certified transition's commit to every holder of the next epoch
/// that is not ourselves, then commits locally; forgets it once done.
pub(super) async fn finish_commit(
    state: &Arc<State>,
    id: VaultId,
    commit: &[u8],
    next: &[(u8, Option<Member>)],
) -> Result<(), String> {
    let commit = commit.to_vec();
    let commits: Vec<_> = next
        .iter()
        .filter_map(|(_, who)| who.clone())
        .map(|m| {
            let (state, body) = (state.clone(), commit.clone());
            tokio::spawn(async move {
                post(&state, &m, &format!("/v1/epoch/{id}/commit"), body, 200).await
            })
        })
        .collect();
    for c in commits {
        c.await.map_err(|e| e.to_string())??;
    }
    if next.iter().any(|(_, who)| who.is_none()) {
        epochs::commit(state.clone(), id, &commit)
            .await
            .map_err(|f| fail("local commit", f))?;
    }
    if let Ok(mut u) = state.unfinished.lock() {
        u.remove(&id);
    }
    Ok(())
}
