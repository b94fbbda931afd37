//! Retry loops back off and count their failures (docs/decisions.md D35),
//! seen from outside a real validator process: its metrics and its log.

use pqvault_tests::{sample, Mesh};
use std::time::{Duration, Instant};

/// A name that never resolves (RFC 6761 reserves `.invalid`).
const UNRESOLVABLE: &str = "pqvault-retry-test.invalid";

/// One failed discovery pass as the validator logged it: when (seconds
/// since midnight UTC, from the log timestamp), the failures in a row it
/// reported and the wait it announced before the next look-up.
#[derive(Debug)]
struct Failure {
    at: f64,
    failures: u32,
    next_try_ms: u64,
}

/// The discovery failures in a validator log, in order.
fn discovery_failures(log: &str) -> Vec<Failure> {
    let field = |line: &str, name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    log.lines()
        .filter(|l| l.contains("discovery: cannot resolve"))
        .map(|l| {
            // `2026-11-30T17:48:23.123456Z  WARN ...`
            let stamp = l.split_whitespace().next().unwrap_or_default();
            let time = stamp
                .split_once('T')
                .map(|(_, t)| t.trim_end_matches('Z'))
                .unwrap_or_default();
            let parts: Vec<f64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
            assert_eq!(parts.len(), 3, "no timestamp in {l:?}");
            Failure {
                at: parts[0] * 3600.0 + parts[1] * 60.0 + parts[2],
                failures: u32::try_from(field(l, "failures").expect(l)).expect(l),
                next_try_ms: field(l, "next_try_ms").expect(l),
            }
        })
        .collect()
}

/// A validator whose discovery name does not resolve (its peers are
/// unreachable by name): every failed look-up is counted in
/// `pqvault_retry_failures_total{loop="discovery"}`, the failures in a row
/// in `pqvault_retry_consecutive_failures`, and the loop waits longer
/// after each failure instead of retrying every interval (200 ms here).
#[test]
fn a_failing_discovery_loop_is_counted_and_backs_off() {
    let mut mesh = Mesh::new(2, 2);
    let port = mesh.nodes[1].peer.port();
    mesh.use_dns_discovery(0, UNRESOLVABLE, port);
    mesh.start(0);
    let failures = |m: &str| sample(m, "pqvault_retry_failures_total", "loop=\"discovery\"");
    // 200, 400, 800, 1600 ms: the fifth failure about 3 s after the first.
    assert!(
        mesh.wait_metrics(0, Duration::from_secs(60), |m| {
            failures(m).is_some_and(|n| n >= 5.0)
        }),
        "discovery failures not counted: {:?}\n{}",
        failures(&mesh.metrics(0)),
        mesh.log(0)
    );
    let metrics = mesh.metrics(0);
    let log = mesh.log(0);
    let counted = failures(&metrics).unwrap_or_default();
    let streak = sample(
        &metrics,
        "pqvault_retry_consecutive_failures",
        "loop=\"discovery\"",
    )
    .unwrap_or_default();
    // Nothing ever succeeded: the streak is every failure (the scrape may
    // fall between the counter and the gauge of one failure).
    assert!(
        streak >= 5.0 && streak + 1.0 >= counted,
        "{streak} of {counted}"
    );
    // Other loops did not fail.
    assert_eq!(
        sample(&metrics, "pqvault_retry_failures_total", "loop=\"heal\""),
        Some(0.0)
    );

    let seen = discovery_failures(&log);
    assert!(seen.len() >= 5, "{seen:?}\n{log}");
    assert!(seen.len() as f64 >= counted, "{seen:?} vs {counted}");
    for (k, f) in seen.iter().enumerate() {
        assert_eq!(f.failures as usize, k + 1, "{seen:?}");
    }
    for w in seen.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        // Each wait is longer than the one before (below the cap, even with
        // the jitter: 0.75 · 2 > 1.25)...
        assert!(b.next_try_ms > a.next_try_ms, "{seen:?}");
        // ...and the loop really waited it before trying again (the log
        // timestamps are to the microsecond; 2 ms for rounding).
        let gap_ms = ((b.at - a.at).rem_euclid(86_400.0) * 1000.0) as u64;
        assert!(gap_ms + 2 >= a.next_try_ms, "{gap_ms} ms < {a:?}");
    }
}

/// The one validator that reports leading the epoch log.
fn leader(mesh: &Mesh, nodes: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let leading: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|&i| sample(&mesh.metrics(i), "pqvault_consensus_is_leader", "") == Some(1.0))
            .collect();
        if let [one] = leading[..] {
            return one;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no single epoch-log leader among {nodes:?}");
}

/// A member of the epoch log is SIGKILLed: the leader keeps trying to
/// replicate to it, and counts every failed attempt under
/// `loop="epoch_log_replication"` (a per-member retry: no streak gauge).
#[test]
fn replication_to_a_killed_member_is_counted() {
    let mut mesh = Mesh::new(3, 2);
    mesh.start_all();
    let lead = leader(&mesh, &[0, 1, 2]);
    let count = |m: &str| {
        sample(
            m,
            "pqvault_retry_failures_total",
            "loop=\"epoch_log_replication\"",
        )
    };
    // Members started one after the other: the leader may have retried
    // already.
    let before = count(&mesh.metrics(lead)).expect("series exported at 0 from the start");
    mesh.kill9((lead + 1) % 3);
    assert!(
        mesh.wait_metrics(lead, Duration::from_secs(60), |m| {
            count(m).is_some_and(|n| n >= before + 5.0)
        }),
        "replication failures not counted: {before} -> {:?}\n{}",
        count(&mesh.metrics(lead)),
        mesh.log(lead)
    );
    assert_eq!(leader(&mesh, &[lead, (lead + 2) % 3]), lead);
    assert_eq!(
        sample(
            &mesh.metrics(lead),
            "pqvault_retry_consecutive_failures",
            "loop=\"epoch_log_replication\""
        ),
        None
    );
}
