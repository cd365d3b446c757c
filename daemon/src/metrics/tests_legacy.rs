//! The reference's metric names (`legacy.rs`) against the current ones.

use std::time::Instant;

use super::tests::{get, metrics, request, snapshot, BASE};
use super::Metrics;

/// The reference's names carry the same numbers as the current ones; its deprecated metrics
/// appear only with `--show-hidden-metrics-for-version`.
#[test]
fn reference_names_follow_the_current_ones_and_deprecated_ones_need_the_flag() {
    let feed = |m: &Metrics| {
        let mut s = snapshot(10, 5, &[("stop", 1)]);
        s.prefix_cache_queries = 32;
        s.prefix_cache_hits = 16;
        s.kv_cache_usage = 0.25;
        m.observe_engine(&s, &[request(Instant::now(), 100, 200, 300, 400, 5)]);
        m.render()
    };
    let t = feed(&metrics());
    let series = |name: &str| format!("{name}{{{BASE}}}");
    assert_eq!(get(&t, &series("vllm:gpu_cache_usage_perc")), 0.25);
    assert_eq!(get(&t, &series("vllm:kv_cache_usage_perc")), 0.25);
    assert_eq!(
        get(&t, &series("vllm:gpu_prefix_cache_queries_total")),
        get(&t, &series("vllm:prefix_cache_queries_total"))
    );
    assert_eq!(get(&t, &series("vllm:gpu_prefix_cache_hits_total")), 16.0);
    // The request asked for (at most) 64 tokens.
    assert_eq!(
        get(&t, &series("vllm:request_max_num_generation_tokens_count")),
        1.0
    );
    assert_eq!(
        get(&t, &series("vllm:request_max_num_generation_tokens_sum")),
        64.0
    );
    for hidden in [
        "vllm:num_requests_swapped",
        "vllm:gpu_prefix_cache_hit_rate",
        "vllm:time_in_queue_requests",
    ] {
        assert!(!t.contains(hidden), "{hidden} shown without the flag");
    }

    let t = feed(&metrics().with_hidden_metrics(true));
    assert_eq!(get(&t, &series("vllm:gpu_prefix_cache_hit_rate")), 0.5);
    assert_eq!(get(&t, &series("vllm:num_requests_swapped")), 0.0);
    assert_eq!(get(&t, &series("vllm:cpu_cache_usage_perc")), 0.0);
    assert_eq!(
        get(&t, &series("vllm:time_in_queue_requests_count")),
        get(&t, &series("vllm:request_queue_time_seconds_count"))
    );
    assert_eq!(
        get(&t, &series("vllm:model_forward_time_milliseconds_count")),
        0.0
    );
}
