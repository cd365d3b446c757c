//! What a Hugging Face `config.json` must say for vllm-rs to serve the model, checked before any
//! weight is read or downloaded: a known architecture, no `quantization_config` (AWQ, GPTQ,
//! FP8… checkpoints need kernels vllm-rs does not have; GGUF files are its quantized format),
//! and a float checkpoint dtype. Each refusal names what it found and what is supported.

use serde_json::Value;

use crate::config::Architecture;

/// Checkpoint dtypes (`torch_dtype` / `dtype`) the loaders read.
pub const CHECKPOINT_DTYPES: &[&str] = &["float32", "bfloat16", "float16"];

/// The architecture names vLLM users write in `config.json`, comma-separated.
pub fn supported_architectures() -> String {
    Architecture::ALL
        .iter()
        .map(|a| a.hf_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why vllm-rs cannot serve a model with this `config.json`, if it cannot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("config.json has no `architectures` entry (supported: {supported})")]
    NoArchitecture { supported: String },
    #[error("unsupported architecture `{arch}` (supported: {supported})")]
    Architecture { arch: String, supported: String },
    #[error("unsupported quantization `{method}` (config.json `quantization_config`): vllm-rs serves unquantized float32/bfloat16/float16 safetensors checkpoints, and GGUF files for quantized weights")]
    Quantization { method: String },
    #[error("unsupported checkpoint dtype `{dtype}` (supported: {})", CHECKPOINT_DTYPES.join(", "))]
    Dtype { dtype: String },
}

/// Checks a `config.json` against what vllm-rs serves.
pub fn check_supported(config: &Value) -> Result<(), Unsupported> {
    let arch = config
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| Unsupported::NoArchitecture {
            supported: supported_architectures(),
        })?;
    if Architecture::of_checkpoint(arch).is_none() {
        return Err(Unsupported::Architecture {
            arch: arch.to_string(),
            supported: supported_architectures(),
        });
    }
    if let Some(q) = config.get("quantization_config").filter(|q| !q.is_null()) {
        let method = q
            .get("quant_method")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return Err(Unsupported::Quantization {
            method: method.to_string(),
        });
    }
    let dtype = config
        .get("torch_dtype")
        .or_else(|| config.get("dtype"))
        .and_then(Value::as_str);
    if let Some(d) = dtype.filter(|d| !CHECKPOINT_DTYPES.contains(d)) {
        return Err(Unsupported::Dtype {
            dtype: d.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sequence_classifiers_of_a_supported_decoder_pass() {
        let cfg =
            json!({"architectures": ["Qwen3ForSequenceClassification"], "torch_dtype": "float32"});
        assert_eq!(check_supported(&cfg), Ok(()));
        let cfg = json!({"architectures": ["BertForSequenceClassification"]});
        assert!(matches!(
            check_supported(&cfg),
            Err(Unsupported::Architecture { .. })
        ));
    }

    #[test]
    fn each_listed_architecture_round_trips() {
        for a in &Architecture::ALL {
            assert_eq!(Architecture::from_hf_name(a.hf_name()), Some(*a));
            assert!(check_supported(
                &json!({"architectures": [a.hf_name()], "torch_dtype": "bfloat16"})
            )
            .is_ok());
        }
    }

    #[test]
    fn refusals_name_what_they_found_and_the_supported_list() {
        let e = check_supported(&json!({"architectures": ["DeepseekV3ForCausalLM"]})).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("DeepseekV3ForCausalLM") && msg.contains("Qwen3ForCausalLM"),
            "{msg}"
        );
        let awq = json!({"architectures": ["LlamaForCausalLM"], "quantization_config": {"quant_method": "awq", "bits": 4}});
        assert_eq!(
            check_supported(&awq),
            Err(Unsupported::Quantization {
                method: "awq".into()
            })
        );
        let fp8 = json!({"architectures": ["Qwen3ForCausalLM"], "torch_dtype": "float8_e4m3fn"});
        assert!(check_supported(&fp8)
            .unwrap_err()
            .to_string()
            .contains("float8_e4m3fn"));
        assert!(matches!(
            check_supported(&json!({})),
            Err(Unsupported::NoArchitecture { .. })
        ));
    }
}
