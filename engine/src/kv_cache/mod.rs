//! KV memory: the block-structured store the forward pass reads and writes (`store`), the pool
//! that hands out its blocks with reference counts and prefix caching (`block_pool`), and the
//! per-request bookkeeping on top (`manager`).

mod block_pool;
mod manager;
mod prefix_hash;
mod store;

pub use block_pool::{BlockHash, BlockPool};
pub use manager::{KvCacheManager, RequestId};
pub use prefix_hash::{block_hashes, ParsePrefixHashAlgoError, PrefixHashAlgo, ROOT_HASH};
pub use store::KvCache;
