//! Re-sharing among the current holders (Desmedt–Jajodia), without any
//! node reconstructing the secret.
//!
//! Used in two ways by healing (`crate::heal`):
//! * **shrink**: holders were lost, no spare came within
//!   `heal.reshare_after_ms`, so the live holders re-share to the policy's
//!   `(t', n')` for `n'` = their number;
//! * **refresh**: after a repair, the holders re-share to a fresh
//!   polynomial at the same `(t, n)`, so every share of older epochs
//!   (including one on a stolen disk) becomes useless.
//!
//! Round (`POST /v1/reshare`, wire kind `PQVX`, docs/protocol.md):
//! 1. The leader has the plan certified by a quorum of holders and sends
//!    the certified proposal to every recipient ([`crate::proposals`];
//!    recipients are holders of epoch `E`; recipient `k` gets index `k`).
//! 2. Each dealer (exactly `t` holders of `E`) checks the plan itself, opens
//!    its share `s_i`, deals it with a fresh random polynomial of degree
//!    `t' - 1` and sends sub-share `k` to recipient `k`, sealed to it as an
//!    epoch `E+1` share record (`PQVS`) with `(t', n')` and index `k`.
//! 3. Recipient `k`, holding one sub-share from every dealer, computes
//!    `s'_k = Σ λ_i · sub_{i→k}` (Lagrange at 0 over the dealers), seals it
//!    to itself for `E+1` and keeps it pending; `GET /v1/reshare/{round}`
//!    then answers its manifest entry.
//! 4. The leader writes the `E+1` manifest and collects signatures and
//!    commits exactly as after a repair (`crate::epochs`).
//!
//! Who learns what: a recipient learns one point of each dealer's fresh
//! polynomial, which says nothing about `s_i` (degree ≥ 1); it never sees
//! another recipient's sub-shares. No node ever holds `t` shares of one
//! epoch or the secret. Dealers are trusted to deal honestly (no
//! verifiable secret sharing over GF(256)); a wrong sub-share yields a
//! manifest whose shares do not recombine, which `vault recover` reports
//! against the secret commitment — the previous epoch is not deleted by
//! anyone who did not sign the transition.

use crate::config::Member;
use crate::epochs::{Origin, PrepareReply, Prepared};
use crate::rounds::{self, bad, blocking, Failure};
use crate::state::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::identity::{Fingerprint, PublicIdentity};
use vault::manifest::{shard_hash, VaultId};
use vault::seal::SealedShard;
use vault::share::{ShareRecord, MAX_SHARE_LEN};
use vault::sign::HybridSignature;
use zeroize::Zeroizing;

/// Wire kind of re-share messages.
pub const RESHARE_KIND: Kind = Kind {
    magic: *b"PQVX",
    name: "pqvault re-share message",
    version: 1,
};

const MAX_SEALED: usize = MAX_SHARE_LEN + 16 * 1024;

/// Domain of a dealer's signature over a sub-share it sends
/// ([`subshare_statement`]).
pub const SUBSHARE_DOMAIN: &str = "pqvault/v1 subshare";

/// Domain of a recipient's signature over the check values it publishes
/// ([`check_statement`]).
pub const CHECK_DOMAIN: &str = "pqvault/v1 check-values";

/// How long a round we dealt in blocks another round for the same epoch:
/// longer than a leader waits for a round (20 s) before it gives up.
pub const REDEAL_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The leader's proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Random round id.
    pub round: [u8; 16],
    /// Vault.
    pub vault_id: VaultId,
    /// Epoch being left.
    pub epoch: u64,
    /// New threshold.
    pub t_new: u8,
    /// Dealers: `t` share indices of `epoch`, sorted, distinct.
    pub dealers: Vec<u8>,
    /// Recipients: recipient `k` (1-based) gets new index `k`.
    pub recipients: Vec<Fingerprint>,
}

/// A re-share message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The plan, from the leader to every recipient and dealer.
    Plan(Plan),
    /// A dealer's sub-share for one recipient.
    Subshare {
        /// Round id.
        round: [u8; 16],
        /// Dealer's share index in the old epoch.
        from: u8,
        /// `PQVS` sealed to the recipient (epoch + 1, new t and n, index k).
        sealed: Vec<u8>,
        /// The dealer's signature over the point it sealed
        /// ([`subshare_statement`]), so a dispute over it can be settled
        /// (type 3); `None` from a dealer that predates it (type 2).
        signature: Option<HybridSignature>,
    },
    /// A signer's view of the dealing check: every recipient's check
    /// values with that recipient's signature, in recipient order (the
    /// body of `POST /v1/reshare/{round}/reveal`).
    View {
        /// Round id.
        round: [u8; 16],
        /// One per recipient, in order.
        entries: Vec<SignedValues>,
    },
    /// A recipient's sub-shares with their dealers' signatures, revealed
    /// to settle a dispute over its check values (the answer of `POST
    /// /v1/reshare/{round}/reveal`).
    Reveal {
        /// Round id.
        round: [u8; 16],
        /// The recipient's new index.
        index: u8,
        /// One per dealer, in the plan's order.
        subs: Vec<Revealed>,
    },
}

/// One recipient's published check values, signed by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedValues {
    /// The recipient's new index.
    pub index: u8,
    /// Its `d - t` check values.
    pub values: Vec<Vec<u8>>,
    /// Its signature over them ([`check_statement`]).
    pub signature: HybridSignature,
}

/// One revealed sub-share.
#[derive(Clone, PartialEq, Eq)]
pub struct Revealed {
    /// Dealer's share index in the old epoch.
    pub from: u8,
    /// The point the dealer sent.
    pub value: Zeroizing<Vec<u8>>,
    /// The dealer's signature over it ([`subshare_statement`]).
    pub signature: HybridSignature,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revealed")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// What a dealer signs for the sub-share it sends recipient `index`:
/// `round:[16] vault_id:[16] epoch:u64 (the new epoch) t_new:u8 n_new:u8
/// from:u8 index:u8 value:var` (docs/formats.md, `PQVX`).
pub fn subshare_statement(plan: &Plan, from: u8, index: u8, value: &[u8]) -> Vec<u8> {
    let mut w = statement_head(plan);
    w.u8(plan.t_new)
        .u8(plan.recipients.len() as u8)
        .u8(from)
        .u8(index)
        .var_bytes(value);
    w.finish()
}

/// The start of both signed statements: `round:[16] vault_id:[16]
/// epoch:u64` (the new epoch).
fn statement_head(plan: &Plan) -> Writer {
    let mut w = Writer::raw();
    w.bytes(&plan.round)
        .bytes(plan.vault_id.as_bytes())
        .u64(plan.epoch + 1);
    w
}

/// What a recipient signs over the check values it publishes:
/// `round:[16] vault_id:[16] epoch:u64 (the new epoch) index:u8 count:u8`
/// then `count × value:var` (docs/formats.md, `PQVX`).
pub fn check_statement(plan: &Plan, index: u8, values: &[Vec<u8>]) -> Vec<u8> {
    let mut w = statement_head(plan);
    w.u8(index).u8(values.len() as u8);
    for v in values {
        w.var_bytes(v);
    }
    w.finish()
}

fn write_signature(w: &mut Writer, sig: &HybridSignature) {
    w.bytes(&sig.ed25519).bytes(&sig.mldsa);
}

impl Message {
    /// Canonical encoding: `"PQVX" u16 type:u8 round:[16]`, then for a plan
    /// `vault_id:[16] epoch:u64 t_new:u8 dealers:var count:u8
    /// count×fingerprint:[32]`, for a sub-share `from:u8 sealed:var`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(RESHARE_KIND);
        match self {
            Message::Plan(p) => {
                w.u8(1)
                    .bytes(&p.round)
                    .bytes(p.vault_id.as_bytes())
                    .u64(p.epoch)
                    .u8(p.t_new)
                    .var_bytes(&p.dealers)
                    .u8(p.recipients.len() as u8);
                for r in &p.recipients {
                    w.bytes(r.as_bytes());
                }
            }
            Message::Subshare {
                round,
                from,
                sealed,
                signature,
            } => {
                w.u8(if signature.is_some() { 3 } else { 2 })
                    .bytes(round)
                    .u8(*from)
                    .var_bytes(sealed);
                if let Some(sig) = signature {
                    write_signature(&mut w, sig);
                }
            }
            Message::View { round, entries } => {
                w.u8(5).bytes(round).u8(entries.len() as u8);
                for e in entries {
                    w.u8(e.index).u8(e.values.len() as u8);
                    for v in &e.values {
                        w.var_bytes(v);
                    }
                    write_signature(&mut w, &e.signature);
                }
            }
            Message::Reveal { round, index, subs } => {
                w.u8(4).bytes(round).u8(*index).u8(subs.len() as u8);
                for s in subs {
                    w.u8(s.from).var_bytes(&s.value);
                    write_signature(&mut w, &s.signature);
                }
            }
        }
        w.finish()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, RESHARE_KIND)?;
        let kind = r.u8("message type")?;
        let round = r.array("round id")?;
        let msg = match kind {
            1 => {
                let vault_id = VaultId::from_bytes(r.array("vault id")?);
                let epoch = r.u64("epoch")?;
                let t_new = r.u8("new threshold")?;
                let dealers = r.var_bytes("dealer list", 255)?.to_vec();
                let count = r.u8("recipient count")?;
                let mut recipients = Vec::with_capacity(count.into());
                for _ in 0..count {
                    recipients.push(Fingerprint::from_bytes(r.array("recipient fingerprint")?));
                }
                Message::Plan(Plan {
                    round,
                    vault_id,
                    epoch,
                    t_new,
                    dealers,
                    recipients,
                })
            }
            2 | 3 => Message::Subshare {
                round,
                from: r.u8("dealer index")?,
                sealed: r.var_bytes("sealed sub-share", MAX_SEALED)?.to_vec(),
                signature: if kind == 3 {
                    Some(HybridSignature::read(&mut r)?)
                } else {
                    None
                },
            },
            4 => {
                let index = r.u8("recipient index")?;
                let count = r.u8("sub-share count")?;
                let mut subs = Vec::with_capacity(count.into());
                for _ in 0..count {
                    subs.push(Revealed {
                        from: r.u8("dealer index")?,
                        value: Zeroizing::new(r.var_bytes("sub-share", MAX_SHARE_LEN)?.to_vec()),
                        signature: HybridSignature::read(&mut r)?,
                    });
                }
                Message::Reveal { round, index, subs }
            }
            5 => {
                let count = r.u8("recipient count")?;
                let mut entries = Vec::with_capacity(count.into());
                for _ in 0..count {
                    let index = r.u8("recipient index")?;
                    let m = r.u8("value count")?;
                    let mut values = Vec::with_capacity(m.into());
                    for _ in 0..m {
                        values.push(r.var_bytes("check value", MAX_SHARE_LEN)?.to_vec());
                    }
                    entries.push(SignedValues {
                        index,
                        values,
                        signature: HybridSignature::read(&mut r)?,
                    });
                }
                Message::View { round, entries }
            }
            other => {
                return Err(FormatError::invalid(
                    "message type",
                    format!("unknown type {other}"),
                ))
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Our part in one re-share round.
pub struct Round {
    plan: Plan,
    /// Our new index, if we are a recipient.
    my_index: Option<u8>,
    /// Sub-shares received, by dealer index, kept with their dealers'
    /// signatures until the round is forgotten (a dispute over our check
    /// values is settled by revealing them).
    subs: BTreeMap<u8, Received>,
    /// Whether we revealed our sub-shares ([`reveal`]): then we answer
    /// again without a view.
    revealed: bool,
    /// Our entry in the next manifest, once our new share is sealed.
    done: Option<PrepareReply>,
    /// Our public dealing-check values (`vault::dealing`), once computed,
    /// with our signature over them ([`check_statement`]).
    check: Option<(Vec<Vec<u8>>, HybridSignature)>,
    /// When the round started here (rounds are pruned: `state::prune`).
    started: std::time::Instant,
}

/// A sub-share as received.
struct Received {
    value: Zeroizing<Vec<u8>>,
    signature: Option<HybridSignature>,
}

/// Forgets every re-share round of `vault` dealing from an epoch before
/// `epoch` (its sub-shares and check values): called once `epoch` is
/// committed. Returns how many.
pub fn forget_before(state: &State, vault: &VaultId, epoch: u64) -> usize {
    let Ok(mut rounds) = state.reshares.lock() else {
        return 0;
    };
    let before = rounds.len();
    rounds.retain(|_, r| !(r.plan.vault_id == *vault && r.plan.epoch < epoch));
    before - rounds.len()
}

/// Handles a message from member `caller` (authenticated by mTLS).
pub async fn handle(
    state: Arc<State>,
    caller: String,
    body: &[u8],
) -> Result<&'static str, Failure> {
    match Message::decode(body).map_err(|e| bad(400, e))? {
        // A plan acts only inside a certified proposal (POST /v1/transition).
        Message::Plan(_) => Err(crate::proposals::refuse_from(
            &state,
            &caller,
            crate::transition::Refusal::BarePlan,
        )),
        Message::Subshare {
            round,
            from,
            sealed,
            signature,
        } => on_subshare(state, caller, round, from, sealed, signature).await,
        Message::Reveal { .. } | Message::View { .. } => Err(bad(
            400,
            "reveals and views go to /v1/reshare/{round}/reveal",
        )),
    }
}

/// Starts our part (dealer, recipient or both) in re-share round `plan` of
/// a certified proposal that [`crate::proposals::transition`] authorized
/// against `chain`. The certificate decided that every holder left out is
/// lost; nothing here re-decides it.
pub async fn start(
    state: &Arc<State>,
    plan: Plan,
    chain: &crate::proposals::HeldChain,
) -> Result<(), Failure> {
    let state = state.clone();
    if state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .contains_key(&plan.round)
    {
        return Err(bad(409, "round already known (replay?)"));
    }
    let shard = chain
        .shard
        .clone()
        .ok_or_else(|| bad(409, "re-sharing is among holders; we hold no shard"))?;
    let b = chain.manifest.body().clone();
    let me = state.identity.public().fingerprint();
    let my_index = plan
        .recipients
        .iter()
        .position(|r| *r == me)
        .map(|k| k as u8 + 1);
    let my_old = b.shards.iter().find(|e| e.recipient == me).map(|e| e.index);
    let dealer = my_old.filter(|i| plan.dealers.contains(i));
    if my_index.is_none() && dealer.is_none() {
        return Err(bad(422, "we are neither a dealer nor a recipient"));
    }
    if let Some(i) = dealer {
        // One dealing at a time per epoch: a rival plan is refused while
        // the round we dealt in may still complete; after REDEAL_AFTER (the
        // leader has given up on it) a new round may have our share. Each
        // round deals a fresh polynomial, and only one successor of the
        // epoch can be certified, so an abandoned round's shares are inert.
        let mut dealt = state.dealt.lock().map_err(|_| bad(500, "poisoned"))?;
        match dealt.get(&(plan.vault_id, plan.epoch)) {
            Some((r, at)) if *r != plan.round && at.elapsed() < REDEAL_AFTER => {
                return Err(bad(
                    409,
                    "already dealt this epoch in another round that may still complete",
                ))
            }
            _ => {
                dealt.insert(
                    (plan.vault_id, plan.epoch),
                    (plan.round, std::time::Instant::now()),
                );
            }
        }
        drop(dealt);
        let (state2, plan2) = (state.clone(), plan.clone());
        tokio::spawn(async move {
            if let Err((code, why)) = deal(state2, plan2, i, shard).await {
                tracing::warn!(code, "re-share dealing failed: {why}");
            }
        });
    }
    let mut all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
    crate::state::prune(&mut all, |r| r.started);
    all.insert(
        plan.round,
        Round {
            plan,
            my_index,
            subs: BTreeMap::new(),
            revealed: false,
            done: None,
            check: None,
            started: std::time::Instant::now(),
        },
    );
    Ok(())
}

/// Deals our share `from` to every recipient.
async fn deal(state: Arc<State>, plan: Plan, from: u8, shard: Vec<u8>) -> Result<(), Failure> {
    // Recipients' identities (and members, except ourselves).
    let me = state.identity.public().fingerprint();
    let mut to: Vec<(PublicIdentity, Option<Member>)> = Vec::new();
    for fp in &plan.recipients {
        if *fp == me {
            to.push((state.identity.public().clone(), None));
        } else {
            let (m, p) = rounds::member_with(&state, fp).await?;
            to.push((p, Some(m)));
        }
    }
    let keys = state.keys.clone();
    let (t_new, n_new) = (plan.t_new, plan.recipients.len() as u8);
    let (vault_id, epoch) = (plan.vault_id, plan.epoch + 1);
    let ids: Vec<PublicIdentity> = to.iter().map(|(p, _)| p.clone()).collect();
    let signer = state.identity.clone();
    let p = plan.clone();
    let sealed: Vec<(Vec<u8>, HybridSignature)> = blocking(move || {
        let parsed = SealedShard::parse(&shard).map_err(|e| bad(500, e))?;
        let suite = parsed.header.suite;
        let record = crate::unsealed::open(&shard, &keys).map_err(|e| bad(500, e))?;
        let mut share = record.share.clone();
        crate::byzantine::corrupt_deal(&mut share.value);
        let mut subs = vault::repair::deal(&share, t_new, n_new).map_err(|e| bad(500, e))?;
        for s in &mut subs {
            crate::byzantine::corrupt_subshare(s.index, &mut s.value);
        }
        subs.into_iter()
            .zip(&ids)
            .map(|(share, id)| {
                // Signed in the clear, sealed with it: a recipient can
                // show what we sent it, and only it can.
                let statement = subshare_statement(&p, from, share.index, &share.value);
                let signature = signer
                    .signing_key()
                    .sign(SUBSHARE_DOMAIN, &statement)
                    .map_err(|e| bad(500, e))?;
                let r = ShareRecord {
                    vault_id,
                    epoch,
                    threshold: t_new,
                    n: n_new,
                    share,
                };
                let sealed = vault::seal::seal(&r, suite, id).map_err(|e| bad(500, e))?;
                Ok((sealed, signature))
            })
            .collect()
    })
    .await?;
    if crate::byzantine::silent_dealer() {
        return Ok(());
    }
    for ((_, member), (sealed, signature)) in to.into_iter().zip(sealed) {
        match member {
            None => {
                on_subshare(
                    state.clone(),
                    state.id.clone(),
                    plan.round,
                    from,
                    sealed,
                    Some(signature),
                )
                .await?;
            }
            Some(m) => {
                let msg = Message::Subshare {
                    round: plan.round,
                    from,
                    sealed,
                    signature: Some(signature),
                };
                rounds::deliver(&state, m, "/v1/reshare", msg.encode())
            }
        }
    }
    tracing::info!(round = %hex::encode(plan.round), "re-share: dealt our share");
    Ok(())
}

async fn on_subshare(
    state: Arc<State>,
    caller: String,
    round: [u8; 16],
    from: u8,
    sealed: Vec<u8>,
    signature: Option<HybridSignature>,
) -> Result<&'static str, Failure> {
    let (plan, my_index) = {
        let r = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = r.get(&round).ok_or_else(|| bad(404, "unknown round"))?;
        (r.plan.clone(), r.my_index)
    };
    let my_index = my_index.ok_or_else(|| bad(422, "we are not a recipient in this round"))?;
    // The sender must be the dealer it claims to be.
    let (manifest, _) = rounds::current_manifest(&state, &plan.vault_id)?;
    let dealer = rounds::identity_of(&state, &caller).await?;
    let caller_fp = dealer.fingerprint();
    let actual = manifest
        .body()
        .shards
        .iter()
        .find(|e| e.recipient == caller_fp)
        .map(|e| e.index);
    if actual != Some(from) {
        return Err(bad(403, format!("{caller} does not hold share {from}")));
    }
    if !plan.dealers.contains(&from) {
        return Err(bad(
            403,
            format!("share {from} is not a dealer in this round"),
        ));
    }
    let key = state.identity.clone();
    let n_new = plan.recipients.len() as u8;
    let (vault_id, epoch, t_new) = (plan.vault_id, plan.epoch + 1, plan.t_new);
    let f = crate::proposals::rules(&state, &plan.vault_id).f;
    let p = plan.clone();
    let value = blocking(move || {
        let s = SealedShard::parse(&sealed).map_err(|e| bad(400, e))?;
        if s.header.recipient != key.public().fingerprint() {
            return Err(bad(422, "sub-share is not sealed to us"));
        }
        let r = s.open(&key).map_err(|e| bad(422, e))?;
        if (r.vault_id, r.epoch, r.threshold, r.n, r.share.index)
            != (vault_id, epoch, t_new, n_new, my_index)
        {
            return Err(bad(
                422,
                "sub-share is for another vault, epoch, (t, n) or index",
            ));
        }
        // Checked now, so we only ever hold signatures that verify: an
        // honest recipient's reveal never fails on one. Under f >= 1 an
        // unsigned point is refused, so a recipient there can never
        // claim it has nothing signed to reveal.
        if signature.is_none() && f >= 1 {
            return Err(bad(
                422,
                "unsigned sub-share; a vault whose policy expects liars needs dealers to sign",
            ));
        }
        if let Some(sig) = &signature {
            let statement = subshare_statement(&p, from, my_index, &r.share.value);
            dealer
                .verifying_key()
                .verify(SUBSHARE_DOMAIN, &statement, sig)
                .map_err(|e| bad(422, format!("dealer's signature over the sub-share: {e}")))?;
        }
        Ok(Received {
            value: r.share.value.clone(),
            signature,
        })
    })
    .await?;
    let complete = {
        let mut all = state.reshares.lock().map_err(|_| bad(500, "poisoned"))?;
        let r = all
            .get_mut(&round)
            .ok_or_else(|| bad(404, "unknown round"))?;
        if r.subs.contains_key(&from) {
            return Err(bad(
                409,
                format!("already have share {from}'s sub-share (replay?)"),
            ));
        }
        r.subs.insert(from, value);
        if r.subs.len() == r.plan.dealers.len() {
            Some(
                r.plan
                    .dealers
                    .iter()
                    .map(|d| r.subs[d].value.clone())
                    .collect::<Vec<_>>(),
            )
        } else {
            None
        }
    };
    if let Some(subs) = complete {
        finish(state, plan, my_index, subs).await?;
    }
    Ok("accepted\n")
}

/// Combines the sub-shares into our new share and keeps it pending.
async fn finish(
    state: Arc<State>,
    plan: Plan,
    my_index: u8,
    subs: Vec<Zeroizing<Vec<u8>>>,
) -> Result<(), Failure> {
    let (manifest, shard) = rounds::current_manifest(&state, &plan.vault_id)?;
    let t_old = manifest.body().threshold;
    let keys = state.keys.clone();
    let signer = state.identity.clone();
    let n_new = plan.recipients.len() as u8;
    let p = plan.clone();
    let (record, sealed, check) = blocking(move || {
        let share = vault::repair::combine_subshares(&p.dealers, &subs, my_index)
            .map_err(|e| bad(422, e))?;
        // Public values for the dealing check, when there are more
        // dealers than the threshold to check against.
        let check = (p.dealers.len() > usize::from(t_old))
            .then(|| vault::dealing::check_values(&p.dealers, t_old, &subs))
            .transpose()
            .map_err(|e| bad(422, e))?
            .map(|mut c| {
                crate::byzantine::corrupt_check_once(&mut c);
                crate::byzantine::corrupt_check_always(&mut c);
                c
            })
            .map(|c| {
                let statement = check_statement(&p, my_index, &c);
                signer
                    .signing_key()
                    .sign(CHECK_DOMAIN, &statement)
                    .map(|sig| (c, sig))
                    .map_err(|e| bad(500, e))
            })
            .transpose()?;
        let suite = SealedShard::parse(&shard)
            .map_err(|e| bad(500, e))?
            .header
            .suite;
        let record = ShareRecord {
            vault_id: p.vault_id,
            epoch: p.epoch + 1,
            threshold: p.t_new,
            n: n_new,
            share,
        };
        let sealed = keys.seal_own(&record, suite).map_err(|e| bad(500, e))?;
        crate::unsealed::remember(&sealed, &keys, &record);
        Ok((record, sealed, check))
    })
    .await?;
    let reply = PrepareReply {
        index: my_index,
        recipient: state.identity.public().fingerprint().to_hex(),
        recipient_name: state.identity.public().name().to_string(),
        blob_hash: hex::encode(shard_hash(&sealed)),
        share_commitment: hex::encode(record.commitment()),
    };
    crate::epochs::save_pending(&state, plan.vault_id, &sealed).await?;
    state
        .pending
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .insert(
            plan.vault_id,
            Prepared {
                from_epoch: plan.epoch,
                index: my_index,
                sealed,
                adopt: None,
                origin: Origin::Reshare(plan.round),
            },
        );
    if let Some(r) = state
        .reshares
        .lock()
        .map_err(|_| bad(500, "poisoned"))?
        .get_mut(&plan.round)
    {
        r.done = Some(reply);
        r.check = check;
    }
    tracing::info!(round = %hex::encode(plan.round), index = my_index, "re-share: new share ready");
    Ok(())
}

/// `GET /v1/reshare/{round}`: our entry for the next manifest, once ready.
pub fn status(state: &State, round: &[u8; 16]) -> Option<serde_json::Value> {
    let all = state.reshares.lock().ok()?;
    let r = all.get(round)?;
    Some(serde_json::json!({
        "complete": r.done.is_some(),
        "received": r.subs.len(),
        "missing_from": r.plan.dealers.iter().filter(|d| !r.subs.contains_key(d)).collect::<Vec<_>>(),
        "entry": r.done,
        "check": r.check.as_ref().map(|(c, _)| c.iter().map(hex::encode).collect::<Vec<_>>()),
        "check_signature": r.check.as_ref().map(|(_, sig)| {
            let mut w = Writer::raw();
            write_signature(&mut w, sig);
            hex::encode(w.finish())
        }),
    }))
}

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
async fn verified_view(
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
fn alone_off(
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
fn own_reveal(state: &State, plan: &Plan) -> Option<Message> {
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
fn own_check(state: &State, round: &[u8; 16]) -> Option<(Vec<Vec<u8>>, HybridSignature)> {
    state.reshares.lock().ok()?.get(round)?.check.clone()
}

/// Check values a recipient published (`GET /v1/reshare/{round}`):
/// untrusted, so bounded and parsed strictly; its signature, if any.
fn parse_check(
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
        Some(h) => {
            let b = hex::decode(h).ok()?;
            let mut r = Reader::raw(&b);
            let sig = HybridSignature::read(&mut r).ok()?;
            r.finish().ok()?;
            Some(sig)
        }
    };
    Some((values, signature))
}

/// One recipient's check values as we fetched them, with its signature
/// (verified) if it signed them.
struct Published {
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
async fn settle_dispute(
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
async fn reveal_of(
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
async fn gather_check_values(
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
            let r = state
                .ctl
                .get(&m, &path, 1 << 16)
                .await
                .map_err(|e| bad(409, format!("recipient {k} ({}): {e}", m.id)))?;
            let (values, signature) = serde_json::from_slice::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| parse_check(&v, spare, len))
                .ok_or_else(|| {
                    bad(
                        409,
                        format!("recipient {k} ({}) published no valid check values", m.id),
                    )
                })?;
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
fn describe_bad_dealing(plan: &Plan, dealers: &[u8], recipients: &[u8]) -> (&'static str, String) {
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
async fn after_bad_dealing(
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
            if let Ok(mut b) = state.convicted.lock() {
                b.insert((plan.vault_id, m.id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            round: [7; 16],
            vault_id: VaultId::from_bytes([3; 16]),
            epoch: 4,
            t_new: 3,
            dealers: vec![1, 2, 4, 6],
            recipients: (1..=5u8)
                .map(|i| Fingerprint::from_bytes([i; 32]))
                .collect(),
        }
    }

    /// The reveal of `pqvx-v1-reveal.hex`.
    fn vector_reveal() -> Message {
        Message::Reveal {
            round: [0x11; 16],
            index: 4,
            subs: vec![
                Revealed {
                    from: 1,
                    value: Zeroizing::new(vec![0x51; 32]),
                    signature: signature(0x46),
                },
                Revealed {
                    from: 5,
                    value: Zeroizing::new(vec![0x55; 32]),
                    signature: signature(0x47),
                },
            ],
        }
    }

    /// The view of `pqvx-v1-view.hex`.
    fn vector_view() -> Message {
        Message::View {
            round: [0x11; 16],
            entries: vec![
                SignedValues {
                    index: 1,
                    values: vec![vec![0x61; 32], vec![0x62; 32]],
                    signature: signature(0x48),
                },
                SignedValues {
                    index: 2,
                    values: vec![vec![0x63; 32], vec![0x64; 32]],
                    signature: signature(0x49),
                },
            ],
        }
    }

    /// A signature-shaped filler (the layout does not check signatures).
    fn signature(b: u8) -> HybridSignature {
        HybridSignature {
            ed25519: [b; vault::sign::ED25519_SIG_LEN],
            mldsa: vec![b + 1; vault::sign::MLDSA65_SIG_LEN],
        }
    }

    /// The signed statements' bytes as docs/formats.md lays them out.
    #[test]
    fn statements_follow_the_documented_layout() {
        let p = plan();
        let mut sub = vec![7u8; 16];
        sub.extend_from_slice(&[3; 16]);
        sub.extend_from_slice(&5u64.to_be_bytes());
        let mut check = sub.clone();
        sub.extend_from_slice(&[3, 5, 2, 4, 0, 0, 0, 2, 0xaa, 0xbb]);
        assert_eq!(subshare_statement(&p, 2, 4, &[0xaa, 0xbb]), sub);
        check.extend_from_slice(&[4, 2, 0, 0, 0, 1, 0xaa, 0, 0, 0, 1, 0xbb]);
        assert_eq!(check_statement(&p, 4, &[vec![0xaa], vec![0xbb]]), check);
    }

    #[test]
    fn messages_round_trip_and_refuse_garbage() {
        let msgs = [
            Message::Plan(plan()),
            Message::Subshare {
                round: [9; 16],
                from: 2,
                sealed: vec![1, 2, 3],
                signature: None,
            },
            Message::Subshare {
                round: [9; 16],
                from: 2,
                sealed: vec![1, 2, 3],
                signature: Some(signature(0x44)),
            },
            vector_view(),
            vector_reveal(),
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(Message::decode(&bytes).unwrap(), m);
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "truncated at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::decode(&longer).is_err(), "trailing byte");
        }
        let mut bad_type = Message::Plan(plan()).encode();
        bad_type[6] = 9;
        assert!(Message::decode(&bad_type).is_err());
    }

    /// Both ways against vectors laid out by hand from docs/formats.md
    /// (`tests/vectors/make_pqvx.py`): the bytes decode to the documented
    /// fields, and those fields encode to the same bytes.
    #[test]
    fn messages_match_the_checked_in_vectors() {
        let read = |s: &str| hex::decode(s.trim()).unwrap();
        let plan_bytes = read(include_str!("../tests/vectors/pqvx-v1-plan.hex"));
        let plan = Message::Plan(Plan {
            round: [0x11; 16],
            vault_id: VaultId::from_bytes([0x22; 16]),
            epoch: 7,
            t_new: 3,
            dealers: vec![1, 2, 5],
            recipients: (0..5u8)
                .map(|i| Fingerprint::from_bytes([0x31 + i; 32]))
                .collect(),
        });
        assert_eq!(Message::decode(&plan_bytes).unwrap(), plan);
        assert_eq!(plan.encode(), plan_bytes);
        let sub_bytes = read(include_str!("../tests/vectors/pqvx-v1-subshare.hex"));
        let sub = Message::Subshare {
            round: [0x11; 16],
            from: 2,
            sealed: b"PQVS-not-a-real-shard".to_vec(),
            signature: None,
        };
        assert_eq!(Message::decode(&sub_bytes).unwrap(), sub);
        assert_eq!(sub.encode(), sub_bytes);
        let signed_bytes = read(include_str!("../tests/vectors/pqvx-v1-signed-subshare.hex"));
        let signed = Message::Subshare {
            round: [0x11; 16],
            from: 2,
            sealed: b"PQVS-not-a-real-shard".to_vec(),
            signature: Some(signature(0x44)),
        };
        assert_eq!(Message::decode(&signed_bytes).unwrap(), signed);
        assert_eq!(signed.encode(), signed_bytes);
        let reveal_bytes = read(include_str!("../tests/vectors/pqvx-v1-reveal.hex"));
        let reveal = vector_reveal();
        assert_eq!(Message::decode(&reveal_bytes).unwrap(), reveal);
        assert_eq!(reveal.encode(), reveal_bytes);
        let view_bytes = read(include_str!("../tests/vectors/pqvx-v1-view.hex"));
        let view = vector_view();
        assert_eq!(Message::decode(&view_bytes).unwrap(), view);
        assert_eq!(view.encode(), view_bytes);
    }
}
