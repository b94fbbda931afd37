//! `vault mesh up | down`: a local development mesh of validator processes
//! on loopback, and the parts `vault demo` shares with it (file
//! generation in [`layout`], process supervision in [`supervise`], ops-port
//! reads in [`observe`]). docs/local-mesh.md explains the files.
//! `vault mesh status` ([`status`]), `fetch` ([`fetch`]) and `recover`
//! ([`recover`]) are the operator's client on the peer port of any mesh;
//! `vault mesh remove` ([`remove`]) removes members.

pub mod client;
pub mod fetch;
pub mod layout;
pub mod observe;
pub mod recover;
pub mod remove;
pub mod status;
pub mod supervise;

use anyhow::{bail, Result};
use layout::{Node, Settings};
use observe::Http;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use supervise::{Lifetime, Supervisor};

/// Arguments of `vault mesh`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Generate a local mesh in DIR (identities, mesh CA, a vault, configs)
    /// and start its validators in the background; stop with `vault mesh down DIR`.
    Up {
        /// Empty (or missing) directory for the mesh's files.
        dir: PathBuf,
        /// Validators holding a share of the vault (threshold: majority).
        #[arg(long, default_value_t = 7)]
        holders: u8,
        /// Validators holding nothing, ready to take over a lost share.
        #[arg(long, default_value_t = 3)]
        spares: u8,
        /// The validator binary (default: $PQVAULT_VALIDATOR, else next to vault).
        #[arg(long, value_name = "PATH")]
        validator_bin: Option<PathBuf>,
    },
    /// Ask validators over the peer API (post-quantum mutual TLS, operator
    /// certificate) for their role, epochs, members and pending transitions.
    Status(status::StatusArgs),
    /// Fetch a vault's public chain (anchor and certified epochs) from the
    /// validators, verify it from the operator's signature, and write the
    /// files `vault recover --chain` reads.
    Fetch(fetch::FetchArgs),
    /// Recover a vault's secret through the validators: a request signed
    /// with the operator's key, each holder's share sealed to a one-time
    /// key, decoded and checked against the verified current manifest.
    Recover(recover::RecoverArgs),
    /// Remove members from the mesh: sign the next operator membership
    /// removal (`PQVN`) and send it to the validators, which stop probing
    /// and counting the removed members and drop their metric series.
    Remove(remove::RemoveArgs),
    /// Stop the validators of the mesh in DIR (SIGTERM, then SIGKILL after
    /// --timeout-secs); nothing running is not an error.
    Down {
        /// The mesh's directory.
        dir: PathBuf,
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
    },
}

/// Runs `vault mesh`.
pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Up {
            dir,
            holders,
            spares,
            validator_bin,
        } => up(&dir, holders, spares, validator_bin.as_deref()),
        Command::Status(a) => status::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Recover(a) => recover::run(a),
        Command::Remove(a) => remove::run(a),
        Command::Down { dir, timeout_secs } => {
            let stopped = supervise::down(&dir, Duration::from_secs(timeout_secs))?;
            if stopped.is_empty() {
                println!("no validator of {} is running", dir.display());
            }
            for (id, how) in stopped {
                match how {
                    supervise::Stopped::Terminated => println!("stopped {id}"),
                    supervise::Stopped::Killed => {
                        println!("killed {id}: still running {timeout_secs} s after SIGTERM")
                    }
                }
            }
            Ok(())
        }
    }
}

fn up(dir: &Path, holders: u8, spares: u8, bin: Option<&Path>) -> Result<()> {
    let binary = supervise::validator_binary(bin)?;
    supervise::catch_interrupts()?;
    let settings = Settings::FAST;
    let g = layout::generate(dir, holders, spares, &settings, None)?;
    let root = dir.canonicalize()?;
    println!(
        "generated {} validators ({holders} holders of a {}-of-{} vault, {spares} spares) in {}",
        g.nodes.len(),
        g.t,
        g.n,
        root.display()
    );
    println!("settings: {}", settings.describe());
    let mut sup = Supervisor::new(binary, Lifetime::Detached);
    let http = Http::default();
    let took = start_all(&mut sup, &g.nodes, &http, Duration::from_secs(60))?;
    // Running and ready: from here on they outlive this command.
    sup.release();
    println!("all ready on /readyz in {took:.1?}");
    let (views, scores) = observe::views(&http, &g.nodes, &g.vault_id);
    observe::print_table(&g.nodes, &views, &scores);
    println!(
        "logs: {}/validator-K/validator.log   metrics: curl http://{}/metrics",
        root.display(),
        g.nodes[0].ops
    );
    println!(
        "status over the peer API (operator certificate): vault mesh status {}",
        root.display()
    );
    println!("stop: vault mesh down {}", root.display());
    Ok(())
}

/// Starts every node and waits until each answers 200 on `/readyz`;
/// fails naming a validator that exits meanwhile (with its log's tail).
pub fn start_all(
    sup: &mut Supervisor,
    nodes: &[Node],
    http: &Http,
    timeout: Duration,
) -> Result<Duration> {
    let t0 = Instant::now();
    for n in nodes {
        sup.start(n)?;
    }
    let mut ready = vec![false; nodes.len()];
    while !ready.iter().all(|r| *r) {
        supervise::check_interrupt()?;
        if let Some((id, status)) = sup.exited() {
            let log = nodes
                .iter()
                .find(|n| n.id == id)
                .map(|n| log_tail(&n.log(), 10))
                .unwrap_or_default();
            bail!("{id} exited during start ({status}):\n{log}");
        }
        if t0.elapsed() > timeout {
            let late: Vec<_> = nodes
                .iter()
                .zip(&ready)
                .filter(|(_, r)| !**r)
                .map(|(n, _)| n.id.as_str())
                .collect();
            bail!("not ready after {timeout:?}: {}", late.join(", "));
        }
        for (n, r) in nodes.iter().zip(ready.iter_mut()) {
            if !*r {
                *r = http.ready(n);
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(t0.elapsed())
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
