//! Each screen rendered with ratatui's TestBackend at 80x24 and 200x60, against reviewed
//! snapshots (`tui/tests/snapshots/`). The states are built by feeding the app the same
//! updates the network tasks would send, so the snapshots also pin the state logic.

use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tui::app::{Action, App, Poll, Tab, Update};
use tui::config_check::ConfigState;

fn render(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal.draw(|f| tui::ui::draw(f, app)).expect("draw");
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let row: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn metrics(prompt: f64, gen: f64, running: f64, requests: f64) -> String {
    let b = "engine=\"0\",model_name=\"m\"";
    let mut s = format!(
        "vllm:num_requests_running{{{b}}} {running}\nvllm:num_requests_waiting{{{b}}} 1\nvllm:kv_cache_usage_perc{{{b}}} 0.42\n\
vllm:num_preemptions_total{{{b}}} 2\nvllm:prefix_cache_queries_total{{{b}}} 200\nvllm:prefix_cache_hits_total{{{b}}} 50\n\
vllm:prompt_tokens_total{{{b}}} {prompt}\nvllm:generation_tokens_total{{{b}}} {gen}\n\
vllm:request_success_total{{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"}} {}\n\
vllm:request_success_total{{engine=\"0\",finished_reason=\"length\",model_name=\"m\"}} {}\n",
        requests * 3.0 / 4.0,
        requests / 4.0
    );
    s.push_str("# TYPE vllm:time_to_first_token_seconds histogram\n# TYPE vllm:inter_token_latency_seconds histogram\n# TYPE vllm:e2e_request_latency_seconds histogram\n");
    for (name, scale) in [
        ("time_to_first_token_seconds", 0.1),
        ("inter_token_latency_seconds", 0.01),
        ("e2e_request_latency_seconds", 1.0),
    ] {
        for (le, frac) in [(scale, 0.5), (scale * 2.5, 0.9), (scale * 10.0, 1.0)] {
            s.push_str(&format!(
                "vllm:{name}_bucket{{engine=\"0\",le=\"{le}\",model_name=\"m\"}} {}\n",
                requests * frac
            ));
        }
        s.push_str(&format!(
            "vllm:{name}_bucket{{engine=\"0\",le=\"+Inf\",model_name=\"m\"}} {requests}\n"
        ));
        s.push_str(&format!(
            "vllm:{name}_count{{{b}}} {requests}\nvllm:{name}_sum{{{b}}} {}\n",
            requests * scale
        ));
    }
    s
}

fn poll(t: f64, metrics: Result<String, String>) -> Update {
    let up = metrics.is_ok();
    Update::Poll(Poll {
        t,
        metrics,
        health: if up {
            Ok(200)
        } else {
            Err("connect to 127.0.0.1:8000: Connection refused".into())
        },
        version: up.then(|| "0.1.0".to_string()),
        models: up.then(|| vec![("tiny-llama".to_string(), Some(2048))]),
    })
}

/// 90 s of polls: steady load, an outage (a gap), then a restarted server (counters reset).
fn loaded_app() -> App {
    let mut app = App::new("http://127.0.0.1:8000/v1", 1.0, ConfigState::default());
    for i in 0..=90 {
        let t = i as f64;
        let m = match i {
            0..=50 => Ok(metrics(200.0 * t, 40.0 * t, 4.0, 2.0 * t)),
            51..=60 => Err("connect to 127.0.0.1:8000: Connection refused".to_string()),
            _ => Ok(metrics(
                100.0 * (t - 60.0),
                20.0 * (t - 60.0),
                2.0,
                t - 60.0,
            )),
        };
        app.apply(poll(t, m));
    }
    app
}

fn chat_app() -> App {
    let mut app = loaded_app();
    app.tab = Tab::Chat;
    app.chat.system_prompt = "Be brief.".into();
    for c in "What is vLLM?".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let Action::SendChat { id, body } = app.on_key(key(KeyCode::Enter)) else {
        panic!("no request")
    };
    assert!(
        body.contains("\"stream\":true")
            && body.contains("tiny-llama")
            && body.contains("Be brief."),
        "{body}"
    );
    let words = [
        "vLLM ",
        "is ",
        "a ",
        "fast ",
        "and ",
        "easy-to-use ",
        "library ",
        "for ",
        "LLM ",
        "inference.",
    ];
    for (i, w) in words.iter().enumerate() {
        app.apply(Update::ChatDelta {
            id,
            text: w.to_string(),
            t: 90.25 + 0.05 * i as f64,
        });
    }
    app.apply(Update::ChatDone {
        id,
        completion_tokens: Some(10),
        t: 90.7,
    });
    for c in "And now?".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    let Action::SendChat { id, .. } = app.on_key(key(KeyCode::Enter)) else {
        panic!("no request")
    };
    app.apply(Update::ChatError {
        id,
        error: "HTTP 400: max_tokens is too large".into(),
    });
    for c in "a second line".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    app.on_key(key(KeyCode::Char('x')));
    app
}

fn fixture(kind: &str, name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../daemon/tests/fixtures/config")
        .join(kind)
        .join(name)
}

fn both(name: &str, app: &App) {
    insta::assert_snapshot!(format!("{name}_80x24"), render(app, 80, 24));
    insta::assert_snapshot!(format!("{name}_200x60"), render(app, 200, 60));
}

#[test]
fn chat_screen() {
    let app = chat_app();
    // The answer's stats: TTFT 90.25 - 90.0 (sent at the last poll), 9 tokens after the first
    // in 90.7 - 90.25 s = 20 tok/s.
    let stats = app.chat.messages[1].stats.clone().expect("stats");
    assert!((stats.ttft.expect("ttft") - 0.25).abs() < 1e-9);
    assert!((stats.tokens_per_s.expect("rate") - 20.0).abs() < 1e-9);
    both("chat", &app);
}

#[test]
fn dashboard_screen() {
    let mut app = loaded_app();
    app.tab = Tab::Dashboard;
    // After the restart: 20 tok/s generation, 100 tok/s prompt; the outage left a gap.
    assert_eq!(app.dash.gen_tps.last(), Some(20.0));
    assert_eq!(app.dash.prompt_tps.last(), Some(100.0));
    assert_eq!(app.dash.gen_tps.segments().len(), 2);
    both("dashboard", &app);
}

#[test]
fn dashboard_server_down() {
    let mut app = App::new("http://127.0.0.1:8000/v1", 1.0, ConfigState::default());
    app.tab = Tab::Dashboard;
    for i in 0..5 {
        app.apply(poll(
            i as f64,
            Err("connect to 127.0.0.1:8000: Connection refused".into()),
        ));
    }
    both("dashboard_down", &app);
}

#[test]
fn config_screen_bad_and_good() {
    let mut app = loaded_app();
    app.tab = Tab::Config;
    app.config = ConfigState::load(Some(&fixture("bad", "typo-keys.yaml")));
    app.config.path = Some("typo-keys.yaml".into());
    both("config_bad", &app);
    app.config = ConfigState::load(Some(&fixture("good", "minimal.yaml")));
    app.config.path = Some("minimal.yaml".into());
    both("config_good", &app);
}

#[test]
fn server_screen() {
    let mut app = loaded_app();
    app.tab = Tab::Server;
    both("server", &app);
}

#[test]
fn help_overlay() {
    let mut app = loaded_app();
    app.tab = Tab::Server;
    assert_eq!(app.on_key(key(KeyCode::Char('?'))), Action::None);
    assert!(app.help);
    both("help", &app);
    app.on_key(key(KeyCode::Esc));
    assert!(!app.help);
}

#[test]
fn keys_switch_tabs_and_quit() {
    let mut app = App::new("http://x/v1", 1.0, ConfigState::default());
    assert_eq!(app.tab, Tab::Chat);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.tab, Tab::Dashboard);
    app.on_key(key(KeyCode::Char('4')));
    assert_eq!(app.tab, Tab::Server);
    app.on_key(key(KeyCode::F(1)));
    assert_eq!(app.tab, Tab::Chat);
    // In the chat, q is text, not quit.
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::None);
    assert_eq!(app.chat.input, "q");
    assert_eq!(
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
}

#[test]
fn chat_commands_change_settings() {
    let mut app = App::new("http://x/v1", 1.0, ConfigState::default());
    for cmd in ["/temp 0.2", "/max 64", "/system You are terse."] {
        for c in cmd.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::None);
    }
    assert_eq!(app.chat.temperature, 0.2);
    assert_eq!(app.chat.max_tokens, 64);
    assert_eq!(app.chat.system_prompt, "You are terse.");
    for c in "/temp 9".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.chat.temperature, 0.2);
}

#[test]
fn esc_stops_a_streaming_answer() {
    let mut app = App::new("http://x/v1", 1.0, ConfigState::default());
    app.on_key(key(KeyCode::Char('h')));
    let Action::SendChat { id, .. } = app.on_key(key(KeyCode::Enter)) else {
        panic!("no request")
    };
    app.apply(Update::ChatDelta {
        id,
        text: "Hel".into(),
        t: 0.5,
    });
    assert_eq!(app.on_key(key(KeyCode::Esc)), Action::StopChat);
    assert!(app.chat.streaming.is_none());
    let stats = app.chat.messages[1].stats.clone().expect("stats");
    assert!(stats.stopped);
    assert_eq!(stats.tokens, 1);
    // Late pieces of the stopped answer are ignored.
    app.apply(Update::ChatDelta {
        id,
        text: "lo".into(),
        t: 0.6,
    });
    assert_eq!(app.chat.messages[1].text, "Hel");
}

#[test]
fn reasoning_is_dimmed_and_tool_calls_are_blocks() {
    let mut app = App::new("http://x/v1", 1.0, ConfigState::default());
    app.on_key(key(KeyCode::Char('w')));
    let Action::SendChat { id, .. } = app.on_key(key(KeyCode::Enter)) else {
        panic!("no request")
    };
    app.apply(Update::ChatReasoning {
        id,
        text: "the user wants weather".into(),
    });
    app.apply(Update::ChatToolCall {
        id,
        index: 0,
        name: Some("get_weather".into()),
        arguments: String::new(),
    });
    app.apply(Update::ChatToolCall {
        id,
        index: 0,
        name: None,
        arguments: "{\"city\":\"Paris\"}".into(),
    });
    let m = &app.chat.messages[1];
    assert_eq!(m.reasoning, "the user wants weather");
    assert_eq!(
        m.tool_calls,
        vec![(
            "get_weather".to_string(),
            "{\"city\":\"Paris\"}".to_string()
        )]
    );
    // Reasoning and calls are not the answer's text (it is what the conversation keeps).
    assert_eq!(m.text, "");
    let screen = render(&app, 80, 24);
    assert!(screen.contains("the user wants weather"), "{screen}");
    assert!(screen.contains("┌ tool call: get_weather"), "{screen}");
    assert!(screen.contains("│ {\"city\":\"Paris\"}"), "{screen}");
}
