//! Value parsers for the flags. YAML values are turned into flag tokens and go through the same
//! parsers, so a value means the same thing in both places.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde_json::Value;

/// A JSON object, for the dictionary-valued flags (`--hf-overrides '{"a": 1}'`).
pub(crate) fn json_object(s: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(format!("expected a JSON object, got `{other}`")),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// `--compilation-config`: a JSON object, or a bare level (`-O3` means `{"level": 3}`).
pub(crate) fn compilation_config(s: &str) -> Result<Value, String> {
    if let Ok(level) = s.trim().parse::<u64>() {
        return Ok(serde_json::json!({ "level": level }));
    }
    json_object(s)
}

/// A fraction of device memory: more than 0, at most 1.
pub(crate) fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not in (0, 1]"))
    }
}

/// A size in GiB or a delay factor: finite and not negative.
pub(crate) fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be a finite number >= 0"))
    }
}

/// A finite number (RoPE theta).
pub(crate) fn finite_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s} must be a finite number"))
    }
}

/// Counts that make no sense as zero (parallel sizes, partial prefills, LoRA slots).
pub(crate) fn positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("`{s}` is not a positive integer")),
    }
}

/// `--max-logprobs`: `-1` lifts the cap, which we store as `usize::MAX`.
pub(crate) fn max_logprobs(s: &str) -> Result<usize, String> {
    match s.trim() {
        "-1" => Ok(usize::MAX),
        t => t
            .parse()
            .map_err(|_| format!("`{s}` is not a count (or -1 for no cap)")),
    }
}

/// `--block-size`: one of the sizes the reference lists.
pub(crate) fn block_size() -> impl TypedValueParser<Value = usize> {
    PossibleValuesParser::new(["1", "8", "16", "32", "64", "128"]).try_map(|s| s.parse::<usize>())
}

/// `--collect-detailed-traces`: a comma-separated subset of `all`, `model`, `worker`.
pub(crate) fn detailed_traces(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    for p in &parts {
        if !matches!(*p, "all" | "model" | "worker") {
            return Err(format!("`{p}` is not one of all, model, worker"));
        }
    }
    Ok(parts.join(","))
}

pub(crate) const REASONING_PARSERS: &[&str] = &[
    "deepseek_r1",
    "glm45",
    "GptOss",
    "granite",
    "hunyuan_a13b",
    "mistral",
    "qwen3",
    "step3",
];

/// `--reasoning-parser`: empty (none) or one of the known parsers.
pub(crate) fn reasoning_parser(s: &str) -> Result<String, String> {
    if s.is_empty() || REASONING_PARSERS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not one of {}",
            REASONING_PARSERS.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_accept_and_refuse_what_they_should() {
        assert_eq!(compilation_config("3"), Ok(serde_json::json!({"level": 3})));
        assert!(json_object("[1]").is_err());
        assert!(json_object("{").is_err());
        assert_eq!(fraction("1"), Ok(1.0));
        assert!(fraction("0").is_err() && fraction("1.01").is_err() && fraction("nan").is_err());
        assert!(non_negative_f64("-1").is_err() && non_negative_f64("inf").is_err());
        assert_eq!(max_logprobs("-1"), Ok(usize::MAX));
        assert!(max_logprobs("-2").is_err());
        assert!(positive_usize("0").is_err());
        assert_eq!(detailed_traces("model, worker"), Ok("model,worker".into()));
        assert!(detailed_traces("model,gpu").is_err());
        assert!(
            reasoning_parser("qwen3").is_ok()
                && reasoning_parser("").is_ok()
                && reasoning_parser("qwen").is_err()
        );
    }
}
