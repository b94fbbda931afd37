//! Members the operator removed (`PQVN`, `vault::membership`).
//!
//! * `GET /v1/membership`: the signed removal we hold (404 if none), for
//!   `vault mesh remove` to learn the current version and for peers to
//!   adopt it.
//! * `POST /v1/membership`: a signed removal, from the operator's client
//!   or any member. Adopted if the operator signed it and its version is
//!   higher than ours (persisted first, then applied); 400 malformed, 403
//!   not the operator's, 409 not newer.
//!
//! Both are reachable with an operator-role certificate, like
//! [`crate::status`]: the statement carries its own authority, the
//! operator's signature, whoever delivers it. [`sync_loop`] adopts a newer
//! one from any live member, so a validator down when it was issued
//! catches up. Applying it ([`State::apply_removal`]) takes the members
//! out of [`State::members`] (probes, votes, helpers, spares), refuses
//! their connections, and drops their per-peer metric series.
//!
//! **Removal after the operator's policy time** (decisions D40). A `PQVN`
//! statement of version 2 may set `dead_after_s`. A member dead that long
//! in our own detector's view is removed only on a certified removal
//! (`PQVZ`): a quorum of members ([`vault::membership::removal_quorum`]
//! with the largest `f` of the vaults' newest policies; a majority of the
//! members without a vault) each signing "dead in my own view for the
//! policy time" (`PQVT`). Member routes only:
//!
//! * `POST /v1/membership/vote`: `{"target", "version"}`; our signed vote
//!   if `target` has been dead in our own view for the policy time of
//!   statement `version`, which must be the one we hold (409 otherwise,
//!   403 without a policy time).
//! * `GET /v1/membership/certified`: the certified removals in force
//!   (a JSON list of hex strings).
//! * `POST /v1/membership/certified`: a certified removal; verified
//!   against our members, their certificate-bound identities and the
//!   quorum, ordered through the epoch log when it runs, persisted, then
//!   applied.
//!
//! [`sync_loop`] asks for votes on each member dead for the policy time,
//! sends a formed certificate to every live member, and takes the ones
//! peers hold (anti-entropy), so a validator down meanwhile catches up.

use crate::state::State;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vault::membership::{removal_quorum, CertifiedRemoval, MembershipError, Removal, RemovalVote};

/// Path of removal votes.
pub const VOTE_PATH: &str = "/v1/membership/vote";

/// Path of certified removals.
pub const CERTIFIED_PATH: &str = "/v1/membership/certified";

/// Outcomes of `pqvault_removal_votes_total`.
pub const VOTE_OUTCOMES: [&str; 6] = [
    "signed",
    "alive",
    "stale",
    "no_policy",
    "not_member",
    "malformed",
];

/// Outcomes of `pqvault_certified_removals_total`.
pub const CERTIFIED_OUTCOMES: [&str; 8] = [
    "adopted",
    "too_few",
    "stale",
    "no_policy",
    "not_member",
    "malformed",
    "not_ordered",
    "error",
];

/// Outcomes of `pqvault_removal_attempts_total`: our own attempts to
/// remove a member dead in our view for the policy time.
pub const ATTEMPT_OUTCOMES: [&str; 2] = ["certified", "too_few_votes"];

/// Path of the removal statement.
pub const MEMBERSHIP_PATH: &str = "/v1/membership";

/// Largest statement read (1024 ids of 63 bytes plus the signature).
pub const MAX_STATEMENT: usize = 128 << 10;

/// Why a statement was not adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// Malformed bytes.
    #[error("malformed membership removal: {0}")]
    Malformed(MembershipError),
    /// Not signed by the operator.
    #[error("membership removal not signed by the operator: {0}")]
    NotOperator(MembershipError),
    /// Our version is the same or higher.
    #[error("membership removal version {offered} is not above ours ({held})")]
    NotNewer {
        /// The statement's version.
        offered: u32,
        /// The version we hold.
        held: u32,
    },
    /// Storing it failed.
    #[error("storing the membership removal: {0}")]
    Store(String),
}

impl AdoptError {
    fn status(&self) -> StatusCode {
        match self {
            AdoptError::Malformed(_) => StatusCode::BAD_REQUEST,
            AdoptError::NotOperator(_) => StatusCode::FORBIDDEN,
            AdoptError::NotNewer { .. } => StatusCode::CONFLICT,
            AdoptError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Verifies `bytes` against the operator, persists it if newer than ours,
/// then applies it; returns the adopted statement.
pub fn adopt(state: &State, bytes: &[u8]) -> Result<Removal, AdoptError> {
    let r = {
        let mut store = state
            .store
            .lock()
            .map_err(|_| AdoptError::Store("poisoned".into()))?;
        let offered = Removal::open(bytes, &store.trusted()).map_err(|e| match e {
            MembershipError::Format(_) | MembershipError::Invalid(_) => AdoptError::Malformed(e),
            _ => AdoptError::NotOperator(e),
        })?;
        let held = store.removal().version;
        match store.adopt_removal(bytes) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(AdoptError::NotNewer {
                    offered: offered.version,
                    held,
                })
            }
            Err(e) => return Err(AdoptError::Store(e.to_string())),
        }
    };
    state.apply_removals();
    Ok(r)
}

/// A request for a removal vote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// The member to remove.
    pub target: String,
    /// The operator statement version the asker holds.
    pub version: u32,
}

/// Why we do not vote, with its metric outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRefusal {
    /// `pqvault_removal_votes_total` outcome.
    pub outcome: &'static str,
    /// Why, for the asker.
    pub reason: String,
}

/// Whether we vote to remove `target` under statement `version`: only if
/// we hold that very statement, it sets a policy time, `target` is a
/// member (not us) and our own detector has seen it dead for at least that
/// long. Pure: `dead_for` is our detector's answer for `target`.
pub fn judge_vote(
    statement: &Removal,
    me: &str,
    target_is_member: bool,
    req: &VoteRequest,
    dead_for: Option<Duration>,
) -> Result<(), VoteRefusal> {
    let refuse = |outcome, reason: String| Err(VoteRefusal { outcome, reason });
    if statement.dead_after_s == 0 {
        return refuse(
            "no_policy",
            "our membership statement sets no policy time".into(),
        );
    }
    if req.version != statement.version {
        return refuse(
            "stale",
            format!(
                "asked under statement {}, we hold {}",
                req.version, statement.version
            ),
        );
    }
    if req.target == me || !target_is_member {
        return refuse(
            "not_member",
            format!("{} is not a member we can remove", req.target),
        );
    }
    let need = Duration::from_secs(u64::from(statement.dead_after_s));
    match dead_for {
        Some(d) if d >= need => Ok(()),
        Some(d) => refuse(
            "alive",
            format!(
                "{} dead for {} s in our view, {} s needed",
                req.target,
                d.as_secs(),
                need.as_secs()
            ),
        ),
        None => refuse("alive", format!("{} is not dead in our view", req.target)),
    }
}

/// How long our own detector has seen `id` dead (a byzantine test build
/// told to lie claims a year).
fn dead_for(state: &State, id: &str) -> Option<Duration> {
    if crate::byzantine::claims_dead(id) {
        return Some(Duration::from_secs(366 * 24 * 3600));
    }
    state
        .detector
        .lock()
        .ok()
        .and_then(|d| d.dead_for(id, Instant::now()))
}

/// Signs our vote for `req` if we judge it so.
pub fn vote(state: &State, req: &VoteRequest) -> Result<Vec<u8>, VoteRefusal> {
    let statement = state
        .store
        .lock()
        .map(|s| s.removal().clone())
        .map_err(|_| VoteRefusal {
            outcome: "malformed",
            reason: "store poisoned".into(),
        })?;
    judge_vote(
        &statement,
        &state.id,
        state.is_member(&req.target),
        req,
        dead_for(state, &req.target),
    )?;
    RemovalVote::sign(&req.target, req.version, &state.id, &state.identity).map_err(|e| {
        VoteRefusal {
            outcome: "malformed",
            reason: e.to_string(),
        }
    })
}

/// Votes a certified removal needs now: over our members (the removed
/// excluded, ourselves included) with the largest `f` of the newest
/// policies of the vaults we hold (0 without a vault: a majority).
pub fn quorum_now(state: &State) -> usize {
    let f = state
        .store
        .lock()
        .map(|s| s.vaults().map(|(id, _)| s.policy(id).f).max().unwrap_or(0))
        .unwrap_or(0);
    removal_quorum(state.members().len() + 1, f)
}

/// Why a certified removal was not adopted.
#[derive(Debug, thiserror::Error)]
pub enum CertifiedError {
    /// Refused by the certificate check.
    #[error("certified removal refused: {0}")]
    Refused(MembershipError),
    /// We hold it (or one under a newer statement) already.
    #[error("certified removal of {0} already held")]
    Held(String),
    /// The epoch log did not commit it.
    #[error("certified removal not ordered by the epoch log: {0}")]
    NotOrdered(String),
    /// Storing it failed.
    #[error("storing the certified removal: {0}")]
    Store(String),
}

impl CertifiedError {
    fn outcome(&self) -> &'static str {
        match self {
            CertifiedError::Refused(MembershipError::TooFew { .. }) => "too_few",
            CertifiedError::Refused(MembershipError::Stale { .. }) => "stale",
            CertifiedError::Refused(MembershipError::NoPolicyTime) => "no_policy",
            CertifiedError::Refused(MembershipError::NotMember(_)) => "not_member",
            CertifiedError::Refused(_) => "malformed",
            CertifiedError::Held(_) => "held",
            CertifiedError::NotOrdered(_) => "not_ordered",
            CertifiedError::Store(_) => "error",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            CertifiedError::Refused(MembershipError::TooFew { .. })
            | CertifiedError::Refused(MembershipError::NoPolicyTime) => StatusCode::FORBIDDEN,
            CertifiedError::Refused(MembershipError::Stale { .. })
            | CertifiedError::Refused(MembershipError::NotMember(_))
            | CertifiedError::Held(_) => StatusCode::CONFLICT,
            CertifiedError::Refused(_) => StatusCode::BAD_REQUEST,
            CertifiedError::NotOrdered(_) => StatusCode::SERVICE_UNAVAILABLE,
            CertifiedError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Verifies a certified removal against our members, the identities their
/// certificates bind and the quorum; orders it through the epoch log when
/// it runs (the log orders, the certificate decides); persists it; then
/// applies it. Returns the removed member.
pub async fn adopt_certified(state: &Arc<State>, bytes: &[u8]) -> Result<String, CertifiedError> {
    let r = adopt_certified_inner(state, bytes).await;
    let outcome = match &r {
        Ok(_) => "adopted",
        Err(e) => e.outcome(),
    };
    if outcome != "held" {
        state
            .metrics
            .certified_removals
            .with_label_values(&[outcome])
            .inc();
    }
    r
}

async fn adopt_certified_inner(state: &Arc<State>, bytes: &[u8]) -> Result<String, CertifiedError> {
    let c = CertifiedRemoval::open(bytes).map_err(CertifiedError::Refused)?;
    let statement = state
        .store
        .lock()
        .map_err(|_| CertifiedError::Store("poisoned".into()))?
        .removal()
        .clone();
    let floor = c.base_version.max(statement.readmitted_at(&c.target));
    let held = |state: &State| {
        state
            .store
            .lock()
            .is_ok_and(|s| s.holds_certified_removal(&c.target, floor))
    };
    if held(state) {
        return Err(CertifiedError::Held(c.target));
    }
    // Our members now, with the identity each one's certificate binds
    // (fetched only for the voters; the others need none).
    let mut members: BTreeMap<String, Option<vault::identity::Fingerprint>> =
        state.members().into_iter().map(|m| (m.id, None)).collect();
    members.insert(
        state.id.clone(),
        Some(state.identity.public().fingerprint()),
    );
    for v in &c.votes {
        if v.voter != state.id && members.contains_key(&v.voter) {
            let fp = crate::rounds::identity_of(state, &v.voter)
                .await
                .ok()
                .map(|p| p.fingerprint());
            members.insert(v.voter.clone(), fp);
        }
    }
    let quorum = removal_quorum(members.len(), {
        state
            .store
            .lock()
            .map(|s| s.vaults().map(|(id, _)| s.policy(id).f).max().unwrap_or(0))
            .unwrap_or(0)
    });
    c.check(&statement, &members, quorum)
        .map_err(CertifiedError::Refused)?;
    if let Some(log) = state.consensus.get() {
        if !log.removal_ordered(&c.target, floor) {
            log.order_removal(crate::consensus::record::Removal {
                target: c.target.clone(),
                base_version: c.base_version,
                certificate: bytes.to_vec(),
            })
            .await
            .map_err(|e| CertifiedError::NotOrdered(e.to_string()))?;
        }
    }
    let adopted = state
        .store
        .lock()
        .map_err(|_| CertifiedError::Store("poisoned".into()))?
        .adopt_certified_removal(&c.target, c.base_version, bytes)
        .map_err(|e| CertifiedError::Store(e.to_string()))?;
    if !adopted {
        return Err(CertifiedError::Held(c.target));
    }
    tracing::info!(
        member = %c.target,
        version = c.base_version,
        votes = c.votes.len(),
        quorum,
        "member removed by certificate: dead for the operator's policy time"
    );
    state.apply_removals();
    Ok(c.target)
}

/// The member-only routes: removal votes and certified removals.
pub fn peer_routes() -> Router<Arc<State>> {
    Router::new()
        .route(VOTE_PATH, post(vote_route))
        .route(CERTIFIED_PATH, get(certified_held).post(certified_offered))
}

async fn vote_route(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    let count = |o: &str| state.metrics.removal_votes.with_label_values(&[o]).inc();
    let Ok(req) = serde_json::from_slice::<VoteRequest>(&body) else {
        count("malformed");
        state.count("membership_vote", 400);
        return (StatusCode::BAD_REQUEST, "not a removal vote request\n").into_response();
    };
    match vote(&state, &req) {
        Ok(v) => {
            count("signed");
            state.count("membership_vote", 200);
            tracing::info!(member = %req.target, version = req.version, "voted to remove a member dead for the policy time");
            v.into_response()
        }
        Err(r) => {
            count(r.outcome);
            let code = if r.outcome == "no_policy" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::CONFLICT
            };
            state.count("membership_vote", code.as_u16());
            tracing::debug!(member = %req.target, "refused a removal vote: {}", r.reason);
            (code, format!("{}\n", r.reason)).into_response()
        }
    }
}

async fn certified_held(AxState(state): AxState<Arc<State>>) -> Response {
    let list: Vec<String> = state
        .store
        .lock()
        .map(|s| s.certified_removals().iter().map(hex::encode).collect())
        .unwrap_or_default();
    state.count("membership_certified", 200);
    axum::Json(list).into_response()
}

async fn certified_offered(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    match adopt_certified(&state, &body).await {
        Ok(target) => {
            state.count("membership_certified", 200);
            format!("removed {target}\n").into_response()
        }
        Err(e) => {
            let code = e.status();
            state.count("membership_certified", code.as_u16());
            if !matches!(e, CertifiedError::Held(_)) {
                tracing::warn!("refused a certified removal: {e}");
            }
            (code, format!("{e}\n")).into_response()
        }
    }
}

/// The membership routes, for operator connections and members alike.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(MEMBERSHIP_PATH, get(held).post(offered))
        .with_state(state)
}

async fn held(AxState(state): AxState<Arc<State>>) -> Response {
    match state.store.lock().ok().and_then(|s| s.removal_bytes()) {
        Some(b) => {
            state.count("membership", 200);
            b.into_response()
        }
        None => {
            state.count("membership", 404);
            (StatusCode::NOT_FOUND, "no member removed\n").into_response()
        }
    }
}

async fn offered(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    if body.len() > MAX_STATEMENT {
        state.count("membership", 413);
        return (StatusCode::PAYLOAD_TOO_LARGE, "statement too large\n").into_response();
    }
    match adopt(&state, &body) {
        Ok(r) => {
            state.count("membership", 200);
            format!("adopted version {}\n", r.version).into_response()
        }
        Err(e) => {
            let code = e.status();
            state.count("membership", code.as_u16());
            tracing::warn!("refused a membership removal: {e}");
            (code, format!("{e}\n")).into_response()
        }
    }
}

/// Every `interval`, asks each live member for its removal statement and
/// adopts any newer than ours.
pub async fn sync_loop(state: Arc<State>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sync_once(&state).await;
    }
}

/// One pass of [`sync_loop`]: the operator's statement, then certified
/// removals (from the epoch log, then from peers), then our own votes,
/// then the epoch log's voters and learners.
pub async fn sync_once(state: &Arc<State>) {
    sync_statement(state).await;
    sync_certified(state).await;
    collect(state).await;
    if let Some(log) = state.consensus.get() {
        let removed = state.removed().into_iter().collect();
        log.follow_removals(&removed).await;
        log.follow_learners(&state.members()).await;
    }
}

/// Takes every certified removal the epoch log or a live member holds that
/// we do not.
async fn sync_certified(state: &Arc<State>) {
    // Without a policy time no certificate removes anyone: nothing to take.
    if state
        .store
        .lock()
        .map_or(true, |s| s.removal().dead_after_s == 0)
    {
        return;
    }
    if let Some(log) = state.consensus.get() {
        for r in log.ordered_removals() {
            if state.is_removed(&r.target) {
                continue;
            }
            match adopt_certified(state, &r.certificate).await {
                Ok(t) => {
                    tracing::info!(member = %t, "adopted a certified removal from the epoch log")
                }
                Err(CertifiedError::Held(_)) => {}
                Err(e) => tracing::debug!("epoch log removal not adopted: {e}"),
            }
        }
    }
    for m in state.alive_members() {
        let Ok(r) = state.client.get(&m, CERTIFIED_PATH, 8 << 20).await else {
            continue;
        };
        if r.status != 200 {
            continue;
        }
        let Ok(list) = serde_json::from_slice::<Vec<String>>(&r.body) else {
            tracing::warn!(peer = %m.id, "undecodable list of certified removals");
            continue;
        };
        for h in list.iter().take(vault::membership::MAX_REMOVED) {
            let Ok(bytes) = hex::decode(h) else { continue };
            let Ok(c) = CertifiedRemoval::open(&bytes) else {
                continue;
            };
            if state.is_removed(&c.target) {
                continue;
            }
            match adopt_certified(state, &bytes).await {
                Ok(t) => {
                    tracing::info!(peer = %m.id, member = %t, "adopted a certified removal from a peer")
                }
                Err(CertifiedError::Held(_)) => {}
                Err(e) => tracing::warn!(peer = %m.id, "{e}"),
            }
        }
    }
}

/// For each member dead in our own view for the policy time: our vote
/// plus each live member's, and, once they reach the quorum, the
/// certificate, adopted here and sent to every live member.
async fn collect(state: &Arc<State>) {
    let Ok(statement) = state.store.lock().map(|s| s.removal().clone()) else {
        return;
    };
    if statement.dead_after_s == 0 {
        return;
    }
    for target in state.members() {
        let req = VoteRequest {
            target: target.id.clone(),
            version: statement.version,
        };
        let Ok(mine) = vote(state, &req) else {
            continue;
        };
        let mut votes = vec![mine];
        let body = match serde_json::to_vec(&req) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let alive: Vec<_> = state
            .alive_members()
            .into_iter()
            .filter(|m| m.id != target.id)
            .collect();
        for m in &alive {
            let Ok(r) = state.ctl.post(m, VOTE_PATH, body.clone(), 64 << 10).await else {
                continue;
            };
            if r.status != 200 {
                continue;
            }
            match RemovalVote::open(&r.body) {
                Ok(v)
                    if v.voter == m.id
                        && v.target == req.target
                        && v.base_version == req.version =>
                {
                    votes.push(r.body.to_vec())
                }
                _ => {
                    tracing::warn!(peer = %m.id, "answered a removal vote request with another vote")
                }
            }
        }
        let quorum = quorum_now(state);
        let liar = crate::byzantine::claims_dead(&target.id);
        let attempt = if votes.len() < quorum {
            "too_few_votes"
        } else {
            "certified"
        };
        state
            .metrics
            .removal_attempts
            .with_label_values(&[attempt])
            .inc();
        if votes.len() < quorum && !liar {
            tracing::info!(member = %target.id, votes = votes.len(), quorum, "dead for the policy time in our view; not enough votes to remove it yet");
            continue;
        }
        let cert = CertifiedRemoval::encode(&target.id, statement.version, &votes);
        match adopt_certified(state, &cert).await {
            Ok(_) | Err(CertifiedError::Held(_)) => {}
            Err(e) if liar => tracing::warn!(
                "byzantine test build: sending a certified removal we refuse ourselves: {e}"
            ),
            Err(e) => {
                tracing::warn!(member = %target.id, "our own certified removal: {e}");
                continue;
            }
        }
        for m in &alive {
            match state
                .ctl
                .post(m, CERTIFIED_PATH, cert.clone(), 64 << 10)
                .await
            {
                Ok(r) if r.status == 200 || r.status == 409 => {}
                Ok(r) => {
                    tracing::info!(peer = %m.id, status = r.status, "certified removal not taken: {}", String::from_utf8_lossy(&r.body).trim())
                }
                Err(e) => tracing::debug!(peer = %m.id, "sending a certified removal: {e}"),
            }
        }
    }
}

/// Adopts a newer operator statement from any live member.
async fn sync_statement(state: &Arc<State>) {
    let alive = state.alive_members();
    for m in alive {
        let Ok(r) = state.client.get(&m, MEMBERSHIP_PATH, MAX_STATEMENT).await else {
            continue;
        };
        if r.status != 200 {
            continue;
        }
        match adopt(state, &r.body) {
            Ok(r) => {
                tracing::info!(peer = %m.id, version = r.version, "adopted a newer membership removal")
            }
            Err(AdoptError::NotNewer { .. }) => {}
            Err(e) => tracing::warn!(peer = %m.id, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(version: u32, dead_after_s: u32) -> Removal {
        Removal {
            version,
            dead_after_s,
            ..Default::default()
        }
    }

    fn req(target: &str, version: u32) -> VoteRequest {
        VoteRequest {
            target: target.into(),
            version,
        }
    }

    const D: Option<Duration> = Some(Duration::from_secs(10));

    #[test]
    fn a_member_dead_for_the_policy_time_gets_our_vote() {
        let s = statement(3, 10);
        assert_eq!(
            judge_vote(&s, "validator-1", true, &req("validator-5", 3), D),
            Ok(())
        );
    }

    #[test]
    fn a_member_alive_or_not_dead_long_enough_does_not() {
        let s = statement(3, 10);
        let r = req("validator-5", 3);
        // Alive (or suspect) in our view: it came back, or never died.
        assert_eq!(
            judge_vote(&s, "validator-1", true, &r, None)
                .unwrap_err()
                .outcome,
            "alive"
        );
        let short = Some(Duration::from_secs(9));
        assert_eq!(
            judge_vote(&s, "validator-1", true, &r, short)
                .unwrap_err()
                .outcome,
            "alive"
        );
    }

    #[test]
    fn another_statement_version_is_stale() {
        let s = statement(3, 10);
        for v in [2, 4] {
            assert_eq!(
                judge_vote(&s, "validator-1", true, &req("validator-5", v), D)
                    .unwrap_err()
                    .outcome,
                "stale"
            );
        }
    }

    #[test]
    fn no_policy_time_no_vote() {
        let s = statement(3, 0);
        assert_eq!(
            judge_vote(&s, "validator-1", true, &req("validator-5", 3), D)
                .unwrap_err()
                .outcome,
            "no_policy"
        );
    }

    #[test]
    fn only_other_members_can_be_voted_out() {
        let s = statement(3, 10);
        assert_eq!(
            judge_vote(&s, "validator-1", false, &req("validator-9", 3), D)
                .unwrap_err()
                .outcome,
            "not_member"
        );
        assert_eq!(
            judge_vote(&s, "validator-1", true, &req("validator-1", 3), D)
                .unwrap_err()
                .outcome,
            "not_member"
        );
    }

    #[test]
    fn outcome_labels_are_the_metrics() {
        for o in [
            "signed",
            "alive",
            "stale",
            "no_policy",
            "not_member",
            "malformed",
        ] {
            assert!(VOTE_OUTCOMES.contains(&o));
        }
        for e in [
            CertifiedError::Refused(MembershipError::NoPolicyTime),
            CertifiedError::NotOrdered("x".into()),
            CertifiedError::Store("x".into()),
        ] {
            assert!(CERTIFIED_OUTCOMES.contains(&e.outcome()));
        }
    }
}
