//! Server-wide sampling defaults from the model's `generation_config.json` and
//! `--override-generation-config`, which requests start from before their own fields apply.

use serde_json::{Map, Value};

use super::params::{SamplingError, SamplingParams};

/// The sampling fields a model's generation config may set (vLLM reads exactly these).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingDefaults {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// From Hugging Face's `max_new_tokens`.
    pub max_tokens: Option<usize>,
}

impl SamplingDefaults {
    /// Reads the defaults from `generation_config.json` (pass `None` for vLLM's
    /// `--generation-config vllm`, which ignores the model's file) with `overrides`
    /// (`--override-generation-config`, a JSON object) taking precedence key by key.
    /// Keys that are absent, `null`, or of the wrong type leave the field unset.
    pub fn from_generation_config(config: Option<&Value>, overrides: Option<&Value>) -> Self {
        let mut merged = Map::new();
        for source in [config, overrides].into_iter().flatten() {
            if let Some(obj) = source.as_object() {
                for (k, v) in obj {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        let float = |key: &str| -> Option<f32> {
            let v = merged.get(key).filter(|v| !v.is_null())?;
            let f = v.as_f64().filter(|f| f.is_finite());
            if f.is_none() {
                tracing::warn!("generation config: ignoring {key} = {v} (not a number)");
            }
            f.map(|f| f as f32)
        };
        let int = |key: &str| -> Option<i64> {
            let v = merged.get(key).filter(|v| !v.is_null())?;
            let i = v.as_i64();
            if i.is_none() {
                tracing::warn!("generation config: ignoring {key} = {v} (not an integer)");
            }
            i
        };
        SamplingDefaults {
            temperature: float("temperature"),
            top_p: float("top_p"),
            top_k: int("top_k").and_then(|k| i32::try_from(k).ok()),
            min_p: float("min_p"),
            repetition_penalty: float("repetition_penalty"),
            max_tokens: int("max_new_tokens").and_then(|m| usize::try_from(m).ok()),
        }
    }

    /// Whether the model changes none of vLLM's defaults (vLLM logs a warning when it does).
    pub fn is_empty(&self) -> bool {
        *self == SamplingDefaults::default()
    }

    /// The parameters of a request that sets nothing itself.
    pub fn base_params(&self) -> SamplingParams {
        let mut p = SamplingParams::default();
        if let Some(v) = self.temperature {
            p.temperature = v;
        }
        if let Some(v) = self.top_p {
            p.top_p = v;
        }
        if let Some(v) = self.top_k {
            p.top_k = v;
        }
        if let Some(v) = self.min_p {
            p.min_p = v;
        }
        if let Some(v) = self.repetition_penalty {
            p.repetition_penalty = v;
        }
        if let Some(v) = self.max_tokens {
            p.max_tokens = Some(v);
        }
        p
    }

    /// Builds a request's parameters from its JSON object: [`Self::base_params`], then every
    /// field the request gives a non-null value. Unknown keys are ignored, so the whole OpenAI
    /// request body can be passed. The result still needs [`SamplingParams::validate`].
    pub fn params_from_json(&self, request: &Value) -> Result<SamplingParams, SamplingError> {
        let Some(fields) = request.as_object() else {
            return Err(SamplingError::invalid(
                "request",
                "the request body must be a JSON object",
            ));
        };
        let base = serde_json::to_value(self.base_params())
            .map_err(|e| SamplingError::invalid("request", e.to_string()))?;
        let Value::Object(mut merged) = base else {
            return Err(SamplingError::invalid(
                "request",
                "sampling defaults are not an object",
            ));
        };
        for (k, v) in fields {
            if merged.contains_key(k) && !v.is_null() {
                merged.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(Value::Object(merged.clone())).map_err(|e| {
            // serde names no field for a wrong value inside a map; find it by trying each
            // request field on its own so the error can name the parameter.
            let param = fields
                .iter()
                .filter(|(k, v)| merged.contains_key(*k) && !v.is_null())
                .find(|(k, v)| {
                    let mut one = Map::new();
                    one.insert((*k).clone(), (*v).clone());
                    serde_json::from_value::<SamplingParams>(Value::Object(one)).is_err()
                })
                .and_then(|(k, _)| field_name(k))
                .unwrap_or("request");
            SamplingError::invalid(param, format!("invalid value for {param}: {e}"))
        })
    }
}

/// The `'static` spelling of a [`SamplingParams`] field name.
fn field_name(key: &str) -> Option<&'static str> {
    const FIELDS: &[&str] = &[
        "n",
        "best_of",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "stop_token_ids",
        "bad_words",
        "include_stop_str_in_output",
        "ignore_eos",
        "max_tokens",
        "min_tokens",
        "logprobs",
        "prompt_logprobs",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "logit_bias",
        "allowed_token_ids",
        "truncate_prompt_tokens",
        "detokenize",
    ];
    FIELDS.iter().copied().find(|f| *f == key)
}
