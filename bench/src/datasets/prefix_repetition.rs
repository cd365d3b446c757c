//! `--dataset-name prefix_repetition`: `num_prefixes` random prefixes, each shared by
//! `num_requests / num_prefixes` prompts that differ in a random suffix; shuffled. It measures
//! what prefix caching saves.

use engine::tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{allowed_tokens, decode_to_target_len, shuffle, SampleRequest};
use crate::BenchError;

#[derive(Debug, Clone)]
pub struct PrefixRepetitionOptions {
    pub num_requests: usize,
    pub prefix_len: usize,
    pub suffix_len: usize,
    pub num_prefixes: usize,
    pub output_len: usize,
    pub seed: u64,
    pub disable_shuffle: bool,
}

pub fn prefix_repetition(
    tok: &Tokenizer,
    o: &PrefixRepetitionOptions,
) -> Result<Vec<SampleRequest>, BenchError> {
    let per_prefix = o.num_requests.checked_div(o.num_prefixes).unwrap_or(0);
    if per_prefix == 0 {
        return Err(BenchError::Invalid(format!(
            "num_requests ({}) must be at least num_prefixes ({})",
            o.num_requests, o.num_prefixes
        )));
    }
    let allowed = allowed_tokens(tok);
    if allowed.is_empty() {
        return Err(BenchError::Invalid(
            "the tokenizer has no ordinary tokens to build prompts from".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(o.seed);
    let exact = |len: usize, rng: &mut StdRng| -> Result<Vec<u32>, BenchError> {
        let tokens = (0..len)
            .map(|_| allowed[rng.random_range(0..allowed.len())])
            .collect();
        Ok(decode_to_target_len(tok, tokens, len, &allowed, rng)?.1)
    };
    let mut requests = Vec::with_capacity(per_prefix * o.num_prefixes);
    for _ in 0..o.num_prefixes {
        let prefix = exact(o.prefix_len, &mut rng)?;
        for _ in 0..per_prefix {
            let suffix = exact(o.suffix_len, &mut rng)?;
            let combined: Vec<u32> = prefix.iter().chain(&suffix).copied().collect();
            let prompt = tok.decode(&combined, false)?;
            requests.push(SampleRequest {
                prompt,
                prompt_len: combined.len(),
                expected_output_len: o.output_len,
            });
        }
    }
    if !o.disable_shuffle {
        shuffle(&mut requests, &mut rng);
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support;

    #[test]
    fn prompts_share_prefixes() {
        let Some(tok) = test_support::tokenizer() else {
            return;
        };
        let o = PrefixRepetitionOptions {
            num_requests: 7,
            prefix_len: 32,
            suffix_len: 8,
            num_prefixes: 3,
            output_len: 5,
            seed: 0,
            disable_shuffle: true,
        };
        let reqs = prefix_repetition(&tok, &o).unwrap();
        assert_eq!(reqs.len(), 6, "two prompts for each of three prefixes");
        let head = |r: &SampleRequest| tok.encode(&r.prompt, false).unwrap()[..16].to_vec();
        assert_eq!(head(&reqs[0]), head(&reqs[1]));
        assert_ne!(head(&reqs[1]), head(&reqs[2]));
        assert!(reqs
            .iter()
            .all(|r| r.prompt_len.abs_diff(40) <= 2 && r.expected_output_len == 5));
        assert!(prefix_repetition(
            &tok,
            &PrefixRepetitionOptions {
                num_requests: 2,
                ..o
            }
        )
        .is_err());
    }
}
