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
/// row-major train (what every neuron of the next layer sums over), ready
/// for [`Inputs::run_neuron`].
///
/// A neuron's input at a timestep is the sum of its weights `w[i]` over
/// the inputs `i` that spiked. It is computed on biased weights: with
/// `b[i] = w[i] + 128` (the weight's byte with its top bit flipped, in
/// `0..=255`), the sum is `sum(b[i] & mask[i]) - 128 * spiking`, where
/// `mask[i]` is `0xff` for an input that spiked and `0` otherwise. Sums of
/// bytes into 16-bit lanes are what the baseline x86-64 vector
/// instructions (SSE2) do well: several times faster than widening signed
/// bytes to 32 bits, and exact (see [`biased_sum`]).
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Per timestep: `0xff` where the input spiked, else 0.
    masks: Vec<Vec<u8>>,
    /// Per timestep: how many inputs spiked.
    spiking: Vec<i64>,
    /// Scratch: the biased weights of the neuron being run.
    biased: Vec<u8>,
}

/// Bytes summed into 16-bit lanes before they are widened: 16 lanes of
/// at most 256 values of at most 255 each (65280 < 2^16), so no lane ever
/// overflows.
const SUM_BLOCK: usize = 4096;

/// Sum of `biased[i] & mask[i]`, exact for any length.
fn biased_sum(biased: &[u8], mask: &[u8]) -> i64 {
    let mut total = 0u64;
    let mut w = biased.chunks_exact(SUM_BLOCK);
    let mut m = mask.chunks_exact(SUM_BLOCK);
    let lanes = |w: &[u8], m: &[u8]| -> u64 {
        let mut acc = [0u16; 16];
        let (mut w16, mut m16) = (w.chunks_exact(16), m.chunks_exact(16));
        for (w16, m16) in (&mut w16).zip(&mut m16) {
            for k in 0..16 {
                acc[k] += u16::from(w16[k] & m16[k]);
            }
        }
        let tail: u64 = w16
            .remainder()
            .iter()
            .zip(m16.remainder())
            .map(|(&w, &m)| u64::from(w & m))
            .sum();
        acc.iter().map(|&x| u64::from(x)).sum::<u64>() + tail
    };
    for (w, m) in (&mut w).zip(&mut m) {
        total += lanes(w, m);
    }
    total += lanes(w.remainder(), m.remainder());
    // At most 255 x 2^16 x 2^16 (MAX_TENSOR_BYTES bounds a row far lower).
    i64::try_from(total).unwrap_or(i64::MAX)
}

impl Inputs {
    /// The inputs of a layer: `input` is a `timesteps x inputs` row-major
    /// spike train.
    pub fn new(input: &[bool], inputs: usize, timesteps: usize) -> Self {
        let masks: Vec<Vec<u8>> = (0..timesteps)
            .map(|t| {
                input[t * inputs..(t + 1) * inputs]
                    .iter()
                    .map(|&s| if s { 0xff } else { 0 })
                    .collect()
            })
            .collect();
        let spiking = masks
            .iter()
            .map(|m| m.iter().filter(|&&b| b != 0).count() as i64)
            .collect();
        Inputs {
            masks,
            spiking,
            biased: Vec::with_capacity(inputs),
        }
    }

    /// Runs output neuron `o` of a layer over all timesteps from its
    /// weight `row` alone (neurons of one layer do not interact), writing
    /// its spikes into column `o` of `out` (`timesteps x outputs`,
    /// row-major).
    pub fn run_neuron(&mut self, p: &LayerParams, o: usize, row: &[i8], out: &mut [bool]) {
        self.biased.clear();
        self.biased
            .extend(row.iter().map(|&w| w.to_ne_bytes()[0] ^ 0x80));
        let outputs = p.mult.len();
        let m = p.mult[o];
        let mut u = 0i64;
        for (t, (mask, &spiking)) in self.masks.iter().zip(&self.spiking).enumerate() {
            let acc = biased_sum(&self.biased, mask) - 128 * spiking;
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
}

/// Runs one layer over a whole spike train.
///
/// `input` is `timesteps x inputs` row-major, `weights` is `[outputs,
/// inputs]` row-major; returns `timesteps x outputs` output spikes. Each
/// neuron runs over all timesteps from its own weight row
/// ([`Inputs::run_neuron`]), so a caller may stream the rows instead.
pub fn run_layer(
    p: &LayerParams,
    weights: &[i8],
    inputs: usize,
    timesteps: usize,
    input: &[bool],
) -> Vec<bool> {
    let outputs = p.mult.len();
    let mut active = Inputs::new(input, inputs, timesteps);
    let mut out = vec![false; timesteps * outputs];
    for o in 0..outputs {
        active.run_neuron(p, o, &weights[o * inputs..(o + 1) * inputs], &mut out);
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
pub(crate) mod tests {
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

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The input sum of one timestep, as [`Inputs::run_neuron`] computes it.
    fn fast_sum(row: &[i8], spikes: &[bool]) -> i64 {
        let a = Inputs::new(spikes, spikes.len(), 1);
        let biased: Vec<u8> = row.iter().map(|&w| w.to_ne_bytes()[0] ^ 0x80).collect();
        biased_sum(&biased, &a.masks[0]) - 128 * a.spiking[0]
    }

    #[test]
    fn the_biased_sum_is_the_sum_over_spiking_inputs() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        // Lengths around the 16-byte lanes and the 4096-byte blocks, the
        // whole i8 range (-128 too, although no layer may hold it).
        for n in [0, 1, 15, 16, 17, 255, 4095, 4096, 4097, (1 << 16) + 777] {
            let row: Vec<i8> = (0..n).map(|_| r.next().to_le_bytes()[0] as i8).collect();
            let spikes: Vec<bool> = (0..n).map(|_| r.below(3) == 0).collect();
            let naive: i64 = row
                .iter()
                .zip(&spikes)
                .filter(|(_, s)| **s)
                .map(|(w, _)| i64::from(*w))
                .sum();
            assert_eq!(fast_sum(&row, &spikes), naive, "{n} inputs");
        }
        // Extremes: every lane full of 255s (w = 127), or of 0s (w = -128).
        let n = 3 * SUM_BLOCK + 5;
        let all = vec![true; n];
        assert_eq!(fast_sum(&vec![127; n], &all), 127 * n as i64);
        assert_eq!(fast_sum(&vec![-128; n], &all), -128 * n as i64);
        assert_eq!(fast_sum(&vec![-127; n], &all), -127 * n as i64);
        assert_eq!(fast_sum(&vec![127; n], &vec![false; n]), 0);
    }

    /// The straightforward pass (the reference): timestep by timestep,
    /// every neuron, summing its weights over the inputs that spiked.
    pub(crate) fn reference(
        layers: &[(LayerParams, Vec<i8>)],
        timesteps: usize,
        input: &[bool],
    ) -> Vec<u32> {
        let mut spikes = input.to_vec();
        let mut ni = input.len() / timesteps.max(1);
        for (p, w) in layers {
            let no = p.mult.len();
            let mut u = vec![0i64; no];
            let mut out = Vec::new();
            for step in 0..timesteps {
                let x = &spikes[step * ni..(step + 1) * ni];
                for o in 0..no {
                    let acc: i64 = (0..ni)
                        .filter(|&i| x[i])
                        .map(|i| i64::from(w[o * ni + i]))
                        .sum();
                    let cur = (acc * p.mult[o] + (1 << 23)) >> 24;
                    let leak = (u[o] * p.beta_q + (1 << 14)) >> 15;
                    let mut v = (leak + cur).clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                    let s = v >= p.threshold_q;
                    if s {
                        v = match p.reset {
                            Reset::Subtract => v - p.threshold_q,
                            Reset::Zero => 0,
                        };
                    }
                    u[o] = v;
                    out.push(s);
                }
            }
            spikes = out;
            ni = no;
        }
        counts(&spikes, ni)
    }

    #[test]
    fn the_fast_pass_gives_the_counts_of_the_straightforward_one_on_random_networks() {
        let mut r = Rng(0x5eed_1e55_c0ff_ee01);
        let mut spiking = 0u64;
        for case in 0..60 {
            let timesteps = 1 + r.below(12) as usize;
            let depth = 1 + r.below(3) as usize;
            let mut width = 1 + r.below(300) as usize;
            if case % 10 == 0 {
                width = SUM_BLOCK + 1 + r.below(100) as usize;
            }
            let density = 1 + r.below(9);
            let input: Vec<bool> = (0..timesteps * width)
                .map(|_| r.below(10) < density)
                .collect();
            let int4 = case % 3 == 0;
            let mut layers = Vec::new();
            let mut ni = width;
            for _ in 0..depth {
                let no = 1 + r.below(200) as usize;
                let w: Vec<i8> = (0..ni * no)
                    .map(|_| {
                        let w = if int4 {
                            r.below(15) as i16 - 7
                        } else {
                            r.below(255) as i16 - 127
                        };
                        w as i8
                    })
                    .collect();
                let thr_bits = 4 + r.below(27);
                let p = LayerParams {
                    beta_q: r.below((1 << 15) + 1) as i64,
                    threshold_q: 1 + r.below(1 << thr_bits) as i64,
                    mult: (0..no)
                        .map(|_| {
                            let bits = 10 + r.below(21);
                            1 + r.below(1 << bits) as i64
                        })
                        .collect(),
                    reset: if r.below(2) == 0 {
                        Reset::Subtract
                    } else {
                        Reset::Zero
                    },
                };
                layers.push((p, w));
                ni = no;
            }
            let fast = forward(&layers, timesteps, &input);
            spiking += fast.iter().map(|&c| u64::from(c)).sum::<u64>();
            assert_eq!(fast, reference(&layers, timesteps, &input), "case {case}");
        }
        assert!(spiking > 0, "the random networks never spike: a weak test");
    }
}
