//! Launchers for every kernel and the cuBLAS GEMM. Arguments are raw device addresses (`u64`,
//! from `GpuDevice::ptr`) plus sizes: the engine owns the buffers and their shapes, as it owns
//! plain slices on the CPU backend.

use std::ffi::c_void;

use cudarc::cublas::sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType};
use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::device::GpuDevice;
use super::error::CudaError;

/// y\[m×n\] = x\[m×k\] · w\[n×k\]ᵀ, row-major, bf16 inputs, f32 accumulation; y is bf16, or f32
/// when `f32_out` (logits).
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    pub x: u64,
    pub w: u64,
    pub y: u64,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub f32_out: bool,
}

/// Query rows attended one block per (row, head, split): decode tokens.
#[derive(Debug, Clone, Copy)]
pub struct DecodeWork {
    pub rows: usize,
    pub row_ids: u64,
    pub row_seq: u64,
    pub num_splits: usize,
    pub split_keys: usize,
    /// f32 scratch of rows × heads × splits × head_dim, and of rows × heads × splits × 2.
    pub tmp_acc: u64,
    pub tmp_ml: u64,
}

/// Tiles of 16 new tokens of one sequence: prompt chunks.
#[derive(Debug, Clone, Copy)]
pub struct PrefillWork {
    pub tiles: usize,
    pub tile_seq: u64,
    pub tile_q0: u64,
}

/// One layer's attention over the paged cache (see `attention.cu` for the layout contract).
#[derive(Debug, Clone, Copy)]
pub struct AttentionBatch {
    pub q: u64,
    pub stride: usize,
    pub k_cache: u64,
    pub v_cache: u64,
    pub block_tables: u64,
    pub max_blocks: usize,
    pub ctx_len: u64,
    pub q_start: u64,
    pub q_len: u64,
    pub out: u64,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub scale: f32,
}

fn grid(x: usize, y: usize, z: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (x as u32, y as u32, z as u32),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads for a row-wise kernel over `cols` elements: a multiple of 32, at most 1024.
fn row_threads(cols: usize) -> u32 {
    (cols.div_ceil(32) * 32).clamp(32, 1024) as u32
}

fn int(v: usize, what: &'static str) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Invalid {
        what,
        detail: format!("{v} does not fit a 32-bit int"),
    })
}

macro_rules! launch {
    ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let f = $dev.kernels.get($name)?;
        let mut b = $dev.stream.launch_builder(f);
        $( b.arg($arg); )+
        // SAFETY: the argument list matches the kernel's signature in its .cu file, and every
        // address points into a live buffer of the size the kernel reads (checked by callers).
        unsafe { b.launch($cfg) }.map(|_| ()).map_err(CudaError::driver($name))
    }};
}

impl GpuDevice {
    pub fn gemm(&self, g: Gemm) -> Result<(), CudaError> {
        if g.m == 0 {
            return Ok(());
        }
        let (m, n, k) = (
            int(g.m, "gemm m")?,
            int(g.n, "gemm n")?,
            int(g.k, "gemm k")?,
        );
        let (alpha, beta) = (1.0f32, 0.0f32);
        let c_type = if g.f32_out {
            cudaDataType::CUDA_R_32F
        } else {
            cudaDataType::CUDA_R_16BF
        };
        // Row-major y = x·wᵀ is column-major yᵀ = w·xᵀ with w read transposed: no copies.
        // SAFETY: the caller's buffers hold m×k, n×k and m×n elements of the stated types.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_T,
                cublasOperation_t::CUBLAS_OP_N,
                n,
                m,
                k,
                &alpha as *const f32 as *const c_void,
                g.w as *const c_void,
                cudaDataType::CUDA_R_16BF,
                k,
                g.x as *const c_void,
                cudaDataType::CUDA_R_16BF,
                k,
                &beta as *const f32 as *const c_void,
                g.y as *mut c_void,
                c_type,
                n,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(CudaError::cublas("GemmEx"))
    }

    /// out\[t\] (f32) = table\[ids\[t\]\]; ids must be < vocab (validated by the caller).
    pub fn embedding(
        &self,
        table: u64,
        f32_table: bool,
        ids: u64,
        out: u64,
        tokens: usize,
        hidden: usize,
    ) -> Result<(), CudaError> {
        let h = int(hidden, "hidden")?;
        let name = if f32_table {
            "embedding_f32"
        } else {
            "embedding_bf16"
        };
        launch!(
            self,
            name,
            grid(tokens, 1, 1, row_threads(hidden).min(256)),
            &table,
            &ids,
            &out,
            &h
        )
    }

    /// residual += delta (if any); out = rms_norm(residual) · weight.
    #[allow(clippy::too_many_arguments)]
    pub fn add_rms_norm(
        &self,
        delta: Option<u64>,
        residual: u64,
        weight: u64,
        out: u64,
        rows: usize,
        hidden: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        let h = int(hidden, "hidden")?;
        let d = delta.unwrap_or(0);
        launch!(
            self,
            "add_rms_norm_bf16",
            grid(rows, 1, 1, row_threads(hidden)),
            &d,
            &residual,
            &weight,
            &out,
            &h,
            &eps
        )
    }

    /// out\[i\] = rms_norm(x\[rows\[i\]\]) · weight, for `n` picked rows.
    #[allow(clippy::too_many_arguments)]
    pub fn gather_rms_norm(
        &self,
        x: u64,
        weight: u64,
        out: u64,
        rows: u64,
        n: usize,
        hidden: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        let h = int(hidden, "hidden")?;
        launch!(
            self,
            "gather_rms_norm_bf16",
            grid(n, 1, 1, row_threads(hidden)),
            &x,
            &weight,
            &out,
            &rows,
            &h,
            &eps
        )
    }

    /// Per-head RMSNorm in place over heads [head0, head0 + heads) of each row.
    #[allow(clippy::too_many_arguments)]
    pub fn head_rms_norm(
        &self,
        x: u64,
        weight: u64,
        tokens: usize,
        stride: usize,
        head0: usize,
        heads: usize,
        head_dim: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        let (s, h0, hd) = (
            int(stride, "stride")?,
            int(head0, "head")?,
            int(head_dim, "head_dim")?,
        );
        launch!(
            self,
            "head_rms_norm_bf16",
            grid(tokens, heads, 1, 32),
            &x,
            &weight,
            &s,
            &h0,
            &hd,
            &eps
        )
    }

    pub fn add_bias(&self, x: u64, bias: u64, rows: usize, cols: usize) -> Result<(), CudaError> {
        let c = int(cols, "cols")?;
        launch!(
            self,
            "add_bias_bf16",
            grid(rows, 1, 1, row_threads(cols)),
            &x,
            &bias,
            &c
        )
    }

    /// Neox RoPE in place on the first `heads` heads of each row; cos/sin tables \[pos\]\[hd/2\].
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        qkv: u64,
        positions: u64,
        cos: u64,
        sin: u64,
        tokens: usize,
        stride: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<(), CudaError> {
        let (s, h, hd) = (
            int(stride, "stride")?,
            int(heads, "heads")?,
            int(head_dim, "head_dim")?,
        );
        launch!(
            self,
            "rope_neox_bf16",
            grid(tokens, 1, 1, row_threads(heads * head_dim / 2)),
            &qkv,
            &positions,
            &cos,
            &sin,
            &s,
            &h,
            &hd
        )
    }

    pub fn silu_mul(
        &self,
        gate_up: u64,
        out: u64,
        tokens: usize,
        inter: usize,
    ) -> Result<(), CudaError> {
        let i = int(inter, "intermediate size")?;
        launch!(
            self,
            "silu_mul_bf16",
            grid(tokens, 1, 1, row_threads(inter)),
            &gate_up,
            &out,
            &i
        )
    }

    /// Writes K (at column k_off) and V (at v_off) of each qkv row into its cache slot.
    #[allow(clippy::too_many_arguments)]
    pub fn reshape_and_cache(
        &self,
        qkv: u64,
        k_cache: u64,
        v_cache: u64,
        slots: u64,
        tokens: usize,
        stride: usize,
        k_off: usize,
        v_off: usize,
        kv_heads: usize,
        head_dim: usize,
        block_size: usize,
    ) -> Result<(), CudaError> {
        let (s, ko, vo) = (
            int(stride, "stride")?,
            int(k_off, "k offset")?,
            int(v_off, "v offset")?,
        );
        let (nkv, hd, bs) = (
            int(kv_heads, "kv heads")?,
            int(head_dim, "head_dim")?,
            int(block_size, "block size")?,
        );
        launch!(
            self,
            "reshape_and_cache_bf16",
            grid(tokens, 1, 1, row_threads(kv_heads * head_dim)),
            &qkv,
            &k_cache,
            &v_cache,
            &slots,
            &s,
            &ko,
            &vo,
            &nkv,
            &hd,
            &bs
        )
    }

    /// Attention for decode rows (split-K) and prompt tiles of one layer.
    pub fn attention(
        &self,
        a: &AttentionBatch,
        decode: Option<&DecodeWork>,
        prefill: Option<&PrefillWork>,
    ) -> Result<(), CudaError> {
        let (decode_fn, prefill_fn) = match a.head_dim {
            64 => ("paged_attention_decode_hd64", "prefill_attention_hd64"),
            128 => ("paged_attention_decode_hd128", "prefill_attention_hd128"),
            256 => ("paged_attention_decode_hd256", "prefill_attention_hd256"),
            other => {
                return Err(CudaError::Invalid {
                    what: "head_dim",
                    detail: format!("{other} (the CUDA kernels support 64, 128 and 256)"),
                })
            }
        };
        if a.num_kv_heads == 0 || !a.num_heads.is_multiple_of(a.num_kv_heads) {
            return Err(CudaError::Invalid {
                what: "heads",
                detail: format!(
                    "{} query heads over {} kv heads",
                    a.num_heads, a.num_kv_heads
                ),
            });
        }
        let (stride, mb) = (
            int(a.stride, "stride")?,
            int(a.max_blocks, "blocks per sequence")?,
        );
        let (nh, nkv, bs) = (
            int(a.num_heads, "heads")?,
            int(a.num_kv_heads, "kv heads")?,
            int(a.block_size, "block size")?,
        );
        if let Some(d) = decode.filter(|d| d.rows > 0) {
            let (sk, ns) = (
                int(d.split_keys, "split size")?,
                int(d.num_splits, "splits")?,
            );
            launch!(
                self,
                decode_fn,
                grid(d.rows, a.num_heads, d.num_splits, 128),
                &a.q,
                &stride,
                &a.k_cache,
                &a.v_cache,
                &a.block_tables,
                &mb,
                &d.row_ids,
                &d.row_seq,
                &a.ctx_len,
                &a.q_start,
                &a.q_len,
                &a.out,
                &d.tmp_acc,
                &d.tmp_ml,
                &nh,
                &nkv,
                &bs,
                &sk,
                &a.scale
            )?;
            if d.num_splits > 1 {
                let hd = int(a.head_dim, "head_dim")?;
                launch!(
                    self,
                    "paged_attention_reduce",
                    grid(d.rows, a.num_heads, 1, 128),
                    &d.tmp_acc,
                    &d.tmp_ml,
                    &d.row_ids,
                    &a.out,
                    &nh,
                    &hd,
                    &ns
                )?;
            }
        }
        if let Some(p) = prefill.filter(|p| p.tiles > 0) {
            launch!(
                self,
                prefill_fn,
                grid(p.tiles, a.num_heads, 1, 128),
                &a.q,
                &stride,
                &a.k_cache,
                &a.v_cache,
                &a.block_tables,
                &mb,
                &p.tile_seq,
                &p.tile_q0,
                &a.ctx_len,
                &a.q_start,
                &a.q_len,
                &a.out,
                &nh,
                &nkv,
                &bs,
                &a.scale
            )?;
        }
        Ok(())
    }

    /// Penalties in place on f32 logits rows (see `sampling.cu`).
    #[allow(clippy::too_many_arguments)]
    pub fn apply_penalties(
        &self,
        logits: u64,
        rows: usize,
        vocab: usize,
        hist_offsets: u64,
        hist_tokens: u64,
        hist_counts: u64,
        repetition: u64,
        presence: u64,
        frequency: u64,
    ) -> Result<(), CudaError> {
        let v = int(vocab, "vocab")?;
        launch!(
            self,
            "apply_penalties",
            grid(rows, 1, 1, 256),
            &logits,
            &v,
            &hist_offsets,
            &hist_tokens,
            &hist_counts,
            &repetition,
            &presence,
            &frequency
        )
    }

    /// One draw per row of `logits` (temperature 0: greedy) plus logprobs of `raw` (the rows
    /// before penalties; `raw == logits` when none applied); see `sampling.cu`. `params`:
    /// per-row temperature (f32), top_k (i32), top_p, min_p and uniform draw (f32).
    #[allow(clippy::too_many_arguments)]
    pub fn sample_rows(
        &self,
        logits: u64,
        raw: u64,
        rows: usize,
        vocab: usize,
        params: [u64; 5],
        out_token: u64,
        out_logprob: u64,
        num_top: usize,
        top_ids: u64,
        top_logprobs: u64,
    ) -> Result<(), CudaError> {
        let (v, nt) = (int(vocab, "vocab")?, int(num_top, "logprobs")?);
        let [temperature, top_k, top_p, min_p, uniform] = params;
        launch!(
            self,
            "sample_rows",
            grid(rows, 1, 1, 1024),
            &logits,
            &raw,
            &v,
            &temperature,
            &top_k,
            &top_p,
            &min_p,
            &uniform,
            &out_token,
            &out_logprob,
            &nt,
            &top_ids,
            &top_logprobs
        )
    }
}
