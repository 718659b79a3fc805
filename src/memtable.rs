//! The memtable: a concurrent skiplist of internal keys to values.
//!
//! Ownership: writers insert under the commit lock (so inserts happen in
//! seqno order); readers look up concurrently, without locks, at a seqno
//! that the commit pipeline has published.
//!
//! Invariants:
//! - An internal key (user key, seqno) is inserted at most once.
//! - Entries with a seqno above the published (visible) seqno may be present;
//!   readers never ask for them.
//! - `approximate_size_bytes` only grows.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::key::{InternalKey, SeqNo, ValueKind};

/// Bookkeeping bytes counted per entry on top of key and value (skiplist
/// node, pointers, the `Bytes` handles).
const ENTRY_OVERHEAD_BYTES: u64 = 80;

/// What a memtable knows about one key at one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible version is this value.
    Found(Bytes),
    /// The newest visible version is a tombstone.
    Deleted,
    /// This memtable has no visible version; look further down.
    Missing,
}

/// A sorted, concurrent, in-memory table of recent writes.
#[derive(Debug, Default)]
pub struct Memtable {
    map: SkipMap<InternalKey, Bytes>,
    size_bytes: AtomicU64,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one version of a key.
    pub fn insert(&self, key: Bytes, seqno: SeqNo, kind: ValueKind, value: Bytes) {
        let size = key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES;
        self.map.insert(InternalKey::new(key, seqno, kind), value);
        self.size_bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// The newest version of `key` with a seqno at most `snapshot`.
    pub fn get(&self, key: &[u8], snapshot: SeqNo) -> Lookup {
        let seek = InternalKey::seek_key(Bytes::copy_from_slice(key), snapshot);
        let Some(entry) = self.map.lower_bound(Bound::Included(&seek)) else {
            return Lookup::Missing;
        };
        let found = entry.key();
        if found.user_key != key {
            return Lookup::Missing;
        }
        debug_assert!(found.seqno() <= snapshot);
        match found.kind() {
            ValueKind::Put => Lookup::Found(entry.value().clone()),
            ValueKind::Delete => Lookup::Deleted,
        }
    }

    /// Entries (all versions), in internal-key order.
    pub fn iter(&self) -> impl Iterator<Item = (InternalKey, Bytes)> + '_ {
        self.map
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
    }

    /// Bytes used by keys, values and bookkeeping, roughly.
    pub fn approximate_size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_sees_the_newest_version_at_each_snapshot() {
        let table = Memtable::new();
        table.insert("a".into(), 1, ValueKind::Put, "a1".into());
        table.insert("a".into(), 3, ValueKind::Delete, Bytes::new());
        table.insert("a".into(), 5, ValueKind::Put, "a5".into());
        table.insert("b".into(), 2, ValueKind::Put, "b2".into());
        assert_eq!(table.get(b"a", 0), Lookup::Missing);
        assert_eq!(table.get(b"a", 1), Lookup::Found("a1".into()));
        assert_eq!(table.get(b"a", 2), Lookup::Found("a1".into()));
        assert_eq!(table.get(b"a", 3), Lookup::Deleted);
        assert_eq!(table.get(b"a", 4), Lookup::Deleted);
        assert_eq!(table.get(b"a", 100), Lookup::Found("a5".into()));
        assert_eq!(table.get(b"b", 1), Lookup::Missing);
        assert_eq!(table.get(b"b", 2), Lookup::Found("b2".into()));
        assert_eq!(table.get(b"c", 100), Lookup::Missing);
        assert_eq!(table.get(b"", 100), Lookup::Missing);
        assert_eq!(table.iter().count(), 4);
        assert!(table.approximate_size_bytes() >= 4 * ENTRY_OVERHEAD_BYTES);
        let order: Vec<u64> = table.iter().map(|(k, _)| k.seqno()).collect();
        assert_eq!(order, vec![5, 3, 1, 2]);
    }
}
