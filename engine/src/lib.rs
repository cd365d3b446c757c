//! The vllm-rs inference engine.
//!
//! Data flows one way: a model is loaded (`loader`) from a GGUF file (`gguf`) or a Hugging Face
//! folder into a `model::CausalLm` plus a `tokenizer::Tokenizer`; the forward pass reads and
//! writes a block-structured KV store (`kv_cache`) through per-sequence block tables, so the
//! paged cache and scheduler drive the same model code.

pub mod actor;
pub mod config;
pub mod detokenizer;
pub mod device;
pub mod error;
pub mod gguf;
pub mod kv_cache;
pub mod llm_engine;
pub mod loader;
pub mod model;
pub mod offline;
pub mod paths;
pub mod pooling;
pub mod request;
pub mod sampling;
pub mod scheduler;
pub mod stats;
pub mod structured;
mod supported;
pub mod tokenizer;

pub use config::{Architecture, ModelConfig, RopeScaling};
pub use error::LoadError;
