//! Pooling hidden states across prefill chunks, and the post-processing of the pooled vector.
//!
//! A prompt may be prefilled in several chunks (chunked prefill) interleaved with other
//! requests. Rather than forcing whole prompts into one step, each request keeps a small
//! accumulator that sees every chunk's rows: the last row, the first row, or a running sum.
//! So mean pooling is exact whatever the chunking, and long prompts keep the token budget.

use super::PoolingType;

/// What a request has gathered of its prompt's hidden states so far.
#[derive(Debug, Clone)]
pub struct PoolAccumulator {
    kind: PoolingType,
    hidden_size: usize,
    /// Last / CLS: the chosen row; Mean: the running sum (f64 so long prompts lose nothing).
    sum: Vec<f64>,
    rows: usize,
}

impl PoolAccumulator {
    pub fn new(kind: PoolingType, hidden_size: usize) -> Self {
        PoolAccumulator {
            kind,
            hidden_size,
            sum: vec![0.0; hidden_size],
            rows: 0,
        }
    }

    /// Whether the forward pass must return every new row (else only each chunk's last).
    pub fn needs_all_rows(kind: PoolingType) -> bool {
        kind != PoolingType::Last
    }

    /// Takes the rows of one chunk (`rows.len()` a multiple of `hidden_size`).
    pub fn push(&mut self, rows: &[f32]) {
        let d = self.hidden_size;
        if d == 0 || rows.is_empty() {
            return;
        }
        let n = rows.len() / d;
        match self.kind {
            PoolingType::Last => {
                for (s, v) in self.sum.iter_mut().zip(&rows[(n - 1) * d..n * d]) {
                    *s = *v as f64;
                }
            }
            PoolingType::Cls if self.rows == 0 => {
                for (s, v) in self.sum.iter_mut().zip(&rows[..d]) {
                    *s = *v as f64;
                }
            }
            PoolingType::Cls => {}
            PoolingType::Mean => {
                for r in rows.chunks_exact(d) {
                    for (s, v) in self.sum.iter_mut().zip(r) {
                        *s += *v as f64;
                    }
                }
            }
        }
        self.rows += n;
    }

    /// The pooled vector (nothing pushed: zeros).
    pub fn finish(&self) -> Vec<f32> {
        let div = match self.kind {
            PoolingType::Mean => self.rows.max(1) as f64,
            _ => 1.0,
        };
        self.sum.iter().map(|s| (s / div) as f32).collect()
    }
}

/// Scales `v` to unit L2 norm (a zero vector stays zero), as torch's `F.normalize` does.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    let norm = norm.max(1e-12);
    for x in v.iter_mut() {
        *x = (*x as f64 / norm) as f32;
    }
}

/// vLLM's classification activation: sigmoid for a single label, softmax over several.
pub fn activate(logits: &mut [f32]) {
    if logits.len() == 1 {
        logits[0] = (1.0 / (1.0 + (-(logits[0] as f64)).exp())) as f32;
        return;
    }
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|l| (*l as f64 - max).exp()).sum();
    for l in logits.iter_mut() {
        *l = ((*l as f64 - max).exp() / z) as f32;
    }
}
