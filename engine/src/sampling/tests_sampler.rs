//! Each sampling step on small hand-made logit rows, seeded reproducibility, the sampled
//! distribution, and logprob reporting.

use std::collections::HashSet;

use super::*;

const NEG: f32 = f32::NEG_INFINITY;

fn ln(x: f32) -> f32 {
    x.ln()
}

fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
    let mut p = SamplingParams::default();
    f(&mut p);
    p
}

fn sampler(p: &SamplingParams) -> SequenceSampler {
    SequenceSampler::new(p, &[], 0, Vec::new(), None)
}

/// The row after every processing step, read back through `processed_logits` logprobs
/// (which list every token with a finite value); masked tokens come back as `-inf`.
fn processed_row(
    p: &SamplingParams,
    logits: &[f32],
    prompt: &[u32],
    generated: &[u32],
    bad_words: Vec<Vec<u32>>,
    eos: Option<u32>,
) -> Vec<f32> {
    let mut p = p.clone();
    p.logprobs = Some(logits.len());
    let mut s = SequenceSampler::new(&p, prompt, 0, bad_words, eos);
    let out = s.sample(logits, generated, LogprobsMode::ProcessedLogits);
    let mut row = vec![NEG; logits.len()];
    for (id, v) in out.top_logprobs {
        row[id as usize] = v;
    }
    row
}

fn greedy() -> SamplingParams {
    params(|p| p.temperature = 0.0)
}

fn finite_ids(row: &[f32]) -> Vec<u32> {
    (0..row.len() as u32)
        .filter(|&i| row[i as usize].is_finite())
        .collect()
}

#[test]
fn greedy_takes_the_argmax_and_the_lowest_id_on_ties() {
    let mut s = sampler(&greedy());
    assert_eq!(
        s.sample(&[1.0, 3.0, 3.0, 2.0], &[], LogprobsMode::RawLogprobs)
            .token,
        1
    );
    assert_eq!(
        s.sample(&[-5.0, -1.0, -3.0], &[], LogprobsMode::RawLogprobs)
            .token,
        1
    );
    assert!(s.is_greedy());
}

#[test]
fn nan_logits_are_never_chosen() {
    let mut s = sampler(&greedy());
    assert_eq!(
        s.sample(&[f32::NAN, 1.0, 0.5], &[], LogprobsMode::RawLogprobs)
            .token,
        1
    );
    let mut s = sampler(&params(|p| p.seed = Some(1)));
    for _ in 0..200 {
        assert_ne!(
            s.sample(&[f32::NAN, 0.0, 0.0], &[], LogprobsMode::RawLogprobs)
                .token,
            0
        );
    }
}

#[test]
fn allowed_token_ids_mask_everything_else() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.allowed_token_ids = Some(vec![3, 1, 3]);
    });
    let row = processed_row(&p, &[5.0, 1.0, 3.0, 4.0], &[], &[], Vec::new(), None);
    assert_eq!(row, [NEG, 1.0, NEG, 4.0]);
    assert_eq!(
        sampler(&p)
            .sample(&[5.0, 1.0, 3.0, 4.0], &[], LogprobsMode::RawLogprobs)
            .token,
        3
    );
}

#[test]
fn logit_bias_is_added() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.logit_bias.insert(1, 2.5);
        p.logit_bias.insert(2, -1.0);
    });
    let row = processed_row(&p, &[0.0, 0.0, 0.0], &[], &[], Vec::new(), None);
    assert_eq!(row, [0.0, 2.5, -1.0]);
    assert_eq!(
        sampler(&p)
            .sample(&[1.0, 0.0, 0.0], &[], LogprobsMode::RawLogprobs)
            .token,
        1
    );
}

#[test]
fn bad_words_ban_the_token_that_would_complete_them() {
    let words = vec![vec![7], vec![1, 2], vec![3, 1, 4]];
    let flat = [0.0f32; 8];
    let banned = |generated: &[u32]| -> Vec<u32> {
        let row = processed_row(&greedy(), &flat, &[], generated, words.clone(), None);
        (0..8).filter(|&i| row[i as usize] == NEG).collect()
    };
    assert_eq!(banned(&[]), [7], "single-token words are always banned");
    assert_eq!(banned(&[5, 1]), [2, 7]);
    assert_eq!(banned(&[3, 1]), [2, 4, 7]);
    assert_eq!(banned(&[1, 5]), [7]);
    // The prompt does not count: only generated tokens can start a bad word.
    let row = processed_row(&greedy(), &flat, &[3, 1], &[], words.clone(), None);
    assert_eq!(finite_ids(&row), [0, 1, 2, 3, 4, 5, 6]);
}

#[test]
fn min_tokens_bans_eos_and_stop_ids_until_reached() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.min_tokens = 2;
        p.stop_token_ids = vec![3];
    });
    let logits = [0.0, 0.5, 5.0, 4.0];
    let row = processed_row(&p, &logits, &[], &[9], Vec::new(), Some(2));
    assert_eq!(row, [0.0, 0.5, NEG, NEG]);
    let mut s = SequenceSampler::new(&p, &[], 0, Vec::new(), Some(2));
    assert_eq!(s.sample(&logits, &[], LogprobsMode::RawLogprobs).token, 1);
    assert_eq!(s.sample(&logits, &[1], LogprobsMode::RawLogprobs).token, 1);
    assert_eq!(
        s.sample(&logits, &[1, 1], LogprobsMode::RawLogprobs).token,
        2
    );
    // ignore_eos does not lift the ban (vLLM bans all stop ids during min_tokens).
    let p = params(|q| {
        *q = p.clone();
        q.ignore_eos = true;
    });
    let row = processed_row(&p, &logits, &[], &[], Vec::new(), Some(2));
    assert_eq!(row[2], NEG);
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.repetition_penalty = 2.0;
    });
    // Token 0 is in the prompt, token 1 was generated (twice: penalized once), 2 and 3 unseen.
    let row = processed_row(&p, &[2.0, -1.0, 0.5, 1.0], &[0], &[1, 1], Vec::new(), None);
    assert_eq!(row, [1.0, -2.0, 0.5, 1.0]);
}

#[test]
fn frequency_and_presence_penalties_count_generated_tokens_only() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.frequency_penalty = 0.5;
        p.presence_penalty = 0.25;
    });
    let row = processed_row(&p, &[1.0; 4], &[0], &[2, 2, 3], Vec::new(), None);
    assert_eq!(row, [1.0, 1.0, 1.0 - 1.0 - 0.25, 1.0 - 0.5 - 0.25]);
}

#[test]
fn penalty_counts_follow_the_generated_list() {
    let p = params(|p| {
        p.temperature = 0.0;
        p.frequency_penalty = 1.0;
    });
    let mut s = SequenceSampler::new(
        &params(|q| {
            *q = p.clone();
            q.logprobs = Some(3);
        }),
        &[],
        0,
        Vec::new(),
        None,
    );
    let logits = [3.0, 2.5, 0.0];
    let mode = LogprobsMode::ProcessedLogits;
    assert_eq!(s.sample(&logits, &[0], mode).token, 1);
    assert_eq!(s.sample(&logits, &[0, 1], mode).token, 0);
    // The caller replaced the history (e.g. rejected draft tokens): counts are rebuilt.
    let out = s.sample(&logits, &[1, 1, 1], mode);
    assert_eq!(out.token, 0);
    assert_eq!(out.top_logprobs, [(0, 3.0), (2, 0.0), (1, -0.5)]);
}

#[test]
fn temperature_divides_the_logits() {
    let p = params(|p| {
        p.temperature = 0.5;
        p.seed = Some(0);
    });
    let row = processed_row(&p, &[1.0, 2.0, 3.0], &[], &[], Vec::new(), None);
    assert_eq!(row, [2.0, 4.0, 6.0]);
}

#[test]
fn min_p_drops_tokens_below_a_fraction_of_the_top_probability() {
    let probs = [0.5f32, 0.3, 0.15, 0.05];
    let logits: Vec<f32> = probs.iter().map(|&p| ln(p)).collect();
    // 0.2 * 0.5 = 0.1: only the 0.05 token falls below.
    let p = params(|p| {
        p.min_p = 0.2;
        p.seed = Some(3);
    });
    let row = processed_row(&p, &logits, &[], &[], Vec::new(), None);
    assert_eq!(finite_ids(&row), [0, 1, 2]);
    let p = params(|p| {
        p.min_p = 0.5;
        p.seed = Some(3);
    });
    let row = processed_row(&p, &logits, &[], &[], Vec::new(), None);
    assert_eq!(finite_ids(&row), [0, 1]);
    let mut s = sampler(&p);
    for _ in 0..500 {
        assert!(s.sample(&logits, &[], LogprobsMode::RawLogprobs).token < 2);
    }
}

#[test]
fn top_k_keeps_the_k_best_and_their_ties() {
    let kept = |k: i32, logits: &[f32]| {
        let p = params(|p| p.top_k = k);
        finite_ids(&processed_row(&p, logits, &[], &[], Vec::new(), None))
    };
    assert_eq!(kept(2, &[1.0, 5.0, 3.0, 5.0, 2.0]), [1, 3]);
    assert_eq!(kept(3, &[1.0, 5.0, 3.0, 5.0, 2.0]), [1, 2, 3]);
    assert_eq!(kept(1, &[1.0, 5.0, 3.0, 4.0, 2.0]), [1]);
    assert_eq!(
        kept(2, &[1.0, 3.0, 3.0, 3.0, 0.0]),
        [1, 2, 3],
        "ties with the k-th stay"
    );
    assert_eq!(kept(10, &[1.0, 2.0]), [0, 1]);
    assert_eq!(kept(-1, &[1.0, 2.0, 0.0]), [0, 1, 2]);
}

#[test]
fn top_p_keeps_the_smallest_prefix_reaching_p() {
    // Probabilities 0.15, 0.5, 0.05, 0.3 at ids 0..4: best first is 1, 3, 0, 2.
    let logits: Vec<f32> = [0.15f32, 0.5, 0.05, 0.3].iter().map(|&p| ln(p)).collect();
    let kept = |top_p: f32| {
        let p = params(|p| p.top_p = top_p);
        finite_ids(&processed_row(&p, &logits, &[], &[], Vec::new(), None))
    };
    assert_eq!(kept(0.45), [1]);
    assert_eq!(kept(0.6), [1, 3]);
    assert_eq!(kept(0.85), [0, 1, 3]);
    assert_eq!(kept(0.96), [0, 1, 2, 3]);
}

#[test]
fn top_p_over_a_large_flat_vocabulary() {
    // 1000 equal tokens: p = 0.4995 keeps exactly the first 500 (mass before the 501st is 0.5).
    let p = params(|p| p.top_p = 0.4995);
    let row = processed_row(&p, &vec![0.0; 1000], &[], &[], Vec::new(), None);
    assert_eq!(finite_ids(&row), (0..500).collect::<Vec<_>>());
}

#[test]
fn top_p_cuts_where_the_mass_above_reaches_p_exactly() {
    // Equal tokens: with p = 0.5 the third token has exactly half the mass above it and is
    // cut (vLLM masks where the ascending cumulative sum is <= 1 - p).
    for vocab in [4usize, 40, 1000] {
        let p = params(|p| p.top_p = 0.5);
        let row = processed_row(&p, &vec![1.5; vocab], &[], &[], Vec::new(), None);
        assert_eq!(
            finite_ids(&row),
            (0..vocab as u32 / 2).collect::<Vec<_>>(),
            "vocab {vocab}"
        );
    }
    let both = params(|p| {
        p.top_p = 0.5;
        p.top_k = 4;
    });
    let logits = [0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0];
    let row = processed_row(&both, &logits, &[], &[], Vec::new(), None);
    assert_eq!(finite_ids(&row), [0, 1]);
}

#[test]
fn top_k_is_applied_before_top_p() {
    // Top-2 of [0.4, 0.3, 0.2, 0.1] renormalizes to [4/7, 3/7]; then p = 0.5 keeps one token.
    // Without top-k, p = 0.5 would keep two (0.4 < 0.5).
    let logits: Vec<f32> = [0.4f32, 0.3, 0.2, 0.1].iter().map(|&p| ln(p)).collect();
    let both = params(|p| {
        p.top_k = 2;
        p.top_p = 0.5;
    });
    assert_eq!(
        finite_ids(&processed_row(&both, &logits, &[], &[], Vec::new(), None)),
        [0]
    );
    let only_p = params(|p| p.top_p = 0.5);
    assert_eq!(
        finite_ids(&processed_row(&only_p, &logits, &[], &[], Vec::new(), None)),
        [0, 1]
    );
}

fn draws(p: &SamplingParams, engine_seed: u64, logits: &[f32], n: usize) -> Vec<u32> {
    let mut s = SequenceSampler::new(p, &[], engine_seed, Vec::new(), None);
    (0..n)
        .map(|_| s.sample(logits, &[], LogprobsMode::RawLogprobs).token)
        .collect()
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    let flat = vec![0.0f32; 100];
    let seeded = |seed| params(|p| p.seed = Some(seed));
    let a = draws(&seeded(42), 0, &flat, 50);
    assert_eq!(
        a,
        draws(&seeded(42), 999, &flat, 50),
        "the request seed beats the engine seed"
    );
    assert_ne!(a, draws(&seeded(43), 0, &flat, 50));
    // Unseeded sequences follow the engine-provided seed.
    let unseeded = SamplingParams::default();
    assert_eq!(
        draws(&unseeded, 7, &flat, 50),
        draws(&unseeded, 7, &flat, 50)
    );
    assert_ne!(
        draws(&unseeded, 7, &flat, 50),
        draws(&unseeded, 8, &flat, 50)
    );
    // Each sequence owns its stream: interleaving with another sequence changes nothing.
    let mut x = SequenceSampler::new(&seeded(42), &[], 0, Vec::new(), None);
    let mut y = SequenceSampler::new(&seeded(5), &[], 0, Vec::new(), None);
    let mut interleaved = Vec::new();
    for _ in 0..50 {
        y.sample(&flat, &[], LogprobsMode::RawLogprobs);
        interleaved.push(x.sample(&flat, &[], LogprobsMode::RawLogprobs).token);
    }
    assert_eq!(interleaved, a);
    // Draws are spread, not stuck.
    assert!(a.iter().collect::<HashSet<_>>().len() > 25);
}

#[test]
fn sampled_frequencies_match_the_softmax() {
    let logits = [0.0, 2f32.ln(), 3f32.ln()];
    let expect = [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0];
    // The dense path and the candidate-list path (top-k keeping everything) must agree.
    for p in [
        params(|p| p.seed = Some(11)),
        params(|p| {
            p.seed = Some(12);
            p.top_k = 3;
        }),
    ] {
        let n = 20_000;
        let mut counts = [0usize; 3];
        for t in draws(&p, 0, &logits, n) {
            counts[t as usize] += 1;
        }
        for i in 0..3 {
            let f = counts[i] as f64 / n as f64;
            assert!(
                (f - expect[i]).abs() < 0.02,
                "token {i}: {f} vs {} ({p:?})",
                expect[i]
            );
        }
    }
}

#[test]
fn temperature_sharpens_the_distribution() {
    // At T = 0.5, softmax([0, ln 2]) becomes [1/5, 4/5].
    let logits = [0.0, 2f32.ln()];
    let p = params(|p| {
        p.temperature = 0.5;
        p.seed = Some(9);
    });
    let ones = draws(&p, 0, &logits, 20_000)
        .iter()
        .filter(|&&t| t == 1)
        .count();
    assert!((ones as f64 / 20_000.0 - 0.8).abs() < 0.02, "{ones}");
}

#[test]
fn raw_logprobs_rank_and_top() {
    let logits = [0.0, 2f32.ln(), 3f32.ln()];
    let p = params(|p| {
        p.temperature = 0.0;
        p.logprobs = Some(2);
    });
    let out = sampler(&p).sample(&logits, &[], LogprobsMode::RawLogprobs);
    assert_eq!((out.token, out.rank), (2, 1));
    assert!((out.logprob - 0.5f32.ln()).abs() < 1e-6);
    assert_eq!(out.top_logprobs.len(), 2);
    assert_eq!((out.top_logprobs[0].0, out.top_logprobs[1].0), (2, 1));
    assert!((out.top_logprobs[1].1 - (1.0f32 / 3.0).ln()).abs() < 1e-6);

    // Force the worst token: raw logprobs still describe the model's own distribution.
    let forced = params(|p| {
        p.temperature = 0.0;
        p.logprobs = Some(0);
        p.allowed_token_ids = Some(vec![0]);
    });
    let out = sampler(&forced).sample(&logits, &[], LogprobsMode::RawLogprobs);
    assert_eq!((out.token, out.rank), (0, 3));
    assert!((out.logprob - (1.0f32 / 6.0).ln()).abs() < 1e-6);
    assert!(out.top_logprobs.is_empty());
    // Processed logprobs describe the distribution after the mask: certain.
    let out = sampler(&forced).sample(&logits, &[], LogprobsMode::ProcessedLogprobs);
    assert_eq!((out.token, out.rank, out.logprob), (0, 1, 0.0));
    // Raw logits report the model's value itself.
    let out = sampler(&forced).sample(&logits, &[], LogprobsMode::RawLogits);
    assert_eq!(out.logprob, 0.0);
    assert_eq!(out.rank, 3);
}

#[test]
fn processed_logprobs_renormalize_over_the_filtered_candidates() {
    // Top-2 of [1/6, 2/6, 3/6] is {2, 1} with renormalized probabilities 3/5 and 2/5.
    let logits = [0.0, 2f32.ln(), 3f32.ln()];
    let p = params(|p| {
        p.top_k = 2;
        p.logprobs = Some(3);
        p.seed = Some(1);
    });
    let out = sampler(&p).sample(&logits, &[], LogprobsMode::ProcessedLogprobs);
    assert!(out.token == 1 || out.token == 2);
    let top = &out.top_logprobs;
    assert_eq!(
        top.len(),
        2,
        "the masked token has no finite logprob: {top:?}"
    );
    assert_eq!((top[0].0, top[1].0), (2, 1));
    assert!((top[0].1 - 0.6f32.ln()).abs() < 1e-6 && (top[1].1 - 0.4f32.ln()).abs() < 1e-6);
    let expect = if out.token == 2 {
        (0.6f32.ln(), 1)
    } else {
        (0.4f32.ln(), 2)
    };
    assert!((out.logprob - expect.0).abs() < 1e-6);
    assert_eq!(out.rank, expect.1);
}

#[test]
fn no_logprobs_requested_means_none_computed() {
    let out = sampler(&greedy()).sample(&[0.0, 1.0], &[], LogprobsMode::RawLogprobs);
    assert!(out.logprob.is_nan());
    assert_eq!(out.rank, 0);
    assert!(out.top_logprobs.is_empty());
}

#[test]
fn prompt_logprobs_score_each_token_by_the_previous_row() {
    let rows = [0.0, 2f32.ln(), 3f32.ln(), 3f32.ln(), 0.0, 2f32.ln()];
    let got = prompt_logprobs(&rows, 3, &[1, 0, 2], 1);
    assert_eq!(got.len(), 3);
    assert!(got[0].is_none());
    let p1 = got[1].as_ref().unwrap();
    assert_eq!((p1.token, p1.rank), (0, 3));
    assert!((p1.logprob - (1.0f32 / 6.0).ln()).abs() < 1e-6);
    assert_eq!(p1.top.len(), 1);
    assert_eq!(p1.top[0].0, 2);
    let p2 = got[2].as_ref().unwrap();
    assert_eq!((p2.token, p2.rank), (2, 2));
    assert!((p2.logprob - (2.0f32 / 6.0).ln()).abs() < 1e-6);
    // Only one row: the last position has nothing to be scored by.
    let got = prompt_logprobs(&rows[..3], 3, &[1, 0, 2], 0);
    assert!(got[1].is_some() && got[2].is_none());
    assert!(got[1].as_ref().unwrap().top.is_empty());
}

#[test]
fn everything_banned_still_returns_a_token() {
    // The only allowed id is the EOS that min_tokens bans: every logit is -inf. The draw falls
    // back to the argmax of that row, the first id, as torch's argmax of the all-NaN
    // probabilities vLLM computes for such a row; whatever the seed, and with top-k/top-p too.
    for seed in 0..8 {
        for top_k in [0, 2] {
            let p = params(|p| {
                p.allowed_token_ids = Some(vec![1]);
                p.min_tokens = 1;
                p.seed = Some(seed);
                p.top_k = top_k;
            });
            let mut s = SequenceSampler::new(&p, &[], 0, Vec::new(), Some(1));
            let t = s
                .sample(&[0.0, 1.0, 2.0], &[], LogprobsMode::RawLogprobs)
                .token;
            assert_eq!(t, 0, "seed {seed}, top_k {top_k}");
        }
    }
}

/// The top-k/top-p survivors computed the obvious way: sort everything best first, keep the
/// k best (and ties), renormalize, keep while the mass ranked above is below p.
fn reference_survivors(row: &[f32], top_k: usize, top_p: f64) -> Vec<u32> {
    let mut sorted: Vec<(f32, u32)> = (0..row.len() as u32)
        .map(|i| (row[i as usize], i))
        .collect();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    if top_k > 0 && top_k < sorted.len() {
        let kth = sorted[top_k - 1].0;
        sorted.retain(|c| c.0 >= kth);
    }
    let max = sorted[0].0 as f64;
    let total: f64 = sorted.iter().map(|c| (c.0 as f64 - max).exp()).sum();
    let mut above = 0.0;
    let mut kept = Vec::new();
    for c in sorted {
        if above >= top_p * total {
            break;
        }
        above += (c.0 as f64 - max).exp();
        kept.push(c.1);
    }
    kept.sort_unstable();
    kept
}

#[test]
fn top_k_top_p_match_a_full_sort_on_random_rows() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for case in 0..60 {
        let vocab = [50, 700, 5000, 20000][case % 4];
        // Logits from flat to very peaked, with coarse values so ties occur.
        let spread = [0.5f32, 2.0, 6.0][case % 3];
        let row: Vec<f32> = (0..vocab)
            .map(|_| {
                (rng.random::<f32>() * spread * 8.0).round() / 8.0
                    + if rng.random::<f32>() < 0.001 {
                        8.0
                    } else {
                        0.0
                    }
            })
            .collect();
        let top_k = [0usize, 1, 7, 40, 300][case % 5];
        let top_p = [1.0f32, 0.3, 0.8, 0.95, 0.999][(case / 5) % 5];
        let p = params(|p| {
            p.top_k = top_k as i32;
            p.top_p = top_p;
        });
        let got = finite_ids(&processed_row(&p, &row, &[], &[], Vec::new(), None));
        let want = reference_survivors(&row, top_k, top_p as f64);
        assert_eq!(
            got, want,
            "case {case}: vocab {vocab}, top_k {top_k}, top_p {top_p}"
        );
    }
}
