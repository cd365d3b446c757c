//! Errors of model loading. Every variant names the file it is about, so a user who pointed
//! `--model` at the wrong thing learns which file and what is wrong with it.

use std::path::PathBuf;

use crate::gguf::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(
        "{path}: unsupported architecture `{arch}` (supported: {})",
        crate::config::Architecture::supported_list()
    )]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error("{path}: invalid model config: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor `{name}`: {msg}")]
    Tensor {
        path: PathBuf,
        name: String,
        msg: String,
    },
    #[error("{path}: tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Other { path: PathBuf, msg: String },
    /// `--device` cannot be honoured, or the GPU failed while the model was moved there.
    #[error("{0}")]
    Device(String),
}

impl LoadError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.into(),
            source,
        }
    }
}
