//! The per-sequence sampler: turns one row of model logits into the next token, in vLLM v1's
//! order of processing, with the sequence's own random stream.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::filters::{apply_min_p, draw_dense, draw_sparse, top_k_top_p};
use super::logprobs::{dense_stats, sparse_stats, LogprobsMode};
use super::math::{argmax, clean, Scratch};
use super::params::SamplingParams;
use super::penalties::{
    apply_allowed, apply_bad_words, apply_bias, apply_frequency_presence, apply_repetition, ban,
};

/// One sampled token and, when the request asked for logprobs, its logprob facts.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledToken {
    pub token: u32,
    /// The sampled token's logprob (or logit, per [`LogprobsMode`]); NaN when the request did
    /// not ask for logprobs, since computing it costs a pass over the vocabulary.
    pub logprob: f32,
    /// 1-based rank of the sampled token in the distribution logprobs are reported from (the
    /// number of tokens at least as likely); 0 when logprobs were not requested.
    pub rank: usize,
    /// `params.logprobs` best entries, best first; fewer when fewer tokens have a finite value.
    pub top_logprobs: Vec<(u32, f32)>,
}

/// One row's work for the GPU sampler (see [`SequenceSampler::gpu_request`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSampleRequest {
    /// The row after the pre-temperature steps; `None` when they leave the model's row as is.
    pub processed: Option<Vec<f32>>,
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    /// The draw, uniform in [0, 1).
    pub uniform: f32,
    /// Top logprobs to return; `None` when the request asked for no logprobs at all.
    pub num_logprobs: Option<usize>,
}

#[cfg(feature = "cuda")]
impl GpuSampleRequest {
    /// The kernel's settings for this row. Penalties were already applied to `processed` by the
    /// CPU steps, so the kernel applies none.
    pub fn kernel_row(&self) -> kernels::cuda::GpuSampleRow {
        kernels::cuda::GpuSampleRow {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            uniform: self.uniform,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            history: Vec::new(),
        }
    }
}

/// Sampling state of one sequence: its parameters prepared for the hot path, its random
/// stream, and the token counts the penalties need. A clone continues the same random stream;
/// parallel samples of one request each need their own sampler (see
/// [`SamplingParams::for_child`]).
#[derive(Clone)]
pub struct SequenceSampler {
    greedy: bool,
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    num_logprobs: Option<usize>,
    allowed: Option<Vec<u32>>,
    bias: Vec<(u32, f32)>,
    bad_words: Vec<Vec<u32>>,
    min_tokens: usize,
    /// EOS and stop token ids: banned while fewer than `min_tokens` tokens exist.
    min_tokens_banned: Vec<u32>,
    repetition_penalty: Option<f32>,
    frequency_penalty: f32,
    presence_penalty: f32,
    /// Sorted distinct prompt ids; filled only when the repetition penalty is on.
    prompt_seen: Vec<u32>,
    /// Counts of generated tokens; kept only when a penalty needs them.
    output_counts: HashMap<u32, u32>,
    /// The generated tokens `output_counts` was built from, to notice when the caller's list
    /// is not an extension of it (e.g. rejected speculative tokens) and recount.
    counted: Vec<u32>,
    track_output: bool,
    rng: ChaCha8Rng,
    work: Vec<f32>,
    scratch: Scratch,
    cands: Vec<(f32, u32)>,
}

impl std::fmt::Debug for SequenceSampler {
    // The work buffers hold a whole vocabulary row each; printing them would flood any log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceSampler")
            .field("greedy", &self.greedy)
            .field("temperature", &self.temperature)
            .field("top_k", &self.top_k)
            .field("top_p", &self.top_p)
            .field("min_p", &self.min_p)
            .field("num_logprobs", &self.num_logprobs)
            .field("min_tokens", &self.min_tokens)
            .field("repetition_penalty", &self.repetition_penalty)
            .field("frequency_penalty", &self.frequency_penalty)
            .field("presence_penalty", &self.presence_penalty)
            .field("bad_words", &self.bad_words.len())
            .field("generated_counted", &self.counted.len())
            .finish_non_exhaustive()
    }
}

impl SequenceSampler {
    /// Prepares sampling for one sequence. The random stream is seeded from `params.seed` when
    /// the request has one (so it gives the same tokens alone or in any batch), else from
    /// `engine_rng_seed`, which the engine should make distinct per sequence (e.g. engine seed
    /// mixed with the request index). `bad_words_ids` comes from
    /// [`bad_words_to_ids`](super::bad_words_to_ids); `eos_token_id` is banned with the stop
    /// ids until `min_tokens` tokens exist.
    pub fn new(
        params: &SamplingParams,
        prompt: &[u32],
        engine_rng_seed: u64,
        bad_words_ids: Vec<Vec<u32>>,
        eos_token_id: Option<u32>,
    ) -> Self {
        let repetition_penalty = Some(params.repetition_penalty).filter(|&p| p != 1.0);
        let mut prompt_seen = Vec::new();
        if repetition_penalty.is_some() {
            prompt_seen = prompt.to_vec();
            prompt_seen.sort_unstable();
            prompt_seen.dedup();
        }
        let allowed = params.allowed_token_ids.as_ref().map(|ids| {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            ids
        });
        let mut bias: Vec<(u32, f32)> = params.logit_bias.iter().map(|(&k, &v)| (k, v)).collect();
        bias.sort_unstable_by_key(|&(id, _)| id);
        let mut min_tokens_banned: Vec<u32> = params.stop_token_ids.clone();
        min_tokens_banned.extend(eos_token_id);
        min_tokens_banned.sort_unstable();
        min_tokens_banned.dedup();
        let track_output = repetition_penalty.is_some()
            || params.frequency_penalty != 0.0
            || params.presence_penalty != 0.0;
        let greedy = params.is_greedy();
        SequenceSampler {
            greedy,
            temperature: params.effective_temperature(),
            top_k: if greedy { None } else { params.top_k_limit() },
            top_p: Some(params.top_p).filter(|&p| !greedy && p < 1.0),
            min_p: Some(params.min_p).filter(|&p| !greedy && p > 0.0),
            num_logprobs: params.logprobs,
            allowed,
            bias,
            bad_words: bad_words_ids,
            min_tokens: params.min_tokens,
            min_tokens_banned,
            repetition_penalty,
            frequency_penalty: params.frequency_penalty,
            presence_penalty: params.presence_penalty,
            prompt_seen,
            output_counts: HashMap::new(),
            counted: Vec::new(),
            track_output,
            rng: ChaCha8Rng::seed_from_u64(params.seed.unwrap_or(engine_rng_seed)),
            work: Vec::new(),
            scratch: Scratch::default(),
            cands: Vec::new(),
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.greedy
    }

    /// Picks the next token. `logits` is the model's raw row (length = model vocabulary, which
    /// may exceed the tokenizer's); `generated` is every token this sequence produced so far.
    pub fn sample(
        &mut self,
        logits: &[f32],
        generated: &[u32],
        mode: LogprobsMode,
    ) -> SampledToken {
        let mut out = SampledToken {
            token: 0,
            logprob: f32::NAN,
            rank: 0,
            top_logprobs: Vec::new(),
        };
        // Plain greedy decoding reads the model's row as is: no copy, one pass.
        let copy = !self.greedy || self.edits_logits(generated);
        let mut work = std::mem::take(&mut self.work);
        let mut sparse = false;
        if copy {
            work.clear();
            work.extend(logits.iter().map(|&v| clean(v)));
            self.process(&mut work, generated);
            if self.greedy {
                out.token = argmax(&work);
            } else {
                (out.token, sparse) = self.sample_random(&mut work);
            }
        } else {
            out.token = argmax(logits);
        }

        if let Some(n) = self.num_logprobs {
            let as_logprobs = mode.is_logprobs();
            let scratch = &mut self.scratch;
            let (value, rank, top) = if mode.is_raw() || !copy {
                dense_stats(logits, out.token, n, as_logprobs, scratch)
            } else if sparse {
                sparse_stats(&self.cands, out.token, n, as_logprobs, &mut scratch.select)
            } else {
                dense_stats(&work, out.token, n, as_logprobs, scratch)
            };
            out.logprob = value;
            out.rank = rank;
            out.top_logprobs = top;
        }
        self.work = work;
        out
    }

    /// The GPU sampler's share of one step (`VLLM_RS_GPU_SAMPLER`): every step before
    /// temperature runs here, so both paths share them; temperature, min-p, top-k, top-p and
    /// the draw run on the GPU with one uniform number from this sequence's generator (as the
    /// dense CPU draw takes one). `None` for what the GPU path does not compute: logprobs other
    /// than the default raw log-softmax.
    pub fn gpu_request(
        &mut self,
        logits: &[f32],
        generated: &[u32],
        mode: LogprobsMode,
    ) -> Option<GpuSampleRequest> {
        if self.num_logprobs.is_some() && mode != LogprobsMode::RawLogprobs {
            return None;
        }
        let processed = self.edits_logits(generated).then(|| {
            let mut work: Vec<f32> = logits.iter().map(|&v| clean(v)).collect();
            self.process(&mut work, generated);
            work
        });
        let uniform = if self.greedy {
            0.0
        } else {
            self.rng.random::<f64>() as f32
        };
        Some(GpuSampleRequest {
            processed,
            temperature: if self.greedy { 0.0 } else { self.temperature },
            top_k: self.top_k.map_or(0, |k| k.min(i32::MAX as usize) as i32),
            top_p: self.top_p.unwrap_or(1.0),
            min_p: self.min_p.unwrap_or(0.0),
            uniform,
            num_logprobs: self.num_logprobs,
        })
    }

    /// Whether any step before temperature changes this row.
    fn edits_logits(&self, generated: &[u32]) -> bool {
        self.allowed.is_some()
            || !self.bias.is_empty()
            || !self.bad_words.is_empty()
            || (generated.len() < self.min_tokens && !self.min_tokens_banned.is_empty())
            || self.track_output
    }

    /// Every step before temperature (vLLM v1 order): allowed ids, logit bias, bad words,
    /// `min_tokens`, repetition penalty, frequency and presence penalties.
    fn process(&mut self, work: &mut [f32], generated: &[u32]) {
        if let Some(allowed) = &self.allowed {
            apply_allowed(work, allowed);
        }
        apply_bias(work, &self.bias);
        apply_bad_words(work, &self.bad_words, generated);
        if generated.len() < self.min_tokens {
            for &id in &self.min_tokens_banned {
                ban(work, id);
            }
        }
        if !self.track_output {
            return;
        }
        self.sync_counts(generated);
        if let Some(p) = self.repetition_penalty {
            apply_repetition(work, p, &self.prompt_seen, &self.output_counts);
        }
        if self.frequency_penalty != 0.0 || self.presence_penalty != 0.0 {
            apply_frequency_presence(
                work,
                self.frequency_penalty,
                self.presence_penalty,
                &self.output_counts,
            );
        }
    }

    /// Brings the output counts up to `generated`, counting only the new tail when the caller
    /// appended to what was counted before.
    fn sync_counts(&mut self, generated: &[u32]) {
        if !generated.starts_with(&self.counted) {
            self.output_counts.clear();
            self.counted.clear();
        }
        for &id in &generated[self.counted.len()..] {
            *self.output_counts.entry(id).or_insert(0) += 1;
        }
        self.counted
            .extend_from_slice(&generated[self.counted.len()..]);
    }

    /// Temperature, min-p, top-k, top-p, then the draw. Returns the token and whether top-k or
    /// top-p reduced the row to `self.cands` (processed logprobs are reported over it).
    fn sample_random(&mut self, work: &mut [f32]) -> (u32, bool) {
        if self.temperature != 1.0 {
            let t = self.temperature;
            for v in work.iter_mut() {
                *v /= t;
            }
        }
        if let Some(min_p) = self.min_p {
            apply_min_p(work, min_p);
        }
        if self.top_k.is_none() && self.top_p.is_none() {
            let token = draw_dense(work, &mut self.rng, &mut self.scratch.weights);
            // Every token masked (e.g. allowed ids all banned): fall back to the argmax.
            return (token.unwrap_or_else(|| argmax(work)), false);
        }
        top_k_top_p(
            work,
            self.top_k,
            self.top_p,
            &mut self.cands,
            &mut self.scratch,
        );
        let token = draw_sparse(&self.cands, &mut self.rng).unwrap_or_else(|| argmax(work));
        (token, true)
    }
}
