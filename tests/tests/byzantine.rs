//! Members that lie: each attack of docs/threat-model.md, performed by a
//! member with a valid mesh certificate against real validator processes.
//! Each test performs the attack and asserts that it is refused; each
//! succeeded against the code before the fix it names.

use pqvault_tests::{sample, wait_epoch, Mesh};
use std::time::Duration;
use validator::repair::{Message as Repair, Plan as RepairPlan};
use validator::reshare::{Message as Reshare, Plan as ResharePlan};
use validator::transition::{Action, CertifiedProposal, Proposal, Vote};

/// The insider's (validator-1's) signed request to sign `manifest` as the
/// successor of epoch 1, naming a proposal nobody certified.
fn insider_request(mesh: &Mesh, manifest: &[u8]) -> Vec<u8> {
    validator::successor::Request::sign(
        mesh.vault(),
        1,
        [0x11; 32],
        manifest.to_vec(),
        &mesh.secret_key(0),
    )
    .unwrap()
    .encode()
}

fn round() -> [u8; 16] {
    let mut r = [0u8; 16];
    aws_lc_rs::rand::fill(&mut r).unwrap();
    r
}

/// The insider's part of attacks 4b, 6 and 6b: validator-1's certificate
/// asks validators `0..count` to prepare epoch 2 (validator-1 itself through
/// validator-2's certificate: a validator does not answer its own name)
/// and returns epoch 1's manifest with epoch 2 and the prepared entries.
async fn prepare_epoch_2(mesh: &Mesh, count: usize) -> vault::manifest::ManifestBody {
    let insider = mesh.client_as(0);
    let peer = mesh.client_as(1);
    let id = &mesh.vault_id;
    let dir = mesh.nodes[0].dir.join(format!("data/vaults/{id}/epoch-1"));
    let m1 = vault::manifest::Manifest::decode(&std::fs::read(dir.join("manifest.pqvm")).unwrap())
        .unwrap();
    let mut body = m1.body().clone();
    body.epoch = 2;
    for i in 0..count {
        let via = if i == 0 { &peer } else { &insider };
        let r = via
            .post(
                &mesh.member(i),
                &format!("/v1/epoch/{id}/prepare?from=1"),
                Vec::new(),
                1 << 16,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let reply: validator::epochs::PrepareReply = serde_json::from_slice(&r.body).unwrap();
        let e = body
            .shards
            .iter_mut()
            .find(|e| e.index == reply.index)
            .unwrap();
        e.blob_hash = hex::decode(&reply.blob_hash).unwrap().try_into().unwrap();
        e.share_commitment = hex::decode(&reply.share_commitment)
            .unwrap()
            .try_into()
            .unwrap();
    }
    body
}

/// 3 of 7 under f = 1, no spares, re-shares after 300 ms: validator
/// `liar` runs with `env`, the others honestly, and holder 7 is killed so
/// the six survivors must re-share.
fn f1_reshare_with_liar(liar: usize, env: (&str, &str)) -> Mesh {
    let mut mesh = Mesh::with_policy(7, 3, 0, 1, 3);
    mesh.set_reshare_after_ms(300);
    mesh.start_all_with(&[(liar, &[env])]);
    mesh.kill9(6);
    mesh
}

/// Epoch `epoch` as `holders[0]` committed it: validator `left_out` holds
/// no share of it, and its first t holders among `holders` recover the
/// secret. Returns its manifest.
fn healed_without(
    mesh: &Mesh,
    epoch: u64,
    left_out: usize,
    holders: &[usize],
) -> vault::manifest::Manifest {
    let dir = mesh.nodes[holders[0]]
        .dir
        .join(format!("data/vaults/{}/epoch-{epoch}", mesh.vault_id));
    let m = vault::manifest::Manifest::decode(&std::fs::read(dir.join("manifest.pqvm")).unwrap())
        .unwrap();
    let gone = mesh.public_identity(left_out).fingerprint();
    assert!(
        m.body().shards.iter().all(|e| e.recipient != gone),
        "validator-{} still holds a share of epoch {epoch}",
        left_out + 1
    );
    let t = usize::from(m.body().threshold);
    pqvault_tests::recover_from(mesh, &holders[..t], epoch, 3);
    m
}

/// Validator-4 runs with `env` as a lying recipient in the f = 1
/// re-share: every honest signer convicts it, names no dealer, and epoch 2
/// heals without it and recovers the secret.
async fn recipient_4_is_convicted(env: (&str, &str)) -> Mesh {
    let mesh = f1_reshare_with_liar(3, env);
    let honest = [0usize, 1, 2, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    assert!(
        all_logged(&mesh, &honest, "dispute settled against recipient 4"),
        "not every honest signer convicted recipient 4"
    );
    assert!(
        none_logged(&mesh, &honest, "dealer share"),
        "an honest dealer was named"
    );
    healed_without(&mesh, 2, 3, &honest);
    mesh
}

/// Validator-4 runs with `env` as a recipient that withholds its new share
/// in the f = 1 re-share and logs `switch` when it does: every honest
/// holder judges it withholding, and epoch 2 heals without it and recovers
/// the secret.
async fn withholding_recipient_4_is_left_out(env: (&str, &str), switch: &str) -> Mesh {
    let mesh = f1_reshare_with_liar(3, env);
    let honest = [0usize, 1, 2, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    assert!(
        mesh.log(3).contains(switch),
        "validator-4 did not log {switch:?}: build the test binaries with `cargo build --workspace --all-targets`"
    );
    assert!(
        all_logged(&mesh, &honest, "withheld its new share"),
        "not every honest holder saw validator-4 withhold"
    );
    healed_without(&mesh, 2, 3, &honest);
    mesh
}

/// Whether every one of `nodes` logged `text`.
fn all_logged(mesh: &Mesh, nodes: &[usize], text: &str) -> bool {
    nodes.iter().all(|&i| mesh.log(i).contains(text))
}

/// Whether none of `nodes` logged `text`.
fn none_logged(mesh: &Mesh, nodes: &[usize], text: &str) -> bool {
    nodes.iter().all(|&i| !mesh.log(i).contains(text))
}

/// Attack 1, harvest: a spare with a valid certificate names itself the
/// replacement of a holder that is only paused, and asks t holders to help.
/// Before certified proposals every helper accepted (202) once its one
/// probe of the paused holder failed; t such rounds over rolling restarts
/// gave the spare t shares of one polynomial.
#[tokio::test(flavor = "current_thread")]
async fn a_spare_cannot_plan_its_own_repair_of_a_paused_holder() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let spare = mesh.client_as(5);
    let plan = RepairPlan::single(
        round(),
        mesh.vault(),
        1,
        5,
        vec![1, 2, 3],
        mesh.public_identity(5).fingerprint(),
    );
    mesh.pause(4); // validator-5 holds share 5
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut accepted = Vec::new();
    for i in [0, 1, 2] {
        let r = spare
            .post(
                &mesh.member(i),
                "/v1/repair",
                Repair::Plan(plan.clone()).encode(),
                4096,
            )
            .await
            .unwrap();
        if r.status < 300 {
            accepted.push(i + 1);
        }
    }
    // The certified path: no holder votes for it, since none has seen
    // holder 5 dead for the grace period (it is only paused).
    let proposal = Proposal {
        vault_id: mesh.vault(),
        from_epoch: 1,
        attempt: u32::MAX,
        action: Action::Repair(vec![plan.clone()]),
    };
    let mut voted = Vec::new();
    for i in [0, 1, 2, 3] {
        let r = spare
            .post(&mesh.member(i), "/v1/vote", proposal.encode(), 1 << 16)
            .await
            .unwrap();
        if r.status == 200 {
            voted.push(i + 1);
        }
    }
    mesh.resume(4);
    assert!(
        accepted.is_empty(),
        "holders {accepted:?} agreed to help a spare's own plan to take share 5"
    );
    assert!(
        voted.is_empty(),
        "holders {voted:?} voted for a spare's plan to take a paused holder's share"
    );
}

/// Attack 2, threshold lowering: t - 1 insiders (validator-1 and -2 of a
/// 3-of-5 vault) pause the two other holders and ask the one honest live
/// holder to re-share among the three of them at t' = 2, which the
/// insiders alone would meet. Before the fix the honest holder dealt.
#[tokio::test(flavor = "current_thread")]
async fn insiders_cannot_make_an_honest_holder_deal_a_lower_threshold() {
    let mut mesh = Mesh::new(5, 3);
    mesh.disable_auto_heal();
    mesh.start_all();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let insider = mesh.client_as(0);
    let plan = ResharePlan {
        round: round(),
        vault_id: mesh.vault(),
        epoch: 1,
        t_new: 2,
        dealers: vec![1, 2, 3],
        recipients: (0..3)
            .map(|i| mesh.public_identity(i).fingerprint())
            .collect(),
    };
    mesh.pause(3);
    mesh.pause(4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = insider
        .post(
            &mesh.member(2),
            "/v1/reshare",
            Reshare::Plan(plan.clone()).encode(),
            4096,
        )
        .await
        .unwrap();
    // The certified path: the two insiders sign the shrink themselves; the
    // honest holder refuses to vote (holders 4 and 5 are not lost in its
    // view); two votes are below the quorum of 3, so nothing acts.
    let proposal = Proposal {
        vault_id: mesh.vault(),
        from_epoch: 1,
        attempt: u32::MAX,
        action: Action::Reshare(plan),
    };
    let honest_vote = insider
        .post(&mesh.member(2), "/v1/vote", proposal.encode(), 1 << 16)
        .await
        .unwrap();
    let cert = CertifiedProposal {
        proposal: proposal.clone(),
        votes: [0, 1]
            .iter()
            .map(|i| Vote::sign(&proposal, &mesh.secret_key(*i)).unwrap())
            .collect(),
    };
    let t = insider
        .post(&mesh.member(2), "/v1/transition", cert.encode(), 1 << 16)
        .await
        .unwrap();
    mesh.resume(3);
    mesh.resume(4);
    assert!(
        r.status >= 400,
        "the honest holder accepted a shrink to t' = 2 from an insider: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    assert_ne!(
        honest_vote.status, 200,
        "the honest holder voted for the shrink"
    );
    assert_eq!(
        t.status,
        403,
        "a shrink with the insiders' votes only: {}",
        String::from_utf8_lossy(&t.body)
    );
    assert!(String::from_utf8_lossy(&t.body).contains("not certified"));
}

/// Attack 3, impersonation: a spare answers `GET /v1/identity` with holder
/// 1's public identity. When holder 1 dies, the mesh must still see share 1
/// as lost and heal it onto the honest spare. Before identities came from
/// certificates, the liar made holder 1 look alive and nothing healed.
#[tokio::test(flavor = "current_thread")]
async fn a_member_claiming_a_holders_identity_is_not_believed() {
    let mut mesh = Mesh::with_spares(5, 3, 2);
    let holder1 = mesh.nodes[0]
        .dir
        .join(format!("identity/{}.pub", mesh.nodes[0].id));
    for i in 0..7 {
        if i == 5 {
            let claim = holder1.to_str().unwrap().to_string();
            mesh.start_with_env(5, &[("PQVAULT_BYZANTINE_CLAIM_IDENTITY", &claim)]);
        } else {
            mesh.start(i);
        }
    }
    assert!(
        mesh.log(5).contains("built to misbehave"),
        "validator-6 cannot lie: build the test binaries with `cargo build --workspace --all-targets`"
    );
    mesh.kill9(0);
    let via = mesh.client_as(2);
    wait_epoch(&mesh, &via, 1, 2).await;
    wait_epoch(&mesh, &via, 6, 2).await;
    // The liar was seen for what it is, and got nothing.
    let m = mesh.metrics(1);
    assert!(
        pqvault_tests::sample(
            &m,
            "pqvault_transition_refusals_total",
            "reason=\"identity_mismatch\""
        )
        .is_some_and(|v| v >= 1.0),
        "no identity mismatch counted"
    );
}

/// A leader holding a certified repair splits the signers between two
/// copies of its successor (D38 "Left"): 3 of 5 plus two spares, holder 5
/// dies, and validator-1 (the leader by rule) sends every other signer a
/// copy one second younger. Before the pre-sign exchange (D49) neither
/// copy reached the quorum of 3, every honest holder had spent its one
/// successor signature, and the epoch never moved again: the next losses
/// could never heal. Now each signer sees the other copy before it signs,
/// the two requests signed by the leader convict it, and the honest
/// holders move on without it: either by finishing a copy one of them
/// signed first, or by a new attempt that also replaces the leader's
/// share.
#[tokio::test(flavor = "current_thread")]
async fn a_leader_splitting_the_signers_cannot_stall_the_epoch() {
    leader_splits_the_signers("1").await;
}

/// The same split, the second copy sent half a second after the first:
/// validator-3 has signed the first before the others are asked the
/// second, so its one signature is spent and only that copy can ever be
/// certified. The others see it signed and finish it (keeping the leader,
/// whom the evidence they spread convicts everywhere), and the next epoch
/// replaces the leader's share. Under load the first variant can take
/// this path too (seen in a CI rehearsal before the evidence was spread).
#[tokio::test(flavor = "current_thread")]
async fn a_leader_splitting_the_signers_late_has_its_first_copy_finished() {
    leader_splits_the_signers("late").await;
}

async fn leader_splits_the_signers(how: &str) {
    let mut mesh = Mesh::with_spares(5, 3, 2);
    // The signers alone decide (log off, D16/D49): what this test shows.
    mesh.disable_consensus();
    mesh.start_all_with(&[(0, &[("PQVAULT_BYZANTINE_SPLIT_SIGNERS", how)])]);
    mesh.wait_all_alive(&[0, 1, 2, 3, 4, 5, 6]);
    mesh.kill9(4);
    let honest = [1usize, 2, 3, 5];
    pqvault_tests::wait_epoch_at_least(&mesh, &honest, 2).await;
    // Either way the leader's share ends up replaced: wait for the epoch
    // without it (2 after a new attempt, 3 after finishing a signed copy).
    let epoch = pqvault_tests::epoch_without(&mesh, 1, 0).await;
    pqvault_tests::wait_epoch_all(&mesh, &honest, epoch).await;
    assert!(
        mesh.log(0).contains("splitting the signers"),
        "validator-1 did not split the signers: build the test binaries with `cargo build --workspace --all-targets`"
    );
    assert!(
        [1usize, 2, 3]
            .iter()
            .any(|&i| mesh.log(i).contains("split signers") && mesh.log(i).contains("convicted")),
        "no honest holder convicted the leader that split the signers"
    );
    // Each holder that convicted it says so to the operator, by name.
    for i in [1usize, 2, 3] {
        if mesh.log(i).contains("split signers") && mesh.log(i).contains("convicted") {
            assert_eq!(
                sample(
                    &mesh.metrics(i),
                    "pqvault_convicted_members",
                    "peer=\"validator-1\""
                ),
                Some(1.0),
                "validator-{} convicted validator-1 but does not export it",
                i + 1
            );
        }
    }
    let m = pqvault_tests::manifest_at(&mesh, 1, epoch);
    let t = usize::from(m.body().threshold);
    let holders: Vec<usize> = [1usize, 2, 3, 5, 6]
        .into_iter()
        .filter(|&i| {
            let fp = mesh.public_identity(i).fingerprint();
            m.body().shards.iter().any(|e| e.recipient == fp)
        })
        .collect();
    pqvault_tests::recover_from(&mesh, &holders[..t], epoch, 3);

    // The operator removes the convicted member: the alert's series goes,
    // and so do the convictions (an identity issued later under the id
    // starts clean).
    mesh.remove_members(&[1, 2, 3, 5, 6], &["validator-1"]);
    for i in [1usize, 2, 3] {
        assert!(
            mesh.wait_metrics(i, Duration::from_secs(20), |m| sample(
                m,
                "pqvault_convicted_members",
                "peer=\"validator-1\""
            )
            .is_none()),
            "validator-{} still exports validator-1 as convicted after its removal",
            i + 1
        );
        let log = mesh.log(i);
        if log.contains("split signers") && log.contains("convicted") {
            assert!(
                log.contains("its convictions are dropped"),
                "validator-{} kept its conviction of the removed validator-1",
                i + 1
            );
        }
    }
}

/// A helper that withholds: 3 of 5 plus a spare, holder 5 dies, and
/// validator-2, one of the three helpers the rule picks (the first t live
/// holders), accepts every certified repair and sends no piece. Before,
/// every attempt picked the same helpers and timed out: no epoch 2, ever.
/// Now the leader asks the helpers of a failed round whose pieces never
/// came, keeps each disputed pair apart, and the next attempt heals with
/// helpers 1, 3 and 4.
#[tokio::test(flavor = "current_thread")]
async fn a_helper_withholding_its_pieces_stalls_one_attempt_not_the_vault() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all_with(&[(1, &[("PQVAULT_BYZANTINE_SILENT_HELPER", "1")])]);
    mesh.wait_all_alive(&[0, 1, 2, 3, 4, 5]);
    mesh.kill9(4);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 2, 3, 5], 2).await;
    assert!(
        mesh.log(1).contains("helping silently"),
        "validator-2 was not a silent helper: build the test binaries with `cargo build --workspace --all-targets`"
    );
    assert!(
        mesh.log(0).contains("repair helpers in dispute"),
        "the leader recorded no dispute"
    );
    pqvault_tests::recover_from(&mesh, &[0, 2, 3], 2, 3);
}

/// A dealer that withholds: 3 of 7 at f = 1, holder 7 dies and the six
/// live holders re-share (no spares); validator-2 takes part and sends no
/// sub-share. Before, every attempt listed it as a dealer again and timed
/// out: no epoch 2, ever. Now the leader asks the recipients of the failed
/// attempt whose sub-shares never came; a dealer more than f of them name
/// deals no more this epoch, and the next attempt heals (validator-2 still
/// receives its new share: it is a live holder).
#[tokio::test(flavor = "current_thread")]
async fn a_dealer_withholding_its_sub_shares_stalls_one_attempt_not_the_vault() {
    let mesh = f1_reshare_with_liar(1, ("PQVAULT_BYZANTINE_SILENT_DEALER", "1"));
    let honest = [0usize, 2, 3, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    assert!(
        mesh.log(1).contains("dealing silently"),
        "validator-2 was not a silent dealer: build the test binaries with `cargo build --workspace --all-targets`"
    );
    assert!(
        honest
            .iter()
            .any(|&i| mesh.log(i).contains("sub-shares never came")),
        "no leader recorded the silent dealer"
    );
    let m = pqvault_tests::manifest_at(&mesh, 0, 2);
    let t = usize::from(m.body().threshold);
    pqvault_tests::recover_from(&mesh, &honest[..t], 2, 3);
}

/// The re-share refusal paths (issue 10, "How"), reached over the network:
/// 3 of 7 at f = 1, holder 7 dies and the six live holders re-share;
/// validator-3 deals honestly and also sends one recipient its sub-share
/// as another dealer's (impersonation), unsigned, another recipient's
/// sub-share, and its own again once taken (a replay). Each is refused
/// with its reason (`reshare::receive`), none disturbs the round, and
/// epoch 2 keeps every live holder, validator-3 included. These paths were
/// refused before this test; it pins them where no test reached them.
#[tokio::test(flavor = "current_thread")]
async fn abusive_sub_shares_are_refused_and_the_reshare_completes() {
    let mesh = f1_reshare_with_liar(2, ("PQVAULT_BYZANTINE_ABUSE_SUBSHARES", "1"));
    let live = [0usize, 1, 2, 3, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &live, 2).await;
    let log = mesh.log(2);
    for (kind, answer) in [
        ("as another dealer", "403 "),
        ("unsigned", "422 unsigned sub-share"),
        (
            "sealed to another recipient",
            "422 sub-share is not sealed to us",
        ),
        ("again", "409 already have share 3's sub-share (replay?)"),
    ] {
        let line = format!("abusive sub-share {kind}: {answer}");
        assert!(
            log.contains(&line),
            "validator-3 did not log {line:?}: build the test binaries with `cargo build --workspace --all-targets`\n{log}"
        );
    }
    assert!(
        log.contains("does not hold share 1 (sent by validator-3)"),
        "{log}"
    );
    let m = healed_without(&mesh, 2, 6, &live);
    assert_eq!(m.body().shards.len(), 6, "every live holder keeps a share");
    assert!(
        none_logged(&mesh, &live, "dealer share 3"),
        "validator-3 dealt honestly and must not be named"
    );
}

/// A recipient that withholds: 3 of 7 at f = 1, holder 7 dies and the six
/// live holders re-share (no spares); validator-4 accepts every sub-share
/// and never makes its new share. Before, every attempt named it a
/// recipient again and timed out: no epoch 2, ever, and the leader alone
/// saw the silence. Now every holder in the round asks the recipients,
/// three quarters into the dealing window, what became of their new
/// shares; holding every sub-share and no new share is withholding in
/// each holder's own view, so validator-4's share counts as lost there and
/// the next attempt, certified by holders that each saw it, heals without
/// it.
#[tokio::test(flavor = "current_thread")]
async fn a_recipient_withholding_its_new_share_stalls_one_attempt_not_the_vault() {
    withholding_recipient_4_is_left_out(
        ("PQVAULT_BYZANTINE_SILENT_RECIPIENT", "1"),
        "receiving silently",
    )
    .await;
}

/// A recipient that withholds from the leader alone: 3 of 7 at f = 1,
/// holder 7 dies and the six live holders re-share; validator-4 answers
/// every member but validator-1, the leader, which gets no new share, no
/// check values and no signature from it. The dealers see nothing wrong
/// and rightly refuse to leave it out, so before, every attempt timed out
/// at the leader: no epoch 2. Now what validator-4 signed and showed the
/// dealers (its entry and its check values) reaches the leader through
/// them, and epoch 2 keeps validator-4's new share.
#[tokio::test(flavor = "current_thread")]
async fn a_recipient_withholding_from_the_leader_alone_is_relayed_around() {
    let mesh = f1_reshare_with_liar(3, ("PQVAULT_BYZANTINE_SHUN", "validator-1"));
    let honest = [0usize, 1, 2, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    assert!(
        mesh.log(3).contains("shunning"),
        "validator-4 did not shun the leader: build the test binaries with `cargo build --workspace --all-targets`"
    );
    let m = pqvault_tests::manifest_at(&mesh, 0, 2);
    let liar = mesh.public_identity(3).fingerprint();
    assert!(
        m.body().shards.iter().any(|e| e.recipient == liar),
        "epoch 2 left validator-4 out, though it withheld from the leader alone"
    );
    let t = usize::from(m.body().threshold);
    pqvault_tests::recover_from(&mesh, &honest[..t], 2, 3);
}

/// A recipient that withholds behind a false accusation: 3 of 7 at f = 1,
/// holder 7 dies and the six live holders re-share; validator-4 accepts
/// every sub-share, makes no new share, and says share 1's sub-share never
/// came. Only share 1's holder knows that is a lie, and one dealer named by
/// one recipient is not left out (at most f recipients lie), so before,
/// every attempt timed out: no epoch 2. Now a recipient signs a receipt
/// for each sub-share it accepts, and every dealer that meets the
/// accusation asks the accused dealer for the receipt and checks the
/// recipient's own signature on it: each holder sees the lie, and the next
/// attempt heals without validator-4.
#[tokio::test(flavor = "current_thread")]
async fn a_recipient_blaming_an_honest_dealer_is_caught_by_its_own_receipt() {
    let mesh = withholding_recipient_4_is_left_out(
        ("PQVAULT_BYZANTINE_BLAME_DEALER", "1"),
        "blaming a dealer",
    )
    .await;
    assert!(
        all_logged(&mesh, &[0, 1, 2, 4, 5], "though it acknowledged it"),
        "not every honest holder saw the receipt"
    );
}

/// The same accusation without receipts: validator-4 acknowledges no
/// sub-share, so no dealer can disprove it, and names the first dealer of
/// each attempt missing. Each accused dealer deals no more this epoch, so
/// the accusations move on; before, the attempts went on failing. Now
/// each dealer counts the live dealers a recipient named without a receipt
/// to show, and more than f is more than can withhold: by the second
/// attempt every honest dealer judges validator-4 withholding and the next
/// heals without it.
#[tokio::test(flavor = "current_thread")]
async fn a_recipient_blaming_dealer_after_dealer_is_judged_by_its_count() {
    let mesh = withholding_recipient_4_is_left_out(
        ("PQVAULT_BYZANTINE_BLAME_DEALER", "noreceipt"),
        "blaming a dealer",
    )
    .await;
    assert!(
        all_logged(&mesh, &[0, 1, 2, 4, 5], "live dealers missing"),
        "not every honest holder judged validator-4 by its count of accusations"
    );
}

/// A dealer that withholds from one recipient: 3 of 7 at f = 1, holder 7
/// dies and the six live holders re-share; validator-2 deals to everyone
/// but new index 4. Only validator-4 can name it, and one namer is not
/// more than f, so before, validator-2 dealt in every attempt and every
/// attempt timed out: no epoch 2. Now a dealer any recipient names deals no
/// more this epoch while enough others remain, and the next attempt heals
/// with all six.
#[tokio::test(flavor = "current_thread")]
async fn a_dealer_withholding_from_one_recipient_stalls_one_attempt_not_the_vault() {
    let mesh = f1_reshare_with_liar(1, ("PQVAULT_BYZANTINE_SILENT_DEALER_TO", "4"));
    let honest = [0usize, 2, 3, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    assert!(
        mesh.log(1).contains("dealing nothing to one recipient"),
        "validator-2 did not withhold: build the test binaries with `cargo build --workspace --all-targets`"
    );
    let m = pqvault_tests::manifest_at(&mesh, 0, 2);
    assert_eq!(m.body().n, 6, "a live holder was left out");
    let t = usize::from(m.body().threshold);
    pqvault_tests::recover_from(&mesh, &honest[..t], 2, 3);
}

/// Attack 4, destruction: a dealer adds a constant to the share it deals in
/// a re-share. 3 of 7 under f = 1, no spares: one holder dies, the six
/// survivors re-share, and validator-2 (share 2) deals badly. No holder may
/// sign away epoch 1 for a successor that does not recover the secret; the
/// check must name the dealer, and the next attempt must leave it out and
/// heal without it. Before the dealing check the six committed epoch 2
/// with a sharing of another secret and deleted epoch 1: the vault was gone.
#[tokio::test(flavor = "current_thread")]
async fn a_bad_dealer_is_named_and_the_vault_heals_without_it() {
    let mesh = f1_reshare_with_liar(1, ("PQVAULT_BYZANTINE_BAD_DEAL", "1"));
    let honest = [0usize, 2, 3, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    let named = |i: usize| {
        let log = mesh.log(i);
        log.contains("bad dealing in re-share") && log.contains("dealer share 2")
    };
    assert!(
        honest.iter().all(|&i| named(i)),
        "not every honest survivor named share 2's holder as a bad dealer"
    );
    assert!(
        honest.iter().any(|&i| mesh.metrics(i).lines().any(|l| l
            .starts_with("pqvault_bad_dealings_total{culprit=\"dealer\"}")
            && !l.ends_with(" 0"))),
        "no validator counted the bad dealing"
    );
    // Named by its own signature: convicted, and exported by name.
    assert!(
        honest.iter().any(|&i| sample(
            &mesh.metrics(i),
            "pqvault_convicted_members",
            "peer=\"validator-2\""
        ) == Some(1.0)),
        "no honest holder exports validator-2 as convicted"
    );
    // Epoch 2 leaves the bad dealer out, and recovers the secret.
    assert_eq!(healed_without(&mesh, 2, 1, &honest).body().n, 5);
}

/// A dealer that sends one recipient a bad point, in every attempt: the
/// recipient's check values disagree, which alone looks like the
/// recipient lying. 3 of 7 at f = 1, holder 7 dies, holder 2 deals new
/// index 4 a wrong (but signed) sub-share each time. The recipient
/// reveals its signed sub-shares, every signer recomputes its values from
/// them, and the syndrome points at dealer 2, proven by its own signature;
/// the next attempt leaves it out. Before disputes were settled every
/// attempt failed naming only "values of new share 4", forever: the vault
/// never healed.
#[tokio::test(flavor = "current_thread")]
async fn a_dealer_picking_on_one_recipient_is_named_by_its_own_signature() {
    let mesh = f1_reshare_with_liar(1, ("PQVAULT_BYZANTINE_BAD_SUBSHARE_TO", "4"));
    let honest = [0usize, 2, 3, 4, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 2).await;
    assert!(
        all_logged(&mesh, &honest, "dealer share 2 signed a bad point"),
        "not every honest survivor named share 2's holder as the dealer in the dispute"
    );
    assert!(
        none_logged(&mesh, &honest, "settled against recipient"),
        "an honest recipient was named"
    );
    assert_eq!(healed_without(&mesh, 2, 1, &honest).body().n, 5);
}

/// The other side of the same dispute: a recipient that publishes check
/// values its sub-shares do not give (3 of 7 at f = 1, holder 7 dead,
/// holder 4 lies in the first re-share it receives). Asked to reveal, it
/// shows the sub-shares its dealers signed, and every signer sees that
/// they do not give what it published: the recipient is named, its share
/// counts as lost, and the next attempt heals without it. No dealer is
/// named.
#[tokio::test(flavor = "current_thread")]
async fn a_recipient_lying_about_its_check_values_is_convicted_by_its_reveal() {
    let mesh = recipient_4_is_convicted(("PQVAULT_BYZANTINE_BAD_CHECK_ONCE", "1")).await;
    assert!(
        [0usize, 1, 2, 4, 5]
            .iter()
            .any(|&i| mesh.metrics(i).lines().any(|l| l
                .starts_with("pqvault_dealing_disputes_total{outcome=\"recipient\"}")
                && !l.ends_with(" 0"))),
        "no validator counted the settled dispute"
    );
}

/// A recipient that lies about its check values in every attempt and
/// refuses to reveal its sub-shares (3 of 7 at f = 1, holder 7 dead,
/// holder 4 lies and hides). Every signer hands it the check values every
/// recipient signed, in which its column alone disagrees; an honest
/// recipient given that view always reveals, so the refusal convicts it,
/// its share counts as lost and the next attempt heals without it. Before
/// recipients signed their check values a refusal settled nothing: every
/// attempt failed naming only "values of new share 4", forever.
#[tokio::test(flavor = "current_thread")]
async fn a_recipient_that_lies_and_refuses_to_reveal_is_convicted() {
    recipient_4_is_convicted(("PQVAULT_BYZANTINE_LIE_AND_HIDE", "1")).await;
}

/// A recipient that lies once about its dealing-check values fails the
/// refresh after a repair; it is convicted by its own reveal (not any
/// dealer), and the epoch the refresh owes is still made, without it. 3 of
/// 5 plus a spare, refresh on: holder 5 dies, the spare is repaired in
/// (epoch 2, same polynomial), and the refresh (epoch 3) must still
/// happen. Before refreshes owed were persisted and retried, a failed
/// refresh was never tried again: nothing was lost, so healing had nothing
/// to do, and the lost holder's old share kept counting towards t. Before
/// disputes were settled, the liar was named only as "values of new share
/// 2" and kept its place; now its share counts as lost, and with no spare
/// left the others re-share among themselves.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_refresh_is_retried_and_a_lying_recipient_frames_no_dealer() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.enable_refresh();
    mesh.set_reshare_after_ms(300);
    mesh.start_all_with(&[(1, &[("PQVAULT_BYZANTINE_BAD_CHECK_ONCE", "1")])]);
    mesh.kill9(4);
    let honest = [0usize, 2, 3, 5];
    pqvault_tests::wait_epoch_all(&mesh, &honest, 3).await;
    let logs: Vec<String> = honest.iter().map(|&i| mesh.log(i)).collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("bad dealing in re-share") && l.contains("values of new share 2")),
        "no validator named recipient 2's values"
    );
    assert!(
        all_logged(&mesh, &honest, "dispute settled against recipient 2"),
        "not every honest signer convicted recipient 2"
    );
    assert!(
        none_logged(&mesh, &honest, "dealer share"),
        "an honest dealer was named"
    );
    healed_without(&mesh, 3, 1, &[5, 2, 3, 0]);
}

/// A holder that leads without a certified proposal: holder 5 is dead, and
/// insider holder 1 has the others prepare epoch 2, writes a manifest that
/// gives share 5 to its accomplice (the spare, which never received a
/// share: the entry's hashes are made up) and asks for signatures. Before
/// signers checked that a share changes hands only as a certified repair
/// they voted for or helped with, every one signed (the dead holder is
/// replaceable in its own view): a quorum certified an epoch in which
/// share 5 is gone, and an insider could repeat it for every dead holder.
#[tokio::test(flavor = "current_thread")]
async fn a_share_changes_hands_only_by_a_certified_repair() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.disable_auto_heal();
    mesh.start_all();
    mesh.kill9(4);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let insider = mesh.client_as(0);
    let id = mesh.vault_id.clone();
    let mut body = prepare_epoch_2(&mesh, 4).await;
    let spare = mesh.public_identity(5);
    let e5 = body.shards.iter_mut().find(|e| e.index == 5).unwrap();
    e5.recipient = spare.fingerprint();
    e5.recipient_name = spare.name().to_string();
    e5.blob_hash = [0xab; 32];
    e5.share_commitment = [0xcd; 32];
    let key = mesh.secret_key(0);
    let m2 = vault::manifest::Manifest::sign(&body, key.public(), key.signing_key()).unwrap();
    let mut signed = 0;
    let mut answers = Vec::new();
    for i in 1..4 {
        let r = insider
            .post(
                &mesh.member(i),
                &format!("/v1/epoch/{id}/sign"),
                insider_request(&mesh, &m2),
                1 << 16,
            )
            .await
            .unwrap();
        if r.status == 200 {
            signed += 1;
        }
        answers.push(if r.status == 200 {
            "200 (signed)".to_string()
        } else {
            format!("{} {}", r.status, String::from_utf8_lossy(&r.body))
        });
    }
    assert_eq!(
        signed, 0,
        "honest holders signed a manifest that hands share 5 to a spare without a certified repair: {answers:?}"
    );
    assert!(
        answers.iter().all(|a| a.contains("certified repair")),
        "{answers:?}"
    );
}

/// Attack 6, equivocation, with real processes: an insider (validator-1,
/// its own key and certificate) prepares every holder of a 4-of-7 vault
/// under the operator's f = 1 policy and signs two different successors of
/// epoch 1. The honest holders refuse to sign either (a successor that
/// keeps the polynomial is signed only as a repair they voted for; see
/// the next test). Had three of them signed each (the test signs with
/// their keys), each fork would have 4 signatures: a quorum at f = 0
/// (`max(t, n/2 + 1)` = 4, so a vault without a policy would fork) but not
/// the policy's 5. Every honest holder refuses to commit either, and stays
/// at epoch 1.
#[tokio::test(flavor = "current_thread")]
async fn an_equivocating_insider_cannot_fork_a_vault_under_f_1() {
    let mut mesh = Mesh::with_policy(7, 4, 0, 1, 4);
    mesh.disable_auto_heal();
    // Signing requests posted by hand reach the signers alone (log off).
    mesh.disable_consensus();
    mesh.start_all();
    // A settled view: the signers' refusals below are then about what
    // they are asked to sign, not about who they see.
    mesh.wait_all_alive(&[0, 1, 2, 3, 4, 5, 6]);
    let insider = mesh.client_as(0);
    let id = mesh.vault_id.clone();
    let operator = vault::identity::PublicIdentity::decode(
        &std::fs::read(mesh.root.path().join("operator/operator.pub")).unwrap(),
    )
    .unwrap();
    let dir = mesh.nodes[0].dir.join(format!("data/vaults/{id}/epoch-1"));
    let g = vault::manifest::Manifest::decode(&std::fs::read(dir.join("manifest.pqvm")).unwrap())
        .unwrap()
        .verify(Some(&operator.fingerprint()))
        .unwrap();
    let body = prepare_epoch_2(&mesh, 7).await;
    let key = mesh.secret_key(0);
    let fork = |created: u64| {
        let mut b = body.clone();
        b.created_unix = b.created_unix.wrapping_add(created);
        let bytes = vault::manifest::Manifest::sign(&b, key.public(), key.signing_key()).unwrap();
        let m = vault::manifest::Manifest::decode(&bytes).unwrap();
        (bytes, m)
    };
    let forks = [fork(1), fork(2)];
    let halves: [&[usize]; 2] = [&[1, 2, 3], &[4, 5, 6]];
    let mut certs = Vec::new();
    for ((bytes, m), half) in forks.iter().zip(halves) {
        let t = vault::epoch::Transition::between(&g, m);
        let mut cert = vault::epoch::EpochCertificate {
            transition: t.clone(),
            signatures: vec![t.sign(&key).unwrap()],
        };
        for &i in half {
            let r = insider
                .post(
                    &mesh.member(i),
                    &format!("/v1/epoch/{id}/sign"),
                    insider_request(&mesh, bytes),
                    1 << 16,
                )
                .await
                .unwrap();
            let said = String::from_utf8_lossy(&r.body).to_string();
            assert_eq!(r.status, 409, "validator-{} signed a fork: {said}", i + 1);
            assert!(said.contains("certified repair we voted for"), "{said}");
            cert.signatures.push(t.sign(&mesh.secret_key(i)).unwrap());
        }
        // The fork's certificate is exactly what f = 0 accepts.
        assert!(vault::epoch::verify_step(&g, bytes, &cert, 1).is_ok());
        certs.push(cert);
    }
    // Neither fork commits anywhere.
    for ((bytes, _), cert) in forks.iter().zip(&certs) {
        let commit = validator::epochs::encode_commit(bytes, &cert.encode());
        for i in 1..7 {
            let r = insider
                .post(
                    &mesh.member(i),
                    &format!("/v1/epoch/{id}/commit"),
                    commit.clone(),
                    1 << 16,
                )
                .await
                .unwrap();
            let said = String::from_utf8_lossy(&r.body).to_string();
            assert_ne!(
                r.status,
                200,
                "validator-{} committed a fork: {said}",
                i + 1
            );
            assert!(said.contains("4 distinct signer(s), need 5"), "{said}");
        }
    }
    for i in 1..7 {
        wait_epoch(&mesh, &insider, i, 1).await;
    }
}

/// Attack 6b, locking an epoch: an insider needs no loss and no vote to
/// make every honest holder spend its one successor signature of the
/// epoch. It prepares every holder of a 3-of-5 vault and asks two of them
/// to sign one re-sealed copy of epoch 1 and the other two another copy;
/// neither gathers a quorum, and if the holders signed, no successor of
/// epoch 1 could ever be certified: the next real loss never heals. A
/// successor that keeps the polynomial is signed only as the repair its
/// signer voted for.
#[tokio::test(flavor = "current_thread")]
async fn an_insider_cannot_spend_the_holders_successor_votes_on_empty_epochs() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    // Signing requests posted by hand reach the signers alone (log off).
    mesh.disable_consensus();
    mesh.start_all();
    mesh.wait_all_alive(&[0, 1, 2, 3, 4, 5]);
    let insider = mesh.client_as(0);
    let id = mesh.vault_id.clone();
    let body = prepare_epoch_2(&mesh, 5).await;
    let key = mesh.secret_key(0);
    let mut answers = Vec::new();
    for (created, half) in [(1u64, [1usize, 2]), (2, [3, 4])] {
        let mut b = body.clone();
        b.created_unix = b.created_unix.wrapping_add(created);
        let fork = vault::manifest::Manifest::sign(&b, key.public(), key.signing_key()).unwrap();
        for i in half {
            let r = insider
                .post(
                    &mesh.member(i),
                    &format!("/v1/epoch/{id}/sign"),
                    insider_request(&mesh, &fork),
                    1 << 16,
                )
                .await
                .unwrap();
            answers.push(format!(
                "validator-{}: {} {}",
                i + 1,
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
    }
    // A real loss now: the mesh must still be able to heal.
    mesh.kill9(4);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3, 5], 2).await;
    assert!(answers.iter().all(|a| a.contains("repair")), "{answers:?}");
}

/// Attack 5, key theft: an insider archives every holder's sealed shard of
/// epoch 2 (any member may read them), and later, at epoch 3, steals t
/// holders' keys: their identity key files and their whole data
/// directories. With shards sealed to the long-term identity (the code
/// before epoch keys), the stolen identity keys opened the archived shards
/// and gave the secret, despite every repair and refresh. Now each epoch's
/// shard is sealed to that epoch's key, erased when the next epoch
/// commits: nothing the thief holds opens an archived shard, while the
/// same keys open the current epoch's (so the thief's method is sound).
#[tokio::test(flavor = "current_thread")]
async fn a_key_thief_at_epoch_3_cannot_open_shards_archived_at_epochs_1_and_2() {
    let mut mesh = Mesh::with_spares(5, 3, 2);
    mesh.start_all();
    let id = mesh.vault_id.clone();
    // Genesis shards are public too: `vault create`'s output, the import
    // bundles, and what every holder serves at epoch 1.
    let genesis: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            std::fs::read(mesh.root.path().join(format!(
                "vault/shard-{:03}-validator-{}.shard",
                i + 1,
                i + 1
            )))
            .unwrap()
        })
        .collect();
    mesh.kill9(4);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2, 3], 2).await;

    // The insider, validator-1 (validator-2's certificate for its own
    // shard), reads every live member's shard of epoch 2.
    let (insider, other) = (mesh.client_as(0), mesh.client_as(1));
    let mut archived = std::collections::BTreeMap::new();
    for i in [0usize, 1, 2, 3, 5, 6] {
        let via = if i == 0 { &other } else { &insider };
        let r = via
            .get(&mesh.member(i), &format!("/v1/vaults/{id}/shard"), 1 << 20)
            .await
            .unwrap();
        if r.status == 200 {
            let h = vault::seal::SealedShard::parse(&r.body).unwrap().header;
            assert_eq!(h.epoch, 2, "validator-{} served epoch {}", i + 1, h.epoch);
            archived.insert(i, r.body);
        }
    }
    assert_eq!(archived.len(), 5, "five holders of epoch 2");

    // Another loss moves the vault to epoch 3 on the survivors.
    mesh.kill9(3);
    pqvault_tests::wait_epoch_all(&mesh, &[0, 1, 2], 3).await;

    // The thief takes validators 1-3's key files and data directories.
    let mut opened = Vec::new();
    for i in [0usize, 1, 2] {
        let old = &archived[&i];
        let by_identity = vault::seal::SealedShard::parse(old)
            .unwrap()
            .open(&mesh.secret_key(i));
        let by_ring = mesh.open_as(i, old);
        assert!(
            matches!(
                by_identity,
                Err(vault::seal::SealError::EpochKeyNeeded { .. })
            ),
            "validator-{}'s identity key: {:?}",
            i + 1,
            by_identity.as_ref().map(|r| r.epoch)
        );
        match by_ring {
            Err(vault::seal::SealError::EpochKeyGone { .. }) => {}
            Ok(r) => opened.push(r),
            Err(e) => panic!("validator-{}'s key ring: unexpected {e}", i + 1),
        }
        // The same stolen keys open the current epoch's shard.
        let now = std::fs::read(
            mesh.nodes[i]
                .dir
                .join(format!("data/vaults/{id}/epoch-3/shard.pqvs")),
        )
        .unwrap();
        assert_eq!(mesh.open_as(i, &now).unwrap().epoch, 3);
    }
    assert!(
        opened.is_empty(),
        "the thief opened {} archived epoch-2 shards",
        opened.len()
    );
    // Nor the genesis shards: they were sealed to each validator's initial
    // KEM key, which it erased once the vault left epoch 1, not to its
    // long-term identity.
    let mut opened = Vec::new();
    for (i, old) in genesis.iter().enumerate() {
        let node = &mesh.nodes[i];
        assert!(
            !node.dir.join(format!("identity/{}.ikey", node.id)).exists(),
            "validator-{}'s initial key file is still on its disk",
            i + 1
        );
        let shard = vault::seal::SealedShard::parse(old).unwrap();
        if let Ok(r) = shard.open(&mesh.secret_key(i)) {
            opened.push(r);
        } else if let Ok(r) = mesh.open_as(i, old) {
            opened.push(r);
        }
    }
    assert!(
        opened.is_empty(),
        "the thief opened {} archived genesis shards",
        opened.len()
    );
    // The running validators hold one epoch key each, epoch 3's, and no
    // initial key.
    for i in [0usize, 1, 2] {
        assert!(
            mesh.metrics(i).contains("pqvault_initial_key 0\n"),
            "validator-{}",
            i + 1
        );
        assert!(
            mesh.metrics(i).contains("pqvault_epoch_keys 1\n"),
            "validator-{}: {}",
            i + 1,
            mesh.metrics(i)
                .lines()
                .filter(|l| l.starts_with("pqvault_epoch_keys"))
                .collect::<String>()
        );
    }
    // Nor does the round state of the earlier polynomials stay in memory:
    // the helpers of the repair from epoch 2 forgot it at epoch 3's commit.
    let forgot = [0usize, 1, 2].iter().any(|&i| {
        mesh.log(i).lines().any(|l| {
            l.contains("vault moved to a new epoch")
                && l.contains("epoch=3")
                && l.contains("forgotten_rounds=")
                && !l.contains("forgotten_rounds=0")
        })
    });
    assert!(forgot, "no helper forgot its rounds:\n{}", mesh.log(0));
}
