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
use crate::transition::attempt::{Failed, Finish, Work};
use std::sync::Arc;
use vault::epoch::EpochCertificate;
use vault::manifest::{Manifest, ManifestBody, VaultId};

/// Signs `body`, the next manifest, ourselves: the successor an attempt
/// we lead goes on to finish.
pub(super) fn sign(state: &State, body: &ManifestBody) -> Result<Vec<u8>, Failed> {
    Manifest::sign(body, state.identity.public(), state.identity.signing_key())
        .map_err(|e| Failed::refused(e.to_string()))
}

/// Has `signers` certify the signed next manifest `m2` of epoch `from + 1`
/// for the certified proposal `proposal` (all zero: the epoch log decided
/// it, and decides it first when there is one) and commits it at `next`,
/// in the order [`Finish`] keeps. Called once per proposal: we never
/// write two copies of one proposal's successor (`crate::successor`
/// convicts a requester that does).
pub(super) async fn certify_manifest(
    state: &Arc<State>,
    id: VaultId,
    from: u64,
    m2: Vec<u8>,
    proposal: [u8; 32],
    signers: &[(u8, Option<Member>)],
    next: &[(u8, Option<Member>)],
) -> Result<(), String> {
    let mut finish = Finish::new(state.consensus.get().is_some());
    let mut job = Finishing::new(id, from, m2, proposal, signers, next);
    while let Some(work) = finish.poll() {
        let done = job.run(state, work).await;
        finish.handle(done);
    }
    finish
        .outcome()
        .cloned()
        .unwrap_or_else(|| Err("finishing stopped short".into()))
}

/// One successor being finished: what [`Finish`]'s work needs, and the
/// certificate once gathered.
pub(super) struct Finishing {
    id: VaultId,
    from: u64,
    m2: Vec<u8>,
    proposal: [u8; 32],
    signers: Vec<(u8, Option<Member>)>,
    next: Vec<(u8, Option<Member>)>,
    /// The encoded certificate, once gathered.
    certificate: Option<Vec<u8>>,
}

impl Finishing {
    /// The signed successor `m2` of epoch `from` of `id`, carrying out
    /// `proposal`, to be signed by `signers` and committed at `next`.
    pub(super) fn new(
        id: VaultId,
        from: u64,
        m2: Vec<u8>,
        proposal: [u8; 32],
        signers: &[(u8, Option<Member>)],
        next: &[(u8, Option<Member>)],
    ) -> Self {
        Finishing {
            id,
            from,
            m2,
            proposal,
            signers: signers.to_vec(),
            next: next.to_vec(),
            certificate: None,
        }
    }

    /// The commit message: the successor with its certificate.
    fn commit(&self) -> Result<Vec<u8>, Failed> {
        let cert = self
            .certificate
            .as_ref()
            .ok_or_else(|| Failed::refused("no certificate to commit"))?;
        Ok(encode_commit(&self.m2, cert))
    }

    /// Carries out one piece of finishing work.
    pub(super) async fn run(&mut self, state: &Arc<State>, work: Work) -> Result<(), Failed> {
        let (id, from) = (self.id, self.from);
        match work {
            Work::Decide => {
                let Some(log) = state.consensus.get() else {
                    return Ok(());
                };
                let outcome = log
                    .propose(LogProposal {
                        vault: id,
                        from_epoch: from,
                        manifest: self.m2.clone(),
                    })
                    .await
                    .map_err(|e| Failed::refused(format!("epoch log: {e}")))?;
                if let ProposalOutcome::AlreadyDecided(_) = outcome {
                    return Err(Failed::refused(
                        "the epoch log decided another successor; finishing it next pass",
                    ));
                }
                tracing::debug!(vault = %id, from, "successor decided; asking for signatures");
                Ok(())
            }
            Work::GatherSignatures => {
                let cert =
                    gather_signatures(state, id, from, self.proposal, &self.m2, &self.signers)
                        .await
                        .map_err(Failed::refused)?;
                crate::crash_point!(crate::failpoint::HEAL_SIGNATURES_GATHERED);
                tracing::debug!(vault = %id, from, "signatures gathered");
                self.certificate = Some(cert.encode());
                Ok(())
            }
            Work::LogCertificate => {
                let (Some(log), Some(cert)) = (state.consensus.get(), &self.certificate) else {
                    return Err(Failed::refused("no certificate to log"));
                };
                log.certify(Certified {
                    vault: id,
                    from_epoch: from,
                    manifest_digest: manifest_digest(&self.m2),
                    certificate: cert.clone(),
                })
                .await
                .map_err(|e| Failed::refused(format!("epoch log: {e}")))?;
                tracing::debug!(vault = %id, from, "certificate assembled");
                Ok(())
            }
            Work::KeepUnfinished => {
                // Kept until every holder has it: a later pass retries
                // rather than proposing a rival successor (which could
                // never gather a quorum: the votes are cast).
                let commit = self.commit()?;
                if let Ok(mut u) = state.unfinished.lock() {
                    u.insert(id, (from, commit, self.next.clone()));
                }
                Ok(())
            }
            Work::Commit => finish_commit(state, id, &self.commit()?, &self.next)
                .await
                .map_err(Failed::refused),
            other => Err(Failed::refused(format!(
                "{other:?} is not a step of finishing"
            ))),
        }
    }
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
/// that is not ourselves while committing locally; forgets it once every
/// commit succeeded.
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
    // Ours alongside theirs: the certificate (and, with the log on, the
    // log's decision) is all a commit needs, and waiting for the slowest
    // holder first made ours the last of the epoch. If one of theirs
    // fails, the next pass sends it again (`transition::heal::resume`).
    let ours = async {
        if next.iter().any(|(_, who)| who.is_none()) {
            epochs::commit(state.clone(), id, &commit)
                .await
                .map_err(|f| fail("local commit", f))?;
        }
        Ok::<(), String>(())
    };
    let theirs = async {
        for c in commits {
            c.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    };
    let (ours, theirs) = tokio::join!(ours, theirs);
    ours.and(theirs)?;
    if let Ok(mut u) = state.unfinished.lock() {
        u.remove(&id);
    }
    Ok(())
}
