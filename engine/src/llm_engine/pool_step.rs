//! The pooling runner's step: prefill-only requests through the same scheduler, paged KV cache
//! and continuous batching as generation, a pooler instead of the sampler.
//!
//! Prompts are chunked like any prefill; each request's accumulator sees every chunk's hidden
//! rows (see `pooling::PoolAccumulator`), and when the last chunk is done the pooled vector goes
//! out as the request's only output and its blocks are freed at once: nothing is decoded.

use std::time::Instant;

use super::{EngineError, LlmEngine};
use crate::model::SequenceInput;
use crate::pooling::{activate, l2_normalize, PoolAccumulator, PoolingKind, PoolingParams};
use crate::request::{FinishReason, RequestId, RequestOutput};
use crate::sampling::SamplingError;
use crate::stats::StepStats;

impl LlmEngine {
    /// What the pooling runner serves (`None`: a generation server).
    pub fn pooling_kind(&self) -> Option<PoolingKind> {
        self.pooler.as_ref().map(|p| p.setup.kind)
    }

    /// The classifier's label names (empty unless a classification head is loaded).
    pub fn classifier_labels(&self) -> Vec<String> {
        self.pooler
            .as_ref()
            .and_then(|p| p.head.as_ref())
            .map(|h| h.labels.clone())
            .unwrap_or_default()
    }

    pub(super) fn pool_needs_all_rows(&self) -> bool {
        self.pooler
            .as_ref()
            .is_some_and(|p| PoolAccumulator::needs_all_rows(p.setup.pooler.pooling_type))
    }

    /// A pooling request's state, or why it cannot be served.
    pub(super) fn new_pool_state(
        &self,
        params: Option<PoolingParams>,
        _prompt: &[u32],
    ) -> Result<Option<(PoolAccumulator, PoolingParams)>, EngineError> {
        let Some(params) = params else {
            if self.pooler.is_some() {
                return Err(EngineError::Config(
                    "this server runs the pooling runner: it does not generate".into(),
                ));
            }
            return Ok(None);
        };
        let Some(p) = &self.pooler else {
            return Err(EngineError::Config(
                "this server runs the generate runner: it does not pool".into(),
            ));
        };
        let d = self.model.config().hidden_size;
        if let Some(dim) = params.dimensions {
            if p.setup.kind != PoolingKind::Embed || dim == 0 || dim > d {
                return Err(SamplingError::invalid(
                    "dimensions",
                    format!(
                        "dimensions must be between 1 and the model's {d} embedding dimensions"
                    ),
                )
                .into());
            }
        }
        let acc = PoolAccumulator::new(p.setup.pooler.pooling_type, d);
        Ok(Some((acc, params)))
    }

    /// A pooling prompt must be non-empty, fit `max_model_len` and hold only known tokens
    /// (a bad token would otherwise fail the forward pass of the whole batch).
    pub(super) fn validate_pool_prompt(&self, prompt: &[u32]) -> Result<(), EngineError> {
        if prompt.is_empty() {
            return Err(SamplingError::invalid("input", "The prompt cannot be empty").into());
        }
        if prompt.len() > self.max_model_len {
            return Err(SamplingError::ContextLengthExceeded {
                max_model_len: self.max_model_len,
                prompt_len: prompt.len(),
                max_tokens: None,
            }
            .into());
        }
        let vocab = self.model.config().vocab_size;
        if let Some(t) = prompt.iter().find(|t| **t as usize >= vocab) {
            return Err(SamplingError::invalid(
                "input",
                format!("token id {t} is outside the vocabulary (size {vocab})"),
            )
            .into());
        }
        Ok(())
    }

    /// One batch of the pooling runner.
    pub(super) fn step_pooling(&mut self) -> Result<StepStats, EngineError> {
        let started = Instant::now();
        let plan = self.scheduler.schedule();
        if plan.scheduled.is_empty() {
            return Ok(StepStats::default());
        }
        for s in &plan.scheduled {
            if let Some(st) = self.states.get_mut(&s.id) {
                st.times.first_scheduled.get_or_insert(started);
            }
        }
        let all_rows = self.pool_needs_all_rows();
        let inputs: Vec<SequenceInput> = plan
            .scheduled
            .iter()
            .map(|s| {
                let r = self.scheduler.request(s.id);
                let tokens = r.map_or(&[][..], |r| &r.tokens[s.start..s.start + s.num_new]);
                SequenceInput {
                    tokens,
                    start_pos: s.start,
                    block_table: self.scheduler.block_table(s.id),
                    all_logits: all_rows,
                }
            })
            .collect();
        let hidden = match self.model.hidden_states(&inputs, &mut self.kv) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(
                    "forward pass failed: {e}; aborting the {} requests of this step",
                    plan.scheduled.len()
                );
                drop(inputs);
                for s in &plan.scheduled {
                    self.abort(s.id);
                }
                return Err(e.into());
            }
        };
        drop(inputs);
        let mut step = StepStats {
            num_scheduled_tokens: plan.num_tokens(),
            num_seqs: plan.scheduled.len(),
            num_preempted: plan.preempted.len(),
            num_prompt_tokens: plan.num_tokens(),
            ..Default::default()
        };
        for (i, s) in plan.scheduled.iter().enumerate() {
            if let Some((acc, _)) = self.states.get_mut(&s.id).and_then(|st| st.pool.as_mut()) {
                acc.push(hidden.sequence(i));
            }
        }
        let ready = self.scheduler.finish_step(&plan);
        let now = Instant::now();
        for id in ready {
            self.finish_pooled(id, now);
        }
        step.num_generation_tokens = 0;
        self.stats.num_steps += 1;
        self.latency_log.push_step(step);
        Ok(step)
    }

    /// Pools a request whose prompt is done, sends the result, and frees its blocks.
    fn finish_pooled(&mut self, id: RequestId, now: Instant) {
        let Some(mut st) = self.states.remove(&id) else {
            return;
        };
        let r = self.scheduler.remove(id);
        let num_cached = r.map_or(0, |r| r.num_cached_tokens);
        let Some((acc, params)) = st.pool.take() else {
            return;
        };
        let Some(p) = &self.pooler else { return };
        let mut v = acc.finish();
        match (&p.head, p.setup.kind) {
            (Some(head), PoolingKind::Classify) => {
                v = head.logits(&v);
                if params.activation.unwrap_or(p.setup.pooler.activation) {
                    activate(&mut v);
                }
            }
            _ => {
                // Matryoshka: cut first, then normalise the shorter vector (as vLLM does).
                if let Some(dim) = params.dimensions.or(p.setup.pooler.dimensions) {
                    v.truncate(dim);
                }
                if params.normalize.unwrap_or(p.setup.pooler.normalize) {
                    l2_normalize(&mut v);
                }
            }
        }
        // No token is generated: first/last token stay unset, so pooling requests do not
        // enter the time-to-first-token and inter-token histograms.
        st.times.finished = Some(now);
        self.stats.num_prompt_tokens += st.num_prompt as u64;
        let out = RequestOutput {
            request_id: id,
            new_token_ids: Vec::new(),
            new_text: String::new(),
            new_logprobs: Vec::new(),
            prompt_logprobs: None,
            finished: Some(FinishReason::Stop),
            stop_reason: None,
            num_prompt_tokens: st.num_prompt,
            num_cached_tokens: num_cached,
            num_output_tokens: 0,
            times: Some(st.times),
            pooled: Some(v),
        };
        let _ = (st.sink)(out);
        self.record_finished(&st, FinishReason::Stop, num_cached);
    }
}
