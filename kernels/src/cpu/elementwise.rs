//! Row-wise operations of a decoder layer: RMSNorm, rotary embeddings, SwiGLU, residual adds.

use super::pool::pool;

/// Rows shorter than this are processed on the calling thread: spawning costs more.
const PAR_MIN_ROWS: usize = 8;

/// `out = x / sqrt(mean(x²) + eps) * weight`, row by row (rows of `weight.len()`).
///
/// The mean of squares is accumulated in f64: it is cheap here and removes one source of
/// disagreement with the float32 reference, whose reduction order we cannot reproduce anyway.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    let norm_row = |(xr, or): (&[f32], &mut [f32])| {
        let ms = xr.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / d as f64;
        let inv = 1.0 / ((ms as f32) + eps).sqrt();
        for ((o, v), w) in or.iter_mut().zip(xr).zip(weight) {
            *o = w * (v * inv);
        }
    };
    rowwise(x, d, out, d, &norm_row);
}

/// In-place RMSNorm (Qwen3's per-head q/k norm).
pub fn rms_norm_inplace(x: &mut [f32], weight: &[f32], eps: f32) {
    let d = weight.len();
    for row in x.chunks_mut(d) {
        let ms = row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / d as f64;
        let inv = 1.0 / ((ms as f32) + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v = w * (*v * inv);
        }
    }
}

/// Rotary embedding in the "neox" (rotate-half) layout used by Hugging Face Llama/Qwen:
/// for each head, pairs are (i, i + head_dim/2).
///
/// `x` is `tokens × n_heads × head_dim`; `cos`/`sin` are tables of `head_dim/2` values per
/// position, so scaled variants (linear, llama3, yarn, …) are decided by whoever fills them.
pub fn rope_neox_inplace(
    x: &mut [f32],
    n_heads: usize,
    head_dim: usize,
    positions: &[usize],
    cos: &[f32],
    sin: &[f32],
) {
    let half = head_dim / 2;
    let row = n_heads * head_dim;
    for (t, xt) in x.chunks_mut(row).enumerate() {
        let p = positions[t];
        let (c, s) = (
            &cos[p * half..(p + 1) * half],
            &sin[p * half..(p + 1) * half],
        );
        for head in xt.chunks_mut(head_dim) {
            let (x1, x2) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] - b * s[i];
                x2[i] = b * c[i] + a * s[i];
            }
        }
    }
}

/// SwiGLU: `out = silu(gate) * up`, where each input row is `[gate (d) | up (d)]` and each
/// output row has `d` values.
pub fn silu_mul(gate_up: &[f32], d: usize, out: &mut [f32]) {
    let act = |(gu, o): (&[f32], &mut [f32])| {
        let (gate, up) = gu.split_at(d);
        for ((o, g), u) in o.iter_mut().zip(gate).zip(up) {
            *o = g / (1.0 + (-g).exp()) * u;
        }
    };
    rowwise(gate_up, 2 * d, out, d, &act);
}

/// GeGLU with the tanh approximation of GELU (PyTorch's `gelu(approximate="tanh")`, the
/// `gelu_pytorch_tanh` of Gemma configs): `out = gelu_tanh(gate) * up`, rows as in [`silu_mul`].
pub fn gelu_tanh_mul(gate_up: &[f32], d: usize, out: &mut [f32]) {
    // sqrt(2 / pi), as PyTorch's kernel spells it (M_SQRT2 * M_2_SQRTPI * 0.5).
    const K: f32 = std::f32::consts::SQRT_2 * std::f32::consts::FRAC_2_SQRT_PI * 0.5;
    let act = |(gu, o): (&[f32], &mut [f32])| {
        let (gate, up) = gu.split_at(d);
        for ((o, g), u) in o.iter_mut().zip(gate).zip(up) {
            let inner = K * (g + 0.044715 * g * g * g);
            *o = 0.5 * g * (1.0 + inner.tanh()) * u;
        }
    };
    rowwise(gate_up, 2 * d, out, d, &act);
}

/// Soft-capping (Gemma 2): `x = cap * tanh(x / cap)`, which bounds every value to (-cap, cap)
/// while leaving small values almost unchanged.
pub fn softcap_inplace(x: &mut [f32], cap: f32) {
    for v in x {
        *v = (*v / cap).tanh() * cap;
    }
}

/// A row operation: (input row, output row).
type RowFn<'a> = dyn Fn((&[f32], &mut [f32])) + Sync + 'a;

/// Applies `f` to each (input row, output row) pair, spread over the pool when there are
/// enough rows to pay for it. Rows are independent, so the split never changes a result.
fn rowwise(x: &[f32], in_len: usize, out: &mut [f32], out_len: usize, f: &RowFn<'_>) {
    if in_len == 0 || out_len == 0 {
        return;
    }
    let rows = (x.len() / in_len).min(out.len() / out_len);
    if rows < PAR_MIN_ROWS {
        x.chunks(in_len).zip(out.chunks_mut(out_len)).for_each(f);
        return;
    }
    let out_ptr = RowsPtr(out.as_mut_ptr());
    pool().for_ranges(rows, 1, &|r| {
        let base = out_ptr;
        for i in r {
            // SAFETY: each share owns output rows of its own range; `out` outlives the job.
            let o = unsafe { std::slice::from_raw_parts_mut(base.0.add(i * out_len), out_len) };
            f((&x[i * in_len..(i + 1) * in_len], o));
        }
    });
}

#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);
// SAFETY: see `rowwise`.
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}

/// `acc += x`, element-wise.
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_of_constant_row_is_weight() {
        let x = vec![3.0f32; 4];
        let w = vec![1.0, 2.0, 0.5, -1.0];
        let mut out = vec![0.0; 4];
        rms_norm(&x, &w, 0.0, &mut out);
        for (o, w) in out.iter().zip(&w) {
            assert!((o - w).abs() < 1e-6);
        }
    }

    #[test]
    fn rope_rotates_pairs_by_the_table_angle() {
        // One head of dim 4: pairs (0,2) and (1,3); angle pi/2 for pair 0, 0 for pair 1.
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        let cos = vec![0.0, 1.0];
        let sin = vec![1.0, 0.0];
        rope_neox_inplace(&mut x, 1, 4, &[0], &cos, &sin);
        assert_eq!(x, vec![-3.0, 2.0, 1.0, 4.0]);
    }

    #[test]
    fn gelu_tanh_mul_and_softcap_match_definitions() {
        // gelu_tanh(1) = 0.5 * (1 + tanh(sqrt(2/pi) * 1.044715)) = 0.841192 (PyTorch).
        let gu = vec![1.0, -3.0, 2.0, 5.0];
        let mut out = vec![0.0; 2];
        gelu_tanh_mul(&gu, 2, &mut out);
        assert!((out[0] - 0.841_192 * 2.0).abs() < 1e-5, "{}", out[0]);
        assert!((out[1] - -0.003_637_392 * 5.0).abs() < 1e-5, "{}", out[1]);
        let mut x = vec![0.01, 100.0, -100.0];
        softcap_inplace(&mut x, 30.0);
        assert!((x[0] - 0.01).abs() < 1e-6 && x[1] < 30.0 && x[1] > 29.0 && x[2] == -x[1]);
    }

    #[test]
    fn silu_mul_matches_definition() {
        let gu = vec![0.0, 1.0, 2.0, 3.0];
        let mut out = vec![0.0; 2];
        silu_mul(&gu, 2, &mut out);
        assert_eq!(out[0], 0.0);
        let silu1 = 1.0 / (1.0 + (-1.0f32).exp());
        assert!((out[1] - silu1 * 3.0).abs() < 1e-6);
    }
}
