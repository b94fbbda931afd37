//! `vault`: the operator's command line for pqvault.
//!
//! Library errors are typed; this binary turns them into one clear line on
//! stderr and a non-zero exit code.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// pqvault: post-quantum secret sharing across validators.
///
/// A vault's master secret is split with Shamir sharing (t of n) and each
/// shard is sealed to one validator with a hybrid KEM (X25519 + ML-KEM-768 +
/// HQC-192). A manifest, signed with Ed25519 + ML-DSA-65, commits to every
/// shard so a wrong, stale or tampered shard is named, never combined.
#[derive(Parser)]
#[command(name = "vault", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an identity (KEM and signing key pairs) for a validator or operator.
    Keygen(cli::keygen::Args),
    /// Create a vault: split a secret, seal one shard per recipient, sign the manifest.
    Create(cli::create::Args),
    /// Describe any pqvault file (identity, key, shard, share, manifest).
    Inspect(cli::inspect::Args),
    /// Verify a manifest's signature and check shards against it.
    Verify(cli::verify::Args),
    /// Unseal one shard with its recipient's key into a share file.
    Unseal(cli::unseal::Args),
    /// Recover the secret from shards or share files.
    Recover(cli::recover::Args),
    /// Transition policy: `sign` a newer one (f, floor, shrink rule) for an existing vault.
    Policy(cli::policy::Args),
    /// Paper backup of a secret: `slip39` splits it into SLIP-39 mnemonic shares.
    Backup(cli::backup::Args),
    /// Restore a secret from a paper backup: `slip39` combines SLIP-39 mnemonics.
    Restore(cli::restore::Args),
    /// Mesh CA for validator mutual TLS: `init` a CA, `issue` validator certificates.
    MeshCa(cli::meshca::Args),
    /// The whole mission: a live local mesh of validator processes detects two
    /// killed holders, heals to a new epoch, recovers the secret and carries an artifact.
    Demo(cli::demo::Args),
    /// A local development mesh: `up` generates and starts validators, `down` stops them.
    Mesh(cli::mesh::Args),
    /// Files only, in-process: 7 identities, a 4-of-7 vault, recovery from 4 shards.
    Quickstart(cli::quickstart::Args),
    /// Model artifacts (signed quantized SNN models): pack, meta, sign, verify, inspect, golden, push, pull, abandon.
    Artifact(cli::artifact::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(a) => cli::keygen::run(a),
        Command::Create(a) => cli::create::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Verify(a) => cli::verify::run(a),
        Command::Unseal(a) => cli::unseal::run(a),
        Command::Recover(a) => cli::recover::run(a),
        Command::Policy(a) => cli::policy::run(a),
        Command::Backup(a) => cli::backup::run(a),
        Command::Restore(a) => cli::restore::run(a),
        Command::MeshCa(a) => cli::meshca::run(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Mesh(a) => cli::mesh::run(a),
        Command::Quickstart(a) => cli::quickstart::run(a),
        Command::Artifact(a) => cli::artifact::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: many library errors already
/// include their source's message in their own, so a cause whose text is
/// already in what was printed is not repeated.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// Every subcommand's arguments are consistent (clap checks names and
    /// requirements only when a command is first parsed).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
