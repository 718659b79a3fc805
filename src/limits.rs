//! Every named maximum in ringdb: the operational limits are here; the
//! bounds that are part of an on-disk format, or private to one module's
//! mechanics, stay beside the code that owns them and are listed here, so
//! this page finds every one.
//!
//! Each limit is asserted (or turned into an [`crate::Error`]) where it is used.
//!
//! Owned elsewhere, one line per family:
//! - `key`: `MAX_SEQNO` (the trailer's 56 bits).
//! - `coding`: `MAX_VARINT64_SIZE_BYTES` (the LEB128 encoding).
//! - `sst` (`sst/mod.rs`, the table format): `MAX_TARGET_BLOCK_SIZE_BYTES`,
//!   `MAX_BLOCK_SIZE_BYTES`, `MAX_META_BLOCK_SIZE_BYTES`,
//!   `MAX_ENCODED_KEY_SIZE_BYTES`, `MAX_BLOOM_BITS_PER_KEY`,
//!   `MAX_BLOOM_PROBES`, `MAX_BLOCK_CACHE_SHARDS`; `sst/format/handle.rs`:
//!   `MAX_HANDLE_SIZE_BYTES`; `sst/table/readahead.rs`: `READAHEAD_WINDOW_BYTES`.
//! - `memtable`: `ARENA_VALUE_MAX_BYTES`, `ARENA_CHUNK_BYTES` (its arena).
//! - `commit::wal_task`: `MAX_DURABLE_WRITE_BYTES`; `commit::hold`:
//!   `HOLD_BYTES_MAX`, `UNPAID_LIMIT` (the hold policy).
//! - `compaction::job`: `YIELD_EVERY_ENTRIES`.
//! - `db::scan`: `FIRST_SCAN_BATCH_ENTRIES`, `MAX_SCAN_BATCH_ENTRIES`,
//!   `MAX_SCAN_BATCH_BYTES`; `io::read_prefix`: `READ_CHUNK_BYTES`.
//! - `inspect`: `MAX_DUMP_FILE_SIZE_BYTES` (the `dump` command).
//! - `io::sim` (tests only): `MAX_SIM_FILE_BYTES`, `MAX_LOGGED_OPS`.
//! - `fuzzing` (fuzz harnesses): `MAX_OPS`, `MAX_BUILT_BLOCK_KEYS`.
//! - the `ringdb` command (`src/bin/ringdb`): `MAX_CONCURRENCY` (`bench.rs`),
//!   `MAX_TRACKED_LATENCY_NS` (`report.rs`).

/// Largest user key, in bytes.
pub const MAX_KEY_SIZE_BYTES: usize = 64 * 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_SIZE_BYTES: usize = 8 * 1024 * 1024;
/// Largest encoded write batch (one WAL record), in bytes.
pub const MAX_BATCH_SIZE_BYTES: usize = 32 * 1024 * 1024;
/// Most entries in one write batch.
pub const MAX_BATCH_ENTRIES: usize = 1 << 20;
/// The WAL task stops adding batches to a group once it holds this many bytes.
pub const MAX_GROUP_SIZE_BYTES: usize = 4 * 1024 * 1024;
/// Writes nobody waits for (`SyncMode::Buffered` and `Interval`) are held in
/// the commit queue until this many bytes collect or
/// [`crate::Options::wal_buffer_delay`] passes, then written with one write.
pub const WAL_BUFFER_BYTES: usize = 64 * 1024;
/// Writers await (backpressure) while the commit queue holds more than this
/// many bytes that the WAL task has not yet taken.
pub const MAX_COMMIT_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Bounded channel into each io_uring thread: requests waiting to be submitted.
pub const MAX_RING_QUEUE_REQUESTS: usize = 4096;
/// Submission queue entries of each io_uring instance.
pub const RING_ENTRIES: u32 = 256;
/// Submission queue entries of each store's foreground ring.
pub const FOREGROUND_RING_ENTRIES: u32 = 512;
/// Operations in flight at once on a store's foreground ring; more wait,
/// asynchronously, for one to complete. Below the completion queue's size
/// (twice the entries), so completions never overflow it.
pub const MAX_FOREGROUND_RING_OPS: usize = 512;
/// Threads of the `threads` I/O backend's pool.
pub const IO_POOL_THREADS: usize = 4;
/// Bytes written per zero-filling write when a WAL segment is preallocated.
pub const PREALLOCATE_CHUNK_BYTES: usize = 1024 * 1024;
/// Alignment of offsets, lengths and memory for writes through an
/// [`crate::io::OpenMode::ReadWriteDirect`] handle (`O_DIRECT`): a page, which is
/// a multiple of every disk's logical block size we expect (512 or 4,096).
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;
/// Largest single read of a file read whole (a WAL segment at recovery, a
/// manifest, a file a checkpoint copies): [`crate::io::read_prefix`].
pub const READ_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// The WAL task keeps a segment zero-filled (and synced) this far past its
/// last record, so that most fdatasyncs overwrite allocated blocks and need
/// not journal a size change.
pub const WAL_PREFILL_WINDOW_BYTES: u64 = 4 * 1024 * 1024;
/// A running store rolls to a new manifest once its manifest passes this
/// size.
pub const MAX_MANIFEST_SIZE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest `CURRENT` file accepted (a manifest name and a newline).
pub const MAX_CURRENT_SIZE_BYTES: usize = 64;
/// Most names tried in the `lost/` folder for one file before open gives up.
pub const MAX_LOST_NAME_ATTEMPTS: u32 = 1000;
/// Most bytes a scan batch reserves for its keys up front; longer keys
/// grow the buffer as usual.
pub const MAX_KEYS_RESERVED_BYTES: usize = 64 * 1024;
/// The smallest unit a disk writes atomically (a logical sector): a torn
/// write leaves whole pieces of this size, aligned in the file, unwritten.
pub const TORN_WRITE_SECTOR_BYTES: usize = 512;
