//! Building a `tokenizers::Tokenizer` from GGUF `tokenizer.ggml.*` metadata.
//!
//! Two vocabulary kinds exist in the files we serve:
//! - `gpt2`: byte-level BPE. Vocabulary and merges are stored as is; what the file only names is
//!   the pre-tokenizer (`tokenizer.ggml.pre`), which we map to the split regex of the original
//!   Hugging Face tokenizer.
//! - `llama`: sentencepiece BPE. There are no merges, only per-token scores; sentencepiece always
//!   merges the adjacent pair whose *merged* piece has the highest score, so ranking every
//!   possible merge by the score of its result gives a BPE that makes the same choices.
//!
//! Token types (`tokenizer.ggml.token_type`): 1 normal, 2 unknown, 3 control, 4 user-defined,
//! 5 unused, 6 byte.

use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
};

use super::{bos_eos_processor, Parts};
use crate::gguf::{GgufFile, MetaValue};
use crate::LoadError;

const TYPE_NORMAL: i64 = 1;
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;

/// Split regex of Qwen2's tokenizer.json (ByteLevel then runs without a regex of its own).
pub(crate) const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Split regex of Llama 3's tokenizer.json: like Qwen2's but numbers go in groups of up to three.
pub(crate) const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The metadata one tokenizer build needs, read and checked up front so that the builders below
/// only deal with consistent data.
struct Meta<'a> {
    path: &'a Path,
    tokens: Vec<&'a str>,
    types: Vec<i64>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl Meta<'_> {
    fn err(&self, msg: impl Into<String>) -> LoadError {
        tokenizer_error(self.path, msg)
    }
}

fn tokenizer_error(path: &Path, msg: impl Into<String>) -> LoadError {
    LoadError::Tokenizer {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

pub(super) fn build(gguf: &GgufFile) -> Result<Parts, LoadError> {
    let path = gguf.path();
    let model = match gguf.get("tokenizer.ggml.model") {
        None => {
            return Err(tokenizer_error(
                path,
                "no tokenizer in the file (missing `tokenizer.ggml.model`)",
            ))
        }
        Some(v) => v
            .as_str()
            .ok_or_else(|| tokenizer_error(path, "`tokenizer.ggml.model` is not a string"))?,
    };
    let spm = match model {
        "gpt2" => false,
        "llama" => true,
        other => {
            return Err(tokenizer_error(
                path,
                format!("unsupported tokenizer model `{other}` (supported: gpt2, llama)"),
            ))
        }
    };

    let tokens = string_array(gguf, "tokenizer.ggml.tokens")?
        .ok_or_else(|| tokenizer_error(path, "missing `tokenizer.ggml.tokens`"))?;
    if tokens.is_empty() {
        return Err(tokenizer_error(path, "`tokenizer.ggml.tokens` is empty"));
    }
    let types = match gguf.get("tokenizer.ggml.token_type") {
        None => vec![TYPE_NORMAL; tokens.len()],
        Some(v) => {
            let items = v.as_array().ok_or_else(|| {
                tokenizer_error(path, "`tokenizer.ggml.token_type` is not an array")
            })?;
            let types = items
                .iter()
                .map(MetaValue::as_i64)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    tokenizer_error(path, "`tokenizer.ggml.token_type` holds non-integers")
                })?;
            if types.len() != tokens.len() {
                return Err(tokenizer_error(
                    path,
                    format!("{} token types for {} tokens", types.len(), tokens.len()),
                ));
            }
            types
        }
    };
    let id = |key: &str| -> Result<Option<u32>, LoadError> {
        let full = format!("tokenizer.ggml.{key}");
        let Some(v) = gguf.get(&full) else {
            return Ok(None);
        };
        let raw = v
            .as_i64()
            .ok_or_else(|| tokenizer_error(path, format!("`{full}` is not an integer")))?;
        // Some converters write -1 for "none".
        if raw < 0 {
            return Ok(None);
        }
        match u32::try_from(raw) {
            Ok(id) if (id as usize) < tokens.len() => Ok(Some(id)),
            _ => Err(tokenizer_error(
                path,
                format!(
                    "`{full}` = {raw} is outside the vocabulary of {}",
                    tokens.len()
                ),
            )),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool, LoadError> {
        let full = format!("tokenizer.ggml.{key}");
        match gguf.get(&full) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| tokenizer_error(path, format!("`{full}` is not a bool"))),
        }
    };
    // llama.cpp's defaults when the keys are absent: sentencepiece vocabularies start with BOS
    // and a space prefix, byte-level ones with neither, except Llama 3's, which start with BOS.
    let pre = gguf.get_str("tokenizer.ggml.pre").unwrap_or("default");
    let meta = Meta {
        path,
        bos: id("bos_token_id")?,
        eos: id("eos_token_id")?,
        unk: id("unknown_token_id")?,
        add_bos: flag("add_bos_token", spm || is_llama3(pre))?,
        add_eos: flag("add_eos_token", false)?,
        tokens,
        types,
    };
    let add_space_prefix = flag("add_space_prefix", spm)?;
    let chat_template = match gguf.get("tokenizer.chat_template") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| tokenizer_error(path, "`tokenizer.chat_template` is not a string"))?
                .to_string(),
        ),
    };

    let mut inner = if spm {
        let scores = match gguf.get("tokenizer.ggml.scores") {
            None => None,
            Some(v) => Some(
                v.as_array()
                    .and_then(|a| a.iter().map(MetaValue::as_f64).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| {
                        meta.err("`tokenizer.ggml.scores` is not an array of numbers")
                    })?,
            ),
        };
        build_spm(&meta, scores.as_deref(), add_space_prefix)?
    } else {
        let merges = string_array(gguf, "tokenizer.ggml.merges")?.ok_or_else(|| {
            meta.err("missing `tokenizer.ggml.merges` (required for a gpt2 tokenizer)")
        })?;
        build_byte_level(&meta, &merges, pre)?
    };

    let special_ids = add_vocab_tokens(&mut inner, &meta);
    set_post_processor(&mut inner, &meta)?;

    Ok(Parts {
        inner,
        bos_id: meta.bos,
        eos_id: meta.eos,
        special_ids,
        chat_template,
        vocab_size: Some(meta.tokens.len()),
    })
}

/// `Ok(None)` when the key is absent; an error when it is there but not an array of strings.
fn string_array<'a>(gguf: &'a GgufFile, key: &str) -> Result<Option<Vec<&'a str>>, LoadError> {
    match gguf.get(key) {
        None => Ok(None),
        Some(_) => gguf.get_str_array(key).map(Some).ok_or_else(|| {
            tokenizer_error(gguf.path(), format!("`{key}` is not an array of strings"))
        }),
    }
}

/// Token text → id. A text that appears twice keeps its first id: the second copy can never be
/// produced by the BPE, and a warning tells the user the file is odd.
fn vocab_map(meta: &Meta) -> Vocab {
    let mut vocab = Vocab::with_capacity(meta.tokens.len());
    let mut duplicates = 0usize;
    for (id, &text) in meta.tokens.iter().enumerate() {
        if vocab.contains_key(text) {
            duplicates += 1;
        } else {
            vocab.insert(text.to_string(), id as u32);
        }
    }
    if duplicates > 0 {
        tracing::warn!(path = %meta.path.display(), duplicates, "GGUF vocabulary has duplicate token texts; later copies are unreachable");
    }
    vocab
}

fn build_byte_level(
    meta: &Meta,
    merges: &[&str],
    pre: &str,
) -> Result<tokenizers::Tokenizer, LoadError> {
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // Split at the first space after the first character, so that a left part that is
            // itself a space (possible in non-byte-level vocabularies) stays intact.
            let first = m.chars().next().map_or(0, char::len_utf8);
            match m[first..].find(' ') {
                Some(at) => Ok((m[..first + at].to_string(), m[first + at + 1..].to_string())),
                None => Err(meta.err(format!("merge #{i} `{m}` has no space separator"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (pre_tokenizer, ignore_merges) = byte_level_pre_tokenizer(pre).map_err(|e| meta.err(e))?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(meta), merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| meta.err(format!("invalid BPE vocabulary/merges: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(ByteLevel::new(false, false, false)));
    Ok(tok)
}

fn is_llama3(pre: &str) -> bool {
    matches!(pre, "llama3" | "llama-v3" | "llama-bpe")
}

/// The pre-tokenizer of the Hugging Face tokenizer that llama.cpp's `tokenizer.ggml.pre` name
/// stands for, and whether that tokenizer sets BPE `ignore_merges` (Llama 3 does: a word that is
/// a whole vocabulary entry is taken as is).
pub(crate) fn byte_level_pre_tokenizer(pre: &str) -> Result<(PreTokenizerWrapper, bool), String> {
    let split = |regex: &str| -> Result<PreTokenizerWrapper, String> {
        let split = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| format!("bad pre-tokenizer regex: {e}"))?;
        // The split already cut the words; ByteLevel only maps bytes to its printable alphabet.
        Ok(PreSequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])
        .into())
    };
    let gpt2 = || -> PreTokenizerWrapper { ByteLevel::new(false, true, true).into() };
    Ok(match pre {
        "qwen2" => (split(QWEN2_REGEX)?, false),
        p if is_llama3(p) => (split(LLAMA3_REGEX)?, true),
        // SmolLM's own tokenizer.json: digits one by one, then the GPT-2 regex. (transformers'
        // GGUF loader skips the digit split; with no multi-digit tokens in the vocabulary both
        // give the same ids.)
        "smollm" => (
            PreSequence::new(vec![Digits::new(true).into(), gpt2()]).into(),
            false,
        ),
        "default" | "gpt2" | "gpt-2" => (gpt2(), false),
        other => {
            tracing::warn!(pre = other, "unknown GGUF pre-tokenizer type; using the GPT-2 split regex, which may tokenize differently from the original");
            (gpt2(), false)
        }
    })
}

fn build_spm(
    meta: &Meta,
    scores: Option<&[f64]>,
    add_space_prefix: bool,
) -> Result<tokenizers::Tokenizer, LoadError> {
    if let Some(scores) = scores {
        if scores.len() != meta.tokens.len() {
            return Err(meta.err(format!(
                "{} scores for {} tokens",
                scores.len(),
                meta.tokens.len()
            )));
        }
    }
    let vocab = vocab_map(meta);
    let merges = spm_merges(meta, &vocab, scores);
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = meta.unk {
        builder = builder.unk_token(meta.tokens[unk as usize].to_string());
    }
    let bpe = builder
        .build()
        .map_err(|e| meta.err(format!("invalid sentencepiece vocabulary: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);

    // sentencepiece sees spaces as `▁` and, with add_space_prefix, a text starts with one. As in
    // llama.cpp and transformers' GGUF loader, the prefix goes before every text segment, that is
    // also right after a special token. No pre-tokenizer: the whole segment is one BPE word.
    let replace = Replace::new(" ", "▁").map_err(|e| meta.err(e.to_string()))?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new("▁".to_string()).into(), replace.into()]).into()
    } else {
        replace.into()
    };
    tok.with_normalizer(Some(normalizer));

    // Decoding undoes it: `▁` back to space, `<0xNN>` pieces back to bytes (glued into UTF-8 by
    // ByteFallback before Fuse joins everything), then the one prefix space dropped again.
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ")
            .map_err(|e| meta.err(e.to_string()))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tok)
}

/// Merges for a sentencepiece vocabulary: every split of a mergeable piece into two mergeable
/// pieces, ranked by the score of the merged piece (best first). Ties between different pieces
/// fall to the lower id; sentencepiece would take the leftmost pair instead, which only differs
/// when two pieces share a score (real vocabularies give each piece its own score).
///
/// Mergeable are normal and user-defined tokens: sentencepiece never produces control, unknown,
/// unused or byte pieces by merging. Without scores, earlier ids rank higher, which is the order
/// sentencepiece BPE trainers write pieces in.
fn spm_merges(meta: &Meta, vocab: &Vocab, scores: Option<&[f64]>) -> Vec<(String, String)> {
    let mergeable = |id: u32| matches!(meta.types[id as usize], TYPE_NORMAL | TYPE_USER_DEFINED);
    let score = |id: u32| scores.map_or(-(id as f64), |s| s[id as usize]);
    let lookup = |text: &str| vocab.get(text).copied().filter(|&id| mergeable(id));

    let mut ranked: Vec<(f64, u32, usize, &str)> = Vec::new();
    for (&piece, id) in meta.tokens.iter().zip(0u32..) {
        if !mergeable(id) || lookup(piece) != Some(id) {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            if lookup(&piece[..at]).is_some() && lookup(&piece[at..]).is_some() {
                ranked.push((score(id), id, at, piece));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    ranked
        .into_iter()
        .map(|(_, _, at, piece)| (piece[..at].to_string(), piece[at..].to_string()))
        .collect()
}

/// Registers control, unknown and user-defined tokens as added tokens, so that their text in the
/// input is matched as one token before any splitting. Returns the ids of the special ones.
fn add_vocab_tokens(tok: &mut tokenizers::Tokenizer, meta: &Meta) -> Vec<u32> {
    let mut added = Vec::new();
    let mut special_ids = Vec::new();
    for (id, (&text, &ty)) in meta.tokens.iter().zip(&meta.types).enumerate() {
        let special = match ty {
            TYPE_CONTROL | TYPE_UNKNOWN => true,
            TYPE_USER_DEFINED => false,
            // Normal, unused and byte tokens come out of the model itself.
            _ => continue,
        };
        if text.is_empty() {
            continue;
        }
        if special {
            special_ids.push(id as u32);
        }
        added.push(AddedToken::from(text.to_string(), special).normalized(false));
    }
    if !added.is_empty() {
        // One call: the added-token matcher is rebuilt once per call.
        tok.add_tokens(&added);
    }
    special_ids
}

/// BOS/EOS around the text where the file asks for them (`add_bos_token`, `add_eos_token`).
fn set_post_processor(tok: &mut tokenizers::Tokenizer, meta: &Meta) -> Result<(), LoadError> {
    let named = |id: Option<u32>| id.map(|id| (meta.tokens[id as usize], id));
    let bos = if meta.add_bos { named(meta.bos) } else { None };
    let eos = if meta.add_eos { named(meta.eos) } else { None };
    if meta.add_bos && bos.is_none() {
        tracing::warn!(path = %meta.path.display(), "add_bos_token is set but the file names no BOS token");
    }
    if bos.is_none() && eos.is_none() {
        return Ok(());
    }
    let processor = bos_eos_processor(bos, eos).map_err(|m| meta.err(m))?;
    tok.with_post_processor(Some(processor));
    Ok(())
}
