//! `vault verify`.

use super::{load_manifest, read, ShardKey, MAX_SHARD_FILE};
use anyhow::{bail, Result};
use std::path::PathBuf;
use vault::recover::{check_record, check_sealed};

/// Arguments of `vault verify`.
#[derive(clap::Args)]
pub struct Args {
    /// The manifest (manifest.pqvm).
    #[arg(long)]
    manifest: PathBuf,
    /// Public identity of the signer to require (strongly recommended).
    #[arg(long, value_name = "PUB")]
    trust: Option<PathBuf>,
    /// For a later epoch (after repairs or re-shares): a directory with
    /// the operator-signed anchor.pqvm and the certified step-K.pqvm/.pqve
    /// files (an epoch directory from a validator's store); the manifest is
    /// then proven through it from the --trust signer.
    #[arg(long, value_name = "DIR", requires = "trust")]
    chain: Option<PathBuf>,
    /// Recipient key (NAME.key, or the NAME.ikey a genesis shard is sealed
    /// to): also unseal the shard and check its share commitment.
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
    /// Sealed shard files to check against the manifest.
    shards: Vec<PathBuf>,
}

/// Verifies the manifest and each shard; non-zero exit if anything fails.
pub fn run(a: Args) -> Result<()> {
    let m = match &a.chain {
        Some(dir) => super::load_manifest_via_chain(&a.manifest, a.trust.as_deref(), dir)?,
        None => load_manifest(&a.manifest, a.trust.as_deref())?,
    };
    let b = m.body();
    println!(
        "manifest ok: vault {} epoch {}, {} of {}, signed by {} ({}){}",
        b.vault_id,
        b.epoch,
        b.threshold,
        b.n,
        m.signer().name(),
        m.signer().fingerprint().short(),
        if a.trust.is_some() {
            ""
        } else {
            " [signer not pinned: pass --trust]"
        }
    );
    let key = a.key.as_deref().map(ShardKey::load).transpose()?;
    let mut bad = 0;
    for path in &a.shards {
        let bytes = read(path, MAX_SHARD_FILE)?;
        let outcome = check_sealed(&m, &bytes).and_then(|(shard, entry)| {
            let Some(k) = &key else {
                return Ok(format!(
                    "shard {} ok (hash matches; not unsealed)",
                    entry.index
                ));
            };
            let rec = k.open(&shard)?;
            check_record(&m, &rec)?;
            Ok(format!(
                "shard {} ok (unsealed, share matches its commitment)",
                entry.index
            ))
        });
        match outcome {
            Ok(msg) => println!("{}: {msg}", path.display()),
            Err(e) => {
                bad += 1;
                println!("{}: BAD: {e}", path.display());
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {} shard(s) failed verification", a.shards.len());
    }
    Ok(())
}
