//! `vllm chat`: a conversation with a running server, one message (`-q`) or interactive.

use anyhow::Result;
use serde_json::{json, Value};

use crate::repl::{self, Client, ConnectArgs, Outcome};

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The system prompt of the conversation.
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Send this message, print the answer and exit.
    #[arg(short, long, value_name = "MESSAGE")]
    pub quick: Option<String>,
}

fn piece(v: &Value) -> Option<&str> {
    v["choices"][0]["delta"]["content"].as_str()
}

fn body(client: &Client, messages: &[Value]) -> Value {
    let mut m = client.body();
    m.insert("messages".into(), Value::Array(messages.to_vec()));
    Value::Object(m)
}

pub fn run(args: ChatArgs) -> Result<()> {
    let client = Client::connect(&args.connect)?;
    let mut messages: Vec<Value> = Vec::new();
    if let Some(s) = &args.system_prompt {
        messages.push(json!({"role": "system", "content": s}));
    }
    if let Some(q) = &args.quick {
        messages.push(json!({"role": "user", "content": q}));
        let (_, outcome) = repl::stream_answer(
            &client,
            "/chat/completions",
            body(&client, &messages),
            piece,
            None,
        )?;
        repl::finish_line(&outcome);
        return Ok(());
    }
    eprintln!(
        "Using model {} at {}. Type a message; Ctrl-C stops an answer, Ctrl-D exits.",
        client.model, args.connect.url
    );
    repl::run_loop(|line, stop| {
        messages.push(json!({"role": "user", "content": line}));
        match repl::stream_answer(
            &client,
            "/chat/completions",
            body(&client, &messages),
            piece,
            Some(stop),
        ) {
            Ok((answer, outcome)) => {
                repl::finish_line(&outcome);
                // A stopped answer stays in the conversation as far as it got, as the user saw it.
                if !answer.is_empty() || matches!(outcome, Outcome::Finished) {
                    messages.push(json!({"role": "assistant", "content": answer}));
                } else {
                    messages.pop();
                }
                Ok(())
            }
            Err(e) => {
                // The server never answered this turn: forget it so the next one starts clean.
                messages.pop();
                Err(e)
            }
        }
    })
}
