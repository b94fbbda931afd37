//! `vault mesh fetch`: the operator's copy of a vault's public chain, from
//! the validators over the peer API. Each validator's `PQVC` proof chain
//! (`GET /v1/vaults/{vault}/proof`) is verified from the operator's
//! signature on the anchor; the longest verified one is written as the
//! files `vault recover --chain` reads, for audit and recovery.

use super::client::{get, Conn};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use vault::epoch::EpochCertificate;
use vault::identity::PublicIdentity;
use vault::manifest::Manifest;

/// The longest verified chain so far: epoch, from whom, anchor, steps.
type Best = (u64, String, Vec<u8>, vault::chain::Steps);

/// Largest proof chain read (a long chain of manifests and certificates).
const MAX_PROOF: u64 = 16 << 20;

/// Arguments of `vault mesh fetch`.
#[derive(clap::Args)]
pub struct FetchArgs {
    #[command(flatten)]
    conn: Conn,
    /// The vault (32 hex digits) [the only vault of DIR's `vault/`].
    #[arg(long)]
    vault: Option<String>,
    /// The operator's public identity, which signed the vault's genesis
    /// [DIR/keys/operator.pub].
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// New directory for the chain: `anchor.pqvm`, `step-K.pqvm` and
    /// `step-K.pqve` per certified epoch, and the current `manifest.pqvm`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `vault mesh fetch`.
pub fn run(a: FetchArgs) -> Result<()> {
    let trust = match (&a.trust, &a.conn.dir) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.join("keys/operator.pub"),
        (None, None) => bail!("give --trust (the operator's public identity) or a local mesh DIR"),
    };
    let operator = PublicIdentity::decode(
        &std::fs::read(&trust).with_context(|| format!("{}", trust.display()))?,
    )
    .with_context(|| format!("{}", trust.display()))?
    .fingerprint();
    let vault = match (&a.vault, &a.conn.dir) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => only_vault(d)?,
        (None, None) => bail!("give --vault ID or a local mesh DIR"),
    };
    if vault.len() != 32 || !vault.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--vault {vault:?}: a vault id is 32 hex digits");
    }
    if a.out.exists() {
        bail!("{} exists; give a new directory", a.out.display());
    }
    let (config, targets) = a.conn.resolve()?;
    let path = format!("/v1/vaults/{vault}/proof");
    let mut best: Option<Best> = None;
    for (id, addr) in &targets {
        let chain = get(&config, id, *addr, &path, MAX_PROOF).and_then(|bytes| {
            let (anchor, steps) = vault::chain::decode_proof(&bytes)?;
            let genesis = Manifest::decode(&anchor)?.verify(Some(&operator))?;
            let certified = steps
                .iter()
                .map(|(m, c)| Ok((m.clone(), EpochCertificate::decode(c)?)))
                .collect::<Result<Vec<_>>>()?;
            let last = vault::epoch::verify_chain(genesis, &certified)?;
            Ok((last.body().epoch, anchor, steps))
        });
        match chain {
            Ok((epoch, anchor, steps)) => {
                println!("{id:<13} epoch {epoch} (chain verified from the operator's signature)");
                if best.as_ref().is_none_or(|(e, ..)| epoch > *e) {
                    best = Some((epoch, id.clone(), anchor, steps));
                }
            }
            Err(e) => println!("{id:<13} no verified chain: {e:#}"),
        }
    }
    let Some((epoch, from, anchor, steps)) = best else {
        bail!("no validator served a verified chain of vault {vault}");
    };
    let first = Manifest::decode(&anchor)?.body().epoch + 1;
    vault::chain::write_dir(&a.out, &anchor, first, &steps)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote the chain of vault {vault} to epoch {epoch} (from {from}) to {}; recover with\n  vault recover --manifest {0}/manifest.pqvm --chain {0} --trust {1} ...",
        a.out.display(),
        trust.display()
    );
    Ok(())
}

/// The vault of a local mesh: its `vault/manifest.pqvm`.
fn only_vault(dir: &std::path::Path) -> Result<String> {
    let p = dir.join("vault/manifest.pqvm");
    let m = Manifest::decode(
        &std::fs::read(&p).with_context(|| format!("{} (or give --vault)", p.display()))?,
    )
    .with_context(|| format!("{}", p.display()))?;
    Ok(m.body().vault_id.to_string())
}
