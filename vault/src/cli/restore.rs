//! `vault restore slip39`: the secret back from SLIP-39 mnemonics.

use super::backup::read_passphrase;
use super::read;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use vault::fsio::{self, Mode};
use vault::slip39::{self, Input};
use zeroize::Zeroizing;

/// Largest mnemonics file accepted.
const MAX_MNEMONIC_FILE: u64 = 1 << 20;

/// Arguments of `vault restore`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// Restore a secret from SLIP-39 mnemonics (from `vault backup slip39`,
    /// the reference implementation or a hardware wallet); the result can be
    /// given to `vault create --secret-file`.
    Slip39(Slip39Args),
}

/// Arguments of `vault restore slip39`.
#[derive(clap::Args)]
pub struct Slip39Args {
    /// File with mnemonics, one per line (blank lines and lines starting
    /// with # are skipped), or a directory whose *.txt files are all read
    /// (what `vault backup slip39 --out` writes). Repeatable. Without it the
    /// mnemonics are read from stdin, typed or pasted one per line.
    #[arg(long = "mnemonics", value_name = "FILE")]
    mnemonics: Vec<PathBuf>,
    /// File holding the passphrase the backup was made with. SLIP-39 cannot
    /// tell a wrong passphrase: it gives a different secret, not an error.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Where to write the secret (mode 0600, never overwritten), or "-" for
    /// stdout.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `vault restore`.
pub fn run(a: Args) -> Result<()> {
    match a.kind {
        Kind::Slip39(a) => run_slip39(a),
    }
}

/// One mnemonic and where it came from.
struct Line {
    source: String,
    line: usize,
    text: Zeroizing<String>,
}

fn run_slip39(a: Slip39Args) -> Result<()> {
    let passphrase = a
        .passphrase_file
        .as_deref()
        .map(read_passphrase)
        .transpose()?;
    let pass = passphrase.as_ref().map_or(&[][..], |p| &p[..]);

    let mut lines = Vec::new();
    if a.mnemonics.is_empty() {
        read_stdin(&mut lines)?;
    }
    for p in &a.mnemonics {
        if p.is_dir() {
            let files = super::files_with_ext(p, "txt")?;
            if files.is_empty() {
                bail!("{} holds no *.txt mnemonic files", p.display());
            }
            for f in files {
                read_file(&f, &mut lines)?;
            }
        } else {
            read_file(p, &mut lines)?;
        }
    }
    if lines.is_empty() {
        bail!("no mnemonics given: the input has no lines with words");
    }
    let inputs: Vec<Input<'_>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Input {
            label: format!("share {} ({} line {})", i + 1, l.source, l.line),
            mnemonic: &l.text,
        })
        .collect();
    let r = slip39::combine(&inputs, pass)?;

    let to_stdout = a.out.as_os_str() == "-";
    let mut report: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    writeln!(
        report,
        "restored a {}-byte secret from {} share{} (backup identifier {}, {} of {} group{} needed, extendable flag {})",
        r.secret.len(),
        r.used.len(),
        if r.used.len() == 1 { "" } else { "s" },
        r.identifier,
        r.group_threshold,
        r.group_count,
        if r.group_count == 1 { "" } else { "s" },
        if r.extendable { "set" } else { "unset" },
    )?;
    if !r.checked.is_empty() {
        writeln!(
            report,
            "extra shares, checked to agree: {}",
            r.checked.join(", ")
        )?;
    }
    if !r.unused.is_empty() {
        writeln!(
            report,
            "not used (their groups are incomplete and not needed): {}",
            r.unused.join(", ")
        )?;
    }
    writeln!(
        report,
        "{}",
        if pass.is_empty() {
            "note: restored without a passphrase; if the backup was made with one, this is a different secret: SLIP-39 gives no error for a wrong or missing passphrase"
        } else {
            "note: SLIP-39 does not check the passphrase: a wrong one restores a different secret without any error; if this is not the secret you expect, check the passphrase"
        }
    )?;
    if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(&r.secret)?;
        out.flush()?;
    } else {
        fsio::write_atomic(&a.out, &r.secret, Mode::Secret, false)?;
        writeln!(report, "secret written to {} (mode 0600)", a.out.display())?;
    }
    Ok(())
}

fn push_lines(source: &str, text: &str, out: &mut Vec<Line>) {
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(Line {
            source: source.to_string(),
            line: i + 1,
            text: Zeroizing::new(t.to_string()),
        });
    }
}

fn read_file(path: &Path, out: &mut Vec<Line>) -> Result<()> {
    let bytes = Zeroizing::new(read(path, MAX_MNEMONIC_FILE)?);
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not text (UTF-8)", path.display()))?;
    push_lines(&path.display().to_string(), text, out);
    Ok(())
}

/// Reads mnemonics from stdin until end of input; at a terminal, a blank
/// line after the first mnemonic also ends the input.
fn read_stdin(out: &mut Vec<Line>) -> Result<()> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprintln!("type or paste the mnemonics, one per line; finish with an empty line");
    }
    let mut total = 0u64;
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = Zeroizing::new(line.context("cannot read mnemonics from stdin")?);
        total += line.len() as u64 + 1;
        if total > MAX_MNEMONIC_FILE {
            bail!("stdin holds more than {MAX_MNEMONIC_FILE} bytes of mnemonics");
        }
        if tty && line.trim().is_empty() && !out.is_empty() {
            break;
        }
        let before = out.len();
        push_lines("stdin", &line, out);
        if let Some(l) = out.get_mut(before) {
            l.line = i + 1;
        }
    }
    Ok(())
}
