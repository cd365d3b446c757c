//! Structured-output request fields, typed: `response_format`, vLLM's `structured_outputs`
//! object and the older `guided_*` fields, turned into one engine constraint and compiled.

use std::time::Duration;

use engine::structured::{CompiledGrammar, GrammarOptions, GrammarSpec};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;

/// A constraint that takes longer than this to compile is refused (llguidance's own fuel limits
/// usually stop a pathological schema long before).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(10);

/// Backends a request may name: we ship llguidance, vLLM's `guidance`.
const BACKENDS: &[&str] = &["auto", "guidance"];

/// `response_format` (OpenAI).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
    StructuralTag {},
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, alias = "json_schema")]
    pub schema: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// vLLM's `structured_outputs` object (`StructuredOutputsParams`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StructuredOutputsParams {
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub choice: Option<Vec<String>>,
    #[serde(default)]
    pub grammar: Option<String>,
    #[serde(default)]
    pub json_object: Option<bool>,
    #[serde(default)]
    pub structural_tag: Option<Value>,
    #[serde(default)]
    pub disable_fallback: Option<bool>,
    #[serde(default)]
    pub disable_any_whitespace: Option<bool>,
    #[serde(default)]
    pub disable_additional_properties: Option<bool>,
    #[serde(default)]
    pub whitespace_pattern: Option<String>,
}

/// The structured-output fields both endpoints take.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StructuredFields {
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub structured_outputs: Option<StructuredOutputsParams>,
    #[serde(default)]
    pub guided_json: Option<Value>,
    #[serde(default)]
    pub guided_regex: Option<String>,
    #[serde(default)]
    pub guided_choice: Option<Vec<String>>,
    #[serde(default)]
    pub guided_grammar: Option<String>,
    #[serde(default)]
    pub guided_whitespace_pattern: Option<String>,
    #[serde(default)]
    pub guided_decoding_backend: Option<String>,
}

/// A schema given as an object, or as JSON text (vLLM accepts both).
fn schema_value(param: &str, v: &Value) -> Result<Value, ApiError> {
    match v {
        Value::String(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::bad_param(param, format!("{param} is not valid JSON: {e}"))),
        other => Ok(other.clone()),
    }
}

impl StructuredFields {
    /// The one constraint these fields ask for (more than one kind is a 400, as in vLLM), with
    /// the server's options adjusted by the request's own.
    pub fn constraint(
        &self,
        server: &GrammarOptions,
    ) -> Result<Option<(GrammarSpec, GrammarOptions)>, ApiError> {
        if let Some(b) = self.guided_decoding_backend.as_deref() {
            let name = b.split(':').next().unwrap_or(b);
            if !BACKENDS.contains(&name) {
                return Err(ApiError::bad_param(
                    "guided_decoding_backend",
                    format!("guided_decoding_backend `{b}` is not available: vllm-rs ships the `guidance` backend (llguidance)"),
                ));
            }
        }
        let mut opts = server.clone();
        let mut specs: Vec<(&str, GrammarSpec)> = Vec::new();
        match &self.response_format {
            None | Some(ResponseFormat::Text) => {}
            Some(ResponseFormat::JsonObject) => {
                specs.push(("response_format", GrammarSpec::JsonObject))
            }
            Some(ResponseFormat::JsonSchema { json_schema }) => {
                let schema = json_schema.schema.as_ref().ok_or_else(|| {
                    ApiError::bad_param(
                        "response_format",
                        "response_format.json_schema.schema is required",
                    )
                })?;
                specs.push((
                    "response_format",
                    GrammarSpec::JsonSchema(schema_value("response_format", schema)?),
                ));
            }
            Some(ResponseFormat::StructuralTag {}) => {
                return Err(ApiError::bad_param(
                    "response_format",
                    "response_format structural_tag is not supported yet",
                ));
            }
        }
        if let Some(so) = &self.structured_outputs {
            if so.structural_tag.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(ApiError::bad_param(
                    "structured_outputs",
                    "structured_outputs.structural_tag is not supported yet",
                ));
            }
            if let Some(j) = &so.json {
                specs.push((
                    "structured_outputs.json",
                    GrammarSpec::JsonSchema(schema_value("structured_outputs", j)?),
                ));
            }
            if let Some(r) = &so.regex {
                specs.push(("structured_outputs.regex", GrammarSpec::Regex(r.clone())));
            }
            if let Some(c) = &so.choice {
                specs.push(("structured_outputs.choice", GrammarSpec::Choice(c.clone())));
            }
            if let Some(g) = &so.grammar {
                specs.push((
                    "structured_outputs.grammar",
                    GrammarSpec::Grammar(g.clone()),
                ));
            }
            if so.json_object == Some(true) {
                specs.push(("structured_outputs.json_object", GrammarSpec::JsonObject));
            }
            if let Some(v) = so.disable_any_whitespace {
                opts.any_whitespace = !v;
            }
            if let Some(v) = so.disable_additional_properties {
                opts.additional_properties = !v;
            }
            if let Some(v) = so.disable_fallback {
                opts.fallback = !v;
            }
            if so.whitespace_pattern.is_some() {
                opts.whitespace_pattern = so.whitespace_pattern.clone();
            }
        }
        if let Some(j) = &self.guided_json {
            specs.push((
                "guided_json",
                GrammarSpec::JsonSchema(schema_value("guided_json", j)?),
            ));
        }
        if let Some(r) = &self.guided_regex {
            specs.push(("guided_regex", GrammarSpec::Regex(r.clone())));
        }
        if let Some(c) = &self.guided_choice {
            specs.push(("guided_choice", GrammarSpec::Choice(c.clone())));
        }
        if let Some(g) = &self.guided_grammar {
            specs.push(("guided_grammar", GrammarSpec::Grammar(g.clone())));
        }
        if self.guided_whitespace_pattern.is_some() {
            opts.whitespace_pattern = self.guided_whitespace_pattern.clone();
        }
        match specs.len() {
            0 => Ok(None),
            1 => Ok(specs.pop().map(|(_, s)| (s, opts))),
            _ => {
                let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
                Err(ApiError::bad_param(
                    names[1],
                    format!(
                        "only one kind of structured output may be requested, got {}",
                        names.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Compiles a constraint off the async runtime, bounded in time; problems are 400s.
pub async fn compile(
    state: &AppState,
    spec: GrammarSpec,
    opts: GrammarOptions,
) -> Result<CompiledGrammar, ApiError> {
    let compiler = match &state.grammar {
        Ok(c) => c.clone(),
        Err(why) => return Err(ApiError::bad_request(why.clone())),
    };
    let kind = spec.kind();
    let job = tokio::task::spawn_blocking(move || compiler.compile(&spec, &opts));
    match tokio::time::timeout(COMPILE_TIMEOUT, job).await {
        Ok(Ok(Ok(g))) => Ok(g),
        Ok(Ok(Err(e))) => Err(ApiError::bad_request(e.to_string())),
        Ok(Err(_)) => Err(ApiError::bad_request(format!(
            "the {kind} could not be compiled"
        ))),
        Err(_) => Err(ApiError::bad_request(format!(
            "the {kind} took longer than {}s to compile",
            COMPILE_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Result<StructuredFields, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn every_form_maps_to_one_constraint() {
        let server = GrammarOptions::default();
        let cases = [
            (
                json!({"response_format": {"type": "json_object"}}),
                GrammarSpec::JsonObject,
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}}}),
                GrammarSpec::JsonSchema(json!({"type": "object"})),
            ),
            (
                json!({"structured_outputs": {"regex": "a+"}}),
                GrammarSpec::Regex("a+".into()),
            ),
            (
                json!({"structured_outputs": {"choice": ["a", "b"]}}),
                GrammarSpec::Choice(vec!["a".into(), "b".into()]),
            ),
            (
                json!({"structured_outputs": {"json": "{\"type\": \"integer\"}"}}),
                GrammarSpec::JsonSchema(json!({"type": "integer"})),
            ),
            (
                json!({"guided_json": {"type": "array"}}),
                GrammarSpec::JsonSchema(json!({"type": "array"})),
            ),
            (json!({"guided_regex": "x"}), GrammarSpec::Regex("x".into())),
            (
                json!({"guided_choice": ["y"]}),
                GrammarSpec::Choice(vec!["y".into()]),
            ),
            (
                json!({"guided_grammar": "root ::= \"a\""}),
                GrammarSpec::Grammar("root ::= \"a\"".into()),
            ),
        ];
        for (v, want) in cases {
            let (spec, _) = fields(v.clone())
                .unwrap()
                .constraint(&server)
                .unwrap()
                .unwrap();
            assert_eq!(spec, want, "{v}");
        }
        assert!(fields(json!({"response_format": {"type": "text"}}))
            .unwrap()
            .constraint(&server)
            .unwrap()
            .is_none());
    }

    #[test]
    fn request_options_override_the_server_and_conflicts_are_400() {
        let server = GrammarOptions::default();
        let (_, o) = fields(json!({"structured_outputs": {"json_object": true, "disable_any_whitespace": true, "disable_additional_properties": true}, "guided_whitespace_pattern": " ?"}))
            .unwrap().constraint(&server).unwrap().unwrap();
        assert!(!o.any_whitespace && !o.additional_properties);
        assert_eq!(o.whitespace_pattern.as_deref(), Some(" ?"));
        for v in [
            json!({"guided_json": {}, "guided_regex": "a"}),
            json!({"response_format": {"type": "json_object"}, "structured_outputs": {"regex": "a"}}),
            json!({"guided_regex": "a", "guided_decoding_backend": "xgrammar"}),
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
            json!({"guided_json": "{not json"}),
            json!({"structured_outputs": {"structural_tag": "{}"}}),
        ] {
            assert!(
                fields(v.clone()).unwrap().constraint(&server).is_err(),
                "{v}"
            );
        }
        assert!(fields(json!({"response_format": {"type": "yaml"}})).is_err());
        assert!(
            fields(json!({"guided_regex": "a", "guided_decoding_backend": "guidance"}))
                .unwrap()
                .constraint(&server)
                .is_ok()
        );
    }
}
