//! The token environment llguidance needs: every token's bytes in a trie, and a tokenizer.
//!
//! `toktrie_hf_tokenizers` would build this, but it pins `tokenizers` 0.21 while the workspace is
//! on 0.22 (two copies of a large crate and a JSON round trip between them). llguidance itself
//! reads token bytes from a `tokenizer.json` value, which our tokenizer can produce, so the only
//! thing written here is the small `TokenizerEnv` adapter.

use std::sync::Arc;

use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use serde_json::{json, Value};

use super::StructuredOutputError;
use crate::tokenizer::Tokenizer;

/// Our tokenizer seen through llguidance's `TokenizerEnv`.
pub struct TokenEnv {
    tokenizer: Arc<Tokenizer>,
    trie: TokTrie,
}

impl TokenEnv {
    /// Builds the environment, shared as llguidance takes it: the trie over `vocab_size` ids (the logits' width: ids past the tokenizer's
    /// vocabulary have no bytes, so the grammar never allows them). `eos` is the id the grammar
    /// allows once it accepts.
    pub fn shared(
        tokenizer: Arc<Tokenizer>,
        vocab_size: usize,
        eos: u32,
    ) -> Result<TokEnv, StructuredOutputError> {
        let unsupported = |msg: String| StructuredOutputError::Tokenizer(msg);
        let text = tokenizer
            .to_hf_json()
            .map_err(|e| unsupported(e.to_string()))?;
        let mut doc: Value = serde_json::from_str(&text).map_err(|e| unsupported(e.to_string()))?;
        normalise_decoder(&mut doc);
        // llguidance's reader asserts on odd vocabularies instead of returning an error; a
        // tokenizer it cannot read must cost structured outputs, not the server.
        let words = std::panic::catch_unwind(|| llguidance::token_bytes_from_tokenizer_json(&doc))
            .map_err(|_| unsupported("the vocabulary could not be read as bytes".into()))?
            .map_err(|e| unsupported(e.to_string()))?;
        let n = vocab_size.max(words.len());
        let mut words = words;
        words.resize(n, Vec::new());
        let mut info = TokRxInfo::new(n as u32, eos);
        info.tok_bos = tokenizer.bos_token_id();
        let trie = TokTrie::from(&info, &words);
        Ok(Arc::new(TokenEnv { tokenizer, trie }))
    }
}

/// llguidance recognises byte-level decoders and SentencePiece `Sequence` decoders; a bare
/// `Metaspace` decoder (newer SentencePiece exports) means the same byte-fallback vocabulary,
/// so it is described in the form the reader knows.
fn normalise_decoder(doc: &mut Value) {
    let decoder = &doc["decoder"];
    let is_metaspace = decoder["type"].as_str() == Some("Metaspace");
    let byte_fallback = doc["model"]["byte_fallback"].as_bool().unwrap_or(false);
    if is_metaspace && byte_fallback {
        let space = decoder["replacement"]
            .as_str()
            .unwrap_or("\u{2581}")
            .to_string();
        doc["decoder"] = json!({
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": space}, "content": " "},
                {"type": "ByteFallback"}
            ]
        });
    }
}

impl TokenizerEnv for TokenEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        // Grammars force byte sequences that may end inside a UTF-8 character: the valid text
        // goes through the real tokenizer, the rest is matched greedily against the trie (a
        // lossy conversion would turn those bytes into U+FFFD and derail the grammar).
        self.trie.tokenize_with_greedy_fallback(s, |text| {
            self.tokenizer.encode(text, false).unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metaspace_decoders_become_byte_fallback_sequences() {
        let mut doc = json!({"decoder": {"type": "Metaspace", "replacement": "\u{2581}"}, "model": {"byte_fallback": true}});
        normalise_decoder(&mut doc);
        assert_eq!(doc["decoder"]["type"], "Sequence");
        assert_eq!(doc["decoder"]["decoders"][1]["type"], "ByteFallback");
        let mut bytelevel = json!({"decoder": {"type": "ByteLevel"}, "model": {}});
        normalise_decoder(&mut bytelevel);
        assert_eq!(bytelevel["decoder"]["type"], "ByteLevel");
    }
}
