//! What `bench latency` and `bench throughput` share: their own flags split from the `vllm serve`
//! ones, the engine started exactly as `vllmd` starts it, and a batch of requests run through it.
//!
//! The engine runs on its own thread behind `EngineHandle` (the actor the server uses), and all
//! requests of a batch are submitted before any is awaited, so continuous batching sees the whole
//! load at once, as vLLM's `LLM.generate` does.

use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use daemon::config::{EnvSettings, ServeConfig};
use daemon::server::AppState;
use engine::request::EngineRequest;

use crate::BenchError;
use progress::Progress;

/// A benchmark's own arguments and the rest, meant for [`ServeConfig`].
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Split {
    pub own: Vec<String>,
    pub serve: Vec<String>,
    pub help: bool,
}

/// Sorts `args` into the flags `cmd` defines (with their values) and everything else. Flags
/// both could take (`--model`, `--seed`, `--tokenizer`) are not defined by the benchmarks: they
/// go to the engine, as in vLLM where they come from the engine arguments.
pub(crate) fn split_args(cmd: &clap::Command, args: Vec<String>) -> Split {
    let mut out = Split::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            out.help = true;
            continue;
        }
        let Some(long) = arg.strip_prefix("--") else {
            out.serve.push(arg);
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        match cmd.get_arguments().find(|a| a.get_long() == Some(name)) {
            Some(a) => {
                let takes_value = a.get_action().takes_values();
                out.own.push(arg.clone());
                if takes_value && !inline {
                    if let Some(v) = it.next() {
                        out.own.push(v);
                    }
                }
            }
            None => out.serve.push(arg),
        }
    }
    out
}

/// Parses a benchmark's own flags; `Ok(None)` when help was asked for (and printed).
pub(crate) fn parse_own<T: Parser>(
    prog: &'static str,
    args: Vec<String>,
    out: &mut dyn Write,
) -> Result<Option<(T, Vec<String>)>, BenchError> {
    let cmd = T::command();
    let split = split_args(&cmd, args);
    if split.help {
        let mut cmd = cmd.name(prog).bin_name(prog);
        let _ = write!(out, "{}", cmd.render_help());
        let _ = writeln!(out, "\nEvery `vllm serve` flag (model, engine, cache, scheduler) is accepted too: see `vllm serve --help`.");
        return Ok(None);
    }
    let argv = std::iter::once(prog.to_string()).chain(split.own);
    let own = T::try_parse_from(argv).map_err(|e| BenchError::Invalid(clap_message(&e)))?;
    Ok(Some((own, split.serve)))
}

fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.trim().trim_start_matches("error: ").to_string()
}

/// Quiet logging for the in-process engine (warnings only, unless `VLLM_LOGGING_LEVEL` says
/// otherwise): the benchmark's report is the output.
pub(crate) fn init_logging() -> Result<(), BenchError> {
    let env = EnvSettings::from_env().map_err(|e| BenchError::Invalid(e.to_string()))?;
    let level = std::env::var_os("VLLM_LOGGING_LEVEL")
        .is_none()
        .then_some("warn");
    daemon::logging::init(&env, level);
    Ok(())
}

/// The engine started from `vllm serve` flags, and a runtime to talk to it.
pub(crate) struct Engine {
    pub state: Arc<AppState>,
    rt: tokio::runtime::Runtime,
}

/// Starts the engine from `serve_args` (every `vllm serve` flag), after `adjust` set the
/// benchmark's own defaults on the parsed configuration.
pub(crate) fn start(
    prog: &str,
    serve_args: Vec<String>,
    adjust: impl FnOnce(&mut ServeConfig),
) -> Result<Engine, BenchError> {
    let env = EnvSettings::from_env().map_err(|e| BenchError::Invalid(e.to_string()))?;
    let argv = std::iter::once(prog.to_string())
        .chain(serve_args)
        .collect();
    // clap's own rendering starts with `error: `; the caller adds its own.
    let mut cfg = ServeConfig::load(argv, &env).map_err(|e| {
        BenchError::Invalid(
            e.to_string()
                .trim()
                .trim_start_matches("error: ")
                .to_string(),
        )
    })?;
    cfg.disable_log_stats = true;
    adjust(&mut cfg);
    let state =
        daemon::serve::build_state(&cfg, &env).map_err(|e| BenchError::Engine(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| BenchError::Engine(format!("starting the async runtime: {e}")))?;
    Ok(Engine { state, rt })
}

/// Token counts of one finished request (its `n` samples together).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Generated {
    pub prompt_tokens: usize,
    pub output_tokens: usize,
}

impl Engine {
    pub fn max_model_len(&self) -> usize {
        self.state.max_model_len
    }

    /// Runs every request to completion (each `n` samples, as separate sequences) and returns
    /// their token counts in input order. `progress` advances once per finished sample.
    pub fn generate(
        &self,
        requests: Vec<EngineRequest>,
        progress: Option<Arc<Progress>>,
    ) -> Result<Vec<Generated>, BenchError> {
        let handle = self.state.engine.clone();
        self.rt.block_on(async move {
            let mut tasks = Vec::new();
            for (index, req) in requests.into_iter().enumerate() {
                for child in 0..req.params.n.max(1) {
                    let mut sample = req.clone();
                    sample.params = req.params.for_child(child);
                    let (handle, progress) = (handle.clone(), progress.clone());
                    // One task per sample, spawned before any is awaited: all submissions reach
                    // the engine thread together instead of one per engine step.
                    tasks.push((
                        index,
                        tokio::spawn(async move {
                            let mut stream = handle
                                .submit(sample)
                                .await
                                .map_err(|e| BenchError::Engine(e.to_string()))?;
                            let mut got = Generated::default();
                            while let Some(o) = stream.outputs.recv().await {
                                got.prompt_tokens = o.num_prompt_tokens;
                                got.output_tokens += o.new_token_ids.len();
                                if o.finished.is_some() {
                                    if let Some(p) = &progress {
                                        p.inc();
                                    }
                                    return Ok(got);
                                }
                            }
                            Err(BenchError::Engine(
                                handle
                                    .dead_reason()
                                    .unwrap_or_else(|| "the engine dropped a request".into()),
                            ))
                        }),
                    ));
                }
            }
            let mut results: Vec<Generated> = Vec::new();
            for (index, task) in tasks {
                let got = task
                    .await
                    .map_err(|e| BenchError::Engine(format!("a request task failed: {e}")))??;
                if results.len() <= index {
                    results.resize(index + 1, Generated::default());
                }
                // The prompt counts once per request, the outputs of every sample.
                results[index].prompt_tokens = got.prompt_tokens;
                results[index].output_tokens += got.output_tokens;
            }
            Ok(results)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(Parser, Debug)]
    struct Own {
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        #[arg(long)]
        output_json: Option<String>,
        #[arg(long)]
        disable_detokenize: bool,
    }

    #[test]
    fn own_flags_are_taken_and_the_rest_passed_on() {
        let args = [
            "--batch-size",
            "4",
            "--model",
            "m.gguf",
            "--output-json=x.json",
            "--disable-detokenize",
            "--max-model-len",
            "512",
            "-h",
        ];
        let s = split_args(&Own::command(), args.map(String::from).to_vec());
        assert_eq!(
            s.own,
            [
                "--batch-size",
                "4",
                "--output-json=x.json",
                "--disable-detokenize"
            ]
        );
        assert_eq!(s.serve, ["--model", "m.gguf", "--max-model-len", "512"]);
        assert!(s.help);
    }

    #[test]
    fn help_is_printed_and_bad_values_are_errors() {
        let mut out = Vec::new();
        assert!(
            parse_own::<Own>("vllm bench latency", vec!["--help".into()], &mut out)
                .unwrap()
                .is_none()
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("--batch-size") && text.contains("vllm serve --help"),
            "{text}"
        );
        let err = parse_own::<Own>(
            "vllm bench latency",
            vec!["--batch-size".into(), "x".into()],
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--batch-size"), "{err}");
    }
}
