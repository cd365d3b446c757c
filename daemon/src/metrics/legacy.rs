//! Metric names of the server-arguments reference that vLLM v1 renamed or retired, so dashboards
//! built on them keep working:
//!
//! - always, next to the current names: `vllm:gpu_cache_usage_perc` (= `vllm:kv_cache_usage_perc`),
//!   `vllm:gpu_prefix_cache_queries`/`_hits` (= `vllm:prefix_cache_queries`/`_hits`) and
//!   `vllm:request_max_num_generation_tokens`;
//! - with `--show-hidden-metrics-for-version`, the reference's deprecated set: nothing is swapped
//!   nor offloaded to the CPU here, so the swap and CPU-cache series are 0;
//!   `vllm:gpu_prefix_cache_hit_rate` is hits over queries since start;
//!   `vllm:time_in_queue_requests` repeats `vllm:request_queue_time_seconds`; the model
//!   forward/execute times were only measured with `--collect-detailed-traces`, which vllm-rs
//!   does not support, so those histograms stay empty (as in vLLM without that flag).

use super::engine_state::EngineState;
use super::histogram::{buckets_1_2_5, Histogram};
use super::render::{CounterSeries, Exposition, HistogramSeries};

type Labels<'a> = Vec<(&'a str, &'a str)>;

/// The reference's names of current metrics.
pub(super) fn render_seed_names(
    x: &mut Exposition,
    e: &EngineState,
    base: &Labels<'_>,
    created: f64,
) {
    x.gauge(
        "vllm:gpu_cache_usage_perc",
        "GPU KV-cache usage. 1 means 100 percent usage.",
        &[(base.clone(), e.kv_cache_usage)],
    );
    let one = |v: u64| {
        [CounterSeries {
            labels: base.clone(),
            value: v as f64,
            created,
        }]
    };
    x.counter(
        "vllm:gpu_prefix_cache_queries",
        "GPU prefix cache queries, in terms of number of queried tokens.",
        &one(e.prefix_cache_queries.total),
    );
    x.counter(
        "vllm:gpu_prefix_cache_hits",
        "GPU prefix cache hits, in terms of number of cached tokens.",
        &one(e.prefix_cache_hits.total),
    );
    x.histogram(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        &[HistogramSeries {
            labels: base.clone(),
            histogram: &e.max_num_generation_tokens,
            created,
        }],
    );
}

/// The reference's deprecated metrics (`--show-hidden-metrics-for-version`).
pub(super) fn render_hidden(x: &mut Exposition, e: &EngineState, base: &Labels<'_>, created: f64) {
    x.gauge(
        "vllm:num_requests_swapped",
        "Number of requests swapped to CPU. DEPRECATED: KV cache offloading is not used in V1",
        &[(base.clone(), 0.0)],
    );
    x.gauge("vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage. DEPRECATED: KV cache offloading is not used in V1", &[(base.clone(), 0.0)]);
    x.gauge(
        "vllm:cpu_prefix_cache_hit_rate",
        "CPU prefix cache block hit rate. DEPRECATED: KV cache offloading is not used in V1",
        &[(base.clone(), 0.0)],
    );
    let (q, h) = (e.prefix_cache_queries.total, e.prefix_cache_hits.total);
    let rate = if q == 0 { 0.0 } else { h as f64 / q as f64 };
    x.gauge(
        "vllm:gpu_prefix_cache_hit_rate",
        "GPU prefix cache block hit rate. DEPRECATED: use vllm:gpu_prefix_cache_queries and vllm:gpu_prefix_cache_hits in V1",
        &[(base.clone(), rate)],
    );
    x.histogram(
        "vllm:time_in_queue_requests",
        "Histogram of time the request spent in the queue in seconds. DEPRECATED: use vllm:request_queue_time_seconds instead.",
        &[HistogramSeries { labels: base.clone(), histogram: &e.queue_time, created }],
    );
    let empty = Histogram::new(&buckets_1_2_5(3000));
    for (name, help) in [
        ("vllm:model_forward_time_milliseconds", "Histogram of time spent in the model forward pass in ms. DEPRECATED: use prefill/decode/inference time metrics instead."),
        ("vllm:model_execute_time_milliseconds", "Histogram of time spent in the model execute function in ms. DEPRECATED: use prefill/decode/inference time metrics instead."),
    ] {
        x.histogram(name, help, &[HistogramSeries { labels: base.clone(), histogram: &empty, created }]);
    }
}
