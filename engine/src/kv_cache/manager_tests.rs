//! Tests of `KvCacheManager` (included from manager.rs): unit tests, then property tests that
//! run random request lifecycles against a model of what each block's K/V holds.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn mgr(num_blocks: usize, block_size: usize) -> KvCacheManager {
    KvCacheManager::new(num_blocks, block_size, true, PrefixHashAlgo::Builtin)
}

fn check(m: &KvCacheManager) {
    if let Err(e) = m.check_invariants() {
        panic!("{e}");
    }
}

fn toks(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32).map(|i| i * 7 + seed).collect()
}

/// Schedules a whole prompt in one step, using whatever prefix is cached.
fn admit(m: &mut KvCacheManager, req: RequestId, t: &[u32]) -> bool {
    let (blocks, hit) = m.get_computed_blocks(t);
    m.allocate_slots(req, t, hit, t.len() - hit, &blocks)
}

#[test]
fn hit_is_capped_one_token_short_of_the_prompt() {
    let mut m = mgr(8, 16);
    let t = toks(32, 1);
    assert!(admit(&mut m, 1, &t));
    m.free(1);
    // Both blocks are cached, but the last token must be recomputed: only block 0 hits.
    let (blocks, hit) = m.get_computed_blocks(&t);
    assert_eq!(hit, 16);
    assert_eq!(blocks.len(), 1);
    // One more token and both full blocks can be reused.
    let mut longer = t.clone();
    longer.push(5);
    let (blocks, hit) = m.get_computed_blocks(&longer);
    assert_eq!((blocks.len(), hit), (2, 32));
    assert_eq!(m.get_computed_blocks(&[]), (vec![], 0));
}

#[test]
fn counters_track_queried_and_hit_tokens() {
    let mut m = mgr(8, 4);
    let t = toks(9, 0);
    assert!(admit(&mut m, 1, &t));
    assert_eq!((m.prefix_cache_queries(), m.prefix_cache_hits()), (9, 0));
    let (_, hit) = m.get_computed_blocks(&t);
    assert_eq!(hit, 8);
    assert_eq!((m.prefix_cache_queries(), m.prefix_cache_hits()), (18, 8));
}

#[test]
fn two_requests_share_a_prefix_with_ref_counts() {
    let mut m = mgr(8, 4);
    let mut a = toks(10, 0);
    assert!(admit(&mut m, 1, &a));
    let table_a = m.block_table(1).to_vec();
    assert_eq!(table_a.len(), 3);
    a.truncate(8);
    a.extend([100, 101, 102]);
    assert!(admit(&mut m, 2, &a));
    let table_b = m.block_table(2).to_vec();
    assert_eq!(table_b[..2], table_a[..2], "full prefix blocks are shared");
    assert_ne!(table_b[2], table_a[2]);
    for &b in &table_a[..2] {
        assert_eq!(m.pool().ref_count(b), 2);
    }
    assert_eq!(m.num_free_blocks(), 4);
    check(&m);
    m.free(1);
    assert_eq!(m.pool().ref_count(table_a[0]), 1);
    assert_eq!(m.num_free_blocks(), 5, "only A's private block is freed");
    check(&m);
    m.free(2);
    assert_eq!(m.num_free_blocks(), 8);
    check(&m);
}

#[test]
fn prefix_hit_on_free_cached_block_takes_it_out_of_the_free_queue() {
    let mut m = mgr(4, 4);
    let t = toks(9, 3);
    assert!(admit(&mut m, 1, &t));
    let table = m.block_table(1).to_vec();
    m.free(1);
    // Freed tail first: the last block is the first to be evicted.
    let q = m.pool().free_queue();
    assert_eq!(q[q.len() - 3..], [table[2], table[1], table[0]]);
    assert!(admit(&mut m, 2, &t));
    assert_eq!(m.block_table(2)[..2], table[..2]);
    let q = m.pool().free_queue();
    assert!(!q.contains(&table[0]) && !q.contains(&table[1]));
    assert_eq!(m.num_free_blocks(), 1);
    check(&m);
}

#[test]
fn free_cached_hits_are_counted_once_against_free_blocks() {
    // 3 blocks: A's two cached blocks are free, C holds the third. B's 8-token prompt hits one
    // block (the cap) and needs one more: exactly the two free blocks, the hit among them.
    let mut m = mgr(3, 4);
    let a = toks(8, 0);
    assert!(admit(&mut m, 1, &a));
    m.free(1);
    assert!(admit(&mut m, 3, &[9, 9, 9]));
    assert_eq!(m.num_free_blocks(), 2);
    let (blocks, hit) = m.get_computed_blocks(&a);
    assert_eq!(hit, 4);
    assert!(m.allocate_slots(2, &a, hit, 4, &blocks));
    assert_eq!(m.num_free_blocks(), 0);
    check(&m);
}

#[test]
fn reclaimed_cached_blocks_count_against_free_blocks() {
    // 2 blocks, both free-but-cached: a 9-token prompt hits both and needs a third. A count
    // that ignored the reclaimed hits would think one free block suffices.
    let mut m = mgr(2, 4);
    let a = toks(9, 0);
    assert!(admit(&mut m, 1, &a[..8]));
    m.free(1);
    let (blocks, hit) = m.get_computed_blocks(&a);
    assert_eq!(hit, 8);
    let before = m.clone();
    assert!(!m.allocate_slots(2, &a, hit, 1, &blocks));
    assert_eq!(m, before);
}

#[test]
fn failed_allocation_changes_nothing() {
    let mut m = mgr(4, 4);
    assert!(admit(&mut m, 1, &toks(10, 0)));
    m.set_cache_salt(2, Some(b"s".to_vec()));
    let t = toks(12, 50);
    let before = m.clone();
    assert!(
        !m.allocate_slots(2, &t, 0, 12, &[]),
        "needs 3 blocks, 1 free"
    );
    assert_eq!(m, before);
    // A running request growing past the pool also fails without side effects.
    let mut grow = toks(10, 0);
    grow.extend(toks(8, 0));
    let before = m.clone();
    assert!(!m.allocate_slots(1, &grow, 10, 8, &[]));
    assert_eq!(m, before);
    assert!(
        m.allocate_slots(1, &grow, 10, 2, &[]),
        "12 tokens fit in its 3 blocks"
    );
    assert_eq!(m.block_table(1).len(), 3);
    assert!(m.allocate_slots(1, &grow, 12, 1, &[]));
    assert_eq!(m.num_free_blocks(), 0);
    check(&m);
}

#[test]
fn blocks_are_cached_only_once_full_of_scheduled_tokens() {
    let mut m = mgr(8, 4);
    let t = toks(11, 2);
    // Chunked prefill: 6 tokens scheduled, so only block 0 is written.
    assert!(m.allocate_slots(1, &t, 0, 6, &[]));
    assert_eq!(m.block_table(1).len(), 2);
    assert_eq!(m.pool().num_cached(), 1);
    // All tokens known but not scheduled do not count.
    let mut probe = t.clone();
    probe.push(0);
    assert_eq!(m.get_computed_blocks(&probe).1, 4);
    assert!(m.allocate_slots(1, &t, 6, 5, &[]));
    assert_eq!(m.pool().num_cached(), 2);
    assert_eq!(m.get_computed_blocks(&probe).1, 8);
    // Scheduling past the known tokens (never done, but harmless) hashes only known ones.
    assert!(m.allocate_slots(1, &t, 11, 5, &[]));
    assert_eq!(m.pool().num_cached(), 2);
    check(&m);
}

#[test]
fn decode_fills_and_caches_blocks_one_token_at_a_time() {
    let mut m = mgr(8, 4);
    let mut t = toks(3, 0);
    assert!(m.allocate_slots(1, &t, 0, 3, &[]));
    for step in 0..6u32 {
        t.push(1000 + step);
        let n = t.len();
        assert!(m.allocate_slots(1, &t, n - 1, 1, &[]));
        assert_eq!(m.block_table(1).len(), m.blocks_for(n));
        assert_eq!(m.pool().num_cached(), n / 4);
    }
    // Another request with the same 9 tokens reuses both full blocks.
    let (blocks, hit) = m.get_computed_blocks(&t);
    assert_eq!((hit, &blocks[..]), (8, &m.block_table(1)[..2]));
}

#[test]
fn fork_shares_full_blocks_and_returns_the_rest() {
    let mut m = mgr(8, 4);
    let t = toks(10, 0);
    assert!(admit(&mut m, 1, &t));
    let rest = m.fork(1, 2, 10);
    assert_eq!(rest, 2);
    assert_eq!(m.block_table(2), &m.block_table(1)[..2]);
    assert!(m.allocate_slots(2, &t, 8, 2, &[]));
    assert_ne!(
        m.block_table(2)[2],
        m.block_table(1)[2],
        "partial block is private"
    );
    for &b in &m.block_table(1)[..2] {
        assert_eq!(m.pool().ref_count(b), 2);
    }
    check(&m);
    m.free(1);
    assert_eq!(m.num_free_blocks(), 8 - 3);
    check(&m);
    // Unknown parent shares nothing; forking into an existing request is refused.
    assert_eq!(m.fork(77, 3, 8), 8);
    assert!(!m.contains(3));
    m.free(2);
    assert_eq!(m.num_free_blocks(), 8);
}

#[test]
fn fork_never_shares_unwritten_blocks() {
    let mut m = mgr(8, 4);
    let t = toks(12, 0);
    assert!(m.allocate_slots(1, &t, 0, 5, &[]));
    // The parent has written 5 tokens: only block 0 is shareable.
    assert_eq!(m.fork(1, 2, 12), 8);
    assert_eq!(m.block_table(2).len(), 1);
    check(&m);
}

#[test]
fn salted_requests_only_hit_their_own_salt() {
    let mut m = mgr(8, 4);
    let t = toks(9, 0);
    m.set_cache_salt(1, Some(b"alice".to_vec()));
    assert!(m.allocate_slots(1, &t, 0, 9, &[]));
    assert_eq!(m.get_computed_blocks(&t).1, 0);
    assert_eq!(m.get_computed_blocks_salted(&t, Some(b"bob")).1, 0);
    let (blocks, hit) = m.get_computed_blocks_salted(&t, Some(b"alice"));
    assert_eq!(hit, 8);
    m.set_cache_salt(2, Some(b"alice".to_vec()));
    assert!(m.allocate_slots(2, &t, hit, 1, &blocks));
    assert_eq!(m.block_table(2)[..2], m.block_table(1)[..2]);
    // A computed prefix from another salt is rejected as stale.
    m.set_cache_salt(3, None);
    let before = m.clone();
    assert!(!m.allocate_slots(3, &t, hit, 1, &blocks));
    assert_eq!(m, before);
    check(&m);
}

#[test]
fn free_unwritten_uncaches_blocks_filled_by_the_unrun_step() {
    let mut m = mgr(8, 4);
    let t = toks(13, 0);
    // Step 1 (ran): 5 tokens. Step 2 (preempted before the forward pass): 8 more.
    assert!(m.allocate_slots(1, &t, 0, 5, &[]));
    assert!(m.allocate_slots(1, &t, 5, 8, &[]));
    assert_eq!(m.pool().num_cached(), 3);
    m.free_unwritten(1, 5);
    assert!(!m.contains(1));
    assert_eq!(m.num_free_blocks(), 8);
    assert_eq!(m.pool().num_cached(), 1, "only block 0 was written");
    assert_eq!(m.get_computed_blocks(&t).1, 4);
    check(&m);
    m.free_unwritten(42, 0);
    check(&m);
}

#[test]
fn evicted_computed_blocks_are_rejected() {
    let mut m = mgr(2, 4);
    let t = toks(5, 0);
    assert!(admit(&mut m, 1, &t));
    m.free(1);
    let (blocks, hit) = m.get_computed_blocks(&t);
    assert_eq!(hit, 4);
    // Someone else takes every block before the hit is used.
    assert!(m.allocate_slots(9, &toks(8, 40), 0, 8, &[]));
    m.free(9);
    let before = m.clone();
    assert!(!m.allocate_slots(2, &t, hit, 1, &blocks));
    assert_eq!(m, before);
}

#[test]
fn reset_prefix_cache_refused_while_running() {
    let mut m = mgr(4, 4);
    let t = toks(9, 0);
    assert!(admit(&mut m, 1, &t));
    assert!(!m.reset_prefix_cache());
    m.free(1);
    assert!(m.reset_prefix_cache());
    assert_eq!(m.get_computed_blocks(&t).1, 0);
    check(&m);
}

#[test]
fn caching_disabled_never_hits() {
    let mut m = KvCacheManager::new(4, 4, false, PrefixHashAlgo::Sha256);
    let t = toks(9, 0);
    assert!(admit(&mut m, 1, &t));
    m.free(1);
    assert_eq!(m.get_computed_blocks(&t), (vec![], 0));
    assert_eq!((m.prefix_cache_queries(), m.prefix_cache_hits()), (0, 0));
    assert_eq!(m.pool().num_cached(), 0);
    check(&m);
}

#[test]
fn accessors_and_unknown_requests() {
    let mut m = mgr(10, 16);
    assert_eq!(
        (m.num_blocks(), m.block_size(), m.num_free_blocks()),
        (10, 16, 10)
    );
    assert_eq!(
        (
            m.blocks_for(0),
            m.blocks_for(1),
            m.blocks_for(16),
            m.blocks_for(17)
        ),
        (0, 1, 1, 2)
    );
    assert!(m.block_table(5).is_empty());
    m.free(5);
    assert!(m.allocate_slots(5, &toks(40, 0), 0, 40, &[]));
    assert!((m.usage() - 0.3).abs() < 1e-12);
}

// ---------------------------------------------------------------------------------------------
// Property tests

const BS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    /// Admit a request, scheduling up to `chunk` tokens after the cached prefix.
    New {
        tokens: Vec<u32>,
        chunk: usize,
    },
    /// Advance a running request: the next prefill chunk, or one decode token `tok`.
    Step {
        pick: usize,
        chunk: usize,
        tok: u32,
    },
    Fork {
        pick: usize,
    },
    Free {
        pick: usize,
    },
    /// Free a request as preempted before its latest step's forward pass ran.
    Preempt {
        pick: usize,
    },
    Reset,
}

const PREFIXES: [&[u32]; 3] = [
    &[0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2],
    &[2, 2, 2, 2, 1, 1, 1, 1],
    &[0, 1, 2, 0, 0, 0, 0, 0, 2, 1],
];

fn op() -> impl Strategy<Value = Op> {
    // A 3-letter alphabet so prompts often share whole blocks.
    // Prompts start with one of a few shared prefixes (cut at a random length) so that prefix
    // hits, partial hits and misses are all common; suffixes use a 3-letter alphabet.
    let prompt = (0usize..3, 0usize..14, prop::collection::vec(0u32..3, 1..10)).prop_map(
        |(k, cut, suffix)| {
            let mut t = PREFIXES[k][..cut.min(PREFIXES[k].len())].to_vec();
            t.extend(suffix);
            t
        },
    );
    prop_oneof![
        4 => (prompt, 1usize..16).prop_map(|(tokens, chunk)| Op::New { tokens, chunk }),
        6 => (any::<usize>(), 1usize..8, 0u32..3).prop_map(|(pick, chunk, tok)| Op::Step { pick, chunk, tok }),
        1 => any::<usize>().prop_map(|pick| Op::Fork { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Preempt { pick }),
        1 => Just(Op::Reset),
    ]
}

fn algo() -> impl Strategy<Value = PrefixHashAlgo> {
    prop_oneof![
        Just(PrefixHashAlgo::Builtin),
        Just(PrefixHashAlgo::Sha256),
        Just(PrefixHashAlgo::Sha256Cbor64)
    ]
}

struct Live {
    id: RequestId,
    tokens: Vec<u32>,
    scheduled: usize,
    /// Tokens written before the latest successful step (whose forward pass `Preempt` cancels).
    before_step: usize,
}

/// What each block's K/V holds: the whole token prefix ending with the block, once it is full.
/// A prefix hit must return blocks whose recorded prefix equals the prompt's.
#[derive(Default)]
struct Written(HashMap<u32, Vec<u32>>);

impl Written {
    /// After `req` scheduled up to `total` tokens: fresh blocks (from `first_fresh` on) lost their
    /// old content; every full block now holds its prefix, and shared ones must already agree.
    fn update(
        &mut self,
        m: &KvCacheManager,
        req: &Live,
        first_fresh: usize,
    ) -> Result<(), TestCaseError> {
        let table = m.block_table(req.id);
        for b in &table[first_fresh.min(table.len())..] {
            self.0.remove(b);
        }
        let full = req.scheduled.min(req.tokens.len()) / BS;
        for (i, &b) in table.iter().enumerate().take(full) {
            let prefix = &req.tokens[..(i + 1) * BS];
            match self.0.get(&b) {
                Some(w) => prop_assert_eq!(&w[..], prefix, "block {} shared with other content", b),
                None => {
                    self.0.insert(b, prefix.to_vec());
                }
            }
        }
        Ok(())
    }
}

fn run_ops(
    num_blocks: usize,
    caching: bool,
    algo: PrefixHashAlgo,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut m = KvCacheManager::new(num_blocks, BS, caching, algo);
    let mut live: Vec<Live> = Vec::new();
    let mut written = Written::default();
    let mut next_id: RequestId = 0;
    let inv = |m: &KvCacheManager| m.check_invariants().map_err(TestCaseError::fail);
    for op in ops {
        match op {
            Op::New { tokens, chunk } => {
                let (blocks, hit) = m.get_computed_blocks(&tokens);
                prop_assert_eq!(hit, blocks.len() * BS);
                prop_assert!(hit < tokens.len());
                if !caching {
                    prop_assert_eq!(hit, 0);
                }
                for (j, b) in blocks.iter().enumerate() {
                    prop_assert_eq!(
                        written.0.get(b).map(|w| &w[..]),
                        Some(&tokens[..(j + 1) * BS])
                    );
                }
                // Maximal: no cached block holds the next block's prefix.
                let next_end = hit + BS;
                if caching && next_end < tokens.len() {
                    let missed = (0..num_blocks as u32).find(|&b| {
                        m.pool().block_hash(b).is_some()
                            && written.0.get(&b).map(|w| &w[..]) == Some(&tokens[..next_end])
                    });
                    prop_assert_eq!(missed, None, "cached prefix not hit");
                }
                let id = next_id;
                next_id += 1;
                let num_new = chunk.min(tokens.len() - hit);
                let reclaimed = blocks
                    .iter()
                    .filter(|&&b| m.pool().ref_count(b) == 0)
                    .count();
                let required = m.blocks_for(hit + num_new) - blocks.len() + reclaimed;
                let before = m.clone();
                if m.allocate_slots(id, &tokens, hit, num_new, &blocks) {
                    prop_assert!(required <= before.num_free_blocks());
                    prop_assert_eq!(&m.block_table(id)[..blocks.len()], &blocks[..]);
                    let req = Live {
                        id,
                        tokens,
                        scheduled: hit + num_new,
                        before_step: hit,
                    };
                    written.update(&m, &req, blocks.len())?;
                    live.push(req);
                } else {
                    prop_assert!(required > before.num_free_blocks(), "spurious failure");
                    prop_assert_eq!(&m, &before);
                }
            }
            Op::Step { pick, chunk, tok } if !live.is_empty() => {
                let i = pick % live.len();
                let req = &mut live[i];
                let num_new = if req.scheduled < req.tokens.len() {
                    chunk.min(req.tokens.len() - req.scheduled)
                } else {
                    req.tokens.push(tok);
                    1
                };
                let had = m.block_table(req.id).len();
                let required = m.blocks_for(req.scheduled + num_new).saturating_sub(had);
                let before = m.clone();
                if m.allocate_slots(req.id, &req.tokens, req.scheduled, num_new, &[]) {
                    prop_assert!(required <= before.num_free_blocks());
                    req.before_step = req.scheduled;
                    req.scheduled += num_new;
                    written.update(&m, req, had)?;
                } else {
                    prop_assert!(required > before.num_free_blocks(), "spurious failure");
                    prop_assert_eq!(&m, &before);
                    req.before_step = req.scheduled;
                }
            }
            Op::Fork { pick } if !live.is_empty() => {
                let p = &live[pick % live.len()];
                let child = next_id;
                next_id += 1;
                let rest = m.fork(p.id, child, p.scheduled);
                let shared = p.scheduled - rest;
                prop_assert_eq!(shared % BS, 0);
                prop_assert_eq!(shared / BS, p.scheduled / BS);
                prop_assert_eq!(m.block_table(child), &m.block_table(p.id)[..shared / BS]);
                let req = Live {
                    id: child,
                    tokens: p.tokens[..p.scheduled].to_vec(),
                    scheduled: shared,
                    before_step: shared,
                };
                written.update(&m, &req, usize::MAX)?;
                live.push(req);
            }
            Op::Free { pick } if !live.is_empty() => {
                let req = live.swap_remove(pick % live.len());
                m.free(req.id);
                prop_assert!(m.block_table(req.id).is_empty());
            }
            Op::Preempt { pick } if !live.is_empty() => {
                let req = live.swap_remove(pick % live.len());
                // Blocks only this request holds and only its cancelled step filled hold garbage.
                for &b in m.block_table(req.id).iter().skip(req.before_step / BS) {
                    if m.pool().ref_count(b) == 1 {
                        written.0.remove(&b);
                    }
                }
                m.free_unwritten(req.id, req.before_step);
                prop_assert!(!m.contains(req.id));
            }
            Op::Reset => {
                let idle = m.num_free_blocks() == m.num_blocks();
                prop_assert_eq!(m.reset_prefix_cache(), idle);
                if idle {
                    prop_assert_eq!(m.pool().num_cached(), 0);
                }
            }
            _ => {}
        }
        inv(&m)?;
        for r in &live {
            prop_assert_eq!(m.block_table(r.id).len(), m.blocks_for(r.scheduled));
        }
    }
    for r in live.drain(..) {
        m.free(r.id);
    }
    inv(&m)?;
    prop_assert_eq!(m.num_free_blocks(), m.num_blocks());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_lifecycles_keep_invariants(
        num_blocks in 1usize..14,
        algo in algo(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run_ops(num_blocks, true, algo, ops)?;
    }

    #[test]
    fn random_lifecycles_without_caching(
        num_blocks in 1usize..14,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run_ops(num_blocks, false, PrefixHashAlgo::Builtin, ops)?;
    }
}
