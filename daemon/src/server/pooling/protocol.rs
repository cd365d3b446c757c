//! Request shapes of the pooling endpoints (vLLM's `EmbeddingRequest`, `ClassificationRequest`,
//! `ScoreRequest`, `RerankRequest`), and the float/base64 encodings of vectors.

use serde::Deserialize;
use serde_json::Value;

use crate::server::error::ApiError;

/// One prompt: text, or token ids.
#[derive(Debug, Clone)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// `input` as OpenAI accepts it: a string, a list of strings, a list of token ids, or a list
/// of token-id lists.
pub fn parse_input(v: &Value) -> Result<Vec<PromptInput>, ApiError> {
    let bad = || {
        ApiError::bad_param(
            "input",
            "input must be a string, a list of strings, a list of token ids or a list of token-id lists",
        )
    };
    let token = |x: &Value| {
        x.as_u64()
            .filter(|t| *t <= u32::MAX as u64)
            .map(|t| t as u32)
    };
    let tokens = |a: &[Value]| a.iter().map(token).collect::<Option<Vec<u32>>>();
    match v {
        Value::String(s) => Ok(vec![PromptInput::Text(s.clone())]),
        Value::Array(items) if items.is_empty() => {
            Err(ApiError::bad_param("input", "the input cannot be empty"))
        }
        Value::Array(items) => match &items[0] {
            Value::String(_) => items
                .iter()
                .map(|i| i.as_str().map(|s| PromptInput::Text(s.to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad),
            Value::Number(_) => Ok(vec![PromptInput::Tokens(tokens(items).ok_or_else(bad)?)]),
            Value::Array(_) => items
                .iter()
                .map(|i| {
                    i.as_array()
                        .and_then(|a| tokens(a))
                        .map(PromptInput::Tokens)
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub model: Option<String>,
    pub input: Option<Value>,
    /// The chat form: messages rendered by the chat template, then embedded.
    pub messages: Option<Vec<Value>>,
    #[serde(default = "float_format")]
    pub encoding_format: String,
    pub dimensions: Option<usize>,
    pub truncate_prompt_tokens: Option<i64>,
    pub add_special_tokens: Option<bool>,
    pub add_generation_prompt: Option<bool>,
    pub normalize: Option<bool>,
    #[allow(dead_code)]
    pub user: Option<String>,
}

fn float_format() -> String {
    "float".into()
}

#[derive(Debug, Deserialize)]
pub struct ClassificationRequest {
    pub model: Option<String>,
    pub input: Value,
    pub truncate_prompt_tokens: Option<i64>,
    pub activation: Option<bool>,
    #[allow(dead_code)]
    pub user: Option<String>,
}

/// `/score`: `text_1` against `text_2` (one against many, or pairwise lists of equal length).
#[derive(Debug, Deserialize)]
pub struct ScoreRequest {
    pub model: Option<String>,
    pub text_1: Value,
    pub text_2: Value,
    pub truncate_prompt_tokens: Option<i64>,
    pub activation: Option<bool>,
}

/// `/rerank` (Jina and Cohere shapes).
#[derive(Debug, Deserialize)]
pub struct RerankRequest {
    pub model: Option<String>,
    pub query: String,
    pub documents: Vec<Value>,
    /// 0 or absent: every document.
    pub top_n: Option<usize>,
    pub return_documents: Option<bool>,
    pub truncate_prompt_tokens: Option<i64>,
}

/// A vector as `encoding_format` asks: a JSON list of floats, or base64 of little-endian
/// float32 bytes (what the OpenAI client decodes with numpy).
pub fn encode_vector(v: &[f32], format: &str) -> Value {
    if format == "base64" {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        Value::String(base64(&bytes))
    } else {
        Value::from(v.to_vec())
    }
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn inputs_of_every_shape() {
        let p = |v: Value| parse_input(&v).map(|x| x.len());
        assert_eq!(p(serde_json::json!("a")).ok(), Some(1));
        assert_eq!(p(serde_json::json!(["a", "b"])).ok(), Some(2));
        assert_eq!(p(serde_json::json!([1, 2, 3])).ok(), Some(1));
        assert_eq!(p(serde_json::json!([[1], [2, 3]])).ok(), Some(2));
        assert!(p(serde_json::json!([])).is_err());
        assert!(p(serde_json::json!(["a", 1])).is_err());
        assert!(p(serde_json::json!([-1])).is_err());
        assert!(p(serde_json::json!(3)).is_err());
    }
}
