//! The hyper-parameters only some architectures have (sliding windows, soft-caps, mixtures of
//! experts, …), parsed from `config.json` with the defaults each family's transformers config
//! class uses, and refused when set to something the model code does not implement.

use serde_json::Value;

use super::Architecture;

/// The activation of the gated MLP (`hidden_act`, or `hidden_activation` in Gemma configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// SiLU (SwiGLU), Llama's.
    #[default]
    Silu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`), Gemma's.
    GeluTanh,
}

impl Activation {
    fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Activation::Silu),
            "gelu_pytorch_tanh" | "gelu_tanh" => Some(Activation::GeluTanh),
            _ => None,
        }
    }

    fn hf_name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
        }
    }
}

/// Mixture-of-experts feed-forward (Mixtral, Qwen3-MoE).
#[derive(Debug, Clone, PartialEq)]
pub struct MoeParams {
    pub num_experts: usize,
    pub top_k: usize,
    /// Rows of each expert's gate/up projection.
    pub expert_intermediate_size: usize,
    /// Whether the top-k routing weights are renormalised to sum to 1 (Mixtral always;
    /// Qwen3-MoE per `norm_topk_prob`).
    pub norm_topk_prob: bool,
    /// Qwen3-MoE: every `decoder_sparse_step`-th layer is sparse …
    pub decoder_sparse_step: usize,
    /// … except these, which keep a dense MLP of `intermediate_size`.
    pub mlp_only_layers: Vec<usize>,
}

impl MoeParams {
    /// Whether decoder layer `i` has the sparse block (the rule of Qwen3-MoE's decoder layer).
    pub fn is_sparse(&self, i: usize) -> bool {
        !self.mlp_only_layers.contains(&i)
            && self.num_experts > 0
            && (i + 1).is_multiple_of(self.decoder_sparse_step.max(1))
    }
}

/// Architecture-specific parameters; `Default` is a plain Llama-style decoder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FamilyParams {
    pub activation: Activation,
    /// Sliding-window span (keys a query sees, its own included) of the layers that use it.
    pub sliding_window: Option<usize>,
    /// Per layer: whether it uses `sliding_window` (empty: every layer, when a window is set).
    pub sliding_layers: Vec<bool>,
    /// Gemma 2: attention scores soft-capped as `cap * tanh(s / cap)`.
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma 2: final logits soft-capped the same way.
    pub final_logit_softcapping: Option<f64>,
    /// Gemma: attention scale is `query_pre_attn_scalar^-0.5` instead of `head_dim^-0.5`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 3: RoPE base of the sliding-window layers (global layers use `rope_theta`).
    pub rope_local_base_freq: Option<f64>,
    pub moe: Option<MoeParams>,
}

impl FamilyParams {
    /// Whether layer `i` attends through the sliding window, and its span.
    pub fn window_of(&self, i: usize) -> Option<usize> {
        let w = self.sliding_window?;
        if self.sliding_layers.is_empty() || self.sliding_layers.get(i).copied().unwrap_or(false) {
            Some(w)
        } else {
            None
        }
    }

    /// The smallest window of any layer (what `--disable-sliding-window` caps the context to).
    pub fn smallest_window(&self, layers: usize) -> Option<usize> {
        (0..layers).filter_map(|i| self.window_of(i)).min()
    }

    /// The keys of `config.json` that describe these parameters (for `to_hf_json`).
    pub fn write_hf_json(&self, v: &mut Value) {
        v["hidden_act"] = self.activation.hf_name().into();
        if let Some(w) = self.sliding_window {
            v["sliding_window"] = w.into();
            if !self.sliding_layers.is_empty() {
                v["layer_types"] = self
                    .sliding_layers
                    .iter()
                    .map(|s| {
                        if *s {
                            "sliding_attention"
                        } else {
                            "full_attention"
                        }
                    })
                    .collect::<Vec<_>>()
                    .into();
            }
        }
        let mut put = |k: &str, x: Option<f64>| {
            if let Some(x) = x {
                v[k] = x.into();
            }
        };
        put("attn_logit_softcapping", self.attn_logit_softcapping);
        put("final_logit_softcapping", self.final_logit_softcapping);
        put("query_pre_attn_scalar", self.query_pre_attn_scalar);
        put("rope_local_base_freq", self.rope_local_base_freq);
        if let Some(m) = &self.moe {
            v["num_local_experts"] = m.num_experts.into();
            v["num_experts"] = m.num_experts.into();
            v["num_experts_per_tok"] = m.top_k.into();
            v["moe_intermediate_size"] = m.expert_intermediate_size.into();
            v["norm_topk_prob"] = m.norm_topk_prob.into();
            v["decoder_sparse_step"] = m.decoder_sparse_step.into();
            v["mlp_only_layers"] = m.mlp_only_layers.clone().into();
        }
    }
}

/// Parses the family parameters of `arch` from `json`; `Err` names what is unsupported.
pub fn parse(
    arch: Architecture,
    json: &Value,
    num_layers: usize,
    intermediate_size: usize,
) -> Result<FamilyParams, String> {
    use Architecture as A;
    let f = |k: &str| json.get(k).and_then(Value::as_f64);
    let u = |k: &str| json.get(k).and_then(Value::as_u64).map(|v| v as usize);
    let gemma = matches!(arch, A::Gemma2 | A::Gemma3);
    let act_name = json
        .get("hidden_activation")
        .filter(|v| !v.is_null() && gemma)
        .or_else(|| json.get("hidden_act"))
        .and_then(Value::as_str);
    let activation = match act_name {
        None if gemma => Activation::GeluTanh,
        None => Activation::Silu,
        Some(n) => Activation::from_hf_name(n).ok_or_else(|| {
            format!("unsupported activation `{n}` (supported: silu, gelu_pytorch_tanh)")
        })?,
    };
    let mut p = FamilyParams {
        activation,
        ..Default::default()
    };
    // Only the families whose model code applies a window read it: a Llama or Qwen config's
    // `sliding_window` (Qwen2 writes one with `use_sliding_window: false`) must not switch
    // anything on.
    let window = match arch {
        A::Mistral | A::Mixtral | A::Phi3 | A::Gemma2 | A::Gemma3 => u("sliding_window"),
        A::Qwen2 | A::Qwen3 | A::Qwen3Moe => {
            if json.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
                return Err("use_sliding_window: true is not supported for Qwen models".into());
            }
            None
        }
        A::Llama => None,
    };
    p.sliding_window = window.filter(|w| *w > 0);
    if p.sliding_window.is_some() && gemma {
        p.sliding_layers = match json.get("layer_types").and_then(Value::as_array) {
            Some(types) => {
                let mut out = Vec::with_capacity(types.len());
                for t in types {
                    match t.as_str() {
                        Some("sliding_attention") => out.push(true),
                        Some("full_attention") => out.push(false),
                        other => return Err(format!("unsupported layer type {other:?}")),
                    }
                }
                if out.len() != num_layers {
                    return Err(format!(
                        "layer_types has {} entries for {num_layers} layers",
                        out.len()
                    ));
                }
                out
            }
            // Gemma 2 alternates sliding (even layers) and global; Gemma 3 has five sliding
            // layers per global one (`sliding_window_pattern`, default 6).
            None => {
                let pattern = if arch == A::Gemma2 {
                    2
                } else {
                    u("sliding_window_pattern")
                        .or_else(|| u("_sliding_window_pattern"))
                        .unwrap_or(6)
                        .max(1)
                };
                (0..num_layers).map(|i| (i + 1) % pattern != 0).collect()
            }
        };
    }
    if gemma {
        p.query_pre_attn_scalar = Some(f("query_pre_attn_scalar").unwrap_or(256.0));
        let cap = |k: &str, dflt: Option<f64>| match json.get(k) {
            Some(Value::Null) => None,
            Some(v) => v.as_f64().filter(|c| *c > 0.0),
            None => dflt,
        };
        if arch == A::Gemma2 {
            p.attn_logit_softcapping = cap("attn_logit_softcapping", Some(50.0));
            p.final_logit_softcapping = cap("final_logit_softcapping", Some(30.0));
        } else {
            p.attn_logit_softcapping = cap("attn_logit_softcapping", None);
            p.final_logit_softcapping = cap("final_logit_softcapping", None);
            let local = json
                .get("rope_parameters")
                .and_then(|r| r.get("sliding_attention"))
                .and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64);
            p.rope_local_base_freq = Some(local.or(f("rope_local_base_freq")).unwrap_or(10000.0));
        }
    }
    p.moe = match arch {
        A::Mixtral => Some(MoeParams {
            num_experts: u("num_local_experts").unwrap_or(8),
            top_k: u("num_experts_per_tok").unwrap_or(2),
            expert_intermediate_size: intermediate_size,
            norm_topk_prob: true,
            decoder_sparse_step: 1,
            mlp_only_layers: Vec::new(),
        }),
        A::Qwen3Moe => Some(MoeParams {
            // transformers 5 writes `num_local_experts`, Hub checkpoints `num_experts`.
            num_experts: u("num_experts")
                .or_else(|| u("num_local_experts"))
                .unwrap_or(128),
            top_k: u("num_experts_per_tok").unwrap_or(8),
            expert_intermediate_size: u("moe_intermediate_size").unwrap_or(768),
            norm_topk_prob: json
                .get("norm_topk_prob")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            decoder_sparse_step: u("decoder_sparse_step").unwrap_or(1),
            mlp_only_layers: json
                .get("mlp_only_layers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .map(|v| v as usize)
                        .collect()
                })
                .unwrap_or_default(),
        }),
        _ => None,
    };
    if let Some(m) = &p.moe {
        if m.num_experts == 0 || m.top_k == 0 || m.top_k > m.num_experts {
            return Err(format!(
                "num_experts_per_tok ({}) must be between 1 and the number of experts ({})",
                m.top_k, m.num_experts
            ));
        }
        if m.expert_intermediate_size == 0 {
            return Err("the experts' intermediate size must be positive".into());
        }
    }
    if arch == A::Phi3 {
        if let Some(r) = f("partial_rotary_factor").filter(|r| *r != 1.0) {
            return Err(format!(
                "partial_rotary_factor {r} is not supported (rotary embedding on the whole head only)"
            ));
        }
    }
    if json
        .get("use_bidirectional_attention")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err("use_bidirectional_attention: true is not supported (causal LMs only)".into());
    }
    if arch == A::Qwen3Moe && json.get("shared_expert_intermediate_size").is_some() {
        return Err("shared experts (Qwen2-MoE style) are not supported".into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{ModelConfig, RopeScaling};

    fn base(arch: &str) -> serde_json::Value {
        serde_json::json!({
            "architectures": [arch], "vocab_size": 100, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 512
        })
    }

    fn parse(v: &serde_json::Value) -> Result<ModelConfig, String> {
        ModelConfig::from_hf_json(v, Path::new("config.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn family_defaults_follow_the_transformers_config_classes() {
        let g2 = parse(&base("Gemma2ForCausalLM")).unwrap();
        assert!(g2.tie_word_embeddings);
        assert_eq!(g2.family.activation, super::Activation::GeluTanh);
        assert_eq!(g2.family.attn_logit_softcapping, Some(50.0));
        assert_eq!(g2.family.final_logit_softcapping, Some(30.0));
        // No window in the config: every layer is global.
        assert_eq!(g2.family.window_of(0), None);

        let mut v = base("Gemma3ForCausalLM");
        v["sliding_window"] = 16.into();
        v["sliding_window_pattern"] = 2.into();
        v["rope_parameters"] = serde_json::json!({
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e6},
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}
        });
        let g3 = parse(&v).unwrap();
        assert_eq!(g3.rope_theta, 1e6);
        assert_eq!(g3.rope_scaling, Some(RopeScaling::Linear { factor: 4.0 }));
        assert_eq!(g3.family.rope_local_base_freq, Some(1e4));
        assert_eq!(g3.family.final_logit_softcapping, None);
        let windows: Vec<_> = (0..4).map(|i| g3.family.window_of(i)).collect();
        assert_eq!(windows, [Some(16), None, Some(16), None]);
        // The round trip through config.json keys (used by --hf-overrides) keeps all of it.
        let again = ModelConfig::from_hf_json(&g3.to_hf_json(), Path::new("c")).unwrap();
        assert_eq!(again.family, g3.family);

        let mut v = base("Qwen3MoeForCausalLM");
        v["num_experts"] = 8.into();
        v["num_experts_per_tok"] = 2.into();
        v["moe_intermediate_size"] = 32.into();
        v["mlp_only_layers"] = serde_json::json!([2]);
        let m = parse(&v).unwrap().family.moe.unwrap();
        assert!(!m.norm_topk_prob && m.is_sparse(0) && !m.is_sparse(2));
        let mx = parse(&base("MixtralForCausalLM"))
            .unwrap()
            .family
            .moe
            .unwrap();
        assert!(mx.norm_topk_prob && mx.num_experts == 8 && mx.expert_intermediate_size == 128);
    }

    #[test]
    fn unimplemented_config_features_are_refused_by_name() {
        let mut v = base("Phi3ForCausalLM");
        v["rope_scaling"] =
            serde_json::json!({"type": "longrope", "short_factor": [1.0], "long_factor": [2.0]});
        assert!(parse(&v).unwrap_err().contains("longrope"));
        let mut v = base("Phi3ForCausalLM");
        v["partial_rotary_factor"] = 0.75.into();
        assert!(parse(&v).unwrap_err().contains("partial_rotary_factor"));
        let mut v = base("MistralForCausalLM");
        v["hidden_act"] = "gelu".into();
        assert!(parse(&v).unwrap_err().contains("`gelu`"));
        let mut v = base("Qwen2ForCausalLM");
        v["use_sliding_window"] = true.into();
        assert!(parse(&v).unwrap_err().contains("use_sliding_window"));
        let mut v = base("MixtralForCausalLM");
        v["num_experts_per_tok"] = 9.into();
        assert!(parse(&v).unwrap_err().contains("num_experts_per_tok"));
        let e = parse(&base("DeepseekV3ForCausalLM")).unwrap_err();
        assert!(
            e.contains("DeepseekV3ForCausalLM") && e.contains("Qwen3MoeForCausalLM"),
            "{e}"
        );
    }
}
