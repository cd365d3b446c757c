//! The typed registry of kernel modules: which `.cu` files exist, which functions each exports,
//! and loading all of them onto a device, through an on-disk cubin cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::Ptx;
use sha2::{Digest, Sha256};

use super::error::CudaError;
use super::nvrtc::{self, Arch};

/// Prepended to every module: bf16 helpers and block reductions (see the file).
const COMMON: &str = include_str!("../../cuda/common.cuh");

/// One `.cu` file under `kernels/cuda/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelModule {
    Embedding,
    Norm,
    Rope,
    Activation,
    KvCache,
    Attention,
    Sampling,
}

impl KernelModule {
    pub const ALL: [KernelModule; 7] = [
        KernelModule::Embedding,
        KernelModule::Norm,
        KernelModule::Rope,
        KernelModule::Activation,
        KernelModule::KvCache,
        KernelModule::Attention,
        KernelModule::Sampling,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KernelModule::Embedding => "embedding",
            KernelModule::Norm => "norm",
            KernelModule::Rope => "rope",
            KernelModule::Activation => "activation",
            KernelModule::KvCache => "kv_cache",
            KernelModule::Attention => "attention",
            KernelModule::Sampling => "sampling",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            KernelModule::Embedding => "embedding.cu",
            KernelModule::Norm => "norm.cu",
            KernelModule::Rope => "rope.cu",
            KernelModule::Activation => "activation.cu",
            KernelModule::KvCache => "kv_cache.cu",
            KernelModule::Attention => "attention.cu",
            KernelModule::Sampling => "sampling.cu",
        }
    }

    fn body(self) -> &'static str {
        match self {
            KernelModule::Embedding => include_str!("../../cuda/embedding.cu"),
            KernelModule::Norm => include_str!("../../cuda/norm.cu"),
            KernelModule::Rope => include_str!("../../cuda/rope.cu"),
            KernelModule::Activation => include_str!("../../cuda/activation.cu"),
            KernelModule::KvCache => include_str!("../../cuda/kv_cache.cu"),
            KernelModule::Attention => include_str!("../../cuda/attention.cu"),
            KernelModule::Sampling => include_str!("../../cuda/sampling.cu"),
        }
    }

    /// The full source NVRTC compiles: the common header, then the file, with `#line` so that
    /// diagnostics name the right file and line.
    pub fn source(self) -> String {
        format!(
            "#line 1 \"common.cuh\"\n{COMMON}\n#line 1 \"{}\"\n{}",
            self.file_name(),
            self.body()
        )
    }

    /// The `extern "C"` functions the Rust side launches from this module.
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            KernelModule::Embedding => &["embedding_bf16", "embedding_f32"],
            KernelModule::Norm => &[
                "add_rms_norm_bf16",
                "gather_rms_norm_bf16",
                "head_rms_norm_bf16",
                "add_bias_bf16",
            ],
            KernelModule::Rope => &["rope_neox_bf16"],
            KernelModule::Activation => &["silu_mul_bf16"],
            KernelModule::KvCache => &["reshape_and_cache_bf16"],
            KernelModule::Attention => &[
                "paged_attention_decode_hd64",
                "paged_attention_decode_hd128",
                "paged_attention_decode_hd256",
                "paged_attention_reduce",
                "prefill_attention_hd64",
                "prefill_attention_hd128",
                "prefill_attention_hd256",
            ],
            KernelModule::Sampling => &["apply_penalties", "sample_rows"],
        }
    }
}

/// Every kernel function, loaded on one device.
pub struct Kernels {
    functions: HashMap<&'static str, CudaFunction>,
    /// Wall time spent compiling (zero when everything came from the disk cache).
    pub compile_ms: f64,
    /// Modules loaded from the disk cache rather than compiled.
    pub from_cache: usize,
    /// NVRTC warnings, per module (the CI test keeps this empty; the caller logs it).
    pub warnings: Vec<String>,
}

impl Kernels {
    /// Compiles (or reads from `cache_dir`) every module for `arch` and loads it into `ctx`.
    pub fn load(
        ctx: &Arc<CudaContext>,
        arch: Arch,
        cache_dir: Option<&Path>,
    ) -> Result<Kernels, CudaError> {
        let mut functions = HashMap::new();
        let mut compile_ms = 0.0;
        let mut from_cache = 0;
        let mut warnings = Vec::new();
        let nvrtc_version = if nvrtc::nvrtc_available() {
            Some(nvrtc::nvrtc_version()?)
        } else {
            None
        };
        for module in KernelModule::ALL {
            let cached = cache_dir.map(|d| cache_path(d, module, arch, nvrtc_version));
            let from_disk = cached
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .filter(|bytes| !bytes.is_empty());
            // A cached cubin that the driver refuses (truncated, corrupt, or from a driver
            // that no longer accepts it) is compiled again and replaced, never fatal.
            if let Some(bytes) = from_disk {
                match load_module(ctx, module, bytes) {
                    Ok(loaded) => {
                        functions.extend(loaded);
                        from_cache += 1;
                        continue;
                    }
                    Err(e) => warnings.push(format!(
                        "{} ({arch}): the cached cubin did not load ({e}); compiled again",
                        module.name()
                    )),
                }
            }
            let t = Instant::now();
            let compiled = nvrtc::compile(module, arch)?;
            compile_ms += t.elapsed().as_secs_f64() * 1e3;
            if !compiled.log.is_empty() {
                warnings.push(format!("{} ({arch}): {}", module.name(), compiled.log));
            }
            if let Some(path) = &cached {
                write_atomically(path, &compiled.cubin)?;
            }
            functions.extend(load_module(ctx, module, compiled.cubin)?);
        }
        Ok(Kernels {
            functions,
            compile_ms,
            from_cache,
            warnings,
        })
    }

    pub fn get(&self, name: &'static str) -> Result<&CudaFunction, CudaError> {
        self.functions
            .get(name)
            .ok_or_else(|| CudaError::MissingFunction {
                kernel: "-",
                function: name.to_string(),
            })
    }
}

/// Loads one module's cubin into `ctx` and looks up each of its functions.
fn load_module(
    ctx: &Arc<CudaContext>,
    module: KernelModule,
    cubin: Vec<u8>,
) -> Result<Vec<(&'static str, CudaFunction)>, CudaError> {
    let loaded = ctx
        .load_module(Ptx::from_binary(cubin))
        .map_err(CudaError::driver("loading a kernel module"))?;
    module
        .functions()
        .iter()
        .map(|&f| {
            loaded
                .load_function(f)
                .map(|func| (f, func))
                .map_err(|_| CudaError::MissingFunction {
                    kernel: module.name(),
                    function: f.to_string(),
                })
        })
        .collect()
}

/// `<dir>/<module>-<sm>-<hash>.cubin`, the hash covering the source, the architecture, the
/// compile options and the NVRTC version, so any change recompiles.
fn cache_path(
    dir: &Path,
    module: KernelModule,
    arch: Arch,
    nvrtc_version: Option<(i32, i32)>,
) -> PathBuf {
    let mut h = Sha256::new();
    h.update(module.source().as_bytes());
    h.update(arch.sm().as_bytes());
    h.update(nvrtc::options(arch).join(" ").as_bytes());
    h.update(format!("{nvrtc_version:?}").as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{}-{}-{hex}.cubin", module.name(), arch.sm()))
}

/// Writes through a temporary file and a rename, so a concurrent reader never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CudaError> {
    let io = |source| CudaError::Cache {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
