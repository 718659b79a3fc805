//! Internal keys: a user key tagged with the seqno and kind of one write.
//!
//! Ordering (the memtable's and, later, every table's): user key ascending,
//! then seqno descending, then kind descending, so the newest version of a
//! key comes first.
//!
//! The trailer (`seqno << 8 | kind`) is packed and unpacked by [`Trailer`]
//! only; nothing else shifts or masks it.
//!
//! Invariants:
//! - A seqno fits in 56 bits (`MAX_SEQNO`); the trailer packs `seqno << 8 | kind`.
//! - An unknown kind byte is corruption ([`UnknownKind`], which decoders
//!   turn into `Error::Corruption` naming file and offset): every trailer
//!   read from disk is checked with [`Trailer::kind`] before it enters
//!   memory, so a trailer in memory always holds a known kind (a seek key's
//!   `0xff` is only ever compared, never read as a kind).

use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;

/// Sequence number of one write; the commit order of the store.
pub type SeqNo = u64;

/// Bytes of a trailer as stored at the end of an encoded key (`u64` LE).
pub const TRAILER_SIZE_BYTES: usize = 8;

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
    /// A range tombstone: the key is the range's start, the value its
    /// (excluded) end; it hides every older version of every key in
    /// `start..end` (see `range_del.rs`). It lives in a batch, the WAL and
    /// a table's range-tombstone block, never among a table's or a
    /// memtable's point entries.
    RangeDelete = 4,
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
        !matches!(self, ValueKind::Delete)
    }

    /// Decodes a kind byte read from disk; an unknown byte is corruption.
    pub fn decode(byte: u8) -> Result<ValueKind, UnknownKind> {
        match byte {
            0 => Ok(ValueKind::Delete),
            1 => Ok(ValueKind::Put),
            2 => Ok(ValueKind::Merge),
            3 => Ok(ValueKind::PutWithExpiry),
            4 => Ok(ValueKind::RangeDelete),
            _ => Err(UnknownKind(byte)),
        }
    }
}

/// A kind byte that names no [`ValueKind`]: bytes ringdb did not write.
/// The caller reports it as `Error::Corruption` with the file and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownKind(pub u8);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown value kind {:#04x}", self.0)
    }
}

/// The last 8 bytes of an internal key: `seqno << 8 | kind`. Ordered as a
/// `u64`; internal-key order sorts trailers descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Trailer(u64);

impl Trailer {
    /// The kind byte of a seek trailer: above every kind, so that a seek
    /// key sorts before every version with the same seqno.
    const SEEK_KIND_BYTE: u64 = 0xff;

    /// Packs `seqno` and `kind`.
    #[inline]
    pub fn new(seqno: SeqNo, kind: ValueKind) -> Trailer {
        debug_assert!(seqno <= MAX_SEQNO, "seqno {seqno} overflows the trailer");
        Trailer((seqno << 8) | kind as u64)
    }

    /// The trailer of a seek key at `snapshot`: every version with a seqno
    /// at most `snapshot` sorts at or after it. Its kind byte is none of
    /// the kinds: a seek trailer is compared, never read as a kind.
    #[inline]
    pub fn seek(snapshot: SeqNo) -> Trailer {
        Trailer((snapshot.min(MAX_SEQNO) << 8) | Trailer::SEEK_KIND_BYTE)
    }

    /// A trailer as stored (`u64`, little-endian on disk).
    #[inline]
    pub const fn from_raw(raw: u64) -> Trailer {
        Trailer(raw)
    }

    /// The packed form, as stored.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The seqno.
    #[inline]
    pub const fn seqno(self) -> SeqNo {
        self.0 >> 8
    }

    /// The kind byte, unchecked.
    #[inline]
    pub const fn kind_byte(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    /// The kind: the one check every trailer read from disk passes; an
    /// unknown kind is corruption.
    #[inline]
    pub fn kind(self) -> Result<ValueKind, UnknownKind> {
        ValueKind::decode(self.kind_byte())
    }

    /// The kind of a trailer already in memory, which holds a known kind
    /// (see the module's invariants). An unknown kind here is a bug: it
    /// fails a debug assertion, and a release build reads it as `Delete`
    /// so that a bug hides a value rather than invent one.
    #[inline]
    pub fn known_kind(self) -> ValueKind {
        match self.kind() {
            Ok(kind) => kind,
            Err(unknown) => {
                debug_assert!(false, "{unknown} in a trailer already in memory");
                ValueKind::Delete
            }
        }
    }
}

/// What one source (a memtable or a table) knows about one key at one
/// snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The newest visible version is this value.
    Found(Bytes),
    /// The newest visible version is a tombstone.
    Deleted,
    /// This source has no visible version; look further down.
    Missing,
    /// The newest visible version is a value with an expiry: the stored
    /// value, `expiry_ms ++ value` (see `ttl.rs`).
    Expiring(Bytes),
    /// The newest visible version is a merge operand: the reader must fold
    /// the key's older versions too (see `merge.rs`).
    Merge,
}

/// A user key with the seqno and kind of the write that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalKey {
    /// The key as the user gave it.
    pub user_key: Bytes,
    /// `seqno << 8 | kind`, packed by [`Trailer`].
    pub trailer: u64,
}

impl InternalKey {
    /// Tags `user_key` with `seqno` and `kind`.
    pub fn new(user_key: Bytes, seqno: SeqNo, kind: ValueKind) -> Self {
        InternalKey {
            user_key,
            trailer: Trailer::new(seqno, kind).raw(),
        }
    }

    /// The first internal key a reader at `snapshot` should look at for
    /// `user_key`: every version with a seqno at most `snapshot` sorts at or
    /// after it.
    pub fn seek_key(user_key: Bytes, snapshot: SeqNo) -> Self {
        InternalKey {
            user_key,
            trailer: Trailer::seek(snapshot).raw(),
        }
    }

    /// The seqno of the write.
    pub fn seqno(&self) -> SeqNo {
        Trailer::from_raw(self.trailer).seqno()
    }

    /// The kind of the write (see [`Trailer::known_kind`]).
    pub fn kind(&self) -> ValueKind {
        Trailer::from_raw(self.trailer).known_kind()
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

    #[test]
    fn trailer_packs_and_unpacks() {
        for kind in [
            ValueKind::Delete,
            ValueKind::Put,
            ValueKind::Merge,
            ValueKind::PutWithExpiry,
        ] {
            for seqno in [0, 1, 255, 256, MAX_SEQNO] {
                let trailer = Trailer::new(seqno, kind);
                assert_eq!(trailer.raw(), (seqno << 8) | kind as u64);
                assert_eq!(trailer.seqno(), seqno);
                assert_eq!(trailer.kind(), Ok(kind));
                assert_eq!(trailer.known_kind(), kind);
                assert_eq!(Trailer::from_raw(trailer.raw()), trailer);
            }
        }
        // A seek trailer sorts above every version at its snapshot.
        assert!(Trailer::seek(7) > Trailer::new(7, ValueKind::RangeDelete));
        assert!(Trailer::seek(7) < Trailer::new(8, ValueKind::Delete));
        assert_eq!(Trailer::seek(u64::MAX).seqno(), MAX_SEQNO);
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        for byte in 5..=u8::MAX {
            let trailer = Trailer::from_raw((9 << 8) | u64::from(byte));
            assert_eq!(trailer.kind(), Err(UnknownKind(byte)));
            assert_eq!(trailer.kind_byte(), byte);
            assert_eq!(ValueKind::decode(byte), Err(UnknownKind(byte)));
        }
        assert_eq!(UnknownKind(7).to_string(), "unknown value kind 0x07");
    }
}
