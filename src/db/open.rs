//! The steps of `Db::open` after the options are checked: lock the
//! directory, recover (`db/recovery.rs`), start the WAL task
//! ([`start_wal`]), build the store context (`db/store.rs`) and start the
//! background work ([`BackgroundThread`]).
//!
//! Invariants:
//! - Nothing is spawned before recovery has succeeded, and each step that
//!   fails leaves what the steps before it made to the next open, as a
//!   crash at that point would (see `Db::open`'s cancel safety).
//! - The WAL task and the background thread each hold the store's lock
//!   until they end, so a store dropped without `close` keeps its
//!   directory locked while they may still touch it.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::commit::queue::CommitQueue;
use crate::commit::wal_task::WalWriter;
use crate::compaction::CompactionOptions;
use crate::db::compact::Compactor;
use crate::db::flush::Flusher;
use crate::db::recovery::Opened;
use crate::db::runtime::StoreRuntime;
use crate::db::store::{Store, WalParts};
use crate::db::tree::Tree;
use crate::error::{Error, Result};
use crate::io::{FileLock, Fs};
use crate::options::Options;
use crate::version::VersionSet;
use crate::wal::segment::OpenSegment;

/// Creates `dir` if asked to and takes the store's lock in it.
///
/// # Errors
/// [`Error::Io`] if the directory cannot be created, or the lock is held
/// (by another process or another open `Db`) or cannot be taken.
pub(super) async fn lock_dir(fs: &Arc<dyn Fs>, dir: &Path, create_if_missing: bool) -> Result<FileLock> {
    if create_if_missing {
        fs.create_dir_all(dir)
            .await
            .map_err(|e| Error::io("create directory", dir, e))?;
    }
    let lock_path = dir.join(crate::filename::LOCK);
    fs.lock_file(&lock_path).await.map_err(|e| {
        let context = if e.kind() == std::io::ErrorKind::WouldBlock {
            "lock the store: another process or another open Db is using it"
        } else {
            "lock the store"
        };
        Error::io(context, &lock_path, e)
    })
}

/// Creates the WAL segment this life writes to, builds the tree and the
/// commit queue on what recovery left, and starts the WAL task on `fs`.
/// Returns them, the version set, and a receiver that resolves when the
/// WAL task has ended.
///
/// # Errors
/// [`Error::Io`] if the segment cannot be created or the task not started.
pub(super) async fn start_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    options: &Options,
    recovered: Opened,
    lock: &Arc<FileLock>,
    runtime: &StoreRuntime,
) -> Result<(WalParts, VersionSet, oneshot::Receiver<()>)> {
    let Opened {
        versions,
        next_seqno,
        segment_number,
        records,
        memtable,
    } = recovered;
    let memtable = Arc::new(memtable);
    let segment = OpenSegment::create(
        fs,
        dir,
        segment_number,
        options.wal_segment_size_bytes,
        // NOTE: the WAL task zero-fills the first window once it runs,
        // so that open does not wait for it.
        0,
        options.wal_direct_writes,
    )
    .await?;
    tracing::debug!(records, next_seqno, "recovered WAL");
    let tree = Arc::new(Tree::new(
        Arc::clone(&memtable),
        versions.current(),
        CompactionOptions::from(options),
    ));
    let queue = Arc::new(CommitQueue::new(
        next_seqno,
        segment_number,
        options,
        memtable,
        Arc::clone(&tree),
    ));
    let writer = WalWriter::new(
        Arc::clone(fs),
        dir.to_path_buf(),
        Arc::clone(&queue),
        segment,
        options,
    );
    let (done_tx, done) = oneshot::channel();
    let wal_lock = Arc::clone(lock);
    let wal_runtime = runtime.clone();
    fs.spawn(Box::pin(async move {
        writer.run().await;
        drop(wal_lock);
        let _ = done_tx.send(());
        drop(wal_runtime);
    }))
    .map_err(|e| Error::io("start wal task", dir, e))?;
    Ok((WalParts { queue, tree }, versions, done))
}

/// The store's background thread, `ringdb-bg`: a current-thread tokio
/// runtime (timers, `tokio::spawn`) that runs the flush and compaction
/// tasks. Built before the store context, which holds its handle.
pub(super) struct BackgroundThread {
    runtime: tokio::runtime::Runtime,
}

impl BackgroundThread {
    /// The background thread's name.
    pub const NAME: &str = "ringdb-bg";

    /// Builds the runtime; [`BackgroundThread::start`] starts its thread.
    pub fn build() -> std::io::Result<BackgroundThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        Ok(BackgroundThread { runtime })
    }

    /// Spawns onto the runtime (once started).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// Starts the thread, which runs the flush and compaction tasks of
    /// `store` until both have ended (at shutdown or a failure), then drops
    /// its share of `lock`. Returns a receiver that resolves then.
    pub fn start(
        self,
        store: &Arc<Store>,
        compactor: &Arc<Compactor>,
        lock: &Arc<FileLock>,
    ) -> std::io::Result<oneshot::Receiver<()>> {
        let flusher = Flusher {
            store: Arc::clone(store),
        };
        let compaction_task = Arc::clone(compactor).run();
        let background_lock = Arc::clone(lock);
        let (done_tx, done) = oneshot::channel();
        let task = async move {
            futures::join!(flusher.run(), compaction_task);
            drop(background_lock);
            let _ = done_tx.send(());
        };
        let runtime = self.runtime;
        std::thread::Builder::new()
            .name(Self::NAME.to_owned())
            .spawn(move || runtime.block_on(task))?;
        // NOTE: the compaction task's first look at the tree as recovered.
        store.tree.compaction_wakeup.notify_one();
        Ok(done)
    }
}
