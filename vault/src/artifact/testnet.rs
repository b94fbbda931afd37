//! Deterministic test networks (TEST DATA ONLY): a 64-32-10 LIF network
//! quantized to int8 or int4, and large int8 payloads for benchmarks.
//!
//! Everything is derived from a fixed xorshift64* seed, so the same call
//! gives the same bytes on every machine. Each [`Net`] carries the
//! safetensors payload, the `meta.toml` text `vault artifact pack` reads,
//! and the parsed metadata; its golden expected counts come from the
//! integer reference pass ([`super::lif`]).

use super::lif::{self, LayerParams};
use super::quant::{
    pack_int4, ActivationScheme, Golden, LayerMeta, MetaFile, QuantMeta, Reset, WeightScheme,
};
use super::safetensors::{write, Dtype, TensorData};
use std::fmt::Write as _;

/// The seed of every test network.
pub const SEED: u64 = 0x7071_7661_756c_7421;

/// A small deterministic PRNG (xorshift64*), for test data only.
pub struct XorShift(u64);

impl XorShift {
    /// Seeds the generator (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 { SEED } else { seed })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform f32 in `[lo, hi)` (24 random bits).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f32) -> bool {
        self.uniform(0.0, 1.0) < p
    }
}

/// A generated network.
pub struct Net {
    /// The safetensors payload.
    pub safetensors: Vec<u8>,
    /// The `meta.toml` text describing it.
    pub meta_toml: String,
    /// The parsed metadata.
    pub quant: QuantMeta,
    /// Float weights per layer (row-major), for float reference checks
    /// (empty for [`large`]).
    pub float_weights: Vec<Vec<f32>>,
}

impl Net {
    /// Parses [`Net::meta_toml`].
    pub fn meta(&self) -> MetaFile {
        MetaFile::parse(&self.meta_toml).expect("testnet meta.toml parses")
    }
}

struct Spec {
    name: String,
    inputs: usize,
    outputs: usize,
    lo: f32,
    hi: f32,
    beta: f32,
    reset: Reset,
}

/// Quantizes one row symmetrically: returns (clip, scale, values).
fn quantize_row(row: &[f32], qmax: i32) -> (f32, f32, Vec<i8>) {
    let clip = row.iter().fold(0f32, |m, w| m.max(w.abs())).max(1e-3);
    let scale = clip / qmax as f32;
    let q = row
        .iter()
        .map(|w| (w / scale).round().clamp(-(qmax as f32), qmax as f32) as i8)
        .collect();
    (clip, scale, q)
}

fn fmt_f32(v: f32) -> String {
    // The exact f64 value of the f32, so TOML round-trips it bit for bit.
    format!("{:?}", f64::from(v))
}

/// How to build a network's payload and golden check.
struct Build {
    bits: u8,
    timesteps: u16,
    density: f32,
    keep_float: bool,
}

fn build(model: &str, version: &str, specs: &[Spec], b: Build, rng: &mut XorShift) -> Net {
    let Build {
        bits,
        timesteps,
        density,
        keep_float,
    } = b;
    let qmax = if bits == 4 { 7 } else { 127 };
    let act_scale = 1.0f32 / 256.0;
    let threshold = 1.0f32;
    let mut layers = Vec::new();
    let mut tensors: Vec<(String, Dtype, Vec<u64>, Vec<u8>)> = Vec::new();
    let mut int_layers = Vec::new();
    let mut float_weights = Vec::new();
    for s in specs {
        // Row by row, so a large network never holds all its float weights.
        let mut clip = Vec::new();
        let mut scales = Vec::new();
        let mut q = Vec::with_capacity(s.inputs * s.outputs);
        let mut w = Vec::new();
        let mut row = vec![0f32; s.inputs];
        for _ in 0..s.outputs {
            row.iter_mut().for_each(|x| *x = rng.uniform(s.lo, s.hi));
            let (c, sc, qs) = quantize_row(&row, qmax);
            clip.push(c);
            scales.push(sc);
            q.extend(qs);
            if keep_float {
                w.extend_from_slice(&row);
            }
        }
        let l = LayerMeta {
            name: s.name.clone(),
            weight: format!("{}.weight", s.name),
            scale: format!("{}.scale", s.name),
            bits,
            inputs: s.inputs as u32,
            outputs: s.outputs as u32,
            weight_scheme: WeightScheme::PerChannelSymmetric,
            weight_zero_point: 0,
            clip,
            activation_scheme: ActivationScheme::PerTensorSymmetric,
            activation_scale: act_scale,
            activation_zero_point: 0,
            beta: s.beta,
            threshold,
            reset: s.reset,
        };
        let (dtype, shape, data) = if bits == 4 {
            (
                Dtype::U8,
                vec![s.outputs as u64, s.inputs.div_ceil(2) as u64],
                pack_int4(&q, s.inputs),
            )
        } else {
            (
                Dtype::I8,
                vec![s.outputs as u64, s.inputs as u64],
                q.iter().map(|&v| v as u8).collect(),
            )
        };
        tensors.push((l.weight.clone(), dtype, shape, data));
        tensors.push((
            l.scale.clone(),
            Dtype::F32,
            vec![s.outputs as u64],
            scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        let params = LayerParams::derive(&l, &scales).expect("testnet parameters derive");
        int_layers.push((params, q));
        float_weights.push(w);
        layers.push(l);
    }
    let inputs = specs[0].inputs;
    let input: Vec<bool> = (0..usize::from(timesteps) * inputs)
        .map(|_| rng.bernoulli(density))
        .collect();
    let expected = lif::forward(&int_layers, usize::from(timesteps), &input);
    let golden = Golden {
        timesteps,
        input,
        expected,
    };
    let data: Vec<TensorData<'_>> = tensors
        .iter()
        .map(|(n, d, s, b)| TensorData {
            name: n,
            dtype: *d,
            shape: s.clone(),
            data: b,
        })
        .collect();
    let safetensors = write(&data);
    let quant = QuantMeta {
        layers,
        golden: Some(golden),
    };
    let meta_toml = meta_toml(model, version, &quant);
    Net {
        safetensors,
        meta_toml,
        quant,
        float_weights,
    }
}

/// Renders `meta.toml` for `quant`.
pub fn meta_toml(model: &str, version: &str, quant: &QuantMeta) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# TEST DATA: generated by vault::artifact::testnet");
    let _ = writeln!(
        t,
        "name = {model:?}\nversion = {version:?}\ncreated = 1767225600\n"
    );
    for l in &quant.layers {
        let clip: Vec<String> = l.clip.iter().map(|&c| fmt_f32(c)).collect();
        let _ = writeln!(
            t,
            "[[layer]]\nname = {:?}\nweight = {:?}\nscale = {:?}\nbits = {}\ninputs = {}\noutputs = {}\n\
             weight_scheme = \"per-channel-symmetric\"\nweight_zero_point = 0\nclip = [{}]\n\
             activation_scheme = \"per-tensor-symmetric\"\nactivation_scale = {}\nactivation_zero_point = 0\n\
             beta = {}\nthreshold = {}\nreset = \"{}\"\n",
            l.name,
            l.weight,
            l.scale,
            l.bits,
            l.inputs,
            l.outputs,
            clip.join(", "),
            fmt_f32(l.activation_scale),
            fmt_f32(l.beta),
            fmt_f32(l.threshold),
            match l.reset {
                Reset::Subtract => "subtract",
                Reset::Zero => "zero",
            }
        );
    }
    if let Some(g) = &quant.golden {
        let inputs = quant.inputs() as usize;
        let rows: Vec<String> = g
            .input
            .chunks_exact(inputs)
            .map(|r| {
                let s: String = r.iter().map(|&b| if b { '1' } else { '0' }).collect();
                format!("  \"{s}\",")
            })
            .collect();
        let exp: Vec<String> = g.expected.iter().map(u32::to_string).collect();
        let _ = writeln!(
            t,
            "[golden]\ninput = [\n{}\n]\nexpected = [{}]",
            rows.join("\n"),
            exp.join(", ")
        );
    }
    t
}

/// The 64-32-10 LIF network at `bits` (4 or 8), model `snn-demo` 1.0.0,
/// with a 16-timestep golden check.
pub fn small(bits: u8) -> Net {
    let mut rng = XorShift::new(SEED ^ u64::from(bits));
    let specs = [
        Spec {
            name: "fc1".into(),
            inputs: 64,
            outputs: 32,
            lo: -0.45,
            hi: 0.5,
            beta: 0.875,
            reset: Reset::Subtract,
        },
        Spec {
            name: "fc2".into(),
            inputs: 32,
            outputs: 10,
            lo: -0.5,
            hi: 0.55,
            beta: 0.9,
            reset: Reset::Zero,
        },
    ];
    build(
        "snn-demo",
        "1.0.0",
        &specs,
        Build {
            bits,
            timesteps: 16,
            density: 0.25,
            keep_float: true,
        },
        &mut rng,
    )
}

/// An int8 network whose payload is about `bytes` long (square layers of
/// up to 4096 x 4096, as many as fit), model `snn-large` 1.0.0, with a
/// 4-timestep golden check. For carriage benchmarks.
pub fn large(bytes: u64) -> Net {
    let mut rng = XorShift::new(SEED ^ 0x1a56e);
    let width = ((bytes as f64).sqrt() as usize).clamp(16, 4096);
    let layers = ((bytes / (width * width) as u64) as usize).clamp(1, 64);
    let specs: Vec<Spec> = (0..layers)
        .map(|k| Spec {
            name: format!("layer{k}"),
            inputs: width,
            outputs: width,
            lo: -0.5,
            hi: 0.55,
            beta: 0.9,
            reset: Reset::Subtract,
        })
        .collect();
    build(
        "snn-large",
        "1.0.0",
        &specs,
        Build {
            bits: 8,
            timesteps: 4,
            density: 0.2,
            keep_float: false,
        },
        &mut rng,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::quant::unpack_weights;
    use crate::artifact::safetensors::parse_file;

    /// The same LIF in f64 on the dequantized weights.
    fn float_counts(net: &Net) -> Vec<u32> {
        let g = net.quant.golden.as_ref().unwrap();
        let h = parse_file(&net.safetensors).unwrap();
        let t = usize::from(g.timesteps);
        let mut spikes: Vec<bool> = g.input.clone();
        for l in &net.quant.layers {
            let get = |n: &str| {
                let i = h.get(n).unwrap();
                let s = (h.data_start() + i.begin) as usize;
                &net.safetensors[s..s + i.len() as usize]
            };
            let scales: Vec<f64> = get(&l.scale)
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            let w = unpack_weights(l, get(&l.weight)).unwrap();
            let (ni, no) = (l.inputs as usize, l.outputs as usize);
            let mut u = vec![0f64; no];
            let mut out = Vec::new();
            for step in 0..t {
                let x = &spikes[step * ni..(step + 1) * ni];
                for o in 0..no {
                    let acc: f64 = (0..ni)
                        .filter(|&i| x[i])
                        .map(|i| f64::from(w[o * ni + i]))
                        .sum();
                    u[o] = f64::from(l.beta) * u[o] + scales[o] * acc;
                    let s = u[o] >= f64::from(l.threshold);
                    if s {
                        u[o] = match l.reset {
                            Reset::Subtract => u[o] - f64::from(l.threshold),
                            Reset::Zero => 0.0,
                        };
                    }
                    out.push(s);
                }
            }
            spikes = out;
        }
        lif::counts(&spikes, net.quant.outputs() as usize)
    }

    #[test]
    fn small_nets_are_deterministic_and_spike() {
        for bits in [8, 4] {
            let a = small(bits);
            assert_eq!(a.safetensors, small(bits).safetensors);
            let g = a.quant.golden.as_ref().unwrap();
            assert_eq!(g.expected.len(), 10);
            let total: u32 = g.expected.iter().sum();
            assert!(total > 0, "bits {bits}: no output spikes");
            assert!(
                g.expected.iter().any(|&c| c != g.expected[0]),
                "bits {bits}: counts all equal {:?}",
                g.expected
            );
            // The integer pass tracks float LIF on the same quantized
            // weights: counts differ only where a membrane sits within
            // rounding of the threshold.
            let f = float_counts(&a);
            let diff: u32 = f.iter().zip(&g.expected).map(|(x, y)| x.abs_diff(*y)).sum();
            assert!(diff <= 2, "bits {bits}: int {:?} float {f:?}", g.expected);
            // meta.toml round-trips to the same metadata, bit for bit.
            assert_eq!(a.meta().quant().unwrap(), a.quant);
        }
    }
}
