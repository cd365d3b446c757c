//! How requests end, on the real default model, against the transformers greedy reference:
//! stop strings (spanning tokens), stop token ids, EOS, min_tokens, ignore_eos, max_tokens,
//! and streamed text that never splits a UTF-8 character.

use std::path::Path;

use engine::llm_engine::{EngineConfig, LlmEngine};
use engine::loader::{self, LoadOptions};
use engine::offline::{generate, CompletionOutput};
use engine::paths;
use engine::request::{EngineRequest, FinishReason, StopReason};
use engine::sampling::SamplingParams;
use serde_json::Value;

fn engine() -> Option<LlmEngine> {
    let path = paths::test_model(paths::DEFAULT_MODEL_FILE)?;
    let loaded = loader::load(
        &LoadOptions {
            // float32 reference data: the CPU backend, whatever `auto` would pick.
            device: engine::device::Device::Cpu,
            model: path,
            max_model_len: Some(512),
            ..Default::default()
        },
        &|_, _| {},
    )
    .unwrap();
    let mut cfg = EngineConfig::new(512);
    cfg.kv_cache_bytes = 128 << 20;
    Some(LlmEngine::new(loaded, cfg).unwrap())
}

struct Golden {
    prompt: Vec<u32>,
    tokens: Vec<u32>,
    text: String,
}

/// The transformers reference of the default model (fixtures/reference).
fn reference() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference/smollm2-135m-q4_1.dev.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn golden(i: usize) -> Golden {
    let v = reference();
    let p = &v["prompts"][i];
    let ids = |x: &Value| {
        x.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect::<Vec<_>>()
    };
    Golden {
        prompt: ids(&p["prompt_token_ids"]),
        tokens: ids(&p["greedy_token_ids"]),
        text: p["greedy_text"].as_str().unwrap().to_string(),
    }
}

fn run(e: &mut LlmEngine, prompt: &[u32], params: SamplingParams) -> CompletionOutput {
    generate(e, vec![EngineRequest::new(prompt.to_vec(), params)])
        .unwrap()
        .remove(0)
}

fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(32),
        skip_special_tokens: false,
        ..Default::default()
    }
}

#[test]
fn stop_string_spanning_tokens_is_cut_or_kept() {
    let Some(mut e) = engine() else { return };
    let g = golden(0); // " Aria. She was a curious and adventurous soul ..."
    let stop = "curious and".to_string();
    let out = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            stop: vec![stop.clone()],
            ..greedy()
        },
    );
    assert_eq!(out.text, " Aria. She was a ");
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!(out.stop_reason, Some(StopReason::String(stop.clone())));
    let kept = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            stop: vec![stop.clone()],
            include_stop_str_in_output: true,
            ..greedy()
        },
    );
    assert_eq!(kept.text, " Aria. She was a curious and");
    assert!(g.text.starts_with(&kept.text));
}

#[test]
fn stop_token_id_and_max_tokens() {
    let Some(mut e) = engine() else { return };
    let g = golden(0);
    let out = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            stop_token_ids: vec![g.tokens[3]],
            ..greedy()
        },
    );
    assert_eq!(out.token_ids, g.tokens[..4]);
    assert_eq!(
        (out.finish_reason, out.stop_reason),
        (FinishReason::Stop, Some(StopReason::TokenId(g.tokens[3])))
    );
    let out = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            max_tokens: Some(5),
            ..greedy()
        },
    );
    assert_eq!(out.token_ids, g.tokens[..5]);
    assert_eq!(out.finish_reason, FinishReason::Length);
}

#[test]
fn eos_min_tokens_and_ignore_eos() {
    let Some(mut e) = engine() else { return };
    let g = golden(7); // chat answer that ends with <|im_end|> after 8 tokens
    let eos = *g.tokens.last().unwrap();
    let out = run(&mut e, &g.prompt, greedy());
    assert_eq!(out.token_ids, g.tokens);
    assert_eq!(
        (out.finish_reason, out.stop_reason.clone()),
        (FinishReason::Stop, Some(StopReason::Eos))
    );

    let out = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            ignore_eos: true,
            max_tokens: Some(12),
            ..greedy()
        },
    );
    assert_eq!(out.token_ids.len(), 12);
    assert_eq!(out.token_ids[..g.tokens.len()], g.tokens[..]);
    assert_eq!(out.finish_reason, FinishReason::Length);

    let out = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            min_tokens: 10,
            max_tokens: Some(20),
            ..greedy()
        },
    );
    assert!(
        !out.token_ids[..10].contains(&eos),
        "EOS is banned before min_tokens: {:?}",
        out.token_ids
    );
    assert_eq!(
        out.token_ids[..g.tokens.len() - 1],
        g.tokens[..g.tokens.len() - 1]
    );
    // Where the reference ended, EOS is banned: the token is the reference's best other one.
    let step = &reference()["prompts"][7]["greedy_top5"][g.tokens.len() - 1];
    let second = step["top5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[0].as_u64().unwrap() as u32)
        .find(|&t| t != eos)
        .unwrap();
    assert_eq!(out.token_ids[g.tokens.len() - 1], second);
    // From token 10 on EOS is allowed again: the request ends at the first EOS or at max_tokens.
    match out.finish_reason {
        FinishReason::Stop => {
            assert_eq!(out.stop_reason, Some(StopReason::Eos));
            assert_eq!(out.token_ids.last(), Some(&eos), "{:?}", out.token_ids);
            assert!(out.token_ids.len() >= 11, "{:?}", out.token_ids);
        }
        FinishReason::Length => assert_eq!(out.token_ids.len(), 20),
        other => panic!("{other:?}"),
    }
    assert!(
        !out.token_ids[..out.token_ids.len() - 1].contains(&eos),
        "nothing after the first allowed EOS: {:?}",
        out.token_ids
    );
}

#[test]
fn streamed_japanese_text_never_splits_a_character() {
    let Some(mut e) = engine() else { return };
    let g = golden(5); // continues with " \"おまえ\" (おまえ), which is ..."
    let (tx, rx) = std::sync::mpsc::channel();
    e.add_request(
        EngineRequest::new(g.prompt.clone(), greedy()),
        Box::new(move |o| tx.send(o).is_ok()),
    )
    .unwrap();
    while e.has_work() {
        e.step().unwrap();
    }
    let deltas: Vec<String> = rx.try_iter().map(|o| o.new_text).collect();
    assert!(deltas.iter().all(|d| !d.contains('\u{FFFD}')), "{deltas:?}");
    assert_eq!(deltas.concat(), g.text);
    // A multi-token character really did arrive in pieces: some step emitted no text.
    assert!(deltas.iter().any(|d| d.is_empty()), "{deltas:?}");
}

#[test]
fn prompt_and_sample_logprobs_match_the_reference() {
    let Some(mut e) = engine() else { return };
    let v = reference();
    let p = &v["prompts"][0];
    let g = golden(0);
    let out = run(
        &mut e,
        &g.prompt,
        SamplingParams {
            prompt_logprobs: Some(5),
            logprobs: Some(5),
            max_tokens: Some(4),
            ..greedy()
        },
    );
    let prompt_lp = out.prompt_logprobs.expect("prompt logprobs were asked for");
    assert_eq!(prompt_lp.len(), g.prompt.len());
    assert!(prompt_lp[0].is_none(), "position 0 has no distribution");
    // Same tolerance as golden_models.rs: float32 on both sides, different reduction orders.
    for entry in p["prompt_logprobs_top5"].as_array().unwrap() {
        let i = entry["i"].as_u64().unwrap() as usize;
        let got = prompt_lp[i].as_ref().unwrap();
        assert_eq!(got.token as u64, entry["token_id"].as_u64().unwrap());
        assert!(
            (got.logprob as f64 - entry["logprob"].as_f64().unwrap()).abs() < 1e-3,
            "position {i}"
        );
        assert_eq!(
            got.rank as u64,
            entry["rank"].as_u64().unwrap(),
            "position {i}"
        );
        let want_top: Vec<u64> = entry["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t[0].as_u64().unwrap())
            .collect();
        let got_top: Vec<u64> = got.top.iter().map(|t| t.0 as u64).collect();
        assert_eq!(got_top, want_top, "position {i}");
    }
    assert_eq!(out.token_ids, g.tokens[..4]);
    assert_eq!(out.logprobs.len(), 4, "one entry per sampled token");
    for (s, step) in out.logprobs.iter().enumerate() {
        let want = &p["greedy_top5"][s];
        assert_eq!(step.token as u64, want["token_id"].as_u64().unwrap());
        assert!((step.logprob as f64 - want["logprob"].as_f64().unwrap()).abs() < 1e-3);
        assert_eq!(step.rank, 1);
        assert_eq!(step.top_logprobs.len(), 5);
    }
}
