//! Dot products of decoded weight rows against activation rows, each output in a fixed
//! reduction order per instruction set ("canonical order"), whatever the number of rows.
//!
//! This is what makes the CPU backend batch-invariant: an output element is always the same
//! sequence of operations on the same values, whether its activation row is processed alone or
//! in a group with others, and whether its weight row is paired with another, so a sequence's
//! logits are bitwise identical at any batch size.
//!
//! Canonical order of `isa` with lane width `L` (8 for AVX2 and scalar, 16 for AVX-512): two
//! accumulators of `L` lanes; chunk `c` (elements `cL..cL+L`) goes to accumulator `c mod 2`,
//! multiplied and added lane-wise (fused on AVX2/AVX-512), each accumulator receiving its chunks
//! in increasing order; at the end `a0 + a1` is reduced across lanes in a fixed tree, then the
//! elements past the last whole chunk are added one by one. Two accumulators (not four) leave
//! registers for a 2-row x 3-token block on AVX2, so each loaded weight vector serves three
//! activation rows and each loaded activation vector two weight rows.

// Index loops over accumulator arrays read like the canonical order they implement.
#![allow(clippy::needless_range_loop)]

use super::isa::Isa;

/// How many activation rows one call of the widest kernel handles.
pub(crate) fn group(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 4,
        _ => 3,
    }
}

/// `out[r * xs.len() + t] = ws[r] · xs[t]` for one or two weight rows and at most [`group`]
/// activation rows, in the canonical order of `isa`. Every row must hold `ws[0].len()` floats.
#[inline]
pub(crate) fn dot_block(isa: Isa, ws: &[&[f32]], xs: &[&[f32]], out: &mut [f32]) {
    let k = ws[0].len();
    debug_assert!(xs.iter().all(|x| x.len() >= k) && ws.iter().all(|w| w.len() == k));
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! call {
            ($m:ident, $r:literal, $n:literal) => {{
                let w: [*const f32; $r] = std::array::from_fn(|i| ws[i].as_ptr());
                let x: [*const f32; $n] = std::array::from_fn(|i| xs[i].as_ptr());
                // SAFETY: the active ISA is only ever one the CPU supports; rows hold k floats.
                let v = unsafe { $m::dot::<$r, $n>(w, x, k) };
                for r in 0..$r {
                    out[r * $n..(r + 1) * $n].copy_from_slice(&v[r]);
                }
                return;
            }};
        }
        match (isa, ws.len(), xs.len()) {
            (Isa::Avx2, 1, 1) => call!(avx2, 1, 1),
            (Isa::Avx2, 1, 2) => call!(avx2, 1, 2),
            (Isa::Avx2, 1, 3) => call!(avx2, 1, 3),
            (Isa::Avx2, 2, 1) => call!(avx2, 2, 1),
            (Isa::Avx2, 2, 2) => call!(avx2, 2, 2),
            (Isa::Avx2, 2, 3) => call!(avx2, 2, 3),
            (Isa::Avx512, 1, 1) => call!(avx512, 1, 1),
            (Isa::Avx512, 1, 2) => call!(avx512, 1, 2),
            (Isa::Avx512, 1, 3) => call!(avx512, 1, 3),
            (Isa::Avx512, 1, 4) => call!(avx512, 1, 4),
            (Isa::Avx512, 2, 1) => call!(avx512, 2, 1),
            (Isa::Avx512, 2, 2) => call!(avx512, 2, 2),
            (Isa::Avx512, 2, 3) => call!(avx512, 2, 3),
            (Isa::Avx512, 2, 4) => call!(avx512, 2, 4),
            _ => {}
        }
    }
    let n = xs.len();
    for (r, w) in ws.iter().enumerate() {
        for (t, x) in xs.iter().enumerate() {
            out[r * n + t] = scalar_dot(w, &x[..k]);
        }
    }
}

/// `w · x` for one row pair (see [`dot_block`]).
#[inline]
pub(crate) fn dot_rows(isa: Isa, w: &[f32], xs: &[&[f32]], out: &mut [f32]) {
    dot_block(isa, &[w], xs, out)
}

/// The scalar path: AVX2's canonical order with separate multiply and add.
pub(crate) fn scalar_dot(w: &[f32], x: &[f32]) -> f32 {
    const L: usize = 8;
    let k = w.len().min(x.len());
    let mut acc = [[0f32; L]; 2];
    let chunks = k / L;
    for c in 0..chunks {
        let a = &mut acc[c % 2];
        for l in 0..L {
            a[l] += w[c * L + l] * x[c * L + l];
        }
    }
    let mut v = [0f32; L];
    for l in 0..L {
        v[l] = acc[0][l] + acc[1][l];
    }
    // The same tree as AVX2's hsum: halves, then pairs, then the last two.
    let q = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    let p = [q[0] + q[2], q[1] + q[3]];
    let mut s = p[0] + p[1];
    for i in chunks * L..k {
        s += w[i] * x[i];
    }
    s
}

/// The canonical AVX2 reduction of the two accumulators (shared with the fused decoders).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn hsum2_avx2(acc: [std::arch::x86_64::__m256; 2]) -> f32 {
    avx2::hsum2(acc)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(super) unsafe fn hsum2(acc: [__m256; 2]) -> f32 {
        let v = _mm256_add_ps(acc[0], acc[1]);
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot<const R: usize, const N: usize>(
        ws: [*const f32; R],
        xs: [*const f32; N],
        k: usize,
    ) -> [[f32; N]; R] {
        let mut acc = [[[_mm256_setzero_ps(); 2]; N]; R];
        let mut i = 0;
        while i + 16 <= k {
            for j in 0..2 {
                let wv: [__m256; R] =
                    std::array::from_fn(|r| _mm256_loadu_ps(ws[r].add(i + 8 * j)));
                for t in 0..N {
                    let xv = _mm256_loadu_ps(xs[t].add(i + 8 * j));
                    for r in 0..R {
                        acc[r][t][j] = _mm256_fmadd_ps(wv[r], xv, acc[r][t][j]);
                    }
                }
            }
            i += 16;
        }
        if i + 8 <= k {
            for t in 0..N {
                let xv = _mm256_loadu_ps(xs[t].add(i));
                for r in 0..R {
                    acc[r][t][0] = _mm256_fmadd_ps(_mm256_loadu_ps(ws[r].add(i)), xv, acc[r][t][0]);
                }
            }
            i += 8;
        }
        let mut out = [[0f32; N]; R];
        for r in 0..R {
            for t in 0..N {
                let mut s = hsum2(acc[r][t]);
                for e in i..k {
                    s += *ws[r].add(e) * *xs[t].add(e);
                }
                out[r][t] = s;
            }
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn dot<const R: usize, const N: usize>(
        ws: [*const f32; R],
        xs: [*const f32; N],
        k: usize,
    ) -> [[f32; N]; R] {
        let mut acc = [[[_mm512_setzero_ps(); 2]; N]; R];
        let mut i = 0;
        while i + 32 <= k {
            for j in 0..2 {
                let wv: [__m512; R] =
                    std::array::from_fn(|r| _mm512_loadu_ps(ws[r].add(i + 16 * j)));
                for t in 0..N {
                    let xv = _mm512_loadu_ps(xs[t].add(i + 16 * j));
                    for r in 0..R {
                        acc[r][t][j] = _mm512_fmadd_ps(wv[r], xv, acc[r][t][j]);
                    }
                }
            }
            i += 32;
        }
        if i + 16 <= k {
            for t in 0..N {
                let xv = _mm512_loadu_ps(xs[t].add(i));
                for r in 0..R {
                    acc[r][t][0] = _mm512_fmadd_ps(_mm512_loadu_ps(ws[r].add(i)), xv, acc[r][t][0]);
                }
            }
            i += 16;
        }
        let mut out = [[0f32; N]; R];
        for r in 0..R {
            for t in 0..N {
                let v = _mm512_add_ps(acc[r][t][0], acc[r][t][1]);
                // Fixed tree: 512 -> 256 -> 128 -> 64 -> 32.
                let h = _mm256_add_ps(
                    _mm512_castps512_ps256(v),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
                );
                let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
                let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
                let mut s = _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)));
                for e in i..k {
                    s += *ws[r].add(e) * *xs[t].add(e);
                }
                out[r][t] = s;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 1009) as f32 - 504.0) / 317.0)
            .collect()
    }

    #[test]
    fn every_isa_matches_f64_and_is_group_invariant() {
        for k in [0usize, 1, 7, 8, 31, 32, 33, 64, 100, 576, 1000] {
            let w = vals(k, 1);
            let xs: Vec<Vec<f32>> = (0..4).map(|s| vals(k, s + 2)).collect();
            for isa in Isa::available() {
                let g = group(isa);
                let refs: Vec<&[f32]> = xs.iter().take(g).map(|x| x.as_slice()).collect();
                let mut grouped = vec![0f32; g];
                dot_rows(isa, &w, &refs, &mut grouped);
                for (t, x) in refs.iter().enumerate() {
                    let exact: f64 = w
                        .iter()
                        .zip(x.iter())
                        .map(|(a, b)| *a as f64 * *b as f64)
                        .sum();
                    assert!(
                        (grouped[t] as f64 - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                        "{isa} k={k}"
                    );
                    let mut alone = [0f32; 1];
                    dot_rows(isa, &w, &[x], &mut alone);
                    assert_eq!(
                        alone[0].to_bits(),
                        grouped[t].to_bits(),
                        "{isa} k={k} t={t}: not batch-invariant"
                    );
                }
            }
        }
    }
}
