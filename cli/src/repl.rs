//! What `vllm chat` and `vllm complete` share: the connection flags, streaming an answer to the
//! terminal (stoppable with Ctrl-C), and the line-editing loop.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use rustyline::error::ReadlineError;
use serde_json::Value;

use crate::openai_client::{self, Event, EventStream, Next, Url};

/// The flags of `vllm chat` and `vllm complete` that say where the server is and how to sample.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// URL of the running OpenAI-compatible API server (http:// or https://), with or without the
    /// final /v1. For an https server
    /// whose certificate comes from a private CA, point SSL_CERT_FILE at that CA's PEM file.
    #[arg(long, default_value = "http://localhost:8000/v1")]
    pub url: String,
    /// Model name used in prompt completion (default: the first model the server lists).
    #[arg(long)]
    pub model_name: Option<String>,
    /// API key for OpenAI services (default: $OPENAI_API_KEY).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Sampling temperature (default: the server's).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Most tokens per answer (default: the server's).
    #[arg(long)]
    pub max_tokens: Option<u64>,
}

/// A resolved connection: base URL, key and model.
pub struct Client {
    pub base: Url,
    pub api_key: Option<String>,
    pub model: String,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u64>,
}

impl Client {
    pub fn connect(args: &ConnectArgs) -> Result<Client> {
        let base = Url::parse(&daemon::url::api_base(&args.url))?;
        let api_key = args
            .api_key
            .clone()
            .or_else(|| std::env::var("OPENAI_API_KEY").ok())
            .filter(|k| !k.is_empty());
        let model = match &args.model_name {
            Some(m) => m.clone(),
            None => openai_client::first_model(&base, api_key.as_deref())?,
        };
        Ok(Client {
            base,
            api_key,
            model,
            temperature: args.temperature,
            max_tokens: args.max_tokens,
        })
    }

    /// The request body's common part.
    pub fn body(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("model".into(), Value::String(self.model.clone()));
        m.insert("stream".into(), Value::Bool(true));
        if let Some(t) = self.temperature {
            m.insert("temperature".into(), t.into());
        }
        if let Some(n) = self.max_tokens {
            m.insert("max_tokens".into(), n.into());
        }
        m
    }
}

/// How an answer ended.
pub enum Outcome {
    Finished,
    Interrupted,
}

/// Streams the answer of `path` for `body` to stdout; returns the text printed.
/// `piece` takes the text out of one event. `stop` is set by Ctrl-C (interactive mode only).
pub fn stream_answer(
    client: &Client,
    path: &str,
    body: Value,
    piece: fn(&Value) -> Option<&str>,
    stop: Option<&AtomicBool>,
) -> Result<(String, Outcome)> {
    let stream = EventStream::open(&client.base.join(path), client.api_key.as_deref(), &body)?;
    let mut text = String::new();
    let mut out = std::io::stdout();
    loop {
        if stop.is_some_and(|s| s.swap(false, Ordering::SeqCst)) {
            return Ok((text, Outcome::Interrupted));
        }
        match stream.next(Duration::from_millis(50)) {
            Next::Event(Event::Data(v)) => {
                // Reasoning (`--reasoning-parser`) and tool calls are shown but are not part of
                // the answer the conversation keeps.
                let extra = side_channels(&v["choices"][0]["delta"], out.is_terminal());
                if !extra.is_empty() {
                    let _ = out.write_all(extra.as_bytes());
                }
                if let Some(p) = piece(&v) {
                    text.push_str(p);
                    let _ = out.write_all(p.as_bytes());
                }
                let _ = out.flush();
            }
            Next::Event(Event::Done) | Next::Closed => return Ok((text, Outcome::Finished)),
            Next::Error(e) => bail!("{e}"),
            Next::Pending => {}
        }
    }
}

/// A chat delta's reasoning (dimmed on a terminal) and tool calls (`[tool call] name` then the
/// arguments as they stream), as text to print.
fn side_channels(delta: &Value, terminal: bool) -> String {
    let mut s = String::new();
    if let Some(r) = delta["reasoning_content"]
        .as_str()
        .filter(|r| !r.is_empty())
    {
        if terminal {
            s.push_str(&format!("\x1b[2m{r}\x1b[0m"));
        } else {
            s.push_str(r);
        }
    }
    for call in delta["tool_calls"].as_array().into_iter().flatten() {
        if let Some(name) = call["function"]["name"].as_str() {
            s.push_str(&format!("\n[tool call] {name} "));
        }
        if let Some(args) = call["function"]["arguments"].as_str() {
            s.push_str(args);
        }
    }
    s
}

/// Runs `turn` for each line the user types until Ctrl-D. Ctrl-C during an answer stops that
/// answer only; at the prompt it clears the line.
pub fn run_loop(mut turn: impl FnMut(&str, &AtomicBool) -> Result<()>) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut editor = rustyline::DefaultEditor::new()?;
    // While an answer streams the terminal is in cooked mode and Ctrl-C arrives as SIGINT:
    // catch it instead of dying (rustyline reads it as a key while editing). Registered after
    // the editor, which installs its own SIGINT handler for its lifetime; ours chains to it.
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    loop {
        match editor.readline("> ") {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                stop.store(false, Ordering::SeqCst);
                if let Err(e) = turn(&line, &stop) {
                    eprintln!("error: {e:#}");
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => bail!("reading input: {e}"),
        }
    }
}

/// Ends an answer on the terminal, noting an interruption.
pub fn finish_line(outcome: &Outcome) {
    match outcome {
        Outcome::Finished => println!(),
        Outcome::Interrupted => println!("\n[stopped]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasoning_and_tool_calls_are_shown_beside_the_answer() {
        assert_eq!(side_channels(&json!({"content": "x"}), true), "");
        assert_eq!(
            side_channels(&json!({"reasoning_content": "hm"}), false),
            "hm"
        );
        assert_eq!(
            side_channels(&json!({"reasoning_content": "hm"}), true),
            "\x1b[2mhm\x1b[0m"
        );
        let start = json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}}]});
        let args = json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]});
        assert_eq!(
            side_channels(&start, false) + &side_channels(&args, false),
            "\n[tool call] f {\"a\":1}"
        );
    }
}
