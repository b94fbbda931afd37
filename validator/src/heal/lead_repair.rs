//! Leading a certified repair: its proposal, its rounds (helpers to
//! replacements, `crate::rounds`), and the next epoch's prepare; a failed
//! attempt records which helpers withheld their pieces (D50) and is aborted.

use super::lead::{self, Led};
use super::lead_reshare;
use super::{entry_of, fail, post, propose, status_at, STATUS_POLL};
use crate::config::Member;
use crate::epochs::{self, PrepareReply};
use crate::proposals;
use crate::repair::Plan;
use crate::rounds;
use crate::state::State;
use crate::transition::attempt::{Attempt, Failed, Kind, Work};
use crate::transition::{self, Action, CertifiedProposal};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::identity::Fingerprint;
use vault::manifest::{ManifestBody, VaultId};

/// A certified repair's parts, as [`transition::heal::decide`] chose them
/// (`Step::Repair`).
pub(super) struct Repair {
    /// Live holders of the current epoch, in index order.
    pub holders: Vec<(u8, Option<Member>)>,
    /// The first t of them, who help.
    pub helpers: Vec<(u8, Option<Member>)>,
    /// Each lost index with its replacement, in index order.
    pub assignments: Vec<(u8, (Fingerprint, Member))>,
    /// The rounds: each plan with its replacements, in plan order.
    pub groups: Vec<(Plan, Vec<Member>)>,
}

/// Leads a repair of epoch `b` started at `t0`: one proposal carrying
/// every round, certified by a quorum of holders; then the rounds, the
/// next epoch's prepare, its signatures and its commit; then, with
/// refresh on, a re-share to a fresh polynomial. The phases and what a
/// failure in each calls for are [`Attempt`]'s; this carries out its work.
pub(super) async fn run_repair(
    state: &Arc<State>,
    b: &ManifestBody,
    rules: transition::Rules,
    repair: Repair,
    t0: Instant,
) -> Result<(), String> {
    let id = b.vault_id;
    let Repair {
        holders,
        helpers,
        assignments,
        mut groups,
    } = repair;
    // One repair round for every lost share (as many as one sealed record
    // per helper pair can carry; rounds of a split run at once), all in one
    // proposal that a quorum of holders must certify before anyone acts on
    // it (`transition::heal` built the groups).
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
    let mut attempt = Attempt::new(
        Kind::Repair {
            refresh: state.refresh,
        },
        superseded.is_some(),
        state.consensus.get().is_some(),
    );
    let mut led = Led::new(state, proposal, superseded, voters, quorum);
    let mut groups = Some(groups);
    let mut prepared = None;
    while let Some(work) = attempt.poll() {
        let done = match led.run(work).await {
            Some(done) => done,
            None => match (work, &led.cert, &prepared) {
                (Work::Carry, Some(c), _) => match groups.take() {
                    Some(g) => run_rounds(state, c, b, &holders, &helpers, g)
                        .await
                        .map_err(Failed::refused),
                    None => Err(Failed::refused("rounds carried twice")),
                },
                (Work::Prepare, _, _) => match prepare_next(state, b, &holders, &assignments).await
                {
                    Ok(p) => {
                        prepared = Some(p);
                        Ok(())
                    }
                    Err(e) => Err(Failed::refused(e)),
                },
                (Work::RecordWithholders, _, _) => {
                    let rounds = led.proposal().rounds();
                    record_disputes(state, id, b, &rounds, &helpers).await;
                    Ok(())
                }
                (Work::Sign, _, Some((body, next))) => led.sign(body, &holders, next),
                (Work::Healed, _, _) => {
                    let p = attempt.phases();
                    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
                    let epoch = b.epoch + 1;
                    tracing::info!(vault = %id, certified_ms = ms(p.certified), rounds_ms = ms(p.carried), prepared_ms = ms(p.prepared), "repair phases (ms since start)");
                    tracing::info!(vault = %id, epoch, took_ms = t0.elapsed().as_millis() as u64, "healed: new epoch certified");
                    state
                        .metrics
                        .repairs
                        .with_label_values(&["completed"])
                        .inc();
                    Ok(())
                }
                // Repair kept the polynomial: a fresh one makes every older
                // share, including the lost holder's (a stolen disk?),
                // useless.
                (Work::Refresh, _, Some((body, next))) => {
                    let mut next = next.clone();
                    next.sort_by_key(|(i, _)| *i);
                    lead_reshare::run_reshare(state, id, body, &next, body.threshold, "refreshed")
                        .await
                        .map_err(Failed::refused)
                }
                (other, _, _) => Err(Failed::refused(format!(
                    "{other:?}: not a step of a repair here"
                ))),
            },
        };
        attempt.handle(t0.elapsed(), done);
    }
    lead::outcome(&attempt)
}

/// Tells the spares and helpers of a certified repair (and, as witnesses,
/// the other live holders) that it is certified, and waits for every
/// round's replacements to report their shares.
async fn run_rounds(
    state: &Arc<State>,
    cert: &CertifiedProposal,
    b: &ManifestBody,
    holders: &[(u8, Option<Member>)],
    helpers: &[(u8, Option<Member>)],
    groups: Vec<(Plan, Vec<Member>)>,
) -> Result<(), String> {
    // Spares and helpers at once: a helper's pieces and sums that reach a
    // member before it joined are retried (`rounds::deliver`).
    let mut members: Vec<Option<Member>> = groups
        .iter()
        .flat_map(|(_, s)| s.iter().cloned().map(Some))
        .collect();
    members.extend(helpers.iter().map(|(_, m)| m.clone()));
    proposals::announce(state, cert, &members).await?;
    // The other live holders witness it, so that any quorum of them can
    // sign the successor (D46); one that cannot be told only lowers the
    // chance of that, so its failure is logged, not fatal.
    let witnesses: Vec<Option<Member>> = holders
        .iter()
        .skip(usize::from(b.threshold))
        .map(|(_, m)| m.clone())
        .collect();
    if let Err(e) = proposals::announce(state, cert, &witnesses).await {
        tracing::info!(vault = %b.vault_id, "a witness was not told of the certified repair: {e}");
    }
    let rounds: Vec<_> = groups
        .into_iter()
        .map(|(plan, spares)| tokio::spawn(wait_round(state.clone(), plan, spares)))
        .collect();
    for r in rounds {
        r.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Prepare: every holder of the next epoch (the live holders and the
/// replacements in `assignments`) re-seals its share; returns the next
/// manifest body with their entries, and who holds it.
async fn prepare_next(
    state: &Arc<State>,
    b: &ManifestBody,
    holders: &[(u8, Option<Member>)],
    assignments: &[(u8, (Fingerprint, Member))],
) -> Result<(ManifestBody, Vec<(u8, Option<Member>)>), String> {
    let id = b.vault_id;
    let mut next: Vec<(u8, Option<Member>)> = holders.to_vec();
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
    Ok((body, next))
}

/// Waits for every spare of a certified repair round to report its share.
pub(super) async fn wait_round(
    state: Arc<State>,
    plan: Plan,
    spares: Vec<Member>,
) -> Result<(), String> {
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

/// After a failed repair attempt, asks each helper of its `rounds` whose
/// pieces never reached it, and records each such pair (and each helper
/// that does not answer us, paired with us) as a dispute of epoch `b`:
/// the next attempt picks helpers with no dispute among them
/// (`transition::heal::pick_helpers`), so one helper withholding its
/// pieces cannot stall every attempt.
pub(super) async fn record_disputes(
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
    // Kept on disk: a leader that restarts does not meet them again.
    if let Ok(s) = state.store.lock() {
        if let Err(e) = s.add_helper_disputes(&id, b.epoch, &found) {
            tracing::warn!(vault = %id, "helper disputes not stored: {e}");
        }
    }
}
