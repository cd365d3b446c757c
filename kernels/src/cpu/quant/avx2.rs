//! AVX2 decoders. Each does the scalar decoder's arithmetic (same operations, same order, no
//! fused multiply-add), eight elements at a time, so the output is bit-identical to
//! [`super::decode_scalar`]. Formats without a decoder here (Q2_K, Q3_K, Q8_K: rare in files
//! people serve) fall back to the scalar one.

use super::BlockFormat;

/// Decodes with AVX2 when this module has a decoder for `format`; `false` means "not handled".
/// The caller guarantees the CPU has AVX2, FMA and F16C (it only calls this for `Isa::Avx2`+).
#[cfg(target_arch = "x86_64")]
pub(super) fn decode(format: BlockFormat, src: &[u8], dst: &mut [f32]) -> bool {
    use BlockFormat::*;
    let (be, bb) = (format.block_elems(), format.block_bytes());
    let blocks = (src.len() / bb).min(dst.len() / be);
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: `blocks` whole blocks fit in both buffers; the CPU features were checked by the
    // caller (Isa::Avx2 or wider is only ever active when supported).
    unsafe {
        match format {
            F32 => std::ptr::copy_nonoverlapping(s, d as *mut u8, blocks * 4),
            F16 => f16_rows(s, d, blocks),
            BF16 => bf16_rows(s, d, blocks),
            Q4_0 => legacy4(s, d, blocks, 18, false),
            Q4_1 => legacy4(s, d, blocks, 20, true),
            Q5_0 => legacy5(s, d, blocks, 22, false),
            Q5_1 => legacy5(s, d, blocks, 24, true),
            Q8_0 => q8_0(s, d, blocks),
            Q4_K => q4_k(s, d, blocks),
            Q5_K => q5_k(s, d, blocks),
            Q6_K => q6_k(s, d, blocks),
            Q2_K | Q3_K | Q8_K => return false,
        }
    }
    true
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn decode(_format: BlockFormat, _src: &[u8], _dst: &mut [f32]) -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    half::f16::from_le_bytes([*p, *p.add(1)]).to_f32()
}

/// Eight bytes at `p` widened to eight u32 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn u8x8(p: *const u8) -> __m256i {
    _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_rows(s: *const u8, d: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(
            d.add(i),
            _mm256_cvtph_ps(_mm_loadu_si128(s.add(2 * i) as *const __m128i)),
        );
        i += 8;
    }
    while i < n {
        *d.add(i) = f16_at(s.add(2 * i));
        i += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_rows(s: *const u8, d: *mut f32, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(s.add(2 * i) as *const __m128i));
        _mm256_storeu_ps(d.add(i), _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
        i += 8;
    }
    while i < n {
        *d.add(i) =
            f32::from_bits(u32::from(u16::from_le_bytes([*s.add(2 * i), *s.add(2 * i + 1)])) << 16);
        i += 1;
    }
}

/// Q4_0 (`d·(q−8)`) and Q4_1 (`d·q + m`): byte j holds element j (low nibble) and j+16 (high).
/// Emits (element offset, 8 values) in increasing offsets.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn legacy4_block(p: *const u8, with_min: bool, mut emit: impl FnMut(usize, __m256)) {
    let mask = _mm_set1_epi8(0x0F);
    let dv = _mm256_set1_ps(f16_at(p));
    let (mv, qs) = if with_min {
        (_mm256_set1_ps(f16_at(p.add(2))), p.add(4))
    } else {
        (_mm256_setzero_ps(), p.add(2))
    };
    let v = _mm_loadu_si128(qs as *const __m128i);
    let lo = _mm_and_si128(v, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
    for (g, half) in [
        (0, lo),
        (1, _mm_srli_si128(lo, 8)),
        (2, hi),
        (3, _mm_srli_si128(hi, 8)),
    ] {
        let q = _mm256_cvtepu8_epi32(half);
        let y = if with_min {
            _mm256_add_ps(_mm256_mul_ps(dv, _mm256_cvtepi32_ps(q)), mv)
        } else {
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(8))),
                dv,
            )
        };
        emit(8 * g, y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy4(s: *const u8, d: *mut f32, blocks: usize, bytes: usize, with_min: bool) {
    for b in 0..blocks {
        let out = d.add(b * 32);
        legacy4_block(s.add(b * bytes), with_min, |o, y| {
            _mm256_storeu_ps(out.add(o), y)
        });
    }
}

/// The fifth bits of elements `8g..8g+8` of a Q5 block (`qh` bit j for element j), as 0 or 16.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn fifth(qh: __m256i, g: i32) -> __m256i {
    let shifts = _mm256_add_epi32(
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        _mm256_set1_epi32(8 * g),
    );
    _mm256_slli_epi32(
        _mm256_and_si256(_mm256_srlv_epi32(qh, shifts), _mm256_set1_epi32(1)),
        4,
    )
}

/// Q5_0 (`d·(q−16)`) and Q5_1 (`d·q + m`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn legacy5_block(p: *const u8, with_min: bool, mut emit: impl FnMut(usize, __m256)) {
    let mask = _mm_set1_epi8(0x0F);
    let dv = _mm256_set1_ps(f16_at(p));
    let (mv, hp) = if with_min {
        (_mm256_set1_ps(f16_at(p.add(2))), p.add(4))
    } else {
        (_mm256_setzero_ps(), p.add(2))
    };
    let qh = _mm256_set1_epi32(i32::from_le_bytes([
        *hp,
        *hp.add(1),
        *hp.add(2),
        *hp.add(3),
    ]));
    let v = _mm_loadu_si128(hp.add(4) as *const __m128i);
    let lo = _mm_and_si128(v, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
    for (g, half) in [
        (0, lo),
        (1, _mm_srli_si128(lo, 8)),
        (2, hi),
        (3, _mm_srli_si128(hi, 8)),
    ] {
        let q = _mm256_or_si256(_mm256_cvtepu8_epi32(half), fifth(qh, g));
        let y = if with_min {
            _mm256_add_ps(_mm256_mul_ps(dv, _mm256_cvtepi32_ps(q)), mv)
        } else {
            _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(16))),
                dv,
            )
        };
        emit(8 * g as usize, y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy5(s: *const u8, d: *mut f32, blocks: usize, bytes: usize, with_min: bool) {
    for b in 0..blocks {
        let out = d.add(b * 32);
        legacy5_block(s.add(b * bytes), with_min, |o, y| {
            _mm256_storeu_ps(out.add(o), y)
        });
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn q8_0_block(p: *const u8, mut emit: impl FnMut(usize, __m256)) {
    let dv = _mm256_set1_ps(f16_at(p));
    for g in 0..4 {
        let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(2 + 8 * g) as *const __m128i));
        emit(8 * g, _mm256_mul_ps(_mm256_cvtepi32_ps(q), dv));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(s: *const u8, d: *mut f32, blocks: usize) {
    for b in 0..blocks {
        let out = d.add(b * 32);
        q8_0_block(s.add(b * 34), |o, y| _mm256_storeu_ps(out.add(o), y));
    }
}

/// Q4_K (`FIFTH = false`) and Q5_K (`true`): `d·sc·q − dmin·mn` per 32 elements. Nibble byte
/// `32c + l` holds elements `64c + l` (low) and `64c + 32 + l` (high); Q5_K's fifth bits sit in
/// the 32 bytes before the nibbles, byte `16 + l` bit `j` belonging to element `32j + l`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn k4_block<const FIFTH: bool>(p: *const u8, mut emit: impl FnMut(usize, __m256)) {
    let mask = _mm256_set1_epi32(0x0F);
    let one = _mm256_set1_epi32(1);
    let (dd, dmin) = (f16_at(p), f16_at(p.add(2)));
    // SAFETY: a Q4_K/Q5_K block is at least 16 bytes (d, dmin, 12 bytes of scales).
    let (sc, mn) = super::scalar_k::scale_min_k4(&*(p as *const [u8; 16]));
    let qs = p.add(if FIFTH { 48 } else { 16 });
    // Quant value of elements `l..l+8` of half `h` (0: low nibbles, 1: high) of chunk `c`.
    let quant = |c: usize, h: usize, l: usize| {
        let q = u8x8(qs.add(32 * c + l));
        let nib = if h == 0 {
            _mm256_and_si256(q, mask)
        } else {
            _mm256_srli_epi32(q, 4)
        };
        if !FIFTH {
            return nib;
        }
        let shift = _mm_cvtsi32_si128((2 * c + h) as i32);
        let hb = _mm256_and_si256(_mm256_srl_epi32(u8x8(p.add(16 + l)), shift), one);
        _mm256_or_si256(nib, _mm256_slli_epi32(hb, 4))
    };
    for c in 0..4 {
        // Offsets in increasing order (the fused dot's accumulators need it): the low nibbles
        // of the 32 bytes first, then the high ones.
        for h in 0..2 {
            let dv = _mm256_set1_ps(dd * sc[2 * c + h] as f32);
            let mv = _mm256_set1_ps(dmin * mn[2 * c + h] as f32);
            for l in (0..32).step_by(8) {
                let q = _mm256_cvtepi32_ps(quant(c, h, l));
                emit(64 * c + 32 * h + l, _mm256_sub_ps(_mm256_mul_ps(dv, q), mv));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k(s: *const u8, d: *mut f32, blocks: usize) {
    for b in 0..blocks {
        let out = d.add(b * 256);
        k4_block::<false>(s.add(b * 144), |o, y| _mm256_storeu_ps(out.add(o), y));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k(s: *const u8, d: *mut f32, blocks: usize) {
    for b in 0..blocks {
        let out = d.add(b * 256);
        k4_block::<true>(s.add(b * 176), |o, y| _mm256_storeu_ps(out.add(o), y));
    }
}

/// Q6_K: `d·scale·(q − 32)`, layout as in the scalar decoder.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn q6_k_block(p: *const u8, mut emit: impl FnMut(usize, __m256)) {
    let mask = _mm256_set1_epi32(0x0F);
    let three = _mm256_set1_epi32(3);
    let k32 = _mm256_set1_epi32(32);
    let dd = f16_at(p.add(208));
    let mut ds = [0f32; 16];
    for (g, o) in ds.iter_mut().enumerate() {
        *o = dd * (*p.add(192 + g) as i8) as f32;
    }
    for h in 0..2 {
        let (ql, qh, base) = (p.add(h * 64), p.add(128 + h * 32), h * 128);
        // Quarter j of the half: nibble source (low/high of bytes 0..32 or 32..64) and the
        // high-bit pair; offsets in increasing order for the fused dot's accumulators.
        for j in 0..4 {
            let (src, shift) = (ql.add(32 * (j % 2)), 4 * (j / 2) as i32);
            for l in (0..32).step_by(8) {
                let g = h * 8 + l / 16;
                let nib = _mm256_and_si256(
                    _mm256_srl_epi32(u8x8(src.add(l)), _mm_cvtsi32_si128(shift)),
                    mask,
                );
                let hb = _mm256_and_si256(
                    _mm256_srl_epi32(u8x8(qh.add(l)), _mm_cvtsi32_si128(2 * j as i32)),
                    three,
                );
                let q = _mm256_or_si256(nib, _mm256_slli_epi32(hb, 4));
                let y = _mm256_mul_ps(
                    _mm256_set1_ps(ds[g + 2 * j]),
                    _mm256_cvtepi32_ps(_mm256_sub_epi32(q, k32)),
                );
                emit(base + 32 * j + l, y);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k(s: *const u8, d: *mut f32, blocks: usize) {
    for b in 0..blocks {
        let out = d.add(b * 256);
        q6_k_block(s.add(b * 210), |o, y| _mm256_storeu_ps(out.add(o), y));
    }
}

/// `w · x` for one stored row, decoding in registers (no trip through memory), in the
/// canonical AVX2 order of `cpu::dot`: chunk `c` of 8 elements goes to accumulator `c mod 2`,
/// and every accumulator receives its chunks in increasing order (the block decoders emit
/// offsets so that this holds), so the result is bitwise the one of decoding the row first and
/// then calling the dot kernel. `None` for formats without a fused kernel here.
#[cfg(target_arch = "x86_64")]
pub(crate) fn fused_dot(format: BlockFormat, row: &[u8], x: &[f32]) -> Option<f32> {
    use BlockFormat::*;
    let (be, bb) = (format.block_elems(), format.block_bytes());
    if be < 32 || !row.len().is_multiple_of(bb) || x.len() < row.len() / bb * be {
        return None;
    }
    let blocks = row.len() / bb;
    // SAFETY: `blocks` whole blocks are in `row` and `x` holds their elements; callers only use
    // this on Isa::Avx2 or wider, which the CPU was checked to support.
    unsafe {
        Some(match format {
            Q4_0 => fused_q4_0(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q4_1 => fused_q4_1(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q5_0 => fused_q5_0(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q5_1 => fused_q5_1(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q8_0 => fused_q8_0(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q4_K => fused_q4_k(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q5_K => fused_q5_k(row.as_ptr(), blocks, bb, x.as_ptr()),
            Q6_K => fused_q6_k(row.as_ptr(), blocks, bb, x.as_ptr()),
            _ => return None,
        })
    }
}

/// One fused row-dot function per format: the block decoder's emitted vectors go straight
/// into the four accumulators (static dispatch, so the decoder inlines into the loop).
macro_rules! fused_fn {
    ($name:ident, $be:expr, |$p:ident, $emit:ident| $call:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name(row: *const u8, blocks: usize, bb: usize, x: *const f32) -> f32 {
            let mut acc = [_mm256_setzero_ps(); 2];
            for b in 0..blocks {
                let xb = x.add(b * $be);
                let $p = row.add(b * bb);
                let $emit = |o: usize, w: __m256| {
                    let j = (o / 8) % 2;
                    acc[j] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xb.add(o)), acc[j]);
                };
                $call;
            }
            crate::cpu::dot::hsum2_avx2(acc)
        }
    };
}

fused_fn!(fused_q4_0, 32, |p, e| legacy4_block(p, false, e));
fused_fn!(fused_q4_1, 32, |p, e| legacy4_block(p, true, e));
fused_fn!(fused_q5_0, 32, |p, e| legacy5_block(p, false, e));
fused_fn!(fused_q5_1, 32, |p, e| legacy5_block(p, true, e));
fused_fn!(fused_q8_0, 32, |p, e| q8_0_block(p, e));
fused_fn!(fused_q4_k, 256, |p, e| k4_block::<false>(p, e));
fused_fn!(fused_q5_k, 256, |p, e| k4_block::<true>(p, e));
fused_fn!(fused_q6_k, 256, |p, e| q6_k_block(p, e));
