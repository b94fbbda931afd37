//! Crashes and panics with real processes: a holder killed in the middle of
//! committing a certified epoch comes back on a whole epoch (the store-level
//! walk of every crash point is in validator/src/store.rs and
//! artifacts/store.rs); a background task that panics stops the validator
//! with one clear line instead of leaving it half alive.

use pqvault_tests::{recover_from, wait_epoch, Mesh};
use std::fs;
use std::time::Duration;
use validator::failpoint as fp;

/// 3 of 5 plus a spare; validator-5 dies and the mesh repairs onto the
/// spare (epoch 2). Validator-2 is armed to die at a commit step; it is
/// killed there and restarted. It must come back on a whole epoch (its
/// store re-verifies at start, or it would refuse to start): the old one
/// if the crash came before `CURRENT` switched, the new one after. Then
/// the leader's retried commit must bring it to epoch 2 (its prepared
/// shard was kept on disk), and its epoch-2 shard recovers the secret.
async fn holder_killed_at(point: &str, restarts_at: u64) {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all();
    // Restarted armed (after its first start imported epoch 1, which also
    // passes the commit's crash points).
    mesh.kill9(1);
    let arm = format!("{point}=return");
    mesh.start_with_env(1, &[("FAILPOINTS", arm.as_str())]);
    mesh.kill9(4);
    let status = mesh
        .wait_exit(1, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("validator-2 never reached {point}:\n{}", mesh.log(1)));
    assert_eq!(status.code(), Some(137), "{}", mesh.log(1));
    assert!(mesh.log(1).contains(&format!("failpoint {point}")));

    // What the crash left on disk, before anything can change it.
    let current = mesh.nodes[1]
        .dir
        .join(format!("data/vaults/{}/CURRENT", mesh.vault_id));
    let at: u64 = fs::read_to_string(&current)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(at, restarts_at, "after a crash at {point}");

    mesh.start(1);
    let via = mesh.client_as(0);
    let other = mesh.client_as(2);
    for i in [0usize, 1, 2, 3, 5] {
        wait_epoch(&mesh, if i == 0 { &other } else { &via }, i, 2).await;
    }
    recover_from(&mesh, &[5, 0, 3], 2, 3);
    recover_from(&mesh, &[1, 2, 5], 2, 3);
}

#[tokio::test(flavor = "current_thread")]
async fn holder_killed_before_switching_current_restarts_on_the_old_epoch() {
    holder_killed_at(fp::STORE_COMMIT_MANIFEST, 1).await;
}

#[tokio::test(flavor = "current_thread")]
async fn holder_killed_after_switching_current_restarts_on_the_new_epoch() {
    holder_killed_at(fp::STORE_COMMIT_CURRENT, 2).await;
}

#[test]
fn a_panicking_background_loop_stops_the_validator_with_one_line() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    mesh.kill9(2);
    // The probe loop panics on its 20th round (about 4 s at 200 ms), after
    // /readyz has said ready.
    mesh.start_with_env(2, &[("FAILPOINTS", "daemon.probe-round=19*off->panic")]);
    mesh.expect_panic(2);
    let status = mesh
        .wait_exit(2, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running after the panic:\n{}", mesh.log(2)));
    assert_eq!(status.code(), Some(101), "{}", mesh.log(2));
    let log = mesh.log(2);
    let lines: Vec<_> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("validator panicked in thread") && lines[0].contains("stopping"),
        "{log}"
    );
}
