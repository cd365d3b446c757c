//! Scheduling decisions on their own (no model): budgets, ordering, chunking, preemption.

use super::*;
use crate::kv_cache::{KvCacheManager, PrefixHashAlgo};

fn sched(num_blocks: usize, budget: usize, policy: SchedulingPolicy) -> Scheduler {
    let mut c = SchedulerConfig::new(64);
    c.max_num_batched_tokens = budget;
    c.policy = policy;
    Scheduler::new(
        c,
        KvCacheManager::new(num_blocks, 4, true, PrefixHashAlgo::Builtin),
    )
}

/// Runs a step and pretends the model produced token 7 for every ready request.
fn step(s: &mut Scheduler) -> SchedulerOutput {
    let out = s.schedule();
    for id in s.finish_step(&out) {
        s.append_token(id, 7);
    }
    out
}

#[test]
fn budget_chunks_prompts_and_running_requests_go_first() {
    let mut s = sched(64, 10, SchedulingPolicy::Fcfs);
    s.add(1, (0..25).collect(), 0, false);
    s.add(2, (100..103).collect(), 0, false);
    let o = step(&mut s);
    assert_eq!(
        o.scheduled,
        vec![ScheduledSeq {
            id: 1,
            start: 0,
            num_new: 10
        }]
    );
    // Request 2 waits: request 1 is a partial prefill and only one is allowed at a time...
    let o = step(&mut s);
    assert_eq!(
        o.scheduled[0],
        ScheduledSeq {
            id: 1,
            start: 10,
            num_new: 10
        }
    );
    // ...until request 1's last chunk leaves room for request 2's whole prompt.
    let o = step(&mut s);
    assert_eq!(
        o.scheduled,
        vec![
            ScheduledSeq {
                id: 1,
                start: 20,
                num_new: 5
            },
            ScheduledSeq {
                id: 2,
                start: 0,
                num_new: 3
            }
        ]
    );
    // Both decode one token per step now.
    let o = step(&mut s);
    assert_eq!(
        o.scheduled,
        vec![
            ScheduledSeq {
                id: 1,
                start: 25,
                num_new: 1
            },
            ScheduledSeq {
                id: 2,
                start: 3,
                num_new: 1
            }
        ]
    );
}

#[test]
fn priority_policy_admits_lowest_value_first() {
    let mut s = sched(64, 100, SchedulingPolicy::Priority);
    s.config.max_num_seqs = 1;
    s.add(1, vec![1, 2], 5, false);
    s.add(2, vec![3, 4], -1, false);
    let o = step(&mut s);
    assert_eq!(o.scheduled[0].id, 2);
}

#[test]
fn preemption_frees_the_newest_and_recomputes_it_later() {
    // 3 blocks of 4 tokens: two 4-token prompts fit, but both cannot grow past 6 tokens.
    let mut s = sched(3, 100, SchedulingPolicy::Fcfs);
    s.add(1, vec![1, 2, 3, 4], 0, false);
    s.add(2, vec![5, 6, 7, 8], 0, false);
    step(&mut s);
    assert_eq!(s.num_running(), 2);
    step(&mut s); // each needs a 2nd block for its 5th token: only one is left.
    assert_eq!(s.num_preemptions(), 1);
    assert_eq!(s.num_running(), 1);
    assert_eq!(s.request(2).map(|r| r.num_computed), Some(0));
    // Once request 1 is gone, request 2 comes back: its full prompt block is still in the
    // prefix cache, so only its generated token is recomputed.
    s.remove(1);
    let o = step(&mut s);
    assert_eq!(
        o.scheduled,
        vec![ScheduledSeq {
            id: 2,
            start: 4,
            num_new: 1
        }]
    );
    s.remove(2);
    assert_eq!(s.kv().num_free_blocks(), 3);
}

#[test]
fn chunked_prefill_off_needs_the_whole_prompt_in_budget() {
    let mut c = SchedulerConfig::new(16);
    c.max_num_batched_tokens = 8;
    c.enable_chunked_prefill = false;
    assert!(
        c.validate().is_err(),
        "a budget below max_model_len must be refused without chunking"
    );
}
