//! The running validator: start-up (loading and verifying everything into a
//! [`State`]), `--check`, and the probe and news loops.

use crate::api::{Gossip, NewsBody};
use crate::config::{Config, Member};
use crate::metrics::Metrics;
use crate::state::{unix_ms, IndirectAnswer, Probe, State};
use crate::store::Store;
use crate::tls;
use anyhow::{Context, Result};
use mesh_agent::detector::{Detector, Indirect, State as MemberState, Transition};
use mesh_agent::health::{HealthConfig, PeerHealth};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vault::identity::{PublicIdentity, SecretIdentity};

fn load_key(path: &Path) -> Result<SecretIdentity> {
    let bytes = zeroize::Zeroizing::new(vault::fsio::read_limited(path, 1 << 20)?);
    SecretIdentity::decode(&bytes).with_context(|| format!("identity key {}", path.display()))
}

fn load_public(path: &Path) -> Result<PublicIdentity> {
    let bytes = vault::fsio::read_limited(path, 1 << 20)?;
    PublicIdentity::decode(&bytes).with_context(|| format!("trusted signer {}", path.display()))
}

/// The operator identity vault manifests must be signed by, and its
/// fingerprint. Without `trusted_signer` (a validator that carries
/// artifacts alone, config.rs) no fingerprint can match: every vault
/// manifest and shard is refused.
fn trusted(config: &Config) -> Result<(Option<PublicIdentity>, vault::identity::Fingerprint)> {
    match &config.trusted_signer {
        Some(p) => {
            let signer = load_public(p)?;
            let fp = signer.fingerprint();
            Ok((Some(signer), fp))
        }
        // A SHA-256 over public keys that is all zero cannot be produced.
        None => Ok((None, vault::identity::Fingerprint::from_bytes([0u8; 32]))),
    }
}

/// Loads keys, TLS material and the store (verifying it), imports from the
/// import directory if configured.
pub fn prepare(config: &Config) -> Result<Arc<State>> {
    let identity = Arc::new(load_key(&config.identity_key)?);
    let (signer, signer_fp) = trusted(config)?;
    if signer.is_none() {
        tracing::info!("no trusted_signer configured: this validator carries artifacts only and refuses vault shards");
    }
    let tls = tls::load(
        &config.tls_ca,
        &config.tls_cert,
        &config.tls_key,
        &config.id,
    )?;
    tls::check_own_binding(
        &tls.own_cert,
        &identity.public().fingerprint(),
        config.require_identity,
    )?;
    let mut store = Store::open(&config.data_dir, signer_fp, identity.public().fingerprint())?;
    let keys = Arc::new(crate::keyring::Keyring::open(
        &config.data_dir,
        identity.clone(),
    )?);
    // Keys of epochs the store has moved past (a crash between the commit
    // and the erasure) go now, and keys of vaults not held: only a
    // replacement's round, which a restart ends, made those.
    let erased = keys.erase_where(|v, e| store.get(v).is_none_or(|h| e < h.epoch))?;
    if erased > 0 {
        tracing::info!(erased, "erased epoch keys of epochs already left");
    }
    // The initial KEM key `vault keygen` left beside the identity: into the
    // ring, and its file erased (genesis shards are sealed to it, D45).
    let sealed_to = store.sealed_to();
    let needed = |fp: &vault::identity::Fingerprint| {
        sealed_to
            .iter()
            .any(|(e, k)| *e == 1 && k.as_ref() == Some(fp))
    };
    match keys
        .take_initial_file(&config.initial_key, needed)
        .context("initial KEM key")?
    {
        crate::keyring::InitialFile::None => {}
        crate::keyring::InitialFile::Moved(fp) => tracing::info!(
            key = %fp.short(),
            "moved the initial KEM key into the key ring and erased {}",
            config.initial_key.display()
        ),
        crate::keyring::InitialFile::NotErased(fp, e) => tracing::warn!(
            key = %fp.short(),
            "moved the initial KEM key into the key ring but could not erase {} ({e}): delete it, \
             or archived genesis shards open with it",
            config.initial_key.display()
        ),
        crate::keyring::InitialFile::Deferred(fp) => tracing::warn!(
            key = %fp.short(),
            "{} waits: the key ring still needs its earlier initial key (a vault here is at epoch 1)",
            config.initial_key.display()
        ),
    }
    match store.release_proposal_votes_after_restart() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            released = n,
            "released our proposal votes: their attempts cannot act here after a restart"
        ),
        Err(e) => tracing::warn!("could not release our proposal votes: {e}"),
    }
    // Probes and custody reads: kept-alive connections (see crate::peer).
    let client = crate::peer::PeerClient::new(
        tls.client.clone(),
        Duration::from_millis(config.probe.timeout_ms),
    )
    .with_keepalive();
    let ctl = crate::peer::PeerClient::new(
        tls.client.clone(),
        Duration::from_millis(config.heal.request_timeout_ms),
    );
    let discover = crate::peer::PeerClient::new(
        tls.discover.clone(),
        Duration::from_millis(config.probe.timeout_ms.max(1000)),
    );
    let incarnation = unix_ms();
    // Each validator its own probe order: FNV-1a of its id and boot time.
    let seed = config
        .id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ incarnation, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let removed = store.removed();
    let detector = Detector::new(
        config
            .members
            .iter()
            .filter(|m| !removed.contains(&m.id))
            .map(|m| m.id.clone()),
        config.probe.detector(),
    )
    .with_seed(seed);
    if let Some(dir) = &config.import_dir {
        import_dir(&mut store, dir, &keys)?;
    }
    // An initial key whose vaults have all moved on (a crash between a
    // commit and the erasure, or a key that waited for its vault) goes now.
    if keys.settle_initial(&store.sealed_to())? {
        tracing::info!(
            "erased the initial KEM key: no vault here is at a genesis epoch sealed to it"
        );
    }
    let successors = crate::successor::restored(&store);
    let metrics = Metrics::new()?;
    let artifacts =
        crate::artifacts::Artifacts::open(&config.data_dir, &config.artifacts, &metrics)?;
    let state = Arc::new(State {
        id: config.id.clone(),
        identity,
        keys,
        store: Mutex::new(store),
        metrics,
        tls,
        members: std::sync::RwLock::new(config.members.clone()),
        removed: std::sync::RwLock::new(removed),
        discover,
        health: Mutex::new(BTreeMap::new()),
        ready: AtomicBool::new(false),
        incarnation: AtomicU64::new(incarnation),
        booted: incarnation,
        booted_seen: Mutex::new(BTreeMap::new()),
        peer_vaults: Mutex::new(BTreeMap::new()),
        outbox: Mutex::new(Vec::new()),
        self_refuted: AtomicUsize::new(0),
        client,
        ctl,
        started: Instant::now(),
        detector: Mutex::new(detector),
        view_changes: tokio::sync::watch::Sender::new(0),
        identities: Mutex::new(BTreeMap::new()),
        rounds: Mutex::new(BTreeMap::new()),
        pending: Mutex::new(BTreeMap::new()),
        artifacts,
        custody: Mutex::new(Default::default()),
        convicted: Mutex::new(Default::default()),
        withheld: Mutex::new(Default::default()),
        accusations: Mutex::new(Default::default()),
        successors: Mutex::new(successors),
        custody_copies: Mutex::new(Default::default()),
        policy: config.heal.policy,
        reshare_after: Duration::from_millis(config.heal.reshare_after_ms),
        reshare_window: Duration::from_millis(config.heal.reshare_window_ms),
        refresh: config.heal.refresh,
        require_identity: config.require_identity,
        heal_grace: Duration::from_millis(config.heal.grace_ms),
        voting: Mutex::new(()),
        voted_for: Mutex::new(BTreeMap::new()),
        acted_on: Mutex::new(BTreeMap::new()),
        proposing: Mutex::new(BTreeMap::new()),
        lost_since: Mutex::new(BTreeMap::new()),
        unfinished: Mutex::new(BTreeMap::new()),
        reshares: Mutex::new(BTreeMap::new()),
        dealt: Mutex::new(BTreeMap::new()),
        own_corrupt: Mutex::new(Default::default()),
        consensus: std::sync::OnceLock::new(),
    });
    // Judgements of re-share recipients made before a restart (D57).
    crate::reshare::restore_judgements(&state);
    // Convictions of liars made before a restart (D48, D49).
    state.restore_convictions();
    Ok(state)
}

/// The import bundle in `dir`: its manifest and the `*.shard` files in it
/// addressed to `me`; `None` without a manifest.
type Bundle = (Vec<u8>, Vec<(PathBuf, Vec<u8>)>);

fn read_bundle(dir: &Path, me: &vault::identity::Fingerprint) -> Result<Option<Bundle>> {
    let manifest_path = dir.join("manifest.pqvm");
    if !manifest_path.exists() {
        return Ok(None);
    }
    let manifest = vault::fsio::read_limited(&manifest_path, 2 << 20)?;
    let mut ours = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "shard") {
            continue;
        }
        let bytes = vault::fsio::read_limited(&path, 2 << 20)?;
        if vault::seal::SealedShard::parse(&bytes).is_ok_and(|s| s.header.recipient == *me) {
            ours.push((path, bytes));
        }
    }
    Ok(Some((manifest, ours)))
}

/// (held, bundle) epochs when the store already holds the bundle's vault at
/// a later epoch: the mesh moved on since the bundle was mounted, and a
/// restart must not fail on (or go back to) the stale genesis import.
fn stale_bundle(store: &Store, manifest: &[u8]) -> Option<(u64, u64)> {
    let m = vault::manifest::Manifest::decode(manifest).ok()?;
    let b = m.body();
    store
        .get(&b.vault_id)
        .map(|h| (h.epoch, b.epoch))
        .filter(|(held, import)| held > import)
}

/// Imports `dir/manifest.pqvm` and the `*.shard` in `dir` addressed to us.
fn import_dir(store: &mut Store, dir: &Path, keys: &crate::keyring::Keyring) -> Result<()> {
    let Some((manifest, ours)) = read_bundle(dir, &keys.identity().public().fingerprint())? else {
        tracing::info!("nothing to import in {}", dir.display());
        return Ok(());
    };
    if ours.is_empty() {
        tracing::warn!("no shard addressed to this validator in {}", dir.display());
    }
    for (path, bytes) in ours {
        if let Some((held, import)) = stale_bundle(store, &manifest) {
            tracing::warn!(
                held,
                import,
                "{}: the store is already at a later epoch; not importing",
                path.display()
            );
            continue;
        }
        // A genesis shard sealed to an initial key the ring does not hold:
        // erased once the vault left epoch 1 here (a wiped data directory
        // finds the bundle again), or never enrolled. Not an error to stop
        // for: this validator serves as a spare until the mesh rebuilds
        // its share.
        let sealed_to = vault::seal::SealedShard::parse(&bytes)
            .ok()
            .and_then(|s| s.header.epoch_key.filter(|_| s.header.epoch == 1));
        if let Some(fp) = sealed_to.filter(|fp| keys.initial() != Some(*fp)) {
            tracing::warn!(
                key = %fp.short(),
                "{}: sealed to an initial KEM key this validator does not hold (erased after the vault \
                 left epoch 1 here, or never enrolled: `initial_key`); not importing, serving as a spare",
                path.display()
            );
            continue;
        }
        let held = store
            .import(&manifest, &bytes, keys)
            .with_context(|| format!("importing {}", path.display()))?;
        tracing::info!(
            epoch = held.epoch,
            index = held.index,
            "imported {}",
            path.display()
        );
    }
    // The operator's transition policy, if the bundle has one.
    let policy = dir.join("policy.pqvl");
    if policy.exists() {
        let bytes = vault::fsio::read_limited(&policy, 1 << 20)?;
        if store
            .adopt_policy(&bytes)
            .with_context(|| format!("importing {}", policy.display()))?
        {
            tracing::info!("adopted the transition policy in {}", policy.display());
        }
    }
    Ok(())
}

/// `validator --check`: loads and verifies everything [`prepare`] would
/// (keys, trusted signer, TLS material, every stored epoch from its anchor,
/// the import bundle, the artifact trust policy) and changes nothing on
/// disk: no directory or lock file is created, nothing is imported, and the
/// artifact store is not opened (opening it repairs and prunes it).
/// Returns what it found, a line each.
pub fn check(config: &Config) -> Result<Vec<String>> {
    let identity = load_key(&config.identity_key)?;
    let (signer, signer_fp) = trusted(config)?;
    let tls = tls::load(
        &config.tls_ca,
        &config.tls_cert,
        &config.tls_key,
        &config.id,
    )?;
    let me = identity.public().fingerprint();
    tls::check_own_binding(&tls.own_cert, &me, config.require_identity)?;
    let store = Store::open_read_only(&config.data_dir, signer_fp, me)?;
    let keys = crate::keyring::Keyring::open_read_only(&config.data_dir, Arc::new(identity))
        .context("epoch key ring")?;
    let identity = keys.identity().clone();
    // An initial key still waiting in its file is offered in memory only.
    let waiting = match keys.read_initial_file(&config.initial_key)? {
        Some(key) => {
            let fp = key.fingerprint();
            keys.import_initial(key, |_| true)?;
            Some(fp)
        }
        None => None,
    };
    let mut report = vec![format!(
        "identity {} ({}), {} and TLS material as {} are valid",
        identity.public().name(),
        me.short(),
        match &signer {
            Some(s) => format!("trusted signer {}", s.fingerprint().short()),
            None => "no trusted signer (artifacts only)".to_string(),
        },
        config.id
    )];
    for (id, held) in store.vaults() {
        report.push(format!(
            "vault {id}: epoch {} (share {}) verified from its operator-signed anchor",
            held.epoch, held.index
        ));
        // The shard must open: with the identity (epoch 1) or the epoch
        // key the ring holds for it.
        keys.open_shard(&held.shard)
            .with_context(|| format!("vault {id}: our epoch {} shard does not open", held.epoch))?;
    }
    report.push(match (keys.initial(), waiting) {
        (_, Some(fp)) => format!(
            "initial KEM key {} waits in {}: the validator moves it into its ring and erases the file at start",
            fp.short(),
            config.initial_key.display()
        ),
        (Some(fp), None) => format!("initial KEM key {} in the wrapped ring", fp.short()),
        (None, None) => "initial KEM key: none (erased once its vaults left epoch 1, or never made)".to_string(),
    });
    report.push(format!(
        "epoch keys: {} in the wrapped ring{}",
        keys.epochs().len(),
        keys.epochs()
            .iter()
            .map(|(v, e)| format!(" (vault {v} epoch {e})"))
            .collect::<String>()
    ));
    if let Some(dir) = &config.import_dir {
        match read_bundle(dir, &me)? {
            None => report.push(format!("import: nothing to import in {}", dir.display())),
            Some((_, ours)) if ours.is_empty() => report.push(format!(
                "import: no shard addressed to this validator in {}",
                dir.display()
            )),
            Some((manifest, ours)) => {
                for (path, bytes) in ours {
                    let line = match stale_bundle(&store, &manifest) {
                        Some((held, import)) => format!(
                            "import: {} is epoch {import}, the store is at {held}: would not import",
                            path.display()
                        ),
                        None => {
                            let (id, epoch, index) = store
                                .check_import(&manifest, &bytes, &keys)
                                .with_context(|| format!("import of {}", path.display()))?;
                            format!(
                                "import: {} is valid (vault {id}, epoch {epoch}, share {index}); a start would import it if not held",
                                path.display()
                            )
                        }
                    };
                    report.push(line);
                }
            }
        }
    }
    if let Some(policy) = &config.artifacts.policy {
        vault::artifact::TrustPolicy::load(policy)
            .with_context(|| format!("artifacts.policy {}", policy.display()))?;
        report.push(format!(
            "artifacts: trust policy {} loads (the artifact store is verified when the validator starts)",
            policy.display()
        ));
    }
    Ok(report)
}

/// One probe period: a direct probe of this period's targets (the next
/// member of the randomized round-robin, plus members suspected by us or
/// by others), indirect probes of those that failed, then suspicion
/// timeouts and local health. Updates health, detector and metrics.
pub async fn probe_round(state: &Arc<State>) {
    let targets: Vec<Member> = state
        .detector
        .lock()
        .map(|mut d| d.probe_targets())
        .unwrap_or_default()
        .iter()
        .filter_map(|id| state.member(id))
        .collect();
    let direct = targets.into_iter().map(|m| {
        let state = state.clone();
        async move {
            let r = state.probe_hello(&m).await;
            (m, r)
        }
    });
    let mut failed = Vec::new();
    // Signs that we, not they, are in trouble (Lifeguard's local health).
    let mut worse = state.self_refuted.swap(0, Ordering::AcqRel);
    let mut acked = 0;
    // Targets that refused the connection: nobody listens, not our fault.
    let mut refused = std::collections::BTreeSet::new();
    for (m, outcome) in futures_join_all(direct).await {
        // Removed while the probe was under way: its series stay gone.
        if state.is_removed(&m.id) {
            continue;
        }
        let labels = [m.id.as_str()];
        let (hello, rtt) = match outcome {
            Probe::Ok(h, rtt) => (Some(h), rtt),
            Probe::Failed(rtt) => (None, rtt),
            Probe::Refused(rtt) => {
                // A conclusive answer (nobody listens), not our trouble:
                // counts towards healing local health like an ack.
                acked += 1;
                refused.insert(m.id.clone());
                (None, rtt)
            }
            Probe::Stalled => {
                // Our own process stalled past the timeout: says nothing
                // about the target.
                worse += 1;
                continue;
            }
        };
        if let Ok(mut health) = state.health.lock() {
            let h = health
                .entry(m.id.clone())
                .or_insert_with(|| PeerHealth::new(HealthConfig::default()));
            if hello.is_some() {
                h.probe_ok(rtt);
                state
                    .metrics
                    .probe_duration
                    .with_label_values(&labels)
                    .observe(rtt.as_secs_f64());
            } else {
                h.probe_failed();
            }
            state
                .metrics
                .peer_health
                .with_label_values(&labels)
                .set(h.score());
        }
        state
            .metrics
            .peer_up
            .with_label_values(&labels)
            .set(i64::from(hello.is_some()));
        let result = if hello.is_some() { "ok" } else { "failed" };
        state
            .metrics
            .probes
            .with_label_values(&[&m.id, result])
            .inc();
        match hello {
            Some(h) => {
                acked += 1;
                state.answered(&m.id, &h);
            }
            None => failed.push(m),
        }
    }
    // Indirect probes through up to k alive members before suspecting.
    let indirect = failed.into_iter().map(|target| {
        let state = state.clone();
        async move {
            let helpers: Vec<Member> = state
                .detector
                .lock()
                .map(|mut d| d.helpers_for(&target.id))
                .unwrap_or_default()
                .iter()
                .filter_map(|id| state.member(id))
                .collect();
            // Ask every helper at once: the first that reaches the target wins.
            let asks = helpers.into_iter().map(|h| {
                let (state, id) = (state.clone(), target.id.clone());
                async move { (h.id.clone(), state.probe_indirect(&h, &id).await) }
            });
            let answers = futures_join_all(asks).await;
            (target, answers)
        }
    });
    for (target, answers) in futures_join_all(indirect).await {
        let inc = answers
            .iter()
            .filter_map(|(_, a)| match a {
                IndirectAnswer::Ack(i) => Some(*i),
                _ => None,
            })
            .max();
        // Helpers that refused the connection are down: they owed no nack.
        let report = Indirect {
            asked: answers
                .iter()
                .filter(|(_, a)| *a != IndirectAnswer::Gone)
                .count(),
            nacked_by: answers
                .iter()
                .filter(|(_, a)| *a == IndirectAnswer::Nack)
                .map(|(h, _)| h.clone())
                .collect(),
        };
        // The failure is observed now, after the indirect probes: the
        // suspicion is dated from here.
        let now = Instant::now();
        let t = state.detector.lock().ok().and_then(|mut d| {
            match inc {
                Some(i) => {
                    // Others reach it and we do not: probably us.
                    worse += 1;
                    d.probe_ok(&target.id, i, now)
                }
                None => {
                    // Only a member we still think alive or suspect tells
                    // about our own health: probing the dead fails by nature.
                    if d.state(&target.id) != Some(MemberState::Dead) {
                        worse += match report.asked {
                            // Nobody to vouch for us: a timeout may be ours,
                            // a refused connection is not.
                            0 => usize::from(!refused.contains(&target.id)),
                            _ => report.missed(),
                        };
                    }
                    d.probes_failed(&target.id, &report, now)
                }
            }
        });
        state.record(t.as_slice());
    }
    let expired = state
        .detector
        .lock()
        .map(|mut d| {
            d.round_done(worse, acked);
            state.metrics.local_health.set(i64::from(d.awareness()));
            d.tick(Instant::now())
        })
        .unwrap_or_default();
    state.record(&expired);
}

/// Runs [`probe_round`] once per `interval` (stretched by local health),
/// forever, and pushes detector news as it comes up.
pub async fn probe_loop(state: Arc<State>, interval: Duration) {
    for m in &state.members() {
        state.record(&[Transition {
            id: m.id.clone(),
            from: MemberState::Alive,
            to: MemberState::Alive,
        }]);
    }
    tokio::spawn(news_loop(state.clone()));
    tokio::spawn(expiry_loop(state.clone()));
    loop {
        let period = match state.detector.lock() {
            Ok(d) => d.scale(interval),
            Err(_) => interval,
        };
        let next = tokio::time::Instant::now() + period;
        // Test builds: lets a test make this background loop panic.
        #[cfg(feature = "failpoints")]
        fail::fail_point!(crate::failpoint::PROBE_ROUND);
        probe_round(&state).await;
        tokio::time::sleep_until(next).await;
    }
}

/// How often [`expiry_loop`] looks again when no suspicion is about to
/// expire (a new confirmation can shorten a timeout at any time).
const EXPIRY_CHECK: Duration = Duration::from_millis(25);

/// Declares a suspect dead when its suspicion timeout runs out
/// ([`Detector::next_expiry`], within [`EXPIRY_CHECK`]), rather than at
/// the end of the next probe period: the timeout is what the detector's
/// configuration grants a suspect to refute, and validators whose probe
/// periods end at different moments no longer disagree for up to a period
/// about who is dead (healing needs a quorum of holders to agree).
async fn expiry_loop(state: Arc<State>) {
    loop {
        let now = Instant::now();
        let next = state
            .detector
            .lock()
            .ok()
            .and_then(|d| d.next_expiry())
            .map_or(now + EXPIRY_CHECK, |t| t.clamp(now, now + EXPIRY_CHECK));
        tokio::time::sleep_until(next.into()).await;
        let expired = state
            .detector
            .lock()
            .map(|mut d| d.tick(Instant::now()))
            .unwrap_or_default();
        state.record(&expired);
    }
}

/// Pushes queued detector news (a suspicion we started, a refutation of
/// one about us) to every member, checking every 50 ms.
async fn news_loop(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let news: Vec<Gossip> = match state.outbox.lock() {
            Ok(mut o) => std::mem::take(&mut *o),
            Err(_) => continue,
        };
        if news.is_empty() {
            continue;
        }
        let Ok(body) = serde_json::to_vec(&NewsBody { news }) else {
            continue;
        };
        for m in state.members() {
            let (state, body) = (state.clone(), body.clone());
            tokio::spawn(async move {
                if let Ok(r) = state.ctl.post(&m, "/v1/news", body, 64 << 10).await {
                    if r.status == 200 {
                        if let Ok(back) = serde_json::from_slice::<NewsBody>(&r.body) {
                            state.heard_from(&m.id);
                            state.absorb(&m.id, &back.news);
                        }
                    }
                }
            });
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
