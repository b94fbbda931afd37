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
//! * `POST /v1/abort` (a `PQVB` abort, from the attempt's proposer): we
//!   judge it ([`transition::judge_abort`]), give the attempt up (release
//!   our vote durably, forget its rounds) and answer a signed abort vote;
//!   or a `PQVW` certified abort from anyone, which releases us too.
//! * [`certify`], [`announce`] and [`abort_attempt`]: the leader's side.
//!
//! Every refusal is counted in `pqvault_transition_refusals_total{reason}`.

use crate::config::Member;
use crate::rounds::{self, bad, Failure};
use crate::state::{unix_ms, State};
use crate::store::Steps;
use crate::transition::gate::{self, Effect, Facts, Input};
use crate::transition::{
    self, Abort, AbortView, Action, CertifiedAbort, CertifiedProposal, Chain, OwnView, PastVote,
    Proposal, Refusal, Rules, Vote,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vault::identity::Fingerprint;
use vault::manifest::{Manifest, ManifestBody, VaultId, VerifiedManifest};

/// Path of votes.
pub const VOTE_PATH: &str = "/v1/vote";
/// Path of certified proposals.
pub const TRANSITION_PATH: &str = "/v1/transition";
/// Path of aborts and certified aborts.
pub const ABORT_PATH: &str = "/v1/abort";

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

/// What [`gate::admit`] needs to know, from our chain of the vault.
fn facts<'a>(state: &State, chain: &'a HeldChain, released: Option<u32>) -> Facts<'a> {
    Facts {
        chain: Chain {
            history: &chain.history,
        },
        rules: &chain.rules,
        me: state.identity.public().fingerprint(),
        released,
    }
}

/// An effect the gate returned for another kind of input: a bug, refused.
fn unexpected(e: Effect) -> Failure {
    bad(
        500,
        format!("transition gate: unexpected effect {e:?} here"),
    )
}

/// Handles `POST /v1/vote`: judges the proposal on our own view and, if
/// it passes, records the vote durably and answers it signed.
pub async fn vote(state: Arc<State>, caller: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let p = Proposal::decode(body).map_err(|e| bad(400, e))?;
    if crate::byzantine::withhold_votes() {
        return Err(bad(409, "byzantine test build: withholding our vote"));
    }
    let chain = held_chain(&state, &p.vault_id)?.ok_or_else(|| refuse(&state, Refusal::NoChain))?;
    let b = chain.manifest.body().clone();
    // Our view may be a moment behind the proposer's (our probe periods
    // end at other instants): let it settle, then judge on it.
    crate::heal::wait_settled(
        &state,
        state.heal_grace,
        crate::heal::SETTLE_WAIT,
        crate::heal::Settle::View,
    )
    .await;
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
    let released = released_attempt(&state, &p.vault_id, p.from_epoch)?;
    let view = OwnView {
        lost: assessed.map(|a| a.lost.into_iter().collect()),
        lost_for,
        reshare_after: state.reshare_after,
        voted,
        named,
        proposer_convicted: state
            .convicted
            .lock()
            .is_ok_and(|c| c.contains(&(p.vault_id, caller.to_string()))),
    };
    let effects = gate::admit(
        &facts(&state, &chain, released),
        Input::Proposal {
            proposal: &p,
            view: &view,
            holds_shard: chain.shard.is_some(),
        },
    )
    .map_err(|r| refuse_from(&state, caller, r))?;
    let mut vote = None;
    for e in effects {
        match e {
            Effect::Name(names) => state
                .store
                .lock()
                .map_err(|_| bad(500, "poisoned"))?
                .add_named(&p.vault_id, &names)
                .map_err(|e| bad(409, e))?,
            Effect::RecordVote { attempt, digest } => state
                .store
                .lock()
                .map_err(|_| bad(500, "poisoned"))?
                .record_proposal_vote(&p.vault_id, p.from_epoch, attempt, &digest, unix_ms())
                .map_err(|e| bad(500, e))?,
            Effect::RememberVote => {
                if let Ok(mut voted) = state.voted_for.lock() {
                    voted.retain(|(v, e), _| *v != p.vault_id || *e >= p.from_epoch);
                    voted.insert((p.vault_id, p.from_epoch), (p.clone(), caller.to_string()));
                }
            }
            Effect::SignVote => {
                vote = Some(Vote::sign(&p, &state.identity).map_err(|e| bad(500, e))?);
                tracing::info!(vault = %p.vault_id, epoch = p.from_epoch, attempt = p.attempt, "voted for a transition proposal");
            }
            // While the proposer gathers votes: our share unsealed for
            // helping and our next epoch's key made, ready for `prepare`.
            Effect::Prewarm { epoch } => {
                if let Some(shard) = chain.shard.clone() {
                    if let Ok(parsed) = vault::seal::SealedShard::parse(&shard) {
                        let suite = parsed.header.suite;
                        crate::epochs::prewarm(&state, p.vault_id, Some(shard), suite, vec![epoch]);
                    }
                }
            }
            other => return Err(unexpected(other)),
        }
    }
    let vote = vote.ok_or_else(|| bad(500, "admitted without a vote to sign"))?;
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
    if crate::byzantine::drop_transition_once() {
        return Err(bad(503, "byzantine test build: dropped"));
    }
    let vault = cert.proposal.vault_id;
    let chain = match held_chain(&state, &vault)? {
        Some(c) => c,
        None => fetched_chain(&state, &vault, &caller).await?,
    };
    let released = released_attempt(&state, &vault, cert.proposal.from_epoch)?;
    let effects = gate::admit(&facts(&state, &chain, released), Input::Certified(&cert))
        .map_err(|r| refuse_from(&state, &caller, r))?;
    let p = &cert.proposal;
    for e in effects {
        match (e, &p.action) {
            (Effect::StartRepair(i), Action::Repair(plans)) => {
                let plan = plans.get(i).ok_or_else(|| bad(500, "no such plan"))?;
                rounds::start(&state, plan.clone(), &chain).await?;
            }
            (Effect::StartReshare, Action::Reshare(plan)) => {
                crate::reshare::start(&state, plan.clone(), &chain).await?;
            }
            // A holder of the epoch with no round of its own is a witness:
            // it records the replacements (never a second index of this
            // polynomial for one member) and stands by the certified
            // repair, so it can sign the successor on its own view of the
            // dead holders when a signer is lost mid-signature (D46).
            (Effect::Witness(names), _) => {
                remember_named(&state, &vault, &names)?;
                tracing::info!(vault = %vault, epoch = p.from_epoch, attempt = p.attempt, "witnessed a certified repair (no round of ours)");
            }
            (Effect::RememberActed, _) => {
                if let Ok(mut acted) = state.acted_on.lock() {
                    acted.retain(|(v, e), _| *v != vault || *e >= p.from_epoch);
                    acted.insert((vault, p.from_epoch), (p.clone(), caller.clone()));
                }
            }
            (other, _) => return Err(unexpected(other)),
        }
    }
    Ok("accepted\n")
}

/// Records the (replacement, index) pairs of a certified repair we help
/// with or witness (`data/named/`): refused, and counted as
/// `replacement_reused`, when one would give a member a second index of
/// this polynomial.
pub fn remember_named(
    state: &State,
    vault: &VaultId,
    names: &[(Fingerprint, u8)],
) -> Result<(), Failure> {
    let added = state
        .store
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .add_named(vault, names);
    added.map_err(|e| {
        state
            .metrics
            .refusals
            .with_label_values(&["replacement_reused"])
            .inc();
        bad(403, e)
    })
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

/// The proposals of `epoch` of `vault` we stand by: the certified one we
/// took part in, unless we gave its attempt up since, and the one of our
/// standing vote ([`standing_vote`]).
pub fn standing_proposals(
    state: &State,
    vault: &VaultId,
    epoch: u64,
) -> Result<Vec<Proposal>, Failure> {
    let released = released_attempt(state, vault, epoch)?;
    let acted = state
        .acted_on
        .lock()
        .ok()
        .and_then(|a| a.get(&(*vault, epoch)).map(|(p, _)| p.clone()))
        .filter(|p| transition::not_aborted(released, p).is_ok());
    Ok(acted
        .into_iter()
        .chain(standing_vote(state, vault, epoch)?)
        .collect())
}

/// The proposal of `epoch` of `vault` with digest `digest` that we voted
/// for or took part in (still in memory), the member that proposed it
/// (that asked our vote, or sent us the certified proposal), and whether
/// we still stand by it ([`standing_proposals`]: not given up).
pub fn known_with_proposer(
    state: &State,
    vault: &VaultId,
    epoch: u64,
    digest: &[u8; 32],
) -> Result<Option<(Proposal, String, bool)>, Failure> {
    let from = |m: &BTreeMap<(VaultId, u64), (Proposal, String)>| {
        m.get(&(*vault, epoch))
            .filter(|(q, _)| q.digest() == *digest)
            .cloned()
    };
    let known = state
        .voted_for
        .lock()
        .ok()
        .and_then(|v| from(&v))
        .or_else(|| state.acted_on.lock().ok().and_then(|a| from(&a)));
    let Some((p, who)) = known else {
        return Ok(None);
    };
    let standing = standing_proposals(state, vault, epoch)?
        .iter()
        .any(|s| s.digest() == *digest);
    Ok(Some((p, who, standing)))
}

/// The proposal of `epoch` of `vault` our standing vote is for: the one
/// recorded on disk, not released, and still in memory (we did not
/// restart since).
pub fn standing_vote(
    state: &State,
    vault: &VaultId,
    epoch: u64,
) -> Result<Option<Proposal>, Failure> {
    let on_disk = {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        store.proposal_vote(vault, epoch).map_err(|e| bad(500, e))?
    };
    let Some((_, digest, _)) = on_disk.filter(|(_, _, at)| *at > 1) else {
        return Ok(None);
    };
    Ok(state
        .voted_for
        .lock()
        .ok()
        .and_then(|v| v.get(&(*vault, epoch)).map(|(p, _)| p.clone()))
        .filter(|p| p.digest() == digest))
}

/// The attempt of our released vote on `epoch` of `vault` (we gave it
/// up: [`give_up`], or a failed dealing check), if our vote is released.
fn released_attempt(state: &State, vault: &VaultId, epoch: u64) -> Result<Option<u32>, Failure> {
    let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
    Ok(store
        .proposal_vote(vault, epoch)
        .map_err(|e| bad(500, e))?
        .filter(|(_, _, at)| *at == 0)
        .map(|(attempt, _, _)| attempt))
}

/// Handles `POST /v1/abort` from `caller`: a `PQVB` abort from the
/// attempt's proposer, answered with our signed abort vote once we gave
/// the attempt up; or a `PQVW` certified abort, answered with `released`.
pub async fn abort(state: Arc<State>, caller: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
    if body.starts_with(&transition::proposal::CERTIFIED_ABORT_KIND.magic) {
        return certified_abort(&state, caller, body);
    }
    let a = Abort::decode(body).map_err(|e| bad(400, e))?;
    let chain = held_chain(&state, &a.vault_id)?.ok_or_else(|| refuse(&state, Refusal::NoChain))?;
    let _one_at_a_time = state.voting.lock().map_err(|_| bad(500, "poisoned"))?;
    let view = abort_view(&state, &a.vault_id, a.from_epoch, caller, a.attempt)?;
    let effects = gate::admit(
        &facts(&state, &chain, None),
        Input::Abort {
            abort: &a,
            view: &view,
        },
    )
    .map_err(|r| refuse_from(&state, caller, r))?;
    let mut vote = None;
    for e in effects {
        match give_up(&state, &a, e)? {
            Some(Effect::SignAbortVote) => {
                vote = Some(Vote::sign_abort(&a, &state.identity).map_err(|e| bad(500, e))?);
                tracing::info!(vault = %a.vault_id, epoch = a.from_epoch, attempt = a.attempt, peer = %caller, "signed the abort of a failed attempt");
            }
            Some(other) => return Err(unexpected(other)),
            None => {}
        }
    }
    let vote = vote.ok_or_else(|| bad(500, "admitted without an abort vote to sign"))?;
    Ok(vote.encode())
}

/// A certified abort: a quorum of the epoch's holders gave the attempt up
/// (a re-share attempt can never complete; a repair's successor copy
/// already signed may still be finished), and our vote for it is released
/// too (unless we signed a successor of the epoch, which stays what it
/// is).
fn certified_abort(state: &Arc<State>, caller: &str, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let cert = CertifiedAbort::decode(body).map_err(|e| bad(400, e))?;
    let vault = cert.abort.vault_id;
    let chain = held_chain(state, &vault)?.ok_or_else(|| refuse(state, Refusal::NoChain))?;
    let a = &cert.abort;
    let _one_at_a_time = state.voting.lock().map_err(|_| bad(500, "poisoned"))?;
    let view = abort_view(state, &vault, a.from_epoch, caller, a.attempt)?;
    let effects = gate::admit(
        &facts(state, &chain, None),
        Input::CertifiedAbort {
            cert: &cert,
            view: &view,
        },
    )
    .map_err(|r| refuse_from(state, caller, r))?;
    let released = effects.contains(&Effect::ReleaseVote);
    for e in effects {
        if let Some(other) = give_up(state, a, e)? {
            return Err(unexpected(other));
        }
    }
    if released {
        tracing::info!(vault = %vault, epoch = a.from_epoch, attempt = a.attempt, "released by a certified abort");
    }
    Ok(b"released\n".to_vec())
}

/// What we know about attempt `attempt` of `epoch` of `vault` when
/// `caller` asks us to abort it.
fn abort_view(
    state: &State,
    vault: &VaultId,
    epoch: u64,
    caller: &str,
    attempt: u32,
) -> Result<AbortView, Failure> {
    let (voted, signed) = {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        let now = unix_ms();
        let voted = store
            .proposal_vote(vault, epoch)
            .map_err(|e| bad(500, e))?
            .map(|(attempt, digest, at)| PastVote {
                attempt,
                digest,
                age: Duration::from_millis(now.saturating_sub(at)),
            });
        (voted, store.signed_successor(vault, epoch))
    };
    let decided = state
        .consensus
        .get()
        .is_some_and(|c| c.decision(vault, epoch).is_some());
    let from_proposer = state
        .voted_for
        .lock()
        .ok()
        .and_then(|p| {
            p.get(&(*vault, epoch))
                .map(|(p, who)| (p.attempt, who.clone()))
        })
        .is_some_and(|(at, who)| at == attempt && who == caller);
    Ok(AbortView {
        voted,
        from_proposer,
        successor: signed || decided,
    })
}

/// Carries out the effects that give attempt `a` up, before we answer:
/// our vote is released durably (so the attempt never acts here again,
/// `transition::not_aborted`, and the next attempt need not wait), and
/// its rounds are forgotten, with our dealing in them (a re-share
/// successor of it then never gets our signature: `reshare::check_dealing`
/// needs the round). Hands any other effect back.
fn give_up(state: &State, a: &Abort, e: Effect) -> Result<Option<Effect>, Failure> {
    match e {
        Effect::ReleaseVote => state
            .store
            .lock()
            .map_err(|_| bad(500, "poisoned"))?
            .release_proposal_vote(&a.vault_id, a.from_epoch)
            .map_err(|e| bad(500, e))?,
        Effect::ForgetRounds => forget_rounds(state, a),
        other => return Ok(Some(other)),
    }
    Ok(None)
}

/// Forgets aborted attempt `a`'s rounds, with our dealing in them: they
/// can never complete, and a next round may have our share.
fn forget_rounds(state: &State, a: &Abort) {
    if let Ok(mut r) = state.rounds.lock() {
        r.retain(|id, _| !a.rounds.contains(id));
    }
    if let Ok(mut r) = state.reshares.lock() {
        r.retain(|id, _| !a.rounds.contains(id));
    }
    if let Ok(mut d) = state.dealt.lock() {
        if d.get(&(a.vault_id, a.from_epoch))
            .is_some_and(|(r, _)| a.rounds.contains(r))
        {
            d.remove(&(a.vault_id, a.from_epoch));
        }
    }
}

/// The leader's side of a failed attempt: asks each of `voters` (`None`
/// is ourselves) to sign the abort of `p`. With a quorum, the certified
/// abort goes to those that did not sign, so their votes are released
/// too. Returns whether the abort was certified; either way the attempt
/// is over for us (the next is a new attempt).
pub async fn abort_attempt(
    state: &Arc<State>,
    p: &Proposal,
    voters: &[Option<Member>],
    quorum: usize,
) -> bool {
    let a = Abort::of(p);
    let body = a.encode();
    let asks: Vec<_> = voters
        .iter()
        .map(|who| {
            let (state, who, body) = (state.clone(), who.clone(), body.clone());
            tokio::spawn(async move {
                let r = match &who {
                    None => abort(state.clone(), &state.id, &body)
                        .await
                        .map_err(|(c, w)| format!("our own abort: {c} {w}")),
                    Some(m) => {
                        rounds::post_expecting(&state, m, ABORT_PATH, body, 200, 64 << 10).await
                    }
                };
                (who, r)
            })
        })
        .collect();
    let (mut votes, mut missing, mut why) = (Vec::new(), Vec::new(), Vec::new());
    for ask in asks {
        let Ok((who, r)) = ask.await else { continue };
        match r.and_then(|b| Vote::decode(&b).map_err(|e| e.to_string())) {
            Ok(v) => votes.push(v),
            Err(e) => {
                why.push(e);
                missing.extend(who);
            }
        }
    }
    let signed = votes.len();
    let certified = signed >= quorum;
    state
        .metrics
        .attempts_aborted
        .with_label_values(&[if certified { "certified" } else { "short" }])
        .inc();
    if certified {
        let cert = CertifiedAbort { abort: a, votes }.encode();
        for m in missing {
            let _ = rounds::post_expecting(state, &m, ABORT_PATH, cert.clone(), 200, 1 << 10).await;
        }
        tracing::info!(vault = %p.vault_id, epoch = p.from_epoch, attempt = p.attempt, signed, quorum, "aborted attempt: certified, the next attempt need not wait");
    } else {
        tracing::warn!(vault = %p.vault_id, epoch = p.from_epoch, attempt = p.attempt, signed, quorum, "aborted attempt without a quorum: the {signed} that signed are free, the others wait for the attempt timeout: {}", why.join("; "));
    }
    certified
}

/// Adopts a newer operator-signed policy of `vault` from the first live
/// member that has one: policies are signed by the operator, so any peer
/// may carry them (a peer can withhold a newer one, never forge one).
pub async fn sync_policy(state: &Arc<State>, vault: &VaultId) {
    let alive = state.alive_members();
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
