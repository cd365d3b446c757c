//! `--dataset-name sonnet`: prompts made of lines of a poem-like text file under the model's chat
//! template. The first lines are the same in every prompt (a shared prefix of about
//! `prefix_len` tokens); the rest are drawn at random, to about `input_len` tokens in all.

use std::path::PathBuf;

use engine::tokenizer::{ChatTemplate, Tokenizer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{apply_chat_template, SampleRequest};
use crate::BenchError;

/// The instruction in front of the poem lines.
const INSTRUCTION: &str = "Repeat as many of the following poem lines as you can:\n";

#[derive(Debug, Clone)]
pub struct SonnetOptions {
    pub path: PathBuf,
    pub num_requests: usize,
    pub input_len: usize,
    pub output_len: usize,
    pub prefix_len: usize,
    /// Send the prompt already formatted by the chat template (the offline benchmark does).
    pub return_prompt_formatted: bool,
    pub seed: u64,
}

pub fn sonnet(
    tok: &Tokenizer,
    template: Option<&ChatTemplate>,
    o: &SonnetOptions,
) -> Result<Vec<SampleRequest>, BenchError> {
    let template = template.ok_or_else(|| {
        BenchError::Invalid(
            "the sonnet dataset needs a chat template, and the tokenizer has none".into(),
        )
    })?;
    let text = std::fs::read_to_string(&o.path).map_err(|e| BenchError::io(&o.path, e))?;
    // Lines keep their newline: prompts are the lines concatenated.
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| !l.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return Err(BenchError::Dataset {
            path: o.path.clone(),
            message: "no text lines".into(),
        });
    }
    let mut total = 0usize;
    for l in &lines {
        total += tok.encode(l, true)?.len();
    }
    let avg_len = total as f64 / lines.len() as f64;
    let base_offset = tok
        .encode(&apply_chat_template(template, INSTRUCTION)?, true)?
        .len();
    if o.input_len <= base_offset {
        return Err(BenchError::Invalid(format!(
            "the input length must be more than the base prompt length ({base_offset})"
        )));
    }
    let num_input_lines = ((o.input_len - base_offset) as f64 / avg_len).round() as usize;
    let num_prefix_lines = ((o.prefix_len as f64 - base_offset as f64) / avg_len)
        .round()
        .max(0.0) as usize;
    let prefix: String = lines.iter().take(num_prefix_lines).copied().collect();
    let mut rng = StdRng::seed_from_u64(o.seed);
    let mut samples = Vec::with_capacity(o.num_requests);
    // A draw longer than the input length is skipped; give up if nearly every one is.
    let mut attempts = 0usize;
    while samples.len() < o.num_requests {
        attempts += 1;
        if attempts > 100 * o.num_requests.max(1) {
            return Err(BenchError::Invalid(format!(
                "no draw of lines from {} fits in {} tokens; raise the input length",
                o.path.display(),
                o.input_len
            )));
        }
        let extra: String = (0..num_input_lines.saturating_sub(num_prefix_lines))
            .map(|_| lines[rng.random_range(0..lines.len())])
            .collect();
        let prompt = format!("{INSTRUCTION}{prefix}{extra}");
        let formatted = apply_chat_template(template, &prompt)?;
        let prompt_len = tok.encode(&formatted, true)?.len();
        if prompt_len <= o.input_len {
            let prompt = if o.return_prompt_formatted {
                formatted
            } else {
                prompt
            };
            samples.push(SampleRequest {
                prompt,
                prompt_len,
                expected_output_len: o.output_len,
            });
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support;

    #[test]
    fn prompts_share_the_first_lines_and_fit() {
        let Some(tok) = test_support::tokenizer() else {
            return;
        };
        let template = tok
            .compile_chat_template()
            .expect("the default model has a chat template")
            .unwrap();
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sonnet_sample.txt");
        let o = SonnetOptions {
            path,
            num_requests: 4,
            input_len: 300,
            output_len: 20,
            prefix_len: 120,
            return_prompt_formatted: false,
            seed: 1,
        };
        let reqs = sonnet(&tok, Some(&template), &o).unwrap();
        assert_eq!(reqs.len(), 4);
        let first_line = std::fs::read_to_string(&o.path)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        for r in &reqs {
            assert!(r.prompt.starts_with(INSTRUCTION));
            assert!(r.prompt.contains(&first_line), "the shared prefix lines");
            assert!(
                r.prompt_len <= 300 && r.prompt_len > 150,
                "{}",
                r.prompt_len
            );
            assert_eq!(r.expected_output_len, 20);
        }
        assert_ne!(reqs[0].prompt, reqs[1].prompt);
        let formatted = sonnet(
            &tok,
            Some(&template),
            &SonnetOptions {
                return_prompt_formatted: true,
                ..o
            },
        )
        .unwrap();
        assert!(
            formatted[0].prompt.contains("<|im_start|>user"),
            "{}",
            formatted[0].prompt
        );
    }
}
