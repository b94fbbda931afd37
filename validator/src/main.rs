//! `validator`: the pqvault validator daemon (a Kubernetes sidecar).

use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use validator::config::{Config, Overrides};
use validator::listener::ACCEPT_BACKOFF;
use validator::retry::{Loop, Retry};
use validator::{api, daemon, ops, server};

/// pqvault validator: keeps one sealed shard per vault, serves the mutual-TLS
/// peer API (key exchange X25519MLKEM768 only), probes and scores peers, and
/// exports /healthz, /readyz and /metrics on a separate plain-HTTP port.
///
/// Settings come from the TOML file given with --config (every key is
/// listed below), then PQVAULT_ID, PQVAULT_DATA_DIR, PQVAULT_PEER_LISTEN,
/// PQVAULT_OPS_LISTEN, PQVAULT_APP_LISTEN, then these flags.
#[derive(Parser)]
#[command(name = "validator", version, after_long_help = validator::config::REFERENCE)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Validator id (must match the certificate's SAN). Env: PQVAULT_ID.
    #[arg(long)]
    id: Option<String>,
    /// Data directory. Env: PQVAULT_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Peer API address (mutual TLS). Env: PQVAULT_PEER_LISTEN.
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Ops address (/healthz /readyz /metrics). Env: PQVAULT_OPS_LISTEN.
    #[arg(long)]
    ops_listen: Option<SocketAddr>,
    /// Local application artifact API (plain HTTP; served only when
    /// `[artifacts] policy` is set; default 127.0.0.1:9465).
    /// Env: PQVAULT_APP_LISTEN.
    #[arg(long)]
    app_listen: Option<SocketAddr>,
    /// Load and verify everything, then exit without serving. Reads only:
    /// nothing is imported, created or changed on disk.
    #[arg(long)]
    check: bool,
}

fn main() {
    stop_on_panic();
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A panic anywhere, a background loop included, stops the process with one
/// log line: a detached task that died would otherwise leave a validator
/// that answers `/readyz` but no longer probes, heals or checks custody.
/// The orchestrator restarts it; the store is crash-safe (docs/decisions.md
/// D23).
fn stop_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let what = what.replace('\n', " ");
        // One line, straight to stderr: the tracing subscriber may be what
        // panicked.
        eprintln!("validator panicked in thread {name} at {at}: {what}; stopping the process");
        std::process::exit(101);
    }));
}

fn run() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PQVAULT_LOG")
                // openraft logs every failed RPC to a dead peer at ERROR;
                // the epoch log reports its own state (PQVAULT_LOG overrides).
                .unwrap_or_else(|_| "info,openraft=off".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: log files and collectors
        // get plain text (and NO_COLOR is honoured, https://no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let overrides = Overrides::from_env_then(Overrides {
        id: args.id,
        data_dir: args.data_dir,
        peer_listen: args.peer_listen,
        ops_listen: args.ops_listen,
        app_listen: args.app_listen,
    })?;
    let config = Config::load(args.config.as_deref(), overrides)?;
    if args.check {
        // Reads only: nothing under the data directory is created or changed.
        for line in daemon::check(&config)? {
            println!("{line}");
        }
        println!("configuration, keys, TLS material and store are valid");
        return Ok(());
    }
    let state = daemon::prepare(&config)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config, state))
}

async fn serve(config: Config, state: std::sync::Arc<validator::state::State>) -> Result<()> {
    let peer_listener = tokio::net::TcpListener::bind(config.peer_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.peer_listen))?;
    let ops_listener = tokio::net::TcpListener::bind(config.ops_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.ops_listen))?;
    tracing::info!(id = %config.id, peer = %config.peer_listen, ops = %config.ops_listen, "validator listening");
    #[cfg(feature = "failpoints")]
    tracing::warn!(
        "built with crash points (the `failpoints` feature): a test build, not for production"
    );
    if validator::byzantine::ENABLED {
        tracing::warn!("built to misbehave on request (the `byzantine` feature): a test build, not for production");
    }
    let limits = config.listen_limits;
    let refused: std::sync::Arc<dyn Fn(&'static str) + Send + Sync> = {
        let state = state.clone();
        std::sync::Arc::new(move |port| state.refused(port))
    };
    tokio::spawn(server::serve_peers(
        peer_listener,
        state.clone(),
        api::router(state.clone())
            .merge(validator::status::router(state.clone()))
            .merge(validator::recovery::router(state.clone())),
        limits,
    ));
    if config.consensus.is_enabled() {
        let log = validator::consensus::Consensus::start(&state, &config)
            .await
            .context("cannot start the replicated epoch log")?;
        let _ = state.consensus.set(log);
    }
    tokio::spawn(daemon::probe_loop(
        state.clone(),
        Duration::from_millis(config.probe.interval_ms),
    ));
    tokio::spawn(validator::custody::custody_loop(
        state.clone(),
        Duration::from_millis(config.custody.interval_ms.max(1)),
    ));
    // A removal issued while we were down: from any live member.
    tokio::spawn(validator::membership::sync_loop(
        state.clone(),
        Duration::from_millis(config.heal.interval_ms.max(100)),
    ));
    if let Some(d) = config.discovery.clone() {
        tokio::spawn(validator::discovery::discovery_loop(state.clone(), d));
    }
    if config.heal.auto {
        tokio::spawn(validator::heal::heal_loop(
            state.clone(),
            Duration::from_millis(config.heal.interval_ms),
            Duration::from_millis(config.heal.grace_ms),
        ));
    }
    if let Some(art) = state.artifacts.clone() {
        let app_listener = tokio::net::TcpListener::bind(config.app_listen)
            .await
            .with_context(|| format!("cannot listen on {} (listen.app)", config.app_listen))?;
        tracing::info!(app = %config.app_listen, "artifact API listening");
        let app = validator::artifacts::api::app_router(state.clone());
        tokio::spawn(validator::listener::serve_http(
            app_listener,
            app,
            limits,
            "app",
            refused.clone(),
            Retry::new(&state.metrics, Loop::AcceptApp, ACCEPT_BACKOFF),
        ));
        tokio::spawn(validator::artifacts::sync::sync_loop(state.clone(), art));
    }
    let ops = validator::listener::serve_http(
        ops_listener,
        ops::router(state.clone()),
        limits,
        "ops",
        refused,
        Retry::new(&state.metrics, Loop::AcceptOps, ACCEPT_BACKOFF),
    );
    daemon::set_ready(&state);
    tokio::select! {
        _ = ops => {}
        _ = shutdown() => tracing::info!("shutting down"),
    }
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
