//! Test harness: a mesh of real `validator` processes on loopback.
//!
//! [`Mesh::new`] makes, in a temporary directory, a mesh CA, one identity
//! and TLS certificate per validator, an operator, and a vault sealed to the
//! validators with the `vault` CLI; then writes each validator's config and
//! import folder. Validators are started, killed with SIGKILL, restarted and
//! have their files corrupted like a real operator (or failure) would.
//!
//! The binaries are the workspace's own `validator` and `vault`, found next
//! to the test executable (`cargo test --workspace` builds them).

pub mod artifacts;
pub mod deploy;
pub mod observability;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built alongside the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` (cargo test --workspace does)",
        p.display()
    );
    p
}

/// Runs the `vault` CLI; panics with its stderr on failure.
pub fn vault(args: &[&str]) -> String {
    let out = Command::new(bin("vault"))
        .args(args)
        .output()
        .expect("run vault");
    assert!(
        out.status.success(),
        "vault {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 for a listener.
///
/// Ports come from below the kernel's ephemeral range, so no outbound
/// connection (the validators probe each other constantly) can take one
/// between this check and the validator's bind; a per-process counter keeps
/// tests running in parallel apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (base, span) = (10_000u32, ephemeral_low.saturating_sub(10_000).max(1000));
    let start = std::process::id().wrapping_mul(7919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "no free listener port below the ephemeral range");
        let port = (base + (start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One validator of the mesh.
pub struct Node {
    /// Validator id.
    pub id: String,
    /// Its directory (keys, config, data).
    pub dir: PathBuf,
    /// Peer (mTLS) address.
    pub peer: SocketAddr,
    /// Ops (HTTP) address.
    pub ops: SocketAddr,
    child: Option<Child>,
}

/// The whole test mesh.
pub struct Mesh {
    /// Temporary root (removed on drop).
    pub root: tempfile::TempDir,
    /// Validators, index i has id `validator-{i+1}`.
    pub nodes: Vec<Node>,
    /// Vault id (hex) of the vault created.
    pub vault_id: String,
    /// Validators a test made panic on purpose (see [`Mesh::expect_panic`]).
    expected_panics: Vec<usize>,
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

impl Mesh {
    /// Prepares `n` validators holding a `t`-of-`n` vault (not started).
    pub fn new(n: usize, t: usize) -> Mesh {
        Mesh::with_spares(n, t, 0)
    }

    /// Like [`Mesh::new`], plus `spares` members that hold no shard
    /// (replacements): `validator-{n+1}` onwards.
    pub fn with_spares(n: usize, t: usize, spares: usize) -> Mesh {
        Mesh::with_suite(n, t, spares, None)
    }

    /// Like [`Mesh::with_spares`], with every validator identity of KEM
    /// suite `kem_suite` (a `vault keygen --kem-suite` name; `None` is the
    /// default suite), so the vault is sealed with it.
    pub fn with_suite(n: usize, t: usize, spares: usize, kem_suite: Option<&str>) -> Mesh {
        Mesh::build(n, t, spares, kem_suite, None)
    }

    /// Like [`Mesh::with_spares`], with the operator-signed transition
    /// policy `vault create --byzantine F --floor FLOOR` writes, given to
    /// every holder in its import bundle.
    pub fn with_policy(n: usize, t: usize, spares: usize, f: u8, floor: u8) -> Mesh {
        Mesh::build(n, t, spares, None, Some((f, floor)))
    }

    fn build(
        n: usize,
        t: usize,
        spares: usize,
        kem_suite: Option<&str>,
        policy: Option<(u8, u8)>,
    ) -> Mesh {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        vault(&["mesh-ca", "init", "--out", p(&r.join("ca"))]);
        vault(&[
            "keygen",
            "--name",
            "operator",
            "--out",
            p(&r.join("operator")),
        ]);
        let mut nodes = Vec::new();
        for i in 1..=n + spares {
            let id = format!("validator-{i}");
            let dir = r.join(&id);
            let out = dir.join("identity");
            let mut args = vec!["keygen", "--name", &id, "--out", p(&out)];
            if let Some(suite) = kem_suite {
                args.extend(["--kem-suite", suite]);
            }
            vault(&args);
            // The test's oracle keeps a copy of each initial key (the
            // validator erases its own at start), to open the genesis
            // shards after the mesh moved on; a real operator destroys it.
            fs::create_dir_all(r.join("initial-keys")).expect("mkdir");
            fs::copy(
                out.join(format!("{id}.ikey")),
                r.join(format!("initial-keys/{id}.ikey")),
            )
            .expect("copy initial key");
            vault(&[
                "mesh-ca",
                "issue",
                "--ca",
                p(&r.join("ca")),
                "--id",
                &id,
                "--identity",
                p(&out.join(format!("{id}.pub"))),
                "--ip",
                "127.0.0.1",
                "--out",
                p(&dir.join("tls")),
            ]);
            let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let ops: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            nodes.push(Node {
                id,
                dir,
                peer,
                ops,
                child: None,
            });
        }
        let mut args = vec![
            "create".to_string(),
            "--signer".into(),
            p(&r.join("operator/operator.key")).into(),
        ];
        for node in &nodes[..n] {
            args.push("--recipient".into());
            args.push(p(&node.dir.join(format!("identity/{}.pub", node.id))).into());
        }
        args.extend([
            "--threshold".into(),
            t.to_string(),
            "--out".into(),
            p(&r.join("vault")).into(),
        ]);
        // Without a policy in their bundles the validators run the legacy
        // rules (f = 0); the file `create` writes is then unused.
        if let Some((f, floor)) = policy {
            args.extend([
                "--byzantine".into(),
                f.to_string(),
                "--floor".into(),
                floor.to_string(),
            ]);
        }
        vault(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let info = vault(&["inspect", "--json", p(&r.join("vault/manifest.pqvm"))]);
        let json: serde_json::Value = serde_json::from_str(&info).expect("inspect json");
        let vault_id = json["vault_id"].as_str().expect("vault id").to_string();

        // Each holder's import folder: the manifest and its own shard.
        for node in &nodes[n..] {
            fs::create_dir_all(node.dir.join("import")).expect("mkdir");
        }
        for (i, node) in nodes[..n].iter().enumerate() {
            let import = node.dir.join("import");
            fs::create_dir_all(&import).expect("mkdir");
            fs::copy(r.join("vault/manifest.pqvm"), import.join("manifest.pqvm")).expect("copy");
            let shard = format!("shard-{:03}-{}.shard", i + 1, node.id);
            fs::copy(r.join("vault").join(&shard), import.join(&shard)).expect("copy");
            if policy.is_some() {
                fs::copy(r.join("vault/policy.pqvl"), import.join("policy.pqvl")).expect("copy");
            }
        }
        let mesh = Mesh {
            root,
            nodes,
            vault_id,
            expected_panics: Vec::new(),
        };
        for i in 0..mesh.nodes.len() {
            mesh.write_config(i);
        }
        mesh
    }

    fn write_config(&self, i: usize) {
        let node = &self.nodes[i];
        let d = &node.dir;
        let mut toml = format!(
            "id = \"{id}\"\ndata_dir = \"{data}\"\nidentity_key = \"{key}\"\ntrusted_signer = \"{op}\"\nimport_dir = \"{import}\"\n\
             [tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{tkey}\"\n[listen]\npeer = \"{peer}\"\nops = \"{ops}\"\n\
             [probe]\ninterval_ms = 200\ntimeout_ms = 150\n[heal]\nauto = true\ninterval_ms = 300\ngrace_ms = 600\nreshare_after_ms = 600000\nreshare_window_ms = 8000\nrefresh = false\n[custody]\ninterval_ms = 500\n",
            id = node.id,
            data = p(&d.join("data")),
            key = p(&d.join(format!("identity/{}.key", node.id))),
            op = p(&self.root.path().join("operator/operator.pub")),
            import = p(&d.join("import")),
            ca = p(&self.root.path().join("ca/mesh-ca.crt")),
            cert = p(&d.join(format!("tls/{}.crt", node.id))),
            tkey = p(&d.join(format!("tls/{}.tls.key", node.id))),
            peer = node.peer,
            ops = node.ops,
        );
        // The epoch log is on, as by default with static members
        // (docs/decisions.md D55), with short timeouts: heartbeat 100 ms,
        // election 500-1000 ms, a stalled decision refused after 2 s (10 s
        // by default).
        toml.push_str(
            "[consensus]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\nstalled_after_ms = 2000\n",
        );
        for m in &self.nodes {
            toml.push_str(&format!(
                "[[members]]\nid = \"{}\"\naddr = \"{}\"\n",
                m.id, m.peer
            ));
        }
        fs::write(d.join("validator.toml"), toml).expect("write config");
    }

    /// Turns autonomous healing off on every validator (for tests that
    /// drive repair rounds themselves). Call before starting them.
    pub fn disable_auto_heal(&self) {
        self.edit_configs("auto = true", "auto = false");
    }

    /// Sets the healing grace period of every validator (default 600 ms
    /// here). Call before starting them.
    pub fn set_heal_grace_ms(&self, ms: u64) {
        self.edit_configs("grace_ms = 600", &format!("grace_ms = {ms}"));
    }

    /// Replaces the harness's fast `[probe]` settings (200 ms interval,
    /// 150 ms timeout) with the daemon's shipped defaults. Call before
    /// starting the validators.
    pub fn use_default_probe_settings(&self) {
        self.edit_configs(
            "[probe]\ninterval_ms = 200\ntimeout_ms = 150\n",
            "[probe]\n",
        );
    }

    /// Turns Lifeguard off (plain SWIM, `probe.lifeguard = false`), for
    /// comparison only. Call after [`Mesh::use_default_probe_settings`],
    /// before starting the validators.
    pub fn use_plain_swim(&self) {
        self.edit_configs("[probe]\n", "[probe]\nlifeguard = false\n");
    }

    /// Sets how long lost shares wait for spares before the survivors
    /// re-share (default 10 minutes here, so no test re-shares unasked).
    pub fn set_reshare_after_ms(&self, ms: u64) {
        self.edit_configs(
            "reshare_after_ms = 600000",
            &format!("reshare_after_ms = {ms}"),
        );
    }

    /// Sets every validator's custody-check interval (500 ms here so tests
    /// see a flipped byte quickly; the daemon's default is 10 s).
    pub fn set_custody_interval_ms(&self, ms: u64) {
        self.edit_configs(
            "[custody]\ninterval_ms = 500",
            &format!("[custody]\ninterval_ms = {ms}"),
        );
    }

    /// Sets every validator's per-port connection cap and header/idle
    /// timeout (`[listen]`).
    pub fn set_listen_limits(&self, max_connections: usize, header_timeout_ms: u64) {
        self.edit_configs(
            "[listen]\n",
            &format!(
                "[listen]\nmax_connections = {max_connections}\nheader_timeout_ms = {header_timeout_ms}\n"
            ),
        );
    }

    /// The vault created, as its id.
    pub fn vault(&self) -> vault::manifest::VaultId {
        let bytes: [u8; 16] = hex::decode(&self.vault_id)
            .expect("vault id in hex")
            .try_into()
            .expect("16 bytes");
        vault::manifest::VaultId::from_bytes(bytes)
    }

    /// Sets every validator's request-body timeout and the bytes of request
    /// bodies its peer port holds at once (`[listen]`).
    pub fn set_body_limits(&self, body_timeout_ms: u64, body_budget_kib: usize) {
        self.edit_configs(
            "[listen]\n",
            &format!(
                "[listen]\nbody_timeout_ms = {body_timeout_ms}\nbody_budget_kib = {body_budget_kib}\n"
            ),
        );
    }

    /// Turns on the refresh after every repair (off by default here, so
    /// tests see the repair epoch itself).
    pub fn enable_refresh(&self) {
        self.edit_configs("refresh = false", "refresh = true");
    }

    /// Turns the epoch log off at every validator (`enabled = false`), for
    /// tests of what the signers alone decide. Call before starting them.
    pub fn disable_consensus(&self) {
        self.edit_configs("[consensus]\n", "[consensus]\nenabled = false\n");
    }

    /// Turns the epoch log on at validator `i` explicitly: the default is
    /// off for a validator that lists no static member (discovery only).
    pub fn enable_consensus_at(&self, i: usize) {
        self.edit_config(i, "[consensus]\n", "[consensus]\nenabled = true\n");
    }

    fn edit_configs(&self, from: &str, to: &str) {
        for i in 0..self.nodes.len() {
            self.edit_config(i, from, to);
        }
    }

    fn edit_config(&self, i: usize, from: &str, to: &str) {
        let p = self.config(i);
        let text = fs::read_to_string(&p).expect("config");
        assert!(text.contains(from), "config has no {from:?}");
        fs::write(&p, text.replace(from, to)).expect("config");
    }

    /// Replaces validator `i`'s static member list by DNS discovery of
    /// `name` on `port`. Call before starting it.
    pub fn use_dns_discovery(&self, i: usize, name: &str, port: u16) {
        let p = self.config(i);
        let text = fs::read_to_string(&p).expect("config");
        let cut = text.find("[[members]]").expect("config has members");
        let toml = format!(
            "{}[discovery]\ndns = \"{name}\"\nport = {port}\ninterval_ms = 200\n",
            &text[..cut]
        );
        fs::write(&p, toml).expect("config");
    }

    /// Validator `i` no longer lists validator `j` as a static member and
    /// finds it by DNS discovery instead (`localhost` at `j`'s peer port).
    pub fn discover_instead_of_listing(&self, i: usize, j: usize) {
        let p = self.config(i);
        let text = fs::read_to_string(&p).expect("config");
        let entry = format!(
            "[[members]]\nid = \"{}\"\naddr = \"{}\"\n",
            self.nodes[j].id, self.nodes[j].peer
        );
        assert!(
            text.contains(&entry),
            "validator-{} lists no {entry:?}",
            i + 1
        );
        let toml = format!(
            "{}[discovery]\ndns = \"localhost\"\nport = {}\ninterval_ms = 200\n",
            text.replace(&entry, ""),
            self.nodes[j].peer.port()
        );
        fs::write(&p, toml).expect("config");
    }

    /// Path of validator `i`'s config file.
    pub fn config(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("validator.toml")
    }

    /// Starts validator `i` and waits until `/readyz` answers 200.
    pub fn start(&mut self, i: usize) {
        self.start_with_env(i, &[]);
    }

    /// Like [`Mesh::start`], with extra environment variables (for example
    /// `FAILPOINTS`, see `validator::failpoint`).
    pub fn start_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.spawn(i, env);
        self.wait_ready(i);
    }

    /// Starts validator `i` without waiting for it.
    fn spawn(&mut self, i: usize, env: &[(&str, &str)]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.nodes[i].dir.join("validator.log"))
            .expect("log");
        let child = Command::new(bin("validator"))
            .arg("--config")
            .arg(self.config(i))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn validator");
        self.nodes[i].child = Some(child);
    }

    /// Waits until validator `i` reports ready; panics with its log if it
    /// exits or takes more than 20 s.
    fn wait_ready(&mut self, i: usize) {
        let ops = self.nodes[i].ops;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "validator-{} exited with {status} during start: {}",
                    i + 1,
                    self.log(i)
                );
            }
            if http_get(ops, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("validator-{} not ready in time: {}", i + 1, self.log(i));
    }

    /// Like [`Mesh::start_all`], with extra environment variables for some
    /// validators (`(index, variables)`).
    pub fn start_all_with(&mut self, special: &[(usize, &[(&str, &str)])]) {
        for i in 0..self.nodes.len() {
            let env = special
                .iter()
                .find(|(j, _)| *j == i)
                .map_or(&[][..], |(_, e)| *e);
            self.spawn(i, env);
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i);
        }
    }

    /// Starts every validator: all processes first, then waits for each,
    /// so that none comes up seconds after another (on a loaded machine
    /// one at a time did, and the first counted the last lost).
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.spawn(i, &[]);
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i);
        }
    }

    /// Waits up to `timeout` for validator `i` to exit on its own; returns
    /// its exit status, or `None` if it is still running.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.nodes[i].child.as_mut()?.try_wait().ok().flatten();
            if let Some(status) = status {
                self.nodes[i].child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Declares that validator `i` is made to panic on purpose, so the
    /// check on drop does not fail the test for it.
    pub fn expect_panic(&mut self, i: usize) {
        self.expected_panics.push(i);
    }

    /// Sends SIGKILL to validator `i` and reaps it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill(); // SIGKILL on Unix
            let _ = c.wait();
        }
    }

    /// Sends SIGSTOP to validator `i`: a pause (a GC stall, CPU throttling,
    /// a debugger) that its peers cannot tell from a death at first.
    pub fn pause(&self, i: usize) {
        self.signal(i, "STOP");
    }

    /// Sends SIGCONT to validator `i` after [`Mesh::pause`].
    pub fn resume(&self, i: usize) {
        self.signal(i, "CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.pid(i).expect("validator running");
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{sig} {pid} failed");
    }

    /// A mesh client trusting this mesh's CA and presenting the certificate
    /// `<cert_dir>/<id>.crt` with key `<cert_dir>/<id>.tls.key`.
    pub fn client_with_cert(&self, cert_dir: &Path, id: &str) -> validator::peer::PeerClient {
        let t = self.tls_with_cert(cert_dir, id);
        validator::peer::PeerClient::new(t.client, Duration::from_secs(5))
    }

    /// This mesh's TLS configuration presenting `<cert_dir>/<id>.crt`.
    fn tls_with_cert(&self, cert_dir: &Path, id: &str) -> validator::tls::MeshTls {
        validator::tls::load(
            &self.root.path().join("ca/mesh-ca.crt"),
            &cert_dir.join(format!("{id}.crt")),
            &cert_dir.join(format!("{id}.tls.key")),
            id,
        )
        .expect("load TLS material")
    }

    /// Validator `i`'s mesh TLS configuration, for tests that speak raw
    /// HTTP over mutual TLS.
    pub fn tls_as(&self, i: usize) -> validator::tls::MeshTls {
        let n = &self.nodes[i];
        self.tls_with_cert(&n.dir.join("tls"), &n.id)
    }

    /// A mesh client speaking as validator `i`.
    pub fn client_as(&self, i: usize) -> validator::peer::PeerClient {
        let n = &self.nodes[i];
        self.client_with_cert(&n.dir.join("tls"), &n.id)
    }

    /// Validator `i` as a peer to dial.
    pub fn member(&self, i: usize) -> validator::config::Member {
        validator::config::Member {
            id: self.nodes[i].id.clone(),
            addr: self.nodes[i].peer.to_string(),
        }
    }

    /// Validator `i`'s identity secret key (from its folder).
    pub fn secret_key(&self, i: usize) -> vault::identity::SecretIdentity {
        let n = &self.nodes[i];
        vault::identity::SecretIdentity::decode(
            &fs::read(n.dir.join(format!("identity/{}.key", n.id))).expect("key"),
        )
        .expect("valid key")
    }

    /// Puts validator `i`'s initial key file back beside its identity key,
    /// as an operator who kept the `.ikey` (or an identity made before
    /// initial keys) would have it: its genesis bundle opens again.
    pub fn restore_initial_key(&self, i: usize) {
        let n = &self.nodes[i];
        fs::copy(
            self.root.path().join(format!("initial-keys/{}.ikey", n.id)),
            n.dir.join(format!("identity/{}.ikey", n.id)),
        )
        .expect("restore initial key");
    }

    /// Every validator's initial KEM key, as `vault keygen` made it (the
    /// validators erase their own copies): opens the genesis shards.
    pub fn initial_keys(&self) -> Vec<vault::epoch_key::EpochKey> {
        self.nodes
            .iter()
            .map(|n| {
                let bytes = fs::read(self.root.path().join(format!("initial-keys/{}.ikey", n.id)))
                    .expect("initial key copy");
                vault::initial_key::decode_secret(&bytes)
                    .expect("valid initial key")
                    .1
            })
            .collect()
    }

    /// Validator `i`'s keys as whoever holds its disk and its key file
    /// has them: the identity, and the epoch keys its data directory holds
    /// now (read only).
    pub fn keyring(&self, i: usize) -> validator::keyring::Keyring {
        validator::keyring::Keyring::open_read_only(
            &self.nodes[i].dir.join("data"),
            std::sync::Arc::new(self.secret_key(i)),
        )
        .expect("readable key ring")
    }

    /// Opens `sealed`, a shard of validator `i`, with [`Mesh::keyring`].
    pub fn open_as(
        &self,
        i: usize,
        sealed: &[u8],
    ) -> Result<vault::share::ShareRecord, vault::seal::SealError> {
        self.keyring(i).open_shard(sealed)
    }

    /// [`Mesh::open_as`], encoded as a `PQVU` share record (what `vault
    /// unseal` writes and `vault recover --share` reads).
    pub fn unsealed_as(&self, i: usize, sealed: &[u8]) -> Vec<u8> {
        self.open_as(i, sealed)
            .expect("our own shard")
            .encode()
            .to_vec()
    }

    /// Validator `i`'s public identity (from its folder).
    pub fn public_identity(&self, i: usize) -> vault::identity::PublicIdentity {
        let n = &self.nodes[i];
        vault::identity::PublicIdentity::decode(
            &fs::read(n.dir.join(format!("identity/{}.pub", n.id))).expect("pub"),
        )
        .expect("valid identity")
    }

    /// Process id of running validator `i`.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// User plus system CPU seconds validator `i` has used so far (from
    /// /proc; 0 if it is not running).
    pub fn cpu_seconds(&self, i: usize) -> f64 {
        let Some(pid) = self.pid(i) else {
            return 0.0;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line, in clock ticks (100
        // per s).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Resident set size of running validator `i`, in KiB (from /proc).
    pub fn rss_kib(&self, i: usize) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid(i)?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Runs validator `i` to completion with extra args (e.g. `--check`).
    pub fn run_once(&self, i: usize, extra: &[&str]) -> Output {
        Command::new(bin("validator"))
            .arg("--config")
            .arg(self.config(i))
            .args(extra)
            .output()
            .expect("run validator")
    }

    /// Validator `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(self.nodes[i].dir.join("validator.log")).unwrap_or_default()
    }

    /// The text of validator `i`'s `/metrics`.
    pub fn metrics(&self, i: usize) -> String {
        http_get(self.nodes[i].ops, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Waits until `cond(metrics of i)` holds, up to `timeout`.
    pub fn wait_metrics(&self, i: usize, timeout: Duration, cond: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond(&self.metrics(i)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `vault mesh remove` as the operator, through validators `via`
    /// (indices), with `extra` arguments (member ids, `--dead-after`,
    /// `--readmit`, ...); its output.
    pub fn remove_members(&self, via: &[usize], extra: &[&str]) -> String {
        let tls = self.operator_tls();
        let r = self.root.path();
        let mut args: Vec<String> = [
            "mesh",
            "remove",
            "--ca",
            p(&r.join("ca/mesh-ca.crt")),
            "--cert",
            p(&tls.join("operator.crt")),
            "--key",
            p(&tls.join("operator.tls.key")),
            "--signer",
            p(&r.join("operator/operator.key")),
        ]
        .map(str::to_string)
        .to_vec();
        for &i in via {
            args.push("--validator".into());
            args.push(format!("{}@{}", self.nodes[i].id, self.nodes[i].peer));
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        vault(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Issues an operator-role certificate from the mesh's CA for the
    /// operator's identity (`vault mesh-ca issue --role operator`), once,
    /// and returns its directory.
    pub fn operator_tls(&self) -> PathBuf {
        let r = self.root.path();
        let tls = r.join("operator-tls");
        if tls.join("operator.crt").exists() {
            return tls;
        }
        vault(&[
            "mesh-ca",
            "issue",
            "--ca",
            p(&r.join("ca")),
            "--id",
            "operator",
            "--identity",
            p(&r.join("operator/operator.pub")),
            "--role",
            "operator",
            "--out",
            p(&tls),
        ]);
        tls
    }

    /// The operator's secret key (it signed the vault's genesis).
    pub fn operator_key(&self) -> vault::identity::SecretIdentity {
        let bytes = fs::read(self.root.path().join("operator/operator.key")).expect("operator key");
        vault::identity::SecretIdentity::decode(&bytes).expect("operator key")
    }

    /// Waits until each of `nodes` sees every other one of `nodes` alive
    /// (its `pqvault_peer_state`), so a test acts on a settled view; panics
    /// after 20 s.
    pub fn wait_all_alive(&self, nodes: &[usize]) {
        for &i in nodes {
            let settled = self.wait_metrics(i, Duration::from_secs(20), |m| {
                nodes.iter().filter(|&&j| j != i).all(|&j| {
                    let alive = format!("peer=\"validator-{}\",state=\"alive\"", j + 1);
                    sample(m, "pqvault_peer_state", &alive) == Some(1.0)
                })
            });
            assert!(
                settled,
                "validator-{} never saw all of {nodes:?} alive",
                i + 1
            );
        }
    }
}

impl Drop for Mesh {
    /// Stops every validator, then fails the test if any of them panicked
    /// (a panic stops a validator, which a test might otherwise not notice)
    /// unless the test said it would.
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        // PQVAULT_TEST_LOGS=DIR keeps every validator's log for reading
        // after the run: DIR/<test thread>/validator-K.log.
        if let Some(dir) = std::env::var_os("PQVAULT_TEST_LOGS") {
            let name = std::thread::current()
                .name()
                .unwrap_or("mesh")
                .replace("::", "-");
            let to = Path::new(&dir).join(name);
            if fs::create_dir_all(&to).is_ok() {
                for (i, n) in self.nodes.iter().enumerate() {
                    let _ = fs::copy(
                        n.dir.join("validator.log"),
                        to.join(format!("validator-{}.log", i + 1)),
                    );
                }
            }
        }
        if std::thread::panicking() {
            return;
        }
        for i in (0..self.nodes.len()).filter(|i| !self.expected_panics.contains(i)) {
            let log = self.log(i);
            if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
                panic!("validator-{} panicked during the test: {line}", i + 1);
            }
        }
    }
}

/// Minimal HTTP/1.0 GET over plain TCP (the ops port): (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// The value of the first sample of `metric` whose labels contain `labels`.
pub fn sample(metrics: &str, metric: &str, labels: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// What every validator logged about healing (warnings, leading, epochs).
pub fn healing_log(mesh: &Mesh) -> String {
    let mut out = String::new();
    for i in 0..mesh.nodes.len() {
        for line in mesh.log(i).lines() {
            if [
                "WARN",
                "ERROR",
                "lead",
                "heal",
                "epoch log",
                "re-share",
                "certified",
            ]
            .iter()
            .any(|k| line.contains(k))
            {
                out.push_str(&format!("validator-{}: {line}\n", i + 1));
            }
        }
    }
    out
}

/// Waits until validator `i` reports `vault` at `epoch` (asked by `via`).
pub async fn wait_epoch(mesh: &Mesh, via: &validator::peer::PeerClient, i: usize, epoch: u64) {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = via.get(&mesh.member(i), "/v1/hello", 1 << 16).await {
            let h: validator::api::Hello = serde_json::from_slice(&r.body).unwrap();
            if h.vaults == vec![(mesh.vault_id.clone(), epoch)] {
                return;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "validator-{} never reached epoch {epoch}\n{}",
            i + 1,
            healing_log(mesh)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until each validator of `nodes` (at least two) holds the vault at
/// `epoch`, asking as the first of them, or as the second when asking the
/// first (a validator does not answer a client with its own name).
pub async fn wait_epoch_all(mesh: &Mesh, nodes: &[usize], epoch: u64) {
    let (first, second) = (nodes[0], nodes[1]);
    let (via, other) = (mesh.client_as(first), mesh.client_as(second));
    for &i in nodes {
        wait_epoch(mesh, if i == first { &other } else { &via }, i, epoch).await;
    }
}

/// The manifest of `epoch` that validator `i` stores.
pub fn manifest_at(mesh: &Mesh, i: usize, epoch: u64) -> vault::manifest::Manifest {
    let path = mesh.nodes[i].dir.join(format!(
        "data/vaults/{}/epoch-{epoch}/manifest.pqvm",
        mesh.vault_id
    ));
    vault::manifest::Manifest::decode(&std::fs::read(path).unwrap()).unwrap()
}

/// The epoch at which validator `i` holds the mesh's vault, asked `via`.
async fn epoch_of(mesh: &Mesh, via: &validator::peer::PeerClient, i: usize) -> Option<u64> {
    let r = via.get(&mesh.member(i), "/v1/hello", 1 << 16).await.ok()?;
    let h: validator::api::Hello = serde_json::from_slice(&r.body).ok()?;
    h.vaults.first().map(|(_, e)| *e)
}

/// Waits until validator `i`'s current epoch leaves validator `gone` out,
/// and returns that epoch.
pub async fn epoch_without(mesh: &Mesh, i: usize, gone: usize) -> u64 {
    let t0 = std::time::Instant::now();
    let via = mesh.client_as(if i == 1 { 2 } else { 1 });
    let fp = mesh.public_identity(gone).fingerprint();
    loop {
        if let Some(e) = epoch_of(mesh, &via, i).await.filter(|e| *e >= 2) {
            let path = mesh.nodes[i].dir.join(format!(
                "data/vaults/{}/epoch-{e}/manifest.pqvm",
                mesh.vault_id
            ));
            let out = std::fs::read(path)
                .ok()
                .and_then(|b| vault::manifest::Manifest::decode(&b).ok())
                .is_some_and(|m| m.body().shards.iter().all(|s| s.recipient != fp));
            if out {
                return e;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "validator-{}'s epoch never left validator-{} out\n{}",
            i + 1,
            gone + 1,
            healing_log(mesh)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every validator of `nodes` holds the vault at `epoch` or
/// later (a convicted holder's share is replaced right after, so the
/// epoch may move on quickly); returns the epoch the first one is at.
pub async fn wait_epoch_at_least(mesh: &Mesh, nodes: &[usize], epoch: u64) -> u64 {
    let t0 = std::time::Instant::now();
    let (via, other) = (mesh.client_as(nodes[0]), mesh.client_as(nodes[1]));
    let mut at = Vec::new();
    for &i in nodes {
        let c = if i == nodes[0] { &other } else { &via };
        loop {
            if let Some(e) = epoch_of(mesh, c, i).await.filter(|e| *e >= epoch) {
                at.push(e);
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "validator-{} never reached epoch {epoch}\n{}",
                i + 1,
                healing_log(mesh)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The epoch every one of them has (they may be one step apart).
    at.into_iter().min().unwrap_or(epoch)
}

/// Recovers from the current-epoch shards of `holders` (reading each
/// node's stored proof) and checks the secret against the operator's
/// original shards 1..=t.
pub fn recover_from(mesh: &Mesh, holders: &[usize], epoch: u64, t: usize) {
    let dir = mesh.nodes[holders[0]]
        .dir
        .join(format!("data/vaults/{}/epoch-{epoch}", mesh.vault_id));
    let op = vault::identity::PublicIdentity::decode(
        &fs::read(mesh.root.path().join("operator/operator.pub")).unwrap(),
    )
    .unwrap();
    // Epoch 1 has no separate anchor: its manifest is the operator's.
    let anchor = fs::read(dir.join("anchor.pqvm"))
        .or_else(|_| fs::read(dir.join("manifest.pqvm")))
        .unwrap();
    let genesis = vault::manifest::Manifest::decode(&anchor)
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap();
    let steps: Vec<_> = (2..=epoch)
        .map(|k| {
            (
                fs::read(dir.join(format!("step-{k}.pqvm"))).unwrap(),
                vault::epoch::EpochCertificate::decode(
                    &fs::read(dir.join(format!("step-{k}.pqve"))).unwrap(),
                )
                .unwrap(),
            )
        })
        .collect();
    let current = vault::epoch::verify_chain(genesis.clone(), &steps).unwrap();
    let keys: Vec<vault::identity::SecretIdentity> =
        (0..mesh.nodes.len()).map(|i| mesh.secret_key(i)).collect();
    // Shards after epoch 1 are sealed to epoch keys: opened with each
    // holder's key ring, as its operator could.
    let files: Vec<Vec<u8>> = holders
        .iter()
        .map(|&i| {
            let sealed = fs::read(mesh.nodes[i].dir.join(format!(
                "data/vaults/{}/epoch-{epoch}/shard.pqvs",
                mesh.vault_id
            )))
            .unwrap();
            mesh.unsealed_as(i, &sealed)
        })
        .collect();
    let c: Vec<vault::recover::Candidate<'_>> = files
        .iter()
        .map(|b| vault::recover::Candidate::Unsealed {
            source: String::new(),
            bytes: b,
        })
        .collect();
    let now = vault::recover::recover(&current, &c, &keys).unwrap();
    let originals: Vec<Vec<u8>> = (1..=t)
        .map(|n| {
            fs::read(
                mesh.root
                    .path()
                    .join(format!("vault/shard-{n:03}-validator-{n}.shard")),
            )
            .unwrap()
        })
        .collect();
    let c1: Vec<vault::recover::Candidate<'_>> = originals
        .iter()
        .map(|b| vault::recover::Candidate::Sealed {
            source: String::new(),
            bytes: b,
        })
        .collect();
    let original =
        vault::recover::recover_with(&genesis, &c1, &keys, &mesh.initial_keys()).unwrap();
    assert_eq!(&now.secret[..], &original.secret[..]);
}

/// Asks each of `voters` (validator indices) for its vote on `p`, speaking
/// as validator `as_i` (a validator is not its own member, so another's
/// certificate reaches `as_i` itself), and returns the certified proposal.
/// Panics naming the first refusal.
pub async fn certify(
    mesh: &Mesh,
    as_i: usize,
    p: &validator::transition::Proposal,
    voters: &[usize],
) -> validator::transition::CertifiedProposal {
    match try_certify(mesh, as_i, p, voters).await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`certify`], returning the first refusal instead of panicking.
pub async fn try_certify(
    mesh: &Mesh,
    as_i: usize,
    p: &validator::transition::Proposal,
    voters: &[usize],
) -> Result<validator::transition::CertifiedProposal, String> {
    let me = mesh.client_as(as_i);
    let other = mesh.client_as(if as_i == 0 { 1 } else { 0 });
    let mut votes = Vec::new();
    for &i in voters {
        let via = if i == as_i { &other } else { &me };
        let r = via
            .post(&mesh.member(i), "/v1/vote", p.encode(), 1 << 16)
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!(
                "validator-{} refused its vote: {}",
                i + 1,
                String::from_utf8_lossy(&r.body)
            ));
        }
        votes.push(validator::transition::Vote::decode(&r.body).map_err(|e| e.to_string())?);
    }
    Ok(validator::transition::CertifiedProposal {
        proposal: p.clone(),
        votes,
    })
}
