//! `vault create`.

use super::{backup, files_with_ext, load_key, load_public, now_unix, read_secret};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use vault::create::{create, generate_secret, CreatedVault, NewVault};
use vault::fsio::{self, Mode};
use vault::policy::ThresholdSpec;
use vault::slip39::{self, GroupSpec, SplitSpec};

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
    /// Members that may lie (Byzantine f). Default: 1 where n >= 4 (one
    /// compromised sidecar is the everyday attacker), else 0. Needs
    /// n >= 3f + 1 and t >= f + 1; transitions then need
    /// max(t, ceil((n+f+1)/2)) holders' votes. Written, signed, to OUT/policy.pqvl.
    #[arg(long = "byzantine", value_name = "F")]
    byzantine: Option<u8>,
    /// Lowest threshold any transition may reach (default: t, so a shrink
    /// never lowers the threshold without a newer signed policy).
    #[arg(long, value_name = "T")]
    floor: Option<u8>,
    /// Also make a SLIP-39 paper backup of the secret, T-of-N mnemonic
    /// shares, written to --backup-out before the vault's files, so the
    /// offline copy exists before the secret leaves this machine.
    #[arg(long, value_name = "T-of-N", requires = "backup_out")]
    backup_slip39: Option<GroupSpec>,
    /// Directory for the SLIP-39 backup (created 0700, one 0600 file per
    /// share, never overwritten); keep it apart from --out.
    #[arg(long, value_name = "DIR", requires = "backup_slip39")]
    backup_out: Option<PathBuf>,
    /// Passphrase file for the SLIP-39 backup (see `vault backup slip39`).
    #[arg(long, value_name = "FILE", requires = "backup_slip39")]
    backup_passphrase_file: Option<PathBuf>,
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
    let initial_keys = super::load_initial_keys(&paths, &recipients)?;
    let signer = load_key(&a.signer)?;
    let mut secret = a.secret_file.as_deref().map(read_secret).transpose()?;

    // The paper backup needs the secret here, so a generated one is made
    // now rather than inside `create`.
    let backup = match (&a.backup_slip39, &a.backup_out) {
        (Some(spec), Some(dir)) => {
            if dir == &a.out {
                bail!("--backup-out must differ from --out: keep the paper backup apart from the shards");
            }
            let s = match &secret {
                Some(s) => s,
                None => secret.insert(generate_secret()?),
            };
            slip39::check_secret_len(s.len()).context("--backup-slip39")?;
            let pass = a
                .backup_passphrase_file
                .as_deref()
                .map(backup::read_passphrase)
                .transpose()?;
            let split = SplitSpec::single(spec.threshold, spec.count);
            split.validate().context("--backup-slip39")?;
            let b = slip39::split(s, pass.as_ref().map_or(&[][..], |p| &p[..]), &split)?;
            Some((b, dir, pass))
        }
        _ => None,
    };

    let created = create(&NewVault {
        initial_keys: &initial_keys,
        secret: secret.as_deref().map(|s| &s[..]),
        recipients: &recipients,
        threshold: a.threshold,
        signer: &signer,
        created_unix: now_unix(),
    })?;
    // The operator's transition policy; checked before anything is written.
    let (policy, survives) = super::policy::genesis(
        created.vault_id,
        created.threshold,
        created.n,
        a.byzantine,
        a.floor,
    )?;
    let policy_path = a.out.join("policy.pqvl");
    if policy_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            policy_path.display()
        );
    }
    if let Some((b, dir, pass)) = &backup {
        // A backup of a vault that then fails to be written would be
        // confusing: check the vault's files are free first (write_vault
        // still refuses to overwrite, whatever happens in between).
        let targets = created
            .shards
            .iter()
            .map(|s| shard_path(&a.out, s.index, &s.recipient_name))
            .chain([a.out.join("manifest.pqvm")]);
        for t in targets {
            if t.exists() {
                bail!("{} already exists; refusing to overwrite it", t.display());
            }
        }
        let files = backup::write_backup(b, dir)?;
        let pass = pass.as_ref().map_or(&[][..], |p| &p[..]);
        println!("{}", backup::summary(b, pass, Some(&files)));
    }
    write_vault(&created, &a.out)?;
    super::policy::write_policy(&policy, &signer, &policy_path)?;
    println!("vault        {}", created.vault_id);
    println!(
        "threshold    {} of {} (any {} shards recover the secret)",
        created.threshold, created.n, created.threshold
    );
    super::policy::print_policy(
        &policy,
        created.threshold,
        created.n,
        &survives,
        &policy_path,
    );
    println!("manifest     {}", a.out.join("manifest.pqvm").display());
    for s in &created.shards {
        let initial = initial_keys
            .get(usize::from(s.index) - 1)
            .is_some_and(Option::is_some);
        println!(
            "shard {:>3}    {}  -> {} ({}){}",
            s.index,
            shard_path(&a.out, s.index, &s.recipient_name).display(),
            s.recipient_name,
            s.recipient.short(),
            if initial {
                ", sealed to its initial KEM key"
            } else {
                ", sealed to its identity (no NAME.ipub beside NAME.pub)"
            }
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
