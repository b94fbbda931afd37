//! The facts a healing decision needs, gathered from our failure detector
//! and our peers: who is live, what is lost ([`assess`]), and each fact
//! [`transition::heal::decide`] asks for as it reaches it.

use crate::config::Member;
use crate::rounds;
use crate::state::State;
use crate::transition::heal::{Decided, Log, MemberId, Need, Next, Pass, Probe, Step};
use crate::transition::{self};
use mesh_agent::detector::State as MemberState;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::identity::Fingerprint;
use vault::manifest::{ManifestBody, VaultId};

/// Live members by identity fingerprint (`None` is ourselves); `None` if
/// the view is not settled: some live member's identity could not be
/// fetched, some member is suspect or dead for less than `grace`, or we
/// started less than `grace` ago.
pub(super) async fn live_view(
    state: &Arc<State>,
    grace: Duration,
) -> Option<BTreeMap<Fingerprint, Option<Member>>> {
    let now = Instant::now();
    if now.saturating_duration_since(state.started) < grace {
        return None;
    }
    {
        let d = state.detector.lock().ok()?;
        for m in &state.members() {
            match d.state(&m.id)? {
                MemberState::Alive => {}
                MemberState::Suspect => return None,
                MemberState::Dead => {
                    if d.dead_for(&m.id, now)? < grace {
                        return None;
                    }
                }
            }
        }
    }
    let mut view = BTreeMap::new();
    view.insert(state.identity.public().fingerprint(), None);
    for m in &state.members() {
        let alive = state.detector.lock().ok()?.state(&m.id) == Some(MemberState::Alive);
        if alive {
            match rounds::identity_of(state, &m.id).await {
                Ok(p) => {
                    view.insert(p.fingerprint(), Some(m.clone()));
                }
                // A member that lies about its identity holds nothing in
                // our view and is no spare; it cannot stall healing.
                Err((rounds::IMPOSTOR, _)) => {}
                Err(_) => return None,
            }
        }
    }
    Some(view)
}

/// What our own view says about the holders of one vault
/// ([`transition::heal::Assessment`]).
pub type Assessment = transition::heal::Assessment<Member>;

impl MemberId for Member {
    fn member_id(&self) -> &str {
        &self.id
    }
}

/// Judges, on our own view only, which shares of the epoch `b` are lost;
/// `None` while the view is not settled (see [`live_view`]). Healing
/// proposes from this, and a holder votes for a proposal only if this
/// agrees (`crate::proposals`).
pub async fn assess(
    state: &Arc<State>,
    id: &VaultId,
    b: &ManifestBody,
    grace: Duration,
) -> Option<Assessment> {
    let mut view = live_view(state, grace).await?;
    let returning: BTreeMap<u8, (Fingerprint, Member)> = b
        .shards
        .iter()
        .filter_map(|e| match view.get(&e.recipient) {
            Some(Some(mem)) if crate::custody::missing(state, id, &mem.id) => {
                Some((e.index, (e.recipient, mem.clone())))
            }
            _ => None,
        })
        .collect();
    // A holder that failed custody counts as lost, ourselves included.
    let own_corrupt = state.own_corrupt.lock().is_ok_and(|c| c.contains(id));
    view.retain(|_, m| match m {
        None => !own_corrupt,
        Some(m) => !crate::custody::failed(state, id, &m.id),
    });
    let lost: Vec<u8> = b
        .shards
        .iter()
        .filter(|e| !view.contains_key(&e.recipient))
        .map(|e| e.index)
        .collect();
    Some(Assessment {
        view,
        returning,
        lost,
    })
}

/// Runs [`transition::heal::decide`] on a settled assessment of `b`,
/// gathering each fact it asks for, and returns its step with, for a
/// repair, when the repair started (before our own shard was opened).
pub(super) async fn gather_and_decide(
    state: &Arc<State>,
    id: VaultId,
    b: &ManifestBody,
    assessed: &Assessment,
    rules: transition::Rules,
) -> Result<(Step<Member>, Option<Instant>), String> {
    let mut pass = Pass {
        me: &state.id,
        body: b,
        assessed,
        rules,
        refresh: state.refresh,
        refresh_owed: None,
        newer: Probe::NotYet,
        log_on: state.consensus.get().is_some(),
        log: None,
        named: None,
        lost_for: None,
        reshare_after: state.reshare_after,
        share_len: None,
        round_ids: Vec::new(),
        signed_copy: crate::successor::to_finish(state, &id, b.epoch)
            .map(|q| (q.manifest, q.proposal)),
        disputes: state
            .store
            .lock()
            .map(|s| s.helper_disputes(&id, b.epoch))
            .unwrap_or_default(),
    };
    // When the repair started: before our own shard is opened.
    let mut started = None;
    let step = loop {
        pass.lost_for = state
            .lost_since
            .lock()
            .map_err(|_| "poisoned".to_string())?
            .get(&id)
            .map(|t| t.elapsed());
        match transition::heal::decide(&pass).map_err(|e| e.to_string())? {
            Next::Step(step) => break step,
            Next::Need(Need::RefreshOwed) => {
                pass.refresh_owed = Some(
                    state
                        .store
                        .lock()
                        .map_err(|_| "store lock poisoned".to_string())?
                        .refresh_owed(&id),
                )
            }
            Next::Need(Need::NewerEpoch { ask }) => {
                pass.newer = match newer_epoch_at(state, &id, b.epoch, &ask).await {
                    Some((peer, epoch)) => Probe::Newer { peer, epoch },
                    None => Probe::NoneNewer,
                }
            }
            Next::Need(Need::Log) => match state.consensus.get() {
                Some(c) => {
                    pass.log = Some(Log {
                        decided: c.decision(&id, b.epoch).map(|d| Decided {
                            manifest: d.manifest,
                            certificate: d.certificate,
                        }),
                        has_leader: c.leader().is_some(),
                    })
                }
                None => pass.log_on = false,
            },
            Next::Need(Need::Named) => {
                pass.named = Some(
                    state
                        .store
                        .lock()
                        .map_err(|_| "store lock poisoned".to_string())?
                        .named(&id)
                        .map_err(|e| e.to_string())?,
                )
            }
            Next::Need(Need::Repair { round_ids }) => {
                started.get_or_insert_with(Instant::now);
                pass.share_len = Some(own_share_len(state, &id).await?);
                pass.round_ids = (0..round_ids)
                    .map(|_| {
                        let mut round = [0u8; 16];
                        aws_lc_rs::rand::fill(&mut round).map(|()| round)
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|_| "rng failure".to_string())?;
            }
        }
    };
    Ok((step, started))
}

/// Length of the share we hold of `id` (all shares of a vault have one
/// length); opens our shard, which the round is about to do anyway.
pub(super) async fn own_share_len(state: &Arc<State>, id: &VaultId) -> Result<usize, String> {
    let shard = state
        .store
        .lock()
        .map_err(|_| "store lock poisoned".to_string())?
        .get(id)
        .map(|h| h.shard.clone())
        .ok_or("we hold no shard of this vault")?;
    let keys = state.keys.clone();
    tokio::task::spawn_blocking(move || {
        crate::unsealed::open(&shard, &keys)
            .map(|r| r.share.value.len())
            .map_err(|e| format!("our own shard: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The first of `members` that reports a later epoch of `id` than `ours`,
/// with that epoch.
pub(super) async fn newer_epoch_at(
    state: &Arc<State>,
    id: &VaultId,
    ours: u64,
    members: &[Member],
) -> Option<(String, u64)> {
    // All at once; the answers are looked at in the holders' order.
    let asks: Vec<_> = members
        .iter()
        .cloned()
        .map(|m| {
            let (state, vault) = (state.clone(), id.to_string());
            tokio::spawn(async move {
                let r = state.client.get(&m, "/v1/hello", 64 << 10).await.ok()?;
                let h = serde_json::from_slice::<crate::api::Hello>(&r.body).ok()?;
                h.vaults
                    .iter()
                    .find(|(v, e)| *v == vault && *e > ours)
                    .map(|(_, e)| (m.id.clone(), *e))
            })
        })
        .collect();
    let mut found = None;
    for a in asks {
        if let Ok(Some(newer)) = a.await {
            found = found.or(Some(newer));
        }
    }
    found
}
