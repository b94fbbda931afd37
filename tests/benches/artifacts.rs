//! Artifact carriage figures on loopback, printed (not asserted): a 64 MiB
//! signed int8 network (1 MiB chunks, manifest format 2: D47) pushed to one of 7 validators and
//! carried to all by anti-entropy. Measured in the same run:
//!
//! * time to full convergence (every validator serves the artifact),
//! * per-validator throughput (payload bytes / time from admitting the
//!   manifest to serving the verified artifact) against a plain loopback
//!   HTTP download of the same file (std TCP server, written to disk and
//!   fsynced once), and their ratio,
//! * RSS growth of each validator during the carriage (peak minus idle),
//! * one validator re-fetching the artifact alone from its 6 peers, with
//!   the payload check after the last chunk (`early_checks = 0`) and while
//!   the chunks arrive (the default), `PQVAULT_BENCH_ALONE` times each
//!   (default 3, interleaved), each against plain downloads made just
//!   before it (the machine's load moves the baseline within a run), with
//!   its CPU time (robust to the machine's load, unlike the wall times)
//!   and, from its log, what it spent after the last chunk (the payload's
//!   fsync, the payload check, writing `complete`); then the median and
//!   range of each.
//!
//! `PQVAULT_BENCH_FETCH` sets the chunk fetches in flight per download
//! (default 4; 2, 8 and 16 measured the same within the machine's noise,
//! so the lone re-fetch is bound by CPU, not by round trips).
//!
//! Run: `cargo build --workspace --release && cargo bench -p pqvault-tests --bench artifacts`
//! (the harness runs the validator binary of the same profile).

use pqvault_tests::artifacts::{self, manifest_digest, object_dir, payload_digest, sha256_hex};
use pqvault_tests::{sample, Mesh};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const PAYLOAD: u64 = 64 << 20;
const N: usize = 7;

/// Serves `path` once per connection, `n` connections, over plain
/// HTTP/1.0 (the baseline).
fn plain_server(path: &Path, n: usize) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let path = path.to_path_buf();
    let h = std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut f = std::fs::File::open(&path).expect("payload");
            let len = f.metadata().expect("meta").len();
            write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .expect("write");
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = f.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).expect("send");
            }
        }
    });
    (addr, h)
}

/// Downloads from the plain server into `out` (fsynced); bytes per second.
fn plain_download(addr: std::net::SocketAddr, out: &Path) -> f64 {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET /payload HTTP/1.0\r\n\r\n").expect("request");
    let mut r = BufReader::with_capacity(64 << 10, s);
    let mut line = String::new();
    while r.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let mut f = std::fs::File::create(out).expect("create");
    let n = std::io::copy(&mut r, &mut f).expect("download");
    f.sync_all().expect("fsync");
    let bps = n as f64 / t0.elapsed().as_secs_f64();
    assert!(n > 0, "empty download");
    drop(f);
    let _ = std::fs::remove_file(out);
    bps
}

/// The baseline: the best of 3 plain loopback HTTP downloads of `payload`
/// into `dir`, each written to disk and fsynced, in bytes per second.
fn plain_best_of_3(payload: &Path, dir: &Path) -> f64 {
    let (addr, server) = plain_server(payload, 3);
    let best = (0..3)
        .map(|k| plain_download(addr, &dir.join(format!("plain-{k}.bin"))))
        .fold(0.0, f64::max);
    let _ = server.join();
    best
}

/// The machine's load average (1, 5, 15 minutes): the figures are only
/// comparable between runs at similar load.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time (user + system) validator `i` has used so far, in ms.
fn cpu_ms(mesh: &Mesh, i: usize) -> f64 {
    let stat = mesh
        .pid(i)
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is
    // the 14th field, stime the 15th, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() * 10.0
}

fn mib_s(bps: f64) -> f64 {
    bps / (1024.0 * 1024.0)
}

fn main() {
    let load_before = loadavg();
    let mut mesh = Mesh::new(N, 4);
    // `PQVAULT_BENCH_FETCH`: chunk fetches in flight per download (default 4).
    let fetch: usize = std::env::var("PQVAULT_BENCH_FETCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let c = artifacts::enable(
        &mesh,
        &format!("sync_interval_ms = 200\nfetch_concurrency = {fetch}"),
    );
    mesh.start_all();
    let all_alive = |m: &str| {
        (2..=N).all(|i| {
            sample(
                m,
                "pqvault_peer_state",
                &format!("peer=\"validator-{i}\",state=\"alive\""),
            ) == Some(1.0)
        })
    };
    assert!(
        mesh.wait_metrics(0, Duration::from_secs(20), all_alive),
        "mesh never converged"
    );
    let net = vault::artifact::testnet::large(PAYLOAD);
    let len = net.safetensors.len() as u64;
    let sha = sha256_hex(&net.safetensors);
    let dir = c.pack(
        &net,
        "snn-large",
        "1.0.0",
        "",
        vault::artifact::DEFAULT_CHUNK_SIZE,
        &c.publisher,
    );
    drop(net);
    let etag = format!("\"{}\"", payload_digest(&dir));
    let digest = manifest_digest(&dir);

    // The full payload check alone (`vault artifact verify`, the same
    // library call a validator makes before serving): time and peak RSS.
    let t = Instant::now();
    let mut child = std::process::Command::new(pqvault_tests::bin("vault"))
        .args(["artifact", "verify", "--policy"])
        .arg(&c.policy)
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("verify");
    let mut verify_peak = 0u64;
    while child.try_wait().expect("wait").is_none() {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        if let Some(kib) = status.ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        }) {
            verify_peak = verify_peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let verify_ms = t.elapsed().as_secs_f64() * 1e3;

    // Baseline: the same file over plain loopback HTTP, best of 3.
    let payload = dir.join("payload.safetensors");
    let plain = plain_best_of_3(&payload, mesh.root.path());

    std::thread::sleep(Duration::from_secs(1));
    let idle: Vec<u64> = (0..N).map(|i| mesh.rss_kib(i).unwrap_or(0)).collect();
    let mut peak = idle.clone();
    let mut peak_transfer = idle.clone();
    let chunks = len.div_ceil(1 << 20) as usize;
    let mut started = [None; N];
    let mut done = [None; N];
    let t0 = Instant::now();
    let pusher = {
        let (apps, dir) = (c.apps.clone(), dir.clone());
        std::thread::spawn(move || {
            std::process::Command::new(pqvault_tests::bin("vault"))
                .args(["artifact", "push", "--to", &apps[0].to_string()])
                .arg(&dir)
                .output()
                .expect("push")
        })
    };
    while done.iter().any(Option::is_none) {
        assert!(t0.elapsed() < Duration::from_secs(300), "no convergence");
        for i in 0..N {
            if let Some(r) = mesh.rss_kib(i) {
                peak[i] = peak[i].max(r);
                // Chunks still arriving: before the full payload check.
                if artifacts::verified_chunks(&mesh, i, &digest).is_some_and(|v| v < chunks) {
                    peak_transfer[i] = peak_transfer[i].max(r);
                }
            }
            if started[i].is_none() && object_dir(&mesh, i, &digest).exists() {
                started[i] = Some(t0.elapsed());
            }
            if done[i].is_none() {
                let r = c.get(
                    i,
                    "/v1/artifacts/snn-large/latest",
                    &[("Range", "bytes=0-0")],
                );
                if r.status == 206 && r.header("etag") == Some(etag.as_str()) {
                    done[i] = Some(t0.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let converged = t0.elapsed();
    let out = pusher.join().expect("push thread");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Identical copies everywhere.
    for i in 0..N {
        let r = c.get(i, "/v1/artifacts/snn-large/latest", &[]);
        assert_eq!(sha256_hex(&r.body), sha, "validator-{}", i + 1);
    }

    println!(
        "artifact carriage, {:.1} MiB int8 network in {} chunks of 1 MiB, pushed to validator-1 of {N} (loopback, sync every 200 ms, {fetch} chunk fetches in flight):",
        len as f64 / 1048576.0,
        len.div_ceil(1 << 20)
    );
    println!(
        "  full convergence (push start to all {N} serving the verified artifact): {:.0} ms",
        converged.as_secs_f64() * 1e3
    );
    println!(
        "  plain loopback HTTP download of the same file (to disk, fsync): {:.0} MiB/s",
        mib_s(plain)
    );
    let mut ratios = Vec::new();
    for i in 0..N {
        let (s, d) = (started[i].unwrap_or_default(), done[i].unwrap_or_default());
        let bps = len as f64 / (d - s).as_secs_f64().max(1e-6);
        ratios.push(bps / plain);
        println!(
            "  validator-{}{}: manifest admitted at {:.0} ms, served at {:.0} ms: {:.0} MiB/s ({:.2} of plain HTTP); RSS idle {} KiB, peak {} KiB, growth {} KiB ({} KiB while chunks arrived)",
            i + 1,
            if i == 0 { " (push target)" } else { "" },
            s.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3,
            mib_s(bps),
            bps / plain,
            idle[i],
            peak[i],
            peak[i].saturating_sub(idle[i]),
            peak_transfer[i].saturating_sub(idle[i])
        );
    }
    println!(
        "  the full payload check alone (`vault artifact verify`: check_payload, every chunk hash, tensors, golden run; format 2, so no whole-payload SHA-256; a validator skips the chunk hashes it checked on arrival and runs the tensor half only): {verify_ms:.0} ms, peak RSS {verify_peak} KiB"
    );
    let replicas = &ratios[1..];
    let min = replicas.iter().cloned().fold(f64::MAX, f64::min);
    let max_growth = (0..N)
        .map(|i| peak[i].saturating_sub(idle[i]))
        .max()
        .unwrap_or(0);
    println!(
        "  replicas' throughput / plain HTTP: min {:.2}, max {:.2} (target >= 0.5); largest RSS growth {:.1} MiB (target < 16 MiB)",
        min,
        replicas.iter().cloned().fold(0.0, f64::max),
        max_growth as f64 / 1024.0
    );
    let max_transfer = (0..N)
        .map(|i| peak_transfer[i].saturating_sub(idle[i]))
        .max()
        .unwrap_or(0);
    println!(
        "  largest RSS growth while chunks arrived (before the full payload check): {:.1} MiB",
        max_transfer as f64 / 1024.0
    );
    // Same run, same peers: the payload check after the last chunk (as
    // before), then while the chunks arrive (the default), each
    // `PQVAULT_BENCH_ALONE` times (default 3), interleaved. Each is
    // compared with plain downloads made just before it: the machine's
    // load, and with it the baseline, drifts within one run.
    let runs: usize = std::env::var("PQVAULT_BENCH_ALONE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let config = std::fs::read_to_string(mesh.config(N - 1)).expect("config");
    let modes = [
        (
            "payload check after the last chunk (early_checks = 0)",
            "early_checks = 0\n",
        ),
        ("payload check while chunks arrive (default)", ""),
    ];
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); modes.len()];
    for run in 1..=runs {
        for (m, (label, extra)) in modes.iter().enumerate() {
            std::fs::write(mesh.config(N - 1), format!("{config}{extra}")).expect("config");
            let plain = plain_best_of_3(&payload, mesh.root.path());
            println!(
                "  {label}, run {run} of {runs}; plain loopback HTTP just before (best of 3, to disk, fsync): {:.0} MiB/s",
                mib_s(plain)
            );
            results[m].push(alone(&mut mesh, &c, &digest, &etag, len, plain, chunks));
        }
    }
    for ((label, _), r) in modes.iter().zip(&results) {
        let mut ratios: Vec<f64> = r.iter().map(|x| x.0).collect();
        let mut cpu: Vec<f64> = r.iter().map(|x| x.1).collect();
        ratios.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        println!(
            "  one validator alone, {label}: end to end / plain HTTP median {:.2} (range {:.2}-{:.2}, target >= 0.8); CPU time median {:.0} ms (range {:.0}-{:.0}) over {} runs",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
            cpu[cpu.len() / 2],
            cpu[0],
            cpu[cpu.len() - 1],
            r.len()
        );
    }
    println!(
        "  load average before the run: {load_before}; after: {} (2 cores; other work on the machine slows every figure)",
        loadavg()
    );
}

/// One validator fetching the whole artifact alone from its 6 peers: its
/// copy is deleted while it is down, then it restarts. Returns its end to
/// end throughput as a fraction of `plain`, and its CPU time in ms.
fn alone(
    mesh: &mut Mesh,
    c: &artifacts::Carriage,
    digest: &str,
    etag: &str,
    len: u64,
    plain: f64,
    chunks: usize,
) -> (f64, f64) {
    let v = N - 1;
    mesh.kill9(v);
    std::fs::remove_dir_all(object_dir(mesh, v, digest)).expect("remove copy");
    mesh.start(v);
    let log_from = mesh.log(v).len();
    let cpu0 = cpu_ms(mesh, v);
    let peers_cpu = |mesh: &Mesh| {
        (0..N)
            .filter(|&i| i != v)
            .map(|i| cpu_ms(mesh, i))
            .sum::<f64>()
    };
    let peers0 = peers_cpu(mesh);
    let idle = mesh.rss_kib(v).unwrap_or(0);
    let (mut peak, mut peak_transfer) = (idle, idle);
    let t0 = Instant::now();
    let mut started = None;
    let mut chunks_done = None;
    loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "no re-convergence");
        if let Some(r) = mesh.rss_kib(v) {
            peak = peak.max(r);
            match artifacts::verified_chunks(mesh, v, digest) {
                Some(n) if n < chunks => peak_transfer = peak_transfer.max(r),
                Some(_) if chunks_done.is_none() => chunks_done = Some(t0.elapsed()),
                _ => {}
            }
        }
        if started.is_none() && object_dir(mesh, v, digest).exists() {
            started = Some(t0.elapsed());
        }
        let r = c.get(
            v,
            "/v1/artifacts/snn-large/latest",
            &[("Range", "bytes=0-0")],
        );
        if r.status == 206 && r.header("etag") == Some(etag) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu = cpu_ms(mesh, v) - cpu0;
    let serving_cpu = peers_cpu(mesh) - peers0;
    let d = t0.elapsed() - started.unwrap_or_default();
    let bps = len as f64 / d.as_secs_f64();
    let transfer = chunks_done.unwrap_or(t0.elapsed()) - started.unwrap_or_default();
    let tbps = len as f64 / transfer.as_secs_f64();
    println!(
        "    one validator alone re-fetching from 6 peers (copy deleted, restarted; the fair per-validator comparison with one plain download): {:.0} ms from manifest to served, {:.0} MiB/s ({:.2} of plain HTTP); RSS growth {} KiB ({} KiB while chunks arrived); its CPU time from start to served {cpu:.0} ms, its 6 peers' {serving_cpu:.0} ms",
        d.as_secs_f64() * 1e3,
        mib_s(bps),
        bps / plain,
        peak.saturating_sub(idle),
        peak_transfer.saturating_sub(idle)
    );
    println!(
        "      of which chunk transfer (manifest to every chunk verified on disk): {:.0} ms, {:.0} MiB/s ({:.2} of plain HTTP)",
        transfer.as_secs_f64() * 1e3,
        mib_s(tbps),
        tbps / plain
    );
    // The line is logged just after the artifact is served: wait for it.
    let mut breakdown = String::new();
    for _ in 0..100 {
        breakdown = after_last_chunk(mesh.log(v).get(log_from..).unwrap_or_default());
        if !breakdown.starts_with('(') {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("      after the last chunk, from its log: {breakdown}");
    (bps / plain, cpu)
}

/// The `*_ms` fields of the last `artifact verified in full and served`
/// log line: the payload's fsync, the wait for (or run of) the payload
/// check, and writing `complete`.
fn after_last_chunk(log: &str) -> String {
    let Some(line) = log
        .lines()
        .rev()
        .find(|l| l.contains("artifact verified in full and served"))
    else {
        return "(no log line)".into();
    };
    // Without terminal colour codes, if any.
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .filter(|w| w.contains("_ms="))
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            match v.parse::<f64>() {
                Ok(ms) => format!("{k} {ms:.0}"),
                Err(_) => w.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
