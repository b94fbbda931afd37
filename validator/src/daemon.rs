//! The running validator: shared state, start-up, and the probe loop.

use crate::config::{Config, Member};
use crate::metrics::Metrics;
use crate::peer::PeerClient;
use crate::store::Store;
use crate::tls::{self, MeshTls};
use anyhow::{Context, Result};
use mesh_agent::health::{HealthConfig, PeerHealth};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vault::identity::{PublicIdentity, SecretIdentity};

/// Everything the handlers and background tasks share.
pub struct State {
    /// Our validator id.
    pub id: String,
    /// Our identity (KEM and signing keys).
    pub identity: Arc<SecretIdentity>,
    /// Shard custody.
    pub store: Mutex<Store>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// TLS configurations.
    pub tls: MeshTls,
    /// Other members.
    pub members: Vec<Member>,
    /// Per-peer health.
    pub health: Mutex<BTreeMap<String, PeerHealth>>,
    /// Set once the store is verified and the peer port listens.
    pub ready: AtomicBool,
}

impl State {
    /// True if `id` may use the peer API.
    pub fn is_member(&self, id: &str) -> bool {
        self.members.iter().any(|m| m.id == id)
    }

    /// Counts an inbound connection by result.
    pub fn connection(&self, result: &str) {
        self.metrics
            .peer_connections
            .with_label_values(&[result])
            .inc();
    }

    /// Counts a peer API request.
    pub fn count(&self, endpoint: &str, code: u16) {
        self.metrics
            .peer_requests
            .with_label_values(&[endpoint, &code.to_string()])
            .inc();
    }

    /// Updates gauges derived from state before a scrape.
    pub fn refresh_gauges(&self) {
        if let Ok(store) = self.store.lock() {
            self.metrics.shards_held.set(store.vaults().count() as i64);
            for (id, h) in store.vaults() {
                self.metrics
                    .vault_epoch
                    .with_label_values(&[&id.to_string()])
                    .set(h.epoch as i64);
            }
        }
        if let Ok(secs) = vault::meshca::seconds_to_expiry(&self.tls.own_cert) {
            self.metrics.cert_expiry.set(secs);
        }
    }
}

fn load_key(path: &Path) -> Result<SecretIdentity> {
    let bytes = zeroize::Zeroizing::new(vault::fsio::read_limited(path, 1 << 20)?);
    SecretIdentity::decode(&bytes).with_context(|| format!("identity key {}", path.display()))
}

fn load_public(path: &Path) -> Result<PublicIdentity> {
    let bytes = vault::fsio::read_limited(path, 1 << 20)?;
    PublicIdentity::decode(&bytes).with_context(|| format!("trusted signer {}", path.display()))
}

/// Loads keys, TLS material and the store (verifying it), imports from the
/// import directory if configured.
pub fn prepare(config: &Config) -> Result<Arc<State>> {
    let identity = load_key(&config.identity_key)?;
    let signer = load_public(&config.trusted_signer)?;
    let tls = tls::load(
        &config.tls_ca,
        &config.tls_cert,
        &config.tls_key,
        &config.id,
    )?;
    let mut store = Store::open(
        &config.data_dir,
        signer.fingerprint(),
        identity.public().fingerprint(),
    )?;
    if let Some(dir) = &config.import_dir {
        import_dir(&mut store, dir, &identity)?;
    }
    Ok(Arc::new(State {
        id: config.id.clone(),
        identity: Arc::new(identity),
        store: Mutex::new(store),
        metrics: Metrics::new()?,
        tls,
        members: config.members.clone(),
        health: Mutex::new(BTreeMap::new()),
        ready: AtomicBool::new(false),
    }))
}

/// Imports `dir/manifest.pqvm` and the `*.shard` in `dir` addressed to us.
fn import_dir(store: &mut Store, dir: &Path, key: &SecretIdentity) -> Result<()> {
    let manifest_path = dir.join("manifest.pqvm");
    if !manifest_path.exists() {
        tracing::info!("nothing to import in {}", dir.display());
        return Ok(());
    }
    let manifest = vault::fsio::read_limited(&manifest_path, 2 << 20)?;
    let me = key.public().fingerprint();
    let mut found = false;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "shard") {
            continue;
        }
        let bytes = vault::fsio::read_limited(&path, 2 << 20)?;
        let ours = vault::seal::SealedShard::parse(&bytes).is_ok_and(|s| s.header.recipient == me);
        if ours {
            let held = store
                .import(&manifest, &bytes, key)
                .with_context(|| format!("importing {}", path.display()))?;
            tracing::info!(
                epoch = held.epoch,
                index = held.index,
                "imported {}",
                path.display()
            );
            found = true;
        }
    }
    if !found {
        tracing::warn!("no shard addressed to this validator in {}", dir.display());
    }
    Ok(())
}

/// Probes every member once per interval and updates health and metrics.
pub async fn probe_loop(state: Arc<State>, client: PeerClient, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let probes = state.members.iter().map(|m| {
            let (client, m) = (client.clone(), m.clone());
            async move {
                let t0 = Instant::now();
                let r = client.get(&m, "/v1/hello", 64 << 10).await;
                (m, r.map(|r| (r, t0.elapsed())))
            }
        });
        for (m, result) in futures_join_all(probes).await {
            let mut health = match state.health.lock() {
                Ok(h) => h,
                Err(_) => return,
            };
            let h = health
                .entry(m.id.clone())
                .or_insert_with(|| PeerHealth::new(HealthConfig::default()));
            let labels = [m.id.as_str()];
            match result {
                Ok((r, rtt)) if r.status == 200 => {
                    h.probe_ok(rtt);
                    state
                        .metrics
                        .probe_duration
                        .with_label_values(&labels)
                        .observe(rtt.as_secs_f64());
                    state.metrics.peer_up.with_label_values(&labels).set(1);
                    state.metrics.probes.with_label_values(&[&m.id, "ok"]).inc();
                }
                Ok(_) | Err(_) => {
                    h.probe_failed();
                    state.metrics.peer_up.with_label_values(&labels).set(0);
                    state
                        .metrics
                        .probes
                        .with_label_values(&[&m.id, "failed"])
                        .inc();
                }
            }
            state
                .metrics
                .peer_health
                .with_label_values(&labels)
                .set(h.score());
        }
    }
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Marks the daemon ready.
pub fn set_ready(state: &State) {
    state.ready.store(true, Ordering::Release);
}
