//! What can go wrong between a repo id and files on disk: one line each, naming the repo and
//! the file, so the user knows what to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{repo}: {file} is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set: download it once without HF_HUB_OFFLINE")]
    NotCachedOffline {
        repo: String,
        file: String,
        cache: PathBuf,
    },
    #[error("{repo}: the Hub refused {file} with 401 Unauthorized: the repo is private or gated, or the token is wrong (pass --hf-token or set HF_TOKEN)")]
    Unauthorized { repo: String, file: String },
    #[error("{repo}: the Hub refused {file} with 403 Forbidden: this token has no access to the repo (gated repos need their terms accepted)")]
    Forbidden { repo: String, file: String },
    #[error("{repo}: {file} not found on the Hub (404): check the repo id{revision_hint}")]
    NotFound {
        repo: String,
        file: String,
        revision_hint: String,
    },
    #[error("{repo}: downloading {file} failed: {msg}")]
    Download {
        repo: String,
        file: String,
        msg: String,
    },
    #[error("{repo}: {file} failed its checksum: sha256 {actual}, the Hub says {expected}; the corrupt copy was removed, start again to download it anew")]
    Checksum {
        repo: String,
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{repo}: {msg}")]
    Files { repo: String, msg: String },
    #[error("{repo}: {msg}")]
    Unsupported { repo: String, msg: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}
