//! The commit queue: where writers hand their batches to the WAL task.
//!
//! A writer, on its own task and thread, takes the commit lock once:
//! assigns seqnos, picks the WAL segment and offset of its record, appends the
//! framed record to the open chunk, inserts its entries into the memtable
//! (invisible until published; a durable write may do that after the lock
//! or leave it to the WAL task, below) and, for a durable write, leaves a
//! oneshot in the chunk. The WAL task takes whole chunks
//! (the group), writes each with one write, syncs, publishes the group's
//! last seqno and resolves the oneshots. A non-durable write publishes
//! itself before it unlocks: it never waits for another thread, and wakes
//! the WAL task only when its bytes are the first queued or fill the WAL
//! buffer ([`WAL_BUFFER_BYTES`]): a write (and a cross-thread wake) per put
//! would cost more than the put.
//!
//! Inserts after the lock: while the WAL task's groups are large (it
//! pipelines, [`InsertMode::AfterLock`]), a durable writer registers its
//! insert under the lock and does it right after: a skiplist insert in a
//! large memtable waits on cache misses, and under the lock it keeps every
//! other writer waiting on a futex
//! (`docs/decisions/0008-inserts-after-commit-lock.md`). The WAL task does
//! any not yet done before it publishes, as for deferred inserts.
//!
//! Deferred inserts: while the WAL task holds durable writes for more
//! writers ([`crate::commit::hold`]), a durable writer leaves its memtable
//! insert to the WAL task, which does it while it waits anyway: a few
//! closed-loop writers run one after another on one runtime thread, so every
//! insert they skip shortens the time until the last of them is queued.
//! Whoever publishes a seqno first inserts every deferred batch below it:
//! the WAL task before it publishes a sync, a non-durable writer (under the
//! lock) before it publishes itself. Both may insert the same batch at
//! once: [`Memtable::insert_once`] keeps one copy, and its size was
//! accounted at commit.
//!
//! Ownership: `CommitState` is behind the commit lock; the WAL task owns a
//! chunk from the moment it takes it.
//!
//! Invariants:
//! - Seqnos are assigned, memtable inserts done or registered (in
//!   `deferred`) and chunks appended in one critical section, so chunk
//!   order = seqno order = WAL byte order.
//! - `visible_seqno` only grows, and every seqno at or below it is in the
//!   memtable: inserted under the lock before it could be published, or a
//!   registered insert done (by whoever came first) before the seqno was
//!   published.
//! - Once `poisoned` or `closed` is set (under the lock), no chunk is added,
//!   and the queued ones have been failed or will be drained by the WAL task.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use crate::batch::{BatchEntry, decode_payload};
use crate::db::tree::Tree;
use crate::error::{Error, Result};
use crate::key::SeqNo;
use crate::limits::{MAX_GROUP_SIZE_BYTES, WAL_BUFFER_BYTES};
use crate::memtable::Memtable;
use crate::wal::format::{HEADER_SIZE_BYTES, RecordHeader};

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
}

/// A durable batch whose memtable insert happens outside the commit lock:
/// by its writer right after the lock, or by the WAL task when the writer
/// left it (`left_to_wal`).
struct DeferredInsert {
    memtable: Arc<Memtable>,
    first_seqno: SeqNo,
    entries: Vec<BatchEntry>,
    /// The writer left the insert to the WAL task (it does not do it).
    left_to_wal: bool,
    /// Every entry is in the memtable.
    done: AtomicBool,
}

impl DeferredInsert {
    /// Inserts the entries, unless that was done already.
    fn apply(&self) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        for (seqno, entry) in (self.first_seqno..).zip(&self.entries) {
            self.memtable
                .insert_once(entry.key.clone(), seqno, entry.kind, entry.value.clone());
        }
        self.done.store(true, Ordering::Release);
    }
}

/// Where a durable writer inserts its entries into the memtable. Every
/// mode inserts them before their seqno is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsertMode {
    /// Under the commit lock, like a non-durable write: the cheapest while
    /// the lock is rarely contended.
    UnderLock = 0,
    /// Right after the lock, by the writer; the WAL task does any it has
    /// not finished before it publishes. Many writers: a skiplist insert
    /// under the lock kept the other runtime thread waiting for it.
    AfterLock = 1,
    /// By the WAL task, while it holds the write for more writers.
    LeftToWal = 2,
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
    /// Durable writes started while another was in flight.
    pub overlapped_writes: AtomicU64,
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
    /// Deferred inserts in seqno order, until someone has done them.
    deferred: VecDeque<Arc<DeferredInsert>>,
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
    /// Where durable writers insert into the memtable (an [`InsertMode`]
    /// as `u8`), set by the WAL task after each sync.
    insert_mode: AtomicU8,
    /// Entries in `CommitState::deferred` (changed under the lock; read
    /// without it, so that a WAL task with nothing deferred skips the lock).
    deferred_count: AtomicUsize,
    visible_seqno: AtomicU64,
    poisoned: OnceLock<Error>,
    segment_size_bytes: u64,
    tree: Arc<Tree>,
    write_buffer_size_bytes: u64,
    max_immutable_memtables: usize,
    /// WAL counters.
    pub stats: WalStats,
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
                deferred: VecDeque::new(),
            }),
            wal_wakeup: Notify::new(),
            room: Notify::new(),
            queued_bytes: AtomicUsize::new(0),
            insert_mode: AtomicU8::new(InsertMode::UnderLock as u8),
            deferred_count: AtomicUsize::new(0),
            visible_seqno: AtomicU64::new(next_seqno.saturating_sub(1)),
            poisoned: OnceLock::new(),
            segment_size_bytes: options.wal_segment_size_bytes,
            tree,
            write_buffer_size_bytes: options.write_buffer_size_bytes,
            max_immutable_memtables: options.max_immutable_memtables,
            stats: WalStats::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CommitState> {
        // NOTE: no code panics while holding this lock except on a broken
        // invariant; the state stays consistent, so a poisoned lock is usable.
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

    /// Where durable writers do their memtable inserts from now on.
    pub fn set_insert_mode(&self, mode: InsertMode) {
        self.insert_mode.store(mode as u8, Ordering::Relaxed);
    }

    fn insert_mode(&self) -> InsertMode {
        match self.insert_mode.load(Ordering::Relaxed) {
            m if m == InsertMode::AfterLock as u8 => InsertMode::AfterLock,
            m if m == InsertMode::LeftToWal as u8 => InsertMode::LeftToWal,
            _ => InsertMode::UnderLock,
        }
    }

    /// Does every deferred insert of a seqno at or below `seqno` that is
    /// not done yet: the WAL task calls it before it publishes `seqno`.
    pub fn apply_deferred_through(&self, seqno: SeqNo) {
        self.apply_deferred(seqno, false);
    }

    /// Does the inserts that writers left to the WAL task: it calls this
    /// while it holds (it waits anyway). Inserts their writers do are left
    /// to them: doing them too would only race the writer.
    pub fn apply_left_to_wal(&self) {
        self.apply_deferred(SeqNo::MAX, true);
    }

    fn apply_deferred(&self, seqno: SeqNo, only_left_to_wal: bool) {
        if self.deferred_count.load(Ordering::Acquire) == 0 {
            return;
        }
        // NOTE: applied outside the lock, and popped only once done: a
        // non-durable writer that comes meanwhile applies them too (under
        // the lock) before it publishes past them.
        let (due, done) = {
            let mut state = self.lock();
            let done = self.pop_done(&mut state);
            let due: Vec<Arc<DeferredInsert>> = state
                .deferred
                .iter()
                .take_while(|insert| insert.first_seqno <= seqno)
                .filter(|insert| insert.left_to_wal || !only_left_to_wal)
                .filter(|insert| !insert.done.load(Ordering::Acquire))
                .cloned()
                .collect();
            (due, done)
        };
        // NOTE: dropped outside the lock (this may free the batches).
        drop(done);
        if due.is_empty() {
            return;
        }
        for insert in &due {
            insert.apply();
        }
        let done = self.pop_done(&mut self.lock());
        drop(done);
    }

    /// Takes the done inserts off the front of the list, for the caller to
    /// drop once it has let go of the lock.
    fn pop_done(&self, state: &mut CommitState) -> Vec<Arc<DeferredInsert>> {
        let mut done = Vec::new();
        while state
            .deferred
            .front()
            .is_some_and(|insert| insert.done.load(Ordering::Acquire))
        {
            done.extend(state.deferred.pop_front());
        }
        self.deferred_count.store(state.deferred.len(), Ordering::Release);
        done
    }

    /// Under the lock, before a non-durable write publishes: does every
    /// deferred insert (all have lower seqnos).
    fn apply_all_deferred(&self, state: &mut CommitState) {
        for insert in state.deferred.drain(..) {
            insert.apply();
        }
        self.deferred_count.store(0, Ordering::Release);
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

    /// Freezes a full memtable and starts a new one in a new WAL segment, if
    /// the queue of immutable memtables has room.
    fn maybe_rotate_memtable(&self, state: &mut CommitState) {
        if state.memtable.approximate_size_bytes() < self.write_buffer_size_bytes
            || self.tree.imm_count() >= self.max_immutable_memtables
        {
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
        self.tree
            .rotate(next, state.segment, state.next_seqno.saturating_sub(1));
    }

    /// Commits an encoded batch: returns a receiver that resolves after the
    /// covering sync when `durable`, or `None` when the write is already
    /// visible (non-durable).
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
            Error::InvalidOptions(format!("batch does not decode: {reason}"))
        })?;
        // NOTE: allocated before the commit lock, which every writer takes.
        let (waiter, receiver) = match durable.then(oneshot::channel) {
            Some((tx, rx)) => (Some(tx), Some(rx)),
            None => (None, None),
        };
        let (seqno_end, wake, own_insert) = {
            let mut state = self.lock();
            self.refuse(&state)?;
            self.maybe_rotate_memtable(&mut state);
            let (first_seqno, last_seqno, wake) =
                self.append_record(&mut state, &payload, payload_crc, count, waiter);
            let mode = if durable {
                self.insert_mode()
            } else {
                InsertMode::UnderLock
            };
            let own_insert = self.arrange_insert(&mut state, mode, first_seqno, entries);
            if !durable {
                self.apply_all_deferred(&mut state);
                self.publish(last_seqno);
            }
            (last_seqno, wake, own_insert)
        };
        debug_assert!(durable || self.visible_seqno() >= seqno_end);
        if wake {
            self.wal_wakeup.notify_one();
        }
        // NOTE: after the wake, so the WAL task writes while we insert.
        if let Some(insert) = own_insert {
            insert.apply();
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
        let before = self.queued_bytes.fetch_add(record_len as usize, Ordering::AcqRel);
        let wake = durable
            || before == 0
            || (before < WAL_BUFFER_BYTES && before + record_len as usize >= WAL_BUFFER_BYTES);
        (first_seqno, last_seqno, wake)
    }

    /// Under the commit lock: inserts `entries` (seqnos from `first_seqno`)
    /// into the memtable now, or, per `mode`, accounts for their size and
    /// queues them as a deferred insert. Returns the deferred insert the
    /// writer does itself after the lock, if any.
    fn arrange_insert(
        &self,
        state: &mut CommitState,
        mode: InsertMode,
        first_seqno: SeqNo,
        entries: Vec<BatchEntry>,
    ) -> Option<Arc<DeferredInsert>> {
        if mode == InsertMode::UnderLock {
            for (seqno, entry) in (first_seqno..).zip(entries) {
                state.memtable.insert(entry.key, seqno, entry.kind, entry.value);
            }
            return None;
        }
        let size = entries
            .iter()
            .map(|e| Memtable::entry_size_bytes(&e.key, &e.value))
            .sum();
        state.memtable.account(size);
        let left_to_wal = mode == InsertMode::LeftToWal;
        let insert = Arc::new(DeferredInsert {
            memtable: Arc::clone(&state.memtable),
            first_seqno,
            entries,
            left_to_wal,
            done: AtomicBool::new(false),
        });
        state.deferred.push_back(Arc::clone(&insert));
        self.deferred_count.store(state.deferred.len(), Ordering::Release);
        (!left_to_wal).then_some(insert)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use std::sync::atomic::Ordering;

    use super::{CommitQueue, InsertMode};
    use crate::batch::WriteBatch;
    use crate::db::tree::Tree;
    use crate::memtable::{Lookup, Memtable};

    fn queue() -> (CommitQueue, Arc<Memtable>) {
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

    /// While deferring, a durable write's entries reach the memtable only
    /// when the WAL task applies them up to its seqno, and before it may
    /// publish; its size is accounted at once.
    #[test]
    fn deferred_durable_inserts_are_applied_before_their_seqno_is_published() {
        let (queue, memtable) = queue();
        queue.set_insert_mode(InsertMode::LeftToWal);
        commit(&queue, "a", true);
        commit(&queue, "b", true);
        assert!(memtable.is_empty(), "inserts were left to the WAL task");
        assert!(memtable.approximate_size_bytes() > 0, "but accounted for");
        queue.apply_deferred_through(1);
        queue.publish(1);
        assert_eq!(
            lookup(&memtable, "a", &queue).as_deref(),
            Some(&b"value of a"[..])
        );
        assert_eq!(lookup(&memtable, "b", &queue), None, "seqno 2 is not published");
        queue.apply_deferred_through(2);
        queue.publish(2);
        assert_eq!(
            lookup(&memtable, "b", &queue).as_deref(),
            Some(&b"value of b"[..])
        );
        // Applying again (the WAL task after a writer did) changes nothing.
        let size = memtable.approximate_size_bytes();
        queue.apply_deferred_through(u64::MAX);
        assert_eq!(memtable.approximate_size_bytes(), size);
    }

    /// With many writers, a durable writer inserts its entries right after
    /// the lock: they are in the memtable when `commit` returns, accounted
    /// once, invisible until published, and the WAL task finds nothing to do.
    #[test]
    fn a_durable_write_after_the_lock_is_inserted_by_its_writer() {
        let (queue, memtable) = queue();
        queue.set_insert_mode(InsertMode::AfterLock);
        commit(&queue, "a", true);
        assert_eq!(memtable.iter().count(), 1, "the writer inserted it");
        let size = Memtable::entry_size_bytes(b"a", b"value of a");
        assert_eq!(memtable.approximate_size_bytes(), size, "accounted once");
        assert_eq!(lookup(&memtable, "a", &queue), None, "not published yet");
        queue.apply_deferred_through(1);
        assert_eq!(queue.deferred_count.load(Ordering::Acquire), 0);
        queue.publish(1);
        assert_eq!(
            lookup(&memtable, "a", &queue).as_deref(),
            Some(&b"value of a"[..])
        );
        assert_eq!(memtable.iter().count(), 1);
        assert_eq!(memtable.approximate_size_bytes(), size);
    }

    /// An insert its writer has not finished (it is still between the lock
    /// and its insert) is not the WAL task's to do while it holds, but is
    /// done by the WAL task before it publishes the seqno.
    #[test]
    fn the_wal_task_finishes_a_writers_insert_before_publishing() {
        let (queue, memtable) = queue();
        let mut batch = WriteBatch::new();
        batch.put("slow", "writer");
        let (payload, _) = batch.into_payload().unwrap();
        {
            let mut state = queue.lock();
            state.deferred.push_back(Arc::new(super::DeferredInsert {
                memtable: Arc::clone(&memtable),
                first_seqno: 1,
                entries: crate::batch::decode_payload(&payload).unwrap(),
                left_to_wal: false,
                done: std::sync::atomic::AtomicBool::new(false),
            }));
            queue.deferred_count.store(1, Ordering::Release);
        }
        queue.apply_left_to_wal();
        assert!(memtable.is_empty(), "held: the writer's own insert is left to it");
        queue.apply_deferred_through(1);
        queue.publish(1);
        assert_eq!(lookup(&memtable, "slow", &queue).as_deref(), Some(&b"writer"[..]));
        assert_eq!(queue.deferred_count.load(Ordering::Acquire), 0);
    }

    /// A non-durable write publishes at once, past durable writes whose
    /// inserts were deferred: it must insert them first, or a reader would
    /// see its seqno without the earlier ones.
    #[test]
    fn a_non_durable_write_inserts_the_deferred_ones_before_it_publishes() {
        let (queue, memtable) = queue();
        queue.set_insert_mode(InsertMode::LeftToWal);
        commit(&queue, "durable", true);
        queue.set_insert_mode(InsertMode::UnderLock);
        commit(&queue, "durable too", true);
        queue.set_insert_mode(InsertMode::LeftToWal);
        commit(&queue, "buffered", false);
        assert_eq!(queue.visible_seqno(), 3);
        for key in ["durable", "durable too", "buffered"] {
            let expected = format!("value of {key}");
            assert_eq!(
                lookup(&memtable, key, &queue).as_deref(),
                Some(expected.as_bytes()),
                "{key}"
            );
        }
        // The WAL task finds nothing left to do.
        queue.apply_deferred_through(u64::MAX);
        assert_eq!(memtable.iter().count(), 3);
    }
}
