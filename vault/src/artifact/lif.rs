//! The integer-only reference LIF forward pass and the golden check.
//!
//! Every quantity is an integer derived from the metadata's f32 values by
//! one documented rounding rule, so the pass is bit-exact on any machine
//! (docs/artifacts.md, "Integer LIF reference"). Per layer:
//!
//! * `beta_q = round(beta * 2^15)` (0..=32768),
//! * `thr_q = round(threshold / activation_scale)` (1..=2^30),
//! * per output channel `m[o] = round(scale[o] / activation_scale * 2^24)`
//!   (1..=2^31-1),
//!
//! where `round` is round-half-away-from-zero of the f64 value computed
//! from the f32 inputs (one correctly rounded IEEE operation each). Then for
//! every timestep, every neuron `o`:
//!
//! ```text
//! acc = sum of w[o][i] over the inputs i that spiked      (i64)
//! cur = (acc * m[o] + 2^23) >> 24                          (floor shift)
//! u   = clamp(((u * beta_q + 2^14) >> 15) + cur, i32::MIN, i32::MAX)
//! if u >= thr_q: spike; u = u - thr_q (subtract) or 0 (zero)
//! ```
//!
//! The network is feed-forward and the neurons of one layer do not
//! interact, so it runs layer by layer, and within a layer neuron by neuron
//! over all timesteps: only one weight row is needed at a time (the result
//! is the same as running timestep by timestep).

use super::quant::{LayerMeta, MetadataError, Reset};

/// Fraction bits of `beta_q`.
pub const BETA_FRAC: u32 = 15;
/// Fraction bits of the per-channel multiplier.
pub const MULT_FRAC: u32 = 24;
/// Largest threshold in membrane units.
pub const MAX_THRESHOLD_Q: i64 = 1 << 30;

/// One layer's fixed-point parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerParams {
    /// Leak factor in Q.15.
    pub beta_q: i64,
    /// Threshold in membrane units (multiples of the activation scale).
    pub threshold_q: i64,
    /// Per output channel: weight scale / activation scale in Q.24.
    pub mult: Vec<i64>,
    /// Reset mechanism.
    pub reset: Reset,
}

fn round_half_away(x: f64) -> f64 {
    x.round()
}

impl LayerParams {
    /// Derives the fixed-point parameters of `layer` with its weight `scales`.
    pub fn derive(layer: &LayerMeta, scales: &[f32]) -> Result<Self, MetadataError> {
        let err = |field: &str, reason: String| MetadataError {
            subject: format!("layer {:?}", layer.name),
            field: field.to_string(),
            reason,
        };
        let act = f64::from(layer.activation_scale);
        let beta_q = round_half_away(f64::from(layer.beta) * f64::from(1u32 << BETA_FRAC));
        if !(0.0..=f64::from(1u32 << BETA_FRAC)).contains(&beta_q) {
            return Err(err("beta", format!("{} is not in [0, 1]", layer.beta)));
        }
        let thr = round_half_away(f64::from(layer.threshold) / act);
        if !(thr >= 1.0 && thr <= MAX_THRESHOLD_Q as f64) {
            return Err(err(
                "threshold",
                format!(
                    "threshold / activation_scale = {} rounds to {thr}, outside 1..=2^30",
                    f64::from(layer.threshold) / act
                ),
            ));
        }
        let mut mult = Vec::with_capacity(scales.len());
        for (o, &s) in scales.iter().enumerate() {
            let m = round_half_away(f64::from(s) / act * f64::from(1u32 << MULT_FRAC));
            if !(m >= 1.0 && m <= f64::from(i32::MAX)) {
                return Err(err(
                    "activation_scale",
                    format!(
                        "channel {o}: weight scale {s} / activation scale {} gives multiplier {m}, outside 1..=2^31-1",
                        layer.activation_scale
                    ),
                ));
            }
            mult.push(m as i64);
        }
        Ok(LayerParams {
            beta_q: beta_q as i64,
            threshold_q: thr as i64,
            mult,
            reset: layer.reset,
        })
    }
}

/// Which inputs spiked at each timestep of a `timesteps x inputs`
/// row-major train (what every neuron of the next layer sums over), as a
/// mask per timestep: `-1` (every bit set) where input `i` spiked, else 0,
/// so a neuron's input is the sum of `weight & mask` over its row, a loop
/// the compiler turns into vector instructions.
pub fn active_inputs(input: &[bool], inputs: usize, timesteps: usize) -> Vec<Vec<i8>> {
    (0..timesteps)
        .map(|t| {
            input[t * inputs..(t + 1) * inputs]
                .iter()
                .map(|&s| -i8::from(s))
                .collect()
        })
        .collect()
}

/// Sum of the weights of `row` whose inputs spiked (`mask` from
/// [`active_inputs`]). Blocks of 2^16 keep the `i32` partial sums exact
/// (at most 2^16 x 128 in magnitude).
fn masked_sum(row: &[i8], mask: &[i8]) -> i64 {
    row.chunks(1 << 16)
        .zip(mask.chunks(1 << 16))
        .map(|(w, m)| {
            let part: i32 = w.iter().zip(m).map(|(&w, &m)| i32::from(w & m)).sum();
            i64::from(part)
        })
        .sum()
}

/// Runs output neuron `o` of a layer over all timesteps from its weight
/// `row` alone (neurons of one layer do not interact), writing its spikes
/// into column `o` of `out` (`timesteps x outputs`, row-major).
pub fn run_neuron(p: &LayerParams, o: usize, row: &[i8], active: &[Vec<i8>], out: &mut [bool]) {
    let outputs = p.mult.len();
    let m = p.mult[o];
    let mut u = 0i64;
    for (t, mask) in active.iter().enumerate() {
        let acc = masked_sum(row, mask);
        let cur = (acc * m + (1 << (MULT_FRAC - 1))) >> MULT_FRAC;
        let leaked = (u * p.beta_q + (1 << (BETA_FRAC - 1))) >> BETA_FRAC;
        let mut v = (leaked + cur).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
        let spike = v >= p.threshold_q;
        if spike {
            v = match p.reset {
                Reset::Subtract => v - p.threshold_q,
                Reset::Zero => 0,
            };
        }
        u = v;
        out[t * outputs + o] = spike;
    }
}

/// Runs one layer over a whole spike train.
///
/// `input` is `timesteps x inputs` row-major, `weights` is `[outputs,
/// inputs]` row-major; returns `timesteps x outputs` output spikes. Each
/// neuron runs over all timesteps from its own weight row
/// ([`run_neuron`]), so a caller may stream the rows instead.
pub fn run_layer(
    p: &LayerParams,
    weights: &[i8],
    inputs: usize,
    timesteps: usize,
    input: &[bool],
) -> Vec<bool> {
    let outputs = p.mult.len();
    let active = active_inputs(input, inputs, timesteps);
    let mut out = vec![false; timesteps * outputs];
    for o in 0..outputs {
        run_neuron(
            p,
            o,
            &weights[o * inputs..(o + 1) * inputs],
            &active,
            &mut out,
        );
    }
    out
}

/// Spike count per output neuron of a `timesteps x outputs` train.
pub fn counts(spikes: &[bool], outputs: usize) -> Vec<u32> {
    let mut c = vec![0u32; outputs];
    for row in spikes.chunks_exact(outputs.max(1)) {
        for (n, &s) in c.iter_mut().zip(row) {
            *n += u32::from(s);
        }
    }
    c
}

/// Runs a whole network held in memory: `layers` pairs each layer's
/// parameters with its unpacked weights. Returns the last layer's counts.
pub fn forward(layers: &[(LayerParams, Vec<i8>)], timesteps: usize, input: &[bool]) -> Vec<u32> {
    let mut spikes = input.to_vec();
    let mut width = input.len().checked_div(timesteps).unwrap_or(0);
    for (p, w) in layers {
        spikes = run_layer(p, w, width, timesteps, &spikes);
        width = p.mult.len();
    }
    counts(&spikes, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::quant::{ActivationScheme, WeightScheme};

    fn meta() -> LayerMeta {
        LayerMeta {
            name: "l".into(),
            weight: "w".into(),
            scale: "s".into(),
            bits: 8,
            inputs: 2,
            outputs: 1,
            weight_scheme: WeightScheme::PerChannelSymmetric,
            weight_zero_point: 0,
            clip: vec![1.27],
            activation_scheme: ActivationScheme::PerTensorSymmetric,
            activation_scale: 0.01,
            activation_zero_point: 0,
            beta: 0.5,
            threshold: 1.0,
            reset: Reset::Subtract,
        }
    }

    #[test]
    fn derive_rounding_rule() {
        let p = LayerParams::derive(&meta(), &[0.01]).unwrap();
        assert_eq!(p.beta_q, 16384);
        assert_eq!(p.threshold_q, 100);
        assert_eq!(p.mult, vec![1 << 24]);
        let mut m = meta();
        m.activation_scale = 1e-12;
        assert_eq!(
            LayerParams::derive(&m, &[0.01]).unwrap_err().field,
            "threshold"
        );
        m.activation_scale = 1e9;
        m.threshold = 1e10;
        assert_eq!(
            LayerParams::derive(&m, &[0.01]).unwrap_err().field,
            "activation_scale"
        );
    }

    #[test]
    fn hand_computed_trace() {
        // One neuron, weights [60, 50] at scale 0.01 = membrane units of 0.01;
        // threshold 100 units, beta 0.5, subtract reset.
        let p = LayerParams::derive(&meta(), &[0.01]).unwrap();
        let input = [true, true, true, false, false, false, true, true];
        let out = run_layer(&p, &[60, 50], 2, 4, &input);
        // t0: u = 0 + 110 -> spike, 10. t1: 5 + 60 = 65. t2: 33 (32.5 rounds
        // up) + 0 = 33. t3: 17 (16.5 up) + 110 = 127 -> spike, 27.
        assert_eq!(out, vec![true, false, false, true]);
        let mut pz = p.clone();
        pz.reset = Reset::Zero;
        let out = run_layer(&pz, &[60, 50], 2, 4, &input);
        // t0 spike -> 0; t1 60; t2 30; t3 15 + 110 = 125 spike.
        assert_eq!(out, vec![true, false, false, true]);
        assert_eq!(counts(&out, 1), vec![2]);
    }

    #[test]
    fn negative_membrane_floors_and_saturates() {
        let p = LayerParams {
            beta_q: 1 << 15,
            threshold_q: 1 << 30,
            mult: vec![i64::from(i32::MAX)],
            reset: Reset::Subtract,
        };
        // acc = -127 each step with a huge multiplier: saturates at i32::MIN.
        let input = vec![true; 100];
        let out = run_layer(&p, &[-127], 1, 100, &input);
        assert!(out.iter().all(|s| !s));
    }

    #[test]
    fn masked_sum_is_the_sum_over_spiking_inputs() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Longer than one 2^16 block, with extreme weights.
        let n = (1 << 16) + 777;
        let row: Vec<i8> = (0..n).map(|_| (next() % 255) as i8).collect();
        let spikes: Vec<bool> = (0..n).map(|_| next() % 3 == 0).collect();
        let mask = &active_inputs(&spikes, n, 1)[0];
        let naive: i64 = row
            .iter()
            .zip(&spikes)
            .filter(|(_, s)| **s)
            .map(|(w, _)| i64::from(*w))
            .sum();
        assert_eq!(masked_sum(&row, mask), naive);
        let all = vec![-1i8; n];
        let minus: Vec<i8> = vec![-127; n];
        assert_eq!(masked_sum(&minus, &all), -127 * n as i64);
    }
}
