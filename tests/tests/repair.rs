//! A lost share rebuilt at a replacement by real validator processes, over
//! mutual TLS, without any process ever holding the secret or t shares.

use pqvault_tests::{sample, try_certify, Mesh};
use std::fs;
use std::time::{Duration, Instant};
use validator::epochs::{encode_commit, PrepareReply};
use validator::repair::{Message, Plan};
use validator::transition::{Action, Proposal};
use vault::epoch::{verify_chain, EpochCertificate};
use vault::identity::{Fingerprint, PublicIdentity, SecretIdentity};
use vault::manifest::Manifest;
use vault::recover::{recover, Candidate, Rejection};
use vault::seal::SealedShard;

#[tokio::test(flavor = "current_thread")]
async fn lost_share_is_rebuilt_at_a_replacement() {
    // Shares 1..5 (3 of 5) on validator-1..5; validator-6 is a spare.
    let mut mesh = Mesh::with_spares(5, 3, 1);
    // This test is the leader, and its successor goes to the signers
    // alone: with the log on, they sign only what the log decided (D52).
    mesh.disable_auto_heal();
    mesh.disable_consensus();
    mesh.start_all();
    mesh.kill9(3); // validator-4 holds share 4
    for i in [0, 1, 2, 4] {
        assert!(
            mesh.wait_metrics(i, Duration::from_secs(10), |m| {
                sample(
                    m,
                    "pqvault_peer_state",
                    "peer=\"validator-4\",state=\"dead\"",
                ) == Some(1.0)
            }),
            "validator-{} never declared validator-4 dead",
            i + 1
        );
    }

    let vault_id = mesh.vault();
    let plan = Plan::single(
        [0x42; 16],
        vault_id,
        1,
        4,
        vec![1, 2, 3],
        mesh.public_identity(5).fingerprint(),
    );
    // validator-5 leads: the live holders certify the proposal (each saw
    // validator-4 dead), then it goes to the replacement and the helpers.
    let leader = mesh.client_as(4);
    let proposal = Proposal {
        vault_id,
        from_epoch: 1,
        attempt: 0,
        action: Action::Repair(vec![plan.clone()]),
    };
    // Each holder votes once it has seen validator-4 dead for the grace
    // period.
    let t0 = Instant::now();
    let cert = loop {
        match try_certify(&mesh, 4, &proposal, &[0, 1, 2, 4]).await {
            Ok(c) => break c,
            Err(e) => assert!(t0.elapsed() < Duration::from_secs(10), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for i in [5, 0, 1, 2] {
        let r = leader
            .post(&mesh.member(i), "/v1/transition", cert.encode(), 4096)
            .await
            .unwrap();
        assert_eq!(
            r.status,
            202,
            "validator-{}: {}",
            i + 1,
            String::from_utf8_lossy(&r.body)
        );
    }

    // The replacement reports the rebuilt share, sealed to itself.
    let status_path = format!("/v1/repair/{}", hex::encode(plan.round));
    let deadline = Instant::now() + Duration::from_secs(20);
    let sealed = loop {
        let r = leader
            .get(&mesh.member(5), &status_path, 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        if v["complete"] == true {
            break hex::decode(v["sealed"].as_str().unwrap()).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "repair did not complete: {v}\nreplacement:\n{}\nhelpers:\n{}{}{}",
            mesh.log(5),
            mesh.log(0),
            mesh.log(1),
            mesh.log(2)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rebuilt = mesh.open_as(5, &sealed).unwrap();
    let original_file = mesh.root.path().join("vault/shard-004-validator-4.shard");
    let original = SealedShard::parse(&fs::read(original_file).unwrap())
        .unwrap()
        .open_with_epoch_key(&mesh.initial_keys()[3])
        .unwrap();
    assert_eq!(rebuilt.share.index, 4);
    assert_eq!(
        &rebuilt.share.value[..],
        &original.share.value[..],
        "the lost share, exactly"
    );

    // A replayed certificate, a bare plan and a proposal against a live
    // holder are refused.
    let r = leader
        .post(&mesh.member(0), "/v1/transition", cert.encode(), 4096)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    let r = leader
        .post(
            &mesh.member(0),
            "/v1/repair",
            Message::Plan(plan.clone()).encode(),
            4096,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let mut live = Plan {
        round: [0x43; 16],
        helpers: vec![1, 2, 3],
        ..plan.clone()
    };
    live.targets[0].index = 5;
    let live = Proposal {
        vault_id,
        from_epoch: 1,
        attempt: 1,
        action: Action::Repair(vec![live]),
    };
    let r = leader
        .post(&mesh.member(1), "/v1/vote", live.encode(), 4096)
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    assert!(String::from_utf8_lossy(&r.body).contains("not lost"));
    // Garbage is a clear 400.
    let r = leader
        .post(&mesh.member(1), "/v1/repair", b"PQVR".to_vec(), 4096)
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // ---- The new epoch: prepare, manifest, sign, commit (validator-5 leads).
    let holders = [0usize, 1, 2, 4, 5]; // shares 1, 2, 3, 5 and the replacement (4)
    let mut body =
        Manifest::decode(&fs::read(mesh.root.path().join("vault/manifest.pqvm")).unwrap())
            .unwrap()
            .body()
            .clone();
    let genesis_bytes = fs::read(mesh.root.path().join("vault/manifest.pqvm")).unwrap();
    body.epoch = 2;
    // A validator is not its own member: reach validator-5 through validator-1.
    let other = mesh.client_as(0);
    let via = |i: usize| if i == 4 { &other } else { &leader };
    for i in holders {
        let r = via(i)
            .post(
                &mesh.member(i),
                &format!("/v1/epoch/{}/prepare?from=1", mesh.vault_id),
                vec![],
                1 << 16,
            )
            .await
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "prepare on validator-{}: {}",
            i + 1,
            String::from_utf8_lossy(&r.body)
        );
        let p: PrepareReply = serde_json::from_slice(&r.body).unwrap();
        let e = body.shards.iter_mut().find(|e| e.index == p.index).unwrap();
        e.recipient =
            Fingerprint::from_bytes(hex::decode(&p.recipient).unwrap().try_into().unwrap());
        e.recipient_name = p.recipient_name;
        e.blob_hash = hex::decode(&p.blob_hash).unwrap().try_into().unwrap();
        e.share_commitment = hex::decode(&p.share_commitment)
            .unwrap()
            .try_into()
            .unwrap();
    }
    let lead_key = mesh.secret_key(4);
    let m2 = Manifest::sign(&body, lead_key.public(), lead_key.signing_key()).unwrap();
    // Asked as the proposal's proposer, naming it (docs/protocol.md,
    // "Splitting the signers"). Validator-5 is no member of its own, so it
    // heard the proposal from validator-1 and does not take it as the
    // proposer's: the quorum of 3 signs without it.
    let request = |key: &vault::identity::SecretIdentity, m: &[u8]| {
        validator::successor::Request::sign(vault_id, 1, proposal.digest(), m.to_vec(), key)
            .unwrap()
            .encode()
    };
    let mut cert: Option<EpochCertificate> = None;
    for i in [0usize, 1, 2] {
        let r = via(i)
            .post(
                &mesh.member(i),
                &format!("/v1/epoch/{}/sign", mesh.vault_id),
                request(&lead_key, &m2),
                1 << 20,
            )
            .await
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "sign on validator-{}: {}",
            i + 1,
            String::from_utf8_lossy(&r.body)
        );
        let one = EpochCertificate::decode(&r.body).unwrap();
        match &mut cert {
            None => cert = Some(one),
            Some(c) => c.signatures.extend(one.signatures),
        }
    }
    let cert = cert.unwrap().encode();
    // Each validator signs one successor per epoch: a rival is refused.
    let mut rival = body.clone();
    rival.created_unix += 1;
    let rival = Manifest::sign(&rival, lead_key.public(), lead_key.signing_key()).unwrap();
    let r = leader
        .post(
            &mesh.member(0),
            &format!("/v1/epoch/{}/sign", mesh.vault_id),
            request(&lead_key, &rival),
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    for i in holders {
        let r = via(i)
            .post(
                &mesh.member(i),
                &format!("/v1/epoch/{}/commit", mesh.vault_id),
                encode_commit(&m2, &cert),
                4096,
            )
            .await
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "commit on validator-{}: {}",
            i + 1,
            String::from_utf8_lossy(&r.body)
        );
        let h = via(i)
            .get(&mesh.member(i), "/v1/hello", 1 << 16)
            .await
            .unwrap();
        let hello: validator::api::Hello = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(
            hello.vaults,
            vec![(mesh.vault_id.clone(), 2)],
            "validator-{}",
            i + 1
        );
    }

    // Anyone holding the operator-signed genesis can verify epoch 2, and the
    // epoch-2 shards (two survivors and the replacement) recover the same
    // secret as the original epoch-1 shards. An epoch-1 shard is stale.
    let op =
        PublicIdentity::decode(&fs::read(mesh.root.path().join("operator/operator.pub")).unwrap())
            .unwrap();
    let genesis = Manifest::decode(&genesis_bytes)
        .unwrap()
        .verify(Some(&op.fingerprint()))
        .unwrap();
    let latest = verify_chain(
        genesis.clone(),
        &[(m2.clone(), EpochCertificate::decode(&cert).unwrap())],
    )
    .unwrap();
    assert_eq!(latest.body().epoch, 2);
    let stored = |i: usize| {
        fs::read(
            mesh.nodes[i]
                .dir
                .join(format!("data/vaults/{}/epoch-2/shard.pqvs", mesh.vault_id)),
        )
        .unwrap()
    };
    let keys: Vec<SecretIdentity> = (0..6)
        .filter(|&i| i != 3)
        .map(|i| mesh.secret_key(i))
        .collect();
    let (s1, s2, s6) = (
        mesh.unsealed_as(0, &stored(0)),
        mesh.unsealed_as(1, &stored(1)),
        mesh.unsealed_as(5, &stored(5)),
    );
    let old3 = fs::read(mesh.root.path().join("vault/shard-003-validator-3.shard")).unwrap();
    let c = [
        Candidate::Sealed {
            source: "old-3".into(),
            bytes: &old3,
        },
        Candidate::Unsealed {
            source: "1".into(),
            bytes: &s1,
        },
        Candidate::Unsealed {
            source: "2".into(),
            bytes: &s2,
        },
        Candidate::Unsealed {
            source: "replacement".into(),
            bytes: &s6,
        },
    ];
    let new_secret = recover(&latest, &c, &keys).unwrap();
    assert!(matches!(
        new_secret.rejected[0].reason,
        Rejection::StaleEpoch {
            found: 1,
            current: 2
        }
    ));
    assert_eq!(new_secret.used, vec![1, 2, 4]);
    let o = |n: usize| {
        fs::read(
            mesh.root
                .path()
                .join(format!("vault/shard-00{n}-validator-{n}.shard")),
        )
        .unwrap()
    };
    let (o1, o2, o5) = (o(1), o(2), o(5));
    let c1 = [
        Candidate::Sealed {
            source: "1".into(),
            bytes: &o1,
        },
        Candidate::Sealed {
            source: "2".into(),
            bytes: &o2,
        },
        Candidate::Sealed {
            source: "5".into(),
            bytes: &o5,
        },
    ];
    let old_secret =
        vault::recover::recover_with(&genesis, &c1, &keys, &mesh.initial_keys()).unwrap();
    assert_eq!(&new_secret.secret[..], &old_secret.secret[..]);
}
