//! The model on the GPU: the same decoder (Llama, Qwen2, Qwen3) as the CPU path, with bf16
//! weights, cuBLAS GEMMs and the kernels of `kernels::cuda`. It is attached to a `CausalLm`
//! after the CPU loader has built it (so every weight format and dequantization is shared) and
//! the host copies of the weights are then dropped; `CausalLm::forward` dispatches here, so the
//! scheduler and engine loop do not know which backend runs.

mod forward;
mod kv;

use kernels::cpu::WeightMatrix;
use kernels::cuda::cudarc::driver::CudaSlice;
use kernels::cuda::{CudaError, GpuDevice, GpuInfo};

pub use kv::GpuKvCache;

use super::layers::decoder::PreNormLayer;
use super::layers::moe::FeedForward;
use super::{CausalLm, RotaryTable};
use crate::config::ModelConfig;

/// bf16 bit patterns on the device.
type Bf16Buf = CudaSlice<u16>;

pub(crate) struct GpuLayer {
    input_norm: Bf16Buf,
    qkv: Bf16Buf,
    qkv_bias: Option<Bf16Buf>,
    q_norm: Option<Bf16Buf>,
    k_norm: Option<Bf16Buf>,
    o_proj: Bf16Buf,
    post_norm: Bf16Buf,
    gate_up: Bf16Buf,
    down: Bf16Buf,
}

pub struct GpuModel {
    dev: GpuDevice,
    config: ModelConfig,
    embed: Bf16Buf,
    /// `None` with tied embeddings: the lm_head GEMM reads `embed`.
    lm_head: Option<Bf16Buf>,
    final_norm: Bf16Buf,
    layers: Vec<GpuLayer>,
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
    max_positions: usize,
    weight_bytes: usize,
}

fn bf16_bits_of_f32(v: &[f32]) -> Vec<u16> {
    v.iter()
        .map(|x| half::bf16::from_f32(*x).to_bits())
        .collect()
}

/// The matrix as bf16, whatever its stored format (GGUF blocks are decoded on the host first;
/// the GPU backend has no quantized kernels yet).
fn bf16_bits(w: &WeightMatrix) -> Vec<u16> {
    bf16_bits_of_f32(&w.to_f32())
}

impl GpuModel {
    /// Opens GPU `ordinal` and uploads the weights of `cpu` as bf16, plus its rotary table.
    pub fn upload(cpu: &CausalLm, ordinal: usize) -> Result<GpuModel, CudaError> {
        // The GPU kernels implement the Llama-family decoder only; the loader refuses the
        // other architectures before reading weights, this is the last line of defence.
        let body = match cpu.body.as_pre_norm() {
            Some(b) if cpu.config.architecture.runs_on_cuda() => b,
            _ => {
                return Err(CudaError::Invalid {
                    what: "not supported yet",
                    detail: format!(
                        "{} on the CUDA backend (it runs {})",
                        cpu.config.architecture.hf_name(),
                        cuda_architectures()
                    ),
                })
            }
        };
        let kernel_cache = crate::paths::cache_root().join("kernels");
        let dev = GpuDevice::open(ordinal, Some(&kernel_cache))?;
        let mut bytes = 0usize;
        let mut up = |v: Vec<u16>| -> Result<Bf16Buf, CudaError> {
            bytes += v.len() * 2;
            dev.upload(&v)
        };
        let embed = up(bf16_bits(&body.embed))?;
        let lm_head = if cpu.config.tie_word_embeddings {
            None
        } else {
            Some(up(bf16_bits(&cpu.lm_head))?)
        };
        let final_norm = up(bf16_bits_of_f32(&body.norm.weight))?;
        let mut layers = Vec::with_capacity(body.layers.len());
        for l in &body.layers {
            layers.push(upload_layer(l, &mut up)?);
        }
        let rotary: &RotaryTable = &body.rotary;
        let cos = dev.upload(rotary.cos())?;
        let sin = dev.upload(rotary.sin())?;
        dev.synchronize()?;
        Ok(GpuModel {
            dev,
            config: cpu.config.clone(),
            embed,
            lm_head,
            final_norm,
            layers,
            cos,
            sin,
            max_positions: rotary.max_positions(),
            weight_bytes: bytes,
        })
    }

    pub fn info(&self) -> &GpuInfo {
        &self.dev.info
    }

    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }
}

fn upload_layer(
    l: &PreNormLayer,
    up: &mut dyn FnMut(Vec<u16>) -> Result<Bf16Buf, CudaError>,
) -> Result<GpuLayer, CudaError> {
    let opt = |v: Option<&Vec<f32>>, up: &mut dyn FnMut(Vec<u16>) -> Result<Bf16Buf, CudaError>| {
        v.map(|v| up(bf16_bits_of_f32(v))).transpose()
    };
    let FeedForward::Dense(mlp) = &l.ffn else {
        return Err(CudaError::Invalid {
            what: "not supported yet",
            detail: "mixture-of-experts layers on the CUDA backend".into(),
        });
    };
    let a = &l.attn;
    Ok(GpuLayer {
        input_norm: up(bf16_bits_of_f32(&l.input_norm.weight))?,
        qkv: up(bf16_bits(&a.qkv))?,
        qkv_bias: opt(a.qkv_bias.as_ref(), up)?,
        q_norm: opt(a.q_norm.as_ref().map(|n| &n.weight), up)?,
        k_norm: opt(a.k_norm.as_ref().map(|n| &n.weight), up)?,
        o_proj: up(bf16_bits(&a.o_proj))?,
        post_norm: up(bf16_bits_of_f32(&l.post_norm.weight))?,
        gate_up: up(bf16_bits(&mlp.gate_up))?,
        down: up(bf16_bits(&mlp.down))?,
    })
}

/// The architectures the CUDA backend runs, comma-separated.
pub fn cuda_architectures() -> String {
    crate::config::Architecture::ALL
        .iter()
        .filter(|a| a.runs_on_cuda())
        .map(|a| a.hf_name())
        .collect::<Vec<_>>()
        .join(", ")
}
