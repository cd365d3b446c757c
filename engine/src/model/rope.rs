//! Rotary position embedding tables, with the `rope_scaling` variants Hugging Face defines.
//!
//! Frequencies follow transformers' float32 arithmetic (exponent and reciprocal in f32, angle
//! = position × inv_freq in f32), because the golden logits were produced that way.

use crate::config::RopeScaling;

/// `cos`/`sin` of every (position, frequency) pair up to `max_positions`.
#[derive(Debug, Clone)]
pub struct RotaryTable {
    half: usize,
    max_positions: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RotaryTable {
    pub fn new(
        head_dim: usize,
        theta: f64,
        scaling: Option<&RopeScaling>,
        max_positions: usize,
    ) -> Self {
        let half = head_dim / 2;
        let (inv_freq, attention_factor) = inverse_frequencies(head_dim, theta, scaling);
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos() * attention_factor);
                sin.push(angle.sin() * attention_factor);
            }
        }
        RotaryTable {
            half,
            max_positions,
            cos,
            sin,
        }
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn cos(&self) -> &[f32] {
        &self.cos
    }

    pub fn sin(&self) -> &[f32] {
        &self.sin
    }

    pub fn half_dim(&self) -> usize {
        self.half
    }
}

/// Per-pair inverse frequencies and the factor applied to cos/sin (YaRN's attention scaling).
fn inverse_frequencies(
    head_dim: usize,
    theta: f64,
    scaling: Option<&RopeScaling>,
) -> (Vec<f32>, f32) {
    let d = head_dim as f32;
    let base_inv = |base: f32| -> Vec<f32> {
        (0..head_dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / d))
            .collect()
    };
    let theta32 = theta as f32;
    match scaling {
        None => (base_inv(theta32), 1.0),
        Some(RopeScaling::Linear { factor }) => (
            base_inv(theta32)
                .into_iter()
                .map(|f| f / *factor as f32)
                .collect(),
            1.0,
        ),
        Some(RopeScaling::Dynamic {
            factor,
            original_max_position_embeddings,
        }) => {
            // vLLM's static form of dynamic NTK: the base is scaled once for the longest
            // context (original × factor) instead of per sequence length, so cached keys
            // never need re-rotation.
            let orig = *original_max_position_embeddings as f64;
            let max_len = orig * factor;
            let base = theta
                * ((factor * max_len / orig) - (factor - 1.0))
                    .powf(head_dim as f64 / (head_dim as f64 - 2.0));
            (base_inv(base as f32), 1.0)
        }
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            let orig = *original_max_position_embeddings as f32;
            let (factor, low, high) = (
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
            );
            let low_wavelen = orig / low;
            let high_wavelen = orig / high;
            let inv = base_inv(theta32)
                .into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (orig / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
            (inv, 1.0)
        }
        Some(RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            beta_slow,
            mscale,
            mscale_all_dim,
            attention_factor,
        }) => {
            let get_mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attn = match (attention_factor, mscale, mscale_all_dim) {
                (Some(a), _, _) => *a,
                (None, Some(m), Some(ma)) => get_mscale(*factor, *m) / get_mscale(*factor, *ma),
                _ => get_mscale(*factor, 1.0),
            };
            let orig = *original_max_position_embeddings as f64;
            let dim = head_dim as f64;
            let correction_dim = |rot: f64| {
                dim * (orig / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
            };
            let low = correction_dim(*beta_fast).floor().max(0.0);
            let high = correction_dim(*beta_slow).ceil().min(dim - 1.0);
            let high = if (high - low).abs() < f64::EPSILON {
                high + 0.001
            } else {
                high
            };
            let inv = base_inv(theta32)
                .into_iter()
                .enumerate()
                .map(|(i, extrapolated)| {
                    let interpolated = extrapolated / *factor as f32;
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0) as f32;
                    let extrapolation_weight = 1.0 - ramp;
                    interpolated * (1.0 - extrapolation_weight)
                        + extrapolated * extrapolation_weight
                })
                .collect();
            (inv, attn as f32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_matches_closed_form() {
        let t = RotaryTable::new(8, 10000.0, None, 5);
        // pair 1 of position 3: angle = 3 / 10000^(2/8)
        let angle = 3.0f64 / 10000f64.powf(0.25);
        assert!((t.cos()[3 * 4 + 1] as f64 - angle.cos()).abs() < 1e-6);
        assert!((t.sin()[3 * 4 + 1] as f64 - angle.sin()).abs() < 1e-6);
    }

    #[test]
    fn linear_scaling_divides_positions() {
        let plain = RotaryTable::new(8, 10000.0, None, 9);
        let scaled = RotaryTable::new(8, 10000.0, Some(&RopeScaling::Linear { factor: 2.0 }), 9);
        // position 8 with factor 2 has the angles of position 4.
        for i in 0..4 {
            assert!((scaled.cos()[8 * 4 + i] - plain.cos()[4 * 4 + i]).abs() < 1e-6);
        }
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_scales_low_ones() {
        let s = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let (inv, _) = inverse_frequencies(128, 500000.0, Some(&s));
        let (base, _) = inverse_frequencies(128, 500000.0, None);
        assert_eq!(inv[0], base[0]);
        assert!((inv[63] - base[63] / 8.0).abs() < 1e-12);
    }
}
