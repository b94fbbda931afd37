//! Autonomous healing: the daemon repairs lost shares onto spare members
//! and moves the vault to a certified new epoch, with no operator.
//!
//! Every `heal.interval_ms` each validator looks at each vault it holds. A
//! share is lost when no member that is alive in our failure detector holds
//! it, once the view has settled: no member suspect, every dead member dead
//! for at least `heal.grace_ms`, and ourselves up that long (so a restart
//! or a rolling update never moves the vault to a new epoch). If the live holders still number at least t, spare members (alive,
//! holding no share of the vault) exist for every lost share, and we are
//! the live holder with the lowest member id, we lead: one proposal with a
//! repair round per lost share, certified by a quorum of holders that each
//! judge it on their own view ([`assess`], `crate::proposals`), then the
//! rounds (`crate::rounds`), then prepare, sign and commit the next epoch
//! (`crate::epochs`). The leader proposes; it decides nothing alone. Fewer than t
//! live holders cannot be healed here: the operator must act (docs).
//!
//! Interim until the replicated log exists (docs/decisions.md D12): the
//! lowest-id rule picks the leader from each validator's own view.
//!
//! What a pass does for a vault is decided by the pure
//! [`crate::transition::heal`] (docs/decisions.md D44):
//! `gather_and_decide` gathers each fact it asks for, and `heal_vault`
//! carries out the step it returns.

use crate::config::Member;
use crate::consensus::record::{manifest_digest, Certified, Proposal as LogProposal};
use crate::consensus::ProposalOutcome;
use crate::epochs::{self, encode_commit, PrepareReply};
use crate::proposals;
use crate::repair::Plan;
use crate::reshare;
use crate::retry::{Backoff, Loop, Retry};
use crate::rounds;
use crate::state::State;
use crate::transition::heal::{Decided, Log, MemberId, Need, Next, Pass, Probe, Resume, Step};
use crate::transition::{self, authorize, Action, Proposal};
use mesh_agent::detector::State as MemberState;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::epoch::EpochCertificate;
use vault::identity::Fingerprint;
use vault::manifest::{Manifest, ManifestBody, ShardEntry, VaultId};

/// Runs [`heal_once`] every `interval`, forever.
/// Also runs a pass as soon as the detector's view changes (a member is
/// suspected, declared dead or comes back: [`State::view_changes`]), the
/// moment a dead member's grace period runs out, or when a custody check
/// fails, instead of waiting for the next tick.
pub async fn heal_loop(state: Arc<State>, interval: Duration, grace: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = view_signature(&state);
    let mut views = state.view_changes.subscribe();
    let mut passes = 0u64;
    // Failed passes back off; a success resets.
    let mut retry = Retry::new(&state.metrics, Loop::Heal, backoff(interval));
    let mut not_before = Instant::now();
    // The epochs we held when a pass last failed: a commit since (ours or
    // a peer's) is progress, and ends the backoff.
    let mut failed_at = held_epochs(&state);
    loop {
        let graced = grace_over(&state, grace);
        tokio::select! {
            _ = tick.tick() => {}
            _ = changed(&state, &mut seen) => {}
            Ok(()) = views.changed() => {
                views.borrow_and_update();
                warm_own_shares(&state);
            }
            () = async {
                match graced {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        // A failed pass waits out its backoff, however soon it is woken,
        // unless a vault moved to a new epoch since.
        if held_epochs(&state) != failed_at {
            not_before = Instant::now();
            retry.succeeded();
        }
        if Instant::now() < not_before {
            tokio::time::sleep_until(not_before.into()).await;
        }
        // Woken by the first death we declared, while others already
        // report the next: lead once our own view has caught up (bounded),
        // not a repair of part of the loss followed by another.
        wait_settled(&state, Duration::ZERO, SETTLE_WAIT, Settle::Reports).await;
        // Now and then, a newer operator-signed policy from a peer.
        if passes.is_multiple_of(10) {
            let vaults: Vec<VaultId> = state
                .store
                .lock()
                .map(|s| s.vaults().map(|(id, _)| *id).collect())
                .unwrap_or_default();
            for id in vaults {
                proposals::sync_policy(&state, &id).await;
            }
        }
        passes += 1;
        match heal_once(&state, grace).await {
            Ok(()) => retry.succeeded(),
            Err(e) => {
                let wait = retry.failed();
                not_before = Instant::now() + wait;
                failed_at = held_epochs(&state);
                tracing::warn!(
                    failures = retry.failures(),
                    next_try_ms = wait.as_millis() as u64,
                    "healing: {e}"
                );
                state.metrics.repairs.with_label_values(&["failed"]).inc();
            }
        }
    }
}

/// The epoch of every vault we hold.
fn held_epochs(state: &State) -> Vec<(VaultId, u64)> {
    state
        .store
        .lock()
        .map(|s| s.vaults().map(|(id, h)| (*id, h.epoch)).collect())
        .unwrap_or_default()
}

/// Longest wait between failed healing passes.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// How failed healing passes back off: the first waits two intervals
/// (one tick is skipped), each next one twice as long, up to
/// [`BACKOFF_CAP`].
pub fn backoff(interval: Duration) -> Backoff {
    Backoff::new(interval.saturating_mul(2), BACKOFF_CAP)
}

/// When the latest-declared dead member's grace period runs out, if that
/// is still to come: from then on the view may be settled (`live_view`).
fn grace_over(state: &State, grace: Duration) -> Option<Instant> {
    let now = Instant::now();
    let d = state.detector.lock().ok()?;
    d.states()
        .filter(|(_, s)| *s == MemberState::Dead)
        .filter_map(|(id, _)| d.dead_for(id, now))
        .filter(|dead| *dead < grace)
        .map(|dead| now + (grace - dead))
        .max()
}

/// What healing reacts to: members not alive (and whether suspect or
/// dead), and failed custody checks.
fn view_signature(state: &State) -> (Vec<(String, &'static str)>, usize) {
    let down = state
        .detector
        .lock()
        .map(|d| {
            d.states()
                .filter(|(_, s)| *s != MemberState::Alive)
                .map(|(id, s)| (id.to_string(), s.name()))
                .collect()
        })
        .unwrap_or_default();
    let failed = state.custody.lock().map(|c| c.len()).unwrap_or(0);
    (down, failed)
}

/// Returns once the view signature differs from `seen` (checked every 50
/// ms): custody failures, and a fallback for detector changes.
async fn changed(state: &State, seen: &mut (Vec<(String, &'static str)>, usize)) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = view_signature(state);
        if now != *seen {
            *seen = now;
            return;
        }
    }
}

/// How often the leader asks a round's members whether their new share is
/// ready (a local status request on an open connection: cheap).
const STATUS_POLL: Duration = Duration::from_millis(5);

/// Longest a vote waits for our own view to settle ([`wait_settled`]).
pub const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// What [`wait_settled`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Only that no member is in question (alive to us, reported suspect
    /// by another member, not answering us since: `Detector::in_question`).
    Reports,
    /// That, and what [`live_view`] requires: nobody suspect, every dead
    /// member dead for at least the grace period, we up that long.
    View,
}

/// True if our detector's view is settled as `what` asks, with `grace`
/// for the dead and for our own start.
fn view_settled(state: &State, grace: Duration, what: Settle) -> bool {
    let now = Instant::now();
    if what == Settle::View && now.saturating_duration_since(state.started) < grace {
        return false;
    }
    let Ok(d) = state.detector.lock() else {
        return false;
    };
    if !d.in_question().is_empty() {
        return false;
    }
    what == Settle::Reports
        || state.members().iter().all(|m| match d.state(&m.id) {
            Some(MemberState::Alive) => true,
            Some(MemberState::Dead) => d.dead_for(&m.id, now).is_some_and(|t| t >= grace),
            Some(MemberState::Suspect) | None => false,
        })
}

/// Warms the cache of our own unsealed shares (`crate::unsealed`) while
/// some member is down: a repair we lead or help then opens its share
/// without the HQC decapsulation on its path.
fn warm_own_shares(state: &Arc<State>) {
    let down = state
        .detector
        .lock()
        .is_ok_and(|d| d.states().any(|(_, s)| s != MemberState::Alive));
    if !down {
        return;
    }
    let shards: Vec<(VaultId, Vec<u8>)> = match state.store.lock() {
        Ok(s) => s.vaults().map(|(id, h)| (*id, h.shard.clone())).collect(),
        Err(_) => return,
    };
    for (id, shard) in shards {
        if let Ok(parsed) = vault::seal::SealedShard::parse(&shard) {
            let suite = parsed.header.suite;
            epochs::prewarm(state, id, Some(shard), suite, Vec::new());
        }
    }
}

/// Waits (at most `within`) until our own view is settled as `what`
/// says: a suspicion we hold expires or is refuted, a grace period runs
/// out, a member others report suspect is probed by us. A leader that
/// declared deaths a moment before us then gets our vote on our own view
/// rather than a refusal and a backed-off retry; what we judge is
/// unchanged, and a view that does not settle in time is judged as it is
/// (so a member that keeps reporting others delays us by `within` at most).
pub async fn wait_settled(state: &State, grace: Duration, within: Duration, what: Settle) {
    let deadline = Instant::now() + within;
    let mut views = state.view_changes.subscribe();
    while !view_settled(state, grace, what) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let wake = grace_over(state, grace).map_or(deadline, |t| t.min(deadline));
        // A member in question that answers us, or a removal, records no
        // transition: look again every 10 ms regardless (a lock and a scan).
        let wake = wake.min(now + Duration::from_millis(10));
        tokio::select! {
            r = views.changed() => {
                if r.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Live members by identity fingerprint (`None` is ourselves); `None` if
/// the view is not settled: some live member's identity could not be
/// fetched, some member is suspect or dead for less than `grace`, or we
/// started less than `grace` ago.
async fn live_view(
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

fn fail(what: &str, (code, why): (u16, String)) -> String {
    format!("{what}: {code} {why}")
}

/// One healing pass over every vault held.
pub async fn heal_once(state: &Arc<State>, grace: Duration) -> Result<(), String> {
    let vaults: Vec<VaultId> = state
        .store
        .lock()
        .map_err(|_| "store lock poisoned".to_string())?
        .vaults()
        .map(|(id, _)| *id)
        .collect();
    for id in vaults {
        heal_vault(state, id, grace).await?;
    }
    prune_epoch_keys(state);
    Ok(())
}

/// Erases epoch keys of vaults we neither hold nor are taking up: a
/// replacement's key for a round that ended without our adopting the vault
/// (aborted, or another replacement won). Keys of held vaults go at commit
/// (`Store::commit`).
fn prune_epoch_keys(state: &State) {
    let held: Vec<VaultId> = match state.store.lock() {
        Ok(s) => s.vaults().map(|(id, _)| *id).collect(),
        Err(_) => return,
    };
    // Usually every key belongs to a held vault: nothing else to look at.
    let orphans: Vec<VaultId> = state
        .keys
        .epochs()
        .into_iter()
        .map(|(v, _)| v)
        .filter(|v| !held.contains(v))
        .collect();
    if orphans.is_empty() {
        return;
    }
    let mut busy: Vec<VaultId> = state
        .pending
        .lock()
        .map(|p| p.keys().copied().collect())
        .unwrap_or_default();
    if let Ok(rounds) = state.rounds.lock() {
        for (cell, _) in rounds.values() {
            let r = match cell.try_lock() {
                Ok(r) => r,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                // A round mid-step (HQC work in a blocking thread): never
                // wait for it in the heal loop; the next pass looks again.
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            if let rounds::Round::Replacement { manifest, .. } = &*r {
                busy.push(manifest.body().vault_id);
            }
        }
    }
    match state
        .keys
        .erase_where(|v, _| orphans.contains(v) && !busy.contains(v))
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            erased = n,
            "erased the epoch keys of rounds that ended without a vault"
        ),
        Err(e) => tracing::warn!("could not erase stale epoch keys: {e}"),
    }
}

/// Runs [`transition::heal::decide`] on a settled assessment of `b`,
/// gathering each fact it asks for, and returns its step with, for a
/// repair, when the repair started (before our own shard was opened).
async fn gather_and_decide(
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
            .helper_disputes
            .lock()
            .ok()
            .and_then(|d| d.get(&(id, b.epoch)).cloned())
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

/// One vault's healing pass: finishes an unfinished commit or assesses the
/// view, has [`gather_and_decide`] choose the step, and carries it out.
async fn heal_vault(state: &Arc<State>, id: VaultId, grace: Duration) -> Result<(), String> {
    let (m, _) = rounds::current_manifest(state, &id).map_err(|f| fail("manifest", f))?;
    // A transition we certified but could not commit everywhere: finish it.
    let unfinished = state
        .unfinished
        .lock()
        .ok()
        .and_then(|u| u.get(&id).cloned());
    match transition::heal::resume(m.body().epoch, unfinished.as_ref().map(|u| u.0)) {
        Resume::FinishCommit => {
            if let Some((from, commit, next)) = unfinished {
                tracing::info!(vault = %id, epoch = from + 1, "retrying the commit of a certified epoch");
                return finish_commit(state, id, &commit, &next).await;
            }
        }
        Resume::Assess { forget_unfinished } => {
            if forget_unfinished {
                if let Ok(mut u) = state.unfinished.lock() {
                    u.remove(&id);
                }
            }
        }
    }
    let Some(assessed) = assess(state, &id, m.body(), grace).await else {
        return Ok(());
    };
    let b = m.body().clone();
    let gauges = transition::heal::gauges(&b, &assessed);
    state
        .metrics
        .set_heal(&id.to_string(), gauges.lost, gauges.spares);
    {
        let mut since = state
            .lost_since
            .lock()
            .map_err(|_| "poisoned".to_string())?;
        if gauges.lost == 0 {
            since.remove(&id);
        } else {
            since.entry(id).or_insert_with(Instant::now);
        }
    }
    let rules = proposals::rules(state, &id);
    let (step, started) = gather_and_decide(state, id, &b, &assessed, rules).await?;
    let lost = &assessed.lost;
    let (holders, helpers, assignments, mut groups) = match step {
        Step::TooFewLive { live } => {
            tracing::warn!(vault = %id, live, t = b.threshold, "too few live holders to repair; the operator must act");
            return Ok(());
        }
        Step::NotLeader | Step::Idle => return Ok(()),
        Step::Stale {
            peer,
            epoch,
            refreshing,
        } => {
            if !refreshing {
                tracing::warn!(vault = %id, ours = b.epoch, peer = %peer, theirs = epoch, "stale: a peer is at a later epoch; not leading");
            }
            return Ok(());
        }
        Step::Refresh { holders } => {
            tracing::info!(vault = %id, epoch = b.epoch, "the current epoch owes a refresh: leading it");
            return run_reshare(state, id, &b, &holders, b.threshold, "refreshed").await;
        }
        Step::FinishDecided {
            manifest,
            certificate,
            holders,
            next,
        } => {
            tracing::info!(vault = %id, epoch = b.epoch + 1, "finishing the successor the epoch log decided");
            return match certificate {
                Some(cert) => {
                    finish_commit(state, id, &encode_commit(&manifest, &cert), &next).await
                }
                None => {
                    certify_manifest(state, id, b.epoch, manifest, [0; 32], &holders, &next).await
                }
            };
        }
        Step::FinishSigned {
            manifest,
            proposal,
            holders,
            next,
        } => {
            tracing::info!(vault = %id, epoch = b.epoch + 1, "finishing the copy of the successor another holder signed");
            let done =
                certify_manifest(state, id, b.epoch, manifest, proposal, &holders, &next).await;
            if done.is_err() {
                // Learned afresh at the next refusal, if it still stands;
                // our own signed copy is tried again after a while.
                if let Ok(mut k) = state.successors.lock() {
                    if let Some(k) = k.get_mut(&(id, b.epoch)) {
                        k.to_finish = None;
                        if k.signed.is_some() {
                            k.signed_at = Some(Instant::now());
                        }
                    }
                }
            }
            return done;
        }
        Step::WaitForLogLeader => {
            tracing::info!(vault = %id, "waiting for the epoch log to elect a leader");
            return Ok(());
        }
        Step::Reshare {
            t_new,
            n_new,
            holders,
        } => {
            tracing::info!(vault = %id, lost = ?lost, t = t_new, n = n_new, "no spares: leading a re-share among the live holders");
            run_reshare(state, id, &b, &holders, t_new, "re-shared").await?;
            state
                .metrics
                .repairs
                .with_label_values(&["completed"])
                .inc();
            return Ok(());
        }
        Step::CannotReshare { n_new, floor } => {
            tracing::warn!(vault = %id, n = n_new, floor, "cannot re-share: {n_new} holders are fewer than the operator's floor allows; the operator must act");
            return Ok(());
        }
        Step::WaitForSpares { lost, spares } => {
            tracing::info!(vault = %id, lost, spares, "waiting for spare validators");
            return Ok(());
        }
        Step::Repair {
            holders,
            helpers,
            assignments,
            groups,
        } => (holders, helpers, assignments, groups),
    };
    let t0 = started.unwrap_or_else(Instant::now);
    tracing::info!(vault = %id, lost = ?lost, "leading a repair");

    // 1. One repair round for every lost share (as many as one sealed
    //    record per helper pair can carry; rounds of a split run at once),
    //    all in one proposal that a quorum of holders must certify before
    //    anyone acts on it (`transition::heal` built the groups).
    let (proposal, superseded) = propose(
        state,
        id,
        b.epoch,
        Action::Repair(groups.iter().map(|(p, _)| p.clone()).collect()),
    )?;
    // A reused proposal carries its own round ids.
    if let Action::Repair(plans) = &proposal.action {
        for ((p, _), q) in groups.iter_mut().zip(plans) {
            p.round = q.round;
        }
    }
    let voters: Vec<Option<Member>> = holders.iter().map(|(_, m)| m.clone()).collect();
    let quorum = rules.quorum(b.threshold, b.n);
    if let Some(old) = superseded {
        proposals::abort_attempt(state, &old, &voters, quorum).await;
    }
    let cert = proposals::certify(state, &proposal, &voters, quorum).await?;
    mark_used(state, id, b.epoch);
    let certified_ms = t0.elapsed().as_millis() as u64;
    // Rounds and prepare: a failure before the successor goes to be signed
    // (and to the epoch log) aborts the attempt, so that the next one need
    // not wait for the attempt timeout.
    let carried: Result<_, String> = async {
        let spares: Vec<Option<Member>> = groups
            .iter()
            .flat_map(|(_, s)| s.iter().cloned().map(Some))
            .collect();
        // Spares and helpers at once: a helper's pieces and sums that
        // reach a member before it joined are retried (`rounds::deliver`).
        let mut members = spares;
        members.extend(helpers.iter().map(|(_, m)| m.clone()));
        proposals::announce(state, &cert, &members).await?;
        // The other live holders witness it, so that any quorum of them can
        // sign the successor (D46); one that cannot be told only lowers the
        // chance of that, so its failure is logged, not fatal.
        let witnesses: Vec<Option<Member>> = holders
            .iter()
            .skip(usize::from(b.threshold))
            .map(|(_, m)| m.clone())
            .collect();
        if let Err(e) = proposals::announce(state, &cert, &witnesses).await {
            tracing::info!(vault = %id, "a witness was not told of the certified repair: {e}");
        }
        let rounds: Vec<_> = groups
            .into_iter()
            .map(|(plan, spares)| tokio::spawn(wait_round(state.clone(), plan, spares)))
            .collect();
        for r in rounds {
            r.await.map_err(|e| e.to_string())??;
        }

        let rounds_ms = t0.elapsed().as_millis() as u64;
        // 2. Prepare: every holder of the next epoch re-seals its share.
        let mut next: Vec<(u8, Option<Member>)> = holders.clone();
        next.extend(assignments.iter().map(|(i, (_, m))| (*i, Some(m.clone()))));
        let mut body = b.clone();
        body.epoch += 1;
        let prepares: Vec<_> = next
            .iter()
            .map(|(_, who)| {
                let (state, who, from) = (state.clone(), who.clone(), b.epoch);
                tokio::spawn(async move {
                    match who {
                        None => epochs::prepare(state.clone(), id, from)
                            .await
                            .map_err(|f| fail("local prepare", f)),
                        Some(m) => {
                            let r = post(
                                &state,
                                &m,
                                &format!("/v1/epoch/{id}/prepare?from={from}"),
                                Vec::new(),
                                200,
                            )
                            .await?;
                            serde_json::from_slice::<PrepareReply>(&r).map_err(|e| e.to_string())
                        }
                    }
                })
            })
            .collect();
        for p in prepares {
            let reply = p.await.map_err(|e| e.to_string())??;
            let e = body
                .shards
                .iter_mut()
                .find(|e| e.index == reply.index)
                .ok_or_else(|| format!("prepare answered unknown index {}", reply.index))?;
            *e = entry_of(reply)?;
        }
        Ok((body, next, rounds_ms))
    }
    .await;
    let (body, next, rounds_ms) = match carried {
        Ok(c) => c,
        Err(e) => {
            record_disputes(state, id, &b, &proposal.rounds(), &helpers).await;
            proposals::abort_attempt(state, &proposal, &voters, quorum).await;
            return Err(e);
        }
    };
    let prepared_ms = t0.elapsed().as_millis() as u64;
    certify(state, id, &body, proposal.digest(), &holders, &next).await?;
    tracing::info!(vault = %id, certified_ms, rounds_ms, prepared_ms, "repair phases (ms since start)");
    tracing::info!(vault = %id, epoch = body.epoch, took_ms = t0.elapsed().as_millis() as u64, "healed: new epoch certified");
    state
        .metrics
        .repairs
        .with_label_values(&["completed"])
        .inc();
    if state.refresh {
        // Repair kept the polynomial: a fresh one makes every older share,
        // including the lost holder's (a stolen disk?), useless.
        let mut next = next;
        next.sort_by_key(|(i, _)| *i);
        run_reshare(state, id, &body, &next, body.threshold, "refreshed").await?;
    }
    Ok(())
}

/// A round's JSON status at `path` on member `m`, if it answers 200
/// within 2 s (after a failed attempt: a silent member must not hold up
/// the next one).
async fn status_at(state: &Arc<State>, m: &Member, path: &str) -> Option<serde_json::Value> {
    let asked = tokio::time::timeout(Duration::from_secs(2), state.ctl.get(m, path, 1 << 16)).await;
    match asked {
        Ok(Ok(r)) if r.status == 200 => serde_json::from_slice(&r.body).ok(),
        _ => None,
    }
}

/// After a failed repair attempt, asks each helper of its `rounds` whose
/// pieces never reached it, and records each such pair (and each helper
/// that does not answer us, paired with us) as a dispute of epoch `b`:
/// the next attempt picks helpers with no dispute among them
/// (`transition::heal::pick_helpers`), so one helper withholding its
/// pieces cannot stall every attempt.
async fn record_disputes(
    state: &Arc<State>,
    id: VaultId,
    b: &ManifestBody,
    rounds: &[[u8; 16]],
    helpers: &[(u8, Option<Member>)],
) {
    let me = state.identity.public().fingerprint();
    let Some(mine) = b.shards.iter().find(|e| e.recipient == me).map(|e| e.index) else {
        return;
    };
    let mut found = std::collections::BTreeSet::new();
    for round in rounds {
        let path = format!("/v1/repair/{}", hex::encode(round));
        for (index, who) in helpers {
            let status = match who {
                None => state.round(round).map(|c| rounds::status(&c)),
                Some(m) => status_at(state, m, &path).await,
            };
            let Some(status) = status else {
                if *index != mine {
                    found.insert((mine.min(*index), mine.max(*index)));
                }
                continue;
            };
            let missing = status["missing_pieces_from"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for j in missing.iter().filter_map(|j| j.as_u64()) {
                let Ok(j) = u8::try_from(j) else { continue };
                if j != *index {
                    found.insert((j.min(*index), j.max(*index)));
                }
            }
        }
    }
    if found.is_empty() {
        return;
    }
    tracing::warn!(vault = %id, epoch = b.epoch, disputes = ?found, "repair helpers in dispute (pieces withheld or not answering); the next attempt keeps each pair apart");
    state
        .metrics
        .repairs
        .with_label_values(&["helper_disputes"])
        .inc();
    if let Ok(mut d) = state.helper_disputes.lock() {
        d.retain(|(v, e), _| *v != id || *e >= b.epoch);
        d.entry((id, b.epoch)).or_default().extend(found);
    }
}

/// After a failed re-share attempt, asks each recipient which dealers'
/// sub-shares never reached it, and keeps, per dealer, how many named it
/// (`transition::heal::pick_dealers` leaves out one named by more than f).
async fn record_silent_dealers(
    state: &Arc<State>,
    id: VaultId,
    epoch: u64,
    round: [u8; 16],
    recipients: &[(u8, Option<Member>)],
) {
    let path = format!("/v1/reshare/{}", hex::encode(round));
    let mut named: BTreeMap<u8, usize> = BTreeMap::new();
    for (_, who) in recipients {
        let status = match who {
            None => reshare::status(state, &round),
            Some(m) => status_at(state, m, &path).await,
        };
        let Some(status) = status else { continue };
        let missing = status["missing_from"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for d in missing.iter().filter_map(|d| d.as_u64()) {
            if let Ok(d) = u8::try_from(d) {
                if seen.insert(d) {
                    *named.entry(d).or_default() += 1;
                }
            }
        }
    }
    if named.is_empty() {
        return;
    }
    tracing::warn!(vault = %id, epoch, named = ?named, "re-share dealers whose sub-shares never came (recipients naming each)");
    if let Ok(mut s) = state.silent_dealers.lock() {
        s.retain(|(v, e), _| *v != id || *e >= epoch);
        s.insert((id, epoch), named);
    }
}

/// Signs `body` as the next manifest, carrying out the certified proposal
/// `proposal` (its digest), has the live holders of the current epoch
/// (`signers`) certify it, and commits it at every holder of the next
/// epoch (`next`), ourselves last. Called once per proposal: we never
/// write two copies of one proposal's successor (`crate::successor`
/// convicts a requester that does).
async fn certify(
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
async fn certify_manifest(
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

    // 3. Signatures from the live holders of the current epoch, asked
    // with our signed request. All at once: each signer writes its vote to
    // disk before answering.
    let request = |m: &[u8]| {
        crate::successor::Request::sign(id, from, proposal, m.to_vec(), &state.identity)
            .map(|q| q.encode())
            .map_err(|e| e.to_string())
    };
    let asked = request(&m2)?;
    let split = match crate::byzantine::split_copy(&m2, &state.identity) {
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
    crate::crash_point!(crate::failpoint::HEAL_SIGNATURES_GATHERED);
    let cert = cert.ok_or("no signatures")?.encode();
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

/// Sends a certified transition's commit to every holder of the next epoch
/// that is not ourselves, then commits locally; forgets it once done.
async fn finish_commit(
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

/// Leads a re-share round among `holders` (sorted by index; recipient k is
/// the k-th) to threshold `t_new`, then certifies and commits the result.
async fn run_reshare(
    state: &Arc<State>,
    id: VaultId,
    b: &ManifestBody,
    holders: &[(u8, Option<Member>)],
    t_new: u8,
    what: &str,
) -> Result<(), String> {
    let t0 = Instant::now();
    let recipients: Vec<Fingerprint> = holders
        .iter()
        .map(|(i, _)| b.entry(*i).map(|e| e.recipient))
        .collect::<Option<_>>()
        .ok_or("a holder's index is not in the manifest")?;
    // Every live holder deals (those beyond t are what the dealing check,
    // `reshare::check_dealing`, checks against), but one that more than f
    // recipients of a failed attempt never heard from.
    let rules = proposals::rules(state, &id);
    let silent = state
        .silent_dealers
        .lock()
        .ok()
        .and_then(|s| s.get(&(id, b.epoch)).cloned())
        .unwrap_or_default();
    let dealers = transition::heal::pick_dealers(
        &holders.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        &silent,
        rules.f,
        usize::from(b.threshold) + usize::from(rules.f),
    );
    let mut round = [0u8; 16];
    aws_lc_rs::rand::fill(&mut round).map_err(|_| "rng failure".to_string())?;
    let (proposal, superseded) = propose(
        state,
        id,
        b.epoch,
        Action::Reshare(reshare::Plan {
            round,
            vault_id: id,
            epoch: b.epoch,
            t_new,
            dealers,
            recipients,
        }),
    )?;
    let round = proposal.rounds().first().copied().ok_or("no round")?;
    let voters: Vec<Option<Member>> = holders.iter().map(|(_, m)| m.clone()).collect();
    let quorum = proposals::rules(state, &id).quorum(b.threshold, b.n);
    if let Some(old) = superseded {
        proposals::abort_attempt(state, &old, &voters, quorum).await;
    }
    let cert = proposals::certify(state, &proposal, &voters, quorum).await?;
    mark_used(state, id, b.epoch);
    // Dealing and receiving: a failure before the successor goes to be
    // signed aborts the attempt (see `heal_vault`).
    let dealt = deal_and_gather(state, &cert, b, holders, t_new, round).await;
    let body = match dealt {
        Ok(body) => body,
        Err(e) => {
            record_silent_dealers(state, id, b.epoch, round, holders).await;
            proposals::abort_attempt(state, &proposal, &voters, quorum).await;
            return Err(e);
        }
    };
    certify(state, id, &body, proposal.digest(), holders, holders).await?;
    tracing::info!(vault = %id, epoch = body.epoch, t = body.threshold, n = body.n, took_ms = t0.elapsed().as_millis() as u64, "{what}: new epoch certified");
    Ok(())
}

/// Announces a certified re-share to its holders and gathers the next
/// manifest body from their new shares' entries.
async fn deal_and_gather(
    state: &Arc<State>,
    cert: &crate::transition::CertifiedProposal,
    b: &ManifestBody,
    holders: &[(u8, Option<Member>)],
    t_new: u8,
    round: [u8; 16],
) -> Result<ManifestBody, String> {
    let voters: Vec<Option<Member>> = holders.iter().map(|(_, m)| m.clone()).collect();
    proposals::announce(state, cert, &voters).await?;
    let mut body = b.clone();
    body.epoch += 1;
    body.threshold = t_new;
    body.n = u8::try_from(holders.len()).map_err(|_| "too many holders")?;
    body.shards.clear();
    let path = format!("/v1/reshare/{}", hex::encode(round));
    let deadline = Instant::now() + Duration::from_secs(20);
    for (k, (_, who)) in holders.iter().enumerate() {
        let reply: PrepareReply = loop {
            let v = match who {
                None => reshare::status(state, &round).ok_or("our re-share round vanished")?,
                Some(m) => {
                    let r = state
                        .ctl
                        .get(m, &path, 1 << 16)
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::from_slice(&r.body).map_err(|e| e.to_string())?
                }
            };
            if v["complete"] == true {
                break serde_json::from_value(v["entry"].clone()).map_err(|e| e.to_string())?;
            }
            if Instant::now() > deadline {
                return Err(format!("re-share: new share {} not ready in time", k + 1));
            }
            tokio::time::sleep(STATUS_POLL).await;
        };
        if usize::from(reply.index) != k + 1 {
            return Err(format!(
                "re-share: recipient {} answered index {}",
                k + 1,
                reply.index
            ));
        }
        body.shards.push(entry_of(reply)?);
    }
    Ok(body)
}

/// A manifest entry from a holder's answer.
fn entry_of(reply: PrepareReply) -> Result<ShardEntry, String> {
    let bytes32 = |h: &str| -> Result<[u8; 32], String> {
        hex::decode(h)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| "bad hex in a holder's answer".to_string())
    };
    Ok(ShardEntry {
        index: reply.index,
        recipient: Fingerprint::from_bytes(bytes32(&reply.recipient)?),
        recipient_name: reply.recipient_name,
        blob_hash: bytes32(&reply.blob_hash)?,
        share_commitment: bytes32(&reply.share_commitment)?,
    })
}

/// Length of the share we hold of `id` (all shares of a vault have one
/// length); opens our shard, which the round is about to do anyway.
async fn own_share_len(state: &Arc<State>, id: &VaultId) -> Result<usize, String> {
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
async fn newer_epoch_at(
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

/// Waits for every spare of a certified repair round to report its share.
async fn wait_round(state: Arc<State>, plan: Plan, spares: Vec<Member>) -> Result<(), String> {
    let (round, targets) = (plan.round, plan.indices());
    let path = format!("/v1/repair/{}", hex::encode(round));
    let deadline = Instant::now() + Duration::from_secs(15);
    for (spare, target) in spares.iter().zip(&targets) {
        loop {
            let r = state
                .ctl
                .get(spare, &path, 1 << 20)
                .await
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value =
                serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            if v["complete"] == true {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "repair of share {target} at {} timed out",
                    spare.id
                ));
            }
            tokio::time::sleep(STATUS_POLL).await;
        }
    }
    Ok(())
}

/// The proposal we lead for `epoch` of `id` with `action`: the one we
/// already asked votes for, while it is uncertified and asks the same (so
/// voters who voted for it vote again), otherwise a new attempt. Attempt
/// numbers follow the clock in [`authorize::ATTEMPT_TIMEOUT`] steps, so a
/// new leader never reuses an attempt number another leader had votes for.
fn propose(
    state: &Arc<State>,
    id: VaultId,
    epoch: u64,
    action: Action,
) -> Result<(Proposal, Option<Proposal>), String> {
    let shape = |a: &Action| {
        let mut a = a.clone();
        match &mut a {
            Action::Repair(plans) => plans.iter_mut().for_each(|p| p.round = [0; 16]),
            Action::Reshare(p) => p.round = [0; 16],
        }
        a
    };
    let mut map = state.proposing.lock().map_err(|_| "poisoned".to_string())?;
    map.retain(|(v, e), _| *v != id || *e >= epoch);
    let prev = map.get(&(id, epoch));
    let mut superseded = None;
    if let Some((p, since, used)) = prev {
        if !used && since.elapsed() < 2 * authorize::ATTEMPT_TIMEOUT {
            if shape(&p.action) == shape(&action) {
                return Ok((p.clone(), None));
            }
            // Uncertified and asking something else now (more holders
            // lost, say): its voters are freed by an abort rather than
            // held for the attempt timeout.
            superseded = Some(p.clone());
        }
    }
    let window = crate::state::unix_ms() / 1000 / authorize::ATTEMPT_TIMEOUT.as_secs().max(1);
    // Past the attempt we last voted for (another leader's, given up when
    // it was convicted, say): holders refuse that number and older ones.
    let voted = state
        .store
        .lock()
        .map_err(|_| "poisoned".to_string())?
        .proposal_vote(&id, epoch)
        .ok()
        .flatten()
        .map_or(0, |(a, _, _)| a.saturating_add(1));
    let attempt = prev
        .map_or(0, |(p, _, _)| p.attempt.saturating_add(1))
        .max(u32::try_from(window).unwrap_or(u32::MAX))
        .max(voted);
    let p = Proposal {
        vault_id: id,
        from_epoch: epoch,
        attempt,
        action,
    };
    map.insert((id, epoch), (p.clone(), Instant::now(), false));
    Ok((p, superseded))
}

/// Marks our proposal for `epoch` of `id` as certified and acted on: the
/// next one is a new attempt.
fn mark_used(state: &Arc<State>, id: VaultId, epoch: u64) {
    if let Ok(mut map) = state.proposing.lock() {
        if let Some(e) = map.get_mut(&(id, epoch)) {
            e.2 = true;
        }
    }
}

/// POSTs and requires `expect` as the status; returns the body (at most
/// 4 MiB: epoch steps carry manifests and certificates).
async fn post(
    state: &Arc<State>,
    to: &Member,
    path: &str,
    body: Vec<u8>,
    expect: u16,
) -> Result<Vec<u8>, String> {
    rounds::post_expecting(state, to, path, body, expect, 4 << 20).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_passes_back_off_exponentially_with_jitter_up_to_a_cap() {
        let mut b = backoff(Duration::from_millis(300));
        for base in [600u64, 1200, 2400, 4800, 9600, 19200, 30000, 30000] {
            let w = b.on_failure().as_millis() as u64;
            assert!(w >= base * 3 / 4 && w <= base * 5 / 4, "{base}: {w}");
        }
    }
}
