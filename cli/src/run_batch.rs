//! `vllm run-batch`: OpenAI batch JSONL in, results out, through an in-process engine and the
//! very request handlers `vllmd` serves with (the axum router, called without a socket), so each
//! output equals what the server would answer. All requests go in at once for continuous batching.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Body;
use axum::http::Request;
use daemon::config::{EnvSettings, ServeConfig};
use daemon::server::state::random_id;
use daemon::server::AppState;
use progress::Progress;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::openai_client::{self, Url};
use crate::output_file;

const HELP: &str = "\
Run a file of OpenAI batch requests (JSONL) through an in-process engine.

Usage: vllm run-batch -i INPUT -o OUTPUT [OPTIONS] [SERVE FLAGS...]

Options:
  -i, --input-file FILE      Input JSONL: a local path or an http(s):// URL (read with GET)
  -o, --output-file FILE     Output JSONL: a local path or an http(s):// URL (written with PUT)
      --output-tmp-dir DIR   Write the output here first, then move or upload it
      --enable-metrics       Serve Prometheus metrics on /metrics while the batch runs
      --url HOST             Address of the metrics server [default: 0.0.0.0]
      --port PORT            Port of the metrics server [default: 8000]
  -h, --help                 Print help

https URLs are checked against the system's CA certificates; SSL_CERT_FILE=ca.pem adds a private CA.
Every `vllm serve` flag (model, engine, sampling defaults) is accepted too: see `vllm serve --help`.
Each input line: {\"custom_id\": ..., \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"/v1/completions\", \"/v1/embeddings\", \"/v1/score\" or \"/v1/rerank\", \"body\": {...}}.
";

/// The URLs vLLM's run-batch takes (the pooling ones need a `--runner pooling` model).
const ENDPOINTS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/score",
    "/v1/score",
    "/rerank",
    "/v1/rerank",
];

#[derive(Debug, Default)]
struct BatchArgs {
    input: Option<String>,
    output: Option<String>,
    tmp_dir: Option<PathBuf>,
    enable_metrics: bool,
    host: Option<String>,
    port: Option<u16>,
    serve_args: Vec<String>,
}

/// Splits our own flags from the `vllm serve` ones; `None` when help was asked for.
fn parse_args(args: Vec<String>) -> Result<Option<BatchArgs>> {
    let mut out = BatchArgs::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "-i" | "--input-file" => out.input = Some(value("--input-file")?),
            "-o" | "--output-file" => out.output = Some(value("--output-file")?),
            "--output-tmp-dir" => out.tmp_dir = Some(PathBuf::from(value("--output-tmp-dir")?)),
            "--enable-metrics" => out.enable_metrics = true,
            "--url" => out.host = Some(value("--url")?),
            "--port" => {
                let v = value("--port")?;
                out.port = Some(
                    v.parse()
                        .map_err(|_| anyhow!("--port: {v:?} is not a port number"))?,
                );
            }
            _ => out.serve_args.push(arg),
        }
    }
    Ok(Some(out))
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn read_input(src: &str) -> Result<String> {
    if is_url(src) {
        let (status, body) = openai_client::request(&Url::parse(src)?, "GET", None, &[])?;
        if status != 200 {
            bail!("GET {src}: {}", openai_client::error_message(status, &body));
        }
        String::from_utf8(body).map_err(|_| anyhow!("{src}: not UTF-8 text"))
    } else {
        std::fs::read_to_string(src).with_context(|| format!("cannot read {src}"))
    }
}

fn write_output(dest: &str, tmp_dir: Option<&Path>, content: &str) -> Result<()> {
    let staged = match tmp_dir {
        Some(dir) => {
            let path = dir.join(format!("{}.jsonl", random_id("vllm-batch-output")));
            std::fs::write(&path, content)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    let result = if is_url(dest) {
        let bytes = match &staged {
            Some(p) => std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            None => content.as_bytes().to_vec(),
        };
        let (status, body) = openai_client::request(&Url::parse(dest)?, "PUT", None, &bytes)?;
        if !(200..300).contains(&status) {
            Err(anyhow!(
                "PUT {dest}: {}",
                openai_client::error_message(status, &body)
            ))
        } else {
            Ok(())
        }
    } else {
        // A rename from the staging directory is atomic when it shares the file system; else
        // (and without staging) the content is written beside the target and renamed over it.
        let moved = staged
            .as_ref()
            .is_some_and(|p| std::fs::rename(p, dest).is_ok());
        if moved {
            Ok(())
        } else {
            output_file::write_atomically(Path::new(dest), content.as_bytes())
                .with_context(|| format!("cannot write the output file {dest}"))
        }
    };
    if let Some(p) = staged {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// One input line, checked: either a request to run or the error to report for it.
enum Line {
    Run {
        custom_id: Value,
        url: String,
        body: Value,
    },
    Invalid {
        custom_id: Value,
        message: String,
    },
}

fn prepare(n: usize, text: &str) -> Line {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Line::Invalid {
                custom_id: Value::Null,
                message: format!("line {n}: invalid JSON: {e}"),
            }
        }
    };
    let custom_id = v.get("custom_id").cloned().unwrap_or(Value::Null);
    let bad = |message: String| Line::Invalid {
        custom_id: custom_id.clone(),
        message: format!("line {n}: {message}"),
    };
    if !custom_id.is_string() {
        return bad("`custom_id` must be a string".into());
    }
    let method = v.get("method").and_then(Value::as_str).unwrap_or("POST");
    if method != "POST" {
        return bad(format!("method {method:?} is not supported (only POST)"));
    }
    let Some(url) = v.get("url").and_then(Value::as_str) else {
        return bad("`url` is missing".into());
    };
    if !ENDPOINTS.contains(&url) {
        return bad(format!(
            "URL {url} is not supported (only {})",
            ENDPOINTS.join(" and ")
        ));
    }
    let Some(body) = v.get("body").filter(|b| b.is_object()) else {
        return bad("`body` must be a JSON object".into());
    };
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return bad("streaming is not supported in batch mode".into());
    }
    Line::Run {
        custom_id,
        url: url.to_string(),
        body: body.clone(),
    }
}

fn output_line(custom_id: Value, status: u16, body: Option<Value>, error: Value) -> Value {
    json!({
        "id": random_id("vllm"),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": random_id("vllm-batch"), "body": body},
        "error": error,
    })
}

async fn run_one(
    app: axum::Router,
    api_key: Option<String>,
    custom_id: Value,
    url: String,
    body: Value,
) -> Value {
    let mut req = Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json");
    if let Some(k) = api_key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match req.body(Body::from(body.to_string())) {
        Ok(r) => r,
        Err(e) => return output_line(custom_id, 400, None, Value::String(e.to_string())),
    };
    let resp = match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let bytes = match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return output_line(
                custom_id,
                500,
                None,
                Value::String(format!("reading the response: {e}")),
            )
        }
    };
    let answer: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    if (200..300).contains(&status) {
        output_line(custom_id, status, Some(answer), Value::Null)
    } else {
        let error = answer.get("error").cloned().unwrap_or(answer);
        output_line(custom_id, status, None, error)
    }
}

async fn serve_metrics(state: Arc<AppState>, addr: String) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding the metrics server on {addr}"))?;
    let poll_state = state.clone();
    tokio::spawn(async move {
        while let Ok(report) = poll_state.engine.stats().await {
            daemon::serve::feed_metrics(&poll_state.metrics, &report);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    state.metrics.render(),
                )
            }
        }),
    );
    tracing::info!("serving metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}

pub fn main(args: Vec<String>) -> Result<()> {
    let Some(args) = parse_args(args)? else {
        print!("{HELP}");
        return Ok(());
    };
    let input = args
        .input
        .as_deref()
        .ok_or_else(|| anyhow!("-i/--input-file is required"))?;
    let output = args
        .output
        .as_deref()
        .ok_or_else(|| anyhow!("-o/--output-file is required"))?;
    let env = EnvSettings::from_env()?;
    let argv = std::iter::once("vllm run-batch".to_string())
        .chain(args.serve_args.iter().cloned())
        .collect();
    let mut cfg = ServeConfig::load(argv, &env).unwrap_or_else(|e| e.exit());
    cfg.disable_log_stats = true;
    // Quiet by default: the progress bar is the output; VLLM_LOGGING_LEVEL still wins.
    let level = std::env::var_os("VLLM_LOGGING_LEVEL")
        .is_none()
        .then_some("warn");
    daemon::logging::init(&env, level);
    let text = read_input(input)?;
    // An output path that cannot be written fails now, not after the whole batch has run.
    if !is_url(output) {
        output_file::check_writable(Path::new(output))
            .with_context(|| format!("cannot write the output file {output}"))?;
    }
    let lines: Vec<Line> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| prepare(i + 1, l))
        .collect();
    let state = daemon::serve::build_state(&cfg, &env)?;
    let app = daemon::server::router(state.clone(), &Default::default());
    let api_key = state.opts.api_keys.first().cloned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(async move {
        if args.enable_metrics {
            let addr = format!(
                "{}:{}",
                args.host.as_deref().unwrap_or("0.0.0.0"),
                args.port.unwrap_or(8000)
            );
            serve_metrics(state.clone(), addr).await?;
        }
        let bar = Arc::new(Progress::new("Running batch", lines.len(), true));
        let tasks: Vec<_> = lines
            .into_iter()
            .map(|line| {
                let (app, key, bar) = (app.clone(), api_key.clone(), bar.clone());
                tokio::spawn(async move {
                    let out = match line {
                        Line::Run {
                            custom_id,
                            url,
                            body,
                        } => run_one(app, key, custom_id, url, body).await,
                        Line::Invalid { custom_id, message } => {
                            output_line(custom_id, 400, None, Value::String(message))
                        }
                    };
                    bar.inc();
                    out
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for t in tasks {
            results.push(t.await.map_err(|e| anyhow!("a request task failed: {e}"))?);
        }
        bar.finish();
        Ok::<_, anyhow::Error>(results)
    })?;
    let failed = results.iter().filter(|r| !r["error"].is_null()).count();
    let mut content = String::new();
    for r in &results {
        content.push_str(&r.to_string());
        content.push('\n');
    }
    write_output(output, args.tmp_dir.as_deref(), &content)?;
    eprintln!(
        "{} requests, {} failed; results in {output}",
        results.len(),
        failed
    );
    // The engine thread holds no state worth a graceful stop; leave without waiting for it.
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_flags_are_taken_and_the_rest_passed_on() {
        let a = parse_args(
            [
                "-i",
                "in.jsonl",
                "--output-file=out.jsonl",
                "--model",
                "m.gguf",
                "--port",
                "9000",
                "--enable-metrics",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.input.as_deref(), Some("in.jsonl"));
        assert_eq!(a.output.as_deref(), Some("out.jsonl"));
        assert_eq!(a.port, Some(9000));
        assert!(a.enable_metrics);
        assert_eq!(a.serve_args, ["--model", "m.gguf"]);
        assert!(parse_args(vec!["--port".into(), "x".into()]).is_err());
        assert!(parse_args(vec!["-i".into()]).is_err());
    }

    #[test]
    fn bad_lines_are_reported_not_run() {
        assert!(matches!(
            prepare(1, "{not json"),
            Line::Invalid {
                custom_id: Value::Null,
                ..
            }
        ));
        let wrong_url = r#"{"custom_id": "a", "method": "POST", "url": "/v1/audio/transcriptions", "body": {}}"#;
        assert!(matches!(prepare(2, wrong_url), Line::Invalid { .. }));
        let ok = r#"{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}"#;
        assert!(matches!(prepare(3, ok), Line::Run { .. }));
    }
}
