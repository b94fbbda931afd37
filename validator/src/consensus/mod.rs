//! The replicated epoch log (DESIGN "Epochs, healing and agreement"): an
//! openraft cluster of the statically configured validators that decides,
//! per (vault, epoch left), which signed manifest is the next epoch, and
//! then records its certificate. The log carries public records only
//! ([`record`]); see docs/protocol.md "Replicated epoch log".
//!
//! - [`record`]: log entries, bounds, node ids and the openraft types.
//! - [`machine`]: the state machine (every proposal in commit order).
//! - [`valid`]: how a reader judges which of them is the decision (D52).
//! - [`storage`]: crash-safe files under `<data_dir>/raft/`.
//! - [`network`]: openraft's RPCs as POSTs over the mutual-TLS peer API.
//! - [`http`]: the peer API routes (`/v1/raft/...`).
//!
//! [`Consensus`] is the handle the daemon keeps in
//! [`crate::state::State::consensus`].

pub mod http;
pub mod machine;
pub mod network;
pub mod record;
pub mod storage;
pub mod valid;

use crate::config::{Config, Member};
use crate::peer::PeerClient;
use crate::retry::{Backoff, Loop, Retry};
use crate::state::State;
pub use machine::Decision;
use openraft::storage::Adaptor;
use openraft::{Raft, ServerState, SnapshotPolicy};
pub use record::{manifest_digest, node_id, Applied, Certified, PeerNode, Proposal, Record};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use storage::{LogStore, StoreError};
use thiserror::Error;
use vault::manifest::{VaultId, VerifiedManifest};

/// The openraft instance of the epoch log.
pub type EpochRaft = Raft<record::TypeConfig>;

/// Why a consensus operation failed.
#[derive(Debug, Error)]
pub enum ConsensusError {
    /// The on-disk log could not be opened or written.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The configuration cannot form a cluster.
    #[error("consensus configuration: {0}")]
    Config(String),
    /// The record breaks a bound.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// No leader is known (an election is under way, or no majority is up).
    #[error("no leader of the epoch log is known")]
    NoLeader,
    /// The leader could not be reached or refused the forwarded write.
    #[error("forwarding to leader {leader}: {reason}")]
    Forward {
        /// Leader's validator id.
        leader: String,
        /// What failed.
        reason: String,
    },
    /// openraft reported an error.
    #[error("raft: {0}")]
    Raft(String),
    /// The certificate was not recorded.
    #[error("certificate rejected: {0}")]
    CertificateRejected(String),
    /// The write was committed but answered with something unexpected.
    #[error("unexpected answer from the state machine: {0:?}")]
    Unexpected(Applied),
}

/// The result of [`Consensus::propose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalOutcome {
    /// This manifest is the decided one (also when an identical proposal,
    /// say a retry, was committed first). Carries its digest.
    Accepted([u8; 32]),
    /// Another manifest was decided first; carries its digest.
    AlreadyDecided([u8; 32]),
}

/// A node's view of the log, for operators and tests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Status {
    /// Our validator id.
    pub id: String,
    /// The leader's validator id, if known.
    pub leader: Option<String>,
    /// Current term.
    pub term: u64,
    /// Index of the last entry applied here.
    pub last_applied: Option<u64>,
    /// Decisions held by the state machine.
    pub decisions: usize,
}

/// Handle on the running epoch log.
pub struct Consensus {
    raft: EpochRaft,
    store: LogStore,
    me: String,
    node: u64,
    client: PeerClient,
    state: std::sync::Weak<State>,
    /// How long a write keeps retrying while no leader is known.
    patience: Duration,
    /// A fresh streak for each write, counted under `epoch_log_write`.
    write_retry: Retry,
    /// How long a decided successor stays uncertified before we refuse it
    /// (`[consensus] stalled_after_ms`).
    stalled_after: Duration,
    /// The static members (ourselves included), by node id: the voters a
    /// readmitted member returns to.
    statics: BTreeMap<u64, PeerNode>,
}

/// How a write waits while no leader is known: from 200 ms (the fixed wait
/// it had before) up to 1 s, well inside the patience of four election
/// timeouts.
pub const WRITE_BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));

/// openraft settings from `[consensus]`. Message sizes keep every RPC body
/// under the peer API's 4 MiB limit: at most two entries (each at most
/// [`record::MAX_MANIFEST`] bytes, hex-encoded) per append, snapshot chunks
/// of 256 KiB (at most 4 JSON characters per byte).
pub fn raft_config(c: &crate::config::ConsensusConfig) -> Result<openraft::Config, ConsensusError> {
    openraft::Config {
        cluster_name: "pqvault-epochs".into(),
        heartbeat_interval: c.heartbeat_ms,
        election_timeout_min: c.election_timeout_min_ms,
        election_timeout_max: c.election_timeout_max_ms,
        max_payload_entries: 2,
        snapshot_max_chunk_size: 256 << 10,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(256),
        max_in_snapshot_log_to_keep: 64,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ConsensusError::Config(e.to_string()))
}

/// The voters: ourselves plus the static members, by Raft node id.
/// Every node computes the same voter set from the same member list; the
/// address recorded for ourselves is our listen address, for the others
/// the configured one, so two nodes' maps may differ in those address
/// hints, never in who votes (which is what an initialization must agree on).
pub fn initial_members(
    me: &str,
    my_addr: &str,
    members: &[Member],
) -> Result<BTreeMap<u64, PeerNode>, ConsensusError> {
    let mut nodes = BTreeMap::new();
    let all = std::iter::once((me, my_addr)).chain(
        members
            .iter()
            .filter(|m| m.id != me)
            .map(|m| (m.id.as_str(), m.addr.as_str())),
    );
    for (id, addr) in all {
        let node = PeerNode {
            id: id.to_string(),
            addr: addr.to_string(),
        };
        if let Some(other) = nodes.insert(node_id(id), node) {
            if other.id != id {
                return Err(ConsensusError::Config(format!(
                    "validator ids {:?} and {id:?} map to the same raft node id",
                    other.id
                )));
            }
        }
    }
    Ok(nodes)
}

impl Consensus {
    /// Opens `<data_dir>/raft/`, starts the Raft node and, on the member
    /// with the lowest id (or on any member still uninitialized after three
    /// election timeouts), initializes the cluster with every static member
    /// as a voter. Needs static `[[members]]`: a node alone would elect
    /// itself.
    pub async fn start(
        state: &Arc<State>,
        config: &Config,
    ) -> Result<Arc<Consensus>, ConsensusError> {
        // Voters are static; a member known by discovery only joins as a
        // learner once a leader finds it, and never initializes a cluster
        // (a node alone would elect itself).
        let learner = config.members.is_empty();
        if learner && config.discovery.is_none() {
            return Err(ConsensusError::Config(
                "the epoch log needs static [[members]] (its voters) or [discovery] (to join \
                 as a learner)"
                    .into(),
            ));
        }
        let cfg = Arc::new(raft_config(&config.consensus)?);
        let nodes = initial_members(&config.id, &config.peer_listen.to_string(), &config.members)?;
        let store = LogStore::open(&config.data_dir)?;
        let (log, sm) = Adaptor::new(store.clone());
        let rpc_timeout = Duration::from_millis(config.consensus.election_timeout_min_ms.max(1000));
        // Raft's RPCs may be repeated, so they keep their connections: a
        // fresh mutual-TLS handshake per append was most of a log step.
        let client = PeerClient::new(state.tls.client.clone(), rpc_timeout).idempotent();
        let me = node_id(&config.id);
        let raft = Raft::new(
            me,
            cfg,
            network::Network::new(client, Arc::downgrade(state)),
            log,
            sm,
        )
        .await
        .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let election_max = Duration::from_millis(config.consensus.election_timeout_max_ms);
        let c = Arc::new(Consensus {
            raft: raft.clone(),
            store,
            me: config.id.clone(),
            node: me,
            client: PeerClient::new(
                state.tls.client.clone(),
                Duration::from_millis(config.heal.request_timeout_ms),
            ),
            state: Arc::downgrade(state),
            patience: election_max * 4,
            write_retry: Retry::new(&state.metrics, Loop::EpochLogWrite, WRITE_BACKOFF),
            stalled_after: Duration::from_millis(config.consensus.stalled_after_ms),
            statics: nodes.clone(),
        });
        if learner {
            tracing::info!(
                node = me,
                "epoch log started as a learner: no static voters here; a leader adds us"
            );
        } else {
            let lowest = nodes.values().map(|n| n.id.as_str()).min() == Some(config.id.as_str());
            tokio::spawn(initialize(raft.clone(), nodes, lowest, election_max));
            tracing::info!(node = me, "epoch log started");
        }
        tokio::spawn(export_metrics(raft, state.clone()));
        Ok(c)
    }

    /// The openraft instance (for the peer API handlers).
    pub fn raft(&self) -> &EpochRaft {
        &self.raft
    }

    /// True if this node is the leader now.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.node)
    }

    /// The leader's validator id, if known.
    pub fn leader(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.id.clone())
    }

    /// Our view of the log.
    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        Status {
            id: self.me.clone(),
            leader: self.leader(),
            term: m.current_term,
            last_applied: self.store.last_applied(),
            decisions: self.store.read(|s| s.len()),
        }
    }

    /// Proposes the next epoch's manifest; returns once the proposal (or a
    /// rival decided first) is committed. From a follower, the write is
    /// forwarded to the leader over the peer API.
    pub async fn propose(&self, p: Proposal) -> Result<ProposalOutcome, ConsensusError> {
        let mine = manifest_digest(&p.manifest);
        let (vault, from) = (p.vault, p.from_epoch);
        match self.write(Record::Proposal(p)).await? {
            Applied::Accepted { .. } | Applied::AlreadyDecided { .. } => {}
            other => return Err(ConsensusError::Unexpected(other)),
        }
        // The machine answers with the first proposal committed; what is
        // decided is the first that is a successor (D52). Ours is in the
        // log now; once it is applied here, judge.
        let applied = self
            .wait_until(self.patience, || {
                self.store
                    .read(|m| m.candidates(&vault, from).iter().any(|d| d.digest == mine))
                    .then_some(())
            })
            .await;
        if applied.is_none() {
            return Err(ConsensusError::Raft(
                "our committed proposal was not applied here in time".into(),
            ));
        }
        match self.decision(&vault, from) {
            Some(d) if d.digest == mine => Ok(ProposalOutcome::Accepted(mine)),
            Some(d) => Ok(ProposalOutcome::AlreadyDecided(d.digest)),
            None => Err(ConsensusError::Invalid(
                "our proposal is no successor of the epoch we hold".into(),
            )),
        }
    }

    /// Records the certificate of the decided proposal of (vault, from_epoch).
    pub async fn certify(&self, c: Certified) -> Result<(), ConsensusError> {
        match self.write(Record::Certified(c)).await? {
            Applied::Certified => Ok(()),
            Applied::CertificateRejected { reason } => {
                Err(ConsensusError::CertificateRejected(reason))
            }
            other => Err(ConsensusError::Unexpected(other)),
        }
    }

    /// The proposals of (vault, from_epoch) in commit order and the
    /// withdrawals of any of them, as applied here (unjudged).
    fn held(&self, vault: &VaultId, from_epoch: u64) -> (Vec<Decision>, Vec<record::Withdrawal>) {
        self.store.read(|m| {
            (
                m.candidates(vault, from_epoch)
                    .into_iter()
                    .cloned()
                    .collect(),
                m.withdrawals(vault, from_epoch)
                    .into_iter()
                    .cloned()
                    .collect(),
            )
        })
    }

    /// Orders a withdrawal of a stalled decision through the log (D53);
    /// returns once committed. Readers verify its refusals.
    pub async fn withdraw(&self, w: record::Withdrawal) -> Result<(), ConsensusError> {
        match self.write(Record::Withdrawal(w)).await? {
            Applied::WithdrawalOrdered => Ok(()),
            other => Err(ConsensusError::Unexpected(other)),
        }
    }

    /// Orders a certified removal through the log (the log orders, the
    /// certificate decides: every node verifies it before adopting it);
    /// returns once committed.
    pub async fn order_removal(&self, r: record::Removal) -> Result<(), ConsensusError> {
        match self.write(Record::Removal(r)).await? {
            Applied::RemovalOrdered => Ok(()),
            other => Err(ConsensusError::Unexpected(other)),
        }
    }

    /// True if the log here holds a certified removal of `target` made
    /// under statement `base` or a newer one.
    pub fn removal_ordered(&self, target: &str, base: u32) -> bool {
        self.store
            .read(|m| m.removal(target).is_some_and(|r| r.base_version >= base))
    }

    /// Every certified removal the log here holds.
    pub fn ordered_removals(&self) -> Vec<record::Removal> {
        self.store.read(|m| m.removals().cloned().collect())
    }

    /// The voters now, by validator id (as the membership config names them).
    pub fn voters(&self) -> BTreeSet<String> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        membership
            .voter_ids()
            .filter_map(|id| membership.get_node(&id).map(|n| n.id.clone()))
            .collect()
    }

    /// Makes the voter set follow the membership (decisions D40): on the
    /// leader, drops every removed voter and takes back a static member no
    /// longer removed, through openraft's joint consensus, so the log's
    /// majority is computed over the members that remain. One change per
    /// call; a follower, or a leader with a change under way, does nothing.
    pub async fn follow_removals(&self, removed: &BTreeSet<String>) {
        if !self.is_leader() || removed.contains(&self.me) {
            return;
        }
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let current: BTreeSet<u64> = membership.voter_ids().collect();
        let wanted: BTreeSet<u64> = self
            .statics
            .iter()
            .filter(|(_, n)| !removed.contains(&n.id))
            .map(|(id, _)| *id)
            .chain(current.iter().copied().filter(|id| {
                membership
                    .get_node(id)
                    .is_some_and(|n| !removed.contains(&n.id))
            }))
            .collect();
        if wanted == current || wanted.is_empty() || !wanted.contains(&self.node) {
            return;
        }
        for id in wanted.difference(&current) {
            if membership.get_node(id).is_some() {
                continue;
            }
            let Some(node) = self.statics.get(id) else {
                continue;
            };
            if let Err(e) = self.raft.add_learner(*id, node.clone(), false).await {
                tracing::warn!(member = %node.id, "epoch log: adding a readmitted voter: {e}");
                return;
            }
        }
        let names = |ids: &BTreeSet<u64>| {
            ids.iter()
                .map(|id| {
                    membership
                        .get_node(id)
                        .or_else(|| self.statics.get(id))
                        .map_or_else(|| id.to_string(), |n| n.id.clone())
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let (from, to) = (names(&current), names(&wanted));
        match self.raft.change_membership(wanted, false).await {
            Ok(_) => {
                tracing::info!(%from, %to, "epoch log voters changed to follow the membership")
            }
            Err(e) => tracing::info!(%from, %to, "epoch log voter change not made (retried): {e}"),
        }
    }

    /// Makes the learners follow the membership: on the leader, adds every
    /// current member that is no static voter (found by discovery, say) as
    /// a learner, so that it sees the log's decisions (a signer waits for
    /// them), and drops learners no longer members (removed). Learners
    /// never vote: a discovered member is only as trustworthy as the mesh
    /// certificate that admitted it, and the voters stay the operator's
    /// static list. One change per call; a follower does nothing.
    pub async fn follow_learners(&self, members: &[Member]) {
        if !self.is_leader() {
            return;
        }
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        for member in members {
            let id = node_id(&member.id);
            match membership.get_node(&id) {
                Some(n) if n.id == member.id => continue,
                Some(n) => {
                    tracing::warn!(member = %member.id, other = %n.id, "epoch log: node id taken by another validator; not added as a learner");
                    continue;
                }
                None => {}
            }
            let node = PeerNode {
                id: member.id.clone(),
                addr: member.addr.clone(),
            };
            match self.raft.add_learner(id, node, false).await {
                Ok(_) => tracing::info!(member = %member.id, "epoch log: added a learner"),
                Err(e) => {
                    tracing::info!(member = %member.id, "epoch log: learner not added (retried): {e}");
                    return;
                }
            }
        }
        let current: BTreeSet<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let gone: BTreeSet<u64> = membership
            .learner_ids()
            .filter(|id| {
                !self.statics.contains_key(id)
                    && membership
                        .get_node(id)
                        .is_some_and(|n| !current.contains(n.id.as_str()))
            })
            .collect();
        if gone.is_empty() {
            return;
        }
        match self
            .raft
            .change_membership(openraft::ChangeMembers::RemoveNodes(gone.clone()), false)
            .await
        {
            Ok(_) => {
                tracing::info!(learners = ?gone, "epoch log: dropped learners no longer members")
            }
            Err(e) => tracing::info!("epoch log: learners not dropped (retried): {e}"),
        }
    }

    /// What the log decided for (vault, from_epoch), as we judge it
    /// ([`valid`], decisions D52): the first proposal committed, in commit
    /// order, that is a successor of our epoch `from_epoch` written by one
    /// of its holders, with the first certificate committed for it that
    /// verifies (`certificate` is `None` while none does). Junk an insider
    /// wrote first, and a stalled proposal withdrawn on a quorum of
    /// refusals (D53), are passed over ([`valid::decision`]). A validator
    /// whose chain does not hold epoch `from_epoch` cannot judge and takes
    /// the first committed proposal with its first certificate, as before.
    pub fn decision(&self, vault: &VaultId, from_epoch: u64) -> Option<Decision> {
        match self.judge(vault, from_epoch) {
            Some((prev, f)) => self.decision_against(vault, from_epoch, &prev, f),
            None => self.held(vault, from_epoch).0.into_iter().next(),
        }
    }

    /// Like [`Consensus::decision`], judged against `prev`, the verified
    /// manifest of epoch `from_epoch` the caller holds some other way (a
    /// replacement adopting the vault holds it in its pending chain, not
    /// in its store), with up to `f` liars.
    pub fn decision_against(
        &self,
        vault: &VaultId,
        from_epoch: u64,
        prev: &VerifiedManifest,
        f: u8,
    ) -> Option<Decision> {
        if prev.body().vault_id != *vault || prev.body().epoch != from_epoch {
            return None;
        }
        let (candidates, withdrawals) = self.held(vault, from_epoch);
        valid::decision(prev, f, candidates, &withdrawals)
    }

    /// How long a decided successor must stay uncertified in our view
    /// before we refuse it (D53).
    pub fn stalled_after(&self) -> Duration {
        self.stalled_after
    }

    /// Judges a proposal before it is written ([`valid::successor`]):
    /// `Ok` if it is a successor of our epoch, or if we do not hold the
    /// epoch it leaves (the readers that do judge it then).
    pub fn judge_proposal(&self, p: &Proposal) -> Result<(), valid::Invalid> {
        match self.judge(&p.vault, p.from_epoch) {
            Some((prev, _)) => valid::successor(&prev, &p.manifest),
            None => Ok(()),
        }
    }

    /// Our verified manifest of epoch `from_epoch` of `vault` (ours, or an
    /// earlier one of our chain), with the number of liars its policy
    /// tolerates: what [`Consensus::decision`] judges against.
    fn judge(&self, vault: &VaultId, from_epoch: u64) -> Option<(VerifiedManifest, u8)> {
        let state = self.state.upgrade()?;
        let prev = {
            let store = state.store.lock().ok()?;
            let held = store.get(vault)?;
            // Our chain holds the epoch if it is ours or an earlier one
            // since our anchor (a validator that moved on still judges
            // what the log decided for the epochs it left).
            let anchor = vault::manifest::Manifest::decode(&held.anchor).ok()?;
            let k = from_epoch.checked_sub(anchor.body().epoch)?;
            let steps = held.steps.get(..usize::try_from(k).ok()?)?;
            store.verify_chain(&held.anchor, steps).ok()?
        };
        (prev.body().epoch == from_epoch).then(|| (prev, crate::proposals::rules(&state, vault).f))
    }

    /// Waits up to `timeout` until a proposal for (vault, from_epoch) has
    /// been applied here (a signer waiting for the leader's plan).
    pub async fn wait_applied(
        &self,
        vault: &VaultId,
        from_epoch: u64,
        timeout: Duration,
    ) -> Option<Decision> {
        self.wait_until(timeout, || self.decision(vault, from_epoch))
            .await
    }

    /// Waits up to `timeout` until the log holds a certified successor of
    /// (vault, from_epoch), judged against `prev` with up to `f` liars
    /// ([`Consensus::decision_against`]); gives its digest. Woken by each
    /// applied entry, so a holder committing the moment its log catches up
    /// does not wait for a poll.
    pub async fn wait_certified_against(
        &self,
        vault: &VaultId,
        from_epoch: u64,
        prev: &VerifiedManifest,
        f: u8,
        timeout: Duration,
    ) -> Option<[u8; 32]> {
        self.wait_until(timeout, || {
            self.decision_against(vault, from_epoch, prev, f)
                .and_then(|d| d.certificate.map(|_| d.digest))
        })
        .await
    }

    /// Waits up to `timeout` for `check` to answer `Some`, asking again
    /// each time an entry is applied here (and once more at the end).
    async fn wait_until<T>(&self, timeout: Duration, check: impl Fn() -> Option<T>) -> Option<T> {
        let mut rx = self.store.applied_watch();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if let Some(t) = check() {
                return Some(t);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return check(),
            }
        }
    }

    /// Commits `record` through the leader, retrying while no leader is
    /// known (an election) for a few election timeouts, with
    /// [`WRITE_BACKOFF`]; each failed attempt is counted (`crate::retry`).
    async fn write(&self, record: Record) -> Result<Applied, ConsensusError> {
        record.check().map_err(ConsensusError::Invalid)?;
        let deadline = Instant::now() + self.patience;
        let mut retry = self.write_retry.clone();
        loop {
            let err = match self.write_local(record.clone()).await {
                Ok(a) => return Ok(a),
                Err(WriteError::Forward(Some(leader))) => {
                    match self.forward(&leader, &record).await {
                        Ok(a) => return Ok(a),
                        Err(e) => e,
                    }
                }
                Err(WriteError::Forward(None)) => ConsensusError::NoLeader,
                Err(WriteError::Fatal(e)) => return Err(e),
            };
            let wait = retry.failed();
            if Instant::now() >= deadline {
                return Err(err);
            }
            tracing::debug!(
                failures = retry.failures(),
                next_try_ms = wait.as_millis() as u64,
                "epoch log write retried: {err}"
            );
            tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Commits `record` if we lead; never forwards (the peer API's
    /// `/v1/raft/propose` calls this, so a forward is one hop at most).
    pub async fn write_local(&self, record: Record) -> Result<Applied, WriteError> {
        record
            .check()
            .map_err(|e| WriteError::Fatal(ConsensusError::Invalid(e)))?;
        match self.raft.client_write(record).await {
            Ok(resp) => Ok(resp.data),
            Err(e) => match e.forward_to_leader::<PeerNode>() {
                Some(f) => Err(WriteError::Forward(f.leader_node.clone())),
                None => Err(WriteError::Fatal(ConsensusError::Raft(e.to_string()))),
            },
        }
    }

    async fn forward(&self, leader: &PeerNode, record: &Record) -> Result<Applied, ConsensusError> {
        let fail = |reason: String| ConsensusError::Forward {
            leader: leader.id.clone(),
            reason,
        };
        if leader.id == self.me {
            return Err(ConsensusError::NoLeader);
        }
        let body = serde_json::to_vec(record).map_err(|e| fail(e.to_string()))?;
        let member = network::dial(&self.state, leader);
        let r = self
            .client
            .post(&member, "/v1/raft/propose", body, 64 << 10)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if r.status != 200 {
            return Err(fail(format!(
                "status {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).trim()
            )));
        }
        serde_json::from_slice(&r.body).map_err(|e| fail(format!("undecodable answer: {e}")))
    }
}

/// Why [`Consensus::write_local`] did not commit.
#[derive(Debug)]
pub enum WriteError {
    /// We are not the leader; the leader if known.
    Forward(Option<PeerNode>),
    /// Anything else.
    Fatal(ConsensusError),
}

/// Initializes the cluster: at once on the lowest-id member, after three
/// election timeouts on the others if nobody reached them. openraft
/// refuses `initialize` on a node that has a log or a vote (after a
/// restart, or once a leader contacted it); identical initial memberships
/// make concurrent initializations safe.
async fn initialize(
    raft: EpochRaft,
    nodes: BTreeMap<u64, PeerNode>,
    lowest: bool,
    election_max: Duration,
) {
    if !lowest {
        tokio::time::sleep(election_max * 3).await;
    }
    match raft.is_initialized().await {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            tracing::error!("epoch log stopped: {e}");
            return;
        }
    }
    match raft.initialize(nodes).await {
        Ok(()) => tracing::info!("epoch log initialized with the static members as voters"),
        Err(e) => tracing::debug!("epoch log already initialized: {e}"),
    }
}

/// Mirrors openraft's metrics into Prometheus gauges.
async fn export_metrics(raft: EpochRaft, state: Arc<State>) {
    let mut rx = raft.metrics();
    let mut leader = None;
    loop {
        {
            let m = rx.borrow_and_update();
            if let Err(e) = &m.running_state {
                tracing::error!("epoch log stopped: {e}");
            }
            if m.current_leader != leader {
                leader = m.current_leader;
                let name = leader
                    .and_then(|id| m.membership_config.membership().get_node(&id))
                    .map(|n| n.id.clone());
                tracing::info!(term = m.current_term, leader = ?name, "epoch log leader changed");
            }
            let leader = m.state == ServerState::Leader;
            state.metrics.consensus_is_leader.set(i64::from(leader));
            state
                .metrics
                .consensus_term
                .set(i64::try_from(m.current_term).unwrap_or(i64::MAX));
            state.metrics.consensus_voters.set(
                i64::try_from(m.membership_config.membership().voter_ids().count()).unwrap_or(0),
            );
            state.metrics.consensus_learners.set(
                i64::try_from(m.membership_config.membership().learner_ids().count()).unwrap_or(0),
            );
            let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
            state
                .metrics
                .consensus_commit_index
                .set(i64::try_from(applied).unwrap_or(i64::MAX));
        }
        if rx.changed().await.is_err() {
            state.metrics.consensus_is_leader.set(0);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::record::TypeConfig;
    use super::*;
    use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
    use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    };

    /// A one-node cluster never sends an RPC: every call would fail.
    struct Alone;

    fn unreachable<E: std::error::Error>() -> RPCError<u64, PeerNode, E> {
        RPCError::Unreachable(Unreachable::new(&std::io::Error::other("one-node cluster")))
    }

    impl RaftNetworkFactory<TypeConfig> for Alone {
        type Network = Alone;
        async fn new_client(&mut self, _: u64, _: &PeerNode) -> Alone {
            Alone
        }
    }

    impl RaftNetwork<TypeConfig> for Alone {
        async fn append_entries(
            &mut self,
            _: AppendEntriesRequest<TypeConfig>,
            _: RPCOption,
        ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
            Err(unreachable())
        }
        async fn install_snapshot(
            &mut self,
            _: InstallSnapshotRequest<TypeConfig>,
            _: RPCOption,
        ) -> Result<
            InstallSnapshotResponse<u64>,
            RPCError<u64, PeerNode, RaftError<u64, InstallSnapshotError>>,
        > {
            Err(unreachable())
        }
        async fn vote(
            &mut self,
            _: VoteRequest<u64>,
            _: RPCOption,
        ) -> Result<VoteResponse<u64>, RPCError<u64, PeerNode, RaftError<u64>>> {
            Err(unreachable())
        }
    }

    async fn node(dir: &std::path::Path) -> (EpochRaft, LogStore) {
        let cfg = raft_config(&crate::config::ConsensusConfig {
            enabled: Some(true),
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            stalled_after_ms: 10_000,
        })
        .unwrap();
        let store = LogStore::open(dir).unwrap();
        let (log, sm) = Adaptor::new(store.clone());
        let raft = Raft::new(1, Arc::new(cfg), Alone, log, sm).await.unwrap();
        (raft, store)
    }

    fn proposal(manifest: &[u8]) -> Record {
        Record::Proposal(Proposal {
            vault: VaultId::from_bytes([9; 16]),
            from_epoch: 4,
            manifest: manifest.to_vec(),
        })
    }

    #[tokio::test]
    async fn initialize_is_harmless_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let members = BTreeMap::from([(
            1u64,
            PeerNode {
                id: "validator-1".into(),
                addr: "127.0.0.1:1".into(),
            },
        )]);
        let (raft, _) = node(dir.path()).await;
        raft.initialize(members.clone()).await.unwrap();
        let wait = Some(Duration::from_secs(10));
        raft.wait(wait)
            .state(ServerState::Leader, "leader")
            .await
            .unwrap();
        let a = raft.client_write(proposal(b"plan A")).await.unwrap().data;
        let digest = manifest_digest(b"plan A");
        assert_eq!(a, Applied::Accepted { digest });
        raft.shutdown().await.unwrap();

        let (raft, store) = node(dir.path()).await;
        assert!(raft.is_initialized().await.unwrap());
        assert!(
            raft.initialize(members).await.is_err(),
            "refused, not reset"
        );
        raft.wait(wait)
            .state(ServerState::Leader, "leader again")
            .await
            .unwrap();
        let b = raft.client_write(proposal(b"plan B")).await.unwrap().data;
        assert_eq!(b, Applied::AlreadyDecided { digest });
        let v = VaultId::from_bytes([9; 16]);
        assert_eq!(
            store.read(|m| m.get(&v, 4).map(|d| d.manifest.clone())),
            Some(b"plan A".to_vec())
        );
        raft.shutdown().await.unwrap();
    }

    #[test]
    fn node_ids_are_stable_and_members_complete() {
        // Pinned: changing the mapping would orphan every stored log.
        assert_eq!(node_id("validator-1"), node_id("validator-1"));
        assert_ne!(node_id("validator-1"), node_id("validator-2"));
        let members = vec![
            Member {
                id: "validator-2".into(),
                addr: "127.0.0.1:2".into(),
            },
            Member {
                id: "validator-1".into(),
                addr: "127.0.0.1:1".into(),
            },
        ];
        let a = initial_members("validator-1", "127.0.0.1:1", &members).unwrap();
        let b = initial_members("validator-2", "127.0.0.1:2", &members).unwrap();
        assert_eq!(a, b, "every member computes the same voters");
        assert_eq!(a.len(), 2);
    }
}
