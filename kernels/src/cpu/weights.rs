//! Weight matrices as they are stored: rows of blocks in any [`BlockFormat`], borrowed from a
//! memory map or owned, possibly assembled from several tensors (q/k/v stacked) with a row
//! order of their own (GGUF's permuted Q/K rows).

use std::sync::Arc;

use half::{bf16, f16};

use super::quant::{self, BlockFormat};

/// Bytes shared with their owner (a memory-mapped file, or a buffer of converted weights):
/// cloning is a reference count, so a tensor used twice (tied embeddings) exists once.
#[derive(Clone)]
pub struct SharedBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len)
    }
}

impl SharedBytes {
    /// The bytes `range` of `owner`, or `None` when the range lies outside it.
    pub fn new(
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        range: std::ops::Range<usize>,
    ) -> Option<SharedBytes> {
        let total = (*owner).as_ref().len();
        if range.start > range.end || range.end > total {
            return None;
        }
        Some(SharedBytes {
            owner,
            start: range.start,
            len: range.end - range.start,
        })
    }

    /// Owned bytes.
    pub fn from_vec(v: Vec<u8>) -> SharedBytes {
        let len = v.len();
        SharedBytes {
            owner: Arc::new(v),
            start: 0,
            len,
        }
    }

    /// Owned f32 values (kept 4-byte aligned, so f32 rows can be read in place).
    pub fn from_f32(v: Vec<f32>) -> SharedBytes {
        let len = v.len() * 4;
        SharedBytes {
            owner: Arc::new(F32Buffer(v)),
            start: 0,
            len,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

struct F32Buffer(Vec<f32>);

impl AsRef<[u8]> for F32Buffer {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: any f32 bit pattern is valid as bytes; the length is exact.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr() as *const u8, self.0.len() * 4) }
    }
}

/// Shape error when a matrix is built from data of the wrong size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("weight matrix {rows}x{cols} needs {} elements, got {got}", rows * cols)]
    Elements {
        rows: usize,
        cols: usize,
        got: usize,
    },
    #[error("{format} rows of {cols} elements: {cols} is not a multiple of the block size {}", .format.block_elems())]
    PartialBlock { format: BlockFormat, cols: usize },
    #[error("{format} tensor of {rows}x{cols} needs {expected} bytes, got {got}")]
    Bytes {
        format: BlockFormat,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("row order of {got} entries for {rows} rows is not a permutation")]
    RowOrder { rows: usize, got: usize },
}

/// Consecutive rows of a matrix stored in one format.
#[derive(Debug, Clone)]
pub struct RowPart {
    format: BlockFormat,
    rows: usize,
    row_bytes: usize,
    bytes: SharedBytes,
    /// Output row `i` of this part is stored row `order[i]`.
    order: Option<Arc<[u32]>>,
}

impl RowPart {
    /// `rows × cols` elements of `format` in `bytes`; `order`, when given, must be a permutation
    /// of `0..rows` (output row i reads stored row `order[i]`).
    pub fn new(
        format: BlockFormat,
        rows: usize,
        cols: usize,
        bytes: SharedBytes,
        order: Option<Vec<u32>>,
    ) -> Result<RowPart, ShapeError> {
        let row_bytes = format
            .row_bytes(cols)
            .ok_or(ShapeError::PartialBlock { format, cols })?;
        let expected = row_bytes.checked_mul(rows).ok_or(ShapeError::Bytes {
            format,
            rows,
            cols,
            expected: usize::MAX,
            got: bytes.len(),
        })?;
        if bytes.len() != expected {
            return Err(ShapeError::Bytes {
                format,
                rows,
                cols,
                expected,
                got: bytes.len(),
            });
        }
        if let Some(o) = &order {
            let mut seen = vec![false; rows];
            let ok = o.len() == rows
                && o.iter().all(|&r| {
                    (r as usize) < rows && !std::mem::replace(&mut seen[r as usize], true)
                });
            if !ok {
                return Err(ShapeError::RowOrder { rows, got: o.len() });
            }
        }
        Ok(RowPart {
            format,
            rows,
            row_bytes,
            bytes,
            order: order.map(Arc::from),
        })
    }

    pub fn format(&self) -> BlockFormat {
        self.format
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// A row-major `rows × cols` weight matrix; cheap to clone (tied embeddings share one).
#[derive(Debug, Clone)]
pub struct WeightMatrix {
    rows: usize,
    cols: usize,
    parts: Arc<[RowPart]>,
}

/// The dtype weights are converted to at load (`--dtype`), or kept as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    /// As the file stores them (GGUF block formats, half or float checkpoints).
    AsStored,
    F32,
    F16,
    Bf16,
}

impl WeightMatrix {
    /// A matrix made of `parts` stacked in order, each with `cols` columns.
    pub fn from_parts(cols: usize, parts: Vec<RowPart>) -> Result<WeightMatrix, ShapeError> {
        for p in &parts {
            if p.format.row_bytes(cols) != Some(p.row_bytes) {
                return Err(ShapeError::PartialBlock {
                    format: p.format,
                    cols,
                });
            }
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        Ok(WeightMatrix {
            rows,
            cols,
            parts: parts.into(),
        })
    }

    /// An f32 matrix converted to `dtype` (`AsStored` keeps f32).
    pub fn from_f32(
        rows: usize,
        cols: usize,
        values: Vec<f32>,
        dtype: WeightDtype,
    ) -> Result<WeightMatrix, ShapeError> {
        if values.len() != rows * cols {
            return Err(ShapeError::Elements {
                rows,
                cols,
                got: values.len(),
            });
        }
        let (format, bytes) = match dtype {
            WeightDtype::F32 | WeightDtype::AsStored => {
                (BlockFormat::F32, SharedBytes::from_f32(values))
            }
            WeightDtype::F16 => (
                BlockFormat::F16,
                SharedBytes::from_vec(
                    values
                        .iter()
                        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
            ),
            WeightDtype::Bf16 => (
                BlockFormat::BF16,
                SharedBytes::from_vec(
                    values
                        .iter()
                        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
            ),
        };
        let part = RowPart::new(format, rows, cols, bytes, None)?;
        WeightMatrix::from_parts(cols, vec![part])
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn parts(&self) -> &[RowPart] {
        &self.parts
    }

    /// Bytes of weight storage.
    pub fn size_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.bytes.len()).sum()
    }

    /// Formats used by this matrix (for load reports).
    pub fn formats(&self) -> Vec<BlockFormat> {
        let mut f: Vec<BlockFormat> = self.parts.iter().map(|p| p.format).collect();
        f.dedup();
        f
    }

    /// The stored bytes and format of output row `r` (`r < rows`).
    #[inline]
    pub(crate) fn row_bytes_of<'a>(
        &self,
        slices: &[&'a [u8]],
        r: usize,
    ) -> (BlockFormat, &'a [u8]) {
        let mut r = r;
        for (p, s) in self.parts.iter().zip(slices) {
            if r < p.rows {
                let stored = match &p.order {
                    Some(o) => o[r] as usize,
                    None => r,
                };
                return (
                    p.format,
                    &s[stored * p.row_bytes..(stored + 1) * p.row_bytes],
                );
            }
            r -= p.rows;
        }
        (BlockFormat::F32, &[])
    }

    /// The byte slices of every part, resolved once per call.
    pub(crate) fn part_slices(&self) -> Vec<&[u8]> {
        self.parts.iter().map(|p| p.bytes.as_slice()).collect()
    }

    /// Copies row `r` into `out` as f32 (embedding lookup). Rows past the end leave `out` as is.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        if r >= self.rows {
            return;
        }
        let slices = self.part_slices();
        let (format, bytes) = self.row_bytes_of(&slices, r);
        quant::decode(super::isa::active(), format, bytes, &mut out[..self.cols]);
    }

    /// The whole matrix as f32, row-major (uploading to another backend, tests).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        if self.cols == 0 {
            return out;
        }
        for (r, row) in out.chunks_mut(self.cols).enumerate() {
            self.row_into(r, row);
        }
        out
    }
}
