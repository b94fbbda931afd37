//! Subcommand implementations and the file helpers they share.

pub mod artifact;
pub mod artifact_net;
pub mod artifact_tools;
pub mod backup;
pub mod create;
pub mod demo;
pub mod inspect;
pub mod keygen;
pub mod mesh;
pub mod meshca;
pub mod policy;
pub mod quickstart;
pub mod recover;
pub mod restore;
pub mod unseal;
pub mod verify;

use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
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

/// Reads a secret to share or back up from a file, or from stdin for "-";
/// at most [`vault::share::MAX_SECRET_LEN`] bytes.
pub fn read_secret(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    use vault::share::MAX_SECRET_LEN;
    if path.as_os_str() == "-" {
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        std::io::stdin()
            .take(MAX_SECRET_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read the secret from stdin")?;
        return Ok(buf);
    }
    Ok(zeroize::Zeroizing::new(read(path, MAX_SECRET_LEN as u64)?))
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

/// A key that opens sealed shards: an identity (`NAME.key`) or an initial
/// KEM key (`NAME.ikey`) that genesis shards may be sealed to.
pub enum ShardKey {
    /// A `PQVK` identity.
    Identity(SecretIdentity),
    /// A `PQVO` initial key.
    Initial(vault::epoch_key::EpochKey),
}

impl ShardKey {
    /// Reads either kind, told apart by its magic.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = zeroize::Zeroizing::new(read(path, MAX_SMALL_FILE)?);
        if bytes.starts_with(&vault::initial_key::SECRET_KIND.magic) {
            let (_, k) = vault::initial_key::decode_secret(&bytes)
                .with_context(|| format!("{}", path.display()))?;
            return Ok(ShardKey::Initial(k));
        }
        load_key(path).map(ShardKey::Identity)
    }

    /// Opens `shard` with this key.
    pub fn open(
        &self,
        shard: &vault::seal::SealedShard,
    ) -> Result<vault::share::ShareRecord, vault::seal::SealError> {
        match self {
            ShardKey::Identity(k) => shard.open(k),
            ShardKey::Initial(k) => shard.open_with_epoch_key(k),
        }
    }
}

/// The initial KEM key `vault keygen` published beside each identity in
/// `paths` (`NAME.ipub` next to `NAME.pub`), verified against that
/// identity; `None` for an identity made without one.
pub fn load_initial_keys(
    paths: &[PathBuf],
    identities: &[PublicIdentity],
) -> Result<Vec<Option<vault::epoch_key::EpochPublicKey>>> {
    paths
        .iter()
        .zip(identities)
        .map(|(path, who)| {
            let ipub = path.with_extension("ipub");
            if !ipub.exists() {
                return Ok(None);
            }
            vault::initial_key::verify_public(&read(&ipub, MAX_SMALL_FILE)?, who)
                .map(Some)
                .with_context(|| format!("{}", ipub.display()))
        })
        .collect()
}

/// Loads and verifies a manifest, pinning the signer when `trust` is given.
pub fn load_manifest(path: &Path, trust: Option<&Path>) -> Result<VerifiedManifest> {
    let pinned = trust.map(load_public).transpose()?.map(|p| p.fingerprint());
    let m = Manifest::decode(&read(path, MAX_SMALL_FILE)?)
        .with_context(|| format!("{}", path.display()))?;
    m.verify(pinned.as_ref())
        .with_context(|| format!("{}", path.display()))
}

/// Loads the manifest of a later epoch and proves it through `chain`: a
/// directory with the operator-signed `anchor.pqvm` and the certified steps
/// `step-K.pqvm` + `step-K.pqve` (an epoch directory copied from any
/// validator's store, or what `GET /v1/vaults/{v}/proof` returns, unpacked).
/// The anchor must be signed by `trust`; every step must be certified by a
/// quorum of the previous epoch; `path` must be the chain's last manifest.
pub fn load_manifest_via_chain(
    path: &Path,
    trust: Option<&Path>,
    chain: &Path,
) -> Result<VerifiedManifest> {
    let Some(trust) = trust else {
        anyhow::bail!("--chain needs --trust: the chain is only as good as its anchor's signer");
    };
    let anchor_path = chain.join("anchor.pqvm");
    let genesis = load_manifest(&anchor_path, Some(trust))?;
    let mut steps = Vec::new();
    let mut k = genesis.body().epoch + 1;
    loop {
        let (m, c) = (
            chain.join(format!("step-{k}.pqvm")),
            chain.join(format!("step-{k}.pqve")),
        );
        if !m.exists() {
            break;
        }
        let cert = vault::epoch::EpochCertificate::decode(&read(&c, MAX_SMALL_FILE)?)
            .with_context(|| format!("{}", c.display()))?;
        steps.push((read(&m, MAX_SMALL_FILE)?, cert));
        k += 1;
    }
    // The operator's policy, when the chain came with one (`vault mesh
    // fetch` writes it): certificates count under its f, as validators
    // count them.
    let policy_path = chain.join("policy.pqvl");
    let policy = if policy_path.exists() {
        let operator = vault::identity::PublicIdentity::decode(&read(trust, MAX_SMALL_FILE)?)
            .with_context(|| format!("{}", trust.display()))?
            .fingerprint();
        let p = vault::governance::TransitionPolicy::open(
            &read(&policy_path, MAX_SMALL_FILE)?,
            &operator,
        )
        .with_context(|| format!("{}", policy_path.display()))?;
        if p.vault_id != genesis.body().vault_id {
            anyhow::bail!("{} is the policy of another vault", policy_path.display());
        }
        Some(p)
    } else {
        None
    };
    let last =
        vault::epoch::verify_chain_with(genesis, &steps, |from| policy.map_or(0, |p| p.f_at(from)))
            .with_context(|| format!("epoch chain in {}", chain.display()))?;
    let given = Manifest::decode(&read(path, MAX_SMALL_FILE)?)
        .with_context(|| format!("{}", path.display()))?;
    if given.digest() != last.digest() {
        anyhow::bail!(
            "{} is not the last manifest of the chain in {} (which ends at epoch {})",
            path.display(),
            chain.display(),
            last.body().epoch
        );
    }
    Ok(last)
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
