//! The fuzzing loop: seeded mutations of a seed corpus, each input run under `catch_unwind`
//! with a watchdog for hangs, and every failure saved to a file with what reproduces it.
//!
//! It is coverage-less on purpose: the workspace builds once, without instrumentation, with
//! stable rustc, and the loop then runs as an ordinary `cargo test`. What makes up for the
//! missing coverage feedback is the seeds (real files and real request bodies) and the
//! format-aware mutations (JSON values, GGUF integers, a dictionary of the format's keywords).
//!
//! Iteration `i` of a run with seed `s` always builds the same input from the same corpus
//! (its generator is seeded with `(s, i)` alone), so a failure printed as "seed S iteration I"
//! is reproduced with `VLLM_FUZZ_SEED=S VLLM_FUZZ_ONLY_ITERATION=I`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alloc;
use crate::mutate::{self, Rng};

/// How a target's inputs are best mutated (byte havoc applies to all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Binary formats: integers at random offsets matter most (counts, lengths, types).
    Binary,
    /// UTF-8 text (YAML): byte havoc plus dictionary words.
    Text,
    /// JSON documents: half of the inputs get a structure-aware mutation of one value.
    Json,
}

/// One fuzz target: a function that must return (with `Ok` or an error) for every input.
pub struct Target {
    pub name: &'static str,
    pub kind: InputKind,
    pub run: fn(&[u8]),
}

/// Run settings, from the environment so that `scripts/fuzz.sh` can lengthen the CI run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// Stop after this long...
    pub duration: Duration,
    /// ...or after this many iterations, whichever comes first.
    pub max_iterations: u64,
    /// Only run this one iteration (reproducing a reported failure).
    pub only_iteration: Option<u64>,
    /// One input running longer than this is a hang.
    pub input_timeout: Duration,
    /// Mutated inputs are cut to this length.
    pub max_input_len: usize,
    /// Where failing inputs are written.
    pub artifact_dir: PathBuf,
}

/// The fixed default seed: CI replays the same inputs run after run, so a red CI run is
/// reproducible as printed; `scripts/fuzz.sh` draws a fresh seed each time.
pub const DEFAULT_SEED: u64 = 0x5eed_f022_2026_0017;
/// CI default per target (seven targets, two at a time on a 2-core runner: under a minute).
pub const DEFAULT_SECONDS: f64 = 10.0;

fn env_parse<T: std::str::FromStr>(name: &str) -> Option<T> {
    let raw = std::env::var(name).ok()?;
    let raw = raw.trim();
    let parsed = match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|v| v.to_string().parse().ok()),
        None => raw.parse().ok(),
    };
    if parsed.is_none() {
        panic!("{name}={raw:?} is not a valid number");
    }
    parsed
}

impl Settings {
    /// `VLLM_FUZZ_SEED`, `VLLM_FUZZ_SECONDS`, `VLLM_FUZZ_ITERATIONS`,
    /// `VLLM_FUZZ_ONLY_ITERATION`, `VLLM_FUZZ_INPUT_TIMEOUT` (seconds).
    pub fn from_env(artifact_dir: &Path) -> Settings {
        Settings {
            seed: env_parse("VLLM_FUZZ_SEED").unwrap_or(DEFAULT_SEED),
            duration: Duration::from_secs_f64(
                env_parse("VLLM_FUZZ_SECONDS").unwrap_or(DEFAULT_SECONDS),
            ),
            max_iterations: env_parse("VLLM_FUZZ_ITERATIONS").unwrap_or(u64::MAX),
            only_iteration: env_parse("VLLM_FUZZ_ONLY_ITERATION"),
            input_timeout: Duration::from_secs_f64(
                env_parse("VLLM_FUZZ_INPUT_TIMEOUT").unwrap_or(10.0),
            ),
            max_input_len: 4 << 20,
            artifact_dir: artifact_dir.to_path_buf(),
        }
    }
}

/// A failing input.
#[derive(Debug)]
pub struct Failure {
    pub iteration: u64,
    pub message: String,
    pub saved: Option<PathBuf>,
    pub input: Vec<u8>,
}

/// What one run did.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub iterations: u64,
    pub elapsed: Duration,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.iterations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuzz {}: seed {:#x}, {} iterations in {:.1}s ({:.0}/s), {} failure(s)",
            self.target,
            self.seed,
            self.iterations,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            self.failures.len()
        )?;
        for fail in &self.failures {
            write!(
                f,
                "\n  iteration {}: {}\n    reproduce: VLLM_FUZZ_SEED={:#x} VLLM_FUZZ_ONLY_ITERATION={}",
                fail.iteration, fail.message, self.seed, fail.iteration
            )?;
            if let Some(p) = &fail.saved {
                write!(f, "\n    input saved to {}", p.display())?;
            }
            write!(
                f,
                "\n    input (first 256 bytes): {}",
                escape(&fail.input, 256)
            )?;
        }
        Ok(())
    }
}

/// Printable form of an input: text as is where it is ASCII, other bytes as `\xNN`.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes[..bytes.len().min(max)]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > max {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

/// Stop after this many distinct failures: the first ones say enough.
const MAX_FAILURES: usize = 5;

/// The input that iteration `i` runs: the seeds themselves first, then mutations.
pub fn input_for(
    iteration: u64,
    seed: u64,
    corpus: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    kind: InputKind,
    max_len: usize,
) -> Vec<u8> {
    if let Some(s) = usize::try_from(iteration).ok().and_then(|i| corpus.get(i)) {
        return s.clone();
    }
    let mut rng = Rng::for_iteration(seed, iteration);
    let base = &corpus[rng.below(corpus.len())];
    let mut input = base.clone();
    if kind == InputKind::Json && rng.chance(1, 2) {
        if let Some(mutated) = mutate::json(&input, &mut rng, dictionary) {
            input = mutated;
            // A few byte edits on top now and then, for malformed JSON near valid JSON.
            if rng.chance(1, 8) {
                mutate::havoc(&mut input, &mut rng, corpus, dictionary, kind);
            }
            input.truncate(max_len);
            return input;
        }
    }
    mutate::havoc(&mut input, &mut rng, corpus, dictionary, kind);
    input.truncate(max_len);
    input
}

/// Runs `target` over mutations of `corpus` as `settings` say.
pub fn run(
    target: &Target,
    corpus: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    settings: &Settings,
) -> Report {
    assert!(
        !corpus.is_empty(),
        "fuzz target {} has no seeds",
        target.name
    );
    let started = Instant::now();
    let watchdog = Watchdog::start(target.name, settings);
    let mut failures = Vec::new();
    let mut iterations = 0;
    let range = match settings.only_iteration {
        Some(i) => i..i + 1,
        None => 0..settings.max_iterations,
    };
    for i in range {
        if settings.only_iteration.is_none() && started.elapsed() >= settings.duration {
            break;
        }
        let input = input_for(
            i,
            settings.seed,
            corpus,
            dictionary,
            target.kind,
            settings.max_input_len,
        );
        watchdog.begin(i, &input);
        alloc::set_current(target.name, &settings.artifact_dir, &input);
        let result = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        alloc::clear_current();
        watchdog.end();
        iterations += 1;
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic with a non-string payload".into());
            let saved = save(
                &settings.artifact_dir,
                target.name,
                "panic",
                settings.seed,
                i,
                &input,
            );
            failures.push(Failure {
                iteration: i,
                message: format!("panicked: {message}"),
                saved,
                input,
            });
            if failures.len() >= MAX_FAILURES {
                break;
            }
        }
    }
    watchdog.stop();
    Report {
        target: target.name,
        seed: settings.seed,
        iterations,
        elapsed: started.elapsed(),
        failures,
    }
}

/// Writes a failing input to `dir/<target>-<kind>-<seed>-<iteration>.bin`.
pub fn save(
    dir: &Path,
    target: &str,
    kind: &str,
    seed: u64,
    iteration: u64,
    input: &[u8],
) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{target}-{kind}-{seed:x}-{iteration}.bin"));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Watches the running input from another thread: past the timeout, the input is saved,
/// reported, and the process aborted (a hung input cannot be unwound out of).
/// The running input: (iteration, started, bytes); `None` between inputs.
type Running = Arc<Mutex<Option<(u64, Instant, Vec<u8>)>>>;

struct Watchdog {
    state: Running,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(target: &'static str, settings: &Settings) -> Watchdog {
        let state: Running = Arc::new(Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        let (s, d) = (state.clone(), done.clone());
        let (timeout, seed, dir) = (
            settings.input_timeout,
            settings.seed,
            settings.artifact_dir.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let guard = s.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((i, since, input)) = guard.as_ref() {
                    if since.elapsed() > timeout {
                        let saved = save(&dir, target, "hang", seed, *i, input);
                        eprintln!(
                            "fuzz {target}: iteration {i} ran past {timeout:?} (hang)\n    reproduce: VLLM_FUZZ_SEED={seed:#x} VLLM_FUZZ_ONLY_ITERATION={i}\n    input saved to {saved:?}\n    input (first 256 bytes): {}",
                            escape(input, 256)
                        );
                        std::process::abort();
                    }
                }
            }
        });
        Watchdog {
            state,
            done,
            thread: Some(thread),
        }
    }

    fn begin(&self, iteration: u64, input: &[u8]) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some((iteration, Instant::now(), input.to_vec()));
    }

    fn end(&self) {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *guard = None;
    }

    fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
