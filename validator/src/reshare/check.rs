//! Checking a re-share before anyone deletes the previous epoch: reveals,
//! check values, disputes and what follows a bad dealing
//! (docs/protocol.md, "Checking a re-share").

use super::relay::relayed;
use super::wire::{
    check_statement, signature_from_hex, subshare_statement, Message, Plan, Revealed, SignedValues,
    CHECK_DOMAIN, SUBSHARE_DOMAIN,
};
use crate::rounds::{self, bad, blocking, Failure};
use crate::state::State;
use std::sync::Arc;
use vault::identity::Fingerprint;
use vault::share::MAX_SHARE_LEN;
use vault::sign::HybridSignature;
use zeroize::Zeroizing;

/// `POST /v1/reshare/{round}/reveal` with a signer's view (`PQVX` type
/// 5): our sub-shares with their dealers' signatures (type 4), answered
/// only if in that view, every entry signed by its recipient, our values
/// alone disagree and the numbers make a reveal harmless
/// (`vault::dealing::settleable`). Honest recipients' entries are the
/// same in every view (each signs one set), so at most one honest
/// recipient per round can find itself alone off in any view, and one
/// revealed point more than the `f` corrupt recipients know stays below
/// `t'` on every dealer's fresh polynomial. Once we revealed, we answer
/// again without a view. A deliberate refusal is 403 and convicts no
/// honest recipient: given a valid view in which its values alone
/// disagree, an honest one always reveals.
pub async fn reveal(state: &Arc<State>, round: [u8; 16], body: &[u8]) -> Result<Vec<u8>, Failure> {
    let (plan, my_index, revealed) = {
        let all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = all.get(&round).ok_or_else(|| bad(404, "unknown round"))?;
        (r.plan.clone(), r.my_index, r.revealed)
    };
    let k = my_index.ok_or_else(|| bad(404, "we are not a recipient in this round"))?;
    if crate::byzantine::hide_reveal() {
        return Err(bad(403, "not revealing (byzantine test build)"));
    }
    if !revealed {
        let entries = match Message::decode(body).map_err(|e| bad(400, e))? {
            Message::View { round: r, entries } if r == round => entries,
            _ => return Err(bad(400, "expected a view of this round (PQVX type 5)")),
        };
        let values = verified_view(state, &plan, entries).await?;
        if !alone_off(state, &plan, k, &values).map_err(|(_, why)| bad(503, why))? {
            return Err(bad(
                403,
                "in this view our values are not alone in dispute, or a reveal could leak; not revealing",
            ));
        }
        if let Some(r) = state
            .reshares
            .lock()
            .map_err(|_| bad(500, "poisoned"))?
            .get_mut(&round)
        {
            r.revealed = true;
        }
    }
    let msg = own_reveal(state, &plan).ok_or_else(|| {
        bad(
            412,
            "some of our sub-shares came unsigned; nothing to reveal",
        )
    })?;
    tracing::warn!(round = %hex::encode(round), index = k,
        "re-share: revealed our signed sub-shares to settle a dispute over our check values");
    Ok(msg.encode())
}

/// A view's entries as check values, after checking that there is one
/// per recipient in order, each signed by that recipient, and that ours
/// is ours.
pub(super) async fn verified_view(
    state: &Arc<State>,
    plan: &Plan,
    entries: Vec<SignedValues>,
) -> Result<Vec<(u8, Vec<Vec<u8>>)>, Failure> {
    if entries.len() != plan.recipients.len() {
        return Err(bad(400, "the view must list every recipient once"));
    }
    let me = state.identity.public().fingerprint();
    let (mine, _) = own_check(state, &plan.round)
        .ok_or_else(|| bad(503, "our own check values are not ready"))?;
    let mut out = Vec::with_capacity(entries.len());
    for ((pos, e), fp) in entries.into_iter().enumerate().zip(&plan.recipients) {
        let k = pos as u8 + 1;
        if e.index != k {
            return Err(bad(400, "the view's entries are not in recipient order"));
        }
        let key = if *fp == me {
            if e.values != mine {
                return Err(bad(400, "the view misquotes our own check values"));
            }
            state.identity.public().clone()
        } else {
            rounds::member_with(state, fp)
                .await
                .map_err(|(_, why)| bad(503, why))?
                .1
        };
        key.verifying_key()
            .verify(CHECK_DOMAIN, &check_statement(plan, k, &e.values), &e.signature)
            .map_err(|_| {
                bad(
                    400,
                    format!("recipient {k}'s check values in the view carry a signature that does not verify"),
                )
            })?;
        out.push((k, e.values));
    }
    Ok(out)
}

/// Whether, in `values`, the dealing check of `plan` finds recipient `k`
/// alone disagreeing, where a reveal may settle it.
pub(super) fn alone_off(
    state: &State,
    plan: &Plan,
    k: u8,
    values: &[(u8, Vec<Vec<u8>>)],
) -> Result<bool, Failure> {
    let rules = crate::proposals::rules(state, &plan.vault_id);
    let (manifest, _) = rounds::current_manifest(state, &plan.vault_id)?;
    let t_old = manifest.body().threshold;
    if manifest.body().epoch != plan.epoch
        || !vault::dealing::settleable(
            plan.dealers.len(),
            t_old,
            plan.t_new,
            plan.recipients.len(),
            rules.f,
        )
    {
        return Ok(false);
    }
    let verdict = vault::dealing::verify(&plan.dealers, t_old, plan.t_new, rules.f, values)
        .map_err(|e| bad(422, e))?;
    Ok(verdict
        == vault::dealing::Verdict::Inconsistent {
            dealers: Vec::new(),
            recipients: vec![k],
        })
}

/// Our sub-shares of `plan`'s round as a reveal, if every one came signed.
pub(super) fn own_reveal(state: &State, plan: &Plan) -> Option<Message> {
    let all = state.reshares.lock().ok()?;
    let r = all.get(&plan.round)?;
    let subs = plan
        .dealers
        .iter()
        .map(|d| {
            let got = r.subs.get(d)?;
            Some(Revealed {
                from: *d,
                value: got.value.clone(),
                signature: got.signature.clone()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Message::Reveal {
        round: plan.round,
        index: r.my_index?,
        subs,
    })
}

/// Our own check values of `round` and our signature, once our new share
/// is made.
pub(super) fn own_check(
    state: &State,
    round: &[u8; 16],
) -> Option<(Vec<Vec<u8>>, HybridSignature)> {
    state.reshares.lock().ok()?.get(round)?.check.clone()
}

/// Check values a recipient published (`GET /v1/reshare/{round}`):
/// untrusted, so bounded and parsed strictly; its signature, if any.
pub(super) fn parse_check(
    v: &serde_json::Value,
    count: usize,
    len: usize,
) -> Option<(Vec<Vec<u8>>, Option<HybridSignature>)> {
    let list = v.get("check")?.as_array()?;
    if list.len() != count {
        return None;
    }
    let values = list
        .iter()
        .map(|h| hex::decode(h.as_str()?).ok().filter(|b| b.len() == len))
        .collect::<Option<Vec<_>>>()?;
    let signature = match v.get("check_signature").and_then(|s| s.as_str()) {
        None => None,
        Some(h) => Some(signature_from_hex(h)?),
    };
    Some((values, signature))
}

/// One recipient's check values as we fetched them, with its signature
/// (verified) if it signed them.
pub(super) struct Published {
    index: u8,
    values: Vec<Vec<u8>>,
    signature: Option<HybridSignature>,
}

/// Verify before delete: before we sign away the epoch a re-share leaves,
/// every recipient's published check values must show that the dealers
/// dealt a sharing of the same secret (`vault::dealing`). We ask each
/// recipient ourselves, over mTLS, so no leader can stand in for them. A
/// failed check names the dealers or recipients it can, counts them, and
/// refuses: the attempt fails and the old epoch stays.
pub async fn check_dealing(
    state: &Arc<State>,
    round: [u8; 16],
    current: &vault::manifest::ManifestBody,
    rules: &crate::transition::Rules,
) -> Result<(), Failure> {
    let t_old = current.threshold;
    let plan = state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get(&round)
        .map(|r| r.plan.clone())
        .ok_or_else(|| {
            bad(
                409,
                "the re-share round is gone here; cannot check its dealing",
            )
        })?;
    let spare = plan.dealers.len().saturating_sub(usize::from(t_old));
    if spare == 0 {
        // Nothing to check against. A vault whose policy expects liars
        // never gets here (authorize asks for t + f dealers).
        return if rules.f == 0 {
            Ok(())
        } else {
            Err(bad(
                409,
                "a re-share under f >= 1 needs more dealers than t",
            ))
        };
    }
    let published = gather_check_values(state, &plan, spare, rules.f).await?;
    let values: Vec<(u8, Vec<Vec<u8>>)> = published
        .iter()
        .map(|p| (p.index, p.values.clone()))
        .collect();
    let verdict = vault::dealing::verify(&plan.dealers, t_old, plan.t_new, rules.f, &values)
        .map_err(|e| bad(422, e))?;
    let vault::dealing::Verdict::Inconsistent {
        mut dealers,
        recipients,
    } = verdict
    else {
        return Ok(());
    };
    // One recipient's values alone disagree: it lied, or a dealer sent it
    // a bad point. Its signed sub-shares tell which, where that is safe.
    let mut liar = None;
    if let ([], [k]) = (dealers.as_slice(), recipients.as_slice()) {
        let k = *k;
        let n_new = plan.recipients.len();
        if vault::dealing::settleable(plan.dealers.len(), t_old, plan.t_new, n_new, rules.f) {
            let outcome =
                settle_dispute(state, &plan, current, &published, &values, k, rules.f).await;
            state.metrics.dispute(outcome);
            match outcome {
                vault::dealing::Settlement::Dealer(j) => {
                    tracing::warn!(round = %hex::encode(round),
                        "dispute over new share {k}'s check values settled: dealer share {j} signed a bad point");
                    dealers = vec![j];
                }
                vault::dealing::Settlement::Recipient => {
                    tracing::warn!(round = %hex::encode(round),
                        "dispute settled against recipient {k}: its signed sub-shares do not give its check values, or it would not show them");
                    liar = Some(plan.recipients[usize::from(k) - 1]);
                }
                vault::dealing::Settlement::Unsettled => {}
            }
        }
    }
    let recipients = if dealers.is_empty() {
        recipients
    } else {
        Vec::new()
    };
    let (culprit, why) = describe_bad_dealing(&plan, &dealers, &recipients);
    state.metrics.bad_dealing(culprit);
    tracing::error!(vault = %plan.vault_id, culprit, "{why}; keeping epoch {}", plan.epoch);
    after_bad_dealing(state, &plan, current, &dealers, liar).await;
    Err(bad(422, why))
}

/// Settles a dispute over recipient `k`'s check values of `plan`: takes
/// its reveal (ours from memory), checks every sub-share against its
/// dealer's signature, and lets `vault::dealing::settle` say who lied. A
/// reveal that is malformed or carries a signature that does not verify
/// convicts the recipient (an honest one checked every signature when the
/// sub-share arrived), and so does a deliberate refusal of a view in which
/// its values alone disagree; no answer settles nothing.
pub(super) async fn settle_dispute(
    state: &Arc<State>,
    plan: &Plan,
    current: &vault::manifest::ManifestBody,
    published: &[Published],
    values: &[(u8, Vec<Vec<u8>>)],
    k: u8,
    f: u8,
) -> vault::dealing::Settlement {
    use vault::dealing::Settlement;
    let subs = match reveal_of(state, plan, current, published, k, f).await {
        Ok(Some(subs)) => subs,
        Ok(None) => return Settlement::Recipient,
        Err((_, why)) => {
            tracing::info!("dispute over new share {k}'s check values not settled: {why}");
            return Settlement::Unsettled;
        }
    };
    let values = values.to_vec();
    let (dealers, t, t_new) = (plan.dealers.clone(), current.threshold, plan.t_new);
    blocking(move || {
        Ok(
            vault::dealing::settle(&dealers, t, t_new, &values, k, &subs)
                .unwrap_or(Settlement::Unsettled),
        )
    })
    .await
    .unwrap_or(Settlement::Unsettled)
}

/// Recipient `k`'s revealed sub-shares of `plan`, in dealer order, every
/// signature checked: `Ok(None)` if the answer convicts the recipient,
/// `Err` if there is nothing to judge.
pub(super) async fn reveal_of(
    state: &Arc<State>,
    plan: &Plan,
    current: &vault::manifest::ManifestBody,
    published: &[Published],
    k: u8,
    f: u8,
) -> Result<Option<Vec<Zeroizing<Vec<u8>>>>, Failure> {
    let me = state.identity.public().fingerprint();
    let fp = plan
        .recipients
        .get(usize::from(k).wrapping_sub(1))
        .ok_or_else(|| bad(422, "no such recipient"))?;
    let msg = if *fp == me {
        own_reveal(state, plan).ok_or_else(|| bad(409, "our own sub-shares are not all signed"))?
    } else {
        let entries = published
            .iter()
            .map(|p| {
                Some(SignedValues {
                    index: p.index,
                    values: p.values.clone(),
                    signature: p.signature.clone()?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(409, "some recipients did not sign their check values"))?;
        let view = Message::View {
            round: plan.round,
            entries,
        };
        let (m, _) = rounds::member_with(state, fp).await?;
        let path = format!("/v1/reshare/{}/reveal", hex::encode(plan.round));
        let limit = plan.dealers.len() * (MAX_SHARE_LEN + 4096) + 1024;
        let r = state
            .ctl
            .post(&m, &path, view.encode(), limit)
            .await
            .map_err(|e| bad(409, format!("recipient {k} ({}): {e}", m.id)))?;
        let why = || String::from_utf8_lossy(&r.body).trim().to_string();
        match r.status {
            200 => {}
            // A deliberate refusal of a view in which its values alone
            // disagree; or, under f >= 1 (where unsigned sub-shares are
            // refused on arrival), a claim to hold unsigned ones.
            403 => {
                tracing::warn!("recipient {k} ({}) refused to reveal: {}", m.id, why());
                return Ok(None);
            }
            412 if f >= 1 => {
                tracing::warn!(
                    "recipient {k} ({}) claims unsigned sub-shares: {}",
                    m.id,
                    why()
                );
                return Ok(None);
            }
            status => {
                return Err(bad(
                    409,
                    format!(
                        "recipient {k} ({}) did not reveal: HTTP {status}: {}",
                        m.id,
                        why()
                    ),
                ))
            }
        }
        match Message::decode(&r.body) {
            Ok(msg) => msg,
            Err(_) => return Ok(None),
        }
    };
    let Message::Reveal { round, index, subs } = msg else {
        return Ok(None);
    };
    if round != plan.round
        || index != k
        || subs.len() != plan.dealers.len()
        || subs.iter().zip(&plan.dealers).any(|(s, d)| s.from != *d)
    {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(subs.len());
    for s in subs {
        let dealer = current
            .entry(s.from)
            .map(|e| e.recipient)
            .ok_or_else(|| bad(409, format!("share {} is not in the epoch", s.from)))?;
        let key = if dealer == me {
            state.identity.public().clone()
        } else {
            rounds::member_with(state, &dealer).await?.1
        };
        let statement = subshare_statement(plan, s.from, k, &s.value);
        if key
            .verifying_key()
            .verify(SUBSHARE_DOMAIN, &statement, &s.signature)
            .is_err()
        {
            return Ok(None);
        }
        values.push(s.value);
    }
    Ok(Some(values))
}

/// Every recipient's check values for `plan`, in recipient order: ours
/// from memory, the others' asked of each over mTLS (`spare` = d - t
/// values each, of our own values' length). A signature that does not
/// verify refuses the values; under `f >= 1` so does none.
pub(super) async fn gather_check_values(
    state: &Arc<State>,
    plan: &Plan,
    spare: usize,
    f: u8,
) -> Result<Vec<Published>, Failure> {
    let me = state.identity.public().fingerprint();
    let path = format!("/v1/reshare/{}", hex::encode(plan.round));
    let (mine, my_sig) = own_check(state, &plan.round)
        .ok_or_else(|| bad(409, "our own check values are not ready"))?;
    let len = mine.first().map_or(0, Vec::len);
    let asks = plan.recipients.iter().enumerate().map(|(k, fp)| {
        let (state, path, mine, my_sig) = (state.clone(), path.clone(), mine.clone(), my_sig.clone());
        let (fp, plan) = (*fp, plan.clone());
        async move {
            let k = k as u8 + 1;
            if fp == me {
                return Ok(Published {
                    index: k,
                    values: mine,
                    signature: Some(my_sig),
                });
            }
            let (m, p) = rounds::member_with(&state, &fp).await?;
            let asked = match state.ctl.get(&m, &path, 1 << 16).await {
                Ok(r) => serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| parse_check(&v, spare, len))
                    .ok_or_else(|| {
                        bad(
                            409,
                            format!("recipient {k} ({}) published no valid check values", m.id),
                        )
                    }),
                Err(e) => Err(bad(409, format!("recipient {k} ({}): {e}", m.id))),
            };
            // Not shown to us: what it signed and showed another member
            // will do (its signature is checked below either way).
            let (values, signature) = match asked {
                Ok(got) => got,
                Err(e) => match relayed(&state, &plan, k).await {
                    Some((_, v)) => match parse_check(&v, spare, len) {
                        Some((values, Some(sig))) => (values, Some(sig)),
                        _ => return Err(e),
                    },
                    None => return Err(e),
                },
            };
            match &signature {
                Some(sig) => p
                    .verifying_key()
                    .verify(CHECK_DOMAIN, &check_statement(&plan, k, &values), sig)
                    .map_err(|_| {
                        bad(
                            409,
                            format!("recipient {k} ({}) signed its check values with a signature that does not verify", m.id),
                        )
                    })?,
                None if f >= 1 => {
                    return Err(bad(
                        409,
                        format!("recipient {k} ({}) did not sign its check values", m.id),
                    ))
                }
                None => {}
            }
            Ok(Published {
                index: k,
                values,
                signature,
            })
        }
    });
    futures_util::future::try_join_all(asks).await
}

/// The metric label and the message for a failed dealing check that named
/// `dealers` (old share indices) and `recipients` (new indices).
pub(super) fn describe_bad_dealing(
    plan: &Plan,
    dealers: &[u8],
    recipients: &[u8],
) -> (&'static str, String) {
    let culprit = match (dealers.is_empty(), recipients.is_empty()) {
        (false, _) => "dealer",
        (true, false) => "recipient",
        (true, true) => "unknown",
    };
    let mut named: Vec<String> = dealers
        .iter()
        .map(|d| format!("dealer share {d}"))
        .collect();
    named.extend(
        recipients
            .iter()
            .map(|k| format!("values of new share {k}")),
    );
    let named = if named.is_empty() {
        "more liars than the check can place".to_string()
    } else {
        named.join(", ")
    };
    let why = format!(
        "bad dealing in re-share round {} of epoch {}: {named}",
        hex::encode(plan.round),
        plan.epoch
    );
    (culprit, why)
}

/// What we do once we saw `plan`'s dealing fail. The attempt can never get
/// our signature (the check is deterministic on the values we fetched), so
/// our vote for it is released, and our dealing with it, and the next
/// attempt need not wait for the timeouts (dealing a share again is safe:
/// no t' points of one polynomial reach anyone). A named dealer's share
/// counts as lost from now on, like a failed custody check: the next
/// attempt leaves it out.
pub(super) async fn after_bad_dealing(
    state: &Arc<State>,
    plan: &Plan,
    current: &vault::manifest::ManifestBody,
    dealers: &[u8],
    liar: Option<Fingerprint>,
) {
    let key = (plan.vault_id, plan.epoch);
    if let Ok(mut dealt) = state.dealt.lock() {
        if dealt.get(&key).is_some_and(|(r, _)| *r == plan.round) {
            dealt.remove(&key);
        }
    }
    if let Ok(store) = state.store.lock() {
        if let Err(e) = store.release_proposal_vote(&plan.vault_id, plan.epoch) {
            tracing::warn!("could not release our vote after a bad dealing: {e}");
        }
    }
    let me = state.identity.public().fingerprint();
    let named = dealers
        .iter()
        .filter_map(|d| current.entry(*d).map(|e| e.recipient))
        .chain(liar);
    for fp in named {
        if fp == me {
            continue;
        }
        if let Ok((m, _)) = rounds::member_with(state, &fp).await {
            state.convict(plan.vault_id, plan.epoch, &m.id);
        }
    }
}
