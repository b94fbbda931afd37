//! Prometheus metrics. Names follow Prometheus conventions with the
//! `pqvault_` prefix; labels are bounded (peer ids, fixed result names),
//! never user-supplied strings.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the validator exports.
pub struct Metrics {
    registry: Registry,
    /// Constant 1 with the build version.
    pub build_info: IntGaugeVec,
    /// Vaults this validator holds a shard of.
    pub shards_held: IntGauge,
    /// Current epoch per vault held.
    pub vault_epoch: IntGaugeVec,
    /// Inbound peer connections by result.
    pub peer_connections: IntCounterVec,
    /// Peer API requests by endpoint and status code.
    pub peer_requests: IntCounterVec,
    /// Seconds until our TLS certificate expires.
    pub cert_expiry: IntGauge,
    /// Health score per peer, in [0, 1].
    pub peer_health: GaugeVec,
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
    /// Repairs led by this validator, by outcome.
    pub repairs: IntCounterVec,
}

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
        let peer_requests = IntCounterVec::new(
            Opts::new(
                "pqvault_peer_requests_total",
                "Peer API requests by endpoint and status code.",
            ),
            &["endpoint", "code"],
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
        let repairs = IntCounterVec::new(
            Opts::new(
                "pqvault_repairs_total",
                "Repairs led by this validator, by outcome.",
            ),
            &["outcome"],
        )?;
        for c in [
            Box::new(build_info.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(shards_held.clone()),
            Box::new(vault_epoch.clone()),
            Box::new(peer_connections.clone()),
            Box::new(peer_requests.clone()),
            Box::new(cert_expiry.clone()),
            Box::new(peer_health.clone()),
            Box::new(peer_up.clone()),
            Box::new(probe_duration.clone()),
            Box::new(probes.clone()),
            Box::new(peer_state.clone()),
            Box::new(peer_deaths.clone()),
            Box::new(repairs.clone()),
        ] {
            registry.register(c)?;
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Metrics {
            registry,
            build_info,
            shards_held,
            vault_epoch,
            peer_connections,
            peer_requests,
            cert_expiry,
            peer_health,
            peer_up,
            probe_duration,
            probes,
            peer_state,
            peer_deaths,
            repairs,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
