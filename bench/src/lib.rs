//! `vllm bench`: the three benchmarks of vLLM with the same flags, defaults and printed fields.
//!
//! - [`latency`]: one batch of random prompts, run again and again through an in-process engine.
//! - [`throughput`]: a dataset of prompts through an in-process engine, all at once.
//! - [`serve`]: an OpenAI-compatible server (ours or any other) driven over HTTP with streamed
//!   requests, measuring TTFT, TPOT, ITL and E2EL on the client side.
//!
//! latency and throughput accept every `vllm serve` flag (model, engine, cache, scheduler) and
//! start the engine through `daemon::serve::build_state`, the very code `vllmd` starts with.

pub mod datasets;
pub mod error;
mod in_process;
pub mod latency;
pub mod report;
pub mod serve;
pub mod stats;
pub mod throughput;

use clap::Subcommand;

pub use error::BenchError;

/// `vllm bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Latency of one batch of requests, engine in-process (`vllm bench latency --help`).
    #[command(disable_help_flag = true)]
    Latency {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Offline throughput over a dataset, engine in-process (`vllm bench throughput --help`).
    #[command(disable_help_flag = true)]
    Throughput {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Online serving benchmark against an OpenAI-compatible server.
    Serve(Box<serve::ServeArgs>),
}

/// Runs one `vllm bench` subcommand, printing its report on stdout.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match cmd {
        BenchCommand::Latency { args } => {
            in_process::init_logging()?;
            latency::run(args, &mut out)
        }
        BenchCommand::Throughput { args } => {
            in_process::init_logging()?;
            throughput::run(args, &mut out)
        }
        BenchCommand::Serve(args) => serve::run(*args, &mut out),
    }
}
