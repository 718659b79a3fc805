//! The memtable: a concurrent skiplist of internal keys to values.
//!
//! Ownership: writers insert (a non-durable write under the commit lock, a
//! durable one right after it, side by side: `commit/queue.rs`); readers
//! look up concurrently, without locks, at a seqno that the commit pipeline
//! has published.
//!
//! Values, and keys too long to sit in the node, are copied into the
//! memtable's own chunks ([`ValueArena`]) instead of pointing into the
//! write's payload: the writer frees its payload at once, and the memtable
//! holds one allocation per 64 KiB of values instead of two per put freed
//! by the flush much later, a pattern glibc's malloc serves slowly (see
//! `docs/decisions/0011-memtable-value-chunks.md`). A value handed to a
//! reader shares its chunk, which stays allocated while the reader holds it
//! (as a block from a table shares the block).
//!
//! Invariants:
//! - An internal key (user key, seqno) is inserted at most once.
//! - Entries with a seqno above the published (visible) seqno may be present;
//!   readers never ask for them.
//! - `approximate_size_bytes` only grows.

use std::cmp::Ordering as KeyOrdering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use crossbeam_skiplist::SkipMap;

use crate::key::{InternalKey, Lookup, SeqNo, Trailer, ValueKind};
use crate::range_del::{RangeDels, RangeTombstone};

/// Bookkeeping bytes counted per entry on top of key and value (skiplist
/// node, pointers, the `Bytes` handles).
const ENTRY_OVERHEAD_BYTES: u64 = 80;

/// User keys up to this long are stored inside the skiplist node.
const INLINE_KEY_BYTES: usize = 30;

/// A user key as the skiplist stores it: short keys inline, so that a
/// comparison during a search reads the node it already loaded instead of
/// following a pointer to the key's bytes, a second cache miss per node
/// visited in a large memtable (see
/// `docs/decisions/0012-memtable-inline-keys.md`).
#[derive(Debug, Clone)]
enum UserKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY_BYTES] },
    Shared(Bytes),
}

impl UserKey {
    fn new(key: &Bytes) -> Self {
        let mut bytes = [0u8; INLINE_KEY_BYTES];
        match bytes.get_mut(..key.len()) {
            Some(head) => {
                head.copy_from_slice(key);
                UserKey::Inline {
                    len: key.len() as u8,
                    bytes,
                }
            }
            None => UserKey::Shared(key.clone()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            // NOTE: `len` was checked against the array when it was built.
            UserKey::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            UserKey::Shared(bytes) => bytes,
        }
    }

    fn to_bytes(&self) -> Bytes {
        match self {
            UserKey::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            UserKey::Shared(bytes) => bytes.clone(),
        }
    }
}

/// The skiplist's key: an internal key with short user keys inline. Orders
/// exactly as [`InternalKey`] does.
#[derive(Debug, Clone)]
struct MemKey {
    user_key: UserKey,
    /// `seqno << 8 | kind`, as in [`InternalKey`].
    trailer: u64,
}

impl MemKey {
    fn new(key: &InternalKey) -> Self {
        MemKey {
            user_key: UserKey::new(&key.user_key),
            trailer: key.trailer,
        }
    }

    fn seqno(&self) -> SeqNo {
        Trailer::from_raw(self.trailer).seqno()
    }

    /// As [`InternalKey::kind`].
    fn kind(&self) -> ValueKind {
        Trailer::from_raw(self.trailer).known_kind()
    }

    fn to_internal(&self) -> InternalKey {
        InternalKey {
            user_key: self.user_key.to_bytes(),
            trailer: self.trailer,
        }
    }
}

impl Ord for MemKey {
    // NOTE: forced inline: the skiplist search calls this a few times per
    // level, and left to the compiler it became a call once the crate grew
    // (docs/bench-log.md, "Fills against a7805ca").
    #[inline(always)]
    fn cmp(&self, other: &Self) -> KeyOrdering {
        let by_user_key = match (&self.user_key, &other.user_key) {
            (
                UserKey::Inline { len, bytes },
                UserKey::Inline {
                    len: other_len,
                    bytes: other_bytes,
                },
            ) => cmp_inline(bytes, *len, other_bytes, *other_len),
            _ => self.user_key.as_slice().cmp(other.user_key.as_slice()),
        };
        by_user_key.then_with(|| other.trailer.cmp(&self.trailer))
    }
}

/// Orders two inline user keys as their bytes order. Their arrays are
/// zero-padded, so comparing the arrays and then the lengths is the
/// byte order: a key that is a prefix of another ties with it up to the
/// shorter length and then loses on length. The arrays go 8 bytes at a
/// time as big-endian words: a search compares a node or two per level,
/// and a call to `memcmp` per comparison cost more than the keys' bytes
/// (see `docs/decisions/0012-memtable-inline-keys.md`).
#[inline(always)]
fn cmp_inline(
    bytes: &[u8; INLINE_KEY_BYTES],
    len: u8,
    other_bytes: &[u8; INLINE_KEY_BYTES],
    other_len: u8,
) -> KeyOrdering {
    const WORD_BYTES: usize = 8;
    let words = bytes.chunks_exact(WORD_BYTES);
    let other_words = other_bytes.chunks_exact(WORD_BYTES);
    let (rest, other_rest) = (words.remainder(), other_words.remainder());
    for (word, other_word) in words.zip(other_words) {
        let word = <[u8; WORD_BYTES]>::try_from(word).map_or(0, u64::from_be_bytes);
        let other_word = <[u8; WORD_BYTES]>::try_from(other_word).map_or(0, u64::from_be_bytes);
        if word != other_word {
            return word.cmp(&other_word);
        }
    }
    rest.cmp(other_rest).then(len.cmp(&other_len))
}

impl PartialOrd for MemKey {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<KeyOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == KeyOrdering::Equal
    }
}

impl Eq for MemKey {}

/// A seek bound on the skiplist from one on internal keys.
fn mem_bound(bound: Bound<&InternalKey>) -> Bound<MemKey> {
    match bound {
        Bound::Included(key) => Bound::Included(MemKey::new(key)),
        Bound::Excluded(key) => Bound::Excluded(MemKey::new(key)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Values (and keys) up to this size are copied into shared chunks; larger
/// ones get an allocation of their own.
const ARENA_VALUE_MAX_BYTES: usize = 4096;

/// Size of one chunk of the value arena.
const ARENA_CHUNK_BYTES: usize = 64 * 1024;

/// The chunks a memtable copies its values into. Each copy is a `Bytes`
/// sharing the chunk it lies in.
#[derive(Debug, Default)]
struct ValueArena {
    /// The free tail of the current chunk.
    chunk: BytesMut,
}

impl ValueArena {
    fn copy(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.len() > ARENA_VALUE_MAX_BYTES {
            return Bytes::copy_from_slice(bytes);
        }
        if self.chunk.capacity() - self.chunk.len() < bytes.len() {
            self.chunk = BytesMut::with_capacity(ARENA_CHUNK_BYTES);
        }
        self.chunk.extend_from_slice(bytes);
        self.chunk.split().freeze()
    }
}

/// The range tombstones of a memtable: few, so kept in a list beside the
/// skiplist, and fragmented again for readers after each insert (lazily,
/// by the first read that needs it).
#[derive(Debug, Default)]
struct RangeTombstones {
    list: Vec<RangeTombstone>,
    fragmented: Option<Arc<RangeDels>>,
}

/// A sorted, concurrent, in-memory table of recent writes.
#[derive(Debug, Default)]
pub struct Memtable {
    map: SkipMap<MemKey, Bytes>,
    size_bytes: AtomicU64,
    arena: Mutex<ValueArena>,
    /// Range tombstones held; read without the lock to skip it when 0.
    range_tombstone_count: AtomicUsize,
    range_tombstones: Mutex<RangeTombstones>,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one version of a key, or (kind `RangeDelete`) a range
    /// tombstone from `key` to `value`.
    pub fn insert(&self, key: Bytes, seqno: SeqNo, kind: ValueKind, value: Bytes) {
        let size = Self::entry_size_bytes(&key, &value);
        if kind == ValueKind::RangeDelete {
            let tombstone = RangeTombstone {
                start: Bytes::copy_from_slice(&key),
                end: Bytes::copy_from_slice(&value),
                seqno,
            };
            let mut tombstones = lock(&self.range_tombstones);
            tombstones.list.push(tombstone);
            tombstones.fragmented = None;
            // NOTE: counted under the lock, after the push, so a reader that
            // sees the count finds the tombstone.
            self.range_tombstone_count.fetch_add(1, Ordering::Release);
            self.size_bytes.fetch_add(size, Ordering::Relaxed);
            return;
        }
        let (key, value) = self.own(key, value);
        self.map
            .insert(MemKey::new(&InternalKey::new(key, seqno, kind)), value);
        self.size_bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// Copies `value`, and `key` if it is too long to sit in the node, into
    /// the arena, so that nothing here points into the caller's buffers.
    fn own(&self, key: Bytes, value: Bytes) -> (Bytes, Bytes) {
        let mut arena = lock(&self.arena);
        let key = match key.len() > INLINE_KEY_BYTES {
            true => arena.copy(&key),
            false => key,
        };
        (key, arena.copy(&value))
    }

    /// The bytes [`Memtable::insert`] accounts for one entry.
    pub fn entry_size_bytes(key: &[u8], value: &[u8]) -> u64 {
        key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES
    }

    /// The newest version of `key` with a seqno at most `snapshot`.
    /// Takes the key as `Bytes` so the seek key shares it instead of copying.
    pub fn get(&self, key: &Bytes, snapshot: SeqNo) -> Lookup {
        self.get_with_seqno(key, snapshot).0
    }

    /// As [`Memtable::get`], with the seqno of the version found (0 when
    /// `Missing`). Range tombstones are not consulted (see
    /// [`Memtable::range_dels`]).
    pub fn get_with_seqno(&self, key: &Bytes, snapshot: SeqNo) -> (Lookup, SeqNo) {
        let seek = MemKey::new(&InternalKey::seek_key(key.clone(), snapshot));
        let Some(entry) = self.map.lower_bound(Bound::Included(&seek)) else {
            return (Lookup::Missing, 0);
        };
        let found = entry.key();
        if found.user_key.as_slice() != key.as_ref() {
            return (Lookup::Missing, 0);
        }
        debug_assert!(found.seqno() <= snapshot);
        let lookup = match found.kind() {
            ValueKind::Put => Lookup::Found(entry.value().clone()),
            // NOTE: range tombstones never enter the skiplist (see `insert`).
            ValueKind::Delete | ValueKind::RangeDelete => Lookup::Deleted,
            ValueKind::PutWithExpiry => Lookup::Expiring(entry.value().clone()),
            ValueKind::Merge => Lookup::Merge,
        };
        (lookup, found.seqno())
    }

    /// The range tombstones, fragmented, or `None` when there are none
    /// (one atomic load: what a point read pays when none exist).
    pub fn range_dels(&self) -> Option<Arc<RangeDels>> {
        if self.range_tombstone_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut tombstones = lock(&self.range_tombstones);
        let RangeTombstones { list, fragmented } = &mut *tombstones;
        let fragmented = fragmented.get_or_insert_with(|| Arc::new(RangeDels::new(list.iter().cloned())));
        Some(Arc::clone(fragmented))
    }

    /// The range tombstones as inserted, for a flush.
    pub fn range_tombstones(&self) -> Vec<RangeTombstone> {
        lock(&self.range_tombstones).list.clone()
    }

    /// Entries (all versions), in internal-key order.
    pub fn iter(&self) -> impl Iterator<Item = (InternalKey, Bytes)> + '_ {
        self.map
            .iter()
            .map(|entry| (entry.key().to_internal(), entry.value().clone()))
    }

    /// Up to `limit` entries (all versions) in internal-key order, starting
    /// at `from`: the refill step of `iter::MemtableIter`, which copies a
    /// batch out so that no borrow of the skiplist lives across an await.
    pub fn entries_after(&self, from: Bound<&InternalKey>, limit: usize) -> Vec<(InternalKey, Bytes)> {
        self.map
            .range::<MemKey, _>((mem_bound(from), Bound::Unbounded))
            .take(limit)
            .map(|entry| (entry.key().to_internal(), entry.value().clone()))
            .collect()
    }

    /// Up to `limit` entries (all versions) in reverse internal-key order,
    /// starting at `to` and going down: the reverse refill step of
    /// `iter::MemtableIter`.
    pub fn entries_before(&self, to: Bound<&InternalKey>, limit: usize) -> Vec<(InternalKey, Bytes)> {
        self.map
            .range::<MemKey, _>((Bound::Unbounded, mem_bound(to)))
            .rev()
            .take(limit)
            .map(|entry| (entry.key().to_internal(), entry.value().clone()))
            .collect()
    }

    /// Bytes used by keys, values and bookkeeping, roughly.
    pub fn approximate_size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.range_tombstone_count.load(Ordering::Acquire) == 0
    }
}

/// Locks `mutex`. Nothing panics while holding the memtable's locks, so a
/// poisoned one is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies read back whole across chunk boundaries, and small ones sit
    /// side by side in a chunk.
    #[test]
    fn the_arena_copies_values_across_chunks() {
        let mut arena = ValueArena::default();
        let values: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| vec![(i % 251) as u8; (i as usize * 37) % 300])
            .collect();
        let copies: Vec<Bytes> = values.iter().map(|v| arena.copy(v)).collect();
        for (value, copy) in values.iter().zip(&copies) {
            assert_eq!(copy.as_ref(), value.as_slice());
        }
        let (first, second) = (&copies[1], &copies[2]);
        assert_eq!(second.as_ptr() as usize, first.as_ptr() as usize + first.len());
        let large = vec![7u8; ARENA_VALUE_MAX_BYTES + 1];
        assert_eq!(arena.copy(&large).as_ref(), large.as_slice());
        // 2,000 values of up to 300 bytes span several 64 KiB chunks.
        let total: usize = values.iter().map(Vec::len).sum();
        assert!(total > 4 * ARENA_CHUNK_BYTES);
    }

    /// What the memtable keeps points into its own chunks, not into the
    /// buffer the entry came from (a write's payload): long keys included.
    #[test]
    fn inserted_entries_do_not_point_into_the_callers_buffer() {
        let memtable = Memtable::new();
        let long_key = vec![b'k'; INLINE_KEY_BYTES + 10];
        let mut payload = long_key.clone();
        payload.extend_from_slice(b"the value");
        let payload = Bytes::from(payload);
        let range = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
        let key = payload.slice(..long_key.len());
        let value = payload.slice(long_key.len()..);
        memtable.insert(key, 1, ValueKind::Put, value);
        let (found_key, found_value) = memtable.iter().next().unwrap();
        assert_eq!(found_key.user_key.as_ref(), long_key.as_slice());
        assert_eq!(found_value.as_ref(), b"the value");
        let entry = memtable.map.front().unwrap();
        let UserKey::Shared(kept_key) = &entry.key().user_key else {
            panic!("a long key is not inline");
        };
        for kept in [kept_key.as_ptr() as usize, entry.value().as_ptr() as usize] {
            assert!(!range.contains(&kept), "the memtable points into the payload");
        }
    }

    #[test]
    fn get_sees_the_newest_version_at_each_snapshot() {
        let table = Memtable::new();
        table.insert("a".into(), 1, ValueKind::Put, "a1".into());
        table.insert("a".into(), 3, ValueKind::Delete, Bytes::new());
        table.insert("a".into(), 5, ValueKind::Put, "a5".into());
        table.insert("b".into(), 2, ValueKind::Put, "b2".into());
        assert_eq!(table.get(&Bytes::from_static(b"a"), 0), Lookup::Missing);
        assert_eq!(
            table.get(&Bytes::from_static(b"a"), 1),
            Lookup::Found("a1".into())
        );
        assert_eq!(
            table.get(&Bytes::from_static(b"a"), 2),
            Lookup::Found("a1".into())
        );
        assert_eq!(table.get(&Bytes::from_static(b"a"), 3), Lookup::Deleted);
        assert_eq!(table.get(&Bytes::from_static(b"a"), 4), Lookup::Deleted);
        assert_eq!(
            table.get(&Bytes::from_static(b"a"), 100),
            Lookup::Found("a5".into())
        );
        assert_eq!(table.get(&Bytes::from_static(b"b"), 1), Lookup::Missing);
        assert_eq!(
            table.get(&Bytes::from_static(b"b"), 2),
            Lookup::Found("b2".into())
        );
        assert_eq!(table.get(&Bytes::from_static(b"c"), 100), Lookup::Missing);
        assert_eq!(table.get(&Bytes::from_static(b""), 100), Lookup::Missing);
        assert_eq!(table.iter().count(), 4);
        assert!(table.approximate_size_bytes() >= 4 * ENTRY_OVERHEAD_BYTES);
        let order: Vec<u64> = table.iter().map(|(k, _)| k.seqno()).collect();
        assert_eq!(order, vec![5, 3, 1, 2]);
    }

    #[test]
    fn inline_and_shared_keys_order_as_internal_keys() {
        // Short keys, zero bytes, shared prefixes, and keys on both sides of
        // the inline limit.
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15 | 1);
        let alphabet = [0u8, 1, 0x61, 0xff];
        let keys: Vec<InternalKey> = (0..400)
            .map(|_| {
                let len = match rng.below(4) {
                    0 => INLINE_KEY_BYTES - 1 + rng.below(3) as usize,
                    _ => rng.below(12) as usize,
                };
                let bytes: Vec<u8> = (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect();
                InternalKey::new(Bytes::from(bytes), rng.below(4), ValueKind::Put)
            })
            .collect();
        for a in &keys {
            for b in &keys {
                let (ma, mb) = (MemKey::new(a), MemKey::new(b));
                assert_eq!(ma.cmp(&mb), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
        // And the skiplist built on them iterates in internal-key order.
        let table = Memtable::new();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        for key in &sorted {
            table.insert(key.user_key.clone(), key.seqno(), key.kind(), Bytes::new());
        }
        let order: Vec<InternalKey> = table.iter().map(|(k, _)| k).collect();
        assert_eq!(order, sorted);
        for key in &sorted {
            assert_eq!(
                table.get(&key.user_key, crate::key::MAX_SEQNO),
                Lookup::Found(Bytes::new()),
                "{key:?}"
            );
        }
    }

    #[test]
    fn entries_after_and_before_page_through_in_both_directions() {
        let table = Memtable::new();
        for (key, seqno) in [("a", 1), ("a", 4), ("b", 2), ("c", 3), ("c", 5)] {
            table.insert(key.into(), seqno, ValueKind::Put, Bytes::new());
        }
        let names = |entries: Vec<(InternalKey, Bytes)>| -> Vec<(Bytes, SeqNo)> {
            entries
                .into_iter()
                .map(|(k, _)| (k.user_key.clone(), k.seqno()))
                .collect()
        };
        let all = names(table.entries_after(Bound::Unbounded, 100));
        let expected: Vec<(Bytes, SeqNo)> = [("a", 4), ("a", 1), ("b", 2), ("c", 5), ("c", 3)]
            .into_iter()
            .map(|(k, s)| (Bytes::from(k), s))
            .collect();
        assert_eq!(all, expected);
        let a1 = InternalKey::new("a".into(), 1, ValueKind::Put);
        assert_eq!(
            names(table.entries_after(Bound::Included(&a1), 2)),
            expected[1..3].to_vec()
        );
        assert_eq!(
            names(table.entries_after(Bound::Excluded(&a1), 2)),
            expected[2..4].to_vec()
        );
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(names(table.entries_before(Bound::Unbounded, 100)), reversed);
        assert_eq!(
            names(table.entries_before(Bound::Included(&a1), 5)),
            reversed[3..].to_vec()
        );
        assert_eq!(
            names(table.entries_before(Bound::Excluded(&a1), 5)),
            reversed[4..].to_vec()
        );
        // A seek key past every version of "c" ends the forward walk.
        let past_c = InternalKey {
            user_key: "c".into(),
            trailer: 0,
        };
        assert!(table.entries_after(Bound::Included(&past_c), 10).is_empty());
        assert_eq!(table.entries_after(Bound::Unbounded, 0), Vec::new());
    }
}
