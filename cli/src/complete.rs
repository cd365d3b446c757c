//! `vllm complete`: text completion against a running server, one prompt (`-q`) or interactive.

use anyhow::Result;
use serde_json::Value;

use crate::repl::{self, Client, ConnectArgs};

#[derive(Debug, clap::Args)]
pub struct CompleteArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Send this prompt, print the completion and exit.
    #[arg(short, long, value_name = "PROMPT")]
    pub quick: Option<String>,
}

fn piece(v: &Value) -> Option<&str> {
    v["choices"][0]["text"].as_str()
}

fn body(client: &Client, prompt: &str) -> Value {
    let mut m = client.body();
    m.insert("prompt".into(), Value::String(prompt.to_string()));
    Value::Object(m)
}

pub fn run(args: CompleteArgs) -> Result<()> {
    let client = Client::connect(&args.connect)?;
    if let Some(prompt) = &args.quick {
        let (_, outcome) =
            repl::stream_answer(&client, "/completions", body(&client, prompt), piece, None)?;
        repl::finish_line(&outcome);
        return Ok(());
    }
    eprintln!(
        "Using model {} at {}. Type a prompt; Ctrl-C stops an answer, Ctrl-D exits.",
        client.model, args.connect.url
    );
    repl::run_loop(|line, stop| {
        let (_, outcome) = repl::stream_answer(
            &client,
            "/completions",
            body(&client, line),
            piece,
            Some(stop),
        )?;
        repl::finish_line(&outcome);
        Ok(())
    })
}
