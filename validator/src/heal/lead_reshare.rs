//! Leading a certified re-share (a refresh, or a shrink among the live
//! holders): its proposal, the dealing (`crate::reshare`), and the next
//! manifest gathered from the recipients; a failed attempt records which
//! dealers withheld their sub-shares (D50) and is aborted.

use super::lead::{self, Led};
use super::{entry_of, propose, status_at, STATUS_POLL};
use crate::config::Member;
use crate::epochs::PrepareReply;
use crate::proposals;
use crate::reshare;
use crate::state::State;
use crate::transition::attempt::{Attempt, Failed, Kind, Work};
use crate::transition::{self, Action};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use vault::identity::Fingerprint;
use vault::manifest::{ManifestBody, VaultId};

/// Leads a re-share round among `holders` (sorted by index; recipient k is
/// the k-th) to threshold `t_new`, then certifies and commits the result.
pub(super) async fn run_reshare(
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
        .store
        .lock()
        .map(|s| s.silent_dealers(&id, b.epoch))
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
    let quorum = rules.quorum(b.threshold, b.n);
    // The phases and what a failure in each calls for are [`Attempt`]'s;
    // `Led` and this carry out its work.
    let mut attempt = Attempt::new(
        Kind::Reshare,
        superseded.is_some(),
        state.consensus.get().is_some(),
    );
    let mut led = Led::new(state, proposal, superseded, voters, quorum);
    let mut body = None;
    while let Some(work) = attempt.poll() {
        let done = match led.run(work).await {
            Some(done) => done,
            None => match (work, &led.cert, &body) {
                (Work::Carry, Some(c), _) => {
                    match deal_and_gather(state, c, b, holders, t_new, round).await {
                        Ok(next) => {
                            body = Some(next);
                            Ok(())
                        }
                        Err(DealingFailed::TimedOut(e)) => Err(Failed::timed_out(e)),
                        Err(DealingFailed::Other(e)) => Err(Failed::refused(e)),
                    }
                }
                (Work::RecordWithholders, _, _) => {
                    record_silent_dealers(state, id, b.epoch, round, holders).await;
                    Ok(())
                }
                (Work::Sign, _, Some(next)) => led.sign(next, holders, holders),
                (Work::Healed, _, Some(next)) => {
                    tracing::info!(vault = %id, epoch = next.epoch, t = next.threshold, n = next.n, took_ms = t0.elapsed().as_millis() as u64, "{what}: new epoch certified");
                    Ok(())
                }
                (other, _, _) => Err(Failed::refused(format!(
                    "{other:?}: not a step of a re-share here"
                ))),
            },
        };
        attempt.handle(t0.elapsed(), done);
    }
    lead::outcome(&attempt)
}

/// Why a re-share attempt's dealing failed.
pub(super) enum DealingFailed {
    /// The dealing window ran out: the recipients can say whose
    /// sub-shares never came.
    TimedOut(String),
    /// Anything else (a holder refused the announcement, a recipient did
    /// not answer): silence then proves nothing.
    Other(String),
}

impl From<String> for DealingFailed {
    fn from(e: String) -> Self {
        DealingFailed::Other(e)
    }
}

impl From<&str> for DealingFailed {
    fn from(e: &str) -> Self {
        DealingFailed::Other(e.to_string())
    }
}

impl From<DealingFailed> for String {
    fn from(e: DealingFailed) -> Self {
        match e {
            DealingFailed::TimedOut(e) | DealingFailed::Other(e) => e,
        }
    }
}

/// Announces a certified re-share to its holders and gathers the next
/// manifest body from their new shares' entries.
pub(super) async fn deal_and_gather(
    state: &Arc<State>,
    cert: &crate::transition::CertifiedProposal,
    b: &ManifestBody,
    holders: &[(u8, Option<Member>)],
    t_new: u8,
    round: [u8; 16],
) -> Result<ManifestBody, DealingFailed> {
    let voters: Vec<Option<Member>> = holders.iter().map(|(_, m)| m.clone()).collect();
    proposals::announce(state, cert, &voters).await?;
    let mut body = b.clone();
    body.epoch += 1;
    body.threshold = t_new;
    body.n = u8::try_from(holders.len()).map_err(|_| "too many holders")?;
    body.shards.clear();
    let path = format!("/v1/reshare/{}", hex::encode(round));
    let started = Instant::now();
    let deadline = started + state.reshare_window;
    // A recipient that does not answer us may have shown its signed entry
    // to the dealers, who judged it by then (`reshare::judge_after`).
    let mut relay_at =
        started + reshare::judge_after(state.reshare_window) + state.reshare_window / 20;
    let plan = match &cert.proposal.action {
        Action::Reshare(p) => Some(p.clone()),
        _ => None,
    };
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
            if let (Some(plan), true, Some(_)) = (&plan, Instant::now() >= relay_at, who) {
                relay_at = Instant::now() + state.reshare_window / 20;
                if let Some((entry, _)) = reshare::relayed(state, plan, k as u8 + 1).await {
                    break entry;
                }
            }
            if Instant::now() > deadline {
                return Err(DealingFailed::TimedOut(format!(
                    "re-share: new share {} not ready in time",
                    k + 1
                )));
            }
            tokio::time::sleep(STATUS_POLL).await;
        };
        if usize::from(reply.index) != k + 1 {
            return Err(DealingFailed::Other(format!(
                "re-share: recipient {} answered index {}",
                k + 1,
                reply.index
            )));
        }
        body.shards.push(entry_of(reply)?);
    }
    Ok(body)
}

/// After a failed re-share attempt, asks each recipient which dealers'
/// sub-shares never reached it, and keeps, per dealer, how many named it
/// (`transition::heal::pick_dealers` leaves out one named by more than f).
pub(super) async fn record_silent_dealers(
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
        let mut seen = std::collections::BTreeSet::new();
        for d in reshare::missing_from(&status) {
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
    // Kept on disk: a leader that restarts does not deal with them again.
    if let Ok(s) = state.store.lock() {
        if let Err(e) = s.add_silent_dealers(&id, epoch, &named) {
            tracing::warn!(vault = %id, "silent dealers not stored: {e}");
        }
    }
}
