//! `vllmd` as a library: configuration (shared with the TUI's validator), metrics, the HTTP
//! API and start-up, so that `vllm serve` runs exactly the same server.

pub mod config;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod url;
