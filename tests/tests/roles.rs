//! `/readyz` and `pqvault_role` tell a holder, a spare, a stale holder and
//! a validator still syncing apart (they all said "ready" alike before).

use pqvault_tests::{http_get, sample, wait_epoch, Mesh};
use std::fs;
use std::time::{Duration, Instant};

/// Waits until validator `i`'s `/readyz` body starts with `want`; returns it.
fn wait_ready_as(mesh: &Mesh, i: usize, want: &str) -> String {
    let t0 = Instant::now();
    loop {
        let (code, body) = http_get(mesh.nodes[i].ops, "/readyz").unwrap_or_default();
        if code == 200 && body.starts_with(want) {
            return body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "validator-{} never said {want:?} (last {code} {body:?})",
            i + 1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn role_metric(mesh: &Mesh, i: usize) -> Vec<(String, f64)> {
    let m = mesh.metrics(i);
    ["holder", "spare", "stale", "syncing"]
        .iter()
        .map(|r| {
            let v = sample(&m, "pqvault_role", &format!("role=\"{r}\"")).unwrap_or(-1.0);
            (r.to_string(), v)
        })
        .collect()
}

fn assert_role(mesh: &Mesh, i: usize, role: &str) {
    let got = role_metric(mesh, i);
    for (r, v) in &got {
        let want = if r == role { 1.0 } else { 0.0 };
        assert_eq!(*v, want, "validator-{} pqvault_role: {got:?}", i + 1);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn readyz_and_the_role_metric_name_holder_spare_stale_and_syncing() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    // Alone, validator-1 is ready but cannot know whether its epoch is current.
    mesh.start(0);
    wait_ready_as(&mesh, 0, "ready: syncing");
    assert_role(&mesh, 0, "syncing");
    for i in 1..6 {
        mesh.start(i);
    }
    wait_ready_as(&mesh, 0, "ready: holder");
    wait_ready_as(&mesh, 5, "ready: spare");
    assert_role(&mesh, 0, "holder");
    assert_role(&mesh, 5, "spare");

    // Share 5 is lost and rebuilt on the spare (epoch 2); validator-1 then
    // loses its disk and comes back with its epoch-1 bundle and the
    // initial key that opens it (kept by its operator).
    mesh.kill9(4);
    let via = mesh.client_as(2);
    wait_epoch(&mesh, &via, 1, 2).await;
    wait_epoch(&mesh, &via, 5, 2).await;
    wait_ready_as(&mesh, 5, "ready: holder");
    mesh.kill9(0);
    fs::remove_dir_all(mesh.nodes[0].dir.join("data")).unwrap();
    mesh.restore_initial_key(0);
    mesh.start(0);
    let body = wait_ready_as(&mesh, 0, "ready: stale");
    assert!(
        body.contains(&format!(
            "vault {} at epoch 1, peers report 2",
            mesh.vault_id
        )),
        "{body}"
    );
    assert_role(&mesh, 0, "stale");

    // Without that key (the validator erased its copy at its first start,
    // as it should), a wiped validator cannot open its genesis bundle: it
    // says so and serves as a spare.
    mesh.kill9(0);
    fs::remove_dir_all(mesh.nodes[0].dir.join("data")).unwrap();
    mesh.start(0);
    wait_ready_as(&mesh, 0, "ready: spare");
    assert_role(&mesh, 0, "spare");
    assert!(
        mesh.log(0)
            .contains("sealed to an initial KEM key this validator does not hold"),
        "{}",
        mesh.log(0)
    );
    // The mesh gives it its own index back (a returning holder), at a new
    // epoch: a holder again.
    wait_epoch(&mesh, &via, 0, 3).await;
    wait_ready_as(&mesh, 0, "ready: holder");
    assert_role(&mesh, 0, "holder");
}
