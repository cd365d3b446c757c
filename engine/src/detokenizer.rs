//! Incremental detokenization of a generated stream, with stop strings.
//!
//! Tokens arrive one at a time, but a token's text depends on its neighbours: a character can
//! span several byte-level tokens, and SentencePiece decoders drop a leading space only at the
//! start of a text. So each new token is decoded inside a small window of the tokens before it
//! (vLLM's `prefix_offset`/`read_offset` technique), and the window's text is released only
//! when it does not end in U+FFFD, i.e. never in the middle of a character. Released text also
//! lags by the longest stop string minus one character, so a stop string split over several
//! tokens is found before any part of it reaches the client.

use std::sync::Arc;

use crate::sampling::SamplingParams;
use crate::tokenizer::Tokenizer;

/// Prompt tokens decoded as context before the first generated token (vLLM's
/// `INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET`).
const PROMPT_CONTEXT_TOKENS: usize = 5;

/// Tokens before the window are dropped once this many pile up, to bound memory.
const COMPACT_AFTER: usize = 1024;

const REPLACEMENT: char = '\u{FFFD}';

/// What one generated token adds to the output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetokenizerStep {
    /// Text that may be sent to the client now (possibly empty).
    pub delta: String,
    /// The stop string that matched; the output ends here and `delta` is its last piece.
    pub stop: Option<String>,
}

/// Streams the text of one sequence's generated tokens.
pub struct IncrementalDetokenizer {
    tokenizer: Arc<Tokenizer>,
    /// Prompt context followed by the generated tokens (the head is dropped as it ages).
    ids: Vec<u32>,
    /// Start of the decode window in `ids`.
    prefix_offset: usize,
    /// End of the text already decoded in `ids`.
    read_offset: usize,
    skip_special_tokens: bool,
    stop: Vec<String>,
    include_stop_str_in_output: bool,
    /// Characters held back so a stop string is caught whole.
    hold_chars: usize,
    min_tokens: usize,
    generated: usize,
    /// All decoded text of the generated tokens (cut at a matched stop string).
    text: String,
    /// Bytes of `text` released to the caller.
    released: usize,
    /// Text before this byte was produced within `min_tokens`; no stop string may end there.
    stop_check_from: usize,
    matched_stop: Option<String>,
    finished: bool,
}

impl std::fmt::Debug for IncrementalDetokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncrementalDetokenizer")
            .field("generated", &self.generated)
            .field("released", &self.released)
            .field("text_len", &self.text.len())
            .field("matched_stop", &self.matched_stop)
            .finish_non_exhaustive()
    }
}

impl IncrementalDetokenizer {
    /// Uses `skip_special_tokens`, `stop`, `include_stop_str_in_output` and `min_tokens` (no stop
    /// string is matched inside the text of the first `min_tokens` tokens, as in vLLM) from
    /// `params`. `spaces_between_special_tokens` changes nothing for the byte-level BPE and
    /// SentencePiece decoders used here (they never insert spaces between tokens), which is
    /// also how vLLM's fast-tokenizer path behaves by default.
    pub fn new(tokenizer: Arc<Tokenizer>, prompt_ids: &[u32], params: &SamplingParams) -> Self {
        let include = params.include_stop_str_in_output;
        let longest = params
            .stop
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        let hold_chars = if include {
            0
        } else {
            longest.saturating_sub(1)
        };
        let context = &prompt_ids[prompt_ids.len().saturating_sub(PROMPT_CONTEXT_TOKENS)..];
        // A prompt that ends inside a character cannot serve as context: the completed
        // character would rewrite the context's own text. Start without context then.
        let context_ok = tokenizer
            .decode(context, params.skip_special_tokens)
            .is_ok_and(|t| !t.ends_with(REPLACEMENT));
        let ids = if context_ok {
            context.to_vec()
        } else {
            Vec::new()
        };
        IncrementalDetokenizer {
            tokenizer,
            read_offset: ids.len(),
            ids,
            prefix_offset: 0,
            skip_special_tokens: params.skip_special_tokens,
            stop: params
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            include_stop_str_in_output: include,
            hold_chars,
            min_tokens: params.min_tokens,
            generated: 0,
            text: String::new(),
            released: 0,
            stop_check_from: 0,
            matched_stop: None,
            finished: false,
        }
    }

    /// Adds one generated token. After a stop string matched (or after [`Self::finish`]) further
    /// tokens are ignored.
    ///
    /// An EOS or stop-token-id token that ends the sequence should not be pushed unless the
    /// request wants it in the text (`include_stop_str_in_output`), as vLLM does.
    pub fn push(&mut self, token: u32) -> DetokenizerStep {
        if self.matched_stop.is_some() || self.finished {
            return DetokenizerStep::default();
        }
        self.ids.push(token);
        self.generated += 1;
        let new_text = self.decode_next();
        let start = self.text.len();
        self.text.push_str(&new_text);
        if self.generated <= self.min_tokens {
            self.stop_check_from = self.text.len();
        }
        if let Some(stop) = self.check_stop(start.max(self.stop_check_from)) {
            return DetokenizerStep {
                delta: self.release(self.text.len()),
                stop: Some(stop),
            };
        }
        let end = back_chars(&self.text, self.text.len(), self.hold_chars);
        DetokenizerStep {
            delta: self.release(end),
            stop: None,
        }
    }

    /// Ends the stream (length limit, EOS, abort): returns the text held back so far, including
    /// an unfinished character's replacement text. A stop string completed by that last text
    /// still cuts it; [`Self::matched_stop`] then tells which.
    pub fn finish(&mut self) -> String {
        if self.finished || self.matched_stop.is_some() {
            self.finished = true;
            return self.release(self.text.len());
        }
        self.finished = true;
        if self.read_offset < self.ids.len() {
            let prefix = self.decode(self.prefix_offset, self.read_offset);
            let full = self.decode(self.prefix_offset, self.ids.len());
            let start = self.text.len();
            self.text.push_str(text_after(&full, &prefix));
            self.read_offset = self.ids.len();
            self.check_stop(start.max(self.stop_check_from));
        }
        self.release(self.text.len())
    }

    /// All text released so far (after [`Self::finish`], the whole output).
    pub fn output_text(&self) -> &str {
        &self.text[..self.released]
    }

    /// The stop string that ended the output, if any.
    pub fn matched_stop(&self) -> Option<&str> {
        self.matched_stop.as_deref()
    }

    /// Generated tokens pushed so far.
    pub fn num_tokens(&self) -> usize {
        self.generated
    }

    fn decode(&self, from: usize, to: usize) -> String {
        let ids = self.ids.get(from..to).unwrap_or(&[]);
        match self.tokenizer.decode(ids, self.skip_special_tokens) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!("detokenizer: {e}");
                String::new()
            }
        }
    }

    /// The text the newest token adds, or "" while it leaves a character unfinished.
    fn decode_next(&mut self) -> String {
        let prefix = self.decode(self.prefix_offset, self.read_offset);
        let full = self.decode(self.prefix_offset, self.ids.len());
        if full.chars().count() <= prefix.chars().count() || full.ends_with(REPLACEMENT) {
            return String::new();
        }
        let new_text = text_after(&full, &prefix).to_string();
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        if self.prefix_offset > COMPACT_AFTER {
            self.ids.drain(..self.prefix_offset);
            self.read_offset -= self.prefix_offset;
            self.prefix_offset = 0;
        }
        new_text
    }

    /// Looks for a stop string that ends after byte `new_start` of the text. On a match, cuts
    /// the text before it (or after it, with `include_stop_str_in_output`) and records it. The
    /// earliest match wins; equal positions go to the stop string listed first.
    fn check_stop(&mut self, new_start: usize) -> Option<String> {
        if self.stop.is_empty() || new_start >= self.text.len() {
            return None;
        }
        let mut best: Option<(usize, &String)> = None;
        for stop in &self.stop {
            let from = back_chars(
                &self.text,
                new_start,
                stop.chars().count().saturating_sub(1),
            );
            if let Some(pos) = self.text[from..].find(stop.as_str()).map(|p| p + from) {
                if best.is_none_or(|(b, _)| pos < b) {
                    best = Some((pos, stop));
                }
            }
        }
        let (pos, stop) = best?;
        let stop = stop.clone();
        let cut = if self.include_stop_str_in_output {
            pos + stop.len()
        } else {
            pos
        };
        self.text.truncate(cut);
        // Held-back text guarantees the cut is never before what was released; the clamp only
        // keeps `output_text` in bounds should that ever fail.
        self.released = self.released.min(self.text.len());
        self.matched_stop = Some(stop.clone());
        Some(stop)
    }

    /// Hands out `text[released..end]` (never moving backwards).
    fn release(&mut self, end: usize) -> String {
        let end = end.min(self.text.len());
        if end <= self.released {
            return String::new();
        }
        let delta = self.text[self.released..end].to_string();
        self.released = end;
        delta
    }
}

/// The byte index `n` characters before byte `pos` of `text` (0 if there are fewer).
fn back_chars(text: &str, pos: usize, n: usize) -> usize {
    if n == 0 {
        return pos;
    }
    text[..pos]
        .char_indices()
        .rev()
        .nth(n - 1)
        .map_or(0, |(i, _)| i)
}

/// `full` without its leading `prefix`. Decoding a longer window normally only appends, but if
/// a decoder rewrites earlier text, fall back to skipping as many characters as `prefix` has
/// (what vLLM's Python slicing does).
fn text_after<'a>(full: &'a str, prefix: &str) -> &'a str {
    if let Some(rest) = full.strip_prefix(prefix) {
        return rest;
    }
    let n = prefix.chars().count();
    full.char_indices().nth(n).map_or("", |(i, _)| &full[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level BPE tokenizer without merges: every byte is its own token, so every
    /// non-ASCII character spans several tokens. Id 256 is the special token `<|end|>`.
    fn byte_tokenizer() -> Arc<Tokenizer> {
        // GPT-2's byte-to-character table: printable bytes stand for themselves, the others
        // are moved to U+0100 and up.
        let mut vocab = serde_json::Map::new();
        let mut next = 256u32;
        for b in 0u32..256 {
            let printable =
                (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let c = if printable {
                b
            } else {
                next += 1;
                next - 1
            };
            vocab.insert(char::from_u32(c).unwrap().to_string(), b.into());
        }
        vocab.insert("<|end|>".into(), 256.into());
        let json = serde_json::json!({
            "version": "1.0",
            "added_tokens": [{"id": 256, "content": "<|end|>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "vocab": vocab, "merges": []}
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, json.to_string()).unwrap();
        Arc::new(Tokenizer::from_hf_files(&path, None).unwrap())
    }

    fn stream(
        tok: &Arc<Tokenizer>,
        prompt: &[u32],
        generated: &[u32],
        params: &SamplingParams,
    ) -> (Vec<DetokenizerStep>, String, IncrementalDetokenizer) {
        let mut d = IncrementalDetokenizer::new(tok.clone(), prompt, params);
        let mut steps = Vec::new();
        for &t in generated {
            let step = d.push(t);
            let stop = step.stop.is_some();
            steps.push(step);
            if stop {
                break;
            }
        }
        let tail = d.finish();
        (steps, tail, d)
    }

    fn joined(steps: &[DetokenizerStep], tail: &str) -> String {
        steps
            .iter()
            .map(|s| s.delta.as_str())
            .chain([tail])
            .collect()
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        let tok = byte_tokenizer();
        let text = "héllo 👨‍👩‍👧 世界 ok";
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids.len(), text.len(), "one token per byte");
        let prompt = tok.encode("Say: ", false).unwrap();
        let (steps, tail, d) = stream(&tok, &prompt, &ids, &SamplingParams::default());
        for s in &steps {
            assert!(
                !s.delta.contains(REPLACEMENT),
                "split character in {:?}",
                s.delta
            );
        }
        // The first byte of "é" alone releases nothing; its second byte releases the character.
        assert_eq!(steps[1].delta, "");
        assert_eq!(steps[2].delta, "é");
        assert_eq!(joined(&steps, &tail), text);
        assert_eq!(d.output_text(), text);
        assert_eq!(tail, "");
    }

    #[test]
    fn stop_string_across_tokens_is_cut_and_never_released() {
        let tok = byte_tokenizer();
        let ids = tok.encode("abc STOP def", false).unwrap();
        let params = SamplingParams {
            stop: vec!["STOP".into(), "zzzzzz".into()],
            ..Default::default()
        };
        let (steps, tail, d) = stream(&tok, &[], &ids, &params);
        let last = steps.last().unwrap();
        assert_eq!(last.stop.as_deref(), Some("STOP"));
        assert_eq!(
            steps.len(),
            8,
            "stops at the token completing the stop string"
        );
        assert_eq!(joined(&steps, &tail), "abc ");
        assert!(steps.iter().all(|s| !s.delta.contains('S')));
        assert_eq!(d.matched_stop(), Some("STOP"));
        assert_eq!(d.output_text(), "abc ");

        let params = SamplingParams {
            include_stop_str_in_output: true,
            ..params
        };
        let (steps, tail, _) = stream(&tok, &[], &ids, &params);
        assert_eq!(joined(&steps, &tail), "abc STOP");
        // Nothing is held back when the stop string is to be included.
        assert_eq!(steps[0].delta, "a");
    }

    #[test]
    fn held_back_text_is_released_by_finish() {
        let tok = byte_tokenizer();
        let ids = tok.encode("hello wor", false).unwrap();
        let params = SamplingParams {
            stop: vec!["world".into()],
            ..Default::default()
        };
        let mut d = IncrementalDetokenizer::new(tok.clone(), &[], &params);
        let released: String = ids.iter().map(|&t| d.push(t).delta).collect();
        assert_eq!(released, "hello");
        assert_eq!(d.output_text(), "hello");
        assert_eq!(d.finish(), " wor");
        assert_eq!(d.output_text(), "hello wor");
        assert_eq!(
            d.push(b'x' as u32),
            DetokenizerStep::default(),
            "ignored after finish"
        );
    }

    #[test]
    fn stop_strings_in_the_prompt_do_not_stop() {
        let tok = byte_tokenizer();
        let prompt = tok.encode("END of prompt END", false).unwrap();
        let ids = tok.encode(" then more", false).unwrap();
        let params = SamplingParams {
            stop: vec!["END".into()],
            ..Default::default()
        };
        let (steps, tail, d) = stream(&tok, &prompt, &ids, &params);
        assert!(steps.iter().all(|s| s.stop.is_none()));
        assert_eq!(joined(&steps, &tail), " then more");
        assert_eq!(d.matched_stop(), None);
    }

    #[test]
    fn earliest_stop_wins_and_min_tokens_suppress_early_matches() {
        let tok = byte_tokenizer();
        let params = SamplingParams {
            stop: vec!["cd".into(), "bcd".into()],
            ..Default::default()
        };
        let (_, tail, d) = stream(&tok, &[], &tok.encode("abcde", false).unwrap(), &params);
        assert_eq!(
            (d.output_text(), tail.as_str(), d.matched_stop()),
            ("a", "", Some("bcd"))
        );

        let params = SamplingParams {
            stop: vec!["x".into()],
            min_tokens: 3,
            ..Default::default()
        };
        let (steps, tail, _) = stream(&tok, &[], &tok.encode("xxxyxz", false).unwrap(), &params);
        assert_eq!(joined(&steps, &tail), "xxxy");
        assert_eq!(steps.len(), 5);
    }

    #[test]
    fn special_tokens_follow_skip_special_tokens() {
        let tok = byte_tokenizer();
        let ids = [b'h' as u32, b'i' as u32, 256, b'!' as u32];
        let (steps, tail, _) = stream(&tok, &[], &ids, &SamplingParams::default());
        assert_eq!(joined(&steps, &tail), "hi!");
        let keep = SamplingParams {
            skip_special_tokens: false,
            ..Default::default()
        };
        let (steps, tail, _) = stream(&tok, &[], &ids, &keep);
        assert_eq!(joined(&steps, &tail), "hi<|end|>!");
    }

    #[test]
    fn an_unfinished_character_is_flushed_at_finish() {
        let tok = byte_tokenizer();
        let ids = tok.encode("a€", false).unwrap();
        let (steps, tail, d) = stream(&tok, &[], &ids[..2], &SamplingParams::default());
        assert_eq!(joined(&steps, ""), "a");
        assert_eq!(tail, tok.decode(&ids[..2], true).unwrap()[1..]);
        assert_eq!(d.output_text(), tok.decode(&ids[..2], true).unwrap());
    }

    #[test]
    fn a_prompt_ending_inside_a_character_is_not_used_as_context() {
        let tok = byte_tokenizer();
        let ids = tok.encode("€uro", false).unwrap();
        // The prompt holds the first byte of "€"; the text of the generated tokens is what
        // decoding them alone gives.
        let (steps, tail, _) = stream(&tok, &ids[..1], &ids[1..], &SamplingParams::default());
        assert_eq!(joined(&steps, &tail), tok.decode(&ids[1..], true).unwrap());
    }

    #[test]
    fn long_streams_compact_their_window() {
        let tok = byte_tokenizer();
        let text = "ab€ ".repeat(1000);
        let ids = tok.encode(&text, false).unwrap();
        let (steps, tail, d) = stream(&tok, &[], &ids, &SamplingParams::default());
        assert_eq!(joined(&steps, &tail), text);
        assert!(d.ids.len() < 2 * COMPACT_AFTER, "{}", d.ids.len());
    }

    #[test]
    fn helpers() {
        assert_eq!(back_chars("añb", 4, 1), 3);
        assert_eq!(back_chars("añb", 4, 2), 1);
        assert_eq!(back_chars("añb", 4, 9), 0);
        assert_eq!(back_chars("añb", 4, 0), 4);
        assert_eq!(text_after("hello world", "hello"), " world");
        assert_eq!(text_after("héllo", "h\u{FFFD}"), "llo");
    }
}
