//! Dot products of one decoded weight row against several activation rows, each in a fixed
//! reduction order per instruction set ("canonical order"), whatever the number of rows.
//!
//! This is what makes the CPU backend batch-invariant: an output element is always the same
//! sequence of operations on the same values, whether its activation row is processed alone or
//! in a group with others, so a sequence's logits are bitwise identical at any batch size.
//!
//! Canonical order of `isa` with lane width `L` (8 for AVX2 and scalar, 16 for AVX-512): four
//! accumulators of `L` lanes; chunk `c` (elements `cL..cL+L`) goes to accumulator `c mod 4`,
//! multiplied and added lane-wise (fused on AVX2/AVX-512); at the end
//! `(a0 + a1) + (a2 + a3)` is reduced across lanes in a fixed tree, then the elements past the
//! last whole chunk are added one by one.

// Index loops over accumulator arrays read like the canonical order they implement.
#![allow(clippy::needless_range_loop)]

use super::isa::Isa;

/// How many activation rows one call of the widest kernel handles (registers allow 3 on AVX2).
pub(crate) fn group(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 4,
        _ => 3,
    }
}

/// `out[t] = w · xs[t]` for every `t` (at most [`group`] rows), in the canonical order of `isa`.
/// Every `xs[t]` must be at least as long as `w`.
#[inline]
pub(crate) fn dot_rows(isa: Isa, w: &[f32], xs: &[&[f32]], out: &mut [f32]) {
    let k = w.len();
    debug_assert!(xs.iter().all(|x| x.len() >= k));
    #[cfg(target_arch = "x86_64")]
    {
        let p = |t: usize| xs[t].as_ptr();
        // SAFETY: the active ISA is only ever one the CPU supports; every x row holds k floats.
        unsafe {
            match (isa, xs.len()) {
                (Isa::Avx2, 1) => {
                    return out[..1].copy_from_slice(&avx2::dot::<1>(w.as_ptr(), [p(0)], k))
                }
                (Isa::Avx2, 2) => {
                    return out[..2].copy_from_slice(&avx2::dot::<2>(w.as_ptr(), [p(0), p(1)], k))
                }
                (Isa::Avx2, 3) => {
                    return out[..3].copy_from_slice(&avx2::dot::<3>(
                        w.as_ptr(),
                        [p(0), p(1), p(2)],
                        k,
                    ))
                }
                (Isa::Avx512, 1) => {
                    return out[..1].copy_from_slice(&avx512::dot::<1>(w.as_ptr(), [p(0)], k))
                }
                (Isa::Avx512, 2) => {
                    return out[..2].copy_from_slice(&avx512::dot::<2>(w.as_ptr(), [p(0), p(1)], k))
                }
                (Isa::Avx512, 3) => {
                    return out[..3].copy_from_slice(&avx512::dot::<3>(
                        w.as_ptr(),
                        [p(0), p(1), p(2)],
                        k,
                    ))
                }
                (Isa::Avx512, 4) => {
                    return out[..4].copy_from_slice(&avx512::dot::<4>(
                        w.as_ptr(),
                        [p(0), p(1), p(2), p(3)],
                        k,
                    ))
                }
                _ => {}
            }
        }
    }
    for (o, x) in out.iter_mut().zip(xs) {
        *o = scalar_dot(w, &x[..k]);
    }
}

/// The scalar path: AVX2's canonical order with separate multiply and add.
pub(crate) fn scalar_dot(w: &[f32], x: &[f32]) -> f32 {
    const L: usize = 8;
    let k = w.len().min(x.len());
    let mut acc = [[0f32; L]; 4];
    let chunks = k / L;
    for c in 0..chunks {
        let a = &mut acc[c % 4];
        for l in 0..L {
            a[l] += w[c * L + l] * x[c * L + l];
        }
    }
    let mut v = [0f32; L];
    for l in 0..L {
        v[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
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

/// The canonical AVX2 reduction of the four accumulators (shared with the fused decoders).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn hsum4_avx2(acc: [std::arch::x86_64::__m256; 4]) -> f32 {
    avx2::hsum4(acc)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(super) unsafe fn hsum4(acc: [__m256; 4]) -> f32 {
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot<const N: usize>(
        w: *const f32,
        xs: [*const f32; N],
        k: usize,
    ) -> [f32; N] {
        let mut acc = [[_mm256_setzero_ps(); 4]; N];
        let mut i = 0;
        while i + 32 <= k {
            for j in 0..4 {
                let wv = _mm256_loadu_ps(w.add(i + 8 * j));
                for t in 0..N {
                    acc[t][j] =
                        _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[t].add(i + 8 * j)), acc[t][j]);
                }
            }
            i += 32;
        }
        let mut j = 0;
        while i + 8 <= k {
            let wv = _mm256_loadu_ps(w.add(i));
            for t in 0..N {
                acc[t][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[t].add(i)), acc[t][j]);
            }
            j += 1;
            i += 8;
        }
        let mut out = [0f32; N];
        for t in 0..N {
            let mut s = hsum4(acc[t]);
            for e in i..k {
                s += *w.add(e) * *xs[t].add(e);
            }
            out[t] = s;
        }
        out
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn dot<const N: usize>(
        w: *const f32,
        xs: [*const f32; N],
        k: usize,
    ) -> [f32; N] {
        let mut acc = [[_mm512_setzero_ps(); 4]; N];
        let mut i = 0;
        while i + 64 <= k {
            for j in 0..4 {
                let wv = _mm512_loadu_ps(w.add(i + 16 * j));
                for t in 0..N {
                    acc[t][j] =
                        _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[t].add(i + 16 * j)), acc[t][j]);
                }
            }
            i += 64;
        }
        let mut j = 0;
        while i + 16 <= k {
            let wv = _mm512_loadu_ps(w.add(i));
            for t in 0..N {
                acc[t][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xs[t].add(i)), acc[t][j]);
            }
            j += 1;
            i += 16;
        }
        let mut out = [0f32; N];
        for t in 0..N {
            let v = _mm512_add_ps(
                _mm512_add_ps(acc[t][0], acc[t][1]),
                _mm512_add_ps(acc[t][2], acc[t][3]),
            );
            // Fixed tree: 512 -> 256 -> 128 -> 64 -> 32.
            let h = _mm256_add_ps(
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            );
            let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
            let mut s = _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)));
            for e in i..k {
                s += *w.add(e) * *xs[t].add(e);
            }
            out[t] = s;
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
