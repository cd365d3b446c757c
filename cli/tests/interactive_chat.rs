//! Interactive `vllm chat` driven through tmux as a user would: two turns, Ctrl-C during an
//! answer keeps the session, Ctrl-D leaves. Skipped (with a note) where tmux is not installed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{binary, default_model_present, Server};

struct Tmux {
    session: String,
}

impl Tmux {
    fn run(args: &[&str]) -> String {
        let out = Command::new("tmux").args(args).output().expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        Self::run(&[&["send-keys", "-t", self.session.as_str()][..], keys].concat());
    }

    fn pane(&self) -> String {
        Self::run(&[
            "capture-pane",
            "-p",
            "-J",
            "-S",
            "-200",
            "-t",
            &self.session,
        ])
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.session])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Waits until `cond` holds for the pane text; panics with the pane after `secs` (a hang
    /// guard, never a speed requirement: see [`HANG_GUARD_S`]).
    fn wait_for(&self, what: &str, secs: u64, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let p = self.pane();
            if cond(&p) {
                return p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; pane:\n{p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .output();
    }
}

fn prompts(pane: &str) -> usize {
    pane.lines().filter(|l| l.starts_with("> ")).count()
}

/// The pane's lines up to the last one, which is the (empty) prompt waiting for input.
fn is_waiting(pane: &str) -> bool {
    pane.trim_end()
        .lines()
        .last()
        .is_some_and(|l| l.trim_end() == ">")
}

/// How long any step may take before the test calls it hung: far beyond a slow, shared 2-core
/// machine, because tests assert behaviour, not speed.
const HANG_GUARD_S: u64 = 300;

#[test]
fn two_turns_and_ctrl_c_keeps_the_session() {
    if !default_model_present() {
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        engine::paths::missing_test_dependency("tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let server = Server::start();
    let session = format!("vllm-chat-test-{}", std::process::id());
    let cmd = format!(
        "{} chat --url {} --temperature 0 --max-tokens 300",
        binary("vllm").display(),
        server.url()
    );
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "200",
            "-y",
            "60",
            &cmd,
        ])
        .status()
        .expect("tmux new-session");
    assert!(status.success());
    let t = Tmux { session };
    t.wait_for("the first prompt", HANG_GUARD_S, |p| {
        p.contains("Using model") && is_waiting(p)
    });

    t.keys(&["Hello! What is your name?", "Enter"]);
    let after_first = t.wait_for("the first answer", HANG_GUARD_S, |p| {
        prompts(p) >= 2 && is_waiting(p)
    });
    t.keys(&["And what is 2 plus 2?", "Enter"]);
    let after_second = t.wait_for("the second answer", HANG_GUARD_S, |p| {
        prompts(p) >= 3 && is_waiting(p)
    });
    let second_answer: String = after_second
        .lines()
        .skip_while(|l| !l.contains("2 plus 2"))
        .skip(1)
        .filter(|l| !l.starts_with('>'))
        .collect();
    assert!(
        !second_answer.trim().is_empty(),
        "no second answer:\n{after_second}\n(first: {after_first})"
    );

    // A long answer, stopped after it started.
    t.keys(&[
        "Write a very long story about a dragon, with many chapters.",
        "Enter",
    ]);
    t.wait_for("the story to start", HANG_GUARD_S, |p| {
        p.lines()
            .skip_while(|l| !l.contains("dragon"))
            .nth(1)
            .is_some_and(|l| !l.trim().is_empty())
    });
    t.keys(&["C-c"]);
    let stopped = t.wait_for("the answer to stop", HANG_GUARD_S, |p| {
        p.contains("[stopped]") && is_waiting(p)
    });
    assert!(t.alive(), "Ctrl-C ended the session:\n{stopped}");

    // Still a working session after the interruption.
    let before = prompts(&stopped);
    t.keys(&["Thanks!", "Enter"]);
    t.wait_for("an answer after Ctrl-C", HANG_GUARD_S, |p| {
        prompts(p) > before && is_waiting(p)
    });

    t.keys(&["C-d"]);
    // Only a guard against a hang (a session that never exits), not a speed requirement.
    let start = Instant::now();
    while t.alive() {
        assert!(
            start.elapsed() < Duration::from_secs(HANG_GUARD_S),
            "Ctrl-D did not exit:\n{}",
            t.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
