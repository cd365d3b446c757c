//! The engine proper: one owner of the model, the KV memory, the scheduler and every request's
//! sampling state. `step()` runs one scheduled batch; outputs leave through per-request sinks.
//! Nothing here is shared or locked: the server drives it from one thread (see `actor`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::detokenizer::IncrementalDetokenizer;
use crate::device::Backend;
use crate::kv_cache::{KvCache, KvCacheManager, PrefixHashAlgo};
use crate::loader::LoadedModel;
use crate::model::{CausalLm, ForwardError};
use crate::pooling::{ClassifierHead, PoolAccumulator, PoolingKind, PoolingParams, PoolingSetup};
use crate::request::{EngineRequest, FinishReason, RequestId, RequestOutput, RequestTimes};
use crate::sampling::{
    self, LogprobsMode, SamplingError, SamplingParams, SequenceSampler, ValidationContext,
};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::stats::{EngineStats, FinishedRequestStats, TokenLatencyLog};
use crate::structured::{GrammarCompiler, GrammarMatcher, StructuredOutputError};
use crate::tokenizer::Tokenizer;

mod gpu_sampling;
mod pool_step;
mod step;

pub use gpu_sampling::GPU_SAMPLER_VAR;

/// Engine settings (the CacheConfig and SchedulerConfig groups of `vllm serve`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub block_size: usize,
    /// `--num-gpu-blocks-override`: the number of KV blocks, whatever memory says.
    pub num_blocks_override: Option<usize>,
    /// KV memory on the CPU (`VLLM_CPU_KVCACHE_SPACE`, GiB; default 4).
    pub kv_cache_bytes: usize,
    /// `--gpu-memory-utilization`: the share of GPU memory for weights, activations and KV.
    pub gpu_memory_utilization: f64,
    pub enable_prefix_caching: bool,
    pub prefix_caching_hash_algo: PrefixHashAlgo,
    pub scheduler: SchedulerConfig,
    pub max_logprobs: usize,
    pub logprobs_mode: LogprobsMode,
    /// `--seed`: seeds every request that has no seed of its own.
    pub seed: u64,
    /// `VLLM_ENGINE_ITERATION_TIMEOUT_S`: a step slower than this is reported.
    pub iteration_timeout: Duration,
    /// The pooling runner (`--runner pooling`); `None` generates.
    pub pooling: Option<PoolingSetup>,
}

impl EngineConfig {
    pub fn new(max_model_len: usize) -> Self {
        EngineConfig {
            block_size: 16,
            num_blocks_override: None,
            kv_cache_bytes: 4 << 30,
            gpu_memory_utilization: 0.9,
            enable_prefix_caching: true,
            prefix_caching_hash_algo: PrefixHashAlgo::Builtin,
            scheduler: SchedulerConfig::new(max_model_len),
            max_logprobs: 20,
            logprobs_mode: LogprobsMode::RawLogprobs,
            seed: 0,
            iteration_timeout: Duration::from_secs(60),
            pooling: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    InvalidRequest(#[from] SamplingError),
    #[error("the KV cache holds {available_tokens} tokens ({num_blocks} blocks of {block_size}) but one sequence of --max-model-len {max_model_len} needs {needed_blocks} blocks; lower --max-model-len or give the cache more memory (VLLM_CPU_KVCACHE_SPACE / --num-gpu-blocks-override)")]
    KvCacheTooSmall {
        num_blocks: usize,
        block_size: usize,
        available_tokens: usize,
        max_model_len: usize,
        needed_blocks: usize,
    },
    #[error("invalid engine configuration: {0}")]
    Config(String),
    #[error("model execution failed: {0}")]
    Forward(#[from] ForwardError),
    #[error("the engine has stopped")]
    EngineDead,
    /// The waiting queue is at its bound (`VLLM_RS_MAX_WAITING_REQUESTS`).
    #[error("the server is overloaded: {waiting} requests are waiting (the bound is {limit}); retry later")]
    Overloaded { waiting: usize, limit: usize },
}

/// Where a request's outputs go; returns false when nobody listens any more (the request is
/// then aborted, so a dropped client never holds KV blocks).
pub type OutputSink = Box<dyn FnMut(RequestOutput) -> bool + Send>;

struct RequestState {
    params: SamplingParams,
    sampler: SequenceSampler,
    detok: Option<IncrementalDetokenizer>,
    sink: OutputSink,
    times: RequestTimes,
    num_prompt: usize,
    max_tokens: usize,
    num_output: usize,
    /// Logit rows of prompt positions collected across prefill chunks (prompt logprobs only).
    prompt_rows: Option<Vec<f32>>,
    prompt_logprobs_sent: bool,
    /// The request's structured-output constraint, if any.
    grammar: Option<GrammarMatcher>,
    /// A pooling request: its hidden-state accumulator and what it asked for.
    pool: Option<(PoolAccumulator, PoolingParams)>,
}

/// The pooling runner's state: the setup and a classifier's head.
struct EnginePooler {
    setup: PoolingSetup,
    head: Option<ClassifierHead>,
}

pub struct LlmEngine {
    model: CausalLm,
    tokenizer: Arc<Tokenizer>,
    kv: KvCache,
    scheduler: Scheduler,
    config: EngineConfig,
    max_model_len: usize,
    eos_token_ids: Vec<u32>,
    states: HashMap<RequestId, RequestState>,
    next_id: RequestId,
    stats: EngineStats,
    /// Finished requests not yet collected by `drain_finished` (bounded).
    finished_log: Vec<FinishedRequestStats>,
    latency_log: TokenLatencyLog,
    /// A logits row copied for masking (constrained requests only).
    masked_row: Vec<f32>,
    /// [`GPU_SAMPLER_VAR`] is set and the model runs on the GPU.
    gpu_sampler: bool,
    /// Set on a pooling server: every request is pooled.
    pooler: Option<EnginePooler>,
}

/// (blocks, bytes per block) of the GPU KV cache: `--num-gpu-blocks-override`, else what a
/// profiling forward pass (the full `--max-num-batched-tokens` over `--max-num-seqs` sequences)
/// leaves of `--gpu-memory-utilization`.
#[cfg(feature = "cuda")]
fn gpu_kv_blocks(
    model: &CausalLm,
    config: &EngineConfig,
    layout: kernels::cpu::PagedKvLayout,
) -> Result<(usize, usize), EngineError> {
    let gpu = model
        .gpu()
        .ok_or_else(|| EngineError::Config("the model is not on the GPU".into()))?;
    let per_block = gpu.kv_bytes_per_block(layout);
    if let Some(n) = config.num_blocks_override {
        return Ok((n, per_block));
    }
    let plan = gpu
        .plan_kv(
            layout,
            config.scheduler.max_num_batched_tokens,
            config.scheduler.max_num_seqs,
            config.gpu_memory_utilization,
        )
        .map_err(|e| EngineError::Config(format!("sizing the GPU KV cache: {e}")))?;
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    tracing::info!(
        "GPU memory: {:.2} GiB total, {:.2} GiB in use after loading, {:.2} GiB peak activations at --max-num-batched-tokens {}; --gpu-memory-utilization {} leaves {:.2} GiB for the KV cache",
        gib(plan.total_bytes),
        gib(plan.used_before_kv),
        gib(plan.activation_bytes),
        config.scheduler.max_num_batched_tokens,
        config.gpu_memory_utilization,
        gib(plan.num_blocks * per_block)
    );
    Ok((plan.num_blocks, per_block))
}

#[cfg(not(feature = "cuda"))]
fn gpu_kv_blocks(
    _: &CausalLm,
    _: &EngineConfig,
    _: kernels::cpu::PagedKvLayout,
) -> Result<(usize, usize), EngineError> {
    Err(EngineError::Config("this build has no CUDA backend".into()))
}

#[cfg(feature = "cuda")]
fn gpu_kv_cache(
    model: &CausalLm,
    num_blocks: usize,
    layout: kernels::cpu::PagedKvLayout,
) -> Result<KvCache, EngineError> {
    let gpu = model
        .gpu()
        .ok_or_else(|| EngineError::Config("the model is not on the GPU".into()))?;
    let store = gpu.alloc_kv(num_blocks, layout).map_err(|e| {
        EngineError::Config(format!(
            "allocating the GPU KV cache ({num_blocks} blocks): {e}"
        ))
    })?;
    let gib = (num_blocks * gpu.kv_bytes_per_block(layout)) as f64 / (1u64 << 30) as f64;
    tracing::info!(
        "GPU KV cache: {num_blocks} blocks of {} tokens ({gib:.2} GiB, bf16)",
        layout.block_size
    );
    Ok(KvCache::on_gpu(
        model.config().num_hidden_layers,
        num_blocks,
        layout,
        store,
    ))
}

#[cfg(not(feature = "cuda"))]
fn gpu_kv_cache(
    _: &CausalLm,
    _: usize,
    _: kernels::cpu::PagedKvLayout,
) -> Result<KvCache, EngineError> {
    Err(EngineError::Config("this build has no CUDA backend".into()))
}

/// Most finished-request records kept when nobody drains them.
const FINISHED_LOG_CAP: usize = 65_536;

impl LlmEngine {
    /// Sizes the KV cache and builds the engine around a loaded model.
    pub fn new(loaded: LoadedModel, mut config: EngineConfig) -> Result<Self, EngineError> {
        let LoadedModel {
            model,
            tokenizer,
            max_model_len,
            classifier,
            ..
        } = loaded;
        let pooler = match config.pooling.clone() {
            None => None,
            Some(_) if model.backend() == Backend::Cuda => {
                return Err(EngineError::Config(
                    "not supported yet: the pooling runner on the CUDA backend (run it with --device cpu)".into(),
                ))
            }
            Some(setup) if setup.kind == PoolingKind::Classify && classifier.is_none() => {
                return Err(EngineError::Config(
                    "the classify runner needs a *ForSequenceClassification checkpoint with a `score` head".into(),
                ))
            }
            Some(setup) => Some(EnginePooler {
                setup,
                head: classifier,
            }),
        };
        config.scheduler.max_model_len = max_model_len;
        config.scheduler.validate().map_err(EngineError::Config)?;
        if config.block_size == 0 {
            return Err(EngineError::Config("--block-size must be positive".into()));
        }
        let layout = model.kv_layout(config.block_size);
        let (num_blocks, per_block) = match model.backend() {
            Backend::Cpu => {
                let per_block = KvCache::bytes_per_block(model.config().num_hidden_layers, layout);
                (
                    config
                        .num_blocks_override
                        .unwrap_or(config.kv_cache_bytes / per_block.max(1)),
                    per_block,
                )
            }
            Backend::Cuda => gpu_kv_blocks(&model, &config, layout)?,
        };
        let needed_blocks = max_model_len.div_ceil(config.block_size);
        if num_blocks < needed_blocks {
            return Err(EngineError::KvCacheTooSmall {
                num_blocks,
                block_size: config.block_size,
                available_tokens: num_blocks * config.block_size,
                max_model_len,
                needed_blocks,
            });
        }
        tracing::info!(
            num_blocks,
            block_size = config.block_size,
            kv_cache_mib = num_blocks * per_block / (1 << 20),
            max_concurrency = format!("{:.2}x", num_blocks as f64 / needed_blocks as f64),
            "KV cache sized (maximum concurrency at --max-model-len {max_model_len})"
        );
        let kv = match model.backend() {
            Backend::Cpu => KvCache::new(model.config().num_hidden_layers, num_blocks, layout),
            Backend::Cuda => gpu_kv_cache(&model, num_blocks, layout)?,
        };
        let manager = KvCacheManager::new(
            num_blocks,
            config.block_size,
            config.enable_prefix_caching,
            config.prefix_caching_hash_algo,
        );
        let scheduler = Scheduler::new(config.scheduler.clone(), manager);
        let mut eos_token_ids: Vec<u32> = model.config().eos_token_ids.clone();
        if let Some(e) = tokenizer.eos_token_id() {
            if !eos_token_ids.contains(&e) {
                eos_token_ids.insert(0, e);
            }
        }
        let stats = EngineStats {
            num_blocks,
            ..Default::default()
        };
        let gpu_sampler = model.backend() == Backend::Cuda && gpu_sampling::gpu_sampler_requested();
        if gpu_sampler {
            tracing::info!("{GPU_SAMPLER_VAR}: tokens are drawn by the GPU sampling kernel");
        }
        Ok(LlmEngine {
            model,
            tokenizer: Arc::new(tokenizer),
            kv,
            scheduler,
            config,
            max_model_len,
            eos_token_ids,
            states: HashMap::new(),
            next_id: 0,
            stats,
            finished_log: Vec::new(),
            latency_log: TokenLatencyLog::default(),
            masked_row: Vec::new(),
            gpu_sampler,
            pooler,
        })
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    pub fn model(&self) -> &CausalLm {
        &self.model
    }

    /// The structured-output compiler for this model (token trie over the logits' width; a
    /// finished grammar allows the tokenizer's EOS). Built on demand: it takes a moment.
    pub fn grammar_compiler(&self) -> Result<GrammarCompiler, StructuredOutputError> {
        let eos = self.eos_token_ids.first().copied().unwrap_or(0);
        GrammarCompiler::new(self.tokenizer.clone(), self.model.config().vocab_size, eos)
    }

    pub fn max_model_len(&self) -> usize {
        self.max_model_len
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn has_work(&self) -> bool {
        self.scheduler.has_work()
    }

    /// Requests (sequences) queued for a first or renewed slot.
    pub fn num_waiting(&self) -> usize {
        self.scheduler.num_waiting()
    }

    /// A snapshot of the counters and gauges.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.num_running = self.scheduler.num_running();
        s.num_waiting = self.scheduler.num_waiting();
        s.kv_cache_usage = self.scheduler.kv().usage();
        s.num_preemptions = self.scheduler.num_preemptions();
        s.prefix_cache_queries = self.scheduler.kv().prefix_cache_queries();
        s.prefix_cache_hits = self.scheduler.kv().prefix_cache_hits();
        s
    }

    /// Takes the records of requests finished since the last call.
    pub fn drain_finished(&mut self) -> Vec<FinishedRequestStats> {
        std::mem::take(&mut self.finished_log)
    }

    /// Takes the per-token latencies measured since the last call.
    pub fn drain_latencies(&mut self) -> TokenLatencyLog {
        std::mem::take(&mut self.latency_log)
    }

    /// Validates and queues a request.
    pub fn add_request(
        &mut self,
        req: EngineRequest,
        sink: OutputSink,
    ) -> Result<RequestId, EngineError> {
        let mut prompt = req.prompt_token_ids;
        if let Some(t) = req.params.truncate_prompt_tokens {
            if t >= 1 && prompt.len() > t {
                prompt.drain(..prompt.len() - t);
            }
        }
        let ctx = ValidationContext {
            vocab_size: self.model.config().vocab_size,
            max_model_len: self.max_model_len,
            max_logprobs: self.config.max_logprobs,
            prompt_len: prompt.len(),
        };
        if req.pooling.is_some() {
            self.validate_pool_prompt(&prompt)?;
        } else {
            req.params.validate(&ctx)?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let params = req.params;
        let max_tokens = params
            .max_tokens
            .unwrap_or(self.max_model_len - prompt.len())
            .min(self.max_model_len - prompt.len());
        // Unseeded requests draw from the engine seed and their id: reproducible per run.
        let seed = self.config.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bad_words = sampling::bad_words_to_ids(&self.tokenizer, &params.bad_words);
        let sampler = SequenceSampler::new(
            &params,
            &prompt,
            seed,
            bad_words,
            self.eos_token_ids.first().copied(),
        );
        let detok = params
            .detokenize
            .then(|| IncrementalDetokenizer::new(self.tokenizer.clone(), &prompt, &params));
        let grammar = req
            .grammar
            .map(|g| GrammarMatcher::new(g.grammar, g.gate, &prompt, &self.eos_token_ids));
        let wants_prompt_logprobs = params.prompt_logprobs.is_some();
        let pool = self.new_pool_state(req.pooling, &prompt)?;
        // Pooling over every prompt row needs every row computed: no prefix-cache hits.
        let skip_prefix_cache =
            wants_prompt_logprobs || pool.as_ref().is_some_and(|_| self.pool_needs_all_rows());
        self.scheduler
            .add(id, prompt.clone(), req.priority, skip_prefix_cache);
        self.states.insert(
            id,
            RequestState {
                sampler,
                detok,
                sink,
                times: RequestTimes::new(req.arrival),
                num_prompt: prompt.len(),
                max_tokens,
                num_output: 0,
                prompt_rows: wants_prompt_logprobs.then(Vec::new),
                prompt_logprobs_sent: false,
                grammar,
                params,
                pool,
            },
        );
        Ok(id)
    }

    /// Drops every cached prefix block (vLLM's `/reset_prefix_cache`); false while requests run.
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.scheduler.reset_prefix_cache()
    }

    /// Cancels a request at any point, freeing its blocks; its sink gets a final `abort` output.
    pub fn abort(&mut self, id: RequestId) {
        if let Some(mut st) = self.states.remove(&id) {
            let r = self.scheduler.remove(id);
            st.times.finished = Some(Instant::now());
            let out = RequestOutput {
                request_id: id,
                new_token_ids: Vec::new(),
                new_text: String::new(),
                new_logprobs: Vec::new(),
                prompt_logprobs: None,
                finished: Some(FinishReason::Abort),
                stop_reason: None,
                num_prompt_tokens: st.num_prompt,
                num_cached_tokens: r.map_or(0, |r| r.num_cached_tokens),
                num_output_tokens: st.num_output,
                times: Some(st.times),
                pooled: None,
            };
            self.record_finished(&st, FinishReason::Abort, out.num_cached_tokens);
            let _ = (st.sink)(out);
        }
    }

    fn record_finished(&mut self, st: &RequestState, reason: FinishReason, num_cached: usize) {
        if self.finished_log.len() >= FINISHED_LOG_CAP {
            self.finished_log.drain(..FINISHED_LOG_CAP / 2);
        }
        self.finished_log.push(FinishedRequestStats {
            reason,
            times: st.times,
            num_prompt_tokens: st.num_prompt,
            num_output_tokens: st.num_output,
            num_cached_tokens: num_cached,
            max_tokens: st.max_tokens,
        });
        *self
            .stats
            .finished_by_reason
            .entry(reason.as_str())
            .or_default() += 1;
    }
}
