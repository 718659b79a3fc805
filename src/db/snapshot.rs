//! Snapshots: a pinned seqno that reads can use and compaction respects.
//!
//! Ownership: `SnapshotList` is shared by every `Snapshot` handle (which
//! registers on creation and unregisters on drop) and the compaction task
//! (which reads the live seqnos when a job starts).
//!
//! Invariants:
//! - A registered seqno is never above the visible seqno when registered.
//! - While a snapshot lives, compaction keeps, for every key, the newest
//!   version at or below its seqno.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::key::SeqNo;

/// Live snapshot seqnos with their handle counts.
#[derive(Debug, Default)]
pub(crate) struct SnapshotList {
    live: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    /// Registers a snapshot at the seqno `visible` returns, read under the
    /// list's lock: so a flush or compaction that reads the list after its
    /// input's seqnos were all published either sees the new snapshot or
    /// knows it is at or above every input seqno (the "latest" stripe).
    pub fn acquire_visible(&self, visible: impl FnOnce() -> SeqNo) -> SeqNo {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let seqno = visible();
        *live.entry(seqno).or_insert(0) += 1;
        seqno
    }

    /// Registers a snapshot at `seqno`.
    #[cfg(test)]
    pub fn acquire(&self, seqno: SeqNo) {
        *self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(seqno)
            .or_insert(0) += 1;
    }

    /// Unregisters one snapshot at `seqno`.
    pub fn release(&self, seqno: SeqNo) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = live.get_mut(&seqno) {
            *count -= 1;
            if *count == 0 {
                live.remove(&seqno);
            }
        } else {
            debug_assert!(false, "released an unregistered snapshot {seqno}");
        }
    }

    /// Live snapshot seqnos, ascending.
    pub fn seqnos(&self) -> Vec<SeqNo> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_handles_per_seqno() {
        let list = SnapshotList::default();
        list.acquire(5);
        list.acquire(5);
        list.acquire(3);
        assert_eq!(list.seqnos(), vec![3, 5]);
        list.release(5);
        assert_eq!(list.seqnos(), vec![3, 5]);
        list.release(5);
        list.release(3);
        assert!(list.seqnos().is_empty());
    }
}
