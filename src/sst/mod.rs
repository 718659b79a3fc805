//! Sorted string tables: immutable, sorted files of internal keys.
//!
//! An SST is written once, front to back, by a [`TableBuilder`] (a flush or
//! a compaction task owns it), then only read, through a [`Table`] that any
//! number of tasks share as `Arc<Table>`. The layout, byte by byte, is in
//! `docs/format.md` ("SSTable") and opens [`mod@format`]'s encoders:
//!
//! ```text
//! table := data_block{n} filter_block properties_block index_block footer
//! every block is followed by a 5-byte trailer: type:u8 masked_crc32c:u32
//! ```
//!
//! Where things live:
//! - [`encoded_key`]: internal keys as bytes (`user_key ++ trailer:u64 LE`)
//!   and their order.
//! - [`block`]: the prefix-compressed entry block (builder and reader) and
//!   the on-disk block trailer (compression, checksum).
//! - [`bloom`]: the per-table bloom filter over user keys.
//! - [`mod@format`]: block handles, the properties block, the footer.
//! - [`table`]: [`TableBuilder`], [`Table`] (point reads) and [`TableIter`].
//! - [`cache`]: [`BlockCache`], the bytes-bounded, sharded LRU of blocks.
//! - [`table_cache`]: [`TableCache`], the bounded set of open tables.
//! - [`lru`]: the LRU map both caches are built on.
//! - [`stats`]: [`ReadStats`], counters of block reads and filter hits.
//!
//! Invariants:
//! - A table holds at least one entry; its keys are strictly increasing in
//!   internal-key order (user key ascending, seqno descending).
//! - Every byte of a table is covered by a checksum (a block trailer's or
//!   the footer's) that a reader verifies before it interprets the bytes.
//! - Decoding never panics and never allocates a length read from disk
//!   before bounding it by a limit below or by the file size.

pub mod block;
pub mod bloom;
pub mod cache;
pub mod encoded_key;
pub mod format;
pub mod lru;
mod options;
pub mod stats;
pub mod table;
pub mod table_cache;

pub use cache::BlockCache;
pub use format::properties::TableProperties;
pub use stats::ReadStats;
pub use table::builder::{Compression, TableBuilder, TableOptions};
pub use table::iter::TableIter;
pub use table::reader::Table;
pub use table_cache::{PinnedTable, TableCache};

/// Magic number closing every table file (the last 8 bytes of the footer).
pub const TABLE_MAGIC: u64 = 0x7269_6e67_7373_7401; // hex of "ringsst" ++ 0x01
/// Newest version of the table format: version 3 adds the
/// range-tombstone block. A table is written as version 3 only if it holds
/// range tombstones, else as the oldest version that can hold its entries,
/// so builds from before a version can still read what does not need it.
pub const FORMAT_VERSION: u32 = 3;
/// Version 2 adds the entry kinds `Merge` (2) and `PutWithExpiry` (3).
pub const FORMAT_VERSION_2: u32 = 2;
/// The first table format version (kinds `Delete` and `Put` only); read
/// and written by this code.
pub const FORMAT_VERSION_1: u32 = 1;
/// Bytes in the fixed-size footer at the end of every table.
pub const FOOTER_SIZE_BYTES: usize = 64;
/// Bytes in the trailer after every block: type `u8` + masked crc32c `u32`.
pub const BLOCK_TRAILER_SIZE_BYTES: usize = 5;

pub use crate::options::DEFAULT_BLOCK_SIZE_BYTES;
/// Largest accepted [`TableOptions::block_size_bytes`].
pub const MAX_TARGET_BLOCK_SIZE_BYTES: usize = 4 * 1024 * 1024;
/// Largest data block, compressed or not, a builder writes and a reader
/// accepts. A block closes once it reaches the target size, so its largest
/// size is the target plus one maximal entry (key, value and header).
pub const MAX_BLOCK_SIZE_BYTES: usize = 16 * 1024 * 1024;
/// Largest filter, properties or index block, compressed or not. A table
/// that would need a larger one fails to build with [`crate::Error::TooLarge`].
pub const MAX_META_BLOCK_SIZE_BYTES: usize = 256 * 1024 * 1024;
/// Entries between restart points in a data block.
pub const DATA_RESTART_INTERVAL: usize = 16;
/// Entries between restart points in an index block: every entry is a
/// restart, so a seek binary-searches straight to its data block.
pub const INDEX_RESTART_INTERVAL: usize = 1;
/// Largest encoded internal key: a maximal user key and the 8-byte trailer.
pub const MAX_ENCODED_KEY_SIZE_BYTES: usize =
    crate::limits::MAX_KEY_SIZE_BYTES + encoded_key::TRAILER_SIZE_BYTES;

/// Default bloom filter bits per distinct user key (~1% false positives).
pub const DEFAULT_BLOOM_BITS_PER_KEY: u32 = 10;
/// Largest accepted [`TableOptions::bloom_bits_per_key`].
pub const MAX_BLOOM_BITS_PER_KEY: u32 = 32;
/// Most probes per key a filter may ask for (LevelDB's bound too).
pub const MAX_BLOOM_PROBES: u8 = 30;
/// Fewest bits in a non-empty filter, so a table of a few keys is not all
/// false positives.
pub const MIN_BLOOM_BITS: u64 = 64;

/// The builder writes its output in sequential writes of about this size.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Most shards of a [`BlockCache`].
pub const MAX_BLOCK_CACHE_SHARDS: usize = 16;
/// A [`BlockCache`] gets one shard per this many bytes of capacity (up to
/// [`MAX_BLOCK_CACHE_SHARDS`]), so a small cache stays one exact LRU.
pub const MIN_BLOCK_CACHE_SHARD_BYTES: usize = 1024 * 1024;
/// Bytes charged to a [`BlockCache`] per block on top of the block itself
/// (map slot, queue entry, the `Bytes` handle).
pub const BLOCK_CACHE_ENTRY_OVERHEAD_BYTES: usize = 96;
/// Default number of open tables a [`TableCache`] keeps.
pub const DEFAULT_TABLE_CACHE_TABLES: usize = 1000;
