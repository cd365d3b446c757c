//! Validation rules, JSON parsing and generation-config defaults of [`SamplingParams`].

use serde_json::json;

use super::*;

fn ctx() -> ValidationContext {
    ValidationContext {
        vocab_size: 100,
        max_model_len: 64,
        max_logprobs: 20,
        prompt_len: 10,
    }
}

/// Asserts that `params` is rejected for `param`, with a message containing `needle`.
#[track_caller]
fn rejects(params: SamplingParams, param: &str, needle: &str) {
    rejects_in(params, &ctx(), param, needle);
}

#[track_caller]
fn rejects_in(params: SamplingParams, ctx: &ValidationContext, param: &str, needle: &str) {
    match params.validate(ctx) {
        Ok(()) => panic!("{params:?} was accepted; expected an error about {param}"),
        Err(e) => {
            assert_eq!(e.param(), param, "wrong parameter in {e}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
        }
    }
}

fn with(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
    let mut p = SamplingParams::default();
    f(&mut p);
    p
}

#[test]
fn defaults_are_vllms_and_valid() {
    let p = SamplingParams::default();
    assert_eq!(
        (p.n, p.temperature, p.top_p, p.top_k, p.min_p),
        (1, 1.0, 1.0, 0, 0.0)
    );
    assert_eq!(
        (
            p.repetition_penalty,
            p.presence_penalty,
            p.frequency_penalty
        ),
        (1.0, 0.0, 0.0)
    );
    assert!(p.skip_special_tokens && p.spaces_between_special_tokens && p.detokenize);
    assert!(!p.ignore_eos && !p.include_stop_str_in_output);
    assert_eq!(
        (p.max_tokens, p.min_tokens, p.logprobs, p.seed),
        (None, 0, None, None)
    );
    p.validate(&ctx()).unwrap();
}

#[test]
fn boundary_values_are_accepted() {
    let ok = [
        with(|p| p.temperature = 0.0),
        with(|p| p.top_p = 1.0),
        with(|p| p.top_p = 1e-6),
        with(|p| p.top_k = -1),
        with(|p| p.top_k = 0),
        with(|p| p.top_k = 1),
        with(|p| p.min_p = 1.0),
        with(|p| p.presence_penalty = -2.0),
        with(|p| p.frequency_penalty = 2.0),
        with(|p| p.max_tokens = Some(54)),
        with(|p| {
            p.max_tokens = Some(5);
            p.min_tokens = 5;
        }),
        with(|p| p.logprobs = Some(20)),
        with(|p| p.prompt_logprobs = Some(0)),
        with(|p| {
            p.logit_bias.insert(99, -100.0);
        }),
        with(|p| p.allowed_token_ids = Some(vec![0, 99])),
        with(|p| p.stop_token_ids = vec![99]),
        with(|p| p.truncate_prompt_tokens = Some(64)),
        with(|p| p.n = 3),
    ];
    for p in ok {
        if let Err(e) = p.validate(&ctx()) {
            panic!("{p:?} rejected: {e}");
        }
    }
}

#[test]
fn n_and_best_of() {
    rejects(with(|p| p.n = 0), "n", "n must be at least 1, got 0.");
    rejects(
        with(|p| {
            p.n = 3;
            p.best_of = Some(2);
        }),
        "best_of",
        "best_of must be greater than or equal to n, got n=3 and best_of=2.",
    );
    rejects(
        with(|p| {
            p.n = 2;
            p.temperature = 0.0;
        }),
        "n",
        "n must be 1 when using greedy sampling, got 2.",
    );
}

#[test]
fn penalties() {
    rejects(
        with(|p| p.presence_penalty = 2.5),
        "presence_penalty",
        "must be in [-2, 2], got 2.5.",
    );
    rejects(
        with(|p| p.presence_penalty = f32::NAN),
        "presence_penalty",
        "[-2, 2]",
    );
    rejects(
        with(|p| p.frequency_penalty = -2.1),
        "frequency_penalty",
        "must be in [-2, 2]",
    );
    rejects(
        with(|p| p.repetition_penalty = 0.0),
        "repetition_penalty",
        "repetition_penalty must be greater than zero, got 0.0.",
    );
    rejects(
        with(|p| p.repetition_penalty = -1.0),
        "repetition_penalty",
        "greater than zero",
    );
    rejects(
        with(|p| p.repetition_penalty = f32::INFINITY),
        "repetition_penalty",
        "finite",
    );
}

#[test]
fn temperature_and_filters() {
    rejects(
        with(|p| p.temperature = -1.0),
        "temperature",
        "temperature must be non-negative, got -1.0.",
    );
    rejects(with(|p| p.temperature = f32::NAN), "temperature", "finite");
    rejects(
        with(|p| p.temperature = f32::INFINITY),
        "temperature",
        "finite",
    );
    rejects(
        with(|p| p.top_p = 0.0),
        "top_p",
        "top_p must be in (0, 1], got 0.0.",
    );
    rejects(with(|p| p.top_p = 1.01), "top_p", "(0, 1]");
    rejects(with(|p| p.top_p = f32::NAN), "top_p", "(0, 1]");
    rejects(
        with(|p| p.top_k = -2),
        "top_k",
        "top_k must be 0 (disable), or at least 1, got -2.",
    );
    rejects(with(|p| p.min_p = -0.1), "min_p", "min_p must be in [0, 1]");
    rejects(with(|p| p.min_p = 1.5), "min_p", "got 1.5.");
}

#[test]
fn token_counts() {
    rejects(
        with(|p| p.max_tokens = Some(0)),
        "max_tokens",
        "max_tokens must be at least 1, got 0.",
    );
    rejects(
        with(|p| {
            p.max_tokens = Some(4);
            p.min_tokens = 5;
        }),
        "min_tokens",
        "min_tokens must be less than or equal to max_tokens=4, got 5.",
    );
    rejects(
        with(|p| p.truncate_prompt_tokens = Some(0)),
        "truncate_prompt_tokens",
        ">= 1",
    );
    rejects(
        with(|p| p.truncate_prompt_tokens = Some(65)),
        "truncate_prompt_tokens",
        "max_model_len (64)",
    );
}

#[test]
fn logprob_counts() {
    rejects(
        with(|p| p.logprobs = Some(21)),
        "logprobs",
        "Requested sample logprobs of 21, which is greater than max allowed: 20",
    );
    rejects(
        with(|p| p.prompt_logprobs = Some(21)),
        "prompt_logprobs",
        "Requested prompt logprobs of 21",
    );
}

#[test]
fn token_ids_must_be_in_vocab() {
    rejects(
        with(|p| {
            p.logit_bias.insert(100, 1.0);
        }),
        "logit_bias",
        "token_id(s) [100] in logit_bias contain out-of-vocab token ids. Vocabulary size: 100",
    );
    rejects(
        with(|p| {
            p.logit_bias.insert(3, f32::NAN);
        }),
        "logit_bias",
        "finite",
    );
    rejects(
        with(|p| p.stop_token_ids = vec![5, 100, 7]),
        "stop_token_ids",
        "[100]",
    );
    rejects(
        with(|p| p.allowed_token_ids = Some(vec![])),
        "allowed_token_ids",
        "empty",
    );
    rejects(
        with(|p| p.allowed_token_ids = Some(vec![1, 100])),
        "allowed_token_ids",
        "out-of-vocab",
    );
}

#[test]
fn strings() {
    rejects(
        with(|p| p.stop = vec!["a".into(), String::new()]),
        "stop",
        "stop cannot contain an empty string.",
    );
    rejects(
        with(|p| {
            p.stop = vec!["x".into()];
            p.detokenize = false;
        }),
        "stop",
        "detokenize",
    );
    rejects(
        with(|p| p.bad_words = vec![String::new()]),
        "bad_words",
        "empty string",
    );
}

#[test]
fn context_length() {
    let full = ValidationContext {
        prompt_len: 60,
        ..ctx()
    };
    let too_long = with(|p| p.max_tokens = Some(5));
    let err = too_long.validate(&full).unwrap_err();
    assert_eq!(err.param(), "max_tokens");
    assert_eq!(
        err.to_string(),
        "This model's maximum context length is 64 tokens. However, you requested 65 tokens (60 \
         in the messages, 5 in the completion). Please reduce the length of the messages or \
         completion."
    );
    with(|p| p.max_tokens = Some(4)).validate(&full).unwrap();
    // Without max_tokens the prompt must leave room for one token.
    let exact = ValidationContext {
        prompt_len: 64,
        ..ctx()
    };
    rejects_in(
        SamplingParams::default(),
        &exact,
        "messages",
        "you requested 64 tokens in the messages",
    );
    let empty = ValidationContext {
        prompt_len: 0,
        ..ctx()
    };
    rejects_in(
        SamplingParams::default(),
        &empty,
        "prompt",
        "cannot be empty",
    );
}

#[test]
fn effective_values() {
    let p = with(|p| p.max_tokens = Some(100));
    assert_eq!(p.effective_max_tokens(64, 10), 54);
    assert_eq!(SamplingParams::default().effective_max_tokens(64, 10), 54);
    assert_eq!(
        with(|p| p.max_tokens = Some(3)).effective_max_tokens(64, 10),
        3
    );
    assert_eq!(
        with(|p| p.temperature = 0.001).effective_temperature(),
        MIN_RANDOM_TEMPERATURE
    );
    assert_eq!(with(|p| p.top_k = -1).top_k_limit(), None);
    assert_eq!(with(|p| p.top_k = 0).top_k_limit(), None);
    assert_eq!(with(|p| p.top_k = 7).top_k_limit(), Some(7));
    assert!(with(|p| p.temperature = 0.5e-5).is_greedy());
    assert!(!with(|p| p.temperature = 2e-5).is_greedy());
}

#[test]
fn children_of_a_seeded_request_get_distinct_seeds() {
    let p = with(|p| {
        p.n = 3;
        p.seed = Some(40);
    });
    let seeds: Vec<_> = (0..3).map(|i| p.for_child(i).seed).collect();
    assert_eq!(seeds, [Some(40), Some(41), Some(42)]);
    assert_eq!(p.for_child(2).n, 1);
    assert_eq!(SamplingParams::default().for_child(5).seed, None);
}

#[test]
fn deserializes_openai_style_json() {
    let p: SamplingParams = serde_json::from_value(json!({
        "temperature": 0.5,
        "stop": "###",
        "stop_token_ids": null,
        "logit_bias": {"17": -5.5, "3": 2},
        "seed": -1,
        "top_k": -1,
        "max_tokens": 12,
        "some_unknown_field": true
    }))
    .unwrap();
    assert_eq!(p.temperature, 0.5);
    assert_eq!(p.stop, ["###"]);
    assert!(p.stop_token_ids.is_empty());
    assert_eq!(p.logit_bias.get(&17), Some(&-5.5));
    assert_eq!(p.logit_bias.get(&3), Some(&2.0));
    assert_eq!(p.seed, None);
    assert_eq!(p.top_k, -1);
    assert_eq!(p.max_tokens, Some(12));
    assert_eq!(p.n, 1, "missing fields keep their defaults");

    let p: SamplingParams = serde_json::from_value(json!({"stop": ["a", "b"], "seed": 7})).unwrap();
    assert_eq!((p.stop.len(), p.seed), (2, Some(7)));
    assert!(serde_json::from_value::<SamplingParams>(json!({"seed": -2})).is_err());
}

#[test]
fn generation_config_defaults() {
    let config = json!({
        "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05,
        "max_new_tokens": 2048, "do_sample": true, "eos_token_id": [1, 2]
    });
    let overrides = json!({"temperature": 0.3, "min_p": null});
    let d = SamplingDefaults::from_generation_config(Some(&config), Some(&overrides));
    assert_eq!(d.temperature, Some(0.3));
    assert_eq!(d.top_p, Some(0.8));
    assert_eq!(d.top_k, Some(20));
    assert_eq!(d.min_p, None);
    assert_eq!(d.repetition_penalty, Some(1.05));
    assert_eq!(d.max_tokens, Some(2048));
    assert!(!d.is_empty());
    assert!(SamplingDefaults::from_generation_config(None, None).is_empty());
    assert!(
        SamplingDefaults::from_generation_config(Some(&json!({"temperature": "hot"})), None)
            .is_empty()
    );

    // A request starts from the defaults; its explicit values win, nulls count as unset.
    let p = d
        .params_from_json(&json!({"top_p": 0.95, "top_k": null, "max_tokens": 5, "model": "m"}))
        .unwrap();
    assert_eq!((p.temperature, p.top_p, p.top_k), (0.3, 0.95, 20));
    assert_eq!((p.repetition_penalty, p.max_tokens), (1.05, Some(5)));
    let p = d.params_from_json(&json!({})).unwrap();
    assert_eq!(p, d.base_params());
    assert_eq!(p.max_tokens, Some(2048));
    let p = d
        .params_from_json(&json!({"logit_bias": {"5": 1.5}, "seed": 3}))
        .unwrap();
    assert_eq!((p.logit_bias.get(&5), p.seed), (Some(&1.5), Some(3)));
}

#[test]
fn json_type_errors_name_the_parameter() {
    let d = SamplingDefaults::default();
    let err = d
        .params_from_json(&json!({"n": -1, "temperature": 0.5}))
        .unwrap_err();
    assert_eq!(err.param(), "n");
    let err = d.params_from_json(&json!({"top_p": "high"})).unwrap_err();
    assert_eq!(err.param(), "top_p");
    let err = d.params_from_json(&json!([1, 2])).unwrap_err();
    assert_eq!(err.param(), "request");
}

#[test]
fn logprobs_mode_parses_vllm_spellings() {
    for (s, m) in [
        ("raw_logprobs", LogprobsMode::RawLogprobs),
        ("processed_logprobs", LogprobsMode::ProcessedLogprobs),
        ("raw_logits", LogprobsMode::RawLogits),
        ("processed_logits", LogprobsMode::ProcessedLogits),
    ] {
        assert_eq!(s.parse::<LogprobsMode>().unwrap(), m);
        assert_eq!(m.to_string(), s);
    }
    assert!("logits".parse::<LogprobsMode>().is_err());
    assert_eq!(LogprobsMode::default(), LogprobsMode::RawLogprobs);
}
