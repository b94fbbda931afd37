//! Driving certified proposals over the peer API (the I/O edge of
//! [`crate::transition`]).
//!
//! * `POST /v1/vote` (a `PQVP` proposal): we judge it on our own view
//!   ([`crate::heal::assess`]), record the vote durably, and answer a
//!   `PQVV` vote; or refuse, saying why.
//! * `POST /v1/transition` (a `PQVQ` certified proposal): we authorize it
//!   against our verified chain (a replacement, holding nothing yet, gets
//!   the chain from the caller and verifies it from the operator), then
//!   start our part in its rounds.
//! * [`certify`] and [`announce`]: the leader's side.
//!
//! Every refusal is counted in `pqvault_transition_refusals_total{reason}`.

use crate::config::Member;
use crate::daemon::{unix_ms, State};
use crate::rounds::{self, bad, Failure};
use crate::store::Steps;
use crate::transition::{
    self, Action, CertifiedProposal, Chain, OwnView, PastVote, Proposal, Refusal, Rules, Vote,
};
use std::sync::Arc;
use std::time::Duration;
use vault::manifest::{Manifest, ManifestBody, VaultId, VerifiedManifest};

/// Path of votes.
pub const VOTE_PATH: &str = "/v1/vote";
/// Path of certified proposals.
pub const TRANSITION_PATH: &str = "/v1/transition";

/// A verified chain as the drivers need it.
pub struct HeldChain {
    /// The current epoch's verified manifest.
    pub manifest: VerifiedManifest,
    /// Every manifest body from genesis to the current one.
    pub history: Vec<ManifestBody>,
    /// Our sealed shard of the current epoch, if we hold one.
    pub shard: Option<Vec<u8>>,
    /// The proof (anchor and steps) of the current epoch.
    pub proof: (Vec<u8>, Steps),
    /// The vault's transition rules (its operator-signed policy).
    pub rules: Rules,
}

/// The transition rules of `vault`: its operator-signed policy, or for a
/// vault without one, f = 0, floor 2 and the configured shrink rule
/// (`heal.policy`).
pub fn rules(state: &State, vault: &VaultId) -> Rules {
    let signed = state
        .store
        .lock()
        .ok()
        .map(|s| s.policy(vault))
        .filter(|p| p.version > 0);
    match signed {
        Some(p) => Rules::from_policy(&p),
        None => Rules::legacy(state.policy),
    }
}

/// Counts and logs a refusal of `caller`'s input, naming the member.
pub fn refuse_from(state: &State, caller: &str, r: Refusal) -> Failure {
    match r.reason() {
        // Normal while views differ or after an epoch moved on.
        "vote_refused" | "stale" => {
            tracing::info!(peer = %caller, reason = r.reason(), "refused: {r}")
        }
        _ => tracing::warn!(peer = %caller, reason = r.reason(), "refused: {r}"),
    }
    refuse(state, r)
}

/// Counts a refusal and turns it into a failure to answer with.
pub fn refuse(state: &State, r: Refusal) -> Failure {
    state
        .metrics
        .refusals
        .with_label_values(&[r.reason()])
        .inc();
    bad(r.status(), r)
}

/// Manifest bodies of a verified proof, genesis first.
fn bodies(anchor: &[u8], steps: &Steps) -> Result<Vec<ManifestBody>, Failure> {
    std::iter::once(anchor)
        .chain(steps.iter().map(|(m, _)| m.as_slice()))
        .map(|m| {
            Manifest::decode(m)
                .map(|m| m.body().clone())
                .map_err(|e| bad(500, e))
        })
        .collect()
}

/// The chain of `vault` as we hold it; `None` if we hold no shard of it.
pub fn held_chain(state: &State, vault: &VaultId) -> Result<Option<HeldChain>, Failure> {
    let rules = rules(state, vault);
    let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
    let Some(held) = store.get(vault) else {
        return Ok(None);
    };
    let manifest = store
        .verify_chain(&held.anchor, &held.steps)
        .map_err(|e| bad(500, e))?;
    Ok(Some(HeldChain {
        history: bodies(&held.anchor, &held.steps)?,
        manifest,
        shard: Some(held.shard.clone()),
        proof: (held.anchor.clone(), held.steps.clone()),
        rules,
    }))
}

/// The chain of `vault` from member `from` (we hold nothing of it yet),
/// verified from our trusted operator.
async fn fetched_chain(
    state: &Arc<State>,
    vault: &VaultId,
    from: &str,
) -> Result<HeldChain, Failure> {
    let leader = state
        .members()
        .into_iter()
        .find(|m| m.id == from)
        .ok_or_else(|| bad(403, format!("{from} is not a member")))?;
    let r = state
        .ctl
        .get(&leader, &format!("/v1/vaults/{vault}/proof"), 16 << 20)
        .await
        .map_err(|e| bad(502, e))?;
    let (anchor, steps) = rounds::decode_proof(&r.body).map_err(|e| bad(502, e))?;
    let (manifest, trusted) = {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        (
            store
                .verify_chain(&anchor, &steps)
                .map_err(|e| bad(422, e))?,
            store.trusted(),
        )
    };
    // The operator's policy, if the caller has one; verified from the
    // operator like the chain. Without it the legacy rules apply, which
    // only decides what we accept to receive.
    let mut rules = Rules::legacy(state.policy);
    if let Ok(r) = state
        .ctl
        .get(&leader, &format!("/v1/vaults/{vault}/policy"), 64 << 10)
        .await
    {
        if r.status == 200 {
            let p = vault::governance::TransitionPolicy::open(&r.body, &trusted)
                .map_err(|e| bad(422, format!("the vault's policy: {e}")))?;
            if p.vault_id == *vault {
                rules = Rules::from_policy(&p);
            }
        }
    }
    Ok(HeldChain {
        history: bodies(&anchor, &steps)?,
        manifest,
        shard: None,
        proof: (anchor, steps),
        rules,
    })
}

/// Handles `POST /v1/vote`: judges the proposal on our own view and, if
/// it passes, records the vote durably and answers it signed.
pub async fn vote(state: Arc<State>, caller: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let p = Proposal::decode(body).map_err(|e| bad(400, e))?;
    let chain = held_chain(&state, &p.vault_id)?.ok_or_else(|| refuse(&state, Refusal::NoChain))?;
    let b = chain.manifest.body().clone();
    let assessed = crate::heal::assess(&state, &p.vault_id, &b, state.heal_grace).await;
    let lost_for = state
        .lost_since
        .lock()
        .ok()
        .and_then(|l| l.get(&p.vault_id).map(|t| t.elapsed()))
        .unwrap_or(Duration::ZERO);
    let _one_at_a_time = state.voting.lock().map_err(|_| bad(500, "poisoned"))?;
    let (voted, named) = {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        let now = unix_ms();
        let voted = store
            .proposal_vote(&p.vault_id, p.from_epoch)
            .map_err(|e| bad(500, e))?
            .map(|(attempt, digest, at)| PastVote {
                attempt,
                digest,
                age: Duration::from_millis(now.saturating_sub(at)),
            });
        (voted, store.named(&p.vault_id).map_err(|e| bad(500, e))?)
    };
    let view = OwnView {
        lost: assessed.map(|a| a.lost.into_iter().collect()),
        lost_for,
        reshare_after: state.reshare_after,
        voted,
        named,
    };
    transition::judge(
        &Chain {
            history: &chain.history,
        },
        &chain.rules,
        &view,
        &p,
    )
    .map_err(|r| refuse_from(&state, caller, r))?;
    {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        if let Action::Repair(plans) = &p.action {
            let names: Vec<_> = plans
                .iter()
                .flat_map(|x| x.targets.iter().map(|t| (t.replacement, t.index)))
                .collect();
            store
                .add_named(&p.vault_id, &names)
                .map_err(|e| bad(409, e))?;
        }
        if voted.is_none_or(|v| v.digest != p.digest()) {
            store
                .record_proposal_vote(&p.vault_id, p.from_epoch, p.attempt, &p.digest(), unix_ms())
                .map_err(|e| bad(500, e))?;
        }
    }
    let vote = Vote::sign(&p, &state.identity).map_err(|e| bad(500, e))?;
    tracing::info!(vault = %p.vault_id, epoch = p.from_epoch, attempt = p.attempt, "voted for a transition proposal");
    Ok(vote.encode())
}

/// Handles `POST /v1/transition` from `caller`: authorizes the certified
/// proposal and starts our part in each of its rounds.
pub async fn transition(
    state: Arc<State>,
    caller: String,
    body: &[u8],
) -> Result<&'static str, Failure> {
    let cert = CertifiedProposal::decode(body).map_err(|e| bad(400, e))?;
    let vault = cert.proposal.vault_id;
    let chain = match held_chain(&state, &vault)? {
        Some(c) => c,
        None => fetched_chain(&state, &vault, &caller).await?,
    };
    let p = transition::authorize(
        &Chain {
            history: &chain.history,
        },
        &chain.rules,
        &cert,
    )
    .map_err(|r| refuse_from(&state, &caller, r))?;
    let me = state.identity.public().fingerprint();
    let mut started = 0;
    match &p.action {
        Action::Repair(plans) => {
            for plan in plans {
                let helper = chain
                    .manifest
                    .body()
                    .shards
                    .iter()
                    .any(|e| e.recipient == me && plan.helpers.contains(&e.index));
                if plan.target_of(&me).is_some() || helper {
                    rounds::start(&state, plan.clone(), &chain).await?;
                    started += 1;
                }
            }
        }
        Action::Reshare(plan) => {
            crate::reshare::start(&state, plan.clone(), &chain).await?;
            started += 1;
        }
    }
    if started == 0 {
        return Err(bad(422, "we have no part in this proposal"));
    }
    Ok("accepted\n")
}

/// The leader's side: asks every one of `voters` (holders of the epoch;
/// `None` is ourselves) for its vote on `p`, and returns the certified
/// proposal once a quorum of the epoch's holders voted for it.
pub async fn certify(
    state: &Arc<State>,
    p: &Proposal,
    voters: &[Option<Member>],
    quorum: usize,
) -> Result<CertifiedProposal, String> {
    let body = p.encode();
    let asks: Vec<_> = voters
        .iter()
        .map(|who| {
            let (state, who, body) = (state.clone(), who.clone(), body.clone());
            tokio::spawn(async move {
                match who {
                    None => vote(state.clone(), &state.id, &body)
                        .await
                        .map_err(|(c, w)| format!("our own vote: {c} {w}")),
                    Some(m) => {
                        rounds::post_expecting(&state, &m, VOTE_PATH, body, 200, 64 << 10).await
                    }
                }
            })
        })
        .collect();
    let (mut votes, mut refused) = (Vec::new(), Vec::new());
    for a in asks {
        match a.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(bytes) => match Vote::decode(&bytes) {
                Ok(v) => votes.push(v),
                Err(e) => refused.push(format!("unreadable vote: {e}")),
            },
            Err(e) => refused.push(e),
        }
    }
    if votes.len() < quorum {
        return Err(format!(
            "proposal not certified: {} of {quorum} votes; {}",
            votes.len(),
            refused.join("; ")
        ));
    }
    Ok(CertifiedProposal {
        proposal: p.clone(),
        votes,
    })
}

/// Sends a certified proposal to each of `to` (`None` is ourselves).
pub async fn announce(
    state: &Arc<State>,
    cert: &CertifiedProposal,
    to: &[Option<Member>],
) -> Result<(), String> {
    let body = cert.encode();
    let sends: Vec<_> = to
        .iter()
        .map(|who| {
            let (state, who, body) = (state.clone(), who.clone(), body.clone());
            tokio::spawn(async move {
                match who {
                    None => transition(state.clone(), state.id.clone(), &body)
                        .await
                        .map(|_| ())
                        .map_err(|(c, w)| format!("our own part: {c} {w}")),
                    Some(m) => {
                        rounds::post_expecting(&state, &m, TRANSITION_PATH, body, 202, 64 << 10)
                            .await
                            .map(|_| ())
                    }
                }
            })
        })
        .collect();
    for s in sends {
        s.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Adopts a newer operator-signed policy of `vault` from the first live
/// member that has one: policies are signed by the operator, so any peer
/// may carry them (a peer can withhold a newer one, never forge one).
pub async fn sync_policy(state: &Arc<State>, vault: &VaultId) {
    let alive: Vec<Member> = {
        let Ok(d) = state.detector.lock() else {
            return;
        };
        state
            .members()
            .into_iter()
            .filter(|m| d.state(&m.id) == Some(mesh_agent::detector::State::Alive))
            .collect()
    };
    for m in alive {
        let Ok(r) = state
            .ctl
            .get(&m, &format!("/v1/vaults/{vault}/policy"), 64 << 10)
            .await
        else {
            continue;
        };
        if r.status != 200 {
            continue;
        }
        let adopted = state
            .store
            .lock()
            .map_err(|_| "poisoned".to_string())
            .and_then(|mut s| s.adopt_policy(&r.body).map_err(|e| e.to_string()));
        match adopted {
            Ok(true) => {
                tracing::info!(vault = %vault, peer = %m.id, "adopted a newer transition policy")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(vault = %vault, peer = %m.id, "refused a transition policy: {e}")
            }
        }
        return;
    }
}
