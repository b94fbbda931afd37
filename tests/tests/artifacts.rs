//! Artifact carriage with real validator processes on loopback: push to one,
//! pull-based anti-entropy to all, verification on every hop, tampering
//! refused, a corrupted peer routed around, kill -9 mid-transfer resumed.

use pqvault_tests::artifacts::{
    self, corrupt_payload, manifest_digest, payload_digest, sha256_hex, Carriage,
};
use pqvault_tests::{sample, Mesh};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use vault::artifact::testnet;

const FAST: &str = "sync_interval_ms = 200\nfetch_concurrency = 3";

fn failures(mesh: &Mesh, i: usize, reason: &str) -> f64 {
    sample(
        &mesh.metrics(i),
        "pqvault_artifact_verification_failures_total",
        &format!("reason=\"{reason}\""),
    )
    .unwrap_or(-1.0)
}

/// Waits until validator `i` serves `name` `version` with payload digest
/// `etag` (hex, [`payload_digest`]); returns the body.
fn wait_served(
    c: &Carriage,
    i: usize,
    name: &str,
    version: &str,
    etag: &str,
    t: Duration,
) -> Vec<u8> {
    let deadline = Instant::now() + t;
    loop {
        let r = c.get(i, &format!("/v1/artifacts/{name}/{version}"), &[]);
        if r.status == 200 && r.header("etag") == Some(&format!("\"{etag}\"")) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "validator-{} never served {name} {version} (last status {})",
            i + 1,
            r.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn push_ok(c: &Carriage, i: usize, dir: &Path) -> String {
    let out = c.push(i, dir);
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // stderr is a pipe here: no progress bar, no control characters.
    assert!(
        !out.stderr.iter().any(|&b| b == b'\r' || b == 0x1b),
        "progress drawn to a pipe: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn push_refused(c: &Carriage, i: usize, dir: &Path) -> String {
    let out = c.push(i, dir);
    assert!(
        !out.status.success(),
        "push of {} was accepted",
        dir.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn small_network_converges_on_seven_validators_and_serves_identical_bytes() {
    let mut mesh = Mesh::new(7, 4);
    let c = artifacts::enable(&mesh, FAST);
    mesh.start_all();
    let int8 = testnet::small(8);
    let int4 = testnet::small(4);
    // 1.0.0 at manifest format 1 (the whole payload's SHA-256 is its
    // digest and ETag, checked in a second pass), 1.1.0 at format 2 (the
    // chunk list's digest, no second pass): both carried the same way.
    let v1 = c.pack_v1(&int8, "snn-demo", "1.0.0", 65536, &c.publisher);
    let v2 = c.pack(&int4, "snn-demo", "1.1.0", "", 65536, &c.publisher);
    assert_eq!(
        &fs::read(v1.join("artifact.pqva")).unwrap()[..6],
        b"PQVA\x00\x01"
    );
    assert_eq!(
        &fs::read(v2.join("artifact.pqva")).unwrap()[..6],
        b"PQVA\x00\x02"
    );
    let out = push_ok(&c, 0, &v1);
    assert!(out.contains("verified and served"), "{out}");
    let etag1 = sha256_hex(&int8.safetensors);
    assert_eq!(payload_digest(&v1), etag1);
    for i in 0..7 {
        let body = wait_served(&c, i, "snn-demo", "latest", &etag1, Duration::from_secs(30));
        assert_eq!(
            body,
            int8.safetensors,
            "validator-{} serves other bytes",
            i + 1
        );
    }
    // The int4 version, pushed to another validator, replaces it as latest
    // everywhere; 1.0.0 stays served by version.
    push_ok(&c, 3, &v2);
    let etag2 = payload_digest(&v2);
    assert_ne!(etag2, sha256_hex(&int4.safetensors));
    for i in 0..7 {
        let body = wait_served(&c, i, "snn-demo", "latest", &etag2, Duration::from_secs(30));
        assert_eq!(body, int4.safetensors);
        let old = c.get(i, "/v1/artifacts/snn-demo/1.0.0", &[]);
        assert_eq!(old.status, 200);
        assert_eq!(old.body, int8.safetensors);
        let r = c.get(i, "/v1/artifacts/snn-demo/latest", &[]);
        assert_eq!(r.header("x-pqvault-artifact-version"), Some("1.1.0"));
        assert_eq!(
            r.header("x-pqvault-manifest-digest"),
            Some(manifest_digest(&v2).as_str())
        );
        let m = mesh.metrics(i);
        assert_eq!(sample(&m, "pqvault_artifacts_held", ""), Some(2.0));
        assert_eq!(
            sample(
                &m,
                "pqvault_artifact_replication_lag_seconds",
                "artifact=\"snn-demo\""
            ),
            Some(0.0),
            "validator-{} is current",
            i + 1
        );
    }
    // Bytes came over the mesh to every validator but the pushers.
    let m = mesh.metrics(6);
    let replicated = sample(&m, "pqvault_artifact_bytes_replicated_total", "").unwrap();
    assert_eq!(
        replicated as usize,
        int8.safetensors.len() + int4.safetensors.len()
    );
    // The signed manifest is served for the application to verify.
    let man = c.get(5, "/v1/artifacts/snn-demo/latest/manifest", &[]);
    assert_eq!(man.status, 200);
    assert_eq!(man.body, fs::read(v2.join("artifact.pqva")).unwrap());

    // Range requests: single range, suffix, open-ended, unsatisfiable.
    let len = int4.safetensors.len();
    let r = c.get(
        2,
        "/v1/artifacts/snn-demo/latest",
        &[("Range", "bytes=10-19")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, int4.safetensors[10..20]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    let r = c.get(2, "/v1/artifacts/snn-demo/latest", &[("Range", "bytes=-7")]);
    assert_eq!(r.body, int4.safetensors[len - 7..]);
    let r = c.get(
        2,
        "/v1/artifacts/snn-demo/latest",
        &[("Range", &format!("bytes={}-", len - 3))],
    );
    assert_eq!(r.body, int4.safetensors[len - 3..]);
    let r = c.get(
        2,
        "/v1/artifacts/snn-demo/latest",
        &[("Range", &format!("bytes={len}-"))],
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(c.get(2, "/v1/artifacts/snn-other/latest", &[]).status, 404);
    assert_eq!(c.get(2, "/v1/artifacts/snn-demo/9.9.9", &[]).status, 404);

    // `vault artifact pull` from the last validator verifies before writing.
    let out_file = mesh.root.path().join("pulled.safetensors");
    let out = std::process::Command::new(pqvault_tests::bin("vault"))
        .args([
            "artifact",
            "pull",
            "--from",
            &c.apps[6].to_string(),
            "--name",
            "snn-demo",
            "--out",
            out_file.to_str().unwrap(),
            "--policy",
            c.policy.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("snn-demo 1.1.0"));
    assert_eq!(fs::read(&out_file).unwrap(), int4.safetensors);
}

/// Flips one byte of the manifest file in `dir` at `offset` (from the end
/// if negative).
fn tamper_manifest(dir: &Path, offset: isize) {
    let p = dir.join("artifact.pqva");
    let mut b = fs::read(&p).unwrap();
    let at = if offset < 0 {
        (b.len() as isize + offset) as usize
    } else {
        offset as usize
    };
    b[at] ^= 0x01;
    fs::write(&p, b).unwrap();
}

/// Re-signs `dir`'s manifest with a changed body (a publisher that signed
/// metadata or a golden check its payload does not satisfy).
fn resign(dir: &Path, key: &Path, edit: impl FnOnce(&mut vault::artifact::ArtifactBody)) {
    let signed =
        vault::artifact::SignedArtifact::decode(&fs::read(dir.join("artifact.pqva")).unwrap())
            .unwrap();
    let mut body = signed.body().clone();
    edit(&mut body);
    let key = vault::identity::SecretIdentity::decode(&fs::read(key).unwrap()).unwrap();
    let again = vault::artifact::SignedArtifact::sign(&body, &key).unwrap();
    fs::write(dir.join("artifact.pqva"), again.encode()).unwrap();
}

#[test]
fn tampering_is_refused_at_push_and_replication_and_never_served() {
    let mut mesh = Mesh::new(4, 3);
    let c = artifacts::enable(&mesh, FAST);
    for i in 0..3 {
        mesh.start(i);
    }
    let net = testnet::small(8);
    let n = net.safetensors.len();
    let case = |version: &str| c.pack(&net, "snn-tamper", version, "", 65536, &c.publisher);
    let expect_refused = |dir: &Path, reason: &str, version: &str| {
        let before = failures(&mesh, 0, reason);
        let err = push_refused(&c, 0, dir);
        assert!(
            err.contains(&format!("refused ({reason})")),
            "{reason}: {err}"
        );
        assert_eq!(failures(&mesh, 0, reason), before + 1.0, "{reason} counted");
        for i in 0..3 {
            let r = c.get(i, &format!("/v1/artifacts/snn-tamper/{version}"), &[]);
            assert_eq!(r.status, 404, "{reason}: never served");
        }
    };

    // A payload byte: its chunk is refused on arrival.
    let d = case("1.0.0");
    let p = d.join("payload.safetensors");
    let mut b = fs::read(&p).unwrap();
    b[n / 2] ^= 0x10;
    fs::write(&p, b).unwrap();
    expect_refused(&d, "chunk", "1.0.0");
    // A manifest field (the creation time, inside the signed body; not the
    // payload length, which a format-2 decoder already refuses as `format`
    // because the payload digest covers it) and the signature itself.
    let d = case("1.0.1");
    let enc = fs::read(d.join("artifact.pqva")).unwrap();
    let created_at = enc
        .windows(8)
        .position(|w| w == 1_767_225_600u64.to_be_bytes())
        .expect("creation time in the manifest");
    tamper_manifest(&d, created_at as isize + 7);
    // (Straight to the port, as an attacker would.)
    let before = failures(&mesh, 0, "signature");
    let r = artifacts::http(
        c.apps[0],
        "POST",
        "/v1/artifacts",
        &[],
        &fs::read(d.join("artifact.pqva")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-pqvault-refusal"), Some("signature"));
    assert_eq!(failures(&mesh, 0, "signature"), before + 1.0);
    assert_eq!(c.get(0, "/v1/artifacts/snn-tamper/1.0.1", &[]).status, 404);
    let d = case("1.0.2");
    tamper_manifest(&d, -1);
    expect_refused(&d, "signature", "1.0.2");
    // Metadata and golden check signed by the trusted publisher, but not
    // what the payload holds: every chunk verifies, the full check does not.
    let d = case("1.0.3");
    resign(&d, &c.publisher, |b| {
        let g = b.quant.golden.as_mut().expect("golden");
        g.expected[0] += 1;
    });
    expect_refused(&d, "golden", "1.0.3");
    let d = case("1.0.4");
    resign(&d, &c.publisher, |b| {
        b.quant.layers[0].clip[0] *= 2.0; // no longer clip / qmax of the scale tensor
    });
    expect_refused(&d, "metadata", "1.0.4");
    // Unknown publisher, a name outside the delegation, an expired manifest.
    let d = c.pack(&net, "snn-tamper", "1.0.5", "", 65536, &c.rogue);
    expect_refused(&d, "policy", "1.0.5");
    let d = c.pack(&net, "other-model", "1.0.0", "", 65536, &c.publisher);
    let err = push_refused(&c, 0, &d);
    assert!(err.contains("refused (policy)"), "{err}");
    // (`pack --sign` refuses a past expiry, so the publisher's key signs an
    // expired body directly.)
    let d = case("1.0.6");
    resign(&d, &c.publisher, |b| {
        b.created_unix = 1_767_225_600;
        b.expires_unix = Some(1_767_225_700);
    });
    expect_refused(&d, "expired", "1.0.6");
    // A good version, then an older one.
    let good = case("2.0.0");
    push_ok(&c, 0, &good);
    let older = case("1.9.0");
    expect_refused(&older, "rollback", "1.9.0");
    let etag = payload_digest(&good);
    for i in 0..3 {
        wait_served(&c, i, "snn-tamper", "2.0.0", &etag, Duration::from_secs(30));
    }

    // Replication: a larger artifact held by validators 1-3; validators 1
    // and 2 then serve corrupted bytes for every chunk. Validator 4 must
    // fetch each chunk from validator 3, and mark 1 and 2 down.
    let big = testnet::large(1 << 20);
    let dir = c.pack(&big, "snn-big", "1.0.0", "", 65536, &c.publisher);
    push_ok(&c, 2, &dir);
    let etag = payload_digest(&dir);
    for i in 0..3 {
        wait_served(&c, i, "snn-big", "1.0.0", &etag, Duration::from_secs(30));
    }
    let digest = manifest_digest(&dir);
    let chunks = big.safetensors.len().div_ceil(65536);
    for i in 0..2 {
        for k in 0..chunks {
            corrupt_payload(&mesh, i, &digest, (k * 65536 + 100) as u64);
        }
    }
    mesh.start(3);
    let body = wait_served(&c, 3, "snn-big", "1.0.0", &etag, Duration::from_secs(30));
    assert_eq!(body, big.safetensors);
    assert!(
        failures(&mesh, 3, "chunk") >= 2.0,
        "bad chunks were counted"
    );
    let m = mesh.metrics(3);
    for bad in ["validator-1", "validator-2"] {
        let h = sample(&m, "pqvault_peer_health_score", &format!("peer=\"{bad}\"")).unwrap();
        assert!(h <= 0.25, "{bad} served bad chunks but scores {h}");
    }
    let good = sample(&m, "pqvault_peer_health_score", "peer=\"validator-3\"").unwrap();
    assert!(
        good > 0.25,
        "validator-3 served good chunks but scores {good}"
    );
    assert!(mesh.log(3).contains("peer served a bad chunk"));
}

#[test]
fn restart_after_kill9_mid_transfer_does_not_refetch_verified_chunks() {
    // The 64 MiB, in 256 chunks of 256 KiB so the kill lands in the
    // middle; the throughput figures are `cargo bench -p pqvault-tests --bench artifacts`.
    let mut mesh = Mesh::new(7, 4);
    let c = artifacts::enable(&mesh, "sync_interval_ms = 200\nfetch_concurrency = 1");
    mesh.start_all();
    let net = testnet::large(64 << 20);
    let dir = c.pack(&net, "snn-large", "1.0.0", "", 262144, &c.publisher);
    let digest = manifest_digest(&dir);
    let total = net.safetensors.len();
    let chunks = total.div_ceil(262144);
    let victim = 6;
    // Replicas fetch verified chunks from each other while the push is
    // still going on: watch validator 7 from the start.
    let pusher = c.push_in_background(0, &dir);
    // Kill validator 7 as soon as it holds some, but not all, chunks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = artifacts::verified_chunks(&mesh, victim, &digest).unwrap_or(0);
        if v >= 8 && v < chunks {
            mesh.kill9(victim);
            break;
        }
        assert!(v < chunks, "validator-7 finished before it could be killed");
        assert!(
            Instant::now() < deadline,
            "validator-7 never started fetching"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The `verified` file is a hint written at most every 10 ms without an
    // fsync; the restart hashes every chunk slot, so it keeps at least these.
    let bits = artifacts::verified_bits(&mesh, victim, &digest).unwrap();
    let before = bits.iter().filter(|b| **b).count();
    assert!(before < chunks);
    let out = pusher.join().expect("push thread");
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    mesh.start(victim);
    let etag = payload_digest(&dir);
    let sha = sha256_hex(&net.safetensors);
    for i in 0..7 {
        let body = wait_served(&c, i, "snn-large", "1.0.0", &etag, Duration::from_secs(60));
        assert_eq!(sha256_hex(&body), sha, "validator-{} differs", i + 1);
    }
    let log = mesh.log(victim);
    let (kept, kept_bytes) = resumed(&log, chunks).expect("restart logged the chunks it kept");
    assert!(
        kept >= before && kept < chunks,
        "restart kept {kept} of {chunks} chunks; {before} were verified before the kill"
    );
    // Everything fetched after the restart is counted: at most the bytes
    // it did not keep (a refetched verified chunk would exceed it).
    let replicated = sample(
        &mesh.metrics(victim),
        "pqvault_artifact_bytes_replicated_total",
        "",
    )
    .unwrap() as u64;
    assert!(
        replicated <= total as u64 - kept_bytes && replicated > 0,
        "after restart fetched {replicated} bytes; {} were still missing",
        total as u64 - kept_bytes
    );
}

/// `(chunks, bytes)` from the log line `resuming artifact: V of N chunks
/// already verified (B bytes)`.
fn resumed(log: &str, chunks: usize) -> Option<(usize, u64)> {
    let line = log.lines().find(|l| l.contains("resuming artifact: "))?;
    let rest = line.split("resuming artifact: ").nth(1)?;
    let kept: usize = rest.split_whitespace().next()?.parse().ok()?;
    let of = format!(" of {chunks} chunks already verified (");
    let bytes = rest
        .split(&of)
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((kept, bytes))
}

#[test]
fn a_peer_serving_a_manifest_that_is_not_the_digest_asked_for_is_refused() {
    let mut mesh = Mesh::new(3, 2);
    let c = artifacts::enable(&mesh, FAST);
    mesh.start(0);
    mesh.start(1);
    let net = testnet::small(8);
    let a = c.pack(&net, "snn-swap", "1.0.0", "", 65536, &c.publisher);
    let b = c.pack(&net, "snn-other", "1.0.0", "", 65536, &c.publisher);
    push_ok(&c, 0, &a);
    let etag = payload_digest(&a);
    wait_served(&c, 1, "snn-swap", "1.0.0", &etag, Duration::from_secs(30));
    // Both holders now serve, under A's digest, B's manifest: validly
    // signed and trusted, but not the manifest that digest names.
    let digest = manifest_digest(&a);
    for i in 0..2 {
        let stored = artifacts::object_dir(&mesh, i, &digest).join("artifact.pqva");
        fs::write(&stored, fs::read(b.join("artifact.pqva")).unwrap()).unwrap();
    }
    mesh.start(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while failures(&mesh, 2, "digest") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "validator-3 never refused the swapped manifest"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refused once and remembered: not fetched again, nothing stored.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(failures(&mesh, 2, "digest"), 1.0);
    assert!(!artifacts::object_dir(&mesh, 2, &digest).exists());
    assert_eq!(c.get(2, "/v1/artifacts/snn-swap/1.0.0", &[]).status, 404);
    assert!(mesh.log(2).contains("artifact from peer refused"));
}

/// Expiry is checked at every request, not only at admission: an artifact
/// admitted and served while valid is refused (410, reason "expired") on
/// the application API, and no longer listed or offered to peers, once its
/// signed expiry passes, and each refusal is counted.
#[test]
fn an_artifact_is_never_served_after_its_expiry() {
    let mut mesh = Mesh::new(2, 2);
    let c = artifacts::enable(&mesh, FAST);
    mesh.start_all();
    let net = testnet::small(8);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Long enough to be served everywhere first, even on a loaded machine.
    let expires = now + 15;
    let dir = c.pack(
        &net,
        "snn-expiring",
        "1.0.0",
        &format!("expires = {expires}\n"),
        65536,
        &c.publisher,
    );
    push_ok(&c, 0, &dir);
    let etag = payload_digest(&dir);
    for i in 0..2 {
        wait_served(
            &c,
            i,
            "snn-expiring",
            "1.0.0",
            &etag,
            Duration::from_secs(5),
        );
    }
    let digest = manifest_digest(&dir);
    let client = mesh.client_as(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer_get = |path: String| {
        rt.block_on(client.get(&mesh.member(0), &path, 1 << 20))
            .unwrap()
    };
    assert_eq!(
        peer_get(format!("/v1/artifacts/{digest}/manifest")).status,
        200
    );

    // Past the expiry (a second of margin for clock granularity).
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        < expires + 1
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..2 {
        for path in [
            "/v1/artifacts/snn-expiring/1.0.0",
            "/v1/artifacts/snn-expiring/latest",
            "/v1/artifacts/snn-expiring/latest/manifest",
        ] {
            let r = c.get(i, path, &[]);
            assert_eq!(r.status, 410, "validator-{} {path}", i + 1);
            assert_eq!(r.header("x-pqvault-refusal"), Some("expired"));
        }
        let list = c.get(i, "/v1/artifacts", &[]);
        assert!(
            !String::from_utf8_lossy(&list.body).contains("snn-expiring"),
            "still listed"
        );
    }
    assert_eq!(
        peer_get(format!("/v1/artifacts/{digest}/manifest")).status,
        410
    );
    assert_eq!(
        peer_get(format!("/v1/artifacts/{digest}/chunks/0")).status,
        410
    );
    let listed = peer_get("/v1/artifacts".to_string());
    assert!(!String::from_utf8_lossy(&listed.body).contains(&digest));
    let m = mesh.metrics(0);
    let count = |api: &str| {
        sample(
            &m,
            "pqvault_artifact_expired_requests_total",
            &format!("api=\"{api}\""),
        )
        .unwrap_or(0.0)
    };
    assert!(count("app") >= 3.0 && count("peer") >= 2.0, "{m}");
}

/// Iterations of the push-races-sync test: `PQVAULT_RACE_ITERATIONS`
/// (default 20, the bar; CI may set fewer, a soak run more).
fn race_iterations() -> usize {
    std::env::var("PQVAULT_RACE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Pushing to a validator that is already fetching the same artifact from
/// a peer (its own anti-entropy, hinted by the first push) shares that
/// transfer: chunks in flight or already verified count as done for the
/// pusher, who waits for the verified-and-served state. Before, this
/// failed with `HTTP 409 ... being received by another transfer`, `all
/// chunks sent but the validator does not report the artifact complete`,
/// or `Broken pipe`.
#[test]
fn a_push_racing_the_targets_own_sync_succeeds_every_time() {
    let mut mesh = Mesh::new(2, 2);
    let c = artifacts::enable(&mesh, "sync_interval_ms = 200\nfetch_concurrency = 4");
    mesh.start_all();
    let net = testnet::large(2 << 20);
    let n = race_iterations();
    let dirs: Vec<_> = (0..n)
        .map(|k| {
            c.pack(
                &net,
                "snn-race",
                &format!("1.0.{k}"),
                "",
                65536,
                &c.publisher,
            )
        })
        .collect();
    for (k, dir) in dirs.iter().enumerate() {
        // Validator 1 admits the manifest and hints validator 2, which
        // starts fetching from it while the chunks arrive; the second push
        // lands on validator 2 in the middle of that download.
        let first = c.push_in_background(0, dir);
        let digest = manifest_digest(dir);
        let deadline = Instant::now() + Duration::from_secs(30);
        while artifacts::verified_chunks(&mesh, 1, &digest).unwrap_or(0) == 0 {
            assert!(
                Instant::now() < deadline,
                "validator-2 never started its sync"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let second = c.push(1, dir);
        let first = first.join().expect("push thread");
        for (who, out) in [("validator-1", &first), ("validator-2", &second)] {
            assert!(
                out.status.success(),
                "iteration {k}: push to {who} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let version = format!("1.0.{k}");
        let etag = payload_digest(dir);
        for i in 0..2 {
            wait_served(&c, i, "snn-race", &version, &etag, Duration::from_secs(30));
        }
    }
}

/// Packs a correctly signed artifact and then spoils its payload file (the
/// manifest still names the right chunk hashes): a push leaves a partial
/// artifact that can never complete.
fn spoiled(c: &Carriage, name: &str, version: &str) -> std::path::PathBuf {
    let net = testnet::small(8);
    let d = c.pack(&net, name, version, "", 65536, &c.publisher);
    let p = d.join("payload.safetensors");
    let mut b = fs::read(&p).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x10;
    fs::write(&p, b).unwrap();
    d
}

fn abandoned(mesh: &Mesh, i: usize, reason: &str) -> f64 {
    sample(
        &mesh.metrics(i),
        "pqvault_artifacts_abandoned_total",
        &format!("reason=\"{reason}\""),
    )
    .unwrap_or(-1.0)
}

/// A partial artifact that gains no verified chunk for
/// `abandon_after_secs` is abandoned on every validator: deleted (space
/// released), counted, and not fetched back from a peer; a later push of
/// the good payload is accepted and replicated again.
#[test]
fn stalled_partial_artifacts_are_abandoned_with_their_space_released() {
    let mut mesh = Mesh::new(2, 2);
    let c = artifacts::enable(&mesh, "sync_interval_ms = 200\nabandon_after_secs = 2");
    mesh.start_all();
    let d = spoiled(&c, "snn-stall", "1.0.0");
    let digest = manifest_digest(&d);
    let err = push_refused(&c, 0, &d);
    assert!(err.contains("refused (chunk)"), "{err}");
    // Both validators hold the verified manifest and reserved the space.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !artifacts::object_dir(&mesh, 1, &digest).exists() {
        assert!(Instant::now() < deadline, "validator-2 never admitted it");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(artifacts::object_dir(&mesh, 0, &digest).exists());
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..2 {
        while artifacts::object_dir(&mesh, i, &digest).exists() {
            assert!(
                Instant::now() < deadline,
                "validator-{} never abandoned the stalled artifact",
                i + 1
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The directory goes first, the count follows: wait for it.
        assert!(
            mesh.wait_metrics(i, Duration::from_secs(5), |m| sample(
                m,
                "pqvault_artifacts_abandoned_total",
                "reason=\"stalled\""
            ) == Some(1.0)),
            "validator-{} did not count the abandoned artifact",
            i + 1
        );
    }
    // Not fetched back from the other validator.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..2 {
        assert!(!artifacts::object_dir(&mesh, i, &digest).exists());
        assert_eq!(abandoned(&mesh, i, "stalled"), 1.0);
        assert!(mesh.log(i).contains("partial artifact abandoned"));
    }
    // The publisher fixes the payload: the same manifest is pushed again,
    // completes, and replicates.
    let net = testnet::small(8);
    fs::write(d.join("payload.safetensors"), &net.safetensors).unwrap();
    push_ok(&c, 0, &d);
    let etag = payload_digest(&d);
    for i in 0..2 {
        wait_served(&c, i, "snn-stall", "1.0.0", &etag, Duration::from_secs(30));
    }
}

/// `vault artifact abandon NAME VERSION --to HOST:PORT --key KEY` takes
/// effect only with a statement signed by the publisher of the artifact:
/// the application port is unauthenticated.
#[test]
fn abandon_takes_effect_only_when_signed_by_the_artifacts_publisher() {
    let mut mesh = Mesh::new(2, 2);
    let c = artifacts::enable(&mesh, FAST);
    mesh.start(0);
    let d = spoiled(&c, "snn-abandon", "1.0.0");
    let digest = manifest_digest(&d);
    push_refused(&c, 0, &d);
    let obj = artifacts::object_dir(&mesh, 0, &digest);
    assert!(obj.exists(), "partial artifact held");
    let abandon = |key: &Path, version: &str| {
        std::process::Command::new(pqvault_tests::bin("vault"))
            .args(["artifact", "abandon", "--to", &c.apps[0].to_string()])
            .arg("--key")
            .arg(key)
            .args(["snn-abandon", version])
            .output()
            .expect("run vault")
    };
    // No statement, garbage, a key the artifact was not signed by.
    for body in [&b""[..], b"PQVF garbage"] {
        let r = artifacts::http(
            c.apps[0],
            "POST",
            "/v1/artifacts/snn-abandon/1.0.0/abandon",
            &[],
            body,
        )
        .unwrap();
        assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
        assert!(obj.exists());
    }
    let out = abandon(&c.rogue, "1.0.0");
    assert!(!out.status.success(), "a rogue statement was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("abandon refused") && err.contains("policy"),
        "{err}"
    );
    assert!(obj.exists());
    // Another artifact of the same name and version is not named: nothing.
    let out = abandon(&c.publisher, "9.9.9");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 404"));
    assert_eq!(abandoned(&mesh, 0, "publisher"), 0.0);
    // The publisher's statement: abandoned, space released, counted.
    let out = abandon(&c.publisher, "1.0.0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 partial artifact(s) abandoned"));
    assert!(!obj.exists());
    assert_eq!(abandoned(&mesh, 0, "publisher"), 1.0);
    // A complete artifact is never abandoned.
    let net = testnet::small(8);
    let good = c.pack(&net, "snn-abandon", "2.0.0", "", 65536, &c.publisher);
    push_ok(&c, 0, &good);
    let out = abandon(&c.publisher, "2.0.0");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 409"));
    assert_eq!(c.get(0, "/v1/artifacts/snn-abandon/2.0.0", &[]).status, 200);
}

/// The list of abandoned artifacts survives a restart: a validator that
/// abandoned a partial artifact (here on its publisher's statement) does
/// not fetch it back after a kill -9 from a peer still holding a partial
/// copy, while anti-entropy goes on carrying everything else.
#[test]
fn an_abandoned_artifact_is_not_fetched_back_after_a_restart() {
    let mut mesh = Mesh::new(2, 2);
    let c = artifacts::enable(&mesh, FAST);
    mesh.start_all();
    let d = spoiled(&c, "snn-gone", "1.0.0");
    let digest = manifest_digest(&d);
    push_refused(&c, 0, &d);
    // Validator 2 holds its own partial copy (the default abandon timeout
    // is an hour): the source validator 1 would fetch it back from.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !artifacts::object_dir(&mesh, 1, &digest).exists() {
        assert!(Instant::now() < deadline, "validator-2 never admitted it");
        std::thread::sleep(Duration::from_millis(20));
    }
    pqvault_tests::vault(&[
        "artifact",
        "abandon",
        "--to",
        &c.apps[0].to_string(),
        "--key",
        c.publisher.to_str().expect("utf-8 path"),
        "snn-gone",
        "1.0.0",
    ]);
    let obj = artifacts::object_dir(&mesh, 0, &digest);
    assert!(!obj.exists());
    mesh.kill9(0);
    mesh.start(0);
    // Anti-entropy runs after the restart: a new artifact pushed to
    // validator 2 reaches validator 1, over the rounds that would have
    // fetched the abandoned one back.
    let net = testnet::small(8);
    let good = c.pack(&net, "snn-kept", "1.0.0", "", 65536, &c.publisher);
    push_ok(&c, 1, &good);
    let etag = payload_digest(&good);
    wait_served(&c, 0, "snn-kept", "1.0.0", &etag, Duration::from_secs(30));
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert!(
            !obj.exists(),
            "the abandoned artifact was fetched back after a restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(artifacts::object_dir(&mesh, 1, &digest).exists());
}
