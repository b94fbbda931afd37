//! What a safetensors file alone says about its layers: the metadata
//! fields of `meta.toml` that `vault artifact meta init` can fill in
//! without the publisher (names, bits, shapes, per-channel `clip`), and
//! the golden-check input format of `vault artifact golden`.
//!
//! A weight tensor is an `I8` (int8) or `U8` (packed int4) matrix of shape
//! `[outputs, columns]`; its scale tensor is the `F32` vector of `outputs`
//! values named `<prefix>.scale` (or `<prefix>.scales`, or the only
//! unclaimed `F32` vector of that length) where the weight is
//! `<prefix>.<anything>`. Layers are in the order their weights are stored.
//! `clip = scale x qmax` (127 or 7), which is what the payload check
//! requires of them. Activation scale, leak, threshold and reset are not in
//! the tensors.

use super::quant::{MetadataError, MAX_GOLDEN_BITS, MAX_TIMESTEPS};
use super::safetensors::{self, Dtype, Header, TensorInfo};
use super::ArtifactError;
use std::io::{Read, Seek, SeekFrom};

/// One layer as derived from the tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedLayer {
    /// Layer name (the weight tensor's name up to its last `.`).
    pub name: String,
    /// Weight tensor name.
    pub weight: String,
    /// Scale tensor name.
    pub scale: String,
    /// 8 (`I8`) or 4 (`U8`, two weights per byte).
    pub bits: u8,
    /// Input features.
    pub inputs: u32,
    /// Output channels.
    pub outputs: u32,
    /// Per-channel `max |w|` = scale x qmax.
    pub clip: Vec<f32>,
    /// The input count is a guess: an int4 first layer's packed rows hold
    /// `2 x columns` or `2 x columns - 1` inputs (the even count is given).
    pub inputs_guessed: bool,
}

fn bad(subject: &str, field: &str, reason: impl Into<String>) -> ArtifactError {
    MetadataError::new(format!("tensor {subject:?}"), field, reason).into()
}

fn prefix(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(p, _)| p)
}

/// Derives the layers of the safetensors file `r` (`len` bytes long).
pub fn derive_layers<R: Read + Seek>(
    r: &mut R,
    len: u64,
) -> Result<Vec<DerivedLayer>, ArtifactError> {
    r.seek(SeekFrom::Start(0))
        .map_err(|e| ArtifactError::Io(e.to_string()))?;
    let header = safetensors::read_header(r, len)?;
    let mut weights: Vec<&TensorInfo> = header
        .tensors
        .iter()
        .filter(|t| matches!(t.dtype, Dtype::I8 | Dtype::U8))
        .collect();
    weights.sort_by_key(|t| t.begin);
    if weights.is_empty() {
        return Err(MetadataError::new(
            "tensors".into(),
            "weights",
            "no I8 or U8 (packed int4) weight tensor",
        )
        .into());
    }
    let mut claimed: Vec<&str> = Vec::new();
    let mut layers: Vec<DerivedLayer> = Vec::new();
    for w in weights {
        let [outputs, cols] = w.shape[..] else {
            return Err(bad(
                &w.name,
                "shape",
                format!("{:?} is not a [outputs, inputs] matrix", w.shape),
            ));
        };
        let outputs =
            u32::try_from(outputs).map_err(|_| bad(&w.name, "shape", "too many outputs"))?;
        let bits = if w.dtype == Dtype::I8 { 8 } else { 4 };
        let prev = layers.last().map(|l| l.outputs);
        let (inputs, guessed) = match (bits, prev) {
            (8, _) => (cols, false),
            (_, Some(p)) if u64::from(p).div_ceil(2) == cols => (u64::from(p), false),
            _ => (cols * 2, true),
        };
        let inputs = u32::try_from(inputs).map_err(|_| bad(&w.name, "shape", "too many inputs"))?;
        let scale = find_scale(&header, w, u64::from(outputs), &claimed)?;
        claimed.push(&scale.name);
        claimed.push(&w.name);
        let raw = read_range(r, &header, scale)?;
        let qmax = if bits == 8 { 127.0 } else { 7.0 };
        let clip = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .map(|s| (f64::from(s) * qmax) as f32)
            .collect();
        layers.push(DerivedLayer {
            name: prefix(&w.name).to_string(),
            weight: w.name.clone(),
            scale: scale.name.clone(),
            bits,
            inputs,
            outputs,
            clip,
            inputs_guessed: guessed,
        });
    }
    if let Some(t) = header
        .tensors
        .iter()
        .find(|t| !claimed.contains(&t.name.as_str()))
    {
        return Err(bad(
            &t.name,
            "name",
            "is neither a weight matrix nor the scale vector of one",
        ));
    }
    Ok(layers)
}

fn find_scale<'h>(
    header: &'h Header,
    w: &TensorInfo,
    outputs: u64,
    claimed: &[&str],
) -> Result<&'h TensorInfo, ArtifactError> {
    let fits = |t: &&TensorInfo| {
        t.dtype == Dtype::F32 && t.shape == [outputs] && !claimed.contains(&t.name.as_str())
    };
    let p = prefix(&w.name);
    for name in [format!("{p}.scale"), format!("{p}.scales")] {
        if let Some(t) = header.get(&name).filter(fits) {
            return Ok(t);
        }
    }
    let same: Vec<&TensorInfo> = header
        .tensors
        .iter()
        .filter(fits)
        .filter(|t| prefix(&t.name) == p)
        .collect();
    match same[..] {
        [one] => Ok(one),
        _ => Err(bad(
            &w.name,
            "scale",
            format!("no F32 scale vector of {outputs} values named {p}.scale"),
        )),
    }
}

fn read_range<R: Read + Seek>(
    r: &mut R,
    header: &Header,
    t: &TensorInfo,
) -> Result<Vec<u8>, ArtifactError> {
    let io = |e: std::io::Error| ArtifactError::Io(e.to_string());
    r.seek(SeekFrom::Start(header.data_start() + t.begin))
        .map_err(io)?;
    let mut buf = vec![0u8; t.len() as usize];
    r.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Parses a golden-check input: one line per timestep of `0`/`1`, one
/// character per input (blank lines and `#` comments are ignored). Returns
/// the timesteps and the spikes, row-major.
pub fn parse_spikes(text: &str, inputs: usize) -> Result<(u16, Vec<bool>), ArtifactError> {
    let err = |m: String| MetadataError::new("golden input".into(), "input", m);
    let mut spikes = Vec::new();
    let mut steps = 0usize;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line.chars().count() != inputs {
            return Err(err(format!(
                "line {}: {} spikes, the first layer has {inputs} inputs",
                n + 1,
                line.chars().count()
            ))
            .into());
        }
        for c in line.chars() {
            spikes.push(match c {
                '0' => false,
                '1' => true,
                other => return Err(err(format!("line {}: {other:?} is not 0 or 1", n + 1)).into()),
            });
        }
        steps += 1;
        if steps > usize::from(MAX_TIMESTEPS) || spikes.len() > MAX_GOLDEN_BITS {
            return Err(err(format!(
                "over {MAX_TIMESTEPS} timesteps or {MAX_GOLDEN_BITS} spikes"
            ))
            .into());
        }
    }
    if steps == 0 {
        return Err(err("no timesteps".into()).into());
    }
    Ok((steps as u16, spikes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::testnet;
    use std::io::Cursor;

    #[test]
    fn derives_what_the_test_networks_were_built_with() {
        for bits in [8, 4] {
            let net = testnet::small(bits);
            let len = net.safetensors.len() as u64;
            let got = derive_layers(&mut Cursor::new(&net.safetensors), len).unwrap();
            assert_eq!(got.len(), net.quant.layers.len());
            for (d, l) in got.iter().zip(&net.quant.layers) {
                assert_eq!(
                    (&d.name, &d.weight, &d.scale, d.bits, d.outputs),
                    (&l.name, &l.weight, &l.scale, l.bits, l.outputs)
                );
                assert_eq!(d.inputs, l.inputs, "{bits}-bit {}", l.name);
                for (a, b) in d.clip.iter().zip(&l.clip) {
                    assert!(((a - b) / b).abs() < 1e-6, "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn spike_files_are_checked() {
        assert_eq!(
            parse_spikes("# t0\n101\n\n010 # t1\n", 3).unwrap(),
            (2, vec![true, false, true, false, true, false])
        );
        assert!(parse_spikes("10\n", 3).is_err());
        assert!(parse_spikes("1x1\n", 3).is_err());
        assert!(parse_spikes("\n# nothing\n", 3).is_err());
    }
}
