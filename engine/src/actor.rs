//! The engine as an actor: a dedicated thread owns the `LlmEngine` (compute is blocking and
//! uses every core through rayon, so it must not sit on the async runtime), and the server
//! talks to it through channels. No lock guards the scheduler: only this thread touches it.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::llm_engine::{EngineError, LlmEngine};
use crate::request::{EngineRequest, RequestId, RequestOutput};
use crate::stats::{EngineStats, FinishedRequestStats, TokenLatencyLog};

enum Command {
    Add {
        req: Box<EngineRequest>,
        outputs: mpsc::UnboundedSender<RequestOutput>,
        reply: oneshot::Sender<Result<RequestId, EngineError>>,
    },
    Abort(RequestId),
    Stats(oneshot::Sender<StatsReport>),
    ResetPrefixCache(oneshot::Sender<bool>),
}

/// What a stats poll returns: current numbers, and what finished / was measured since the
/// previous poll.
#[derive(Debug, Clone, Default)]
pub struct StatsReport {
    pub stats: EngineStats,
    pub finished: Vec<FinishedRequestStats>,
    pub latencies: TokenLatencyLog,
}

/// Settings of the engine thread beyond the engine's own configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActorOptions {
    /// Refuse a new request ([`EngineError::Overloaded`]) while this many wait for a slot.
    pub max_waiting_requests: Option<usize>,
    /// A fault injected on purpose, so the server's handling of a dying engine can be tested
    /// (the server enables it only in dev mode): panic, as a bug in a step would, once this
    /// many steps have run.
    pub panic_after_steps: Option<u64>,
}

/// A cheap, cloneable handle to the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::UnboundedSender<Command>,
    /// Set when the engine thread ends (by a panic or a fatal error), with the reason.
    dead: Arc<Mutex<Option<String>>>,
}

/// A submitted request: its id and the stream of its outputs (the last one has `finished`).
pub struct RequestStream {
    pub id: RequestId,
    pub outputs: mpsc::UnboundedReceiver<RequestOutput>,
}

impl EngineHandle {
    /// Moves the engine onto its own thread.
    pub fn spawn(engine: LlmEngine) -> Self {
        Self::spawn_with(engine, ActorOptions::default())
    }

    /// [`EngineHandle::spawn`] with admission bounds or an injected fault.
    pub fn spawn_with(engine: LlmEngine, opts: ActorOptions) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let dead = Arc::new(Mutex::new(None));
        let dead_flag = dead.clone();
        let spawned = std::thread::Builder::new()
            .name("vllm-engine".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(engine, rx, opts)
                }));
                let reason = match result {
                    Ok(()) => "engine loop ended".to_string(),
                    Err(p) => p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "engine panicked".into()),
                };
                tracing::error!("engine thread stopped: {reason}");
                if let Ok(mut d) = dead_flag.lock() {
                    *d = Some(reason);
                }
            });
        if let Err(e) = spawned {
            if let Ok(mut d) = dead.lock() {
                *d = Some(format!("could not start the engine thread: {e}"));
            }
        }
        EngineHandle { commands: tx, dead }
    }

    /// A handle with no engine behind it: every call fails as if the engine had died with
    /// `reason`. The fuzz targets drive the real HTTP handlers up to submission with it.
    pub fn detached(reason: &str) -> Self {
        let (tx, _) = mpsc::unbounded_channel();
        EngineHandle {
            commands: tx,
            dead: Arc::new(Mutex::new(Some(reason.to_string()))),
        }
    }

    /// Why the engine is gone, if it is.
    pub fn dead_reason(&self) -> Option<String> {
        self.dead.lock().ok().and_then(|d| d.clone())
    }

    /// Submits a request. Dropping the returned stream aborts the request.
    pub async fn submit(&self, req: EngineRequest) -> Result<RequestStream, EngineError> {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.commands
            .send(Command::Add {
                req: Box::new(req),
                outputs: out_tx,
                reply: reply_tx,
            })
            .map_err(|_| EngineError::EngineDead)?;
        let id = reply_rx.await.map_err(|_| EngineError::EngineDead)??;
        Ok(RequestStream {
            id,
            outputs: out_rx,
        })
    }

    pub fn abort(&self, id: RequestId) {
        let _ = self.commands.send(Command::Abort(id));
    }

    /// Current statistics, and the requests finished and token latencies measured since the
    /// previous call.
    pub async fn stats(&self) -> Result<StatsReport, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stats(tx))
            .map_err(|_| EngineError::EngineDead)?;
        rx.await.map_err(|_| EngineError::EngineDead)
    }

    /// Drops the prefix cache between two steps; `Ok(false)` while requests hold blocks.
    pub async fn reset_prefix_cache(&self) -> Result<bool, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::ResetPrefixCache(tx))
            .map_err(|_| EngineError::EngineDead)?;
        rx.await.map_err(|_| EngineError::EngineDead)
    }
}

fn handle(engine: &mut LlmEngine, cmd: Command, opts: &ActorOptions) {
    match cmd {
        Command::Add {
            req,
            outputs,
            reply,
        } => {
            // Checked here, on the thread that owns the queue, so the bound is exact.
            if let Some(limit) = opts.max_waiting_requests {
                let waiting = engine.num_waiting();
                if waiting >= limit {
                    let _ = reply.send(Err(EngineError::Overloaded { waiting, limit }));
                    return;
                }
            }
            let sink = Box::new(move |out: RequestOutput| outputs.send(out).is_ok());
            let _ = reply.send(engine.add_request(*req, sink));
        }
        Command::Abort(id) => engine.abort(id),
        Command::Stats(reply) => {
            let _ = reply.send(StatsReport {
                stats: engine.stats(),
                finished: engine.drain_finished(),
                latencies: engine.drain_latencies(),
            });
        }
        Command::ResetPrefixCache(reply) => {
            let _ = reply.send(engine.reset_prefix_cache());
        }
    }
}

fn run(mut engine: LlmEngine, mut commands: mpsc::UnboundedReceiver<Command>, opts: ActorOptions) {
    let mut steps: u64 = 0;
    loop {
        // Take everything that arrived during the last step, then step; sleep only when idle.
        loop {
            match commands.try_recv() {
                Ok(cmd) => handle(&mut engine, cmd, &opts),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        if engine.has_work() {
            if opts.panic_after_steps.is_some_and(|n| steps >= n) {
                panic!("injected fault: engine panic after {steps} steps");
            }
            steps += 1;
            if let Err(e) = engine.step() {
                tracing::error!("engine step failed: {e}");
            }
        } else {
            match commands.blocking_recv() {
                Some(cmd) => handle(&mut engine, cmd, &opts),
                None => return,
            }
        }
    }
}
