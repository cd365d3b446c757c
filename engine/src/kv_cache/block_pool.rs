//! The pool of KV blocks: reference counts, an LRU free queue and the prefix-cache index.
//!
//! A block is either in use (ref count > 0) or free (ref count 0, in the free queue). A free
//! block may still hold a cached hash: its K/V stays valid until the block is handed out again,
//! so a later request with the same prefix can take it back (a prefix hit) without recomputing.
//! The free queue is ordered by the time blocks were freed, so `allocate` evicts the cached
//! content that was used least recently.

use std::collections::HashMap;

/// Hash of a full block's contents chained on its parent block's hash (see `prefix_hash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub u64);

/// End-of-list marker for the intrusive free queue; never a valid block id because
/// `BlockPool::new` keeps the pool below `u32::MAX` blocks.
const NIL: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq)]
struct Block {
    ref_cnt: u32,
    hash: Option<BlockHash>,
    // Free-queue links, meaningful only while `in_free`. Vectors indexed by block id instead of
    // a `VecDeque` so a prefix hit can unlink a block from the middle in O(1).
    prev: u32,
    next: u32,
    in_free: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlockPool {
    blocks: Vec<Block>,
    /// Least recently freed: the next block `allocate` hands out.
    head: u32,
    /// Most recently freed.
    tail: u32,
    num_free: usize,
    cached: HashMap<BlockHash, u32>,
    enable_caching: bool,
}

impl BlockPool {
    pub fn new(num_blocks: usize, enable_caching: bool) -> Self {
        debug_assert!(num_blocks < NIL as usize, "block ids are u32");
        let num_blocks = num_blocks.min(NIL as usize - 1);
        let n = num_blocks as u32;
        // Initially every block is free, queued in id order so allocation starts at block 0.
        let blocks = (0..n)
            .map(|id| Block {
                ref_cnt: 0,
                hash: None,
                prev: if id == 0 { NIL } else { id - 1 },
                next: if id + 1 == n { NIL } else { id + 1 },
                in_free: true,
            })
            .collect();
        BlockPool {
            blocks,
            head: if n == 0 { NIL } else { 0 },
            tail: if n == 0 { NIL } else { n - 1 },
            num_free: num_blocks,
            cached: HashMap::new(),
            enable_caching,
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks with ref count 0, whether or not they still hold cached content.
    pub fn num_free(&self) -> usize {
        self.num_free
    }

    /// Fraction of blocks in use.
    pub fn usage(&self) -> f64 {
        if self.blocks.is_empty() {
            return 0.0;
        }
        1.0 - self.num_free as f64 / self.blocks.len() as f64
    }

    pub fn caching_enabled(&self) -> bool {
        self.enable_caching
    }

    pub fn ref_count(&self, block: u32) -> u32 {
        self.blocks.get(block as usize).map_or(0, |b| b.ref_cnt)
    }

    pub fn block_hash(&self, block: u32) -> Option<BlockHash> {
        self.blocks.get(block as usize).and_then(|b| b.hash)
    }

    /// Number of hashes in the prefix-cache index.
    pub fn num_cached(&self) -> usize {
        self.cached.len()
    }

    /// Takes the least recently freed block, evicting whatever it had cached. Ref count becomes 1.
    pub fn allocate(&mut self) -> Option<u32> {
        let id = self.head;
        if id == NIL {
            return None;
        }
        self.unlink(id);
        let block = &mut self.blocks[id as usize];
        block.ref_cnt = 1;
        if let Some(hash) = block.hash.take() {
            // Only drop the index entry if it is ours; `cache_block` never lets two blocks
            // share a hash, but a stale entry must not take another block's mapping with it.
            if self.cached.get(&hash) == Some(&id) {
                self.cached.remove(&hash);
            }
        }
        Some(id)
    }

    /// The block caching `hash`, whether it is in use or free.
    pub fn lookup(&self, hash: BlockHash) -> Option<u32> {
        if !self.enable_caching {
            return None;
        }
        self.cached.get(&hash).copied()
    }

    /// Takes one more reference; a free block (a prefix hit on evictable content) leaves the
    /// free queue so it cannot be evicted while in use.
    pub fn acquire(&mut self, block: u32) {
        let Some(b) = self.blocks.get(block as usize) else {
            debug_assert!(false, "acquire of unknown block {block}");
            return;
        };
        if b.ref_cnt == 0 {
            self.unlink(block);
        }
        let b = &mut self.blocks[block as usize];
        b.ref_cnt = b.ref_cnt.saturating_add(1);
    }

    /// Drops one reference. At zero the block goes to the tail of the free queue (evicted last)
    /// and keeps its hash so a later prefix hit can still reuse it.
    pub fn release(&mut self, block: u32) {
        let Some(b) = self.blocks.get_mut(block as usize) else {
            debug_assert!(false, "release of unknown block {block}");
            return;
        };
        if b.ref_cnt == 0 {
            debug_assert!(false, "release of free block {block}");
            return;
        }
        b.ref_cnt -= 1;
        if b.ref_cnt == 0 {
            self.push_tail(block);
        }
    }

    /// Registers a full block under `hash`. Returns whether the block now caches it. If another
    /// block already caches the same content, that mapping wins and this block stays uncached
    /// (it is simply freed without a hash later), so the index never has two owners per hash.
    pub fn cache_block(&mut self, block: u32, hash: BlockHash) -> bool {
        if !self.enable_caching {
            return false;
        }
        let Some(b) = self.blocks.get(block as usize) else {
            debug_assert!(false, "cache_block of unknown block {block}");
            return false;
        };
        debug_assert!(b.ref_cnt > 0, "cache_block of free block {block}");
        if let Some(existing) = b.hash {
            // A block's content never changes while it is owned; re-hashing it differently
            // would mean the caller's token bookkeeping is wrong.
            debug_assert_eq!(existing, hash, "block {block} re-cached under another hash");
            return existing == hash;
        }
        if self.cached.contains_key(&hash) {
            return false;
        }
        self.cached.insert(hash, block);
        self.blocks[block as usize].hash = Some(hash);
        true
    }

    /// Drops `block` from the prefix cache (it keeps its references), for content that turned out
    /// never to be written. Returns whether it was cached.
    pub fn uncache(&mut self, block: u32) -> bool {
        let Some(b) = self.blocks.get_mut(block as usize) else {
            return false;
        };
        let Some(hash) = b.hash.take() else {
            return false;
        };
        if self.cached.get(&hash) == Some(&block) {
            self.cached.remove(&hash);
        }
        true
    }

    /// Forgets every cached hash. Only possible while no block is in use (a running request's
    /// blocks would otherwise lose their index entries mid-flight); returns false then.
    pub fn reset_prefix_cache(&mut self) -> bool {
        if self.num_free != self.blocks.len() {
            return false;
        }
        self.cached.clear();
        for b in &mut self.blocks {
            b.hash = None;
        }
        true
    }

    /// Free blocks from next-to-evict to last-to-evict.
    pub fn free_queue(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.num_free);
        let mut id = self.head;
        while id != NIL && out.len() <= self.blocks.len() {
            out.push(id);
            id = self.blocks[id as usize].next;
        }
        out
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next, in_free) = {
            let b = &self.blocks[id as usize];
            (b.prev, b.next, b.in_free)
        };
        if !in_free {
            debug_assert!(false, "unlink of block {id} that is not free");
            return;
        }
        match prev {
            NIL => self.head = next,
            p => self.blocks[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.blocks[n as usize].prev = prev,
        }
        let b = &mut self.blocks[id as usize];
        b.prev = NIL;
        b.next = NIL;
        b.in_free = false;
        self.num_free -= 1;
    }

    fn push_tail(&mut self, id: u32) {
        if self.blocks[id as usize].in_free {
            debug_assert!(false, "block {id} queued twice");
            return;
        }
        let old_tail = self.tail;
        match old_tail {
            NIL => self.head = id,
            t => self.blocks[t as usize].next = id,
        }
        let b = &mut self.blocks[id as usize];
        b.prev = old_tail;
        b.next = NIL;
        b.in_free = true;
        self.tail = id;
        self.num_free += 1;
    }

    /// Structural invariants, for tests: the free queue is a well-linked list holding exactly
    /// the blocks with ref count 0, once each; the hash index and per-block hashes agree.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let n = self.blocks.len();
        let mut seen = vec![false; n];
        let mut prev = NIL;
        let mut id = self.head;
        let mut count = 0usize;
        while id != NIL {
            let i = id as usize;
            if i >= n || seen[i] {
                return Err(format!("free queue revisits or leaves the pool at {id}"));
            }
            seen[i] = true;
            let b = &self.blocks[i];
            if !b.in_free || b.ref_cnt != 0 || b.prev != prev {
                return Err(format!(
                    "free block {id} has bad state {b:?} (prev should be {prev})"
                ));
            }
            count += 1;
            prev = id;
            id = b.next;
        }
        if prev != self.tail {
            return Err(format!(
                "tail is {} but the walk ended at {prev}",
                self.tail
            ));
        }
        if count != self.num_free {
            return Err(format!("num_free {} but {count} queued", self.num_free));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if (b.ref_cnt == 0) != seen[i] || b.in_free != seen[i] {
                return Err(format!("block {i} {b:?}: queued={}", seen[i]));
            }
            if let Some(h) = b.hash {
                if self.cached.get(&h) != Some(&(i as u32)) {
                    return Err(format!(
                        "block {i} holds {h:?} but the index does not map it"
                    ));
                }
            }
        }
        for (h, &b) in &self.cached {
            if self.blocks.get(b as usize).and_then(|x| x.hash) != Some(*h) {
                return Err(format!(
                    "index maps {h:?} to block {b}, which does not hold it"
                ));
            }
        }
        if !self.enable_caching && !self.cached.is_empty() {
            return Err("caching disabled but the index is not empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &BlockPool) {
        if let Err(e) = p.check_invariants() {
            panic!("{e}");
        }
    }

    #[test]
    fn new_pool_is_all_free_in_id_order() {
        let p = BlockPool::new(4, true);
        assert_eq!(p.num_blocks(), 4);
        assert_eq!(p.num_free(), 4);
        assert_eq!(p.free_queue(), vec![0, 1, 2, 3]);
        assert_eq!(p.usage(), 0.0);
        check(&p);
        let empty = BlockPool::new(0, true);
        assert_eq!(empty.usage(), 0.0);
        check(&empty);
    }

    #[test]
    fn allocate_until_exhausted() {
        let mut p = BlockPool::new(3, true);
        assert_eq!(p.allocate(), Some(0));
        assert_eq!(p.allocate(), Some(1));
        assert_eq!(p.allocate(), Some(2));
        assert_eq!(p.allocate(), None);
        assert_eq!(p.num_free(), 0);
        assert_eq!(p.usage(), 1.0);
        assert_eq!(p.ref_count(1), 1);
        check(&p);
    }

    #[test]
    fn release_goes_to_tail_and_keeps_hash() {
        let mut p = BlockPool::new(3, true);
        let a = p.allocate().unwrap();
        assert!(p.cache_block(a, BlockHash(7)));
        p.release(a);
        assert_eq!(p.free_queue(), vec![1, 2, a]);
        assert_eq!(p.lookup(BlockHash(7)), Some(a));
        assert_eq!(p.block_hash(a), Some(BlockHash(7)));
        check(&p);
    }

    #[test]
    fn lru_eviction_takes_least_recently_freed_cached_block() {
        let mut p = BlockPool::new(3, true);
        let ids: Vec<u32> = (0..3).map(|_| p.allocate().unwrap()).collect();
        for (i, &b) in ids.iter().enumerate() {
            assert!(p.cache_block(b, BlockHash(100 + i as u64)));
        }
        // Free in the order 2, 0, 1: block 2 is now the least recently used.
        p.release(ids[2]);
        p.release(ids[0]);
        p.release(ids[1]);
        assert_eq!(p.free_queue(), vec![ids[2], ids[0], ids[1]]);
        assert_eq!(p.allocate(), Some(ids[2]));
        assert_eq!(
            p.lookup(BlockHash(102)),
            None,
            "evicted hash must leave the index"
        );
        assert_eq!(p.block_hash(ids[2]), None);
        assert_eq!(p.lookup(BlockHash(100)), Some(ids[0]));
        assert_eq!(p.allocate(), Some(ids[0]));
        assert_eq!(p.lookup(BlockHash(100)), None);
        assert_eq!(p.lookup(BlockHash(101)), Some(ids[1]));
        check(&p);
    }

    #[test]
    fn acquire_of_free_cached_block_removes_it_from_middle_of_queue() {
        let mut p = BlockPool::new(4, true);
        let ids: Vec<u32> = (0..4).map(|_| p.allocate().unwrap()).collect();
        for (i, &b) in ids.iter().enumerate() {
            p.cache_block(b, BlockHash(i as u64));
            p.release(b);
        }
        assert_eq!(p.free_queue(), ids);
        let hit = p.lookup(BlockHash(1)).unwrap();
        p.acquire(hit);
        assert_eq!(p.ref_count(hit), 1);
        assert_eq!(p.num_free(), 3);
        assert_eq!(p.free_queue(), vec![ids[0], ids[2], ids[3]]);
        check(&p);
        // Head and tail removal too.
        p.acquire(ids[0]);
        p.acquire(ids[3]);
        assert_eq!(p.free_queue(), vec![ids[2]]);
        check(&p);
        // A hit block that is in use keeps its hash and cannot be allocated.
        assert_eq!(p.allocate(), Some(ids[2]));
        assert_eq!(p.allocate(), None);
        assert_eq!(p.lookup(BlockHash(1)), Some(hit));
        check(&p);
    }

    #[test]
    fn shared_block_freed_only_by_last_owner() {
        let mut p = BlockPool::new(2, true);
        let b = p.allocate().unwrap();
        p.acquire(b);
        assert_eq!(p.ref_count(b), 2);
        p.release(b);
        assert_eq!(p.ref_count(b), 1);
        assert_eq!(p.num_free(), 1);
        p.release(b);
        assert_eq!(p.num_free(), 2);
        check(&p);
    }

    #[test]
    fn duplicate_hash_keeps_first_mapping() {
        let mut p = BlockPool::new(2, true);
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert!(p.cache_block(a, BlockHash(5)));
        assert!(!p.cache_block(b, BlockHash(5)));
        assert_eq!(p.lookup(BlockHash(5)), Some(a));
        assert_eq!(p.block_hash(b), None);
        // Caching the same block under the same hash again is harmless.
        assert!(p.cache_block(a, BlockHash(5)));
        p.release(b);
        p.release(a);
        assert_eq!(p.lookup(BlockHash(5)), Some(a));
        check(&p);
    }

    #[test]
    fn uncache_removes_only_the_index_entry() {
        let mut p = BlockPool::new(2, true);
        let a = p.allocate().unwrap();
        p.cache_block(a, BlockHash(3));
        assert!(p.uncache(a));
        assert!(!p.uncache(a));
        assert_eq!(p.lookup(BlockHash(3)), None);
        assert_eq!(p.ref_count(a), 1);
        check(&p);
        // The hash is free to be cached again, by any block.
        let b = p.allocate().unwrap();
        assert!(p.cache_block(b, BlockHash(3)));
        check(&p);
    }

    #[test]
    fn caching_disabled_never_indexes() {
        let mut p = BlockPool::new(2, false);
        let a = p.allocate().unwrap();
        assert!(!p.cache_block(a, BlockHash(1)));
        assert_eq!(p.lookup(BlockHash(1)), None);
        p.release(a);
        check(&p);
    }

    #[test]
    fn reset_prefix_cache_only_when_idle() {
        let mut p = BlockPool::new(2, true);
        let a = p.allocate().unwrap();
        p.cache_block(a, BlockHash(9));
        assert!(!p.reset_prefix_cache());
        assert_eq!(p.lookup(BlockHash(9)), Some(a));
        p.release(a);
        assert!(p.reset_prefix_cache());
        assert_eq!(p.lookup(BlockHash(9)), None);
        assert_eq!(p.block_hash(a), None);
        assert_eq!(p.num_cached(), 0);
        check(&p);
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn misuse_is_ignored_in_release_builds() {
        let mut p = BlockPool::new(2, true);
        p.release(0);
        p.release(99);
        p.acquire(99);
        assert!(!p.cache_block(99, BlockHash(1)));
        assert_eq!(p.num_free(), 2);
        check(&p);
    }
}
