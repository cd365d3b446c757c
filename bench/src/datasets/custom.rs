//! `--dataset-name custom`: one `{"prompt": "..."}` object per line of a JSONL file, put under
//! the chat template unless `--skip-chat-template`.

use std::path::PathBuf;

use engine::tokenizer::{ChatTemplate, Tokenizer};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{apply_chat_template, oversample, shuffle, SampleRequest};
use crate::BenchError;

#[derive(Debug, Clone)]
pub struct CustomOptions {
    pub path: PathBuf,
    /// 0 takes every line.
    pub num_requests: usize,
    pub output_len: usize,
    pub skip_chat_template: bool,
    pub seed: u64,
    pub disable_shuffle: bool,
    pub no_oversample: bool,
}

pub fn custom(
    tok: &Tokenizer,
    template: Option<&ChatTemplate>,
    o: &CustomOptions,
) -> Result<Vec<SampleRequest>, BenchError> {
    let text = std::fs::read_to_string(&o.path).map_err(|e| BenchError::io(&o.path, e))?;
    let mut prompts = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |message: String| BenchError::Dataset {
            path: o.path.clone(),
            message: format!("line {}: {message}", i + 1),
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let prompt = v
            .get("prompt")
            .and_then(|p| p.as_str())
            .ok_or_else(|| bad("no \"prompt\" string".into()))?;
        prompts.push(prompt.to_string());
    }
    let mut rng = StdRng::seed_from_u64(o.seed);
    if !o.disable_shuffle {
        shuffle(&mut prompts, &mut rng);
    }
    let wanted = if o.num_requests == 0 {
        prompts.len()
    } else {
        o.num_requests
    };
    let mut samples = Vec::with_capacity(wanted);
    for prompt in prompts.into_iter().take(wanted) {
        let prompt = match (o.skip_chat_template, template) {
            (true, _) => prompt,
            (false, Some(t)) => apply_chat_template(t, &prompt)?,
            (false, None) => {
                return Err(BenchError::Invalid(
                    "the tokenizer has no chat template: pass --skip-chat-template".into(),
                ))
            }
        };
        let prompt_len = tok.encode(&prompt, true)?.len();
        samples.push(SampleRequest {
            prompt,
            prompt_len,
            expected_output_len: o.output_len,
        });
    }
    oversample(&mut samples, wanted, o.no_oversample, &mut rng);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support;

    #[test]
    fn jsonl_prompts_with_and_without_template() {
        let Some(tok) = test_support::tokenizer() else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("bench-custom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prompts.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"Name three rivers.\"}\n\n{\"prompt\": \"Count to five.\"}\n",
        )
        .unwrap();
        let template = tok.compile_chat_template().unwrap().unwrap();
        let o = CustomOptions {
            path: path.clone(),
            num_requests: 0,
            output_len: 9,
            skip_chat_template: true,
            seed: 0,
            disable_shuffle: true,
            no_oversample: false,
        };
        let plain = custom(&tok, Some(&template), &o).unwrap();
        assert_eq!(
            plain.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>(),
            ["Name three rivers.", "Count to five."]
        );
        let templated = custom(
            &tok,
            Some(&template),
            &CustomOptions {
                skip_chat_template: false,
                num_requests: 3,
                ..o
            },
        )
        .unwrap();
        assert_eq!(templated.len(), 3);
        assert!(
            templated[0]
                .prompt
                .contains("<|im_start|>user\nName three rivers."),
            "{}",
            templated[0].prompt
        );
        assert!(templated[0].prompt_len > plain[0].prompt_len);
        std::fs::write(&path, "{\"text\": 1}\n").unwrap();
        assert!(custom(
            &tok,
            None,
            &CustomOptions {
                path,
                num_requests: 0,
                output_len: 1,
                skip_chat_template: true,
                seed: 0,
                disable_shuffle: true,
                no_oversample: true
            }
        )
        .is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
