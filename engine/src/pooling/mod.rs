//! The pooling runner's settings: which runner serves the model, how hidden states become one
//! vector per request (the pooler), and what a request may ask of it.
//!
//! Defaults follow vLLM: a decoder used as an embedder (`--convert embed`) pools the last token
//! and L2-normalises; a `*ForSequenceClassification` checkpoint pools the last token, applies
//! its `score` head and then softmax (sigmoid for a single label). A Sentence-Transformers folder
//! (`modules.json` + `1_Pooling/config.json`) and then `--override-pooler-config` override that.

mod head;
pub mod offline;
mod pooler;

use std::path::Path;

use serde_json::Value;

pub use head::{ClassifierHead, SEQ_CLS_SUFFIX};
pub use pooler::{activate, l2_normalize, PoolAccumulator};

/// Errors of the pooler settings (bad files or flags); shown at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolingError {
    #[error("{0}")]
    Config(String),
}

/// How hidden states of a prompt become one vector (vLLM's `PoolingType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingType {
    /// The last prompt token's hidden state (decoders: it has seen the whole prompt).
    Last,
    /// The first token's hidden state.
    Cls,
    /// The mean over every prompt token.
    Mean,
}

impl PoolingType {
    pub fn parse(s: &str) -> Result<Self, PoolingError> {
        match s.to_ascii_uppercase().as_str() {
            "LAST" | "LASTTOKEN" => Ok(PoolingType::Last),
            "CLS" => Ok(PoolingType::Cls),
            "MEAN" => Ok(PoolingType::Mean),
            "ALL" | "STEP" => Err(PoolingError::Config(format!(
                "not supported yet: pooling_type {s} (supported: LAST, CLS, MEAN)"
            ))),
            other => Err(PoolingError::Config(format!(
                "unknown pooling_type `{other}` (vLLM's are LAST, ALL, CLS, STEP, MEAN)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PoolingType::Last => "LAST",
            PoolingType::Cls => "CLS",
            PoolingType::Mean => "MEAN",
        }
    }
}

/// What a pooling model is served as (`--convert`, or native for classifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingKind {
    /// Embeddings: `/v1/embeddings`, `/pooling`, and similarity `/score` / `/rerank`.
    Embed,
    /// A classification head: `/classify`, and cross-encoder `/score` / `/rerank`.
    Classify,
}

impl PoolingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolingKind::Embed => "embed",
            PoolingKind::Classify => "classify",
        }
    }
}

/// Which runner serves the model, after `--runner`, `--convert` and `--task` are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    Generate,
    Pooling(PoolingKind),
}

/// `--runner`, `--convert` and the deprecated `--task`, resolved as vLLM does: `--task
/// embed|embedding` is `--runner pooling --convert embed`, `classify|score` is `--convert
/// classify`, `generate` is `--runner generate`; `auto` picks pooling for a
/// `*ForSequenceClassification` checkpoint and generate otherwise.
pub fn resolve_runner(
    runner: &str,
    convert: &str,
    task: Option<&str>,
    is_classifier: bool,
) -> Result<Runner, PoolingError> {
    let bad = |m: String| Err(PoolingError::Config(m));
    let (mut runner, mut convert) = (runner.to_string(), convert.to_string());
    match task {
        None | Some("auto") => {}
        Some("generate") => runner = "generate".into(),
        Some("embed" | "embedding") => (runner, convert) = ("pooling".into(), "embed".into()),
        Some("classify" | "score") => (runner, convert) = ("pooling".into(), "classify".into()),
        Some("reward") => (runner, convert) = ("pooling".into(), "reward".into()),
        Some(other) => return bad(format!("not supported yet: --task {other}")),
    }
    if runner == "auto" {
        runner = if is_classifier || convert == "embed" || convert == "classify" {
            "pooling".into()
        } else {
            "generate".into()
        };
    }
    match (runner.as_str(), convert.as_str()) {
        ("generate", "auto" | "none") if is_classifier => bad(
            "--runner generate: this *ForSequenceClassification checkpoint has no language-model head; serve it with --runner pooling".into(),
        ),
        ("generate", "auto" | "none") => Ok(Runner::Generate),
        ("generate", c) => bad(format!("--convert {c} needs --runner pooling (or auto)")),
        ("pooling", "reward") => bad("not supported yet: --convert reward (reward models)".into()),
        ("pooling", "auto" | "none") if is_classifier => Ok(Runner::Pooling(PoolingKind::Classify)),
        ("pooling", "auto") => Ok(Runner::Pooling(PoolingKind::Embed)),
        ("pooling", "none") => bad("--runner pooling --convert none needs a native pooling model (a *ForSequenceClassification checkpoint); use --convert embed to embed with a generative model".into()),
        ("pooling", "embed") => Ok(Runner::Pooling(PoolingKind::Embed)),
        ("pooling", "classify") if is_classifier => Ok(Runner::Pooling(PoolingKind::Classify)),
        ("pooling", "classify") => bad("not supported yet: --convert classify of a generative checkpoint (it needs a *ForSequenceClassification folder with `score.weight`)".into()),
        (r, _) => bad(format!("not supported yet: --runner {r}")),
    }
}

/// The server-wide pooler (vLLM's `PoolerConfig`, resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolerConfig {
    pub pooling_type: PoolingType,
    /// L2-normalise embeddings (requests may turn it off with `normalize: false`).
    pub normalize: bool,
    /// Softmax (sigmoid for one label) over classifier logits.
    pub activation: bool,
    /// Matryoshka: the embedding is cut to this many dimensions unless a request asks otherwise.
    pub dimensions: Option<usize>,
}

impl PoolerConfig {
    /// vLLM's defaults for a decoder served as `kind`.
    pub fn default_for(kind: PoolingKind) -> Self {
        PoolerConfig {
            pooling_type: PoolingType::Last,
            normalize: kind == PoolingKind::Embed,
            activation: kind == PoolingKind::Classify,
            dimensions: None,
        }
    }

    /// The defaults, then a Sentence-Transformers folder's pooling module, then
    /// `--override-pooler-config` (JSON object; keys as vLLM's `PoolerConfig`).
    /// Returns the config and where it came from, for the start-up log.
    pub fn resolve(
        kind: PoolingKind,
        model_dir: Option<&Path>,
        overrides: Option<&Value>,
    ) -> Result<(Self, &'static str), PoolingError> {
        let mut c = Self::default_for(kind);
        let mut source = "vLLM defaults";
        if let Some(dir) = model_dir.filter(|d| d.is_dir()) {
            if let Some(st) = sentence_transformers_pooling(dir)? {
                // vLLM takes `normalize` from whether the modules include a Normalize layer.
                (c.pooling_type, c.normalize) = st;
                source = "Sentence-Transformers modules.json";
            }
        }
        if let Some(o) = overrides {
            c.apply_overrides(o)?;
            source = "--override-pooler-config";
        }
        Ok((c, source))
    }

    fn apply_overrides(&mut self, o: &Value) -> Result<(), PoolingError> {
        let obj = o.as_object().ok_or_else(|| {
            PoolingError::Config("--override-pooler-config must be a JSON object".into())
        })?;
        let bad = |k: &str, want: &str| {
            PoolingError::Config(format!("--override-pooler-config: `{k}` must be {want}"))
        };
        for (k, v) in obj {
            match k.as_str() {
                "pooling_type" => {
                    let s = v.as_str().ok_or_else(|| bad(k, "a string"))?;
                    self.pooling_type = PoolingType::parse(s)?;
                }
                "normalize" => self.normalize = v.as_bool().ok_or_else(|| bad(k, "a boolean"))?,
                "softmax" | "activation" | "use_activation" => {
                    self.activation = v.as_bool().ok_or_else(|| bad(k, "a boolean"))?
                }
                "dimensions" => {
                    self.dimensions = match v {
                        Value::Null => None,
                        _ => Some(
                            v.as_u64()
                                .filter(|d| *d > 0)
                                .ok_or_else(|| bad(k, "a positive integer"))?
                                as usize,
                        ),
                    }
                }
                // Accepted because they change nothing here: chunked processing of long
                // inputs is always on (hidden states accumulate across prefill chunks).
                "enable_chunked_processing" | "max_embed_len" => {}
                other => {
                    return Err(PoolingError::Config(format!(
                        "not supported yet: --override-pooler-config key `{other}` (supported: pooling_type, normalize, softmax, activation, use_activation, dimensions)"
                    )))
                }
            }
        }
        Ok(())
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        format!(
            "pooling_type={} normalize={} activation={} dimensions={}",
            self.pooling_type.as_str(),
            self.normalize,
            self.activation,
            self.dimensions
                .map_or_else(|| "full".to_string(), |d| d.to_string())
        )
    }
}

/// (pooling type, has a Normalize module) from
/// `modules.json` and the pooling module's `config.json`; `None` when the folder has no
/// `modules.json`.
fn sentence_transformers_pooling(dir: &Path) -> Result<Option<(PoolingType, bool)>, PoolingError> {
    let modules_path = dir.join("modules.json");
    let Ok(text) = std::fs::read_to_string(&modules_path) else {
        return Ok(None);
    };
    let bad = |m: String| PoolingError::Config(format!("{}: {m}", modules_path.display()));
    let modules: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let list = modules
        .as_array()
        .ok_or_else(|| bad("expected a JSON list".into()))?;
    let type_of = |m: &Value| {
        m.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let normalize = list
        .iter()
        .any(|m| type_of(m).ends_with("models.Normalize"));
    let Some(pool) = list.iter().find(|m| type_of(m).ends_with("models.Pooling")) else {
        return Ok(None);
    };
    let sub = pool
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("1_Pooling");
    let cfg_path = dir.join(sub).join("config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| PoolingError::Config(format!("{}: {e}", cfg_path.display())))?;
    let cfg: Value = serde_json::from_str(&text)
        .map_err(|e| PoolingError::Config(format!("{}: {e}", cfg_path.display())))?;
    let on = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    let pooling_type = if on("pooling_mode_lasttoken") {
        PoolingType::Last
    } else if on("pooling_mode_cls_token") {
        PoolingType::Cls
    } else if on("pooling_mode_mean_tokens") {
        PoolingType::Mean
    } else {
        return Err(PoolingError::Config(format!(
            "{}: not supported yet: a pooling mode other than lasttoken, cls_token or mean_tokens",
            cfg_path.display()
        )));
    };
    Ok(Some((pooling_type, normalize)))
}

/// The engine's pooling setup: what the model is served as and the server-wide pooler.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolingSetup {
    pub kind: PoolingKind,
    pub pooler: PoolerConfig,
}

/// What one request asks of the pooler (vLLM's `PoolingParams`, resolved by the API).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolingParams {
    /// Matryoshka dimensions (embeddings); `None`: the server's.
    pub dimensions: Option<usize>,
    /// `None`: the server's.
    pub normalize: Option<bool>,
    /// Softmax/sigmoid over classifier logits; `None`: the server's.
    pub activation: Option<bool>,
}

#[cfg(test)]
mod tests;
