//! Counters of the table read path.
//!
//! Ownership: one `Arc<ReadStats>` is shared by every table of a store (the
//! table cache hands it to each table it opens); any task bumps the
//! counters, anyone may read them.
//!
//! Invariants:
//! - Counters only grow; they are updated with `Relaxed` ordering and read
//!   as independent approximations, never as a consistent snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of block reads, cache hits and filter skips.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Data blocks read from a file (block-cache misses, and every data
    /// block read of a table opened without a cache).
    pub block_reads: AtomicU64,
    /// Data block lookups the block cache answered.
    pub block_cache_hits: AtomicU64,
    /// Data block lookups the block cache could not answer.
    pub block_cache_misses: AtomicU64,
    /// Point reads the bloom filter answered "absent" without a block read.
    pub bloom_negatives: AtomicU64,
}

impl ReadStats {
    /// Fresh counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of `counter`.
    pub fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
