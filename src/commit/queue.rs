//! The commit queue: where writers hand their batches to the WAL task.
//!
//! A writer, on its own task and thread, takes the commit lock once:
//! assigns seqnos, picks the WAL segment and offset of its record, appends the
//! framed record to the open chunk and, for a durable write, leaves a
//! oneshot in the chunk. It inserts its entries into the memtable (invisible
//! until published): a durable write right after the lock, so that writers
//! on different threads insert side by side; a non-durable one under it.
//! The WAL task takes whole chunks
//! (the group), writes each with one write, syncs, publishes the group's
//! last seqno and resolves the oneshots. A non-durable write publishes
//! itself before it unlocks: it waits for another thread only behind a
//! durable write that waits for its sync, and wakes the WAL task only when
//! its bytes are the first queued or fill the WAL buffer
//! ([`WAL_BUFFER_BYTES`]): a write (and a cross-thread wake) per put would
//! cost more than the put.
//!
//! A chunk counts the inserts of its records still running after the lock.
//! The WAL task writes a chunk whatever its count (the disk needs only the
//! bytes), but publishes the chunk's seqnos only once the count is zero;
//! a taken chunk takes no more records, so from then on the count only
//! falls (`docs/decisions/0024-durable-inserts-after-the-commit-lock.md`,
//! `docs/decisions/0026-the-wal-write-does-not-wait-for-inserts.md`).
//!
//! Ownership: `CommitState` is behind the commit lock; the WAL task owns a
//! chunk from the moment it takes it.
//!
//! Invariants:
//! - Seqnos are assigned and chunks appended in one critical section, so
//!   chunk order = seqno order = WAL byte order.
//! - `visible_seqno` only grows, and every seqno at or below it is in the
//!   memtable: a non-durable write inserts under the lock before it
//!   publishes, and a durable write's seqno is published only by the WAL
//!   task, once the inserts its chunk and every earlier chunk counted are
//!   done ([`RunningInserts`]).
//! - Every durable write at or below `visible_seqno` is durable: a
//!   non-durable write publishes only when no seqno below it is unpublished,
//!   and otherwise waits, like a durable one, for the WAL task to publish.
//! - Once `poisoned` or `closed` is set (under the lock), no chunk is added,
//!   and the queued ones have been failed or will be drained by the WAL task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::batch::decode_payload;
use crate::db::tree::Tree;
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::limits::{MAX_GROUP_SIZE_BYTES, WAL_BUFFER_BYTES};
use crate::memtable::Memtable;
use crate::wal::format::{HEADER_SIZE_BYTES, RecordHeader};

/// How often a writer tries the taken commit lock before it sleeps on it:
/// the first half spinning, the rest yielding its CPU.
const COMMIT_LOCK_TRIES: u32 = 40;

/// Resolves a durable write (or a `sync` call) once its covering sync ends.
pub(crate) type Waiter = oneshot::Sender<Result<()>>;

/// Framed records bound for one contiguous range of one WAL segment.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// Segment the bytes belong to.
    pub segment: u64,
    /// Offset of `buf` in the segment.
    pub offset: u64,
    /// Framed records; may be empty for a bare sync request.
    pub buf: Vec<u8>,
    /// Number of write batches in `buf`.
    pub records: u64,
    /// Highest seqno in this chunk or before it.
    pub last_seqno: SeqNo,
    /// Who waits for these bytes to be durable.
    pub waiters: Vec<Waiter>,
    /// Memtable inserts of this chunk's records still running after the
    /// commit lock: its seqnos are published only once none is.
    inserting: Arc<InsertCount>,
}

/// The memtable inserts of one chunk's records that run after the commit
/// lock.
#[derive(Debug, Default)]
struct InsertCount {
    /// Still running.
    running: AtomicUsize,
    /// One of them panicked: the memtable may lack its entries.
    panicked: AtomicBool,
}

impl Chunk {
    /// The inserts of this chunk's records still running, if any, for the
    /// WAL task to wait for before it publishes the chunk's last seqno.
    /// Called on a taken chunk, whose count can only fall.
    pub fn running_inserts(&self) -> Option<RunningInserts> {
        (self.inserting.running.load(Ordering::Acquire) > 0).then(|| RunningInserts {
            last_seqno: self.last_seqno,
            inserts: Arc::clone(&self.inserting),
        })
    }
}

/// The memtable inserts of a taken chunk that were still running when the
/// WAL task took it: seqnos up to `last_seqno` may be published only once
/// they are done, and never if one panicked. The last insert to finish
/// wakes the WAL task.
#[derive(Debug)]
pub(crate) struct RunningInserts {
    /// The chunk's last seqno.
    pub last_seqno: SeqNo,
    inserts: Arc<InsertCount>,
}

impl RunningInserts {
    /// All of the chunk's inserts are done.
    pub fn done(&self) -> bool {
        self.inserts.running.load(Ordering::Acquire) == 0
    }

    /// One of the chunk's inserts panicked (the queue is poisoned).
    pub fn panicked(&self) -> bool {
        self.inserts.panicked.load(Ordering::Acquire)
    }
}

/// Counters the WAL task and writers keep.
#[derive(Debug, Default)]
pub(crate) struct WalStats {
    /// fdatasyncs of WAL segments completed.
    pub syncs: AtomicU64,
    /// Batches made durable by those syncs.
    pub synced_records: AtomicU64,
    /// Writes (one per chunk) issued to WAL segments.
    pub writes: AtomicU64,
    /// Durable writes that waited for more writers ([`crate::commit::hold`]).
    pub held_writes: AtomicU64,
    /// Of those, the ones whose wait ran out first.
    pub holds_ran_out: AtomicU64,
    /// Durable writes through the `O_DIRECT` handle.
    pub direct_writes: AtomicU64,
    /// Bytes of records written.
    pub bytes_written: AtomicU64,
}

struct CommitState {
    next_seqno: SeqNo,
    segment: u64,
    segment_offset: u64,
    chunks: VecDeque<Chunk>,
    /// Waiters in `chunks`: while there are none, the WAL task may leave
    /// the chunks queued for a while (see [`CommitQueue::take_group`]).
    queued_waiters: usize,
    free_buffers: Vec<Vec<u8>>,
    memtable: Arc<Memtable>,
    closed: bool,
}

/// Shared between writers, readers and the WAL task.
pub(crate) struct CommitQueue {
    state: Mutex<CommitState>,
    /// Wakes the WAL task: chunks queued, a sync requested, or close.
    pub wal_wakeup: Notify,
    /// Wakes writers waiting for room in the queue.
    pub room: Notify,
    /// Bytes queued and not yet taken by the WAL task. Changed only under
    /// the commit lock; read without it by the backpressure check.
    queued_bytes: AtomicUsize,
    visible_seqno: AtomicU64,
    poisoned: OnceLock<Error>,
    segment_size_bytes: u64,
    tree: Arc<Tree>,
    write_buffer_size_bytes: u64,
    max_immutable_memtables: usize,
    /// WAL record bytes written since the memtable started: what a reopen
    /// would replay for it. Changed only under the commit lock; read
    /// without it by the backpressure check.
    memtable_wal_bytes: AtomicU64,
    /// A memtable is full once `memtable_wal_bytes` reaches this: its share
    /// of `Options::max_wal_size_bytes` (`u64::MAX` without one).
    memtable_wal_limit_bytes: u64,
    /// WAL counters.
    pub stats: WalStats,
}

/// A durable write's memtable insert, done after the commit lock and
/// counted in its chunk until it is done.
pub(crate) struct LateInsert<'a> {
    queue: &'a CommitQueue,
    /// The memtable the write's seqnos belong to, even if another write
    /// rotates it before the insert.
    memtable: Arc<Memtable>,
    /// The count of the chunk the record went to.
    inserting: Arc<InsertCount>,
}

impl<'a> LateInsert<'a> {
    /// Under the commit lock, right after the record was appended: counts
    /// the insert in the open chunk (`None` if there is none, and then the
    /// caller inserts under the lock).
    fn register(queue: &'a CommitQueue, state: &mut CommitState) -> Option<Self> {
        let inserting = Arc::clone(&state.chunks.back()?.inserting);
        inserting.running.fetch_add(1, Ordering::Relaxed);
        Some(LateInsert {
            queue,
            memtable: Arc::clone(&state.memtable),
            inserting,
        })
    }
}

impl Drop for LateInsert<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // NOTE: the WAL holds a record the memtable may lack; publishing
            // its seqno would show a state that never was.
            self.queue.poison(Error::Internal {
                what: "a memtable insert panicked".to_owned(),
            });
            self.inserting.panicked.store(true, Ordering::Release);
        }
        // NOTE: releases the inserts to the WAL task, which publishes them;
        // only the chunk's last insert wakes it, since it waits for zero.
        if self.inserting.running.fetch_sub(1, Ordering::Release) == 1 {
            self.queue.wal_wakeup.notify_one();
        }
    }
}

/// What the WAL task takes in one go.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Chunks in seqno order.
    pub chunks: Vec<Chunk>,
    /// True once the store is closing and nothing more will be queued.
    pub closed: bool,
    /// Bytes nobody waits for were left queued (fewer than asked for).
    pub held: bool,
}

impl CommitQueue {
    /// A queue whose next write gets `next_seqno` and goes to the start of
    /// segment `segment`.
    pub fn new(
        next_seqno: SeqNo,
        segment: u64,
        options: &crate::options::Options,
        memtable: Arc<Memtable>,
        tree: Arc<Tree>,
    ) -> Self {
        CommitQueue {
            state: Mutex::new(CommitState {
                next_seqno,
                segment,
                segment_offset: 0,
                chunks: VecDeque::new(),
                queued_waiters: 0,
                free_buffers: Vec::new(),
                memtable,
                closed: false,
            }),
            wal_wakeup: Notify::new(),
            room: Notify::new(),
            queued_bytes: AtomicUsize::new(0),
            visible_seqno: AtomicU64::new(next_seqno.saturating_sub(1)),
            poisoned: OnceLock::new(),
            segment_size_bytes: options.wal_segment_size_bytes,
            tree,
            write_buffer_size_bytes: options.write_buffer_size_bytes,
            max_immutable_memtables: options.max_immutable_memtables,
            memtable_wal_bytes: AtomicU64::new(0),
            // NOTE: every memtable that may wait for its flush, and the one
            // taking writes, gets an equal share, so that together their WAL
            // stays within the limit however far the flushes lag.
            memtable_wal_limit_bytes: options.max_wal_size_bytes.map_or(u64::MAX, |limit| {
                (limit / (options.max_immutable_memtables as u64 + 1)).max(1)
            }),
            stats: WalStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CommitState> {
        // NOTE: the lock is held for at most a few microseconds (a
        // non-durable write's memtable insert), less than parking a thread
        // on the futex and waking it costs the two threads; so a taken lock
        // is retried for a while, spinning, then giving the CPU to whatever
        // else may run on it.
        for attempt in 0..COMMIT_LOCK_TRIES {
            match self.state.try_lock() {
                Ok(guard) => return guard,
                // NOTE: no code panics while holding this lock except on a
                // broken invariant; the state stays consistent, so a
                // poisoned lock is usable.
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) if attempt < COMMIT_LOCK_TRIES / 2 => {
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                }
                Err(TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The highest seqno readers may see.
    pub fn visible_seqno(&self) -> SeqNo {
        self.visible_seqno.load(Ordering::Acquire)
    }

    /// Makes every seqno up to `seqno` visible.
    pub fn publish(&self, seqno: SeqNo) {
        self.visible_seqno.fetch_max(seqno, Ordering::AcqRel);
    }

    /// The error that stopped writes, if any.
    pub fn poisoned(&self) -> Option<&Error> {
        self.poisoned.get()
    }

    fn refuse(&self, state: &CommitState) -> Result<()> {
        if let Some(cause) = self.poisoned.get() {
            return Err(Error::Poisoned {
                cause: Arc::new(cause.clone()),
            });
        }
        if state.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Durable writers (and `sync` callers) queued for the WAL task.
    pub fn queued_waiters(&self) -> usize {
        self.lock().queued_waiters
    }

    /// Bytes queued for the WAL task (a hint: read without the lock).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Freezes the memtable (if it holds anything) so the flush task writes
    /// it out; `Db::flush` then waits for the flushes to finish. Returns
    /// false while the queue of frozen memtables is full.
    pub fn freeze_memtable(&self) -> Result<bool> {
        let mut state = self.lock();
        self.refuse(&state)?;
        if state.memtable.is_empty() {
            return Ok(true);
        }
        if self.tree.imm_count() >= self.max_immutable_memtables {
            return Ok(false);
        }
        self.rotate_memtable(&mut state);
        Ok(true)
    }

    /// Whether `memtable`, the one taking writes, is full: it holds
    /// `write_buffer_size_bytes`, or its WAL records their share of
    /// `max_wal_size_bytes`.
    pub fn memtable_full(&self, memtable: &Memtable) -> bool {
        memtable.approximate_size_bytes() >= self.write_buffer_size_bytes
            || self.memtable_wal_bytes.load(Ordering::Acquire) >= self.memtable_wal_limit_bytes
    }

    /// Freezes a full memtable and starts a new one in a new WAL segment, if
    /// the queue of immutable memtables has room.
    fn maybe_rotate_memtable(&self, state: &mut CommitState) {
        if !self.memtable_full(&state.memtable) || self.tree.imm_count() >= self.max_immutable_memtables {
            return;
        }
        self.rotate_memtable(state);
    }

    fn rotate_memtable(&self, state: &mut CommitState) {
        // NOTE: the next memtable starts in a fresh segment, so that once the
        // frozen one is flushed every segment below it can go.
        if state.segment_offset > 0 {
            state.segment += 1;
            state.segment_offset = 0;
        }
        let next = Arc::new(Memtable::new());
        state.memtable = Arc::clone(&next);
        self.memtable_wal_bytes.store(0, Ordering::Release);
        self.tree
            .rotate(next, state.segment, state.next_seqno.saturating_sub(1));
    }

    /// Commits an encoded batch: returns a receiver that resolves after the
    /// covering sync when `durable` (or when an earlier durable write still
    /// waits for its sync), or `None` when the write is already visible.
    pub fn commit(
        &self,
        payload: Bytes,
        count: u32,
        durable: bool,
    ) -> Result<Option<oneshot::Receiver<Result<()>>>> {
        assert!(count > 0, "empty batches are not committed");
        let payload_crc = crc32c::crc32c(&payload);
        // NOTE: the payload was built by WriteBatch; failing to decode it is a bug.
        let entries = decode_payload(&payload).map_err(|reason| {
            debug_assert!(false, "own batch does not decode: {reason}");
            Error::Internal {
                what: format!("own batch does not decode: {reason}"),
            }
        })?;
        // NOTE: allocated before the commit lock, which every writer takes.
        let (mut waiter, mut receiver) = match durable.then(oneshot::channel) {
            Some((tx, rx)) => (Some(tx), Some(rx)),
            None => (None, None),
        };
        let mut state = self.lock();
        self.refuse(&state)?;
        self.maybe_rotate_memtable(&mut state);
        // NOTE: a non-durable write publishes its seqno, and with it
        // every seqno below; while a durable write below it waits for
        // its sync, that would show the durable write before it is on
        // disk. Such a write waits for that sync instead, as a later
        // write group waits for an earlier one in RocksDB.
        if waiter.is_none() && self.visible_seqno() < state.next_seqno.saturating_sub(1) {
            let (tx, rx) = oneshot::channel();
            (waiter, receiver) = (Some(tx), Some(rx));
        }
        let (first_seqno, last_seqno, wake) =
            self.append_record(&mut state, &payload, payload_crc, count, waiter);
        let entries = (first_seqno..).zip(entries);
        if durable && let Some(insert) = LateInsert::register(self, &mut state) {
            drop(state);
            for (seqno, entry) in entries {
                insert.memtable.insert(entry.key, seqno, entry.kind, entry.value);
            }
            // NOTE: dropping it counts the insert done and, for the chunk's
            // last running insert, wakes the WAL task.
            drop(insert);
            return Ok(receiver);
        }
        for (seqno, entry) in entries {
            state.memtable.insert(entry.key, seqno, entry.kind, entry.value);
        }
        if receiver.is_none() {
            self.publish(last_seqno);
        }
        drop(state);
        debug_assert!(receiver.is_some() || self.visible_seqno() >= last_seqno);
        if wake {
            self.wal_wakeup.notify_one();
        }
        Ok(receiver)
    }

    /// Under the commit lock: assigns `count` seqnos to a record of
    /// `payload`, places it in its segment (the next one if it would cross
    /// the end of this one) and appends it, framed, to the open chunk with
    /// `waiter`. Returns the first and last seqno and whether the WAL task
    /// must be woken: for a durable write, for the first bytes queued, and
    /// when the queue reaches `WAL_BUFFER_BYTES`.
    fn append_record(
        &self,
        state: &mut CommitState,
        payload: &Bytes,
        payload_crc: u32,
        count: u32,
        waiter: Option<Waiter>,
    ) -> (SeqNo, SeqNo, bool) {
        let record_len = (HEADER_SIZE_BYTES + payload.len()) as u64;
        let first_seqno = state.next_seqno;
        state.next_seqno += u64::from(count);
        let last_seqno = state.next_seqno - 1;
        if state.segment_offset > 0 && state.segment_offset + record_len > self.segment_size_bytes {
            state.segment += 1;
            state.segment_offset = 0;
        }
        let header = RecordHeader {
            payload_len: payload.len() as u32,
            segment: state.segment,
            first_seqno,
        };
        let durable = waiter.is_some();
        let chunk = self.open_chunk(state);
        header.encode(payload_crc, payload, &mut chunk.buf);
        chunk.records += 1;
        chunk.last_seqno = last_seqno;
        chunk.waiters.extend(waiter);
        state.queued_waiters += usize::from(durable);
        state.segment_offset += record_len;
        self.memtable_wal_bytes.fetch_add(record_len, Ordering::AcqRel);
        let before = self.queued_bytes.fetch_add(record_len as usize, Ordering::AcqRel);
        let wake = durable
            || before == 0
            || (before < WAL_BUFFER_BYTES && before + record_len as usize >= WAL_BUFFER_BYTES);
        (first_seqno, last_seqno, wake)
    }

    /// Asks the WAL task to make everything committed so far durable.
    pub fn request_sync(&self) -> Result<oneshot::Receiver<Result<()>>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            self.refuse(&state)?;
            let last_seqno = state.next_seqno.saturating_sub(1);
            let chunk = self.open_chunk(&mut state);
            chunk.last_seqno = last_seqno;
            chunk.waiters.push(tx);
            state.queued_waiters += 1;
        }
        self.wal_wakeup.notify_one();
        Ok(rx)
    }

    /// The chunk new records of the current segment go to.
    fn open_chunk<'a>(&self, state: &'a mut CommitState) -> &'a mut Chunk {
        let (segment, offset) = (state.segment, state.segment_offset);
        let reusable = state
            .chunks
            .back()
            .is_some_and(|c| c.segment == segment && c.buf.len() < MAX_GROUP_SIZE_BYTES);
        if !reusable {
            let buf = state.free_buffers.pop().unwrap_or_default();
            let last_seqno = state.next_seqno.saturating_sub(1);
            state.chunks.push_back(Chunk {
                segment,
                offset,
                buf,
                records: 0,
                last_seqno,
                waiters: Vec::new(),
                inserting: Arc::default(),
            });
        }
        let chunk = state.chunks.back_mut();
        // NOTE: a chunk was pushed just above when there was none to reuse.
        #[expect(clippy::expect_used, reason = "a chunk was pushed just above")]
        let chunk = chunk.expect("open chunk exists");
        debug_assert_eq!(chunk.offset + chunk.buf.len() as u64, offset);
        chunk
    }

    /// Takes the queued chunks, up to the group byte cap (at least one);
    /// but takes nothing (and sets `held`) while fewer than `hold_below`
    /// bytes are queued, nobody waits for them and the store is open.
    pub fn take_group(&self, hold_below: usize) -> Group {
        let mut group = Group::default();
        let mut taken_bytes = 0usize;
        {
            let mut state = self.lock();
            let queued = self.queued_bytes.load(Ordering::Acquire);
            if queued > 0 && queued < hold_below && state.queued_waiters == 0 && !state.closed {
                group.held = true;
                return group;
            }
            while let Some(front) = state.chunks.front() {
                if !group.chunks.is_empty() && taken_bytes + front.buf.len() > MAX_GROUP_SIZE_BYTES {
                    break;
                }
                taken_bytes += front.buf.len();
                if let Some(chunk) = state.chunks.pop_front() {
                    state.queued_waiters -= chunk.waiters.len();
                    group.chunks.push(chunk);
                }
            }
            self.queued_bytes.fetch_sub(taken_bytes, Ordering::AcqRel);
            group.closed = state.closed && state.chunks.is_empty();
        }
        if taken_bytes > 0 {
            self.room.notify_waiters();
        }
        group
    }

    /// Gives a written chunk's buffer back for reuse.
    pub fn recycle_buffer(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut state = self.lock();
        if state.free_buffers.len() < 4 && buf.capacity() <= 2 * MAX_GROUP_SIZE_BYTES {
            state.free_buffers.push(buf);
        }
    }

    /// Stops accepting writes; the WAL task drains what is queued, syncs and
    /// exits.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wal_wakeup.notify_one();
        self.room.notify_waiters();
        self.tree.imm_room.notify_waiters();
    }

    /// Records a failed WAL write or sync: refuses writes from now on and
    /// fails every queued waiter. Returns the chunks' waiters' count.
    pub fn poison(&self, error: Error) -> usize {
        let chunks: Vec<Chunk> = {
            let mut state = self.lock();
            let _ = self.poisoned.set(error.clone());
            self.queued_bytes.store(0, Ordering::Release);
            state.queued_waiters = 0;
            state.chunks.drain(..).collect()
        };
        self.room.notify_waiters();
        self.tree.imm_room.notify_waiters();
        self.tree.flush_wakeup.notify_one();
        let mut failed = 0;
        for waiter in chunks.into_iter().flat_map(|c| c.waiters) {
            let _ = waiter.send(Err(error.clone()));
            failed += 1;
        }
        failed
    }
}

/// Builders the commit queue's and the WAL task's tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use tokio::sync::oneshot;

    use super::{CommitQueue, LateInsert};
    use crate::batch::WriteBatch;
    use crate::db::tree::Tree;
    use crate::error::Result;
    use crate::memtable::Memtable;

    /// A queue whose first write gets seqno 1 and goes to segment 1, and
    /// its memtable.
    pub fn queue() -> (CommitQueue, Arc<Memtable>) {
        let options = crate::options::Options::default();
        let memtable = Arc::new(Memtable::new());
        let tree = Arc::new(Tree::new(
            Arc::clone(&memtable),
            Arc::new(crate::version::Version::default()),
            crate::compaction::CompactionOptions::from(&options),
        ));
        (
            CommitQueue::new(1, 1, &options, Arc::clone(&memtable), tree),
            memtable,
        )
    }

    /// Appends a durable record of `key` and counts its insert as running,
    /// as `commit` does before it releases the lock; the insert is done
    /// when the returned value drops. The receiver resolves when the
    /// record is acknowledged.
    pub fn start_late_insert<'a>(
        queue: &'a CommitQueue,
        key: &str,
    ) -> (LateInsert<'a>, oneshot::Receiver<Result<()>>) {
        let mut batch = WriteBatch::new();
        batch.put(key, "late");
        let (payload, count) = batch.into_payload().unwrap();
        let mut state = queue.lock();
        let crc = crc32c::crc32c(&payload);
        let (waiter, receiver) = oneshot::channel();
        queue.append_record(&mut state, &payload, crc, count, Some(waiter));
        (LateInsert::register(queue, &mut state).unwrap(), receiver)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::CommitQueue;
    use super::test_support::{queue, start_late_insert};
    use crate::batch::WriteBatch;
    use crate::key::Lookup;
    use crate::memtable::Memtable;

    fn commit(queue: &CommitQueue, key: &str, durable: bool) {
        let mut batch = WriteBatch::new();
        batch.put(key, format!("value of {key}"));
        let (payload, count) = batch.into_payload().unwrap();
        queue.commit(payload, count, durable).unwrap();
    }

    fn lookup(memtable: &Memtable, key: &str, queue: &CommitQueue) -> Option<Bytes> {
        match memtable.get(&Bytes::copy_from_slice(key.as_bytes()), queue.visible_seqno()) {
            Lookup::Found(value) => Some(value),
            _ => None,
        }
    }

    /// A chunk is taken while an insert of one of its records still runs
    /// after the commit lock, and says so: its last seqno waits for that
    /// insert. No record joins a taken chunk, so a later write gets a chunk
    /// of its own, with nothing running once its insert is done.
    #[test]
    fn a_chunk_taken_with_an_insert_running_reports_it_until_it_is_done() {
        let (queue, _memtable) = queue();
        commit(&queue, "a", true);
        let (insert, _receiver) = start_late_insert(&queue, "b");
        let first = queue.take_group(0);
        let records: Vec<u64> = first.chunks.iter().map(|chunk| chunk.records).collect();
        assert_eq!(records, vec![2], "a and b, in one chunk");
        let running = first.chunks[0].running_inserts().expect("b's insert still runs");
        assert_eq!(running.last_seqno, 2);
        assert!(!running.done());
        commit(&queue, "c", true);
        let second = queue.take_group(0);
        let records: Vec<u64> = second.chunks.iter().map(|chunk| chunk.records).collect();
        assert_eq!(records, vec![1], "c on its own");
        assert!(second.chunks[0].running_inserts().is_none(), "c's insert is done");
        drop(insert);
        assert!(running.done(), "b's insert is done");
        assert!(first.chunks[0].running_inserts().is_none());
    }

    /// An insert that panics poisons the queue (the WAL holds a record the
    /// memtable may lack): the queued chunk is failed, and writes are
    /// refused.
    #[test]
    fn a_panicking_insert_poisons_the_queue() {
        let (queue, _memtable) = queue();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (_insert, _receiver) = start_late_insert(&queue, "a");
            panic!("insert failed");
        }));
        assert!(panicked.is_err());
        assert!(queue.poisoned().is_some());
        assert!(
            queue.take_group(0).chunks.is_empty(),
            "poison failed the queued chunk"
        );
        let mut batch = WriteBatch::new();
        batch.put("b", "v");
        let (payload, count) = batch.into_payload().unwrap();
        assert!(queue.commit(payload, count, true).is_err(), "writes are refused");
    }

    /// A durable write's entries are in the memtable when `commit`
    /// returns, and invisible until the WAL task publishes their seqno; a
    /// non-durable write publishes itself.
    #[test]
    fn entries_are_inserted_at_commit_and_visible_once_published() {
        let (queue, memtable) = queue();
        commit(&queue, "a", true);
        assert_eq!(memtable.iter().count(), 1, "the writer inserted it");
        assert_eq!(lookup(&memtable, "a", &queue), None, "not published yet");
        queue.publish(1);
        assert_eq!(
            lookup(&memtable, "a", &queue).as_deref(),
            Some(&b"value of a"[..])
        );
        commit(&queue, "b", false);
        assert_eq!(
            lookup(&memtable, "b", &queue).as_deref(),
            Some(&b"value of b"[..])
        );
    }
}
