//! The TUI in a real terminal: a real `vllmd` with the default model, `tui_demo` inside tmux,
//! driven by `tmux send-keys` and read with `tmux capture-pane`. Skips (with a reason) when
//! tmux or the model is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .to_path_buf()
}

fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((
        status,
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private tmux server (own socket), so the test never touches a user's sessions.
struct Tmux {
    socket: String,
}
impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }
    fn text(&self, text: &str) {
        self.cmd(&["send-keys", "-t", "tui", "-l", text]);
    }
    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "tui"])
    }
    fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `vllmd` and the `tui_demo` example of this build, or None (with the reason printed) when the
/// test cannot run here.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    if Command::new("tmux").arg("-V").output().is_err() {
        engine::paths::missing_test_dependency("tmux is not installed (apt-get install -y tmux)");
        return None;
    }
    engine::paths::test_model(engine::paths::DEFAULT_MODEL_FILE)?;
    let dir = release_dir();
    let (vllmd, demo) = (dir.join("vllmd"), dir.join("examples/tui_demo"));
    for b in [&vllmd, &demo] {
        assert!(
            b.is_file(),
            "{} not built: run `cargo build --release --workspace --examples` first",
            b.display()
        );
    }
    Some((vllmd, demo))
}

/// The number in a chart title such as `Generation tokens/s: 12.5`.
fn chart_value(screen: &str, title: &str) -> Option<f64> {
    let rest = &screen[screen.find(title)? + title.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn tui_in_tmux_against_real_vllmd() {
    let Some((vllmd, demo)) = binaries() else {
        return;
    };
    let port = free_port();
    let mut daemon = Daemon(
        Command::new(&vllmd)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // The CPU suite: GPU runs belong to scripts/gpu-check.sh.
            .args(["--device", "cpu"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vllmd"),
    );
    let start = Instant::now();
    while !matches!(http(port, "GET", "/health", ""), Ok((200, _))) {
        assert!(
            daemon.0.try_wait().ok().flatten().is_none(),
            "vllmd exited during start-up"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "vllmd not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let work = std::env::temp_dir().join(format!("tui-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("temp dir");
    let w = work.display();
    // The terminal settings before and after the TUI must be identical (raw mode undone).
    let script = format!(
        "stty -g > {w}/before; {} --url http://127.0.0.1:{port}/v1 --interval 0.5; rc=$?; stty -g > {w}/after; echo TUI-EXITED rc=$rc; sleep 600",
        demo.display()
    );
    let tmux = Tmux {
        socket: format!("vllm-tui-test-{}", std::process::id()),
    };
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "120",
        "-y",
        "40",
        &script,
    ]);
    // Hang guards only (tests assert behaviour, not speed): generous for a loaded 2-core box.
    let wait = Duration::from_secs(300);

    tmux.wait_for("the chat screen with the server up", wait, |s| {
        s.contains("F1 Chat") && s.contains("server: up") && s.contains("SmolLM2")
    });

    tmux.text("Say hello in one short sentence.");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("a finished answer with stats", wait, |s| {
        s.contains("tok/s") && s.contains("TTFT")
    });
    assert!(!s.contains("error:"), "{s}");
    let answer: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.contains("model:"))
        .skip(1)
        .take_while(|l| !l.contains("TTFT"))
        .collect();
    assert!(
        answer.iter().any(|l| l
            .trim_matches(|c: char| c == '│' || c.is_whitespace())
            .len()
            > 1),
        "no answer text:\n{s}"
    );

    tmux.keys(&["F2"]);
    tmux.wait_for("the dashboard", wait, |s| {
        s.contains("Generation tokens/s") && s.contains("KV cache")
    });
    let load: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!(
                    r#"{{"prompt": "Count to twenty: {i}", "max_tokens": 48, "ignore_eos": true}}"#
                );
                http(port, "POST", "/v1/completions", &body)
            })
        })
        .collect();
    let dash = tmux.wait_for("non-zero generation throughput", wait, |s| {
        chart_value(s, "Generation tokens/s:").is_some_and(|v| v > 0.0)
    });
    for h in load {
        let (status, body) = h.join().expect("load thread").expect("completion request");
        assert_eq!(status, 200, "{body}");
    }
    // Printed for the README: what the dashboard looks like under load.
    eprintln!("--- dashboard under load ---\n{dash}--- end ---");
    let done = tmux.wait_for("the finished requests", wait, |s| {
        s.contains("length") || s.contains("stop")
    });
    assert!(done.contains("p50"), "{done}");

    tmux.keys(&["3"]);
    tmux.wait_for("the config screen", wait, |s| s.contains("No config file"));
    tmux.keys(&["4"]);
    tmux.wait_for("the server screen", wait, |s| {
        s.contains("UP") && s.contains("SmolLM2") && s.contains("8192")
    });
    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", wait, |s| {
        s.contains("Help") && s.contains("Any key closes")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the help to close", wait, |s| !s.contains("Any key closes"));

    tmux.keys(&["q"]);
    let end = tmux.wait_for("a clean exit", wait, |s| s.contains("TUI-EXITED"));
    assert!(end.contains("TUI-EXITED rc=0"), "{end}");
    assert!(
        !end.contains("F1 Chat"),
        "the alternate screen was not left:\n{end}"
    );
    let before = std::fs::read_to_string(work.join("before")).expect("stty before");
    let after = std::fs::read_to_string(work.join("after")).expect("stty after");
    assert_eq!(before, after, "terminal settings not restored");
    let _ = std::fs::remove_dir_all(&work);
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, made with the openssl command
/// as tests/python/conftest.py does.
fn make_certs(dir: &Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(key);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vllm-rs TUI test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(key);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ],
    );
}

/// The TUI against `vllmd --ssl-keyfile/--ssl-certfile`: without the CA it reports the
/// certificate problem; with `SSL_CERT_FILE=ca.pem` it polls, chats and scrapes over https.
#[test]
fn tui_in_tmux_against_vllmd_over_https() {
    let Some((vllmd, demo)) = binaries() else {
        return;
    };
    if Command::new("openssl").arg("version").output().is_err() {
        engine::paths::missing_test_dependency("the openssl command makes the test certificates");
        return;
    }
    let work = std::env::temp_dir().join(format!("tui-e2e-tls-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("temp dir");
    make_certs(&work);
    let port = free_port();
    let (key, cert) = (work.join("server.key"), work.join("server.pem"));
    let mut daemon = Daemon(
        Command::new(&vllmd)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--ssl-keyfile")
            .arg(&key)
            .arg("--ssl-certfile")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vllmd"),
    );
    let start = Instant::now();
    // Readiness is the TUI's own poll over https below; here only wait for the listener.
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            daemon.0.try_wait().ok().flatten().is_none(),
            "vllmd exited during start-up"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "vllmd not listening"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("https://127.0.0.1:{port}/v1");
    let tmux = Tmux {
        socket: format!("vllm-tui-tls-test-{}", std::process::id()),
    };
    let wait = Duration::from_secs(120);

    // Without the CA: the server is down for the TUI, and the Server screen says why.
    let untrusted = format!(
        "env -u SSL_CERT_FILE {} --url {url} --interval 0.5; echo TUI-EXITED rc=$?; sleep 600",
        demo.display()
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "200",
        "-y",
        "40",
        &untrusted,
    ]);
    tmux.wait_for("the chat screen", wait, |s| s.contains("F1 Chat"));
    tmux.keys(&["F4"]);
    tmux.wait_for("the certificate error on the server screen", wait, |s| {
        s.contains("server: DOWN") && s.contains("certificate")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("a clean exit", wait, |s| s.contains("TUI-EXITED rc=0"));
    tmux.cmd(&["kill-session", "-t", "tui"]);

    let trusted = format!(
        "SSL_CERT_FILE={} {} --url {url} --interval 0.5; echo TUI-EXITED rc=$?; sleep 600",
        work.join("ca.pem").display(),
        demo.display()
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "120",
        "-y",
        "40",
        &trusted,
    ]);
    tmux.wait_for("the chat screen with the server up over https", wait, |s| {
        s.contains("F1 Chat") && s.contains("server: up") && s.contains("SmolLM2")
    });
    tmux.text("Say hello in one short sentence.");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for("a streamed answer with stats", wait, |s| {
        s.contains("tok/s") && s.contains("TTFT")
    });
    assert!(!s.contains("error:"), "{s}");
    // /metrics over https: the finished request shows on the dashboard.
    tmux.keys(&["F2"]);
    tmux.wait_for("the dashboard with the finished request", wait, |s| {
        s.contains("Generation tokens/s") && (s.contains("length") || s.contains("stop"))
    });
    tmux.keys(&["q"]);
    let end = tmux.wait_for("a clean exit", wait, |s| s.contains("TUI-EXITED"));
    assert!(end.contains("TUI-EXITED rc=0"), "{end}");
    let _ = std::fs::remove_dir_all(&work);
}
