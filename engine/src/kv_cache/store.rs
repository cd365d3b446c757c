//! The block-structured KV store the forward pass reads and writes. Which blocks belong to
//! which sequence is decided elsewhere (the block pool and scheduler); this type only holds
//! the memory, one K and one V buffer per layer.

use kernels::cpu::PagedKvLayout;

pub struct KvCache {
    layout: PagedKvLayout,
    num_blocks: usize,
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// The cache in GPU memory when the model runs there (the host layers are then empty).
    #[cfg(feature = "cuda")]
    gpu: Option<crate::model::cuda::GpuKvCache>,
}

impl KvCache {
    pub fn new(num_layers: usize, num_blocks: usize, layout: PagedKvLayout) -> Self {
        let len = num_blocks * layout.block_len();
        let layers = (0..num_layers)
            .map(|_| (vec![0.0; len], vec![0.0; len]))
            .collect();
        KvCache {
            layout,
            num_blocks,
            layers,
            #[cfg(feature = "cuda")]
            gpu: None,
        }
    }

    /// A cache whose memory is on the GPU (`GpuModel::alloc_kv`); no host memory is used.
    #[cfg(feature = "cuda")]
    pub fn on_gpu(
        num_layers: usize,
        num_blocks: usize,
        layout: PagedKvLayout,
        gpu: crate::model::cuda::GpuKvCache,
    ) -> Self {
        let layers = (0..num_layers).map(|_| (Vec::new(), Vec::new())).collect();
        KvCache {
            layout,
            num_blocks,
            layers,
            gpu: Some(gpu),
        }
    }

    #[cfg(feature = "cuda")]
    pub(crate) fn gpu_mut(&mut self) -> Option<&mut crate::model::cuda::GpuKvCache> {
        self.gpu.as_mut()
    }

    /// Bytes of K and V for one block across all layers (f32 elements).
    pub fn bytes_per_block(num_layers: usize, layout: PagedKvLayout) -> usize {
        2 * num_layers * layout.block_len() * std::mem::size_of::<f32>()
    }

    pub fn layout(&self) -> PagedKvLayout {
        self.layout
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn layer_mut(&mut self, layer: usize) -> (&mut [f32], &mut [f32]) {
        let (k, v) = &mut self.layers[layer];
        (k, v)
    }
}
