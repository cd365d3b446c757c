//! The engine under load, on the real default model: continuous batching, chunked prefill,
//! preemption and prefix caching must never change what a request generates. The expected
//! tokens are the Hugging Face transformers greedy continuations in fixtures/reference.

use std::path::Path;

use engine::llm_engine::{EngineConfig, LlmEngine};
use engine::loader::{self, LoadOptions};
use engine::offline::generate;
use engine::paths;
use engine::request::{EngineRequest, FinishReason};
use engine::sampling::SamplingParams;
use serde_json::Value;

const MAX_LEN: usize = 1024;

fn engine_with(configure: impl FnOnce(&mut EngineConfig)) -> Option<LlmEngine> {
    let path = paths::test_model(paths::DEFAULT_MODEL_FILE)?;
    let loaded = loader::load(
        &LoadOptions {
            // float32 reference data: the CPU backend, whatever `auto` would pick.
            device: engine::device::Device::Cpu,
            model: path,
            max_model_len: Some(MAX_LEN),
            ..Default::default()
        },
        &|_, _| {},
    )
    .unwrap();
    let mut cfg = EngineConfig::new(MAX_LEN);
    cfg.kv_cache_bytes = 512 << 20;
    configure(&mut cfg);
    Some(LlmEngine::new(loaded, cfg).unwrap())
}

/// (prompt ids, reference greedy ids) of the golden prompts.
fn golden() -> Vec<(Vec<u32>, Vec<u32>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference/smollm2-135m-q4_1.dev.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids = |x: &Value| {
        x.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect::<Vec<_>>()
    };
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (ids(&p["prompt_token_ids"]), ids(&p["greedy_token_ids"])))
        .collect()
}

fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

/// Every golden prompt `copies` times, all submitted at once.
fn run_golden(engine: &mut LlmEngine, copies: usize) {
    let cases = golden();
    let reqs: Vec<EngineRequest> = (0..copies)
        .flat_map(|_| {
            cases
                .iter()
                .map(|(p, _)| EngineRequest::new(p.clone(), greedy(32)))
        })
        .collect();
    let outs = generate(engine, reqs).unwrap();
    assert_eq!(outs.len(), cases.len() * copies);
    for (k, out) in outs.iter().enumerate() {
        let want = &cases[k % cases.len()].1;
        assert_eq!(
            &out.token_ids,
            want,
            "request {k} (golden prompt {})",
            k % cases.len()
        );
        let reason = if want.len() < 32 {
            FinishReason::Stop
        } else {
            FinishReason::Length
        };
        assert_eq!(out.finish_reason, reason, "request {k}");
    }
}

#[test]
fn forty_concurrent_requests_match_the_reference() {
    let Some(mut e) = engine_with(|_| {}) else {
        return;
    };
    run_golden(&mut e, 4);
    assert_eq!(e.stats().num_preemptions, 0);
}

#[test]
fn tiny_token_budget_chunks_prefill_without_changing_tokens() {
    let Some(mut e) = engine_with(|c| {
        c.scheduler.max_num_batched_tokens = 7;
        c.scheduler.max_num_partial_prefills = 2;
        c.scheduler.max_long_partial_prefills = 2;
    }) else {
        return;
    };
    run_golden(&mut e, 1);
}

#[test]
fn preempted_requests_finish_with_their_unpreempted_tokens() {
    // 64 blocks of 16 = 1024 token slots (one max-length sequence) for 20 requests needing
    // about 1,900 slots together.
    let Some(mut e) = engine_with(|c| {
        c.num_blocks_override = Some(64);
        c.enable_prefix_caching = false;
    }) else {
        return;
    };
    run_golden(&mut e, 2);
    assert!(
        e.stats().num_preemptions > 0,
        "the cache was meant to be too small to avoid preemption"
    );
    assert_eq!(e.stats().kv_cache_usage, 0.0);
}

/// The default: prefix caching on, so a preempted request that resumes finds (some of) its own
/// blocks still cached and recomputes only the rest; its tokens must still be the reference's.
#[test]
fn preempted_requests_resume_from_cached_blocks_with_unchanged_tokens() {
    let Some(mut roomy) = engine_with(|c| c.enable_prefix_caching = true) else {
        return;
    };
    run_golden(&mut roomy, 2);
    assert_eq!(roomy.stats().num_preemptions, 0);
    let hits_without_preemption = roomy.stats().prefix_cache_hits;
    drop(roomy);

    let mut e = engine_with(|c| {
        c.num_blocks_override = Some(64);
        c.enable_prefix_caching = true;
    })
    .unwrap();
    run_golden(&mut e, 2);
    let s = e.stats();
    assert!(
        s.num_preemptions > 0,
        "the cache was meant to be too small to avoid preemption"
    );
    // Same requests, same duplicates: the extra hits are resumed requests reusing their blocks.
    assert!(
        s.prefix_cache_hits > hits_without_preemption,
        "resumed requests found none of their blocks: {} hits with preemption, {} without",
        s.prefix_cache_hits,
        hits_without_preemption
    );
    assert_eq!(s.kv_cache_usage, 0.0);
}

#[test]
fn shared_prefix_is_computed_once() {
    let prefix: Vec<u32> = golden()[4].0.iter().copied().cycle().take(200).collect();
    let run = |caching: bool| {
        let mut e = engine_with(|c| c.enable_prefix_caching = caching)?;
        let mut first = prefix.clone();
        first.extend([28, 339, 3365]);
        let mut second = prefix.clone();
        second.extend([1165, 6560, 30]);
        let a = generate(&mut e, vec![EngineRequest::new(first, greedy(8))]).unwrap();
        let hits_before = e.stats().prefix_cache_hits;
        let b = generate(&mut e, vec![EngineRequest::new(second, greedy(8))]).unwrap();
        let hits = e.stats().prefix_cache_hits - hits_before;
        Some((
            a[0].token_ids.clone(),
            b[0].token_ids.clone(),
            b[0].num_cached_tokens,
            hits,
        ))
    };
    let Some((a_on, b_on, cached, hits)) = run(true) else {
        return;
    };
    // 200 shared tokens = 12 full blocks of 16 (192 tokens); only 11 new tokens are computed.
    assert_eq!(cached, 192);
    assert_eq!(hits, 192);
    let (a_off, b_off, cached_off, _) = run(false).unwrap();
    assert_eq!(cached_off, 0);
    assert_eq!((a_on, b_on), (a_off, b_off));
}

#[test]
fn seeded_sampling_is_reproducible_alone_or_batched() {
    let Some(mut e) = engine_with(|_| {}) else {
        return;
    };
    let cases = golden();
    let sampled = |seed| SamplingParams {
        temperature: 1.0,
        top_p: 0.95,
        seed: Some(seed),
        max_tokens: Some(24),
        ignore_eos: true,
        ..Default::default()
    };
    let alone = generate(
        &mut e,
        vec![EngineRequest::new(cases[0].0.clone(), sampled(42))],
    )
    .unwrap();
    let mut batch: Vec<EngineRequest> = cases
        .iter()
        .map(|(p, _)| EngineRequest::new(p.clone(), sampled(7)))
        .collect();
    batch.insert(3, EngineRequest::new(cases[0].0.clone(), sampled(42)));
    batch.push(EngineRequest::new(cases[0].0.clone(), sampled(43)));
    let outs = generate(&mut e, batch).unwrap();
    assert_eq!(outs[3].token_ids, alone[0].token_ids);
    assert_ne!(
        outs.last().unwrap().token_ids,
        alone[0].token_ids,
        "a different seed should give a different sample"
    );
}

#[test]
fn aborting_half_of_64_requests_leaves_no_blocks_behind() {
    let Some(mut e) = engine_with(|_| {}) else {
        return;
    };
    let cases = golden();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut ids = Vec::new();
    for k in 0..64 {
        let tx = tx.clone();
        let req = EngineRequest::new(cases[k % cases.len()].0.clone(), greedy(16));
        ids.push(
            e.add_request(req, Box::new(move |o| tx.send(o).is_ok()))
                .unwrap(),
        );
    }
    for _ in 0..3 {
        e.step().unwrap();
    }
    for id in ids.iter().step_by(2) {
        e.abort(*id);
    }
    while e.has_work() {
        e.step().unwrap();
    }
    let finals: Vec<_> = rx
        .try_iter()
        .filter_map(|o| o.finished.map(|f| (o.request_id, f)))
        .collect();
    assert_eq!(finals.len(), 64, "every request ends exactly once");
    assert_eq!(
        finals
            .iter()
            .filter(|(_, f)| *f == FinishReason::Abort)
            .count(),
        32
    );
    assert_eq!(
        e.stats().kv_cache_usage,
        0.0,
        "every block is free or cached-free"
    );
}
