//! The Hugging Face cache as `huggingface_hub` lays it out, read without the network:
//! `<cache>/models--org--name/refs/<revision>` holds a commit hash, and
//! `snapshots/<commit>/<file>` links to `blobs/<etag>`. Python tools and vllm-rs share it.

use std::path::{Path, PathBuf};

/// The environment variables of `huggingface_hub` that say where things are, as read once.
#[derive(Debug, Clone, Default)]
pub struct HubEnv {
    pub hf_home: Option<PathBuf>,
    pub hf_hub_cache: Option<PathBuf>,
    pub xdg_cache_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub hf_token: Option<String>,
    pub hf_token_path: Option<PathBuf>,
    pub hf_endpoint: Option<String>,
    pub hf_hub_offline: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `huggingface_hub`'s truthy values of a boolean variable.
pub fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

impl HubEnv {
    pub fn from_process() -> HubEnv {
        HubEnv {
            hf_home: var("HF_HOME").map(PathBuf::from),
            // HUGGINGFACE_HUB_CACHE is the older spelling huggingface_hub still reads.
            hf_hub_cache: var("HF_HUB_CACHE")
                .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
                .map(PathBuf::from),
            xdg_cache_home: var("XDG_CACHE_HOME").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            hf_token: var("HF_TOKEN"),
            hf_token_path: var("HF_TOKEN_PATH").map(PathBuf::from),
            hf_endpoint: var("HF_ENDPOINT"),
            hf_hub_offline: var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
        }
    }

    /// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    pub fn hf_home(&self) -> PathBuf {
        if let Some(h) = &self.hf_home {
            return h.clone();
        }
        let cache = self.xdg_cache_home.clone().unwrap_or_else(|| {
            self.home
                .clone()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache")
        });
        cache.join("huggingface")
    }

    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`.
    pub fn hub_cache(&self) -> PathBuf {
        self.hf_hub_cache
            .clone()
            .unwrap_or_else(|| self.hf_home().join("hub"))
    }

    /// The token saved by `hf auth login` (`HF_TOKEN_PATH`, else `$HF_HOME/token`).
    pub fn saved_token(&self) -> Option<String> {
        let path = self
            .hf_token_path
            .clone()
            .unwrap_or_else(|| self.hf_home().join("token"));
        let text = std::fs::read_to_string(path).ok()?;
        let token = text.trim();
        (!token.is_empty()).then(|| token.to_string())
    }
}

/// `models--org--name`: the folder of a model repo in the cache.
pub fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// Whether `revision` is a full commit hash (then no ref file is needed).
fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One repo at one revision in the cache.
#[derive(Debug, Clone)]
pub struct CachedRepo {
    pub root: PathBuf,
    pub revision: String,
}

impl CachedRepo {
    pub fn new(cache: &Path, repo: &str, revision: &str) -> CachedRepo {
        CachedRepo {
            root: cache.join(repo_folder(repo)),
            revision: revision.to_string(),
        }
    }

    /// The commit the revision points at, when the cache knows it.
    pub fn commit(&self) -> Option<String> {
        if is_commit_hash(&self.revision) {
            return Some(self.revision.clone());
        }
        let text = std::fs::read_to_string(self.root.join("refs").join(&self.revision)).ok()?;
        let commit = text.trim();
        (!commit.is_empty()).then(|| commit.to_string())
    }

    /// `snapshots/<commit>` of the revision, when the cache has it.
    pub fn snapshot(&self) -> Option<PathBuf> {
        let dir = self.root.join("snapshots").join(self.commit()?);
        dir.is_dir().then_some(dir)
    }

    /// The cached copy of `file` at the revision (a link into `blobs`), if complete.
    pub fn file(&self, file: &str) -> Option<PathBuf> {
        let path = self.snapshot()?.join(file);
        // `exists` follows the link: a link to a blob that is gone does not count.
        path.exists().then_some(path)
    }

    /// Every file of the cached snapshot, as repo paths (`a/b.json`), sorted.
    pub fn files(&self) -> Vec<String> {
        let Some(root) = self.snapshot() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.exists() {
                    if let Ok(rel) = path.strip_prefix(&root) {
                        out.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_follows_huggingface_hub_precedence() {
        let mut env = HubEnv {
            home: Some("/h".into()),
            ..HubEnv::default()
        };
        assert_eq!(env.hub_cache(), PathBuf::from("/h/.cache/huggingface/hub"));
        env.xdg_cache_home = Some("/x".into());
        assert_eq!(env.hub_cache(), PathBuf::from("/x/huggingface/hub"));
        env.hf_home = Some("/hf".into());
        assert_eq!(env.hub_cache(), PathBuf::from("/hf/hub"));
        env.hf_hub_cache = Some("/c".into());
        assert_eq!(env.hub_cache(), PathBuf::from("/c"));
    }

    #[test]
    fn offline_values_as_huggingface_hub_reads_them() {
        for v in ["1", "ON", "yes", "True"] {
            assert!(truthy(v), "{v}");
        }
        for v in ["0", "off", "", "no"] {
            assert!(!truthy(v), "{v}");
        }
    }

    #[test]
    fn snapshot_lookup_goes_through_the_ref() {
        let dir = tempfile::tempdir().unwrap();
        let repo = CachedRepo::new(dir.path(), "org/tiny", "main");
        assert_eq!(repo.root, dir.path().join("models--org--tiny"));
        assert!(repo.file("config.json").is_none());
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(repo.root.join("refs")).unwrap();
        std::fs::write(repo.root.join("refs/main"), commit).unwrap();
        let snap = repo.root.join("snapshots").join(commit);
        std::fs::create_dir_all(snap.join("sub")).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::write(snap.join("sub/x.txt"), "x").unwrap();
        assert_eq!(repo.file("config.json"), Some(snap.join("config.json")));
        assert_eq!(repo.files(), vec!["config.json", "sub/x.txt"]);
        // A commit hash as the revision needs no ref.
        let pinned = CachedRepo::new(dir.path(), "org/tiny", commit);
        assert_eq!(pinned.snapshot(), Some(snap));
    }
}
