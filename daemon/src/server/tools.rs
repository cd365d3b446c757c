//! Tool calling: the request's `tools`/`tool_choice`, the constraint `required` and named tools
//! need, and turning a choice's generated text into content, reasoning and tool calls (whole,
//! or delta by delta for streams).

use chat_parsers::{
    parse_required_tool_calls, ReasoningParserKind, ReasoningStreamer, StreamEvent, ToolCall,
    ToolCallStreamer, ToolParserKind, ToolSchema,
};
use engine::structured::GrammarSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::state::random_id;

/// One entry of `tools`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatTool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

/// What the request asks of tools, resolved against the server's switches.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolMode {
    /// No tool calls: the text is the answer.
    None,
    /// The model decides; its own tool syntax is parsed.
    Auto(ToolParserKind),
    /// At least one call, forced by a JSON-schema constraint.
    Required,
    /// This function, forced: the generated text is its arguments.
    Named(String),
}

impl ToolMode {
    /// vLLM's rules: `tool_choice` defaults to `auto` when tools are given, `auto` needs
    /// `--enable-auto-tool-choice --tool-call-parser`, a named tool must be among `tools`.
    pub fn resolve(
        tools: &[ChatTool],
        choice: Option<&ToolChoice>,
        auto_parser: Option<ToolParserKind>,
    ) -> Result<ToolMode, ApiError> {
        let bad = |msg: String| ApiError::bad_param("tool_choice", msg);
        let mode = match choice {
            None if tools.is_empty() => return Ok(ToolMode::None),
            None => "auto",
            Some(ToolChoice::Mode(m)) => m.as_str(),
            Some(ToolChoice::Named { function }) => {
                if !tools.iter().any(|t| t.function.name == function.name) {
                    return Err(bad(format!(
                        "Tool '{}' has not been passed in `tools`.",
                        function.name
                    )));
                }
                return Ok(ToolMode::Named(function.name.clone()));
            }
        };
        match mode {
            "none" => Ok(ToolMode::None),
            "auto" if tools.is_empty() => Ok(ToolMode::None),
            "auto" => auto_parser.map(ToolMode::Auto).ok_or_else(|| {
                bad("\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set".into())
            }),
            "required" if tools.is_empty() => Err(bad("tool_choice \"required\" needs at least one tool in `tools`".into())),
            "required" => Ok(ToolMode::Required),
            other => Err(bad(format!("tool_choice `{other}` is not one of none, auto, required or a named function"))),
        }
    }

    /// vLLM's `finish_reason`: `tool_calls` when the auto parser found calls (`called`) or when
    /// a `required` answer ended normally; otherwise the engine's reason.
    pub fn finish_reason(
        &self,
        called: bool,
        engine_reason: Option<&'static str>,
    ) -> Option<&'static str> {
        let tool_calls = match self {
            ToolMode::Auto(_) => called,
            ToolMode::Required => engine_reason == Some("stop"),
            _ => false,
        };
        if tool_calls {
            Some("tool_calls")
        } else {
            engine_reason
        }
    }

    /// The constraint that forces the call(s), for `required` and named tools.
    pub fn constraint(&self, tools: &[ChatTool], parallel: bool) -> Option<GrammarSpec> {
        let params = |t: &ChatTool| {
            t.function
                .parameters
                .clone()
                .filter(|p| !p.is_null())
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
        };
        match self {
            ToolMode::Named(name) => tools
                .iter()
                .find(|t| &t.function.name == name)
                .map(|t| GrammarSpec::JsonSchema(params(t))),
            ToolMode::Required => {
                // As vLLM builds it: an array of {name, parameters} objects, one alternative per
                // tool, with every tool's `$defs` lifted to the top so `$ref`s resolve.
                let mut defs = Map::new();
                let alternatives: Vec<Value> = tools
                    .iter()
                    .map(|t| {
                        let mut p = params(t);
                        if let Some(Value::Object(d)) =
                            p.as_object_mut().and_then(|o| o.remove("$defs"))
                        {
                            defs.extend(d);
                        }
                        json!({
                            "properties": {
                                "name": {"type": "string", "enum": [t.function.name]},
                                "parameters": p
                            },
                            "required": ["name", "parameters"]
                        })
                    })
                    .collect();
                let mut schema = json!({
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "anyOf": alternatives}
                });
                if !parallel {
                    schema["maxItems"] = json!(1);
                }
                if !defs.is_empty() {
                    schema["$defs"] = Value::Object(defs);
                }
                Some(GrammarSpec::JsonSchema(schema))
            }
            ToolMode::None | ToolMode::Auto(_) => None,
        }
    }
}

pub fn schemas(tools: &[ChatTool]) -> Vec<ToolSchema> {
    tools
        .iter()
        .map(|t| ToolSchema {
            name: t.function.name.clone(),
            parameters: t.function.parameters.clone().unwrap_or(Value::Null),
        })
        .collect()
}

/// A tool call in a response message.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallOut {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCallOut,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionCallOut {
    pub name: String,
    pub arguments: String,
}

/// A tool call fragment in a streamed delta.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaToolCall {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: DeltaFunction,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeltaFunction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

pub fn tool_call_id() -> String {
    random_id("chatcmpl-tool")
}

fn out(call: ToolCall) -> ToolCallOut {
    ToolCallOut {
        id: tool_call_id(),
        kind: "function",
        function: FunctionCallOut {
            name: call.name,
            arguments: call.arguments,
        },
    }
}

/// A whole choice's answer.
#[derive(Debug, Clone, Default)]
pub struct ShapedMessage {
    pub content: Option<String>,
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCallOut>,
}

/// Splits a finished choice's text into reasoning, content and tool calls.
pub fn shape(
    text: &str,
    mode: &ToolMode,
    reasoning: Option<ReasoningParserKind>,
    tools: &[ChatTool],
) -> ShapedMessage {
    let (reasoning, content) = match reasoning {
        Some(r) => r.parse(text),
        None => (None, Some(text.to_string())),
    };
    let content = content.unwrap_or_default();
    let mut msg = ShapedMessage {
        reasoning,
        ..Default::default()
    };
    match mode {
        ToolMode::None => msg.content = Some(content),
        ToolMode::Auto(parser) => {
            let parsed = parser.parse(&content, &schemas(tools));
            msg.content = parsed.content;
            msg.tool_calls = parsed.tool_calls.into_iter().map(out).collect();
        }
        ToolMode::Named(name) => {
            msg.content = Some(String::new());
            msg.tool_calls = vec![out(ToolCall {
                name: name.clone(),
                arguments: content,
            })];
        }
        ToolMode::Required => match parse_required_tool_calls(&content) {
            Ok(calls) => {
                msg.content = Some(String::new());
                msg.tool_calls = calls.into_iter().map(out).collect();
            }
            // Cut short (max_tokens): what was generated is returned as text.
            Err(_) => msg.content = Some(content),
        },
    }
    msg
}

/// What one streamed step adds to a choice's delta.
#[derive(Debug, Clone, Default)]
pub struct DeltaParts {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<DeltaToolCall>,
}

/// Shapes one choice's stream as its text arrives.
pub struct StreamShaper {
    mode: ToolMode,
    reasoning: Option<ReasoningStreamer>,
    tools: Option<ToolCallStreamer>,
    /// `required`: the JSON is parsed once complete; `named`: the call id once sent.
    buffered: String,
    named_started: bool,
    pub tools_called: bool,
}

impl StreamShaper {
    pub fn new(mode: ToolMode, reasoning: Option<ReasoningParserKind>, tools: &[ChatTool]) -> Self {
        let streamer = match &mode {
            ToolMode::Auto(p) => Some(p.streamer(schemas(tools))),
            _ => None,
        };
        StreamShaper {
            mode,
            reasoning: reasoning.map(ReasoningParserKind::streamer),
            tools: streamer,
            buffered: String::new(),
            named_started: false,
            tools_called: false,
        }
    }

    pub fn push(&mut self, text: &str) -> DeltaParts {
        let (reasoning, content) = match self.reasoning.as_mut() {
            Some(r) => {
                let d = r.push(text);
                (d.reasoning, d.content)
            }
            None => (String::new(), text.to_string()),
        };
        let mut parts = self.content(&content, false);
        parts.reasoning = reasoning;
        parts
    }

    pub fn finish(&mut self) -> DeltaParts {
        let (reasoning, content) = match self.reasoning.as_mut() {
            Some(r) => {
                let d = r.finish();
                (d.reasoning, d.content)
            }
            None => (String::new(), String::new()),
        };
        let mut parts = self.content(&content, true);
        parts.reasoning = reasoning;
        parts
    }

    fn content(&mut self, content: &str, last: bool) -> DeltaParts {
        let mut parts = DeltaParts::default();
        match &self.mode {
            ToolMode::None => parts.content = content.to_string(),
            ToolMode::Auto(_) => {
                let Some(streamer) = self.tools.as_mut() else {
                    return parts;
                };
                let mut events = streamer.push(content);
                if last {
                    events.extend(streamer.finish());
                }
                for ev in events {
                    match ev {
                        StreamEvent::Content(c) => parts.content.push_str(&c),
                        StreamEvent::ToolCallStart { index, name } => {
                            self.tools_called = true;
                            parts.tool_calls.push(start(index, name));
                        }
                        StreamEvent::ToolCallArguments { index, fragment } => {
                            parts.tool_calls.push(arguments(index, fragment));
                        }
                    }
                }
            }
            ToolMode::Named(name) => {
                if !content.is_empty() || (last && !self.named_started) {
                    let mut call = arguments(0, content.to_string());
                    if !self.named_started {
                        self.named_started = true;
                        call.id = Some(tool_call_id());
                        call.kind = Some("function");
                        call.function.name = Some(name.clone());
                    }
                    parts.tool_calls.push(call);
                }
            }
            ToolMode::Required => {
                self.buffered.push_str(content);
                if last {
                    match parse_required_tool_calls(&self.buffered) {
                        Ok(calls) => {
                            for (i, c) in calls.into_iter().enumerate() {
                                self.tools_called = true;
                                parts.tool_calls.push(start(i, c.name));
                                parts.tool_calls.push(arguments(i, c.arguments));
                            }
                        }
                        Err(_) => parts.content = std::mem::take(&mut self.buffered),
                    }
                }
            }
        }
        parts
    }
}

fn start(index: usize, name: String) -> DeltaToolCall {
    DeltaToolCall {
        index,
        id: Some(tool_call_id()),
        kind: Some("function"),
        function: DeltaFunction {
            name: Some(name),
            arguments: Some(String::new()),
        },
    }
}

fn arguments(index: usize, fragment: String) -> DeltaToolCall {
    DeltaToolCall {
        index,
        id: None,
        kind: None,
        function: DeltaFunction {
            name: None,
            arguments: Some(fragment),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ChatTool> {
        serde_json::from_value(json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"$ref": "#/$defs/city"}}, "required": ["city"], "$defs": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "noop"}}
        ]))
        .unwrap()
    }

    #[test]
    fn tool_choice_follows_vllm_rules() {
        let t = tools();
        let named = |n: &str| {
            serde_json::from_value::<ToolChoice>(
                json!({"type": "function", "function": {"name": n}}),
            )
            .unwrap()
        };
        let mode = |m: &str| ToolChoice::Mode(m.into());
        assert_eq!(ToolMode::resolve(&[], None, None).unwrap(), ToolMode::None);
        assert!(
            ToolMode::resolve(&t, None, None).is_err(),
            "tools default to auto, which needs a parser"
        );
        assert_eq!(
            ToolMode::resolve(&t, None, Some(ToolParserKind::Hermes)).unwrap(),
            ToolMode::Auto(ToolParserKind::Hermes)
        );
        assert_eq!(
            ToolMode::resolve(&t, Some(&mode("none")), None).unwrap(),
            ToolMode::None
        );
        assert_eq!(
            ToolMode::resolve(&t, Some(&mode("required")), None).unwrap(),
            ToolMode::Required
        );
        assert!(ToolMode::resolve(&[], Some(&mode("required")), None).is_err());
        assert_eq!(
            ToolMode::resolve(&t, Some(&named("noop")), None).unwrap(),
            ToolMode::Named("noop".into())
        );
        assert!(ToolMode::resolve(&t, Some(&named("nope")), None).is_err());
        assert!(ToolMode::resolve(&t, Some(&mode("sometimes")), None).is_err());
    }

    #[test]
    fn required_schema_lifts_defs_and_bounds_parallel_calls() {
        let Some(GrammarSpec::JsonSchema(s)) = ToolMode::Required.constraint(&tools(), false)
        else {
            panic!()
        };
        assert_eq!(s["$defs"]["city"]["type"], "string");
        assert_eq!(s["maxItems"], 1);
        assert_eq!(
            s["items"]["anyOf"][1]["properties"]["parameters"],
            json!({"type": "object", "properties": {}})
        );
        assert!(s["items"]["anyOf"][0]["properties"]["parameters"]
            .get("$defs")
            .is_none());
        let Some(GrammarSpec::JsonSchema(n)) =
            ToolMode::Named("get_weather".into()).constraint(&tools(), true)
        else {
            panic!()
        };
        assert_eq!(n["required"], json!(["city"]));
    }

    #[test]
    fn streamed_named_and_required_reassemble_to_the_whole_answer() {
        let t = tools();
        for (mode, text) in [
            (
                ToolMode::Named("get_weather".into()),
                r#"{"city": "Paris"}"#,
            ),
            (
                ToolMode::Required,
                r#"[{"name": "get_weather", "parameters": {"city": "Oslo"}}, {"name": "noop", "parameters": {}}]"#,
            ),
        ] {
            let whole = shape(text, &mode, None, &t);
            let mut s = StreamShaper::new(mode.clone(), None, &t);
            let mut calls: Vec<(String, String)> = Vec::new();
            let mut feed = |p: DeltaParts| {
                for c in p.tool_calls {
                    if c.index >= calls.len() {
                        calls.push((String::new(), String::new()));
                    }
                    if let Some(n) = c.function.name {
                        calls[c.index].0 = n;
                    }
                    calls[c.index]
                        .1
                        .push_str(&c.function.arguments.unwrap_or_default());
                }
            };
            for chunk in text.as_bytes().chunks(3) {
                feed(s.push(std::str::from_utf8(chunk).unwrap()));
            }
            feed(s.finish());
            let want: Vec<(String, String)> = whole
                .tool_calls
                .iter()
                .map(|c| (c.function.name.clone(), c.function.arguments.clone()))
                .collect();
            assert_eq!(calls, want, "{mode:?}");
            assert_eq!(
                mode.finish_reason(!whole.tool_calls.is_empty(), Some("stop")),
                if mode == ToolMode::Required {
                    Some("tool_calls")
                } else {
                    Some("stop")
                }
            );
        }
    }
}
