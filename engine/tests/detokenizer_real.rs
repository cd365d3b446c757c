//! The incremental detokenizer and bad-word encoding with the real tokenizers of both test
//! models: every reference tokenizer vector (emoji, ZWJ sequences, CJK, Arabic, accents, ...)
//! streamed token by token must never release half a character and must add up to the full
//! decode. Tests skip (with a message) when a model file is not in the cache.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use engine::detokenizer::{DetokenizerStep, IncrementalDetokenizer};
use engine::gguf::GgufFile;
use engine::paths::{test_model, DEFAULT_MODEL_FILE, QWEN_TEST_MODEL_FILE};
use engine::sampling::{
    bad_words_to_ids, try_bad_words_to_ids, LogprobsMode, SamplingParams, SequenceSampler,
};
use engine::tokenizer::Tokenizer;
use serde_json::Value;

const MODELS: [(&str, &str); 2] = [
    (DEFAULT_MODEL_FILE, "smollm2-135m-q4_1"),
    (QWEN_TEST_MODEL_FILE, "qwen2.5-coder-0.5b"),
];

fn tokenizer(file: &'static str) -> Option<Arc<Tokenizer>> {
    static SMOL: OnceLock<Option<Arc<Tokenizer>>> = OnceLock::new();
    static QWEN: OnceLock<Option<Arc<Tokenizer>>> = OnceLock::new();
    let cell = if file == DEFAULT_MODEL_FILE {
        &SMOL
    } else {
        &QWEN
    };
    cell.get_or_init(|| {
        let path = test_model(file)?;
        let gguf = GgufFile::open(&path).unwrap();
        Some(Arc::new(Tokenizer::from_gguf(&gguf).unwrap()))
    })
    .clone()
}

fn vectors(reference: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(format!("{reference}.tokenizer-vectors.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap();
    json["vectors"].as_array().unwrap().clone()
}

/// Streams `generated` after `prompt`; returns the deltas, what `finish` released, and the
/// detokenizer.
fn stream(
    tok: &Arc<Tokenizer>,
    prompt: &[u32],
    generated: &[u32],
    params: &SamplingParams,
) -> (Vec<DetokenizerStep>, String, IncrementalDetokenizer) {
    let mut d = IncrementalDetokenizer::new(tok.clone(), prompt, params);
    let mut steps = Vec::new();
    for &t in generated {
        let step = d.push(t);
        let stop = step.stop.is_some();
        steps.push(step);
        if stop {
            break;
        }
    }
    let tail = d.finish();
    (steps, tail, d)
}

fn joined(steps: &[DetokenizerStep], tail: &str) -> String {
    steps
        .iter()
        .map(|s| s.delta.as_str())
        .chain([tail])
        .collect()
}

fn encode(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, false).unwrap()
}

#[test]
fn every_reference_vector_streams_to_its_full_decode() {
    for (file, reference) in MODELS {
        let Some(tok) = tokenizer(file) else { continue };
        let prompt = encode(
            &tok,
            "<|im_start|>user\nRepeat after me.<|im_end|>\n<|im_start|>assistant\n",
        );
        let mut checked = 0;
        for v in vectors(reference) {
            let ids: Vec<u32> = v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            for skip in [true, false] {
                let full = tok.decode(&ids, skip).unwrap();
                let params = SamplingParams {
                    skip_special_tokens: skip,
                    ..Default::default()
                };
                let (steps, tail, d) = stream(&tok, &prompt, &ids, &params);
                for s in &steps {
                    if !full.contains('\u{FFFD}') {
                        assert!(
                            !s.delta.contains('\u{FFFD}'),
                            "{reference} #{}: delta {:?}",
                            v["idx"],
                            s.delta
                        );
                    }
                }
                assert_eq!(
                    joined(&steps, &tail),
                    full,
                    "{reference} #{} (skip={skip})",
                    v["idx"]
                );
                assert_eq!(d.output_text(), full);
                assert!(
                    tail.is_empty() || full.ends_with('\u{FFFD}'),
                    "{reference} #{}: tail {tail:?}",
                    v["idx"]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 120, "{reference}");
    }
}

#[test]
fn emoji_cjk_and_accents_release_whole_characters() {
    for (file, _) in MODELS {
        let Some(tok) = tokenizer(file) else { continue };
        let mut silent = 0;
        for text in [
            "Family: 👨‍👩‍👧‍👦, flag: 🏳️‍🌈, skin: 👍🏽!",
            "日本語のテキストと中文混合，还有한국어。",
            "Ünïcödé façade — naïve café, Ελληνικά, עברית, हिन्दी",
        ] {
            let ids = encode(&tok, text);
            assert!(ids.len() > 10);
            let (steps, tail, _) = stream(
                &tok,
                &encode(&tok, "Say:"),
                &ids,
                &SamplingParams::default(),
            );
            // Tokens that end inside a character release nothing until it is complete.
            silent += steps.iter().filter(|s| s.delta.is_empty()).count();
            for s in &steps {
                assert!(!s.delta.contains('\u{FFFD}'), "{file}: {:?}", s.delta);
            }
            assert_eq!(joined(&steps, &tail), text);
        }
        assert!(
            silent > 0,
            "{file}: expected some characters to span several tokens"
        );
    }
}

#[test]
fn stop_strings_spanning_tokens() {
    for (file, _) in MODELS {
        let Some(tok) = tokenizer(file) else { continue };
        let text = "The answer is 42. ### Next question: why?";
        let ids = encode(&tok, text);
        let params = SamplingParams {
            stop: vec!["### Next".into()],
            ..Default::default()
        };
        let stop_tokens = encode(&tok, " ### Next").len();
        assert!(
            stop_tokens >= 2,
            "{file}: the stop string must span tokens for this test"
        );
        let (steps, tail, d) = stream(&tok, &[], &ids, &params);
        assert_eq!(steps.last().unwrap().stop.as_deref(), Some("### Next"));
        assert!(
            steps.len() < ids.len(),
            "{file}: generation stops at the stop string"
        );
        assert_eq!(joined(&steps, &tail), "The answer is 42. ");
        assert!(
            steps.iter().all(|s| !s.delta.contains('#')),
            "{file}: stop text leaked"
        );
        assert_eq!(d.output_text(), "The answer is 42. ");

        let include = SamplingParams {
            include_stop_str_in_output: true,
            ..params.clone()
        };
        let (steps, tail, _) = stream(&tok, &[], &ids, &include);
        assert_eq!(joined(&steps, &tail), "The answer is 42. ### Next");

        // The same stop string in the prompt only does not stop the output.
        let prompt = encode(&tok, "Format: ### Next\n");
        let (steps, tail, d) = stream(&tok, &prompt, &encode(&tok, "Sure, here it is."), &params);
        assert!(d.matched_stop().is_none());
        assert_eq!(joined(&steps, &tail), "Sure, here it is.");

        // Held back text (a possible stop-string start) comes out at finish.
        let mut d = IncrementalDetokenizer::new(tok.clone(), &[], &params);
        let released: String = encode(&tok, "Done ###")
            .iter()
            .map(|&t| d.push(t).delta)
            .collect();
        assert!(!released.contains('#'), "{file}: {released:?}");
        let rest = d.finish();
        assert_eq!(format!("{released}{rest}"), "Done ###");
    }
}

#[test]
fn bad_words_are_encoded_with_and_without_a_leading_space() {
    for (file, _) in MODELS {
        let Some(tok) = tokenizer(file) else { continue };
        let words = vec!["hello".to_string(), " world peace".to_string()];
        let ids = bad_words_to_ids(&tok, &words);
        assert!(ids.contains(&encode(&tok, "hello")), "{file}: {ids:?}");
        assert!(ids.contains(&encode(&tok, " hello")), "{file}: {ids:?}");
        assert!(
            ids.contains(&encode(&tok, "world peace")),
            "{file}: {ids:?}"
        );
        assert_eq!(try_bad_words_to_ids(&tok, &words).unwrap(), ids);

        // The sampler can no longer complete " hello" after being steered towards it.
        let spaced = encode(&tok, " hello");
        let last = *spaced.last().unwrap();
        let params = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        let mut logits = vec![0.0f32; tok.vocab_size()];
        logits[last as usize] = 10.0;
        let mut s = SequenceSampler::new(&params, &[], 0, ids, None);
        let prefix = &spaced[..spaced.len() - 1];
        let out = s.sample(&logits, prefix, LogprobsMode::RawLogprobs);
        assert_ne!(out.token, last, "{file}");
    }
}
