//! `--dataset-name sharegpt`: the first human turn of each conversation of a ShareGPT-format JSON
//! file (`[{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}]`)
//! as the prompt, the second turn's length as the expected output length.

use std::path::PathBuf;

use engine::tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Deserialize;

use super::{oversample, shuffle, SampleRequest};
use crate::BenchError;

#[derive(Debug, Clone)]
pub struct ShareGptOptions {
    pub path: PathBuf,
    pub num_requests: usize,
    /// Overrides the output length taken from each conversation's answer.
    pub output_len: Option<usize>,
    pub seed: u64,
    pub disable_shuffle: bool,
    pub no_oversample: bool,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    value: String,
}

/// vLLM's pruning: prompts and answers of at least 4 tokens, prompts up to 1024 tokens and
/// both together up to 2048 (the answer-length floor is waived when `--output-len` is given).
fn is_valid_sequence(
    prompt_len: usize,
    output_len: usize,
    skip_min_output_len_check: bool,
) -> bool {
    const MIN_LEN: usize = 4;
    prompt_len >= MIN_LEN
        && (skip_min_output_len_check || output_len >= MIN_LEN)
        && prompt_len <= 1024
        && prompt_len + output_len <= 2048
}

pub fn sharegpt(tok: &Tokenizer, o: &ShareGptOptions) -> Result<Vec<SampleRequest>, BenchError> {
    let text = std::fs::read_to_string(&o.path).map_err(|e| BenchError::io(&o.path, e))?;
    let entries: Vec<Entry> = serde_json::from_str(&text).map_err(|e| BenchError::Dataset {
        path: o.path.clone(),
        message: format!("not a ShareGPT JSON list: {e}"),
    })?;
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.conversations.len() >= 2)
        .collect();
    let mut rng = StdRng::seed_from_u64(o.seed);
    if !o.disable_shuffle {
        shuffle(&mut entries, &mut rng);
    }
    let mut samples = Vec::new();
    for entry in &entries {
        if samples.len() >= o.num_requests {
            break;
        }
        let (prompt, answer) = (&entry.conversations[0].value, &entry.conversations[1].value);
        let prompt_len = tok.encode(prompt, true)?.len();
        let output_len = match o.output_len {
            Some(n) => n,
            None => tok.encode(answer, true)?.len(),
        };
        if !is_valid_sequence(prompt_len, output_len, o.output_len.is_some()) {
            continue;
        }
        samples.push(SampleRequest {
            prompt: prompt.clone(),
            prompt_len,
            expected_output_len: output_len,
        });
    }
    if samples.is_empty() {
        return Err(BenchError::Dataset {
            path: o.path.clone(),
            message: "no conversation with two turns of usable length".into(),
        });
    }
    oversample(&mut samples, o.num_requests, o.no_oversample, &mut rng);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sharegpt_sample.json")
    }

    #[test]
    fn first_turns_become_prompts() {
        let Some(tok) = test_support::tokenizer() else {
            return;
        };
        let o = ShareGptOptions {
            path: fixture(),
            num_requests: 5,
            output_len: None,
            seed: 0,
            disable_shuffle: true,
            no_oversample: false,
        };
        let reqs = sharegpt(&tok, &o).unwrap();
        assert_eq!(reqs.len(), 5);
        assert!(
            reqs[0].prompt.starts_with("My sourdough starter"),
            "{}",
            reqs[0].prompt
        );
        assert!(reqs
            .iter()
            .all(|r| r.prompt_len >= 4 && r.expected_output_len >= 4));
        let fixed = sharegpt(
            &tok,
            &ShareGptOptions {
                output_len: Some(7),
                num_requests: 50,
                disable_shuffle: false,
                ..o.clone()
            },
        )
        .unwrap();
        assert_eq!(fixed.len(), 50, "oversampled to the requested count");
        assert!(fixed.iter().all(|r| r.expected_output_len == 7));
        let exact = sharegpt(
            &tok,
            &ShareGptOptions {
                num_requests: 50,
                no_oversample: true,
                ..o
            },
        )
        .unwrap();
        assert!(exact.len() < 50 && exact.len() >= 15, "{}", exact.len());
    }

    #[test]
    fn pruning_follows_vllm() {
        assert!(is_valid_sequence(4, 4, false));
        assert!(!is_valid_sequence(3, 100, false));
        assert!(!is_valid_sequence(10, 2, false));
        assert!(is_valid_sequence(10, 2, true));
        assert!(!is_valid_sequence(1025, 10, false));
        assert!(!is_valid_sequence(1000, 1049, false));
    }
}
