//! Failure-detection figures at the shipped `[probe]` defaults, Lifeguard
//! and plain SWIM side by side (printed, not asserted): false deaths per
//! minute while one of 7 validators is paused (SIGSTOP/SIGCONT) for 400,
//! 800 and 1600 ms every 4 s; time from SIGKILL to dead on every survivor
//! (p50, max); idle CPU per validator and probe messages per validator and
//! probe period at n = 7, 15, 31.
//!
//! Run: `cargo build --workspace --release && cargo bench -p pqvault-tests --bench detector`
//! (`DETECTOR_BENCH_SECS` sets the length of each pause run, default 60,
//! 0 to skip them;
//! `DETECTOR_BENCH_SIZES` the mesh sizes, default `7,15,31`;
//! `DETECTOR_BENCH_HEAL_SIZES` the sizes of the heal run, default `31`).
//! Also: false deaths during a heal (2 of n - 3 holders SIGKILLed).

use pqvault_tests::{sample, Mesh};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(500);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn mesh(n: usize, lifeguard: bool) -> Mesh {
    let mut mesh = Mesh::new(n, n / 2 + 1);
    mesh.use_default_probe_settings();
    if !lifeguard {
        mesh.use_plain_swim();
    }
    mesh.set_heal_grace_ms(30_000);
    mesh.disable_auto_heal();
    mesh.start_all();
    wait_all_alive(&mesh, n, Duration::from_secs(60));
    mesh
}

/// Waits until each of the `n` validators sees every other one alive.
fn wait_all_alive(mesh: &Mesh, n: usize, limit: Duration) {
    for i in 0..n {
        let ok = mesh.wait_metrics(i, limit, |m| {
            (0..n).filter(|&j| j != i).all(|j| {
                sample(
                    m,
                    "pqvault_peer_state",
                    &format!("peer=\"validator-{}\",state=\"alive\"", j + 1),
                ) == Some(1.0)
            })
        });
        assert!(ok, "validator-{} never saw every peer alive", i + 1);
    }
}

fn total(mesh: &Mesh, n: usize, metric: &str, labels: &[&str]) -> f64 {
    (0..n)
        .map(|i| {
            mesh.metrics(i)
                .lines()
                .filter(|l| l.starts_with(metric) && labels.iter().any(|s| l.contains(s)))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

/// (false deaths per minute, kill-to-dead on every survivor in seconds).
fn pauses(lifeguard: bool, pause: Duration, secs: u64) -> (f64, Vec<f64>) {
    const N: usize = 7;
    let mut mesh = mesh(N, lifeguard);
    let victim = N - 1;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let c = Instant::now();
        mesh.pause(victim);
        std::thread::sleep(pause);
        mesh.resume(victim);
        std::thread::sleep(Duration::from_secs(4).saturating_sub(c.elapsed()));
    }
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    let deaths = total(&mesh, N, "pqvault_peer_deaths_total", &[""]);
    // Let any suspicion settle, then kill.
    std::thread::sleep(Duration::from_secs(3));
    let dead = format!("peer=\"validator-{}\",state=\"dead\"", victim + 1);
    let k = Instant::now();
    mesh.kill9(victim);
    let mut seen = [None; N - 1];
    while seen.iter().any(Option::is_none) && k.elapsed() < Duration::from_secs(30) {
        for (i, s) in seen.iter_mut().enumerate() {
            if s.is_none() && sample(&mesh.metrics(i), "pqvault_peer_state", &dead) == Some(1.0) {
                *s = Some(k.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (
        deaths / minutes,
        seen.iter().map(|s| s.unwrap_or(f64::INFINITY)).collect(),
    )
}

/// (idle CPU-s/s per validator, probe messages per validator per period).
fn idle(n: usize) -> (f64, f64) {
    let mesh = mesh(n, true);
    std::thread::sleep(Duration::from_secs(3));
    let eps = [
        "endpoint=\"hello\"",
        "endpoint=\"probe\"",
        "endpoint=\"news\"",
    ];
    let cpu0: f64 = (0..n).map(|i| mesh.cpu_seconds(i)).sum();
    let msg0 = total(&mesh, n, "pqvault_peer_requests_total", &eps);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let dt = t0.elapsed().as_secs_f64();
    let cpu = ((0..n).map(|i| mesh.cpu_seconds(i)).sum::<f64>() - cpu0) / dt / n as f64;
    let msgs = total(&mesh, n, "pqvault_peer_requests_total", &eps) - msg0;
    let periods = dt / INTERVAL.as_secs_f64();
    (cpu, msgs / periods / n as f64)
}

/// False deaths while the mesh heals: `n` validators (3 of them spares)
/// at the shipped probe defaults and heal grace (30 s), healing on, two
/// holders SIGKILLed; counts
/// deaths declared of live validators from the kill until every survivor
/// holding the vault is on epoch 2, plus 5 s. Returns (false deaths,
/// seconds to epoch 2 everywhere).
fn heal_at(n: usize) -> (f64, f64) {
    let holders = n - 3;
    let mut mesh = Mesh::with_spares(holders, holders / 2 + 1, 3);
    mesh.use_default_probe_settings();
    // The shipped grace: with the harness's 600 ms, validators still
    // starting count as lost, and an attempt naming spares for them burns
    // those spares for this polynomial (the once-per-polynomial rule).
    mesh.set_heal_grace_ms(30_000);
    mesh.start_all();
    wait_all_alive(&mesh, n, Duration::from_secs(120));
    let killed = [holders - 2, holders - 1];
    let live: Vec<usize> = (0..n).filter(|i| !killed.contains(i)).collect();
    let deaths_of_live = |mesh: &Mesh| {
        let labels: Vec<String> = live
            .iter()
            .map(|j| format!("peer=\"validator-{}\"", j + 1))
            .collect();
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        live.iter()
            .map(|&i| {
                mesh.metrics(i)
                    .lines()
                    .filter(|l| {
                        l.starts_with("pqvault_peer_deaths_total")
                            && refs.iter().any(|s| l.contains(&format!("{s}}}")))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .sum::<f64>()
    };
    let before = deaths_of_live(&mesh);
    let t0 = Instant::now();
    for &k in &killed {
        mesh.kill9(k);
    }
    let epoch2 = |m: &str| sample(m, "pqvault_vault_epoch", "") == Some(2.0);
    let healed = (0..holders - 2).all(|i| mesh.wait_metrics(i, Duration::from_secs(180), epoch2));
    let took = t0.elapsed().as_secs_f64();
    if !healed {
        let spares: Vec<String> = (holders..n)
            .map(|j| format!("validator-{}", j + 1))
            .collect();
        let m = mesh.metrics(0);
        for l in m.lines().filter(|l| {
            l.starts_with("pqvault_peer_state")
                && l.ends_with(" 1")
                && spares.iter().any(|s| l.contains(&format!("\"{s}\"")))
        }) {
            eprintln!("{l}");
        }
        for l in mesh
            .log(0)
            .lines()
            .filter(|l| spares.iter().any(|s| l.contains(s.as_str())))
            .take(30)
        {
            eprintln!("{l}");
        }
    }
    assert!(
        healed,
        "no epoch 2 everywhere within 3 minutes at n = {n}; validator-1's log ends:\n{}",
        mesh.log(0)
            .lines()
            .rev()
            .filter(|l| !l.contains("DEBUG"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::thread::sleep(Duration::from_secs(5));
    (deaths_of_live(&mesh) - before, took)
}

fn main() {
    let secs: u64 = env_or("DETECTOR_BENCH_SECS", "60").parse().unwrap_or(60);
    println!(
        "7 validators, shipped [probe] defaults; one paused every 4 s for {secs} s, then SIGKILLed"
    );
    println!("mode       pause   false deaths/min   kill->dead on all 6 survivors: p50   max");
    let pause_runs: &[u64] = if secs == 0 { &[] } else { &[400, 800, 1600] };
    for lifeguard in [true, false] {
        for &ms in pause_runs {
            let (rate, mut kill) = pauses(lifeguard, Duration::from_millis(ms), secs);
            kill.sort_by(f64::total_cmp);
            let p50 = kill[kill.len() / 2];
            let max = kill[kill.len() - 1];
            println!(
                "{:<10} {:>5} ms {:>10.1} {:>36.2} s {:>5.2} s",
                if lifeguard { "lifeguard" } else { "plain SWIM" },
                ms,
                rate,
                p50,
                max
            );
        }
    }
    let sizes = env_or("DETECTOR_BENCH_SIZES", "7,15,31");
    for n in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        let (cpu, msgs) = idle(n);
        println!(
            "n = {n:>2}: idle CPU {cpu:.4} CPU-s/s per validator, {msgs:.2} probe messages (hello, probe, news) received per validator per probe period"
        );
    }
    for n in env_or("DETECTOR_BENCH_HEAL_SIZES", "31")
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        let (false_deaths, took) = heal_at(n);
        println!(
            "n = {n:>2}, 2 holders SIGKILLed, healing on: {false_deaths:.0} false deaths (live validators declared dead) from the kill to epoch 2 everywhere ({took:.1} s) plus 5 s"
        );
    }
}
