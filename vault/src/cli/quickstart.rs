//! `vault quickstart`: the README's first command, with no external services.

use super::create::{shard_path, write_vault};
use super::keygen::write_identity;
use super::now_unix;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use subtle::ConstantTimeEq;
use vault::create::{create, NewVault};
use vault::identity::SecretIdentity;
use vault::manifest::Manifest;
use vault::policy::{Policy, ThresholdSpec};
use vault::recover::{recover, Candidate};

/// Arguments of `vault quickstart`.
#[derive(clap::Args)]
pub struct Args {
    /// Empty (or missing) directory to work in.
    dir: PathBuf,
    /// Number of validators.
    #[arg(long, default_value_t = 7)]
    validators: u8,
}

/// Runs the demo end to end and prints each step.
pub fn run(a: Args) -> Result<()> {
    if a.dir.exists() && std::fs::read_dir(&a.dir)?.next().is_some() {
        bail!(
            "{} is not empty; quickstart needs an empty directory",
            a.dir.display()
        );
    }
    let keys_dir = a.dir.join("keys");
    let vault_dir = a.dir.join("vault");

    let t0 = Instant::now();
    let operator = SecretIdentity::generate("operator")?;
    write_identity(&operator, &keys_dir, false)?;
    let mut validators = Vec::new();
    for i in 1..=a.validators {
        let v = SecretIdentity::generate(&format!("validator-{i}"))?;
        write_identity(&v, &keys_dir, false)?;
        validators.push(v);
    }
    println!(
        "1. made {} validator identities and an operator identity in {} ({:.0?})",
        validators.len(),
        keys_dir.display(),
        t0.elapsed()
    );

    // Keep the secret in memory only to show that recovery returns it.
    let mut secret = zeroize::Zeroizing::new(vec![0u8; 32]);
    aws_lc_rs::rand::fill(&mut secret[..]).context("system RNG failed")?;
    let recipients: Vec<_> = validators.iter().map(|v| v.public().clone()).collect();
    let t1 = Instant::now();
    let created = create(&NewVault {
        initial_keys: &[],
        secret: Some(&secret),
        recipients: &recipients,
        threshold: ThresholdSpec::Auto(Policy::Majority),
        signer: &operator,
        created_unix: now_unix(),
    })?;
    let took = t1.elapsed();
    write_vault(&created, &vault_dir)?;
    println!(
        "2. created vault {}: 32-byte random secret split {} of {} (policy majority), each shard sealed to one validator \
         with x25519 + ML-KEM-768 + HQC-192, manifest signed with Ed25519 + ML-DSA-65 ({:.0?})",
        created.vault_id, created.threshold, created.n, took
    );
    println!("   files in {}", vault_dir.display());

    let manifest =
        Manifest::decode(&created.manifest)?.verify(Some(&operator.public().fingerprint()))?;
    let t = usize::from(created.threshold);
    // Use the last t shards, read back from disk.
    let chosen: Vec<usize> = (created.shards.len() - t..created.shards.len()).collect();
    let blobs: Vec<(String, Vec<u8>)> = chosen
        .iter()
        .map(|&i| {
            let s = &created.shards[i];
            let p = shard_path(&vault_dir, s.index, &s.recipient_name);
            std::fs::read(&p).map(|b| (p.display().to_string(), b))
        })
        .collect::<std::io::Result<_>>()?;
    let candidates: Vec<Candidate<'_>> = blobs
        .iter()
        .map(|(source, bytes)| Candidate::Sealed {
            source: source.clone(),
            bytes,
        })
        .collect();
    let t2 = Instant::now();
    let r = recover(&manifest, &candidates, &validators)?;
    if !bool::from(r.secret.ct_eq(&secret)) {
        bail!("recovered secret differs from the original");
    }
    println!(
        "3. recovered the secret from shards {:?} alone: it equals the original and matches the manifest's commitment ({:.0?})",
        r.used,
        t2.elapsed()
    );

    // Show that a tampered shard is named, not combined: offer a copy of
    // the first shard with one byte flipped, plus every other shard.
    let first = &created.shards[0];
    let mut tampered = first.bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let mut with_bad = vec![Candidate::Sealed {
        source: format!("shard {} with one byte flipped", first.index),
        bytes: &tampered,
    }];
    with_bad.extend(created.shards[1..].iter().map(|s| Candidate::Sealed {
        source: format!("shard {}", s.index),
        bytes: &s.bytes,
    }));
    let r2 = recover(&manifest, &with_bad, &validators)?;
    for bad in &r2.rejected {
        println!("4. rejected {}: {}", bad.source, bad.reason);
    }
    println!(
        "   and still recovered the same secret from the good shards {:?}",
        r2.used
    );
    println!(
        "done. Try: vault inspect {}   |   vault recover --manifest {} --trust {} --keys-dir {} --shard ...",
        vault_dir.join("manifest.pqvm").display(),
        vault_dir.join("manifest.pqvm").display(),
        keys_dir.join("operator.pub").display(),
        keys_dir.display()
    );
    Ok(())
}
