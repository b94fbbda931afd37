//! Validator configuration: a TOML file, then `PQVAULT_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every key, with defaults and examples: [`REFERENCE`]
//! (`validator/config.reference.toml`, also printed by `validator --help`).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Every configuration key with its default or an example (TOML).
pub const REFERENCE: &str = include_str!("../config.reference.toml");

/// A configuration problem, naming the setting.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// What toml says.
        message: String,
    },
    /// A setting is missing or unusable.
    #[error("setting `{setting}`: {reason}")]
    Invalid {
        /// Setting name.
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// TLS material paths.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Mesh CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// This validator's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// This validator's TLS private key (PEM, PKCS#8).
    pub key: Option<PathBuf>,
    /// Refuse certificates (ours and peers') that do not bind a pqvault
    /// identity and role (default true). `false` only while an existing
    /// mesh re-issues its certificates (docs/deploy.md).
    pub require_identity: Option<bool>,
}

/// Listening addresses and the limits every listener applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Mutual-TLS peer and operator API.
    pub peer: Option<SocketAddr>,
    /// Plain-HTTP health and metrics.
    pub ops: Option<SocketAddr>,
    /// Plain-HTTP artifact API for the local application.
    pub app: Option<SocketAddr>,
    /// Open connections allowed per port; more are closed on accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Milliseconds a client has to send a request's headers, and to start
    /// its next request on a kept-alive connection (so also the idle
    /// timeout); then the connection is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// Milliseconds a peer-port client has to send a request's body once
    /// its headers are in; then it is answered 408 and closed.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// KiB of request bodies the peer port holds at once, being read or
    /// handled; a body that does not fit waits until its body timeout, then
    /// is answered 503. Bodies larger than this are refused (413).
    #[serde(default = "default_body_budget")]
    pub body_budget_kib: usize,
}

fn default_max_connections() -> usize {
    256
}

fn default_header_timeout() -> u64 {
    10_000
}

fn default_body_timeout() -> u64 {
    10_000
}

fn default_body_budget() -> usize {
    32 << 10
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            peer: None,
            ops: None,
            app: None,
            max_connections: default_max_connections(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
            body_budget_kib: default_body_budget(),
        }
    }
}

/// Artifact carriage (`[artifacts]`); off unless `policy` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsConfig {
    /// Trust policy file (TOML); artifacts are disabled without it.
    pub policy: Option<PathBuf>,
    /// Largest payload accepted, in bytes.
    #[serde(default = "default_max_artifact")]
    pub max_artifact_bytes: u64,
    /// Largest total of all payloads held, in bytes.
    #[serde(default = "default_max_store")]
    pub max_store_bytes: u64,
    /// Milliseconds between anti-entropy rounds.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_ms: u64,
    /// Chunk requests in flight per download.
    #[serde(default = "default_fetch_concurrency")]
    pub fetch_concurrency: usize,
    /// Seconds a partial artifact may go without a new verified chunk
    /// before it is abandoned (its space released); 0 never abandons.
    #[serde(default = "default_abandon_after")]
    pub abandon_after_secs: u64,
    /// Partial artifacts whose payload check runs while their chunks
    /// arrive (two threads each); 0 checks each payload only once its
    /// last chunk arrived.
    #[serde(default = "default_early_checks")]
    pub early_checks: usize,
}

fn default_max_artifact() -> u64 {
    1 << 30
}
fn default_max_store() -> u64 {
    8 << 30
}
fn default_sync_interval() -> u64 {
    1000
}
fn default_fetch_concurrency() -> usize {
    4
}
fn default_abandon_after() -> u64 {
    3600
}
fn default_early_checks() -> usize {
    4
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        ArtifactsConfig {
            policy: None,
            max_artifact_bytes: default_max_artifact(),
            max_store_bytes: default_max_store(),
            sync_interval_ms: default_sync_interval(),
            fetch_concurrency: default_fetch_concurrency(),
            abandon_after_secs: default_abandon_after(),
            early_checks: default_early_checks(),
        }
    }
}

/// Default address of the local application's artifact API.
pub const DEFAULT_APP_LISTEN: &str = "127.0.0.1:9465";

/// One statically configured member.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Validator id (as in its certificate).
    pub id: String,
    /// Address of its peer port: `ip:port` or `dns-name:port` (resolved
    /// at every connection, so a rescheduled pod's new address is used).
    pub addr: String,
}

/// DNS discovery (a Kubernetes headless service).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Name whose A/AAAA records are the members.
    pub dns: String,
    /// Peer port on every member.
    pub port: u16,
    /// Milliseconds between look-ups.
    #[serde(default = "default_discovery_interval")]
    pub interval_ms: u64,
}

fn default_discovery_interval() -> u64 {
    5000
}

/// Probe timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Milliseconds between probe rounds.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Milliseconds before a probe counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Milliseconds a member stays suspect, at least, before it is declared
    /// dead: once `indirect` independent confirmations came (default:
    /// three intervals). Counted from when the failure was observed.
    #[serde(default)]
    pub suspicion_ms: Option<u64>,
    /// Milliseconds a suspicion nobody confirms lasts (Lifeguard;
    /// default: four times `suspicion_ms`).
    #[serde(default)]
    pub suspicion_max_ms: Option<u64>,
    /// Members asked to probe a peer indirectly after a failed direct probe.
    #[serde(default = "default_indirect")]
    pub indirect: usize,
    /// Highest local health awareness: the probe interval and timeout
    /// stretch up to `(1 + awareness_max)` times while we seem unhealthy.
    #[serde(default = "default_awareness_max")]
    pub awareness_max: u32,
    /// Lifeguard (local health, suspicion scaled by confirmations). `false`
    /// is plain SWIM, for comparison in tests and benchmarks only.
    #[serde(default = "default_lifeguard")]
    pub lifeguard: bool,
}

fn default_lifeguard() -> bool {
    true
}

fn default_awareness_max() -> u32 {
    8
}

fn default_indirect() -> usize {
    2
}

fn default_interval() -> u64 {
    500
}
fn default_timeout() -> u64 {
    250
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval_ms: default_interval(),
            timeout_ms: default_timeout(),
            suspicion_ms: None,
            suspicion_max_ms: None,
            indirect: default_indirect(),
            awareness_max: default_awareness_max(),
            lifeguard: default_lifeguard(),
        }
    }
}

/// Autonomous healing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealConfig {
    /// Repair lost shares onto spare members without an operator.
    #[serde(default = "default_true")]
    pub auto: bool,
    /// Milliseconds between checks for lost shares.
    #[serde(default = "default_heal_interval")]
    pub interval_ms: u64,
    /// Milliseconds a holder must have been dead (and we up) before its
    /// share is repaired: a restart or rolling update must not move epochs.
    #[serde(default = "default_grace")]
    pub grace_ms: u64,
    /// Timeout of repair and epoch requests (they do HQC work).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Threshold policy when the holders re-share to fewer members.
    #[serde(default, deserialize_with = "policy_name")]
    pub policy: vault::policy::Policy,
    /// Milliseconds lost shares wait for spare validators before the live
    /// holders re-share among themselves to the policy's (t', n').
    #[serde(default = "default_reshare_after")]
    pub reshare_after_ms: u64,
    /// Milliseconds the leader gives a re-share's dealing before it gives
    /// the attempt up; dealers judge the recipients at three quarters of
    /// it (D57). Between [`MIN_RESHARE_WINDOW_MS`] and
    /// [`MAX_RESHARE_WINDOW_MS`].
    #[serde(default = "default_reshare_window")]
    pub reshare_window_ms: u64,
    /// Refresh after a repair: re-share to a fresh polynomial at the same
    /// (t, n), so shares of older epochs (a stolen disk) become useless.
    #[serde(default = "default_true")]
    pub refresh: bool,
}

fn default_reshare_after() -> u64 {
    300_000
}

fn default_reshare_window() -> u64 {
    20_000
}

/// The shortest `[heal] reshare_window_ms` accepted: an honest dealing
/// takes well under a second.
pub const MIN_RESHARE_WINDOW_MS: u64 = 2_000;

/// The longest `[heal] reshare_window_ms` accepted: below the 30 s for
/// which a dealer refuses to deal again in the same epoch
/// (`reshare::REDEAL_AFTER`).
pub const MAX_RESHARE_WINDOW_MS: u64 = 25_000;

fn policy_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<vault::policy::Policy, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn default_grace() -> u64 {
    30_000
}
fn default_request_timeout() -> u64 {
    10_000
}

fn default_true() -> bool {
    true
}
fn default_heal_interval() -> u64 {
    1000
}

impl Default for HealConfig {
    fn default() -> Self {
        HealConfig {
            auto: true,
            interval_ms: default_heal_interval(),
            grace_ms: default_grace(),
            request_timeout_ms: default_request_timeout(),
            policy: vault::policy::Policy::default(),
            reshare_after_ms: default_reshare_after(),
            reshare_window_ms: default_reshare_window(),
            refresh: true,
        }
    }
}

/// The replicated epoch log (`validator::consensus`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// Run the log. Unset: on when the configuration lists static
    /// `[[members]]` (the log's voters), off for a discovery-only mesh,
    /// which the log cannot serve yet (decisions D40); `false` keeps it
    /// off. [`Config::resolve`] fills it in, so it is always `Some` in a
    /// resolved configuration: read it with [`ConsensusConfig::is_enabled`].
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Milliseconds between the leader's heartbeats.
    #[serde(default = "default_raft_heartbeat")]
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout, milliseconds.
    #[serde(default = "default_election_min")]
    pub election_timeout_min_ms: u64,
    /// Upper bound of the election timeout, milliseconds.
    #[serde(default = "default_election_max")]
    pub election_timeout_max_ms: u64,
    /// How long a decided successor must stay uncertified in our view
    /// before we refuse it (D53), milliseconds; at least
    /// [`MIN_STALLED_AFTER_MS`]. An honest leader gathers its signatures
    /// in well under a second.
    #[serde(default = "default_stalled_after")]
    pub stalled_after_ms: u64,
}

/// The shortest `[consensus] stalled_after_ms` accepted: far above an
/// honest leader's sign-and-commit phase (52-82 ms measured), so a liar
/// that asks for refusals early cannot kill an honest decision.
pub const MIN_STALLED_AFTER_MS: u64 = 1000;

fn default_raft_heartbeat() -> u64 {
    250
}
fn default_election_min() -> u64 {
    1000
}
fn default_election_max() -> u64 {
    2000
}
fn default_stalled_after() -> u64 {
    10_000
}

impl ConsensusConfig {
    /// True if the log runs (as resolved: see [`ConsensusConfig::enabled`]).
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            enabled: None,
            heartbeat_ms: default_raft_heartbeat(),
            election_timeout_min_ms: default_election_min(),
            election_timeout_max_ms: default_election_max(),
            stalled_after_ms: default_stalled_after(),
        }
    }
}

/// Custody checks of our own and our peers' shards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyConfig {
    /// Milliseconds between checks.
    #[serde(default = "default_custody_interval")]
    pub interval_ms: u64,
}

fn default_custody_interval() -> u64 {
    10_000
}

impl Default for CustodyConfig {
    fn default() -> Self {
        CustodyConfig {
            interval_ms: default_custody_interval(),
        }
    }
}

/// The file as written (every field optional so env and flags can fill in).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Validator id.
    pub id: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Identity secret key from `vault keygen`.
    pub identity_key: Option<PathBuf>,
    /// Initial KEM key from `vault keygen` (`NAME.ikey`), moved into the
    /// key ring at start and then erased; default: beside `identity_key`.
    pub initial_key: Option<PathBuf>,
    /// Public identity of the operator whose manifests are accepted.
    pub trusted_signer: Option<PathBuf>,
    /// Directory to import a manifest and shard from at start.
    pub import_dir: Option<PathBuf>,
    /// TLS paths.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Listening addresses.
    #[serde(default)]
    pub listen: ListenConfig,
    /// Static members.
    #[serde(default)]
    pub members: Vec<Member>,
    /// DNS discovery.
    pub discovery: Option<DiscoveryConfig>,
    /// Probe timing.
    #[serde(default)]
    pub probe: ProbeConfig,
    /// Autonomous healing.
    #[serde(default)]
    pub heal: HealConfig,
    /// Custody checks.
    #[serde(default)]
    pub custody: CustodyConfig,
    /// Artifact carriage.
    #[serde(default)]
    pub artifacts: ArtifactsConfig,
    /// Replicated epoch log.
    #[serde(default)]
    pub consensus: ConsensusConfig,
}

/// Overrides from flags (and, merged in first, the environment).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--id` / `PQVAULT_ID`.
    pub id: Option<String>,
    /// `--data-dir` / `PQVAULT_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--peer-listen` / `PQVAULT_PEER_LISTEN`.
    pub peer_listen: Option<SocketAddr>,
    /// `--ops-listen` / `PQVAULT_OPS_LISTEN`.
    pub ops_listen: Option<SocketAddr>,
    /// `--app-listen` / `PQVAULT_APP_LISTEN`.
    pub app_listen: Option<SocketAddr>,
}

/// The resolved configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Validator id.
    pub id: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Identity key path.
    pub identity_key: PathBuf,
    /// Where an initial KEM key may wait to be moved into the key ring.
    pub initial_key: PathBuf,
    /// Operator public identity path; `None` only on a validator that
    /// carries artifacts alone (it holds no vault shard and refuses any).
    pub trusted_signer: Option<PathBuf>,
    /// Import directory, if any.
    pub import_dir: Option<PathBuf>,
    /// Mesh CA certificate.
    pub tls_ca: PathBuf,
    /// Own certificate.
    pub tls_cert: PathBuf,
    /// Own TLS key.
    pub tls_key: PathBuf,
    /// Whether certificates must bind identity and role (`tls.require_identity`).
    pub require_identity: bool,
    /// Peer API address.
    pub peer_listen: SocketAddr,
    /// Ops address.
    pub ops_listen: SocketAddr,
    /// Local application artifact API address.
    pub app_listen: SocketAddr,
    /// Connection cap and header/idle timeout of every listener.
    pub listen_limits: crate::listener::Limits,
    /// Static members (excluding self).
    pub members: Vec<Member>,
    /// DNS discovery.
    pub discovery: Option<DiscoveryConfig>,
    /// Probe timing.
    pub probe: ProbeConfig,
    /// Autonomous healing.
    pub heal: HealConfig,
    /// Custody checks.
    pub custody: CustodyConfig,
    /// Artifact carriage (enabled when `artifacts.policy` is set).
    pub artifacts: ArtifactsConfig,
    /// Replicated epoch log.
    pub consensus: ConsensusConfig,
}

impl ProbeConfig {
    /// Suspicion timeout once confirmed (defaults to three probe intervals).
    pub fn suspicion(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.suspicion_ms
                .unwrap_or(self.interval_ms.saturating_mul(3)),
        )
    }

    /// Suspicion timeout unconfirmed (defaults to four times [`Self::suspicion`]).
    pub fn suspicion_max(&self) -> std::time::Duration {
        self.suspicion_max_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or_else(|| self.suspicion().saturating_mul(4))
    }

    /// The failure detector's configuration.
    pub fn detector(&self) -> mesh_agent::detector::Config {
        mesh_agent::detector::Config {
            suspicion_min: self.suspicion(),
            suspicion_max: self.suspicion_max(),
            indirect: self.indirect,
            awareness_max: self.awareness_max,
            window: std::time::Duration::from_millis(self.interval_ms),
            lifeguard: self.lifeguard,
        }
    }
}

impl Overrides {
    /// Reads `PQVAULT_ID`, `PQVAULT_DATA_DIR`, `PQVAULT_PEER_LISTEN`,
    /// `PQVAULT_OPS_LISTEN`, `PQVAULT_APP_LISTEN`, then lets `flags` win.
    pub fn from_env_then(flags: Overrides) -> Result<Overrides, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let addr = |k: &'static str| -> Result<Option<SocketAddr>, ConfigError> {
            env(k)
                .map(|v| v.parse().map_err(|e| invalid(k, format!("{v:?}: {e}"))))
                .transpose()
        };
        Ok(Overrides {
            id: flags.id.or_else(|| env("PQVAULT_ID")),
            data_dir: flags
                .data_dir
                .or_else(|| env("PQVAULT_DATA_DIR").map(PathBuf::from)),
            peer_listen: flags.peer_listen.or(addr("PQVAULT_PEER_LISTEN")?),
            ops_listen: flags.ops_listen.or(addr("PQVAULT_OPS_LISTEN")?),
            app_listen: flags.app_listen.or(addr("PQVAULT_APP_LISTEN")?),
        })
    }
}

impl Config {
    /// Loads `path` (if given) and applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        Self::resolve(file, overrides)
    }

    /// Merges a parsed file with overrides and checks the result.
    pub fn resolve(f: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let id = o.id.or(f.id).ok_or_else(|| invalid("id", "missing"))?;
        vault::meshca::check_id(&id).map_err(|e| invalid("id", e.to_string()))?;
        let need = |v: Option<PathBuf>, s: &'static str| v.ok_or_else(|| invalid(s, "missing"));
        let members: Vec<Member> = f.members.into_iter().filter(|m| m.id != id).collect();
        for m in &members {
            vault::meshca::check_id(&m.id).map_err(|e| invalid("members", e.to_string()))?;
            check_host_port(&m.addr)
                .map_err(|e| invalid("members", format!("{}: addr {:?}: {e}", m.id, m.addr)))?;
        }
        if let Some(d) = &f.discovery {
            if d.dns.is_empty() || d.port == 0 || d.interval_ms == 0 {
                return Err(invalid(
                    "discovery",
                    "dns must be a name, port and interval_ms positive",
                ));
            }
        }
        let a = &f.artifacts;
        if a.sync_interval_ms == 0
            || !(1..=64).contains(&a.fetch_concurrency)
            || a.max_artifact_bytes == 0
            || a.max_store_bytes < a.max_artifact_bytes
            || a.early_checks > 64
        {
            return Err(invalid(
                "artifacts",
                "sync_interval_ms must be positive, fetch_concurrency 1..=64, \
                 early_checks 0..=64, 0 < max_artifact_bytes <= max_store_bytes",
            ));
        }
        if f.probe.interval_ms == 0 || f.probe.timeout_ms == 0 || f.probe.suspicion_ms == Some(0) {
            return Err(invalid(
                "probe",
                "interval_ms and timeout_ms must be positive",
            ));
        }
        if f.probe.suspicion_max() < f.probe.suspicion() || f.probe.awareness_max > 64 {
            return Err(invalid(
                "probe",
                "suspicion_max_ms must be at least suspicion_ms, awareness_max at most 64",
            ));
        }
        let c = &f.consensus;
        if c.heartbeat_ms == 0
            || c.election_timeout_min_ms <= c.heartbeat_ms
            || c.election_timeout_max_ms <= c.election_timeout_min_ms
        {
            return Err(invalid(
                "consensus",
                "need 0 < heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms",
            ));
        }
        if !(MIN_RESHARE_WINDOW_MS..=MAX_RESHARE_WINDOW_MS).contains(&f.heal.reshare_window_ms) {
            return Err(invalid(
                "heal",
                format!(
                    "reshare_window_ms must be between {MIN_RESHARE_WINDOW_MS} and {MAX_RESHARE_WINDOW_MS}"
                ),
            ));
        }
        if c.stalled_after_ms < MIN_STALLED_AFTER_MS {
            return Err(invalid(
                "consensus",
                format!("stalled_after_ms must be at least {MIN_STALLED_AFTER_MS}"),
            ));
        }
        let identity_key = need(f.identity_key, "identity_key")?;
        Ok(Config {
            data_dir: need(o.data_dir.or(f.data_dir), "data_dir")?,
            initial_key: f
                .initial_key
                .unwrap_or_else(|| identity_key.with_extension("ikey")),
            identity_key,
            trusted_signer: match f.trusted_signer {
                Some(p) => Some(p),
                None if f.artifacts.policy.is_some() && f.import_dir.is_none() => None,
                None => {
                    return Err(invalid(
                        "trusted_signer",
                        "missing (only a validator that carries artifacts alone, with \
                         [artifacts] policy set and no import_dir, may omit it)",
                    ))
                }
            },
            import_dir: f.import_dir,
            tls_ca: need(f.tls.ca, "tls.ca")?,
            tls_cert: need(f.tls.cert, "tls.cert")?,
            tls_key: need(f.tls.key, "tls.key")?,
            require_identity: f.tls.require_identity.unwrap_or(true),
            peer_listen: o
                .peer_listen
                .or(f.listen.peer)
                .ok_or_else(|| invalid("listen.peer", "missing"))?,
            ops_listen: o
                .ops_listen
                .or(f.listen.ops)
                .ok_or_else(|| invalid("listen.ops", "missing"))?,
            discovery: f.discovery,
            probe: f.probe,
            heal: f.heal,
            custody: f.custody,
            app_listen: match o.app_listen.or(f.listen.app) {
                Some(a) => a,
                None => DEFAULT_APP_LISTEN
                    .parse()
                    .map_err(|e| invalid("listen.app", format!("{e}")))?,
            },
            listen_limits: crate::listener::Limits {
                max_connections: f.listen.max_connections.max(1),
                header_timeout: std::time::Duration::from_millis(f.listen.header_timeout_ms.max(1)),
                body_timeout: std::time::Duration::from_millis(f.listen.body_timeout_ms.max(1)),
                body_budget: f.listen.body_budget_kib.max(1).saturating_mul(1024),
            },
            artifacts: f.artifacts,
            consensus: ConsensusConfig {
                // On by default where it works: static members are its voters.
                enabled: Some(f.consensus.enabled.unwrap_or(!members.is_empty())),
                ..f.consensus
            },
            members,
            id,
        })
    }
}

/// Checks `host:port` (an IP address, `[v6]:port`, or a DNS name).
fn check_host_port(addr: &str) -> Result<(), String> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or("port must be 1..=65535")?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err("host must be an IP address or a DNS name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        id = "validator-1"
        data_dir = "/d"
        identity_key = "/k"
        trusted_signer = "/op.pub"
        [tls]
        ca = "/ca"
        cert = "/c"
        key = "/tk"
        [listen]
        peer = "127.0.0.1:7001"
        ops = "127.0.0.1:9001"
        [[members]]
        id = "validator-1"
        addr = "127.0.0.1:7001"
        [[members]]
        id = "validator-2"
        addr = "127.0.0.2:7001"
    "#;

    #[test]
    fn member_addresses_are_host_and_port() {
        for ok in [
            "127.0.0.1:7443",
            "[::1]:7443",
            "pqvault-3.pqvault-peers.pqvault.svc.cluster.local:7443",
            "validator-2:1",
        ] {
            assert!(check_host_port(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "host:0",
            "host:99999",
            ":7443",
            "bad_host:7443",
            "-x.example:7443",
            "a..b:7443",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
        let mut f: FileConfig = toml::from_str(FULL).unwrap();
        f.members[1].addr = "no port".into();
        let e = Config::resolve(f, Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("validator-2"), "{e}");
    }

    /// A validator that only carries artifacts (an `[artifacts] policy`,
    /// nothing to import) needs no vault `trusted_signer`; any other still
    /// does.
    #[test]
    fn artifact_only_validators_need_no_trusted_signer() {
        let without = FULL.replace("trusted_signer = \"/op.pub\"\n", "");
        let f: FileConfig = toml::from_str(&without).unwrap();
        let e = Config::resolve(f, Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("trusted_signer"), "{e}");
        let carrier = format!("{without}\n[artifacts]\npolicy = \"/trust.toml\"\n");
        let f: FileConfig = toml::from_str(&carrier).unwrap();
        let c = Config::resolve(f.clone(), Overrides::default()).unwrap();
        assert_eq!(c.trusted_signer, None);
        let mut importing = f;
        importing.import_dir = Some("/import".into());
        let e = Config::resolve(importing, Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("trusted_signer"), "{e}");
        let f: FileConfig = toml::from_str(FULL).unwrap();
        let c = Config::resolve(f, Overrides::default()).unwrap();
        assert_eq!(c.trusted_signer, Some(PathBuf::from("/op.pub")));
    }

    #[test]
    fn file_then_overrides() {
        let f: FileConfig = toml::from_str(FULL).unwrap();
        let c = Config::resolve(f.clone(), Overrides::default()).unwrap();
        assert_eq!(c.id, "validator-1");
        assert_eq!(c.members.len(), 1, "self is dropped from members");
        assert_eq!(c.probe.interval_ms, 500);
        let c = Config::resolve(
            f,
            Overrides {
                ops_listen: Some("127.0.0.1:9999".parse().unwrap()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.ops_listen.port(), 9999);
    }

    #[test]
    fn artifacts_are_off_by_default_and_checked() {
        let f: FileConfig = toml::from_str(FULL).unwrap();
        let c = Config::resolve(f, Overrides::default()).unwrap();
        assert!(c.artifacts.policy.is_none());
        assert_eq!(c.app_listen.to_string(), DEFAULT_APP_LISTEN);
        let text = format!("{FULL}\n[artifacts]\npolicy = \"/t.toml\"\nfetch_concurrency = 0\n");
        let f: FileConfig = toml::from_str(&text).unwrap();
        let err = Config::resolve(f, Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("`artifacts`"), "{err}");
        let text = FULL.replace("ops = ", "app = \"127.0.0.1:9999\"\n        ops = ");
        let f: FileConfig = toml::from_str(&text).unwrap();
        let c = Config::resolve(f, Overrides::default()).unwrap();
        assert_eq!(c.app_listen.port(), 9999);
    }

    #[test]
    fn consensus_is_on_with_static_members_and_checked() {
        // FULL lists a static member: the log is on unless turned off.
        let f: FileConfig = toml::from_str(FULL).unwrap();
        let c = Config::resolve(f, Overrides::default()).unwrap();
        assert!(c.consensus.is_enabled());
        assert_eq!(c.consensus.heartbeat_ms, 250);
        let text = format!("{FULL}\n[consensus]\nenabled = false\n");
        let c = Config::resolve(toml::from_str(&text).unwrap(), Overrides::default()).unwrap();
        assert!(!c.consensus.is_enabled(), "an explicit false is honoured");
        // Discovery only (no static member but ourselves): off by default.
        let mut f: FileConfig = toml::from_str(FULL).unwrap();
        f.members.clear();
        let c = Config::resolve(f.clone(), Overrides::default()).unwrap();
        assert!(!c.consensus.is_enabled());
        f.consensus.enabled = Some(true);
        let c = Config::resolve(f, Overrides::default()).unwrap();
        assert!(c.consensus.is_enabled(), "an explicit true is honoured");
        let text = format!("{FULL}\n[consensus]\nenabled = true\nelection_timeout_min_ms = 200\n");
        let f: FileConfig = toml::from_str(&text).unwrap();
        let err = Config::resolve(f, Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("`consensus`"), "{err}");
        assert_eq!(c.consensus.stalled_after_ms, 10_000);
        let text = format!("{FULL}\n[consensus]\nstalled_after_ms = 999\n");
        let err = Config::resolve(toml::from_str(&text).unwrap(), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stalled_after_ms must be at least 1000"),
            "{err}"
        );
    }

    #[test]
    fn the_reshare_window_is_bounded() {
        let c = Config::resolve(toml::from_str(FULL).unwrap(), Overrides::default()).unwrap();
        assert_eq!(c.heal.reshare_window_ms, 20_000);
        for bad in [1_999, 25_001] {
            let text = format!("{FULL}\n[heal]\nreshare_window_ms = {bad}\n");
            let err = Config::resolve(toml::from_str(&text).unwrap(), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("reshare_window_ms must be between 2000 and 25000"),
                "{err}"
            );
        }
    }

    #[test]
    fn errors_name_the_setting() {
        let err = toml::from_str::<FileConfig>("idd = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("idd"), "{err}");
        let mut f: FileConfig = toml::from_str(FULL).unwrap();
        f.tls.key = None;
        let err = Config::resolve(f, Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls.key"), "{err}");
        let f: FileConfig = toml::from_str(FULL).unwrap();
        let err = Config::resolve(
            f,
            Overrides {
                id: Some("Bad_Id".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`id`"), "{err}");
    }

    /// The field names a derived `Deserialize` asks for (serde passes them
    /// to `deserialize_struct`), so the reference can be checked against
    /// the structs themselves.
    fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        use serde::de::{Error as _, Visitor};
        struct Grab<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Grab<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(Self::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(Self::Error::custom("fields taken"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut out: &'static [&'static str] = &[];
        let _ = T::deserialize(Grab(&mut out));
        out
    }

    #[test]
    fn reference_names_every_key_and_only_real_ones() {
        // Only real keys: the reference is a valid configuration.
        let parsed: FileConfig = toml::from_str(REFERENCE).expect("reference parses");
        assert_eq!(
            parsed.probe.suspicion_max(),
            std::time::Duration::from_millis(6000)
        );
        // Every key: each field of each section appears in it.
        let table: toml::Table = toml::from_str(REFERENCE).unwrap();
        let top = fields::<FileConfig>();
        assert!(top.len() >= 10, "introspection works: {top:?}");
        for key in top {
            assert!(table.contains_key(*key), "reference lacks `{key}`");
        }
        let sections: [(&str, &[&str]); 9] = [
            ("tls", fields::<TlsConfig>()),
            ("listen", fields::<ListenConfig>()),
            ("discovery", fields::<DiscoveryConfig>()),
            ("probe", fields::<ProbeConfig>()),
            ("custody", fields::<CustodyConfig>()),
            ("heal", fields::<HealConfig>()),
            ("artifacts", fields::<ArtifactsConfig>()),
            ("consensus", fields::<ConsensusConfig>()),
            ("members", fields::<Member>()),
        ];
        for (section, keys) in sections {
            assert!(!keys.is_empty(), "introspection of [{section}]");
            let t = match &table[section] {
                toml::Value::Table(t) => t,
                toml::Value::Array(a) => a[0].as_table().unwrap(),
                other => panic!("[{section}] is {other:?}"),
            };
            for key in keys {
                assert!(t.contains_key(*key), "reference lacks `{section}.{key}`");
            }
        }
    }
}
