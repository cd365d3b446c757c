//! One sequence's constraint state: masks its logits and follows its tokens.

use llguidance::toktrie::SimpleVob;
use llguidance::Matcher;

use super::CompiledGrammar;

/// With a reasoning parser, the constraint starts after the model's reasoning ends (vLLM's
/// `reasoning_ended`): the token that closes the reasoning, and the one that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasoningGate {
    pub start: Option<u32>,
    pub end: u32,
}

/// Reasoning is already over when the prompt closes it after its last opening (a template
/// that disables thinking writes an empty `<think></think>` into the prompt).
pub(super) fn gate_ended_in(gate: &ReasoningGate, prompt: &[u32]) -> bool {
    {
        let last_end = prompt.iter().rposition(|&t| t == gate.end);
        let last_start = gate
            .start
            .and_then(|s| prompt.iter().rposition(|&t| t == s));
        match (last_end, last_start) {
            (Some(e), Some(s)) => e > s,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

pub struct GrammarMatcher {
    matcher: Matcher,
    /// False while the model is still reasoning: no mask, tokens not fed to the grammar.
    active: bool,
    gate: Option<ReasoningGate>,
    /// The model's end-of-sequence ids. A finished grammar allows only the trie's EOS (the
    /// tokenizer's, as vLLM's bitmask does); any EOS still ends the sequence.
    eos_ids: Vec<u32>,
    /// A mask computed ahead (while the forward pass ran) for the current state.
    ready_mask: Option<SimpleVob>,
    failed: Option<String>,
}

impl std::fmt::Debug for GrammarMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarMatcher")
            .field("active", &self.active)
            .field("failed", &self.failed)
            .finish()
    }
}

impl GrammarMatcher {
    pub fn new(
        grammar: CompiledGrammar,
        gate: Option<ReasoningGate>,
        prompt: &[u32],
        eos_ids: &[u32],
    ) -> Self {
        let matcher = grammar.into_matcher();
        GrammarMatcher {
            matcher,
            active: gate.is_none_or(|g| gate_ended_in(&g, prompt)),
            gate,
            eos_ids: eos_ids.to_vec(),
            ready_mask: None,
            failed: None,
        }
    }

    /// Whether the next token is constrained (false while reasoning or after a failure).
    pub fn is_active(&self) -> bool {
        self.active && self.failed.is_none()
    }

    /// Why the constraint broke, if it did (a token it could not take).
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Computes the mask for the next token now, so that [`Self::apply`] only has to copy it;
    /// the engine calls this on a helper thread while the forward pass runs.
    pub fn prepare(&mut self) {
        if self.is_active() && self.ready_mask.is_none() {
            self.ready_mask = self.compute();
        }
    }

    fn compute(&mut self) -> Option<SimpleVob> {
        match self.matcher.compute_mask_or_eos() {
            Ok(m) => Some(m),
            Err(e) => {
                self.failed = Some(e.to_string());
                None
            }
        }
    }

    /// Sets every logit the grammar forbids to -inf.
    pub fn apply(&mut self, logits: &mut [f32]) {
        if !self.is_active() {
            return;
        }
        let mask = match self.ready_mask.take() {
            Some(m) => m,
            None => match self.compute() {
                Some(m) => m,
                None => return,
            },
        };
        let words = mask.as_slice();
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let bits = words.get(w).copied().unwrap_or(0);
            if bits == u32::MAX {
                continue;
            }
            for (b, v) in chunk.iter_mut().enumerate() {
                if bits & (1 << b) == 0 {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
    }

    /// Follows the sampled token.
    pub fn accept(&mut self, token: u32) {
        self.ready_mask = None;
        if self.failed.is_some() {
            return;
        }
        if !self.active {
            if self.gate.is_some_and(|g| g.end == token) {
                self.active = true;
            }
            return;
        }
        if self.eos_ids.contains(&token) || self.matcher.is_stopped() {
            // EOS ends the sequence; a finished grammar has nothing left to follow.
            return;
        }
        if let Err(e) = self.matcher.consume_token(token) {
            self.failed = Some(e.to_string());
        }
    }
}
