//! One forward call on the GPU: the same batch contract as the CPU `CausalLm::forward` (any mix
//! of prompt chunks and decode tokens, logits for the last or all new tokens of a sequence).

use kernels::cpu::PagedKvLayout;
use kernels::cuda::cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};
use kernels::cuda::{AttentionBatch, CudaError, DecodeWork, Gemm, GpuDevice, PrefillWork};

use super::{GpuKvCache, GpuModel};
use crate::model::{Logits, SequenceInput};

/// Query rows per prefill tile (TQ in attention.cu).
const PREFILL_TILE: usize = 16;
/// Keys per split of the decode kernel when a step has few rows to spread over the GPU.
const MIN_SPLIT_KEYS: usize = 256;
/// The most splits of one row's keys (bounds the scratch of partial results).
const MAX_SPLITS: usize = 32;

/// Device buffers of one call, with their total size (the activation peak of the call).
struct Workspace<'a> {
    dev: &'a GpuDevice,
    bytes: usize,
}

impl Workspace<'_> {
    fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &mut self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        self.bytes += len.max(1) * std::mem::size_of::<T>();
        self.dev.alloc_zeros(len)
    }

    /// A buffer that the call overwrites completely before reading it (see each use).
    ///
    /// # Safety
    /// Every element must be written before it is read.
    unsafe fn uninit<T: DeviceRepr>(&mut self, len: usize) -> Result<CudaSlice<T>, CudaError> {
        self.bytes += len.max(1) * std::mem::size_of::<T>();
        // SAFETY: forwarded to the caller.
        unsafe { self.dev.alloc_uninit(len) }
    }

    fn upload<T: DeviceRepr>(&mut self, data: &[T]) -> Result<CudaSlice<T>, CudaError> {
        self.bytes += data.len().max(1) * std::mem::size_of::<T>();
        self.dev.upload(data)
    }
}

/// The host-side description of a batch, flattened the way the kernels read it.
struct BatchPlan {
    ids: Vec<u32>,
    positions: Vec<u32>,
    slots: Vec<i64>,
    ctx_len: Vec<u32>,
    q_start: Vec<u32>,
    q_len: Vec<u32>,
    block_tables: Vec<u32>,
    max_blocks: usize,
    decode_rows: Vec<u32>,
    decode_seq: Vec<u32>,
    max_decode_ctx: usize,
    tile_seq: Vec<u32>,
    tile_q0: Vec<u32>,
    /// Rows whose logits are returned, and each sequence's (first, count) among them.
    picked: Vec<u32>,
    ranges: Vec<(usize, usize)>,
}

fn plan(seqs: &[SequenceInput<'_>], block_size: usize) -> BatchPlan {
    let total: usize = seqs.iter().map(|s| s.tokens.len()).sum();
    let max_blocks = seqs
        .iter()
        .map(|s| (s.start_pos + s.tokens.len()).div_ceil(block_size))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut p = BatchPlan {
        ids: Vec::with_capacity(total),
        positions: Vec::with_capacity(total),
        slots: Vec::with_capacity(total),
        ctx_len: Vec::with_capacity(seqs.len()),
        q_start: Vec::with_capacity(seqs.len()),
        q_len: Vec::with_capacity(seqs.len()),
        block_tables: vec![0; seqs.len() * max_blocks],
        max_blocks,
        decode_rows: Vec::new(),
        decode_seq: Vec::new(),
        max_decode_ctx: 0,
        tile_seq: Vec::new(),
        tile_q0: Vec::new(),
        picked: Vec::new(),
        ranges: Vec::with_capacity(seqs.len()),
    };
    let mut row = 0usize;
    for (si, s) in seqs.iter().enumerate() {
        let n = s.tokens.len();
        let end = s.start_pos + n;
        let used = end.div_ceil(block_size);
        p.block_tables[si * max_blocks..si * max_blocks + used]
            .copy_from_slice(&s.block_table[..used]);
        p.ctx_len.push(end as u32);
        p.q_start.push(row as u32);
        p.q_len.push(n as u32);
        for (i, &tok) in s.tokens.iter().enumerate() {
            let pos = s.start_pos + i;
            p.ids.push(tok);
            p.positions.push(pos as u32);
            p.slots.push(
                (s.block_table[pos / block_size] as usize * block_size + pos % block_size) as i64,
            );
        }
        if n == 1 {
            p.decode_rows.push(row as u32);
            p.decode_seq.push(si as u32);
            p.max_decode_ctx = p.max_decode_ctx.max(end);
        } else {
            for q0 in (0..n).step_by(PREFILL_TILE) {
                p.tile_seq.push(si as u32);
                p.tile_q0.push(q0 as u32);
            }
        }
        let take = if s.all_logits {
            0..n
        } else {
            n.saturating_sub(1)..n
        };
        p.ranges.push((p.picked.len(), take.len()));
        p.picked.extend(take.map(|r| (row + r) as u32));
        row += n;
    }
    p
}

/// Splits of the decode rows' keys: enough blocks to fill the GPU when there are few rows.
fn decode_splits(rows: usize, heads: usize, max_ctx: usize, sms: usize) -> (usize, usize) {
    let blocks = rows * heads;
    let want = (4 * sms).div_ceil(blocks.max(1));
    let by_len = max_ctx.div_ceil(MIN_SPLIT_KEYS);
    let splits = want.min(by_len).clamp(1, MAX_SPLITS);
    (splits, max_ctx.div_ceil(splits).max(1))
}

impl GpuModel {
    /// Runs the batch against `kv` (`num_blocks` blocks of `layout`); returns the logits and
    /// the bytes of workspace the call allocated.
    pub fn forward_on(
        &self,
        seqs: &[SequenceInput<'_>],
        kv: &mut GpuKvCache,
        layout: PagedKvLayout,
        num_blocks: usize,
    ) -> Result<(Logits, usize), CudaError> {
        let c = &self.config;
        let dev = &self.dev;
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (nh, nkv) = (c.num_attention_heads, c.num_key_value_heads);
        let (q_dim, kv_dim) = (nh * hd, nkv * hd);
        let qkv_dim = q_dim + 2 * kv_dim;
        let inter = c.intermediate_size;
        let eps = c.rms_norm_eps as f32;
        let bs = layout.block_size;
        if kv.k.len() != self.layers.len() || num_blocks == 0 {
            return Err(CudaError::Invalid {
                what: "KV cache",
                detail: "not allocated for this model".into(),
            });
        }
        let p = plan(seqs, bs);
        let t = p.ids.len();
        if t == 0 {
            return Ok((
                Logits {
                    vocab_size: c.vocab_size,
                    data: Vec::new(),
                    ranges: p.ranges,
                },
                0,
            ));
        }

        let mut ws = Workspace { dev, bytes: 0 };
        let ids = ws.upload(&p.ids)?;
        let positions = ws.upload(&p.positions)?;
        let slots = ws.upload(&p.slots)?;
        let ctx_len = ws.upload(&p.ctx_len)?;
        let q_start = ws.upload(&p.q_start)?;
        let q_len = ws.upload(&p.q_len)?;
        let block_tables = ws.upload(&p.block_tables)?;
        let decode_rows = ws.upload(&p.decode_rows)?;
        let decode_seq = ws.upload(&p.decode_seq)?;
        let tile_seq = ws.upload(&p.tile_seq)?;
        let tile_q0 = ws.upload(&p.tile_q0)?;
        let picked = ws.upload(&p.picked)?;

        let (splits, split_keys) =
            decode_splits(p.decode_rows.len(), nh, p.max_decode_ctx, dev.info.sm_count);
        // SAFETY (the buffers below): each is written in full before any read: `residual` by
        // the embedding of all t rows, `normed` by the first add_rms_norm, `qkv`, `proj`,
        // `gate_up` and `logits` by GEMMs over all their rows, `attn` by attention (every row
        // is a decode row or inside a prefill tile), `act` by silu_mul and `picked_normed` by
        // gather_rms_norm over all r rows. Only the split-K scratch stays zeroed: the reduce
        // kernel may read splits that hold no keys.
        let residual = unsafe { ws.uninit::<f32>(t * d)? };
        let normed = unsafe { ws.uninit::<u16>(t * d)? };
        let qkv = unsafe { ws.uninit::<u16>(t * qkv_dim)? };
        let attn = unsafe { ws.uninit::<u16>(t * q_dim)? };
        let proj = unsafe { ws.uninit::<u16>(t * d)? };
        let gate_up = unsafe { ws.uninit::<u16>(t * 2 * inter)? };
        let act = unsafe { ws.uninit::<u16>(t * inter)? };
        let (tmp_acc, tmp_ml) = if splits > 1 {
            let rows = p.decode_rows.len();
            (
                ws.zeros::<f32>(rows * nh * splits * hd)?,
                ws.zeros::<f32>(rows * nh * splits * 2)?,
            )
        } else {
            (ws.zeros::<f32>(1)?, ws.zeros::<f32>(1)?)
        };
        let r = p.picked.len();
        let picked_normed = unsafe { ws.uninit::<u16>(r * d)? };
        let logits = unsafe { ws.uninit::<f32>(r * c.vocab_size)? };

        let ptr = |b: &CudaSlice<u16>| dev.ptr(b);
        let (res_p, normed_p, qkv_p, attn_p, proj_p, gu_p, act_p) = (
            dev.ptr(&residual),
            ptr(&normed),
            ptr(&qkv),
            ptr(&attn),
            ptr(&proj),
            ptr(&gate_up),
            ptr(&act),
        );
        let gemm = |x: u64, w: &CudaSlice<u16>, y: u64, n: usize, k: usize| {
            dev.gemm(Gemm {
                x,
                w: dev.ptr(w),
                y,
                m: t,
                n,
                k,
                f32_out: false,
            })
        };

        dev.embedding(dev.ptr(&self.embed), false, dev.ptr(&ids), res_p, t, d)?;
        let decode = DecodeWork {
            rows: p.decode_rows.len(),
            row_ids: dev.ptr(&decode_rows),
            row_seq: dev.ptr(&decode_seq),
            num_splits: splits,
            split_keys,
            tmp_acc: dev.ptr(&tmp_acc),
            tmp_ml: dev.ptr(&tmp_ml),
        };
        let prefill = PrefillWork {
            tiles: p.tile_seq.len(),
            tile_seq: dev.ptr(&tile_seq),
            tile_q0: dev.ptr(&tile_q0),
        };
        for (li, layer) in self.layers.iter().enumerate() {
            // The previous layer's MLP output joins the residual stream inside the norm.
            let delta = (li > 0).then_some(proj_p);
            dev.add_rms_norm(
                delta,
                res_p,
                dev.ptr(&layer.input_norm),
                normed_p,
                t,
                d,
                eps,
            )?;
            gemm(normed_p, &layer.qkv, qkv_p, qkv_dim, d)?;
            if let Some(b) = &layer.qkv_bias {
                dev.add_bias(qkv_p, dev.ptr(b), t, qkv_dim)?;
            }
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                dev.head_rms_norm(qkv_p, dev.ptr(qn), t, qkv_dim, 0, nh, hd, eps)?;
                dev.head_rms_norm(qkv_p, dev.ptr(kn), t, qkv_dim, nh, nkv, hd, eps)?;
            }
            dev.rope(
                qkv_p,
                dev.ptr(&positions),
                dev.ptr(&self.cos),
                dev.ptr(&self.sin),
                t,
                qkv_dim,
                nh + nkv,
                hd,
            )?;
            let (k_p, v_p) = (dev.ptr(&kv.k[li]), dev.ptr(&kv.v[li]));
            dev.reshape_and_cache(
                qkv_p,
                k_p,
                v_p,
                dev.ptr(&slots),
                t,
                qkv_dim,
                q_dim,
                q_dim + kv_dim,
                nkv,
                hd,
                bs,
            )?;
            let batch = AttentionBatch {
                q: qkv_p,
                stride: qkv_dim,
                k_cache: k_p,
                v_cache: v_p,
                block_tables: dev.ptr(&block_tables),
                max_blocks: p.max_blocks,
                ctx_len: dev.ptr(&ctx_len),
                q_start: dev.ptr(&q_start),
                q_len: dev.ptr(&q_len),
                out: attn_p,
                num_heads: nh,
                num_kv_heads: nkv,
                head_dim: hd,
                block_size: bs,
                scale: 1.0 / (hd as f32).sqrt(),
            };
            dev.attention(&batch, Some(&decode), Some(&prefill))?;
            gemm(attn_p, &layer.o_proj, proj_p, d, q_dim)?;
            dev.add_rms_norm(
                Some(proj_p),
                res_p,
                dev.ptr(&layer.post_norm),
                normed_p,
                t,
                d,
                eps,
            )?;
            gemm(normed_p, &layer.gate_up, gu_p, 2 * inter, d)?;
            dev.silu_mul(gu_p, act_p, t, inter)?;
            gemm(act_p, &layer.down, proj_p, d, inter)?;
        }
        // Last residual add (the norm output of all rows is scratch), then the final norm of
        // only the rows whose logits were asked for, and the lm_head over those rows.
        dev.add_rms_norm(
            Some(proj_p),
            res_p,
            dev.ptr(&self.final_norm),
            normed_p,
            t,
            d,
            eps,
        )?;
        dev.gather_rms_norm(
            res_p,
            dev.ptr(&self.final_norm),
            ptr(&picked_normed),
            dev.ptr(&picked),
            r,
            d,
            eps,
        )?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        dev.gemm(Gemm {
            x: ptr(&picked_normed),
            w: dev.ptr(head),
            y: dev.ptr(&logits),
            m: r,
            n: c.vocab_size,
            k: d,
            f32_out: true,
        })?;
        let data = dev.download(&logits, r * c.vocab_size)?;
        Ok((
            Logits {
                vocab_size: c.vocab_size,
                data,
                ranges: p.ranges,
            },
            ws.bytes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq<'a>(
        tokens: &'a [u32],
        start_pos: usize,
        block_table: &'a [u32],
        all_logits: bool,
    ) -> SequenceInput<'a> {
        SequenceInput {
            tokens,
            start_pos,
            block_table,
            all_logits,
        }
    }

    #[test]
    fn plan_flattens_a_mixed_batch_as_the_kernels_expect() {
        // A 20-token prompt chunk starting at position 4 (block size 4), then a decode token at
        // position 9, with prompt logprobs on the first.
        let prompt: Vec<u32> = (0..20).collect();
        let (t1, t2) = ([7u32, 3, 9, 1, 8, 2], [5u32, 6, 4]);
        let p = plan(&[seq(&prompt, 4, &t1, true), seq(&[42], 9, &t2, false)], 4);
        assert_eq!(p.ids.len(), 21);
        assert_eq!(p.positions[0], 4);
        assert_eq!(p.positions[20], 9);
        // position 4 -> block t1[1] = 3, offset 0; position 9 of seq 2 -> t2[2] = 4, offset 1.
        assert_eq!(p.slots[0], 12);
        assert_eq!(p.slots[20], 17);
        assert_eq!(
            (p.ctx_len.clone(), p.q_start.clone(), p.q_len.clone()),
            (vec![24, 10], vec![0, 20], vec![20, 1])
        );
        assert_eq!(p.max_blocks, 6);
        assert_eq!(&p.block_tables[6..9], &[5, 6, 4]);
        assert_eq!(
            (p.tile_seq.clone(), p.tile_q0.clone()),
            (vec![0, 0], vec![0, 16])
        );
        assert_eq!(
            (
                p.decode_rows.clone(),
                p.decode_seq.clone(),
                p.max_decode_ctx
            ),
            (vec![20], vec![1], 10)
        );
        assert_eq!(p.picked.len(), 21);
        assert_eq!(p.ranges, vec![(0, 20), (20, 1)]);
    }

    #[test]
    fn decode_splits_cover_the_context_and_stay_bounded() {
        // Few rows, long context: split; many rows: one split.
        let (s, k) = decode_splits(1, 32, 10_000, 132);
        assert!(s > 1 && s <= MAX_SPLITS && s * k >= 10_000);
        assert_eq!(decode_splits(256, 32, 10_000, 132).0, 1);
        assert_eq!(decode_splits(0, 32, 0, 132).0, 1);
    }
}
