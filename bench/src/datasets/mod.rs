//! The prompt sets the benchmarks draw from, as vLLM builds them: `random` (real vocabulary
//! tokens, decoded and re-encoded to hit the target length), `sharegpt` (first turn of each
//! conversation of a ShareGPT JSON file), `sonnet` (lines of a poem-like text file under a chat
//! template), `prefix_repetition` (random prompts sharing a few random prefixes) and `custom`
//! (a JSONL file of `{"prompt": ...}` lines).
//!
//! Every sampler is seeded, so one seed gives one prompt set.

mod custom;
mod prefix_repetition;
mod random;
mod sharegpt;
mod sonnet;

use std::path::Path;

use engine::gguf::GgufFile;
use engine::tokenizer::{ChatTemplate, Tokenizer};
use rand::rngs::StdRng;
use rand::Rng;

pub use custom::{custom, CustomOptions};
pub use prefix_repetition::{prefix_repetition, PrefixRepetitionOptions};
pub use random::{random, RandomOptions};
pub use sharegpt::{sharegpt, ShareGptOptions};
pub use sonnet::{sonnet, SonnetOptions};

use crate::BenchError;

/// One prompt of a benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    pub prompt: String,
    /// Prompt length in tokens, as the dataset counts it.
    pub prompt_len: usize,
    pub expected_output_len: usize,
}

/// Loads a tokenizer the way `--tokenizer` names one: a GGUF file (its embedded tokenizer), a
/// `tokenizer.json`, or a folder holding one (with its `tokenizer_config.json` when present).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, BenchError> {
    let fail = |message: String| BenchError::TokenizerLoad {
        path: path.to_path_buf(),
        message,
    };
    let is_gguf = path.is_file() && {
        let mut magic = [0u8; 4];
        std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == b"GGUF"
    };
    if is_gguf {
        let file = GgufFile::open(path).map_err(|e| fail(e.to_string()))?;
        return Tokenizer::from_gguf(&file).map_err(|e| fail(e.to_string()));
    }
    let json = if path.is_dir() {
        path.join("tokenizer.json")
    } else {
        path.to_path_buf()
    };
    if !json.is_file() {
        return Err(fail("no such GGUF file or tokenizer.json".into()));
    }
    let config = json
        .parent()
        .map(|d| d.join("tokenizer_config.json"))
        .filter(|c| c.is_file());
    Tokenizer::from_hf_files(&json, config.as_deref()).map_err(|e| fail(e.to_string()))
}

/// Ids a prompt may be built from: every id the vocabulary knows, less the special tokens.
pub(crate) fn allowed_tokens(tok: &Tokenizer) -> Vec<u32> {
    let special = tok.special_token_ids();
    (0..tok.vocab_size() as u32)
        .filter(|id| special.binary_search(id).is_err() && tok.id_to_token(*id).is_some())
        .collect()
}

/// How many special tokens `encode(_, true)` adds.
pub(crate) fn num_special_tokens_to_add(tok: &Tokenizer) -> usize {
    usize::from(tok.add_bos_token()) + usize::from(tok.add_eos_token())
}

/// Decodes `tokens`, re-encodes the text and adjusts the ids until the text encodes to exactly
/// `target` tokens (or ten tries have passed): some id runs decode to text that re-tokenizes
/// differently, and the prompt length must be what the server will see. Missing ids are drawn
/// from `allowed`. Returns the text and its token count.
pub(crate) fn decode_to_target_len(
    tok: &Tokenizer,
    mut tokens: Vec<u32>,
    target: usize,
    allowed: &[u32],
    rng: &mut StdRng,
) -> Result<(String, Vec<u32>), BenchError> {
    let mut tries_left = 10;
    loop {
        let text = tok.decode(&tokens, false)?;
        let ids = tok.encode(&text, false)?;
        if ids.len() == target || tries_left == 0 || allowed.is_empty() {
            return Ok((text, ids));
        }
        tokens = ids;
        if tokens.len() < target {
            let missing = target - tokens.len();
            tokens.extend((0..missing).map(|_| allowed[rng.random_range(0..allowed.len())]));
        } else {
            tokens.truncate(target);
        }
        tries_left -= 1;
    }
}

/// `prompt` as the single user turn of the model's chat template, ready for generation.
pub(crate) fn apply_chat_template(
    template: &ChatTemplate,
    prompt: &str,
) -> Result<String, BenchError> {
    let messages = [serde_json::json!({"role": "user", "content": prompt})];
    Ok(template.render(&messages, true, &serde_json::Map::new())?)
}

/// Fills `samples` up to `num_requests` with random repeats when the dataset had fewer, as
/// vLLM does unless `--no-oversample`.
pub(crate) fn oversample(
    samples: &mut Vec<SampleRequest>,
    num_requests: usize,
    no_oversample: bool,
    rng: &mut StdRng,
) {
    if no_oversample || samples.is_empty() || samples.len() >= num_requests {
        return;
    }
    let have = samples.len();
    let extra: Vec<SampleRequest> = (0..num_requests - have)
        .map(|_| samples[rng.random_range(0..have)].clone())
        .collect();
    samples.extend(extra);
    eprintln!("Oversampled requests to reach {num_requests} total samples.");
}

/// Fisher-Yates with our seeded generator (the order must depend on the seed only).
pub(crate) fn shuffle<T>(items: &mut [T], rng: &mut StdRng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use engine::tokenizer::Tokenizer;

    /// The default model's tokenizer, or `None` (with a note) when the model is not fetched.
    pub fn tokenizer() -> Option<Tokenizer> {
        let path = engine::paths::test_model(engine::paths::DEFAULT_MODEL_FILE)?;
        Some(super::load_tokenizer(&path).expect("tokenizer of the default model"))
    }
}
