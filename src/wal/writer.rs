//! The WAL task: group commit.
//!
//! One task, spawned on the I/O backend's thread (the WAL ring thread on
//! io_uring), loops: take the queued chunks (a group), write each with one
//! write, then, if anyone waits for durability, start an fdatasync covering
//! it. At most one fdatasync is in flight; the next group is written while it
//! runs. When a sync completes, its last seqno is published and its waiters
//! resolve `Ok`.
//!
//! Segments: a segment is zero-filled [`WAL_PREFILL_WINDOW_BYTES`] ahead of
//! its last record, so syncs overwrite allocated blocks. A write to segment
//! `n + 1` happens only after segment `n` is fully synced, so after a crash
//! only the newest segment can hold a torn tail.
//!
//! Invariants:
//! - A waiter resolves `Ok` only after an fdatasync that started after its
//!   bytes' write completed has returned `Ok`.
//! - At most one fdatasync is in flight.
//! - A failed write or sync is never retried: the queue is poisoned, every
//!   waiter fails, and the task exits.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::db::commit::{Chunk, CommitQueue, Waiter};
use crate::io::{File, Fs, OpenMode};
use crate::key::SeqNo;
use crate::limits::{PREALLOCATE_CHUNK_BYTES, WAL_PREFILL_WINDOW_BYTES};
use crate::wal::segment_path;
use crate::{Error, Result};

/// The segment the WAL task appends to.
#[derive(Debug)]
pub(crate) struct OpenSegment {
    number: u64,
    path: PathBuf,
    file: Arc<dyn File>,
    /// Bytes `[0, prefilled_to)` hold records or zeros.
    prefilled_to: u64,
    /// Records were written since the last sync started.
    dirty: bool,
    /// Any record was ever written to it.
    has_records: bool,
}

impl OpenSegment {
    /// Creates segment `number`, zero-fills its first `prefill_bytes`, and
    /// makes file and directory entry durable.
    pub async fn create(
        fs: &Arc<dyn Fs>,
        dir: &std::path::Path,
        number: u64,
        size_bytes: u64,
        prefill_bytes: u64,
    ) -> Result<Self> {
        Self::create_until(
            fs,
            dir,
            number,
            size_bytes,
            prefill_bytes,
            &AtomicBool::new(false),
        )
        .await
    }

    /// As [`OpenSegment::create`], but the zero-fill stops early once `stop`
    /// is set (the segment is then only partly prefilled, which is safe).
    async fn create_until(
        fs: &Arc<dyn Fs>,
        dir: &std::path::Path,
        number: u64,
        size_bytes: u64,
        prefill_bytes: u64,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let path = segment_path(dir, number);
        let file = fs
            .open(&path, OpenMode::CreateNew)
            .await
            .map_err(|e| Error::io("create wal segment", &path, e))?;
        let mut segment = OpenSegment {
            number,
            path,
            file,
            prefilled_to: 0,
            dirty: false,
            has_records: false,
        };
        segment.zero_fill(0, prefill_bytes.min(size_bytes), stop).await?;
        segment
            .file
            .sync_data()
            .await
            .map_err(|e| Error::io("sync new wal segment", &segment.path, e))?;
        fs.sync_dir(dir)
            .await
            .map_err(|e| Error::io("sync wal directory", dir, e))?;
        Ok(segment)
    }

    /// Zero-fills from `max(written_end, prefilled_to)` to one window past
    /// `written_end`, capped at the segment size.
    async fn prefill(&mut self, written_end: u64, size_bytes: u64) -> Result<()> {
        let start = self.prefilled_to.max(written_end);
        let end = (written_end + WAL_PREFILL_WINDOW_BYTES).min(size_bytes.max(written_end));
        self.zero_fill(start, end, &AtomicBool::new(false)).await?;
        self.prefilled_to = self.prefilled_to.max(written_end);
        Ok(())
    }

    /// Writes zeros over `[start, end)` (stopping early once `stop` is set)
    /// and extends `prefilled_to` over what it wrote.
    async fn zero_fill(&mut self, start: u64, end: u64, stop: &AtomicBool) -> Result<()> {
        let mut offset = start;
        let mut zeros = Vec::new();
        while offset < end && !stop.load(Ordering::Acquire) {
            let len = (end - offset).min(PREALLOCATE_CHUNK_BYTES as u64) as usize;
            zeros.clear();
            zeros.resize(len, 0);
            zeros = self
                .file
                .write_all_at(zeros, offset)
                .await
                .map_err(|e| Error::io("zero-fill wal segment", &self.path, e))?;
            offset += len as u64;
            // NOTE: let the WAL task (same thread) run between chunks; a
            // backend whose writes complete at once would otherwise hold the
            // thread for the whole fill.
            tokio::task::yield_now().await;
        }
        self.prefilled_to = self.prefilled_to.max(offset);
        Ok(())
    }
}

/// An fdatasync in flight and what it covers.
struct InflightSync {
    handle: JoinHandle<io::Result<()>>,
    path: PathBuf,
    last_seqno: SeqNo,
    records: u64,
    waiters: Vec<Waiter>,
}

/// The WAL task's state.
pub(crate) struct WalWriter {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    queue: Arc<CommitQueue>,
    segment_size_bytes: u64,
    /// `Some` in `SyncMode::Interval`: the longest an unsynced write waits.
    sync_interval: Option<Duration>,
    segment: OpenSegment,
    /// The next segment, being created (fully zero-filled) in the
    /// background so that rotation does not wait for it.
    spare: Option<JoinHandle<Result<OpenSegment>>>,
    /// Tells the spare's zero-fill to stop (the store is closing).
    stop_spare: Arc<AtomicBool>,
    inflight: Option<InflightSync>,
    /// Written but not yet covered by a started sync.
    unsynced_waiters: Vec<Waiter>,
    unsynced_records: u64,
    unsynced_last_seqno: SeqNo,
    last_sync_started: Instant,
}

impl WalWriter {
    /// A writer appending to `segment`, which `create` made durable.
    pub fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        queue: Arc<CommitQueue>,
        segment: OpenSegment,
        segment_size_bytes: u64,
        sync_interval: Option<Duration>,
    ) -> Self {
        let unsynced_last_seqno = queue.visible_seqno();
        WalWriter {
            fs,
            dir,
            queue,
            segment_size_bytes,
            sync_interval,
            segment,
            spare: None,
            stop_spare: Arc::new(AtomicBool::new(false)),
            inflight: None,
            unsynced_waiters: Vec::new(),
            unsynced_records: 0,
            unsynced_last_seqno,
            last_sync_started: Instant::now(),
        }
    }

    /// Runs until the store closes (after a final sync) or a write or sync
    /// fails (after poisoning the queue).
    pub async fn run(mut self) {
        self.prepare_spare();
        let closed_cleanly = match self.run_loop().await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "WAL write or sync failed; the store refuses writes until reopened");
                self.fail_all(error);
                false
            }
        };
        // NOTE: wait for the spare so that no file of this store is still
        // being created once the store reports closed.
        self.stop_spare.store(true, Ordering::Release);
        let spare = match self.spare.take() {
            Some(spare) => spare.await.ok().and_then(|created| created.ok()),
            None => None,
        };
        if closed_cleanly {
            // NOTE: segments without a record are only preallocated space
            // (up to two zero-filled segments); a closed store gives it back.
            // Open would remove them anyway, and a crash here leaves nothing
            // that matters.
            let empty_current = (!self.segment.has_records).then_some(&self.segment.path);
            for path in spare.iter().map(|s| &s.path).chain(empty_current) {
                if let Err(error) = self.fs.remove_file(path).await {
                    tracing::warn!(%error, path = %path.display(), "could not remove an empty WAL segment");
                }
            }
        }
    }

    /// Starts creating the segment after the current one.
    fn prepare_spare(&mut self) {
        let fs = Arc::clone(&self.fs);
        let dir = self.dir.clone();
        let (number, size_bytes) = (self.segment.number + 1, self.segment_size_bytes);
        let stop = Arc::clone(&self.stop_spare);
        self.spare = Some(tokio::spawn(async move {
            OpenSegment::create_until(&fs, &dir, number, size_bytes, size_bytes, &stop).await
        }));
    }

    async fn run_loop(&mut self) -> Result<()> {
        loop {
            let group = self.queue.take_group();
            let took_work = !group.chunks.is_empty();
            let mut chunks = group.chunks.into_iter();
            while let Some(chunk) = chunks.next() {
                if let Err(error) = self.write_chunk(chunk).await {
                    // NOTE: the rest of the group's writers must hear of the
                    // failure too; `run` fails everything in `unsynced_waiters`.
                    self.unsynced_waiters.extend(chunks.flat_map(|c| c.waiters));
                    return Err(error);
                }
            }
            if self.inflight.is_some() {
                // NOTE: while a sync runs, keep writing what arrives: the next
                // sync starts the moment this one ends and covers all of it,
                // so groups are as large as the sync is long.
                if !took_work {
                    self.idle().await?;
                }
                continue;
            }
            if !self.unsynced_waiters.is_empty() {
                self.start_sync();
                continue;
            }
            if took_work {
                continue;
            }
            if group.closed {
                if self.segment.dirty {
                    self.start_sync();
                    self.finish_inflight().await?;
                }
                return Ok(());
            }
            self.idle().await?;
        }
    }

    /// Waits for new work, the in-flight sync, or the sync interval.
    async fn idle(&mut self) -> Result<()> {
        let interval_deadline = match self.sync_interval {
            Some(interval) if self.segment.dirty && self.inflight.is_none() => {
                Some(self.last_sync_started + interval)
            }
            _ => None,
        };
        let queue = Arc::clone(&self.queue);
        let wakeup = queue.wal_wakeup.notified();
        tokio::pin!(wakeup);
        match (&mut self.inflight, interval_deadline) {
            (Some(inflight), _) => {
                tokio::select! {
                    result = &mut inflight.handle => {
                        let inflight = self.inflight.take();
                        if let Some(inflight) = inflight {
                            let waiters = self.settle_sync(inflight, result)?;
                            // NOTE: start the next sync (covering what was
                            // written meanwhile) before waking this one's
                            // writers: each wake is a cross-thread syscall,
                            // and the disk should not wait for them.
                            if !self.unsynced_waiters.is_empty() {
                                self.start_sync();
                            }
                            for waiter in waiters {
                                let _ = waiter.send(Ok(()));
                            }
                        }
                    }
                    () = &mut wakeup => {}
                }
            }
            (None, Some(deadline)) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => self.start_sync(),
                    () = &mut wakeup => {}
                }
            }
            (None, None) => wakeup.await,
        }
        Ok(())
    }

    async fn write_chunk(&mut self, chunk: Chunk) -> Result<()> {
        if chunk.segment != self.segment.number {
            if let Err(error) = self.rotate(chunk.segment).await {
                self.unsynced_waiters.extend(chunk.waiters);
                return Err(error);
            }
        }
        let Chunk {
            offset,
            buf,
            records,
            last_seqno,
            waiters,
            ..
        } = chunk;
        // NOTE: waiters are registered before the write so that a failed
        // write fails them (in `run`) instead of dropping them.
        self.unsynced_waiters.extend(waiters);
        if !buf.is_empty() {
            let end = offset + buf.len() as u64;
            debug_assert!(offset <= self.segment.prefilled_to, "records are contiguous");
            let len = buf.len() as u64;
            let buf = self
                .segment
                .file
                .write_all_at(buf, offset)
                .await
                .map_err(|e| Error::io("write wal segment", &self.segment.path, e))?;
            self.queue.recycle_buffer(buf);
            self.segment.dirty = true;
            self.segment.has_records = true;
            let stats = &self.queue.stats;
            stats.writes.fetch_add(1, Ordering::Relaxed);
            stats.bytes_written.fetch_add(len, Ordering::Relaxed);
            if end + WAL_PREFILL_WINDOW_BYTES / 2 > self.segment.prefilled_to
                && self.segment.prefilled_to < self.segment_size_bytes
            {
                self.segment.prefill(end, self.segment_size_bytes).await?;
            }
        }
        self.unsynced_records += records;
        self.unsynced_last_seqno = self.unsynced_last_seqno.max(last_seqno);
        Ok(())
    }

    /// Switches to segment `number` once everything written to the current
    /// one is durable.
    async fn rotate(&mut self, number: u64) -> Result<()> {
        assert_eq!(number, self.segment.number + 1, "segments are used in order");
        self.finish_inflight().await?;
        if self.segment.dirty || !self.unsynced_waiters.is_empty() {
            self.start_sync();
            self.finish_inflight().await?;
        }
        let spare = match self.spare.take() {
            Some(spare) => spare.await.unwrap_or_else(|join| {
                Err(Error::io("create wal segment", &self.dir, io::Error::other(join)))
            })?,
            None => {
                let size = self.segment_size_bytes;
                OpenSegment::create(&self.fs, &self.dir, number, size, WAL_PREFILL_WINDOW_BYTES).await?
            }
        };
        assert_eq!(spare.number, number, "the spare is the next segment");
        self.segment = spare;
        self.prepare_spare();
        Ok(())
    }

    /// Starts an fdatasync covering every completed write.
    fn start_sync(&mut self) {
        assert!(self.inflight.is_none(), "at most one sync in flight");
        let file = Arc::clone(&self.segment.file);
        let handle = tokio::spawn(async move { file.sync_data().await });
        self.segment.dirty = false;
        self.last_sync_started = Instant::now();
        self.inflight = Some(InflightSync {
            handle,
            path: self.segment.path.clone(),
            last_seqno: self.unsynced_last_seqno,
            records: std::mem::take(&mut self.unsynced_records),
            waiters: std::mem::take(&mut self.unsynced_waiters),
        });
    }

    async fn finish_inflight(&mut self) -> Result<()> {
        if let Some(mut inflight) = self.inflight.take() {
            let result = (&mut inflight.handle).await;
            self.complete_sync(inflight, result)?;
        }
        Ok(())
    }

    fn complete_sync(
        &mut self,
        inflight: InflightSync,
        result: std::result::Result<io::Result<()>, tokio::task::JoinError>,
    ) -> Result<()> {
        for waiter in self.settle_sync(inflight, result)? {
            let _ = waiter.send(Ok(()));
        }
        Ok(())
    }

    /// Publishes a completed sync's seqno and returns its waiters, to be
    /// resolved `Ok` by the caller; on failure fails them and returns the
    /// error.
    fn settle_sync(
        &mut self,
        inflight: InflightSync,
        result: std::result::Result<io::Result<()>, tokio::task::JoinError>,
    ) -> Result<Vec<Waiter>> {
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io("sync wal segment", &inflight.path, e)),
            Err(join) => Err(Error::io(
                "sync wal segment",
                &inflight.path,
                io::Error::other(join.to_string()),
            )),
        };
        match outcome {
            Ok(()) => {
                self.queue.publish(inflight.last_seqno);
                let stats = &self.queue.stats;
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                stats
                    .synced_records
                    .fetch_add(inflight.records, Ordering::Relaxed);
                Ok(inflight.waiters)
            }
            Err(error) => {
                for waiter in inflight.waiters {
                    let _ = waiter.send(Err(error.clone()));
                }
                Err(error)
            }
        }
    }

    /// After a failure: poison the queue and fail every waiter we hold.
    fn fail_all(&mut self, error: Error) {
        self.queue.poison(error.clone());
        let held = std::mem::take(&mut self.unsynced_waiters);
        let inflight = self.inflight.take().map(|i| i.waiters).unwrap_or_default();
        for waiter in held.into_iter().chain(inflight) {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}
