//! `vllmd` command-line flags. Names, defaults and meanings follow `vllm serve`.
//!
//! This is the subset the foundation needs; the server issue grows it into the full reference
//! (and the YAML `--config` schema derived from the same struct).

use std::path::PathBuf;

use clap::Parser;

/// Parses `--max-model-len` values as vLLM does: `1k` = 1000, `1K` = 1024, `25.6k` = 25600,
/// `2M` = 2·1024², plain integers as they are.
pub fn parse_human_len(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let err = || format!("invalid length `{s}` (examples: 4096, 1k, 1K, 25.6k, 2M)");
    let (num, mult) = match s.chars().last() {
        Some(c @ ('k' | 'm' | 'g')) => (&s[..s.len() - 1], 1000f64.powi(" kmg".find(c).unwrap_or(0) as i32)),
        Some(c @ ('K' | 'M' | 'G')) => (&s[..s.len() - 1], 1024f64.powi(" KMG".find(c).unwrap_or(0) as i32)),
        _ => (s, 1.0),
    };
    let value: f64 = num.parse().map_err(|_| err())?;
    let total = value * mult;
    if !total.is_finite() || total < 1.0 || total.fract() != 0.0 || total > usize::MAX as f64 {
        return Err(err());
    }
    Ok(total as usize)
}

#[derive(Debug, Clone, Parser)]
#[command(name = "vllmd", version, about = "vllm-rs server: an OpenAI-compatible API in front of the vllm-rs engine")]
pub struct ServeArgs {
    /// Model to serve: a GGUF file or a Hugging Face folder. Default: the built-in
    /// SmolLM2-135M-Instruct (fetched by scripts/fetch-models.sh).
    #[arg(value_name = "MODEL_TAG")]
    pub model_tag: Option<PathBuf>,

    /// Same as the positional MODEL_TAG.
    #[arg(long, help_heading = "ModelConfig")]
    pub model: Option<PathBuf>,

    /// Name or path of the tokenizer (folder with tokenizer.json, tokenizer.json, or GGUF).
    #[arg(long, help_heading = "ModelConfig")]
    pub tokenizer: Option<PathBuf>,

    /// Path of the Hugging Face config.json to use instead of the model's.
    #[arg(long, help_heading = "ModelConfig")]
    pub hf_config_path: Option<PathBuf>,

    /// Data type for model weights: auto, float32, float, bfloat16, float16, half.
    #[arg(long, default_value = "auto", help_heading = "ModelConfig")]
    pub dtype: String,

    /// Model context length (prompt and output); accepts 1k, 1K, 25.6k, 2M.
    #[arg(long, value_parser = parse_human_len, help_heading = "ModelConfig")]
    pub max_model_len: Option<usize>,

    /// Random seed.
    #[arg(long, default_value_t = 0, help_heading = "ModelConfig")]
    pub seed: u64,

    /// Format of the weights: auto, gguf, safetensors, dummy.
    #[arg(long, default_value = "auto", help_heading = "LoadConfig")]
    pub load_format: String,

    /// Host name to listen on.
    #[arg(long, default_value = "127.0.0.1", help_heading = "Frontend")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, default_value_t = 8000, help_heading = "Frontend")]
    pub port: u16,

    /// Names the model is served under (the first is the default name).
    #[arg(long, num_args = 1.., help_heading = "ModelConfig")]
    pub served_model_name: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lengths_follow_the_reference_examples() {
        // The examples are the ones the vLLM server-arguments reference lists.
        assert_eq!(parse_human_len("1k"), Ok(1000));
        assert_eq!(parse_human_len("1K"), Ok(1024));
        assert_eq!(parse_human_len("25.6k"), Ok(25_600));
        assert_eq!(parse_human_len("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_human_len("4096"), Ok(4096));
        assert!(parse_human_len("0").is_err());
        assert!(parse_human_len("1.5").is_err());
        assert!(parse_human_len("abc").is_err());
        assert!(parse_human_len("-1k").is_err());
    }
}
