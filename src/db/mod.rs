//! `Db`: the public handle, and opening and closing a store.
//!
//! Ownership: `Db` is a cheap clone of an `Arc<Shared>`. Dropping the last
//! clone closes the commit queue; the WAL task then writes and syncs what is
//! queued and exits on its own.

pub(crate) mod commit;
mod recovery;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use crate::batch::WriteBatch;
use crate::io::Fs;
use crate::memtable::Lookup;
use crate::options::{Options, SyncMode, WriteOptions};
use crate::wal::segment_path;
use crate::wal::writer::{OpenSegment, WalWriter};
use crate::{Error, Result};
use commit::CommitQueue;

/// Counters describing the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// WAL fdatasyncs completed.
    pub wal_syncs: u64,
    /// Write batches made durable by those syncs (group size = this / syncs).
    pub wal_synced_batches: u64,
    /// Write calls issued to WAL segments (one per chunk of a group).
    pub wal_writes: u64,
    /// Bytes of WAL records written.
    pub wal_bytes_written: u64,
    /// Approximate bytes held by the memtable.
    pub memtable_size_bytes: u64,
    /// The highest seqno visible to reads.
    pub visible_seqno: u64,
    /// The I/O backend in use: `"uring"`, `"threads"` or `"sim"`.
    pub io_backend: &'static str,
}

struct Shared {
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    options: Options,
    queue: Arc<CommitQueue>,
    wal_done: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
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
    /// torn tail of the newest one, [`Error::InvalidOptions`] for bad options.
    ///
    /// # Cancel safety
    /// Dropping the future before it resolves leaves at most a new, empty WAL
    /// segment behind, which the next open removes.
    pub async fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        options.validate()?;
        let dir = path.as_ref().to_path_buf();
        let fs = match &options.fs {
            Some(fs) => Arc::clone(fs),
            None => crate::io::open_backend(options.io_backend)?,
        };
        if options.create_if_missing {
            fs.create_dir_all(&dir)
                .await
                .map_err(|e| Error::io("create directory", &dir, e))?;
        }
        let memtable = Arc::new(crate::memtable::Memtable::new());
        let recovered = recovery::replay_wal(&fs, &dir, 1, &memtable).await?;
        let segment_number = recovered.max_segment + 1;
        let segment = OpenSegment::create(&fs, &dir, segment_number, options.wal_segment_size_bytes).await?;
        for number in &recovered.empty_segments {
            let path = segment_path(&dir, *number);
            fs.remove_file(&path)
                .await
                .map_err(|e| Error::io("remove empty wal segment", &path, e))?;
        }
        if !recovered.empty_segments.is_empty() {
            fs.sync_dir(&dir)
                .await
                .map_err(|e| Error::io("sync directory", &dir, e))?;
        }
        tracing::debug!(
            records = recovered.records,
            next_seqno = recovered.next_seqno,
            "recovered WAL"
        );

        let queue = Arc::new(CommitQueue::new(
            recovered.next_seqno,
            segment_number,
            options.wal_segment_size_bytes,
            memtable,
        ));
        let sync_interval = match options.sync_mode {
            SyncMode::Interval(interval) => Some(interval),
            SyncMode::Always | SyncMode::Buffered => None,
        };
        let writer = WalWriter::new(
            Arc::clone(&fs),
            dir.clone(),
            Arc::clone(&queue),
            segment,
            options.wal_segment_size_bytes,
            sync_interval,
        );
        let (done_tx, done_rx) = oneshot::channel();
        fs.spawn(Box::pin(async move {
            writer.run().await;
            let _ = done_tx.send(());
        }))
        .map_err(|e| Error::io("start wal task", &dir, e))?;
        Ok(Db {
            shared: Arc::new(Shared {
                dir,
                fs,
                options,
                queue,
                wal_done: Mutex::new(Some(done_rx)),
            }),
        })
    }

    /// Stores `value` at `key` with the store's default [`SyncMode`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key or value over the limits in
    /// [`crate::limits`]; [`Error::Poisoned`] once a WAL sync has failed (this
    /// write's own failed sync returns [`Error::Io`]); [`Error::Closed`] after
    /// [`Db::close`].
    ///
    /// # Cancel safety
    /// Nothing happens until the future is first polled. From its first poll
    /// the write is committed: dropping the future afterwards does not undo
    /// it; it becomes visible and durable like any other (unless the store
    /// fails). Dropped while waiting for room in a full commit queue, the
    /// write does not happen.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> BoxFuture<'static, Result<()>> {
        let mut batch = WriteBatch::with_capacity(key.as_ref().len() + value.as_ref().len() + 12);
        batch.put(key, value);
        self.write_opt(batch, WriteOptions::default())
    }

    /// Deletes `key` (writes a tombstone) with the default [`SyncMode`].
    ///
    /// # Errors
    /// As for [`Db::put`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> BoxFuture<'static, Result<()>> {
        let mut batch = WriteBatch::with_capacity(key.as_ref().len() + 8);
        batch.delete(key);
        self.write_opt(batch, WriteOptions::default())
    }

    /// Applies every write in `batch` atomically, also across a crash.
    ///
    /// # Errors
    /// As for [`Db::put`].
    ///
    /// # Cancel safety
    /// As for [`Db::put`].
    pub fn write(&self, batch: WriteBatch) -> BoxFuture<'static, Result<()>> {
        self.write_opt(batch, WriteOptions::default())
    }

    /// Applies `batch` with per-write options (e.g. another [`SyncMode`]).
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
    pub fn write_opt(&self, batch: WriteBatch, options: WriteOptions) -> BoxFuture<'static, Result<()>> {
        let shared = Arc::clone(&self.shared);
        let durable = options.sync_mode.unwrap_or(shared.options.sync_mode).is_durable();
        async move {
            let (payload, count) = batch.into_payload()?;
            if count == 0 {
                return Ok(());
            }
            shared.queue.wait_for_room().await;
            match shared.queue.commit(payload, count, durable)? {
                Some(receiver) => receiver.await.unwrap_or(Err(Error::Closed)),
                None => Ok(()),
            }
        }
        .boxed()
    }

    /// The newest value at `key`, or `None` if it is absent or deleted.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Corruption`] if a table read fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a get changes nothing.
    pub fn get(&self, key: impl AsRef<[u8]>) -> BoxFuture<'static, Result<Option<Bytes>>> {
        let shared = Arc::clone(&self.shared);
        let key = Bytes::copy_from_slice(key.as_ref());
        async move {
            let snapshot = shared.queue.visible_seqno();
            match shared.queue.memtable().get(&key, snapshot) {
                Lookup::Found(value) => Ok(Some(value)),
                Lookup::Deleted | Lookup::Missing => Ok(None),
            }
        }
        .boxed()
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
    pub fn sync(&self) -> BoxFuture<'static, Result<()>> {
        let shared = Arc::clone(&self.shared);
        async move {
            let receiver = shared.queue.request_sync()?;
            receiver.await.unwrap_or(Err(Error::Closed))
        }
        .boxed()
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
    pub fn close(&self) -> BoxFuture<'static, Result<()>> {
        let shared = Arc::clone(&self.shared);
        async move {
            shared.queue.close();
            let done = shared.wal_done.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(done) = done {
                let _ = done.await;
            }
            match shared.queue.poisoned() {
                Some(cause) => Err(Error::Poisoned {
                    cause: Arc::new(cause.clone()),
                }),
                None => Ok(()),
            }
        }
        .boxed()
    }

    /// Counters: WAL syncs and group sizes, memtable size, visible seqno.
    pub fn stats(&self) -> Stats {
        let wal = &self.shared.queue.stats;
        Stats {
            wal_syncs: wal.syncs.load(Ordering::Relaxed),
            wal_synced_batches: wal.synced_records.load(Ordering::Relaxed),
            wal_writes: wal.writes.load(Ordering::Relaxed),
            wal_bytes_written: wal.bytes_written.load(Ordering::Relaxed),
            memtable_size_bytes: self.shared.queue.memtable().approximate_size_bytes(),
            visible_seqno: self.shared.queue.visible_seqno(),
            io_backend: self.shared.fs.name(),
        }
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }
}
