//! `vllm complete -q` / `vllm chat -q` print what the API answers; a dead server is one line.

mod common;

use std::process::Command;

use common::{binary, default_model_present, Server};
use serde_json::json;

fn run_vllm(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("vllm"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run vllm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn quick_answers_equal_the_api() {
    if !default_model_present() {
        return;
    }
    let server = Server::start();
    let url = server.url();
    let prompt = "The capital of France is";
    let flags = [
        "--url",
        url.as_str(),
        "--temperature",
        "0",
        "--max-tokens",
        "16",
    ];

    let (code, out, err) = run_vllm(&[&["complete", "-q", prompt][..], &flags].concat());
    assert_eq!(code, 0, "{err}");
    let api = server.post_json("/v1/completions", &json!({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "prompt": prompt, "temperature": 0, "max_tokens": 16}));
    let expected = api["choices"][0]["text"].as_str().expect("text");
    assert!(!expected.is_empty());
    assert_eq!(out, format!("{expected}\n"));
    // The server's root URL, with or without a trailing slash, is the same server.
    let root = url.trim_end_matches("/v1").to_string();
    for u in [root.clone(), format!("{root}/"), format!("{url}/")] {
        let (code, same, err) = run_vllm(&[
            "complete",
            "-q",
            prompt,
            "--url",
            &u,
            "--temperature",
            "0",
            "--max-tokens",
            "16",
        ]);
        assert_eq!((code, same.as_str()), (0, out.as_str()), "--url {u}: {err}");
    }

    let question = "What is the capital of France?";
    let (code, out, err) = run_vllm(&[&["chat", "--quick", question][..], &flags].concat());
    assert_eq!(code, 0, "{err}");
    let api = server.post_json(
        "/v1/chat/completions",
        &json!({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 16}),
    );
    let expected = api["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(!expected.is_empty());
    assert_eq!(out, format!("{expected}\n"));

    // A system prompt reaches the server as the first message: the answer is exactly the API's
    // answer to [system, user], and that answer differs from the one without it (the template's
    // default system message), so a dropped system prompt cannot pass.
    let system = "Answer in French.";
    let (code, out, err) =
        run_vllm(&[&["chat", "-q", "Hi", "--system-prompt", system][..], &flags].concat());
    assert_eq!(code, 0, "{err}");
    let answer = |messages: serde_json::Value| {
        let api = server.post_json(
            "/v1/chat/completions",
            &json!({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "messages": messages, "temperature": 0, "max_tokens": 16}),
        );
        api["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
            .to_string()
    };
    let with_system =
        answer(json!([{"role": "system", "content": system}, {"role": "user", "content": "Hi"}]));
    let without = answer(json!([{"role": "user", "content": "Hi"}]));
    assert_ne!(
        with_system, without,
        "the system prompt must change this answer"
    );
    assert_eq!(out, format!("{with_system}\n"));

    // An unknown model is the server's error, in one line.
    let (code, _, err) = run_vllm(&["complete", "-q", "x", "--url", &url, "--model-name", "nope"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn version_flags_print_the_version() {
    for flag in ["-v", "--version"] {
        let (code, out, err) = run_vllm(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert_eq!(
            out.trim(),
            format!("vllm {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

#[test]
fn unreachable_server_is_one_line_and_nonzero() {
    let port = common::free_port();
    for cmd in ["chat", "complete"] {
        let (code, out, err) = run_vllm(&[
            cmd,
            "-q",
            "hello",
            "--url",
            &format!("http://127.0.0.1:{port}/v1"),
        ]);
        assert_ne!(code, 0);
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains("cannot connect"),
            "{err}"
        );
        assert!(!err.contains("panicked"));
    }
    let (code, _, err) = run_vllm(&["chat", "-q", "x", "--url", "not a url"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
