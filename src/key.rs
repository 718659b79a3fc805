//! Internal keys: a user key tagged with the seqno and kind of one write.
//!
//! Ordering (the memtable's and, later, every table's): user key ascending,
//! then seqno descending, then kind descending, so the newest version of a
//! key comes first.
//!
//! Invariants:
//! - A seqno fits in 56 bits (`MAX_SEQNO`); the trailer packs `seqno << 8 | kind`.

use std::cmp::Ordering;

use bytes::Bytes;

/// Sequence number of one write; the commit order of the store.
pub type SeqNo = u64;

/// Largest seqno the trailer encoding can hold.
pub const MAX_SEQNO: SeqNo = (1 << 56) - 1;

/// What a write did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key was deleted.
    Delete = 0,
    /// A value was stored.
    Put = 1,
    /// A merge operand: folded onto the older versions by the store's
    /// `MergeOperator` when read (see `merge.rs`).
    Merge = 2,
    /// A value with an expiry: the stored value is `expiry_ms:u64le ++ value`
    /// (see `ttl.rs`); it reads as a tombstone from `expiry_ms` on.
    PutWithExpiry = 3,
}

impl ValueKind {
    /// True for the kinds of format version 1 (`Delete`, `Put`): a table
    /// holding only these is written as version 1.
    pub fn is_version_1(self) -> bool {
        matches!(self, ValueKind::Delete | ValueKind::Put)
    }

    /// True when an entry of this kind carries a value (every kind but a
    /// tombstone); a batch entry then has a value field.
    pub fn has_value(self) -> bool {
        matches!(self, ValueKind::Put | ValueKind::PutWithExpiry | ValueKind::Merge)
    }

    /// Decodes a kind byte read from disk.
    pub fn from_u8(byte: u8) -> Option<ValueKind> {
        match byte {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::Merge),
            3 => Some(ValueKind::PutWithExpiry),
            _ => None,
        }
    }
}

/// A user key with the seqno and kind of the write that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalKey {
    /// The key as the user gave it.
    pub user_key: Bytes,
    /// `seqno << 8 | kind`.
    pub trailer: u64,
}

impl InternalKey {
    /// Tags `user_key` with `seqno` and `kind`.
    pub fn new(user_key: Bytes, seqno: SeqNo, kind: ValueKind) -> Self {
        debug_assert!(seqno <= MAX_SEQNO, "seqno {seqno} overflows the trailer");
        InternalKey {
            user_key,
            trailer: (seqno << 8) | kind as u64,
        }
    }

    /// The first internal key a reader at `snapshot` should look at for
    /// `user_key`: every version with a seqno at most `snapshot` sorts at or
    /// after it.
    pub fn seek_key(user_key: Bytes, snapshot: SeqNo) -> Self {
        InternalKey {
            user_key,
            trailer: (snapshot.min(MAX_SEQNO) << 8) | 0xff,
        }
    }

    /// The seqno of the write.
    pub fn seqno(&self) -> SeqNo {
        self.trailer >> 8
    }

    /// The kind of the write. A trailer built by this module always holds a
    /// valid kind; a seek key's `0xff` reads as `Put`.
    pub fn kind(&self) -> ValueKind {
        ValueKind::from_u8((self.trailer & 0xff) as u8).unwrap_or(ValueKind::Put)
    }
}

impl Ord for InternalKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.user_key
            .cmp(&other.user_key)
            .then_with(|| other.trailer.cmp(&self.trailer))
    }
}

impl PartialOrd for InternalKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_sorts_first() {
        let a1 = InternalKey::new(Bytes::from_static(b"a"), 1, ValueKind::Put);
        let a2 = InternalKey::new(Bytes::from_static(b"a"), 2, ValueKind::Delete);
        let b1 = InternalKey::new(Bytes::from_static(b"b"), 1, ValueKind::Put);
        let mut keys = vec![b1.clone(), a1.clone(), a2.clone()];
        keys.sort();
        assert_eq!(keys, vec![a2.clone(), a1.clone(), b1]);
        assert_eq!(a2.seqno(), 2);
        assert_eq!(a2.kind(), ValueKind::Delete);
        // A seek at snapshot 1 lands before a1 and after a2.
        let seek = InternalKey::seek_key(Bytes::from_static(b"a"), 1);
        assert!(seek > a2 && seek < a1);
    }
}
