//! Leading a certified re-share (a refresh, or a shrink among the live
//! holders): its proposal, the dealing (`crate::reshare`), and the next
//! manifest gathered from the recipients; a failed attempt records which
//! dealers withheld their sub-shares (D50) and is aborted.

use super::finish;
use super::{entry_of, mark_used, propose, status_at, STATUS_POLL};
use crate::config::Member;
use crate::epochs::PrepareReply;
use crate::proposals;
use crate::reshare;
use crate::state::State;
use crate::transition::{self, Action};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
            // Only a dealing that ran out of time says anything about who
            // stayed silent: after a refusal nobody had time to deal.
            if let DealingFailed::TimedOut(_) = e {
                record_silent_dealers(state, id, b.epoch, round, holders).await;
            }
            proposals::abort_attempt(state, &proposal, &voters, quorum).await;
            return Err(e.into());
        }
    };
    finish::certify(state, id, &body, proposal.digest(), holders, holders).await?;
    tracing::info!(vault = %id, epoch = body.epoch, t = body.threshold, n = body.n, took_ms = t0.elapsed().as_millis() as u64, "{what}: new epoch certified");
    Ok(())
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
    // Kept on disk: a leader that restarts does not deal with them again.
    if let Ok(s) = state.store.lock() {
        if let Err(e) = s.set_silent_dealers(&id, epoch, &named) {
            tracing::warn!(vault = %id, "silent dealers not stored: {e}");
        }
    }
}
