//! The WAL task: group commit.
//!
//! One task, spawned on the store's runtime (`crate::db::runtime`; with
//! the threads or simulated backend, on the backend's own thread), loops:
//! take the queued chunks, and when no durability operation is in flight,
//! write everything taken so far (the group) with one durable write: a
//! write through the segment's `O_DSYNC` handle, which the kernel completes
//! only once the bytes are on disk, as an fdatasync would. The next group
//! collects in the queue while it runs; the task does not even wake for it.
//! When it completes, its last seqno is published, once the memtable
//! inserts its records' writers run after the commit lock are done, and
//! its waiters resolve `Ok`. A chunk is written whether or not those
//! inserts are done: the disk needs only the bytes, and the inserts have a
//! whole write's time to finish
//! (`docs/decisions/0026-the-wal-write-does-not-wait-for-inserts.md`).
//!
//! While few writers wait, a durable write goes through a third handle,
//! `O_DIRECT | O_DSYNC`, where the filesystem has one
//! ([`crate::Options::wal_direct_writes`]): the kernel then sends it to the
//! disk from this task's submission instead of an io-wq worker. Such a
//! write covers whole 4 KiB blocks, so it starts with the records already
//! written in the last, partly filled block (`wal::segment::Tail`) and ends with the
//! zeros the prefill left; it starts with nothing else in flight, and while
//! it runs nothing else writes to that block.
//!
//! Why one `O_DSYNC` write and not a write then an fdatasync: both run in
//! the kernel's io_uring worker, and the pair costs a second trip through
//! the ring (CQE, wake, SQE) between them per group
//! (`docs/decisions/0001-wal-odsync-write.md`). Writes that nobody
//! waits for (`SyncMode::Interval` and `Buffered`) are written through the
//! plain handle at once and made durable by an fdatasync: by the interval,
//! by the next durable write (which then syncs instead, because an
//! `O_DSYNC` write covers only its own bytes), or at rotation and close.
//!
//! With the disk idle, a durable write may still wait a little for the
//! writers the last one released, so that a closed loop of a few writers
//! forms one group instead of two alternating halves ([`GroupHold`]: at most
//! twice the last sync's duration and [`crate::Options::wal_max_group_hold`]).
//!
//! Writes nobody waits for are not taken one by one: while fewer than
//! [`WAL_BUFFER_BYTES`] of them are queued, nobody waits and the store is
//! open, the task leaves them in the queue for up to
//! [`crate::Options::wal_buffer_delay`] (writers wake it only for the
//! first bytes and when the buffer fills), then writes them at once.
//!
//! Nothing else is written while a durable write is in flight: a second
//! write overlapped behind it, plain writes during a sync and memtable
//! inserts left to this task all paid only while it ran on a thread of its
//! own (`docs/decisions/0018-wal-mechanisms-after-the-hop.md`).
//!
//! Segments: a segment is zero-filled (and synced) [`WAL_PREFILL_WINDOW_BYTES`]
//! ahead of its records, so durable writes overwrite allocated blocks and
//! need not journal a size change. A write to segment `n + 1` happens only
//! after segment `n` is fully synced, so after a crash only the newest
//! segment can hold a torn tail.
//!
//! Invariants:
//! - A waiter resolves `Ok` only after its bytes were written by a durable
//!   write that returned `Ok`, or after an fdatasync that started after its
//!   bytes' write completed returned `Ok`.
//! - At most one durability operation (an `O_DSYNC` write or an
//!   fdatasync) is in flight. Chunks are written in queue (= seqno = byte)
//!   order: a group's waiters resolve only after every earlier group's.
//! - A failed write or sync is never retried: the queue is poisoned, every
//!   waiter fails, and the task exits.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::commit::hold::GroupHold;
use crate::commit::policy;
use crate::commit::queue::{Chunk, CommitQueue, Group, RunningInserts, Waiter};
use crate::error::{Error, Result};
use crate::io::Fs;
use crate::key::SeqNo;
use crate::limits::{
    DIRECT_IO_ALIGN_BYTES, MAX_GROUP_SIZE_BYTES, WAL_BUFFER_BYTES, WAL_PREFILL_WINDOW_BYTES,
};
use crate::wal::segment::OpenSegment;

/// A WAL sync taking this long is logged as a warning: the disk, not the
/// store, is then what writers wait for.
const SLOW_WAL_SYNC: Duration = Duration::from_secs(1);

/// Most bytes one durable write merges from queued chunks.
const MAX_DURABLE_WRITE_BYTES: usize = 2 * MAX_GROUP_SIZE_BYTES;

/// An I/O operation the WAL task started and awaits later: polled once when
/// started, so that it is submitted at once (the task's waker is the one
/// woken when it completes), with no task of its own between the ring and
/// the WAL task.
enum Started {
    Running(futures::future::BoxFuture<'static, io::Result<Option<Vec<u8>>>>),
    Done(Option<io::Result<Option<Vec<u8>>>>),
}

impl Started {
    async fn start(mut operation: futures::future::BoxFuture<'static, io::Result<Option<Vec<u8>>>>) -> Self {
        use std::task::Poll;
        std::future::poll_fn(|cx| {
            Poll::Ready(match operation.as_mut().poll(cx) {
                Poll::Ready(result) => Started::Done(Some(result)),
                Poll::Pending => Started::Running(std::mem::replace(
                    &mut operation,
                    Box::pin(std::future::pending()),
                )),
            })
        })
        .await
    }
}

impl std::future::Future for Started {
    type Output = io::Result<Option<Vec<u8>>>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Started::Running(operation) => operation.as_mut().poll(cx),
            Started::Done(result) => std::task::Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(io::Error::other("operation polled after completion"))),
            ),
        }
    }
}

/// A durable write or an fdatasync in flight, and what it covers.
struct InflightSync {
    /// Resolves to the written buffer (for reuse), or `None` for a sync.
    handle: Started,
    /// A write through the `O_DIRECT` handle: it rewrites the blocks it
    /// covers, so nothing else may write to them until it completes.
    direct: bool,
    /// What it is, for the error: a durable write or an fdatasync.
    what: &'static str,
    started: Instant,
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
    /// The durability operation in flight, if any.
    inflight: Option<InflightSync>,
    /// Chunks taken from the queue and not yet written, in order.
    pending: VecDeque<Chunk>,
    /// Taken chunks whose memtable inserts were still running, in order:
    /// no seqno at or above one's last is published until it is done.
    running_inserts: VecDeque<RunningInserts>,
    /// [`crate::Options::wal_pipeline_min_writers`].
    pipeline_min_writers: usize,
    /// The last durable write went through the `O_DIRECT` handle.
    last_direct: bool,
    /// How long writes nobody waits for may stay queued (at most the sync
    /// interval); zero takes them as they come.
    buffer_delay: Duration,
    /// Since when queued writes nobody waits for have been left queued.
    held_since: Option<Instant>,
    /// Written through the plain handle but not yet covered by a started
    /// sync: their waiters (from `sync` requests), records and last seqno.
    unsynced_waiters: Vec<Waiter>,
    unsynced_records: u64,
    unsynced_last_seqno: SeqNo,
    last_sync_started: Instant,
    /// Whether the next durable write waits for more writers.
    hold: GroupHold,
    /// [`crate::Options::wal_direct_writes`], for the segments to come.
    direct_writes: bool,
    /// `run` has returned: a drop before that means the task was cancelled
    /// (its runtime shut down), and every waiter must hear why.
    finished: bool,
}

impl Drop for WalWriter {
    fn drop(&mut self) {
        if !self.finished {
            let gone = io::Error::other(
                "the tokio runtime that ran the store's WAL task has shut down; reopen the store",
            );
            self.fail_all(Error::io("run the WAL task", &self.dir, gone));
        }
    }
}

impl WalWriter {
    /// A writer appending to `segment`, which `create` made durable.
    pub fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        queue: Arc<CommitQueue>,
        segment: OpenSegment,
        options: &crate::options::Options,
    ) -> Self {
        let unsynced_last_seqno = queue.visible_seqno();
        let sync_interval = match options.sync_mode {
            crate::options::SyncMode::Interval(interval) => Some(interval),
            crate::options::SyncMode::Always | crate::options::SyncMode::Buffered => None,
        };
        let buffer_delay = sync_interval.map_or(options.wal_buffer_delay, |interval| {
            interval.min(options.wal_buffer_delay)
        });
        WalWriter {
            fs,
            dir,
            queue,
            segment_size_bytes: options.wal_segment_size_bytes,
            sync_interval,
            segment,
            spare: None,
            stop_spare: Arc::new(AtomicBool::new(false)),
            inflight: None,
            pending: VecDeque::new(),
            running_inserts: VecDeque::new(),
            pipeline_min_writers: options.wal_pipeline_min_writers,
            last_direct: false,
            buffer_delay,
            held_since: None,
            unsynced_waiters: Vec::new(),
            unsynced_records: 0,
            unsynced_last_seqno,
            last_sync_started: Instant::now(),
            hold: GroupHold::new(options.wal_max_group_hold, options.wal_pipeline_min_writers),
            direct_writes: options.wal_direct_writes,
            finished: false,
        }
    }

    /// Runs until the store closes (after a final sync) or a write or sync
    /// fails (after poisoning the queue).
    pub async fn run(mut self) {
        self.prepare_spare();
        let result = self.run_loop().await;
        // NOTE: wait for the spare before telling anyone the outcome, so that
        // no file of this store is still being written once a writer learns
        // of a failure or the store reports closed.
        self.stop_spare.store(true, Ordering::Release);
        let spare = match self.spare.take() {
            Some(spare) => spare.await.ok().and_then(|created| created.ok()),
            None => None,
        };
        let closed_cleanly = match result {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "WAL write or sync failed; the store refuses writes until reopened");
                self.fail_all(error);
                false
            }
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
        self.finished = true;
    }

    /// Starts creating the segment after the current one.
    fn prepare_spare(&mut self) {
        let fs = Arc::clone(&self.fs);
        let dir = self.dir.clone();
        let (number, size_bytes) = (self.segment.number + 1, self.segment_size_bytes);
        let direct = self.direct_writes;
        let stop = Arc::clone(&self.stop_spare);
        // NOTE: one window, not the whole segment: zeros far ahead of the
        // records only take disk space the current segment may need.
        self.spare = Some(tokio::spawn(async move {
            OpenSegment::create_until(
                &fs,
                &dir,
                number,
                (size_bytes, WAL_PREFILL_WINDOW_BYTES),
                direct,
                &stop,
            )
            .await
        }));
    }

    async fn run_loop(&mut self) -> Result<()> {
        let size_bytes = self.segment_size_bytes;
        self.segment.prefill_ahead_of(0, size_bytes, true).await?;
        loop {
            let group = self.take_group();
            let took_work = !group.chunks.is_empty();
            self.pending.extend(group.chunks);
            self.write_pending().await?;
            if self.inflight.is_some() || !self.pending.is_empty() {
                // NOTE: what arrives while a durable write or sync runs
                // collects in the queue, and `idle` wakes only when the
                // operation ends; the next operation then starts and
                // covers all of it, so groups are as large as the disk is
                // slow.
                if !took_work {
                    self.idle().await?;
                }
                continue;
            }
            if took_work {
                continue;
            }
            if group.closed {
                if self.segment.dirty {
                    self.start_sync().await;
                    self.finish_inflight().await?;
                }
                return Ok(());
            }
            self.idle().await?;
        }
    }

    /// Takes what is queued, unless it is writes nobody waits for that may
    /// stay queued a while longer.
    fn take_group(&mut self) -> Group {
        let hold_below = match self.held_since {
            _ if self.buffer_delay.is_zero() => 0,
            Some(since) if since.elapsed() >= self.buffer_delay => 0,
            _ => WAL_BUFFER_BYTES,
        };
        let group = self.queue.take_group(hold_below);
        self.running_inserts
            .extend(group.chunks.iter().filter_map(Chunk::running_inserts));
        if !group.held {
            self.held_since = None;
        } else if self.held_since.is_none() {
            self.held_since = Some(Instant::now());
        }
        group
    }

    /// Writes pending chunks in order, as far as it can with at most one
    /// durability operation in flight: chunks nobody waits for through the
    /// plain handle; a run of chunks with waiters with one durable write
    /// (or, after plain writes, a write and an fdatasync), once nothing is
    /// in flight.
    async fn write_pending(&mut self) -> Result<()> {
        while let Some(front) = self.pending.front() {
            if self.direct_write_owns_tail() {
                return Ok(());
            }
            let needs_durability = !front.waiters.is_empty();
            let front_segment = front.segment;
            if needs_durability && self.inflight.is_some() {
                return Ok(());
            }
            if needs_durability {
                let (waiters, bytes) = self.pending_totals();
                let now = Instant::now();
                // NOTE: not while plain writes wait for a sync.
                if !self.segment.dirty && self.hold.should_hold(waiters, bytes, now) {
                    return Ok(());
                }
                if let Some(ran_out) = self.hold.released(waiters, now) {
                    let stats = &self.queue.stats;
                    stats.held_writes.fetch_add(1, Ordering::Relaxed);
                    stats
                        .holds_ran_out
                        .fetch_add(u64::from(ran_out), Ordering::Relaxed);
                }
            }
            if front_segment != self.segment.number {
                let number = front_segment;
                if let Err(error) = self.rotate(number).await {
                    self.fail_pending();
                    return Err(error);
                }
                continue;
            }
            let (offset, buf, records, last_seqno, waiters) = self.take_run(needs_durability);
            let result = if needs_durability {
                self.write_durable(offset, buf, records, last_seqno, waiters)
                    .await
            } else {
                self.write_plain(offset, buf, records, last_seqno).await
            };
            if let Err(error) = result {
                self.fail_pending();
                return Err(error);
            }
        }
        if self.inflight.is_none() && !self.unsynced_waiters.is_empty() {
            self.start_sync().await;
        }
        Ok(())
    }

    /// A direct write in flight rewrites the last, partly filled block, where
    /// the next write would go. No write may start there until it completes:
    /// the disk may complete two writes of one block in either order, and a
    /// write through the page cache there could be overwritten by the older
    /// copy. (A direct write that ended on a block boundary leaves nothing
    /// shared.)
    fn direct_write_owns_tail(&self) -> bool {
        !self.segment.tail.bytes.is_empty() && self.inflight.as_ref().is_some_and(|op| op.direct)
    }

    /// Waiters and bytes in `pending`.
    fn pending_totals(&self) -> (usize, usize) {
        self.pending.iter().fold((0, 0), |(waiters, bytes), c| {
            (waiters + c.waiters.len(), bytes + c.buf.len())
        })
    }

    /// What [`policy`] decides from.
    fn observe(&self) -> policy::Observed {
        policy::Observed {
            inflight: usize::from(self.inflight.is_some()),
            hold_expected: self.hold.expected(),
            pipeline_min_writers: self.pipeline_min_writers,
            direct_available: self.segment.direct_file.is_some(),
            last_direct: self.last_direct,
        }
    }

    /// Pops the front chunk and, when `merge_followers`, every chunk of the
    /// same segment after it, as one contiguous run.
    fn take_run(&mut self, merge_followers: bool) -> (u64, Vec<u8>, u64, SeqNo, Vec<Waiter>) {
        // NOTE: the caller saw a front chunk.
        #[expect(clippy::expect_used, reason = "the caller saw a front chunk")]
        let first = self.pending.pop_front().expect("a pending chunk");
        let (offset, mut buf, mut records, mut last_seqno, mut waiters) = (
            first.offset,
            first.buf,
            first.records,
            first.last_seqno,
            first.waiters,
        );
        while merge_followers
            && let Some(next) = self.pending.front()
            && next.segment == first.segment
            && buf.len() + next.buf.len() <= MAX_DURABLE_WRITE_BYTES
        {
            let Some(next) = self.pending.pop_front() else {
                break;
            };
            debug_assert_eq!(offset + buf.len() as u64, next.offset, "chunks are contiguous");
            buf.extend_from_slice(&next.buf);
            self.queue.recycle_buffer(next.buf);
            records += next.records;
            last_seqno = last_seqno.max(next.last_seqno);
            waiters.extend(next.waiters);
        }
        (offset, buf, records, last_seqno, waiters)
    }

    /// Writes records nobody waits for through the plain handle.
    async fn write_plain(
        &mut self,
        offset: u64,
        buf: Vec<u8>,
        records: u64,
        last_seqno: SeqNo,
    ) -> Result<()> {
        if !buf.is_empty() {
            let len = buf.len() as u64;
            let end = offset + len;
            self.segment.tail.note_written(offset, &buf);
            self.segment
                .prefill_ahead_of(end, self.segment_size_bytes, false)
                .await?;
            let buf = self
                .segment
                .file
                .write_all_at(buf, offset)
                .await
                .map_err(|e| Error::io("write wal segment", &self.segment.path, e))?;
            self.queue.recycle_buffer(buf);
            self.segment.dirty = true;
            self.segment.has_records = true;
            self.count_write(len);
        }
        self.unsynced_records += records;
        self.unsynced_last_seqno = self.unsynced_last_seqno.max(last_seqno);
        Ok(())
    }

    /// Starts the one durability operation that covers a run with waiters.
    async fn write_durable(
        &mut self,
        offset: u64,
        buf: Vec<u8>,
        records: u64,
        last_seqno: SeqNo,
        waiters: Vec<Waiter>,
    ) -> Result<()> {
        debug_assert!(self.inflight.is_none(), "one durability operation at a time");
        if self.segment.dirty || buf.is_empty() {
            // NOTE: plain writes are waiting for a sync (an `O_DSYNC` write
            // would cover only its own bytes), or this is a bare `sync`
            // request: write through the plain handle, then fdatasync.
            // NOTE: waiters are registered before the write so that a
            // failed write fails them (in `run`) instead of dropping them.
            self.unsynced_waiters.extend(waiters);
            self.write_plain(offset, buf, records, last_seqno).await?;
            if self.segment.dirty {
                self.start_sync().await;
            } else {
                // Nothing unsynced: everything written is durable already.
                self.resolve_unsynced().await?;
            }
            return Ok(());
        }
        let direct = policy::plan(&self.observe()).handle == policy::DurableWrite::Direct;
        self.last_direct = direct;
        let mut end = offset + buf.len() as u64;
        if direct {
            // NOTE: the write reaches to the next block boundary.
            end = end.next_multiple_of(DIRECT_IO_ALIGN_BYTES as u64);
        }
        if let Err(error) = self
            .segment
            .prefill_ahead_of(end, self.segment_size_bytes, true)
            .await
        {
            self.unsynced_waiters.extend(waiters);
            return Err(error);
        }
        // NOTE: direct only for small groups, which wait for latency
        // (`docs/decisions/0003-wal-direct-writes.md`).
        let file = match (&self.segment.direct_file, direct) {
            (Some(direct_file), true) => Arc::clone(direct_file),
            _ => Arc::clone(&self.segment.dsync_file),
        };
        let len = buf.len() as u64;
        let (buf, offset) = if direct {
            let (out, start) = self.segment.tail.block_write(offset, &buf);
            self.queue.recycle_buffer(buf);
            (out, start)
        } else {
            self.segment.tail.note_written(offset, &buf);
            (buf, offset)
        };
        if direct {
            self.queue.stats.direct_writes.fetch_add(1, Ordering::Relaxed);
        }
        let handle = Started::start(Box::pin(
            async move { file.write_all_at(buf, offset).await.map(Some) },
        ))
        .await;
        self.segment.has_records = true;
        self.count_write(len);
        self.last_sync_started = Instant::now();
        self.inflight = Some(InflightSync {
            handle,
            direct,
            what: "durable write of wal segment",
            path: self.segment.path.clone(),
            started: Instant::now(),
            last_seqno: last_seqno.max(self.unsynced_last_seqno),
            records: records + std::mem::take(&mut self.unsynced_records),
            waiters,
        });
        Ok(())
    }

    fn count_write(&self, len: u64) {
        let stats = &self.queue.stats;
        stats.writes.fetch_add(1, Ordering::Relaxed);
        stats.bytes_written.fetch_add(len, Ordering::Relaxed);
    }

    /// With nothing in flight and nothing written unsynced: publishes and
    /// resolves what `unsynced_*` holds (a bare `sync` request).
    async fn resolve_unsynced(&mut self) -> Result<()> {
        debug_assert!(self.inflight.is_none() && !self.segment.dirty);
        self.inserts_done_through(self.unsynced_last_seqno).await?;
        self.queue.publish(self.unsynced_last_seqno);
        self.unsynced_records = 0;
        for waiter in std::mem::take(&mut self.unsynced_waiters) {
            let _ = waiter.send(Ok(()));
        }
        Ok(())
    }

    /// Moves the waiters of every pending chunk to `unsynced_waiters`, so
    /// that `run` fails them.
    fn fail_pending(&mut self) {
        let waiters = self.pending.drain(..).flat_map(|c| c.waiters);
        self.unsynced_waiters.extend(waiters);
    }

    /// Waits for the in-flight operation if there is one (or the end of
    /// the delay of writes left queued); otherwise for new work, the sync
    /// interval, or that delay.
    async fn idle(&mut self) -> Result<()> {
        let interval_deadline = match self.sync_interval {
            Some(interval) if self.segment.dirty && self.inflight.is_none() => {
                Some(self.last_sync_started + interval)
            }
            _ => None,
        };
        let held_deadline = self.held_since.map(|since| since + self.buffer_delay);
        let deadline = interval_deadline.into_iter().chain(held_deadline).min();
        let queue = Arc::clone(&self.queue);
        let wakeup = queue.wal_wakeup.notified();
        tokio::pin!(wakeup);
        let sleep = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        match self.inflight.as_mut() {
            // NOTE: no wakeup here: a writer's wake would only move its
            // chunk to `pending`, a lock and a task switch per write.
            Some(inflight) => {
                tokio::select! {
                    result = &mut inflight.handle => {
                        let inflight = self.inflight.take();
                        if let Some(inflight) = inflight {
                            let waiters = self.settle_sync(inflight, result).await?;
                            // NOTE: start the next durable write (covering
                            // what collected meanwhile) before waking this
                            // one's writers: each wake is a cross-thread
                            // syscall, and the disk should not wait for them.
                            let fresh = self.take_group();
                            self.pending.extend(fresh.chunks);
                            let next = self.write_pending().await;
                            for waiter in waiters {
                                let _ = waiter.send(Ok(()));
                            }
                            next?;
                        }
                    }
                    // NOTE: writes left queued are due: the loop takes them.
                    () = &mut sleep => {}
                }
            }
            None if let Some(hold_deadline) = self.hold.deadline() => {
                // NOTE: a hold is shorter than a tick of tokio's timer, so
                // this task yields until it ends; every durable writer wakes
                // it on arrival. It yields the CPU too (`sched_yield`), or it
                // keeps the woken writers off its CPU and the hold runs out
                // (`docs/decisions/0005-wal-group-hold.md`).
                let hold = async move {
                    while Instant::now() < hold_deadline {
                        std::thread::yield_now();
                        tokio::task::yield_now().await;
                    }
                };
                tokio::select! {
                    () = hold => {}
                    () = &mut wakeup => {}
                }
            }
            None => {
                tokio::select! {
                    () = &mut sleep => {
                        if interval_deadline.is_some_and(|due| due <= Instant::now()) {
                            self.start_sync().await;
                        }
                    }
                    () = &mut wakeup => {}
                }
            }
        }
        Ok(())
    }

    /// Switches to segment `number` once everything written to the current
    /// one is durable.
    async fn rotate(&mut self, number: u64) -> Result<()> {
        assert_eq!(number, self.segment.number + 1, "segments are used in order");
        self.finish_inflight().await?;
        if self.segment.dirty || !self.unsynced_waiters.is_empty() {
            self.start_sync().await;
            self.finish_inflight().await?;
        }
        let spare = match self.spare.take() {
            Some(spare) => spare.await.unwrap_or_else(|join| {
                Err(Error::io("create wal segment", &self.dir, io::Error::other(join)))
            })?,
            None => {
                let size = self.segment_size_bytes;
                OpenSegment::create(
                    &self.fs,
                    &self.dir,
                    number,
                    size,
                    WAL_PREFILL_WINDOW_BYTES,
                    self.direct_writes,
                )
                .await?
            }
        };
        assert_eq!(spare.number, number, "the spare is the next segment");
        self.segment = spare;
        self.prepare_spare();
        Ok(())
    }

    /// Starts an fdatasync covering every completed plain write.
    async fn start_sync(&mut self) {
        assert!(self.inflight.is_none(), "one durability operation at a time");
        let file = Arc::clone(&self.segment.file);
        let handle = Started::start(Box::pin(async move { file.sync_data().await.map(|()| None) })).await;
        self.segment.dirty = false;
        self.last_sync_started = Instant::now();
        self.inflight = Some(InflightSync {
            handle,
            direct: false,
            what: "sync wal segment",
            started: Instant::now(),
            path: self.segment.path.clone(),
            last_seqno: self.unsynced_last_seqno,
            records: std::mem::take(&mut self.unsynced_records),
            waiters: std::mem::take(&mut self.unsynced_waiters),
        });
    }

    async fn finish_inflight(&mut self) -> Result<()> {
        if let Some(mut inflight) = self.inflight.take() {
            let result = (&mut inflight.handle).await;
            for waiter in self.settle_sync(inflight, result).await? {
                let _ = waiter.send(Ok(()));
            }
        }
        Ok(())
    }

    /// Publishes a completed durability operation's seqno, once the
    /// memtable inserts it covers are done, and returns its waiters, to be
    /// resolved `Ok` by the caller; on failure (of the operation, or of an
    /// insert that panicked) keeps them for `run` to fail and returns the
    /// error.
    async fn settle_sync(
        &mut self,
        inflight: InflightSync,
        result: io::Result<Option<Vec<u8>>>,
    ) -> Result<Vec<Waiter>> {
        let outcome = match result {
            Ok(buf) => {
                if let Some(buf) = buf {
                    self.queue.recycle_buffer(buf);
                }
                Ok(())
            }
            Err(e) => Err(Error::io(inflight.what, &inflight.path, e)),
        };
        match outcome {
            Ok(()) => {
                let took = inflight.started.elapsed();
                if took >= SLOW_WAL_SYNC {
                    tracing::warn!(
                        path = %inflight.path.display(),
                        took_ms = took.as_millis() as u64,
                        writers = inflight.waiters.len(),
                        "a WAL sync was slow"
                    );
                }
                let waiting = self.pending_totals().0 + self.queue.queued_waiters();
                self.hold
                    .settled(inflight.waiters.len(), waiting, inflight.started.elapsed());
                if let Err(error) = self.inserts_done_through(inflight.last_seqno).await {
                    self.unsynced_waiters.extend(inflight.waiters);
                    return Err(error);
                }
                self.queue.publish(inflight.last_seqno);
                let stats = &self.queue.stats;
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                stats
                    .synced_records
                    .fetch_add(inflight.records, Ordering::Relaxed);
                Ok(inflight.waiters)
            }
            Err(error) => {
                // NOTE: `run` fails them after poisoning the queue, so that
                // a writer told of the failure finds the store refusing
                // writes.
                self.unsynced_waiters.extend(inflight.waiters);
                Err(error)
            }
        }
    }

    /// Waits until every memtable insert counted in a taken chunk whose
    /// last seqno is at most `seqno` is done, so that publishing `seqno`
    /// shows only entries the memtable holds. Errs if one of them panicked:
    /// its seqno must never be published.
    async fn inserts_done_through(&mut self, seqno: SeqNo) -> Result<()> {
        let queue = Arc::clone(&self.queue);
        loop {
            // NOTE: registered before the check, so that the last insert's
            // wake after it cannot be lost.
            let wakeup = queue.wal_wakeup.notified();
            tokio::pin!(wakeup);
            wakeup.as_mut().enable();
            while let Some(running) = self.running_inserts.front()
                && running.last_seqno <= seqno
                && running.done()
            {
                if running.panicked() {
                    return Err(queue.poisoned().cloned().unwrap_or_else(|| Error::Internal {
                        what: "a memtable insert panicked".to_owned(),
                    }));
                }
                self.running_inserts.pop_front();
            }
            if self
                .running_inserts
                .front()
                .is_none_or(|running| running.last_seqno > seqno)
            {
                return Ok(());
            }
            wakeup.await;
        }
    }

    /// After a failure: poison the queue and fail every waiter we hold.
    fn fail_all(&mut self, error: Error) {
        self.queue.poison(error.clone());
        self.fail_pending();
        let held = std::mem::take(&mut self.unsynced_waiters);
        let inflight: Vec<Waiter> = self.inflight.take().into_iter().flat_map(|i| i.waiters).collect();
        for waiter in held.into_iter().chain(inflight) {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use tokio::sync::oneshot;
    use tokio::sync::oneshot::error::TryRecvError;

    use super::WalWriter;
    use crate::commit::queue::test_support::{queue, start_late_insert};
    use crate::commit::queue::{CommitQueue, LateInsert};
    use crate::error::Result;
    use crate::io::Fs;
    use crate::io::sim::SimFs;
    use crate::options::Options;
    use crate::wal::segment::OpenSegment;

    /// A commit queue with its WAL task running on the simulated disk.
    async fn running_wal() -> Arc<CommitQueue> {
        let fs: Arc<dyn Fs> = SimFs::new(13);
        let dir = Path::new("/db");
        fs.create_dir_all(dir).await.unwrap();
        let options = Options::default();
        let (queue, _memtable) = queue();
        let queue = Arc::new(queue);
        let segment = OpenSegment::create(&fs, dir, 1, options.wal_segment_size_bytes, 0, false)
            .await
            .unwrap();
        let writer = WalWriter::new(fs, dir.to_path_buf(), Arc::clone(&queue), segment, &options);
        tokio::spawn(writer.run());
        queue
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// Appends a durable record of `key` whose memtable insert counts as
    /// running until the returned value drops, and lets the WAL task run
    /// until it has written the record, then a while longer, enough for it
    /// to complete that write on the simulated disk.
    async fn written_late_insert<'a>(
        queue: &'a CommitQueue,
        key: &str,
    ) -> (LateInsert<'a>, oneshot::Receiver<Result<()>>) {
        let late = start_late_insert(queue, key);
        queue.wal_wakeup.notify_one();
        let mut turns = 0;
        while queue.stats.writes.load(Ordering::Relaxed) == 0 {
            assert!(turns < 10_000, "the WAL task never wrote");
            tokio::task::yield_now().await;
            turns += 1;
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        late
    }

    /// A durable write goes to disk while its memtable insert still runs,
    /// but its seqno is published, and the write acknowledged, only once
    /// the insert is done: a reader never sees a seqno whose entries the
    /// memtable lacks.
    #[test]
    fn a_write_is_written_with_its_insert_running_and_published_once_it_is_done() {
        block_on(async {
            let queue = running_wal().await;
            let (insert, mut receiver) = written_late_insert(&queue, "a").await;
            assert_eq!(queue.visible_seqno(), 0, "published before its insert was done");
            assert!(
                matches!(receiver.try_recv(), Err(TryRecvError::Empty)),
                "acknowledged before its insert was done"
            );
            drop(insert);
            receiver.await.unwrap().unwrap();
            assert_eq!(queue.visible_seqno(), 1);
            queue.close();
        });
    }

    /// An insert that panics after its record was written: the write is
    /// failed, its seqno never published, and the store refuses writes.
    #[test]
    fn an_insert_that_panics_after_its_write_fails_it() {
        block_on(async {
            let queue = running_wal().await;
            let (insert, receiver) = written_late_insert(&queue, "a").await;
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _insert = insert;
                panic!("insert failed");
            }));
            assert!(panicked.is_err());
            assert!(
                receiver.await.unwrap().is_err(),
                "a write whose insert panicked is failed"
            );
            assert_eq!(queue.visible_seqno(), 0);
            assert!(queue.poisoned().is_some());
        });
    }
}
