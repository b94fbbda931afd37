//! `vault policy sign`, and the policy part of `vault create`.

use super::{load_key, read};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use vault::fsio::{self, Mode};
use vault::governance::{Survives, TransitionPolicy};
use vault::manifest::{Manifest, VaultId};
use vault::policy::Policy;

/// Arguments of `vault policy`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Sign a (newer) transition policy for an existing vault: f, floor and shrink rule. Validators adopt a higher version.
    Sign {
        /// The vault's current manifest (for its id, t and n).
        #[arg(long, value_name = "PQVM")]
        manifest: PathBuf,
        /// The operator's secret key (the vault's trusted signer).
        #[arg(long, value_name = "KEY")]
        signer: PathBuf,
        /// Members that may lie (see `vault create --byzantine`).
        #[arg(long = "byzantine", value_name = "F")]
        f: u8,
        /// Lowest threshold a transition may reach (default: the current t).
        #[arg(long, value_name = "T")]
        floor: Option<u8>,
        /// How a shrink picks t' for n' holders, never below the floor.
        #[arg(long, default_value = "majority")]
        shrink: Policy,
        /// Policy version; must exceed the one the validators hold (genesis is 1).
        #[arg(long = "policy-version", value_name = "N")]
        policy_version: u32,
        /// Output file (policy.pqvl).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `vault policy`.
pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Sign {
            manifest,
            signer,
            f,
            floor,
            shrink,
            policy_version: version,
            out,
        } => {
            let m = Manifest::decode(&read(&manifest, 4 << 20)?)
                .with_context(|| format!("{} is not a manifest", manifest.display()))?;
            let key = load_key(&signer)?;
            let b = m.body();
            let p = TransitionPolicy {
                vault_id: b.vault_id,
                version,
                effective_from: b.epoch,
                f,
                floor: floor.unwrap_or(b.threshold),
                shrink,
            };
            let survives = p.check(b.threshold, b.n)?;
            write_policy(&p, &key, &out)?;
            print_policy(&p, b.threshold, b.n, &survives, &out);
        }
    }
    Ok(())
}

/// The genesis policy of a new `t`-of-`n` vault from `vault create`'s
/// flags; refuses numbers that cannot hold.
pub fn genesis(
    vault_id: VaultId,
    t: u8,
    n: u8,
    f: Option<u8>,
    floor: Option<u8>,
) -> Result<(TransitionPolicy, Survives)> {
    let f = f.unwrap_or_else(|| TransitionPolicy::default_f(t, n));
    let p = TransitionPolicy {
        vault_id,
        version: 1,
        effective_from: 1,
        f,
        floor: floor.unwrap_or(t),
        shrink: Policy::Majority,
    };
    match p.check(t, n) {
        Ok(s) => Ok((p, s)),
        Err(e) => bail!("{e}; choose --byzantine and --floor that fit {t}-of-{n}"),
    }
}

/// Signs `p` with `key` and writes it to `out` (never overwriting).
pub fn write_policy(
    p: &TransitionPolicy,
    key: &vault::identity::SecretIdentity,
    out: &Path,
) -> Result<()> {
    let bytes = p.sign(key)?;
    fsio::write_atomic(out, &bytes, Mode::Public, false)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// What the policy survives, in words.
pub fn print_policy(p: &TransitionPolicy, t: u8, n: u8, s: &Survives, out: &Path) {
    println!(
        "policy       {} (version {}): f = {} liar(s) tolerated, floor t >= {}, {} shrink",
        out.display(),
        p.version,
        p.f,
        p.floor,
        p.shrink.name()
    );
    println!(
        "             transitions need {} of {n} holders' votes; the mesh heals {} lost holder(s) on its own",
        s.quorum, s.heals_lost
    );
    match s.names_liars_with_lost {
        Some(k) if p.f > 0 => println!(
            "             up to {} liar(s) are detected; they are also named while at most {k} holder(s) are lost (t + 2f = {} live)",
            p.f,
            t + 2 * p.f
        ),
        _ if p.f > 0 => println!(
            "             up to {} liar(s) are detected but cannot be named ({t}-of-{n} leaves no room for t + 2f)",
            p.f
        ),
        _ => println!("             f = 0: crashes only; a lying member is not tolerated"),
    }
}
