//! In-process generation, like vLLM's `LLM.generate`: submit everything at once (so continuous
//! batching sees the whole load), step until done, return outputs in input order.

use std::sync::mpsc;

use crate::llm_engine::{EngineError, LlmEngine};
use crate::request::{EngineRequest, FinishReason, RequestOutput, RequestTimes, StopReason};
use crate::sampling::{PromptLogprob, SampledToken};

/// One finished request (one of its `n` samples).
#[derive(Debug, Clone)]
pub struct CompletionOutput {
    pub prompt_token_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub logprobs: Vec<SampledToken>,
    pub prompt_logprobs: Option<Vec<Option<PromptLogprob>>>,
    pub finish_reason: FinishReason,
    pub stop_reason: Option<StopReason>,
    pub num_cached_tokens: usize,
    pub times: Option<RequestTimes>,
}

/// Runs every request to completion. A request with `n > 1` yields `n` consecutive outputs;
/// sample `i` of a seeded request uses seed + i, so the samples differ but stay reproducible.
/// An invalid request fails the whole call before anything runs.
pub fn generate(
    engine: &mut LlmEngine,
    requests: Vec<EngineRequest>,
) -> Result<Vec<CompletionOutput>, EngineError> {
    let (tx, rx) = mpsc::channel::<RequestOutput>();
    let mut slots: Vec<(u64, CompletionOutput)> = Vec::new();
    for req in requests {
        let n = req.params.n.max(1);
        for i in 0..n {
            let mut child = req.clone();
            child.params.n = 1;
            child.params.seed = req.params.seed.map(|s| s.wrapping_add(i as u64));
            let prompt = child.prompt_token_ids.clone();
            let tx = tx.clone();
            let id = engine.add_request(child, Box::new(move |o| tx.send(o).is_ok()))?;
            slots.push((
                id,
                CompletionOutput {
                    prompt_token_ids: prompt,
                    token_ids: Vec::new(),
                    text: String::new(),
                    logprobs: Vec::new(),
                    prompt_logprobs: None,
                    finish_reason: FinishReason::Abort,
                    stop_reason: None,
                    num_cached_tokens: 0,
                    times: None,
                },
            ));
        }
    }
    drop(tx);
    let index: std::collections::HashMap<u64, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut remaining = slots.len();
    while remaining > 0 && engine.has_work() {
        engine.step()?;
        while let Ok(o) = rx.try_recv() {
            let Some(&i) = index.get(&o.request_id) else {
                continue;
            };
            let c = &mut slots[i].1;
            c.token_ids.extend(&o.new_token_ids);
            c.text.push_str(&o.new_text);
            c.logprobs.extend(o.new_logprobs);
            if o.prompt_logprobs.is_some() {
                c.prompt_logprobs = o.prompt_logprobs;
            }
            c.num_cached_tokens = o.num_cached_tokens;
            if let Some(f) = o.finished {
                c.finish_reason = f;
                c.stop_reason = o.stop_reason;
                c.times = o.times;
                remaining -= 1;
            }
        }
    }
    Ok(slots.into_iter().map(|(_, c)| c).collect())
}
