//! Continuous batching in the shape of vLLM v1's scheduler.
//!
//! A request only tracks how many of its tokens (prompt + generated so far) have K/V in the
//! cache: `num_computed`. Each step spends a token budget, running requests first (one decode
//! token each, or the next chunk of their prompt), then waiting ones, so prefill and decode mix
//! freely in one batch. When the KV pool runs dry, the newest (or lowest-priority) running
//! request is preempted: its blocks are freed and it later recomputes everything it had, which
//! yields exactly the tokens it would have produced anyway.

mod config;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

pub use config::{SchedulerConfig, SchedulingPolicy};

use crate::kv_cache::KvCacheManager;
use crate::request::RequestId;

/// The scheduler's view of a request.
#[derive(Debug, Clone)]
pub struct SchedRequest {
    pub id: RequestId,
    /// Prompt followed by every generated token.
    pub tokens: Vec<u32>,
    pub num_prompt: usize,
    /// Tokens whose K/V are in the cache (after the step that computes them is run).
    pub num_computed: usize,
    pub priority: i32,
    /// Arrival order, the FCFS key.
    seq: u64,
    /// Prompt tokens served by the prefix cache at first admission.
    pub num_cached_tokens: usize,
    pub num_preemptions: usize,
    admitted: bool,
    skip_prefix_cache: bool,
}

/// One sequence's share of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledSeq {
    pub id: RequestId,
    /// Position of the first token to compute (= num_computed before the step).
    pub start: usize,
    pub num_new: usize,
}

#[derive(Debug, Default, Clone)]
pub struct SchedulerOutput {
    pub scheduled: Vec<ScheduledSeq>,
    /// Requests preempted in this step (already back in the waiting queue).
    pub preempted: Vec<RequestId>,
}

impl SchedulerOutput {
    pub fn num_tokens(&self) -> usize {
        self.scheduled.iter().map(|s| s.num_new).sum()
    }
}

pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCacheManager,
    requests: HashMap<RequestId, SchedRequest>,
    waiting: VecDeque<RequestId>,
    running: Vec<RequestId>,
    next_seq: u64,
    num_preemptions: u64,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig, kv: KvCacheManager) -> Self {
        Scheduler {
            config,
            kv,
            requests: HashMap::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            next_seq: 0,
            num_preemptions: 0,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    pub fn kv(&self) -> &KvCacheManager {
        &self.kv
    }

    /// Forgets every cached prefix block; refused (false) while any request holds blocks, so a
    /// running request never loses KV it still reads.
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.kv.reset_prefix_cache()
    }

    pub fn request(&self, id: RequestId) -> Option<&SchedRequest> {
        self.requests.get(&id)
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty()
    }

    /// Preemptions since start (a counter for the metrics).
    pub fn num_preemptions(&self) -> u64 {
        self.num_preemptions
    }

    /// Queues a new request. The caller has validated it (prompt + max_tokens fit the model).
    pub fn add(&mut self, id: RequestId, prompt: Vec<u32>, priority: i32, skip_prefix_cache: bool) {
        let req = SchedRequest {
            id,
            num_prompt: prompt.len(),
            tokens: prompt,
            num_computed: 0,
            priority,
            seq: self.next_seq,
            num_cached_tokens: 0,
            num_preemptions: 0,
            admitted: false,
            skip_prefix_cache,
        };
        self.next_seq += 1;
        self.requests.insert(id, req);
        self.insert_waiting(id);
    }

    /// Appends a sampled token to a request.
    pub fn append_token(&mut self, id: RequestId, token: u32) {
        if let Some(r) = self.requests.get_mut(&id) {
            r.tokens.push(token);
        }
    }

    /// Removes a request (finished or aborted) and frees every block it holds.
    pub fn remove(&mut self, id: RequestId) -> Option<SchedRequest> {
        let req = self.requests.remove(&id)?;
        self.running.retain(|r| *r != id);
        self.waiting.retain(|r| *r != id);
        // Blocks scheduled but never computed (a failed step) must not stay in the prefix cache.
        self.kv.free_unwritten(id, req.num_computed);
        Some(req)
    }

    /// The block table of a scheduled request, for the forward pass.
    pub fn block_table(&self, id: RequestId) -> &[u32] {
        self.kv.block_table(id)
    }

    fn order_key(&self, id: RequestId) -> (i32, u64) {
        let r = &self.requests[&id];
        match self.config.policy {
            SchedulingPolicy::Fcfs => (0, r.seq),
            SchedulingPolicy::Priority => (r.priority, r.seq),
        }
    }

    /// Waiting requests stay sorted by the policy's key; preempted ones return to their place.
    fn insert_waiting(&mut self, id: RequestId) {
        let key = self.order_key(id);
        let pos = self
            .waiting
            .iter()
            .position(|w| self.order_key(*w) > key)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(pos, id);
    }

    /// The running request to give up first: the last by the policy's order.
    fn pick_victim(&self) -> Option<usize> {
        (0..self.running.len()).max_by_key(|&i| self.order_key(self.running[i]))
    }

    fn preempt(&mut self, index: usize, out: &mut SchedulerOutput) {
        let id = self.running.remove(index);
        if let Some(r) = self.requests.get_mut(&id) {
            // It may have been allocated this very step (priority policy): blocks cached for
            // tokens that will now never be computed must leave the prefix cache.
            self.kv.free_unwritten(id, r.num_computed);
            r.num_computed = 0;
            r.num_preemptions += 1;
        }
        self.num_preemptions += 1;
        out.preempted.push(id);
        out.scheduled.retain(|s| s.id != id);
        self.insert_waiting(id);
    }

    fn cap_chunk(&self, remaining: usize, budget: usize) -> usize {
        let mut n = remaining.min(budget);
        if self.config.long_prefill_token_threshold > 0 {
            n = n.min(self.config.long_prefill_token_threshold);
        }
        n
    }

    fn is_long(&self, r: &SchedRequest) -> bool {
        self.config.long_prefill_token_threshold > 0
            && r.tokens.len() > self.config.long_prefill_token_threshold
    }

    /// Plans one step. Returns what to compute; blocks for it are already allocated.
    pub fn schedule(&mut self) -> SchedulerOutput {
        let mut out = SchedulerOutput::default();
        let mut budget = self.config.max_num_batched_tokens;
        let (mut partial, mut long_partial) = (0usize, 0usize);

        // Running requests first, in order; preemption may shrink the list under us.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let id = self.running[i];
            let r = &self.requests[&id];
            let remaining = r.tokens.len() - r.num_computed;
            if remaining == 0 {
                i += 1;
                continue;
            }
            let num_new = self.cap_chunk(remaining, budget);
            let (start, is_partial, is_long) =
                (r.num_computed, num_new < remaining, self.is_long(r));
            let mut scheduled = false;
            loop {
                let r = &self.requests[&id];
                if self
                    .kv
                    .allocate_slots(id, &r.tokens, r.num_computed, num_new, &[])
                {
                    scheduled = true;
                    break;
                }
                let Some(victim) = self.pick_victim() else {
                    break;
                };
                let victim_is_self = self.running[victim] == id;
                self.preempt(victim, &mut out);
                if victim_is_self {
                    break;
                }
            }
            if !scheduled {
                // `id` itself was preempted: everything after it in `running` was already
                // preempted before it (they rank later), so the loop ends here.
                break;
            }
            out.scheduled.push(ScheduledSeq { id, start, num_new });
            budget -= num_new;
            if is_partial {
                partial += 1;
                long_partial += is_long as usize;
            }
            i = self
                .running
                .iter()
                .position(|r| *r == id)
                .map_or(self.running.len(), |p| p + 1);
        }

        // Then waiting requests, unless this step had to preempt (memory is tight).
        if out.preempted.is_empty() {
            while budget > 0 && self.running.len() < self.config.max_num_seqs {
                let Some(&id) = self.waiting.front() else {
                    break;
                };
                let r = &self.requests[&id];
                let (computed_blocks, num_cached) = if self.config_prefix_lookup(r) {
                    self.kv.get_computed_blocks(&self.requests[&id].tokens)
                } else {
                    (Vec::new(), 0)
                };
                let r = &self.requests[&id];
                let remaining = r.tokens.len() - num_cached;
                if !self.config.enable_chunked_prefill && remaining > budget {
                    break;
                }
                let num_new = self.cap_chunk(remaining, budget);
                let is_partial = num_new < remaining;
                let is_long = self.is_long(r);
                if is_partial
                    && (partial >= self.config.max_num_partial_prefills
                        || (is_long && long_partial >= self.config.max_long_partial_prefills))
                {
                    break;
                }
                if !self
                    .kv
                    .allocate_slots(id, &r.tokens, num_cached, num_new, &computed_blocks)
                {
                    break;
                }
                self.waiting.pop_front();
                let Some(r) = self.requests.get_mut(&id) else {
                    continue;
                };
                if !r.admitted {
                    r.admitted = true;
                    r.num_cached_tokens = num_cached;
                }
                r.num_computed = num_cached;
                self.running.push(id);
                out.scheduled.push(ScheduledSeq {
                    id,
                    start: num_cached,
                    num_new,
                });
                budget -= num_new;
                if is_partial {
                    partial += 1;
                    long_partial += is_long as usize;
                }
            }
        }
        out
    }

    /// Prefix lookups only make sense for a request that holds no blocks yet, and not for one
    /// that wants prompt logprobs (cached positions would have no logits).
    fn config_prefix_lookup(&self, r: &SchedRequest) -> bool {
        r.num_computed == 0 && !r.skip_prefix_cache
    }

    /// Records that the step's tokens were computed. Returns the ids that now need a token
    /// sampled (all their known tokens are computed).
    pub fn finish_step(&mut self, out: &SchedulerOutput) -> Vec<RequestId> {
        let mut ready = Vec::new();
        for s in &out.scheduled {
            if let Some(r) = self.requests.get_mut(&s.id) {
                r.num_computed = s.start + s.num_new;
                if r.num_computed == r.tokens.len() {
                    ready.push(s.id);
                }
            }
        }
        ready
    }
}
