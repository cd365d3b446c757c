//! The logit edits that come before temperature: token masks, biases, bad words, `min_tokens`
//! and the repetition/frequency/presence penalties. Each works in place on one logits row and
//! touches only the tokens it is about, so a 150k-entry row costs nothing when a step is off.

use std::collections::HashMap;

use super::params::SamplingError;
use crate::tokenizer::Tokenizer;

/// Everything outside `allowed` (sorted, deduplicated) becomes `-inf`.
pub(crate) fn apply_allowed(logits: &mut [f32], allowed: &[u32]) {
    let mut next = allowed.iter().map(|&id| id as usize).peekable();
    for (i, v) in logits.iter_mut().enumerate() {
        while next.next_if(|&a| a < i).is_some() {}
        if next.next_if_eq(&i).is_none() {
            *v = f32::NEG_INFINITY;
        }
    }
}

pub(crate) fn apply_bias(logits: &mut [f32], bias: &[(u32, f32)]) {
    for &(id, b) in bias {
        if let Some(v) = logits.get_mut(id as usize) {
            *v += b;
        }
    }
}

pub(crate) fn ban(logits: &mut [f32], id: u32) {
    if let Some(v) = logits.get_mut(id as usize) {
        *v = f32::NEG_INFINITY;
    }
}

/// Bans the last token of every bad word whose earlier tokens are what was just generated, so
/// the word cannot be completed; single-token words are always banned. Only generated tokens
/// count, not the prompt (as in vLLM).
pub(crate) fn apply_bad_words(logits: &mut [f32], bad_words: &[Vec<u32>], generated: &[u32]) {
    for word in bad_words {
        let Some((&last, prefix)) = word.split_last() else {
            continue;
        };
        if generated.ends_with(prefix) {
            ban(logits, last);
        }
    }
}

/// HF-style repetition penalty on every token of `seen_sorted` (prompt) or `output` (counts):
/// a positive logit is divided by `penalty`, a negative one multiplied, so the token always
/// becomes less likely for `penalty > 1`.
pub(crate) fn apply_repetition(
    logits: &mut [f32],
    penalty: f32,
    seen_sorted: &[u32],
    output: &HashMap<u32, u32>,
) {
    let penalize = |v: &mut f32| {
        if *v > 0.0 {
            *v /= penalty;
        } else {
            *v *= penalty;
        }
    };
    for &id in seen_sorted {
        if let Some(v) = logits.get_mut(id as usize) {
            penalize(v);
        }
    }
    for &id in output.keys() {
        if seen_sorted.binary_search(&id).is_err() {
            if let Some(v) = logits.get_mut(id as usize) {
                penalize(v);
            }
        }
    }
}

/// OpenAI's definition: `logit -= frequency * count + presence * (count > 0)` over generated
/// tokens only.
pub(crate) fn apply_frequency_presence(
    logits: &mut [f32],
    frequency: f32,
    presence: f32,
    output: &HashMap<u32, u32>,
) {
    for (&id, &count) in output {
        if let Some(v) = logits.get_mut(id as usize) {
            *v -= frequency * count as f32 + presence;
        }
    }
}

/// Token sequences of `words` for the bad-words filter. Each word is encoded as written
/// (leading whitespace removed) and, when that makes a different first token of the same
/// length, with a leading space too, so the word is banned both at the start of the text and
/// after a space (vLLM's rule). Words that cannot be encoded, or encode to no tokens, are
/// skipped; [`try_bad_words_to_ids`] reports them instead (use it when admitting a request).
pub fn bad_words_to_ids(tokenizer: &Tokenizer, words: &[String]) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for word in words {
        match word_ids(tokenizer, word) {
            Ok(ids) => out.extend(ids),
            Err(e) => tracing::warn!("bad word {word:?} ignored: {e}"),
        }
    }
    out.dedup();
    out
}

/// [`bad_words_to_ids`], failing on the first word that cannot be banned, as vLLM does.
pub fn try_bad_words_to_ids(
    tokenizer: &Tokenizer,
    words: &[String],
) -> Result<Vec<Vec<u32>>, SamplingError> {
    let mut out = Vec::new();
    for word in words {
        out.extend(word_ids(tokenizer, word)?);
    }
    out.dedup();
    Ok(out)
}

fn word_ids(tokenizer: &Tokenizer, word: &str) -> Result<Vec<Vec<u32>>, SamplingError> {
    let word = word.trim_start();
    let encode = |text: &str| {
        tokenizer
            .encode(text, false)
            .map_err(|e| SamplingError::invalid("bad_words", e.to_string()))
    };
    let plain = encode(word)?;
    if plain.is_empty() {
        let msg = "bad_words entries must tokenize to at least one token.";
        return Err(SamplingError::invalid("bad_words", msg));
    }
    let spaced = encode(&format!(" {word}"))?;
    let distinct = spaced.first() != plain.first() && spaced.len() == plain.len();
    Ok(if distinct {
        vec![plain, spaced]
    } else {
        vec![plain]
    })
}
