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

use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

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
}

/// Holder of the current super-version and the flush signals.
#[derive(Debug)]
pub(crate) struct Tree {
    current: RwLock<Arc<SuperVersion>>,
    /// Wakes the flush task: a memtable was frozen, or the store closes.
    pub flush_wakeup: Notify,
    /// Wakes writers stalled on too many immutable memtables.
    pub imm_room: Notify,
}

impl Tree {
    pub fn new(memtable: Arc<Memtable>, version: Arc<Version>) -> Self {
        Tree {
            current: RwLock::new(Arc::new(SuperVersion {
                memtable,
                imms: Vec::new(),
                version,
            })),
            flush_wakeup: Notify::new(),
            imm_room: Notify::new(),
        }
    }

    /// The current super-version.
    pub fn current(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn replace(&self, make: impl FnOnce(&SuperVersion) -> SuperVersion) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(make(&current));
    }

    /// Freezes the current memtable and installs `next` for writes.
    /// REQUIRES: the commit lock is held, so no insert is in progress.
    pub fn rotate(&self, next: Arc<Memtable>, next_log_number: u64, last_seqno: SeqNo) {
        self.replace(|sv| {
            let frozen = Arc::new(ImmutableMemtable {
                memtable: Arc::clone(&sv.memtable),
                next_log_number,
                last_seqno,
            });
            let mut imms = Vec::with_capacity(sv.imms.len() + 1);
            imms.push(frozen);
            imms.extend(sv.imms.iter().cloned());
            SuperVersion {
                memtable: next,
                imms,
                version: Arc::clone(&sv.version),
            }
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
        self.replace(|sv| {
            let imms = sv
                .imms
                .iter()
                .filter(|imm| !Arc::ptr_eq(imm, flushed))
                .cloned()
                .collect();
            debug_assert_eq!(sv.imms.last().map(|imm| Arc::ptr_eq(imm, flushed)), Some(true));
            SuperVersion {
                memtable: Arc::clone(&sv.memtable),
                imms,
                version,
            }
        });
        self.imm_room.notify_waiters();
    }
}
