//! The main scenario: a 4-of-7 vault on 7 validators with 3 spares;
//! three holders are SIGKILLed; the mesh heals itself (no operator, no
//! test-driven leader) to 7 holders in a certified new epoch, and 4 shards
//! of the new epoch recover the original secret.

use pqvault_tests::Mesh;
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
    let files: Vec<Vec<u8>> = [0usize, 7, 8, 9].iter().map(|&i| shard(i)).collect();
    let c: Vec<Candidate<'_>> = files
        .iter()
        .map(|b| Candidate::Sealed {
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
    let original = recover(&genesis, &c1, &keys).unwrap();
    assert_eq!(&healed.secret[..], &original.secret[..]);
}
