//! The progress display shared by model loading, `vllm bench` and `vllm run-batch`: an
//! `indicatif` bar in tqdm's layout when stderr is a terminal (`desc:  40%|####    | 4/10
//! [00:00:02<00:00:03, 1.98it/s]`), and off a terminal a plain line every few steps, so logs and
//! CI output stay short and readable instead of filling with redraws.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// tqdm's layout, which vLLM users know from `vllm bench`.
const TEMPLATE: &str =
    "{prefix}{percent:>3}%|{bar:30}| {pos}/{len} [{elapsed_precise}<{eta_precise}, {rate}]";
/// How often a plain line is written off a terminal, unless the caller says otherwise.
pub const DEFAULT_LOG_STEPS: usize = 10;

/// Receives `(done, total, elapsed)` for each plain line.
type Sink = Box<dyn Fn(usize, usize, Duration) + Send + Sync>;

struct Plain {
    steps: usize,
    /// The last step a line was written for.
    last: Mutex<Option<usize>>,
    sink: Sink,
}

/// One counted task. Shared by reference (or `Arc`) between the threads or tasks that advance it.
pub struct Progress {
    bar: ProgressBar,
    total: usize,
    start: Instant,
    plain: Option<Plain>,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("## ")
        // indicatif's `{per_sec}` shows four decimals and thousands separators; tqdm shows two.
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.2}it/s", s.per_sec());
        })
}

/// The plain line of `Progress::new`: `desc: 4/10 (40%) [2.0s, 1.98/s]`.
pub fn plain_line(desc: &str, done: usize, total: usize, elapsed: Duration) -> String {
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let desc = if desc.is_empty() { "progress" } else { desc };
    format!(
        "{desc}: {done}/{total} ({pct}%) [{:.1}s, {rate:.2}/s]",
        elapsed.as_secs_f64()
    )
}

impl Progress {
    /// A bar on stderr when it is a terminal, else a line on stderr every tenth of the way.
    /// Nothing at all when `enabled` is false (`--disable-tqdm`).
    pub fn new(desc: &str, total: usize, enabled: bool) -> Progress {
        let owned = desc.to_string();
        Progress::with_log(desc, total, enabled, DEFAULT_LOG_STEPS, move |d, t, e| {
            eprintln!("{}", plain_line(&owned, d, t, e))
        })
    }

    /// As [`Progress::new`], with the off-terminal lines handed to `log` `steps` times over the
    /// whole run (model loading sends them to the tracing log instead of bare stderr).
    pub fn with_log(
        desc: &str,
        total: usize,
        enabled: bool,
        steps: usize,
        log: impl Fn(usize, usize, Duration) + Send + Sync + 'static,
    ) -> Progress {
        let on_terminal = std::io::stderr().is_terminal();
        Progress::build(desc, total, enabled, on_terminal, steps, Box::new(log))
    }

    fn build(
        desc: &str,
        total: usize,
        enabled: bool,
        on_terminal: bool,
        steps: usize,
        sink: Sink,
    ) -> Progress {
        let bar = if enabled && on_terminal {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
        } else {
            // Still counts, so `done()` is right; it draws nothing.
            ProgressBar::hidden()
        };
        bar.set_length(total as u64);
        bar.set_style(style());
        if !desc.is_empty() {
            bar.set_prefix(format!("{desc}: "));
        }
        let plain = (enabled && !on_terminal).then(|| Plain {
            steps: steps.max(1),
            last: Mutex::new(None),
            sink,
        });
        Progress {
            bar,
            total,
            start: Instant::now(),
            plain,
        }
    }

    /// How many items are done.
    pub fn done(&self) -> usize {
        self.bar.position() as usize
    }

    /// One more item done.
    pub fn inc(&self) {
        self.bar.inc(1);
        self.log(false);
    }

    /// `done` items done (for callers that report a count, as the model loader does).
    pub fn set(&self, done: usize) {
        self.bar.set_position(done as u64);
        self.log(false);
    }

    /// Leaves the final state on screen, or writes the final line if it was not written yet.
    pub fn finish(&self) {
        if !self.bar.is_hidden() {
            // `finish` would jump to the total; a run cut short must show where it stopped.
            self.bar.abandon();
        }
        self.log(true);
    }

    fn log(&self, finished: bool) {
        let Some(plain) = &self.plain else {
            return;
        };
        let done = self.done();
        let step = if finished {
            plain.steps
        } else {
            (done * plain.steps)
                .checked_div(self.total)
                .unwrap_or(plain.steps)
                .min(plain.steps)
        };
        // A poisoned lock only means another thread panicked mid-log; skipping a line is fine.
        let Ok(mut last) = plain.last.lock() else {
            return;
        };
        // Threads race between counting and logging: never go back to an earlier step.
        if last.is_some_and(|l| step <= l) || (step == 0 && !finished) {
            return;
        }
        *last = Some(step);
        (plain.sink)(done, self.total, self.start.elapsed());
    }
}

/// A `(done, total)` callback, the shape in which the model loader reports layers: the first
/// call creates the bar (only then is the total known) and the call at the total finishes it.
pub fn for_counts(
    desc: &str,
    enabled: bool,
    steps: usize,
    log: impl Fn(usize, usize, Duration) + Send + Sync + 'static,
) -> impl Fn(usize, usize) {
    let desc = desc.to_string();
    let log = Arc::new(log);
    let bar: OnceLock<Progress> = OnceLock::new();
    move |done, total| {
        let p = bar.get_or_init(|| {
            let log = log.clone();
            Progress::with_log(&desc, total, enabled, steps, move |d, t, e| log(d, t, e))
        });
        p.set(done);
        if done >= total {
            p.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `(done, total)` of each plain line written.
    type Lines = Arc<Mutex<Vec<(usize, usize)>>>;

    fn captured(total: usize, enabled: bool, on_terminal: bool, steps: usize) -> (Progress, Lines) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink_lines = lines.clone();
        let p = Progress::build(
            "Test",
            total,
            enabled,
            on_terminal,
            steps,
            Box::new(move |d, t, _| sink_lines.lock().unwrap().push((d, t))),
        );
        (p, lines)
    }

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn on_a_terminal_the_bar_has_tqdms_layout() {
        let (p, lines) = captured(4, true, true, 4);
        let screen = Screen::default();
        p.bar
            .set_draw_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        p.inc();
        p.inc();
        p.finish();
        let text = screen.0.lock().unwrap().clone();
        // Each redraw rewrites the line; the last one is what stays on screen.
        let last = text.rsplit("Test:").next().unwrap_or_default().trim_end();
        assert!(last.starts_with("  50%|#"), "{text:?}");
        assert!(last.contains("| 2/4 [00:00:00<"), "{text:?}");
        assert!(last.ends_with("it/s]"), "{text:?}");
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn off_a_terminal_one_line_per_step() {
        let (p, lines) = captured(20, true, false, 4);
        for _ in 0..20 {
            p.inc();
        }
        p.finish();
        assert_eq!(
            *lines.lock().unwrap(),
            vec![(5, 20), (10, 20), (15, 20), (20, 20)]
        );
        assert_eq!(p.done(), 20);
    }

    #[test]
    fn finish_writes_the_last_line_once() {
        let (p, lines) = captured(100, true, false, 10);
        p.set(3);
        p.finish();
        p.finish();
        assert_eq!(*lines.lock().unwrap(), vec![(3, 100)]);
    }

    #[test]
    fn disabled_or_on_a_terminal_writes_no_lines() {
        for (enabled, tty) in [(false, false), (false, true), (true, true)] {
            let (p, lines) = captured(4, enabled, tty, 4);
            for _ in 0..4 {
                p.inc();
            }
            p.finish();
            assert!(lines.lock().unwrap().is_empty(), "{enabled} {tty}");
            assert_eq!(p.done(), 4);
        }
    }

    #[test]
    fn shared_between_threads() {
        let (p, lines) = captured(400, true, false, 10);
        let p = Arc::new(p);
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || (0..100).for_each(|_| p.inc()))
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(p.done(), 400);
        let lines = lines.lock().unwrap();
        assert!(lines.windows(2).all(|w| w[0].0 < w[1].0), "{lines:?}");
        // Whoever counted the last item also saw the count at its total.
        assert_eq!(lines.last(), Some(&(400, 400)));
    }

    #[test]
    fn counts_callback_finishes_at_the_total() {
        // Off a terminal (as under `cargo test`), lines go to the log: here, a shared list.
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let on_layer = for_counts("Loading", true, 2, move |d, t, _| {
            seen.lock().unwrap().push((d, t))
        });
        for layer in 1..=6 {
            on_layer(layer, 6);
        }
        if !std::io::stderr().is_terminal() {
            assert_eq!(*lines.lock().unwrap(), vec![(3, 6), (6, 6)]);
        }
    }

    #[test]
    fn plain_line_layout() {
        let l = plain_line("Running batch", 4, 10, Duration::from_secs(2));
        assert_eq!(l, "Running batch: 4/10 (40%) [2.0s, 2.00/s]");
        assert!(plain_line("", 0, 0, Duration::ZERO).starts_with("progress: 0/0 (100%)"));
    }
}
