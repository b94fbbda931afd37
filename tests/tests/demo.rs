//! `vault demo` and `vault mesh up/down` as an operator runs them: real
//! processes, checked by their output, their exit status, and which
//! validator processes are left afterwards.

use pqvault_tests::{bin, http_get};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Process ids whose command line mentions `dir` (the validators of a
/// local mesh are started with `--config DIR/validator-K/validator.toml`).
fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_str().expect("utf-8 path");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(e) = e else { continue };
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // A zombie has an empty command line: it is gone but for its exit status.
        if cmd.contains(needle) && pid != std::process::id() {
            out.push((pid, cmd));
        }
    }
    out
}

/// Waits up to 5 s for no process under `dir` to remain; panics naming them.
fn assert_none_left(dir: &Path) {
    let t0 = Instant::now();
    loop {
        let left = processes_under(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn demo(dir: &Path) -> Command {
    let mut c = Command::new(bin("vault"));
    c.arg("demo")
        .arg(dir)
        .env("PQVAULT_VALIDATOR", bin("validator"));
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_demo_heals_recovers_carries_an_artifact_and_stops_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(&dir).output().expect("run vault demo");
    let all = text(&out);
    assert!(out.status.success(), "demo failed:\n{all}");
    for line in [
        "5 of 7 holders' votes, so the mesh heals 7 - 5 = 2 lost holders on its own",
        "heal grace 1000 ms (daemon default 30 s)",
        "SIGKILLed validator-6 and validator-7",
        "repair: the shares of validator-6, validator-7 rebuilt on spare(s)",
        "refresh: the same holders re-shared",
        "vault mesh recover . --out secret.bin",
        "validator-1   answered with share",
        "it matches the manifest's commitment",
        "it equals the original secret",
        "identical on all 8",
        "stopped every validator",
        "demo passed in",
    ] {
        assert!(all.contains(line), "no {line:?} in:\n{all}");
    }
    // The epoch the demo reports is one every holder stored, past 1.
    let epoch: u64 = all
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("epoch ")?
                .split_once(" certified on all 7 holders")
                .and_then(|(e, _)| e.parse().ok())
        })
        .unwrap_or_else(|| panic!("no settled epoch in:\n{all}"));
    assert!(
        epoch >= 3,
        "repair and refresh make epoch 3 at least: {epoch}"
    );
    assert_none_left(&dir);
    let pid_files: Vec<_> = (1..=10)
        .map(|k| dir.join(format!("validator-{k}/validator.pid")))
        .filter(|p| p.exists())
        .collect();
    assert!(pid_files.is_empty(), "pid files left: {pid_files:?}");
}

/// Starts the demo and returns it once it printed a line starting with
/// `step`, with the output so far.
fn demo_until(dir: &Path, step: &str) -> (Child, String) {
    let mut child = demo(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vault demo");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read demo output");
        assert!(n > 0, "demo ended before {step:?}:\n{seen}");
        seen.push_str(&line);
        if line.starts_with(step) {
            break;
        }
    }
    // Keep draining so the demo never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    (child, seen)
}

#[test]
fn ctrl_c_mid_demo_leaves_no_validator_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let (mut child, seen) = demo_until(&dir, "4. SIGKILLed");
    assert!(
        processes_under(&dir).len() >= 8,
        "validators should be running mid-demo:\n{seen}"
    );
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success());
    let status = child.wait().expect("wait demo");
    assert!(
        !status.success(),
        "an interrupted demo must not report success"
    );
    assert_none_left(&dir);
}

#[test]
fn a_killed_demo_takes_its_validators_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let (mut child, seen) = demo_until(&dir, "3. the mesh is live");
    assert!(
        processes_under(&dir).len() >= 10,
        "validators should be running:\n{seen}"
    );
    // SIGKILL: no handler runs; the kernel's parent-death signal must.
    child.kill().expect("kill demo");
    child.wait().expect("wait demo");
    assert_none_left(&dir);
}

/// The ops addresses in a mesh's generated configs.
fn ops_addrs(dir: &Path, count: usize) -> Vec<SocketAddr> {
    (1..=count)
        .map(|k| {
            let cfg = std::fs::read_to_string(dir.join(format!("validator-{k}/validator.toml")))
                .expect("config");
            cfg.lines()
                .find_map(|l| l.strip_prefix("ops = \""))
                .and_then(|v| v.strip_suffix('"'))
                .expect("an ops address in [listen]")
                .parse()
                .expect("addr")
        })
        .collect()
}

fn vault_out(args: &[&str]) -> Output {
    Command::new(bin("vault"))
        .args(args)
        .env("PQVAULT_VALIDATOR", bin("validator"))
        .output()
        .expect("run vault")
}

#[test]
fn mesh_up_serves_ready_validators_until_mesh_down_stops_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mesh");
    let d = dir.to_str().unwrap();
    let up = vault_out(&["mesh", "up", d, "--holders", "4", "--spares", "1"]);
    assert!(up.status.success(), "mesh up failed:\n{}", text(&up));
    assert!(text(&up).contains(&format!("vault mesh down {d}")));
    // Up returned: the validators run on their own, each ready.
    assert_eq!(processes_under(&dir).len(), 5, "{}", text(&up));
    for (k, ops) in ops_addrs(&dir, 5).into_iter().enumerate() {
        let (code, body) = http_get(ops, "/readyz").expect("ops port answers");
        assert_eq!(code, 200, "validator-{} not ready: {body}", k + 1);
        assert!(dir
            .join(format!("validator-{}/validator.pid", k + 1))
            .exists());
    }
    // The operator's client over the peer port sees 4 holders and a spare,
    // each over X25519MLKEM768 (a role is "syncing" until a member answered).
    let t0 = Instant::now();
    loop {
        let st = vault_out(&["mesh", "status", d, "--json"]);
        assert!(st.status.success(), "mesh status failed:\n{}", text(&st));
        let docs: serde_json::Value = serde_json::from_slice(&st.stdout).expect("json");
        let docs = docs.as_array().expect("array");
        assert_eq!(docs.len(), 5, "{}", text(&st));
        assert!(docs.iter().all(|v| v["kx_group"] == "X25519MLKEM768"));
        let roles: Vec<&str> = docs
            .iter()
            .map(|v| v["role"].as_str().unwrap_or("?"))
            .collect();
        if roles == ["holder", "holder", "holder", "holder", "spare"] {
            assert!(docs[..4].iter().all(|v| v["vaults"][0]["epoch"] == 1));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "roles {roles:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // `vault mesh recover DIR` (the operator's key and certificate from
    // DIR) gives the secret offline recovery gives; the spare has none.
    let mesh = vault_out(&["mesh", "recover", d, "--out", "-"]);
    assert!(
        mesh.status.success(),
        "mesh recover failed:\n{}",
        text(&mesh)
    );
    let report = String::from_utf8_lossy(&mesh.stderr);
    assert!(
        report.contains("validator-5   no share") && report.contains("HTTP 404"),
        "{report}"
    );
    let mut offline = vec![
        "recover".to_string(),
        "--manifest".into(),
        format!("{d}/vault/manifest.pqvm"),
        "--trust".into(),
        format!("{d}/keys/operator.pub"),
        "--keys-dir".into(),
        format!("{d}/keys"),
        "--out".into(),
        "-".into(),
    ];
    for k in 1..=4 {
        offline.push("--shard".into());
        offline.push(format!("{d}/vault/shard-{k:03}-validator-{k}.shard"));
    }
    let offline: Vec<&str> = offline.iter().map(String::as_str).collect();
    let off = vault_out(&offline);
    assert!(
        off.status.success(),
        "offline recover failed:\n{}",
        text(&off)
    );
    assert_eq!(mesh.stdout.len(), 32);
    assert_eq!(mesh.stdout, off.stdout, "the mesh and the files agree");

    // A second `up` into the same directory is refused, not merged.
    let again = vault_out(&["mesh", "up", d]);
    assert!(!again.status.success());
    assert!(text(&again).contains("is not empty"), "{}", text(&again));

    let down = vault_out(&["mesh", "down", d, "--timeout-secs", "5"]);
    assert!(down.status.success(), "mesh down failed:\n{}", text(&down));
    assert!(
        text(&down).contains("stopped validator-1"),
        "{}",
        text(&down)
    );
    assert_none_left(&dir);
    for k in 1..=5 {
        assert!(!dir.join(format!("validator-{k}/validator.pid")).exists());
    }
    // Idempotent.
    let twice = vault_out(&["mesh", "down", d]);
    assert!(twice.status.success(), "{}", text(&twice));
    assert!(text(&twice).contains("no validator"), "{}", text(&twice));
}

#[test]
fn a_missing_validator_binary_is_named_with_how_to_build_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = Command::new(bin("vault"))
        .arg("demo")
        .arg(&dir)
        .env("PQVAULT_VALIDATOR", tmp.path().join("no-such-validator"))
        .output()
        .expect("run vault demo");
    assert!(!out.status.success());
    let all = text(&out);
    assert!(all.contains("cargo build --bins"), "{all}");
    assert!(all.contains("no-such-validator"), "{all}");
    assert!(!dir.exists(), "nothing is generated without a validator");
}

/// `--keep` leaves the healed mesh running; `mesh down` stops it, and a
/// validator that ignores SIGTERM (stopped with SIGSTOP: the signal stays
/// pending) is SIGKILLed after the timeout.
#[test]
fn demo_keep_leaves_the_mesh_for_mesh_down_which_escalates_to_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = demo(&dir).arg("--keep").output().expect("run vault demo");
    let all = text(&out);
    assert!(out.status.success(), "demo failed:\n{all}");
    assert!(all.contains("vault mesh down"), "{all}");
    // The two killed holders stay dead; the other eight run on.
    assert_eq!(processes_under(&dir).len(), 8, "{all}");
    let pid = std::fs::read_to_string(dir.join("validator-3/validator.pid")).expect("pid file");
    let pid = pid.trim().to_string();
    let ok = Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("run kill");
    assert!(ok.success());
    // kill(2) returns before the target stops: wait until it has.
    let t_stop = Instant::now();
    while process_state(&pid) != Some('T') {
        assert!(
            t_stop.elapsed() < Duration::from_secs(5),
            "validator-3 never stopped: state {:?}",
            process_state(&pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    let down = vault_out(&["mesh", "down", dir.to_str().unwrap(), "--timeout-secs", "1"]);
    let said = text(&down);
    assert!(down.status.success(), "{said}");
    assert!(
        said.contains("killed validator-3: still running 1 s after SIGTERM"),
        "validator-3 (pid {pid}, now {:?}) was not SIGKILLed:\n{said}",
        process_state(&pid)
    );
    assert!(said.contains("stopped validator-1\n"), "{said}");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "down waited for SIGTERM"
    );
    assert_none_left(&dir);
}

/// The state letter of process `pid` (`R`, `S`, `T`, `Z`, ...), if it exists.
fn process_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}
