//! Subcommand implementations and the file helpers they share.

pub mod create;
pub mod inspect;
pub mod keygen;
pub mod meshca;
pub mod quickstart;
pub mod recover;
pub mod unseal;
pub mod verify;

use anyhow::{Context, Result};
use std::path::Path;
use vault::fsio;
use vault::identity::{PublicIdentity, SecretIdentity};
use vault::manifest::{Manifest, VerifiedManifest};

/// Largest key, identity or manifest file accepted.
pub const MAX_SMALL_FILE: u64 = 4 << 20;
/// Largest shard or share file accepted (1 MiB secret plus overhead).
pub const MAX_SHARD_FILE: u64 = (1 << 20) + (64 << 10);

/// Reads a file of at most `max` bytes.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>> {
    Ok(fsio::read_limited(path, max)?)
}

/// Loads a secret key file.
pub fn load_key(path: &Path) -> Result<SecretIdentity> {
    let bytes = zeroize::Zeroizing::new(read(path, MAX_SMALL_FILE)?);
    SecretIdentity::decode(&bytes).with_context(|| format!("{}", path.display()))
}

/// Loads a public identity file.
pub fn load_public(path: &Path) -> Result<PublicIdentity> {
    PublicIdentity::decode(&read(path, MAX_SMALL_FILE)?)
        .with_context(|| format!("{}", path.display()))
}

/// Loads and verifies a manifest, pinning the signer when `trust` is given.
pub fn load_manifest(path: &Path, trust: Option<&Path>) -> Result<VerifiedManifest> {
    let pinned = trust.map(load_public).transpose()?.map(|p| p.fingerprint());
    let m = Manifest::decode(&read(path, MAX_SMALL_FILE)?)
        .with_context(|| format!("{}", path.display()))?;
    m.verify(pinned.as_ref())
        .with_context(|| format!("{}", path.display()))
}

/// Lists files in `dir` whose name ends with `ext`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
