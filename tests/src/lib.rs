//! Helpers for end-to-end tests: find the built binaries, start a real `vllmd` on a free
//! loopback port, and talk plain HTTP/1.1 to it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of this workspace, built next to the test executable (`target/<profile>/NAME`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> folder");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not built: run `cargo build --release --workspace` first",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (released just before use; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `vllmd` child process, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `vllmd ARGS --port P` and waits until `/health` answers 200. Runs on the CPU
    /// unless ARGS name a `--device`: the tests compare with float32 CPU references, and GPU
    /// runs belong to scripts/gpu-check.sh.
    pub fn start(args: &[&str], timeout: Duration) -> Server {
        let port = free_port();
        let device: &[&str] = if args.contains(&"--device") {
            &[]
        } else {
            &["--device", "cpu"]
        };
        let child = Command::new(binary("vllmd"))
            .args(device)
            .args(args)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vllmd");
        let mut server = Server { child, port };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("vllmd exited during startup: {status}");
            }
            if let Ok((200, _)) = http_get(port, "/health") {
                return server;
            }
            assert!(
                start.elapsed() < timeout,
                "vllmd not ready after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path).expect("HTTP GET")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:port; returns (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
