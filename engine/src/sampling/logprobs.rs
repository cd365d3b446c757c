//! Logprob reporting: which distribution logprobs come from (`--logprobs-mode`), and the
//! log-softmax, rank and top-n of one row without sorting the whole vocabulary.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use super::math::{clean, exp_neg, log_sum_exp, superset_of_top, Scratch};

/// What the reported logprobs are computed from (vLLM's `--logprobs-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LogprobsMode {
    /// Log-softmax of the model's logits, before any processing.
    #[default]
    RawLogprobs,
    /// Log-softmax after penalties, temperature and the top-k/top-p/min-p filters.
    ProcessedLogprobs,
    /// The model's logits themselves.
    RawLogits,
    /// The processed logits themselves.
    ProcessedLogits,
}

impl LogprobsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LogprobsMode::RawLogprobs => "raw_logprobs",
            LogprobsMode::ProcessedLogprobs => "processed_logprobs",
            LogprobsMode::RawLogits => "raw_logits",
            LogprobsMode::ProcessedLogits => "processed_logits",
        }
    }

    /// Whether values come from the model's logits before processing.
    pub fn is_raw(self) -> bool {
        matches!(self, LogprobsMode::RawLogprobs | LogprobsMode::RawLogits)
    }

    /// Whether values are log-softmax values rather than logits.
    pub fn is_logprobs(self) -> bool {
        matches!(
            self,
            LogprobsMode::RawLogprobs | LogprobsMode::ProcessedLogprobs
        )
    }
}

impl fmt::Display for LogprobsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid logprobs mode `{0}` (expected raw_logprobs, processed_logprobs, raw_logits or processed_logits)")]
pub struct ParseLogprobsModeError(pub String);

impl FromStr for LogprobsMode {
    type Err = ParseLogprobsModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw_logprobs" => Ok(LogprobsMode::RawLogprobs),
            "processed_logprobs" => Ok(LogprobsMode::ProcessedLogprobs),
            "raw_logits" => Ok(LogprobsMode::RawLogits),
            "processed_logits" => Ok(LogprobsMode::ProcessedLogits),
            other => Err(ParseLogprobsModeError(other.to_string())),
        }
    }
}

/// Logprob facts of one prompt position (how likely the prompt's own token was).
#[derive(Debug, Clone, PartialEq)]
pub struct PromptLogprob {
    pub token: u32,
    pub logprob: f32,
    /// 1-based rank of `token` (number of tokens at least as likely).
    pub rank: usize,
    /// The `k` most likely tokens, best first.
    pub top: Vec<(u32, f32)>,
}

/// Best-first order: higher value first, then lower id, so ties are reported deterministically.
pub(crate) fn best_first(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// The value of `token`, its rank and the top `n` entries of a dense row, as logprobs
/// (`log_softmax`) or as the values themselves. The rank counts tokens whose value is at least
/// the token's, as vLLM does, so the best token has rank 1.
pub(crate) fn dense_stats(
    row: &[f32],
    token: u32,
    n: usize,
    as_logprobs: bool,
    scratch: &mut Scratch,
) -> (f32, usize, Vec<(u32, f32)>) {
    let shift = if as_logprobs { log_sum_exp(row) } else { 0.0 };
    let value = row
        .get(token as usize)
        .map_or(f32::NEG_INFINITY, |&v| clean(v));
    let rank = row
        .iter()
        .map(|&v| (clean(v) >= value) as usize)
        .sum::<usize>()
        .max(1);
    let top = top_n_of_row(row, n, scratch);
    finish_stats(value, rank, &top, as_logprobs, shift)
}

/// The same facts as [`dense_stats`] for a distribution given as its surviving candidates
/// (any order); every other token has probability zero.
pub(crate) fn sparse_stats(
    candidates: &[(f32, u32)],
    token: u32,
    n: usize,
    as_logprobs: bool,
    scratch: &mut Vec<(f32, u32)>,
) -> (f32, usize, Vec<(u32, f32)>) {
    let shift = if as_logprobs {
        let max = candidates
            .iter()
            .map(|c| c.0)
            .fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = candidates.iter().map(|c| exp_neg(c.0 - max) as f64).sum();
        max as f64 + sum.ln()
    } else {
        0.0
    };
    let value = candidates
        .iter()
        .find(|(_, id)| *id == token)
        .map_or(f32::NEG_INFINITY, |(v, _)| *v);
    let rank = candidates
        .iter()
        .filter(|(v, _)| *v >= value)
        .count()
        .max(1);
    let top = top_n(candidates.iter().copied(), n, scratch);
    finish_stats(value, rank, &top, as_logprobs, shift)
}

fn finish_stats(
    value: f32,
    rank: usize,
    top: &[(f32, u32)],
    as_logprobs: bool,
    shift: f64,
) -> (f32, usize, Vec<(u32, f32)>) {
    let out = |v: f32| -> f32 {
        if as_logprobs {
            (v as f64 - shift) as f32
        } else {
            v
        }
    };
    (
        out(value),
        rank,
        top.iter().map(|&(v, id)| (id, out(v))).collect(),
    )
}

/// The `n` best unmasked entries of a whole row, best first.
pub(crate) fn top_n_of_row(row: &[f32], n: usize, scratch: &mut Scratch) -> Vec<(f32, u32)> {
    superset_of_top(row, n, &mut scratch.pairs, &mut scratch.maxima);
    top_n(scratch.pairs.iter().copied(), n, &mut scratch.select)
}

/// Above this many entries [`top_n`] selects instead of keeping a sorted best-list.
const SMALL_TOP: usize = 256;

/// The `n` best `(value, id)` items (by [`best_first`]), best first. Small `n` keeps a sorted
/// list that most items fail to enter with one comparison; large `n` selects with
/// `select_nth_unstable` in `scratch`. Neither sorts everything.
pub(crate) fn top_n(
    items: impl Iterator<Item = (f32, u32)>,
    n: usize,
    scratch: &mut Vec<(f32, u32)>,
) -> Vec<(f32, u32)> {
    if n == 0 {
        return Vec::new();
    }
    if n > SMALL_TOP {
        scratch.clear();
        scratch.extend(items);
        if n < scratch.len() {
            scratch.select_nth_unstable_by(n - 1, best_first);
            scratch.truncate(n);
        }
        scratch.sort_unstable_by(best_first);
        return scratch.clone();
    }
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(n + 1);
    for item in items {
        if best.len() == n {
            let worst = best[n - 1];
            if item.0 < worst.0 || best_first(&item, &worst).is_ge() {
                continue;
            }
        }
        let at = best.partition_point(|b| best_first(b, &item).is_lt());
        best.insert(at, item);
        best.truncate(n);
    }
    best
}

/// Logprobs of a prompt's own tokens. `logits_rows` holds consecutive rows of `vocab` logits,
/// row `i` being the model's prediction after `prompt[..=i]`. Position 0 has no prediction and
/// is `None`; position `i` is `prompt[i]` scored by row `i - 1` (also `None` if that row is
/// missing), with the top `k` tokens. Values are raw log-softmax values, as in vLLM.
pub fn prompt_logprobs(
    logits_rows: &[f32],
    vocab: usize,
    prompt: &[u32],
    k: usize,
) -> Vec<Option<PromptLogprob>> {
    // Each position costs a few passes over the vocabulary and they are independent: a long
    // prompt is scored in parallel.
    (0..prompt.len())
        .into_par_iter()
        .map_init(Scratch::default, |scratch, i| {
            let token = prompt[i];
            let row = i
                .checked_sub(1)
                .filter(|_| vocab > 0)
                .and_then(|r| logits_rows.get(r * vocab..(r + 1) * vocab))?;
            let (logprob, rank, top) = dense_stats(row, token, k, true, scratch);
            Some(PromptLogprob {
                token,
                logprob,
                rank,
                top,
            })
        })
        .collect()
}
