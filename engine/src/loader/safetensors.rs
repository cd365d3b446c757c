//! Hugging Face `*.safetensors` checkpoints (one file or sharded), memory-mapped.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;

use crate::error::LoadError;
use crate::model::{TensorData, WeightSource};

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// All tensors of a model folder's safetensors files.
pub struct SafetensorsWeights {
    dir: PathBuf,
    shards: Vec<Shard>,
    /// tensor name → shard index.
    index: HashMap<String, usize>,
}

impl SafetensorsWeights {
    /// Opens every `*.safetensors` file of `dir` (the index file, when present, is implied:
    /// every shard it names lives in the folder).
    pub fn open_dir(dir: &Path) -> Result<Self, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|e| LoadError::io(dir, e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::Other {
                path: dir.to_path_buf(),
                msg: "no *.safetensors files in this folder".into(),
            });
        }
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for path in files {
            let file = File::open(&path).map_err(|e| LoadError::io(&path, e))?;
            // SAFETY: the map is read-only; a file truncated underneath us would fault, the
            // same risk every mmap-based loader (and safetensors itself) accepts.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| LoadError::io(&path, e))?;
            let (header_len, metadata) =
                SafeTensors::read_metadata(&mmap).map_err(|e| LoadError::Other {
                    path: path.clone(),
                    msg: format!("invalid safetensors file: {e}"),
                })?;
            let data_len = mmap.len().saturating_sub(8 + header_len);
            for (name, info) in metadata.tensors() {
                if info.data_offsets.1 > data_len || info.data_offsets.0 > info.data_offsets.1 {
                    return Err(LoadError::Tensor {
                        path: path.clone(),
                        name,
                        msg: "data offsets point past the end of the file".into(),
                    });
                }
                index.insert(name, shards.len());
            }
            shards.push(Shard {
                path,
                mmap,
                header_len,
                metadata,
            });
        }
        Ok(SafetensorsWeights {
            dir: dir.to_path_buf(),
            shards,
            index,
        })
    }

    /// Names of every tensor found.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }
}

impl WeightSource for SafetensorsWeights {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn load(&self, name: &str) -> Result<Option<TensorData>, LoadError> {
        let Some(&si) = self.index.get(name) else {
            return Ok(None);
        };
        let shard = &self.shards[si];
        let Some(info) = shard.metadata.info(name) else {
            return Ok(None);
        };
        let start = 8 + shard.header_len + info.data_offsets.0;
        let end = 8 + shard.header_len + info.data_offsets.1;
        let bytes = &shard.mmap[start..end];
        let n: usize = info.shape.iter().product();
        let bad = |msg: String| LoadError::Tensor {
            path: shard.path.clone(),
            name: name.to_string(),
            msg,
        };
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 if bytes.len() == n * 4 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 if bytes.len() == n * 2 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 if bytes.len() == n * 2 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F32 | Dtype::F16 | Dtype::BF16 => {
                return Err(bad(format!(
                    "{} bytes do not hold {n} elements",
                    bytes.len()
                )))
            }
            other => {
                return Err(bad(format!(
                    "unsupported dtype {other:?} (supported: F32, F16, BF16)"
                )))
            }
        };
        Ok(Some((info.shape.clone(), values)))
    }
}
