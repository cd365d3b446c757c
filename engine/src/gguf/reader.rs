//! Parsing and validating a GGUF file, and the memory-mapped [`GgufFile`] handle.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::dequant::{dequantize_into, DequantError};
use super::types::{GgmlType, MetaValue, TensorInfo};
use super::GgufError;

const MAGIC: [u8; 4] = *b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions; more means a corrupt info.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays are legal, but a crafted file must not recurse the parser off the stack.
const MAX_ARRAY_DEPTH: u32 = 8;
/// Smallest possible encodings, used to reject declared counts the rest of the file can't hold
/// before allocating for them: a tensor info is name length + n_dims + type + offset; a metadata
/// entry is key length + value type + a 1-byte value.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
const MIN_KV_BYTES: u64 = 8 + 4 + 1;

/// A memory-mapped, fully validated GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    version: u32,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    // Derived Debug would print the whole tokenizer vocabulary.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_entries", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

impl GgufFile {
    /// Maps `path` and validates its whole structure, so no later accessor can read out of bounds.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // Opening a directory succeeds on Unix; mapping it would fail with a baffling errno.
        if !file.metadata().map_err(io)?.is_file() {
            let msg = "not a regular file";
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                msg,
            )));
        }
        // SAFETY: the map is read-only and lives as long as `self`. As with any mmap, another
        // process truncating the file while we hold it would fault; model files are not
        // rewritten in place, and copying 500 MB into memory instead would double load time.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let parsed = parse(path, &mmap)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index: parsed.index,
            data_offset: parsed.data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Absolute file offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// `None` if the key is missing or is not an array made only of strings.
    pub fn get_str_array(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key)?
            .as_array()?
            .iter()
            .map(MetaValue::as_str)
            .collect()
    }

    /// `general.architecture` (`"llama"`, `"qwen2"`, ...).
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The raw (possibly quantized) bytes of a tensor. Empty for an info that doesn't describe a
    /// range of this file (one made by hand); infos from [`GgufFile::tensors`] were validated.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        self.tensor_range(info)
            .and_then(|r| self.mmap.get(r))
            .unwrap_or(&[])
    }

    /// The whole mapped file (tensor data is shared from here without copies).
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }

    /// Where a tensor's bytes lie in [`GgufFile::bytes`] (`None` for an info not from this file).
    pub fn tensor_range(&self, info: &TensorInfo) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(self.data_offset.checked_add(info.offset)?).ok()?;
        let end = start.checked_add(info.n_bytes())?;
        (end <= self.mmap.len()).then_some(start..end)
    }

    /// The whole tensor as `f32`, row-major (ggml's layout already is: `dims[0]` is the
    /// contiguous row). Runs on rayon's pool.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let info = self.tensor(name).ok_or_else(|| GgufError::NoSuchTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
        })?;
        let mut out = vec![0f32; info.n_elements()];
        dequantize_into(info.ggml_type, self.tensor_bytes(info), &mut out).map_err(
            |e| match e {
                DequantError::Unsupported(ty) => GgufError::UnsupportedType {
                    path: self.path.clone(),
                    tensor: name.to_string(),
                    type_id: ty.id(),
                },
                DequantError::Length { .. } => GgufError::Invalid {
                    path: self.path.clone(),
                    msg: format!("tensor `{name}`: {e}"),
                },
            },
        )?;
        Ok(out)
    }
}

/// What [`parse`] extracts; the caller keeps the bytes it came from.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    /// Tensor name to position in `tensors`.
    pub index: HashMap<String, usize>,
    pub data_offset: u64,
}

/// Parses and validates a whole GGUF image. `path` is only used in errors.
pub(crate) fn parse(path: &Path, buf: &[u8]) -> Result<Parsed, GgufError> {
    let mut cur = Cursor { buf, pos: 0, path };
    let invalid = |msg: String| GgufError::Invalid {
        path: path.to_path_buf(),
        msg,
    };

    let magic = cur.array::<4>(|| "magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let version = cur.u32(|| "version".into())?;
    if version != 2 && version != 3 {
        if matches!(version.swap_bytes(), 2 | 3) {
            return Err(invalid(format!(
                "big-endian GGUF (version {}) is not supported",
                version.swap_bytes()
            )));
        }
        return Err(GgufError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let tensor_count = cur.u64(|| "tensor count".into())?;
    let kv_count = cur.u64(|| "metadata entry count".into())?;
    cur.expect_room(tensor_count, MIN_TENSOR_INFO_BYTES, || {
        format!("{tensor_count} tensor infos")
    })?;
    cur.expect_room(kv_count, MIN_KV_BYTES, || {
        format!("{kv_count} metadata entries")
    })?;

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = cur.string(|| format!("key of metadata entry {i}"))?;
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| invalid(format!("metadata key {i} is not valid UTF-8")))?;
        let ty = cur.u32(|| format!("value type of metadata `{key}`"))?;
        let value = read_value(&mut cur, ty, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(invalid(format!("duplicate metadata key `{key}`")));
        }
    }

    let mut tensors = Vec::with_capacity(usize::try_from(tensor_count).unwrap_or(0));
    for i in 0..tensor_count {
        tensors.push(read_tensor_info(&mut cur, i)?);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(invalid(format!(
                    "general.alignment {v:?} is not a power of two"
                )))
            }
        },
    };
    let infos_end = cur.pos as u64;
    let data_offset = infos_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| invalid(format!("alignment {alignment} overflows")))?;

    let mut index = HashMap::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if index.insert(t.name.clone(), i).is_some() {
            return Err(invalid(format!("duplicate tensor name `{}`", t.name)));
        }
        check_tensor(path, buf.len() as u64, data_offset, alignment, t)?;
    }
    Ok(Parsed {
        version,
        metadata,
        tensors,
        index,
        data_offset,
    })
}

fn read_tensor_info(cur: &mut Cursor<'_>, i: u64) -> Result<TensorInfo, GgufError> {
    let path = cur.path;
    let invalid = |msg: String| GgufError::Invalid {
        path: path.to_path_buf(),
        msg,
    };
    let name = cur.string(|| format!("name of tensor info {i}"))?;
    let name = String::from_utf8(name.to_vec())
        .map_err(|_| invalid(format!("name of tensor {i} is not valid UTF-8")))?;
    let n_dims = cur.u32(|| format!("n_dims of tensor `{name}`"))?;
    if n_dims > MAX_DIMS {
        return Err(invalid(format!(
            "tensor `{name}` has {n_dims} dimensions (ggml allows at most {MAX_DIMS})"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(cur.u64(|| format!("dimension {d} of tensor `{name}`"))?);
    }
    let type_id = cur.u32(|| format!("type of tensor `{name}`"))?;
    let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnsupportedType {
        path: path.to_path_buf(),
        tensor: name.clone(),
        type_id,
    })?;
    let offset = cur.u64(|| format!("data offset of tensor `{name}`"))?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
    })
}

/// Checks one tensor's geometry and that its bytes lie inside the file.
fn check_tensor(
    path: &Path,
    file_len: u64,
    data_offset: u64,
    alignment: u64,
    t: &TensorInfo,
) -> Result<(), GgufError> {
    let invalid = |msg: String| GgufError::Invalid {
        path: path.to_path_buf(),
        msg: format!("tensor `{}`: {msg}", t.name),
    };
    let block = t.ggml_type.block_size() as u64;
    if let Some(&ne0) = t.dims.first() {
        if !ne0.is_multiple_of(block) {
            return Err(invalid(format!(
                "row length {ne0} is not a multiple of the {} block size {block}",
                t.ggml_type
            )));
        }
    }
    // ggml keeps dims as int64_t, and the element count must be addressable here.
    let n_elements = t
        .dims
        .iter()
        .try_fold(1u64, |acc, &d| {
            acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
        })
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| invalid(format!("dimensions {:?} overflow", t.dims)))?;
    let n_bytes = (n_elements / block)
        .checked_mul(t.ggml_type.type_size() as u64)
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| invalid(format!("dimensions {:?} overflow", t.dims)))?;
    if !t.offset.is_multiple_of(alignment) {
        return Err(invalid(format!(
            "data offset {} is not a multiple of the alignment {alignment}",
            t.offset
        )));
    }
    let start = data_offset.checked_add(t.offset);
    let end = start.and_then(|s| s.checked_add(n_bytes));
    match (start, end) {
        (Some(_), Some(end)) if end <= file_len => Ok(()),
        _ => Err(GgufError::Truncated {
            path: path.to_path_buf(),
            what: format!(
                "data of tensor `{}` ({n_bytes} bytes at data offset {}; the file has {file_len} bytes)",
                t.name, t.offset
            ),
            offset: start.unwrap_or(u64::MAX),
        }),
    }
}

fn read_value(
    cur: &mut Cursor<'_>,
    ty: u32,
    key: &str,
    depth: u32,
) -> Result<MetaValue, GgufError> {
    let what = || format!("value of metadata `{key}`");
    Ok(match ty {
        0 => MetaValue::U8(u8::from_le_bytes(cur.array(what)?)),
        1 => MetaValue::I8(i8::from_le_bytes(cur.array(what)?)),
        2 => MetaValue::U16(u16::from_le_bytes(cur.array(what)?)),
        3 => MetaValue::I16(i16::from_le_bytes(cur.array(what)?)),
        4 => MetaValue::U32(u32::from_le_bytes(cur.array(what)?)),
        5 => MetaValue::I32(i32::from_le_bytes(cur.array(what)?)),
        6 => MetaValue::F32(f32::from_le_bytes(cur.array(what)?)),
        7 => MetaValue::Bool(cur.array::<1>(what)?[0] != 0),
        8 => {
            let bytes = cur.string(what)?;
            // Some converters wrote token pieces that are not valid UTF-8; failing the whole
            // model for one odd token would be worse than replacing its bad bytes.
            match std::str::from_utf8(bytes) {
                Ok(s) => MetaValue::String(s.to_owned()),
                Err(_) => {
                    tracing::warn!(path = %cur.path.display(), key, "metadata string is not valid UTF-8; replacing bad bytes");
                    MetaValue::String(String::from_utf8_lossy(bytes).into_owned())
                }
            }
        }
        9 => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::Invalid {
                    path: cur.path.to_path_buf(),
                    msg: format!("metadata `{key}` nests arrays deeper than {MAX_ARRAY_DEPTH}"),
                });
            }
            let elem_ty = cur.u32(|| format!("element type of metadata array `{key}`"))?;
            let count = cur.u64(|| format!("length of metadata array `{key}`"))?;
            let min =
                min_value_bytes(elem_ty).ok_or_else(|| unknown_type(cur.path, key, elem_ty))?;
            cur.expect_room(count, min, || {
                format!("metadata array `{key}` of {count} elements")
            })?;
            let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
            for _ in 0..count {
                items.push(read_value(cur, elem_ty, key, depth + 1)?);
            }
            MetaValue::Array(items)
        }
        10 => MetaValue::U64(u64::from_le_bytes(cur.array(what)?)),
        11 => MetaValue::I64(i64::from_le_bytes(cur.array(what)?)),
        12 => MetaValue::F64(f64::from_le_bytes(cur.array(what)?)),
        other => return Err(unknown_type(cur.path, key, other)),
    })
}

fn unknown_type(path: &Path, key: &str, ty: u32) -> GgufError {
    GgufError::Invalid {
        path: path.to_path_buf(),
        msg: format!("metadata `{key}` has unknown value type {ty}"),
    }
}

/// Fewest bytes one value of metadata type `ty` can take, `None` for unknown types.
fn min_value_bytes(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 4 + 8,
        _ => return None,
    })
}

/// A little-endian reader over the mapped bytes whose every read is bounds-checked into a
/// [`GgufError::Truncated`] that says what was being read and where.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn truncated(&self, what: String) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what,
            offset: self.pos as u64,
        }
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos.min(self.buf.len())) as u64
    }

    /// Rejects `count` items of at least `min_bytes` each that cannot fit in what is left, so a
    /// corrupt count fails here instead of driving a huge allocation.
    fn expect_room(
        &self,
        count: u64,
        min_bytes: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), GgufError> {
        match count.checked_mul(min_bytes) {
            Some(need) if need <= self.remaining() => Ok(()),
            _ => Err(self.truncated(what())),
        }
    }

    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n));
        match end.and_then(|end| self.buf.get(self.pos..end).map(|s| (s, end))) {
            Some((bytes, end)) => {
                self.pos = end;
                Ok(bytes)
            }
            None => Err(self.truncated(what())),
        }
    }

    fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let pos = self.pos;
        match self.buf.get(pos..).and_then(|rest| rest.first_chunk::<N>()) {
            Some(bytes) => {
                self.pos = pos + N;
                Ok(*bytes)
            }
            None => Err(self.truncated(what())),
        }
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 byte length, then the bytes.
    fn string(&mut self, what: impl Fn() -> String) -> Result<&'a [u8], GgufError> {
        let len = self.u64(|| format!("length of {}", what()))?;
        self.take(len, || format!("{} ({len} bytes)", what()))
    }
}

/// The mapped file as bytes, so tensors can be shared out of it (`kernels::cpu::SharedBytes`)
/// for as long as anyone uses them.
impl AsRef<[u8]> for GgufFile {
    fn as_ref(&self) -> &[u8] {
        &self.mmap
    }
}
