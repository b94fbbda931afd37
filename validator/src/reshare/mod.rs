//! Re-sharing among the current holders (Desmedt–Jajodia), without any
//! node reconstructing the secret.
//!
//! Used in two ways by healing (`crate::heal`):
//! * **shrink**: holders were lost, no spare came within
//!   `heal.reshare_after_ms`, so the live holders re-share to the policy's
//!   `(t', n')` for `n'` = their number;
//! * **refresh**: after a repair, the holders re-share to a fresh
//!   polynomial at the same `(t, n)`, so every share of older epochs
//!   (including one on a stolen disk) becomes useless.
//!
//! Round (`POST /v1/reshare`, wire kind `PQVX`, docs/protocol.md):
//! 1. The leader has the plan certified by a quorum of holders and sends
//!    the certified proposal to every recipient ([`crate::proposals`];
//!    recipients are holders of epoch `E`; recipient `k` gets index `k`).
//! 2. Each dealer (exactly `t` holders of `E`) checks the plan itself, opens
//!    its share `s_i`, deals it with a fresh random polynomial of degree
//!    `t' - 1` and sends sub-share `k` to recipient `k`, sealed to it as an
//!    epoch `E+1` share record (`PQVS`) with `(t', n')` and index `k`.
//! 3. Recipient `k`, holding one sub-share from every dealer, computes
//!    `s'_k = Σ λ_i · sub_{i→k}` (Lagrange at 0 over the dealers), seals it
//!    to itself for `E+1` and keeps it pending; `GET /v1/reshare/{round}`
//!    then answers its manifest entry.
//! 4. The leader writes the `E+1` manifest and collects signatures and
//!    commits exactly as after a repair (`crate::epochs`).
//!
//! Who learns what: a recipient learns one point of each dealer's fresh
//! polynomial, which says nothing about `s_i` (degree ≥ 1); it never sees
//! another recipient's sub-shares. No node ever holds `t` shares of one
//! epoch or the secret. Dealers are not trusted: before any holder signs
//! the successor (and so before anyone deletes epoch `E`), the recipients'
//! published check values are verified (`check`, docs/protocol.md
//! "Checking a re-share"), and a bad dealing aborts the attempt and keeps
//! epoch `E`.
//!
//! This module keeps the round itself (start, dealing, receiving, the new
//! share, the status it answers). By concept, beside it: `wire` (the plan,
//! the `PQVX` messages and every signed statement), `judge` (what a holder
//! concludes about a withholding recipient, D57), `receive` (whether a
//! sub-share is taken: impersonation, non-dealer, wrong recipient,
//! replay), `relay` (receipts and signed entries kept for others) and
//! `check` (the dealing check before the previous epoch is deleted,
//! disputes, bad dealings).

use crate::config::Member;
use crate::epochs::{Origin, PrepareReply, Prepared};
use crate::rounds::{self, bad, blocking, Failure};
use crate::state::State;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vault::identity::PublicIdentity;
use vault::manifest::{shard_hash, VaultId};
use vault::seal::SealedShard;
use vault::share::ShareRecord;
use vault::sign::HybridSignature;
use zeroize::Zeroizing;

mod check;
mod judge;
mod receive;
mod relay;
mod wire;
pub use check::*;
pub use judge::*;
pub use receive::{join, Receiving, Refused, Role};
pub use relay::*;
pub use wire::*;

/// How long a round we dealt in blocks another round for the same epoch:
/// longer than a leader waits for a round (20 s) before it gives up.
pub const REDEAL_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Our part in one re-share round.
pub struct Round {
    plan: Plan,
    /// Our new index, if we are a recipient.
    my_index: Option<u8>,
    /// Sub-shares received, by dealer index, kept with their dealers'
    /// signatures until the round is forgotten (a dispute over our check
    /// values is settled by revealing them).
    subs: BTreeMap<u8, Received>,
    /// Whether we revealed our sub-shares ([`reveal`]): then we answer
    /// again without a view.
    revealed: bool,
    /// Our entry in the next manifest, once our new share is sealed.
    done: Option<PrepareReply>,
    /// Our public dealing-check values (`vault::dealing`), once computed,
    /// with our signature over them ([`check_statement`]).
    check: Option<(Vec<Vec<u8>>, HybridSignature)>,
    /// When the round started here (rounds are pruned: `state::prune`).
    started: std::time::Instant,
    /// The same, in Unix milliseconds (to tell a recipient that restarted
    /// since from one that withholds: [`judge_recipients`]).
    started_unix: u64,
    /// Our signature over our entry (`done`).
    entry_signature: Option<HybridSignature>,
    /// Receipts for the sub-shares we dealt, by new index: the sealed
    /// bytes' hash and the recipient's signature ([`receipt_statement`]).
    receipts: BTreeMap<u8, ([u8; 32], HybridSignature)>,
    /// Our share index, if we deal in this round.
    dealt_as: Option<u8>,
    /// Other recipients' signed status as they showed it to us (entry,
    /// check values, both signatures), by new index, the entry's signature
    /// verified: relayed to a member they do not answer ([`relayed`]).
    seen: BTreeMap<u8, serde_json::Value>,
}

/// A sub-share as received.
struct Received {
    value: Zeroizing<Vec<u8>>,
    signature: Option<HybridSignature>,
}

/// Forgets every re-share round of `vault` dealing from an epoch before
/// `epoch` (its sub-shares and check values): called once `epoch` is
/// committed. Returns how many.
pub fn forget_before(state: &State, vault: &VaultId, epoch: u64) -> usize {
    let Ok(mut rounds) = state.reshares.lock() else {
        return 0;
    };
    let before = rounds.len();
    rounds.retain(|_, r| !(r.plan.vault_id == *vault && r.plan.epoch < epoch));
    if let Ok(mut w) = state.withheld.lock() {
        w.retain(|(v, _), e| !(v == vault && *e < epoch));
    }
    if let Ok(mut a) = state.accusations.lock() {
        a.retain(|(v, _), (e, _)| !(v == vault && *e < epoch));
    }
    before - rounds.len()
}

/// Handles a message from member `caller` (authenticated by mTLS).
pub async fn handle(state: Arc<State>, caller: String, body: &[u8]) -> Result<String, Failure> {
    match Message::decode(body).map_err(|e| bad(400, e))? {
        // A plan acts only inside a certified proposal (POST /v1/transition).
        Message::Plan(_) => Err(crate::proposals::refuse_from(
            &state,
            &caller,
            crate::transition::Refusal::BarePlan,
        )),
        Message::Subshare {
            round,
            from,
            sealed,
            signature,
        } => on_subshare(state, caller, round, from, sealed, signature).await,
        Message::Reveal { .. } | Message::View { .. } => Err(bad(
            400,
            "reveals and views go to /v1/reshare/{round}/reveal",
        )),
    }
}

/// Starts our part (dealer, recipient or both) in re-share round `plan` of
/// a certified proposal that [`crate::proposals::transition`] authorized
/// against `chain`. The certificate decided that every holder left out is
/// lost; nothing here re-decides it.
pub async fn start(
    state: &Arc<State>,
    plan: Plan,
    chain: &crate::proposals::HeldChain,
) -> Result<(), Failure> {
    let state = state.clone();
    let known = state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .contains_key(&plan.round);
    let me = state.identity.public().fingerprint();
    let Role { my_index, dealer } = {
        // Held while deciding, so two rival rounds cannot both deal.
        let mut dealt = state.dealt.lock().map_err(|_| bad(500, "poisoned"))?;
        let last = dealt
            .get(&(plan.vault_id, plan.epoch))
            .map(|(r, at)| (*r, at.elapsed()));
        let role = join(
            &plan,
            chain.manifest.body(),
            &me,
            known,
            chain.shard.is_some(),
            last,
        )
        .map_err(|r| bad(r.status(), r))?;
        if role.dealer.is_some() {
            dealt.insert(
                (plan.vault_id, plan.epoch),
                (plan.round, std::time::Instant::now()),
            );
        }
        role
    };
    {
        let mut all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        crate::state::prune(&mut all, |r| r.started);
        all.insert(
            plan.round,
            Round {
                plan: plan.clone(),
                my_index,
                subs: BTreeMap::new(),
                revealed: false,
                done: None,
                check: None,
                started: std::time::Instant::now(),
                started_unix: crate::state::unix_ms(),
                entry_signature: None,
                receipts: BTreeMap::new(),
                dealt_as: dealer,
                seen: BTreeMap::new(),
            },
        );
    }
    // Dealt once the round is known here, so that the receipts for our
    // sub-shares are kept with it.
    let plan_round = plan.round;
    // `join` refused a round without our shard.
    if let (Some(i), Some(shard)) = (dealer, chain.shard.clone()) {
        let state2 = state.clone();
        tokio::spawn(async move {
            if let Err((code, why)) = deal(state2, plan, i, shard).await {
                tracing::warn!(code, "re-share dealing failed: {why}");
            }
        });
    }
    tokio::spawn(judge_recipients(state.clone(), plan_round, dealer));
    Ok(())
}

/// Deals our share `from` to every recipient.
async fn deal(state: Arc<State>, plan: Plan, from: u8, shard: Vec<u8>) -> Result<(), Failure> {
    // Recipients' identities (and members, except ourselves).
    let me = state.identity.public().fingerprint();
    let mut to: Vec<(PublicIdentity, Option<Member>)> = Vec::new();
    for fp in &plan.recipients {
        if *fp == me {
            to.push((state.identity.public().clone(), None));
        } else {
            let (m, p) = rounds::member_with(&state, fp).await?;
            to.push((p, Some(m)));
        }
    }
    let keys = state.keys.clone();
    let (t_new, n_new) = (plan.t_new, plan.recipients.len() as u8);
    let (vault_id, epoch) = (plan.vault_id, plan.epoch + 1);
    let ids: Vec<PublicIdentity> = to.iter().map(|(p, _)| p.clone()).collect();
    let signer = state.identity.clone();
    let p = plan.clone();
    let sealed: Vec<(Vec<u8>, HybridSignature)> = blocking(move || {
        let parsed = SealedShard::parse(&shard).map_err(|e| bad(500, e))?;
        let suite = parsed.header.suite;
        let record = crate::unsealed::open(&shard, &keys).map_err(|e| bad(500, e))?;
        let mut share = record.share.clone();
        crate::byzantine::corrupt_deal(&mut share.value);
        let mut subs = vault::repair::deal(&share, t_new, n_new).map_err(|e| bad(500, e))?;
        for s in &mut subs {
            crate::byzantine::corrupt_subshare(s.index, &mut s.value);
        }
        subs.into_iter()
            .zip(&ids)
            .map(|(share, id)| {
                // Signed in the clear, sealed with it: a recipient can
                // show what we sent it, and only it can.
                let statement = subshare_statement(&p, from, share.index, &share.value);
                let signature = signer
                    .signing_key()
                    .sign(SUBSHARE_DOMAIN, &statement)
                    .map_err(|e| bad(500, e))?;
                let r = ShareRecord {
                    vault_id,
                    epoch,
                    threshold: t_new,
                    n: n_new,
                    share,
                };
                let sealed = vault::seal::seal(&r, suite, id).map_err(|e| bad(500, e))?;
                Ok((sealed, signature))
            })
            .collect()
    })
    .await?;
    if crate::byzantine::silent_dealer() {
        return Ok(());
    }
    // A test build told to abuse: the first other recipient, and what we
    // deal it and the next one.
    let abuse = crate::byzantine::abuse_subshares()
        .then(|| {
            let k = to.iter().position(|(_, m)| m.is_some())?;
            let (_, m) = &to[k];
            let other = sealed.get((k + 1) % sealed.len())?.0.clone();
            Some((m.clone()?, sealed[k].clone(), other))
        })
        .flatten();
    if let Some((m, (mine, sig), other)) = &abuse {
        let as_other = plan.dealers.iter().copied().find(|d| *d != from);
        let tries = [
            (
                "as another dealer",
                as_other.unwrap_or(from),
                mine,
                Some(sig),
            ),
            ("unsigned", from, mine, None),
            ("sealed to another recipient", from, other, Some(sig)),
        ];
        for (kind, from, sealed, signature) in tries {
            abusive_subshare(&state, m, &plan, kind, from, sealed, signature).await;
        }
    }
    let mut deliveries = Vec::new();
    for (k, ((id, member), (sealed, signature))) in to.into_iter().zip(sealed).enumerate() {
        let (index, sealed_hash) = (k as u8 + 1, shard_hash(&sealed));
        if crate::byzantine::silent_to(index) {
            continue;
        }
        match member {
            None => {
                on_subshare(
                    state.clone(),
                    state.id.clone(),
                    plan.round,
                    from,
                    sealed,
                    Some(signature),
                )
                .await?;
            }
            Some(m) => {
                let msg = Message::Subshare {
                    round: plan.round,
                    from,
                    sealed,
                    signature: Some(signature),
                };
                let sent = rounds::deliver_watched(&state, m, "/v1/reshare", msg.encode());
                deliveries.push((id, index, sealed_hash, sent));
            }
        }
    }
    tracing::info!(round = %hex::encode(plan.round), "re-share: dealt our share");
    for (id, index, sealed_hash, sent) in deliveries {
        let Ok(Some(answer)) = sent.await else {
            continue;
        };
        let receipt = parse_receipt(&plan, from, index, &sealed_hash, &id, &answer);
        let Some(sig) = receipt else { continue };
        if let Ok(mut all) = state.reshares.lock() {
            if let Some(r) = all.get_mut(&plan.round) {
                r.receipts.insert(index, (sealed_hash, sig));
            }
        }
    }
    if let Some((m, (mine, sig), _)) = &abuse {
        abusive_subshare(&state, m, &plan, "again", from, mine, Some(sig)).await;
    }
    Ok(())
}

/// Sends `m` a sub-share it must refuse, and logs its answer (a test build
/// told to abuse: `crate::byzantine`).
async fn abusive_subshare(
    state: &State,
    m: &Member,
    plan: &Plan,
    kind: &str,
    from: u8,
    sealed: &[u8],
    signature: Option<&HybridSignature>,
) {
    let msg = Message::Subshare {
        round: plan.round,
        from,
        sealed: sealed.to_vec(),
        signature: signature.cloned(),
    };
    let answer = match state
        .client
        .post(m, "/v1/reshare", msg.encode(), 1 << 16)
        .await
    {
        Ok(r) => format!("{} {}", r.status, String::from_utf8_lossy(&r.body).trim()),
        Err(e) => e.to_string(),
    };
    tracing::warn!(peer = %m.id, "byzantine test build: abusive sub-share {kind}: {answer}");
}

async fn on_subshare(
    state: Arc<State>,
    caller: String,
    round: [u8; 16],
    from: u8,
    sealed: Vec<u8>,
    signature: Option<HybridSignature>,
) -> Result<String, Failure> {
    let sealed_hash = shard_hash(&sealed);
    let refused = |r: Refused| refusal(r, &caller);
    let (plan, my_index, taken) = {
        let r = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = r.get(&round).ok_or_else(|| bad(404, "unknown round"))?;
        let taken: BTreeSet<u8> = r.subs.keys().copied().collect();
        (r.plan.clone(), r.my_index, taken)
    };
    let (manifest, _) = rounds::current_manifest(&state, &plan.vault_id)?;
    let dealer = rounds::identity_of(&state, &caller).await?;
    let me = state.identity.public().fingerprint();
    let receiving = Receiving {
        plan: &plan,
        my_index,
        current: manifest.body(),
        me: &me,
        f: crate::proposals::rules(&state, &plan.vault_id).f,
        taken: &taken,
    };
    // The sender must be the dealer it claims to be, before we open anything.
    let my_index = receiving
        .sender(&dealer.fingerprint(), from)
        .map_err(refused)?;
    // Sealed to us, before spending a decryption on it.
    let s = SealedShard::parse(&sealed).map_err(|e| bad(400, e))?;
    receiving.sealed_to(&s.header.recipient).map_err(refused)?;
    let key = state.identity.clone();
    let p = plan.clone();
    let (record, verified, signature) = blocking(move || {
        let r = s.open(&key).map_err(|e| bad(422, e))?;
        let verified = signature.as_ref().map(|sig| {
            let statement = subshare_statement(&p, from, my_index, &r.share.value);
            dealer
                .verifying_key()
                .verify(SUBSHARE_DOMAIN, &statement, sig)
                .map_err(|e| e.to_string())
        });
        Ok((r, verified, signature))
    })
    .await?;
    receiving.contents(&record, verified).map_err(refused)?;
    let value = Received {
        value: record.share.value.clone(),
        signature,
    };
    let complete = {
        let mut all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = all
            .get_mut(&round)
            .ok_or_else(|| bad(404, "unknown round"))?;
        if r.subs.contains_key(&from) {
            // Taken meanwhile by a concurrent copy.
            return Err(refused(Refused::Replay(from)));
        }
        r.subs.insert(from, value);
        if r.subs.len() == r.plan.dealers.len() {
            Some(
                r.plan
                    .dealers
                    .iter()
                    .map(|d| r.subs[d].value.clone())
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        }
    };
    // Our receipt: we hold this sub-share, and say so under our name.
    let receipt = state
        .identity
        .signing_key()
        .sign(
            RECEIPT_DOMAIN,
            &receipt_statement(&plan, from, my_index, &sealed_hash),
        )
        .map_err(|e| bad(500, e))?;
    let answer = if crate::byzantine::withhold_receipts() {
        "accepted\n".to_string()
    } else {
        format!("accepted\nreceipt {}\n", signature_hex(&receipt))
    };
    if let Some(subs) = complete {
        if crate::byzantine::silent_recipient()
            || crate::byzantine::blamed_dealer(&plan.dealers).is_some()
        {
            return Ok(answer);
        }
        finish(state, plan, my_index, subs).await?;
    }
    Ok(answer)
}

/// The answer to a refused sub-share, naming its sender.
fn refusal(r: Refused, caller: &str) -> Failure {
    bad(r.status(), format!("{r} (sent by {caller})"))
}

/// Combines the sub-shares into our new share and keeps it pending.
async fn finish(
    state: Arc<State>,
    plan: Plan,
    my_index: u8,
    subs: Vec<Zeroizing<Vec<u8>>>,
) -> Result<(), Failure> {
    let (manifest, shard) = rounds::current_manifest(&state, &plan.vault_id)?;
    let t_old = manifest.body().threshold;
    let keys = state.keys.clone();
    let signer = state.identity.clone();
    let n_new = plan.recipients.len() as u8;
    let p = plan.clone();
    let (record, sealed, check) = blocking(move || {
        let share = vault::repair::combine_subshares(&p.dealers, &subs, my_index)
            .map_err(|e| bad(422, e))?;
        // Public values for the dealing check, when there are more
        // dealers than the threshold to check against.
        let check = (p.dealers.len() > usize::from(t_old))
            .then(|| vault::dealing::check_values(&p.dealers, t_old, &subs))
            .transpose()
            .map_err(|e| bad(422, e))?
            .map(|mut c| {
                crate::byzantine::corrupt_check_once(&mut c);
                crate::byzantine::corrupt_check_always(&mut c);
                c
            })
            .map(|c| {
                let statement = check_statement(&p, my_index, &c);
                signer
                    .signing_key()
                    .sign(CHECK_DOMAIN, &statement)
                    .map(|sig| (c, sig))
                    .map_err(|e| bad(500, e))
            })
            .transpose()?;
        let suite = SealedShard::parse(&shard)
            .map_err(|e| bad(500, e))?
            .header
            .suite;
        let record = ShareRecord {
            vault_id: p.vault_id,
            epoch: p.epoch + 1,
            threshold: p.t_new,
            n: n_new,
            share,
        };
        let sealed = keys.seal_own(&record, suite).map_err(|e| bad(500, e))?;
        crate::unsealed::remember(&sealed, &keys, &record);
        Ok((record, sealed, check))
    })
    .await?;
    let reply = PrepareReply {
        index: my_index,
        recipient: state.identity.public().fingerprint().to_hex(),
        recipient_name: state.identity.public().name().to_string(),
        blob_hash: hex::encode(shard_hash(&sealed)),
        share_commitment: hex::encode(record.commitment()),
    };
    let entry_signature = entry_statement(&plan, &reply)
        .ok_or_else(|| bad(500, "our own entry is not well formed"))
        .and_then(|st| {
            state
                .identity
                .signing_key()
                .sign(ENTRY_DOMAIN, &st)
                .map_err(|e| bad(500, e))
        })?;
    crate::epochs::save_pending(&state, plan.vault_id, &sealed).await?;
    state
        .pending
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .insert(
            plan.vault_id,
            Prepared {
                from_epoch: plan.epoch,
                index: my_index,
                sealed,
                adopt: None,
                origin: Origin::Reshare(plan.round),
            },
        );
    if let Some(r) = state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get_mut(&plan.round)
    {
        r.done = Some(reply);
        r.check = check;
        r.entry_signature = Some(entry_signature);
    }
    tracing::info!(round = %hex::encode(plan.round), index = my_index, "re-share: new share ready");
    Ok(())
}

/// `GET /v1/reshare/{round}`: our entry for the next manifest, once ready.
pub fn status(state: &State, round: &[u8; 16]) -> Option<serde_json::Value> {
    let all = state.reshares.lock().ok()?;
    let r = all.get(round)?;
    let mut missing: Vec<u8> = r
        .plan
        .dealers
        .iter()
        .copied()
        .filter(|d| !r.subs.contains_key(d))
        .collect();
    if let Some(d) = crate::byzantine::blamed_dealer(&r.plan.dealers) {
        missing = vec![d];
    }
    Some(serde_json::json!({
        "complete": r.done.is_some(),
        "received": r.subs.len(),
        "missing_from": missing,
        "entry": r.done,
        "check": r.check.as_ref().map(|(c, _)| c.iter().map(hex::encode).collect::<Vec<_>>()),
        "check_signature": r.check.as_ref().map(|(_, sig)| signature_hex(sig)),
        "entry_signature": r.entry_signature.as_ref().map(signature_hex),
    }))
}
