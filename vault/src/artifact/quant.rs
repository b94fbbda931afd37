//! Quantization metadata of a LIF spiking network and its consistency checks.
//!
//! This module owns the model a manifest carries per layer (weight bits,
//! schemes, zero points, per-channel clipping ranges, activation scale,
//! neuron parameters, the optional golden check), the `meta.toml` file
//! `vault artifact pack` reads, and every check of that metadata against a
//! safetensors header and tensor values. Errors name the layer or tensor
//! and the field (see docs/artifacts.md).

use super::safetensors::{Dtype, Header, TensorInfo};
use serde::Deserialize;
use std::collections::BTreeSet;
use thiserror::Error;

/// Most layers in one network.
pub const MAX_LAYERS: usize = 64;
/// Most inputs or outputs of one layer.
pub const MAX_FEATURES: u32 = 65_536;
/// Most output channels summed over all layers (bounds the manifest).
pub const MAX_TOTAL_CHANNELS: usize = 262_144;
/// Most timesteps in a golden check.
pub const MAX_TIMESTEPS: u16 = 1024;
/// Most input spikes (timesteps x inputs) in a golden check.
pub const MAX_GOLDEN_BITS: usize = 1 << 20;
/// Longest layer name.
pub const MAX_LAYER_NAME: usize = 64;
/// Relative tolerance between a scale and `clip / qmax`.
pub const SCALE_TOLERANCE: f64 = 1e-6;

/// Metadata that is inconsistent, naming the tensor or layer and the field.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{subject}: {field}: {reason}")]
pub struct MetadataError {
    /// `tensor "fc1.weight"`, `layer "fc1"`, `golden`, `model`.
    pub subject: String,
    /// The field at fault (`dtype`, `scale`, `zero_point`, ...).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl MetadataError {
    pub(crate) fn new(subject: String, field: &str, reason: impl Into<String>) -> Self {
        MetadataError {
            subject,
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

fn tensor(name: &str) -> String {
    format!("tensor {name:?}")
}

fn layer(name: &str) -> String {
    format!("layer {name:?}")
}

/// Weight quantization scheme. Only per-channel symmetric exists in v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum WeightScheme {
    /// One scale per output channel, zero point 0.
    #[serde(rename = "per-channel-symmetric")]
    PerChannelSymmetric,
}

/// Activation (membrane) quantization scheme. Only per-tensor symmetric in v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ActivationScheme {
    /// One scale per layer, zero point 0.
    #[serde(rename = "per-tensor-symmetric")]
    PerTensorSymmetric,
}

/// What happens to the membrane after a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reset {
    /// Subtract the threshold.
    Subtract,
    /// Set to zero.
    Zero,
}

/// One LIF layer: a dense weight matrix `[outputs, inputs]` and its neurons.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerMeta {
    /// Layer name.
    pub name: String,
    /// Name of the weight tensor.
    pub weight: String,
    /// Name of the per-channel scale tensor (F32, `[outputs]`).
    pub scale: String,
    /// Weight bits: 4 (packed, U8) or 8 (I8).
    pub bits: u8,
    /// Input features.
    pub inputs: u32,
    /// Output channels (neurons).
    pub outputs: u32,
    /// Weight scheme.
    pub weight_scheme: WeightScheme,
    /// Weight zero point (0 for symmetric).
    pub weight_zero_point: i32,
    /// Per output channel clipping range `max |w|` of the float weights.
    pub clip: Vec<f32>,
    /// Activation scheme.
    pub activation_scheme: ActivationScheme,
    /// Activation (membrane) scale.
    pub activation_scale: f32,
    /// Activation zero point (0 for symmetric).
    pub activation_zero_point: i32,
    /// Leak factor beta, in `[0, 1]`.
    pub beta: f32,
    /// Firing threshold (real units).
    pub threshold: f32,
    /// Reset mechanism.
    pub reset: Reset,
}

impl LayerMeta {
    /// Largest quantized magnitude: 127 (int8) or 7 (int4).
    pub fn qmax(&self) -> i32 {
        if self.bits == 4 {
            7
        } else {
            127
        }
    }

    /// The dtype the weight tensor must have: I8 (int8) or U8 (int4 packed).
    pub fn weight_dtype(&self) -> Dtype {
        if self.bits == 4 {
            Dtype::U8
        } else {
            Dtype::I8
        }
    }

    /// Shape the weight tensor must have.
    pub fn weight_shape(&self) -> Vec<u64> {
        let cols = if self.bits == 4 {
            u64::from(self.inputs).div_ceil(2)
        } else {
            u64::from(self.inputs)
        };
        vec![u64::from(self.outputs), cols]
    }
}

/// Golden check: an input spike train and the expected output spike counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Golden {
    /// Number of timesteps.
    pub timesteps: u16,
    /// Input spikes, `timesteps x inputs`, row-major (one row per timestep).
    pub input: Vec<bool>,
    /// Expected spike count of each output neuron of the last layer.
    pub expected: Vec<u32>,
}

/// The quantization metadata a manifest carries.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantMeta {
    /// Layers in forward order.
    pub layers: Vec<LayerMeta>,
    /// Optional golden check.
    pub golden: Option<Golden>,
}

fn finite_pos(v: f32) -> bool {
    v.is_finite() && v > 0.0
}

impl QuantMeta {
    /// Input width of the network.
    pub fn inputs(&self) -> u32 {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Output width of the network.
    pub fn outputs(&self) -> u32 {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Checks the metadata on its own (no tensors): ranges, chaining, zero
    /// points, clipping ranges, neuron parameters, golden dimensions.
    pub fn validate(&self) -> Result<(), MetadataError> {
        let model = || "model".to_string();
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(MetadataError::new(
                model(),
                "layers",
                format!("{} layers (allowed 1..={MAX_LAYERS})", self.layers.len()),
            ));
        }
        let mut names = BTreeSet::new();
        let mut tensors = BTreeSet::new();
        let mut channels = 0usize;
        for (k, l) in self.layers.iter().enumerate() {
            let s = || layer(&l.name);
            if l.name.is_empty()
                || l.name.len() > MAX_LAYER_NAME
                || l.name.chars().any(char::is_control)
                || !names.insert(l.name.as_str())
            {
                return Err(MetadataError::new(
                    s(),
                    "name",
                    format!("empty, longer than {MAX_LAYER_NAME} bytes, or repeated"),
                ));
            }
            for t in [&l.weight, &l.scale] {
                if t.is_empty() || t.len() > super::safetensors::MAX_TENSOR_NAME {
                    return Err(MetadataError::new(s(), "tensor name", "empty or too long"));
                }
                if !tensors.insert(t.as_str()) {
                    return Err(MetadataError::new(
                        tensor(t),
                        "name",
                        "named by more than one layer field",
                    ));
                }
            }
            if l.bits != 4 && l.bits != 8 {
                return Err(MetadataError::new(
                    tensor(&l.weight),
                    "bits",
                    format!("{} (allowed 4 or 8)", l.bits),
                ));
            }
            for (field, v) in [("inputs", l.inputs), ("outputs", l.outputs)] {
                if v == 0 || v > MAX_FEATURES {
                    return Err(MetadataError::new(
                        s(),
                        field,
                        format!("{v} (allowed 1..={MAX_FEATURES})"),
                    ));
                }
            }
            if k > 0 && l.inputs != self.layers[k - 1].outputs {
                return Err(MetadataError::new(
                    s(),
                    "inputs",
                    format!(
                        "{} but the previous layer has {} outputs",
                        l.inputs,
                        self.layers[k - 1].outputs
                    ),
                ));
            }
            channels += l.outputs as usize;
            if channels > MAX_TOTAL_CHANNELS {
                return Err(MetadataError::new(
                    model(),
                    "outputs",
                    format!("more than {MAX_TOTAL_CHANNELS} channels in total"),
                ));
            }
            if l.weight_zero_point != 0 {
                return Err(MetadataError::new(
                    tensor(&l.weight),
                    "zero_point",
                    format!(
                        "{} but the scheme is symmetric (must be 0)",
                        l.weight_zero_point
                    ),
                ));
            }
            if l.activation_zero_point != 0 {
                return Err(MetadataError::new(
                    s(),
                    "activation_zero_point",
                    format!(
                        "{} but the scheme is symmetric (must be 0)",
                        l.activation_zero_point
                    ),
                ));
            }
            if l.clip.len() != l.outputs as usize {
                return Err(MetadataError::new(
                    tensor(&l.weight),
                    "clip",
                    format!(
                        "{} clipping ranges for {} output channels",
                        l.clip.len(),
                        l.outputs
                    ),
                ));
            }
            if let Some((c, v)) = l.clip.iter().enumerate().find(|(_, v)| !finite_pos(**v)) {
                return Err(MetadataError::new(
                    tensor(&l.weight),
                    "clip",
                    format!("channel {c}: {v} is not positive and finite"),
                ));
            }
            if !finite_pos(l.activation_scale) {
                return Err(MetadataError::new(
                    s(),
                    "activation_scale",
                    format!("{} is not positive and finite", l.activation_scale),
                ));
            }
            if !(l.beta.is_finite() && (0.0..=1.0).contains(&l.beta)) {
                return Err(MetadataError::new(
                    s(),
                    "beta",
                    format!("{} is not in [0, 1]", l.beta),
                ));
            }
            if !finite_pos(l.threshold) {
                return Err(MetadataError::new(
                    s(),
                    "threshold",
                    format!("{} is not positive and finite", l.threshold),
                ));
            }
            // The fixed-point parameters must exist for the declared scales.
            let scales: Vec<f32> = l.clip.iter().map(|c| c / l.qmax() as f32).collect();
            super::lif::LayerParams::derive(l, &scales)?;
        }
        if let Some(g) = &self.golden {
            let s = || "golden".to_string();
            if g.timesteps == 0 || g.timesteps > MAX_TIMESTEPS {
                return Err(MetadataError::new(
                    s(),
                    "timesteps",
                    format!("{} (allowed 1..={MAX_TIMESTEPS})", g.timesteps),
                ));
            }
            let want = usize::from(g.timesteps) * self.inputs() as usize;
            if want > MAX_GOLDEN_BITS || g.input.len() != want {
                return Err(MetadataError::new(
                    s(),
                    "input",
                    format!(
                        "{} spikes, expected {} timesteps x {} inputs (at most {MAX_GOLDEN_BITS})",
                        g.input.len(),
                        g.timesteps,
                        self.inputs()
                    ),
                ));
            }
            if g.expected.len() != self.outputs() as usize {
                return Err(MetadataError::new(
                    s(),
                    "expected",
                    format!("{} counts for {} outputs", g.expected.len(), self.outputs()),
                ));
            }
            if let Some((i, c)) = g
                .expected
                .iter()
                .enumerate()
                .find(|(_, c)| **c > u32::from(g.timesteps))
            {
                return Err(MetadataError::new(
                    s(),
                    "expected",
                    format!("output {i}: {c} spikes in {} timesteps", g.timesteps),
                ));
            }
        }
        Ok(())
    }

    /// Checks the safetensors header against the metadata: every tensor is
    /// described, dtypes match the bits, shapes match the layer sizes, and
    /// scale counts match the output channels.
    pub fn check_header(&self, header: &Header) -> Result<(), MetadataError> {
        let mut described = BTreeSet::new();
        for l in &self.layers {
            let w = find(header, &l.weight)?;
            if w.dtype != l.weight_dtype() {
                return Err(MetadataError::new(
                    tensor(&l.weight),
                    "dtype",
                    format!(
                        "{} but bits = {} needs {}",
                        w.dtype,
                        l.bits,
                        l.weight_dtype()
                    ),
                ));
            }
            if w.shape != l.weight_shape() {
                return Err(MetadataError::new(
                    tensor(&l.weight),
                    "shape",
                    format!(
                        "{:?} but {} outputs x {} inputs at {} bits needs {:?}",
                        w.shape,
                        l.outputs,
                        l.inputs,
                        l.bits,
                        l.weight_shape()
                    ),
                ));
            }
            let s = find(header, &l.scale)?;
            if s.dtype != Dtype::F32 {
                return Err(MetadataError::new(
                    tensor(&l.scale),
                    "dtype",
                    format!("{} but scales must be F32", s.dtype),
                ));
            }
            if s.shape.len() != 1 || s.shape[0] != u64::from(l.outputs) {
                return Err(MetadataError::new(
                    tensor(&l.scale),
                    "scale count",
                    format!(
                        "shape {:?} but per-channel scales need one per output channel ({})",
                        s.shape, l.outputs
                    ),
                ));
            }
            described.insert(l.weight.as_str());
            described.insert(l.scale.as_str());
        }
        if let Some(t) = header
            .tensors
            .iter()
            .find(|t| !described.contains(t.name.as_str()))
        {
            return Err(MetadataError::new(
                tensor(&t.name),
                "name",
                "is in the payload but not described by the metadata",
            ));
        }
        Ok(())
    }
}

fn find<'h>(header: &'h Header, name: &str) -> Result<&'h TensorInfo, MetadataError> {
    header
        .get(name)
        .ok_or_else(|| MetadataError::new(tensor(name), "name", "missing from the payload"))
}

/// Decodes little-endian F32 scale bytes and checks each scale: positive,
/// finite, and equal (within [`SCALE_TOLERANCE`]) to `clip / qmax`.
pub fn check_scales(l: &LayerMeta, bytes: &[u8]) -> Result<Vec<f32>, MetadataError> {
    let scales: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if scales.len() != l.outputs as usize {
        return Err(MetadataError::new(
            tensor(&l.scale),
            "scale count",
            format!("{} scales for {} output channels", scales.len(), l.outputs),
        ));
    }
    for (c, (&s, &clip)) in scales.iter().zip(&l.clip).enumerate() {
        if !finite_pos(s) {
            return Err(MetadataError::new(
                tensor(&l.scale),
                "scale",
                format!("channel {c}: {s} is not positive and finite"),
            ));
        }
        let want = f64::from(clip) / f64::from(l.qmax());
        if (f64::from(s) - want).abs() > SCALE_TOLERANCE * want {
            return Err(MetadataError::new(
                tensor(&l.scale),
                "scale",
                format!(
                    "channel {c}: {s} disagrees with clip {clip} / {} = {want}",
                    l.qmax()
                ),
            ));
        }
    }
    Ok(scales)
}

/// Unpacks weight bytes to one `i8` per weight (row-major `[outputs,
/// inputs]`) and checks every value is in the symmetric range
/// `[-qmax, qmax]`; for int4 the padding nibble of an odd row must be 0.
///
/// int4 packing: two's-complement nibbles, element `2j` in the low nibble
/// (bits 0-3) and element `2j+1` in the high nibble of byte `j` of its row.
pub fn unpack_weights(l: &LayerMeta, bytes: &[u8]) -> Result<Vec<i8>, MetadataError> {
    let outputs = l.outputs as usize;
    if bytes.len() != weight_row_bytes(l) * outputs {
        return Err(MetadataError::new(tensor(&l.weight), "shape", "byte count"));
    }
    let mut out = Vec::with_capacity(l.inputs as usize * outputs);
    unpack_rows(l, 0, bytes, &mut out)?;
    Ok(out)
}

/// Bytes of one packed weight row: `inputs` for int8, `ceil(inputs/2)`
/// for int4 (rows are byte-aligned).
pub fn weight_row_bytes(l: &LayerMeta) -> usize {
    let inputs = l.inputs as usize;
    if l.bits == 8 {
        inputs
    } else {
        inputs.div_ceil(2)
    }
}

/// [`unpack_weights`] for whole rows `first_row..` of the tensor: `bytes`
/// holds a whole number of packed rows; their weights are appended to
/// `out` and checked exactly as [`unpack_weights`] checks them (errors name
/// the row's index in the whole tensor).
pub fn unpack_rows(
    l: &LayerMeta,
    first_row: usize,
    bytes: &[u8],
    out: &mut Vec<i8>,
) -> Result<(), MetadataError> {
    let inputs = l.inputs as usize;
    let qmax = l.qmax();
    let bad = |o: usize, i: usize, v: i32| {
        MetadataError::new(
            tensor(&l.weight),
            "value",
            format!(
                "weight [{o}, {i}] = {v} is outside the symmetric {}-bit range [-{qmax}, {qmax}]",
                l.bits
            ),
        )
    };
    let row = weight_row_bytes(l);
    if bytes.is_empty() {
        return Ok(());
    }
    if row == 0 || !bytes.len().is_multiple_of(row) {
        return Err(MetadataError::new(tensor(&l.weight), "shape", "byte count"));
    }
    if l.bits == 8 {
        // -128 is outside the symmetric range; everything else is a weight.
        // (`contains` on bytes is a memchr; the slow search runs only on error.)
        if bytes.contains(&0x80) {
            let k = bytes.iter().position(|&b| b == 0x80).unwrap_or(0);
            return Err(bad(first_row + k / inputs, k % inputs, i32::from(i8::MIN)));
        }
        out.extend(bytes.iter().map(|&b| b as i8));
        return Ok(());
    }
    for (k, r) in bytes.chunks_exact(row).enumerate() {
        let o = first_row + k;
        for i in 0..inputs {
            let b = r[i / 2];
            let nib = if i % 2 == 0 { b & 0x0f } else { b >> 4 };
            let v = ((nib << 4) as i8) >> 4;
            if v == -8 {
                return Err(bad(o, i, i32::from(v)));
            }
            out.push(v);
        }
        if inputs % 2 == 1 && r[row - 1] >> 4 != 0 {
            return Err(MetadataError::new(
                tensor(&l.weight),
                "value",
                format!("row {o}: padding nibble is not 0"),
            ));
        }
    }
    Ok(())
}

/// Packs int4 weights (each in `[-8, 7]`) two per byte, low nibble first.
pub fn pack_int4(weights: &[i8], inputs: usize) -> Vec<u8> {
    let row = inputs.div_ceil(2);
    let mut out = vec![0u8; weights.len().div_ceil(inputs.max(1)) * row];
    for (k, &w) in weights.iter().enumerate() {
        let (o, i) = (k / inputs, k % inputs);
        let nib = (w as u8) & 0x0f;
        out[o * row + i / 2] |= if i % 2 == 0 { nib } else { nib << 4 };
    }
    out
}

/// The `meta.toml` file read by `vault artifact pack` (docs/artifacts.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaFile {
    /// Model name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Creation time (Unix seconds); default: now.
    pub created: Option<u64>,
    /// Expiry (Unix seconds); default: none.
    pub expires: Option<u64>,
    /// Layers in forward order.
    pub layer: Vec<MetaLayer>,
    /// Optional golden check.
    pub golden: Option<MetaGolden>,
}

/// One `[[layer]]` table of `meta.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaLayer {
    /// Layer name.
    pub name: String,
    /// Weight tensor name.
    pub weight: String,
    /// Scale tensor name.
    pub scale: String,
    /// 4 or 8.
    pub bits: u8,
    /// Input features.
    pub inputs: u32,
    /// Output channels.
    pub outputs: u32,
    /// `per-channel-symmetric`.
    pub weight_scheme: WeightScheme,
    /// Must be 0.
    pub weight_zero_point: i32,
    /// Per-channel `max |w|`.
    pub clip: Vec<f64>,
    /// `per-tensor-symmetric`.
    pub activation_scheme: ActivationScheme,
    /// Membrane scale.
    pub activation_scale: f64,
    /// Must be 0.
    pub activation_zero_point: i32,
    /// Leak factor.
    pub beta: f64,
    /// Threshold.
    pub threshold: f64,
    /// `subtract` or `zero`.
    pub reset: Reset,
}

/// The `[golden]` table of `meta.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaGolden {
    /// One string of `0`/`1` per timestep, one character per input.
    pub input: Vec<String>,
    /// Expected spike counts of the last layer.
    pub expected: Vec<u32>,
}

impl MetaFile {
    /// Parses `meta.toml` text.
    pub fn parse(text: &str) -> Result<Self, MetadataError> {
        toml::from_str(text).map_err(|e| {
            MetadataError::new("metadata file".into(), "syntax", e.to_string().trim_end())
        })
    }

    /// The quantization metadata it describes (validated).
    pub fn quant(&self) -> Result<QuantMeta, MetadataError> {
        let layers = self
            .layer
            .iter()
            .map(|l| LayerMeta {
                name: l.name.clone(),
                weight: l.weight.clone(),
                scale: l.scale.clone(),
                bits: l.bits,
                inputs: l.inputs,
                outputs: l.outputs,
                weight_scheme: l.weight_scheme,
                weight_zero_point: l.weight_zero_point,
                clip: l.clip.iter().map(|&c| c as f32).collect(),
                activation_scheme: l.activation_scheme,
                activation_scale: l.activation_scale as f32,
                activation_zero_point: l.activation_zero_point,
                beta: l.beta as f32,
                threshold: l.threshold as f32,
                reset: l.reset,
            })
            .collect();
        let golden = match &self.golden {
            None => None,
            Some(g) => {
                let timesteps = u16::try_from(g.input.len())
                    .ok()
                    .filter(|t| *t <= MAX_TIMESTEPS)
                    .ok_or_else(|| {
                        MetadataError::new(
                            "golden".into(),
                            "input",
                            format!("{} timesteps (at most {MAX_TIMESTEPS})", g.input.len()),
                        )
                    })?;
                let mut input = Vec::new();
                for (t, row) in g.input.iter().enumerate() {
                    if input.len() + row.len() > MAX_GOLDEN_BITS {
                        return Err(MetadataError::new(
                            "golden".into(),
                            "input",
                            format!("more than {MAX_GOLDEN_BITS} spikes"),
                        ));
                    }
                    for c in row.chars() {
                        input.push(match c {
                            '0' => false,
                            '1' => true,
                            _ => {
                                return Err(MetadataError::new(
                                    "golden".into(),
                                    "input",
                                    format!("timestep {t}: {c:?} is not 0 or 1"),
                                ))
                            }
                        });
                    }
                }
                Some(Golden {
                    timesteps,
                    input,
                    expected: g.expected.clone(),
                })
            }
        };
        let q = QuantMeta { layers, golden };
        q.validate()?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer8() -> LayerMeta {
        LayerMeta {
            name: "fc".into(),
            weight: "fc.w".into(),
            scale: "fc.s".into(),
            bits: 8,
            inputs: 3,
            outputs: 2,
            weight_scheme: WeightScheme::PerChannelSymmetric,
            weight_zero_point: 0,
            clip: vec![1.27, 2.54],
            activation_scheme: ActivationScheme::PerTensorSymmetric,
            activation_scale: 0.01,
            activation_zero_point: 0,
            beta: 0.9,
            threshold: 1.0,
            reset: Reset::Subtract,
        }
    }

    #[test]
    fn validate_refuses_bad_fields() {
        let ok = QuantMeta {
            layers: vec![layer8()],
            golden: None,
        };
        ok.validate().unwrap();
        type Edit = fn(&mut LayerMeta);
        let cases: &[(Edit, &str)] = &[
            (|l| l.bits = 5, "bits"),
            (|l| l.weight_zero_point = 3, "zero_point"),
            (|l| l.activation_zero_point = 1, "activation_zero_point"),
            (|l| l.clip = vec![1.0], "clip"),
            (|l| l.clip[1] = f32::NAN, "clip"),
            (|l| l.clip[0] = -1.0, "clip"),
            (|l| l.activation_scale = 0.0, "activation_scale"),
            (|l| l.beta = 1.5, "beta"),
            (|l| l.threshold = f32::INFINITY, "threshold"),
            (|l| l.outputs = 0, "outputs"),
        ];
        for (edit, field) in cases {
            let mut m = ok.clone();
            edit(&mut m.layers[0]);
            let e = m.validate().unwrap_err();
            assert_eq!(e.field, *field, "{e}");
        }
    }

    #[test]
    fn scales_must_match_clip() {
        let l = layer8();
        let good: Vec<u8> = [0.01f32, 0.02]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        check_scales(&l, &good).unwrap();
        let bad: Vec<u8> = [0.01f32, 0.021]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let e = check_scales(&l, &bad).unwrap_err();
        assert!(
            e.to_string().contains("tensor \"fc.s\": scale: channel 1"),
            "{e}"
        );
        let neg: Vec<u8> = [-0.01f32, 0.02]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        assert!(check_scales(&l, &neg)
            .unwrap_err()
            .reason
            .contains("positive"));
    }

    #[test]
    fn int4_pack_round_trip_and_range() {
        let mut l = layer8();
        l.bits = 4;
        let w: Vec<i8> = vec![-7, 3, 7, 0, -1, 5];
        let packed = pack_int4(&w, 3);
        assert_eq!(packed.len(), 4);
        assert_eq!(packed[0], 0x39); // -7 = 0x9 low, 3 high
        assert_eq!(unpack_weights(&l, &packed).unwrap(), w);
        let mut bad = packed.clone();
        bad[0] = 0x38; // -8 in the low nibble
        assert!(unpack_weights(&l, &bad)
            .unwrap_err()
            .to_string()
            .contains("[0, 0] = -8"));
        let mut pad = packed;
        pad[1] |= 0x10;
        assert!(unpack_weights(&l, &pad)
            .unwrap_err()
            .reason
            .contains("padding"));
        let l8 = layer8();
        assert!(unpack_weights(&l8, &[0, 1, 0x80, 0, 0, 0]).is_err());
    }
}
