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
//! [`crate::transition::heal`] (docs/decisions.md D44); this module is its
//! driver, one file per concern:
//!
//! - here: the loop, one pass (`heal_vault`: resume, assess, decide, and
//!   `carry_out` the step), proposals we lead;
//! - [`view`]: the facts a decision needs, gathered from our detector and
//!   our peers ([`assess`], `gather_and_decide`);
//! - [`lead_repair`]: a certified repair's rounds and prepare;
//! - [`lead_reshare`]: a certified re-share's dealing;
//! - [`finish`]: signing, certifying and committing the successor;
//! - `lead`: what both kinds of attempt carry out alike.
//!
//! The order of an attempt's phases, and what a failure in each calls for,
//! are [`crate::transition::attempt`]'s: the leading modules carry out the
//! work it gives.

use crate::config::Member;
use crate::epochs::{self, encode_commit, PrepareReply};
use crate::proposals;
use crate::retry::{Backoff, Loop, Retry};
use crate::rounds;
use crate::state::State;
use crate::transition::heal::{Resume, Step};
use crate::transition::{self, authorize, Action, Proposal};
use mesh_agent::detector::State as MemberState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::identity::Fingerprint;
use vault::manifest::{ManifestBody, ShardEntry, VaultId, VerifiedManifest};

mod finish;
mod lead;
mod lead_repair;
mod lead_reshare;
mod view;

pub use view::{assess, Assessment};

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
    // What a pass that failed started from: news since ends the backoff.
    let mut failed_at = News::now(&state);
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
        // unless there is news since (`News::since`), also news that comes
        // while it waits: woken by a suspicion just after a failed pass, it
        // used to sleep through the death declared next.
        loop {
            if News::now(&state).since(&failed_at) {
                not_before = Instant::now();
                retry.succeeded();
            }
            if Instant::now() >= not_before {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep_until(not_before.into()) => {}
                Ok(()) = views.changed() => {
                    views.borrow_and_update();
                    warm_own_shares(&state);
                }
            }
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
        // What the pass starts from: a failed pass is judged against it, so
        // a death declared while it ran (it proposed without that death,
        // and failed on it) is news too.
        let started_from = News::now(&state);
        match heal_once(&state, grace).await {
            Ok(()) => retry.succeeded(),
            Err(e) => {
                let wait = retry.failed();
                not_before = Instant::now() + wait;
                failed_at = started_from;
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

/// What a failed healing pass is judged against: the epoch of every vault
/// we hold, and the members declared dead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct News {
    epochs: Vec<(VaultId, u64)>,
    dead: std::collections::BTreeSet<String>,
}

impl News {
    fn now(state: &State) -> News {
        let epochs = state
            .store
            .lock()
            .map(|s| s.vaults().map(|(id, h)| (*id, h.epoch)).collect())
            .unwrap_or_default();
        let dead = state
            .detector
            .lock()
            .map(|d| {
                d.states()
                    .filter(|(_, s)| *s == MemberState::Dead)
                    .map(|(id, _)| id.to_string())
                    .collect()
            })
            .unwrap_or_default();
        News { epochs, dead }
    }

    /// Whether something happened since `failed` (what a failed pass
    /// started from) that may let the next pass succeed, so it need not
    /// wait out the backoff: a vault moved to a new epoch (ours or a
    /// peer's commit), or a member was declared dead that was not then.
    /// The second is the common case when several holders die at once:
    /// the pass led a repair of the deaths declared first and failed on a
    /// holder whose death was declared while it ran, or after.
    /// A member coming back is no news: the backoff is for that churn.
    fn since(&self, failed: &News) -> bool {
        self.epochs != failed.epochs || !self.dead.is_subset(&failed.dead)
    }
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

/// One vault's healing pass: finishes an unfinished commit or assesses the
/// view, has [`view::gather_and_decide`] choose the step, and carries it
/// out.
async fn heal_vault(state: &Arc<State>, id: VaultId, grace: Duration) -> Result<(), String> {
    let (m, _) = rounds::current_manifest(state, &id).map_err(|f| fail("manifest", f))?;
    if let Some(done) = resume_unfinished(state, id, &m).await {
        return done;
    }
    let Some(assessed) = assess(state, &id, m.body(), grace).await else {
        return Ok(());
    };
    let b = m.body().clone();
    note_lost(state, &b, &assessed)?;
    let rules = proposals::rules(state, &id);
    let (step, started) = view::gather_and_decide(state, id, &b, &assessed, rules).await?;
    carry_out(state, &b, &assessed.lost, rules, step, started).await
}

/// A transition we certified but could not commit everywhere: finishes
/// it (`Some` with the outcome) if it leaves our `current` epoch or leads
/// to it, and forgets one the vault has moved past.
async fn resume_unfinished(
    state: &Arc<State>,
    id: VaultId,
    current: &VerifiedManifest,
) -> Option<Result<(), String>> {
    let unfinished = state
        .unfinished
        .lock()
        .ok()
        .and_then(|u| u.get(&id).cloned());
    let ours_is_current = unfinished
        .as_ref()
        .is_some_and(|u| epochs::commit_leads_to(&u.1, &current.digest()));
    let epoch = current.body().epoch;
    match transition::heal::resume(epoch, unfinished.as_ref().map(|u| u.0), ours_is_current) {
        Resume::FinishCommit => {
            let (from, commit, next) = unfinished?;
            tracing::info!(vault = %id, epoch = from + 1, "retrying the commit of a certified epoch");
            Some(finish::finish_commit(state, id, &commit, &next).await)
        }
        Resume::Assess { forget_unfinished } => {
            if forget_unfinished {
                if let Ok(mut u) = state.unfinished.lock() {
                    u.remove(&id);
                }
            }
            None
        }
    }
}

/// Exports how many shares of `b` are lost and since when (the stalled
/// repair alert's clock).
fn note_lost(state: &State, b: &ManifestBody, assessed: &Assessment) -> Result<(), String> {
    let id = b.vault_id;
    let gauges = transition::heal::gauges(b, assessed);
    state
        .metrics
        .set_heal(&id.to_string(), gauges.lost, gauges.spares);
    let mut since = state
        .lost_since
        .lock()
        .map_err(|_| "poisoned".to_string())?;
    if gauges.lost == 0 {
        since.remove(&id);
    } else {
        since.entry(id).or_insert_with(Instant::now);
    }
    Ok(())
}

/// Carries out the step [`transition::heal::decide`] chose for epoch `b`
/// (`lost`: the lost indices, for the log; `started`: when a repair
/// started).
async fn carry_out(
    state: &Arc<State>,
    b: &ManifestBody,
    lost: &[u8],
    rules: transition::Rules,
    step: Step<Member>,
    started: Option<Instant>,
) -> Result<(), String> {
    let id = b.vault_id;
    match step {
        Step::TooFewLive { live } => {
            tracing::warn!(vault = %id, live, t = b.threshold, "too few live holders to repair; the operator must act");
            Ok(())
        }
        Step::NotLeader | Step::Idle => Ok(()),
        Step::Stale {
            peer,
            epoch,
            refreshing,
        } => {
            if !refreshing {
                tracing::warn!(vault = %id, ours = b.epoch, peer = %peer, theirs = epoch, "stale: a peer is at a later epoch; not leading");
            }
            Ok(())
        }
        Step::Refresh { holders } => {
            tracing::info!(vault = %id, epoch = b.epoch, "the current epoch owes a refresh: leading it");
            lead_reshare::run_reshare(state, id, b, &holders, b.threshold, "refreshed").await
        }
        Step::FinishDecided {
            manifest,
            certificate,
            holders,
            next,
        } => {
            tracing::info!(vault = %id, epoch = b.epoch + 1, "finishing the successor the epoch log decided");
            match certificate {
                Some(cert) => {
                    finish::finish_commit(state, id, &encode_commit(&manifest, &cert), &next).await
                }
                None => {
                    let digest = crate::consensus::manifest_digest(&manifest);
                    let done = finish::certify_manifest(
                        state, id, b.epoch, manifest, [0; 32], &holders, &next,
                    )
                    .await;
                    if done.is_err() {
                        // No quorum signs it (a lying holder wrote it, say):
                        // once it has stalled, have it withdrawn (D53).
                        let voters: Vec<Option<Member>> =
                            holders.iter().map(|(_, m)| m.clone()).collect();
                        let quorum = rules.quorum(b.threshold, b.n);
                        let withdrawn = crate::withdraw::withdraw_stalled(
                            state, id, b.epoch, digest, &voters, quorum,
                        )
                        .await;
                        if withdrawn {
                            // Progress: the next pass leads afresh at once.
                            return Ok(());
                        }
                    }
                    done
                }
            }
        }
        Step::FinishSigned {
            manifest,
            proposal,
            holders,
            next,
        } => {
            tracing::info!(vault = %id, epoch = b.epoch + 1, "finishing the copy of the successor another holder signed");
            let done =
                finish::certify_manifest(state, id, b.epoch, manifest, proposal, &holders, &next)
                    .await;
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
            done
        }
        Step::WaitForLogLeader => {
            tracing::info!(vault = %id, "waiting for the epoch log to elect a leader");
            Ok(())
        }
        Step::Reshare {
            t_new,
            n_new,
            holders,
        } => {
            tracing::info!(vault = %id, lost = ?lost, t = t_new, n = n_new, "no spares: leading a re-share among the live holders");
            lead_reshare::run_reshare(state, id, b, &holders, t_new, "re-shared").await?;
            state
                .metrics
                .repairs
                .with_label_values(&["completed"])
                .inc();
            Ok(())
        }
        Step::CannotReshare { n_new, floor } => {
            tracing::warn!(vault = %id, n = n_new, floor, "cannot re-share: {n_new} holders are fewer than the operator's floor allows; the operator must act");
            Ok(())
        }
        Step::WaitForSpares { lost, spares } => {
            tracing::info!(vault = %id, lost, spares, "waiting for spare validators");
            Ok(())
        }
        Step::Repair {
            holders,
            helpers,
            assignments,
            groups,
        } => {
            tracing::info!(vault = %id, lost = ?lost, "leading a repair");
            let repair = lead_repair::Repair {
                holders,
                helpers,
                assignments,
                groups,
            };
            lead_repair::run_repair(
                state,
                b,
                rules,
                repair,
                started.unwrap_or_else(Instant::now),
            )
            .await
        }
    }
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

    fn news(epochs: &[u64], dead: &[&str]) -> News {
        News {
            epochs: epochs
                .iter()
                .map(|e| (VaultId::from_bytes([7; 16]), *e))
                .collect(),
            dead: dead.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_failed_pass_waits_out_its_backoff_unless_there_is_news() {
        let failed = news(&[1], &["validator-7"]);
        assert!(!failed.since(&failed));
        // A commit since.
        assert!(news(&[2], &["validator-7"]).since(&failed));
        // Another death declared since.
        assert!(news(&[1], &["validator-6", "validator-7"]).since(&failed));
        // A dead member back: churn, the backoff holds.
        assert!(!news(&[1], &[]).since(&failed));
    }

    #[test]
    fn failed_passes_back_off_exponentially_with_jitter_up_to_a_cap() {
        let mut b = backoff(Duration::from_millis(300));
        for base in [600u64, 1200, 2400, 4800, 9600, 19200, 30000, 30000] {
            let w = b.on_failure().as_millis() as u64;
            assert!(w >= base * 3 / 4 && w <= base * 5 / 4, "{base}: {w}");
        }
    }
}
