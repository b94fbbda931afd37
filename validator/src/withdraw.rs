//! Withdrawing a stalled decision of the epoch log (decisions D53).
//!
//! The log keeps every proposal of an epoch in commit order and readers
//! take the first that is a successor of their epoch (D52). A lying holder
//! can still write a well-formed successor of its own first, one no quorum
//! will ever sign, and with it hold the epoch. So when a decided successor
//! stays uncertified, healing's leader asks the epoch's live holders to
//! refuse it ([`refuse`], `POST /v1/epoch/{vault}/refuse`): a holder that
//! has not signed it, and has seen it stalled for `[consensus]
//! stalled_after_ms` (10 s by default) in its own view, records durably
//! that it never will, then signs a refusal.
//! With refusals from a quorum of holders the leader writes a withdrawal
//! to the log ([`withdraw_stalled`]); every reader verifies the refusals
//! and passes the proposal over. Safe because any quorum that could
//! certify it shares an honest holder with the refusing quorum, and that
//! holder will never sign it: nothing that could become an epoch is lost.

use crate::config::Member;
use crate::consensus::record::Withdrawal;
use crate::rounds::{self, bad, Failure};
use crate::state::State;
use crate::transition::proposal::refusal_digest;
use crate::transition::Vote;
use std::sync::Arc;
use std::time::Duration;
use vault::manifest::VaultId;

/// A holder's answer to a request to refuse the successor `digest` of
/// epoch `from` of `vault`: its refusal (`PQVV` over
/// [`refusal_digest`]), recorded durably first; or why not (409: not the
/// stalled decision of our epoch, we signed it, or it has not been
/// stalled for `[consensus] stalled_after_ms` (10 s by default) yet).
pub fn refuse(
    state: &Arc<State>,
    vault: VaultId,
    from: u64,
    digest: &[u8; 32],
) -> Result<Vec<u8>, Failure> {
    let log = state
        .consensus
        .get()
        .ok_or_else(|| bad(409, "the epoch log is not running here"))?;
    let (current, _) = rounds::current_manifest(state, &vault)?;
    if current.body().epoch != from {
        return Err(bad(
            409,
            format!("we hold epoch {}, not {from}", current.body().epoch),
        ));
    }
    let f = crate::proposals::rules(state, &vault).f;
    match log.decision_against(&vault, from, &current, f) {
        Some(d) if d.digest == *digest && d.certificate.is_none() => {}
        Some(d) if d.digest == *digest => return Err(bad(409, "that successor is certified")),
        _ => return Err(bad(409, "that is not the decided successor of our epoch")),
    }
    let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
    if store.voted_successor(&vault, from) == Some(*digest) {
        return Err(bad(409, "we signed that successor"));
    }
    // A leader gathers signatures in well under a second, so only a
    // decision nobody will sign waits this long, and a liar asking early
    // kills no honest decision. The stall counts from the first time we
    // were asked, kept on disk so a restart does not start it again; a
    // successor we refused already is refused again at once.
    if !store.refused_successors(&vault, from).contains(digest) {
        let now = crate::state::unix_ms();
        let since = store
            .stalled_since(&vault, from, digest, now)
            .map_err(|e| bad(500, e))?;
        let stalled = Duration::from_millis(now.saturating_sub(since));
        let after = log.stalled_after();
        if stalled < after {
            return Err(bad(
                409,
                format!(
                    "decided {} ms ago in our view; refused only after {} ms",
                    stalled.as_millis(),
                    after.as_millis()
                ),
            ));
        }
    }
    store
        .refuse_successor(&vault, from, digest)
        .map_err(|e| bad(500, e))?;
    drop(store);
    tracing::warn!(vault = %vault, from, digest = %hex::encode(&digest[..8]), "refused a successor the epoch log decided that stayed uncertified");
    state
        .metrics
        .log_withdrawals
        .with_label_values(&["refused"])
        .inc();
    Vote::sign_refusal(&refusal_digest(&vault, from, digest), &state.identity)
        .map(|v| v.encode())
        .map_err(|e| bad(500, e.to_string()))
}

/// Asks `holders` (the live holders of epoch `from`; `None` is ourselves)
/// to refuse the stalled decided successor `digest` and, with refusals of
/// a quorum (`quorum`), writes its withdrawal to the epoch log. Returns
/// whether it did; refusals short of a quorum are logged and dropped (a
/// later pass asks again).
pub async fn withdraw_stalled(
    state: &Arc<State>,
    vault: VaultId,
    from: u64,
    digest: [u8; 32],
    holders: &[Option<Member>],
    quorum: usize,
) -> bool {
    let Some(log) = state.consensus.get() else {
        return false;
    };
    let asks: Vec<_> = holders
        .iter()
        .cloned()
        .map(|who| {
            let state = state.clone();
            tokio::spawn(async move {
                match who {
                    None => refuse(&state, vault, from, &digest).map_err(|(_, e)| e),
                    Some(m) => rounds::post_expecting(
                        &state,
                        &m,
                        &format!("/v1/epoch/{vault}/refuse?from={from}"),
                        digest.to_vec(),
                        200,
                        64 << 10,
                    )
                    .await
                    .map_err(|e| format!("{}: {e}", m.id)),
                }
            })
        })
        .collect();
    let mut refusals = Vec::new();
    let mut why = Vec::new();
    for a in asks {
        match a.await {
            Ok(Ok(v)) => refusals.push(v),
            Ok(Err(e)) => why.push(e),
            Err(e) => why.push(e.to_string()),
        }
    }
    if refusals.len() < quorum {
        state
            .metrics
            .log_withdrawals
            .with_label_values(&["short"])
            .inc();
        tracing::info!(vault = %vault, from, got = refusals.len(), quorum, "the stalled successor is not refused by a quorum yet: {}", why.join("; "));
        return false;
    }
    let w = Withdrawal {
        vault,
        from_epoch: from,
        manifest_digest: digest,
        refusals,
    };
    match log.withdraw(w).await {
        Ok(()) => {
            tracing::warn!(vault = %vault, from, digest = %hex::encode(&digest[..8]), "withdrew a decided successor no quorum signed");
            state
                .metrics
                .log_withdrawals
                .with_label_values(&["withdrawn"])
                .inc();
            true
        }
        Err(e) => {
            tracing::info!(vault = %vault, from, "withdrawal not written: {e}");
            false
        }
    }
}
