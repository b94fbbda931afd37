//! `vault mesh-ca init | issue`.

use super::read;
use anyhow::{Context, Result};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use vault::fsio::{self, Mode};
use vault::meshca;

/// Arguments of `vault mesh-ca`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create the mesh CA: DIR/mesh-ca.crt (share with validators) and DIR/mesh-ca.key (0600; keep offline).
    Init {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// CA common name.
        #[arg(long, default_value = "pqvault mesh CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue a member's TLS certificate, bound to its pqvault identity: OUT/ID.crt and OUT/ID.tls.key (0600).
    Issue {
        /// Directory holding mesh-ca.crt and mesh-ca.key.
        #[arg(long)]
        ca: PathBuf,
        /// Validator id (a DNS label: a-z 0-9 -), carried in the SAN as urn:pqvault:validator:ID.
        #[arg(long)]
        id: String,
        /// The member's public identity (ID.pub from `vault keygen`); its fingerprint goes into the SAN as urn:pqvault:identity:FP, and peers believe no other.
        #[arg(long)]
        identity: PathBuf,
        /// validator (holds shards, votes, helps) or operator (read-only status and recovery requests).
        #[arg(long, default_value = "validator")]
        role: meshca::Role,
        /// Extra DNS names peers dial (repeatable), e.g. pod DNS in Kubernetes.
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP addresses peers dial (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `vault mesh-ca`.
pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Init { out, name, days } => {
            let ca = meshca::init(&name, days)?;
            write_ca(&ca, &out)?;
            println!(
                "mesh CA      {} (valid {days} days)",
                out.join("mesh-ca.crt").display()
            );
            println!(
                "CA key       {} (mode 0600; keep it offline)",
                out.join("mesh-ca.key").display()
            );
        }
        Command::Issue {
            ca,
            id,
            identity,
            role,
            dns,
            ips,
            days,
            out,
        } => {
            let public = vault::identity::PublicIdentity::decode(&read(&identity, 1 << 20)?)
                .with_context(|| format!("{} is not a public identity", identity.display()))?;
            let fp = public.fingerprint();
            let ca_cert = String::from_utf8(read(&ca.join("mesh-ca.crt"), 1 << 20)?)
                .context("mesh-ca.crt is not text")?;
            let ca_key = zeroize::Zeroizing::new(
                String::from_utf8(read(&ca.join("mesh-ca.key"), 1 << 20)?)
                    .context("mesh-ca.key is not text")?,
            );
            let issued = meshca::issue(&ca_cert, &ca_key, &id, &fp, role, &dns, &ips, days)?;
            let (crt, key) = write_issued(&issued, &out, &id)?;
            println!(
                "certificate  {} (SAN {}{id}, {} {}, identity {}, valid {days} days)",
                crt.display(),
                meshca::VALIDATOR_URI_PREFIX,
                meshca::ROLE_URI_PREFIX,
                role.name(),
                fp.short()
            );
            println!("TLS key      {} (mode 0600)", key.display());
        }
    }
    Ok(())
}

/// Writes a new mesh CA into `dir`: `mesh-ca.crt` and `mesh-ca.key` (0600).
pub fn write_ca(ca: &meshca::CertAndKey, dir: &Path) -> Result<()> {
    fsio::create_private_dir(dir)?;
    fsio::write_atomic(
        &dir.join("mesh-ca.key"),
        ca.key_pem.as_bytes(),
        Mode::Secret,
        false,
    )?;
    fsio::write_atomic(
        &dir.join("mesh-ca.crt"),
        ca.cert_pem.as_bytes(),
        Mode::Public,
        false,
    )?;
    Ok(())
}

/// Writes member `id`'s certificate and TLS key into `dir`: `ID.crt` and
/// `ID.tls.key` (0600); returns their paths.
pub fn write_issued(
    issued: &meshca::CertAndKey,
    dir: &Path,
    id: &str,
) -> Result<(PathBuf, PathBuf)> {
    fsio::create_private_dir(dir)?;
    let key = dir.join(format!("{id}.tls.key"));
    let crt = dir.join(format!("{id}.crt"));
    fsio::write_atomic(&key, issued.key_pem.as_bytes(), Mode::Secret, false)?;
    fsio::write_atomic(&crt, issued.cert_pem.as_bytes(), Mode::Public, false)?;
    Ok((crt, key))
}
