//! KV memory: the block-structured store the forward pass reads and writes (`store`), the pool
//! that hands out its blocks with reference counts and prefix caching (`block_pool`), and the
//! per-request bookkeeping on top (`manager`).

mod store;

pub use store::KvCache;
