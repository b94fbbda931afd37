//! Recovery through the validators (`POST /v1/vaults/{vault}/recover`,
//! `vault mesh recover`): after a heal the operator holds none of the
//! current keys, yet recovers the secret with a request signed by its own
//! key; every request that is not the operator's, not current or not
//! intact is refused and counted in `pqvault_recovery_requests_total`.

use pqvault_tests::{sample, vault, Mesh};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use ::vault::identity::{PublicIdentity, SecretIdentity};
use ::vault::recovery_request::RecoveryRequest;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The vault's secret, recovered offline from the genesis shards with the
/// validators' keys (what the operator could do before any rotation).
fn original_secret(mesh: &Mesh, t: usize) -> Vec<u8> {
    let r = mesh.root.path();
    let op =
        PublicIdentity::decode(&std::fs::read(r.join("operator/operator.pub")).unwrap()).unwrap();
    let genesis =
        ::vault::manifest::Manifest::decode(&std::fs::read(r.join("vault/manifest.pqvm")).unwrap())
            .unwrap()
            .verify(Some(&op.fingerprint()))
            .unwrap();
    let keys: Vec<SecretIdentity> = (0..t).map(|i| mesh.secret_key(i)).collect();
    let files: Vec<Vec<u8>> = (1..=t)
        .map(|n| std::fs::read(r.join(format!("vault/shard-{n:03}-validator-{n}.shard"))).unwrap())
        .collect();
    let c: Vec<_> = files
        .iter()
        .map(|b| ::vault::recover::Candidate::Sealed {
            source: String::new(),
            bytes: b,
        })
        .collect();
    ::vault::recover::recover_with(&genesis, &c, &keys, &mesh.initial_keys())
        .unwrap()
        .secret
        .to_vec()
}

fn outcome(mesh: &Mesh, i: usize, outcome: &str) -> f64 {
    sample(
        &mesh.metrics(i),
        "pqvault_recovery_requests_total",
        &format!("outcome=\"{outcome}\""),
    )
    .unwrap_or(0.0)
}

/// After a holder dies and the mesh heals onto the spare (epoch 2), `vault
/// mesh recover` gets the secret from the live holders with the operator's
/// key alone; a holder that answers with a wrong share is named and
/// skipped, the dead one is named as unreachable, and a request for the
/// retired epoch 1 is refused.
#[tokio::test(flavor = "current_thread")]
async fn the_operator_recovers_through_the_mesh_after_a_heal_and_a_liar_is_named() {
    let mut mesh = Mesh::with_spares(4, 3, 1);
    let original = original_secret(&mesh, 3);
    for i in [0, 2, 3, 4] {
        mesh.start(i);
    }
    mesh.start_with_env(1, &[("PQVAULT_BYZANTINE_LYING_RECOVERY", "1")]);
    mesh.kill9(3);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 4], 2).await;

    let r = mesh.root.path();
    let s = |p: PathBuf| p.to_str().unwrap().to_string();
    let tls = mesh.operator_tls();
    let out = r.join("recovered.secret");
    let mut args: Vec<String> = vec![
        "mesh".into(),
        "recover".into(),
        "--ca".into(),
        s(r.join("ca/mesh-ca.crt")),
        "--cert".into(),
        s(tls.join("operator.crt")),
        "--key".into(),
        s(tls.join("operator.tls.key")),
        "--vault".into(),
        mesh.vault_id.clone(),
        "--signer".into(),
        s(r.join("operator/operator.key")),
        "--out".into(),
        s(out.clone()),
    ];
    for i in 0..5 {
        args.push("--validator".into());
        args.push(format!("{}@{}", mesh.nodes[i].id, mesh.nodes[i].peer));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = vault(&args);
    assert!(
        text.contains("validator-4") && text.contains("no share"),
        "the dead holder is named: {text}"
    );
    assert!(
        text.contains("validator-2   named wrong"),
        "the lying holder is named: {text}"
    );
    assert!(text.contains("epoch 2"), "{text}");
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got, original, "the recovered secret is the original");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Every live holder served (the liar too: it answered, wrongly).
    for i in [0, 1, 2, 4] {
        assert_eq!(outcome(&mesh, i, "served"), 1.0, "validator-{}", i + 1);
    }

    // A request for the retired epoch 1 is refused.
    let op = mesh.client_with_cert(&tls, "operator");
    let one_time = SecretIdentity::generate("one-time").unwrap();
    let vault_id = mesh.vault();
    let old =
        RecoveryRequest::sign(&mesh.operator_key(), vault_id, 1, now(), one_time.public()).unwrap();
    let path = format!("/v1/vaults/{}/recover", mesh.vault_id);
    let resp = op
        .post(&mesh.member(0), &path, old.encode().to_vec(), 1 << 21)
        .await
        .unwrap();
    assert_eq!(resp.status, 409, "{}", String::from_utf8_lossy(&resp.body));
    assert!(
        String::from_utf8_lossy(&resp.body).contains("current certified epoch is 2"),
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(outcome(&mesh, 0, "wrong_epoch"), 1.0);
}

/// Only the operator's certificate and the vault's trusted signer get an
/// answer: a validator's key, a member's certificate, a flipped byte, an
/// old request and a replay are each refused with their own outcome.
#[tokio::test(flavor = "current_thread")]
async fn requests_not_from_the_operator_not_fresh_or_not_intact_are_refused_and_counted() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    let tls = mesh.operator_tls();
    let op = mesh.client_with_cert(&tls, "operator");
    let target = mesh.member(0);
    let path = format!("/v1/vaults/{}/recover", mesh.vault_id);
    let vault_id = mesh.vault();
    let operator = mesh.operator_key();
    let one_time = SecretIdentity::generate("one-time").unwrap();
    let sign = |key: &SecretIdentity, at: u64| {
        RecoveryRequest::sign(key, vault_id, 1, at, one_time.public())
            .unwrap()
            .encode()
            .to_vec()
    };
    let refused = |resp: &validator::peer::Response, code: u16, says: &str| {
        let body = String::from_utf8_lossy(&resp.body);
        assert_eq!(resp.status, code, "{body}");
        assert!(body.contains(says), "expected {says:?} in {body:?}");
    };

    // Signed by a validator's key, not the operator's.
    let r = op
        .post(&target, &path, sign(&mesh.secret_key(1), now()), 1 << 21)
        .await
        .unwrap();
    refused(&r, 403, "not the vault's trusted signer");
    assert_eq!(outcome(&mesh, 0, "untrusted_signer"), 1.0);

    // A validator-role certificate, with a request the operator signed.
    let r = mesh
        .client_as(1)
        .post(&target, &path, sign(&operator, now()), 1 << 21)
        .await
        .unwrap();
    refused(&r, 403, "operator-role certificates only");
    assert_eq!(outcome(&mesh, 0, "not_operator"), 1.0);

    // A flipped byte (in the nonce): the signature no longer verifies.
    let mut bad = sign(&operator, now());
    bad[6 + 16 + 8 + 8] ^= 1;
    let r = op.post(&target, &path, bad, 1 << 21).await.unwrap();
    refused(&r, 403, "signature");
    assert_eq!(outcome(&mesh, 0, "bad_signature"), 1.0);

    // Issued ten minutes ago.
    let r = op
        .post(&target, &path, sign(&operator, now() - 600), 1 << 21)
        .await
        .unwrap();
    refused(&r, 403, "stale");
    assert_eq!(outcome(&mesh, 0, "stale"), 1.0);

    // Truncated bytes name what is wrong.
    let r = op
        .post(
            &target,
            &path,
            sign(&operator, now())[..40].to_vec(),
            1 << 21,
        )
        .await
        .unwrap();
    refused(&r, 400, "truncated");
    assert_eq!(outcome(&mesh, 0, "malformed"), 1.0);

    // The genuine request is served once; its replay is refused.
    let good = sign(&operator, now());
    let r = op
        .post(&target, &path, good.clone(), 1 << 21)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let req = RecoveryRequest::decode(&good).unwrap();
    let answer = ::vault::recovery_request::RecoveryAnswer::decode(&r.body).unwrap();
    let share = answer.open(&req, &one_time).unwrap();
    assert_eq!(share.share.index, 1);
    let r = op.post(&target, &path, good, 1 << 21).await.unwrap();
    refused(&r, 409, "replayed");
    assert_eq!(outcome(&mesh, 0, "replay"), 1.0);
    assert_eq!(outcome(&mesh, 0, "served"), 1.0);
    // The share never reaches the log.
    let log = mesh.log(0);
    assert!(log.contains("served a recovery request"), "{log}");
    assert!(log.contains("refused a recovery request"), "{log}");
}
