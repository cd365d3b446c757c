//! Tokenizer and chat template.
//!
//! A [`Tokenizer`] wraps a Hugging Face `tokenizers::Tokenizer` plus the facts the serving layer
//! needs around it (BOS/EOS, control tokens, the chat template). It is built either from a GGUF
//! file's `tokenizer.ggml.*` metadata ([`Tokenizer::from_gguf`]) or from a Hugging Face folder's
//! `tokenizer.json` + `tokenizer_config.json` ([`Tokenizer::from_hf_files`]). Both paths aim at
//! the token ids that transformers produces for the same model, so that golden data from
//! transformers applies unchanged.

mod chat_template;
mod gguf;
mod hf;
mod pyjson;
mod strftime;

use std::path::Path;

pub use chat_template::{ChatTemplate, ChatTemplateError};

use crate::gguf::GgufFile;
use crate::LoadError;

/// Runtime failure of encoding, decoding or serializing (load failures are [`LoadError`]s).
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer encode failed: {0}")]
    Encode(String),
    #[error("tokenizer decode failed: {0}")]
    Decode(String),
    #[error("tokenizer serialization failed: {0}")]
    Serialize(String),
}

/// A token id together with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamedToken {
    id: u32,
    text: String,
}

/// A loaded tokenizer: the Hugging Face tokenizer plus special-token facts and the chat template.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<NamedToken>,
    eos: Option<NamedToken>,
    /// Ids of the tokens the model treats as control/special (what `skip_special_tokens` drops).
    special_ids: Vec<u32>,
    chat_template: Option<String>,
    /// One more than the largest id the tokenizer knows; the embedding must have at least this many rows.
    vocab_size: usize,
    add_bos: bool,
    add_eos: bool,
}

impl std::fmt::Debug for Tokenizer {
    // The inner tokenizer holds the whole vocabulary; printing it would flood any log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("special_tokens", &self.special_ids.len())
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

/// What a builder (GGUF or HF) hands over to [`Tokenizer::assemble`].
struct Parts {
    inner: tokenizers::Tokenizer,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    special_ids: Vec<u32>,
    chat_template: Option<String>,
    /// Known from the source (GGUF token count); `None` derives it from the vocabulary.
    vocab_size: Option<usize>,
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self, LoadError> {
        let parts = gguf::build(gguf)?;
        Self::assemble(parts, gguf.path())
    }

    /// Loads a Hugging Face tokenizer: `tokenizer.json`, plus `tokenizer_config.json` for the chat
    /// template, BOS/EOS and `add_bos_token`/`add_eos_token` when given.
    pub fn from_hf_files(
        tokenizer_json: &Path,
        tokenizer_config_json: Option<&Path>,
    ) -> Result<Self, LoadError> {
        let parts = hf::load(tokenizer_json, tokenizer_config_json)?;
        Self::assemble(parts, tokenizer_json)
    }

    fn assemble(parts: Parts, path: &Path) -> Result<Self, LoadError> {
        let Parts {
            inner,
            bos_id,
            eos_id,
            mut special_ids,
            chat_template,
            vocab_size,
        } = parts;
        let name = |id: Option<u32>, what: &str| -> Result<Option<NamedToken>, LoadError> {
            let Some(id) = id else { return Ok(None) };
            match inner.id_to_token(id) {
                Some(text) => Ok(Some(NamedToken { id, text })),
                None => Err(LoadError::Tokenizer {
                    path: path.to_path_buf(),
                    msg: format!("{what} token id {id} is not in the vocabulary"),
                }),
            }
        };
        let bos = name(bos_id, "BOS")?;
        let eos = name(eos_id, "EOS")?;
        let vocab_size = vocab_size.unwrap_or_else(|| {
            inner
                .get_vocab(true)
                .values()
                .map(|&id| id as usize + 1)
                .max()
                .unwrap_or(0)
        });
        special_ids.sort_unstable();
        special_ids.dedup();
        // Whether BOS/EOS get added is whatever the post-processor does; asking it directly keeps
        // these flags true for any tokenizer.json, not only the ones we built.
        let (prefix, suffix) = added_special_ids(&inner).map_err(|msg| LoadError::Tokenizer {
            path: path.to_path_buf(),
            msg,
        })?;
        let add_bos = matches!((&bos, prefix.last()), (Some(b), Some(&id)) if b.id == id);
        let add_eos = matches!((&eos, suffix.first()), (Some(e), Some(&id)) if e.id == id);
        Ok(Tokenizer {
            inner,
            bos,
            eos,
            special_ids,
            chat_template,
            vocab_size,
            add_bos,
            add_eos,
        })
    }

    /// Token ids of `text`. Special-token text inside `text` (e.g. `<|im_start|>`) becomes that
    /// token, as transformers does by default. `add_special_tokens` adds BOS/EOS only where the
    /// model asks for them (`add_bos_token` / `add_eos_token`).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, without clean-up of tokenization spaces. Ids the vocabulary does not know
    /// are skipped, as the `tokenizers` library does.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// One more than the largest known token id.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|t| t.id)
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos.as_ref().map(|t| t.id)
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos.as_ref().map(|t| t.text.as_str())
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos.as_ref().map(|t| t.text.as_str())
    }

    /// Whether `encode(_, true)` puts BOS first.
    pub fn add_bos_token(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(_, true)` puts EOS last.
    pub fn add_eos_token(&self) -> bool {
        self.add_eos
    }

    /// Ids of control/special tokens, sorted.
    pub fn special_token_ids(&self) -> &[u32] {
        &self.special_ids
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Compiles the model's chat template with this tokenizer's BOS/EOS text.
    pub fn compile_chat_template(&self) -> Option<Result<ChatTemplate, ChatTemplateError>> {
        let source = self.chat_template.as_deref()?;
        Some(ChatTemplate::new(
            source,
            self.bos_token(),
            self.eos_token(),
        ))
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The inner tokenizer as `tokenizer.json` text.
    pub fn to_hf_json(&self) -> Result<String, TokenizerError> {
        self.inner
            .to_string(false)
            .map_err(|e| TokenizerError::Serialize(e.to_string()))
    }

    /// A `tokenizer_config.json` carrying what `tokenizer.json` cannot: BOS/EOS, the add flags and
    /// the chat template. Together with [`Self::to_hf_json`] it makes a folder that
    /// [`Self::from_hf_files`] (and transformers) load back to the same tokenizer.
    pub fn to_hf_config_json(&self) -> Result<String, TokenizerError> {
        let mut map = serde_json::Map::new();
        map.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        map.insert("bos_token".into(), self.bos_token().into());
        map.insert("eos_token".into(), self.eos_token().into());
        map.insert("add_bos_token".into(), self.add_bos.into());
        map.insert("add_eos_token".into(), self.add_eos.into());
        map.insert("clean_up_tokenization_spaces".into(), false.into());
        if let Some(template) = &self.chat_template {
            map.insert("chat_template".into(), template.as_str().into());
        }
        serde_json::to_string_pretty(&serde_json::Value::Object(map))
            .map_err(|e| TokenizerError::Serialize(e.to_string()))
    }
}

/// The ids the post-processor puts before and after a text's own ids when special tokens are
/// requested, found by encoding a probe text both ways. The probe must produce ids of its own,
/// or the added ids could not be told apart into before and after; a vocabulary that encodes
/// none of the probes is reported as adding nothing.
fn added_special_ids(inner: &tokenizers::Tokenizer) -> Result<(Vec<u32>, Vec<u32>), String> {
    let encode = |text: &str, special: bool| {
        inner
            .encode_fast(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("probe encode failed: {e}"))
    };
    for probe in ["a", "0", "Hello", "\u{4e00}", " "] {
        let plain = encode(probe, false)?;
        if plain.is_empty() {
            continue;
        }
        let full = encode(probe, true)?;
        let at = (0..=full.len().saturating_sub(plain.len()))
            .find(|&i| full.get(i..i + plain.len()) == Some(plain.as_slice()))
            .ok_or_else(|| "the post-processor changes the text's own ids".to_string())?;
        return Ok((full[..at].to_vec(), full[at + plain.len()..].to_vec()));
    }
    tracing::warn!("tokenizer encodes none of the probe texts; assuming it adds no BOS/EOS");
    Ok((Vec::new(), Vec::new()))
}

/// A post-processor that puts `bos` before and `eos` after each sequence.
fn bos_eos_processor(
    bos: Option<(&str, u32)>,
    eos: Option<(&str, u32)>,
) -> Result<tokenizers::processors::template::TemplateProcessing, String> {
    // Structured JSON rather than the "<s> $A" string syntax, which breaks on token texts with
    // spaces or colons.
    let piece = |tok: Option<(&str, u32)>, type_id: u32| {
        tok.map(|(t, _)| serde_json::json!({"SpecialToken": {"id": t, "type_id": type_id}}))
    };
    let seq = |id: &str, type_id: u32| {
        let mut pieces: Vec<serde_json::Value> = piece(bos, type_id).into_iter().collect();
        pieces.push(serde_json::json!({"Sequence": {"id": id, "type_id": type_id}}));
        pieces.extend(piece(eos, type_id));
        pieces
    };
    let mut special_tokens = serde_json::Map::new();
    for (t, id) in bos.iter().chain(eos.iter()) {
        special_tokens.insert(
            t.to_string(),
            serde_json::json!({"id": t, "ids": [id], "tokens": [t]}),
        );
    }
    let pair: Vec<serde_json::Value> = seq("A", 0).into_iter().chain(seq("B", 1)).collect();
    serde_json::from_value(serde_json::json!({
        "type": "TemplateProcessing",
        "single": seq("A", 0),
        "pair": pair,
        "special_tokens": special_tokens,
    }))
    .map_err(|e| format!("BOS/EOS post-processor: {e}"))
}
