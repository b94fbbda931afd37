//! `vault recover`.

use super::{files_with_ext, load_manifest, read, MAX_SHARD_FILE};
use anyhow::{bail, Result};
use std::io::Write;
use std::path::PathBuf;
use vault::fsio::{self, Mode};
use vault::recover::{recover_with, Candidate};
use zeroize::Zeroizing;

/// Arguments of `vault recover`.
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
    /// Recipient secret key able to open some of the shards (repeatable):
    /// an identity (NAME.key) or, for genesis shards sealed to it, an
    /// initial KEM key (NAME.ikey) its validator has not yet erased.
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<PathBuf>,
    /// Directory whose *.key and *.ikey files are all offered as keys.
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// Sealed shard file (repeatable).
    #[arg(long = "shard", value_name = "SHARD")]
    shards: Vec<PathBuf>,
    /// Unsealed share file from `vault unseal` (repeatable).
    #[arg(long = "share", value_name = "SHARE")]
    shares: Vec<PathBuf>,
    /// Write the recovered secret here (mode 0600, never overwritten), or
    /// "-" for stdout. Without --out the secret is checked, then discarded.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Recovers and reports; writes the secret only where asked.
pub fn run(a: Args) -> Result<()> {
    let m = match &a.chain {
        Some(dir) => super::load_manifest_via_chain(&a.manifest, a.trust.as_deref(), dir)?,
        None => load_manifest(&a.manifest, a.trust.as_deref())?,
    };
    let mut key_paths = a.keys.clone();
    if let Some(dir) = &a.keys_dir {
        key_paths.extend(files_with_ext(dir, "key")?);
        key_paths.extend(files_with_ext(dir, "ikey")?);
    }
    let (mut keys, mut initial) = (Vec::new(), Vec::new());
    for p in &key_paths {
        match super::ShardKey::load(p)? {
            super::ShardKey::Identity(k) => keys.push(k),
            super::ShardKey::Initial(k) => initial.push(k),
        }
    }
    if a.shards.is_empty() && a.shares.is_empty() {
        bail!("no shards given: pass --shard FILE or --share FILE (repeatable)");
    }
    // A file that cannot be read (missing, or over the size limit) is one
    // bad candidate, named and skipped like any other: it must not stop a
    // recovery that has enough good shards.
    let (mut files, mut unreadable) = (Vec::new(), Vec::new());
    let sealed = a.shards.iter().map(|p| (p, true));
    for (p, is_sealed) in sealed.chain(a.shares.iter().map(|p| (p, false))) {
        match read(p, MAX_SHARD_FILE) {
            Ok(bytes) => files.push((p, is_sealed, Zeroizing::new(bytes))),
            Err(e) => unreadable.push((p, e)),
        }
    }
    let candidates: Vec<Candidate<'_>> = files
        .iter()
        .map(|(p, is_sealed, bytes)| {
            let source = p.display().to_string();
            if *is_sealed {
                Candidate::Sealed { source, bytes }
            } else {
                Candidate::Unsealed { source, bytes }
            }
        })
        .collect();

    let to_stdout = a.out.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let mut report: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    for (p, e) in &unreadable {
        writeln!(report, "rejected {}: unreadable: {e}", p.display())?;
    }
    if candidates.is_empty() {
        bail!("none of the given shard files could be read");
    }
    let r = recover_with(&m, &candidates, &keys, &initial)?;
    for bad in &r.rejected {
        writeln!(report, "rejected {}: {}", bad.source, bad.reason)?;
    }
    let corrected = r.corrected();
    if !corrected.is_empty() {
        writeln!(
            report,
            "corrected {} wrong share(s) by decoding: {:?} (their holders lied or their shards were corrupted)",
            corrected.len(),
            corrected
        )?;
    }
    writeln!(
        report,
        "recovered {}-byte secret of vault {} epoch {} from shares {:?}{}; it matches the manifest's commitment",
        r.secret.len(),
        m.body().vault_id,
        m.body().epoch,
        r.used,
        if r.spare.is_empty() { String::new() } else { format!(" (also good: {:?})", r.spare) }
    )?;
    match &a.out {
        None => writeln!(
            report,
            "secret not written (pass --out FILE or --out - to write it)"
        )?,
        Some(_) if to_stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(&r.secret)?;
            out.flush()?;
        }
        Some(p) => {
            fsio::write_atomic(p, &r.secret, Mode::Secret, false)?;
            writeln!(report, "secret written to {} (mode 0600)", p.display())?;
        }
    }
    Ok(())
}
