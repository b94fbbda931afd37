//! The files of a local mesh: identities, mesh CA and certificates, a vault
//! sealed to the holders, each validator's import bundle and config, and
//! the artifact trust policy. docs/local-mesh.md describes every file.

use crate::cli::create::{shard_path, write_vault};
use crate::cli::keygen::write_identity;
use crate::cli::meshca::{write_ca, write_issued};
use crate::cli::now_unix;
use crate::cli::policy::{genesis, write_policy};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use vault::create::{create, NewVault};
use vault::fsio::{self, Mode};
use vault::governance::{Survives, TransitionPolicy};
use vault::identity::SecretIdentity;
use vault::meshca::{self, Role};
use vault::policy::{Policy, ThresholdSpec};

/// Timings written into every validator's config. The demo's are short so
/// a loss heals in seconds; [`Settings::describe`] says what they are.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// `[probe] interval_ms`.
    pub probe_interval_ms: u64,
    /// `[probe] timeout_ms`.
    pub probe_timeout_ms: u64,
    /// `[heal] interval_ms`.
    pub heal_interval_ms: u64,
    /// `[heal] grace_ms`: how long a holder is dead before its share moves.
    pub grace_ms: u64,
    /// `[heal] refresh`: re-share to a fresh polynomial after a repair.
    pub refresh: bool,
    /// `[custody] interval_ms`.
    pub custody_interval_ms: u64,
    /// `[artifacts] sync_interval_ms`.
    pub artifact_sync_ms: u64,
}

impl Settings {
    /// Short timings for the demo and a development mesh (the daemon's
    /// defaults: probe 500/250 ms, heal interval 1 s, grace 30 s, custody
    /// 10 s).
    pub const FAST: Settings = Settings {
        probe_interval_ms: 200,
        probe_timeout_ms: 150,
        heal_interval_ms: 300,
        grace_ms: 1000,
        refresh: true,
        custody_interval_ms: 2000,
        artifact_sync_ms: 200,
    };

    /// The settings in words, as the demo prints them.
    pub fn describe(&self) -> String {
        format!(
            "probe every {} ms (timeout {} ms), heal check every {} ms, heal grace {} ms \
             (daemon default 30 s), refresh after repair {}, custody check every {} ms, \
             artifact sync every {} ms",
            self.probe_interval_ms,
            self.probe_timeout_ms,
            self.heal_interval_ms,
            self.grace_ms,
            if self.refresh { "on" } else { "off" },
            self.custody_interval_ms,
            self.artifact_sync_ms
        )
    }
}

/// One validator of the local mesh.
#[derive(Clone, Debug)]
pub struct Node {
    /// Validator id (`validator-K`).
    pub id: String,
    /// Its directory, `DIR/validator-K`.
    pub dir: PathBuf,
    /// Peer (mTLS) address.
    pub peer: SocketAddr,
    /// Ops (plain HTTP: /healthz, /readyz, /metrics) address.
    pub ops: SocketAddr,
    /// Application (artifact) address.
    pub app: SocketAddr,
    /// Holds a shard of the vault at epoch 1 (otherwise a spare).
    pub holder: bool,
}

impl Node {
    /// `validator.toml`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("validator.toml")
    }
    /// `validator.log` (its stderr).
    pub fn log(&self) -> PathBuf {
        self.dir.join("validator.log")
    }
    /// `validator.pid` (while it runs).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("validator.pid")
    }
}

/// What [`generate`] made.
pub struct Generated {
    /// Validators, holders first.
    pub nodes: Vec<Node>,
    /// Vault id (hex).
    pub vault_id: String,
    /// Threshold.
    pub t: u8,
    /// Shares at epoch 1 (the holders).
    pub n: u8,
    /// The operator-signed transition policy (`vault create`'s default).
    pub policy: TransitionPolicy,
    /// What that policy survives.
    pub survives: Survives,
    /// `DIR/keys`: every identity (validators, operator, publisher).
    pub keys: PathBuf,
}

/// Id of validator `k` (1-based).
pub fn validator_id(k: usize) -> String {
    format!("validator-{k}")
}

/// Refuses a directory that exists and is not empty.
pub fn require_empty(dir: &Path) -> Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; give a new directory (or `vault mesh down {0}` and remove it)",
            dir.display()
        );
    }
    Ok(())
}

/// Writes a whole local mesh into the empty directory `dir`: `holders`
/// validators holding a `threshold`-of-`holders` vault (the default
/// majority threshold and transition policy of `vault create`) and
/// `spares` validators holding nothing. `secret` is shared when given
/// (the demo keeps it to compare), else a random one that exists only as
/// shards.
pub fn generate(
    dir: &Path,
    holders: u8,
    spares: u8,
    settings: &Settings,
    secret: Option<&[u8]>,
) -> Result<Generated> {
    if holders < 2 {
        bail!("a mesh needs at least 2 holders");
    }
    let total = usize::from(holders) + usize::from(spares);
    if total > 200 {
        bail!("at most 200 validators");
    }
    require_empty(dir)?;
    fsio::create_private_dir(dir)?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let keys = dir.join("keys");

    let operator = SecretIdentity::generate("operator")?;
    write_identity(&operator, &keys, false)?;
    let publisher = SecretIdentity::generate("publisher")?;
    write_identity(&publisher, &keys, false)?;

    let ca = meshca::init("pqvault local mesh CA", 3650)?;
    write_ca(&ca, &dir.join("ca"))?;
    // The operator's client certificate (`vault mesh status`): read-only.
    let op_tls = meshca::issue(
        &ca.cert_pem,
        &ca.key_pem,
        "operator",
        &operator.public().fingerprint(),
        Role::Operator,
        &[],
        &[],
        365,
    )?;
    write_issued(&op_tls, &dir.join("operator-tls"), "operator")?;

    let mut ports = PortPicker::new();
    let mut nodes = Vec::with_capacity(total);
    let mut identities = Vec::with_capacity(total);
    for k in 1..=total {
        let id = validator_id(k);
        let v = SecretIdentity::generate(&id)?;
        write_identity(&v, &keys, false)?;
        let node_dir = dir.join(&id);
        let issued = meshca::issue(
            &ca.cert_pem,
            &ca.key_pem,
            &id,
            &v.public().fingerprint(),
            Role::Validator,
            &[],
            &["127.0.0.1".parse()?],
            365,
        )?;
        write_issued(&issued, &node_dir.join("tls"), &id)?;
        fsio::create_private_dir(&node_dir.join("import"))?;
        nodes.push(Node {
            id,
            dir: node_dir,
            peer: ports.next()?,
            ops: ports.next()?,
            app: ports.next()?,
            holder: k <= usize::from(holders),
        });
        identities.push(v);
    }

    let recipients: Vec<_> = identities[..usize::from(holders)]
        .iter()
        .map(|v| v.public().clone())
        .collect();
    let created = create(&NewVault {
        initial_keys: &[],
        secret,
        recipients: &recipients,
        threshold: ThresholdSpec::Auto(Policy::Majority),
        signer: &operator,
        created_unix: now_unix(),
    })?;
    let (policy, survives) = genesis(created.vault_id, created.threshold, created.n, None, None)?;
    let vault_dir = dir.join("vault");
    write_vault(&created, &vault_dir)?;
    write_policy(&policy, &operator, &vault_dir.join("policy.pqvl"))?;

    // Each holder's import bundle: the manifest, the policy, its own shard.
    for (s, node) in created.shards.iter().zip(&nodes) {
        let import = node.dir.join("import");
        for (from, to) in [
            (
                vault_dir.join("manifest.pqvm"),
                import.join("manifest.pqvm"),
            ),
            (vault_dir.join("policy.pqvl"), import.join("policy.pqvl")),
            (
                shard_path(&vault_dir, s.index, &s.recipient_name),
                shard_path(&import, s.index, &s.recipient_name),
            ),
        ] {
            std::fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }

    let trust = dir.join("trust.toml");
    fsio::write_atomic(
        &trust,
        b"# Artifact trust policy of the local mesh (docs/artifacts.md).\nversion = 1\n\
          [[publisher]]\nname = \"local-publisher\"\nidentity = \"keys/publisher.pub\"\nmodels = [\"snn-*\"]\n",
        Mode::Public,
        false,
    )?;
    for node in &nodes {
        let text = config_toml(&dir, node, &nodes, settings);
        fsio::write_atomic(&node.config(), text.as_bytes(), Mode::Public, false)?;
    }
    Ok(Generated {
        nodes,
        vault_id: created.vault_id.to_string(),
        t: created.threshold,
        n: created.n,
        policy,
        survives,
        keys,
    })
}

/// Validator `node`'s `validator.toml`. Every config lists every member,
/// itself included: a validator drops its own id from `[[members]]`, so
/// the lists are identical.
fn config_toml(root: &Path, node: &Node, all: &[Node], s: &Settings) -> String {
    let p = |p: &Path| toml_str(&p.display().to_string());
    let mut t = String::new();
    let _ = write!(
        t,
        "# Generated by `vault demo` / `vault mesh up` (docs/local-mesh.md).\n\
         id = {id}\ndata_dir = {data}\nidentity_key = {key}\ntrusted_signer = {op}\nimport_dir = {import}\n\n\
         [tls]\nca = {ca}\ncert = {cert}\nkey = {tkey}\n\n\
         [listen]\npeer = \"{peer}\"\nops = \"{ops}\"\napp = \"{app}\"\n\n\
         [probe]\ninterval_ms = {pi}\ntimeout_ms = {pt}\n\n\
         [heal]\nauto = true\ninterval_ms = {hi}\ngrace_ms = {grace}\nrefresh = {refresh}\n\n\
         [custody]\ninterval_ms = {ci}\n\n\
         [artifacts]\npolicy = {trust}\nsync_interval_ms = {sync}\n",
        id = toml_str(&node.id),
        data = p(&node.dir.join("data")),
        key = p(&root.join("keys").join(format!("{}.key", node.id))),
        op = p(&root.join("keys/operator.pub")),
        import = p(&node.dir.join("import")),
        ca = p(&root.join("ca/mesh-ca.crt")),
        cert = p(&node.dir.join(format!("tls/{}.crt", node.id))),
        tkey = p(&node.dir.join(format!("tls/{}.tls.key", node.id))),
        peer = node.peer,
        ops = node.ops,
        app = node.app,
        pi = s.probe_interval_ms,
        pt = s.probe_timeout_ms,
        hi = s.heal_interval_ms,
        grace = s.grace_ms,
        refresh = s.refresh,
        ci = s.custody_interval_ms,
        trust = p(&root.join("trust.toml")),
        sync = s.artifact_sync_ms,
    );
    for m in all {
        let _ = write!(
            t,
            "\n[[members]]\nid = {}\naddr = \"{}\"\n",
            toml_str(&m.id),
            m.peer
        );
    }
    t
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Picks free listener ports on 127.0.0.1 below the kernel's ephemeral
/// range, so no outbound connection (the validators probe each other
/// constantly) takes one between this check and the validator's bind.
struct PortPicker {
    next: u32,
    tried: u32,
    base: u32,
    span: u32,
}

impl PortPicker {
    fn new() -> Self {
        let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(32768);
        let (base, span) = (10_000u32, ephemeral_low.saturating_sub(10_000).max(1000));
        // Start somewhere different per process so meshes made at the same
        // time (tests) rarely try the same ports.
        let mut seed = [0u8; 4];
        let _ = aws_lc_rs::rand::fill(&mut seed);
        PortPicker {
            next: u32::from_le_bytes(seed) % span,
            tried: 0,
            base,
            span,
        }
    }

    fn next(&mut self) -> Result<SocketAddr> {
        while self.tried < self.span {
            let port = (self.base + self.next % self.span) as u16;
            self.next += 1;
            self.tried += 1;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
        bail!("no free port on 127.0.0.1 below the ephemeral range")
    }
}
