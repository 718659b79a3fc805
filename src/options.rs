//! Options for opening a database and for individual writes.
//!
//! Every field states its default; `Options::default()` is what a user who
//! sets nothing gets.

use std::sync::Arc;
use std::time::Duration;

use crate::compaction_filter::CompactionFilter;
use crate::error::{Error, Result};
use crate::io::Fs;
use crate::io::IoBackend;

/// When a write's future resolves, relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// The default. A write resolves `Ok` only after an fdatasync covering its
    /// WAL record has completed. Concurrent writers share one fdatasync
    /// (group commit).
    Always,
    /// A write resolves as soon as it is in ringdb's commit queue and visible
    /// to reads; the WAL task writes it out within
    /// [`Options::wal_buffer_delay`] (capped at the interval) and syncs at
    /// least once per interval. A crash (even of the process alone) can lose
    /// the writes of the last interval.
    ///
    /// While an earlier `Always` write (the store's mode, or a per-write
    /// [`WriteOptions::sync_mode`]) waits for its sync, the write waits for
    /// that sync too: writes become visible in order, and a durable write
    /// never becomes visible before it is durable.
    Interval(Duration),
    /// A write resolves as soon as it is in ringdb's commit queue; the WAL task
    /// writes it to the OS within [`Options::wal_buffer_delay`] but syncs
    /// only on `Db::sync`, segment rotation and close. A process crash can
    /// lose the writes still queued; a power loss can lose everything since
    /// the last sync. Waits behind an `Always` write as `Interval` does.
    Buffered,
}

impl SyncMode {
    /// True when a write in this mode waits for its covering fdatasync.
    pub fn is_durable(self) -> bool {
        matches!(self, SyncMode::Always)
    }
}

/// Default target size of an (uncompressed) data block.
pub const DEFAULT_BLOCK_SIZE_BYTES: usize = 4 * 1024;

/// How table blocks are compressed (the byte each block's trailer stores:
/// `docs/format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is. The default.
    #[default]
    None = 0,
    /// LZ4 block compression (`lz4_flex`), kept only where it saves at
    /// least 12.5%.
    Lz4 = 1,
}

/// Options for [`crate::Db::open`].
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// The default durability of writes. Default: [`SyncMode::Always`].
    pub sync_mode: SyncMode,
    /// Size a WAL segment is preallocated to (zero-filled, so that an
    /// fdatasync after overwriting it need not journal a size change).
    /// Default: 64 MiB. Minimum: 4 KiB.
    pub wal_segment_size_bytes: u64,
    /// Durable writers from which the WAL treats a group as large: it never
    /// holds a durable write for more writers once the last one covered
    /// this many, and it switches durable writes to `O_DIRECT` only while
    /// at most this many writers wait (and back to the page cache,
    /// `O_DSYNC`, only once more than four times as many do; see
    /// [`Options::wal_direct_writes`]). (The name is from when large groups
    /// also pipelined their writes, which no longer pays:
    /// `docs/decisions/0018-wal-mechanisms-after-the-hop.md`.) Default: 32.
    pub wal_pipeline_min_writers: usize,
    /// With the disk idle, a durable write may wait up to this long (and
    /// never longer than twice the last WAL sync took) for as many writers
    /// as the last sync saw, so that a few writers that put again as soon
    /// as they are acknowledged share one sync instead of two. A single writer
    /// never waits, and loads whose writers do not come back turn the wait
    /// off by themselves (see `docs/decisions/0005-wal-group-hold.md`).
    /// `Duration::ZERO` never waits. Default: 200 µs.
    pub wal_max_group_hold: Duration,
    /// While few durable writers wait, durable WAL writes go through an
    /// `O_DIRECT | O_DSYNC` handle. They switch to it when at most
    /// `wal_pipeline_min_writers` writers wait, and stay on it up to four
    /// times as many, so that a load near one bound does not switch back and
    /// forth. A direct write rewrites whole 4 KiB blocks (the
    /// last, partly filled block again with its new records), and the kernel
    /// sends it to the disk at once instead of through its io_uring worker
    /// thread, which shortens a few writers' wait and costs less CPU (see
    /// `docs/decisions/0003-wal-direct-writes.md` and
    /// `docs/decisions/0025-direct-writes-switch-with-a-gap.md`). Where the filesystem has
    /// no `O_DIRECT`, and with `false`, they go through an `O_DSYNC` handle.
    /// Default: `true`.
    pub wal_direct_writes: bool,
    /// Writes nobody waits for (`SyncMode::Buffered` and `Interval`) stay in
    /// the commit queue up to this long, or until 64 KiB collect or a
    /// durable write or `sync` arrives, and then go to the OS with one
    /// write: one write (and one wake of the WAL task) per put costs more
    /// than the put (see `docs/decisions/0009-wal-buffer-for-unsynced-writes.md`).
    /// A process crash can lose them meanwhile, as the sync modes say.
    /// `Duration::ZERO` writes each as it comes. Default: 1 ms.
    pub wal_buffer_delay: Duration,
    /// Which I/O backend to use. Default: [`IoBackend::Auto`].
    pub io_backend: IoBackend,
    /// Create the directory and an empty store if there is none.
    /// Default: `true`.
    pub create_if_missing: bool,
    /// A filesystem to use instead of the one `io_backend` picks: tests pass
    /// the simulated disk here. Default: `None`.
    pub fs: Option<Arc<dyn Fs>>,
    /// A memtable is frozen and flushed to a table once it holds this many
    /// bytes (keys, values and bookkeeping). Default: 64 MiB. Minimum: 1 KiB.
    pub write_buffer_size_bytes: u64,
    /// Frozen memtables that may wait for their flush; when that many wait
    /// and the memtable is full, writers await. Default: 2. Minimum: 1.
    pub max_immutable_memtables: usize,
    /// Bounds the WAL a reopen after a crash replays (the records of the
    /// memtables not yet flushed). A memtable is frozen and flushed once its
    /// WAL records reach `max_wal_size_bytes / (max_immutable_memtables + 1)`
    /// bytes, full or not, and writers await while that many frozen
    /// memtables wait for their flush; so a reopen replays at most
    /// `max_wal_size_bytes` of records, plus per memtable the batch that
    /// crossed its share, plus one batch per writer already past that wait
    /// when the last share filled. The segment files it reads also hold the
    /// zeros preallocated past each memtable's last record (at most one
    /// `wal_segment_size_bytes` each). `None`: only `write_buffer_size_bytes`
    /// bounds the replay. Default: 512 MiB, as fjall's
    /// `max_journaling_size`, which the default write buffer (three
    /// memtables of 64 MiB) never reaches, so it bounds a store whose
    /// buffers were enlarged without changing one that was not.
    pub max_wal_size_bytes: Option<u64>,
    /// Capacity of the block cache (decompressed, verified blocks).
    /// Default: 64 MiB. 0 disables the cache.
    pub block_cache_size_bytes: usize,
    /// Open tables: up to this many stay open from their first read until
    /// compaction deletes them (as RocksDB's `max_open_files = -1` keeps
    /// every table open), and up to this many more are kept by recent use.
    /// Default: 1,000. Minimum: 1.
    pub table_cache_tables: usize,
    /// Target size of a table's data blocks. Default: 4 KiB.
    pub block_size_bytes: usize,
    /// Bloom filter bits per key (false-positive rate about 1% at 10).
    /// Default: 10. 0 writes no filter.
    pub bloom_bits_per_key: u32,
    /// Block compression. Default: [`Compression::None`] (values are often
    /// already compressed or random; LZ4 is one option away).
    pub compression: Compression,
    /// Level 0 is compacted into the base level (level 1, or with
    /// [`Options::dynamic_level_bytes`] the highest level with a budget)
    /// once it holds this many tables. Default: 4.
    pub l0_compaction_trigger: usize,
    /// Writes are slowed (each awaits about a millisecond) once level 0
    /// holds this many tables. Default: 20.
    pub l0_slowdown_writes_trigger: usize,
    /// Writes await compaction once level 0 holds this many tables.
    /// Default: 36.
    pub l0_stop_writes_trigger: usize,
    /// With static level targets, the byte budget of level 1; level `n`
    /// gets `max_bytes_for_level_base * level_size_multiplier^(n-1)`. With
    /// [`Options::dynamic_level_bytes`], the smallest budget a level above
    /// the last may have: a level whose budget would be smaller stays
    /// empty. Default: 256 MiB.
    pub max_bytes_for_level_base: u64,
    /// Growth factor between levels. Default: 10.
    pub level_size_multiplier: u64,
    /// Dynamic level targets, as RocksDB's
    /// `level_compaction_dynamic_level_bytes` (its default since 8.4): the
    /// last level's budget is its own size, each level above gets a
    /// `level_size_multiplier`-th of the level below, levels whose budget
    /// would fall below `max_bytes_for_level_base` stay empty, and level 0
    /// compacts into the highest level with a budget (a store smaller than
    /// `max_bytes_for_level_base * level_size_multiplier` is level 0 plus
    /// the last level). This keeps every level a multiplier-th of the next,
    /// so stale versions in the upper levels take about 1/(multiplier-1) of
    /// the space at most, whatever the size of the store. `false` gives
    /// LevelDB's static targets. Default: `true`.
    pub dynamic_level_bytes: bool,
    /// Compaction output tables are cut at about this size. Default: 64 MiB.
    pub target_file_size_bytes: u64,
    /// Compaction writes at most this many bytes per second; `None`
    /// (default) is unlimited.
    pub compaction_rate_limit_bytes_per_sec: Option<u64>,
    /// Writes are slowed once compaction is this many bytes behind (bytes
    /// above the levels' budgets). Default: 64 GiB.
    pub soft_pending_compaction_bytes_limit: u64,
    /// Writes await compaction once it is this many bytes behind.
    /// Default: 256 GiB.
    pub hard_pending_compaction_bytes_limit: u64,

    // Merges, TTL and the clock (see `merge.rs`, `ttl.rs`, `clock.rs`).
    /// Folds merge operands (`Db::merge`) onto values when they are read
    /// and compacted. A store that holds merge operands must be opened with
    /// one (the same one): reading an operand without it is
    /// [`crate::Error::MergeFailed`]. Default: `None`.
    pub merge_operator: Option<Arc<dyn crate::merge::MergeOperator>>,
    /// Time to live of every put: a put expires this long after it was
    /// written, on [`Options::clock`] (a `WriteOptions::ttl` overrides it).
    /// An expired value reads as deleted, and compaction drops it. Changing
    /// it at a reopen affects later writes only. Default: `None` (values do
    /// not expire).
    pub ttl: Option<Duration>,
    /// The clock TTL expiry is judged by. Default: the system clock.
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Keeps, drops or rewrites values as compaction rewrites them (see
    /// [`crate::CompactionFilter`] for which values it sees). Default:
    /// `None`.
    pub compaction_filter: Option<Arc<dyn CompactionFilter>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_mode: SyncMode::Always,
            wal_segment_size_bytes: 64 * 1024 * 1024,
            wal_pipeline_min_writers: 32,
            wal_max_group_hold: Duration::from_micros(200),
            wal_direct_writes: true,
            wal_buffer_delay: Duration::from_millis(1),
            io_backend: IoBackend::Auto,
            create_if_missing: true,
            fs: None,
            write_buffer_size_bytes: 64 * 1024 * 1024,
            max_immutable_memtables: 2,
            max_wal_size_bytes: Some(512 * 1024 * 1024),
            block_cache_size_bytes: 64 * 1024 * 1024,
            table_cache_tables: 1000,
            block_size_bytes: DEFAULT_BLOCK_SIZE_BYTES,
            bloom_bits_per_key: 10,
            compression: Compression::None,
            l0_compaction_trigger: 4,
            l0_slowdown_writes_trigger: 20,
            l0_stop_writes_trigger: 36,
            max_bytes_for_level_base: 256 * 1024 * 1024,
            level_size_multiplier: 10,
            dynamic_level_bytes: true,
            target_file_size_bytes: 64 * 1024 * 1024,
            compaction_rate_limit_bytes_per_sec: None,
            soft_pending_compaction_bytes_limit: 64 << 30,
            hard_pending_compaction_bytes_limit: 256 << 30,
            merge_operator: None,
            ttl: None,
            clock: crate::clock::system(),
            compaction_filter: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("sync_mode", &self.sync_mode)
            .field("wal_segment_size_bytes", &self.wal_segment_size_bytes)
            .field("wal_pipeline_min_writers", &self.wal_pipeline_min_writers)
            .field("wal_max_group_hold", &self.wal_max_group_hold)
            .field("wal_direct_writes", &self.wal_direct_writes)
            .field("wal_buffer_delay", &self.wal_buffer_delay)
            .field("io_backend", &self.io_backend)
            .field("create_if_missing", &self.create_if_missing)
            .field("fs", &self.fs.as_ref().map(|fs| fs.name()))
            .field("write_buffer_size_bytes", &self.write_buffer_size_bytes)
            .field("max_immutable_memtables", &self.max_immutable_memtables)
            .field("max_wal_size_bytes", &self.max_wal_size_bytes)
            .field("block_cache_size_bytes", &self.block_cache_size_bytes)
            .field("table_cache_tables", &self.table_cache_tables)
            .field("block_size_bytes", &self.block_size_bytes)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("compression", &self.compression)
            .field("l0_compaction_trigger", &self.l0_compaction_trigger)
            .field("l0_slowdown_writes_trigger", &self.l0_slowdown_writes_trigger)
            .field("l0_stop_writes_trigger", &self.l0_stop_writes_trigger)
            .field("max_bytes_for_level_base", &self.max_bytes_for_level_base)
            .field("level_size_multiplier", &self.level_size_multiplier)
            .field("dynamic_level_bytes", &self.dynamic_level_bytes)
            .field("target_file_size_bytes", &self.target_file_size_bytes)
            .field(
                "compaction_rate_limit_bytes_per_sec",
                &self.compaction_rate_limit_bytes_per_sec,
            )
            .field(
                "soft_pending_compaction_bytes_limit",
                &self.soft_pending_compaction_bytes_limit,
            )
            .field(
                "hard_pending_compaction_bytes_limit",
                &self.hard_pending_compaction_bytes_limit,
            )
            .field("merge_operator", &self.merge_operator)
            .field("ttl", &self.ttl)
            .field("clock", &self.clock)
            .field("compaction_filter", &self.compaction_filter)
            .finish()
    }
}

impl Options {
    /// Sets [`Options::sync_mode`].
    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// Sets [`Options::wal_pipeline_min_writers`].
    pub fn wal_pipeline_min_writers(mut self, writers: usize) -> Self {
        self.wal_pipeline_min_writers = writers;
        self
    }

    /// Sets [`Options::wal_max_group_hold`].
    pub fn wal_max_group_hold(mut self, hold: Duration) -> Self {
        self.wal_max_group_hold = hold;
        self
    }

    /// Sets [`Options::wal_direct_writes`].
    pub fn wal_direct_writes(mut self, direct: bool) -> Self {
        self.wal_direct_writes = direct;
        self
    }

    /// Sets [`Options::wal_buffer_delay`].
    pub fn wal_buffer_delay(mut self, delay: Duration) -> Self {
        self.wal_buffer_delay = delay;
        self
    }

    /// Sets [`Options::wal_segment_size_bytes`].
    pub fn wal_segment_size_bytes(mut self, size_bytes: u64) -> Self {
        self.wal_segment_size_bytes = size_bytes;
        self
    }

    /// Sets [`Options::io_backend`].
    pub fn io_backend(mut self, backend: IoBackend) -> Self {
        self.io_backend = backend;
        self
    }

    /// Sets [`Options::fs`].
    pub fn fs(mut self, fs: Arc<dyn Fs>) -> Self {
        self.fs = Some(fs);
        self
    }

    /// Sets [`Options::create_if_missing`].
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Sets [`Options::write_buffer_size_bytes`].
    pub fn write_buffer_size_bytes(mut self, size_bytes: u64) -> Self {
        self.write_buffer_size_bytes = size_bytes;
        self
    }

    /// Sets [`Options::max_immutable_memtables`].
    pub fn max_immutable_memtables(mut self, count: usize) -> Self {
        self.max_immutable_memtables = count;
        self
    }

    /// Sets [`Options::max_wal_size_bytes`] (`None`: no bound beyond the
    /// write buffers).
    pub fn max_wal_size_bytes(mut self, size_bytes: Option<u64>) -> Self {
        self.max_wal_size_bytes = size_bytes;
        self
    }

    /// Sets [`Options::block_cache_size_bytes`].
    pub fn block_cache_size_bytes(mut self, size_bytes: usize) -> Self {
        self.block_cache_size_bytes = size_bytes;
        self
    }

    /// Sets [`Options::compression`].
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`Options::bloom_bits_per_key`].
    pub fn bloom_bits_per_key(mut self, bits: u32) -> Self {
        self.bloom_bits_per_key = bits;
        self
    }

    /// Sets [`Options::target_file_size_bytes`].
    pub fn target_file_size_bytes(mut self, size_bytes: u64) -> Self {
        self.target_file_size_bytes = size_bytes;
        self
    }

    /// Sets [`Options::max_bytes_for_level_base`].
    pub fn max_bytes_for_level_base(mut self, size_bytes: u64) -> Self {
        self.max_bytes_for_level_base = size_bytes;
        self
    }

    /// Sets [`Options::dynamic_level_bytes`].
    pub fn dynamic_level_bytes(mut self, dynamic: bool) -> Self {
        self.dynamic_level_bytes = dynamic;
        self
    }

    /// Sets [`Options::l0_compaction_trigger`].
    pub fn l0_compaction_trigger(mut self, tables: usize) -> Self {
        self.l0_compaction_trigger = tables;
        self
    }

    /// Sets [`Options::compaction_rate_limit_bytes_per_sec`].
    pub fn compaction_rate_limit_bytes_per_sec(mut self, limit: Option<u64>) -> Self {
        self.compaction_rate_limit_bytes_per_sec = limit;
        self
    }

    /// Sets [`Options::table_cache_tables`].
    pub fn table_cache_tables(mut self, tables: usize) -> Self {
        self.table_cache_tables = tables;
        self
    }

    /// Sets [`Options::block_size_bytes`].
    pub fn block_size_bytes(mut self, size_bytes: usize) -> Self {
        self.block_size_bytes = size_bytes;
        self
    }

    /// Sets [`Options::l0_slowdown_writes_trigger`].
    pub fn l0_slowdown_writes_trigger(mut self, tables: usize) -> Self {
        self.l0_slowdown_writes_trigger = tables;
        self
    }

    /// Sets [`Options::l0_stop_writes_trigger`].
    pub fn l0_stop_writes_trigger(mut self, tables: usize) -> Self {
        self.l0_stop_writes_trigger = tables;
        self
    }

    /// Sets [`Options::level_size_multiplier`].
    pub fn level_size_multiplier(mut self, multiplier: u64) -> Self {
        self.level_size_multiplier = multiplier;
        self
    }

    /// Sets [`Options::soft_pending_compaction_bytes_limit`].
    pub fn soft_pending_compaction_bytes_limit(mut self, size_bytes: u64) -> Self {
        self.soft_pending_compaction_bytes_limit = size_bytes;
        self
    }

    /// Sets [`Options::hard_pending_compaction_bytes_limit`].
    pub fn hard_pending_compaction_bytes_limit(mut self, size_bytes: u64) -> Self {
        self.hard_pending_compaction_bytes_limit = size_bytes;
        self
    }

    /// Checks the rules between fields that no consumer's view checks
    /// (the table builder checks its own, see `TableOptions::validate`).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.write_buffer_size_bytes < 1024 {
            return Err(Error::InvalidOptions(
                "write_buffer_size_bytes must be at least 1024".into(),
            ));
        }
        if self.l0_compaction_trigger == 0
            || self.l0_slowdown_writes_trigger < self.l0_compaction_trigger
            || self.l0_stop_writes_trigger < self.l0_slowdown_writes_trigger
        {
            return Err(Error::InvalidOptions(
                "need 0 < l0_compaction_trigger <= l0_slowdown_writes_trigger <= l0_stop_writes_trigger"
                    .into(),
            ));
        }
        if self.level_size_multiplier < 2
            || self.max_bytes_for_level_base == 0
            || self.target_file_size_bytes == 0
        {
            return Err(Error::InvalidOptions(
                "level_size_multiplier must be at least 2; level and file sizes above 0".into(),
            ));
        }
        if self.max_immutable_memtables == 0 || self.table_cache_tables == 0 {
            return Err(Error::InvalidOptions(
                "max_immutable_memtables and table_cache_tables must be at least 1".into(),
            ));
        }
        if self.wal_segment_size_bytes < 4096 {
            return Err(Error::InvalidOptions(format!(
                "wal_segment_size_bytes must be at least 4096, got {}",
                self.wal_segment_size_bytes
            )));
        }
        if let SyncMode::Interval(d) = self.sync_mode
            && d.is_zero()
        {
            return Err(Error::InvalidOptions(
                "SyncMode::Interval needs a non-zero interval".into(),
            ));
        }
        Ok(())
    }
}

/// Builders for merges, TTL and the clock.
impl Options {
    /// Sets [`Options::merge_operator`].
    pub fn merge_operator(mut self, operator: Arc<dyn crate::merge::MergeOperator>) -> Self {
        self.merge_operator = Some(operator);
        self
    }

    /// Sets [`Options::ttl`].
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`Options::clock`].
    pub fn clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`Options::compaction_filter`].
    pub fn compaction_filter(mut self, filter: Arc<dyn CompactionFilter>) -> Self {
        self.compaction_filter = Some(filter);
        self
    }

    /// What readers need to fold merges and judge expiry.
    pub(crate) fn resolver(&self) -> crate::merge::Resolver {
        crate::merge::Resolver {
            operator: self.merge_operator.clone(),
            clock: Arc::clone(&self.clock),
        }
    }
}

/// Per-write options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Overrides [`Options::sync_mode`] for this write. Default: `None`.
    pub sync_mode: Option<SyncMode>,
    /// Overrides [`Options::ttl`] for the puts of this write: they expire
    /// this long after the write, on the store's clock. Each put then
    /// carries an 8-byte expiry, which counts towards the batch's size
    /// limit. Default: `None` (the store's TTL, if any).
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    /// Write options whose puts expire `ttl` after the write.
    pub fn with_ttl(ttl: Duration) -> Self {
        WriteOptions {
            ttl: Some(ttl),
            ..WriteOptions::default()
        }
    }

    /// Write options that override the store's sync mode.
    pub fn with_sync_mode(mode: SyncMode) -> Self {
        WriteOptions {
            sync_mode: Some(mode),
            ..WriteOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builder_sets_its_field() {
        let o = Options::default()
            .table_cache_tables(7)
            .block_size_bytes(8192)
            .l0_compaction_trigger(3)
            .l0_slowdown_writes_trigger(9)
            .l0_stop_writes_trigger(11)
            .level_size_multiplier(5)
            .soft_pending_compaction_bytes_limit(1 << 20)
            .hard_pending_compaction_bytes_limit(1 << 21);
        assert_eq!(o.table_cache_tables, 7);
        assert_eq!(o.block_size_bytes, 8192);
        assert_eq!(
            (
                o.l0_compaction_trigger,
                o.l0_slowdown_writes_trigger,
                o.l0_stop_writes_trigger
            ),
            (3, 9, 11)
        );
        assert_eq!(o.level_size_multiplier, 5);
        assert_eq!(o.soft_pending_compaction_bytes_limit, 1 << 20);
        assert_eq!(o.hard_pending_compaction_bytes_limit, 1 << 21);
        assert!(o.validate().is_ok());
    }
}
