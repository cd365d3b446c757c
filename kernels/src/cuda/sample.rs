//! Host entry to `sampling.cu`: rows of f32 logits in, one token per row (with logprobs) out.
//! The engine hands it rows after its own pre-temperature steps (allowed ids, bias, bad words,
//! min_tokens) when GPU sampling is switched on, and scripts/gpu-check.sh compares it with the
//! CPU sampler on the same rows and uniform draws.

use super::device::GpuDevice;
use super::error::CudaError;

/// One row's sampling settings, as vLLM's sampler takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSampleRow {
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 (or >= vocab) keeps every token.
    pub top_k: i32,
    /// 1.0 keeps every token.
    pub top_p: f32,
    /// 0.0 keeps every token.
    pub min_p: f32,
    /// The draw, uniform in [0, 1): the caller's per-request generator makes it, so seeded
    /// requests stay reproducible.
    pub uniform: f32,
    pub repetition_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// (token, count in the generated output) of every token the penalties touch (count 0 for
    /// tokens only in the prompt, which only the repetition penalty uses).
    pub history: Vec<(u32, u32)>,
}

impl GpuSampleRow {
    fn has_penalties(&self) -> bool {
        !self.history.is_empty()
            && (self.repetition_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }
}

/// What the GPU sampled for one row; logprobs are of the row as given (before penalties).
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSampled {
    pub token: u32,
    pub logprob: f32,
    /// The `num_top` most likely tokens, best first.
    pub top: Vec<(u32, f32)>,
}

impl GpuDevice {
    /// Samples each row (`rows.len()` rows of `vocab`) with its settings: from `processed` when
    /// given (the caller's pre-temperature steps applied), else from `logits`, then this row's
    /// penalties; logprobs always come from `logits`, the model's own rows.
    pub fn sample_rows_from_host(
        &self,
        logits: &[f32],
        processed: Option<&[f32]>,
        vocab: usize,
        rows: &[GpuSampleRow],
        num_top: usize,
    ) -> Result<Vec<GpuSampled>, CudaError> {
        let n = rows.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if logits.len() != n * vocab
            || processed.is_some_and(|p| p.len() != n * vocab)
            || vocab == 0
        {
            return Err(CudaError::Invalid {
                what: "sampling",
                detail: format!("{} logits for {n} rows of {vocab}", logits.len()),
            });
        }
        let raw = self.upload(logits)?;
        let start_rows = processed.unwrap_or(logits);
        let processed = processed.map(|p| self.upload(p)).transpose()?;
        // Penalties edit a copy, so that logprobs come from the model's own rows (vLLM's
        // default raw_logprobs), not from the penalised ones.
        let penalised = if rows.iter().any(GpuSampleRow::has_penalties) {
            let work = self.upload(start_rows)?;
            let mut offsets = vec![0u32];
            let (mut tokens, mut counts) = (Vec::new(), Vec::new());
            for r in rows {
                if r.has_penalties() {
                    for &(t, c) in &r.history {
                        tokens.push(t);
                        counts.push(c);
                    }
                }
                offsets.push(tokens.len() as u32);
            }
            let per_row = |f: fn(&GpuSampleRow) -> f32| rows.iter().map(f).collect::<Vec<f32>>();
            let (offsets, tokens, counts) = (
                self.upload(&offsets)?,
                self.upload(&tokens)?,
                self.upload(&counts)?,
            );
            let rep = self.upload(&per_row(|r| r.repetition_penalty))?;
            let pres = self.upload(&per_row(|r| r.presence_penalty))?;
            let freq = self.upload(&per_row(|r| r.frequency_penalty))?;
            self.apply_penalties(
                self.ptr(&work),
                n,
                vocab,
                self.ptr(&offsets),
                self.ptr(&tokens),
                self.ptr(&counts),
                self.ptr(&rep),
                self.ptr(&pres),
                self.ptr(&freq),
            )?;
            // The uploads above must outlive the launch: wait before they drop.
            self.synchronize()?;
            Some(work)
        } else {
            None
        };
        let temperature = self.upload(&rows.iter().map(|r| r.temperature).collect::<Vec<_>>())?;
        let top_k = self.upload(&rows.iter().map(|r| r.top_k).collect::<Vec<_>>())?;
        let top_p = self.upload(&rows.iter().map(|r| r.top_p).collect::<Vec<_>>())?;
        let min_p = self.upload(&rows.iter().map(|r| r.min_p).collect::<Vec<_>>())?;
        let uniform = self.upload(&rows.iter().map(|r| r.uniform).collect::<Vec<_>>())?;
        let out_token = self.alloc_zeros::<u32>(n)?;
        let out_logprob = self.alloc_zeros::<f32>(n)?;
        let top_ids = self.alloc_zeros::<u32>(n * num_top)?;
        let top_lps = self.alloc_zeros::<f32>(n * num_top)?;
        let sampled_from = penalised.as_ref().or(processed.as_ref()).unwrap_or(&raw);
        self.sample_rows(
            self.ptr(sampled_from),
            self.ptr(&raw),
            n,
            vocab,
            [
                self.ptr(&temperature),
                self.ptr(&top_k),
                self.ptr(&top_p),
                self.ptr(&min_p),
                self.ptr(&uniform),
            ],
            self.ptr(&out_token),
            self.ptr(&out_logprob),
            num_top,
            self.ptr(&top_ids),
            self.ptr(&top_lps),
        )?;
        let tokens = self.download(&out_token, n)?;
        let logprobs = self.download(&out_logprob, n)?;
        let ids = self.download(&top_ids, n * num_top)?;
        let lps = self.download(&top_lps, n * num_top)?;
        Ok((0..n)
            .map(|i| GpuSampled {
                token: tokens[i],
                logprob: logprobs[i],
                top: (0..num_top)
                    .map(|j| (ids[i * num_top + j], lps[i * num_top + j]))
                    .collect(),
            })
            .collect())
    }
}
