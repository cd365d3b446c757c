//! One GPU: its context, stream, cuBLAS handle and loaded kernels.

use std::path::Path;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    result, CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits,
};

use super::error::CudaError;
use super::nvrtc::Arch;
use super::registry::Kernels;

/// Whether libcuda can be loaded. cudarc panics on first use of a library it cannot find, so
/// every entry point checks this first.
pub fn driver_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Makes the device's default stream-ordered memory pool (where cudarc's allocations come
/// from) keep freed memory instead of returning it to the driver at every synchronisation: with
/// the default release threshold of 0, each step's ~25 workspace buffers would be mapped anew
/// every step. The KV cache is sized from the free memory measured after this, so memory the
/// pool keeps is already accounted for by the activation profile.
fn keep_pool_memory(ctx: &CudaContext) -> Result<(), CudaError> {
    use cudarc::driver::sys::{CUdevice_attribute, CUmemPool_attribute};
    let pools = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED)
        .map_err(CudaError::driver("reading the memory-pool support"))?;
    if pools == 0 {
        // cudarc falls back to synchronous cuMemAlloc: there is no pool to configure.
        return Ok(());
    }
    let mut threshold = u64::MAX;
    // SAFETY: the device comes from a live context; the release threshold attribute is a u64,
    // which `threshold` is, and the driver only reads it during the call.
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device())
            .map_err(CudaError::driver("getting the default memory pool"))?;
        result::mem_pool::set_attribute(
            pool,
            CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .map_err(CudaError::driver(
            "setting the memory pool's release threshold",
        ))
    }
}

/// What `vllmd` logs at start-up.
#[derive(Debug, Clone)]
pub struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub arch: Arch,
    pub total_bytes: usize,
    pub free_bytes: usize,
    /// Streaming multiprocessors: how many blocks a launch needs to fill the GPU.
    pub sm_count: usize,
    pub kernels_compile_ms: f64,
    pub kernels_from_cache: usize,
    pub kernel_warnings: Vec<String>,
}

pub struct GpuDevice {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub blas: CudaBlas,
    pub kernels: Kernels,
    pub info: GpuInfo,
    /// cuBLAS's workspace, ours so that it exists (and is counted as used memory) before the
    /// KV cache is sized, instead of being taken by cuBLAS at its first GEMM.
    _blas_workspace: CudaSlice<u8>,
}

/// The cuBLAS workspace: 32 MiB, what PyTorch gives cuBLAS on Hopper (its default
/// CUBLAS_WORKSPACE_CONFIG), enough for the split-K GEMM algorithms of every architecture.
const BLAS_WORKSPACE_BYTES: usize = 32 << 20;

impl GpuDevice {
    /// Opens device `ordinal`, compiling the kernels (or reading them from `kernel_cache`).
    pub fn open(ordinal: usize, kernel_cache: Option<&Path>) -> Result<GpuDevice, CudaError> {
        if !driver_available() {
            return Err(CudaError::NoDriver);
        }
        result::init().map_err(CudaError::driver("cuInit"))?;
        let count = result::device::get_count().map_err(CudaError::driver("counting devices"))?;
        if ordinal >= count.max(0) as usize {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        // SAFETY: only tries to dlopen the candidate library names (cudarc panics on first use
        // of a library it cannot load, so this is checked before the handle is created).
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(CudaError::NoCublas);
        }
        let ctx = CudaContext::new(ordinal).map_err(CudaError::driver("creating the context"))?;
        // One stream does all the work, in order: cudarc's per-buffer event tracking (for
        // multi-stream safety) would only add an event record per launch.
        // SAFETY: called before any buffer exists, and the backend never uses a second stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        keep_pool_memory(&ctx)?;
        let blas = CudaBlas::new(stream.clone())
            .map_err(CudaError::cublas("creating the cuBLAS handle"))?;
        // SAFETY: cuBLAS only uses the workspace as scratch inside its own calls.
        let blas_workspace = unsafe { stream.alloc::<u8>(BLAS_WORKSPACE_BYTES) }
            .map_err(CudaError::driver("allocating the cuBLAS workspace"))?;
        // SAFETY: the handle is live and the buffer holds BLAS_WORKSPACE_BYTES bytes; it is a
        // field declared after `blas`, so it is freed after the handle is destroyed. Set after
        // the handle's stream: cublasSetStream resets the workspace.
        unsafe {
            let (ptr, _guard) = blas_workspace.device_ptr(&stream);
            cudarc::cublas::sys::cublasSetWorkspace_v2(
                *blas.handle(),
                ptr as *mut std::ffi::c_void,
                BLAS_WORKSPACE_BYTES,
            )
            .result()
        }
        .map_err(CudaError::cublas("setting the cuBLAS workspace"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(CudaError::driver("reading the compute capability"))?;
        let arch = Arch {
            major: major as u32,
            minor: minor as u32,
        };
        let kernels = Kernels::load(&ctx, arch, kernel_cache)?;
        let name = ctx
            .name()
            .map_err(CudaError::driver("reading the device name"))?;
        let (free_bytes, total_bytes) = ctx
            .mem_get_info()
            .map_err(CudaError::driver("reading memory info"))?;
        let sm_count = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(CudaError::driver("reading the SM count"))?;
        let info = GpuInfo {
            ordinal,
            name,
            arch,
            total_bytes,
            free_bytes,
            sm_count: sm_count.max(1) as usize,
            kernels_compile_ms: kernels.compile_ms,
            kernels_from_cache: kernels.from_cache,
            kernel_warnings: kernels.warnings.clone(),
        };
        Ok(GpuDevice {
            ctx,
            stream,
            blas,
            kernels,
            info,
            _blas_workspace: blas_workspace,
        })
    }

    /// (free, total) device memory in bytes, now.
    pub fn mem_info(&self) -> Result<(usize, usize), CudaError> {
        self.ctx
            .mem_get_info()
            .map_err(CudaError::driver("reading memory info"))
    }

    /// A buffer whose contents are undefined until written. For buffers a kernel or GEMM fully
    /// overwrites before anything reads them: zeroing those would be a wasted memset per step.
    ///
    /// # Safety
    /// Every element must be written before it is read.
    pub unsafe fn alloc_uninit<T: DeviceRepr>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        // SAFETY: the caller writes every element before reading it.
        unsafe { self.stream.alloc(len.max(1)) }
            .map_err(CudaError::driver("allocating device memory"))
    }

    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        self.stream
            .alloc_zeros(len.max(1))
            .map_err(CudaError::driver("allocating device memory"))
    }

    pub fn upload<T: DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>, CudaError> {
        if data.is_empty() {
            // SAFETY: one uninitialised element that nothing reads; keeps pointers non-null.
            return unsafe { self.stream.alloc(1) }
                .map_err(CudaError::driver("allocating device memory"));
        }
        self.stream
            .clone_htod(data)
            .map_err(CudaError::driver("copying to the device"))
    }

    /// Copies `data` into the start of an existing buffer (which must be at least as long).
    pub fn upload_into<T: DeviceRepr>(
        &self,
        data: &[T],
        dst: &mut CudaSlice<T>,
    ) -> Result<(), CudaError> {
        if data.is_empty() {
            return Ok(());
        }
        if data.len() > dst.len() {
            return Err(CudaError::Invalid {
                what: "upload",
                detail: format!("{} elements into a buffer of {}", data.len(), dst.len()),
            });
        }
        let mut view = dst.slice_mut(..data.len());
        self.stream
            .memcpy_htod(data, &mut view)
            .map_err(CudaError::driver("copying to the device"))
    }

    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &CudaSlice<T>,
        len: usize,
    ) -> Result<Vec<T>, CudaError> {
        let mut out = vec![T::default(); len];
        if len == 0 {
            return Ok(out);
        }
        let view = src.slice(..len);
        self.stream
            .memcpy_dtoh(&view, &mut out)
            .map_err(CudaError::driver("copying to the host"))?;
        // The copy is queued on the stream; the host buffer is only valid once it ran.
        self.synchronize()?;
        Ok(out)
    }

    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream
            .synchronize()
            .map_err(CudaError::driver("synchronizing the stream"))
    }

    /// The raw device address of a buffer, for kernel arguments. Safe to take because event
    /// tracking is off (no sync guard to keep alive) and the buffer outlives the launches that
    /// use it on the single stream.
    pub fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        let (p, _guard) = s.device_ptr(&self.stream);
        p
    }
}
