//! Crashes and panics with real processes: a holder killed at every step of
//! voting for and committing a certified epoch comes back on a whole epoch
//! and catches up (the faster store-level walks, artifact admission
//! included, are in validator/src/store.rs and artifacts/store.rs); a
//! background task that panics stops the validator with one clear line
//! instead of leaving it half alive.

use pqvault_tests::{recover_from, wait_epoch, Mesh};
use std::fs;
use std::time::Duration;
use validator::failpoint as fp;

/// 3 of 5 plus a spare; validator-5 dies and the mesh repairs onto the
/// spare (epoch 2). Validator-2 is armed to die at one crash point and is
/// killed there (its vote or its commit of epoch 2), then restarted. It
/// must come back on a whole epoch (its store re-verifies at start, or it
/// would refuse to start): the old one if the crash came before `CURRENT`
/// switched, the new one after; a vote it recorded must still be on disk.
/// Then the leader's retried commit must bring it to epoch 2 (its prepared
/// shard was kept on disk), the shard it serves must be the one its store
/// holds, and its epoch-2 shard must recover the secret.
async fn holder_killed_at(point: &str) {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all();
    // Restarted armed (its first start imported epoch 1, which passes the
    // commit's crash points too).
    mesh.kill9(1);
    let arm = format!("{point}=return");
    mesh.start_with_env(1, &[("FAILPOINTS", arm.as_str())]);
    mesh.kill9(4);
    let status = mesh
        .wait_exit(1, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("validator-2 never reached {point}:\n{}", mesh.log(1)));
    assert_eq!(status.code(), Some(137), "{}", mesh.log(1));
    assert!(mesh.log(1).contains(&format!("failpoint {point}")));
    // Shown if the test fails later: how validator-2 got to the crash.
    eprintln!(
        "--- {point}: validator-2 before the crash ---\n{}",
        mesh.log(1)
    );

    // What the crash left on disk, before anything can change it.
    let data = mesh.nodes[1].dir.join("data");
    let current = data.join(format!("vaults/{}/CURRENT", mesh.vault_id));
    let at: u64 = fs::read_to_string(&current)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let switched = matches!(point, fp::STORE_COMMIT_CURRENT | fp::STORE_COMMIT_DONE);
    assert_eq!(at, if switched { 2 } else { 1 }, "after a crash at {point}");
    let vote = data.join(format!("votes/{}-epoch-1", mesh.vault_id));
    if point == fp::STORE_VOTE_WRITTEN || point.starts_with("store.commit") {
        assert!(vote.exists(), "{point}: a recorded vote was lost");
    }

    mesh.start(1);
    let via = mesh.client_as(0);
    let other = mesh.client_as(2);
    for i in [0usize, 1, 2, 3, 5] {
        wait_epoch(&mesh, if i == 0 { &other } else { &via }, i, 2).await;
    }
    // Nothing half-served: the shard it serves is the one its store holds.
    let served = via
        .get(
            &mesh.member(1),
            &format!("/v1/vaults/{}/shard", mesh.vault_id),
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(served.status, 200);
    let stored = fs::read(data.join(format!("vaults/{}/epoch-2/shard.pqvs", mesh.vault_id)));
    assert_eq!(served.body, stored.unwrap(), "{point}");
    recover_from(&mesh, &[5, 0, 3], 2, 3);
    recover_from(&mesh, &[1, 2, 5], 2, 3);
}

/// A signer dies mid-signature (after the others signed) and the quorum
/// needs a holder whose vote the certificate lacks (its view lagged, or it
/// withholds votes). Before witnesses, that holder refused to sign a share
/// "changing hands without a certified repair we voted for or helped",
/// the attempt failed with 2 of 3 signatures, and every later attempt met
/// "already signed another successor of epoch 1": the epoch never moved.
/// Now every live holder is told of the certified repair (a witness), so
/// it signs on its own view of the dead holder, and the epoch moves.
#[tokio::test(flavor = "current_thread")]
async fn a_signer_lost_mid_signature_does_not_stall_the_epoch_when_a_non_voter_must_sign() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    // On a loaded machine a validator can come up seconds after another,
    // which then counts it lost and names the only spare for its index
    // (D27), so the spare is no spare for the holder killed below: all
    // start at once, and a longer grace keeps startup out of it.
    mesh.set_heal_grace_ms(3_000);
    let arm = format!("{}=return", fp::STORE_VOTE_BEFORE);
    mesh.start_all_with(&[
        (1, &[("FAILPOINTS", arm.as_str())]),
        (3, &[("PQVAULT_BYZANTINE_WITHHOLD_VOTES", "1")]),
    ]);
    mesh.wait_all_alive(&[0, 1, 2, 3, 4, 5]);
    mesh.kill9(4);
    let status = mesh
        .wait_exit(1, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("validator-2 never signed:\n{}", mesh.log(1)));
    assert_eq!(status.code(), Some(137), "{}", mesh.log(1));
    mesh.start(1);
    let (via, other) = (mesh.client_as(0), mesh.client_as(2));
    for i in [0usize, 1, 2, 3, 5] {
        wait_epoch(&mesh, if i == 0 { &other } else { &via }, i, 2).await;
    }
    recover_from(&mesh, &[5, 0, 3], 2, 3);
}

/// The leader dies while its holders sign: 3 of 5 plus two spares,
/// validator-5 dies, and validator-1 (the leader) is killed once it has
/// gathered the signatures of the successor, before any commit. Every
/// holder's vote is spent on that copy, and nobody else holds its
/// certificate. Before, every later attempt met "already signed another
/// successor of epoch 1" (its prepare also replaced the shares that copy
/// names): the epoch never moved. Now a holder that signed a copy which
/// was never committed finishes it itself after a while (D49), and the
/// dead leader's share is then replaced too.
#[tokio::test(flavor = "current_thread")]
async fn a_leader_lost_while_its_holders_sign_does_not_stall_the_epoch() {
    let mut mesh = Mesh::with_spares(5, 3, 2);
    mesh.set_heal_grace_ms(3_000);
    // The signers alone decide (log off, D16/D49): what this test shows.
    mesh.disable_consensus();
    let arm = format!("{}=return", fp::HEAL_SIGNATURES_GATHERED);
    mesh.start_all_with(&[(0, &[("FAILPOINTS", arm.as_str())])]);
    mesh.wait_all_alive(&[0, 1, 2, 3, 4, 5, 6]);
    mesh.kill9(4);
    let status = mesh
        .wait_exit(0, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("validator-1 never signed:\n{}", mesh.log(0)));
    assert_eq!(status.code(), Some(137), "{}", mesh.log(0));
    let honest = [1usize, 2, 3, 5];
    pqvault_tests::wait_epoch_at_least(&mesh, &honest, 2).await;
    assert!(
        [1usize, 2, 3]
            .iter()
            .any(|&i| mesh.log(i).contains("finishing the copy of the successor")),
        "no holder finished the signed copy"
    );
    // Then the dead leader's share goes to the second spare.
    let epoch = pqvault_tests::epoch_without(&mesh, 1, 0).await;
    pqvault_tests::wait_epoch_all(&mesh, &honest, epoch).await;
    recover_from(&mesh, &[1, 2, 3], epoch, 3);
}

/// Every store crash point (vote and commit), each in a live mesh.
#[tokio::test(flavor = "current_thread")]
async fn a_holder_killed_at_every_store_step_comes_back_whole_and_catches_up() {
    let points = fp::points("store.");
    assert_eq!(points.len(), 8);
    for point in points {
        holder_killed_at(point).await;
    }
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
