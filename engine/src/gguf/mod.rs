//! GGUF v2/v3 reader and dequantization.
//!
//! [`GgufFile::open`] memory-maps a file once and validates all of its structure up front (header,
//! metadata, tensor infos, alignment, and that every tensor's bytes lie inside the file), so the
//! accessors afterwards are infallible slices into the map. Dequantization to `f32` lives in
//! [`dequant`]; it is the load-time hot path, so it works block by block on fixed-size arrays the
//! compiler can vectorise and spreads blocks over rayon's pool.

pub mod dequant;
mod reader;
mod types;

use std::path::PathBuf;

pub use dequant::{block_format, dequantize_into, DequantError};
pub use reader::GgufFile;
pub use types::{GgmlType, MetaValue, TensorInfo};

/// What can be wrong with a GGUF file. Every variant names the file, because the user who pointed
/// the server at a model needs to know which file is broken, not just that one is.
///
/// Anything the file declares that runs past its end (a cut download, but also a corrupt count,
/// length or tensor offset, which look the same from inside the file) is [`GgufError::Truncated`];
/// declared values that are impossible whatever the file length are [`GgufError::Invalid`].
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a GGUF file (starts with {}, expected \"GGUF\")", .path.display(), show_magic(.found))]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{}: unsupported GGUF version {version} (this reader supports versions 2 and 3)", .path.display())]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{}: file is truncated or corrupt: {what} at byte offset {offset} runs past the end of the file", .path.display())]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
    },
    #[error("{}: tensor `{tensor}` has ggml type {} which is not supported here", .path.display(), type_label(*.type_id))]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
    },
    #[error("{}: no tensor named `{tensor}`", .path.display())]
    NoSuchTensor { path: PathBuf, tensor: String },
    #[error("{}: invalid GGUF file: {msg}", .path.display())]
    Invalid { path: PathBuf, msg: String },
}

impl GgufError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            GgufError::Io { path, .. }
            | GgufError::BadMagic { path, .. }
            | GgufError::UnsupportedVersion { path, .. }
            | GgufError::Truncated { path, .. }
            | GgufError::UnsupportedType { path, .. }
            | GgufError::NoSuchTensor { path, .. }
            | GgufError::Invalid { path, .. } => path,
        }
    }
}

fn show_magic(found: &[u8; 4]) -> String {
    format!("\"{}\"", found.escape_ascii())
}

fn type_label(type_id: u32) -> String {
    match GgmlType::from_id(type_id) {
        Some(ty) => format!("{} (id {type_id})", ty.name()),
        None => format!("id {type_id} (unknown to this reader)"),
    }
}
