//! `vault mesh fetch`: the operator's copy of a vault's public chain, from
//! the validators over the peer API. Each validator's `PQVC` proof chain
//! (`GET /v1/vaults/{vault}/proof`) is verified from the operator's
//! signature on the anchor, its certificates counted under the newest
//! operator-signed policy any validator holds (`GET
//! /v1/vaults/{vault}/policy`, `PQVL`: with f > 0 a certificate needs
//! `max(t, ceil((n + f + 1) / 2))` signers); the longest verified one is
//! written as the files `vault recover --chain` reads (with the policy as
//! `policy.pqvl`), for audit and recovery.

use super::client::{get, Conn, Targets};
use anyhow::{bail, Context, Result};
use rustls::ClientConfig;
use std::path::PathBuf;
use std::sync::Arc;
use vault::epoch::EpochCertificate;
use vault::governance::TransitionPolicy;
use vault::identity::{Fingerprint, PublicIdentity};
use vault::manifest::{Manifest, VerifiedManifest};

/// The longest verified chain: from whom, anchor, steps, and its current
/// manifest, verified from the operator's signature.
pub struct Chain {
    /// The validator that served it.
    pub from: String,
    /// The operator-signed anchor manifest.
    pub anchor: Vec<u8>,
    /// Certified steps after the anchor.
    pub steps: vault::chain::Steps,
    /// The current manifest, verified through every step.
    pub current: VerifiedManifest,
    /// The operator-signed policy its certificates were counted under.
    pub policy: Option<(Vec<u8>, TransitionPolicy)>,
}

/// Largest proof chain read (a long chain of manifests and certificates).
const MAX_PROOF: u64 = 16 << 20;

/// Arguments of `vault mesh fetch`.
#[derive(clap::Args)]
pub struct FetchArgs {
    #[command(flatten)]
    conn: Conn,
    /// The vault (32 hex digits) [the only vault of DIR's `vault/`].
    #[arg(long)]
    vault: Option<String>,
    /// The operator's public identity, which signed the vault's genesis
    /// [DIR/keys/operator.pub].
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// New directory for the chain: `anchor.pqvm`, `step-K.pqvm` and
    /// `step-K.pqve` per certified epoch, and the current `manifest.pqvm`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `vault mesh fetch`.
pub fn run(a: FetchArgs) -> Result<()> {
    let trust = match (&a.trust, &a.conn.dir) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.join("keys/operator.pub"),
        (None, None) => bail!("give --trust (the operator's public identity) or a local mesh DIR"),
    };
    let operator = PublicIdentity::decode(
        &std::fs::read(&trust).with_context(|| format!("{}", trust.display()))?,
    )
    .with_context(|| format!("{}", trust.display()))?
    .fingerprint();
    let vault = match (&a.vault, &a.conn.dir) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => only_vault(d)?,
        (None, None) => bail!("give --vault ID or a local mesh DIR"),
    };
    if vault.len() != 32 || !vault.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--vault {vault:?}: a vault id is 32 hex digits");
    }
    if a.out.exists() {
        bail!("{} exists; give a new directory", a.out.display());
    }
    let (config, targets) = a.conn.resolve()?;
    let Chain {
        from,
        anchor,
        steps,
        current,
        policy,
    } = longest_chain(&config, &targets, &vault, &operator, &mut std::io::stdout())?;
    let epoch = current.body().epoch;
    let first = Manifest::decode(&anchor)?.body().epoch + 1;
    vault::chain::write_dir(&a.out, &anchor, first, &steps)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if let Some((bytes, _)) = &policy {
        let p = a.out.join("policy.pqvl");
        vault::fsio::write_atomic(&p, bytes, vault::fsio::Mode::Public, false)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!(
        "wrote the chain of vault {vault} to epoch {epoch} (from {from}) to {}; recover with\n  vault recover --manifest {0}/manifest.pqvm --chain {0} --trust {1} {2}",
        a.out.display(),
        trust.display(),
        if epoch > 1 {
            // Shards after epoch 1 are sealed to their holders' epoch keys.
            "--share ... (shares the holders' operators unsealed), or through the holders: vault mesh recover"
        } else {
            "--keys-dir ... --shard ..."
        }
    );
    Ok(())
}

/// Fetches `vault`'s chain from every target, verifies each from the
/// `operator`'s signature, reports each validator on `report`, and returns
/// the longest verified one.
pub fn longest_chain(
    config: &Arc<ClientConfig>,
    targets: &Targets,
    vault: &str,
    operator: &Fingerprint,
    report: &mut dyn std::io::Write,
) -> Result<Chain> {
    let policy = newest_policy(config, targets, vault, operator);
    match &policy {
        Some((_, p)) => writeln!(
            report,
            "policy version {} (f = {} from epoch {}), signed by the operator: certificates counted under it",
            p.version, p.f, p.effective_from
        )?,
        None => writeln!(
            report,
            "no validator holds a signed policy: certificates counted at f = 0"
        )?,
    }
    let f_at = |from: u64| policy.as_ref().map_or(0, |(_, p)| p.f_at(from));
    let path = format!("/v1/vaults/{vault}/proof");
    let mut best: Option<Chain> = None;
    for (id, addr) in targets {
        let chain = get(config, id, *addr, &path, MAX_PROOF).and_then(|bytes| {
            let (anchor, steps) = vault::chain::decode_proof(&bytes)?;
            let genesis = Manifest::decode(&anchor)?.verify(Some(operator))?;
            let certified = steps
                .iter()
                .map(|(m, c)| Ok((m.clone(), EpochCertificate::decode(c)?)))
                .collect::<Result<Vec<_>>>()?;
            let current = vault::epoch::verify_chain_with(genesis, &certified, f_at)?;
            Ok(Chain {
                from: id.clone(),
                anchor,
                steps,
                current,
                policy: policy.clone(),
            })
        });
        match chain {
            Ok(c) => {
                let epoch = c.current.body().epoch;
                writeln!(
                    report,
                    "{id:<13} epoch {epoch} (chain verified from the operator's signature)"
                )?;
                if best.as_ref().is_none_or(|b| epoch > b.current.body().epoch) {
                    best = Some(c);
                }
            }
            Err(e) => writeln!(report, "{id:<13} no verified chain: {e:#}")?,
        }
    }
    best.ok_or_else(|| anyhow::anyhow!("no validator served a verified chain of vault {vault}"))
}

/// The newest policy of `vault` any target serves that the `operator`
/// signed (a validator can withhold a newer one, never forge one).
fn newest_policy(
    config: &Arc<ClientConfig>,
    targets: &Targets,
    vault: &str,
    operator: &Fingerprint,
) -> Option<(Vec<u8>, TransitionPolicy)> {
    let path = format!("/v1/vaults/{vault}/policy");
    targets
        .iter()
        .filter_map(|(id, addr)| {
            let bytes = get(config, id, *addr, &path, 64 << 10).ok()?;
            let p = TransitionPolicy::open(&bytes, operator).ok()?;
            (p.vault_id.to_string() == vault.to_ascii_lowercase()).then_some((bytes, p))
        })
        .max_by_key(|(_, p)| p.version)
}

/// The vault of a local mesh: its `vault/manifest.pqvm`.
pub fn only_vault(dir: &std::path::Path) -> Result<String> {
    let p = dir.join("vault/manifest.pqvm");
    let m = Manifest::decode(
        &std::fs::read(&p).with_context(|| format!("{} (or give --vault)", p.display()))?,
    )
    .with_context(|| format!("{}", p.display()))?;
    Ok(m.body().vault_id.to_string())
}
