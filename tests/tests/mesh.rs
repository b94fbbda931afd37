//! Multi-process scenarios on loopback: real validators, real mutual TLS,
//! real SIGKILL.

use pqvault_tests::{sample, vault, Mesh};
use std::fs;
use std::time::Duration;
use validator::api::Hello;
use validator::config::Member;
use validator::tls;

#[tokio::test(flavor = "current_thread")]
async fn mutual_tls_negotiates_hybrid_pq_and_serves_custody() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    let client = mesh.client_as(0);
    // Logs written to a file carry no terminal colour codes.
    let log = mesh.log(0);
    assert!(log.contains("validator listening"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log:?}");

    let r = client
        .get(&mesh.member(1), "/v1/hello", 1 << 16)
        .await
        .expect("hello");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.kx_group.as_deref(),
        Some(tls::MESH_KX_GROUP),
        "client side"
    );
    let hello: Hello = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(hello.id, "validator-2");
    assert_eq!(
        hello.peer, "validator-1",
        "server authenticated the client certificate"
    );
    assert_eq!(hello.kx_group, tls::MESH_KX_GROUP, "server side");
    assert_eq!(hello.vaults, vec![(mesh.vault_id.clone(), 1)]);

    // Custody: the shard served hashes to the manifest's entry for index 2.
    let r = client
        .get(
            &mesh.member(1),
            &format!("/v1/vaults/{}/shard", mesh.vault_id),
            1 << 20,
        )
        .await
        .expect("shard");
    assert_eq!(r.status, 200);
    let shard_file = mesh.root.path().join("served.shard");
    fs::write(&shard_file, &r.body).unwrap();
    let out = vault(&[
        "verify",
        "--manifest",
        mesh.root
            .path()
            .join("vault/manifest.pqvm")
            .to_str()
            .unwrap(),
        shard_file.to_str().unwrap(),
    ]);
    assert!(out.contains("shard 2 ok"), "{out}");

    // Bad requests get clear errors.
    let r = client
        .get(&mesh.member(1), "/v1/vaults/zz/shard", 1 << 16)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = client
        .get(
            &mesh.member(1),
            &format!("/v1/vaults/{}/shard", "00".repeat(16)),
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    // Peers probe each other and export per-peer health.
    assert!(
        mesh.wait_metrics(0, Duration::from_secs(10), |m| {
            sample(m, "pqvault_peer_up", "peer=\"validator-3\"") == Some(1.0)
                && sample(m, "pqvault_peer_health_score", "peer=\"validator-2\"")
                    .is_some_and(|s| s > 0.5)
        }),
        "{}",
        mesh.metrics(0)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn foreign_ca_and_non_members_are_refused() {
    let mut mesh = Mesh::new(2, 2);
    mesh.start_all();
    let r = mesh.root.path();

    // A certificate for "validator-1" from another CA.
    vault(&[
        "mesh-ca",
        "init",
        "--out",
        r.join("evil-ca").to_str().unwrap(),
    ]);
    vault(&[
        "mesh-ca",
        "issue",
        "--ca",
        r.join("evil-ca").to_str().unwrap(),
        "--id",
        "validator-1",
        "--identity",
        r.join("validator-1/identity/validator-1.pub")
            .to_str()
            .unwrap(),
        "--out",
        r.join("evil").to_str().unwrap(),
    ]);
    // The client must trust the real CA to even get to the server's check.
    let client = mesh.client_with_cert(&r.join("evil"), "validator-1");
    assert!(client
        .get(&mesh.member(1), "/v1/hello", 1 << 16)
        .await
        .is_err());
    assert!(mesh.wait_metrics(1, Duration::from_secs(5), |m| {
        sample(
            m,
            "pqvault_peer_connections_total",
            "result=\"tls_refused\"",
        )
        .is_some_and(|v| v >= 1.0)
    }));

    // A certificate from the right CA for an id that is not a member.
    vault(&[
        "mesh-ca",
        "issue",
        "--ca",
        r.join("ca").to_str().unwrap(),
        "--id",
        "validator-9",
        "--identity",
        r.join("validator-1/identity/validator-1.pub")
            .to_str()
            .unwrap(),
        "--out",
        r.join("stranger").to_str().unwrap(),
    ]);
    let client = mesh.client_with_cert(&r.join("stranger"), "validator-9");
    assert!(client
        .get(&mesh.member(1), "/v1/hello", 1 << 16)
        .await
        .is_err());
    assert!(mesh.wait_metrics(1, Duration::from_secs(5), |m| {
        sample(m, "pqvault_peer_connections_total", "result=\"not_member\"")
            .is_some_and(|v| v >= 1.0)
    }));

    // Dialling validator-2's address while expecting validator-1 fails too.
    let honest = mesh.client_as(0);
    let wrong = Member {
        id: "validator-1".into(),
        addr: mesh.nodes[1].peer.to_string(),
    };
    assert!(honest.get(&wrong, "/v1/hello", 1 << 16).await.is_err());
}

#[test]
fn kill9_restart_and_corruption() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    // Everyone sees validator-3 up, then SIGKILL it: peers notice.
    assert!(mesh.wait_metrics(0, Duration::from_secs(10), |m| sample(
        m,
        "pqvault_peer_up",
        "peer=\"validator-3\""
    ) == Some(1.0)));
    mesh.kill9(2);
    // The failure detector declares it dead (direct and indirect probes
    // fail, then the suspicion timeout passes) and counts the death.
    let dead = "peer=\"validator-3\",state=\"dead\"";
    let declared = |m: &str| {
        sample(m, "pqvault_peer_state", dead) == Some(1.0)
            && sample(m, "pqvault_peer_up", "peer=\"validator-3\"") == Some(0.0)
    };
    assert!(
        mesh.wait_metrics(0, Duration::from_secs(10), declared),
        "{}",
        mesh.metrics(0)
    );
    assert!(mesh.wait_metrics(1, Duration::from_secs(10), |m| {
        sample(m, "pqvault_peer_deaths_total", "peer=\"validator-3\"") == Some(1.0)
    }));
    // The helper nacked every indirect probe: no missed nack, so the
    // survivors' local health stays perfect (Lifeguard).
    assert_eq!(
        sample(&mesh.metrics(0), "pqvault_local_health_awareness", ""),
        Some(0.0)
    );
    // Restart: the store is re-verified from disk and the node rejoins.
    mesh.start(2);
    let alive = "peer=\"validator-3\",state=\"alive\"";
    assert!(mesh.wait_metrics(0, Duration::from_secs(10), |m| {
        sample(m, "pqvault_peer_state", alive) == Some(1.0)
            && sample(m, "pqvault_peer_state", dead) == Some(0.0)
    }));
    assert_eq!(
        sample(&mesh.metrics(2), "pqvault_shards_held", ""),
        Some(1.0)
    );

    // Flip a byte of the stored shard while the node is down: it refuses to
    // start, naming the file, and does not reset anything.
    mesh.kill9(2);
    let vdir = mesh.nodes[2].dir.join("data/vaults").join(&mesh.vault_id);
    let shard = vdir.join("epoch-1/shard.pqvs");
    let mut bytes = fs::read(&shard).unwrap();
    bytes[200] ^= 0x01;
    fs::write(&shard, &bytes).unwrap();
    let out = mesh.run_once(2, &["--check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") && err.contains("shard.pqvs"),
        "{err}"
    );
    assert_eq!(fs::read(&shard).unwrap(), bytes, "nothing was reset");

    // The untouched nodes still pass the same check... while running they
    // hold the data directory lock, so a second instance is refused.
    let out = mesh.run_once(0, &["--check"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another validator"));

    // Stopped, a node passes it, and --check reads only: its data
    // directory is byte-for-byte the same afterwards.
    mesh.kill9(1);
    let data = mesh.nodes[1].dir.join("data");
    let before = snapshot(&data);
    let out = mesh.run_once(1, &["--check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("epoch 1 (share 2) verified"), "{said}");
    // Epoch 1 is sealed to the identity: no epoch key yet.
    assert!(said.contains("epoch keys: 0 in the wrapped ring"), "{said}");
    assert!(said.contains("import:"), "{said}");
    assert_eq!(
        snapshot(&data),
        before,
        "--check changed the data directory"
    );
}

/// --check on a node never started: nothing is created, not even the data
/// directory, although its import bundle is valid.
#[test]
fn check_before_the_first_start_creates_nothing() {
    let mesh = Mesh::new(2, 2);
    let data = mesh.nodes[0].dir.join("data");
    assert!(!data.exists());
    let out = mesh.run_once(0, &["--check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("is valid (vault"), "{said}");
    assert!(!data.exists(), "--check created {}", data.display());
}

/// Every file under `dir` (relative path, bytes), sorted.
fn snapshot(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn members_found_by_dns_discovery() {
    // Two validators with no static members: each resolves `localhost`
    // (the resolver, as for a headless service) at the other's port, learns
    // its id from the TLS handshake and probes it from then on.
    let mut mesh = Mesh::new(2, 2);
    let port = |i: usize| mesh.nodes[i].peer.port();
    mesh.use_dns_discovery(0, "localhost", port(1));
    mesh.use_dns_discovery(1, "localhost", port(0));
    mesh.start_all();
    for (i, other) in [(0, "validator-2"), (1, "validator-1")] {
        let up = format!("peer=\"{other}\"");
        assert!(
            mesh.wait_metrics(i, Duration::from_secs(10), |m| {
                sample(m, "pqvault_peer_up", &up) == Some(1.0)
            }),
            "validator-{} never discovered {other}:\n{}",
            i + 1,
            mesh.log(i)
        );
    }
    assert!(mesh.log(0).contains("member discovered"), "{}", mesh.log(0));
    // Look-ups that resolve are no failures (tests/tests/retry.rs counts
    // the ones that do not).
    for i in 0..2 {
        let m = mesh.metrics(i);
        assert_eq!(
            sample(&m, "pqvault_retry_failures_total", "loop=\"discovery\""),
            Some(0.0),
            "{m}"
        );
    }
    // A validator never lists itself as a peer.
    assert_eq!(
        sample(&mesh.metrics(0), "pqvault_peer_up", "peer=\"validator-1\""),
        None
    );
}

/// The mesh speaks X25519MLKEM768 only: a client with a valid mesh
/// certificate that offers only classical groups (what a downgrade would
/// look like) gets no connection at all. The same client offering the
/// hybrid group connects, so the refusal is about the group alone.
#[tokio::test(flavor = "current_thread")]
async fn a_client_offering_only_classical_groups_is_refused() {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;

    let mut mesh = Mesh::new(2, 2);
    mesh.start_all();
    let tls_dir = mesh.nodes[0].dir.join("tls");
    let ca = CertificateDer::from_pem_file(mesh.root.path().join("ca/mesh-ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls_dir.join("validator-1.crt"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(tls_dir.join("validator-1.tls.key")).unwrap();
    let offers = [
        (vec![kx_group::X25519MLKEM768], true),
        (vec![kx_group::X25519], false),
        (
            vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
            false,
        ),
    ];
    for (groups, accepted) in offers {
        let names: Vec<_> = groups.iter().map(|g| format!("{:?}", g.name())).collect();
        let mut provider = default_provider();
        provider.kx_groups = groups;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(mesh.nodes[1].peer)
            .await
            .unwrap();
        let name = ServerName::try_from("validator-2").unwrap();
        let result = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        match (result, accepted) {
            (Ok(stream), true) => {
                let group = stream.get_ref().1.negotiated_key_exchange_group();
                assert_eq!(
                    group.map(|g| format!("{:?}", g.name())),
                    Some("X25519MLKEM768".to_string())
                );
            }
            (Err(e), false) => {
                assert!(
                    e.to_string().contains("HandshakeFailure")
                        || e.to_string().contains("handshake"),
                    "offering {names:?}: {e}"
                );
            }
            (Ok(_), false) => panic!("a client offering only {names:?} was accepted"),
            (Err(e), true) => panic!("the hybrid group was refused: {e}"),
        }
    }
}

/// A certificate binds its member's identity: a validator whose certificate
/// names another identity than its key's refuses to start, saying so.
#[test]
fn a_certificate_bound_to_another_identity_is_refused_at_start() {
    let mesh = Mesh::new(2, 2);
    let r = mesh.root.path();
    let tls2 = r.join("validator-1/tls2");
    vault(&[
        "mesh-ca",
        "issue",
        "--ca",
        r.join("ca").to_str().unwrap(),
        "--id",
        "validator-1",
        "--identity",
        r.join("validator-2/identity/validator-2.pub")
            .to_str()
            .unwrap(),
        "--ip",
        "127.0.0.1",
        "--out",
        tls2.to_str().unwrap(),
    ]);
    for f in ["validator-1.crt", "validator-1.tls.key"] {
        std::fs::copy(tls2.join(f), r.join("validator-1/tls").join(f)).unwrap();
    }
    let out = mesh.run_once(0, &["--check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("certificate binds identity") && err.contains("--identity"),
        "{err}"
    );
}

/// A validator whose clock is two minutes ahead is seen so by its peers
/// (`pqvault_peer_clock_skew_seconds`, alert `PqvaultClockSkew`): artifact
/// expiry and signed statements are judged by local clocks.
#[test]
fn a_peer_clock_far_ahead_is_measured() {
    let mut mesh = Mesh::new(2, 2);
    mesh.start(0);
    mesh.start_with_env(1, &[("PQVAULT_BYZANTINE_CLOCK_OFFSET_MS", "120000")]);
    assert!(
        mesh.log(1).contains("built to misbehave"),
        "validator-2 cannot skew its clock: build with `cargo build --workspace --all-targets`"
    );
    let skewed = |m: &str| {
        sample(m, "pqvault_peer_clock_skew_seconds", "peer=\"validator-2\"")
            .is_some_and(|s| (s - 120.0).abs() < 5.0)
    };
    assert!(
        mesh.wait_metrics(0, Duration::from_secs(15), skewed),
        "validator-1 never measured validator-2's clock 120 s ahead:\n{}",
        mesh.metrics(0)
    );
    // And the other way round: validator-1 looks 120 s behind.
    let behind = |m: &str| {
        sample(m, "pqvault_peer_clock_skew_seconds", "peer=\"validator-1\"")
            .is_some_and(|s| (s + 120.0).abs() < 5.0)
    };
    assert!(mesh.wait_metrics(1, Duration::from_secs(15), behind));
}
