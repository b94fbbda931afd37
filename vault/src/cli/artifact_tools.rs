//! `vault artifact golden` and `vault artifact meta init`: what a publisher
//! would otherwise compute by hand (the golden spike counts, with the same
//! integer LIF the payload check runs; and the `meta.toml` fields the
//! tensors determine).

use super::artifact::{DRAFT_FILE, MANIFEST_FILE, PAYLOAD_FILE};
use super::read;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use vault::artifact::derive::{derive_layers, parse_spikes};
use vault::artifact::quant::{Golden, MetaFile, QuantMeta};
use vault::artifact::{ArtifactBody, SignedArtifact, MAX_MANIFEST_LEN};
use vault::fsio::{self, Mode};

/// Largest `meta.toml` or spike file read.
const MAX_TEXT: u64 = 16 << 20;

/// Arguments of `vault artifact golden`.
#[derive(clap::Args)]
pub struct GoldenArgs {
    /// Input spikes: one line per timestep, one `0`/`1` per input of the
    /// first layer (blank lines and `#` comments ignored).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// A packed artifact directory (its draft or signed manifest gives the
    /// layers); or use --tensors and --meta.
    #[arg(conflicts_with_all = ["tensors", "meta"], required_unless_present = "tensors")]
    dir: Option<PathBuf>,
    /// The safetensors file (with --meta: before packing).
    #[arg(long, value_name = "FILE", requires = "meta")]
    tensors: Option<PathBuf>,
    /// The meta.toml describing --tensors (its [golden] table is ignored).
    #[arg(long, value_name = "FILE", requires = "tensors")]
    meta: Option<PathBuf>,
}

/// Arguments of `vault artifact meta`.
#[derive(clap::Args)]
pub struct MetaArgs {
    #[command(subcommand)]
    command: MetaCommand,
}

#[derive(clap::Subcommand)]
enum MetaCommand {
    /// Write a meta.toml with every field the tensors determine filled in
    /// (layer and tensor names, bits, inputs, outputs, per-channel clip);
    /// the rest is set from the options or left for you to fill in.
    Init(MetaInitArgs),
}

/// Arguments of `vault artifact meta init`.
#[derive(clap::Args)]
#[command(disable_version_flag = true)]
struct MetaInitArgs {
    /// The safetensors file.
    #[arg(long, value_name = "FILE")]
    tensors: PathBuf,
    /// Model name.
    #[arg(long)]
    name: String,
    /// Version.
    #[arg(long = "version", value_name = "VERSION")]
    model_version: String,
    /// Membrane (activation) scale of every layer.
    #[arg(long)]
    activation_scale: Option<f64>,
    /// Leak factor of every layer.
    #[arg(long)]
    beta: Option<f64>,
    /// Threshold of every layer.
    #[arg(long)]
    threshold: Option<f64>,
    /// Reset of every layer: subtract or zero.
    #[arg(long, value_parser = ["subtract", "zero"])]
    reset: Option<String>,
    /// Where to write it (a new file; never overwritten).
    #[arg(long, value_name = "FILE", default_value = "meta.toml")]
    out: PathBuf,
}

/// `vault artifact meta ...`.
pub fn run_meta(a: MetaArgs) -> Result<()> {
    match a.command {
        MetaCommand::Init(a) => run_meta_init(a),
    }
}

fn open(path: &Path) -> Result<(File, u64)> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata()?.len();
    Ok((f, len))
}

/// The layers of an artifact directory (signed manifest, else draft).
fn dir_quant(dir: &Path) -> Result<QuantMeta> {
    let m = dir.join(MANIFEST_FILE);
    let body = if m.exists() {
        SignedArtifact::decode(&read(&m, MAX_MANIFEST_LEN as u64)?)
            .with_context(|| format!("{}", m.display()))?
            .body()
            .clone()
    } else {
        let d = dir.join(DRAFT_FILE);
        ArtifactBody::decode_draft(&read(&d, MAX_MANIFEST_LEN as u64)?)
            .with_context(|| format!("{}", d.display()))?
    };
    Ok(body.quant)
}

/// `vault artifact golden`.
pub fn run_golden(a: GoldenArgs) -> Result<()> {
    let (mut quant, tensors) = match (&a.dir, &a.tensors, &a.meta) {
        (Some(dir), _, _) => (dir_quant(dir)?, dir.join(PAYLOAD_FILE)),
        (None, Some(t), Some(m)) => {
            let text = String::from_utf8(read(m, MAX_TEXT)?)
                .with_context(|| format!("{} is not UTF-8", m.display()))?;
            let mut meta = MetaFile::parse(&text).with_context(|| format!("{}", m.display()))?;
            meta.golden = None;
            (
                meta.quant().with_context(|| format!("{}", m.display()))?,
                t.clone(),
            )
        }
        _ => bail!("give an artifact directory, or --tensors and --meta"),
    };
    let text = String::from_utf8(read(&a.input, MAX_TEXT)?)
        .with_context(|| format!("{} is not UTF-8", a.input.display()))?;
    let (timesteps, input) = parse_spikes(&text, quant.inputs() as usize)
        .with_context(|| format!("{}", a.input.display()))?;
    let outputs = quant.layers.last().map_or(0, |l| l.outputs as usize);
    quant.golden = Some(Golden {
        timesteps,
        input: input.clone(),
        expected: vec![0; outputs],
    });
    let (mut f, len) = open(&tensors)?;
    let counts = vault::artifact::payload::golden_counts(&quant, &mut f, len)
        .with_context(|| format!("{}", tensors.display()))?
        .unwrap_or_default();
    let inputs = quant.inputs() as usize;
    let mut out = String::from("[golden]\ninput = [\n");
    for row in input.chunks(inputs.max(1)) {
        let s: String = row.iter().map(|&b| if b { '1' } else { '0' }).collect();
        let _ = writeln!(out, "  \"{s}\",");
    }
    let exp: Vec<String> = counts.iter().map(u32::to_string).collect();
    let _ = writeln!(out, "]\nexpected = [{}]", exp.join(", "));
    print!("{out}");
    Ok(())
}

fn run_meta_init(a: MetaInitArgs) -> Result<()> {
    vault::artifact::manifest::check_model_name(&a.name).context("--name")?;
    vault::artifact::manifest::parse_version(&a.model_version).context("--version")?;
    let (mut f, len) = open(&a.tensors)?;
    let layers = derive_layers(&mut f, len).with_context(|| format!("{}", a.tensors.display()))?;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `vault artifact meta init --tensors {}`: every field the\n\
         # tensors determine is filled in; fields marked REQUIRED are not in the\n\
         # tensors and must be set before `vault artifact pack` (docs/artifacts.md).",
        a.tensors.display()
    );
    let _ = writeln!(
        t,
        "name = {:?}\nversion = {:?}\n# created = <Unix seconds> (default: when packed)\n# expires = <Unix seconds> (default: never)\n",
        a.name, a.model_version
    );
    let f64s = |v: f64| format!("{v:?}");
    let or_required = |key: &str, v: Option<String>, what: &str| match v {
        Some(v) => format!("{key} = {v}\n"),
        None => format!("# {key} = REQUIRED: {what}\n"),
    };
    for l in &layers {
        let clip: Vec<String> = l.clip.iter().map(|&c| f64s(f64::from(c))).collect();
        let _ = writeln!(
            t,
            "[[layer]]\nname = {:?}\nweight = {:?}\nscale = {:?}\nbits = {}\ninputs = {}{}\noutputs = {}\n\
             weight_scheme = \"per-channel-symmetric\"\nweight_zero_point = 0\nclip = [{}]\n\
             activation_scheme = \"per-tensor-symmetric\"\nactivation_zero_point = 0\n{}{}{}{}",
            l.name,
            l.weight,
            l.scale,
            l.bits,
            l.inputs,
            if l.inputs_guessed {
                "  # CHECK: packed int4 rows hold this many inputs or one fewer"
            } else {
                ""
            },
            l.outputs,
            clip.join(", "),
            or_required(
                "activation_scale",
                a.activation_scale.map(f64s),
                "membrane scale (positive)"
            ),
            or_required("beta", a.beta.map(f64s), "leak factor in (0, 1]"),
            or_required("threshold", a.threshold.map(f64s), "firing threshold"),
            or_required(
                "reset",
                a.reset.as_ref().map(|r| format!("{r:?}")),
                "\"subtract\" or \"zero\""
            ),
        );
    }
    let _ = writeln!(
        t,
        "# Optional golden check: `vault artifact golden --tensors {} --meta <this file> --input SPIKES`\n\
         # prints the [golden] table to append here.",
        a.tensors.display()
    );
    // The derived part must read back as what was derived.
    let complete = a.activation_scale.is_some()
        && a.beta.is_some()
        && a.threshold.is_some()
        && a.reset.is_some();
    if complete {
        let meta = MetaFile::parse(&t).context("the written meta.toml does not parse")?;
        meta.quant().context("the written meta.toml is not valid")?;
    }
    fsio::write_atomic(&a.out, t.as_bytes(), Mode::Public, false)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let required = if complete {
        String::new()
    } else {
        "; fill in the fields marked REQUIRED".to_string()
    };
    println!(
        "wrote {}: {} layers from {}{required}",
        a.out.display(),
        layers.len(),
        a.tensors.display()
    );
    Ok(())
}
