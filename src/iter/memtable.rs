//! Iterating a memtable without holding a borrow of its skiplist.
//!
//! Ownership: a `MemtableIter` belongs to one reader and holds its
//! memtable alive (`Arc<Memtable>`). It copies entries (key and value
//! handles, not bytes) out of the skiplist in batches of
//! [`MEMTABLE_ITER_BATCH`], so nothing borrowed from the skiplist is held
//! across an await of the merge above it.
//!
//! Writers may insert while the iterator lives. A refill sees the skiplist
//! as it is then; entries inserted since are either after the iterator's
//! snapshot (readers skip them) or not at all: a reader's snapshot is at
//! most the published seqno, and every entry at or below it was inserted
//! before it was published.
//!
//! Invariants:
//! - `batch` is sorted in internal-key order if `!reverse`, in reverse
//!   order if `reverse`; the iterator is valid iff `pos < batch.len()`.
//! - A step that runs off the batch refills from the key it left, strictly
//!   past it, so no entry is seen twice and none is skipped.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::key::InternalKey;
use crate::memtable::Memtable;

/// Entries copied out of the skiplist per refill.
pub const MEMTABLE_ITER_BATCH: usize = 256;

/// A cursor over one memtable's entries (all versions, tombstones included)
/// in internal-key order, both ways.
#[derive(Debug)]
pub struct MemtableIter {
    memtable: Arc<Memtable>,
    /// The entries around the position, in the direction of travel.
    batch: Vec<(InternalKey, Bytes)>,
    /// Index of the current entry in `batch`.
    pos: usize,
    /// True when `batch` is in descending order.
    reverse: bool,
}

impl MemtableIter {
    /// An iterator over `memtable`, positioned nowhere (invalid).
    pub fn new(memtable: Arc<Memtable>) -> Self {
        MemtableIter {
            memtable,
            batch: Vec::new(),
            pos: 0,
            reverse: false,
        }
    }

    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.pos < self.batch.len()
    }

    /// The current entry's key. REQUIRES: `valid()` (`None` otherwise).
    #[inline]
    pub fn key(&self) -> Option<&InternalKey> {
        self.batch.get(self.pos).map(|(key, _)| key)
    }

    /// The current user key; empty when invalid.
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        self.key().map_or(&[], |key| key.user_key.as_ref())
    }

    /// The current trailer; 0 when invalid.
    #[inline]
    pub fn trailer(&self) -> u64 {
        self.key().map_or(0, |key| key.trailer)
    }

    /// The current value; empty when invalid.
    #[inline]
    pub fn value(&self) -> Bytes {
        self.batch
            .get(self.pos)
            .map_or_else(Bytes::new, |(_, value)| value.clone())
    }

    /// Positions at the first entry.
    pub fn seek_to_first(&mut self) {
        self.fill_forward(Bound::Unbounded);
    }

    /// Positions at the last entry.
    pub fn seek_to_last(&mut self) {
        self.fill_reverse(Bound::Unbounded);
    }

    /// Positions at the first entry at or after `target`.
    pub fn seek(&mut self, target: &InternalKey) {
        self.fill_forward(Bound::Included(target));
    }

    /// Positions at the last entry at or before `target`.
    pub fn seek_for_prev(&mut self, target: &InternalKey) {
        self.fill_reverse(Bound::Included(target));
    }

    /// Moves to the next entry (invalid after the last). No-op when invalid.
    pub fn next(&mut self) {
        let Some((current, _)) = self.batch.get(self.pos) else {
            return;
        };
        if !self.reverse && self.pos + 1 < self.batch.len() {
            self.pos += 1;
            return;
        }
        let current = current.clone();
        self.fill_forward(Bound::Excluded(&current));
    }

    /// Moves to the previous entry (invalid before the first). No-op when
    /// invalid.
    pub fn prev(&mut self) {
        let Some((current, _)) = self.batch.get(self.pos) else {
            return;
        };
        if self.reverse && self.pos + 1 < self.batch.len() {
            self.pos += 1;
            return;
        }
        let current = current.clone();
        self.fill_reverse(Bound::Excluded(&current));
    }

    fn fill_forward(&mut self, from: Bound<&InternalKey>) {
        self.batch = self.memtable.entries_after(from, MEMTABLE_ITER_BATCH);
        self.pos = 0;
        self.reverse = false;
        debug_assert!(self.batch.is_sorted_by(|a, b| a.0 < b.0));
    }

    fn fill_reverse(&mut self, to: Bound<&InternalKey>) {
        self.batch = self.memtable.entries_before(to, MEMTABLE_ITER_BATCH);
        self.pos = 0;
        self.reverse = true;
        debug_assert!(self.batch.is_sorted_by(|a, b| a.0 > b.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ValueKind;

    /// Walks a memtable larger than a batch both ways, switching direction
    /// in the middle, and lands every seek.
    #[test]
    fn walks_past_batch_boundaries_both_ways() {
        let memtable = Arc::new(Memtable::new());
        let count = MEMTABLE_ITER_BATCH as u64 * 2 + 7;
        for i in 0..count {
            let key = Bytes::from(format!("k{i:05}"));
            memtable.insert(key, i + 1, ValueKind::Put, Bytes::from(format!("v{i}")));
        }
        let mut iter = MemtableIter::new(Arc::clone(&memtable));
        assert!(!iter.valid());
        iter.seek_to_first();
        let mut seen = Vec::new();
        while iter.valid() {
            seen.push(iter.key().unwrap().seqno());
            iter.next();
        }
        assert_eq!(seen, (1..=count).collect::<Vec<_>>());
        iter.next();
        assert!(!iter.valid());

        iter.seek_to_last();
        let mut seen = Vec::new();
        while iter.valid() {
            seen.push(iter.key().unwrap().seqno());
            iter.prev();
        }
        assert_eq!(seen, (1..=count).rev().collect::<Vec<_>>());

        // Switch direction in the middle, off a batch boundary.
        let target = InternalKey::seek_key(Bytes::from("k00300"), u64::MAX);
        iter.seek(&target);
        assert_eq!(iter.user_key(), b"k00300");
        iter.prev();
        assert_eq!(iter.user_key(), b"k00299");
        iter.next();
        assert_eq!(iter.user_key(), b"k00300");
        assert_eq!(iter.value(), Bytes::from("v300"));
        iter.seek_for_prev(&target);
        assert_eq!(iter.user_key(), b"k00299");
        iter.seek_for_prev(&InternalKey {
            user_key: Bytes::from("k00300"),
            trailer: 0,
        });
        assert_eq!(iter.user_key(), b"k00300");
        iter.seek_for_prev(&InternalKey::seek_key(Bytes::from("a"), 5));
        assert!(!iter.valid());
        assert_eq!(iter.user_key(), b"");
        assert_eq!(iter.trailer(), 0);
        iter.seek(&InternalKey::seek_key(Bytes::from("z"), 5));
        assert!(!iter.valid());
    }
}
