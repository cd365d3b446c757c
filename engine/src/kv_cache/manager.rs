//! Per-request KV bookkeeping on top of the block pool: which blocks each request's block table
//! holds, prefix-cache lookups for new prompts, and hashing of blocks as they fill up.
//!
//! The scheduler drives it once per step:
//! 1. for a new (or preempted and resumed) request, `get_computed_blocks(prompt)` finds the cached
//!    prefix; 2. `allocate_slots(req, all_tokens, num_computed, num_new, computed)` makes the
//!    request own blocks for everything scheduled this step (or returns false: preempt or wait);
//!    3. the forward pass writes the scheduled tokens' K/V; 4. `free(req)` when it finishes or is
//!    preempted.

use std::collections::HashMap;

use super::block_pool::{BlockHash, BlockPool};
use super::prefix_hash::PrefixHashAlgo;

pub type RequestId = u64;

#[derive(Clone, Debug, Default, PartialEq)]
struct RequestBlocks {
    blocks: Vec<u32>,
    /// Hashes of the first `hashes.len()` blocks (all full and written); the next one to fill
    /// chains on the last of these.
    hashes: Vec<BlockHash>,
    /// Highest `num_computed + num_new` seen: tokens whose K/V is written or being written.
    num_tokens: usize,
    salt: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KvCacheManager {
    pool: BlockPool,
    block_size: usize,
    algo: PrefixHashAlgo,
    enable_caching: bool,
    requests: HashMap<RequestId, RequestBlocks>,
    /// Salts registered before a request's first allocation (`set_cache_salt`).
    pending_salts: HashMap<RequestId, Vec<u8>>,
    queries: u64,
    hits: u64,
}

impl KvCacheManager {
    pub fn new(
        num_blocks: usize,
        block_size: usize,
        enable_prefix_caching: bool,
        algo: PrefixHashAlgo,
    ) -> Self {
        debug_assert!(block_size > 0, "block_size must be positive");
        KvCacheManager {
            pool: BlockPool::new(num_blocks, enable_prefix_caching),
            block_size: block_size.max(1),
            algo,
            enable_caching: enable_prefix_caching,
            requests: HashMap::new(),
            pending_salts: HashMap::new(),
            queries: 0,
            hits: 0,
        }
    }

    /// Longest run of cached full blocks that prefixes `tokens`, capped at `tokens.len() - 1`
    /// tokens because the last prompt token must run through the model to produce logits.
    /// Returns the blocks and the number of tokens they cover; takes no references (the caller
    /// passes them to `allocate_slots` in the same step, before anything else allocates).
    pub fn get_computed_blocks(&mut self, tokens: &[u32]) -> (Vec<u32>, usize) {
        self.get_computed_blocks_salted(tokens, None)
    }

    /// `get_computed_blocks` for a request with a cache salt (see `set_cache_salt`): it only hits
    /// blocks computed under the same salt.
    pub fn get_computed_blocks_salted(
        &mut self,
        tokens: &[u32],
        salt: Option<&[u8]>,
    ) -> (Vec<u32>, usize) {
        if !self.enable_caching {
            return (Vec::new(), 0);
        }
        let max_blocks = tokens.len().saturating_sub(1) / self.block_size;
        let mut blocks = Vec::new();
        let mut parent = None;
        // Hash lazily and stop at the first miss: a waiting request is re-queried every step,
        // so the cost must be bounded by the hit, not the prompt.
        for (i, chunk) in tokens
            .chunks_exact(self.block_size)
            .take(max_blocks)
            .enumerate()
        {
            let h = self
                .algo
                .hash_block(parent, chunk, if i == 0 { salt } else { None });
            match self.pool.lookup(h) {
                Some(b) => blocks.push(b),
                None => break,
            }
            parent = Some(h);
        }
        let covered = blocks.len() * self.block_size;
        self.queries += tokens.len() as u64;
        self.hits += covered as u64;
        (blocks, covered)
    }

    /// Registers the cache salt of a request that has not allocated yet; its first block (and so
    /// its whole chain) is hashed with it. Ignored once the request owns blocks.
    pub fn set_cache_salt(&mut self, req: RequestId, salt: Option<Vec<u8>>) {
        if self.requests.contains_key(&req) {
            return;
        }
        match salt {
            Some(s) => self.pending_salts.insert(req, s),
            None => self.pending_salts.remove(&req),
        };
    }

    /// Makes `req` own blocks for its first `num_computed + num_new` tokens. On the request's
    /// first call, `computed_blocks` (from `get_computed_blocks`, covering the first
    /// `computed_blocks.len() * block_size <= num_computed` tokens) are acquired and start its
    /// table; later calls must pass `&[]`. Returns false, changing nothing, if the pool cannot
    /// supply the missing blocks, or if `computed_blocks` are no longer the cached prefix of
    /// `all_tokens` (they were evicted in between: call `get_computed_blocks` again).
    ///
    /// Every block that is then full of the first `min(num_computed + num_new, all_tokens.len())`
    /// tokens is hashed and cached: the caller must write those tokens' K/V in this step.
    pub fn allocate_slots(
        &mut self,
        req: RequestId,
        all_tokens: &[u32],
        num_computed: usize,
        num_new: usize,
        computed_blocks: &[u32],
    ) -> bool {
        let bs = self.block_size;
        let total = num_computed.saturating_add(num_new);
        let existing = self.requests.get(&req);
        let is_new = existing.is_none();
        let num_existing = existing.map_or(0, |r| r.blocks.len());
        // Only a new request needs it here (to verify its hits); a running one keeps its own.
        let salt = if is_new {
            self.pending_salts.get(&req).cloned()
        } else {
            None
        };
        debug_assert!(
            is_new || computed_blocks.is_empty(),
            "computed_blocks passed for running request {req}"
        );
        let computed = if is_new { computed_blocks } else { &[] };
        if computed.len() * bs > num_computed {
            debug_assert!(false, "computed_blocks cover more than num_computed tokens");
            return false;
        }
        let computed_hashes = match self.verify_computed(all_tokens, computed, salt.as_deref()) {
            Some(h) => h,
            None => return false,
        };

        let needed = self.blocks_for(total);
        let to_allocate = needed.saturating_sub(num_existing + computed.len());
        // A computed block that is free-but-cached leaves the free queue when acquired, so it
        // uses up one free block just as a fresh allocation does.
        let reclaimed = computed
            .iter()
            .filter(|&&b| self.pool.ref_count(b) == 0)
            .count();
        if to_allocate + reclaimed > self.pool.num_free() {
            return false;
        }

        // Acquire before allocating: otherwise `allocate` could evict the very blocks we hit.
        for &b in computed {
            self.pool.acquire(b);
        }
        let mut fresh = Vec::with_capacity(to_allocate);
        for _ in 0..to_allocate {
            match self.pool.allocate() {
                Some(b) => fresh.push(b),
                None => {
                    // Unreachable after the count check; undo rather than leave a half table.
                    debug_assert!(false, "pool ran out after the free-count check");
                    for &b in fresh.iter().rev().chain(computed.iter().rev()) {
                        self.pool.release(b);
                    }
                    return false;
                }
            }
        }

        if is_new {
            self.pending_salts.remove(&req);
        }
        let state = self.requests.entry(req).or_insert_with(|| RequestBlocks {
            blocks: computed.to_vec(),
            hashes: computed_hashes,
            num_tokens: 0,
            salt,
        });
        state.blocks.extend_from_slice(&fresh);
        state.num_tokens = state.num_tokens.max(total);

        if self.enable_caching {
            let full = (total.min(all_tokens.len()) / bs).min(state.blocks.len());
            for i in state.hashes.len()..full {
                let parent = state.hashes.last().copied();
                let extra = if i == 0 { state.salt.as_deref() } else { None };
                let h = self
                    .algo
                    .hash_block(parent, &all_tokens[i * bs..(i + 1) * bs], extra);
                self.pool.cache_block(state.blocks[i], h);
                state.hashes.push(h);
            }
        }
        true
    }

    /// Checks that `computed` is still the cached prefix of `tokens` and returns its hashes.
    fn verify_computed(
        &self,
        tokens: &[u32],
        computed: &[u32],
        salt: Option<&[u8]>,
    ) -> Option<Vec<BlockHash>> {
        if computed.is_empty() {
            return Some(Vec::new());
        }
        if !self.enable_caching {
            debug_assert!(false, "computed_blocks with prefix caching disabled");
            return None;
        }
        let bs = self.block_size;
        if computed.len() * bs > tokens.len() {
            debug_assert!(false, "computed_blocks cover more than all_tokens");
            return None;
        }
        let mut hashes: Vec<BlockHash> = Vec::with_capacity(computed.len());
        for (i, &b) in computed.iter().enumerate() {
            let extra = if i == 0 { salt } else { None };
            let h =
                self.algo
                    .hash_block(hashes.last().copied(), &tokens[i * bs..(i + 1) * bs], extra);
            if self.pool.lookup(h) != Some(b) {
                return None;
            }
            hashes.push(h);
        }
        Some(hashes)
    }

    /// Releases every block of `req`, last block first so the free queue evicts a sequence's
    /// tail before its (more widely shared) head. Unknown ids are a no-op.
    pub fn free(&mut self, req: RequestId) {
        self.pending_salts.remove(&req);
        if let Some(state) = self.requests.remove(&req) {
            for &b in state.blocks.iter().rev() {
                self.pool.release(b);
            }
        }
    }

    /// `free` for a request whose K/V is written only for its first `num_written` tokens: one
    /// preempted or aborted after `allocate_slots` but before the forward pass ran its scheduled
    /// tokens. Blocks that only those unwritten tokens made full were cached by `allocate_slots`;
    /// they leave the prefix cache first so no later hit reads K/V that was never computed.
    pub fn free_unwritten(&mut self, req: RequestId, num_written: usize) {
        if let Some(state) = self.requests.get(&req) {
            let first_unwritten = num_written / self.block_size;
            for &b in state
                .blocks
                .iter()
                .take(state.hashes.len())
                .skip(first_unwritten)
            {
                self.pool.uncache(b);
            }
        }
        self.free(req);
    }

    /// Makes `child` (which must not exist yet) share `parent`'s full blocks covering the first
    /// `num_tokens` tokens, and returns how many of those tokens the child still has to compute
    /// (the partial last block cannot be shared: both would write into it). The child then
    /// continues with `allocate_slots(child, tokens, num_tokens - returned, returned, &[])`.
    /// Shares nothing (returns `num_tokens`) if the parent is unknown or the child exists.
    pub fn fork(&mut self, parent: RequestId, child: RequestId, num_tokens: usize) -> usize {
        if parent == child || self.requests.contains_key(&child) {
            debug_assert!(false, "fork into existing request {child}");
            return num_tokens;
        }
        let Some(p) = self.requests.get(&parent) else {
            return num_tokens;
        };
        // Only blocks whose K/V the parent has written (or is writing this step) are shareable.
        let n = (num_tokens.min(p.num_tokens) / self.block_size).min(p.blocks.len());
        let state = RequestBlocks {
            blocks: p.blocks[..n].to_vec(),
            hashes: p.hashes[..n.min(p.hashes.len())].to_vec(),
            num_tokens: n * self.block_size,
            salt: p.salt.clone(),
        };
        for &b in &state.blocks {
            self.pool.acquire(b);
        }
        self.pending_salts.remove(&child);
        self.requests.insert(child, state);
        num_tokens - n * self.block_size
    }

    /// The request's block table (empty if unknown).
    pub fn block_table(&self, req: RequestId) -> &[u32] {
        self.requests.get(&req).map_or(&[], |r| &r.blocks)
    }

    pub fn contains(&self, req: RequestId) -> bool {
        self.requests.contains_key(&req)
    }

    pub fn num_free_blocks(&self) -> usize {
        self.pool.num_free()
    }

    pub fn num_blocks(&self) -> usize {
        self.pool.num_blocks()
    }

    pub fn usage(&self) -> f64 {
        self.pool.usage()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn prefix_caching_enabled(&self) -> bool {
        self.enable_caching
    }

    pub fn hash_algo(&self) -> PrefixHashAlgo {
        self.algo
    }

    /// Blocks needed to hold `num_tokens` tokens.
    pub fn blocks_for(&self, num_tokens: usize) -> usize {
        num_tokens.div_ceil(self.block_size)
    }

    /// Cumulative prompt tokens looked up in the prefix cache.
    pub fn prefix_cache_queries(&self) -> u64 {
        self.queries
    }

    /// Cumulative prompt tokens found in the prefix cache.
    pub fn prefix_cache_hits(&self) -> u64 {
        self.hits
    }

    /// Forgets all cached prefixes; false (and nothing changes) while any block is in use.
    pub fn reset_prefix_cache(&mut self) -> bool {
        self.pool.reset_prefix_cache()
    }

    /// Read access for tests and metrics.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Pool invariants plus: every block's ref count equals the number of tables holding it
    /// (which also means a table never holds a free block) and hashes never outrun blocks.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        self.pool.check_invariants()?;
        let mut refs = vec![0u32; self.pool.num_blocks()];
        for (id, r) in &self.requests {
            if r.hashes.len() > r.blocks.len() {
                return Err(format!(
                    "request {id}: {} hashes for {} blocks",
                    r.hashes.len(),
                    r.blocks.len()
                ));
            }
            if r.blocks.len() != self.blocks_for(r.num_tokens) {
                return Err(format!(
                    "request {id}: {} blocks for {} tokens",
                    r.blocks.len(),
                    r.num_tokens
                ));
            }
            for &b in &r.blocks {
                match refs.get_mut(b as usize) {
                    Some(c) => *c += 1,
                    None => return Err(format!("request {id} holds unknown block {b}")),
                }
            }
        }
        let mut in_use = 0;
        for (b, &want) in refs.iter().enumerate() {
            let got = self.pool.ref_count(b as u32);
            if got != want {
                return Err(format!("block {b}: ref count {got}, held by {want} tables"));
            }
            in_use += usize::from(want > 0);
        }
        if in_use + self.pool.num_free() != self.pool.num_blocks() {
            return Err(format!(
                "{in_use} in use + {} free != {}",
                self.pool.num_free(),
                self.pool.num_blocks()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
