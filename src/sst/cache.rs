//! The block cache: verified, decompressed, decoded blocks in memory,
//! bounded in bytes.
//!
//! Keyed by `(file_number, block_offset)`; file numbers are never reused,
//! so a cached block can never stand for other bytes. Blocks of deleted
//! tables simply age out.
//!
//! Ownership: one `Arc<BlockCache>` per store, shared by every table; any
//! task may get or insert. Each shard is an [`Lru`] behind its own
//! `std::sync::Mutex`, held only for a map operation (never across an
//! await).
//!
//! Invariants:
//! - `usage_bytes() <= capacity_bytes()`: each shard holds at most its
//!   share, and the shares sum to at most the capacity.
//! - A block is charged its length plus `BLOCK_CACHE_ENTRY_OVERHEAD_BYTES`;
//!   a block charged more than a shard's share is not cached.
//! - Blocks are cached decoded (their restart arrays checked once, on the
//!   read that cached them), so a hit does not re-check them.
//! - Values handed out are `Block` clones: a caller holding one keeps the
//!   block's memory alive after eviction (that memory is not charged).

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::sst::block::Block;
use crate::sst::bloom::fmix64;
use crate::sst::lru::Lru;
use crate::sst::{BLOCK_CACHE_ENTRY_OVERHEAD_BYTES, MAX_BLOCK_CACHE_SHARDS, MIN_BLOCK_CACHE_SHARD_BYTES};

/// `(file_number, block_offset)`.
type BlockKey = (u64, u64);

/// A sharded, bytes-bounded LRU cache of blocks.
///
/// ```
/// use ringdb::sst::BlockCache;
/// use ringdb::sst::block::{Block, BlockBuilder};
///
/// let mut builder = BlockBuilder::new(16);
/// builder.add(b"key\x01\x00\x00\x00\x00\x00\x00\x00", b"value");
/// let block = Block::new_data(bytes::Bytes::copy_from_slice(builder.finish())).unwrap();
/// let cache = BlockCache::new(64 * 1024);
/// cache.insert(7, 4096, block.clone());
/// assert_eq!(cache.get(7, 4096).map(|hit| hit.size_bytes()), Some(block.size_bytes()));
/// assert!(cache.get(7, 0).is_none());
/// assert!(cache.usage_bytes() <= cache.capacity_bytes());
/// ```
#[derive(Debug)]
pub struct BlockCache {
    shards: Box<[Mutex<Lru<BlockKey, Block>>]>,
    capacity_bytes: usize,
}

impl BlockCache {
    /// A cache of at most `capacity_bytes`, split into one shard per
    /// `MIN_BLOCK_CACHE_SHARD_BYTES` (a power of two, 1 to
    /// `MAX_BLOCK_CACHE_SHARDS`).
    pub fn new(capacity_bytes: usize) -> Self {
        let wanted = (capacity_bytes / MIN_BLOCK_CACHE_SHARD_BYTES).clamp(1, MAX_BLOCK_CACHE_SHARDS);
        // Round down to a power of two so a mask picks the shard.
        let shard_count = 1usize << wanted.ilog2();
        let share = capacity_bytes / shard_count;
        let shards = (0..shard_count)
            .map(|_| Mutex::new(Lru::new(share)))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        BlockCache {
            shards,
            capacity_bytes,
        }
    }

    /// The cached block at `block_offset` of table `file_number`.
    pub fn get(&self, file_number: u64, block_offset: u64) -> Option<Block> {
        let key = (file_number, block_offset);
        // NOTE: the block's lines are asked for before the clone touches
        // its shared count, so those misses overlap.
        self.shard(key).get(&key).map(|block| {
            block.prefetch();
            block.clone()
        })
    }

    /// Caches `block` (verified, decompressed and decoded) for
    /// `block_offset` of table `file_number`, evicting least recently used
    /// blocks of its shard as needed.
    pub fn insert(&self, file_number: u64, block_offset: u64, block: Block) {
        let key = (file_number, block_offset);
        let charge = block.size_bytes() + BLOCK_CACHE_ENTRY_OVERHEAD_BYTES;
        let evicted = self.shard(key).insert(key, block, charge);
        // NOTE: evicted blocks are dropped here, after the shard lock is
        // released.
        drop(evicted);
    }

    /// Bytes charged for the cached blocks now.
    pub fn usage_bytes(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).usage()).sum()
    }

    /// The most bytes the cache charges at once.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    /// True if no block is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, (file_number, block_offset): BlockKey) -> MutexGuard<'_, Lru<BlockKey, Block>> {
        let hash = fmix64(file_number.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ block_offset);
        let index = (hash as usize) & (self.shards.len() - 1);
        match self.shards.get(index) {
            Some(shard) => lock(shard),
            None => unreachable!("shard index is masked by the power-of-two shard count"),
        }
    }
}

/// Locks a shard; a panic in another holder cannot leave an `Lru` broken
/// mid-operation in a way that matters for a cache, so poison is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A block of `len` bytes whose entry region is `fill` repeated and
    /// whose restart array is `[0]` (the cache never decodes entries).
    fn block(len: usize, fill: u8) -> Block {
        let mut data = vec![fill; len - 8];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        Block::new(Bytes::from(data)).expect("a restart array of one restart at 0")
    }

    /// The first byte and the length: what tells this file's blocks apart.
    fn identity(block: &Block) -> (u8, usize) {
        let first = block.bytes().first().copied().unwrap_or_default();
        (first, block.size_bytes())
    }

    #[test]
    fn capacity_is_respected_under_many_inserts() {
        for capacity in [
            10_000,
            3 * MIN_BLOCK_CACHE_SHARD_BYTES,
            64 * MIN_BLOCK_CACHE_SHARD_BYTES,
        ] {
            let cache = BlockCache::new(capacity);
            assert_eq!(cache.capacity_bytes(), capacity);
            for i in 0..20_000u64 {
                cache.insert(i % 7, i * 4096, block(1000 + (i % 5000) as usize, i as u8));
                if i % 997 == 0 {
                    assert!(cache.usage_bytes() <= capacity);
                }
            }
            assert!(cache.usage_bytes() <= capacity);
            assert!(!cache.is_empty());
        }
    }

    #[test]
    fn hits_misses_and_lru_order() {
        // 10 KB holds four 2 KB blocks (with overhead) in one shard.
        let cache = BlockCache::new(10_000);
        for offset in 0..4 {
            cache.insert(1, offset, block(2000, offset as u8));
        }
        assert_eq!(cache.len(), 4);
        assert_eq!(identity(&cache.get(1, 0).unwrap()), (0, 2000)); // 1 is now oldest
        assert!(cache.get(2, 0).is_none());
        cache.insert(1, 4, block(2000, 4));
        assert!(
            cache.get(1, 1).is_none(),
            "the least recently used block goes first"
        );
        for offset in [0, 2, 3, 4] {
            assert_eq!(identity(&cache.get(1, offset).unwrap()), (offset as u8, 2000));
        }
        assert_eq!(cache.usage_bytes(), 4 * (2000 + BLOCK_CACHE_ENTRY_OVERHEAD_BYTES));
        // A block larger than the cache is not cached.
        cache.insert(9, 0, block(20_000, 9));
        assert!(cache.get(9, 0).is_none());
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn shards_are_powers_of_two() {
        assert_eq!(BlockCache::new(0).shards.len(), 1);
        assert_eq!(BlockCache::new(3 * MIN_BLOCK_CACHE_SHARD_BYTES).shards.len(), 2);
        assert_eq!(
            BlockCache::new(1000 * MIN_BLOCK_CACHE_SHARD_BYTES).shards.len(),
            MAX_BLOCK_CACHE_SHARDS
        );
    }
}
