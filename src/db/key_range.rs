//! [`KeyRange`]: the key ranges [`crate::Db::compact_range`] accepts.
//!
//! Every range of keys that [`crate::Db::scan`] takes (`"a".."z"`,
//! `&b"a"[..]..=&b"z"[..]`, `(Bound<Vec<u8>>, Bound<Vec<u8>>)`, ...) and the
//! full range `..`, which needs no key type.
//!
//! Invariants:
//! - The trait is sealed: its implementations are these and no others, so
//!   it can grow without breaking a user.

use std::ops::{Bound, Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

use bytes::Bytes;

mod sealed {
    pub trait Sealed {}
}

/// A range of keys: `..`, or any standard range or pair of bounds whose
/// keys are `AsRef<[u8]>` (`&str`, `String`, `&[u8]`, `Vec<u8>`, `Bytes`).
///
/// ```
/// # futures::executor::block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
/// db.compact_range("a".."z").await?;
/// db.compact_range(&b"a"[..]..=&b"z"[..]).await?;
/// db.compact_range(..).await?;
/// # Ok::<(), ringdb::Error>(())
/// # }).unwrap();
/// ```
pub trait KeyRange: sealed::Sealed {
    /// The start and end bounds as owned keys.
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>);
}

fn own<K: AsRef<[u8]>>(bound: Bound<K>) -> Bound<Bytes> {
    bound.map(|k| Bytes::copy_from_slice(k.as_ref()))
}

impl sealed::Sealed for RangeFull {}
impl KeyRange for RangeFull {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        (Bound::Unbounded, Bound::Unbounded)
    }
}

impl<K: AsRef<[u8]>> sealed::Sealed for Range<K> {}
impl<K: AsRef<[u8]>> KeyRange for Range<K> {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        (own(Bound::Included(self.start)), own(Bound::Excluded(self.end)))
    }
}

impl<K: AsRef<[u8]>> sealed::Sealed for RangeInclusive<K> {}
impl<K: AsRef<[u8]>> KeyRange for RangeInclusive<K> {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        let (start, end) = self.into_inner();
        (own(Bound::Included(start)), own(Bound::Included(end)))
    }
}

impl<K: AsRef<[u8]>> sealed::Sealed for RangeFrom<K> {}
impl<K: AsRef<[u8]>> KeyRange for RangeFrom<K> {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        (own(Bound::Included(self.start)), Bound::Unbounded)
    }
}

impl<K: AsRef<[u8]>> sealed::Sealed for RangeTo<K> {}
impl<K: AsRef<[u8]>> KeyRange for RangeTo<K> {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        (Bound::Unbounded, own(Bound::Excluded(self.end)))
    }
}

impl<K: AsRef<[u8]>> sealed::Sealed for RangeToInclusive<K> {}
impl<K: AsRef<[u8]>> KeyRange for RangeToInclusive<K> {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        (Bound::Unbounded, own(Bound::Included(self.end)))
    }
}

impl<K: AsRef<[u8]>> sealed::Sealed for (Bound<K>, Bound<K>) {}
impl<K: AsRef<[u8]>> KeyRange for (Bound<K>, Bound<K>) {
    fn into_bounds(self) -> (Bound<Bytes>, Bound<Bytes>) {
        (own(self.0), own(self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(range: impl KeyRange) -> (Bound<Bytes>, Bound<Bytes>) {
        range.into_bounds()
    }

    #[test]
    fn every_range_form_gives_its_bounds() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(bounds(..), (Bound::Unbounded, Bound::Unbounded));
        assert_eq!(
            bounds("a".."z"),
            (Bound::Included(b("a")), Bound::Excluded(b("z")))
        );
        assert_eq!(
            bounds(&b"a"[..]..=&b"z"[..]),
            (Bound::Included(b("a")), Bound::Included(b("z")))
        );
        assert_eq!(
            bounds(String::from("m")..),
            (Bound::Included(b("m")), Bound::Unbounded)
        );
        assert_eq!(bounds(..vec![b'q']), (Bound::Unbounded, Bound::Excluded(b("q"))));
        assert_eq!(bounds(..="q"), (Bound::Unbounded, Bound::Included(b("q"))));
        assert_eq!(
            bounds((Bound::Excluded("a"), Bound::Unbounded)),
            (Bound::Excluded(b("a")), Bound::Unbounded)
        );
    }
}
