//! `vault unseal`.

use super::{load_manifest, read, ShardKey, MAX_SHARD_FILE};
use anyhow::{Context, Result};
use std::path::PathBuf;
use vault::fsio::{self, Mode};
use vault::recover::{check_record, check_sealed};
use vault::seal::SealedShard;

/// Arguments of `vault unseal`.
#[derive(clap::Args)]
pub struct Args {
    /// The sealed shard.
    #[arg(long)]
    shard: PathBuf,
    /// The recipient's secret key (NAME.key), or for a genesis shard sealed
    /// to it, its initial KEM key (NAME.ikey) while that file exists.
    #[arg(long)]
    key: PathBuf,
    /// Where to write the share file (mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Check the shard against this manifest first (recommended).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Signer to require for the manifest.
    #[arg(long, value_name = "PUB", requires = "manifest")]
    trust: Option<PathBuf>,
}

/// Unseals one shard into a share file.
pub fn run(a: Args) -> Result<()> {
    let bytes = read(&a.shard, MAX_SHARD_FILE)?;
    let name = || a.shard.display().to_string();
    let key = ShardKey::load(&a.key)?;
    let record = match &a.manifest {
        Some(m) => {
            let m = load_manifest(m, a.trust.as_deref())?;
            let (shard, _) = check_sealed(&m, &bytes).with_context(name)?;
            let rec = key.open(&shard).with_context(name)?;
            check_record(&m, &rec).with_context(name)?;
            rec
        }
        None => SealedShard::parse(&bytes)
            .and_then(|s| key.open(&s))
            .with_context(name)?,
    };
    fsio::write_atomic(&a.out, &record.encode(), Mode::Secret, false)?;
    println!(
        "unsealed share {} of vault {} epoch {} -> {} (mode 0600)",
        record.share.index,
        record.vault_id,
        record.epoch,
        a.out.display()
    );
    Ok(())
}
