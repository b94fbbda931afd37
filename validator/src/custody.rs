//! Custody checks: each validator checks, every `custody.interval_ms`,
//! that the sealed shard it keeps on disk is still the one its manifest
//! commits to, and that every live peer holding a share of the same vault
//! serves exactly its committed shard.
//!
//! A failed check lowers the peer's health score and makes its share count
//! as lost for healing, exactly like a dead holder: the surviving holders
//! rebuild the share at a replacement and certify a new epoch without it.
//! A validator that finds its own shard corrupt reports it (log, metric,
//! `/v1/vaults/{v}/shard` serves what is on disk, so peers see the same)
//! and steps back from leading; it never rewrites or deletes the file
//! (the operator may want it), and it refuses to start on it later.
//!
//! Helpers and signers do not take the leader's word for a failure: before
//! rebuilding or replacing a share whose holder still answers, they fetch
//! its shard themselves ([`holder_replaceable`]).

use crate::config::Member;
use crate::rounds;
use crate::state::State;
use mesh_agent::detector::State as MemberState;
use mesh_agent::health::{Custody, PeerHealth};
use std::sync::Arc;
use std::time::Duration;
use vault::identity::Fingerprint;
use vault::manifest::{shard_hash, ManifestBody, VaultId};
use vault::seal::SealedShard;

/// Largest shard body accepted from a peer.
const MAX_SHARD: usize = 2 << 20;

/// The outcome of checking one holder's shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The shard served hashes to the manifest's entry.
    Ok,
    /// The peer is on another epoch of the vault (a transition is under
    /// way, or it lags): not a custody failure.
    OtherEpoch,
    /// The peer served a shard that is not the committed one.
    Mismatch,
    /// The peer answered but has no shard of the vault.
    Missing,
    /// No answer (transport failure): for the failure detector to judge.
    NoAnswer,
}

impl Verdict {
    /// Label for `pqvault_custody_checks_total{result}`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::OtherEpoch => "other_epoch",
            Verdict::Mismatch => "mismatch",
            Verdict::Missing => "missing",
            Verdict::NoAnswer => "no_answer",
        }
    }

    /// True if the holder has provably lost its committed shard.
    pub fn failed(self) -> bool {
        matches!(self, Verdict::Mismatch | Verdict::Missing)
    }
}

/// Every `interval`, checks our own shards and one peer's, forever: peers
/// in turn, so the load per validator is the same at any mesh size (SWIM's
/// constant load per member), while every holder is still checked by the
/// mesh about once per interval.
pub async fn custody_loop(state: Arc<State>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Start at a different peer on each validator.
    let mut turn = state
        .id
        .bytes()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b.into()));
    loop {
        tick.tick().await;
        check_turn(&state, turn).await;
        turn = turn.wrapping_add(1);
    }
}

/// Checks our own shard of every vault, then the `turn`-th (modulo their
/// number) live peer holding a share of a vault we hold.
pub async fn check_turn(state: &Arc<State>, turn: usize) {
    let vaults: Vec<VaultId> = match state.store.lock() {
        Ok(s) => s.vaults().map(|(id, _)| *id).collect(),
        Err(_) => return,
    };
    let mut peers: Vec<(ManifestBody, Member, Fingerprint)> = Vec::new();
    for id in vaults {
        let Ok((manifest, _)) = rounds::current_manifest(state, &id) else {
            continue;
        };
        let body = manifest.body().clone();
        check_own(state, &body);
        for m in state.members() {
            let alive = state
                .detector
                .lock()
                .ok()
                .and_then(|d| d.state(&m.id))
                .is_some_and(|s| s == MemberState::Alive);
            if !alive {
                continue;
            }
            let Ok(p) = rounds::identity_of(state, &m.id).await else {
                continue;
            };
            if body.shards.iter().any(|e| e.recipient == p.fingerprint()) {
                peers.push((body.clone(), m, p.fingerprint()));
            }
        }
    }
    if peers.is_empty() {
        return;
    }
    let (body, m, fp) = &peers[turn % peers.len()];
    let v = check_peer(state, m, body, fp).await;
    record(state, &body.vault_id, &m.id, v);
}

fn check_own(state: &Arc<State>, body: &ManifestBody) {
    let me = state.identity.public().fingerprint();
    let Some(entry) = body.shards.iter().find(|e| e.recipient == me) else {
        return;
    };
    let on_disk = state
        .store
        .lock()
        .ok()
        .map(|s| s.shard_on_disk(&body.vault_id));
    let ok = matches!(&on_disk, Some(Ok(bytes)) if shard_hash(bytes) == entry.blob_hash);
    let Ok(mut corrupt) = state.own_corrupt.lock() else {
        return;
    };
    let was = corrupt.contains(&body.vault_id);
    if ok {
        corrupt.remove(&body.vault_id);
    } else if !was {
        let why = match on_disk {
            Some(Err(e)) => e.to_string(),
            _ => "hash differs from the manifest".to_string(),
        };
        tracing::error!(vault = %body.vault_id, epoch = body.epoch, "our stored shard is corrupt ({why}); it will be rebuilt elsewhere");
        corrupt.insert(body.vault_id);
    }
    state
        .metrics
        .custody_checks
        .with_label_values(&[state.id.as_str(), if ok { "ok" } else { "mismatch" }])
        .inc();
}

/// The answer to a custody challenge: HMAC-SHA256 keyed by the checker's
/// 32-byte nonce over a domain label and the sealed shard as it is on disk.
pub fn challenge_mac(nonce: &[u8], shard: &[u8]) -> [u8; 32] {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, nonce);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(b"pqvault custody challenge v1\0");
    ctx.update(shard);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Checks `member`'s shard of `body.vault_id` against the entry for `fp`:
/// by challenge when we keep a verified copy of it for this epoch (a keyed
/// hash under a fresh nonce, 100 bytes instead of the shard), else by
/// fetching the whole shard, which we then keep for the next checks.
pub async fn check_peer(
    state: &Arc<State>,
    member: &Member,
    body: &ManifestBody,
    fp: &Fingerprint,
) -> Verdict {
    let Some(entry) = body.shards.iter().find(|e| e.recipient == *fp) else {
        return Verdict::Missing;
    };
    let copy = state
        .custody_copies
        .lock()
        .ok()
        .and_then(|c| c.get(&(body.vault_id, *fp)).cloned())
        .filter(|(epoch, _)| *epoch == body.epoch);
    if let Some((_, copy)) = copy {
        if let Some(v) = challenge(state, member, body, &copy).await {
            return v;
        }
    }
    let path = format!("/v1/vaults/{}/shard", body.vault_id);
    let r = match state.client.get(member, &path, MAX_SHARD).await {
        Ok(r) => r,
        Err(_) => return Verdict::NoAnswer,
    };
    match r.status {
        200 => {}
        404 => return Verdict::Missing,
        _ => return Verdict::NoAnswer,
    }
    if shard_hash(&r.body) == entry.blob_hash {
        if let Ok(mut c) = state.custody_copies.lock() {
            c.insert((body.vault_id, *fp), (body.epoch, r.body.to_vec()));
        }
        return Verdict::Ok;
    }
    match SealedShard::parse(&r.body) {
        Ok(s) if s.header.vault_id == body.vault_id && s.header.epoch != body.epoch => {
            Verdict::OtherEpoch
        }
        _ => Verdict::Mismatch,
    }
}

/// One challenge against our verified `copy` of the peer's shard; `None`
/// if the answer is no challenge answer (a validator that predates
/// challenges sends the whole shard): the caller then fetches.
async fn challenge(
    state: &Arc<State>,
    member: &Member,
    body: &ManifestBody,
    copy: &[u8],
) -> Option<Verdict> {
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    let path = format!(
        "/v1/vaults/{}/shard?challenge={}",
        body.vault_id,
        hex::encode(nonce)
    );
    let r = match state.client.get(member, &path, 4096).await {
        Ok(r) => r,
        Err(_) => return Some(Verdict::NoAnswer),
    };
    match r.status {
        200 => {}
        404 => return Some(Verdict::Missing),
        _ => return Some(Verdict::NoAnswer),
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        epoch: u64,
        mac: String,
    }
    let a: Answer = serde_json::from_slice(&r.body).ok()?;
    if a.epoch != body.epoch {
        return Some(Verdict::OtherEpoch);
    }
    let expected = challenge_mac(&nonce, copy);
    let ok = hex::decode(&a.mac)
        .ok()
        .is_some_and(|m| aws_lc_rs::constant_time::verify_slices_are_equal(&m, &expected).is_ok());
    Some(if ok { Verdict::Ok } else { Verdict::Mismatch })
}

fn record(state: &Arc<State>, vault: &VaultId, peer: &str, v: Verdict) {
    state
        .metrics
        .custody_checks
        .with_label_values(&[peer, v.name()])
        .inc();
    if v == Verdict::NoAnswer {
        return;
    }
    if let Ok(mut h) = state.health.lock() {
        let h = h
            .entry(peer.to_string())
            .or_insert_with(|| PeerHealth::new(Default::default()));
        h.set_custody(if v.failed() {
            Custody::Failed
        } else {
            Custody::Ok
        });
        h.set_epoch_agreement(v != Verdict::OtherEpoch);
    }
    if let Ok(mut c) = state.custody.lock() {
        let key = (*vault, peer.to_string());
        if v.failed() {
            if c.insert(key, v).is_none() {
                tracing::warn!(%peer, %vault, result = v.name(), "peer failed its custody check");
            }
        } else {
            c.remove(&key);
        }
    }
}

/// True if `peer`'s latest custody check of `vault` failed, we convicted
/// it of lying, or we saw it withhold its new share in a re-share of the
/// current epoch: either way its share counts as lost.
pub fn failed(state: &State, vault: &VaultId, peer: &str) -> bool {
    state
        .custody
        .lock()
        .is_ok_and(|c| c.contains_key(&(*vault, peer.to_string())))
        || judged_lost(state, vault, peer)
}

/// True if we convicted `peer` of lying about `vault` (`State::convict`:
/// a dealing check named it, or it split the signers), or we saw it
/// withhold its new share in a re-share of the current epoch
/// (`crate::reshare`, D57).
fn judged_lost(state: &State, vault: &VaultId, peer: &str) -> bool {
    let key = (*vault, peer.to_string());
    state.convicted.lock().is_ok_and(|b| b.contains(&key))
        || state.withheld.lock().is_ok_and(|w| w.contains_key(&key))
}

/// True if `peer` answers but holds no shard of `vault` at all (a fresh
/// disk): it can take its own share back by repair.
pub fn missing(state: &State, vault: &VaultId, peer: &str) -> bool {
    state
        .custody
        .lock()
        .is_ok_and(|c| c.get(&(*vault, peer.to_string())) == Some(&Verdict::Missing))
}

/// Ids of the holders of `body` that are live in our view: alive in the
/// failure detector (or ourselves) and not failing custody.
pub async fn live_holders(state: &Arc<State>, body: &ManifestBody) -> Vec<String> {
    let me = state.identity.public().fingerprint();
    let own_ok = !state
        .own_corrupt
        .lock()
        .map_or(true, |c| c.contains(&body.vault_id));
    // Only alive members are asked who they are: a dead one may not even
    // refuse the connection.
    let mut alive = std::collections::BTreeMap::new();
    for m in state.members() {
        let up = state
            .detector
            .lock()
            .ok()
            .and_then(|d| d.state(&m.id))
            .is_some_and(|s| s == MemberState::Alive);
        if up {
            if let Ok(p) = rounds::identity_of(state, &m.id).await {
                alive.insert(p.fingerprint(), m.id);
            }
        }
    }
    let mut out = Vec::new();
    for e in &body.shards {
        if e.recipient == me {
            if own_ok {
                out.push(state.id.clone());
            }
            continue;
        }
        if let Some(id) = alive.get(&e.recipient) {
            if !failed(state, &body.vault_id, id) {
                out.push(id.clone());
            }
        }
    }
    out
}

/// True if the holder of `fp` in `body` may be replaced: it does not
/// answer, or it answers and fails a custody check we make now.
pub async fn holder_replaceable(state: &Arc<State>, body: &ManifestBody, fp: &Fingerprint) -> bool {
    let me = state.identity.public().fingerprint();
    if *fp == me {
        check_own(state, body);
        return state
            .own_corrupt
            .lock()
            .is_ok_and(|c| c.contains(&body.vault_id));
    }
    let Ok((member, _)) = rounds::member_with(state, fp).await else {
        return true; // not a member we can reach at all
    };
    if judged_lost(state, &body.vault_id, &member.id) {
        return true; // a dealing check named it, or it withheld: lost
    }
    if state.probe_direct(&member).await.is_none() {
        return true;
    }
    let v = check_peer(state, &member, body, fp).await;
    record(state, &body.vault_id, &member.id, v);
    v.failed()
}
