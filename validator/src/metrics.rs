//! Prometheus metrics. Names follow Prometheus conventions with the
//! `pqvault_` prefix; labels are bounded (peer ids, fixed result names),
//! never user-supplied strings.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A counter with one label, every value of which is exported at 0 from
/// the start (so an alert on a rate sees the series before it first moves).
fn counter_with(
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = impl AsRef<str>>,
) -> prometheus::Result<IntCounterVec> {
    let counter = IntCounterVec::new(Opts::new(name, help), &[label])?;
    for v in values {
        counter.with_label_values(&[v.as_ref()]);
    }
    Ok(counter)
}

/// Every metric the validator exports.
pub struct Metrics {
    registry: Registry,
    /// Constant 1 with the build version.
    pub build_info: IntGaugeVec,
    /// Vaults this validator holds a shard of.
    pub shards_held: IntGauge,
    /// Epoch keys in the key ring (`crate::keyring`).
    pub epoch_keys: IntGauge,
    /// `pqvault_initial_key`: 1 while the initial KEM key is held.
    pub initial_key: IntGauge,
    /// 1 for this validator's current role ([`crate::role::Role`]).
    pub role: IntGaugeVec,
    /// Current epoch per vault held.
    pub vault_epoch: IntGaugeVec,
    /// Inbound peer connections by result.
    pub peer_connections: IntCounterVec,
    /// Connections closed on accept because their port was at its cap.
    pub connections_refused: IntCounterVec,
    /// Request bodies refused by the port's body limits, by reason.
    pub request_bodies_refused: IntCounterVec,
    /// Artifact requests refused because the manifest had expired.
    pub artifact_expired_requests: IntCounterVec,
    /// Partial artifacts abandoned (space released), by reason.
    pub artifacts_abandoned: IntCounterVec,
    /// Peer API requests by endpoint and status code.
    pub peer_requests: IntCounterVec,
    /// Seconds until our TLS certificate expires.
    pub cert_expiry: IntGauge,
    /// Health score per peer, in [0, 1].
    pub peer_health: GaugeVec,
    /// Each peer's wall clock minus ours, from its last probe answer
    /// (half the round trip allowed for): expiry of artifacts and of signed
    /// statements depends on clocks agreeing.
    pub clock_skew: GaugeVec,
    /// 1 if the last probe of a peer succeeded.
    pub peer_up: IntGaugeVec,
    /// Probe round-trip time per peer.
    pub probe_duration: HistogramVec,
    /// Probes by peer and result.
    pub probes: IntCounterVec,
    /// 1 for the failure detector's current state of each peer.
    pub peer_state: IntGaugeVec,
    /// Times each peer was declared dead.
    pub peer_deaths: IntCounterVec,
    /// 1 for each member we convicted of lying, 0 for the others.
    pub convicted: IntGaugeVec,
    /// Repairs led by this validator, by outcome.
    pub repairs: IntCounterVec,
    /// Inputs from members refused as misbehaviour, by reason
    /// ([`REFUSAL_REASONS`]): what a lying member tried.
    pub refusals: IntCounterVec,
    /// Operator recovery requests by outcome
    /// ([`crate::recovery::OUTCOMES`]).
    pub recovery_requests: IntCounterVec,
    /// Re-share dealings that failed the dealing check, by who the check
    /// named (`dealer`, `recipient` or `unknown`).
    pub bad_dealings: IntCounterVec,
    /// Disputes over one recipient's dealing-check values, by outcome.
    pub dealing_disputes: IntCounterVec,
    /// Successor requests the pre-sign exchange refused or convicted, by
    /// outcome (`crate::successor`).
    pub successor_conflicts: IntCounterVec,
    /// Stalled decisions of the epoch log refused and withdrawn, by outcome
    /// (`crate::withdraw`, D53).
    pub log_withdrawals: IntCounterVec,
    /// Certified attempts this validator led that failed and were aborted,
    /// by outcome (`certified`: a quorum signed the abort; `short`: fewer,
    /// so the votes wait for the attempt timeout).
    pub attempts_aborted: IntCounterVec,
    /// Custody checks by peer (our own id for our own shard) and result.
    pub custody_checks: IntCounterVec,
    /// Threshold t of the current epoch per vault held.
    pub vault_threshold: IntGaugeVec,
    /// Share count n of the current epoch per vault held.
    pub vault_shares: IntGaugeVec,
    /// Validators alive in our failure detector's view, ourselves included.
    pub peers_healthy: IntGauge,
    /// Lifeguard local health awareness (0 healthy; probe timeouts scale by it + 1).
    pub local_health: IntGauge,
    /// Shares of each vault whose holder is not alive (last settled view).
    pub heal_pending: IntGaugeVec,
    /// Unix time since which `heal_pending` has been above 0; 0 if it is 0.
    pub heal_pending_since: IntGaugeVec,
    /// Alive members holding no share of each vault (last settled view).
    pub heal_spares: IntGaugeVec,
    /// Artifacts (name and version) held fully verified.
    pub artifacts_held: IntGauge,
    /// Verified artifact payload bytes received from peers.
    pub artifact_bytes_replicated: IntCounter,
    /// Artifact verification failures by reason.
    pub artifact_verification_failures: IntCounterVec,
    /// Seconds from first learning of an artifact's newest version until it
    /// was verified here (0 when current).
    pub artifact_replication_lag: GaugeVec,
    /// 1 while this validator leads the epoch log.
    pub consensus_is_leader: IntGauge,
    /// Current term of the epoch log.
    pub consensus_term: IntGauge,
    /// Highest epoch-log index committed and applied here.
    pub consensus_commit_index: IntGauge,
    /// `pqvault_consensus_voters`.
    pub consensus_voters: IntGauge,
    /// `pqvault_consensus_learners`.
    pub consensus_learners: IntGauge,
    /// `pqvault_removal_votes_total{outcome}`.
    pub removal_votes: IntCounterVec,
    /// `pqvault_certified_removals_total{outcome}`.
    pub certified_removals: IntCounterVec,
    /// `pqvault_removal_attempts_total{outcome}`.
    pub removal_attempts: IntCounterVec,
    /// Failed attempts of each retry loop ([`crate::retry::Loop`]).
    pub retry_failures: IntCounterVec,
    /// Failures in a row of each long-lived retry loop (0 after a success).
    pub retry_consecutive_failures: IntGaugeVec,
}

/// Reasons `pqvault_artifact_verification_failures_total` is labelled with
/// (those of `vault::artifact::ArtifactError::reason`).
pub const ARTIFACT_FAILURE_REASONS: [&str; 9] = [
    "signature",
    "digest",
    "chunk",
    "policy",
    "rollback",
    "expired",
    "metadata",
    "golden",
    "format",
];

/// Every `reason` label of `pqvault_transition_refusals_total`.
pub const REFUSAL_REASONS: &[&str] = &[
    "identity_mismatch",
    "uncertified",
    "bad_certificate",
    "stale",
    "plan_mismatch",
    "replacement_reused",
    "vote_refused",
    "policy",
    "aborted",
    "abort_refused",
    "proposer_convicted",
    "no_part",
];

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("pqvault_build_info", "Build information; always 1."),
            &["version"],
        )?;
        let shards_held = IntGauge::new(
            "pqvault_shards_held",
            "Vaults this validator holds a shard of.",
        )?;
        let epoch_keys = IntGauge::new(
            "pqvault_epoch_keys",
            "Epoch KEM keys this validator holds: one per vault for its current epoch (from epoch 2 on), plus one while it prepares the next; keys of earlier epochs are erased at commit.",
        )?;
        let initial_key = IntGauge::new(
            "pqvault_initial_key",
            "1 while this validator holds its initial KEM key (from `vault keygen`; genesis shards are sealed to it), erased once no vault it holds is at an epoch-1 shard sealed to it and one has moved past epoch 1.",
        )?;
        let role = IntGaugeVec::new(
            Opts::new(
                "pqvault_role",
                "1 for this validator's current role: holder (a share at the newest epoch), spare (no share), stale (a share of an epoch older than f+1 peers report), syncing (no member answered yet).",
            ),
            &["role"],
        )?;
        for r in crate::role::Role::ALL {
            role.with_label_values(&[r.name()]);
        }
        let vault_epoch = IntGaugeVec::new(
            Opts::new("pqvault_vault_epoch", "Current epoch of each vault held."),
            &["vault"],
        )?;
        let peer_connections = IntCounterVec::new(
            Opts::new(
                "pqvault_peer_connections_total",
                "Inbound peer connections by result.",
            ),
            &["result"],
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "pqvault_connections_refused_total",
                "Connections closed on accept because the port's connection cap was reached.",
            ),
            &["port"],
        )?;
        let request_bodies_refused = IntCounterVec::new(
            Opts::new(
                "pqvault_request_bodies_refused_total",
                "Request bodies refused by the port's body limits (validator::bodies), by reason: too_large, budget (none free before the body timeout), timeout (not sent in time), broken.",
            ),
            &["port", "reason"],
        )?;
        let artifact_expired_requests = IntCounterVec::new(
            Opts::new(
                "pqvault_artifact_expired_requests_total",
                "Artifact requests refused because the artifact's signed manifest had expired, by API (app, peer).",
            ),
            &["api"],
        )?;
        let artifacts_abandoned = IntCounterVec::new(
            Opts::new(
                "pqvault_artifacts_abandoned_total",
                "Partial artifacts abandoned and their space released, by reason (stalled: no verified chunk for artifacts.abandon_after_secs; publisher: a statement signed by its publisher).",
            ),
            &["reason"],
        )?;
        let peer_requests = IntCounterVec::new(
            Opts::new(
                "pqvault_peer_requests_total",
                "Peer API requests by endpoint and status code.",
            ),
            &["endpoint", "code"],
        )?;
        let clock_skew = GaugeVec::new(
            Opts::new(
                "pqvault_peer_clock_skew_seconds",
                "Each peer's wall clock minus ours at its last probe answer, in seconds.",
            ),
            &["peer"],
        )?;
        let cert_expiry = IntGauge::new(
            "pqvault_tls_certificate_expiry_seconds",
            "Seconds until this validator's TLS certificate expires.",
        )?;
        let peer_health = GaugeVec::new(
            Opts::new(
                "pqvault_peer_health_score",
                "Health score of each peer, 0 to 1.",
            ),
            &["peer"],
        )?;
        let peer_up = IntGaugeVec::new(
            Opts::new(
                "pqvault_peer_up",
                "1 if the last probe of the peer succeeded.",
            ),
            &["peer"],
        )?;
        let probe_duration = HistogramVec::new(
            HistogramOpts::new(
                "pqvault_probe_duration_seconds",
                "Probe round-trip time per peer.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["peer"],
        )?;
        let probes = IntCounterVec::new(
            Opts::new("pqvault_probes_total", "Probes by peer and result."),
            &["peer", "result"],
        )?;
        let peer_state = IntGaugeVec::new(
            Opts::new(
                "pqvault_peer_state",
                "1 for the failure detector's current state of each peer (alive, suspect, dead).",
            ),
            &["peer", "state"],
        )?;
        let peer_deaths = IntCounterVec::new(
            Opts::new(
                "pqvault_peer_deaths_total",
                "Times each peer was declared dead.",
            ),
            &["peer"],
        )?;
        let convicted = IntGaugeVec::new(
            Opts::new(
                "pqvault_convicted_members",
                "1 for each member this validator convicted of lying (0 for the others), with proof: a re-share dealer named by its own signature over a bad point, or a recipient shown lying by its reveal (D48), or a leader that asked two different successors of one proposal (D49). Its share counts as lost and its proposals get no vote. Kept until the member is removed, or until a restart after a later epoch committed.",
            ),
            &["peer"],
        )?;
        let custody_checks = IntCounterVec::new(
            Opts::new(
                "pqvault_custody_checks_total",
                "Custody checks of held shards by peer (own id: our own disk) and result.",
            ),
            &["peer", "result"],
        )?;
        let repairs = IntCounterVec::new(
            Opts::new(
                "pqvault_repairs_total",
                "Repairs led by this validator, by outcome.",
            ),
            &["outcome"],
        )?;
        let refusals = counter_with(
            "pqvault_transition_refusals_total",
            "Inputs from members refused as misbehaviour (a member lying, replaying or acting without a certified proposal), by reason.",
            "reason",
            REFUSAL_REASONS,
        )?;
        let recovery_requests = counter_with(
            "pqvault_recovery_requests_total",
            "Recovery requests (POST /v1/vaults/{vault}/recover) by outcome: served, or why refused (not_operator, malformed, too_large, untrusted_signer, bad_signature, stale, unknown_vault, wrong_epoch, replay, error).",
            "outcome",
            crate::recovery::OUTCOMES,
        )?;
        let bad_dealings = counter_with(
            "pqvault_bad_dealings_total",
            "Re-share dealings that failed the dealing check before any epoch was deleted, by who the check named (dealer, recipient, unknown); recipient also counts a recipient seen withholding its new share.",
            "culprit",
            ["dealer", "recipient", "unknown"],
        )?;
        let dealing_disputes = counter_with(
            "pqvault_dealing_disputes_total",
            "Disputes over one recipient's dealing-check values settled from its signed sub-shares, by outcome (dealer: a dealer signed a bad point; recipient: the recipient lied; unsettled: no reveal, or several dealers).",
            "outcome",
            ["dealer", "recipient", "unsettled"],
        )?;
        let successor_conflicts = counter_with(
            "pqvault_successor_conflicts_total",
            "Successor signatures the pre-sign exchange held back, by outcome (convicted: a requester asked two different successors of one proposal; signed_elsewhere: another holder signed another copy, which is finished instead; asked_elsewhere: another copy of the same proposal's successor was asked; two_signed: two copies carry holders' signatures).",
            "outcome",
            [
            "convicted",
            "signed_elsewhere",
            "asked_elsewhere",
            "two_signed",
        ],
        )?;
        let log_withdrawals = counter_with(
            "pqvault_epoch_log_withdrawals_total",
            "Decided successors of the epoch log that stayed uncertified (D53), by outcome (refused: this holder signed a refusal and will never sign it; withdrawn: as leader, this validator wrote a withdrawal with a quorum of refusals; short: as leader, it gathered fewer refusals than a quorum).",
            "outcome",
            ["refused", "withdrawn", "short"],
        )?;
        let attempts_aborted = counter_with(
            "pqvault_attempts_aborted_total",
            "Certified transition attempts this validator led that failed and were aborted, by outcome (certified: a quorum of holders signed the abort and the next attempt need not wait; short: fewer signed).",
            "outcome",
            ["certified", "short"],
        )?;
        let vault_threshold = IntGaugeVec::new(
            Opts::new(
                "pqvault_vault_threshold",
                "Threshold t of the current epoch of each vault held.",
            ),
            &["vault"],
        )?;
        let vault_shares = IntGaugeVec::new(
            Opts::new(
                "pqvault_vault_shares",
                "Share count n of the current epoch of each vault held.",
            ),
            &["vault"],
        )?;
        let peers_healthy = IntGauge::new(
            "pqvault_peers_healthy",
            "Validators alive in this validator's failure detector, itself included.",
        )?;
        let local_health = IntGauge::new(
            "pqvault_local_health_awareness",
            "Lifeguard local health awareness of this validator: 0 is healthy; its probe timeout is multiplied by this plus one.",
        )?;
        let heal_pending = IntGaugeVec::new(
            Opts::new(
                "pqvault_heal_pending",
                "Shares of each vault whose holder is not alive, as of the last settled view.",
            ),
            &["vault"],
        )?;
        let heal_pending_since = IntGaugeVec::new(
            Opts::new(
                "pqvault_heal_pending_since_timestamp_seconds",
                "Unix time since which pqvault_heal_pending has been above 0; 0 when it is 0.",
            ),
            &["vault"],
        )?;
        let heal_spares = IntGaugeVec::new(
            Opts::new(
                "pqvault_heal_spares",
                "Alive members holding no share of each vault, as of the last settled view.",
            ),
            &["vault"],
        )?;
        let artifacts_held = IntGauge::new(
            "pqvault_artifacts_held",
            "Artifacts (name and version) held fully verified.",
        )?;
        let artifact_bytes_replicated = IntCounter::new(
            "pqvault_artifact_bytes_replicated_total",
            "Verified artifact payload bytes received from peers.",
        )?;
        let artifact_verification_failures = IntCounterVec::new(
            Opts::new(
                "pqvault_artifact_verification_failures_total",
                "Artifact verification failures by reason.",
            ),
            &["reason"],
        )?;
        let artifact_replication_lag = GaugeVec::new(
            Opts::new(
                "pqvault_artifact_replication_lag_seconds",
                "Seconds from first learning of the newest version of an artifact until it was verified here; 0 when current.",
            ),
            &["artifact"],
        )?;
        let consensus_is_leader = IntGauge::new(
            "pqvault_consensus_is_leader",
            "1 while this validator leads the replicated epoch log.",
        )?;
        let consensus_term = IntGauge::new(
            "pqvault_consensus_term",
            "Current term of the replicated epoch log.",
        )?;
        let consensus_voters = IntGauge::new(
            "pqvault_consensus_voters",
            "Voters of the replicated epoch log as this validator last saw its membership (removed members are dropped by the leader).",
        )?;
        let consensus_learners = IntGauge::new(
            "pqvault_consensus_learners",
            "Learners of the replicated epoch log (members found by discovery: they receive the log, never vote) as this validator last saw its membership.",
        )?;
        let removal_votes = IntCounterVec::new(
            Opts::new(
                "pqvault_removal_votes_total",
                "Requests to vote for removing a dead member after the operator's policy time, by outcome: signed, or why refused (alive: not dead for the policy time in our own view; stale: another statement version; no_policy; not_member; malformed).",
            ),
            &["outcome"],
        )?;
        let certified_removals = IntCounterVec::new(
            Opts::new(
                "pqvault_certified_removals_total",
                "Certified removals of dead members offered to this validator, by outcome: adopted, or why refused (too_few valid votes, stale, no_policy, not_member, malformed, not_ordered, error).",
            ),
            &["outcome"],
        )?;
        let removal_attempts = counter_with(
            "pqvault_removal_attempts_total",
            "This validator's own attempts to remove a member dead in its view for the operator's policy time, by outcome: certified (a quorum's votes gathered), or too_few_votes (the others still see it alive, or cannot be reached).",
            "outcome",
            crate::membership::ATTEMPT_OUTCOMES,
        )?;
        for o in crate::membership::VOTE_OUTCOMES {
            removal_votes.with_label_values(&[o]);
        }
        for o in crate::membership::CERTIFIED_OUTCOMES {
            certified_removals.with_label_values(&[o]);
        }
        let consensus_commit_index = IntGauge::new(
            "pqvault_consensus_commit_index",
            "Highest epoch-log index committed and applied here.",
        )?;
        let retry_failures = IntCounterVec::new(
            Opts::new(
                "pqvault_retry_failures_total",
                "Failed attempts of each retry loop (heal, discovery, artifact_sync, round_delivery, epoch_log_write, accept_*); each failure is followed by a capped, jittered exponential backoff.",
            ),
            &["loop"],
        )?;
        let retry_consecutive_failures = IntGaugeVec::new(
            Opts::new(
                "pqvault_retry_consecutive_failures",
                "Failures in a row of each long-lived retry loop; 0 after a success.",
            ),
            &["loop"],
        )?;
        for r in ARTIFACT_FAILURE_REASONS {
            artifact_verification_failures.with_label_values(&[r]);
        }
        for c in [
            Box::new(build_info.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(shards_held.clone()),
            Box::new(epoch_keys.clone()),
            Box::new(initial_key.clone()),
            Box::new(role.clone()),
            Box::new(vault_epoch.clone()),
            Box::new(peer_connections.clone()),
            Box::new(connections_refused.clone()),
            Box::new(request_bodies_refused.clone()),
            Box::new(artifact_expired_requests.clone()),
            Box::new(artifacts_abandoned.clone()),
            Box::new(peer_requests.clone()),
            Box::new(cert_expiry.clone()),
            Box::new(clock_skew.clone()),
            Box::new(peer_health.clone()),
            Box::new(peer_up.clone()),
            Box::new(probe_duration.clone()),
            Box::new(probes.clone()),
            Box::new(peer_state.clone()),
            Box::new(peer_deaths.clone()),
            Box::new(convicted.clone()),
            Box::new(repairs.clone()),
            Box::new(refusals.clone()),
            Box::new(recovery_requests.clone()),
            Box::new(bad_dealings.clone()),
            Box::new(dealing_disputes.clone()),
            Box::new(successor_conflicts.clone()),
            Box::new(log_withdrawals.clone()),
            Box::new(attempts_aborted.clone()),
            Box::new(custody_checks.clone()),
            Box::new(vault_threshold.clone()),
            Box::new(vault_shares.clone()),
            Box::new(peers_healthy.clone()),
            Box::new(local_health.clone()),
            Box::new(heal_pending.clone()),
            Box::new(heal_pending_since.clone()),
            Box::new(heal_spares.clone()),
            Box::new(artifacts_held.clone()),
            Box::new(artifact_bytes_replicated.clone()),
            Box::new(artifact_verification_failures.clone()),
            Box::new(artifact_replication_lag.clone()),
            Box::new(consensus_is_leader.clone()),
            Box::new(consensus_term.clone()),
            Box::new(consensus_commit_index.clone()),
            Box::new(consensus_voters.clone()),
            Box::new(consensus_learners.clone()),
            Box::new(removal_votes.clone()),
            Box::new(certified_removals.clone()),
            Box::new(removal_attempts.clone()),
            Box::new(retry_failures.clone()),
            Box::new(retry_consecutive_failures.clone()),
        ] {
            registry.register(c)?;
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Fixed label values are exported from the start, so dashboards and
        // alerts see 0 rather than nothing.
        for result in [
            "accepted",
            "operator",
            "not_member",
            "tls_refused",
            "tls_timeout",
        ] {
            peer_connections.with_label_values(&[result]);
        }
        for port in ["peer", "ops", "app"] {
            connections_refused.with_label_values(&[port]);
        }
        for reason in ["too_large", "budget", "timeout", "broken"] {
            request_bodies_refused.with_label_values(&["peer", reason]);
        }
        for api in ["app", "peer"] {
            artifact_expired_requests.with_label_values(&[api]);
        }
        for reason in ["stalled", "publisher"] {
            artifacts_abandoned.with_label_values(&[reason]);
        }
        for outcome in ["completed", "failed", "helper_disputes"] {
            repairs.with_label_values(&[outcome]);
        }
        for lp in crate::retry::Loop::ALL {
            retry_failures.with_label_values(&[lp.name()]);
            if lp.runs_forever() {
                retry_consecutive_failures.with_label_values(&[lp.name()]);
            }
        }
        Ok(Metrics {
            registry,
            build_info,
            shards_held,
            epoch_keys,
            initial_key,
            role,
            vault_epoch,
            peer_connections,
            connections_refused,
            request_bodies_refused,
            artifact_expired_requests,
            artifacts_abandoned,
            peer_requests,
            cert_expiry,
            clock_skew,
            peer_health,
            peer_up,
            probe_duration,
            probes,
            peer_state,
            peer_deaths,
            convicted,
            repairs,
            refusals,
            recovery_requests,
            bad_dealings,
            dealing_disputes,
            successor_conflicts,
            log_withdrawals,
            attempts_aborted,
            custody_checks,
            vault_threshold,
            vault_shares,
            peers_healthy,
            local_health,
            heal_pending,
            heal_pending_since,
            heal_spares,
            artifacts_held,
            artifact_bytes_replicated,
            artifact_verification_failures,
            artifact_replication_lag,
            consensus_is_leader,
            consensus_term,
            consensus_commit_index,
            consensus_voters,
            consensus_learners,
            removal_votes,
            certified_removals,
            removal_attempts,
            retry_failures,
            retry_consecutive_failures,
        })
    }

    /// Sets `pqvault_role`: 1 for `current`, 0 for the other roles.
    pub fn set_role(&self, current: crate::role::Role) {
        for r in crate::role::Role::ALL {
            self.role
                .with_label_values(&[r.name()])
                .set(i64::from(r == current));
        }
    }

    /// Drops every series labelled with peer `peer` (the operator removed
    /// it), so that alerts on it clear; a series never exported is no error.
    pub fn remove_peer(&self, peer: &str) {
        for g in [&self.peer_health, &self.clock_skew] {
            let _ = g.remove_label_values(&[peer]);
        }
        let _ = self.peer_up.remove_label_values(&[peer]);
        let _ = self.peer_deaths.remove_label_values(&[peer]);
        let _ = self.convicted.remove_label_values(&[peer]);
        let _ = self.probe_duration.remove_label_values(&[peer]);
        for s in mesh_agent::detector::State::ALL {
            let _ = self.peer_state.remove_label_values(&[peer, s.name()]);
        }
        for result in ["ok", "failed"] {
            let _ = self.probes.remove_label_values(&[peer, result]);
        }
        for result in ["ok", "other_epoch", "mismatch", "missing", "no_answer"] {
            let _ = self.custody_checks.remove_label_values(&[peer, result]);
        }
    }

    /// Exports peer `peer`'s counters at 0 (deaths, probes by result) and
    /// its conviction gauge at 0, so they appear before the first death,
    /// failed probe or conviction.
    pub fn init_peer(&self, peer: &str) {
        self.peer_deaths.with_label_values(&[peer]);
        self.convicted.with_label_values(&[peer]);
        for result in ["ok", "failed"] {
            self.probes.with_label_values(&[peer, result]);
        }
    }

    /// Sets vault `id`'s (t, n) from its current manifest (already
    /// verified by the store) and exports its healing series, at 0 until
    /// a healing pass sets them, from the first scrape.
    pub fn set_vault(&self, id: &str, manifest: &[u8]) {
        let labels = [id];
        if let Ok(m) = vault::manifest::Manifest::decode(manifest) {
            let b = m.body();
            self.vault_threshold
                .with_label_values(&labels)
                .set(i64::from(b.threshold));
            self.vault_shares
                .with_label_values(&labels)
                .set(i64::from(b.n));
        }
        for g in [
            &self.heal_pending,
            &self.heal_pending_since,
            &self.heal_spares,
        ] {
            g.with_label_values(&labels);
        }
    }

    /// Records what a settled healing view saw of `vault`: shares whose
    /// holder is not alive and spare members; dates the start of a
    /// non-zero pending count.
    pub fn set_heal(&self, vault: &str, pending: usize, spares: usize) {
        let labels = [vault];
        self.heal_pending
            .with_label_values(&labels)
            .set(pending as i64);
        self.heal_spares
            .with_label_values(&labels)
            .set(spares as i64);
        let since = self.heal_pending_since.with_label_values(&labels);
        if pending == 0 {
            since.set(0);
        } else if since.get() == 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            since.set(now);
        }
    }

    /// Counts a dealing that failed its check, by who it named.
    pub fn bad_dealing(&self, culprit: &str) {
        self.bad_dealings.with_label_values(&[culprit]).inc();
    }

    /// Counts a settled (or unsettled) dispute over a recipient's values.
    pub fn dispute(&self, outcome: vault::dealing::Settlement) {
        let label = match outcome {
            vault::dealing::Settlement::Dealer(_) => "dealer",
            vault::dealing::Settlement::Recipient => "recipient",
            vault::dealing::Settlement::Unsettled => "unsettled",
        };
        self.dealing_disputes.with_label_values(&[label]).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
