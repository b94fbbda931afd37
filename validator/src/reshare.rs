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
//! epoch or the secret. Dealers are trusted to deal honestly (no
//! verifiable secret sharing over GF(256)); a wrong sub-share yields a
//! manifest whose shares do not recombine, which `vault recover` reports
//! against the secret commitment — the previous epoch is not deleted by
//! anyone who did not sign the transition.

use crate::config::Member;
use crate::epochs::{Origin, PrepareReply, Prepared};
use crate::rounds::{self, bad, blocking, Failure};
use crate::state::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::identity::{Fingerprint, PublicIdentity};
use vault::manifest::{shard_hash, VaultId};
use vault::seal::SealedShard;
use vault::share::{ShareRecord, MAX_SHARE_LEN};
use zeroize::Zeroizing;

/// Wire kind of re-share messages.
pub const RESHARE_KIND: Kind = Kind {
    magic: *b"PQVX",
    name: "pqvault re-share message",
    version: 1,
};

const MAX_SEALED: usize = MAX_SHARE_LEN + 16 * 1024;

/// How long a round we dealt in blocks another round for the same epoch:
/// longer than a leader waits for a round (20 s) before it gives up.
pub const REDEAL_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The leader's proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Random round id.
    pub round: [u8; 16],
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch being left.
    pub epoch: u64,
    /// New threshold.
    pub t_new: u8,
    /// Dealers: `t` share indices of `epoch`, sorted, distinct.
    pub dealers: Vec<u8>,
    /// Recipients: recipient `k` (1-based) gets new index `k`.
    pub recipients: Vec<Fingerprint>,
}

/// A re-share message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The plan, from the leader to every recipient and dealer.
    Plan(Plan),
    /// A dealer's sub-share for one recipient.
    Subshare {
        /// Round id.
        round: [u8; 16],
        /// Dealer's share index in the old epoch.
        from: u8,
        /// `PQVS` sealed to the recipient (epoch + 1, new t and n, index k).
        sealed: Vec<u8>,
    },
}

impl Message {
    /// Canonical encoding: `"PQVX" u16 type:u8 round:[16]`, then for a plan
    /// `vault_id:[16] epoch:u64 t_new:u8 dealers:var count:u8
    /// count×fingerprint:[32]`, for a sub-share `from:u8 sealed:var`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(RESHARE_KIND);
        match self {
            Message::Plan(p) => {
                w.u8(1)
                    .bytes(&p.round)
                    .bytes(p.vault_id.as_bytes())
                    .u64(p.epoch)
                    .u8(p.t_new)
                    .var_bytes(&p.dealers)
                    .u8(p.recipients.len() as u8);
                for r in &p.recipients {
                    w.bytes(r.as_bytes());
                }
            }
            Message::Subshare {
                round,
                from,
                sealed,
            } => {
                w.u8(2).bytes(round).u8(*from).var_bytes(sealed);
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, RESHARE_KIND)?;
        let kind = r.u8("message type")?;
        let round = r.array("round id")?;
        let msg = match kind {
            1 => {
                let vault_id = VaultId::from_bytes(r.array("vault id")?);
                let epoch = r.u64("epoch")?;
                let t_new = r.u8("new threshold")?;
                let dealers = r.var_bytes("dealer list", 255)?.to_vec();
                let count = r.u8("recipient count")?;
                let mut recipients = Vec::with_capacity(count.into());
                for _ in 0..count {
                    recipients.push(Fingerprint::from_bytes(r.array("recipient fingerprint")?));
                }
                Message::Plan(Plan {
                    round,
                    vault_id,
                    epoch,
                    t_new,
                    dealers,
                    recipients,
                })
            }
            2 => Message::Subshare {
                round,
                from: r.u8("dealer index")?,
                sealed: r.var_bytes("sealed sub-share", MAX_SEALED)?.to_vec(),
            },
            other => {
                return Err(FormatError::invalid(
                    "message type",
                    format!("unknown type {other}"),
                ))
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Our part in one re-share round.
pub struct Round {
    plan: Plan,
    /// Our new index, if we are a recipient.
    my_index: Option<u8>,
    /// Sub-shares received, by dealer index.
    subs: BTreeMap<u8, Zeroizing<Vec<u8>>>,
    /// Our entry in the next manifest, once our new share is sealed.
    done: Option<PrepareReply>,
    /// Our public dealing-check values (`vault::dealing`), once computed.
    check: Option<Vec<Vec<u8>>>,
    /// When the round started here (rounds are pruned: `state::prune`).
    started: std::time::Instant,
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
    before - rounds.len()
}

/// Handles a message from member `caller` (authenticated by mTLS).
pub async fn handle(
    state: Arc<State>,
    caller: String,
    body: &[u8],
) -> Result<&'static str, Failure> {
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
        } => on_subshare(state, caller, round, from, sealed).await,
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
    if state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .contains_key(&plan.round)
    {
        return Err(bad(409, "round already known (replay?)"));
    }
    let shard = chain
        .shard
        .clone()
        .ok_or_else(|| bad(409, "re-sharing is among holders; we hold no shard"))?;
    let b = chain.manifest.body().clone();
    let me = state.identity.public().fingerprint();
    let my_index = plan
        .recipients
        .iter()
        .position(|r| *r == me)
        .map(|k| k as u8 + 1);
    let my_old = b.shards.iter().find(|e| e.recipient == me).map(|e| e.index);
    let dealer = my_old.filter(|i| plan.dealers.contains(i));
    if my_index.is_none() && dealer.is_none() {
        return Err(bad(422, "we are neither a dealer nor a recipient"));
    }
    if let Some(i) = dealer {
        // One dealing at a time per epoch: a rival plan is refused while
        // the round we dealt in may still complete; after REDEAL_AFTER (the
        // leader has given up on it) a new round may have our share. Each
        // round deals a fresh polynomial, and only one successor of the
        // epoch can be certified, so an abandoned round's shares are inert.
        let mut dealt = state.dealt.lock().map_err(|_| bad(500, "poisoned"))?;
        match dealt.get(&(plan.vault_id, plan.epoch)) {
            Some((r, at)) if *r != plan.round && at.elapsed() < REDEAL_AFTER => {
                return Err(bad(
                    409,
                    "already dealt this epoch in another round that may still complete",
                ))
            }
            _ => {
                dealt.insert(
                    (plan.vault_id, plan.epoch),
                    (plan.round, std::time::Instant::now()),
                );
            }
        }
        drop(dealt);
        let (state2, plan2) = (state.clone(), plan.clone());
        tokio::spawn(async move {
            if let Err((code, why)) = deal(state2, plan2, i, shard).await {
                tracing::warn!(code, "re-share dealing failed: {why}");
            }
        });
    }
    let mut all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
    crate::state::prune(&mut all, |r| r.started);
    all.insert(
        plan.round,
        Round {
            plan,
            my_index,
            subs: BTreeMap::new(),
            done: None,
            check: None,
            started: std::time::Instant::now(),
        },
    );
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
    let sealed: Vec<Vec<u8>> = blocking(move || {
        let parsed = SealedShard::parse(&shard).map_err(|e| bad(500, e))?;
        let suite = parsed.header.suite;
        let record = crate::unsealed::open(&shard, &keys).map_err(|e| bad(500, e))?;
        let mut share = record.share.clone();
        crate::byzantine::corrupt_deal(&mut share.value);
        let subs = vault::repair::deal(&share, t_new, n_new).map_err(|e| bad(500, e))?;
        subs.into_iter()
            .zip(&ids)
            .map(|(share, id)| {
                let r = ShareRecord {
                    vault_id,
                    epoch,
                    threshold: t_new,
                    n: n_new,
                    share,
                };
                vault::seal::seal(&r, suite, id).map_err(|e| bad(500, e))
            })
            .collect()
    })
    .await?;
    for ((_, member), sealed) in to.into_iter().zip(sealed) {
        match member {
            None => {
                on_subshare(state.clone(), state.id.clone(), plan.round, from, sealed).await?;
            }
            Some(m) => {
                let msg = Message::Subshare {
                    round: plan.round,
                    from,
                    sealed,
                };
                rounds::deliver(&state, m, "/v1/reshare", msg.encode())
            }
        }
    }
    tracing::info!(round = %hex::encode(plan.round), "re-share: dealt our share");
    Ok(())
}

async fn on_subshare(
    state: Arc<State>,
    caller: String,
    round: [u8; 16],
    from: u8,
    sealed: Vec<u8>,
) -> Result<&'static str, Failure> {
    let (plan, my_index) = {
        let r = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = r.get(&round).ok_or_else(|| bad(404, "unknown round"))?;
        (r.plan.clone(), r.my_index)
    };
    let my_index = my_index.ok_or_else(|| bad(422, "we are not a recipient in this round"))?;
    // The sender must be the dealer it claims to be.
    let (manifest, _) = rounds::current_manifest(&state, &plan.vault_id)?;
    let caller_fp = rounds::identity_of(&state, &caller).await?.fingerprint();
    let actual = manifest
        .body()
        .shards
        .iter()
        .find(|e| e.recipient == caller_fp)
        .map(|e| e.index);
    if actual != Some(from) {
        return Err(bad(403, format!("{caller} does not hold share {from}")));
    }
    if !plan.dealers.contains(&from) {
        return Err(bad(
            403,
            format!("share {from} is not a dealer in this round"),
        ));
    }
    let key = state.identity.clone();
    let n_new = plan.recipients.len() as u8;
    let (vault_id, epoch, t_new) = (plan.vault_id, plan.epoch + 1, plan.t_new);
    let value = blocking(move || {
        let s = SealedShard::parse(&sealed).map_err(|e| bad(400, e))?;
        if s.header.recipient != key.public().fingerprint() {
            return Err(bad(422, "sub-share is not sealed to us"));
        }
        let r = s.open(&key).map_err(|e| bad(422, e))?;
        if (r.vault_id, r.epoch, r.threshold, r.n, r.share.index)
            != (vault_id, epoch, t_new, n_new, my_index)
        {
            return Err(bad(
                422,
                "sub-share is for another vault, epoch, (t, n) or index",
            ));
        }
        Ok(r.share.value.clone())
    })
    .await?;
    let complete = {
        let mut all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = all
            .get_mut(&round)
            .ok_or_else(|| bad(404, "unknown round"))?;
        if r.subs.contains_key(&from) {
            return Err(bad(
                409,
                format!("already have share {from}'s sub-share (replay?)"),
            ));
        }
        r.subs.insert(from, value);
        if r.subs.len() == r.plan.dealers.len() {
            Some(
                r.plan
                    .dealers
                    .iter()
                    .map(|d| r.subs[d].clone())
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        }
    };
    if let Some(subs) = complete {
        finish(state, plan, my_index, subs).await?;
    }
    Ok("accepted\n")
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
                c
            });
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
        r.subs.clear();
    }
    tracing::info!(round = %hex::encode(plan.round), index = my_index, "re-share: new share ready");
    Ok(())
}

/// `GET /v1/reshare/{round}`: our entry for the next manifest, once ready.
pub fn status(state: &State, round: &[u8; 16]) -> Option<serde_json::Value> {
    let all = state.reshares.lock().ok()?;
    let r = all.get(round)?;
    Some(serde_json::json!({
        "complete": r.done.is_some(),
        "received": r.subs.len(),
        "entry": r.done,
        "check": r.check.as_ref().map(|c| c.iter().map(hex::encode).collect::<Vec<_>>()),
    }))
}

/// Our own check values of `round`, once our new share is made.
fn own_check(state: &State, round: &[u8; 16]) -> Option<Vec<Vec<u8>>> {
    state.reshares.lock().ok()?.get(round)?.check.clone()
}

/// Check values a recipient published (`GET /v1/reshare/{round}`):
/// untrusted, so bounded and parsed strictly.
fn parse_check(v: &serde_json::Value, count: usize, len: usize) -> Option<Vec<Vec<u8>>> {
    let list = v.get("check")?.as_array()?;
    if list.len() != count {
        return None;
    }
    list.iter()
        .map(|h| hex::decode(h.as_str()?).ok().filter(|b| b.len() == len))
        .collect()
}

/// Verify before delete: before we sign away the epoch a re-share leaves,
/// every recipient's published check values must show that the dealers
/// dealt a sharing of the same secret (`vault::dealing`). We ask each
/// recipient ourselves, over mTLS, so no leader can stand in for them. A
/// failed check names the dealers or recipients it can, counts them, and
/// refuses: the attempt fails and the old epoch stays.
pub async fn check_dealing(
    state: &Arc<State>,
    round: [u8; 16],
    current: &vault::manifest::ManifestBody,
    rules: &crate::transition::Rules,
) -> Result<(), Failure> {
    let t_old = current.threshold;
    let plan = state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get(&round)
        .map(|r| r.plan.clone())
        .ok_or_else(|| {
            bad(
                409,
                "the re-share round is gone here; cannot check its dealing",
            )
        })?;
    let spare = plan.dealers.len().saturating_sub(usize::from(t_old));
    if spare == 0 {
        // Nothing to check against. A vault whose policy expects liars
        // never gets here (authorize asks for t + f dealers).
        return if rules.f == 0 {
            Ok(())
        } else {
            Err(bad(
                409,
                "a re-share under f >= 1 needs more dealers than t",
            ))
        };
    }
    let values = gather_check_values(state, &plan, spare).await?;
    let verdict = vault::dealing::verify(&plan.dealers, t_old, plan.t_new, rules.f, &values)
        .map_err(|e| bad(422, e))?;
    let vault::dealing::Verdict::Inconsistent {
        dealers,
        recipients,
    } = verdict
    else {
        return Ok(());
    };
    let (culprit, why) = describe_bad_dealing(&plan, &dealers, &recipients);
    state.metrics.bad_dealing(culprit);
    tracing::error!(vault = %plan.vault_id, culprit, "{why}; keeping epoch {}", plan.epoch);
    after_bad_dealing(state, &plan, current, &dealers).await;
    Err(bad(422, why))
}

/// Every recipient's check values for `plan`, in recipient order: ours
/// from memory, the others' asked of each over mTLS (`spare` = d - t
/// values each, of our own values' length).
async fn gather_check_values(
    state: &Arc<State>,
    plan: &Plan,
    spare: usize,
) -> Result<Vec<(u8, Vec<Vec<u8>>)>, Failure> {
    let me = state.identity.public().fingerprint();
    let path = format!("/v1/reshare/{}", hex::encode(plan.round));
    let mine = own_check(state, &plan.round)
        .ok_or_else(|| bad(409, "our own check values are not ready"))?;
    let len = mine.first().map_or(0, Vec::len);
    let asks = plan.recipients.iter().enumerate().map(|(k, fp)| {
        let (state, path, mine) = (state.clone(), path.clone(), mine.clone());
        let fp = *fp;
        async move {
            let k = k as u8 + 1;
            if fp == me {
                return Ok((k, mine));
            }
            let (m, _) = rounds::member_with(&state, &fp).await?;
            let r = state
                .ctl
                .get(&m, &path, 1 << 16)
                .await
                .map_err(|e| bad(409, format!("recipient {k} ({}): {e}", m.id)))?;
            serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| parse_check(&v, spare, len))
                .map(|c| (k, c))
                .ok_or_else(|| {
                    bad(
                        409,
                        format!("recipient {k} ({}) published no valid check values", m.id),
                    )
                })
        }
    });
    futures_util::future::try_join_all(asks).await
}

/// The metric label and the message for a failed dealing check that named
/// `dealers` (old share indices) and `recipients` (new indices).
fn describe_bad_dealing(plan: &Plan, dealers: &[u8], recipients: &[u8]) -> (&'static str, String) {
    let culprit = match (dealers.is_empty(), recipients.is_empty()) {
        (false, _) => "dealer",
        (true, false) => "recipient",
        (true, true) => "unknown",
    };
    let mut named: Vec<String> = dealers
        .iter()
        .map(|d| format!("dealer share {d}"))
        .collect();
    named.extend(
        recipients
            .iter()
            .map(|k| format!("values of new share {k}")),
    );
    let named = if named.is_empty() {
        "more liars than the check can place".to_string()
    } else {
        named.join(", ")
    };
    let why = format!(
        "bad dealing in re-share round {} of epoch {}: {named}",
        hex::encode(plan.round),
        plan.epoch
    );
    (culprit, why)
}

/// What we do once we saw `plan`'s dealing fail. The attempt can never get
/// our signature (the check is deterministic on the values we fetched), so
/// our vote for it is released, and our dealing with it, and the next
/// attempt need not wait for the timeouts (dealing a share again is safe:
/// no t' points of one polynomial reach anyone). A named dealer's share
/// counts as lost from now on, like a failed custody check: the next
/// attempt leaves it out.
async fn after_bad_dealing(
    state: &Arc<State>,
    plan: &Plan,
    current: &vault::manifest::ManifestBody,
    dealers: &[u8],
) {
    let key = (plan.vault_id, plan.epoch);
    if let Ok(mut dealt) = state.dealt.lock() {
        if dealt.get(&key).is_some_and(|(r, _)| *r == plan.round) {
            dealt.remove(&key);
        }
    }
    if let Ok(store) = state.store.lock() {
        if let Err(e) = store.release_proposal_vote(&plan.vault_id, plan.epoch) {
            tracing::warn!("could not release our vote after a bad dealing: {e}");
        }
    }
    let me = state.identity.public().fingerprint();
    for d in dealers {
        let Some(fp) = current
            .entry(*d)
            .map(|e| e.recipient)
            .filter(|fp| *fp != me)
        else {
            continue;
        };
        if let Ok((m, _)) = rounds::member_with(state, &fp).await {
            if let Ok(mut b) = state.bad_dealers.lock() {
                b.insert((plan.vault_id, m.id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            round: [7; 16],
            vault_id: VaultId::from_bytes([3; 16]),
            epoch: 4,
            t_new: 3,
            dealers: vec![1, 2, 4, 6],
            recipients: (1..=5u8)
                .map(|i| Fingerprint::from_bytes([i; 32]))
                .collect(),
        }
    }

    #[test]
    fn messages_round_trip_and_refuse_garbage() {
        let msgs = [
            Message::Plan(plan()),
            Message::Subshare {
                round: [9; 16],
                from: 2,
                sealed: vec![1, 2, 3],
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(Message::decode(&bytes).unwrap(), m);
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "truncated at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode(&longer).is_err(), "trailing byte");
        }
        let mut bad_type = Message::Plan(plan()).encode();
        bad_type[6] = 9;
        assert!(Message::decode(&bad_type).is_err());
    }

    /// Both ways against vectors laid out by hand from docs/formats.md
    /// (`tests/vectors/make_pqvx.py`): the bytes decode to the documented
    /// fields, and those fields encode to the same bytes.
    #[test]
    fn messages_match_the_checked_in_vectors() {
        let read = |s: &str| hex::decode(s.trim()).unwrap();
        let plan_bytes = read(include_str!("../tests/vectors/pqvx-v1-plan.hex"));
        let plan = Message::Plan(Plan {
            round: [0x11; 16],
            vault_id: VaultId::from_bytes([0x22; 16]),
            epoch: 7,
            t_new: 3,
            dealers: vec![1, 2, 5],
            recipients: (0..5u8)
                .map(|i| Fingerprint::from_bytes([0x31 + i; 32]))
                .collect(),
        });
        assert_eq!(Message::decode(&plan_bytes).unwrap(), plan);
        assert_eq!(plan.encode(), plan_bytes);
        let sub_bytes = read(include_str!("../tests/vectors/pqvx-v1-subshare.hex"));
        let sub = Message::Subshare {
            round: [0x11; 16],
            from: 2,
            sealed: b"PQVS-not-a-real-shard".to_vec(),
        };
        assert_eq!(Message::decode(&sub_bytes).unwrap(), sub);
        assert_eq!(sub.encode(), sub_bytes);
    }
}
