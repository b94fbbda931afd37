//! The main scenario: a 4-of-7 vault on 7 validators with 3 spares;
//! three holders are SIGKILLed; the mesh heals itself (no operator, no
//! test-driven leader) to 7 holders in a certified new epoch, and 4 shards
//! of the new epoch recover the original secret.

use pqvault_tests::{recover_from, wait_epoch, Mesh};
use std::fs;
use std::time::{Duration, Instant};
use validator::api::Hello;
use vault::epoch::{verify_chain, EpochCertificate};
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::manifest::Manifest;
use vault::recover::{recover, Candidate};

#[tokio::test(flavor = "current_thread")]
async fn three_losses_heal_onto_spares_in_a_new_epoch() {
    let mut mesh = Mesh::with_spares(7, 4, 3);
    // The signers alone (log off, D16); the same heal with the epoch log,
    // the default, is the test below.
    mesh.disable_consensus();
    mesh.start_all();
    for i in [4, 5, 6] {
        mesh.kill9(i); // validator-5, -6, -7
    }
    let alive = [0usize, 1, 2, 3, 7, 8, 9];
    let client = mesh.client_as(1);
    let other = mesh.client_as(0);
    let t0 = Instant::now();
    // Every survivor and every spare reaches epoch 2.
    for i in alive {
        let via = if i == 1 { &other } else { &client };
        loop {
            let r = via
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

    // Verify epoch 2 from the operator's genesis, through the stored proof.
    let dir = mesh.nodes[7]
        .dir
        .join(format!("data/vaults/{}/epoch-2", mesh.vault_id));
    let op =
        PublicIdentity::decode(&fs::read(mesh.root.path().join("operator/operator.pub")).unwrap())
            .unwrap();
    let genesis = Manifest::decode(&fs::read(dir.join("anchor.pqvm")).unwrap())
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap();
    let step = (
        fs::read(dir.join("step-2.pqvm")).unwrap(),
        EpochCertificate::decode(&fs::read(dir.join("step-2.pqve")).unwrap()).unwrap(),
    );
    let m2 = verify_chain(genesis.clone(), &[step]).unwrap();
    assert_eq!(m2.body().epoch, 2);
    assert_eq!(m2.body().n, 7);

    // Four epoch-2 shards, three of them on the former spares.
    let keys: Vec<SecretIdentity> = alive.iter().map(|&i| mesh.secret_key(i)).collect();
    let shard = |i: usize| {
        fs::read(
            mesh.nodes[i]
                .dir
                .join(format!("data/vaults/{}/epoch-2/shard.pqvs", mesh.vault_id)),
        )
        .unwrap()
    };
    let files: Vec<Vec<u8>> = [0usize, 7, 8, 9]
        .iter()
        .map(|&i| mesh.unsealed_as(i, &shard(i)))
        .collect();
    let c: Vec<Candidate<'_>> = files
        .iter()
        .map(|b| Candidate::Unsealed {
            source: String::new(),
            bytes: b,
        })
        .collect();
    let healed = recover(&m2, &c, &keys).unwrap();
    let o = |n: usize| {
        fs::read(
            mesh.root
                .path()
                .join(format!("vault/shard-00{n}-validator-{n}.shard")),
        )
        .unwrap()
    };
    let originals: Vec<Vec<u8>> = [1, 2, 3, 4].iter().map(|&n| o(n)).collect();
    let c1: Vec<Candidate<'_>> = originals
        .iter()
        .map(|b| Candidate::Sealed {
            source: String::new(),
            bytes: b,
        })
        .collect();
    let original =
        vault::recover::recover_with(&genesis, &c1, &keys, &mesh.initial_keys()).unwrap();
    assert_eq!(&healed.secret[..], &original.secret[..]);

    // The operator's way: `vault recover` with the epoch-2 shards, proving
    // the epoch-2 manifest through the chain copied from a validator.
    let p = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let out = mesh.root.path().join("recovered.bin");
    let mut args: Vec<String> = vec![
        "recover".into(),
        "--manifest".into(),
        p(&dir.join("manifest.pqvm")),
        "--chain".into(),
        p(&dir),
        "--trust".into(),
        p(&mesh.root.path().join("operator/operator.pub")),
        "--out".into(),
        p(&out),
    ];
    // Epoch-2 shards are sealed to the holders' epoch keys, which no
    // operator file opens: `--key` and the shards alone are refused, and
    // the message says where to go.
    let mut offline = args.clone();
    for &i in &[0usize, 7, 8, 9] {
        let n = &mesh.nodes[i];
        offline.extend([
            "--key".into(),
            p(&n.dir.join(format!("identity/{}.key", n.id))),
            "--shard".into(),
            p(&n.dir
                .join(format!("data/vaults/{}/epoch-2/shard.pqvs", mesh.vault_id))),
        ]);
    }
    let refused = std::process::Command::new(pqvault_tests::bin("vault"))
        .args(&offline)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("vault mesh recover"), "{stderr}");
    // Shares the holders unsealed (what each holder's operator could do
    // with its disk) recover through the same chain.
    for (k, &i) in [0usize, 7, 8, 9].iter().enumerate() {
        let share = mesh.root.path().join(format!("share-{k}.pqvu"));
        fs::write(&share, mesh.unsealed_as(i, &shard(i))).unwrap();
        args.extend(["--share".into(), p(&share)]);
    }
    pqvault_tests::vault(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(fs::read(&out).unwrap(), &original.secret[..]);
    // Without the chain, the epoch-2 manifest is not the operator's.
    let refused = std::process::Command::new(pqvault_tests::bin("vault"))
        .args(["verify", "--manifest"])
        .arg(dir.join("manifest.pqvm"))
        .arg("--trust")
        .arg(mesh.root.path().join("operator/operator.pub"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

#[tokio::test(flavor = "current_thread")]
async fn replacement_killed_mid_repair_then_restarted_stays_recoverable() {
    // 3 of 5 on validator-1..5, validator-6 spare. validator-5 dies; when
    // validator-1 starts leading the repair, the spare is SIGKILLed.
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all();
    mesh.kill9(4);
    let t0 = Instant::now();
    while !mesh.log(0).contains("leading a repair") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no repair started:\n{}",
            mesh.log(0)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    mesh.kill9(5);
    // Whatever the crash interrupted, epoch 1 still recovers.
    recover_from(&mesh, &[0, 1, 2], 1, 3);

    // Restarted, the spare is taken again and the mesh reaches epoch 2.
    mesh.start(5);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3, 5], 2).await;
    recover_from(&mesh, &[5, 1, 3], 2, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn an_attempt_that_fails_after_certification_is_aborted_so_the_next_need_not_wait() {
    // 3 of 5 on validator-1..5, validator-6 spare, which fails the first
    // certified proposal it is sent. The leader asks the attempt's voters
    // to abort it; each that signs binds itself never to act on it and
    // releases its vote, so the next attempt is certified at once instead
    // of meeting "already voted" until the 25 s attempt timeout.
    let mut mesh = Mesh::with_spares(5, 3, 1);
    for i in 0..5 {
        mesh.start(i);
    }
    mesh.start_with_env(5, &[("PQVAULT_BYZANTINE_DROP_TRANSITION_ONCE", "1")]);
    mesh.kill9(4);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3, 5], 2).await;
    assert!(
        mesh.log(5).contains("failing a certified proposal"),
        "the first attempt did not fail:\n{}",
        mesh.log(5)
    );
    let log = pqvault_tests::healing_log(&mesh);
    assert!(
        !(0..4).any(|i| mesh.log(i).contains("refused: already voted")),
        "a voter was still bound to the failed attempt:\n{log}"
    );
    assert!(log.contains("aborted attempt"), "{log}");
    let aborted = pqvault_tests::sample(&mesh.metrics(0), "pqvault_attempts_aborted_total", "");
    assert!(aborted.is_some_and(|n| n >= 1.0), "{}", mesh.metrics(0));
    recover_from(&mesh, &[5, 1, 3], 2, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn five_survivors_without_spares_reshare_to_three_of_five() {
    // 4 of 7, no spares. Two holders die; after the wait for replacements
    // the five survivors re-share among themselves to the majority
    // policy's 3 of 5, without anyone reconstructing the secret.
    let mut mesh = Mesh::new(7, 4);
    mesh.set_reshare_after_ms(300);
    mesh.start_all();
    mesh.kill9(5);
    mesh.kill9(6);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3, 4], 2).await;
    let dir = mesh.nodes[0]
        .dir
        .join(format!("data/vaults/{}/epoch-2", mesh.vault_id));
    let m2 = Manifest::decode(&fs::read(dir.join("manifest.pqvm")).unwrap()).unwrap();
    assert_eq!((m2.body().threshold, m2.body().n), (3, 5));
    assert!(mesh.log(0).contains("re-shared: new epoch certified"));
    // Any 3 of the 5 new shares recover the original secret.
    recover_from(&mesh, &[0, 2, 4], 2, 4);
    recover_from(&mesh, &[1, 3, 4], 2, 4);
}

#[tokio::test(flavor = "current_thread")]
async fn repair_is_followed_by_a_refresh_that_retires_older_shares() {
    // 3 of 5 plus a spare, refresh on: a loss is repaired (epoch 2), then
    // all holders re-share to a fresh polynomial at (3, 5) (epoch 3).
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.enable_refresh();
    mesh.start_all();
    mesh.kill9(4);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3, 5], 3).await;
    recover_from(&mesh, &[5, 1, 3], 3, 3);
    // The refreshed shares are new values: an epoch-3 share is not the
    // epoch-1 share of the same index re-sealed.
    let key = &mesh.initial_keys()[0];
    let open = |epoch: u64| {
        let bytes = fs::read(mesh.nodes[0].dir.join(if epoch == 1 {
            "import/shard-001-validator-1.shard".to_string()
        } else {
            format!("data/vaults/{}/epoch-{epoch}/shard.pqvs", mesh.vault_id)
        }))
        .unwrap();
        if epoch == 1 {
            vault::seal::SealedShard::parse(&bytes)
                .unwrap()
                .open_with_epoch_key(key)
                .unwrap()
        } else {
            mesh.open_as(0, &bytes).unwrap()
        }
    };
    let (old, new) = (open(1), open(3));
    assert_eq!(old.share.index, new.share.index);
    assert_ne!(&old.share.value[..], &new.share.value[..]);
}

#[tokio::test(flavor = "current_thread")]
async fn with_the_epoch_log_the_successor_is_decided_there_before_it_is_signed() {
    // The same 3 losses, with the replicated epoch log on (the default,
    // D55): the log decides the successor before anyone signs, and
    // signers sign only what it decided. The first Raft leader is among the three SIGKILLed when it
    // holds a share, so a new one must be elected before the log decides.
    let mut mesh = Mesh::with_spares(7, 4, 3);
    mesh.start_all();
    let is_leader = |mesh: &Mesh, i: usize| {
        pqvault_tests::sample(&mesh.metrics(i), "pqvault_consensus_is_leader", "") == Some(1.0)
    };
    let t0 = Instant::now();
    let leader = loop {
        if let Some(l) = (0..10).find(|&i| is_leader(&mesh, i)) {
            break l;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no epoch-log leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The first leader initializes the log with the static members; a
    // follower that has not received that entry yet cannot vote in a new
    // election. Kill only once every node has it (otherwise no leader is
    // ever elected again: a limitation of bootstrapping, found flaky here).
    let t1 = Instant::now();
    while !(0..10).all(|i| {
        pqvault_tests::sample(&mesh.metrics(i), "pqvault_consensus_commit_index", "")
            .is_some_and(|c| c >= 1.0)
    }) {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "the log's first entry never reached every node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut lost: Vec<usize> = vec![4, 5, 6];
    if leader < 7 && !lost.contains(&leader) {
        lost[0] = leader;
    }
    for &i in &lost {
        mesh.kill9(i);
    }
    let alive: Vec<usize> = (0..10).filter(|i| !lost.contains(i)).collect();
    let (a, b) = (alive[0], alive[1]);
    let via_a = mesh.client_as(a);
    let via_b = mesh.client_as(b);
    for &i in &alive {
        wait_epoch(&mesh, if i == a { &via_b } else { &via_a }, i, 2).await;
    }
    // The log holds the decision and its certificate for leaving epoch 1.
    let r = via_a
        .get(
            &mesh.member(b),
            &format!("/v1/raft/decision/{}/1", mesh.vault_id),
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(d["certificate"].is_string(), "{d}");
    let holders: Vec<usize> = alive.iter().copied().take(4).collect();
    recover_from(&mesh, &holders, 2, 4);
}

/// A holder restarted with an empty disk re-imports its epoch-1 bundle
/// while the mesh is at epoch 2. Being the lowest id it would lead an
/// epoch-1 repair every pass (issue 11 measured 325 failed repairs in
/// 4.5 minutes); it must see that its peers moved on and never lead.
#[tokio::test(flavor = "current_thread")]
async fn a_holder_back_with_an_old_bundle_never_leads_a_stale_epoch() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all();
    mesh.kill9(4); // share 5 lost; healed onto the spare (epoch 2)
    let via = mesh.client_as(2);
    wait_epoch(&mesh, &via, 1, 2).await;
    wait_epoch(&mesh, &via, 5, 2).await;
    // validator-1 loses its disk and comes back with the epoch-1 bundle
    // and the key it opens with (a kept `.ikey`; without it the bundle is
    // not imported at all: `roles.rs`).
    mesh.kill9(0);
    fs::remove_dir_all(mesh.nodes[0].dir.join("data")).unwrap();
    mesh.restore_initial_key(0);
    let log_before = mesh.log(0).len();
    mesh.start(0);
    // Long enough for several heal passes (300 ms) after the grace (600 ms).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let log = mesh.log(0)[log_before..].to_string();
    assert!(
        !log.contains("leading a repair"),
        "a stale holder led a repair:\n{log}"
    );
    assert!(log.contains("stale: a peer is at a later epoch"), "{log}");
}
