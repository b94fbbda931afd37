//! A lost share rebuilt at a replacement by real validator processes, over
//! mutual TLS, without any process ever holding the secret or t shares.

use pqvault_tests::{sample, Mesh};
use std::fs;
use std::time::{Duration, Instant};
use validator::repair::{Message, Plan};
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::manifest::VaultId;
use vault::seal::SealedShard;

fn key(mesh: &Mesh, i: usize) -> SecretIdentity {
    let n = &mesh.nodes[i];
    SecretIdentity::decode(&fs::read(n.dir.join(format!("identity/{}.key", n.id))).unwrap())
        .unwrap()
}

fn public(mesh: &Mesh, i: usize) -> PublicIdentity {
    let n = &mesh.nodes[i];
    PublicIdentity::decode(&fs::read(n.dir.join(format!("identity/{}.pub", n.id))).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn lost_share_is_rebuilt_at_a_replacement() {
    // Shares 1..5 (3 of 5) on validator-1..5; validator-6 is a spare.
    let mut mesh = Mesh::with_spares(5, 3, 1);
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

    let vault_id = VaultId::from_bytes(hex::decode(&mesh.vault_id).unwrap().try_into().unwrap());
    let plan = Plan {
        round: [0x42; 16],
        vault_id,
        epoch: 1,
        target: 4,
        helpers: vec![1, 2, 3],
        replacement: public(&mesh, 5).fingerprint(),
    };
    // validator-5 leads: it tells the replacement, then the helpers.
    let leader = mesh.client_as(4);
    for i in [5, 0, 1, 2] {
        let r = leader
            .post(
                &mesh.member(i),
                "/v1/repair",
                Message::Plan(plan.clone()).encode(),
                4096,
            )
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
    let rebuilt = SealedShard::parse(&sealed)
        .unwrap()
        .open(&key(&mesh, 5))
        .unwrap();
    let original_file = mesh.root.path().join("vault/shard-004-validator-4.shard");
    let original = SealedShard::parse(&fs::read(original_file).unwrap())
        .unwrap()
        .open(&key(&mesh, 3))
        .unwrap();
    assert_eq!(rebuilt.share.index, 4);
    assert_eq!(
        &rebuilt.share.value[..],
        &original.share.value[..],
        "the lost share, exactly"
    );

    // A replayed plan and a plan against a live holder are refused.
    let r = leader
        .post(
            &mesh.member(0),
            "/v1/repair",
            Message::Plan(plan.clone()).encode(),
            4096,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    let live = Plan {
        round: [0x43; 16],
        target: 5,
        helpers: vec![1, 2, 3],
        ..plan.clone()
    };
    let r = leader
        .post(
            &mesh.member(1),
            "/v1/repair",
            Message::Plan(live).encode(),
            4096,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409);
    assert!(String::from_utf8_lossy(&r.body).contains("still answers probes"));
    // Garbage is a clear 400.
    let r = leader
        .post(&mesh.member(1), "/v1/repair", b"PQVR".to_vec(), 4096)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}
