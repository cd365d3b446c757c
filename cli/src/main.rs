//! `vllm`: the companion CLI. Each subcommand lives in its own module; this file only dispatches.

mod chat;
mod complete;
mod openai_client;
mod output_file;
mod repl;
mod run_batch;

use clap::{Parser, Subcommand};
use daemon::config::{EnvSettings, ServeConfig};

#[derive(Parser)]
#[command(
    name = "vllm",
    version,
    disable_version_flag = true,
    about = "vllm-rs command line: serve models, chat with them, run batches",
    max_term_width = 110
)]
struct Cli {
    /// Print the version (as vLLM's `vllm -v`).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    _version: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the OpenAI-compatible API server (exactly `vllmd`; `vllm serve --help` lists the flags).
    #[command(disable_help_flag = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Chat with a running API server.
    Chat(chat::ChatArgs),
    /// Complete text with a running API server.
    Complete(complete::CompleteArgs),
    /// Run a file of OpenAI batch requests through an in-process engine (`vllm run-batch --help`).
    #[command(disable_help_flag = true)]
    RunBatch {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Terminal UI next to a running server: chat, live metrics dashboard, config check.
    Tui(tui::TuiArgs),
    /// Benchmarks with vLLM's flags and printed fields: latency, throughput, serve.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the system, build, GPU and environment details to paste into a bug report.
    CollectEnv {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a `--config` YAML file with vllmd's own schema: exit 0 when valid, 1 otherwise.
    Validate {
        /// The YAML file.
        file: std::path::PathBuf,
    },
}

fn env_settings() -> EnvSettings {
    EnvSettings::from_env().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    })
}

fn serve(args: Vec<String>) -> ! {
    let env = env_settings();
    let argv = std::iter::once("vllm serve".to_string())
        .chain(args)
        .collect();
    let cfg = ServeConfig::load(argv, &env).unwrap_or_else(|e| e.exit());
    if let Err(e) = cfg.check_supported() {
        e.exit();
    }
    daemon::logging::init_server(&env, &cfg);
    if let Err(e) = daemon::serve::run(cfg, env) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    std::process::exit(0)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { args } => serve(args),
        Command::Chat(a) => chat::run(a),
        Command::Complete(a) => complete::run(a),
        Command::RunBatch { args } => run_batch::main(args),
        Command::Tui(a) => tui::run(a),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Config(ConfigCommand::Validate { file }) => {
            std::process::exit(tui::validate_config_file(&file))
        }
        Command::CollectEnv { json } => {
            let r = collect_env::report();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r.to_json()).unwrap_or_default()
                );
            } else {
                print!("{}", r.to_text());
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
