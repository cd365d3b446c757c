//! A small progress bar on stderr, in tqdm's layout (`desc: 40%|####      | 4/10 [00:02<00:03,
//! 1.98it/s]`). Hand-written rather than a crate: it needs one counter shared by async tasks and
//! a throttled redraw, nothing more. Off a terminal it prints a line per tenth instead of
//! redrawing, so logs stay short.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const REDRAW_EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    desc: String,
    total: usize,
    done: AtomicUsize,
    start: Instant,
    enabled: bool,
    tty: bool,
    /// Last redraw time and last tenth printed (off a terminal).
    drawn: Mutex<(Option<Instant>, usize)>,
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

impl Progress {
    pub fn new(desc: &str, total: usize, enabled: bool) -> Progress {
        let p = Progress {
            desc: desc.to_string(),
            total,
            done: AtomicUsize::new(0),
            start: Instant::now(),
            enabled,
            tty: std::io::stderr().is_terminal(),
            drawn: Mutex::new((None, usize::MAX)),
        };
        p.draw(false);
        p
    }

    /// One more item done.
    pub fn inc(&self) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        self.draw(n >= self.total);
    }

    /// The final state on its own line.
    pub fn finish(&self) {
        self.draw(true);
        if self.enabled && self.tty {
            eprintln!();
        }
    }

    fn line(&self, n: usize) -> String {
        let elapsed = self.start.elapsed();
        let frac = if self.total == 0 {
            1.0
        } else {
            (n as f64 / self.total as f64).min(1.0)
        };
        let filled = (frac * WIDTH as f64) as usize;
        let rate = n as f64 / elapsed.as_secs_f64().max(1e-9);
        let eta = if n > 0 && rate > 0.0 {
            clock(Duration::from_secs_f64(
                self.total.saturating_sub(n) as f64 / rate,
            ))
        } else {
            "?".into()
        };
        let desc = if self.desc.is_empty() {
            String::new()
        } else {
            format!("{}: ", self.desc)
        };
        format!(
            "{desc}{:3.0}%|{}{}| {n}/{} [{}<{eta}, {rate:.2}it/s]",
            frac * 100.0,
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.total,
            clock(elapsed)
        )
    }

    fn draw(&self, force: bool) {
        if !self.enabled {
            return;
        }
        let Ok(mut drawn) = self.drawn.lock() else {
            return;
        };
        let n = self.done.load(Ordering::SeqCst);
        let mut err = std::io::stderr();
        if self.tty {
            if !force && drawn.0.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
                return;
            }
            drawn.0 = Some(Instant::now());
            let _ = write!(err, "\r{}", self.line(n));
        } else {
            let tenth = (n * 10).checked_div(self.total).unwrap_or(10);
            if tenth == drawn.1 {
                return;
            }
            drawn.1 = tenth;
            let _ = writeln!(err, "{}", self.line(n));
        }
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tqdm_like_line() {
        let p = Progress::new("Bench iterations", 10, false);
        p.inc();
        p.inc();
        let l = p.line(2);
        assert!(
            l.starts_with("Bench iterations:  20%|######                        | 2/10 [00:00<"),
            "{l}"
        );
        assert!(l.ends_with("it/s]"), "{l}");
    }
}
