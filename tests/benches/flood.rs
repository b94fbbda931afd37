//! Memory under a slow-client flood, printed (not asserted): RSS of one
//! validator before, during and after 3,000 connections that each send
//! half a request and stop, on its ops port and then its peer port, at the
//! shipped `[listen]` defaults (256 connections per port, 10 s to send
//! headers). Past the cap connections are closed on accept; the rest are
//! closed at the header timeout, and memory must return near idle.
//!
//!
//! Then a member flood (issue 10's bound): a spare with a valid mesh
//! certificate sends a holder forged transition messages from 32
//! connections at once for 10 s: proposals to vote on, certified proposals
//! carrying its own votes, repair and re-share plans, and pieces, sums and
//! sub-shares of 1 MiB each for rounds nobody certified. None may create
//! state, so memory must return near idle, whatever the count.
//!
//! Last, slow bodies: a member opens 250 connections (near the 256 cap)
//! that each send all but the last byte of a 4 MiB request body (the peer
//! API's largest) and stop; what the validator holds is bounded by its
//! body budget, and the body timeout cuts them off.
//!
//! Run: `cargo build --workspace --release && cargo bench -p pqvault-tests --bench flood`
//! (`--profile dev` for the debug build the tests use).

use pqvault_tests::Mesh;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const FLOOD: usize = 3_000;

/// Forged transition messages in flight at once in the member flood.
const SENDERS: usize = 32;

/// How long each member flood lasts.
const MEMBER_FLOOD: Duration = Duration::from_secs(10);

/// Connections in the slow-body flood, each holding almost 4 MiB.
const SLOW_BODIES: usize = 250;

/// Member floods in a row.
const MEMBER_FLOODS: usize = 3;

/// Opens `n` connections that send half a request; those the validator
/// closes at once (past its cap) simply end.
fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(s)
        })
        .collect()
}

fn main() {
    connection_flood();
    member_flood();
    slow_bodies();
}

/// Half-sent requests on both ports, past the connection cap.
fn connection_flood() {
    let mut mesh = Mesh::new(2, 2);
    mesh.start_all();
    std::thread::sleep(Duration::from_secs(2));
    let rss = |mesh: &Mesh| mesh.rss_kib(0).unwrap_or(0);
    let peer_addr: SocketAddr = mesh.member(0).addr.parse().expect("peer address");
    for (port, addr) in [("ops", mesh.nodes[0].ops), ("peer", peer_addr)] {
        let idle = rss(&mesh);
        let t0 = Instant::now();
        let conns = flood(addr, FLOOD);
        let opened = t0.elapsed();
        let mut peak = rss(&mesh);
        // Hold them past the header timeout; sample the peak meanwhile.
        while t0.elapsed() < Duration::from_secs(12) {
            peak = peak.max(rss(&mesh));
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(conns);
        std::thread::sleep(Duration::from_secs(3));
        let after = rss(&mesh);
        println!(
            "{port} port, {FLOOD} half-sent requests (opened in {:.1} s): RSS idle {idle} KiB, peak {peak} KiB, 3 s after they are gone {after} KiB",
            opened.as_secs_f64()
        );
    }
}

/// Runs `work`, sampling validator-1's RSS every 100 ms meanwhile; returns
/// what `work` returned and the largest sample (KiB).
fn peak_rss<T>(mesh: &Mesh, work: impl FnOnce() -> T) -> (T, u64) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = mesh.rss_kib(0).unwrap_or(0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(mesh.rss_kib(0).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        let out = work();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (out, sampler.join().expect("sampler"))
    })
}

/// Random bytes: a fresh round id, or a forged sealed blob.
fn random<const N: usize>() -> [u8; N] {
    let mut r = [0u8; N];
    aws_lc_rs::rand::fill(&mut r).expect("random bytes");
    r
}

/// The `k`th forged message of the member flood: its path and body.
fn forged(
    k: usize,
    vault: vault::manifest::VaultId,
    spare: &vault::identity::SecretIdentity,
) -> (&'static str, Vec<u8>) {
    use validator::repair::{Message as Repair, Plan as RepairPlan};
    use validator::reshare::{Message as Reshare, Plan as ResharePlan};
    use validator::transition::{Action, CertifiedProposal, Proposal, Vote};
    let me = spare.public().fingerprint();
    let plan = RepairPlan::single(random(), vault, 1, 5, vec![1, 2, 3], me);
    let proposal = Proposal {
        vault_id: vault,
        from_epoch: 1,
        attempt: k as u32,
        action: Action::Repair(vec![plan.clone()]),
    };
    let blob = vec![0x5a; 1 << 20];
    match k % 7 {
        0 => ("/v1/vote", proposal.encode()),
        1 => {
            // The spare's own vote, many times over: not a holder's.
            let vote = Vote::sign(&proposal, spare).expect("sign");
            let cert = CertifiedProposal {
                proposal,
                votes: vec![vote; 4],
            };
            ("/v1/transition", cert.encode())
        }
        2 => ("/v1/repair", Repair::Plan(plan).encode()),
        3 => (
            "/v1/reshare",
            Reshare::Plan(ResharePlan {
                round: random(),
                vault_id: vault,
                epoch: 1,
                t_new: 2,
                dealers: vec![1, 2],
                recipients: vec![me; 3],
            })
            .encode(),
        ),
        4 => (
            "/v1/repair",
            Repair::Piece {
                round: random(),
                from: 1,
                sealed: blob,
            }
            .encode(),
        ),
        5 => (
            "/v1/repair",
            Repair::Sum {
                round: random(),
                from: 2,
                sealed: blob,
            }
            .encode(),
        ),
        _ => (
            "/v1/reshare",
            Reshare::Subshare {
                round: random(),
                from: 1,
                sealed: blob,
                signature: None,
            }
            .encode(),
        ),
    }
}

/// A spare floods holder validator-1 of a 3-of-5 vault with forged
/// transition messages, [`MEMBER_FLOODS`] times in a row; prints the
/// holder's RSS idle, at each flood's peak and after it, and what it
/// answered. A bound shows as a plateau: later floods no higher than the
/// first.
fn member_flood() {
    let mut mesh = Mesh::with_spares(5, 3, 1);
    mesh.start_all();
    std::thread::sleep(Duration::from_secs(2));
    let vault = mesh.vault();
    let spare = std::sync::Arc::new(mesh.secret_key(5));
    let client = mesh.client_as(5);
    let target = mesh.member(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "member flood: a spare sends holder validator-1 forged transition messages, {SENDERS} at once for {} s, {MEMBER_FLOODS} times (1 MiB pieces among them); RSS idle {} KiB",
        MEMBER_FLOOD.as_secs(),
        mesh.rss_kib(0).unwrap_or(0)
    );
    for flood in 1..=MEMBER_FLOODS {
        let t0 = Instant::now();
        let (answers, peak) = peak_rss(&mesh, || {
            rt.block_on(send_forged(&client, &target, &spare, vault, t0))
        });
        std::thread::sleep(Duration::from_secs(3));
        let sent: usize = answers.values().sum();
        let answered: Vec<String> = answers.iter().map(|(a, n)| format!("{a}: {n}")).collect();
        println!(
            "  flood {flood}: {sent} messages; RSS peak {peak} KiB, 3 s after {} KiB; answers {}",
            mesh.rss_kib(0).unwrap_or(0),
            answered.join(", ")
        );
    }
}

/// Sends forged messages to `target` from [`SENDERS`] tasks at once until
/// [`MEMBER_FLOOD`] after `t0`; counts the answers by path and status.
async fn send_forged(
    client: &validator::peer::PeerClient,
    target: &validator::config::Member,
    spare: &std::sync::Arc<vault::identity::SecretIdentity>,
    vault: vault::manifest::VaultId,
    t0: Instant,
) -> BTreeMap<String, usize> {
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (client, target, spare) = (client.clone(), target.clone(), spare.clone());
            tokio::spawn(async move {
                let mut answers = BTreeMap::new();
                let mut k = s;
                while t0.elapsed() < MEMBER_FLOOD {
                    let (path, body) = forged(k, vault, &spare);
                    let answer = match client.post(&target, path, body, 1 << 16).await {
                        Ok(r) => format!("{path} {}", r.status),
                        Err(_) => format!("{path} failed"),
                    };
                    *answers.entry(answer).or_insert(0) += 1;
                    k += SENDERS;
                }
                answers
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for s in senders {
        for (a, n) in s.await.expect("sender") {
            *all.entry(a).or_insert(0) += n;
        }
    }
    all
}

/// A member (validator-2) sends validator-1 [`SLOW_BODIES`] request bodies
/// of 4 MiB, all but their last byte, and holds them; prints validator-1's
/// RSS idle, at the peak, and 3 s after the connections are gone.
fn slow_bodies() {
    use tokio::io::AsyncWriteExt;
    let mut mesh = Mesh::new(2, 2);
    mesh.start_all();
    std::thread::sleep(Duration::from_secs(2));
    let idle = mesh.rss_kib(0).unwrap_or(0);
    let tls = mesh.tls_as(1).client;
    let addr = mesh.nodes[0].peer;
    let name = rustls_pki_types::ServerName::try_from(mesh.nodes[0].id.clone()).expect("name");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let len = 4 << 20;
    let t0 = Instant::now();
    let (held, peak) = peak_rss(&mesh, || {
        rt.block_on(async {
            let mut conns = Vec::new();
            let body = vec![0u8; len - 1];
            for _ in 0..SLOW_BODIES {
                let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                let Ok(mut c) = connector.connect(name.clone(), tcp).await else {
                    continue;
                };
                let head =
                    format!("POST /v1/repair HTTP/1.1\r\nhost: x\r\ncontent-length: {len}\r\n\r\n");
                // Past the budget the validator stops reading: the write
                // stalls, and the connection is held all the same.
                let sent = async {
                    c.write_all(head.as_bytes()).await?;
                    c.write_all(&body).await?;
                    c.flush().await
                };
                let _ = tokio::time::timeout(Duration::from_millis(200), sent).await;
                conns.push(c);
            }
            // Held past the default body timeout (10 s).
            while t0.elapsed() < Duration::from_secs(14) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            conns.len()
        })
    });
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "slow bodies: a member held {held} connections, each sending all but the last byte of a {} MiB body, for 14 s: RSS idle {idle} KiB, peak {peak} KiB, 3 s after they are gone {} KiB",
        len >> 20,
        mesh.rss_kib(0).unwrap_or(0)
    );
}
