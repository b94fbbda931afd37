//! Members the operator removed (`PQVN`, issue 11): a dead member's
//! series go away on every live validator once the operator signs its
//! removal, so `PqvaultPeerDead` clears without editing any config.

use pqvault_tests::{sample, Mesh};
use std::time::Duration;
use vault::membership::Removal;

const WAIT: Duration = Duration::from_secs(60);

/// `vault mesh remove` as the operator, through validators `0..reach`,
/// with `extra` arguments (member ids, `--dead-after`, ...); its output.
fn mesh_remove(mesh: &Mesh, reach: usize, extra: &[&str]) -> String {
    mesh.remove_members(&(0..reach).collect::<Vec<_>>(), extra)
}

/// True if `metrics` hold no series labelled with `peer`.
fn no_series_of(metrics: &str, peer: &str) -> bool {
    let label = format!("peer=\"{peer}\"");
    !metrics
        .lines()
        .any(|l| !l.starts_with('#') && l.contains(&label))
}

async fn status(mesh: &Mesh, via: usize, of: usize) -> serde_json::Value {
    let r = mesh
        .client_as(via)
        .get(&mesh.member(of), "/v1/status", 1 << 20)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn an_operator_removal_clears_a_dead_members_series_everywhere() {
    let mut mesh = Mesh::new(4, 2);
    mesh.disable_auto_heal();
    mesh.start_all();
    let dead = "validator-4";
    mesh.kill9(3);
    let declared = format!("peer=\"{dead}\",state=\"dead\"");
    for i in 0..3 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| sample(m, "pqvault_peer_state", &declared)
                == Some(1.0)),
            "validator-{} never declared {dead} dead",
            i + 1
        );
    }
    // validator-3 is down while the removal is issued.
    mesh.kill9(2);

    // Signed by a validator's own key, not the operator's: refused.
    let forged = Removal {
        version: 1,
        removed: [dead.to_string()].into(),
        ..Default::default()
    }
    .sign(&mesh.secret_key(0))
    .unwrap();
    let r = mesh
        .client_as(1)
        .post(&mesh.member(0), "/v1/membership", forged, 1 << 16)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert!(mesh.metrics(0).contains(&declared), "nothing applied");

    // The operator's client: learns version 0, signs 1, posts it.
    let out = mesh_remove(&mesh, 3, &[dead]);
    // validator-2 may have taken it from validator-1 first.
    assert!(out.contains("validator-1: adopted version 1"), "{out}");
    assert!(
        out.contains("validator-2: adopted version 1")
            || out.contains("validator-2: already holds"),
        "{out}"
    );

    // Every live validator: no series of the removed member, not probed,
    // shown as removed.
    for i in 0..2 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| no_series_of(m, dead)),
            "validator-{} still exports {dead}'s series:\n{}",
            i + 1,
            mesh.metrics(i)
        );
        let v = status(&mesh, 1 - i, i).await;
        assert_eq!(v["membership_version"], 1);
        assert_eq!(v["removed"][0], dead);
        let members: Vec<&str> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert!(!members.contains(&dead), "{members:?}");
    }
    // Still not probed after a while: no series came back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(no_series_of(&mesh.metrics(0), dead));
    // Its certificate no longer opens a connection.
    assert!(
        mesh.client_as(3)
            .get(&mesh.member(0), "/v1/hello", 1 << 16)
            .await
            .is_err(),
        "a removed member's connection was accepted"
    );

    // An equal or lower version changes nothing.
    let op = mesh.operator_key();
    for version in [1, 0] {
        let again = Removal {
            version,
            removed: Default::default(),
            ..Default::default()
        }
        .sign(&op)
        .unwrap();
        let r = mesh
            .client_as(1)
            .post(&mesh.member(0), "/v1/membership", again, 1 << 16)
            .await
            .unwrap();
        assert_eq!(r.status, 409, "version {version} was not refused");
    }
    assert_eq!(status(&mesh, 1, 0).await["removed"][0], dead);

    // validator-3, down when it was issued, adopts it from a peer.
    mesh.start(2);
    assert!(
        mesh.wait_metrics(2, WAIT, |m| no_series_of(m, dead)
            && sample(m, "pqvault_peer_up", "validator-1").is_some()
            && mesh.log(2).contains("adopted a newer membership removal")),
        "validator-3 did not adopt the removal:\n{}",
        mesh.log(2)
    );
    assert!(mesh.nodes[2].dir.join("data/membership.pqvn").exists());
    assert_eq!(status(&mesh, 0, 2).await["membership_version"], 1);

    // It survives a restart: validator-1 comes back with it from its disk
    // (it never probes the removed member, even before asking a peer).
    mesh.kill9(0);
    mesh.start(0);
    assert!(
        mesh.wait_metrics(0, WAIT, |m| sample(m, "pqvault_peer_up", "validator-2")
            .is_some())
    );
    assert!(no_series_of(&mesh.metrics(0), dead));
    assert_eq!(status(&mesh, 1, 0).await["removed"][0], dead);
    assert!(!mesh.log(0).contains("adopted a newer membership removal"));
}

/// Signs the operator's statement `version` with policy time `secs` (no
/// one removed by name) and posts it to each of `to`, through another
/// member's certificate.
async fn set_policy_time(mesh: &Mesh, version: u32, secs: u32, to: &[usize]) {
    let bytes = Removal {
        version,
        dead_after_s: secs,
        ..Default::default()
    }
    .sign(&mesh.operator_key())
    .unwrap();
    for &i in to {
        let r = mesh
            .client_as(usize::from(i == 0))
            .post(&mesh.member(i), "/v1/membership", bytes.clone(), 1 << 16)
            .await
            .unwrap();
        assert!(
            r.status == 200 || r.status == 409,
            "validator-{}: {} {}",
            i + 1,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// Attack (issue 11, written before the fix): a lying member claims an
/// alive honest member has been dead for the operator's policy time. It
/// votes for the removal, asks everyone else to, and sends every member a
/// "certified" removal made of the votes it got. No honest member sees the
/// target dead, so none votes, and the certificate never reaches the
/// quorum: the target stays a member everywhere.
#[tokio::test(flavor = "current_thread")]
async fn a_liar_cannot_remove_an_alive_member_after_the_policy_time() {
    let mut mesh = Mesh::new(4, 2);
    mesh.disable_auto_heal();
    for i in 0..3 {
        mesh.start(i);
    }
    let target = "validator-1";
    mesh.start_with_env(3, &[("PQVAULT_BYZANTINE_CLAIM_DEAD", target)]);
    mesh.wait_all_alive(&[0, 1, 2, 3]);
    set_policy_time(&mesh, 1, 1, &[0, 1, 2, 3]).await;

    // The liar asked the honest members for votes (each refused: alive in
    // its own view) and sent them its certificate (each refused: too few
    // valid votes).
    for i in 1..3 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| {
                sample(m, "pqvault_removal_votes_total", "outcome=\"alive\"")
                    .is_some_and(|v| v >= 1.0)
                    && sample(m, "pqvault_certified_removals_total", "outcome=\"too_few\"")
                        .is_some_and(|v| v >= 1.0)
            }),
            "validator-{} was not attacked as planned:\n{}",
            i + 1,
            mesh.log(3)
        );
    }
    // The liar's own count says it never had a quorum (what
    // `PqvaultRemovalWithoutQuorum` watches on an honest validator whose
    // view disagrees with the rest).
    assert!(
        sample(
            &mesh.metrics(3),
            "pqvault_removal_attempts_total",
            "outcome=\"too_few_votes\""
        )
        .is_some_and(|v| v >= 1.0),
        "{}",
        mesh.metrics(3)
    );
    // Several policy times later, still a member everywhere.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in 0..3 {
        let v = status(&mesh, (i + 1) % 3, i).await;
        assert_eq!(v["removed"], serde_json::json!([]), "validator-{}", i + 1);
        assert_eq!(
            sample(
                &mesh.metrics(i),
                "pqvault_certified_removals_total",
                "outcome=\"adopted\""
            ),
            Some(0.0)
        );
    }
    for i in 1..3 {
        assert_eq!(
            sample(
                &mesh.metrics(i),
                "pqvault_peer_state",
                &format!("peer=\"{target}\",state=\"alive\"")
            ),
            Some(1.0),
            "validator-{} no longer probes {target}",
            i + 1
        );
    }
    assert!(!mesh.nodes[1].dir.join("data/removals").exists());
}

/// Issue 11: with the operator's policy time set (`vault mesh remove
/// --dead-after`), a member killed for good is removed once it has been
/// dead that long in a quorum's own views: its series go (so
/// `PqvaultPeerDead` clears), the certificate is on every live validator's
/// disk, and a validator down meanwhile takes it from a peer.
#[tokio::test(flavor = "current_thread")]
async fn a_member_dead_for_the_policy_time_is_removed_by_certificate() {
    let mut mesh = Mesh::new(5, 2);
    mesh.disable_auto_heal();
    mesh.start_all();
    mesh.wait_all_alive(&[0, 1, 2, 3, 4]);
    // The operator's client sets a policy time of 2 s (version 1).
    let out = mesh_remove(&mesh, 5, &["--dead-after", "2"]);
    assert!(out.contains("dead for 2 s are removed"), "{out}");

    let dead = "validator-5";
    mesh.kill9(4);
    for i in 0..4 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| no_series_of(m, dead)),
            "validator-{} still exports {dead}'s series:\n{}",
            i + 1,
            mesh.log(i)
        );
        let v = status(&mesh, (i + 1) % 4, i).await;
        assert_eq!(v["removed"], serde_json::json!([dead]));
        assert_eq!(v["membership_version"], 1, "no new operator statement");
        assert!(mesh.nodes[i]
            .dir
            .join(format!("data/removals/{dead}.pqvz"))
            .exists());
    }
    assert!(mesh.log(0).contains("member removed by certificate"));

    // A validator that missed it (down meanwhile: here its copy is taken
    // away while it is down) takes it at once, though its own detector has
    // not seen validator-5 dead for 2 s: from the epoch log (on by default
    // with static members), from a peer it asks, or from a peer still
    // offering it. Each way checks the certificate and logs the removal.
    mesh.kill9(3);
    std::fs::remove_file(mesh.nodes[3].dir.join(format!("data/removals/{dead}.pqvz"))).unwrap();
    let before = mesh.log(3).len();
    mesh.start(3);
    assert!(
        mesh.wait_metrics(3, WAIT, |_| mesh.log(3)[before..]
            .contains("member removed by certificate")),
        "validator-4 did not take the certified removal:\n{}",
        mesh.log(3)
    );
    assert!(mesh.wait_metrics(3, WAIT, |m| no_series_of(m, dead)));

    // It survives a restart: from the disk, before any peer is asked.
    // (Before the restart it may have adopted it from the epoch log, if
    // another member's certificate was ordered before its own.)
    let before = mesh.log(0).len();
    mesh.kill9(0);
    mesh.start(0);
    assert!(
        mesh.wait_metrics(0, WAIT, |m| sample(m, "pqvault_peer_up", "validator-2")
            .is_some())
    );
    assert!(no_series_of(&mesh.metrics(0), dead));
    assert!(!mesh.log(0)[before..].contains("member removed by certificate"));

    // The operator lets it back (`--readmit`): the newer statement voids
    // the certificate, so validator-5 is a member again (and, still dead,
    // is removed again once dead 2 s under the new statement).
    mesh_remove(&mesh, 4, &["--readmit", dead]);
    assert!(
        mesh.wait_metrics(1, WAIT, |_| mesh
            .log(1)
            .contains("member no longer removed")),
        "{}",
        mesh.log(1)
    );
    assert!(
        mesh.wait_metrics(1, WAIT, |_| mesh
            .log(1)
            .matches("member removed by certificate")
            .count()
            >= 2),
        "not removed again under the new statement:\n{}",
        mesh.log(1)
    );
}

/// The epoch log's voters follow removals (D39 "Left", D40). Four voters:
/// validator-4 killed and removed after the policy time (3 of 4 voters
/// order its certificate), the leader drops it from the voters; then
/// validator-3 killed: 2 of the 3 remaining voters are a majority, so its
/// removal is ordered and adopted, where 2 of the 4 initial voters were
/// not.
#[tokio::test(flavor = "current_thread")]
async fn the_epoch_logs_voters_follow_removals() {
    let mut mesh = Mesh::new(4, 2);
    mesh.disable_auto_heal();
    mesh.start_all();
    mesh.wait_all_alive(&[0, 1, 2, 3]);
    for i in 0..4 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| sample(m, "pqvault_consensus_voters", "")
                == Some(4.0))
        );
    }
    set_policy_time(&mesh, 1, 2, &[0, 1, 2, 3]).await;

    mesh.kill9(3);
    for i in 0..3 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| no_series_of(m, "validator-4")
                && sample(m, "pqvault_consensus_voters", "") == Some(3.0)),
            "validator-{}: validator-4 not removed from the members and the voters:\n{}",
            i + 1,
            mesh.log(i)
        );
    }
    mesh.kill9(2);
    for i in 0..2 {
        assert!(
            mesh.wait_metrics(i, WAIT, |m| no_series_of(m, "validator-3")
                && sample(m, "pqvault_consensus_voters", "") == Some(2.0)),
            "validator-{}: validator-3's removal was not ordered by the 2 remaining voters:\n{}",
            i + 1,
            mesh.log(i)
        );
        let v = status(&mesh, 1 - i, i).await;
        assert_eq!(
            v["removed"],
            serde_json::json!(["validator-3", "validator-4"])
        );
    }
    assert!(
        (0..2).any(|i| mesh
            .log(i)
            .contains("epoch log voters changed to follow the membership")),
        "{}",
        mesh.log(0)
    );
}
