//! `vault backup slip39`: a paper backup of a secret as SLIP-39 mnemonics.

use super::{read, read_secret, MAX_SMALL_FILE};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use vault::fsio::{self, Mode};
use vault::slip39::{self, Backup, GroupSpec, SplitSpec};
use zeroize::Zeroizing;

/// Arguments of `vault backup`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// Split a secret into SLIP-39 mnemonic shares (readable by the reference
    /// implementation and hardware wallets): one mnemonic per line on stdout,
    /// or one 0600 file per share with --out.
    Slip39(Slip39Args),
}

/// Arguments of `vault backup slip39`.
#[derive(clap::Args)]
pub struct Slip39Args {
    /// Shares needed to restore (one group of --shares); not with --group.
    #[arg(long, requires = "shares", conflicts_with_all = ["groups", "group_threshold"])]
    threshold: Option<u8>,
    /// Shares to make (at most 16); not with --group.
    #[arg(long, requires = "threshold")]
    shares: Option<u8>,
    /// Groups needed to restore, with two or more --group.
    #[arg(long, value_name = "G", requires = "groups")]
    group_threshold: Option<u8>,
    /// A group of shares, "T-of-N" (repeatable, at most 16 groups): restoring
    /// needs T of its N shares for each of --group-threshold groups.
    #[arg(long = "group", value_name = "T-of-N")]
    groups: Vec<GroupSpec>,
    /// File holding the passphrase (printable ASCII; one trailing newline is
    /// ignored). A wrong passphrase at restore gives a different secret,
    /// without any error: SLIP-39 works that way by design.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// File holding the secret ("-" for stdin): an even number of bytes, at
    /// least 16, as SLIP-39 requires.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// "-" to read the secret from stdin (same as --secret-file -).
    #[arg(value_name = "-", conflicts_with = "secret_file")]
    source: Option<PathBuf>,
    /// Write one file per share into this directory (created 0700; files
    /// 0600, never overwritten) instead of printing the mnemonics.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Leave SLIP-39's extendable-backup flag unset, for tools older than
    /// the flag (2024). Set by default, as the reference implementation does.
    #[arg(long)]
    not_extendable: bool,
    /// PBKDF2 iteration exponent: 10,000 × 2^E iterations (0..=15).
    #[arg(long, value_name = "E", default_value_t = slip39::DEFAULT_ITERATION_EXPONENT,
          value_parser = clap::value_parser!(u8).range(0..=15))]
    iteration_exponent: u8,
}

/// Runs `vault backup`.
pub fn run(a: Args) -> Result<()> {
    match a.kind {
        Kind::Slip39(a) => run_slip39(a),
    }
}

fn run_slip39(a: Slip39Args) -> Result<()> {
    let spec = split_spec(&a)?;
    let source = match (&a.secret_file, &a.source) {
        (Some(p), None) => p.clone(),
        (None, Some(p)) if p.as_os_str() == "-" => p.clone(),
        (None, Some(p)) => bail!(
            "unexpected argument {}: give the secret with --secret-file FILE, or \"-\" for stdin",
            p.display()
        ),
        _ => bail!("no secret given: pass --secret-file FILE, or \"-\" to read it from stdin"),
    };
    let secret = read_secret(&source)?;
    slip39::check_secret_len(secret.len())
        .with_context(|| format!("secret from {}", describe_source(&source)))?;
    let passphrase = a
        .passphrase_file
        .as_deref()
        .map(read_passphrase)
        .transpose()?;
    let pass = passphrase.as_ref().map_or(&[][..], |p| &p[..]);
    let backup = slip39::split(&secret, pass, &spec)?;
    let mut out = std::io::stdout().lock();
    match &a.out {
        None => {
            for g in &backup.groups {
                for m in &g.mnemonics {
                    writeln!(out, "{}", &m[..])?;
                }
            }
            out.flush()?;
            eprintln!("{}", summary(&backup, pass, None));
        }
        Some(dir) => {
            let files = write_backup(&backup, dir)?;
            writeln!(out, "{}", summary(&backup, pass, Some(&files)))?;
        }
    }
    Ok(())
}

fn describe_source(p: &Path) -> String {
    if p.as_os_str() == "-" {
        "stdin".into()
    } else {
        p.display().to_string()
    }
}

fn split_spec(a: &Slip39Args) -> Result<SplitSpec> {
    let (group_threshold, groups) = match (a.threshold, a.shares, a.groups.len()) {
        (Some(threshold), Some(count), _) => (1, vec![GroupSpec { threshold, count }]),
        (_, _, 0) => bail!(
            "say how to split: --threshold T --shares N (one group), or --group-threshold G with --group T-of-N for each group"
        ),
        (_, _, 1) => (a.group_threshold.unwrap_or(1), a.groups.clone()),
        (_, _, n) => match a.group_threshold {
            Some(g) => (g, a.groups.clone()),
            None => bail!("{n} groups given: say how many are needed with --group-threshold G"),
        },
    };
    let spec = SplitSpec {
        group_threshold,
        groups,
        extendable: !a.not_extendable,
        iteration_exponent: a.iteration_exponent,
    };
    spec.validate()?;
    Ok(spec)
}

/// Reads a passphrase file: at most 4 KiB, one trailing newline (LF or
/// CRLF) removed, printable ASCII only.
pub fn read_passphrase(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut p = Zeroizing::new(read(path, MAX_SMALL_FILE.min(4096))?);
    if p.ends_with(b"\n") {
        p.pop();
        if p.ends_with(b"\r") {
            p.pop();
        }
    }
    slip39::check_passphrase(&p).with_context(|| format!("{}", path.display()))?;
    Ok(p)
}

/// File name of a share: `slip39-share-MM.txt` for one group,
/// `slip39-group-G-share-MM.txt` for several (numbers from 1).
pub fn share_file_name(backup: &Backup, group: usize, member: usize) -> String {
    if backup.groups.len() == 1 {
        format!("slip39-share-{:02}.txt", member + 1)
    } else {
        format!("slip39-group-{}-share-{:02}.txt", group + 1, member + 1)
    }
}

/// Writes one 0600 file per share (the mnemonic and a newline) into `dir`,
/// created 0700; refuses to overwrite any file.
pub fn write_backup(backup: &Backup, dir: &Path) -> Result<Vec<PathBuf>> {
    fsio::create_private_dir(dir)?;
    let mut files = Vec::new();
    for (g, group) in backup.groups.iter().enumerate() {
        for (m, mnemonic) in group.mnemonics.iter().enumerate() {
            let path = dir.join(share_file_name(backup, g, m));
            let mut line = Zeroizing::new(mnemonic.as_bytes().to_vec());
            line.push(b'\n');
            fsio::write_atomic(&path, &line, Mode::Secret, false)?;
            files.push(path);
        }
    }
    Ok(files)
}

/// What was made, for the operator: layout, flags, passphrase semantics and,
/// when written to files, which file holds which share.
pub fn summary(backup: &Backup, passphrase: &[u8], files: Option<&[PathBuf]>) -> String {
    let n: usize = backup.groups.iter().map(|g| g.mnemonics.len()).sum();
    let mut s = if backup.groups.len() == 1 {
        format!(
            "SLIP-39 backup: {} shares, any {} restore the secret",
            n, backup.groups[0].threshold
        )
    } else {
        format!(
            "SLIP-39 backup: {} groups, {} of them restore the secret",
            backup.groups.len(),
            backup.group_threshold
        )
    };
    s.push_str(&format!(
        " (identifier {}, extendable flag {})",
        backup.identifier,
        if backup.extendable { "set" } else { "unset" }
    ));
    let mut k = 0;
    for (g, group) in backup.groups.iter().enumerate() {
        if backup.groups.len() > 1 {
            s.push_str(&format!(
                "\ngroup {}: {} of {} shares needed",
                g + 1,
                group.threshold,
                group.mnemonics.len()
            ));
        }
        if let Some(files) = files {
            for _ in &group.mnemonics {
                if let Some(f) = files.get(k) {
                    s.push_str(&format!("\n  {} (mode 0600)", f.display()));
                }
                k += 1;
            }
        }
    }
    s.push_str(if passphrase.is_empty() {
        "\nno passphrase: restore without one (restoring with any passphrase gives a different secret, without any error)"
    } else {
        "\npassphrase set: restoring needs the same passphrase; a wrong one gives a different secret, without any error (SLIP-39 has no passphrase check, by design)"
    });
    s
}
