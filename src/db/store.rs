//! `Store`: the one context the handle, the flush task and the compaction
//! task share.
//!
//! Ownership: built once by `Db::open` (see `db/open.rs`) after recovery
//! and the start of the WAL task, then shared as an `Arc<Store>` by the
//! handle (`Shared` derefs to it), the flush task (`Flusher`) and the
//! compaction task (`Compactor`). Each task keeps only what is its own
//! beside it (the compactor: its lock, rate limiter and obsolete tables).
//!
//! Invariants:
//! - Every field is set at open and never replaced; what changes lives
//!   behind the field's own synchronisation (the version set's lock, the
//!   tree's super-version, atomics).
//! - `fs` serves the WAL task and reads; `background_fs` serves flush,
//!   compaction and the obsolete-file sweep (the same filesystem where a
//!   backend has only one, see `io::Backends`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::Mutex;

use crate::commit::queue::CommitQueue;
use crate::compaction::CompactionOptions;
use crate::db::compact::CompactionStats;
use crate::db::flush::{FlushStats, WriteStop};
use crate::db::snapshot::SnapshotList;
use crate::db::tree::Tree;
use crate::io::{Backends, Fs};
use crate::options::Options;
use crate::sst::{BlockCache, ReadStats, TableCache, TableOptions};
use crate::version::VersionSet;

/// What the handle, flush and compaction share. See the module docs.
pub(crate) struct Store {
    /// The store's directory.
    pub dir: PathBuf,
    /// The foreground filesystem: the WAL task and reads that miss the
    /// caches.
    pub fs: Arc<dyn Fs>,
    /// The background filesystem: flush, compaction, obsolete files.
    pub background_fs: Arc<dyn Fs>,
    /// The options the store was opened with.
    pub options: Options,
    /// The table builder's view of `options`.
    pub table_options: TableOptions,
    /// The compaction picker's and job's view of `options`.
    pub compaction_options: CompactionOptions,
    /// The commit queue the WAL task drains.
    pub queue: Arc<CommitQueue>,
    /// The current super-version and the wakeups of the background tasks.
    pub tree: Arc<Tree>,
    /// The version set; flush and compaction log their edits under its lock.
    pub versions: Mutex<VersionSet>,
    /// Live snapshots.
    pub snapshots: SnapshotList,
    /// Open tables (and the block cache behind them).
    pub table_cache: Arc<TableCache>,
    /// Counters of table reads.
    pub read_stats: Arc<ReadStats>,
    /// Counters of the flush task.
    pub flush_stats: FlushStats,
    /// Counters of the compaction task.
    pub compaction_stats: CompactionStats,
    /// Stops writes while a table write that found no space waits for its
    /// retry.
    pub write_stop: WriteStop,
    /// Set by close (or the drop of the last handle): the background tasks
    /// stop after their current step.
    pub shutdown: AtomicBool,
    /// The background runtime (flush, compaction): also runs the short
    /// sleeps of slowed-down writers, so they need no timer of their own.
    pub background: tokio::runtime::Handle,
}

/// What the WAL half of an open store made: the commit queue and the tree
/// it inserts into.
pub(crate) struct WalParts {
    /// The commit queue the WAL task drains.
    pub queue: Arc<CommitQueue>,
    /// The tree the queue inserts into.
    pub tree: Arc<Tree>,
}

impl Store {
    /// The context of a store whose recovery left `versions` and whose WAL
    /// task runs on `wal`; the caches start empty.
    pub fn new(
        dir: PathBuf,
        backends: Backends,
        options: Options,
        versions: VersionSet,
        wal: WalParts,
        background: tokio::runtime::Handle,
    ) -> Store {
        let read_stats = Arc::new(ReadStats::new());
        let block_cache = (options.block_cache_size_bytes > 0)
            .then(|| Arc::new(BlockCache::new(options.block_cache_size_bytes)));
        let table_cache = Arc::new(TableCache::new(
            Arc::clone(&backends.foreground),
            dir.clone(),
            options.table_cache_tables,
            block_cache,
            Arc::clone(&read_stats),
        ));
        Store {
            dir,
            fs: backends.foreground,
            background_fs: backends.background,
            table_options: TableOptions::from(&options),
            compaction_options: CompactionOptions::from(&options),
            options,
            queue: wal.queue,
            tree: wal.tree,
            versions: Mutex::new(versions),
            snapshots: SnapshotList::default(),
            table_cache,
            read_stats,
            flush_stats: FlushStats::default(),
            compaction_stats: CompactionStats::default(),
            write_stop: WriteStop::default(),
            shutdown: AtomicBool::new(false),
            background,
        }
    }
}
