//! `vault inspect`.

use super::{read, MAX_SMALL_FILE};
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Arguments of `vault inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Any pqvault file.
    file: PathBuf,
    /// Machine-readable JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Describes the file; exits non-zero if it is not a valid pqvault file.
pub fn run(a: Args) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(read(&a.file, MAX_SMALL_FILE)?);
    let v = vault::inspect::describe(&bytes);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", vault::inspect::to_text(&v));
    }
    if v["kind"] == "invalid" {
        bail!(
            "{}: {}",
            a.file.display(),
            v["error"].as_str().unwrap_or("invalid")
        );
    }
    Ok(())
}
