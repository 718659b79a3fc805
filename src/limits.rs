//! Every named maximum in ringdb, in one place.
//!
//! Each limit is asserted (or turned into an [`crate::Error`]) where it is used.

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
/// Largest read recovery issues against a WAL segment at once.
pub const WAL_READ_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// The WAL task keeps a segment zero-filled (and synced) this far past its
/// last record, so that most fdatasyncs overwrite allocated blocks and need
/// not journal a size change.
pub const WAL_PREFILL_WINDOW_BYTES: u64 = 4 * 1024 * 1024;
/// The smallest unit a disk writes atomically (a logical sector): a torn
/// write leaves whole pieces of this size, aligned in the file, unwritten.
pub const TORN_WRITE_SECTOR_BYTES: usize = 512;
