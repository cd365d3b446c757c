//! One engine step: schedule, run the model on the batch, sample, detokenize, stream.

use std::time::Instant;

use super::{gpu_sampling, EngineError, LlmEngine};
use crate::model::SequenceInput;
use crate::request::{FinishReason, RequestId, RequestOutput, StopReason};
use crate::sampling;
use crate::stats::StepStats;
use crate::structured::GrammarMatcher;

impl LlmEngine {
    /// Runs one batch. Does nothing (and returns zero counts) when no request is queued.
    pub fn step(&mut self) -> Result<StepStats, EngineError> {
        if self.pooler.is_some() {
            return self.step_pooling();
        }
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
        // Grammar masks for the sequences that sample this step are computed on a helper
        // thread while the forward pass runs, so constrained requests do not lengthen the step
        // for the rest of the batch (the mask needs only tokens already sampled).
        let mut masking: Vec<(RequestId, GrammarMatcher)> = Vec::new();
        for s in &plan.scheduled {
            let samples = self
                .scheduler
                .request(s.id)
                .is_some_and(|r| s.start + s.num_new >= r.tokens.len());
            if let Some(st) = self.states.get_mut(&s.id).filter(|_| samples) {
                if let Some(g) = st.grammar.take_if(|g| g.is_active()) {
                    masking.push((s.id, g));
                }
            }
        }
        let masking_ids: Vec<RequestId> = masking.iter().map(|(id, _)| *id).collect();
        let inputs: Vec<SequenceInput> = plan
            .scheduled
            .iter()
            .map(|s| {
                let r = self.scheduler.request(s.id);
                let tokens = r.map_or(&[][..], |r| &r.tokens[s.start..s.start + s.num_new]);
                let all_logits = self.states.get(&s.id).is_some_and(|st| {
                    st.prompt_rows.is_some() && !st.prompt_logprobs_sent && s.start < st.num_prompt
                });
                SequenceInput {
                    tokens,
                    start_pos: s.start,
                    block_table: self.scheduler.block_table(s.id),
                    all_logits,
                }
            })
            .collect();
        let (forward, masked) = std::thread::scope(|scope| {
            let helper = (!masking.is_empty()).then(|| {
                scope.spawn(move || {
                    for (_, g) in masking.iter_mut() {
                        g.prepare();
                    }
                    masking
                })
            });
            let forward = self.model.forward(&inputs, &mut self.kv);
            let masked = helper.map(|h| h.join());
            (forward, masked)
        });
        let logits = match forward {
            Ok(l) => l,
            Err(e) => {
                // A batch the model refuses would be refused again: fail its requests, not the engine.
                tracing::error!(
                    "forward pass failed: {e}; aborting the {} requests of this step",
                    plan.scheduled.len()
                );
                for s in &plan.scheduled {
                    self.abort(s.id);
                }
                return Err(e.into());
            }
        };
        drop(inputs);
        match masked {
            Some(Ok(done)) => {
                for (id, g) in done {
                    if let Some(st) = self.states.get_mut(&id) {
                        st.grammar = Some(g);
                    }
                }
            }
            // llguidance catches its own panics; one escaping here is a bug in it. The
            // requests it had are ended rather than continued unconstrained.
            Some(Err(_)) => {
                tracing::error!("structured-output mask thread panicked");
                for id in masking_ids {
                    self.abort(id);
                }
            }
            None => {}
        }

        let mut step = StepStats {
            num_scheduled_tokens: plan.num_tokens(),
            num_seqs: plan.scheduled.len(),
            num_preempted: plan.preempted.len(),
            ..Default::default()
        };
        for s in &plan.scheduled {
            let is_prefill = self
                .scheduler
                .request(s.id)
                .is_some_and(|r| s.start < r.num_prompt);
            if is_prefill {
                let r = self.scheduler.request(s.id).map_or(0, |r| r.num_prompt);
                step.num_prompt_tokens += (s.start + s.num_new).min(r) - s.start;
            }
        }
        let ready = self.scheduler.finish_step(&plan);

        // Prompt logprobs: gather rows chunk by chunk, compute once the prompt is done.
        for (i, s) in plan.scheduled.iter().enumerate() {
            let Some(st) = self.states.get_mut(&s.id) else {
                continue;
            };
            if let Some(rows) = st.prompt_rows.as_mut() {
                if !st.prompt_logprobs_sent && s.start < st.num_prompt {
                    let keep = (st.num_prompt - s.start).min(s.num_new);
                    rows.extend_from_slice(&logits.sequence(i)[..keep * logits.vocab_size]);
                }
            }
        }

        let index: std::collections::HashMap<RequestId, usize> = plan
            .scheduled
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, i))
            .collect();
        let now = Instant::now();
        for id in ready {
            let Some(&i) = index.get(&id) else { continue };
            let row = logits.last(i);
            step.num_generation_tokens += 1;
            self.emit_token(id, row, now);
        }
        let elapsed = started.elapsed();
        if elapsed > self.config.iteration_timeout {
            tracing::warn!(
                "engine step took {:.1}s, over VLLM_ENGINE_ITERATION_TIMEOUT_S ({}s)",
                elapsed.as_secs_f64(),
                self.config.iteration_timeout.as_secs()
            );
        }
        self.stats.num_generation_tokens += step.num_generation_tokens as u64;
        self.stats.num_steps += 1;
        self.latency_log.push_step(step);
        Ok(step)
    }

    /// Samples the next token of a request, streams it, and retires the request if it stops.
    fn emit_token(&mut self, id: RequestId, row: &[f32], now: Instant) {
        let Some(r) = self.scheduler.request(id) else {
            return;
        };
        let generated = &r.tokens[r.num_prompt..];
        let num_cached = r.num_cached_tokens;
        let prompt_tokens = r.tokens[..r.num_prompt].to_vec();
        let Some(st) = self.states.get_mut(&id) else {
            return;
        };
        let sampled = match st.grammar.as_mut().filter(|g| g.is_active()) {
            // A constrained row is masked on the host, so it is sampled there too.
            Some(g) => {
                self.masked_row.clear();
                self.masked_row.extend_from_slice(row);
                g.apply(&mut self.masked_row);
                st.sampler
                    .sample(&self.masked_row, generated, self.config.logprobs_mode)
            }
            None => {
                let on_gpu = if self.gpu_sampler {
                    gpu_sampling::sample_on_gpu(
                        &self.model,
                        &mut st.sampler,
                        row,
                        generated,
                        self.config.logprobs_mode,
                    )
                } else {
                    None
                };
                on_gpu
                    .unwrap_or_else(|| st.sampler.sample(row, generated, self.config.logprobs_mode))
            }
        };
        let token = sampled.token;
        let mut grammar_failed = false;
        if let Some(g) = st.grammar.as_mut() {
            g.accept(token);
            if let Some(why) = g.failure() {
                // Only possible when other filters (allowed_token_ids, logit_bias, min_tokens
                // hiding EOS) left no token the grammar allows.
                tracing::warn!("request {id}: structured output ended: {why}");
                grammar_failed = true;
            }
        }
        self.scheduler.append_token(id, token);
        st.num_output += 1;
        match st.times.last_token {
            None => {
                self.latency_log
                    .push_ttft(now.duration_since(st.times.arrival).as_secs_f64());
                self.stats.num_prompt_tokens += st.num_prompt as u64;
            }
            Some(prev) => self
                .latency_log
                .push_itl(now.duration_since(prev).as_secs_f64()),
        }
        st.times.first_token.get_or_insert(now);
        st.times.last_token = Some(now);

        let mut finish = None;
        let mut stop_reason = None;
        let mut text = String::new();
        if st.num_output >= st.params.min_tokens {
            if !st.params.ignore_eos && self.eos_token_ids.contains(&token) {
                finish = Some(FinishReason::Stop);
                stop_reason = Some(StopReason::Eos);
            } else if st.params.stop_token_ids.contains(&token) {
                finish = Some(FinishReason::Stop);
                stop_reason = Some(StopReason::TokenId(token));
            }
        }
        // A stop token's own text is not part of the answer (as in vLLM), unless asked for.
        let show_token = finish.is_none() || st.params.include_stop_str_in_output;
        if let Some(d) = st.detok.as_mut().filter(|_| show_token) {
            let step = d.push(token);
            text = step.delta;
            if let Some(s) = step.stop {
                finish = Some(FinishReason::Stop);
                stop_reason = Some(StopReason::String(s));
            }
        }
        if finish.is_none() && grammar_failed {
            finish = Some(FinishReason::Stop);
        }
        if finish.is_none()
            && (st.num_output >= st.max_tokens
                || st.num_prompt + st.num_output >= self.max_model_len)
        {
            finish = Some(FinishReason::Length);
        }
        if finish.is_some() && !matches!(stop_reason, Some(StopReason::String(_))) {
            if let Some(d) = st.detok.as_mut() {
                text.push_str(&d.finish());
            }
        }
        let prompt_logprobs = match (&st.prompt_rows, st.prompt_logprobs_sent) {
            (Some(rows), false) => {
                st.prompt_logprobs_sent = true;
                let k = st.params.prompt_logprobs.unwrap_or(0);
                Some(sampling::prompt_logprobs(
                    rows,
                    self.model.config().vocab_size,
                    &prompt_tokens,
                    k,
                ))
            }
            _ => None,
        };
        if prompt_logprobs.is_some() {
            st.prompt_rows = None;
        }
        if finish.is_some() {
            st.times.finished = Some(now);
        }
        let out = RequestOutput {
            request_id: id,
            new_token_ids: vec![token],
            new_text: text,
            new_logprobs: if st.params.logprobs.is_some() {
                vec![sampled]
            } else {
                Vec::new()
            },
            prompt_logprobs,
            finished: finish,
            stop_reason,
            num_prompt_tokens: st.num_prompt,
            num_cached_tokens: num_cached,
            num_output_tokens: st.num_output,
            times: finish.map(|_| st.times),
            pooled: None,
        };
        let delivered = (st.sink)(out);
        if let Some(reason) = finish {
            if let Some(st) = self.states.remove(&id) {
                self.scheduler.remove(id);
                self.record_finished(&st, reason, num_cached);
            }
        } else if !delivered {
            self.abort(id);
        }
    }
}
