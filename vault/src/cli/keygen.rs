//! `vault keygen`.

use anyhow::{anyhow, Result};
use std::path::PathBuf;
use vault::fsio::{self, Mode};
use vault::identity::SecretIdentity;
use vault::kem::hybrid::Suite;

/// Arguments of `vault keygen`.
#[derive(clap::Args)]
pub struct Args {
    /// Identity name (1-64 of A-Z a-z 0-9 . _ -), e.g. validator-3.
    #[arg(long)]
    name: String,
    /// Directory for NAME.key (secret, mode 0600) and NAME.pub (shareable).
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Replace existing files of the same name.
    #[arg(long)]
    force: bool,
    /// Make no initial KEM key (NAME.ipub, NAME.ikey): for identities that
    /// never hold a shard, such as the operator's.
    #[arg(long, conflicts_with = "initial_only")]
    no_initial_key: bool,
    /// Keep OUT/NAME.key and write a fresh initial KEM key for it (replacing
    /// NAME.ipub and NAME.ikey): for a vault created after this validator
    /// erased its previous one (docs/decisions.md D45).
    #[arg(long)]
    initial_only: bool,
    /// KEM suite of the identity's keys. The default, x25519-mlkem768-hqc192v5
    /// (HQC version 5), is what new vaults use; x25519-mlkem768-hqc192r4 only
    /// makes a spare that can hold shares of an existing suite-1 vault
    /// (docs/decisions.md D22).
    #[arg(long, value_name = "SUITE", default_value_t = Suite::DEFAULT.name().to_string())]
    kem_suite: String,
}

fn parse_suite(name: &str) -> Result<Suite> {
    Suite::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            let known: Vec<_> = Suite::ALL.iter().map(|s| s.name()).collect();
            anyhow!("unknown KEM suite {name:?}; known: {}", known.join(", "))
        })
}

/// Generates an identity and writes its two files.
pub fn run(a: Args) -> Result<()> {
    if a.initial_only {
        let key = a.out.join(format!("{}.key", a.name));
        let id = super::load_key(&key)?;
        let (secret, public) = write_initial_key(&id, &a.out, true)?;
        println!(
            "identity     {} ({})",
            a.name,
            id.public().fingerprint().short()
        );
        print_initial(&secret, &public);
        return Ok(());
    }
    let suite = parse_suite(&a.kem_suite)?;
    let id = SecretIdentity::generate_with_suite(&a.name, suite)?;
    let (key, public) = write_identity(&id, &a.out, a.force)?;
    println!("identity     {}", a.name);
    println!("fingerprint  {}", id.public().fingerprint());
    println!("kem suite    {suite}");
    println!(
        "secret key   {} (mode 0600; keep it on the validator)",
        key.display()
    );
    println!("public key   {}", public.display());
    if !a.no_initial_key {
        let (secret, public) = write_initial_key(&id, &a.out, a.force)?;
        print_initial(&secret, &public);
    }
    Ok(())
}

fn print_initial(secret: &std::path::Path, public: &std::path::Path) {
    println!(
        "initial key  {} (mode 0600; put it beside the secret key: the validator moves it into its key ring and erases it)",
        secret.display()
    );
    println!(
        "initial pub  {} (signed; `vault create` seals this identity's genesis shard to it)",
        public.display()
    );
}

/// Writes NAME.ikey (secret) and NAME.ipub (signed public statement), a
/// fresh initial KEM key of `id`, into `dir`; returns their paths.
pub fn write_initial_key(
    id: &SecretIdentity,
    dir: &std::path::Path,
    force: bool,
) -> Result<(PathBuf, PathBuf)> {
    let (public, secret) = vault::initial_key::generate(id)?;
    write_pair(
        dir,
        id.public().name(),
        ("ikey", &secret),
        ("ipub", &public),
        force,
    )
}

/// Writes NAME.key and NAME.pub into `dir`; returns their paths.
pub fn write_identity(
    id: &SecretIdentity,
    dir: &std::path::Path,
    force: bool,
) -> Result<(PathBuf, PathBuf)> {
    write_pair(
        dir,
        id.public().name(),
        ("key", &id.encode()),
        ("pub", &id.public().encode()),
        force,
    )
}

/// Writes DIR/NAME.<secret ext> (mode 0600) and DIR/NAME.<public ext>
/// (0644), creating DIR; returns their paths.
fn write_pair(
    dir: &std::path::Path,
    name: &str,
    (secret_ext, secret): (&str, &[u8]),
    (public_ext, public): (&str, &[u8]),
    force: bool,
) -> Result<(PathBuf, PathBuf)> {
    fsio::create_private_dir(dir)?;
    let secret_path = dir.join(format!("{name}.{secret_ext}"));
    let public_path = dir.join(format!("{name}.{public_ext}"));
    fsio::write_atomic(&secret_path, secret, Mode::Secret, force)?;
    fsio::write_atomic(&public_path, public, Mode::Public, force)?;
    Ok((secret_path, public_path))
}
