//! Files from the Hub through `hf-hub`'s blocking client, which writes them into the cache in
//! `huggingface_hub`'s layout (`blobs/<etag>`, a relative link in `snapshots/<commit>/`,
//! `refs/<revision>`) and resumes a partial `blobs/<etag>.sync.part` with a `Range` request.
//! Added here: the token and endpoint of the options, per-file progress, the sha256 check of
//! LFS files against their ETag (hf-hub does not verify), and errors that name repo and file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

use crate::error::HubError;
use crate::HubOptions;

/// Tries per file after the first: a dropped connection resumes where the blob stopped.
const RETRIES: usize = 3;

/// One repo at one revision on the Hub (or the mirror of `HF_ENDPOINT`).
pub struct Remote {
    repo_id: String,
    revision: String,
    api: ApiRepo,
    progress: bool,
}

fn status_of(e: &ApiError) -> Option<u16> {
    match e {
        ApiError::RequestError(e) => match &**e {
            ureq::Error::Status(code, _) => Some(*code),
            ureq::Error::Transport(_) => None,
        },
        ApiError::TooManyRetries(inner) => status_of(inner),
        _ => None,
    }
}

impl Remote {
    pub fn new(opts: &HubOptions, repo_id: &str, revision: &str) -> Result<Remote, HubError> {
        let api: Api = ApiBuilder::from_cache(Cache::new(opts.cache_dir.clone()))
            .with_endpoint(opts.endpoint.trim_end_matches('/').to_string())
            .with_token(opts.token.clone())
            .with_progress(false)
            .with_retries(RETRIES)
            .build()
            .map_err(|e| HubError::Download {
                repo: repo_id.to_string(),
                file: "(client set-up)".into(),
                msg: e.to_string(),
            })?;
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
        Ok(Remote {
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
            api: api.repo(repo),
            progress: opts.progress,
        })
    }

    fn error(&self, file: &str, e: ApiError) -> HubError {
        let (repo, file) = (self.repo_id.clone(), file.to_string());
        match status_of(&e) {
            Some(401) => HubError::Unauthorized { repo, file },
            Some(403) => HubError::Forbidden { repo, file },
            Some(404) => HubError::NotFound {
                repo,
                file,
                revision_hint: if self.revision == "main" {
                    String::new()
                } else {
                    format!(" and --revision {}", self.revision)
                },
            },
            _ => HubError::Download {
                repo,
                file,
                msg: e.to_string(),
            },
        }
    }

    /// The commit the revision points at and the repo's files (`/api/models/<repo>/revision/<rev>`).
    pub fn list(&self) -> Result<(String, Vec<String>), HubError> {
        let info = self.api.info().map_err(|e| {
            self.error(&format!("the file list of revision `{}`", self.revision), e)
        })?;
        let files = info.siblings.into_iter().map(|s| s.rfilename).collect();
        Ok((info.sha, files))
    }

    /// Downloads `file` into the cache and returns its path in the snapshot.
    pub fn download(&self, file: &str) -> Result<PathBuf, HubError> {
        let bar = FileProgress::new(self.progress, file);
        let path = self
            .api
            .download_with_progress(file, bar)
            .map_err(|e| self.error(file, e))?;
        self.verify(file, &path)?;
        Ok(path)
    }

    /// An LFS file's ETag is the sha256 of its content: check it, and drop a corrupt blob so
    /// the next start downloads it anew.
    fn verify(&self, file: &str, pointer: &Path) -> Result<(), HubError> {
        let blob = std::fs::canonicalize(pointer).map_err(|e| HubError::Io {
            what: "resolving",
            path: pointer.to_path_buf(),
            source: e,
        })?;
        let Some(expected) = blob
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
        else {
            // Small files carry a git blob id (sha1 of a header and the content) instead.
            return Ok(());
        };
        let actual = sha256_file(&blob)?;
        if actual == expected {
            return Ok(());
        }
        let _ = std::fs::remove_file(pointer);
        let _ = std::fs::remove_file(&blob);
        Err(HubError::Checksum {
            repo: self.repo_id.clone(),
            file: file.to_string(),
            expected,
            actual,
        })
    }
}

fn sha256_file(path: &Path) -> Result<String, HubError> {
    let io = |e| HubError::Io {
        what: "reading",
        path: path.to_path_buf(),
        source: e,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// hf-hub's progress callbacks drawn by the shared `progress` crate: a bar per file on a
/// terminal, one log line per file otherwise.
struct FileProgress {
    enabled: bool,
    file: String,
    done: usize,
    bar: Option<progress::Progress>,
}

impl FileProgress {
    fn new(enabled: bool, file: &str) -> FileProgress {
        FileProgress {
            enabled,
            file: file.to_string(),
            done: 0,
            bar: None,
        }
    }
}

impl hf_hub::api::Progress for FileProgress {
    fn init(&mut self, size: usize, _filename: &str) {
        // hf-hub calls `init` again on each resumed try, then reports the bytes already there.
        self.done = 0;
        if self.bar.is_none() {
            let file = self.file.clone();
            self.bar = Some(progress::Progress::with_log(
                &format!("Downloading {}", self.file),
                size,
                self.enabled,
                1,
                move |done, _total, elapsed: Duration| {
                    tracing::info!(
                        "downloaded {file}: {:.1} MiB in {:.1}s",
                        done as f64 / (1 << 20) as f64,
                        elapsed.as_secs_f64()
                    )
                },
            ));
        }
        if let Some(bar) = &self.bar {
            bar.set(0);
        }
    }

    fn update(&mut self, size: usize) {
        self.done += size;
        if let Some(bar) = &self.bar {
            bar.set(self.done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
