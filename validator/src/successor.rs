//! Successor requests and the pre-sign exchange: how a holder decides
//! whether to spend its one successor signature of an epoch on the copy it
//! is asked to sign.
//!
//! A leader asks each holder to sign the next manifest with a signed
//! request (`PQSQ`: vault, epoch, the certified proposal it carries out and
//! the manifest). Before signing, a holder records the request, then asks
//! every other live holder which copies of the successor it was asked and
//! which one it signed (`GET /v1/epoch/{vault}/asked?from=E`, answered with
//! a `PQSA`), and [`judge`]s what came back:
//!
//! * two requests by one requester for one proposal naming different
//!   manifests prove that requester split the signers: it is convicted
//!   (its share counts as lost) and its requests are ignored from then on;
//! * a copy another holder already signed is the one to finish: this one
//!   is refused, and the signed copy kept for the heal loop to drive;
//! * another copy of the same proposal's successor, asked and not yet
//!   signed, refuses this one.
//!
//! Two honest holders never sign different copies: each records before it
//! asks, so whichever asks second sees the other's copy (docs/protocol.md,
//! "Splitting the signers"). [`judge`] is pure; the asking is in
//! `crate::epochs::sign`.

use crate::rounds::{bad, Failure};
use crate::state::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use vault::codec::{FormatError, Kind, Reader, Writer};
use vault::epoch::{EpochCertificate, Transition};
use vault::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use vault::manifest::{Manifest, VaultId, VerifiedManifest};
use vault::sign::HybridSignature;

/// Wire kind of a successor request (body of `POST /v1/epoch/{vault}/sign`).
pub const REQUEST_KIND: Kind = Kind {
    magic: *b"PQSQ",
    name: "pqvault successor request",
    version: 1,
};

/// Wire kind of the answer to `GET /v1/epoch/{vault}/asked`.
pub const ASKED_KIND: Kind = Kind {
    magic: *b"PQSA",
    name: "pqvault successor requests seen",
    version: 1,
};

/// Signature domain of successor requests.
pub const REQUEST_DOMAIN: &str = "pqvault/v1 successor-request";

/// How many requests per (vault, epoch) a holder keeps and reports.
pub const MAX_KEPT: usize = 16;

/// How long a holder waits for each other holder's answer before signing
/// without it.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long after signing a successor that was never committed a holder
/// finishes it itself (its leader died while the holders signed, say):
/// longer than a live leader takes to gather signatures and commit.
pub const FINISH_OWN_AFTER: Duration = Duration::from_secs(5);

/// Largest manifest a request carries.
const MAX_MANIFEST: usize = 1 << 20;

/// A holder asked to sign `manifest` as the successor of epoch
/// `from_epoch`, carrying out the certified proposal `proposal` (all zero
/// when the epoch log decided the successor), by `requester`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Vault.
    pub vault_id: VaultId,
    /// The epoch being left.
    pub from_epoch: u64,
    /// Digest of the certified proposal this successor carries out.
    pub proposal: [u8; 32],
    /// The next manifest (`PQVM`), signed by its author.
    pub manifest: Vec<u8>,
    /// Who asks.
    pub requester: PublicIdentity,
    /// The requester's signature over [`Request::statement`].
    pub signature: HybridSignature,
}

impl Request {
    /// Signs a request for `manifest` as `key`.
    pub fn sign(
        vault_id: VaultId,
        from_epoch: u64,
        proposal: [u8; 32],
        manifest: Vec<u8>,
        key: &SecretIdentity,
    ) -> Result<Self, vault::sign::SignError> {
        let digest = Manifest::decode(&manifest).map_or([0; 32], |m| m.digest());
        let signature = key.signing_key().sign(
            REQUEST_DOMAIN,
            &statement(&vault_id, from_epoch, &proposal, &digest),
        )?;
        Ok(Request {
            vault_id,
            from_epoch,
            proposal,
            manifest,
            requester: key.public().clone(),
            signature,
        })
    }

    /// Digest of the requested manifest (zero if it does not decode).
    pub fn manifest_digest(&self) -> [u8; 32] {
        Manifest::decode(&self.manifest).map_or([0; 32], |m| m.digest())
    }

    /// Checks the requester's signature.
    pub fn verify(&self) -> Result<(), vault::sign::SignError> {
        self.requester.verifying_key().verify(
            REQUEST_DOMAIN,
            &statement(
                &self.vault_id,
                self.from_epoch,
                &self.proposal,
                &self.manifest_digest(),
            ),
            &self.signature,
        )
    }

    /// Canonical encoding (docs/formats.md, `PQSQ`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(REQUEST_KIND);
        w.bytes(self.vault_id.as_bytes())
            .u64(self.from_epoch)
            .bytes(&self.proposal)
            .var_bytes(&self.manifest)
            .var_bytes(&self.requester.encode())
            .bytes(&self.signature.ed25519)
            .bytes(&self.signature.mldsa);
        w.finish()
    }

    /// Decodes a request; the signature is checked by [`Request::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, REQUEST_KIND)?;
        let vault_id = VaultId::from_bytes(r.array("vault id")?);
        let from_epoch = r.u64("from epoch")?;
        let proposal = r.array("proposal digest")?;
        let manifest = r.var_bytes("manifest", MAX_MANIFEST)?.to_vec();
        let requester = PublicIdentity::decode(r.var_bytes("requester identity", 16 * 1024)?)
            .map_err(|e| FormatError::invalid("requester identity", e.to_string()))?;
        let signature = HybridSignature::read(&mut r)?;
        r.finish()?;
        Ok(Request {
            vault_id,
            from_epoch,
            proposal,
            manifest,
            requester,
            signature,
        })
    }
}

/// What a requester signs: `vault_id:[16] from_epoch:u64 proposal:[32]
/// manifest_digest:[32]`.
pub fn statement(vault: &VaultId, from: u64, proposal: &[u8; 32], manifest: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::raw();
    w.bytes(vault.as_bytes())
        .u64(from)
        .bytes(proposal)
        .bytes(manifest);
    w.finish()
}

/// One holder's answer: the requests it recorded for the successor of an
/// epoch, and the copy it signed with its signature (a `PQVE` holding it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// Requests recorded, oldest first.
    pub requests: Vec<Request>,
    /// The request it signed and its one-signature certificate.
    pub signed: Option<(Request, Vec<u8>)>,
}

impl Asked {
    /// Canonical encoding (docs/formats.md, `PQSA`).
    pub fn encode(&self, vault: &VaultId, from: u64) -> Vec<u8> {
        let mut w = Writer::new(ASKED_KIND);
        w.bytes(vault.as_bytes()).u64(from);
        let kept = &self.requests[..self.requests.len().min(MAX_KEPT)];
        w.u8(kept.len() as u8);
        for q in kept {
            w.var_bytes(&q.encode());
        }
        match &self.signed {
            None => {
                w.u8(0);
            }
            Some((q, cert)) => {
                w.u8(1).var_bytes(&q.encode()).var_bytes(cert);
            }
        }
        w.finish()
    }

    /// Decodes an answer, which must be about `vault` and epoch `from`.
    pub fn decode(bytes: &[u8], vault: &VaultId, from: u64) -> Result<Self, FormatError> {
        let mut r = Reader::open(bytes, ASKED_KIND)?;
        let v = VaultId::from_bytes(r.array("vault id")?);
        let e = r.u64("from epoch")?;
        if v != *vault || e != from {
            return Err(FormatError::invalid(
                "vault id",
                "the answer is about another vault or epoch",
            ));
        }
        let count = r.u8("request count")?;
        if usize::from(count) > MAX_KEPT {
            return Err(FormatError::invalid(
                "request count",
                format!("{count} requests, over the limit of {MAX_KEPT}"),
            ));
        }
        let mut requests = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            requests.push(Request::decode(r.var_bytes("request", 2 * MAX_MANIFEST)?)?);
        }
        let signed = match r.u8("signed")? {
            0 => None,
            1 => Some((
                Request::decode(r.var_bytes("signed request", 2 * MAX_MANIFEST)?)?,
                r.var_bytes("certificate", 64 * 1024)?.to_vec(),
            )),
            other => {
                return Err(FormatError::invalid(
                    "signed",
                    format!("{other} is neither 0 nor 1"),
                ))
            }
        };
        r.finish()?;
        Ok(Asked { requests, signed })
    }
}

/// The proof that a requester split the signers: two requests it signed
/// for one proposal of one epoch, naming different manifests. It convicts
/// on its own, wherever it is shown (`POST /v1/epoch/{vault}/evidence`):
/// an honest leader writes one copy per proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence(pub Request, pub Request);

impl Evidence {
    /// Whom it convicts.
    pub fn requester(&self) -> Fingerprint {
        self.0.requester.fingerprint()
    }

    /// Checks it: both signatures verify, by one requester, for one vault,
    /// epoch and (certified, non-zero) proposal, naming different
    /// manifests.
    pub fn check(&self) -> Result<(), String> {
        let (a, b) = (&self.0, &self.1);
        if a.requester != b.requester {
            return Err("the two requests are by different requesters".into());
        }
        if (a.vault_id, a.from_epoch, a.proposal) != (b.vault_id, b.from_epoch, b.proposal) {
            return Err("the two requests are for different vaults, epochs or proposals".into());
        }
        if a.proposal == [0; 32] {
            return Err("requests the epoch log decided prove nothing".into());
        }
        if a.manifest_digest() == b.manifest_digest() {
            return Err("the two requests name the same manifest".into());
        }
        a.verify().map_err(|e| format!("first request: {e}"))?;
        b.verify().map_err(|e| format!("second request: {e}"))?;
        Ok(())
    }

    /// Encoding: `var(PQSQ) var(PQSQ)` (docs/formats.md).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::raw();
        w.var_bytes(&self.0.encode()).var_bytes(&self.1.encode());
        w.finish()
    }

    /// Decodes; [`Evidence::check`] says whether it proves anything.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::raw(bytes);
        let a = Request::decode(r.var_bytes("first request", 2 * MAX_MANIFEST)?)?;
        let b = Request::decode(r.var_bytes("second request", 2 * MAX_MANIFEST)?)?;
        r.finish()?;
        Ok(Evidence(a, b))
    }
}

/// What [`judge`] decides about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No other copy stands in the way: sign it.
    Sign,
    /// Another holder signed another copy: finish that one instead.
    SignedElsewhere {
        /// The signed copy's request.
        copy: Box<Request>,
        /// Who signed it.
        by: Fingerprint,
    },
    /// Another copy of the same proposal's successor was asked and not
    /// (yet) signed.
    AskedElsewhere {
        /// Who was asked it.
        holder: Fingerprint,
    },
    /// Two different copies carry signatures of holders: only the operator
    /// can tell which to finish.
    TwoSigned,
}

/// The verdict on `ours`, and any requester the answers convict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// What to do with our request.
    pub verdict: Verdict,
    /// Requesters proven to have asked two different successors of one
    /// proposal: the proof, their two signed requests.
    pub convicted: Vec<Evidence>,
    /// Holders (not convicted) whose signature on our copy was shown.
    pub ours_signed_by: Vec<Fingerprint>,
}

/// Judges our request `ours` (already checked) against what we recorded
/// (`kept`, ours included) and the other holders' answers (`answers`, by
/// holder fingerprint), for the epoch whose manifest is `current`.
/// `already` are requesters convicted before. Only holders of `current`
/// count: as requesters, as answerers and as signers; every signature is
/// checked, so an answer can neither invent a copy nor frame a requester.
pub fn judge(
    current: &VerifiedManifest,
    ours: &Request,
    kept: &[Request],
    answers: &[(Fingerprint, Asked)],
    already: &[Fingerprint],
) -> Judgement {
    let c = current.body();
    let holder = |fp: &Fingerprint| c.shards.iter().any(|e| e.recipient == *fp);
    let of_epoch = |q: &Request| {
        q.vault_id == c.vault_id
            && q.from_epoch == c.epoch
            && holder(&q.requester.fingerprint())
            && q.verify().is_ok()
    };
    // Every request seen, with who holds it: ours first.
    let mut seen: Vec<(Option<Fingerprint>, &Request)> = kept
        .iter()
        .filter(|q| of_epoch(q))
        .map(|q| (None, q))
        .collect();
    let mut signed: Vec<(Fingerprint, &Request)> = Vec::new();
    for (by, a) in answers.iter().filter(|(by, _)| holder(by)) {
        seen.extend(
            a.requests
                .iter()
                .filter(|q| of_epoch(q))
                .map(|q| (Some(*by), q)),
        );
        if let Some((q, cert)) = &a.signed {
            if of_epoch(q) && signed_by(current, q, cert, by) {
                seen.push((Some(*by), q));
                signed.push((*by, q));
            }
        }
    }
    // Two manifests under one proposal from one requester: the proof.
    let mut first: BTreeMap<(Fingerprint, [u8; 32]), &Request> = BTreeMap::new();
    let mut convicted: Vec<Evidence> = Vec::new();
    for (_, q) in &seen {
        let who = q.requester.fingerprint();
        match first.get(&(who, q.proposal)) {
            Some(other)
                if other.manifest_digest() != q.manifest_digest() && q.proposal != [0; 32] =>
            {
                if convicted.iter().all(|e| e.requester() != who) {
                    convicted.push(Evidence((*other).clone(), (*q).clone()));
                }
            }
            Some(_) => {}
            None => {
                first.insert((who, q.proposal), q);
            }
        }
    }
    let out =
        |f: &Fingerprint| already.contains(f) || convicted.iter().any(|e| e.requester() == *f);
    let mine = ours.manifest_digest();
    let others: Vec<&(Fingerprint, &Request)> = signed
        .iter()
        .filter(|(by, q)| !out(by) && q.manifest_digest() != mine)
        .collect();
    let distinct: std::collections::BTreeSet<[u8; 32]> =
        others.iter().map(|(_, q)| q.manifest_digest()).collect();
    // A copy a holder signed comes first (even when our requester is a
    // proven liar: that copy is the one to finish), then our requester.
    let verdict = if distinct.len() > 1 {
        Verdict::TwoSigned
    } else if let Some((by, q)) = others.first() {
        Verdict::SignedElsewhere {
            copy: Box::new((*q).clone()),
            by: *by,
        }
    } else if out(&ours.requester.fingerprint()) {
        // Our own requester is a proven liar: nothing it asks is signed.
        Verdict::AskedElsewhere {
            holder: ours.requester.fingerprint(),
        }
    } else if let Some((by, _)) = seen.iter().find(|(_, q)| {
        q.proposal == ours.proposal
            && q.manifest_digest() != mine
            && !out(&q.requester.fingerprint())
    }) {
        Verdict::AskedElsewhere {
            holder: by.unwrap_or(ours.requester.fingerprint()),
        }
    } else {
        Verdict::Sign
    };
    let ours_signed_by = signed
        .iter()
        .filter(|(by, q)| !out(by) && q.manifest_digest() == mine)
        .map(|(by, _)| *by)
        .collect();
    Judgement {
        verdict,
        convicted,
        ours_signed_by,
    }
}

/// True if `cert` holds `by`'s valid signature on the transition from
/// `current` to the manifest of `q`.
fn signed_by(current: &VerifiedManifest, q: &Request, cert: &[u8], by: &Fingerprint) -> bool {
    let Ok(next) = Manifest::decode(&q.manifest) else {
        return false;
    };
    let Ok(cert) = EpochCertificate::decode(cert) else {
        return false;
    };
    let t = Transition::between(current, &next);
    if cert.transition != t {
        return false;
    }
    cert.signatures
        .iter()
        .any(|(id, sig)| id.fingerprint() == *by && t.verify_signature(id, sig).is_ok())
}

/// What this holder keeps per (vault, epoch): requests asked of it, the
/// copy it signed, and a copy signed elsewhere that it learned of.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// Requests recorded (at most [`MAX_KEPT`]).
    pub asked: Vec<Request>,
    /// The request we signed and our certificate.
    pub signed: Option<(Request, Vec<u8>)>,
    /// When we signed it.
    pub signed_at: Option<std::time::Instant>,
    /// A copy another holder signed, to finish.
    pub to_finish: Option<Request>,
}

/// Records `q`, asked of us, before we ask anyone else (the order the
/// exchange's argument rests on). Forgets earlier epochs of the vault.
pub fn record(state: &State, q: &Request) -> Result<Vec<Request>, Failure> {
    let mut k = state.successors.lock().map_err(|_| bad(500, "poisoned"))?;
    k.retain(|(v, e), _| *v != q.vault_id || *e >= q.from_epoch);
    let kept = k.entry((q.vault_id, q.from_epoch)).or_default();
    // One slot per (requester, proposal, manifest): signatures are hedged,
    // so a requester re-signing one request must not fill the list.
    let same = |a: &Request| {
        a.requester == q.requester
            && a.proposal == q.proposal
            && a.manifest_digest() == q.manifest_digest()
    };
    if !kept.asked.iter().any(same) {
        if kept.asked.len() >= MAX_KEPT {
            return Err(bad(
                429,
                format!("{MAX_KEPT} successor requests for this epoch already; not recording more"),
            ));
        }
        kept.asked.push(q.clone());
    }
    Ok(kept.asked.clone())
}

/// Remembers that we signed `q` (our certificate `cert`): in memory, and
/// on disk, so that after a restart we can still show and finish it.
pub fn signed(state: &State, q: &Request, cert: &[u8]) {
    if let Ok(store) = state.store.lock() {
        let had = store.signed_request(&q.vault_id, q.from_epoch);
        let same = had
            .as_ref()
            .and_then(|(b, _)| Request::decode(b).ok())
            .is_some_and(|h| h.manifest == q.manifest);
        if !same {
            if let Err(e) = store.save_signed_request(&q.vault_id, q.from_epoch, &q.encode(), cert)
            {
                tracing::warn!(vault = %q.vault_id, "could not keep the successor request we signed: {e}");
            }
        }
    }
    if let Ok(mut k) = state.successors.lock() {
        let kept = k.entry((q.vault_id, q.from_epoch)).or_default();
        if kept
            .signed
            .as_ref()
            .is_none_or(|(s, _)| s.manifest != q.manifest)
        {
            kept.signed_at = Some(std::time::Instant::now());
        }
        kept.signed = Some((q.clone(), cert.to_vec()));
    }
}

/// What we keep for the successor of epoch `from` of `vault`.
fn kept(state: &State, vault: &VaultId, from: u64) -> Kept {
    state
        .successors
        .lock()
        .ok()
        .and_then(|k| k.get(&(*vault, from)).cloned())
        .unwrap_or_default()
}

/// At start: the copy we signed of each held vault's successor, read back
/// from disk ([`crate::store::Store::save_signed_request`]), due for
/// finishing [`FINISH_OWN_AFTER`] from now if the vault is still at that
/// epoch by then.
pub fn restored(store: &crate::store::Store) -> BTreeMap<(VaultId, u64), Kept> {
    let now = std::time::Instant::now();
    store
        .vaults()
        .filter_map(|(id, held)| {
            let (q, c) = store.signed_request(id, held.epoch)?;
            let q = Request::decode(&q).ok()?;
            (q.vault_id == *id && q.from_epoch == held.epoch).then(|| {
                let kept = Kept {
                    signed: Some((q, c)),
                    signed_at: Some(now),
                    ..Kept::default()
                };
                ((*id, held.epoch), kept)
            })
        })
        .collect()
}

/// Our answer to `GET /v1/epoch/{vault}/asked?from=E`.
pub fn answer(state: &State, vault: &VaultId, from: u64) -> Vec<u8> {
    let kept = kept(state, vault, from);
    Asked {
        requests: kept.asked,
        signed: kept.signed,
    }
    .encode(vault, from)
}

/// The copy of the successor of epoch `from` to finish: one signed
/// elsewhere that we learned of, or the one we signed ourselves over
/// [`FINISH_OWN_AFTER`] ago (we are still at `from`, so it was never
/// committed).
pub fn to_finish(state: &State, vault: &VaultId, from: u64) -> Option<Request> {
    let kept = kept(state, vault, from);
    kept.to_finish.clone().or_else(|| {
        let stale = kept.signed_at?.elapsed() >= FINISH_OWN_AFTER;
        kept.signed
            .as_ref()
            .filter(|_| stale)
            .map(|(q, _)| q.clone())
    })
}

/// Convicts the requester `e` proves split the signers (checked by the
/// caller), unless it is us or already convicted: its share counts as lost
/// and we release our vote for its attempt. `from` names who showed us the
/// proof, if not our own exchange. Returns whether it is new.
async fn convict(state: &Arc<State>, e: &Evidence, from: Option<&str>) -> bool {
    let fp = e.requester();
    if fp == state.identity.public().fingerprint() {
        return false;
    }
    let Ok((m, _)) = crate::rounds::member_with(state, &fp).await else {
        return false;
    };
    let vault = e.0.vault_id;
    let new = state.convict(vault, e.0.from_epoch, &m.id);
    if !new {
        return false;
    }
    tracing::warn!(
        %vault,
        epoch = e.0.from_epoch,
        requester = %m.id,
        first = %hex::encode(&e.0.manifest_digest()[..8]),
        second = %hex::encode(&e.1.manifest_digest()[..8]),
        shown_by = from.unwrap_or("our own exchange"),
        "split signers: a requester asked two different successors of one proposal; convicted"
    );
    state
        .metrics
        .successor_conflicts
        .with_label_values(&["convicted"])
        .inc();
    release_vote_for(state, &vault, e.0.from_epoch, &m.id);
    true
}

/// Shows the proof to every other member, once, in the background (a
/// holder that signed before it could see the split learns it this way,
/// and counts the liar's share as lost too).
fn spread(state: &Arc<State>, e: &Evidence) {
    let body = e.encode();
    let path = format!("/v1/epoch/{}/evidence", e.0.vault_id);
    let liar = e.requester();
    for m in state.members() {
        if m.id == state.id {
            continue;
        }
        let (state, body, path) = (state.clone(), body.clone(), path.clone());
        tokio::spawn(async move {
            if crate::rounds::identity_of(&state, &m.id)
                .await
                .is_ok_and(|p| p.fingerprint() == liar)
            {
                return;
            }
            let sent =
                tokio::time::timeout(ASK_TIMEOUT, state.ctl.post(&m, &path, body, 1 << 10)).await;
            if !matches!(sent, Ok(Ok(ref r)) if r.status == 200) {
                tracing::debug!(peer = %m.id, "split-signers evidence not delivered");
            }
        });
    }
}

/// `POST /v1/epoch/{vault}/evidence`: a member shows us two requests one
/// requester signed for one proposal; checked, they convict it here too.
pub async fn receive_evidence(
    state: &Arc<State>,
    vault: &VaultId,
    caller: &str,
    body: &[u8],
) -> Result<&'static str, Failure> {
    let e = Evidence::decode(body).map_err(|e| bad(400, e))?;
    if e.0.vault_id != *vault {
        return Err(bad(422, "the evidence is about another vault"));
    }
    e.check().map_err(|why| bad(422, why))?;
    convict(state, &e, Some(caller)).await;
    Ok("convicted\n")
}

/// Frees our vote for the attempt `proposer` leads in `epoch` of `vault`,
/// once it is convicted, so that the next attempt need not wait for the
/// attempt timeout: as after a failed dealing check, never once we signed
/// a successor of the epoch. A copy of its successor another holder
/// already signed can still be finished (`crate::epochs::sign`).
fn release_vote_for(state: &State, vault: &VaultId, epoch: u64, proposer: &str) {
    let ours = state
        .voted_for
        .lock()
        .ok()
        .and_then(|v| v.get(&(*vault, epoch)).map(|(_, who)| who == proposer))
        .unwrap_or(false);
    if !ours {
        return;
    }
    if let Ok(store) = state.store.lock() {
        if store.signed_successor(vault, epoch) {
            return;
        }
        match store.release_proposal_vote(vault, epoch) {
            Ok(()) => {
                tracing::info!(%vault, epoch, %proposer, "released our vote for the convicted proposer's attempt")
            }
            Err(e) => tracing::warn!(%vault, epoch, "could not release our vote: {e}"),
        }
    }
}

/// Asks every other live holder of `current` (ids in `live`) what it was
/// asked, each for at most [`ASK_TIMEOUT`]; a holder that does not answer
/// is left out (a liar could answer anything anyway).
pub async fn ask_others(
    state: &Arc<State>,
    current: &VerifiedManifest,
    live: &[String],
) -> Vec<(Fingerprint, Asked)> {
    let c = current.body();
    let path = format!("/v1/epoch/{}/asked?from={}", c.vault_id, c.epoch);
    let asks: Vec<_> = state
        .members()
        .into_iter()
        .filter(|m| m.id != state.id && live.contains(&m.id))
        .map(|m| {
            let (state, path, vault, from) = (state.clone(), path.clone(), c.vault_id, c.epoch);
            tokio::spawn(async move {
                let fp = crate::rounds::identity_of(&state, &m.id)
                    .await
                    .ok()?
                    .fingerprint();
                let r = tokio::time::timeout(ASK_TIMEOUT, state.ctl.get(&m, &path, 8 << 20))
                    .await
                    .ok()?
                    .ok()?;
                if r.status != 200 {
                    return None;
                }
                match Asked::decode(&r.body, &vault, from) {
                    Ok(a) => Some((fp, a)),
                    Err(e) => {
                        tracing::info!(peer = %m.id, "unreadable answer about successor requests: {e}");
                        None
                    }
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for a in asks {
        if let Ok(Some(x)) = a.await {
            out.push(x);
        }
    }
    out
}

/// Acts on a judgement: convicts proven equivocators (their shares count
/// as lost, like a bad dealer's), keeps a copy signed elsewhere for the
/// heal loop to finish, counts the outcome, and turns a refusal into the
/// answer for the requester.
pub async fn apply(state: &Arc<State>, ours: &Request, j: Judgement) -> Result<(), Failure> {
    for e in &j.convicted {
        if convict(state, e, None).await {
            spread(state, e);
        }
    }
    let count = |outcome: &str| {
        state
            .metrics
            .successor_conflicts
            .with_label_values(&[outcome])
            .inc()
    };
    match j.verdict {
        Verdict::Sign => Ok(()),
        Verdict::SignedElsewhere { copy, by } => {
            count("signed_elsewhere");
            if let Ok(mut k) = state.successors.lock() {
                k.entry((ours.vault_id, ours.from_epoch))
                    .or_default()
                    .to_finish = Some((*copy).clone());
            }
            Err(bad(
                409,
                format!(
                    "holder {} already signed another copy of this successor ({}); that copy is the one to finish",
                    by.short(),
                    hex::encode(&copy.manifest_digest()[..8])
                ),
            ))
        }
        Verdict::AskedElsewhere { holder } => {
            count("asked_elsewhere");
            Err(bad(
                409,
                format!(
                    "another copy of this successor was asked of holder {} (or its requester split the signers); not signing either",
                    holder.short()
                ),
            ))
        }
        Verdict::TwoSigned => {
            count("two_signed");
            Err(bad(
                409,
                "two different copies of this successor carry holders' signatures; the operator must act",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vault::manifest::ManifestBody;

    struct World {
        ids: Vec<SecretIdentity>,
        current: VerifiedManifest,
        a: Vec<u8>,
        b: Vec<u8>,
    }

    const P: [u8; 32] = [7; 32];

    /// Holders 0..4 of epoch 1 (0 leads), and two copies of its successor
    /// written by holder 0 that differ only in their creation time.
    fn world() -> World {
        let ids: Vec<SecretIdentity> = (0..4)
            .map(|i| SecretIdentity::generate(&format!("validator-{}", i + 1)).unwrap())
            .collect();
        let fps: Vec<Fingerprint> = ids.iter().map(|k| k.public().fingerprint()).collect();
        let body: ManifestBody = crate::transition::test_body(1, &[0, 1, 2, 3], 3, |i| fps[i]);
        let sign =
            |b: &ManifestBody| Manifest::sign(b, ids[0].public(), ids[0].signing_key()).unwrap();
        let current = Manifest::decode(&sign(&body))
            .unwrap()
            .verify(None)
            .unwrap();
        let mut next = body.clone();
        next.epoch = 2;
        next.created_unix = 5;
        let a = sign(&next);
        next.created_unix = 6;
        let b = sign(&next);
        World { ids, current, a, b }
    }

    impl World {
        fn fp(&self, i: usize) -> Fingerprint {
            self.ids[i].public().fingerprint()
        }

        fn ask(&self, by: usize, proposal: [u8; 32], m: &[u8]) -> Request {
            Request::sign(
                self.current.body().vault_id,
                1,
                proposal,
                m.to_vec(),
                &self.ids[by],
            )
            .unwrap()
        }

        /// Holder `by`'s certificate signing the step to `q`'s manifest.
        fn signed(&self, by: usize, q: &Request) -> (Request, Vec<u8>) {
            let t = Transition::between(&self.current, &Manifest::decode(&q.manifest).unwrap());
            let sig = t.sign(&self.ids[by]).unwrap();
            let cert = EpochCertificate {
                transition: t,
                signatures: vec![sig],
            };
            (q.clone(), cert.encode())
        }

        /// Judges `ours`, the only request we recorded ourselves.
        fn judge(
            &self,
            ours: &Request,
            answers: &[(Fingerprint, Asked)],
            already: &[Fingerprint],
        ) -> Judgement {
            judge(
                &self.current,
                ours,
                std::slice::from_ref(ours),
                answers,
                already,
            )
        }

        fn asked(&self, by: usize, requests: Vec<Request>) -> (Fingerprint, Asked) {
            (
                self.fp(by),
                Asked {
                    requests,
                    signed: None,
                },
            )
        }
    }

    #[test]
    fn requests_and_answers_round_trip_and_bad_bytes_are_errors() {
        let w = world();
        let q = w.ask(0, P, &w.a);
        q.verify().unwrap();
        assert_eq!(Request::decode(&q.encode()).unwrap(), q);
        let a = Asked {
            requests: vec![q.clone(), w.ask(0, P, &w.b)],
            signed: Some(w.signed(1, &q)),
        };
        let vault = w.current.body().vault_id;
        let bytes = a.encode(&vault, 1);
        assert_eq!(Asked::decode(&bytes, &vault, 1).unwrap(), a);
        assert!(Asked::decode(&bytes, &vault, 2).is_err(), "another epoch");
        for cut in [0, 5, 30, bytes.len() / 2, bytes.len() - 1] {
            assert!(Asked::decode(&bytes[..cut], &vault, 1).is_err());
            assert!(Request::decode(&q.encode()[..cut.min(q.encode().len() - 1)]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Asked::decode(&trailing, &vault, 1).is_err());
    }

    fn hex_file(text: &str) -> Vec<u8> {
        hex::decode(text.trim()).unwrap()
    }

    /// `PQSQ` and `PQSA` both ways against the layouts made from
    /// docs/formats.md (`validator/tests/vectors/make_pqsq.py`).
    #[test]
    fn requests_and_answers_match_the_checked_in_vectors() {
        let bytes = hex_file(include_str!("../tests/vectors/pqsq-v1-request.hex"));
        let q = Request::decode(&bytes).unwrap();
        assert_eq!(q.vault_id, VaultId::from_bytes([0x22; 16]));
        assert_eq!((q.from_epoch, q.proposal), (7, [0x33; 32]));
        assert_eq!(q.manifest, b"not a manifest");
        assert_eq!(q.requester.name(), "TEST-ONLY-validator-1");
        assert_eq!(q.signature.ed25519, [0x44; 64]);
        assert_eq!(q.signature.mldsa, vec![0x55; 3309]);
        assert!(
            q.verify().is_err(),
            "a layout vector carries no real signature"
        );
        assert_eq!(q.encode(), bytes);
        let bytes = hex_file(include_str!("../tests/vectors/pqsa-v1-asked.hex"));
        let vault = VaultId::from_bytes([0x22; 16]);
        let a = Asked::decode(&bytes, &vault, 7).unwrap();
        assert_eq!(a.requests, vec![q.clone()]);
        assert_eq!(a.signed, Some((q, b"cert".to_vec())));
        assert_eq!(a.encode(&vault, 7), bytes);
        for cut in (0..bytes.len()).step_by(97) {
            assert!(Asked::decode(&bytes[..cut], &vault, 7).is_err(), "{cut}");
        }
    }

    #[test]
    fn a_request_whose_manifest_was_swapped_does_not_verify() {
        let w = world();
        let mut q = w.ask(0, P, &w.a);
        q.manifest = w.b.clone();
        assert!(q.verify().is_err());
    }

    #[test]
    fn a_copy_nobody_else_was_asked_is_signed() {
        let w = world();
        let q = w.ask(0, P, &w.a);
        let answers = [w.asked(2, vec![q.clone()]), w.asked(3, vec![])];
        let j = w.judge(&q, &answers, &[]);
        assert_eq!(j.verdict, Verdict::Sign);
        assert!(j.convicted.is_empty());
    }

    #[test]
    fn two_copies_of_one_proposal_from_one_leader_convict_it() {
        let w = world();
        let (qa, qb) = (w.ask(0, P, &w.a), w.ask(0, P, &w.b));
        let answers = [w.asked(2, vec![qa.clone()])];
        let j = w.judge(&qb, &answers, &[]);
        assert_eq!(j.convicted.len(), 1);
        assert_eq!(j.convicted[0].requester(), w.fp(0));
        // The proof stands on its own, and round-trips.
        let e = &j.convicted[0];
        e.check().unwrap();
        assert_eq!(Evidence::decode(&e.encode()).unwrap(), *e);
        assert!(matches!(j.verdict, Verdict::AskedElsewhere { .. }));
    }

    #[test]
    fn evidence_convicts_only_two_signed_copies_of_one_proposal() {
        let w = world();
        let (qa, qb) = (w.ask(0, P, &w.a), w.ask(0, P, &w.b));
        Evidence(qa.clone(), qb.clone()).check().unwrap();
        let refused = |a: &Request, b: &Request| Evidence(a.clone(), b.clone()).check().is_err();
        assert!(refused(&qa, &qa), "the same manifest twice");
        assert!(refused(&qa, &w.ask(1, P, &w.b)), "two requesters");
        assert!(refused(&qa, &w.ask(0, [8; 32], &w.b)), "two proposals");
        let (z1, z2) = (w.ask(0, [0; 32], &w.a), w.ask(0, [0; 32], &w.b));
        assert!(refused(&z1, &z2), "the log's requests");
        let mut forged = qb.clone();
        forged.manifest = w.a.clone();
        forged.signature = qa.signature.clone();
        forged.manifest = {
            let mut m = Manifest::decode(&w.b).unwrap().body().clone();
            m.created_unix = 9;
            Manifest::sign(&m, w.ids[1].public(), w.ids[1].signing_key()).unwrap()
        };
        assert!(
            refused(&qa, &forged),
            "a signature that is not the requester's"
        );
        let bytes = Evidence(qa, qb).encode();
        assert!(Evidence::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn copies_of_different_proposals_convict_nobody() {
        // An honest leader's second attempt writes a new copy.
        let w = world();
        let (qa, qb) = (w.ask(0, P, &w.a), w.ask(0, [8; 32], &w.b));
        let answers = [w.asked(2, vec![qa])];
        let j = w.judge(&qb, &answers, &[]);
        assert!(j.convicted.is_empty());
        assert_eq!(j.verdict, Verdict::Sign);
    }

    #[test]
    fn a_copy_another_holder_signed_is_the_one_to_finish() {
        let w = world();
        let qa = w.ask(0, P, &w.a);
        // Holder 2 signed copy a; holder 1 is asked copy b by someone else.
        let qb = w.ask(1, [8; 32], &w.b);
        let answers = [(
            w.fp(2),
            Asked {
                requests: vec![qa.clone()],
                signed: Some(w.signed(2, &qa)),
            },
        )];
        let j = w.judge(&qb, &answers, &[]);
        assert_eq!(
            j.verdict,
            Verdict::SignedElsewhere {
                copy: Box::new(qa.clone()),
                by: w.fp(2)
            }
        );
        // Asked to finish that very copy, we sign it, and know who did.
        let finish = w.ask(1, P, &w.a);
        let j = w.judge(&finish, &answers, &[]);
        assert_eq!(j.verdict, Verdict::Sign);
        assert_eq!(j.ours_signed_by, vec![w.fp(2)]);
    }

    #[test]
    fn answers_can_neither_invent_a_copy_nor_frame_a_requester() {
        let w = world();
        let qa = w.ask(0, P, &w.a);
        // A copy "from holder 0" whose manifest was swapped: its signature
        // fails, so it is no proof.
        let mut forged = w.ask(0, P, &w.a);
        forged.manifest = w.b.clone();
        // A signature claimed for holder 3 but made by holder 1.
        let (q, cert) = w.signed(1, &w.ask(0, P, &w.b));
        let answers = [
            w.asked(2, vec![forged]),
            (
                w.fp(3),
                Asked {
                    requests: vec![],
                    signed: Some((q, cert)),
                },
            ),
        ];
        let j = w.judge(&qa, &answers, &[]);
        assert!(j.convicted.is_empty());
        assert_eq!(j.verdict, Verdict::Sign);
    }

    #[test]
    fn only_holders_of_the_epoch_count() {
        let w = world();
        let outsider = SecretIdentity::generate("validator-9").unwrap();
        let qa = w.ask(0, P, &w.a);
        let qb = w.ask(0, P, &w.b);
        let answers = [(
            outsider.public().fingerprint(),
            Asked {
                requests: vec![qb],
                signed: None,
            },
        )];
        let j = w.judge(&qa, &answers, &[]);
        assert!(j.convicted.is_empty());
        assert_eq!(j.verdict, Verdict::Sign);
    }

    #[test]
    fn a_convicted_requesters_copies_no_longer_block_and_its_own_are_refused() {
        let w = world();
        let qb = w.ask(0, P, &w.b);
        let answers = [w.asked(2, vec![qb.clone()])];
        // A new attempt's copy, led by holder 1.
        let q = w.ask(1, [8; 32], &w.a);
        let j = w.judge(&q, &answers, &[w.fp(0)]);
        assert_eq!(j.verdict, Verdict::Sign);
        // The convicted leader's own request is refused.
        let j = w.judge(&qb, &[], &[w.fp(0)]);
        assert!(matches!(j.verdict, Verdict::AskedElsewhere { .. }));
        // Unless a holder signed its other copy: that one is to finish.
        let qa = w.ask(0, P, &w.a);
        let answers = [(
            w.fp(2),
            Asked {
                requests: vec![qa.clone()],
                signed: Some(w.signed(2, &qa)),
            },
        )];
        let j = w.judge(&qb, &answers, &[]);
        assert_eq!(j.convicted.len(), 1);
        assert_eq!(
            j.verdict,
            Verdict::SignedElsewhere {
                copy: Box::new(qa),
                by: w.fp(2)
            }
        );
    }

    #[test]
    fn two_signed_copies_are_left_to_the_operator() {
        let w = world();
        let (qa, qb) = (w.ask(0, P, &w.a), w.ask(0, P, &w.b));
        let answers = [
            (
                w.fp(2),
                Asked {
                    requests: vec![],
                    signed: Some(w.signed(2, &qa)),
                },
            ),
            (
                w.fp(3),
                Asked {
                    requests: vec![],
                    signed: Some(w.signed(3, &qb)),
                },
            ),
        ];
        let mut next = Manifest::decode(&w.a).unwrap().body().clone();
        next.created_unix = 7;
        let c = Manifest::sign(&next, w.ids[1].public(), w.ids[1].signing_key()).unwrap();
        let q = w.ask(1, [8; 32], &c);
        let j = w.judge(&q, &answers, &[]);
        assert_eq!(j.verdict, Verdict::TwoSigned);
    }
}
