//! In-process pooling, like vLLM's `LLM.embed` / `LLM.classify`: submit every prompt at once
//! (so they batch), step until done, return the pooled vectors in input order.

use std::sync::mpsc;

use super::PoolingParams;
use crate::llm_engine::{EngineError, LlmEngine};
use crate::request::{EngineRequest, RequestOutput};
use crate::sampling::SamplingParams;

/// Pools each prompt on a pooling engine. An invalid prompt fails the call before anything runs.
pub fn pool(
    engine: &mut LlmEngine,
    prompts: Vec<Vec<u32>>,
    params: &PoolingParams,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let (tx, rx) = mpsc::channel::<RequestOutput>();
    let mut ids = Vec::with_capacity(prompts.len());
    for p in prompts {
        let mut req = EngineRequest::new(p, SamplingParams::default());
        req.pooling = Some(params.clone());
        let tx = tx.clone();
        ids.push(engine.add_request(req, Box::new(move |o| tx.send(o).is_ok()))?);
    }
    drop(tx);
    let mut out: Vec<Option<Vec<f32>>> = vec![None; ids.len()];
    let index: std::collections::HashMap<u64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    while engine.has_work() {
        engine.step()?;
        while let Ok(o) = rx.try_recv() {
            if let (Some(&i), Some(v)) = (index.get(&o.request_id), o.pooled) {
                out[i] = Some(v);
            }
        }
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}
