//! `vllm run-batch`: 50 lines with 3 bad ones give 50 results in order, the good ones equal to
//! what `vllmd` answers; input and output over HTTP work too.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{binary, default_model_present, Server};
use serde_json::{json, Value};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const BAD: [usize; 3] = [7, 23, 41];

fn input_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i {
            7 => "{\"custom_id\": \"req-7\", not json".to_string(),
            23 => json!({"custom_id": "req-23", "method": "POST", "url": "/v1/embeddings", "body": {"model": MODEL, "input": "x"}}).to_string(),
            41 => json!({"custom_id": "req-41", "method": "POST", "url": "/v1/completions", "body": {"model": MODEL, "prompt": "x", "max_tokens": -1}}).to_string(),
            i if i % 2 == 0 => json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/completions",
                "body": {"model": MODEL, "prompt": format!("Item number {i} in the list is"), "temperature": 0, "max_tokens": 8}})
            .to_string(),
            i => json!({"custom_id": format!("req-{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": MODEL, "messages": [{"role": "user", "content": format!("Say the number {i}.")}], "temperature": 0, "max_tokens": 8}})
            .to_string(),
        })
        .collect()
}

fn run_batch(args: &[&str]) -> String {
    let out = Command::new(binary("vllm"))
        .arg("run-batch")
        .args(args)
        .output()
        .expect("run vllm run-batch");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn text_of(body: &Value) -> Option<&str> {
    body["choices"][0]["text"]
        .as_str()
        .or_else(|| body["choices"][0]["message"]["content"].as_str())
}

#[test]
fn fifty_lines_three_bad() {
    if !default_model_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let lines = input_lines(50);
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    run_batch(&[
        "-i",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--output-tmp-dir",
        tmp.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_dir(&tmp).expect("tmp dir").count(),
        0,
        "the staged output is moved away"
    );

    let results: Vec<Value> = std::fs::read_to_string(&output)
        .expect("output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(results.len(), 50);
    let server = Server::start();
    for (i, r) in results.iter().enumerate() {
        assert!(
            r["id"].as_str().is_some_and(|id| id.starts_with("vllm-")),
            "{r}"
        );
        if BAD.contains(&i) {
            assert!(!r["error"].is_null(), "line {i} should fail: {r}");
            assert!(r["response"]["body"].is_null());
            assert!(
                r["response"]["status_code"]
                    .as_u64()
                    .is_some_and(|c| c >= 400),
                "{r}"
            );
            if i != 7 {
                assert_eq!(r["custom_id"], format!("req-{i}"));
            }
            continue;
        }
        assert_eq!(r["custom_id"], format!("req-{i}"), "order kept");
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["response"]["status_code"], 200);
        let line: Value = serde_json::from_str(&lines[i]).expect("input line");
        let direct = server.post_json(line["url"].as_str().unwrap(), &line["body"]);
        let got = &r["response"]["body"];
        assert_eq!(text_of(got), text_of(&direct), "line {i}");
        assert!(text_of(got).is_some());
        assert_eq!(got["usage"], direct["usage"], "line {i}");
        assert_eq!(got["object"], direct["object"]);
    }
}

/// A one-file HTTP server: GET returns `content`, PUT stores into `put`.
fn file_server(content: String, put: Arc<Mutex<Option<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut length = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = if first.starts_with("GET") {
                content.clone()
            } else {
                *put.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
                String::new()
            };
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    port
}

#[test]
fn input_and_output_over_http() {
    if !default_model_present() {
        return;
    }
    let lines = input_lines(5);
    let put = Arc::new(Mutex::new(None));
    let port = file_server(lines.join("\n"), put.clone());
    run_batch(&[
        "-i",
        &format!("http://127.0.0.1:{port}/batch.jsonl"),
        "-o",
        &format!("http://127.0.0.1:{port}/results.jsonl"),
    ]);
    let uploaded = put
        .lock()
        .unwrap()
        .clone()
        .expect("output uploaded with PUT");
    let results: Vec<Value> = uploaded
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(results.len(), 5);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["custom_id"], format!("req-{i}"));
        assert!(r["error"].is_null(), "{r}");
        assert!(text_of(&r["response"]["body"]).is_some());
    }
}

#[test]
fn missing_input_is_one_line() {
    let out = Command::new(binary("vllm"))
        .args([
            "run-batch",
            "-i",
            "/nonexistent/in.jsonl",
            "-o",
            "/tmp/x.jsonl",
        ])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/in.jsonl"), "{err}");
}
