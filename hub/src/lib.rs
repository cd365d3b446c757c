//! Models by name, as vLLM resolves them: `--model org/name` (and `--tokenizer`,
//! `--hf-config-path`) is looked up in the Hugging Face cache first, then downloaded from the
//! Hub (or the mirror of `HF_ENDPOINT`) with `hf-hub`. The cache is `huggingface_hub`'s, so
//! Python tools and vllm-rs share downloads both ways.
//!
//! Order of work, so a model we cannot serve costs no weight download: the file list, then
//! `config.json`, checked by the caller's rule (architecture, quantization, dtype), then the
//! tokenizer and generation files, then the weights the load format names.

mod cache;
mod download;
mod error;
mod select;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use cache::{repo_folder, truthy, CachedRepo, HubEnv};
pub use download::Remote;
pub use error::HubError;
pub use select::{fnmatch, Weights, DEFAULT_IGNORE_PATTERNS, SAFETENSORS_INDEX};

/// The Hub's address when `HF_ENDPOINT` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache folder (`--download-dir`, else `HF_HUB_CACHE`, else `$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    pub endpoint: String,
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE`: the cache only, never the network.
    pub offline: bool,
    /// Per-file progress (bars on a terminal, log lines otherwise).
    pub progress: bool,
}

impl HubOptions {
    /// vLLM's precedence: `--download-dir` is the cache folder; `--hf-token`, else `HF_TOKEN`,
    /// else the token `hf auth login` saved.
    pub fn new(
        env: &HubEnv,
        download_dir: Option<&Path>,
        hf_token: Option<&str>,
        progress: bool,
    ) -> HubOptions {
        HubOptions {
            cache_dir: download_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| env.hub_cache()),
            endpoint: env
                .hf_endpoint
                .clone()
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            token: hf_token
                .map(str::to_string)
                .or_else(|| env.hf_token.clone())
                .or_else(|| env.saved_token()),
            offline: env.hf_hub_offline,
            progress,
        }
    }
}

/// A Hub model named on the command line: `org/name`, or `org/name:QUANT` for one GGUF file of
/// the repo (vLLM's `repo_id:quant_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub repo: String,
    pub quant: Option<String>,
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
        && !s.contains("--")
        && !s.contains("..")
}

impl RepoRef {
    /// `spec` as a repo id, when it is one by `huggingface_hub`'s rules and has its
    /// `org/name` form (what vLLM documents). Callers check for a local path first.
    pub fn parse(spec: &str) -> Option<RepoRef> {
        let (id, quant) = match spec.rsplit_once(':') {
            Some((id, q)) if valid_part(q) => (id, Some(q.to_string())),
            Some(_) => return None,
            None => (spec, None),
        };
        let (org, name) = id.split_once('/')?;
        (valid_part(org) && valid_part(name)).then(|| RepoRef {
            repo: id.to_string(),
            quant,
        })
    }
}

/// What the caller needs of a repo.
#[derive(Debug, Clone)]
pub enum Want {
    /// A whole model: config, tokenizer, generation config and the weights (`--model`).
    Model {
        weights: Weights,
        ignore_patterns: Vec<String>,
    },
    /// The tokenizer files (`--tokenizer`).
    Tokenizer,
    /// `config.json` only (`--hf-config-path`).
    Config,
}

impl Want {
    fn needs_config(&self) -> bool {
        !matches!(
            self,
            Want::Tokenizer
                | Want::Model {
                    weights: Weights::Gguf(_),
                    ..
                }
        )
    }
}

/// The rule a `config.json` must pass before any weight is fetched; the message names what is
/// unsupported and what is.
pub type ConfigCheck<'a> = &'a dyn Fn(&Value) -> Result<(), String>;

/// Where the fetched files are: the snapshot folder (a GGUF model: the file; `Want::Config`:
/// `config.json`).
pub fn fetch(
    opts: &HubOptions,
    r: &RepoRef,
    revision: &str,
    want: &Want,
    check: ConfigCheck,
) -> Result<PathBuf, HubError> {
    let cached = CachedRepo::new(&opts.cache_dir, &r.repo, revision);
    match from_cache(&cached, r, want, check)? {
        Some(path) => {
            tracing::info!(repo = %r.repo, revision, "using the Hugging Face cache: {}", path.display());
            return Ok(path);
        }
        None if opts.offline => {
            let missing = cached
                .file("config.json")
                .map(|_| "the model's files")
                .unwrap_or("config.json");
            return Err(HubError::NotCachedOffline {
                repo: r.repo.clone(),
                file: missing.into(),
                cache: opts.cache_dir.clone(),
            });
        }
        None => {}
    }
    if std::env::var("VLLM_USE_MODELSCOPE").is_ok_and(|v| truthy(&v)) {
        return Err(HubError::Unsupported {
            repo: r.repo.clone(),
            msg: "VLLM_USE_MODELSCOPE is set: downloads from ModelScope are not supported (unset it to download from the Hugging Face Hub or HF_ENDPOINT)".into(),
        });
    }
    let remote = Remote::new(opts, &r.repo, revision)?;
    // config.json first: a model we cannot serve is refused before anything else is fetched,
    // and a wrong token or repo id is reported against the first file asked for.
    if want.needs_config() {
        let path = remote.download("config.json")?;
        check_config(r, &path, check)?;
        if matches!(want, Want::Config) {
            return Ok(path);
        }
    }
    let (commit, files) = remote.list()?;
    tracing::info!(repo = %r.repo, revision, commit = %commit, endpoint = %opts.endpoint, "fetching from the Hub");
    let at_commit = CachedRepo::new(&opts.cache_dir, &r.repo, &commit);
    let get = |file: &str| -> Result<PathBuf, HubError> {
        match at_commit.file(file) {
            Some(p) => Ok(p),
            None => remote.download(file),
        }
    };
    let has = |f: &str| files.iter().any(|x| x == f);
    let files_err = |msg: String| HubError::Files {
        repo: r.repo.clone(),
        msg,
    };

    for f in select::TOKENIZER_FILES.iter().chain(select::CONFIG_FILES) {
        if has(f) {
            get(f)?;
        }
    }
    let Want::Model {
        weights,
        ignore_patterns,
    } = want
    else {
        return snapshot_of(&at_commit, r);
    };
    match weights {
        Weights::None => snapshot_of(&at_commit, r),
        Weights::Gguf(quant) => {
            let file = select::gguf_file(&files, quant.as_deref().or(r.quant.as_deref()))
                .map_err(files_err)?;
            get(&file)
        }
        Weights::Safetensors => {
            let shards = if has(SAFETENSORS_INDEX) {
                let index = read_json(r, &get(SAFETENSORS_INDEX)?)?;
                select::shards_of_index(&index).map_err(files_err)?
            } else {
                select::safetensors_files(&files, ignore_patterns)
            };
            if shards.is_empty() {
                return Err(files_err(
                    "the repo has no .safetensors weights (vllm-rs loads safetensors and GGUF, not PyTorch .bin files)".into(),
                ));
            }
            for shard in &shards {
                get(shard)?;
            }
            snapshot_of(&at_commit, r)
        }
    }
}

fn snapshot_of(cached: &CachedRepo, r: &RepoRef) -> Result<PathBuf, HubError> {
    cached.snapshot().ok_or_else(|| HubError::Files {
        repo: r.repo.clone(),
        msg: format!("no snapshot folder in {}", cached.root.display()),
    })
}

fn read_json(r: &RepoRef, path: &Path) -> Result<Value, HubError> {
    let text = std::fs::read_to_string(path).map_err(|e| HubError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| HubError::Files {
        repo: r.repo.clone(),
        msg: format!("{}: invalid JSON: {e}", path.display()),
    })
}

fn check_config(r: &RepoRef, path: &Path, check: ConfigCheck) -> Result<(), HubError> {
    let json = read_json(r, path)?;
    check(&json).map_err(|msg| HubError::Unsupported {
        repo: r.repo.clone(),
        msg,
    })
}

/// The answer from the cache alone, when it holds everything `want` needs.
fn from_cache(
    cached: &CachedRepo,
    r: &RepoRef,
    want: &Want,
    check: ConfigCheck,
) -> Result<Option<PathBuf>, HubError> {
    let Some(snapshot) = cached.snapshot() else {
        return Ok(None);
    };
    if want.needs_config() {
        let Some(config) = cached.file("config.json") else {
            return Ok(None);
        };
        check_config(r, &config, check)?;
        if matches!(want, Want::Config) {
            return Ok(Some(config));
        }
    }
    let files = cached.files();
    match want {
        Want::Config => Ok(None),
        Want::Tokenizer => Ok(cached.file("tokenizer.json").map(|_| snapshot)),
        Want::Model {
            weights,
            ignore_patterns,
        } => match weights {
            Weights::Gguf(quant) => Ok(select::gguf_file(
                &files,
                quant.as_deref().or(r.quant.as_deref()),
            )
            .ok()
            .and_then(|f| cached.file(&f))),
            Weights::None => Ok(cached.file("tokenizer.json").map(|_| snapshot)),
            Weights::Safetensors => {
                if cached.file("tokenizer.json").is_none() {
                    return Ok(None);
                }
                let shards = match cached.file(SAFETENSORS_INDEX) {
                    Some(index) => {
                        select::shards_of_index(&read_json(r, &index)?).unwrap_or_default()
                    }
                    None => select::safetensors_files(&files, ignore_patterns),
                };
                let complete =
                    !shards.is_empty() && shards.iter().all(|s| cached.file(s).is_some());
                Ok(complete.then_some(snapshot))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_as_vllm_takes_them() {
        assert_eq!(
            RepoRef::parse("Qwen/Qwen2.5-0.5B-Instruct"),
            Some(RepoRef {
                repo: "Qwen/Qwen2.5-0.5B-Instruct".into(),
                quant: None
            })
        );
        assert_eq!(
            RepoRef::parse("unsloth/Qwen3-0.6B-GGUF:Q4_K_M").map(|r| r.quant),
            Some(Some("Q4_K_M".into()))
        );
        for not_id in [
            "model.gguf",
            "/abs/path",
            "./rel/x",
            "a/b/c",
            "a--b/c",
            "org/",
            "org/na me",
        ] {
            assert_eq!(RepoRef::parse(not_id), None, "{not_id}");
        }
    }

    #[test]
    fn token_precedence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "saved\n").unwrap();
        let mut env = HubEnv {
            hf_home: Some(dir.path().to_path_buf()),
            ..HubEnv::default()
        };
        assert_eq!(
            HubOptions::new(&env, None, None, false).token.as_deref(),
            Some("saved")
        );
        env.hf_token = Some("env".into());
        assert_eq!(
            HubOptions::new(&env, None, None, false).token.as_deref(),
            Some("env")
        );
        let o = HubOptions::new(&env, Some(Path::new("/d")), Some("flag"), false);
        assert_eq!(o.token.as_deref(), Some("flag"));
        assert_eq!(o.cache_dir, PathBuf::from("/d"));
        assert_eq!(o.endpoint, DEFAULT_ENDPOINT);
    }
}
