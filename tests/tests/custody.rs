//! Custody: a byte flipped in a running validator's stored shard is found
//! by its own check and by its peers', its health score drops, and the
//! mesh rebuilds that share on a spare in a certified new epoch, from which
//! the original secret is still recovered. The rotten file is left alone.

use pqvault_tests::{recover_from, sample, Mesh};
use std::fs;
use std::time::{Duration, Instant};
use validator::api::Hello;
use vault::manifest::Manifest;

#[tokio::test(flavor = "current_thread")]
async fn flipped_byte_is_found_by_custody_and_repaired_on_a_spare() {
    // Shares 1..4 (3 of 4) on validator-1..4; validator-5 is a spare.
    let mut mesh = Mesh::with_spares(4, 3, 1);
    mesh.start_all();
    let checked = |m: &str| {
        sample(
            m,
            "pqvault_custody_checks_total",
            "peer=\"validator-2\",result=\"ok\"",
        )
        .is_some_and(|v| v >= 1.0)
    };
    assert!(
        mesh.wait_metrics(0, Duration::from_secs(10), checked),
        "validator-1 never checked validator-2's custody:\n{}",
        mesh.metrics(0)
    );

    // Flip one byte of validator-2's shard on disk while it runs.
    let shard = mesh.nodes[1]
        .dir
        .join(format!("data/vaults/{}/epoch-1/shard.pqvs", mesh.vault_id));
    let mut bytes = fs::read(&shard).unwrap();
    bytes[300] ^= 0x40;
    fs::write(&shard, &bytes).unwrap();

    // Its peers see a mismatch and score it down; it sees its own.
    let mismatch = "peer=\"validator-2\",result=\"mismatch\"";
    for i in [0usize, 2, 3] {
        assert!(
            mesh.wait_metrics(i, Duration::from_secs(10), |m| {
                sample(m, "pqvault_custody_checks_total", mismatch).is_some_and(|v| v >= 1.0)
                    && sample(m, "pqvault_peer_health_score", "peer=\"validator-2\"")
                        .is_some_and(|s| s <= 0.25)
            }),
            "validator-{} did not flag validator-2:\n{}",
            i + 1,
            mesh.metrics(i)
        );
    }
    assert!(mesh.wait_metrics(1, Duration::from_secs(10), |m| {
        sample(m, "pqvault_custody_checks_total", mismatch).is_some_and(|v| v >= 1.0)
    }));

    // The mesh moves to epoch 2 with share 2 rebuilt on validator-5.
    let client = mesh.client_as(1); // validator-2 asks: it is no target here
    let t0 = Instant::now();
    for i in [0usize, 2, 3, 4] {
        loop {
            let r = client
                .get(&mesh.member(i), "/v1/hello", 1 << 16)
                .await
                .unwrap();
            let h: Hello = serde_json::from_slice(&r.body).unwrap();
            if h.vaults == vec![(mesh.vault_id.clone(), 2)] {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(40),
                "validator-{} never reached epoch 2: {:?}\n{}",
                i + 1,
                h.vaults,
                mesh.log(0)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(mesh.log(1).contains("our stored shard is corrupt"));
    assert_eq!(fs::read(&shard).unwrap(), bytes, "the rotten file is kept");

    // Validator-5 holds share 2 of epoch 2; 3 shards of epoch 2 (with the
    // chain proven from the operator's manifest) give back the secret.
    let m2 = Manifest::decode(
        &fs::read(mesh.nodes[4].dir.join(format!(
            "data/vaults/{}/epoch-2/manifest.pqvm",
            mesh.vault_id
        )))
        .unwrap(),
    )
    .unwrap();
    let e2 = m2.body().entry(2).unwrap();
    assert_eq!(e2.recipient, mesh.public_identity(4).fingerprint());
    recover_from(&mesh, &[4, 0, 3], 2, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_holder_back_with_an_empty_disk_gets_its_share_rebuilt() {
    // 3 of 4, no spares. validator-2 loses its disk (same key, nothing to
    // import) and comes back: its peers find it answers without a shard,
    // and the mesh rebuilds share 2 on it in epoch 2.
    let mut mesh = Mesh::new(4, 3);
    mesh.start_all();
    mesh.kill9(1);
    fs::remove_dir_all(mesh.nodes[1].dir.join("data")).unwrap();
    fs::remove_dir_all(mesh.nodes[1].dir.join("import")).unwrap();
    fs::create_dir_all(mesh.nodes[1].dir.join("import")).unwrap();
    mesh.start(1);
    let missing = "peer=\"validator-2\",result=\"missing\"";
    if !mesh.wait_metrics(0, Duration::from_secs(10), |m| {
        sample(m, "pqvault_custody_checks_total", missing).is_some_and(|v| v >= 1.0)
    }) {
        // Seen in CI rehearsals with validator-1's /metrics silent: the
        // epoch log's leader stopped when validator-2 came back with an
        // empty log (D56; `consensus.rs` reproduces it every time). Say
        // whether it is still running, and what it and validator-2 logged.
        let metrics = mesh.metrics(0);
        let exited = mesh.wait_exit(0, Duration::from_millis(100));
        panic!(
            "validator-1 never found share 2 missing (exited: {exited:?})\n{metrics}\n--- validator-1\n{}\n--- validator-2\n{}",
            mesh.log(0),
            mesh.log(1)
        );
    }
    let client = mesh.client_as(0);
    let other = mesh.client_as(1);
    let t0 = Instant::now();
    for i in [1usize, 2, 3, 0] {
        let via = if i == 0 { &other } else { &client };
        loop {
            let r = via.get(&mesh.member(i), "/v1/hello", 1 << 16).await;
            let done = r.ok().is_some_and(|r| {
                serde_json::from_slice::<Hello>(&r.body)
                    .is_ok_and(|h| h.vaults == vec![(mesh.vault_id.clone(), 2)])
            });
            if done {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(40),
                "validator-{} never reached epoch 2\n{}",
                i + 1,
                mesh.log(0)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let m2 = Manifest::decode(
        &fs::read(mesh.nodes[1].dir.join(format!(
            "data/vaults/{}/epoch-2/manifest.pqvm",
            mesh.vault_id
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        m2.body().entry(2).unwrap().recipient,
        mesh.public_identity(1).fingerprint()
    );
    // And it stays there: the verdict "missing" was about epoch 1. Kept
    // past the commit, it had the leader rebuild share 2 again at once
    // (epochs 3 and 4 within 0.3 s in a CI rehearsal).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..4 {
        assert!(
            !mesh.log(i).contains("epoch=3"),
            "validator-{} moved past epoch 2 with nothing lost:\n{}",
            i + 1,
            mesh.log(i)
        );
    }
}

/// Custody by challenge: a peer answers a fresh nonce with a keyed hash of
/// the shard on its disk and its epoch (not the shard), which a checker
/// holding a verified copy recomputes; a malformed challenge is refused.
#[tokio::test(flavor = "current_thread")]
async fn a_custody_challenge_is_answered_with_a_keyed_hash_of_the_shard_on_disk() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    let client = mesh.client_as(0);
    let id = mesh.vault_id.clone();
    let nonce = [7u8; 32];
    let path = format!("/v1/vaults/{id}/shard?challenge={}", hex::encode(nonce));
    let r = client.get(&mesh.member(1), &path, 4096).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let on_disk = fs::read(
        mesh.nodes[1]
            .dir
            .join(format!("data/vaults/{id}/epoch-1/shard.pqvs")),
    )
    .unwrap();
    assert_eq!(v["epoch"], 1);
    assert_eq!(
        v["mac"],
        hex::encode(validator::custody::challenge_mac(&nonce, &on_disk))
    );
    // Another nonce, another answer: nothing to replay.
    let other = format!("/v1/vaults/{id}/shard?challenge={}", hex::encode([8u8; 32]));
    let r2 = client.get(&mesh.member(1), &other, 4096).await.unwrap();
    assert_ne!(r2.body, r.body);
    let bad = format!("/v1/vaults/{id}/shard?challenge=abcd");
    assert_eq!(
        client
            .get(&mesh.member(1), &bad, 4096)
            .await
            .unwrap()
            .status,
        400
    );
}
