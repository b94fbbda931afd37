//! What every attempt we lead carries out alike, whatever its kind: the
//! abort of the attempt it supersedes, its certification, its own abort,
//! and the finishing of its successor. When each happens is
//! [`crate::transition::attempt`]'s to say; [`super::lead_repair`] and
//! [`super::lead_reshare`] carry out the rest.

use super::{finish, mark_used};
use crate::config::Member;
use crate::proposals;
use crate::state::State;
use crate::transition::attempt::{Attempt, Failed, Work};
use crate::transition::{CertifiedProposal, Proposal};
use std::sync::Arc;
use vault::manifest::ManifestBody;

/// One attempt we lead: its proposal, who votes on it, and what it has
/// gathered so far.
pub(super) struct Led<'a> {
    state: &'a Arc<State>,
    proposal: Proposal,
    superseded: Option<Proposal>,
    voters: Vec<Option<Member>>,
    quorum: usize,
    /// The certified proposal, once a quorum certified it.
    pub cert: Option<CertifiedProposal>,
    finishing: Option<finish::Finishing>,
}

impl<'a> Led<'a> {
    /// Leads `proposal`, superseding `superseded` (ours, uncertified), with
    /// `voters` (`None` is ourselves) of whom `quorum` must sign.
    pub(super) fn new(
        state: &'a Arc<State>,
        proposal: Proposal,
        superseded: Option<Proposal>,
        voters: Vec<Option<Member>>,
        quorum: usize,
    ) -> Self {
        Led {
            state,
            proposal,
            superseded,
            voters,
            quorum,
            cert: None,
            finishing: None,
        }
    }

    /// The proposal led.
    pub(super) fn proposal(&self) -> &Proposal {
        &self.proposal
    }

    /// Carries out `work` if every kind of attempt does it alike; `None`
    /// leaves it to the kind's driver.
    pub(super) async fn run(&mut self, work: Work) -> Option<Result<(), Failed>> {
        let state = self.state;
        Some(match work {
            Work::AbortSuperseded => {
                if let Some(old) = &self.superseded {
                    proposals::abort_attempt(state, old, &self.voters, self.quorum).await;
                }
                Ok(())
            }
            Work::Certify => {
                match proposals::certify(state, &self.proposal, &self.voters, self.quorum).await {
                    Ok(c) => {
                        mark_used(state, self.proposal.vault_id, self.proposal.from_epoch);
                        self.cert = Some(c);
                        Ok(())
                    }
                    Err(e) => {
                        forgive(state, &self.proposal).await;
                        Err(Failed::refused(e))
                    }
                }
            }
            Work::Abort => {
                proposals::abort_attempt(state, &self.proposal, &self.voters, self.quorum).await;
                Ok(())
            }
            Work::Decide
            | Work::GatherSignatures
            | Work::LogCertificate
            | Work::KeepUnfinished
            | Work::Commit => match &mut self.finishing {
                Some(f) => f.run(state, work).await,
                None => Err(Failed::refused("no successor to finish")),
            },
            _ => return None,
        })
    }

    /// Signs `body`, the next manifest, as the successor this attempt
    /// carries out, to be signed by `signers` and committed at `next`.
    pub(super) fn sign(
        &mut self,
        body: &ManifestBody,
        signers: &[(u8, Option<Member>)],
        next: &[(u8, Option<Member>)],
    ) -> Result<(), Failed> {
        let m2 = finish::sign(self.state, body)?;
        self.finishing = Some(finish::Finishing::new(
            self.proposal.vault_id,
            self.proposal.from_epoch,
            m2,
            self.proposal.digest(),
            signers,
            next,
        ));
        Ok(())
    }
}

/// After `proposal` failed to be certified: drops our own judgement that
/// a holder it leaves out withheld its new share (D57). A recipient can
/// show one member something it shows no other; what a quorum did not
/// judge with us cannot lead, and the next attempt then includes it again,
/// where every holder judges it anew.
async fn forgive(state: &Arc<State>, proposal: &Proposal) {
    let Ok((m, _)) = crate::rounds::current_manifest(state, &proposal.vault_id) else {
        return;
    };
    let left_out = proposal
        .taken_from(m.body())
        .into_iter()
        .filter_map(|i| m.body().entry(i).map(|e| e.recipient));
    for fp in left_out {
        let Ok((member, _)) = crate::rounds::member_with(state, &fp).await else {
            continue;
        };
        let dropped = state
            .withheld
            .lock()
            .is_ok_and(|mut w| w.remove(&(proposal.vault_id, member.id.clone())).is_some());
        if dropped {
            crate::reshare::persist_judgements(state, &proposal.vault_id, proposal.from_epoch);
            tracing::info!(vault = %proposal.vault_id, peer = %member.id, "no quorum judged this holder withholding with us: our judgement is dropped and the next attempt includes it");
        }
    }
}

/// What an attempt driven to its end gives the healing pass.
pub(super) fn outcome(attempt: &Attempt) -> Result<(), String> {
    match attempt.outcome() {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e.clone()),
        None => Err("the attempt stopped short".into()),
    }
}
