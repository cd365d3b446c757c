//! Sampling: per-request parameters and their validation ([`SamplingParams`]), the model's
//! generation-config defaults ([`SamplingDefaults`]), and the per-sequence sampler that turns a
//! logits row into the next token ([`SequenceSampler`]), following vLLM v1's semantics.

mod defaults;
mod filters;
mod logprobs;
mod math;
mod params;
mod penalties;
mod sampler;

#[cfg(test)]
mod tests_params;
#[cfg(test)]
mod tests_sampler;

pub use defaults::SamplingDefaults;
pub use logprobs::{prompt_logprobs, LogprobsMode, ParseLogprobsModeError, PromptLogprob};
pub use params::{
    SamplingError, SamplingParams, ValidationContext, MIN_RANDOM_TEMPERATURE, SAMPLING_EPS,
};
pub use penalties::{bad_words_to_ids, try_bad_words_to_ids};
pub use sampler::{GpuSampleRequest, SampledToken, SequenceSampler};
