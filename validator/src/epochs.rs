//! Moving a vault to a new epoch over the peer API, after a repair.
//!
//! 1. `POST /v1/epoch/{vault}/prepare?from=E`: every holder of epoch E+1
//!    (the surviving holders and the replacement) re-seals its share for
//!    epoch E+1 to itself, keeps it pending (a surviving holder also on
//!    disk, before it answers, so a restart before the commit can still
//!    commit), and answers with its index, fingerprint, the new shard's
//!    hash and share commitment.
//! 2. The leader writes the epoch E+1 manifest from the answers and signs it.
//! 3. `POST /v1/epoch/{vault}/sign` (manifest in the body): each validator
//!    of epoch E checks the manifest (same vault, secret, t, n and suite;
//!    its own entry is its pending shard; every replaced holder no longer
//!    answers it) and signs the transition, at most once per epoch, so two
//!    different successors of one epoch can never both reach a majority.
//! 4. `POST /v1/epoch/{vault}/commit` (manifest and certificate): each new
//!    holder verifies the certificate and switches its store.
//!
//! Repair keeps the polynomial, so a re-sealed share has the same value
//! under the new epoch's binding. Seal and unseal run on blocking threads.

use crate::rounds::{bad, blocking, Failure, Round};
use crate::state::State;
use crate::transition::signing::{Signing, Work};
use crate::transition::successor::{self, Made, Ours};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vault::codec::{FormatError, Reader, Writer};
use vault::epoch::{EpochCertificate, Transition};
use vault::manifest::{shard_hash, Manifest, ManifestBody, VaultId};
use vault::seal::SealedShard;
use vault::share::ShareRecord;

use crate::store::Steps;

/// A share re-sealed for the next epoch, waiting for the commit.
#[derive(Clone)]
pub struct Prepared {
    /// The epoch being left.
    pub from_epoch: u64,
    /// Share index.
    pub index: u8,
    /// The share sealed to ourselves under epoch `from_epoch + 1`.
    pub sealed: Vec<u8>,
    /// For a replacement: the proof of epoch `from_epoch`, to adopt the vault.
    pub adopt: Option<(Vec<u8>, Steps)>,
    /// How the share was made, which decides what signing must check.
    pub origin: Origin,
}

/// Where a prepared share came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Re-sealed or repaired: the same polynomial, checked against the
    /// chain's share commitments.
    SamePolynomial,
    /// Combined from the sub-shares of this re-share round: signing runs
    /// the dealing check first ([`crate::reshare::check_dealing`]).
    Reshare([u8; 16]),
    /// Read back from disk after a restart: enough to commit a certified
    /// successor, never to sign one (the round's check state is gone).
    Restored,
}

/// Answer to `prepare`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrepareReply {
    /// Share index.
    pub index: u8,
    /// Identity fingerprint (hex).
    pub recipient: String,
    /// Identity name.
    pub recipient_name: String,
    /// SHA-256 of the new sealed shard (hex).
    pub blob_hash: String,
    /// Commitment to the share under the new epoch (hex).
    pub share_commitment: String,
}

/// Step 1: re-seal our share of `vault` for epoch `from + 1`.
pub async fn prepare(
    state: Arc<State>,
    vault: VaultId,
    from: u64,
) -> Result<PrepareReply, Failure> {
    let held = state
        .store
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get(&vault)
        .cloned();
    // Either we hold the vault at `from`, or we just rebuilt a share of it.
    let (sealed_now, adopt) = match held {
        Some(h) if h.epoch == from => (h.shard, None),
        Some(h) => {
            return Err(bad(
                409,
                format!("vault is at epoch {} here, not {from}", h.epoch),
            ))
        }
        None => {
            let rounds: Vec<_> = state
                .rounds
                .lock()
                .map_err(|_| bad(500, "poisoned"))?
                .values()
                .map(|(cell, _)| cell.clone())
                .collect();
            let mut found = None;
            for cell in rounds {
                if let Ok(Round::Replacement {
                    manifest,
                    proof,
                    done: Some(sealed),
                    ..
                }) = cell.lock().as_deref()
                {
                    if manifest.body().vault_id == vault && manifest.body().epoch == from {
                        found = Some((sealed.clone(), Some(proof.clone())));
                    }
                }
            }
            found.ok_or_else(|| bad(404, "no share of that vault here"))?
        }
    };
    let keys = state.keys.clone();
    let (record, sealed) = blocking(move || {
        let old = crate::unsealed::open(&sealed_now, &keys).map_err(|e| bad(500, e))?;
        let next = ShareRecord {
            vault_id: old.vault_id,
            epoch: from + 1,
            threshold: old.threshold,
            n: old.n,
            share: old.share.clone(),
        };
        let suite = SealedShard::parse(&sealed_now)
            .map_err(|e| bad(500, e))?
            .header
            .suite;
        let sealed = keys.seal_own(&next, suite).map_err(|e| bad(500, e))?;
        crate::unsealed::remember(&sealed, &keys, &next);
        Ok((next, sealed))
    })
    .await?;
    if adopt.is_none() {
        save_pending(&state, vault, &sealed).await?;
    }
    let reply = PrepareReply {
        index: record.share.index,
        recipient: state.identity.public().fingerprint().to_hex(),
        recipient_name: state.identity.public().name().to_string(),
        blob_hash: hex::encode(shard_hash(&sealed)),
        share_commitment: hex::encode(record.commitment()),
    };
    state
        .pending
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .insert(
            vault,
            Prepared {
                from_epoch: from,
                index: record.share.index,
                sealed,
                adopt,
                origin: Origin::SamePolynomial,
            },
        );
    Ok(reply)
}

/// Readies us, off the critical path, for the steps of a transition of
/// `vault` from epoch `from` that we are about to take part in: our
/// sealed `shard` of it (if we hold one) unsealed into the cache
/// (`crate::unsealed`: helping and `prepare` open it), and our epoch keys
/// for `epochs` made with `suite` (`prepare` seals to the key of
/// `from + 1`; a replacement first seals its rebuilt share to the key of
/// `from`). Runs in the background; a failure only means the step does
/// the work itself. A key made for an epoch the vault has meanwhile left
/// is erased at once, as a commit would have.
pub fn prewarm(
    state: &Arc<State>,
    vault: VaultId,
    shard: Option<Vec<u8>>,
    suite: vault::kem::hybrid::Suite,
    epochs: Vec<u64>,
) {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(shard) = &shard {
            if let Err(e) = crate::unsealed::open(shard, &state.keys) {
                tracing::debug!(%vault, "prewarm: our shard did not open: {e}");
            }
        }
        for &epoch in &epochs {
            if let Err(e) = state.keys.prepare_key(suite, vault, epoch) {
                tracing::debug!(%vault, epoch, "prewarm: no epoch key made ahead: {e}");
            }
        }
        let held = state
            .store
            .lock()
            .ok()
            .and_then(|s| s.get(&vault).map(|h| h.epoch));
        if let Some(held) = held.filter(|h| epochs.iter().any(|e| e < h)) {
            if let Err(e) = state.keys.erase_before(&vault, held) {
                tracing::warn!(%vault, "could not erase earlier epoch keys: {e}");
            }
        }
    });
}

/// Writes our re-sealed share of `vault` for the next epoch to disk before
/// anyone is told of it (write-ahead): the next manifest commits to these
/// exact bytes, so they must survive a restart before the commit.
pub async fn save_pending(
    state: &Arc<State>,
    vault: VaultId,
    sealed: &[u8],
) -> Result<(), Failure> {
    let (st, bytes) = (state.clone(), sealed.to_vec());
    let from = SealedShard::parse(sealed)
        .map_err(|e| bad(500, e))?
        .header
        .epoch
        .saturating_sub(1);
    blocking(move || {
        let store = st.store.lock().map_err(|_| bad(500, "poisoned"))?;
        // Once we signed a successor, only that one can ever be certified,
        // and it names the share we prepared then: keep it.
        if store.signed_successor(&vault, from) {
            return Err(bad(
                409,
                format!("we signed a successor of epoch {from} already; our share prepared for it stays as it is"),
            ));
        }
        store.save_pending(&vault, &bytes).map_err(|e| bad(500, e))
    })
    .await
}

/// Our prepared share of `vault`: from memory, or else (after a restart
/// between `prepare` and `commit`) from the store's pending file, if it
/// re-seals the epoch after the one we hold. Not trusted either way: the
/// commit verifies it against the certified manifest.
fn prepared(state: &State, vault: &VaultId) -> Result<Prepared, Failure> {
    if let Some(p) = state
        .pending
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get(vault)
        .cloned()
    {
        return Ok(p);
    }
    let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
    let nothing = || bad(409, "nothing prepared for this vault");
    let held = store.get(vault).ok_or_else(nothing)?;
    let sealed = store.pending(vault).ok_or_else(nothing)?;
    let header = SealedShard::parse(&sealed).map_err(|_| nothing())?.header;
    if Some(header.epoch) != held.epoch.checked_add(1) || header.vault_id != *vault {
        return Err(nothing());
    }
    Ok(Prepared {
        from_epoch: held.epoch,
        index: header.index,
        sealed,
        adopt: None,
        origin: Origin::Restored,
    })
}

/// A successor that keeps the polynomial is exactly a repair we stand by
/// in this epoch (voted for, or took part in as a helper): each target's
/// index goes to its replacement, every other index stays with its holder. Without this an insider could have
/// every holder spend its one successor signature of the epoch on
/// re-sealed copies that never gather a quorum, and no loss would ever
/// heal again (`byzantine.rs`
/// `an_insider_cannot_spend_the_holders_successor_votes_on_empty_epochs`).
fn same_polynomial_is_our_repair(
    state: &State,
    c: &vault::manifest::ManifestBody,
    n: &vault::manifest::ManifestBody,
    proposal: Option<&crate::transition::Proposal>,
) -> Result<(), Failure> {
    let standing = match proposal {
        Some(p) => vec![p.clone()],
        None => crate::proposals::standing_proposals(state, &c.vault_id, c.epoch)?,
    };
    let repairs: Vec<Vec<crate::repair::Plan>> = standing
        .into_iter()
        .filter_map(|p| match p.action {
            crate::transition::Action::Repair(plans) => Some(plans),
            crate::transition::Action::Reshare(_) => None,
        })
        .collect();
    if repairs.is_empty() {
        return Err(bad(
            409,
            format!(
                "a successor that keeps the polynomial is signed only as the certified repair we voted for or helped, and we stand by no repair of epoch {}",
                c.epoch
            ),
        ));
    }
    let is = |plans: &Vec<crate::repair::Plan>| {
        let targets: std::collections::BTreeMap<u8, vault::identity::Fingerprint> = plans
            .iter()
            .flat_map(|p| p.targets.iter().map(|t| (t.index, t.replacement)))
            .collect();
        n.shards.iter().all(|e| {
            let due = targets
                .get(&e.index)
                .copied()
                .or_else(|| c.entry(e.index).map(|o| o.recipient));
            due == Some(e.recipient)
        })
    };
    if !repairs.iter().any(is) {
        return Err(bad(
            409,
            "the successor does not put the shares where the certified repair we voted for or helped puts them",
        ));
    }
    Ok(())
}

/// A vote is final, so it is cast only where a transition can complete:
/// our own view must hold a quorum of live holders of epoch `c` (a
/// validator cut off in a minority keeps its vote), and the proposer
/// (`caller`) must be one of them.
async fn quorum_in_view(
    state: &Arc<State>,
    c: &ManifestBody,
    rules: &crate::transition::Rules,
    caller: &str,
) -> Result<Vec<String>, Failure> {
    let live = crate::custody::live_holders(state, c).await;
    let quorum = rules.quorum(c.threshold, c.n);
    if live.len() < quorum {
        return Err(bad(
            409,
            format!(
                "we see {} live holders of epoch {}, fewer than the quorum of {quorum}; not voting",
                live.len(),
                c.epoch
            ),
        ));
    }
    if !live.iter().any(|id| id == caller) {
        return Err(bad(
            409,
            format!(
                "{caller} is not a live holder of epoch {} in our view",
                c.epoch
            ),
        ));
    }
    Ok(live)
}

/// Step 3: check the proposed next manifest (carried in a signed
/// successor request, `PQSQ`, from `caller`, whose certificate binds
/// `bound`) and sign the transition.
pub async fn sign(
    state: Arc<State>,
    vault: VaultId,
    request: &[u8],
    caller: &str,
    bound: Option<vault::identity::Fingerprint>,
) -> Result<Vec<u8>, Failure> {
    if crate::byzantine::shuns(caller) {
        return Err(bad(503, "busy"));
    }
    let request = crate::successor::Request::decode(request).map_err(|e| bad(400, e))?;
    if request.vault_id != vault {
        return Err(bad(422, "the successor request is for another vault"));
    }
    request
        .verify()
        .map_err(|e| bad(422, format!("the successor request's signature: {e}")))?;
    // The requester is the caller: the identity its certificate binds (a
    // mesh that binds none yet asks the member).
    let caller_fp = match bound {
        Some(fp) => fp,
        None => crate::rounds::identity_of(&state, caller)
            .await?
            .fingerprint(),
    };
    if request.requester.fingerprint() != caller_fp {
        return Err(bad(
            422,
            format!(
                "the successor request is signed by {}, not by {caller}",
                request.requester.fingerprint().short()
            ),
        ));
    }
    let next_bytes = &request.manifest[..];
    let (current, _) = {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        let held = store
            .get(&vault)
            .ok_or_else(|| bad(404, "no shard of that vault here"))?;
        (
            store
                .verify_chain(&held.anchor, &held.steps)
                .map_err(|e| bad(500, e))?,
            (),
        )
    };
    let next = Manifest::decode(next_bytes).map_err(|e| bad(400, e))?;
    let next_verified = next.clone().verify(None).map_err(|e| bad(422, e))?;
    let (c, n) = (current.body(), next_verified.body());
    // The very successor we already signed (our vote is spent on it): the
    // same signature again, whoever asks, even after a restart. Every check
    // ran when we first signed it. A successor we refused, for good (D53:
    // its withdrawal counts on it), never.
    let (voted, refused, named) = {
        let store = state.store.lock().map_err(|_| bad(500, "poisoned"))?;
        (
            store.voted_successor(&vault, c.epoch),
            store.refused_successors(&vault, c.epoch),
            store.named(&vault).map_err(|e| bad(500, e))?,
        )
    };
    let again = successor::Vote::of(voted, &next.digest()) == successor::Vote::Again
        && n.epoch == c.epoch + 1;
    let log_on = state.consensus.get().is_some();
    let mut signing =
        Signing::new(again, refused.contains(&next.digest()), log_on).map_err(|e| bad(409, e))?;
    let rules = crate::proposals::rules(&state, &vault);
    let me = state.identity.public().fingerprint();
    let mut pending = None;
    let mut live = Vec::new();
    let mut carried = None;
    let mut judgement = None;
    while let Some(work) = signing.poll() {
        match work {
            // Its shape, against our own prepared share (verify before
            // delete: the epoch we sign away must have a successor that is
            // a sharing of the same secret).
            Work::Shape => {
                let p = prepared(&state, &vault)?;
                let made = match p.origin {
                    Origin::SamePolynomial => Made::SamePolynomial,
                    Origin::Reshare(_) => Made::Reshare,
                    Origin::Restored => Made::Restored,
                };
                let shape = successor::shape(
                    c,
                    n,
                    request.from_epoch,
                    &rules,
                    &Ours {
                        me: &me,
                        from_epoch: p.from_epoch,
                        index: p.index,
                        blob_hash: shard_hash(&p.sealed),
                        made,
                    },
                    &named,
                );
                pending = Some(p);
                signing
                    .shaped(shape, made)
                    .map_err(|m| bad(m.status(), m))?;
            }
            // Only holders that are lost to us (no answer, or failed
            // custody) may be left out or replaced.
            Work::HoldersLost => {
                let shape = signing.shape().ok_or_else(|| bad(500, "no shape"))?;
                for (index, holder) in &shape.left_out {
                    if !crate::custody::holder_replaceable(&state, c, holder).await {
                        return Err(bad(
                            409,
                            format!("share {index} is left out but its holder still keeps it"),
                        ));
                    }
                }
                for (index, holder) in &shape.replaced {
                    if !crate::custody::holder_replaceable(&state, c, holder).await {
                        return Err(bad(
                            409,
                            format!(
                                "share {index} changes hands but its holder still answers and keeps it"
                            ),
                        ));
                    }
                }
            }
            // Refused at once where no transition can complete (before
            // waiting for the log: a log without a quorum never answers),
            // and again after that wait, which may have taken seconds.
            Work::Quorum => live = quorum_in_view(&state, c, &rules, caller).await?,
            // With the epoch log, only the successor it decided is ever
            // signed: two leaders can no longer split the votes.
            Work::LogDecided => {
                let log = state
                    .consensus
                    .get()
                    .ok_or_else(|| bad(500, "the epoch log is off"))?;
                let decided = log
                    .wait_applied(&vault, c.epoch, std::time::Duration::from_secs(5))
                    .await
                    .ok_or_else(|| {
                        bad(
                            409,
                            format!(
                                "the epoch log has decided no successor of epoch {} yet",
                                c.epoch
                            ),
                        )
                    })?;
                if decided.digest != next.digest() {
                    return Err(bad(
                        409,
                        "the epoch log decided another successor of this epoch",
                    ));
                }
            }
            // Without the epoch log, a successor carries out a certified
            // proposal we stand by, and only its proposer writes copies of
            // it: anyone else may only ask us to finish a copy another
            // holder already signed (checked in the exchange). With the
            // log, the log decides.
            Work::Carry => {
                let mut proposer_id = None;
                let mut facts = None;
                if !log_on {
                    let known = crate::proposals::known_with_proposer(
                        &state,
                        &vault,
                        c.epoch,
                        &request.proposal,
                    )?;
                    if let Some((p, proposer, standing)) = known {
                        let proposer_fp = crate::rounds::identity_of(&state, &proposer)
                            .await?
                            .fingerprint();
                        carried = Some(p);
                        facts = Some(successor::Carried {
                            written_by_proposer: next_verified.signer().fingerprint()
                                == proposer_fp,
                            asked_by_proposer: proposer == caller,
                            standing,
                        });
                        proposer_id = Some(proposer);
                    }
                }
                let round = match pending.as_ref().map(|p| p.origin) {
                    Some(Origin::Reshare(round)) => Some(successor::OurRound {
                        in_proposal: carried.as_ref().is_none_or(|p| p.rounds().contains(&round)),
                        kept: state
                            .reshares
                            .lock()
                            .map_err(|_| bad(500, "poisoned"))?
                            .contains_key(&round),
                    }),
                    _ => None,
                };
                signing
                    .carried(successor::Decider::Holders(facts), round)
                    .map_err(|e| {
                        let who = match (e, &proposer_id) {
                            (successor::NotCarried::NotProposersCopy, Some(p)) => format!(
                                "; written by {}, the proposer is {p}",
                                next_verified.signer().fingerprint().short()
                            ),
                            _ => String::new(),
                        };
                        bad(
                            e.status(),
                            format!(
                                "{e} (proposal {}, epoch {}{who})",
                                hex::encode(&request.proposal[..8]),
                                c.epoch
                            ),
                        )
                    })?;
            }
            Work::Dealing => {
                if let Some(Origin::Reshare(round)) = pending.as_ref().map(|p| p.origin) {
                    crate::reshare::check_dealing(&state, round, c, &rules).await?
                }
            }
            Work::OurRepair => same_polynomial_is_our_repair(&state, c, n, carried.as_ref())?,
            // The pre-sign exchange: record the request, then ask the
            // other live holders what they were asked and signed
            // (`crate::successor`).
            Work::Exchange => {
                let kept = crate::successor::record(&state, &request)?;
                let answers = crate::successor::ask_others(&state, &current, &live).await;
                let already = convicted_fingerprints(&state, &vault).await;
                let j = crate::successor::judge(&current, &request, &kept, &answers, &already);
                tracing::debug!(vault = %vault, epoch = c.epoch, answers = answers.len(), kept = kept.len(), verdict = ?j.verdict, "pre-sign exchange");
                signing
                    .exchanged(
                        j.verdict == crate::successor::Verdict::Sign,
                        !j.ours_signed_by.is_empty(),
                    )
                    .map_err(|e| bad(e.status(), e))?;
                judgement = Some(j);
            }
            Work::ApplyExchange => {
                let j = judgement.take().ok_or_else(|| bad(500, "no judgement"))?;
                crate::successor::apply(&state, &request, j).await?;
            }
            // At most one successor per epoch.
            Work::Vote => state
                .store
                .lock()
                .map_err(|_| bad(500, "poisoned"))?
                .vote(&vault, c.epoch, &next.digest())
                .map_err(|e| match e {
                    crate::store::StoreError::Rejected(why) => bad(409, why),
                    other => bad(500, other),
                })?,
            Work::Sign => return sign_and_keep(&state, &current, &next, &request),
        }
    }
    Err(bad(500, "successor request judged without a signature"))
}

/// The fingerprints of the members we convicted of lying about `vault`.
async fn convicted_fingerprints(
    state: &Arc<State>,
    vault: &VaultId,
) -> Vec<vault::identity::Fingerprint> {
    let convicted: Vec<String> = state
        .convicted
        .lock()
        .map(|c| {
            c.iter()
                .filter(|(v, _)| v == vault)
                .map(|(_, id)| id.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut fps = Vec::new();
    for id in convicted {
        if let Ok(p) = crate::rounds::identity_of(state, &id).await {
            fps.push(p.fingerprint());
        }
    }
    fps
}

/// Our signature on the step from `current` to `next` (a one-signature
/// certificate), kept with the `request` it answers (`crate::successor`).
fn sign_and_keep(
    state: &State,
    current: &vault::manifest::VerifiedManifest,
    next: &Manifest,
    request: &crate::successor::Request,
) -> Result<Vec<u8>, Failure> {
    let t = Transition::between(current, next);
    let sig = t.sign(&state.identity).map_err(|e| bad(500, e))?;
    let cert = EpochCertificate {
        transition: t,
        signatures: vec![sig],
    }
    .encode();
    crate::successor::signed(state, request, &cert);
    Ok(cert)
}

/// Encodes the commit body: the next manifest and its certificate.
pub fn encode_commit(manifest: &[u8], certificate: &[u8]) -> Vec<u8> {
    let mut w = Writer::raw();
    w.var_bytes(manifest).var_bytes(certificate);
    w.finish()
}

/// Whether the commit `bytes` (as [`encode_commit`] lays it out) moves to
/// the manifest whose digest is `digest`.
pub fn commit_leads_to(bytes: &[u8], digest: &[u8; 32]) -> bool {
    decode_commit(bytes)
        .ok()
        .and_then(|(m, _)| vault::manifest::Manifest::decode(&m).ok())
        .is_some_and(|m| &m.digest() == digest)
}

fn decode_commit(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), FormatError> {
    let mut r = Reader::raw(bytes);
    let m = r.var_bytes("manifest", 4 << 20)?.to_vec();
    let c = r.var_bytes("certificate", 4 << 20)?.to_vec();
    r.finish()?;
    Ok((m, c))
}

/// Step 4: verify the certificate and switch to the new epoch.
pub async fn commit(state: Arc<State>, vault: VaultId, body: &[u8]) -> Result<u64, Failure> {
    let (manifest, cert) = decode_commit(body).map_err(|e| bad(400, e))?;
    // Already committed (a leader retrying after a partial failure).
    if let Some(epoch) = state
        .store
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get(&vault)
        .filter(|h| h.manifest == manifest)
        .map(|h| h.epoch)
    {
        return Ok(epoch);
    }
    let pending = prepared(&state, &vault)?;
    let started = std::time::Instant::now();
    // With the epoch log, the old epoch is left (and its files deleted)
    // only once the log holds this certificate.
    if let Some(log) = state.consensus.get() {
        let digest = vault::manifest::Manifest::decode(&manifest)
            .map_err(|e| bad(400, e))?
            .digest();
        let from = pending.from_epoch;
        // The epoch we leave, to judge the log's decision against (D52):
        // a replacement holds it in the chain it adopts, not in its store.
        let prev = match &pending.adopt {
            Some((anchor, steps)) => state
                .store
                .lock()
                .map_err(|_| bad(500, "poisoned"))?
                .verify_chain(anchor, steps)
                .map_err(|e| bad(500, e))?,
            None => crate::rounds::current_manifest(&state, &vault)?.0,
        };
        let f = crate::proposals::rules(&state, &vault).f;
        match log
            .wait_certified_against(&vault, from, &prev, f, std::time::Duration::from_secs(5))
            .await
        {
            Some(d) if d == digest => {}
            Some(_) => return Err(bad(409, "the epoch log certified another successor")),
            None => {
                return Err(bad(
                    409,
                    "the epoch log does not hold this certificate (yet)",
                ))
            }
        }
    }
    let waited_log = started.elapsed();
    let st = state.clone();
    // A repaired (or restored, so unknown) share keeps the polynomial: the
    // epoch owes a refresh until a re-share replaces it.
    let owes_refresh = !matches!(pending.origin, Origin::Reshare(_));
    let (epoch, stored) = blocking(move || {
        let entered = std::time::Instant::now();
        let mut store = st.store.lock().map_err(|_| bad(500, "poisoned"))?;
        let held = match &pending.adopt {
            Some((anchor, steps)) => {
                store.adopt(anchor, steps, &manifest, &cert, &pending.sealed, &st.keys)
            }
            None => store.advance(&vault, &manifest, &cert, &pending.sealed, &st.keys),
        }
        .map_err(|e| bad(422, e))?
        .epoch;
        if let Err(e) = store.set_refresh_owed(&vault, owes_refresh) {
            tracing::warn!(%vault, "could not record whether a refresh is owed: {e}");
        }
        // A fresh polynomial: the replacements named for the old one may
        // each receive one share of the new one.
        if !owes_refresh {
            if let Err(e) = store.clear_named(&vault) {
                tracing::warn!(%vault, "could not forget the old polynomial's replacements: {e}");
            }
        }
        Ok((held, entered.elapsed()))
    })
    .await?;
    if let Ok(mut p) = state.pending.lock() {
        p.remove(&vault);
    }
    if let Ok(store) = state.store.lock() {
        store.clear_pending(&vault);
        // Helpers and dealers in dispute were judged for earlier epochs.
        store.forget_disputes_before(&vault, epoch);
    }
    // Custody verdicts judged the shards of the epoch just left: a holder
    // rebuilt in this one (back with an empty disk) misses nothing now.
    // Kept, "missing" had the next heal pass rebuild the same share again
    // before the next custody check could clear it.
    if let Ok(mut c) = state.custody.lock() {
        c.retain(|(v, _), _| *v != vault);
    }
    // The rounds that built this epoch hold pieces, sums and sub-shares of
    // the polynomials before it: gone with the earlier epochs' keys.
    let forgotten = crate::rounds::forget_before(&state, &vault, epoch)
        + crate::reshare::forget_before(&state, &vault, epoch);
    tracing::info!(%vault, epoch, forgotten_rounds = forgotten, "vault moved to a new epoch");
    tracing::debug!(%vault, epoch, waited_log_ms = waited_log.as_millis() as u64, store_ms = stored.as_millis() as u64, total_ms = started.elapsed().as_millis() as u64, "commit timing");
    Ok(epoch)
}
