//! Streaming of tool calls, shared by all formats.
//!
//! The streamer keeps the whole text generated so far. Before the tool-call section it emits
//! content as soon as it is certain, holding back only a tail that could be the start of a
//! marker (`<tool` could become `<tool_call>`). Once the section has started, the format's
//! `partial` function re-reads it and reports the calls that are complete; new ones are emitted.
//! `finish` runs the whole-text parse and sends whatever it has that the stream has not sent yet
//! (held-back text, an unterminated last call, or the whole section as content when it turned
//! out not to be valid tool calls), which is what makes streaming equal the whole-text parse.

use crate::{
    hermes, llama3_json, mistral, pythonic, qwen3_xml, ToolCall, ToolParserKind, ToolSchema,
};

/// One piece of a streamed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// Text for the message's `content`.
    Content(String),
    /// A new tool call; its arguments follow in [`StreamEvent::ToolCallArguments`].
    ToolCallStart { index: usize, name: String },
    /// The next piece of call `index`'s arguments JSON.
    ToolCallArguments { index: usize, fragment: String },
}

/// A call found in the tool-call section of a partial text; `arguments` is `None` while the
/// call is still being generated (only the last call of a section can be incomplete).
pub(crate) struct PartialCall {
    pub name: String,
    pub arguments: Option<String>,
}

/// How a format's tool-call section begins.
enum Opening {
    /// At the first of these markers; the text before it is content.
    Markers(&'static [&'static str]),
    /// At the start of the text: after optional whitespace and `tag`, the char `open` begins
    /// tool calls and anything else makes the whole text content.
    Leading { tag: &'static str, open: char },
}

fn opening(kind: ToolParserKind) -> Opening {
    match kind {
        ToolParserKind::Hermes => Opening::Markers(hermes::MARKERS),
        ToolParserKind::Mistral => Opening::Markers(mistral::MARKERS),
        ToolParserKind::Qwen3Xml => Opening::Markers(qwen3_xml::MARKERS),
        ToolParserKind::Llama3Json => Opening::Leading {
            tag: llama3_json::TAG,
            open: '{',
        },
        ToolParserKind::Pythonic => Opening::Leading {
            tag: pythonic::START,
            open: '[',
        },
    }
}

/// Where the first marker starts in `text[from..]`, or else how much of the text is certainly
/// not part of a marker.
pub(crate) enum Scan {
    Found(usize),
    NotFound { safe_end: usize },
}

pub(crate) fn scan_markers(text: &str, from: usize, markers: &[&str]) -> Scan {
    let hay = text.get(from..).unwrap_or("");
    if let Some(pos) = markers.iter().filter_map(|m| hay.find(m)).min() {
        return Scan::Found(from + pos);
    }
    Scan::NotFound {
        safe_end: text.len() - partial_marker_len(hay, markers),
    }
}

/// Length of the longest suffix of `hay` that is a proper prefix of one of `markers`: text that
/// must be held back because the next chunk may complete the marker.
pub(crate) fn partial_marker_len(hay: &str, markers: &[&str]) -> usize {
    let longest = markers.iter().map(|m| m.len()).max().unwrap_or(0);
    let max_k = longest.saturating_sub(1).min(hay.len());
    (1..=max_k)
        .rev()
        .find(|&k| {
            hay.get(hay.len() - k..)
                .is_some_and(|suffix| markers.iter().any(|m| m.len() > k && m.starts_with(suffix)))
        })
        .unwrap_or(0)
}

/// Decision for formats whose tool calls must begin the output.
pub(crate) enum Lead {
    Undecided,
    Calls,
    Content,
}

/// The text after leading whitespace, an optional `tag` and more whitespace.
pub(crate) fn strip_leading_tag<'a>(text: &'a str, tag: &str) -> &'a str {
    let t = text.trim_start();
    t.strip_prefix(tag).map_or(t, str::trim_start)
}

pub(crate) fn leading_decision(text: &str, tag: &str, open: char) -> Lead {
    let t = text.trim_start();
    if t.len() < tag.len() && tag.starts_with(t) {
        return Lead::Undecided;
    }
    match strip_leading_tag(text, tag).chars().next() {
        None => Lead::Undecided,
        Some(c) if c == open => Lead::Calls,
        Some(_) => Lead::Content,
    }
}

/// Incremental tool-call parser; see [`ToolParserKind::streamer`].
#[derive(Clone, Debug)]
pub struct ToolCallStreamer {
    kind: ToolParserKind,
    tools: Vec<ToolSchema>,
    /// Everything pushed so far.
    text: String,
    /// Bytes of `text` already sent as content (content is always a prefix of the text).
    content_sent: usize,
    /// Start of the tool-call section, once seen.
    section: Option<usize>,
    /// A leading-format output that was decided to be plain content.
    plain: bool,
    /// Names of the calls whose start was sent.
    started: Vec<String>,
    /// The calls whose arguments were sent.
    sent: Vec<ToolCall>,
    finished: bool,
}

impl ToolCallStreamer {
    pub(crate) fn new(kind: ToolParserKind, tools: Vec<ToolSchema>) -> Self {
        ToolCallStreamer {
            kind,
            tools,
            text: String::new(),
            content_sent: 0,
            section: None,
            plain: false,
            started: Vec::new(),
            sent: Vec::new(),
            finished: false,
        }
    }

    /// Feeds the next chunk of generated text.
    pub fn push(&mut self, delta: &str) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.finished || delta.is_empty() {
            return events;
        }
        self.text.push_str(delta);
        if self.section.is_none() {
            self.advance_content(&mut events);
        }
        if let Some(start) = self.section {
            let section = self.text.get(start..).unwrap_or("");
            let calls = match self.kind {
                ToolParserKind::Hermes => hermes::partial(section),
                ToolParserKind::Llama3Json => llama3_json::partial(section),
                ToolParserKind::Mistral => mistral::partial(section),
                ToolParserKind::Pythonic => pythonic::partial(section),
                ToolParserKind::Qwen3Xml => qwen3_xml::partial(section, &self.tools),
            };
            self.emit_calls(calls, &mut events);
        }
        events
    }

    /// End of generation: sends held-back text, an unterminated last call, or the tool-call
    /// section as content if it was not valid.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.finished {
            return events;
        }
        self.finished = true;
        let parsed = self.kind.parse(&self.text, &self.tools);
        let consistent = parsed.tool_calls.get(..self.sent.len()) == Some(self.sent.as_slice());
        if !consistent {
            // Calls already streamed cannot be taken back, and the whole-text parse rejected
            // them (a later call is malformed, or text follows a closed call list): keep what
            // was sent and do not repeat the tool-call markup as content.
            if let Some(start) = self.section {
                self.send_content(start, &mut events);
            }
            return events;
        }
        if let Some(content) = &parsed.content {
            if let Some(rest) = content.get(self.content_sent..).filter(|r| !r.is_empty()) {
                events.push(StreamEvent::Content(rest.to_string()));
                self.content_sent = content.len();
            }
        }
        let calls = parsed.tool_calls.into_iter().map(|c| PartialCall {
            name: c.name,
            arguments: Some(c.arguments),
        });
        self.emit_calls(calls.collect(), &mut events);
        events
    }

    fn advance_content(&mut self, events: &mut Vec<StreamEvent>) {
        match opening(self.kind) {
            Opening::Markers(markers) => match scan_markers(&self.text, self.content_sent, markers)
            {
                Scan::Found(pos) => {
                    self.send_content(pos, events);
                    self.section = Some(pos);
                }
                Scan::NotFound { safe_end } => self.send_content(safe_end, events),
            },
            Opening::Leading { tag, open } => {
                if !self.plain {
                    match leading_decision(&self.text, tag, open) {
                        Lead::Undecided => return,
                        Lead::Calls => {
                            self.section = Some(0);
                            return;
                        }
                        Lead::Content => self.plain = true,
                    }
                }
                self.send_content(self.text.len(), events);
            }
        }
    }

    fn send_content(&mut self, end: usize, events: &mut Vec<StreamEvent>) {
        if end > self.content_sent {
            if let Some(s) = self.text.get(self.content_sent..end) {
                events.push(StreamEvent::Content(s.to_string()));
                self.content_sent = end;
            }
        }
    }

    /// Sends the starts and arguments of the calls not sent yet.
    fn emit_calls(&mut self, calls: Vec<PartialCall>, events: &mut Vec<StreamEvent>) {
        for (index, call) in calls.into_iter().enumerate().skip(self.sent.len()) {
            if index >= self.started.len() {
                events.push(StreamEvent::ToolCallStart {
                    index,
                    name: call.name.clone(),
                });
                self.started.push(call.name.clone());
            }
            let Some(arguments) = call.arguments else {
                break;
            };
            events.push(StreamEvent::ToolCallArguments {
                index,
                fragment: arguments.clone(),
            });
            self.sent.push(ToolCall {
                name: call.name,
                arguments,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_marker_lengths() {
        assert_eq!(partial_marker_len("Hello <tool", &["<tool_call>"]), 5);
        assert_eq!(partial_marker_len("Hello <", &["<tool_call>"]), 1);
        assert_eq!(partial_marker_len("Hello", &["<tool_call>"]), 0);
        assert_eq!(partial_marker_len("x <tool_call", &["<tool_call>"]), 10);
        assert_eq!(
            partial_marker_len("é<fun", &["<tool_call>", "<function="]),
            4
        );
        assert_eq!(partial_marker_len("", &["<tool_call>"]), 0);
    }

    #[test]
    fn marker_prefix_is_held_back_then_released() {
        let mut s = ToolParserKind::Hermes.streamer(vec![]);
        assert_eq!(
            s.push("Hello <tool"),
            vec![StreamEvent::Content("Hello ".into())]
        );
        assert_eq!(s.push("ing"), vec![StreamEvent::Content("<tooling".into())]);
        assert_eq!(s.push(" <tool_ca"), vec![StreamEvent::Content(" ".into())]);
        assert_eq!(s.finish(), vec![StreamEvent::Content("<tool_ca".into())]);
    }

    #[test]
    fn sent_calls_are_not_repeated_as_content() {
        // The whole-text parse rejects this output (the second call is malformed), but the
        // first call was already streamed: the stream keeps it and adds no markup as content.
        let text = "Hi\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{bad}\n</tool_call>";
        let mut s = ToolParserKind::Hermes.streamer(vec![]);
        let split = text.find("<tool_call>\n{bad").unwrap_or(0);
        let mut events = s.push(&text[..split]);
        events.extend(s.push(&text[split..]));
        events.extend(s.finish());
        assert_eq!(
            events,
            vec![
                StreamEvent::Content("Hi\n".into()),
                StreamEvent::ToolCallStart {
                    index: 0,
                    name: "f".into()
                },
                StreamEvent::ToolCallArguments {
                    index: 0,
                    fragment: "{}".into()
                },
            ]
        );
        assert!(ToolParserKind::Hermes
            .parse(text, &[])
            .tool_calls
            .is_empty());
    }

    #[test]
    fn leading_decisions() {
        assert!(matches!(
            leading_decision("  ", "<|python_tag|>", '{'),
            Lead::Undecided
        ));
        assert!(matches!(
            leading_decision(" <|python", "<|python_tag|>", '{'),
            Lead::Undecided
        ));
        assert!(matches!(
            leading_decision("<|python_tag|> {", "<|python_tag|>", '{'),
            Lead::Calls
        ));
        assert!(matches!(
            leading_decision("<|py x", "<|python_tag|>", '{'),
            Lead::Content
        ));
        assert!(matches!(
            leading_decision("Hi", "<|python_tag|>", '{'),
            Lead::Content
        ));
    }
}
