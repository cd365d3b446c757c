//! Submitting a request's choices (prompts × n) to the engine and merging their output streams.
//! Dropping the merged stream (a client that went away) aborts every unfinished choice.

use engine::actor::EngineHandle;
use engine::request::{
    EngineRequest, FinishReason, GrammarRequest, RequestId, RequestOutput, StopReason,
};
use engine::sampling::{PromptLogprob, SampledToken, SamplingParams};
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::ApiError;

/// One output of one choice.
pub struct ChoiceEvent {
    pub index: usize,
    pub output: RequestOutput,
}

/// The outputs of every choice of a request, in arrival order.
pub struct ChoiceStream {
    rx: mpsc::UnboundedReceiver<ChoiceEvent>,
    ids: Vec<RequestId>,
    engine: EngineHandle,
    pub num_choices: usize,
    remaining: usize,
}

impl ChoiceStream {
    pub async fn next(&mut self) -> Option<ChoiceEvent> {
        if self.remaining == 0 {
            return None;
        }
        let ev = self.rx.recv().await?;
        if ev.output.finished.is_some() {
            self.remaining -= 1;
        }
        Some(ev)
    }
}

impl Drop for ChoiceStream {
    fn drop(&mut self) {
        if self.remaining > 0 {
            // Aborting a finished id is a no-op in the engine, so no bookkeeping is needed.
            for id in &self.ids {
                self.engine.abort(*id);
            }
        }
    }
}

/// Submits `prompts.len() × n` requests; choice `p * n + i` is sample `i` of prompt `p`.
pub async fn submit(
    engine: &EngineHandle,
    prompts: Vec<Vec<u32>>,
    params: &SamplingParams,
    priority: i32,
    grammar: Option<&GrammarRequest>,
) -> Result<ChoiceStream, ApiError> {
    let n = params.n.max(1);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut ids = Vec::new();
    let mut index = 0;
    for prompt in prompts {
        for i in 0..n {
            let mut req = EngineRequest::new(prompt.clone(), params.for_child(i));
            req.priority = priority;
            // Each sample follows the constraint on its own (a deep copy of the compiled one).
            req.grammar = grammar.cloned();
            let submitted = engine.submit(req).await;
            let mut stream = match submitted {
                Ok(s) => s,
                Err(e) => {
                    for id in &ids {
                        engine.abort(*id);
                    }
                    return Err(e.into());
                }
            };
            ids.push(stream.id);
            let tx = tx.clone();
            let choice = index;
            tokio::spawn(async move {
                while let Some(output) = stream.outputs.recv().await {
                    let done = output.finished.is_some();
                    if tx
                        .send(ChoiceEvent {
                            index: choice,
                            output,
                        })
                        .is_err()
                        || done
                    {
                        break;
                    }
                }
            });
            index += 1;
        }
    }
    Ok(ChoiceStream {
        rx,
        ids,
        engine: engine.clone(),
        num_choices: index,
        remaining: index,
    })
}

/// Everything one choice produced, for non-streaming responses and usage.
#[derive(Default)]
pub struct ChoiceResult {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<SampledToken>,
    pub prompt_logprobs: Option<Vec<Option<PromptLogprob>>>,
    pub finish_reason: Option<FinishReason>,
    pub stop_reason: Option<StopReason>,
    pub num_prompt_tokens: usize,
    pub num_cached_tokens: usize,
}

impl ChoiceResult {
    pub fn absorb(&mut self, o: RequestOutput) {
        self.text.push_str(&o.new_text);
        self.token_ids.extend(&o.new_token_ids);
        self.logprobs.extend(o.new_logprobs);
        if o.prompt_logprobs.is_some() {
            self.prompt_logprobs = o.prompt_logprobs;
        }
        self.num_prompt_tokens = o.num_prompt_tokens;
        self.num_cached_tokens = o.num_cached_tokens;
        if o.finished.is_some() {
            self.finish_reason = o.finished;
            self.stop_reason = o.stop_reason;
        }
    }
}

/// Runs every choice to the end.
pub async fn collect(mut stream: ChoiceStream) -> Result<Vec<ChoiceResult>, ApiError> {
    let mut results: Vec<ChoiceResult> = (0..stream.num_choices)
        .map(|_| ChoiceResult::default())
        .collect();
    while let Some(ev) = stream.next().await {
        if let Some(r) = results.get_mut(ev.index) {
            r.absorb(ev.output);
        }
    }
    if results.iter().any(|r| r.finish_reason.is_none()) {
        return Err(ApiError::from(engine::llm_engine::EngineError::EngineDead));
    }
    Ok(results)
}

/// vLLM's `stop_reason`: null for EOS/length, the token id or the stop string otherwise.
pub fn stop_reason_json(r: &Option<StopReason>) -> Option<Value> {
    match r {
        Some(StopReason::TokenId(t)) => Some(Value::from(*t)),
        Some(StopReason::String(s)) => Some(Value::from(s.clone())),
        _ => None,
    }
}
