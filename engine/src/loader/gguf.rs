//! GGUF files as a model source: architecture hyper-parameters from metadata, and tensors
//! renamed to their Hugging Face names with llama.cpp's Q/K row permutation undone, so the
//! model code is the same for every format.

use std::path::Path;
use std::sync::Arc;

use kernels::cpu::{RowPart, SharedBytes};

use crate::config::{Architecture, ModelConfig, RopeScaling};
use crate::error::LoadError;
use crate::gguf::{block_format, GgufFile};
use crate::model::{RawTensor, TensorData, WeightSource};

/// Reads a `ModelConfig` from GGUF metadata (`{arch}.embedding_length`, …).
pub fn config_from_gguf(g: &GgufFile) -> Result<ModelConfig, LoadError> {
    let path = g.path();
    let err = |msg: String| LoadError::Config {
        path: path.to_path_buf(),
        msg,
    };
    let arch_name = g
        .architecture()
        .ok_or_else(|| err("missing general.architecture".into()))?;
    let architecture = Architecture::from_gguf_name(arch_name).ok_or_else(|| {
        err(format!(
            "unsupported GGUF architecture `{arch_name}` (GGUF: llama, qwen2, qwen3; Mistral, \
             Gemma 2/3, Phi-3, Mixtral and Qwen3-MoE load from safetensors folders)"
        ))
    })?;
    let key = |k: &str| format!("{arch_name}.{k}");
    // llama.cpp stores Mixtral as `llama` with stacked experts (`ffn_*_exps`); this loader
    // reads dense GGUF decoders only.
    if g.get_u64(&key("expert_count")).is_some_and(|n| n > 0) {
        return Err(err(format!(
            "mixture-of-experts GGUF (`{}`) is not supported: load Mixtral or Qwen3-MoE from a safetensors folder",
            key("expert_count")
        )));
    }
    let req = |k: &str| {
        g.get_u64(&key(k))
            .map(|v| v as usize)
            .ok_or_else(|| err(format!("missing metadata `{}`", key(k))))
    };
    let hidden_size = req("embedding_length")?;
    let num_attention_heads = req("attention.head_count")?;
    let num_key_value_heads = g
        .get_u64(&key("attention.head_count_kv"))
        .map(|v| v as usize)
        .unwrap_or(num_attention_heads);
    let head_dim = match g.get_u64(&key("attention.key_length")) {
        Some(v) => v as usize,
        None => hidden_size.checked_div(num_attention_heads).unwrap_or(0),
    };
    let embed = g
        .tensor("token_embd.weight")
        .ok_or_else(|| LoadError::MissingTensor {
            path: path.to_path_buf(),
            name: "token_embd.weight".into(),
        })?;
    let vocab_size = match g.get_u64(&key("vocab_size")) {
        Some(v) => v as usize,
        None => embed.shape().first().copied().unwrap_or(0),
    };
    let max_position_embeddings = g
        .get_u64(&key("context_length"))
        .map(|v| v as usize)
        .unwrap_or(2048);
    let rope_scaling = match g.get_str(&key("rope.scaling.type")) {
        None | Some("none") => None,
        Some(kind) => {
            let factor = g
                .get_f64(&key("rope.scaling.factor"))
                .ok_or_else(|| err(format!("rope scaling `{kind}` without a factor")))?;
            let orig = g
                .get_u64(&key("rope.scaling.original_context_length"))
                .map(|v| v as usize)
                .unwrap_or(max_position_embeddings);
            match kind {
                "linear" => Some(RopeScaling::Linear { factor }),
                "yarn" => Some(RopeScaling::Yarn {
                    factor,
                    original_max_position_embeddings: orig,
                    beta_fast: g
                        .get_f64(&key("rope.scaling.yarn_beta_fast"))
                        .unwrap_or(32.0),
                    beta_slow: g
                        .get_f64(&key("rope.scaling.yarn_beta_slow"))
                        .unwrap_or(1.0),
                    mscale: None,
                    mscale_all_dim: None,
                    attention_factor: g.get_f64(&key("rope.scaling.attn_factor")),
                }),
                other => return Err(err(format!("unsupported rope scaling type `{other}`"))),
            }
        }
    };
    let eos = g.get_u64("tokenizer.ggml.eos_token_id").map(|v| v as u32);
    let cfg = ModelConfig {
        architecture,
        vocab_size,
        hidden_size,
        intermediate_size: req("feed_forward_length")?,
        num_hidden_layers: req("block_count")?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rms_norm_eps: g
            .get_f64(&key("attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-5),
        rope_theta: g.get_f64(&key("rope.freq_base")).unwrap_or(10000.0),
        rope_scaling,
        max_position_embeddings,
        tie_word_embeddings: g.tensor("output.weight").is_none(),
        qkv_bias: g.tensor("blk.0.attn_q.bias").is_some(),
        bos_token_id: g.get_u64("tokenizer.ggml.bos_token_id").map(|v| v as u32),
        eos_token_ids: eos.into_iter().collect(),
        checkpoint_dtype: None,
        family: Default::default(),
    };
    cfg.validate(path)?;
    Ok(cfg)
}

/// Hugging Face tensor name → GGUF tensor name.
fn gguf_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, field) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = field.rsplit_once('.')?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

// llama.cpp's converter permutes the Q/K rows of llama-architecture models: it interleaves the
// two rotary halves of each head (GPT-J order) so that llama.cpp can rotate adjacent pairs. Our
// RoPE rotates (i, i + head_dim/2) as Hugging Face does, so rows go back to HF order: within a
// head, GGUF row `2i + j` is HF row `j·head_dim/2 + i`.

/// Row order that undoes the converter's Q/K permutation: output row `dst` (HF order) reads
/// stored row `order[dst]`, so quantized rows can be used in place.
fn unpermute_order(rows: usize, n_heads: usize) -> Vec<u32> {
    let hd = rows / n_heads.max(1);
    let half = hd / 2;
    let mut order = (0..rows as u32).collect::<Vec<_>>();
    for h in 0..n_heads {
        for i in 0..half {
            for j in 0..2 {
                order[h * hd + j * half + i] = (h * hd + 2 * i + j) as u32;
            }
        }
    }
    order
}

/// Tensors of a GGUF file under Hugging Face names: as stored (shared from the memory map) or
/// dequantized to f32.
pub struct GgufWeights<'a> {
    file: Arc<GgufFile>,
    config: &'a ModelConfig,
}

impl<'a> GgufWeights<'a> {
    pub fn new(file: Arc<GgufFile>, config: &'a ModelConfig) -> Self {
        GgufWeights { file, config }
    }

    /// The Q/K row order of tensor `name`, for llama-architecture files (Qwen2/3 keep HF order).
    fn row_order(&self, name: &str, rows: usize) -> Option<Vec<u32>> {
        if self.config.architecture != Architecture::Llama {
            return None;
        }
        if name.ends_with("self_attn.q_proj.weight") {
            Some(unpermute_order(rows, self.config.num_attention_heads))
        } else if name.ends_with("self_attn.k_proj.weight") {
            Some(unpermute_order(rows, self.config.num_key_value_heads))
        } else {
            None
        }
    }
}

impl WeightSource for GgufWeights<'_> {
    fn path(&self) -> &Path {
        self.file.path()
    }

    fn load(&self, name: &str) -> Result<Option<TensorData>, LoadError> {
        let Some(gname) = gguf_name(name) else {
            return Ok(None);
        };
        let Some(info) = self.file.tensor(&gname) else {
            return Ok(None);
        };
        let shape = info.shape();
        let mut data = self.file.dequantize(&gname)?;
        let cols = shape.last().copied().unwrap_or(1);
        if let Some(order) = self.row_order(name, data.len() / cols.max(1)) {
            let src = data.clone();
            for (dst, &o) in order.iter().enumerate() {
                let o = o as usize;
                data[dst * cols..(dst + 1) * cols].copy_from_slice(&src[o * cols..(o + 1) * cols]);
            }
        }
        Ok(Some((shape, data)))
    }

    fn load_raw(&self, name: &str) -> Result<Option<RawTensor>, LoadError> {
        let Some(gname) = gguf_name(name) else {
            return Ok(None);
        };
        let Some(info) = self.file.tensor(&gname) else {
            return Ok(None);
        };
        let shape = info.shape();
        let (Some(format), &[rows, cols]) = (block_format(info.ggml_type), shape.as_slice()) else {
            return Ok(None);
        };
        let err = |msg: String| LoadError::Tensor {
            path: self.file.path().to_path_buf(),
            name: name.to_string(),
            msg,
        };
        let range = self
            .file
            .tensor_range(info)
            .ok_or_else(|| err("tensor data lies outside the file".into()))?;
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = self.file.clone();
        let bytes = SharedBytes::new(owner, range)
            .ok_or_else(|| err("tensor data lies outside the file".into()))?;
        let part = RowPart::new(format, rows, cols, bytes, self.row_order(name, rows))
            .map_err(|e| err(e.to_string()))?;
        Ok(Some(RawTensor { shape, part }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_gguf() {
        assert_eq!(
            gguf_name("model.layers.12.mlp.down_proj.weight").as_deref(),
            Some("blk.12.ffn_down.weight")
        );
        assert_eq!(
            gguf_name("model.layers.0.self_attn.q_proj.bias").as_deref(),
            Some("blk.0.attn_q.bias")
        );
        assert_eq!(
            gguf_name("lm_head.weight").as_deref(),
            Some("output.weight")
        );
        assert_eq!(gguf_name("model.layers.x.mlp.down_proj.weight"), None);
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        // The converter's permutation of a [n_heads*hd, cols] matrix: view rows as
        // (head, 2, hd/2), swap the last two axes. Build it directly and check we invert it.
        let (n_heads, hd, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..n_heads * hd * cols).map(|v| v as f32).collect();
        let mut permuted = vec![0.0; hf.len()];
        for h in 0..n_heads {
            for j in 0..2 {
                for i in 0..hd / 2 {
                    let src = h * hd + j * (hd / 2) + i;
                    let dst = h * hd + i * 2 + j;
                    permuted[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        let order = unpermute_order(n_heads * hd, n_heads);
        let undone: Vec<f32> = order
            .iter()
            .flat_map(|&o| permuted[o as usize * cols..(o as usize + 1) * cols].to_vec())
            .collect();
        assert_eq!(undone, hf);
    }
}
