//! The tree's in-memory state: the memtable, the immutable memtables waiting
//! for flush and the current version, swapped together as one
//! `SuperVersion`.
//!
//! Ownership: writers rotate memtables (under the commit lock); the flush
//! task retires immutable memtables and installs versions; readers clone the
//! current `Arc<SuperVersion>` and read it without locks.
//!
//! Invariants:
//! - `imms` is ordered newest first; the flush task always flushes the
//!   oldest (the last).
//! - A memtable leaves `imms` in the same swap that installs the version
//!   holding its table, so a reader sees its data in one place or the other.
//! - A reader loads the visible seqno *before* the super-version: every
//!   write at or below that seqno is in the super-version it then loads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::compaction::CompactionOptions;
use crate::compaction::picker::pending_compaction_bytes;
use crate::key::SeqNo;
use crate::memtable::Memtable;
use crate::version::Version;

/// A memtable that takes no more writes and waits for its flush.
#[derive(Debug)]
pub(crate) struct ImmutableMemtable {
    /// The frozen memtable.
    pub memtable: Arc<Memtable>,
    /// The WAL segment the next memtable starts in: once this one is
    /// flushed, segments below it are obsolete.
    pub next_log_number: u64,
    /// Highest seqno in this memtable.
    pub last_seqno: SeqNo,
}

/// Everything a read looks at, as one consistent snapshot.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    /// The memtable taking writes.
    pub memtable: Arc<Memtable>,
    /// Immutable memtables, newest first.
    pub imms: Vec<Arc<ImmutableMemtable>>,
    /// The tables.
    pub version: Arc<Version>,
    /// Bytes above the levels' budgets in `version` (computed once per
    /// version, read by every write's backpressure check).
    pub pending_compaction_bytes: u64,
}

/// Holder of the current super-version and the flush signals.
#[derive(Debug)]
pub(crate) struct Tree {
    current: RwLock<Arc<SuperVersion>>,
    compaction_options: CompactionOptions,
    /// Wakes the flush task: a memtable was frozen, or the store closes.
    pub flush_wakeup: Notify,
    /// Wakes writers stalled on too many immutable memtables or level-0
    /// tables, and `Db::flush` callers.
    pub imm_room: Notify,
    /// Wakes the compaction task: a flush or compaction changed the version.
    pub compaction_wakeup: Notify,
    /// Readers at a seqno below this may miss versions that a flush or
    /// compaction dropped (see [`Tree::read_view`]).
    drop_horizon: AtomicU64,
}

impl Tree {
    pub fn new(
        memtable: Arc<Memtable>,
        version: Arc<Version>,
        compaction_options: CompactionOptions,
    ) -> Self {
        let pending_compaction_bytes = pending_compaction_bytes(&version, &compaction_options);
        Tree {
            current: RwLock::new(Arc::new(SuperVersion {
                memtable,
                imms: Vec::new(),
                version,
                pending_compaction_bytes,
            })),
            compaction_options,
            flush_wakeup: Notify::new(),
            imm_room: Notify::new(),
            compaction_wakeup: Notify::new(),
            drop_horizon: AtomicU64::new(0),
        }
    }

    /// Called by a flush or compaction right after it read the live
    /// snapshots, with the visible seqno read after them, before it
    /// installs its output. Every seqno of its input is at or below it.
    pub fn raise_drop_horizon(&self, visible_seqno: SeqNo) {
        self.drop_horizon.fetch_max(visible_seqno, Ordering::AcqRel);
    }

    /// A seqno and a super-version that a reader without a registered
    /// snapshot may read together. Flush and compaction drop a version
    /// when a newer one of the same key shares its snapshot stripe; for
    /// the job, a reader at a seqno above all its input is in the newest
    /// stripe, and one at a registered snapshot has its own. A reader that
    /// loaded its seqno earlier, and then a super-version holding such a
    /// job's output, could be neither: so when the seqno is below the
    /// horizon (loaded after the super-version, which the job installed
    /// after raising it), load both again. The seqno is loaded first, so
    /// that every write it covers is in the super-version.
    pub fn read_view(&self, visible_seqno: impl Fn() -> SeqNo) -> (SeqNo, Arc<SuperVersion>) {
        loop {
            let seqno = visible_seqno();
            let current = self.current();
            if seqno >= self.drop_horizon.load(Ordering::Acquire) {
                return (seqno, current);
            }
        }
    }

    /// The current super-version.
    pub fn current(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the super-version with `make(current)`; `version` (if
    /// given) replaces the tables and refreshes the compaction debt.
    fn replace(
        &self,
        version: Option<Arc<Version>>,
        make: impl FnOnce(&SuperVersion) -> (Arc<Memtable>, Vec<Arc<ImmutableMemtable>>),
    ) {
        let debt = version
            .as_ref()
            .map(|v| pending_compaction_bytes(v, &self.compaction_options));
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let (memtable, imms) = make(&current);
        let next = Arc::new(SuperVersion {
            memtable,
            imms,
            pending_compaction_bytes: debt.unwrap_or(current.pending_compaction_bytes),
            version: version.unwrap_or_else(|| Arc::clone(&current.version)),
        });
        let replaced = std::mem::replace(&mut *current, next);
        drop(current);
        // NOTE: dropped after the lock: if it was the last reference, its
        // memtables are freed and the files of its tables' pinned handles
        // closed here.
        drop(replaced);
    }

    /// Freezes the current memtable and installs `next` for writes.
    /// REQUIRES: the commit lock is held, so no insert is in progress.
    pub fn rotate(&self, next: Arc<Memtable>, next_log_number: u64, last_seqno: SeqNo) {
        self.replace(None, |sv| {
            let frozen = Arc::new(ImmutableMemtable {
                memtable: Arc::clone(&sv.memtable),
                next_log_number,
                last_seqno,
            });
            let mut imms = Vec::with_capacity(sv.imms.len() + 1);
            imms.push(frozen);
            imms.extend(sv.imms.iter().cloned());
            (next, imms)
        });
        self.flush_wakeup.notify_one();
    }

    /// Number of immutable memtables waiting for flush.
    pub fn imm_count(&self) -> usize {
        self.current.read().unwrap_or_else(|e| e.into_inner()).imms.len()
    }

    /// The next memtable to flush.
    pub fn oldest_imm(&self) -> Option<Arc<ImmutableMemtable>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .imms
            .last()
            .cloned()
    }

    /// Retires `flushed` and installs `version`, which holds its table.
    pub fn finish_flush(&self, flushed: &Arc<ImmutableMemtable>, version: Arc<Version>) {
        self.replace(Some(version), |sv| {
            debug_assert_eq!(sv.imms.last().map(|imm| Arc::ptr_eq(imm, flushed)), Some(true));
            let imms = sv
                .imms
                .iter()
                .filter(|imm| !Arc::ptr_eq(imm, flushed))
                .cloned()
                .collect();
            (Arc::clone(&sv.memtable), imms)
        });
        self.imm_room.notify_waiters();
        self.compaction_wakeup.notify_one();
    }

    /// Installs a version a compaction produced (memtables unchanged).
    pub fn install_version(&self, version: Arc<Version>) {
        self.replace(Some(version), |sv| (Arc::clone(&sv.memtable), sv.imms.clone()));
        self.imm_room.notify_waiters();
        self.compaction_wakeup.notify_one();
    }
}
