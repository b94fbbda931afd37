//! The operator's certificate on the peer port: `GET /v1/status` answers
//! (over X25519MLKEM768), every other route is closed to it.

use pqvault_tests::{vault, Mesh};

#[tokio::test(flavor = "current_thread")]
async fn an_operator_certificate_reads_status_and_nothing_else() {
    let mut mesh = Mesh::with_spares(4, 3, 1);
    mesh.start_all();
    let tls = mesh.operator_tls();
    let op = mesh.client_with_cert(&tls, "operator");
    let target = mesh.member(0);

    let st = op.get(&target, "/v1/status", 1 << 20).await.unwrap();
    assert_eq!(st.status, 200, "{}", String::from_utf8_lossy(&st.body));
    let v: serde_json::Value = serde_json::from_slice(&st.body).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["id"], "validator-1");
    assert_eq!(v["kx_group"], "X25519MLKEM768");
    assert_eq!(v["vaults"][0]["vault"], mesh.vault_id.as_str());
    assert_eq!(v["vaults"][0]["epoch"], 1);
    assert_eq!(v["vaults"][0]["threshold"], 3);
    assert_eq!(v["members"].as_array().unwrap().len(), 4);

    // Read-only: no member route answers an operator connection.
    for path in ["/v1/hello", "/v1/identity", "/v1/probe/validator-2"] {
        let r = op.get(&target, path, 1 << 20).await.unwrap();
        assert_eq!(r.status, 404, "GET {path} answered an operator");
    }
    let path = format!("/v1/vaults/{}/shard", mesh.vault_id);
    assert_eq!(op.get(&target, &path, 1 << 20).await.unwrap().status, 404);
    for path in ["/v1/vote", "/v1/news", "/v1/repair", "/v1/transition"] {
        let r = op.post(&target, path, vec![0u8; 8], 1 << 20).await.unwrap();
        assert_eq!(r.status, 404, "POST {path} answered an operator");
    }
    let m = mesh.metrics(0);
    assert!(
        pqvault_tests::sample(&m, "pqvault_peer_connections_total", "result=\"operator\"")
            .is_some_and(|n| n >= 1.0),
        "operator connections are counted"
    );
    // Members read the same document.
    let v2 = mesh
        .client_as(1)
        .get(&target, "/v1/status", 1 << 20)
        .await
        .unwrap();
    assert_eq!(v2.status, 200);
}

/// `vault mesh fetch`: after a heal to epoch 2, the operator's client
/// fetches the vault's chain over its operator certificate, verifies it
/// from the operator's signature with its certificates counted under the
/// operator's f = 1 policy, and writes the files `vault recover --chain`
/// reads, the policy with them; a validator that does not answer is named
/// and skipped.
#[tokio::test(flavor = "current_thread")]
async fn the_operator_fetches_the_verified_chain_of_a_healed_vault() {
    let mut mesh = Mesh::with_policy(4, 3, 1, 1, 3);
    mesh.start_all();
    mesh.kill9(3);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 4], 2).await;
    let r = mesh.root.path();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    let tls = mesh.operator_tls();
    let out = r.join("fetched");
    let dead = format!("validator-4@{}", mesh.member(3).addr);
    let live = format!("validator-2@{}", mesh.member(1).addr);
    let text = vault(&[
        "mesh",
        "fetch",
        "--ca",
        &s(r.join("ca/mesh-ca.crt")),
        "--cert",
        &s(tls.join("operator.crt")),
        "--key",
        &s(tls.join("operator.tls.key")),
        "--validator",
        &dead,
        "--validator",
        &live,
        "--vault",
        &mesh.vault_id,
        "--trust",
        &s(r.join("operator/operator.pub")),
        "--out",
        &s(out.clone()),
    ]);
    assert!(
        text.contains("validator-4") && text.contains("no verified chain"),
        "{text}"
    );
    assert!(text.contains("epoch 2"), "{text}");
    let held = std::fs::read(mesh.nodes[1].dir.join(format!(
        "data/vaults/{}/epoch-2/manifest.pqvm",
        mesh.vault_id
    )))
    .unwrap();
    assert_eq!(std::fs::read(out.join("manifest.pqvm")).unwrap(), held);
    for f in ["anchor.pqvm", "step-2.pqvm", "step-2.pqve"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    assert!(text.contains("(f = 1 from epoch 1)"), "{text}");
    assert_eq!(
        std::fs::read(out.join("policy.pqvl")).unwrap(),
        std::fs::read(r.join("vault/policy.pqvl")).unwrap()
    );
}
