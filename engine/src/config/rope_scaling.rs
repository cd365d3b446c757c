//! `rope_scaling`: the RoPE scaling variants of Hugging Face configs, parsed and written back.

use serde_json::Value;

/// `rope_scaling` variants (Hugging Face names).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// NTK-aware base scaled once the sequence exceeds `original_max_position_embeddings`.
    Dynamic {
        factor: f64,
        original_max_position_embeddings: usize,
    },
    /// Llama 3.1 frequency-band-wise scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    /// YaRN: interpolation/extrapolation blend plus an attention temperature.
    Yarn {
        factor: f64,
        original_max_position_embeddings: usize,
        beta_fast: f64,
        beta_slow: f64,
        mscale: Option<f64>,
        mscale_all_dim: Option<f64>,
        attention_factor: Option<f64>,
    },
}

/// A [`RopeScaling`] as its Hugging Face `rope_scaling` object.
pub fn rope_scaling_json(rs: &RopeScaling) -> Value {
    match rs {
        RopeScaling::Linear { factor } => {
            serde_json::json!({"rope_type": "linear", "factor": factor})
        }
        RopeScaling::Dynamic {
            factor,
            original_max_position_embeddings,
        } => {
            serde_json::json!({"rope_type": "dynamic", "factor": factor, "original_max_position_embeddings": original_max_position_embeddings})
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => serde_json::json!({
            "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor, "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings,
        }),
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            beta_slow,
            mscale,
            mscale_all_dim,
            attention_factor,
        } => {
            let mut v = serde_json::json!({
                "rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original_max_position_embeddings,
                "beta_fast": beta_fast, "beta_slow": beta_slow,
            });
            for (k, o) in [
                ("mscale", mscale),
                ("mscale_all_dim", mscale_all_dim),
                ("attention_factor", attention_factor),
            ] {
                if let Some(x) = o {
                    v[k] = (*x).into();
                }
            }
            v
        }
    }
}

/// Parses a `rope_scaling` object; `None` for absent or "default" scaling.
pub fn parse_rope_scaling(
    v: &Value,
    max_position_embeddings: usize,
) -> Result<Option<RopeScaling>, String> {
    let Some(obj) = v.as_object() else {
        return Ok(None);
    };
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let f = |k: &str| obj.get(k).and_then(Value::as_f64);
    let factor = || f("factor").ok_or_else(|| format!("rope_scaling type `{kind}` needs `factor`"));
    let orig = obj
        .get("original_max_position_embeddings")
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .unwrap_or(max_position_embeddings);
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear { factor: factor()? }),
        "dynamic" => Some(RopeScaling::Dynamic {
            factor: factor()?,
            original_max_position_embeddings: orig,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: f("low_freq_factor").unwrap_or(1.0),
            high_freq_factor: f("high_freq_factor").unwrap_or(4.0),
            original_max_position_embeddings: orig,
        }),
        "yarn" => Some(RopeScaling::Yarn {
            factor: factor()?,
            original_max_position_embeddings: orig,
            beta_fast: f("beta_fast").unwrap_or(32.0),
            beta_slow: f("beta_slow").unwrap_or(1.0),
            mscale: f("mscale"),
            mscale_all_dim: f("mscale_all_dim"),
            attention_factor: f("attention_factor"),
        }),
        other => {
            return Err(format!(
            "unsupported rope_scaling type `{other}` (supported: linear, dynamic, llama3, yarn)"
        ))
        }
    })
}
