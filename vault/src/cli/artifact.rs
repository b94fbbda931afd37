//! `vault artifact`: pack, sign, verify and inspect model artifacts.
//!
//! An artifact directory holds `payload.safetensors` (the tensors, copied
//! by `pack`), `artifact.pqvd` (the unsigned draft `pack` writes) and
//! `artifact.pqva` (the signed manifest `sign` writes). See
//! docs/artifacts.md.

use super::{load_key, now_unix, read};
use anyhow::{Context, Result};
use serde_json::json;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use vault::artifact::quant::{MetaFile, Reset};
use vault::artifact::{
    check_payload, check_payload_body, pack, ArtifactBody, SignedArtifact, TrustPolicy,
    DEFAULT_CHUNK_SIZE, MAX_MANIFEST_LEN,
};
use vault::fsio::{self, Mode};

/// Payload file name inside an artifact directory.
pub const PAYLOAD_FILE: &str = "payload.safetensors";
/// Unsigned draft file name.
pub const DRAFT_FILE: &str = "artifact.pqvd";
/// Signed manifest file name.
pub const MANIFEST_FILE: &str = "artifact.pqva";
/// Largest `meta.toml` read.
const MAX_META_FILE: u64 = 16 << 20;

/// Arguments of `vault artifact`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Build an artifact directory from a safetensors file and meta.toml
    /// (refuses metadata inconsistent with the tensors).
    Pack(PackArgs),
    /// meta.toml helpers: `init` writes one with every field the tensors
    /// determine filled in.
    Meta(super::artifact_tools::MetaArgs),
    /// Sign the draft in an artifact directory with a publisher key.
    Sign(SignArgs),
    /// Verify an artifact directory: signature, trust policy, expiry,
    /// payload digest and chunks, metadata, golden check.
    Verify(VerifyArgs),
    /// Describe an artifact directory, manifest or draft.
    Inspect(InspectArgs),
    /// Compute the golden check's expected spike counts for an input (the
    /// integer LIF pass the payload check runs); prints a [golden] table.
    Golden(super::artifact_tools::GoldenArgs),
    /// Push an artifact directory to a validator's application port
    /// (manifest, then the chunks it lacks; each verified on arrival).
    Push(super::artifact_net::PushArgs),
    /// Download an artifact from a validator's application port and verify
    /// it against a trust policy before writing it.
    Pull(super::artifact_net::PullArgs),
    /// Abandon a partial artifact on a validator (space released), with a
    /// statement signed by the artifact's publisher.
    Abandon(super::artifact_net::AbandonArgs),
}

/// Arguments of `vault artifact pack`.
#[derive(clap::Args)]
struct PackArgs {
    /// The safetensors file (I8 or packed-int4 U8 weights, F32 scales).
    #[arg(long, value_name = "FILE")]
    tensors: PathBuf,
    /// The metadata file (meta.toml, docs/artifacts.md).
    #[arg(long, value_name = "FILE")]
    meta: PathBuf,
    /// Chunk size in bytes (65536..=16777216).
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    chunk_size: u32,
    /// Output directory (created; existing artifact files are not replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also sign with this publisher key (writes artifact.pqva).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
}

/// Arguments of `vault artifact sign`.
#[derive(clap::Args)]
struct SignArgs {
    /// Publisher secret key.
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Replace an existing artifact.pqva.
    #[arg(long)]
    force: bool,
    /// Artifact directory (holding artifact.pqvd and payload.safetensors).
    dir: PathBuf,
}

/// Arguments of `vault artifact verify`.
#[derive(clap::Args)]
struct VerifyArgs {
    /// Trust policy (trust.toml).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The version held now: refuse any version that is not newer than it
    /// (older, or equal: a version number alone cannot tell the same
    /// artifact from other content under that version).
    #[arg(long, value_name = "VERSION")]
    held: Option<String>,
    /// Artifact directory.
    dir: PathBuf,
}

/// Arguments of `vault artifact inspect`.
#[derive(clap::Args)]
struct InspectArgs {
    /// Artifact directory, artifact.pqva or artifact.pqvd.
    path: PathBuf,
    /// Machine-readable JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs one `vault artifact` subcommand.
pub fn run(a: Args) -> Result<()> {
    match a.command {
        Command::Pack(a) => run_pack(a),
        Command::Meta(a) => super::artifact_tools::run_meta(a),
        Command::Golden(a) => super::artifact_tools::run_golden(a),
        Command::Sign(a) => run_sign(a),
        Command::Verify(a) => run_verify(a),
        Command::Inspect(a) => run_inspect(a),
        Command::Push(a) => super::artifact_net::run_push(a),
        Command::Pull(a) => super::artifact_net::run_pull(a),
        Command::Abandon(a) => super::artifact_net::run_abandon(a),
    }
}

/// Copies `src` to `dst` atomically without holding it in memory: a temp
/// file beside `dst`, fsync, link into place (never replacing `dst`),
/// directory fsync.
fn copy_atomic(src: &Path, dst: &Path) -> Result<()> {
    let dir = dst.parent().unwrap_or(Path::new("."));
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| anyhow::anyhow!("rng failure"))?;
    let tmp = dir.join(format!(".{PAYLOAD_FILE}.tmp-{}", hex::encode(suffix)));
    let result = (|| -> Result<()> {
        let mut from = File::open(src).with_context(|| format!("cannot open {}", src.display()))?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        io::copy(&mut from, &mut to).with_context(|| format!("cannot copy {}", src.display()))?;
        to.flush()?;
        to.sync_all()
            .with_context(|| format!("cannot fsync {}", tmp.display()))?;
        fs::hard_link(&tmp, dst).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} already exists; refusing to overwrite it", dst.display())
            } else {
                anyhow::anyhow!("cannot link {}: {e}", dst.display())
            }
        })?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    result
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn run_pack(a: PackArgs) -> Result<()> {
    let text = String::from_utf8(read(&a.meta, MAX_META_FILE)?)
        .with_context(|| format!("{} is not UTF-8", a.meta.display()))?;
    let meta = MetaFile::parse(&text).with_context(|| format!("{}", a.meta.display()))?;
    // Check before writing anything, so a refused pack leaves no files.
    let body = pack(open(&a.tensors)?, &meta, a.chunk_size, now_unix())
        .with_context(|| format!("{} with {}", a.tensors.display(), a.meta.display()))?;
    let key = a.sign.as_deref().map(load_key).transpose()?;
    if key.is_some() {
        refuse_expired(&body)?;
    }
    fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let payload = a.out.join(PAYLOAD_FILE);
    copy_atomic(&a.tensors, &payload)?;
    // The copy is what ships: check it against the body again.
    check_payload_body(&body, open(&payload)?)
        .with_context(|| format!("{} changed while packing", a.tensors.display()))?;
    fsio::write_atomic(
        &a.out.join(DRAFT_FILE),
        &body.encode_draft()?,
        Mode::Public,
        false,
    )?;
    println!(
        "packed {} {}: {} bytes in {} chunks of {} bytes, {} layers{}",
        body.name,
        body.version,
        body.payload_len,
        body.chunks.len(),
        body.chunk_size,
        body.quant.layers.len(),
        if body.quant.golden.is_some() {
            ", golden check passes"
        } else {
            ""
        }
    );
    if let Some(key) = key {
        let signed = SignedArtifact::sign(&body, &key)?;
        fsio::write_atomic(
            &a.out.join(MANIFEST_FILE),
            &signed.encode(),
            Mode::Public,
            false,
        )?;
        println!(
            "signed by {} ({}); manifest digest {}",
            key.public().name(),
            key.public().fingerprint().short(),
            hex::encode(signed.digest())
        );
    }
    Ok(())
}

/// Refuses to sign a manifest whose expiry has already passed: every
/// validator would refuse it, and it would only look like a valid release.
fn refuse_expired(body: &ArtifactBody) -> Result<()> {
    let now = now_unix();
    match body.expires_unix {
        Some(e) if e <= now => anyhow::bail!(
            "{} {}: expires = {e} is not in the future (now {now}); a manifest signed \
             already expired is refused by every validator: set a later expiry",
            body.name,
            body.version
        ),
        _ => Ok(()),
    }
}

fn run_sign(a: SignArgs) -> Result<()> {
    let draft_path = a.dir.join(DRAFT_FILE);
    let body = ArtifactBody::decode_draft(&read(&draft_path, MAX_MANIFEST_LEN as u64)?)
        .with_context(|| format!("{}", draft_path.display()))?;
    let payload = a.dir.join(PAYLOAD_FILE);
    check_payload_body(&body, open(&payload)?)
        .with_context(|| format!("{} does not match the draft", payload.display()))?;
    let key = load_key(&a.key)?;
    refuse_expired(&body)?;
    let signed = SignedArtifact::sign(&body, &key)?;
    fsio::write_atomic(
        &a.dir.join(MANIFEST_FILE),
        &signed.encode(),
        Mode::Public,
        a.force,
    )?;
    println!(
        "signed {} {} by {} ({}); manifest digest {}",
        body.name,
        body.version,
        key.public().name(),
        key.public().fingerprint().short(),
        hex::encode(signed.digest())
    );
    Ok(())
}

fn run_verify(a: VerifyArgs) -> Result<()> {
    let policy = TrustPolicy::load(&a.policy).with_context(|| format!("{}", a.policy.display()))?;
    let path = a.dir.join(MANIFEST_FILE);
    let signed = SignedArtifact::decode(&read(&path, MAX_MANIFEST_LEN as u64)?)
        .with_context(|| format!("{}", path.display()))?;
    let v = signed
        .verify(&policy, now_unix())
        .with_context(|| format!("{}", path.display()))?;
    if let Some(h) = &a.held {
        let held = vault::artifact::manifest::parse_version(h).context("--held")?;
        vault::artifact::check_not_rollback(&v, Some(&held))?;
    }
    let payload = a.dir.join(PAYLOAD_FILE);
    check_payload(&v, open(&payload)?).with_context(|| format!("{}", payload.display()))?;
    println!(
        "artifact ok: {} {} by {} ({}), {} bytes, {} chunks, manifest digest {}{}",
        v.name(),
        v.version(),
        v.publisher_name(),
        v.publisher().fingerprint().short(),
        v.payload_len(),
        v.chunks().len(),
        hex::encode(v.manifest_digest()),
        if v.body().quant.golden.is_some() {
            ", golden check passes"
        } else {
            ""
        }
    );
    Ok(())
}

fn describe(body: &ArtifactBody, signed: Option<&SignedArtifact>) -> serde_json::Value {
    let layers: Vec<_> = body
        .quant
        .layers
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "weight": l.weight,
                "scale": l.scale,
                "bits": l.bits,
                "inputs": l.inputs,
                "outputs": l.outputs,
                "weight_scheme": "per-channel-symmetric",
                "weight_zero_point": l.weight_zero_point,
                "activation_scheme": "per-tensor-symmetric",
                "activation_scale": l.activation_scale,
                "activation_zero_point": l.activation_zero_point,
                "beta": l.beta,
                "threshold": l.threshold,
                "reset": match l.reset { Reset::Subtract => "subtract", Reset::Zero => "zero" },
            })
        })
        .collect();
    let mut v = json!({
        "kind": if signed.is_some() { "artifact manifest" } else { "artifact draft (unsigned)" },
        "format_version": body.format_version,
        "name": body.name,
        "version": body.version.to_string(),
        "created_unix": body.created_unix,
        "expires_unix": body.expires_unix,
        "payload_len": body.payload_len,
        "payload_digest": hex::encode(body.payload_digest),
        "chunk_size": body.chunk_size,
        "chunk_count": body.chunks.len(),
        "layers": layers,
        "golden": body.quant.golden.as_ref().map(|g| json!({
            "timesteps": g.timesteps,
            "inputs": body.quant.inputs(),
            "expected": g.expected,
        })),
    });
    if let Some(s) = signed {
        v["manifest_digest"] = json!(hex::encode(s.digest()));
        v["publisher"] = json!({
            "name": s.publisher().name(),
            "fingerprint": s.publisher().fingerprint().to_hex(),
            "verified": false,
        });
    }
    v
}

fn run_inspect(a: InspectArgs) -> Result<()> {
    let path = if a.path.is_dir() {
        let m = a.path.join(MANIFEST_FILE);
        if m.exists() {
            m
        } else {
            a.path.join(DRAFT_FILE)
        }
    } else {
        a.path.clone()
    };
    let bytes = read(&path, MAX_MANIFEST_LEN as u64)?;
    let v = if bytes.starts_with(b"PQVD") {
        describe(
            &ArtifactBody::decode_draft(&bytes).with_context(|| format!("{}", path.display()))?,
            None,
        )
    } else {
        let s = SignedArtifact::decode(&bytes).with_context(|| format!("{}", path.display()))?;
        describe(s.body(), Some(&s))
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let s = |k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("{}", s("kind"));
    for k in [
        "format_version",
        "name",
        "version",
        "created_unix",
        "expires_unix",
        "payload_len",
        "payload_digest",
        "chunk_size",
        "chunk_count",
        "manifest_digest",
    ] {
        if !v[k].is_null() || k == "expires_unix" {
            println!("  {k:<16} {}", s(k));
        }
    }
    if let Some(p) = v.get("publisher") {
        println!(
            "  publisher        {} {} (signature not checked: use verify --policy)",
            p["name"].as_str().unwrap_or("?"),
            p["fingerprint"].as_str().unwrap_or("?")
        );
    }
    for l in v["layers"].as_array().into_iter().flatten() {
        println!(
            "  layer {:<10} {} -> {} int{} weight {} scale {} beta {} threshold {} reset {}",
            l["name"].as_str().unwrap_or("?"),
            l["inputs"],
            l["outputs"],
            l["bits"],
            l["weight"],
            l["scale"],
            l["beta"],
            l["threshold"],
            l["reset"].as_str().unwrap_or("?"),
        );
    }
    match &v["golden"] {
        serde_json::Value::Null => println!("  golden           none"),
        g => println!(
            "  golden           {} timesteps, expected counts {}",
            g["timesteps"], g["expected"]
        ),
    }
    Ok(())
}
