//! The architecture hyper-parameters of a model, read from a Hugging Face `config.json` or from
//! GGUF metadata into one shape, so the model code never knows where they came from.

use std::path::Path;

use serde_json::Value;

use crate::error::LoadError;

mod family;
mod rope_scaling;

pub use family::{Activation, FamilyParams, MoeParams};
pub use rope_scaling::{parse_rope_scaling, rope_scaling_json, RopeScaling};

// The start-up check of a `config.json`, before any weight is downloaded (see `supported.rs`).
pub use crate::supported::{check_supported, supported_architectures, Unsupported};

/// Decoder architectures we implement; each has its own file under `model/arch/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `LlamaForCausalLM` (also SmolLM2): no biases, optional tied embeddings.
    Llama,
    /// `Qwen2ForCausalLM`: bias on q/k/v projections.
    Qwen2,
    /// `Qwen3ForCausalLM`: RMSNorm on each head of q and k before RoPE.
    Qwen3,
    /// `MistralForCausalLM`: Llama with sliding-window attention.
    Mistral,
    /// `Gemma2ForCausalLM`: GELU-tanh, soft-capped attention and logits, sandwich norms,
    /// alternating sliding/global layers, scaled embeddings.
    Gemma2,
    /// `Gemma3ForCausalLM` (text): Gemma 2's layout plus q/k norms and a local RoPE base.
    Gemma3,
    /// `Phi3ForCausalLM`: fused qkv and gate/up projections.
    Phi3,
    /// `MixtralForCausalLM`: Mistral with a top-k mixture of experts.
    Mixtral,
    /// `Qwen3MoeForCausalLM`: Qwen3 attention with a top-k mixture of experts.
    Qwen3Moe,
}

impl Architecture {
    /// From a Hugging Face `architectures` entry.
    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "LlamaForCausalLM" => Some(Architecture::Llama),
            "Qwen2ForCausalLM" => Some(Architecture::Qwen2),
            "Qwen3ForCausalLM" => Some(Architecture::Qwen3),
            "MistralForCausalLM" => Some(Architecture::Mistral),
            "Gemma2ForCausalLM" => Some(Architecture::Gemma2),
            "Gemma3ForCausalLM" => Some(Architecture::Gemma3),
            "Phi3ForCausalLM" => Some(Architecture::Phi3),
            "MixtralForCausalLM" => Some(Architecture::Mixtral),
            "Qwen3MoeForCausalLM" => Some(Architecture::Qwen3Moe),
            _ => None,
        }
    }

    /// The decoder of a checkpoint's `architectures` entry: its own, or for a sequence
    /// classifier (`Qwen3ForSequenceClassification`) the decoder under its `score` head (see
    /// `pooling::ClassifierHead`).
    pub fn of_checkpoint(name: &str) -> Option<Self> {
        match name.strip_suffix(crate::pooling::SEQ_CLS_SUFFIX) {
            Some(family) => Self::from_hf_name(&format!("{family}ForCausalLM")),
            None => Self::from_hf_name(name),
        }
    }

    /// From GGUF `general.architecture`.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Architecture::Llama),
            "qwen2" => Some(Architecture::Qwen2),
            "qwen3" => Some(Architecture::Qwen3),
            _ => None,
        }
    }

    pub fn hf_name(self) -> &'static str {
        match self {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Qwen3 => "Qwen3ForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::Gemma2 => "Gemma2ForCausalLM",
            Architecture::Gemma3 => "Gemma3ForCausalLM",
            Architecture::Phi3 => "Phi3ForCausalLM",
            Architecture::Mixtral => "MixtralForCausalLM",
            Architecture::Qwen3Moe => "Qwen3MoeForCausalLM",
        }
    }

    /// Every architecture that loads, as `config.json` names it (for errors and `--help`).
    pub const ALL: [Architecture; 9] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Mistral,
        Architecture::Gemma2,
        Architecture::Gemma3,
        Architecture::Phi3,
        Architecture::Mixtral,
        Architecture::Qwen3Moe,
    ];

    /// The `config.json` names of [`Architecture::ALL`], comma-separated.
    pub fn supported_list() -> String {
        Self::ALL.map(Self::hf_name).join(", ")
    }

    /// Hugging Face `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Mistral => "mistral",
            Architecture::Gemma2 => "gemma2",
            Architecture::Gemma3 => "gemma3_text",
            Architecture::Phi3 => "phi3",
            Architecture::Mixtral => "mixtral",
            Architecture::Qwen3Moe => "qwen3_moe",
        }
    }

    /// Whether the CUDA backend implements this architecture (it has the Llama-family decoder
    /// only).
    pub fn runs_on_cuda(self) -> bool {
        matches!(
            self,
            Architecture::Llama | Architecture::Qwen2 | Architecture::Qwen3
        )
    }

    /// Whether the input and output embeddings are tied when `config.json` does not say
    /// (transformers' config class default).
    pub fn default_tie_word_embeddings(self) -> bool {
        matches!(self, Architecture::Gemma2 | Architecture::Gemma3)
    }

    /// Whether q/k/v projections carry a bias (unless the config says otherwise).
    pub fn default_qkv_bias(self) -> bool {
        matches!(self, Architecture::Qwen2)
    }
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` / `dtype` of the checkpoint, when known ("bfloat16", "float32", …).
    pub checkpoint_dtype: Option<String>,
    /// What only some families have (windows, soft-caps, experts, …).
    pub family: FamilyParams,
}

impl ModelConfig {
    /// Checks the invariants the model code relies on.
    pub fn validate(&self, path: &Path) -> Result<(), LoadError> {
        let bad = |msg: String| {
            Err(LoadError::Config {
                path: path.to_path_buf(),
                msg,
            })
        };
        if self.hidden_size == 0
            || self.num_hidden_layers == 0
            || self.vocab_size == 0
            || self.intermediate_size == 0
        {
            return bad(
                "hidden_size, num_hidden_layers, vocab_size and intermediate_size must be positive"
                    .into(),
            );
        }
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 || self.head_dim == 0 {
            return bad("attention heads, key/value heads and head_dim must be positive".into());
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            ));
        }
        // Written so that NaN fails too.
        if self.rope_theta.is_nan()
            || self.rope_theta <= 0.0
            || self.rms_norm_eps.is_nan()
            || self.rms_norm_eps < 0.0
        {
            return bad("rope_theta must be > 0 and rms_norm_eps >= 0".into());
        }
        Ok(())
    }

    /// Parses a Hugging Face `config.json` (already read into a JSON value).
    pub fn from_hf_json(json: &Value, path: &Path) -> Result<Self, LoadError> {
        let err = |msg: String| LoadError::Config {
            path: path.to_path_buf(),
            msg,
        };
        let arch_name = json
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .ok_or_else(|| err("missing `architectures`".into()))?;
        let architecture = Architecture::of_checkpoint(arch_name).ok_or_else(|| {
            LoadError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: arch_name.to_string(),
            }
        })?;
        let usize_key = |k: &str| -> Result<usize, LoadError> {
            json.get(k)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| err(format!("missing or invalid `{k}`")))
        };
        let hidden_size = usize_key("hidden_size")?;
        let num_attention_heads = usize_key("num_attention_heads")?;
        let num_key_value_heads = json
            .get("num_key_value_heads")
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .unwrap_or(num_attention_heads);
        let head_dim = match json.get("head_dim").and_then(Value::as_u64) {
            Some(v) => v as usize,
            None if num_attention_heads > 0 => hidden_size / num_attention_heads,
            None => 0,
        };
        // Newer transformers nest theta and scaling under `rope_parameters`.
        let rope_params = json.get("rope_parameters").map(|p| {
            // Gemma 3 keys them by layer type; the global layers' entry is the model's RoPE
            // (the sliding layers' base is read by `family::parse`).
            p.get("full_attention").unwrap_or(p)
        });
        if let Some(local) = json
            .get("rope_parameters")
            .and_then(|p| p.get("sliding_attention"))
        {
            if parse_rope_scaling(local, 0).map_err(err)?.is_some() {
                return Err(err(
                    "rope scaling on the sliding-window layers is not supported".into(),
                ));
            }
        }
        let rope_theta = json
            .get("rope_theta")
            .or_else(|| rope_params.and_then(|p| p.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0);
        let max_position_embeddings = usize_key("max_position_embeddings").unwrap_or(2048);
        let scaling = json
            .get("rope_scaling")
            .filter(|v| !v.is_null())
            .or(rope_params);
        let rope_scaling = match scaling {
            Some(v) => parse_rope_scaling(v, max_position_embeddings).map_err(err)?,
            None => None,
        };
        let eos_token_ids = match json.get("eos_token_id") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|v| v as u32)
                .collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            None => Vec::new(),
        };
        if json.get("mlp_bias").and_then(Value::as_bool) == Some(true) {
            return Err(err("mlp_bias: true is not supported".into()));
        }
        let num_hidden_layers = usize_key("num_hidden_layers")?;
        let intermediate_size = usize_key("intermediate_size")?;
        let family = family::parse(architecture, json, num_hidden_layers, intermediate_size)
            .map_err(|m| err(format!("{arch_name}: {m}")))?;
        let cfg = ModelConfig {
            architecture,
            vocab_size: usize_key("vocab_size")?,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: json
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            tie_word_embeddings: json
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or_else(|| architecture.default_tie_word_embeddings()),
            qkv_bias: json
                .get("attention_bias")
                .and_then(Value::as_bool)
                .unwrap_or_else(|| architecture.default_qkv_bias()),
            bos_token_id: json
                .get("bos_token_id")
                .and_then(Value::as_u64)
                .map(|v| v as u32),
            eos_token_ids,
            checkpoint_dtype: json
                .get("torch_dtype")
                .or_else(|| json.get("dtype"))
                .and_then(Value::as_str)
                .map(str::to_string),
            family,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The config as a Hugging Face `config.json` value (used to export a GGUF to a folder).
    pub fn to_hf_json(&self) -> Value {
        let mut v = serde_json::json!({
            "architectures": [self.architecture.hf_name()],
            "model_type": self.architecture.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.qkv_bias,
            "eos_token_id": self.eos_token_ids,
        });
        if let Some(bos) = self.bos_token_id {
            v["bos_token_id"] = bos.into();
        }
        if let Some(dtype) = &self.checkpoint_dtype {
            v["torch_dtype"] = dtype.clone().into();
        }
        self.family.write_hf_json(&mut v);
        v
    }
}

impl ModelConfig {
    /// The config with Hugging Face `config.json` keys replaced (vLLM's `--hf-overrides`, which
    /// `--rope-scaling` and `--rope-theta` feed too): top-level keys are replaced as
    /// `PretrainedConfig.update` does, then the result is parsed and checked again.
    pub fn with_overrides(
        &self,
        overrides: &serde_json::Map<String, Value>,
        path: &Path,
    ) -> Result<Self, LoadError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut json = self.to_hf_json();
        if let Some(rs) = &self.rope_scaling {
            json["rope_scaling"] = rope_scaling_json(rs);
        }
        for (k, v) in overrides {
            json[k.as_str()] = v.clone();
        }
        Self::from_hf_json(&json, path)
    }

    /// The longest context the model supports, as vLLM derives it: `max_position_embeddings`,
    /// times the RoPE scaling factor for linear and dynamic scaling, and the original length
    /// times the factor for YaRN (Llama 3 scaling already counts in `max_position_embeddings`).
    pub fn derived_max_model_len(&self) -> usize {
        let scaled = |len: usize, factor: f64| {
            if factor.is_finite() && factor > 1.0 {
                (len as f64 * factor) as usize
            } else {
                len
            }
        };
        match &self.rope_scaling {
            Some(RopeScaling::Linear { factor }) | Some(RopeScaling::Dynamic { factor, .. }) => {
                scaled(self.max_position_embeddings, *factor)
            }
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                ..
            }) => scaled(*original_max_position_embeddings, *factor),
            Some(RopeScaling::Llama3 { .. }) | None => self.max_position_embeddings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_config_round_trips_and_rejects_unknown_arch() {
        let json = serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "vocab_size": 100, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 512, "eos_token_id": [5, 6],
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}
        });
        let cfg = ModelConfig::from_hf_json(&json, Path::new("config.json")).unwrap();
        assert_eq!(cfg.head_dim, 16);
        assert!(cfg.qkv_bias);
        assert_eq!(cfg.eos_token_ids, vec![5, 6]);
        assert!(matches!(
            cfg.rope_scaling,
            Some(RopeScaling::Yarn {
                original_max_position_embeddings: 128,
                ..
            })
        ));
        let again = ModelConfig::from_hf_json(&cfg.to_hf_json(), Path::new("x")).unwrap();
        assert_eq!(again.architecture, cfg.architecture);
        assert_eq!(again.head_dim, cfg.head_dim);

        let mut bad = json.clone();
        bad["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        let e = ModelConfig::from_hf_json(&bad, Path::new("m/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m/config.json") && e.contains("GPT2LMHeadModel"),
            "{e}"
        );

        let mut bad = json;
        bad["num_key_value_heads"] = 3.into();
        assert!(ModelConfig::from_hf_json(&bad, Path::new("c")).is_err());
    }

    #[test]
    fn overrides_replace_keys_and_scaling_stretches_the_context() {
        let json = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "max_position_embeddings": 512,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128, "mscale": 0.5}
        });
        let cfg = ModelConfig::from_hf_json(&json, Path::new("c")).unwrap();
        assert_eq!(cfg.derived_max_model_len(), 512);
        // Without overrides nothing changes, the YaRN details included.
        assert_eq!(
            cfg.with_overrides(&serde_json::Map::new(), Path::new("c"))
                .unwrap(),
            cfg
        );
        let same = cfg
            .with_overrides(
                serde_json::json!({"vocab_size": 100}).as_object().unwrap(),
                Path::new("c"),
            )
            .unwrap();
        assert_eq!(same, cfg);

        let o = serde_json::json!({"rope_theta": 5e5, "rope_scaling": {"rope_type": "linear", "factor": 2.0}});
        let changed = cfg
            .with_overrides(o.as_object().unwrap(), Path::new("c"))
            .unwrap();
        assert_eq!(changed.rope_theta, 5e5);
        assert_eq!(
            changed.rope_scaling,
            Some(RopeScaling::Linear { factor: 2.0 })
        );
        assert_eq!(changed.derived_max_model_len(), 1024);

        let bad = serde_json::json!({"num_attention_heads": 3});
        assert!(cfg
            .with_overrides(bad.as_object().unwrap(), Path::new("c"))
            .is_err());
    }
}
