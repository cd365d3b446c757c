//! Fuzzing on stable Rust: a fuzz target per parser of hostile input, seed corpora built from
//! the repository's fixtures and the real models, and a seeded mutation driver that runs every
//! target for a bounded time as an ordinary `cargo test` (`fuzz/tests/fuzz_targets.rs`), and
//! for longer through `scripts/fuzz.sh TARGET SECONDS`.
//!
//! The property of every target: for any input it returns (an error is fine); it never
//! panics, never runs past the per-input timeout, and never makes one allocation above
//! [`alloc::ALLOCATION_CAP`].

pub mod alloc;
pub mod driver;
pub mod gguf_writer;
pub mod mutate;
pub mod seeds;
pub mod targets;

pub use driver::{InputKind, Report, Settings, Target};
