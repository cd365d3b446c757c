//! Turning what the user pointed `--model` at into a ready `CausalLm` and `Tokenizer`.
//!
//! Formats: a GGUF file, a Hugging Face folder (`config.json` + `*.safetensors` +
//! `tokenizer.json`), or `dummy` (random weights of a config's shapes).

mod dummy;
mod gguf;
mod safetensors;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use self::dummy::DummyWeights;
pub use self::gguf::{config_from_gguf, GgufWeights};
pub use self::safetensors::SafetensorsWeights;

use kernels::cpu::WeightDtype;

use crate::config::ModelConfig;
use crate::device::Backend;
use crate::error::LoadError;
use crate::gguf::GgufFile;
use crate::model::{CausalLm, WeightSource};
use crate::tokenizer::Tokenizer;

/// `--load-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadFormat {
    #[default]
    Auto,
    Gguf,
    Safetensors,
    Dummy,
}

impl std::str::FromStr for LoadFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LoadFormat::Auto),
            "gguf" => Ok(LoadFormat::Gguf),
            "safetensors" => Ok(LoadFormat::Safetensors),
            "dummy" => Ok(LoadFormat::Dummy),
            other => Err(format!(
                "unsupported load format `{other}` (supported: auto, gguf, safetensors, dummy)"
            )),
        }
    }
}

/// `--dtype`: storage dtype of the weights. Activations are f32 on the CPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelDtype {
    /// As stored: GGUF tensors stay in their block formats (decoded in registers as they are
    /// used, f32 activations), half checkpoints stay half, float32 ones float32.
    #[default]
    Auto,
    Float32,
    Bfloat16,
    Float16,
}

impl std::str::FromStr for ModelDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ModelDtype::Auto),
            "float32" | "float" => Ok(ModelDtype::Float32),
            "bfloat16" => Ok(ModelDtype::Bfloat16),
            "float16" | "half" => Ok(ModelDtype::Float16),
            other => Err(format!("unsupported dtype `{other}` (supported: auto, float32, float, bfloat16, float16, half)")),
        }
    }
}

impl ModelDtype {
    fn resolve(self, checkpoint: Option<&str>, gguf: bool) -> WeightDtype {
        match self {
            ModelDtype::Auto if gguf => WeightDtype::AsStored,
            ModelDtype::Float32 => WeightDtype::F32,
            ModelDtype::Bfloat16 => WeightDtype::Bf16,
            ModelDtype::Float16 => WeightDtype::F16,
            ModelDtype::Auto => match checkpoint {
                Some("bfloat16") => WeightDtype::Bf16,
                Some("float16") => WeightDtype::F16,
                _ => WeightDtype::F32,
            },
        }
    }
}

/// What to load and how.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A GGUF file or a Hugging Face folder.
    pub model: PathBuf,
    pub load_format: LoadFormat,
    pub dtype: ModelDtype,
    /// `--tokenizer`: a folder with `tokenizer.json`, a `tokenizer.json` file or a GGUF file.
    pub tokenizer: Option<PathBuf>,
    /// `--hf-config-path`: a `config.json` file or the folder holding one.
    pub hf_config_path: Option<PathBuf>,
    /// `--max-model-len`; `None` takes the model's own maximum.
    pub max_model_len: Option<usize>,
    /// Allow `max_model_len` beyond the model's maximum (`VLLM_ALLOW_LONG_MAX_MODEL_LEN`).
    pub allow_long_max_model_len: bool,
    /// Seed of `dummy` weights.
    pub seed: u64,
    /// `--device`: CPU, GPU, or the GPU when there is one.
    pub device: crate::device::Device,
    /// `--hf-overrides` (with `--rope-scaling` and `--rope-theta` folded in): `config.json` keys
    /// replaced before the model is built, whatever the format.
    pub hf_overrides: serde_json::Map<String, serde_json::Value>,
    /// `--disable-sliding-window`: attend to the whole context on every layer and, as vLLM
    /// does, cap the context at the (smallest) window so the result is what the window
    /// would give.
    pub disable_sliding_window: bool,
}

/// A model ready to serve.
pub struct LoadedModel {
    pub model: CausalLm,
    pub tokenizer: Tokenizer,
    pub max_model_len: usize,
    pub weight_dtype: WeightDtype,
    /// Where the model runs (`--device` resolved).
    pub backend: crate::device::Backend,
    /// Contents of `generation_config.json`, when the folder has one.
    pub generation_config: Option<serde_json::Value>,
    /// The `score` head of a `*ForSequenceClassification` checkpoint.
    pub classifier: Option<crate::pooling::ClassifierHead>,
    pub load_time: Duration,
}

fn read_json(path: &Path) -> Result<serde_json::Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| LoadError::Config {
        path: path.to_path_buf(),
        msg: format!("invalid JSON: {e}"),
    })
}

fn is_gguf(path: &Path) -> bool {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

fn hf_config_json(opts: &LoadOptions) -> Result<(serde_json::Value, PathBuf), LoadError> {
    let path = match &opts.hf_config_path {
        Some(p) if p.is_dir() => p.join("config.json"),
        Some(p) => p.clone(),
        None => opts.model.join("config.json"),
    };
    Ok((read_json(&path)?, path))
}

fn hf_config(opts: &LoadOptions) -> Result<ModelConfig, LoadError> {
    let (json, path) = hf_config_json(opts)?;
    ModelConfig::from_hf_json(&json, &path)
}

fn tokenizer_from_path(path: &Path) -> Result<Tokenizer, LoadError> {
    if path.is_file() && is_gguf(path) {
        return Tokenizer::from_gguf(&GgufFile::open(path)?);
    }
    let (json, dir) = if path.is_dir() {
        (path.join("tokenizer.json"), path.to_path_buf())
    } else {
        (
            path.to_path_buf(),
            path.parent().map(Path::to_path_buf).unwrap_or_default(),
        )
    };
    if !json.is_file() {
        return Err(LoadError::Tokenizer {
            path: json,
            msg: "tokenizer.json not found".into(),
        });
    }
    let cfg = dir.join("tokenizer_config.json");
    Tokenizer::from_hf_files(&json, cfg.is_file().then_some(cfg.as_path()))
}

/// Builds the model (and a classifier's head) once the config and dtype are settled (weights
/// are read only then).
type BuildModel<'a> = Box<
    dyn FnOnce(
            &ModelConfig,
            WeightDtype,
            usize,
        ) -> Result<(CausalLm, Option<crate::pooling::ClassifierHead>), LoadError>
        + 'a,
>;

/// Loads the model described by `opts`. `on_layer(done, total)` reports progress.
pub fn load(opts: &LoadOptions, on_layer: &dyn Fn(usize, usize)) -> Result<LoadedModel, LoadError> {
    let start = Instant::now();
    let path = opts.model.as_path();
    if !path.exists() {
        return Err(LoadError::Other {
            path: path.to_path_buf(),
            msg: "no such file or folder".into(),
        });
    }
    let format = match opts.load_format {
        LoadFormat::Auto if path.is_file() && is_gguf(path) => LoadFormat::Gguf,
        LoadFormat::Auto if path.is_dir() => LoadFormat::Safetensors,
        LoadFormat::Auto => {
            return Err(LoadError::Other {
                path: path.to_path_buf(),
                msg: "not a GGUF file (bad magic) nor a model folder".into(),
            });
        }
        f => f,
    };

    let (config, tokenizer, generation_config, model_fn): (
        ModelConfig,
        Tokenizer,
        Option<serde_json::Value>,
        BuildModel,
    ) = match format {
        LoadFormat::Gguf => {
            let file = std::sync::Arc::new(GgufFile::open(path)?);
            let config = config_from_gguf(&file)?;
            let tokenizer = match &opts.tokenizer {
                Some(t) => tokenizer_from_path(t)?,
                None => Tokenizer::from_gguf(&file)?,
            };
            let build = Box::new(move |c: &ModelConfig, dtype, max_len| {
                let weights = GgufWeights::new(file, c);
                CausalLm::from_source(c.clone(), &weights, dtype, max_len, on_layer)
                    .map(|m| (m, None))
            });
            (config, tokenizer, None, build)
        }
        LoadFormat::Safetensors => {
            let (json, config_path) = hf_config_json(opts)?;
            let mut config = ModelConfig::from_hf_json(&json, &config_path)?;
            let is_classifier = crate::pooling::ClassifierHead::is_classifier_config(&json);
            if is_classifier {
                // A classifier has `score.weight` instead of `lm_head.weight`; the (unused)
                // language-model head is tied to the embeddings so none is looked for.
                config.tie_word_embeddings = true;
            }
            let tokenizer = tokenizer_from_path(opts.tokenizer.as_deref().unwrap_or(path))?;
            let gen_path = path.join("generation_config.json");
            let generation = if gen_path.is_file() {
                Some(read_json(&gen_path)?)
            } else {
                None
            };
            let weights = SafetensorsWeights::open_dir(path)?;
            let build = Box::new(move |c: &ModelConfig, dtype, max_len| {
                let model = CausalLm::from_source(
                    c.clone(),
                    &weights as &dyn WeightSource,
                    dtype,
                    max_len,
                    on_layer,
                )?;
                let head = if is_classifier {
                    Some(crate::pooling::ClassifierHead::load(
                        &json,
                        &weights,
                        c.hidden_size,
                    )?)
                } else {
                    None
                };
                Ok((model, head))
            });
            (config, tokenizer, generation, build)
        }
        LoadFormat::Dummy | LoadFormat::Auto => {
            let (config, default_tok) = if path.is_file() && is_gguf(path) {
                let file = GgufFile::open(path)?;
                (config_from_gguf(&file)?, Some(Tokenizer::from_gguf(&file)?))
            } else {
                (hf_config(opts)?, None)
            };
            let tokenizer = match (&opts.tokenizer, default_tok) {
                (Some(t), _) => tokenizer_from_path(t)?,
                (None, Some(t)) => t,
                (None, None) => tokenizer_from_path(path)?,
            };
            let seed = opts.seed;
            let build = Box::new(move |c: &ModelConfig, dtype, max_len| {
                let weights = DummyWeights::new(path, c.clone(), seed);
                CausalLm::from_source(c.clone(), &weights, dtype, max_len, on_layer)
                    .map(|m| (m, None))
            });
            (config, tokenizer, None, build)
        }
    };

    let mut config = config.with_overrides(&opts.hf_overrides, path)?;
    if !opts.hf_overrides.is_empty() {
        let keys: Vec<&str> = opts.hf_overrides.keys().map(String::as_str).collect();
        tracing::info!(
            "model config overridden (--hf-overrides): {}",
            keys.join(", ")
        );
    }
    let mut derived_max = config.derived_max_model_len();
    if opts.disable_sliding_window {
        if let Some(w) = config
            .family
            .smallest_window(config.num_hidden_layers)
            .filter(|w| *w < derived_max)
        {
            tracing::info!(
                "--disable-sliding-window: full attention on every layer, context capped at the sliding window of {w} tokens"
            );
            derived_max = w;
        }
        config.family.sliding_window = None;
    }
    let max_model_len = match opts.max_model_len {
        None => derived_max,
        Some(0) => {
            return Err(LoadError::Config {
                path: path.to_path_buf(),
                msg: "--max-model-len must be positive".into(),
            })
        }
        Some(n) if n > derived_max && !opts.allow_long_max_model_len => {
            return Err(LoadError::Config {
                path: path.to_path_buf(),
                msg: format!(
                    "--max-model-len {n} exceeds the model's maximum of {derived_max} positions (set VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 to allow it)"
                ),
            });
        }
        Some(n) => n,
    };
    // The CUDA backend runs the Llama family only: `--device cuda` with another architecture
    // is refused before anything is read from the GPU or the weights; `auto` stays on the CPU.
    let arch = config.architecture;
    if opts.device == crate::device::Device::Cuda && !arch.runs_on_cuda() {
        let cuda: Vec<&str> = crate::config::Architecture::ALL
            .iter()
            .filter(|a| a.runs_on_cuda())
            .map(|a| a.hf_name())
            .collect();
        return Err(LoadError::Device(format!(
            "not supported yet: {} with --device cuda (the CUDA backend runs {}; use --device cpu)",
            arch.hf_name(),
            cuda.join(", ")
        )));
    }
    let backend = match opts.device.resolve().map_err(LoadError::Device)? {
        Backend::Cuda if !arch.runs_on_cuda() => {
            tracing::warn!(
                "{} runs on the CPU backend only: --device auto picks the CPU",
                arch.hf_name()
            );
            Backend::Cpu
        }
        b => b,
    };
    let weight_dtype = match backend {
        Backend::Cpu => opts.dtype.resolve(
            config.checkpoint_dtype.as_deref(),
            format == LoadFormat::Gguf,
        ),
        // The CUDA kernels compute in bf16 (f32 accumulation): every half or auto dtype maps
        // to bf16 weights; float32 compute on the GPU does not exist yet, so asking for it is
        // refused rather than silently downgraded.
        Backend::Cuda if opts.dtype == ModelDtype::Float32 => {
            return Err(LoadError::Device("not supported yet: --dtype float32 with --device cuda (the CUDA backend computes in bfloat16)".into()));
        }
        Backend::Cuda => WeightDtype::Bf16,
    };
    #[allow(unused_mut)]
    let (mut model, classifier) = model_fn(&config, weight_dtype, max_model_len)?;
    #[cfg(feature = "cuda")]
    if backend == Backend::Cuda {
        model
            .attach_cuda(0)
            .map_err(|e| LoadError::Device(format!("moving the model to the GPU: {e}")))?;
        if let Some(g) = model.gpu() {
            let i = g.info();
            let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
            tracing::info!(
                "GPU {}: {} ({}), {:.1} GiB total, {:.1} GiB free before loading; kernels: {} of {} modules from the cache, {:.0} ms compiling; weights {:.2} GiB bf16",
                i.ordinal,
                i.name,
                i.arch,
                gib(i.total_bytes),
                gib(i.free_bytes),
                i.kernels_from_cache,
                kernels::cuda::KernelModule::ALL.len(),
                i.kernels_compile_ms,
                gib(g.weight_bytes())
            );
            for w in &i.kernel_warnings {
                tracing::warn!("NVRTC warning: {w}");
            }
        }
    }
    Ok(LoadedModel {
        model,
        tokenizer,
        max_model_len,
        weight_dtype,
        backend,
        generation_config,
        classifier,
        load_time: start.elapsed(),
    })
}
