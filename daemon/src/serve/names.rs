//! `--model`, `--tokenizer` and `--hf-config-path` by name, as vLLM takes them: a local file or
//! folder is used as is; otherwise an `org/name` repo id is looked up in the Hugging Face cache
//! and, when missing there, downloaded from the Hub (`hub` crate). `config.json` is checked
//! against what the engine serves before any weight is fetched.

use std::path::{Path, PathBuf};

use engine::loader::LoadFormat;
use hub::{HubEnv, HubOptions, RepoRef, Want, Weights};

use super::{ServeError, ServePlan};

/// The Hub flags (`--revision`, `--tokenizer-revision`, `--hf-token`, `--download-dir`,
/// `--ignore-patterns`), as given.
#[derive(Clone, Default)]
pub struct HubPlan {
    pub revision: Option<String>,
    pub tokenizer_revision: Option<String>,
    pub hf_token: Option<String>,
    pub download_dir: Option<PathBuf>,
    pub ignore_patterns: Vec<String>,
}

// Hand-written so the token never reaches a log line.
impl std::fmt::Debug for HubPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPlan")
            .field("revision", &self.revision)
            .field("tokenizer_revision", &self.tokenizer_revision)
            .field("hf_token", &self.hf_token.as_ref().map(|_| "<redacted>"))
            .field("download_dir", &self.download_dir)
            .field("ignore_patterns", &self.ignore_patterns)
            .finish()
    }
}

/// The engine's rule for a `config.json`, in the shape the hub crate takes.
fn engine_check(config: &serde_json::Value) -> Result<(), String> {
    engine::config::check_supported(config).map_err(|e| e.to_string())
}

/// A local `config.json` beside the model gets the same check as a downloaded one.
fn check_local(dir: &Path) -> Result<(), ServeError> {
    let path = dir.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    // Invalid JSON is the loader's to report, with its own message.
    let Ok(json) = serde_json::from_str(&text) else {
        return Ok(());
    };
    engine_check(&json).map_err(|msg| ServeError::Config(format!("{}: {msg}", path.display())))
}

/// A repo id when `given` is not a local path.
fn as_repo(given: &Path) -> Option<RepoRef> {
    if given.exists() {
        return None;
    }
    RepoRef::parse(given.to_str()?)
}

/// Replaces each name of the plan by local paths, fetching what is missing. Returns the repo id
/// of `--model` when it was one (vLLM serves it under that name by default).
pub fn resolve(plan: &mut ServePlan) -> Result<Option<String>, ServeError> {
    let hp = &plan.hub;
    let env = HubEnv::from_process();
    let opts = HubOptions::new(
        &env,
        hp.download_dir.as_deref(),
        hp.hf_token.as_deref(),
        plan.progress_bar,
    );
    let revision = hp.revision.clone().unwrap_or_else(|| "main".into());
    // vLLM: the tokenizer revision follows --revision unless given.
    let tokenizer_revision = hp
        .tokenizer_revision
        .clone()
        .unwrap_or_else(|| revision.clone());
    let ignore_patterns = if hp.ignore_patterns.is_empty() {
        hub::DEFAULT_IGNORE_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        hp.ignore_patterns.clone()
    };

    let mut model_repo = None;
    if let Some(r) = as_repo(&plan.load.model) {
        let weights = match (plan.load.load_format, &r.quant) {
            (LoadFormat::Dummy, _) => Weights::None,
            (LoadFormat::Gguf, q) | (LoadFormat::Auto, q @ Some(_)) => Weights::Gguf(q.clone()),
            (LoadFormat::Safetensors, Some(q)) => {
                return Err(ServeError::Config(format!(
                    "--model {}:{q} names a GGUF file, but --load-format is safetensors",
                    r.repo
                )))
            }
            (LoadFormat::Auto | LoadFormat::Safetensors, None) => Weights::Safetensors,
        };
        let want = Want::Model {
            weights,
            ignore_patterns,
        };
        plan.load.model = hub::fetch(&opts, &r, &revision, &want, &engine_check)?;
        model_repo = Some(r.repo);
    } else if plan.load.model.is_dir() {
        check_local(&plan.load.model)?;
    }
    if let Some(r) = plan.load.tokenizer.as_deref().and_then(as_repo) {
        plan.load.tokenizer = Some(hub::fetch(
            &opts,
            &r,
            &tokenizer_revision,
            &Want::Tokenizer,
            &engine_check,
        )?);
    }
    if let Some(r) = plan.load.hf_config_path.as_deref().and_then(as_repo) {
        plan.load.hf_config_path = Some(hub::fetch(
            &opts,
            &r,
            &revision,
            &Want::Config,
            &engine_check,
        )?);
    }
    Ok(model_repo)
}
