//! `--dataset-name random`: prompts of real vocabulary tokens with lengths drawn around the
//! requested means, after an optional fixed random prefix shared by all prompts.

use engine::tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{allowed_tokens, decode_to_target_len, num_special_tokens_to_add, SampleRequest};
use crate::BenchError;

#[derive(Debug, Clone)]
pub struct RandomOptions {
    pub num_requests: usize,
    pub input_len: usize,
    pub output_len: usize,
    /// Lengths are drawn uniformly from `[len * (1 - r), len * (1 + r)]`; `0 <= r < 1`.
    pub range_ratio: f64,
    /// Tokens of one random prefix put before every prompt.
    pub prefix_len: usize,
    pub seed: u64,
}

/// Samples the random dataset.
pub fn random(tok: &Tokenizer, o: &RandomOptions) -> Result<Vec<SampleRequest>, BenchError> {
    if !(0.0..1.0).contains(&o.range_ratio) {
        return Err(BenchError::Invalid(
            "--random-range-ratio must be in [0, 1)".into(),
        ));
    }
    // The server adds the special tokens (BOS): leave room for them in the requested length.
    let real_input_len = o.input_len.saturating_sub(num_special_tokens_to_add(tok));
    let input_low = (real_input_len as f64 * (1.0 - o.range_ratio)).floor() as usize;
    let input_high = (real_input_len as f64 * (1.0 + o.range_ratio)).ceil() as usize;
    let output_low = ((o.output_len as f64 * (1.0 - o.range_ratio)).floor() as usize).max(1);
    let output_high = ((o.output_len as f64 * (1.0 + o.range_ratio)).ceil() as usize).max(1);
    if o.prefix_len + input_low < 1 {
        return Err(BenchError::Invalid(format!(
            "--random-input-len is too small: with {} special tokens and --random-range-ratio {}, a prompt could have no token; raise the input length or the prefix length",
            num_special_tokens_to_add(tok),
            o.range_ratio
        )));
    }
    let allowed = allowed_tokens(tok);
    if allowed.is_empty() {
        return Err(BenchError::Invalid(
            "the tokenizer has no ordinary tokens to build prompts from".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(o.seed);
    let input_lens: Vec<usize> = (0..o.num_requests)
        .map(|_| rng.random_range(input_low..=input_high))
        .collect();
    let output_lens: Vec<usize> = (0..o.num_requests)
        .map(|_| rng.random_range(output_low..=output_high))
        .collect();
    let offsets: Vec<usize> = (0..o.num_requests)
        .map(|_| rng.random_range(0..allowed.len()))
        .collect();
    let prefix: Vec<u32> = (0..o.prefix_len)
        .map(|_| allowed[rng.random_range(0..allowed.len())])
        .collect();

    let mut requests = Vec::with_capacity(o.num_requests);
    let mut mismatch: i64 = 0;
    for i in 0..o.num_requests {
        // Consecutive vocabulary entries from a random offset: real tokens, different in every
        // prompt (the index shifts the run), cheap to make.
        let inner = (0..input_lens[i]).map(|k| allowed[(offsets[i] + i + k) % allowed.len()]);
        let tokens: Vec<u32> = prefix.iter().copied().chain(inner).collect();
        let target = o.prefix_len + input_lens[i];
        let (prompt, ids) = decode_to_target_len(tok, tokens, target, &allowed, &mut rng)?;
        mismatch += ids.len() as i64 - target as i64;
        requests.push(SampleRequest {
            prompt,
            prompt_len: ids.len(),
            expected_output_len: output_lens[i],
        });
    }
    if mismatch != 0 {
        eprintln!(
            "WARNING: across all generated prompts there were {} {} tokens than expected after decoding and re-encoding",
            mismatch.abs(),
            if mismatch > 0 { "more" } else { "fewer" }
        );
    }
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support;

    #[test]
    fn prompts_have_the_requested_lengths_and_vary() {
        let Some(tok) = test_support::tokenizer() else {
            return;
        };
        let o = RandomOptions {
            num_requests: 8,
            input_len: 64,
            output_len: 16,
            range_ratio: 0.0,
            prefix_len: 0,
            seed: 0,
        };
        let reqs = random(&tok, &o).unwrap();
        assert_eq!(reqs.len(), 8);
        let special = num_special_tokens_to_add(&tok);
        for r in &reqs {
            assert_eq!(tok.encode(&r.prompt, false).unwrap().len(), r.prompt_len);
            assert!(r.prompt_len.abs_diff(64 - special) <= 2, "{}", r.prompt_len);
            assert_eq!(r.expected_output_len, 16);
            // Real text, not one token repeated.
            let ids = tok.encode(&r.prompt, false).unwrap();
            let distinct: std::collections::HashSet<_> = ids.iter().collect();
            assert!(distinct.len() > ids.len() / 2);
        }
        assert_ne!(reqs[0].prompt, reqs[1].prompt);
        // One seed, one prompt set.
        assert_eq!(random(&tok, &o).unwrap(), reqs);
        let ranged = random(
            &tok,
            &RandomOptions {
                range_ratio: 0.5,
                prefix_len: 10,
                ..o.clone()
            },
        )
        .unwrap();
        for r in &ranged {
            assert!((8..=24).contains(&r.expected_output_len));
        }
        assert!(random(
            &tok,
            &RandomOptions {
                range_ratio: 1.0,
                ..o
            }
        )
        .is_err());
    }
}
