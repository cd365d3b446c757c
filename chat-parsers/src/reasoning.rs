//! Reasoning parsers: split `<think>...</think>` reasoning from the answer.

use crate::non_empty;
use crate::stream::partial_marker_len;

const START: &str = "<think>";
const END: &str = "</think>";

/// Selects the behaviour of `--reasoning-parser`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningParserKind {
    /// DeepSeek-R1: the template puts `<think>\n` in the prompt, so the output usually starts
    /// inside the reasoning. A leading `<think>` is dropped; everything before `</think>` is
    /// reasoning (all of it when there is no `</think>`), the rest is content.
    DeepSeekR1,
    /// Qwen3: whole texts have reasoning only if they contain both `<think>` and `</think>`
    /// (text before `<think>` is dropped); otherwise everything is content. Streams are content
    /// until `<think>`, reasoning until `</think>`, then content. Hence, as in vLLM, a stream
    /// differs from the whole-text parse when it has `<think>` but no `</think>` (the stream
    /// calls the rest reasoning, the whole-text parse calls everything content) and when text
    /// precedes `<think>` (the stream sends it as content, the whole-text parse drops it).
    Qwen3,
}

impl ReasoningParserKind {
    pub const NAMES: &'static [&'static str] = &["deepseek_r1", "qwen3"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "deepseek_r1" => Some(Self::DeepSeekR1),
            "qwen3" => Some(Self::Qwen3),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::DeepSeekR1 => "deepseek_r1",
            Self::Qwen3 => "qwen3",
        }
    }

    pub fn start_marker(self) -> &'static str {
        START
    }

    pub fn end_marker(self) -> &'static str {
        END
    }

    /// `(reasoning, content)` of a whole output; empty parts are `None`.
    pub fn parse(self, text: &str) -> (Option<String>, Option<String>) {
        let inside = match self {
            Self::DeepSeekR1 => text.strip_prefix(START).unwrap_or(text),
            Self::Qwen3 => match text.find(START) {
                Some(start) if text.contains(END) => &text[start + START.len()..],
                _ => return (None, non_empty(text)),
            },
        };
        match inside.find(END) {
            Some(end) => (
                non_empty(&inside[..end]),
                non_empty(&inside[end + END.len()..]),
            ),
            None => (non_empty(inside), None),
        }
    }

    pub fn streamer(self) -> ReasoningStreamer {
        ReasoningStreamer {
            phase: match self {
                Self::DeepSeekR1 => Phase::Opening,
                Self::Qwen3 => Phase::BeforeThink,
            },
            pending: String::new(),
        }
    }
}

/// What a chunk of streamed text turned out to be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReasoningDelta {
    pub reasoning: String,
    pub content: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// DeepSeek-R1: deciding whether the output starts with `<think>` (to drop it).
    Opening,
    /// Qwen3: content until `<think>`.
    BeforeThink,
    Reasoning,
    Content,
}

/// Incremental reasoning splitter; see [`ReasoningParserKind::streamer`].
#[derive(Clone, Debug)]
pub struct ReasoningStreamer {
    phase: Phase,
    /// Text not yet classified: a possible partial marker.
    pending: String,
}

impl ReasoningStreamer {
    pub fn push(&mut self, delta: &str) -> ReasoningDelta {
        let mut out = ReasoningDelta::default();
        self.pending.push_str(delta);
        loop {
            match self.phase {
                Phase::Opening => {
                    if self.pending.len() < START.len() && START.starts_with(self.pending.as_str())
                    {
                        return out;
                    }
                    if self.pending.starts_with(START) {
                        self.pending.drain(..START.len());
                    }
                    self.phase = Phase::Reasoning;
                }
                Phase::BeforeThink => {
                    if !self.take_until(START, &mut out.content) {
                        return out;
                    }
                    self.phase = Phase::Reasoning;
                }
                Phase::Reasoning => {
                    if !self.take_until(END, &mut out.reasoning) {
                        return out;
                    }
                    self.phase = Phase::Content;
                }
                Phase::Content => {
                    out.content.push_str(&self.pending);
                    self.pending.clear();
                    return out;
                }
            }
        }
    }

    /// End of generation: releases held-back text to the current part.
    pub fn finish(&mut self) -> ReasoningDelta {
        let rest = std::mem::take(&mut self.pending);
        match self.phase {
            Phase::Opening | Phase::Reasoning => ReasoningDelta {
                reasoning: rest,
                content: String::new(),
            },
            Phase::BeforeThink | Phase::Content => ReasoningDelta {
                reasoning: String::new(),
                content: rest,
            },
        }
    }

    /// Whether `</think>` has been seen (what follows is content).
    pub fn reasoning_ended(&self) -> bool {
        self.phase == Phase::Content
    }

    /// Moves pending text before `marker` to `out`; true (marker consumed) if it was found,
    /// else keeps only a tail that may be the start of the marker.
    fn take_until(&mut self, marker: &str, out: &mut String) -> bool {
        if let Some(pos) = self.pending.find(marker) {
            out.push_str(&self.pending[..pos]);
            self.pending.drain(..pos + marker.len());
            return true;
        }
        let keep = partial_marker_len(&self.pending, &[marker]);
        let send = self.pending.len() - keep;
        out.push_str(&self.pending[..send]);
        self.pending.drain(..send);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::splits;

    fn stream(kind: ReasoningParserKind, chunks: &[String]) -> (String, String, bool) {
        let mut s = kind.streamer();
        let (mut r, mut c) = (String::new(), String::new());
        for chunk in chunks {
            let d = s.push(chunk);
            r.push_str(&d.reasoning);
            c.push_str(&d.content);
        }
        let d = s.finish();
        r.push_str(&d.reasoning);
        c.push_str(&d.content);
        (r, c, s.reasoning_ended())
    }

    fn assert_stream_equal(kind: ReasoningParserKind, text: &str) {
        let (want_r, want_c) = kind.parse(text);
        for chunks in splits(text, text.len() as u64) {
            let (r, c, _) = stream(kind, &chunks);
            assert_eq!(r, want_r.clone().unwrap_or_default(), "{kind:?} {chunks:?}");
            assert_eq!(c, want_c.clone().unwrap_or_default(), "{kind:?} {chunks:?}");
        }
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn names() {
        assert_eq!(
            ReasoningParserKind::from_name("deepseek_r1"),
            Some(ReasoningParserKind::DeepSeekR1)
        );
        assert_eq!(
            ReasoningParserKind::from_name("qwen3"),
            Some(ReasoningParserKind::Qwen3)
        );
        assert_eq!(ReasoningParserKind::from_name("x"), None);
        assert_eq!(ReasoningParserKind::Qwen3.name(), "qwen3");
        assert_eq!(ReasoningParserKind::DeepSeekR1.name(), "deepseek_r1");
        assert_eq!(ReasoningParserKind::Qwen3.start_marker(), "<think>");
        assert_eq!(ReasoningParserKind::DeepSeekR1.end_marker(), "</think>");
    }

    #[test]
    fn deepseek_r1() {
        let k = ReasoningParserKind::DeepSeekR1;
        assert_eq!(
            k.parse("<think>\nHmm.\n</think>\n\nHello"),
            (some("\nHmm.\n"), some("\n\nHello"))
        );
        assert_eq!(
            k.parse("Hmm.\n</think>\n\nHello"),
            (some("Hmm.\n"), some("\n\nHello"))
        );
        assert_eq!(k.parse("Still thinking"), (some("Still thinking"), None));
        assert_eq!(k.parse("Done</think>"), (some("Done"), None));
        assert_eq!(k.parse(""), (None, None));
        for text in [
            "<think>\nHmm.\n</think>\n\nHello",
            "Hmm.\n</think>\n\nHello",
            "Still <thinking> </thin",
            "<thi",
            "<think>",
            "a</think>b</think>c",
            "",
        ] {
            assert_stream_equal(k, text);
        }
    }

    #[test]
    fn qwen3() {
        let k = ReasoningParserKind::Qwen3;
        assert_eq!(
            k.parse("<think>\nLet me see.\n</think>\n\nIt is 4."),
            (some("\nLet me see.\n"), some("\n\nIt is 4."))
        );
        assert_eq!(k.parse("It is 4."), (None, some("It is 4.")));
        assert_eq!(
            k.parse("<think>unfinished"),
            (None, some("<think>unfinished"))
        );
        assert_eq!(
            k.parse("only end</think>x"),
            (None, some("only end</think>x"))
        );
        assert_eq!(k.parse("<think></think>"), (None, None));
        for text in [
            "<think>\nLet me see.\n</think>\n\nIt is 4.",
            "It is 4. <thin",
            "only end</think>x",
            "<think>a</think>b</think>c<think>",
            "<think></think>",
            "",
        ] {
            assert_stream_equal(k, text);
        }
    }

    #[test]
    fn qwen3_stream_without_end_is_reasoning() {
        // The documented difference from the whole-text parse.
        let chunks = vec!["<thi".to_string(), "nk>abc".to_string()];
        assert_eq!(
            stream(ReasoningParserKind::Qwen3, &chunks),
            ("abc".into(), String::new(), false)
        );
    }

    #[test]
    fn reasoning_ended_after_end_marker() {
        let mut s = ReasoningParserKind::DeepSeekR1.streamer();
        assert_eq!(
            s.push("x</thi"),
            ReasoningDelta {
                reasoning: "x".into(),
                content: String::new()
            }
        );
        assert!(!s.reasoning_ended());
        assert_eq!(
            s.push("nk>y"),
            ReasoningDelta {
                reasoning: String::new(),
                content: "y".into()
            }
        );
        assert!(s.reasoning_ended());
    }
}
