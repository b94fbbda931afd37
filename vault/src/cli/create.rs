//! `vault create`.

use super::{files_with_ext, load_key, load_public, now_unix, read};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use vault::create::{create, CreatedVault, NewVault};
use vault::fsio::{self, Mode};
use vault::policy::ThresholdSpec;
use vault::share::MAX_SECRET_LEN;
use zeroize::Zeroizing;

/// Arguments of `vault create`.
#[derive(clap::Args)]
pub struct Args {
    /// Recipient public identity (.pub); one shard each, in the order given.
    #[arg(long = "recipient", value_name = "PUB")]
    recipients: Vec<PathBuf>,
    /// Directory whose *.pub files are all recipients (sorted by file name).
    #[arg(long, value_name = "DIR")]
    recipients_dir: Option<PathBuf>,
    /// Secret key (.key) of the operator who signs the manifest.
    #[arg(long, value_name = "KEY")]
    signer: PathBuf,
    /// Threshold: a number, "auto" (majority: floor(n/2)+1) or "auto:POLICY"
    /// (majority, supermajority).
    #[arg(long, default_value = "auto")]
    threshold: ThresholdSpec,
    /// File holding the secret to share ("-" for stdin). Without it a random
    /// 32-byte secret is generated and exists only as shards.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Output directory for manifest.pqvm and the shard files.
    #[arg(long)]
    out: PathBuf,
}

/// Creates the vault and writes its files.
pub fn run(a: Args) -> Result<()> {
    let mut paths = a.recipients.clone();
    if let Some(dir) = &a.recipients_dir {
        paths.extend(files_with_ext(dir, "pub")?);
    }
    if paths.is_empty() {
        bail!("no recipients: give --recipient PUB (repeatable) or --recipients-dir DIR");
    }
    let recipients = paths
        .iter()
        .map(|p| load_public(p))
        .collect::<Result<Vec<_>>>()?;
    let signer = load_key(&a.signer)?;
    let secret = a.secret_file.as_deref().map(read_secret).transpose()?;

    let created = create(&NewVault {
        secret: secret.as_deref().map(|s| &s[..]),
        recipients: &recipients,
        threshold: a.threshold,
        signer: &signer,
        created_unix: now_unix(),
    })?;
    write_vault(&created, &a.out)?;
    println!("vault        {}", created.vault_id);
    println!(
        "threshold    {} of {} (any {} shards recover the secret)",
        created.threshold, created.n, created.threshold
    );
    println!("manifest     {}", a.out.join("manifest.pqvm").display());
    for s in &created.shards {
        println!(
            "shard {:>3}    {}  -> {} ({})",
            s.index,
            shard_path(&a.out, s.index, &s.recipient_name).display(),
            s.recipient_name,
            s.recipient.short()
        );
    }
    Ok(())
}

/// Path of shard `index` for `name` inside `dir`.
pub fn shard_path(dir: &Path, index: u8, name: &str) -> PathBuf {
    dir.join(format!("shard-{index:03}-{name}.shard"))
}

/// Writes the manifest and shards; refuses to overwrite anything.
pub fn write_vault(v: &CreatedVault, dir: &Path) -> Result<()> {
    fsio::create_private_dir(dir)?;
    for s in &v.shards {
        fsio::write_atomic(
            &shard_path(dir, s.index, &s.recipient_name),
            &s.bytes,
            Mode::Public,
            false,
        )?;
    }
    // The manifest last: its presence means the vault's files are complete.
    fsio::write_atomic(&dir.join("manifest.pqvm"), &v.manifest, Mode::Public, false)?;
    Ok(())
}

fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    if path.as_os_str() == "-" {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .take(MAX_SECRET_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read the secret from stdin")?;
        return Ok(buf);
    }
    Ok(Zeroizing::new(read(path, MAX_SECRET_LEN as u64)?))
}
