//! `Db`: the public handle, and opening and closing a store.
//!
//! Ownership: `Db` is a cheap clone of an `Arc<Shared>`. Dropping the last
//! clone closes the commit queue; the WAL task then writes and syncs what is
//! queued and exits on its own.

mod checkpoint;
mod compact;
mod flush;
mod key_range;
mod obsolete;
mod open;
mod recovery;
mod runtime;
mod scan;
mod snapshot;
mod store;
pub(crate) mod tree;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::batch::WriteBatch;
use crate::error::{Error, Result};
use crate::key::Lookup;
use crate::options::{Options, WriteOptions};
use crate::sst::TableOptions;
use compact::Compactor;
pub use key_range::KeyRange;
pub use scan::Scan;
use store::Store;

/// Counters describing the store.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// WAL fdatasyncs completed.
    pub wal_syncs: u64,
    /// Write batches made durable by those syncs (group size = this / syncs).
    pub wal_synced_batches: u64,
    /// Write calls issued to WAL segments (one per chunk of a group).
    pub wal_writes: u64,
    /// Durable WAL writes that waited, with the disk idle, for the writers
    /// the previous one released (see `Options::wal_max_group_hold`).
    pub wal_held_writes: u64,
    /// Of those, the ones whose wait ran out before the writers came.
    pub wal_holds_ran_out: u64,
    /// Durable WAL writes that went through the `O_DIRECT` handle (see
    /// `Options::wal_direct_writes`).
    pub wal_direct_writes: u64,
    /// Bytes of WAL records written.
    pub wal_bytes_written: u64,
    /// Approximate bytes held by the memtable.
    pub memtable_size_bytes: u64,
    /// The highest seqno visible to reads.
    pub visible_seqno: u64,
    /// The I/O backend in use: `"uring"`, `"threads"` or `"sim"`.
    pub io_backend: &'static str,
    /// Frozen memtables waiting for their flush.
    pub immutable_memtables: usize,
    /// Memtables flushed to tables.
    pub flushes: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes_written: u64,
    /// Tables per level.
    pub level_tables: Vec<usize>,
    /// Bytes of tables per level.
    pub level_size_bytes: Vec<u64>,
    /// Data blocks read from table files (block-cache misses).
    pub block_reads: u64,
    /// Block-cache hits.
    pub block_cache_hits: u64,
    /// Block-cache misses.
    pub block_cache_misses: u64,
    /// Table lookups the bloom filter answered "absent" without a block read.
    pub bloom_negatives: u64,
    /// Time writers spent waiting for room (full queue or memtables), in µs.
    pub stall_micros: u64,
    /// Compactions committed, trivial moves included.
    pub compactions: u64,
    /// Compactions that only moved a table one level down.
    pub trivial_moves: u64,
    /// Bytes of tables read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes of tables written by compactions.
    pub compaction_bytes_written: u64,
    /// Bytes written to tables (flush + compaction) per byte flushed: how
    /// many times compaction rewrote the data on average. 0 before the
    /// first flush. (The WAL, written once, is not counted.)
    pub write_amplification: f64,
    /// Live snapshots.
    pub snapshots: usize,
    /// Why writes are stopped, while a flush or compaction that found no
    /// space for a table waits for its retry (see [`Error::NoSpace`]).
    pub background_error: Option<String>,
    /// Table writes (flush or compaction) that failed for lack of space.
    pub background_no_space_errors: u64,
}

/// What a `Db` handle holds: the store context (which it derefs to) and
/// what only the handle needs.
struct Shared {
    store: Arc<Store>,
    compactor: Arc<Compactor>,
    stall_micros: std::sync::atomic::AtomicU64,
    wal_done: Mutex<Option<oneshot::Receiver<()>>>,
    background_done: Mutex<Option<oneshot::Receiver<()>>>,
    /// The store's `LOCK`, held until close (or until the last handle is
    /// dropped): one open store per directory.
    lock: Mutex<Option<Arc<crate::io::FileLock>>>,
    /// The runtime the WAL task and the foreground ring's reaper run on.
    _runtime: runtime::StoreRuntime,
    /// Every live WAL segment is this life's: `close` may record a clean
    /// close (see `Db::open`).
    may_mark_clean_close: bool,
}

/// The handle reads the store context's fields as its own.
impl std::ops::Deref for Shared {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Shared {
    /// Stops the flush task (after the flush it is doing) and the WAL task
    /// (after a final sync).
    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.tree.flush_wakeup.notify_one();
        self.tree.compaction_wakeup.notify_one();
    }

    /// Write backpressure: what a write must wait for, judged from one
    /// super-version and the commit queue's size, without taking the commit
    /// lock (the common answer is "nothing").
    fn backpressure(&self, current: &tree::SuperVersion) -> Option<Backpressure> {
        let options = &self.options;
        let (l0, debt) = (current.version.level_len(0), current.pending_compaction_bytes);
        if self.queue.queued_bytes() > crate::limits::MAX_COMMIT_QUEUE_BYTES {
            Some(Backpressure::QueueFull)
        } else if self.queue.memtable_full(&current.memtable)
            && current.imms.len() >= options.max_immutable_memtables
        {
            Some(Backpressure::MemtablesFull)
        } else if l0 >= options.l0_stop_writes_trigger || debt >= options.hard_pending_compaction_bytes_limit
        {
            Some(Backpressure::Stop)
        } else if l0 >= options.l0_slowdown_writes_trigger
            || debt >= options.soft_pending_compaction_bytes_limit
        {
            Some(Backpressure::Slow)
        } else {
            None
        }
    }

    /// Awaits room for a write (never blocks a thread) and returns the time
    /// spent: a full commit queue or full memtables wait for the WAL task or
    /// a flush; level 0 or compaction debt past its stop limit waits for
    /// compaction; past its slowdown limit, the write waits about a
    /// millisecond.
    async fn wait_for_room(&self) -> std::time::Duration {
        let mut stalled = std::time::Duration::ZERO;
        loop {
            let queue_room = self.queue.room.notified();
            let tree_room = self.tree.imm_room.notified();
            let current = self.tree.current();
            let wait = self.backpressure(&current);
            drop(current);
            let Some(wait) = wait else { return stalled };
            if self.shutdown.load(Ordering::Acquire)
                || self.queue.poisoned().is_some()
                || self.write_stop.error().is_some()
            {
                // The commit that follows reports the reason.
                return stalled;
            }
            tracing::debug!(reason = ?wait, "a write waits for room");
            let started = std::time::Instant::now();
            match wait {
                Backpressure::QueueFull => queue_room.await,
                Backpressure::MemtablesFull => tree_room.await,
                Backpressure::Stop => {
                    self.tree.compaction_wakeup.notify_one();
                    tree_room.await;
                }
                Backpressure::Slow => {
                    let sleep = self.background.spawn(tokio::time::sleep(SLOWDOWN_DELAY));
                    let _ = sleep.await;
                    return stalled + started.elapsed();
                }
            }
            stalled += started.elapsed();
        }
    }
}

/// Why a write has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backpressure {
    /// The commit queue holds more than `MAX_COMMIT_QUEUE_BYTES`.
    QueueFull,
    /// The memtable is full and so is the queue of frozen ones.
    MemtablesFull,
    /// Level 0 or compaction debt is past its stop limit.
    Stop,
    /// Level 0 or compaction debt is past its slowdown limit.
    Slow,
}

/// Non-durable writes a thread completes before one of them yields to the
/// executor: such a write waits only behind a durable one, so a task
/// writing in a loop would otherwise keep its thread from every other
/// task. 128, tokio's own cooperative budget: on a multi-threaded runtime
/// each yield also wakes a parked worker, which may steal the task, so
/// yielding more often costs writes, and less often keeps other tasks
/// waiting longer (`docs/decisions/0023-commit-lock-spins-and-buffered-yields.md`).
const NON_DURABLE_WRITES_PER_YIELD: u32 = 128;

thread_local! {
    /// Non-durable writes this thread completed since one yielded.
    static UNYIELDED_WRITES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a non-durable write on this thread and, every `every` writes,
/// yields once to the executor (wakes itself and returns `Pending`), so
/// other tasks run. Works on any executor.
async fn yield_now_and_then(every: u32) {
    let due = UNYIELDED_WRITES.with(|count| {
        let next = count.get() + 1;
        count.set(if next >= every { 0 } else { next });
        next >= every
    });
    if due {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                return std::task::Poll::Ready(());
            }
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
    }
}

/// How long a write waits when the tree is past a slowdown limit.
const SLOWDOWN_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

impl Drop for Shared {
    fn drop(&mut self) {
        self.begin_shutdown();
        self.queue.close();
    }
}

/// An open ringdb store. `Clone`, `Send` and `Sync`: share it between tasks.
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
/// db.put(b"user:1", b"alice").await?; // durable when it resolves
/// assert_eq!(db.get(b"user:1").await?.as_deref(), Some(&b"alice"[..]));
/// db.delete(b"user:1").await?;
/// assert_eq!(db.get(b"user:1").await?, None);
/// db.close().await?;
/// # Ok::<(), ringdb::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dir", &self.shared.dir)
            .field("fs", &self.shared.fs.name())
            .finish()
    }
}

impl Db {
    /// Opens (or creates) the store in `path`, replaying its WAL.
    ///
    /// # Errors
    /// [`Error::Io`] if the directory or a file cannot be read or written,
    /// [`Error::Corruption`] if a WAL segment is damaged anywhere but in the
    /// torn tail of the newest one (or at all, after a clean close), missing
    /// or swapped, if the manifest names a missing table or lost the edit of
    /// a table present, or if `CURRENT` is missing from a store;
    /// [`Error::InvalidOptions`] for bad options.
    ///
    /// # Cancel safety
    /// Dropping the future before it resolves leaves the store as a crash at
    /// that point would: what the interrupted open made (a table of the
    /// replayed WAL, a manifest `CURRENT` does not name yet, an empty WAL
    /// segment) is garbage the next open removes (see `db/recovery.rs`).
    pub async fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        TableOptions::from(&options).validate()?;
        options.validate()?;
        let dir = path.as_ref().to_path_buf();
        let started = std::time::Instant::now();
        let runtime = runtime::StoreRuntime::for_caller()
            .map_err(|e| Error::io("start the store's runtime thread", &dir, e))?;
        let backends = match &options.fs {
            Some(fs) => crate::io::Backends::single(Arc::clone(fs)),
            None => crate::io::open_backend(options.io_backend, &runtime.handle)?,
        };
        // NOTE: the WAL task and the background thread hold the lock too:
        // a store dropped without `close` keeps it until they have stopped
        // touching the directory.
        let lock = Arc::new(open::lock_dir(&backends.foreground, &dir, options.create_if_missing).await?);
        let recovered = tracing::Instrument::instrument(
            recovery::recover(
                &backends.foreground,
                &backends.background,
                &dir,
                &TableOptions::from(&options),
            ),
            tracing::info_span!("recovery", dir = %dir.display()),
        )
        .await?;
        // NOTE: replayed segments kept for lack of space to flush them may
        // end in a torn tail; a clean-close mark would make that tail
        // corruption at the next open, so this life never sets one.
        let may_mark_clean_close = recovered.memtable.is_empty();
        let (wal, versions, wal_done) =
            open::start_wal(&backends.foreground, &dir, &options, recovered, &lock, &runtime).await?;
        let background =
            open::BackgroundThread::build().map_err(|e| Error::io("start background thread", &dir, e))?;
        let store = Arc::new(Store::new(
            dir,
            backends,
            options,
            versions,
            wal,
            background.handle(),
        ));
        let compactor = Arc::new(Compactor::new(Arc::clone(&store)));
        let background_done = background
            .start(&store, &compactor, &lock)
            .map_err(|e| Error::io("start background thread", &store.dir, e))?;
        tracing::info!(
            dir = %store.dir.display(),
            backend = store.fs.name(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store opened"
        );
        Ok(Db {
            shared: Arc::new(Shared {
                store,
                compactor,
                stall_micros: std::sync::atomic::AtomicU64::new(0),
                wal_done: Mutex::new(Some(wal_done)),
                background_done: Mutex::new(Some(background_done)),
                lock: Mutex::new(Some(lock)),
                _runtime: runtime,
                may_mark_clean_close,
            }),
        })
    }

    /// Stores `value` at `key` with the store's default [`SyncMode`](crate::SyncMode).
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key or value over the limits in
    /// [`crate::limits`]; [`Error::Poisoned`] once a WAL sync has failed (this
    /// write's own failed sync returns [`Error::Io`]); [`Error::NoSpace`]
    /// while writes are stopped because a table write found no space (they
    /// resume by themselves); [`Error::Closed`] after [`Db::close`].
    ///
    /// # Cancel safety
    /// Nothing happens until the future is first polled. From its first poll
    /// the write is committed: dropping the future afterwards does not undo
    /// it; it becomes visible and durable like any other (unless the store
    /// fails). Dropped while waiting for room in a full commit queue, the
    /// write does not happen.
    pub fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let mut batch = WriteBatch::with_capacity(key.as_ref().len() + value.as_ref().len() + 12);
        batch.put(key, value);
        self.write_opt(batch, WriteOptions::default())
    }

    /// Deletes `key` (writes a tombstone) with the default [`SyncMode`](crate::SyncMode).
    ///
    /// # Errors
    /// As for [`Db::put`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> impl Future<Output = Result<()>> + Send + 'static {
        let mut batch = WriteBatch::with_capacity(key.as_ref().len() + 8);
        batch.delete(key);
        self.write_opt(batch, WriteOptions::default())
    }

    /// Deletes every key in `range` (`start..end`, end excluded) with one
    /// range tombstone, whatever the number of keys: reads stop seeing
    /// them at once, and compaction reclaims their space. An empty range
    /// deletes nothing.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
    /// db.put(b"user:1", b"alice").await?;
    /// db.put(b"user:2", b"bob").await?;
    /// db.delete_range(b"user:".as_slice()..b"user;".as_slice()).await?;
    /// assert_eq!(db.get(b"user:2").await?, None);
    /// # Ok::<(), ringdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As for [`Db::put`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn delete_range<K: AsRef<[u8]>>(
        &self,
        range: std::ops::Range<K>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let (start, end) = (range.start.as_ref(), range.end.as_ref());
        let mut batch = WriteBatch::with_capacity(start.len() + end.len() + 12);
        batch.delete_range(start, end);
        self.write_opt(batch, WriteOptions::default())
    }

    /// Applies every write in `batch` atomically, also across a crash.
    ///
    /// # Errors
    /// As for [`Db::put`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn write(&self, batch: WriteBatch) -> impl Future<Output = Result<()>> + Send + 'static {
        self.write_opt(batch, WriteOptions::default())
    }

    /// Applies `batch` with per-write options (e.g. another [`SyncMode`](crate::SyncMode)).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
    /// let mut batch = ringdb::WriteBatch::new();
    /// batch.put(b"a", b"1").delete(b"b");
    /// db.write_opt(batch, ringdb::WriteOptions::with_sync_mode(ringdb::SyncMode::Buffered)).await?;
    /// db.sync().await?; // now durable
    /// # Ok::<(), ringdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As for [`Db::put`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn write_opt(
        &self,
        batch: WriteBatch,
        options: WriteOptions,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let durable = options.sync_mode.unwrap_or(shared.options.sync_mode).is_durable();
        let batch = with_ttl(&shared.options, batch, &options);
        async move {
            let (payload, count) = batch.into_payload()?;
            if count == 0 {
                // NOTE: nothing to write, but the answer a write would get.
                if let Some(cause) = shared.queue.poisoned() {
                    return Err(Error::Poisoned {
                        cause: Arc::new(cause.clone()),
                    });
                }
                if shared.shutdown.load(Ordering::Acquire) {
                    return Err(Error::Closed);
                }
                return Ok(());
            }
            // NOTE: the wait is boxed, so a write that needs no room carries
            // none of its state: the future stays small, and awaiting it
            // copies less.
            if shared.backpressure(&shared.tree.current()).is_some() {
                let stalled = Box::pin(shared.wait_for_room()).await;
                if !stalled.is_zero() {
                    let micros = u64::try_from(stalled.as_micros()).unwrap_or(u64::MAX);
                    shared.stall_micros.fetch_add(micros, Ordering::Relaxed);
                }
            }
            // NOTE: a table write found no space: writes wait for a retry
            // to succeed (db/flush.rs), reads go on.
            if let Some(stopped) = shared.write_stop.error() {
                return Err(stopped);
            }
            match shared.queue.commit(payload, count, durable)? {
                Some(receiver) => receiver.await.unwrap_or(Err(Error::Closed)),
                None => {
                    yield_now_and_then(NON_DURABLE_WRITES_PER_YIELD).await;
                    Ok(())
                }
            }
        }
    }

    /// The newest value at `key`, or `None` if it is absent or deleted.
    ///
    /// The `Bytes` may share its buffer with other data (a memtable's 64 KiB
    /// chunk of values, a table's block), which stays allocated while it is
    /// held; copy it to keep it long.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corruption`] if a table read fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a get changes nothing.
    pub fn get(&self, key: impl AsRef<[u8]>) -> impl Future<Output = Result<Option<Bytes>>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let key = Bytes::copy_from_slice(key.as_ref());
        async move {
            // NOTE: the seqno first, then the super-version (see db/tree.rs).
            let (snapshot, current) = shared.tree.read_view(|| shared.queue.visible_seqno());
            let value = get_at(&shared, &current, &key, snapshot).await?;
            // NOTE: a get served from memory never returns Pending; on tokio,
            // spend scheduling budget so a loop of gets lets other tasks run
            // (a no-op on other executors).
            tokio::task::consume_budget().await;
            Ok(value)
        }
    }

    /// Makes every write acknowledged so far durable (one fdatasync shared
    /// with concurrent writers).
    ///
    /// # Errors
    /// [`Error::Io`] if the sync fails (the store is then poisoned),
    /// [`Error::Poisoned`] or [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel safe: the sync still happens, nobody waits for it.
    pub fn sync(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            let receiver = shared.queue.request_sync()?;
            receiver.await.unwrap_or(Err(Error::Closed))
        }
    }

    /// The entries with keys in `range`, in key order (`.rev()` for
    /// descending), as of this call: a consistent view while writes and
    /// compactions go on.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::TryStreamExt;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
    /// for key in ["a", "b", "c", "d"] {
    ///     db.put(key, "v").await?;
    /// }
    /// let keys: Vec<_> = db.scan(&b"b"[..]..=&b"c"[..]).rev().map_ok(|(k, _)| k).try_collect().await?;
    /// assert_eq!(keys, ["c", "b"]);
    /// # Ok::<(), ringdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// Items are `Err` if a table read fails; the stream then ends.
    ///
    /// # Cancel safety
    /// Dropping the stream at any point is safe.
    pub fn scan<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> Scan {
        let (seqno, view) = self.read_view();
        let (start, end) = owned_bounds(&range);
        Scan::new(Arc::clone(&self.shared), seqno, Some(view), start, end, None)
    }

    /// A seqno to read at and the super-version to read, consistent with
    /// each other (see `Tree::read_view`).
    fn read_view(&self) -> (crate::key::SeqNo, Arc<tree::SuperVersion>) {
        let shared = &self.shared;
        shared.tree.read_view(|| shared.queue.visible_seqno())
    }

    /// The entries whose keys start with `prefix`, in key order (`.rev()`
    /// for descending), as of this call.
    ///
    /// # Errors
    /// Items are `Err` if a table read fails; the stream then ends.
    ///
    /// # Cancel safety
    /// Dropping the stream at any point is safe.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Scan {
        let (seqno, view) = self.read_view();
        let prefix = prefix.as_ref();
        let start = std::ops::Bound::Included(Bytes::copy_from_slice(prefix));
        Scan::new(
            Arc::clone(&self.shared),
            seqno,
            Some(view),
            start,
            scan::prefix_end(prefix),
            None,
        )
    }

    /// A consistent view of the store as of now: reads through it see every
    /// write acknowledged before this call and none after. Compaction keeps
    /// what it needs until the snapshot is dropped.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
    /// db.put(b"k", b"old").await?;
    /// let snapshot = db.snapshot();
    /// db.put(b"k", b"new").await?;
    /// assert_eq!(snapshot.get(b"k").await?.as_deref(), Some(&b"old"[..]));
    /// # Ok::<(), ringdb::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        let seqno = self
            .shared
            .snapshots
            .acquire_visible(|| self.shared.queue.visible_seqno());
        Snapshot {
            inner: Arc::new(SnapshotInner {
                shared: Arc::clone(&self.shared),
                seqno,
            }),
        }
    }

    /// Compacts every table overlapping `range`, level by level down the
    /// tree, and waits until that is done. `range` is any [`KeyRange`]:
    /// the ranges [`Db::scan`] takes (`"a".."z"`), or `..` for everything.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corruption`] from the compaction (the
    /// store is then poisoned), [`Error::Poisoned`] if it already was.
    ///
    /// # Cancel safety
    /// Cancel safe: the compaction goes on without the caller.
    pub fn compact_range<R: KeyRange>(&self, range: R) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let (start, end) = range.into_bounds();
        async move {
            let compactor = Arc::clone(&shared.compactor);
            let background = shared.background.clone();
            let job = background.spawn(async move {
                for level in 0..crate::manifest::NUM_LEVELS - 1 {
                    if let Some(cause) = compactor.store.queue.poisoned() {
                        return Err(Error::Poisoned {
                            cause: Arc::new(cause.clone()),
                        });
                    }
                    let (start, end) = (
                        start.as_ref().map(|b| b.as_ref()),
                        end.as_ref().map(|b| b.as_ref()),
                    );
                    let pick = |version: &crate::version::Version| {
                        crate::compaction::picker::pick_range(version, level, start, end)
                    };
                    if let Err(error) = compactor.compact_once(pick).await {
                        compactor.fail(error.clone());
                        return Err(error);
                    }
                }
                Ok(())
            });
            job.await.unwrap_or(Err(Error::Closed))
        }
    }

    /// Writes every memtable out to a table and waits until that is done (and
    /// the WAL segments it covered are gone).
    ///
    /// # Errors
    /// [`Error::Poisoned`] if a flush (or a WAL sync) failed,
    /// [`Error::NoSpace`] while a table write that found no space waits for
    /// its retry, [`Error::Closed`] after [`Db::close`].
    ///
    /// # Cancel safety
    /// Cancel safe: the flush goes on without the caller.
    pub fn flush(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            loop {
                let room = shared.tree.imm_room.notified();
                if shared.queue.freeze_memtable()? {
                    break;
                }
                if let Some(stopped) = shared.write_stop.error() {
                    return Err(stopped);
                }
                room.await;
            }
            loop {
                let room = shared.tree.imm_room.notified();
                if let Some(cause) = shared.queue.poisoned() {
                    return Err(Error::Poisoned {
                        cause: Arc::new(cause.clone()),
                    });
                }
                if let Some(stopped) = shared.write_stop.error() {
                    return Err(stopped);
                }
                if shared.tree.imm_count() == 0 {
                    return Ok(());
                }
                room.await;
            }
        }
    }

    /// Stops writes, makes every acknowledged write durable and stops the
    /// WAL task. Reads keep working on every clone; writes return
    /// [`Error::Closed`]. Closing twice is harmless.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Poisoned`] if the final sync failed or the
    /// store was already poisoned.
    ///
    /// # Cancel safety
    /// Cancel safe: the close goes on without the caller.
    pub fn close(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            shared.begin_shutdown();
            let background_done = shared
                .background_done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(done) = background_done {
                let _ = done.await;
            }
            shared.queue.close();
            let done = shared.wal_done.lock().unwrap_or_else(|e| e.into_inner()).take();
            let mut marked = Ok(());
            if let Some(done) = done {
                let _ = done.await;
                // NOTE: the WAL is synced and closed: record it, so that
                // recovery allows it no torn tail (db/recovery.rs).
                if shared.queue.poisoned().is_none() && shared.may_mark_clean_close {
                    let seqno = shared.queue.visible_seqno();
                    marked = shared.versions.lock().await.mark_clean_close(seqno).await;
                }
            }
            // NOTE: the WAL task and the background thread have stopped and
            // dropped their share: this releases the lock.
            drop(shared.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
            match shared.queue.poisoned() {
                Some(cause) => Err(Error::Poisoned {
                    cause: Arc::new(cause.clone()),
                }),
                None => marked,
            }
        }
    }

    /// Counters: WAL syncs and group sizes, memtable size, visible seqno.
    pub fn stats(&self) -> Stats {
        let wal = &self.shared.queue.stats;
        let current = self.shared.tree.current();
        let read = &self.shared.read_stats;
        let levels = 0..crate::manifest::NUM_LEVELS;
        Stats {
            wal_syncs: wal.syncs.load(Ordering::Relaxed),
            wal_synced_batches: wal.synced_records.load(Ordering::Relaxed),
            wal_writes: wal.writes.load(Ordering::Relaxed),
            wal_held_writes: wal.held_writes.load(Ordering::Relaxed),
            wal_holds_ran_out: wal.holds_ran_out.load(Ordering::Relaxed),
            wal_direct_writes: wal.direct_writes.load(Ordering::Relaxed),
            wal_bytes_written: wal.bytes_written.load(Ordering::Relaxed),
            memtable_size_bytes: current.memtable.approximate_size_bytes(),
            visible_seqno: self.shared.queue.visible_seqno(),
            io_backend: self.shared.fs.name(),
            immutable_memtables: current.imms.len(),
            flushes: self.shared.flush_stats.flushes.load(Ordering::Relaxed),
            flush_bytes_written: self.shared.flush_stats.bytes_written.load(Ordering::Relaxed),
            level_tables: levels.clone().map(|l| current.version.level_len(l)).collect(),
            level_size_bytes: levels.map(|l| current.version.level_size_bytes(l)).collect(),
            block_reads: read.block_reads.load(Ordering::Relaxed),
            block_cache_hits: read.block_cache_hits.load(Ordering::Relaxed),
            block_cache_misses: read.block_cache_misses.load(Ordering::Relaxed),
            bloom_negatives: read.bloom_negatives.load(Ordering::Relaxed),
            stall_micros: self.shared.stall_micros.load(Ordering::Relaxed),
            compactions: compact::load(&self.shared.compaction_stats.compactions),
            trivial_moves: compact::load(&self.shared.compaction_stats.trivial_moves),
            compaction_bytes_read: compact::load(&self.shared.compaction_stats.bytes_read),
            compaction_bytes_written: compact::load(&self.shared.compaction_stats.bytes_written),
            write_amplification: {
                let flushed = self.shared.flush_stats.bytes_written.load(Ordering::Relaxed);
                let compacted = compact::load(&self.shared.compaction_stats.bytes_written);
                if flushed == 0 {
                    0.0
                } else {
                    (flushed + compacted) as f64 / flushed as f64
                }
            },
            snapshots: self.shared.snapshots.seqnos().len(),
            background_error: self.shared.write_stop.error().map(|e| e.to_string()),
            background_no_space_errors: self.shared.write_stop.failures.load(Ordering::Relaxed),
        }
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }
}

/// Merges (see [`crate::merge`]).
impl Db {
    /// Adds a merge `operand` for `key` with the default [`SyncMode`](crate::SyncMode):
    /// reads fold it onto the value before it with
    /// [`Options::merge_operator`].
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::sync::Arc;
    /// let append = ringdb::merge::Append { separator: b",".to_vec() };
    /// let options = ringdb::Options::default().merge_operator(Arc::new(append));
    /// let db = ringdb::Db::open(dir.path(), options).await?;
    /// db.put(b"list", b"a").await?;
    /// db.merge(b"list", b"b").await?;
    /// assert_eq!(db.get(b"list").await?.as_deref(), Some(&b"a,b"[..]));
    /// # Ok::<(), ringdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As for [`Db::put`]. The write itself needs no operator; reading the
    /// key without one is [`Error::MergeFailed`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn merge(
        &self,
        key: impl AsRef<[u8]>,
        operand: impl AsRef<[u8]>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let mut batch = WriteBatch::with_capacity(key.as_ref().len() + operand.as_ref().len() + 12);
        batch.merge(key, operand);
        self.write_opt(batch, WriteOptions::default())
    }
}

/// `batch` with its puts expiring after the write's TTL (or the store's),
/// judged on the store's clock now; unchanged when neither is set.
fn with_ttl(options: &Options, batch: WriteBatch, write_options: &WriteOptions) -> WriteBatch {
    match write_options.ttl.or(options.ttl) {
        None => batch,
        Some(ttl) => batch.with_expiry(crate::ttl::expiry_ms(options.clock.now_ms(), ttl)),
    }
}

/// A consistent, read-only view of the store at one seqno. Dropping it lets
/// compaction discard the versions only it could see.
/// Clones share one registration; the last one dropped releases it.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<SnapshotInner>,
}

struct SnapshotInner {
    shared: Arc<Shared>,
    seqno: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seqno", &self.inner.seqno)
            .finish()
    }
}

impl Drop for SnapshotInner {
    fn drop(&mut self) {
        self.shared.snapshots.release(self.seqno);
    }
}

impl Snapshot {
    /// The value at `key` as of the snapshot.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corruption`] if a table read fails.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub fn get(&self, key: impl AsRef<[u8]>) -> impl Future<Output = Result<Option<Bytes>>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let key = Bytes::copy_from_slice(key.as_ref());
        async move {
            let (shared, seqno) = (&inner.shared, inner.seqno);
            let current = shared.tree.current();
            get_at(shared, &current, &key, seqno).await
        }
    }

    /// The entries with keys in `range` as of the snapshot, in key order
    /// (`.rev()` for descending). The scan keeps the snapshot alive.
    ///
    /// # Errors
    /// Items are `Err` if a table read fails; the stream then ends.
    ///
    /// # Cancel safety
    /// Dropping the stream at any point is safe; it releases its hold on
    /// the snapshot.
    pub fn scan<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> Scan {
        let (start, end) = owned_bounds(&range);
        let keep_alive: Arc<dyn Send + Sync> = Arc::clone(&self.inner) as Arc<dyn Send + Sync>;
        Scan::new(
            Arc::clone(&self.inner.shared),
            self.inner.seqno,
            None,
            start,
            end,
            Some(keep_alive),
        )
    }

    /// The seqno the snapshot reads at.
    pub fn seqno(&self) -> u64 {
        self.inner.seqno
    }
}

fn owned_bounds<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(
    range: &R,
) -> (std::ops::Bound<Bytes>, std::ops::Bound<Bytes>) {
    let own = |bound: std::ops::Bound<&K>| bound.map(|k| Bytes::copy_from_slice(k.as_ref()));
    (own(range.start_bound()), own(range.end_bound()))
}

/// The value of `key` at `snapshot` in one super-version: the newest
/// version decides, unless it is a merge operand (then the key's versions
/// are folded, see `scan::point_read`) or an expired value.
///
/// NOTE: a put or a tombstone (the only kinds of a store that uses neither
/// merges nor TTL) costs one match more than the lookup itself.
async fn get_at(
    shared: &Shared,
    current: &tree::SuperVersion,
    key: &Bytes,
    snapshot: u64,
) -> Result<Option<Bytes>> {
    match lookup_at(shared, current, key, snapshot).await? {
        Lookup::Found(value) => Ok(Some(value)),
        Lookup::Deleted | Lookup::Missing => Ok(None),
        Lookup::Expiring(stored) => {
            let now_ms = shared.options.clock.now_ms();
            Ok(crate::merge::Resolver::base_value(
                crate::key::ValueKind::PutWithExpiry,
                &stored,
                now_ms,
            ))
        }
        Lookup::Merge => scan::point_read(shared, current, key, snapshot).await,
    }
}

/// The newest version of `key` at `snapshot` in one super-version:
/// memtable, frozen memtables newest first, level 0 newest first, then one
/// table per deeper level. A version older than a range tombstone covering
/// the key in its own source or a newer one reads as deleted; a source
/// newer than the version found cannot hold an older one, so the search
/// still stops at the first source that knows the key.
async fn lookup_at(
    shared: &Shared,
    current: &tree::SuperVersion,
    key: &Bytes,
    snapshot: u64,
) -> Result<Lookup> {
    // The newest range tombstone covering `key` in the sources read so far.
    let mut covering = 0;
    let memtables = std::iter::once(&current.memtable).chain(current.imms.iter().map(|imm| &imm.memtable));
    for memtable in memtables {
        if let Some(dels) = memtable.range_dels() {
            covering = covering.max(dels.max_covering(key, snapshot));
        }
        match memtable.get_with_seqno(key, snapshot) {
            (Lookup::Missing, _) => {}
            (found, seqno) => return Ok(unless_range_deleted(found, seqno, covering)),
        }
    }
    for (level, tables) in current.version.levels.iter().enumerate() {
        let candidates: &[Arc<crate::manifest::TableMeta>] = if level == 0 {
            tables
        } else {
            // Levels below 0 do not overlap: at most one table can hold the key.
            let index = tables.partition_point(|t| t.largest.user_key.as_ref() < key);
            tables
                .get(index..(index + 1).min(tables.len()))
                .unwrap_or_default()
        };
        for meta in candidates.iter().filter(|t| t.may_hold(key)) {
            // NOTE: a pinned table is borrowed from the version this read
            // holds: no lock and no shared count touched per probe.
            let opened;
            let table = match meta.open.get() {
                Some(table) => table,
                None => {
                    opened = shared.table_cache.get(meta).await?;
                    &opened
                }
            };
            if let Some(dels) = table.range_dels() {
                covering = covering.max(dels.max_covering(key, snapshot));
            }
            match table.get_with_seqno(key, snapshot).await? {
                (Lookup::Missing, _) => {}
                (found, seqno) => return Ok(unless_range_deleted(found, seqno, covering)),
            }
        }
    }
    Ok(Lookup::Missing)
}

/// `found`, the version of a key at `seqno`, or `Deleted` when a range
/// tombstone at `covering` is newer.
#[inline]
fn unless_range_deleted(found: Lookup, seqno: u64, covering: u64) -> Lookup {
    match seqno < covering {
        true => Lookup::Deleted,
        false => found,
    }
}
