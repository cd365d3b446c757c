//! The fate of every `VLLM_*` environment variable of the server-arguments reference, in one
//! table ([`ENV_VARS`]), as [`crate::config::FATES`] is for flags: read by vllm-rs, or without
//! effect here (start-up names each one that is set, and why, in one warning line). A `VLLM_*`
//! variable that vLLM does not know either gets vLLM's "unknown variable" warning.
//! `docs/environment.md` holds the same table for users; a test keeps the two in step.

/// What vllm-rs does with an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFate {
    /// Read, with the meaning vLLM gives it.
    Works,
    /// Accepted without effect here, for the reason given.
    NoEffect(&'static str),
}

use EnvFate::{NoEffect, Works};

const BUILD: EnvFate = NoEffect("a build setting of vLLM's Python package");
const ONE_NODE: EnvFate =
    NoEffect("one vllmd serves one node: there is no multi-node communication");
const NO_USAGE_STATS: EnvFate = NoEffect("vllm-rs never collects nor sends usage statistics");
const ONE_PROCESS: EnvFate = NoEffect("the HTTP front end and the engine share one process");
const NO_RAY: EnvFate = NoEffect("vllm-rs does not use Ray");
const NO_MULTIMODAL: EnvFate = NoEffect("vllm-rs takes no multimodal input");
const NO_MOE: EnvFate = NoEffect("vllm-rs serves no mixture-of-experts models");
const NO_OPENVINO: EnvFate = NoEffect("vllm-rs has no OpenVINO backend");
const NO_XLA: EnvFate = NoEffect("vllm-rs has no TPU/XLA backend");
const KERNELS: EnvFate =
    NoEffect("selects one of vLLM's Python/Triton kernels; vllm-rs has its own");
const DATA_PARALLEL: EnvFate =
    NoEffect("data parallelism is not supported (--data-parallel-size is refused)");

/// Every `VLLM_*` variable of the reference (in its order), plus those the issue tracker asked
/// for. The values of `VLLM_ATTENTION_BACKEND` and `VLLM_PORT` are checked even though they
/// have no effect: a typo there is refused at start-up.
pub const ENV_VARS: &[(&str, EnvFate)] = &[
    (
        "VLLM_TARGET_DEVICE",
        NoEffect("vllm-rs picks its device at run time (--device)"),
    ),
    ("VLLM_USE_PRECOMPILED", BUILD),
    ("VLLM_TEST_USE_PRECOMPILED_NIGHTLY_WHEEL", BUILD),
    (
        "VLLM_CONFIG_ROOT",
        NoEffect("vllm-rs keeps no configuration files of its own (use --config FILE)"),
    ),
    ("VLLM_CACHE_ROOT", Works),
    ("VLLM_HOST_IP", ONE_NODE),
    ("VLLM_PORT", ONE_NODE),
    ("VLLM_RPC_BASE_PATH", ONE_PROCESS),
    (
        "VLLM_USE_MODELSCOPE",
        NoEffect("models come from local paths, the Hugging Face cache or the Hugging Face Hub (HF_ENDPOINT); a download with VLLM_USE_MODELSCOPE set is refused"),
    ),
    ("VLLM_RINGBUFFER_WARNING_INTERVAL", ONE_PROCESS),
    (
        "VLLM_NCCL_SO_PATH",
        NoEffect("one device: vllm-rs does not use NCCL"),
    ),
    ("VLLM_USE_TRITON_FLASH_ATTN", KERNELS),
    ("VLLM_FLASH_ATTN_VERSION", KERNELS),
    (
        "VLLM_TEST_DYNAMO_FULLGRAPH_CAPTURE",
        NoEffect("vllm-rs does not use torch.compile"),
    ),
    ("VLLM_ENGINE_ITERATION_TIMEOUT_S", Works),
    ("VLLM_API_KEY", Works),
    ("VLLM_USAGE_STATS_SERVER", NO_USAGE_STATS),
    ("VLLM_NO_USAGE_STATS", NO_USAGE_STATS),
    ("VLLM_DO_NOT_TRACK", NO_USAGE_STATS),
    ("VLLM_USAGE_SOURCE", NO_USAGE_STATS),
    ("VLLM_CONFIGURE_LOGGING", Works),
    ("VLLM_LOGGING_CONFIG_PATH", Works),
    ("VLLM_LOGGING_LEVEL", Works),
    ("VLLM_LOGGING_PREFIX", Works),
    (
        "VLLM_LOGITS_PROCESSOR_THREADS",
        NoEffect("custom logits processors are not supported"),
    ),
    (
        "VLLM_TRACE_FUNCTION",
        NoEffect("traces Python function calls"),
    ),
    (
        "VLLM_ATTENTION_BACKEND",
        NoEffect("vllm-rs has one attention implementation per device"),
    ),
    ("VLLM_USE_FLASHINFER_SAMPLER", KERNELS),
    ("VLLM_FLASHINFER_FORCE_TENSOR_CORES", KERNELS),
    (
        "VLLM_PP_LAYER_PARTITION",
        NoEffect("pipeline parallelism is not supported"),
    ),
    ("VLLM_CPU_KVCACHE_SPACE", Works),
    ("VLLM_CPU_OMP_THREADS_BIND", Works),
    ("VLLM_CPU_MOE_PREPACK", NO_MOE),
    ("VLLM_OPENVINO_DEVICE", NO_OPENVINO),
    ("VLLM_OPENVINO_KVCACHE_SPACE", NO_OPENVINO),
    ("VLLM_OPENVINO_CPU_KV_CACHE_PRECISION", NO_OPENVINO),
    ("VLLM_OPENVINO_ENABLE_QUANTIZED_WEIGHTS", NO_OPENVINO),
    ("VLLM_USE_RAY_SPMD_WORKER", NO_RAY),
    ("VLLM_USE_RAY_COMPILED_DAG", NO_RAY),
    ("VLLM_USE_RAY_COMPILED_DAG_NCCL_CHANNEL", NO_RAY),
    ("VLLM_USE_RAY_COMPILED_DAG_OVERLAP_COMM", NO_RAY),
    (
        "VLLM_WORKER_MULTIPROC_METHOD",
        NoEffect("there are no worker processes"),
    ),
    ("VLLM_ASSETS_CACHE", NO_MULTIMODAL),
    ("VLLM_IMAGE_FETCH_TIMEOUT", NO_MULTIMODAL),
    ("VLLM_VIDEO_FETCH_TIMEOUT", NO_MULTIMODAL),
    ("VLLM_AUDIO_FETCH_TIMEOUT", NO_MULTIMODAL),
    ("VLLM_MM_INPUT_CACHE_GIB", NO_MULTIMODAL),
    ("VLLM_XLA_CACHE_PATH", NO_XLA),
    ("VLLM_XLA_CHECK_RECOMPILATION", NO_XLA),
    ("VLLM_FUSED_MOE_CHUNK_SIZE", NO_MOE),
    ("VLLM_NO_DEPRECATION_WARNING", Works),
    ("VLLM_KEEP_ALIVE_ON_ENGINE_DEATH", Works),
    ("VLLM_ALLOW_LONG_MAX_MODEL_LEN", Works),
    ("VLLM_TEST_FORCE_FP8_MARLIN", KERNELS),
    (
        "VLLM_TEST_FORCE_LOAD_FORMAT",
        NoEffect("a test switch of vLLM's; use --load-format"),
    ),
    ("VLLM_RPC_TIMEOUT", ONE_PROCESS),
    ("VLLM_PLUGINS", NoEffect("vllm-rs loads no Python plug-ins")),
    (
        "VLLM_TORCH_PROFILER_DIR",
        NoEffect("vllm-rs does not use the torch profiler"),
    ),
    ("VLLM_USE_TRITON_AWQ", KERNELS),
    (
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING",
        NoEffect("LoRA adapters are not supported"),
    ),
    (
        "VLLM_SKIP_P2P_CHECK",
        NoEffect("one device: there is no peer-to-peer access"),
    ),
    ("VLLM_DISABLED_KERNELS", KERNELS),
    (
        "VLLM_USE_V1",
        NoEffect("vllm-rs is built like vLLM's V1 engine; there is no V0 to choose"),
    ),
    (
        "VLLM_ROCM_FP8_PADDING",
        NoEffect("vllm-rs has no ROCm backend"),
    ),
    ("VLLM_ENABLE_V1_MULTIPROCESSING", ONE_PROCESS),
    (
        "VLLM_LOG_BATCHSIZE_INTERVAL",
        NoEffect(
            "batch sizes are in /metrics (vllm:iteration_tokens_total) and the periodic stats line",
        ),
    ),
    ("VLLM_SERVER_DEV_MODE", Works),
    (
        "VLLM_V1_OUTPUT_PROC_CHUNK_SIZE",
        NoEffect("outputs are streamed request by request, not in asyncio chunks"),
    ),
    (
        "VLLM_MLA_DISABLE",
        NoEffect("vllm-rs serves no multi-head latent attention (MLA) models"),
    ),
    ("VLLM_ENABLE_MOE_ALIGN_BLOCK_SIZE_TRITON", NO_MOE),
    ("VLLM_RAY_PER_WORKER_GPUS", NO_RAY),
    ("VLLM_RAY_BUNDLE_INDICES", NO_RAY),
    (
        "VLLM_CUDART_SO_PATH",
        NoEffect("the CUDA libraries are found by cudarc's loader"),
    ),
    (
        "VLLM_USE_HPU_CONTIGUOUS_CACHE_FETCH",
        NoEffect("vllm-rs has no Gaudi (HPU) backend"),
    ),
    ("VLLM_DP_RANK", DATA_PARALLEL),
    ("VLLM_DP_SIZE", DATA_PARALLEL),
    ("VLLM_DP_MASTER_IP", DATA_PARALLEL),
    ("VLLM_DP_MASTER_PORT", DATA_PARALLEL),
    ("VLLM_CI_USE_S3", NoEffect("a CI switch of vLLM's")),
    ("VLLM_MARLIN_USE_ATOMIC_ADD", KERNELS),
    (
        "VLLM_V0_USE_OUTLINES_CACHE",
        NoEffect("structured outputs use llguidance; outlines is not shipped"),
    ),
    ("VLLM_TPU_DISABLE_TOPK_TOPP_OPTIMIZATION", NO_XLA),
    // Not in the reference's table, but read by vLLM's API server.
    ("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", Works),
    // vllm-rs's own: the CPU kernel path (read by the kernels crate at start-up).
    ("VLLM_CPU_ISA", Works),
];

/// The values vLLM accepts for `VLLM_ATTENTION_BACKEND` (its backend names).
pub const ATTENTION_BACKENDS: &[&str] = &[
    "FLASH_ATTN",
    "FLASH_ATTN_VLLM_V1",
    "FLASHINFER",
    "FLASHINFER_VLLM_V1",
    "TORCH_SDPA",
    "TORCH_SDPA_VLLM_V1",
    "XFORMERS",
    "ROCM_FLASH",
    "ROCM_AITER_MLA",
    "ROCM_AITER_FA",
    "TRITON_ATTN_VLLM_V1",
    "TRITON_MLA",
    "CUTLASS_MLA",
    "FLASHMLA",
    "FLASH_ATTN_MLA",
    "FLEX_ATTENTION",
    "TREE_ATTN",
    "PALLAS",
    "PALLAS_VLLM_V1",
    "IPEX",
    "DUAL_CHUNK_FLASH_ATTN",
    "NO_ATTENTION",
];

/// vllm-rs's own switches for its test and GPU-check scripts (read by tests, and
/// `VLLM_RS_GPU_SAMPLER` by the engine, for the GPU check) and its own server settings
/// (`VLLM_RS_MAX_WAITING_REQUESTS`, and the dev-mode fault hook `VLLM_RS_TEST_PANIC_AFTER_STEPS`,
/// read in `serve::engine_options`): not vLLM settings, so start-up neither warns about them nor
/// calls them unknown.
pub const TOOLING_VARS: &[&str] = &[
    "VLLM_REQUIRE_NVRTC",
    "VLLM_REQUIRE_TEST_DEPS",
    "VLLM_BIN_DIR",
    "VLLM_RS_GPU_SAMPLER",
    "VLLM_RS_MAX_WAITING_REQUESTS",
    "VLLM_RS_TEST_PANIC_AFTER_STEPS",
];

/// The fate of a variable; `None` for a `VLLM_*` name the reference does not know.
pub fn env_fate(name: &str) -> Option<EnvFate> {
    ENV_VARS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The warning lines start-up logs for the `VLLM_*` variables in `set`: one for those without
/// effect here (with the reason), one (vLLM's) for those nobody knows.
pub fn env_warnings<'a>(set: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let (mut no_effect, mut unknown) = (Vec::new(), Vec::new());
    for name in set {
        match env_fate(name) {
            Some(NoEffect(why)) => no_effect.push(format!("{name} ({why})")),
            Some(Works) => {}
            None if TOOLING_VARS.contains(&name) => {}
            None => unknown.push(name.to_string()),
        }
    }
    let mut out = Vec::new();
    if !no_effect.is_empty() {
        out.push(format!(
            "these environment variables have no effect in vllm-rs and are ignored: {}",
            no_effect.join("; ")
        ));
    }
    if !unknown.is_empty() {
        out.push(format!(
            "Unknown vLLM environment variable detected: {}",
            unknown.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variable_once_and_warnings_name_them() {
        for (name, _) in ENV_VARS {
            assert!(name.starts_with("VLLM_"), "{name}");
            assert_eq!(
                ENV_VARS.iter().filter(|(n, _)| n == name).count(),
                1,
                "{name} listed twice"
            );
        }
        assert!(env_warnings(["VLLM_API_KEY", "VLLM_CPU_KVCACHE_SPACE"]).is_empty());
        let w = env_warnings(["VLLM_HOST_IP", "VLLM_USE_V1", "VLLM_NO_SUCH_THING"]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(env_warnings([
            "VLLM_REQUIRE_NVRTC",
            "VLLM_REQUIRE_TEST_DEPS",
            "VLLM_BIN_DIR"
        ])
        .is_empty());
        assert!(
            w[0].contains("VLLM_HOST_IP (one vllmd serves one node")
                && w[0].contains("VLLM_USE_V1"),
            "{w:?}"
        );
        assert_eq!(
            w[1],
            "Unknown vLLM environment variable detected: VLLM_NO_SUCH_THING"
        );
    }

    #[test]
    fn the_user_table_lists_every_variable_with_its_fate() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/environment.md"
        ))
        .unwrap_or_default();
        for (name, fate) in ENV_VARS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("{name} missing from docs/environment.md"));
            let status = match fate {
                Works => "works",
                NoEffect(_) => "no effect",
            };
            assert!(
                row.contains(status),
                "docs/environment.md: {name} should say `{status}`: {row}"
            );
        }
    }
}
