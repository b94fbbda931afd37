//! Driving repair rounds over the peer API.
//!
//! A round starts only from a certified proposal
//! (`POST /v1/transition`, [`crate::proposals`]); a bare plan at
//! `POST /v1/repair` is refused. `POST /v1/repair` then carries the round's
//! pieces and sums (`PQVR`, [`crate::repair`]). The caller is authenticated
//! by mTLS as a member id; its share index is found by its identity (the
//! one its certificate binds) and the manifest, never from the message.
//! Every seal and unseal (HQC: milliseconds) runs on a blocking thread.

use crate::config::Member;
use crate::repair::{Helper, Message, Plan, Replacement};
use crate::retry::{Backoff, Loop, Retry};
use crate::state::State;
use crate::store::Steps;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vault::identity::{Fingerprint, PublicIdentity};
use vault::manifest::{VaultId, VerifiedManifest};

// The proof chain's format lives with the other formats in the vault
// crate (the operator's `vault mesh fetch` reads it too).
pub use vault::chain::{decode_proof, encode_proof, PROOF_KIND};

/// One round this validator takes part in.
// Only a handful of rounds exist at once; boxing variants would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Round {
    /// We are a helper.
    Helper {
        /// State machine.
        helper: Helper,
        /// Manifest of the round's epoch.
        manifest: VerifiedManifest,
        /// Each target's replacement identity, by target index.
        replacements: BTreeMap<u8, PublicIdentity>,
        /// Where each target's replacement is reached, by target index.
        replacement_members: BTreeMap<u8, Member>,
    },
    /// We are the replacement.
    Replacement {
        /// State machine.
        rep: Replacement,
        /// Manifest of the round's epoch.
        manifest: VerifiedManifest,
        /// The proof of that manifest (anchor and steps), to adopt the vault.
        proof: (Vec<u8>, Steps),
        /// The rebuilt share, sealed to ourselves, once complete.
        done: Option<Vec<u8>>,
    },
}

/// A round's state, shared between the handler and blocking work.
pub type RoundCell = Arc<Mutex<Round>>;

/// Forgets every repair round of `vault` for an epoch before `epoch`:
/// called once `epoch` is committed, so no piece, sum or rebuilt share of
/// an earlier polynomial outlives it in memory. Returns how many.
pub fn forget_before(state: &State, vault: &VaultId, epoch: u64) -> usize {
    let Ok(mut rounds) = state.rounds.lock() else {
        return 0;
    };
    let before = rounds.len();
    rounds.retain(|_, (cell, _)| {
        let r = cell.lock().unwrap_or_else(|p| p.into_inner());
        let m = match &*r {
            Round::Helper { manifest, .. } | Round::Replacement { manifest, .. } => manifest,
        };
        !(m.body().vault_id == *vault && m.body().epoch < epoch)
    });
    before - rounds.len()
}

/// An HTTP status and a message: how repair and epoch steps fail.
pub type Failure = (u16, String);

/// Builds a [`Failure`].
pub fn bad(code: u16, why: impl ToString) -> Failure {
    (code, why.to_string())
}

/// The status [`identity_of`] fails with when a member's answer contradicts
/// its certificate: proof of a lie, not a transient failure.
pub const IMPOSTOR: u16 = 421;

/// The identity of member `id`, fetched over mTLS once and cached, and
/// checked against the fingerprint its certificate binds.
pub async fn identity_of(state: &Arc<State>, id: &str) -> Result<PublicIdentity, Failure> {
    if id == state.id {
        return Ok(state.identity.public().clone());
    }
    if let Some(p) = state
        .identities
        .lock()
        .ok()
        .and_then(|c| c.get(id).cloned())
    {
        return Ok(p);
    }
    let m = state
        .members()
        .into_iter()
        .find(|m| m.id == id)
        .ok_or_else(|| bad(403, format!("{id} is not a member")))?;
    let r = state
        .ctl
        .get(&m, "/v1/identity", 64 << 10)
        .await
        .map_err(|e| bad(502, e))?;
    let p =
        PublicIdentity::decode(&r.body).map_err(|e| bad(502, format!("identity of {id}: {e}")))?;
    // The identity is the one the member's certificate binds, never just
    // what the member answers: a member claiming another's identity would
    // make a dead holder look alive, or inject pieces in its name.
    match r.identity {
        Some(bound) if bound != p.fingerprint() => {
            tracing::warn!(peer = %id, claimed = %p.fingerprint().short(), bound = %bound.short(), "a member claimed an identity its certificate does not bind");
            state
                .metrics
                .refusals
                .with_label_values(&["identity_mismatch"])
                .inc();
            return Err(bad(
                IMPOSTOR,
                format!(
                    "{id} answered identity {} but its certificate binds {}",
                    p.fingerprint().short(),
                    bound.short()
                ),
            ));
        }
        None if state.require_identity => {
            return Err(bad(
                IMPOSTOR,
                format!("{id}'s certificate binds no identity"),
            ))
        }
        _ => {}
    }
    if let Ok(mut c) = state.identities.lock() {
        c.insert(id.to_string(), p.clone());
    }
    Ok(p)
}

/// The member whose identity has fingerprint `fp`.
pub async fn member_with(
    state: &Arc<State>,
    fp: &Fingerprint,
) -> Result<(Member, PublicIdentity), Failure> {
    for m in &state.members() {
        if let Ok(p) = identity_of(state, &m.id).await {
            if p.fingerprint() == *fp {
                return Ok((m.clone(), p));
            }
        }
    }
    Err(bad(
        409,
        format!("no reachable member has identity {}", fp.short()),
    ))
}

/// The share index the authenticated `caller` holds under `m`.
async fn index_of(state: &Arc<State>, m: &VerifiedManifest, caller: &str) -> Result<u8, Failure> {
    let fp = identity_of(state, caller).await?.fingerprint();
    m.body()
        .shards
        .iter()
        .find(|e| e.recipient == fp)
        .map(|e| e.index)
        .ok_or_else(|| bad(403, format!("{caller} holds no share of this vault")))
}

pub fn current_manifest(
    state: &State,
    id: &VaultId,
) -> Result<(VerifiedManifest, Vec<u8>), Failure> {
    let store = state
        .store
        .lock()
        .map_err(|_| bad(500, "store lock poisoned"))?;
    let held = store
        .get(id)
        .ok_or_else(|| bad(404, "no shard of that vault here"))?;
    let m = store
        .verify_chain(&held.anchor, &held.steps)
        .map_err(|e| bad(500, e))?;
    Ok((m, held.shard.clone()))
}

/// Runs `f` (seal/unseal work) on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| bad(500, e))?
}

/// Delivers `msg` to `to` in the background.
fn send(state: &Arc<State>, to: Member, msg: Message) {
    deliver(state, to, "/v1/repair", msg.encode());
}

/// How long [`deliver`] keeps trying one round message.
pub const DELIVERY_PATIENCE: Duration = Duration::from_secs(5);

/// How [`deliver`] backs off: from 5 ms (a peer usually learns the
/// round's plan within a few ms of us: the leader announces to all at
/// once) up to 250 ms, so that a message still lands soon after a slow
/// peer catches up.
pub const DELIVERY_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(5), Duration::from_millis(250));

/// POSTs a round message (`body`, to `path`) to `to` in the background. A
/// peer that has not seen the round's plan yet answers 404; delivery is
/// retried (as on transport errors) with [`DELIVERY_BACKOFF`] for
/// [`DELIVERY_PATIENCE`], each failed attempt counted
/// (`crate::retry`), rather than buffering unsolicited messages. Repair
/// and re-share rounds both send through here.
pub fn deliver(state: &Arc<State>, to: Member, path: &'static str, body: Vec<u8>) {
    drop(deliver_watched(state, to, path, body));
}

/// [`deliver`], whose task ends with `to`'s answer if it accepted the
/// message.
pub fn deliver_watched(
    state: &Arc<State>,
    to: Member,
    path: &'static str,
    body: Vec<u8>,
) -> tokio::task::JoinHandle<Option<Vec<u8>>> {
    let state = state.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + DELIVERY_PATIENCE;
        let mut retry = Retry::new(&state.metrics, Loop::RoundDelivery, DELIVERY_BACKOFF);
        loop {
            let last = tokio::time::Instant::now() >= deadline;
            // Room for a signed receipt (`crate::reshare`).
            match state.ctl.post(&to, path, body.clone(), 16 << 10).await {
                Ok(r) if r.status < 300 => return Some(r.body.to_vec()),
                Ok(r) if r.status != 404 => {
                    tracing::warn!(peer = %to.id, %path, status = r.status, body = %String::from_utf8_lossy(&r.body), "round message refused");
                    return None;
                }
                Ok(r) if last => {
                    retry.failed();
                    tracing::warn!(peer = %to.id, %path, status = r.status, "round message refused");
                    return None;
                }
                Err(e) if last => {
                    retry.failed();
                    tracing::warn!(peer = %to.id, %path, "round message not delivered: {e}");
                    return None;
                }
                Ok(_) | Err(_) => {
                    let wait = retry.failed();
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + wait)).await
                }
            }
        }
    })
}

/// POSTs `body` to `path` on `to`, requires `expect` as the status and
/// returns the body (at most `max_body` bytes); an error names the path,
/// the member, and its status and answer.
pub async fn post_expecting(
    state: &Arc<State>,
    to: &Member,
    path: &str,
    body: Vec<u8>,
    expect: u16,
    max_body: usize,
) -> Result<Vec<u8>, String> {
    let r = state
        .ctl
        .post(to, path, body, max_body)
        .await
        .map_err(|e| format!("{path} on {}: {e}", to.id))?;
    if r.status != expect {
        return Err(format!(
            "{path} on {}: {} {}",
            to.id,
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        ));
    }
    Ok(r.body.to_vec())
}

/// Handles one `POST /v1/repair` from the authenticated `caller`.
pub async fn handle(
    state: Arc<State>,
    caller: String,
    body: &[u8],
) -> Result<&'static str, Failure> {
    let msg = Message::decode(body).map_err(|e| bad(400, e))?;
    match msg {
        // A plan acts only inside a certified proposal (POST /v1/transition).
        Message::Plan(_) => Err(crate::proposals::refuse_from(
            &state,
            &caller,
            crate::transition::Refusal::BarePlan,
        )),
        Message::Piece { round, .. } => {
            let cell = state
                .round(&round)
                .ok_or_else(|| bad(404, "unknown repair round"))?;
            let manifest = match &*cell.lock().map_err(|_| bad(500, "poisoned"))? {
                Round::Helper { manifest, .. } => manifest.clone(),
                Round::Replacement { .. } => {
                    return Err(bad(409, "pieces go to helpers, not the replacement"))
                }
            };
            let sender = index_of(&state, &manifest, &caller).await?;
            let key = state.identity.clone();
            let c = cell.clone();
            let out = blocking(move || {
                let mut r = c.lock().map_err(|_| bad(500, "poisoned"))?;
                let Round::Helper {
                    helper,
                    manifest,
                    replacements,
                    replacement_members,
                } = &mut *r
                else {
                    return Err(bad(409, "not a helper round"));
                };
                let sums = helper
                    .receive_piece(sender, &msg, manifest, &key, replacements)
                    .map_err(|e| bad(422, e))?;
                sums.into_iter()
                    .map(|(target, sum)| {
                        let to = replacement_members
                            .get(&target)
                            .cloned()
                            .ok_or_else(|| bad(500, "no member for a replacement"))?;
                        Ok((sum, to))
                    })
                    .collect::<Result<Vec<_>, Failure>>()
            })
            .await?;
            for (sum, to) in out {
                if crate::byzantine::silent_helper() {
                    break;
                }
                tracing::info!(peer = %to.id, "repair: partial sum sent to the replacement");
                send(&state, to, sum);
            }
            Ok("accepted\n")
        }
        Message::Sum { round, .. } => {
            let cell = state
                .round(&round)
                .ok_or_else(|| bad(404, "unknown repair round"))?;
            let manifest = match &*cell.lock().map_err(|_| bad(500, "poisoned"))? {
                Round::Replacement { manifest, .. } => manifest.clone(),
                Round::Helper { .. } => return Err(bad(409, "sums go to the replacement")),
            };
            let sender = index_of(&state, &manifest, &caller).await?;
            let key = state.identity.clone();
            let keys = state.keys.clone();
            let c = cell.clone();
            blocking(move || {
                let mut r = c.lock().map_err(|_| bad(500, "poisoned"))?;
                let Round::Replacement {
                    rep,
                    manifest,
                    done,
                    ..
                } = &mut *r
                else {
                    return Err(bad(409, "not a replacement round"));
                };
                if let Some(record) = rep
                    .receive_sum(sender, &msg, &key)
                    .map_err(|e| bad(422, e))?
                {
                    let sealed = keys
                        .seal_own(&record, manifest.body().suite)
                        .map_err(|e| bad(500, e))?;
                    crate::unsealed::remember(&sealed, &keys, &record);
                    tracing::info!(
                        index = record.share.index,
                        "repair: share rebuilt and verified against the manifest"
                    );
                    *done = Some(sealed);
                }
                Ok(())
            })
            .await?;
            Ok("accepted\n")
        }
    }
}

/// Starts our part in repair round `plan` of a certified proposal that
/// [`crate::proposals::transition`] authorized against `chain`: as the
/// replacement, or as a helper. The certificate decided that every target
/// is lost (a quorum of holders judged it on their own views); nothing here
/// re-decides it.
pub async fn start(
    state: &Arc<State>,
    plan: Plan,
    chain: &crate::proposals::HeldChain,
) -> Result<(), Failure> {
    if state.round(&plan.round).is_some() {
        return Err(bad(409, "round already started (replay?)"));
    }
    let me = state.identity.public().fingerprint();
    let manifest = chain.manifest.clone();
    if let Some(target) = plan.target_of(&me) {
        let rep = Replacement::new(plan.clone(), manifest.clone(), &state.identity)
            .map_err(|e| bad(422, e))?;
        let (suite, epoch) = (manifest.body().suite, manifest.body().epoch);
        state.insert_round(
            plan.round,
            Round::Replacement {
                rep,
                manifest,
                proof: chain.proof.clone(),
                done: None,
            },
        );
        tracing::info!(target, "repair: joined as a replacement");
        // While the helpers work: the keys we seal the rebuilt share to
        // (this epoch's) and re-seal it to at `prepare` (the next one's).
        crate::epochs::prewarm(state, plan.vault_id, None, suite, vec![epoch, epoch + 1]);
        return Ok(());
    }
    let shard = chain
        .shard
        .clone()
        .ok_or_else(|| bad(409, "we hold no shard of this vault to help with"))?;
    // Helpers remember whom they helped: never a second index of this
    // polynomial for one member, even under another certificate.
    crate::proposals::remember_named(state, &plan.vault_id, &plan.named())?;
    // Identities of the other helpers, each checked against the manifest by the engine.
    let mut identities = BTreeMap::new();
    let mut members = BTreeMap::new();
    for &j in &plan.helpers {
        if let Some(e) = manifest.body().entry(j) {
            if e.recipient == me {
                continue;
            }
            let (m, p) = member_with(state, &e.recipient).await?;
            identities.insert(j, p);
            members.insert(j, m);
        }
    }
    let (mut replacements, mut replacement_members) = (BTreeMap::new(), BTreeMap::new());
    for t in &plan.targets {
        let (m, p) = member_with(state, &t.replacement).await?;
        replacements.insert(t.index, p);
        replacement_members.insert(t.index, m);
    }
    let keys = state.keys.clone();
    let (p, man) = (plan.clone(), manifest.clone());
    let (helper, out) = blocking(move || {
        let mine = crate::unsealed::open(&shard, &keys).map_err(|e| bad(500, e))?;
        Helper::start(p, &man, &mine, &identities).map_err(|e| bad(422, e))
    })
    .await?;
    state.insert_round(
        plan.round,
        Round::Helper {
            helper,
            manifest,
            replacements,
            replacement_members,
        },
    );
    if crate::byzantine::silent_helper() {
        return Ok(());
    }
    for (j, msg) in out {
        if let Some(m) = members.get(&j) {
            send(state, m.clone(), msg);
        }
    }
    tracing::info!(targets = ?plan.indices(), "repair: helping; pieces sent");
    Ok(())
}

/// `GET /v1/repair/{round}` status: JSON with the role, whether the round is
/// complete and, for a completed replacement, the rebuilt share sealed to
/// itself (hex), which reveals nothing to anyone else.
pub fn status(cell: &RoundCell) -> serde_json::Value {
    match cell.lock().as_deref() {
        Ok(Round::Helper { helper, .. }) => serde_json::json!({
            "role": "helper",
            "missing_pieces_from": helper.missing(),
        }),
        Ok(Round::Replacement { done, .. }) => serde_json::json!({
            "role": "replacement",
            "complete": done.is_some(),
            "sealed": done.as_ref().map(hex::encode),
        }),
        Err(_) => serde_json::json!({ "error": "poisoned" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PQVC` both ways, against a proof laid out by hand from
    /// docs/formats.md (`vault/tests/vectors/v1-suite2/make_pqvc.py`) around
    /// the published suite-2 vectors: it decodes to the genesis anchor and
    /// the certified epoch-2 step, those encode to the same bytes, and the
    /// chain verifies from the operator.
    #[test]
    fn proof_chain_matches_the_checked_in_vector() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../vault/tests/vectors/v1-suite2");
        let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
        let bytes = read("epoch-2/proof.pqvc");
        let anchor = read("vault/manifest.pqvm");
        let step = (read("epoch-2/manifest.pqvm"), read("epoch-2/step-2.pqve"));
        let (a, steps) = decode_proof(&bytes).unwrap();
        assert_eq!(a, anchor);
        assert_eq!(steps, vec![step.clone()]);
        assert_eq!(encode_proof(&anchor, &[step]), bytes);
        let op = vault::identity::PublicIdentity::decode(&read("keys/TEST-ONLY-operator.pub"))
            .unwrap()
            .fingerprint();
        let genesis = vault::manifest::Manifest::decode(&a)
            .unwrap()
            .verify(Some(&op))
            .unwrap();
        let cert = vault::epoch::EpochCertificate::decode(&steps[0].1).unwrap();
        let latest = vault::epoch::verify_chain(genesis, &[(steps[0].0.clone(), cert)]).unwrap();
        assert_eq!(latest.body().epoch, 2);
        for cut in [0, 5, 9, bytes.len() - 1] {
            assert!(decode_proof(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
    }
}
