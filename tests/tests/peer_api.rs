//! Bad messages on the peer API: truncated, oversized, unknown, for the
//! wrong vault or epoch, replayed, or from a sender that is not who it
//! claims: each gets a 4xx naming what is wrong, and nothing stored moves.

use pqvault_tests::Mesh;
use std::fs;
use validator::reshare::{Message as Reshare, Plan as ResharePlan};
use validator::transition::{Action, Proposal};
use vault::manifest::VaultId;

fn text(r: &validator::peer::Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn bad_peer_messages_are_refused_and_change_nothing() {
    let mut mesh = Mesh::new(3, 2);
    mesh.disable_auto_heal();
    mesh.start_all();
    let vdir = mesh.nodes[0]
        .dir
        .join(format!("data/vaults/{}", mesh.vault_id));
    let shard_before = fs::read(vdir.join("epoch-1/shard.pqvs")).unwrap();
    let me = mesh.client_as(1); // validator-2 talks to validator-1
    let v1 = mesh.member(0);
    let vault_id = mesh.vault();
    let fps: Vec<_> = (0..3)
        .map(|i| mesh.public_identity(i).fingerprint())
        .collect();
    let plan = |round: u8, vault: VaultId, epoch: u64| ResharePlan {
        round: [round; 16],
        vault_id: vault,
        epoch,
        t_new: 2,
        dealers: vec![1, 2],
        recipients: fps.clone(),
    };
    let post = |path: &'static str, body: Vec<u8>| {
        let (me, v1) = (me.clone(), v1.clone());
        async move { me.post(&v1, path, body, 1 << 16).await.unwrap() }
    };

    // Truncated and unknown messages: 400, naming the field.
    let good = Reshare::Plan(plan(1, vault_id, 1)).encode();
    let r = post("/v1/reshare", good[..good.len() - 5].to_vec()).await;
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("recipient fingerprint"), "{}", text(&r));
    let r = post("/v1/repair", b"PQVR\x00\x01\x07".to_vec()).await;
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = post("/v1/reshare", b"not a message at all".to_vec()).await;
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(
        text(&r).contains("PQVX") || text(&r).contains("magic"),
        "{}",
        text(&r)
    );

    // Oversized: refused, never kept. The validator reads and drops the
    // body before it answers 413 and closes (`validator::bodies`): closing
    // on unread bytes resets the connection, and the client could lose the
    // answer to the reset (every one of five tries, in a CI rehearsal of
    // the body budget before it drained).
    let r = me
        .post(&v1, "/v1/reshare", vec![0u8; 5 << 20], 1 << 16)
        .await
        .expect("an answer to the oversized post");
    assert_eq!(r.status, 413, "{}", text(&r));

    // A bare plan acts on nothing: plans act only inside a certified
    // proposal (docs/protocol.md, "Certified proposals").
    let r = post("/v1/reshare", Reshare::Plan(plan(2, vault_id, 1)).encode()).await;
    assert_eq!(r.status, 403, "{}", text(&r));
    assert!(text(&r).contains("certified proposal"), "{}", text(&r));

    // Proposals for another vault or epoch get no vote.
    let propose = |p: ResharePlan| Proposal {
        vault_id: p.vault_id,
        from_epoch: p.epoch,
        attempt: 0,
        action: Action::Reshare(p),
    };
    let other = VaultId::from_bytes([0xee; 16]);
    let r = post("/v1/vote", propose(plan(2, other, 1)).encode()).await;
    assert_eq!(r.status, 404, "{}", text(&r));
    assert!(text(&r).contains("no verified chain"), "{}", text(&r));
    let r = post("/v1/vote", propose(plan(3, vault_id, 7)).encode()).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(text(&r).contains("epoch 7"), "{}", text(&r));
    let r = me
        .post(
            &v1,
            &format!("/v1/epoch/{}/prepare?from=5", mesh.vault_id),
            Vec::new(),
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(text(&r).contains("not 5"), "{}", text(&r));

    // A plan that is not the policy's: no vote.
    let mut odd = plan(4, vault_id, 1);
    odd.recipients.truncate(2);
    odd.t_new = 1;
    let r = post("/v1/vote", propose(odd).encode()).await;
    assert_eq!(r.status, 422, "{}", text(&r));
    // Leaving out a holder that is alive and keeps its shard: no vote.
    let mut shrink = plan(5, vault_id, 1);
    shrink.recipients.truncate(2);
    let r = post("/v1/vote", propose(shrink).encode()).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(text(&r).contains("not lost"), "{}", text(&r));

    // A sub-share claiming to come from a share its sender does not hold.
    let r = post(
        "/v1/reshare",
        Reshare::Subshare {
            round: [9; 16],
            from: 1,
            sealed: vec![1, 2, 3],
            signature: None,
        }
        .encode(),
    )
    .await;
    assert_eq!(r.status, 404, "unknown round first: {}", text(&r));
    // Nobody gets a reveal of a round the validator is not in.
    let r = me
        .post(
            &v1,
            &format!("/v1/reshare/{}/reveal", "09".repeat(16)),
            b"junk".to_vec(),
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", text(&r));

    // Epoch steps with garbage or the wrong vault.
    let r = me
        .post(
            &v1,
            &format!("/v1/epoch/{}/commit", mesh.vault_id),
            b"junk".to_vec(),
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = me
        .post(
            &v1,
            &format!("/v1/epoch/{}/sign", mesh.vault_id),
            b"PQVM junk".to_vec(),
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = me
        .post(&v1, "/v1/epoch/zz/sign", Vec::new(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", text(&r));

    // Nothing stored moved: still epoch 1, same shard, no vote cast.
    let hello = me.get(&v1, "/v1/hello", 1 << 16).await.unwrap();
    let h: validator::api::Hello = serde_json::from_slice(&hello.body).unwrap();
    assert_eq!(h.vaults, vec![(mesh.vault_id.clone(), 1)]);
    assert_eq!(
        fs::read(vdir.join("epoch-1/shard.pqvs")).unwrap(),
        shard_before
    );
    for dir in ["data/votes", "data/proposals", "data/named"] {
        let votes = mesh.nodes[0].dir.join(dir);
        assert!(
            !votes.exists() || fs::read_dir(&votes).unwrap().next().is_none(),
            "a vote was cast ({dir})"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn votes_are_cast_only_with_a_quorum_in_view_and_for_a_live_holder() {
    use pqvault_tests::sample;
    use std::time::Duration;
    use validator::epochs::PrepareReply;
    use vault::identity::Fingerprint;
    use vault::manifest::Manifest;

    let mut mesh = Mesh::new(3, 2); // quorum(2, 3) = 2
    mesh.disable_auto_heal();
    mesh.start_all();
    mesh.kill9(1);
    mesh.kill9(2);
    for peer in ["validator-2", "validator-3"] {
        let dead = format!("peer=\"{peer}\",state=\"dead\"");
        assert!(mesh.wait_metrics(0, Duration::from_secs(10), |m| sample(
            m,
            "pqvault_peer_state",
            &dead
        ) == Some(1.0)));
    }
    // validator-2's certificate (its process is dead) proposes epoch 2.
    let me = mesh.client_as(1);
    let v1 = mesh.member(0);
    let r = me
        .post(
            &v1,
            &format!("/v1/epoch/{}/prepare?from=1", mesh.vault_id),
            vec![],
            1 << 16,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", text(&r));
    let p: PrepareReply = serde_json::from_slice(&r.body).unwrap();
    let mut body =
        Manifest::decode(&fs::read(mesh.root.path().join("vault/manifest.pqvm")).unwrap())
            .unwrap()
            .body()
            .clone();
    body.epoch = 2;
    let e = body.shards.iter_mut().find(|e| e.index == p.index).unwrap();
    e.recipient = Fingerprint::from_bytes(hex::decode(&p.recipient).unwrap().try_into().unwrap());
    e.blob_hash = hex::decode(&p.blob_hash).unwrap().try_into().unwrap();
    e.share_commitment = hex::decode(&p.share_commitment)
        .unwrap()
        .try_into()
        .unwrap();
    let key = mesh.secret_key(1);
    let m2 = Manifest::sign(&body, key.public(), key.signing_key()).unwrap();
    // Asked as validator-2 would, naming a proposal (the checks below come
    // before any proposal is looked up).
    let m2 = validator::successor::Request::sign(body.vault_id, 1, [0x11; 32], m2, &key)
        .unwrap()
        .encode();
    let sign_path = format!("/v1/epoch/{}/sign", mesh.vault_id);
    let sign = |m: Vec<u8>| {
        let (me, v1, path) = (me.clone(), v1.clone(), sign_path.clone());
        async move { me.post(&v1, &path, m, 1 << 20).await.unwrap() }
    };
    // Alone, validator-1 sees 1 live holder: it keeps its vote.
    let r = sign(m2.clone()).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(text(&r).contains("fewer than the quorum"), "{}", text(&r));
    // With validator-3 back it has a quorum, but the proposer is dead.
    mesh.start(2);
    let alive = "peer=\"validator-3\",state=\"alive\"";
    assert!(mesh.wait_metrics(0, Duration::from_secs(10), |m| sample(
        m,
        "pqvault_peer_state",
        alive
    ) == Some(1.0)));
    let r = sign(m2).await;
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(text(&r).contains("not a live holder"), "{}", text(&r));
    let votes = mesh.nodes[0].dir.join("data/votes");
    assert!(!votes.exists() || fs::read_dir(&votes).unwrap().next().is_none());
}
