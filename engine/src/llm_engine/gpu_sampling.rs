//! `VLLM_RS_GPU_SAMPLER=1` (off by default, CUDA backend only): each token is drawn by the GPU
//! kernel of `kernels/cuda/sampling.cu` instead of the CPU sampler. The pre-temperature steps
//! (allowed ids, bias, bad words, min_tokens, penalties) stay in the shared CPU code; the GPU
//! does temperature, min-p, top-k, top-p, the draw and the raw logprobs. It exists so that
//! scripts/gpu-check.sh can compare the two samplers before the kernel becomes the default
//! path (and logits stop crossing to the host).

use crate::sampling::{LogprobsMode, SampledToken, SequenceSampler};

/// The switch's environment variable.
pub const GPU_SAMPLER_VAR: &str = "VLLM_RS_GPU_SAMPLER";

/// Whether the switch is set to something other than empty, `0` or `false`.
pub(super) fn gpu_sampler_requested() -> bool {
    std::env::var_os(GPU_SAMPLER_VAR).is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// One token drawn on the GPU; `None` (the caller samples on the CPU) when the model is not on
/// the GPU, the request needs what the kernel does not compute, or the launch failed.
#[cfg(feature = "cuda")]
pub(super) fn sample_on_gpu(
    model: &crate::model::CausalLm,
    sampler: &mut SequenceSampler,
    row: &[f32],
    generated: &[u32],
    mode: LogprobsMode,
) -> Option<SampledToken> {
    let gpu = model.gpu()?;
    let req = sampler.gpu_request(row, generated, mode)?;
    let settings = req.kernel_row();
    let out = gpu
        .device()
        .sample_rows_from_host(
            row,
            req.processed.as_deref(),
            row.len(),
            &[settings],
            req.num_logprobs.unwrap_or(0),
        )
        .map_err(|e| tracing::warn!("GPU sampling failed, sampling on the CPU: {e}"))
        .ok()?
        .pop()?;
    if req.num_logprobs.is_none() {
        return Some(SampledToken {
            token: out.token,
            logprob: f32::NAN,
            rank: 0,
            top_logprobs: Vec::new(),
        });
    }
    // The rank under the raw row, as the CPU sampler reports it: 1 + the tokens strictly better.
    let value = row[out.token as usize];
    let rank = 1 + row.iter().filter(|&&v| v > value).count();
    Some(SampledToken {
        token: out.token,
        logprob: out.logprob,
        rank,
        top_logprobs: out.top,
    })
}

/// Without the CUDA backend there is no GPU to sample on.
#[cfg(not(feature = "cuda"))]
pub(super) fn sample_on_gpu(
    _: &crate::model::CausalLm,
    _: &mut SequenceSampler,
    _: &[f32],
    _: &[u32],
    _: LogprobsMode,
) -> Option<SampledToken> {
    None
}
