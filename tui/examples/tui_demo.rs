//! Runs the TUI on its own, as `vllm tui` will: `tui_demo --url http://127.0.0.1:8000/v1`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: tui::TuiArgs,
}

fn main() -> anyhow::Result<()> {
    tui::run(Cli::parse().args)
}
