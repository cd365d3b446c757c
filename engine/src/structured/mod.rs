//! Structured outputs: constrained decoding with llguidance (vLLM's `guidance` backend).
//!
//! The server compiles a request's constraint ([`GrammarSpec`]) once with the model's
//! [`GrammarCompiler`]; the engine gives each sequence its own [`GrammarMatcher`], which masks
//! the logits before any other logits processing (where vLLM applies its grammar bitmask) and
//! advances with every sampled token.

mod gbnf;
mod matcher;
mod token_env;

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{JsonCompileOptions, Matcher, ParserFactory, TokenParser};
use serde_json::{Map, Value};

pub use gbnf::{gbnf_to_lark, is_gbnf};
pub use matcher::{GrammarMatcher, ReasoningGate};

use crate::tokenizer::Tokenizer;

/// What a request constrains its output to (vLLM's `StructuredOutputsParams` kinds).
#[derive(Debug, Clone, PartialEq)]
pub enum GrammarSpec {
    JsonSchema(Value),
    /// Any JSON object (`response_format: {"type": "json_object"}`).
    JsonObject,
    Regex(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
    /// A context-free grammar, GBNF (`root ::= ...`) or Lark.
    Grammar(String),
}

impl GrammarSpec {
    /// The request field's word for this kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            GrammarSpec::JsonSchema(_) => "JSON schema",
            GrammarSpec::JsonObject => "JSON object",
            GrammarSpec::Regex(_) => "regex",
            GrammarSpec::Choice(_) => "choice",
            GrammarSpec::Grammar(_) => "grammar",
        }
    }
}

/// Server-wide switches (`--guided-decoding-*`) plus the request's whitespace pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct GrammarOptions {
    /// JSON may carry any whitespace between tokens (off: compact JSON only).
    pub any_whitespace: bool,
    /// Objects without `additionalProperties` accept unlisted keys (JSON Schema's default).
    pub additional_properties: bool,
    /// A schema keyword llguidance does not implement is ignored (with a warning) instead of
    /// failing the request, as vLLM's `auto` backend falls back to a more lenient one.
    pub fallback: bool,
    /// `guided_whitespace_pattern`: the regex whitespace in JSON must match.
    pub whitespace_pattern: Option<String>,
}

impl Default for GrammarOptions {
    fn default() -> Self {
        GrammarOptions {
            any_whitespace: true,
            additional_properties: true,
            fallback: true,
            whitespace_pattern: None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StructuredOutputError {
    #[error("structured outputs are unavailable with this tokenizer: {0}")]
    Tokenizer(String),
    #[error("invalid {kind}: {msg}")]
    Invalid { kind: &'static str, msg: String },
}

fn invalid(spec: &GrammarSpec, msg: impl std::fmt::Display) -> StructuredOutputError {
    StructuredOutputError::Invalid {
        kind: spec.kind(),
        msg: msg.to_string(),
    }
}

/// One per model: the token trie and llguidance's parser factory (shared by every request).
pub struct GrammarCompiler {
    factory: Arc<ParserFactory>,
}

impl std::fmt::Debug for GrammarCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrammarCompiler")
    }
}

/// A compiled constraint, ready to start a matcher per sequence.
pub struct CompiledGrammar {
    parser: TokenParser,
}

impl Clone for CompiledGrammar {
    fn clone(&self) -> Self {
        // A deep clone: sequences of one request (n > 1) advance independently.
        CompiledGrammar {
            parser: self.parser.deep_clone(),
        }
    }
}

impl std::fmt::Debug for CompiledGrammar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledGrammar")
    }
}

impl CompiledGrammar {
    pub(crate) fn into_matcher(self) -> Matcher {
        Matcher::new(Ok(self.parser))
    }
}

impl GrammarCompiler {
    /// `vocab_size` is the width of the logits; `eos` the id a finished grammar allows.
    pub fn new(
        tokenizer: Arc<Tokenizer>,
        vocab_size: usize,
        eos: u32,
    ) -> Result<Self, StructuredOutputError> {
        let env = token_env::TokenEnv::shared(tokenizer, vocab_size, eos)?;
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| StructuredOutputError::Tokenizer(e.to_string()))?;
        // Grammar warnings and errors reach the client as 400s; nothing goes to stderr.
        factory.quiet();
        Ok(GrammarCompiler {
            factory: Arc::new(factory),
        })
    }

    /// Compiles `spec`; any problem with it (bad schema, regex or grammar, or one too large for
    /// llguidance's limits) is an [`StructuredOutputError::Invalid`] naming it.
    pub fn compile(
        &self,
        spec: &GrammarSpec,
        opts: &GrammarOptions,
    ) -> Result<CompiledGrammar, StructuredOutputError> {
        let grammar = match spec {
            GrammarSpec::JsonSchema(schema) => {
                return self.compile_json(spec, schema.clone(), opts);
            }
            GrammarSpec::JsonObject => {
                return self.compile_json(spec, serde_json::json!({"type": "object"}), opts);
            }
            GrammarSpec::Regex(rx) => {
                // llguidance accepts some regexes the `regex` crate refuses and reports others
                // late; checking with the same syntax vLLM documents gives a clear message.
                regex_syntax::Parser::new()
                    .parse(rx)
                    .map_err(|e| invalid(spec, e))?;
                TopLevelGrammar::from_regex(rx)
            }
            GrammarSpec::Choice(choices) => {
                if choices.is_empty() {
                    return Err(invalid(spec, "the list of choices is empty"));
                }
                let alts: Vec<String> = choices
                    .iter()
                    .map(|c| serde_json::to_string(c).unwrap_or_default())
                    .collect();
                TopLevelGrammar::from_lark(format!("start: {}\n", alts.join(" | ")))
            }
            GrammarSpec::Grammar(g) => {
                if g.trim().is_empty() {
                    return Err(invalid(spec, "the grammar is empty"));
                }
                let lark = if is_gbnf(g) {
                    gbnf_to_lark(g).map_err(|e| invalid(spec, format!("GBNF: {e}")))?
                } else {
                    g.clone()
                };
                TopLevelGrammar::from_lark(lark)
            }
        };
        self.finish(spec, grammar)
    }

    fn compile_json(
        &self,
        spec: &GrammarSpec,
        schema: Value,
        opts: &GrammarOptions,
    ) -> Result<CompiledGrammar, StructuredOutputError> {
        let mut schema = match schema {
            Value::Object(m) => Value::Object(m),
            Value::Bool(true) => Value::Object(Map::new()),
            Value::Bool(false) => return Err(invalid(spec, "the schema `false` matches nothing")),
            _ => return Err(invalid(spec, "a JSON schema must be an object")),
        };
        if !opts.additional_properties {
            close_objects(&mut schema);
        }
        let with_options = |lenient: bool| {
            let mut s = schema.clone();
            let json_opts = JsonCompileOptions {
                whitespace_flexible: opts.any_whitespace,
                whitespace_pattern: opts.whitespace_pattern.clone(),
                lenient,
                ..JsonCompileOptions::default()
            };
            json_opts.apply_to(&mut s);
            TopLevelGrammar::from_json_schema(s)
        };
        match self.finish(spec, with_options(false)) {
            Ok(g) => Ok(g),
            Err(strict) if opts.fallback => match self.finish(spec, with_options(true)) {
                Ok(g) => {
                    tracing::warn!(
                        "JSON schema compiled leniently (unsupported parts ignored): {strict}"
                    );
                    Ok(g)
                }
                Err(_) => Err(strict),
            },
            Err(e) => Err(e),
        }
    }

    fn finish(
        &self,
        spec: &GrammarSpec,
        grammar: TopLevelGrammar,
    ) -> Result<CompiledGrammar, StructuredOutputError> {
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| invalid(spec, e))?;
        // Some problems (an empty language, lexer limits) surface at the first mask: find them
        // now, while the request can still be refused with a 400.
        let mut probe = Matcher::new(Ok(parser.deep_clone()));
        probe.compute_mask().map_err(|e| invalid(spec, e))?;
        Ok(CompiledGrammar { parser })
    }
}

/// vLLM's `--guided-decoding-disable-additional-properties`: every object schema that does not
/// say otherwise gets `additionalProperties: false`.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(m) => {
            let is_object = m.get("type").and_then(Value::as_str) == Some("object")
                || m.contains_key("properties");
            if is_object && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            for v in m.values_mut() {
                close_objects(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
