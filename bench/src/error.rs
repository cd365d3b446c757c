//! Errors of the benchmark library (the command entry points wrap them with anyhow).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Dataset { path: PathBuf, message: String },
    #[error(transparent)]
    Tokenizer(#[from] engine::tokenizer::TokenizerError),
    #[error("chat template: {0}")]
    ChatTemplate(#[from] engine::tokenizer::ChatTemplateError),
    #[error("cannot load a tokenizer from {path}: {message} (pass --tokenizer: a GGUF file, a tokenizer.json or a folder holding one)")]
    TokenizerLoad { path: PathBuf, message: String },
    #[error("{0}")]
    Http(String),
    /// Starting or running the in-process engine failed.
    #[error("{0}")]
    Engine(String),
}

impl BenchError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }
}
