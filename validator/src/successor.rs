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

/// What [`judge`] decides about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No other copy stands in the way: sign it.
    Sign,
    /// Another holder signed another copy: finish that one instead.
    SignedElsewhere {
        /// The signed copy's request.
        copy: Request,
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
    /// proposal (by fingerprint), with their two manifest digests.
    pub convicted: Vec<(Fingerprint, [u8; 32], [u8; 32])>,
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
    let mut first: BTreeMap<(Fingerprint, [u8; 32]), [u8; 32]> = BTreeMap::new();
    let mut convicted: Vec<(Fingerprint, [u8; 32], [u8; 32])> = Vec::new();
    for (_, q) in &seen {
        let who = q.requester.fingerprint();
        let d = q.manifest_digest();
        match first.get(&(who, q.proposal)) {
            Some(other) if *other != d && q.proposal != [0; 32] => {
                if convicted.iter().all(|(f, _, _)| *f != who) {
                    convicted.push((who, *other, d));
                }
            }
            Some(_) => {}
            None => {
                first.insert((who, q.proposal), d);
            }
        }
    }
    let out = |f: &Fingerprint| already.contains(f) || convicted.iter().any(|(c, _, _)| c == f);
    let mine = ours.manifest_digest();
    let verdict = if out(&ours.requester.fingerprint()) {
        // Our own requester is a proven liar: nothing it asks is signed.
        Verdict::AskedElsewhere {
            holder: ours.requester.fingerprint(),
        }
    } else {
        let others: Vec<&(Fingerprint, &Request)> = signed
            .iter()
            .filter(|(by, q)| !out(by) && q.manifest_digest() != mine)
            .collect();
        let distinct: std::collections::BTreeSet<[u8; 32]> =
            others.iter().map(|(_, q)| q.manifest_digest()).collect();
        if distinct.len() > 1 {
            Verdict::TwoSigned
        } else if let Some((by, q)) = others.first() {
            Verdict::SignedElsewhere {
                copy: (*q).clone(),
                by: *by,
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
        }
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
    cert.signatures.iter().any(|(id, sig)| {
        id.fingerprint() == *by && t.verify_signature(id, sig).is_ok()
    })
}

/// What this holder keeps per (vault, epoch): requests asked of it, the
/// copy it signed, and a copy signed elsewhere that it learned of.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// Requests recorded (at most [`MAX_KEPT`]).
    pub asked: Vec<Request>,
    /// The request we signed and our certificate.
    pub signed: Option<(Request, Vec<u8>)>,
    /// A copy another holder signed, to finish.
    pub to_finish: Option<Request>,
}

/// Records `q`, asked of us, before we ask anyone else (the order the
/// exchange's argument rests on). Forgets earlier epochs of the vault.
pub fn record(state: &State, q: &Request) -> Result<Vec<Request>, Failure> {
    let mut k = state.successors.lock().map_err(|_| bad(500, "poisoned"))?;
    k.retain(|(v, e), _| *v != q.vault_id || *e >= q.from_epoch);
    let kept = k.entry((q.vault_id, q.from_epoch)).or_default();
    if !kept.asked.contains(q) {
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

/// Remembers that we signed `q` (our certificate `cert`).
pub fn signed(state: &State, q: &Request, cert: &[u8]) {
    if let Ok(mut k) = state.successors.lock() {
        k.entry((q.vault_id, q.from_epoch)).or_default().signed = Some((q.clone(), cert.to_vec()));
    }
}

/// Our answer to `GET /v1/epoch/{vault}/asked?from=E`.
pub fn answer(state: &State, vault: &VaultId, from: u64) -> Vec<u8> {
    let kept = state
        .successors
        .lock()
        .ok()
        .and_then(|k| k.get(&(*vault, from)).cloned())
        .unwrap_or_default();
    Asked {
        requests: kept.asked,
        signed: kept.signed,
    }
    .encode(vault, from)
}

/// The copy signed elsewhere that we learned of, to finish.
pub fn to_finish(state: &State, vault: &VaultId, from: u64) -> Option<Request> {
    state
        .successors
        .lock()
        .ok()?
        .get(&(*vault, from))?
        .to_finish
        .clone()
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
            Ok(()) => tracing::info!(%vault, epoch, %proposer, "released our vote for the convicted proposer's attempt"),
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
    let me = state.identity.public().fingerprint();
    for (fp, a, b) in &j.convicted {
        if *fp == me {
            continue;
        }
        let Ok((m, _)) = crate::rounds::member_with(state, fp).await else {
            continue;
        };
        let new = state
            .convicted
            .lock()
            .is_ok_and(|mut c| c.insert((ours.vault_id, m.id.clone())));
        if !new {
            continue;
        }
        tracing::warn!(
            vault = %ours.vault_id,
            epoch = ours.from_epoch,
            requester = %m.id,
            first = %hex::encode(&a[..8]),
            second = %hex::encode(&b[..8]),
            "split signers: a requester asked two different successors of one proposal; convicted"
        );
        state
            .metrics
            .successor_conflicts
            .with_label_values(&["convicted"])
            .inc();
        release_vote_for(state, &ours.vault_id, ours.from_epoch, &m.id);
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
                    .to_finish = Some(copy.clone());
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
