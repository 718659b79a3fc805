//! Merge operators: read-modify-write without the read.
//!
//! `Db::merge(key, operand)` stores an operand (an entry of kind `Merge`);
//! a read folds the operands of a key onto its base value (the newest put
//! below them, or none after a tombstone or the oldest version) with the
//! store's [`MergeOperator`]. Operands are handed over oldest first, as in
//! RocksDB. Compaction folds operands where no snapshot separates them (see
//! `compaction/job.rs`).
//!
//! Two operators ship with the crate: [`U64Add`], a counter, and
//! [`Append`], a list joined by a separator.
//!
//! Ownership: the operator is shared (`Arc`) by every reader and the
//! compaction task, on any thread; it must be a pure function of its
//! inputs, or reads before and after a compaction could differ.
//!
//! Invariants:
//! - `full_merge(key, base, [a, b, c])` equals
//!   `full_merge(key, base, [partial_merge(key, [a, b]), c])` whenever the
//!   partial merge returns `Some` (compaction relies on it).
//! - A store that holds `Merge` entries reads them only with an operator
//!   configured; without one the read is [`crate::Error::MergeFailed`].

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::key::ValueKind;

/// Folds merge operands onto a base value.
///
/// ```
/// use ringdb::merge::{MergeOperator, U64Add};
/// use bytes::Bytes;
/// let add = U64Add;
/// let one = Bytes::copy_from_slice(&1u64.to_le_bytes());
/// let sum = add.full_merge(b"counter", Some(&5u64.to_le_bytes()), &[one.clone(), one]).unwrap();
/// assert_eq!(sum, 7u64.to_le_bytes());
/// ```
pub trait MergeOperator: Send + Sync + std::fmt::Debug {
    /// A name for logs and errors.
    fn name(&self) -> &str;

    /// The value of `key` after applying `operands` (oldest first, at least
    /// one) to `base` (`None`: the key had no value).
    ///
    /// # Errors
    /// A description of why the operands cannot be applied (a malformed
    /// operand, say); the read returns [`crate::Error::MergeFailed`], and a
    /// compaction that meets it fails (and poisons the store).
    fn full_merge(&self, key: &[u8], base: Option<&[u8]>, operands: &[Bytes]) -> Result<Vec<u8>, String>;

    /// One operand equivalent to `operands` (oldest first, at least two)
    /// applied in order, if the operator can tell without the base; `None`
    /// keeps them apart. Compaction uses it to shorten runs of operands it
    /// cannot fold onto a base. Default: `None`.
    fn partial_merge(&self, key: &[u8], operands: &[Bytes]) -> Option<Vec<u8>> {
        let _ = (key, operands);
        None
    }
}

/// A counter: values and operands are `u64` little-endian; merging adds
/// them (wrapping). A missing base counts as 0.
///
/// ```
/// # futures::executor::block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::sync::Arc;
/// let options = ringdb::Options::default().merge_operator(Arc::new(ringdb::merge::U64Add));
/// let db = ringdb::Db::open(dir.path(), options).await?;
/// db.merge(b"hits", 1u64.to_le_bytes()).await?;
/// db.merge(b"hits", 2u64.to_le_bytes()).await?;
/// assert_eq!(db.get(b"hits").await?.as_deref(), Some(&3u64.to_le_bytes()[..]));
/// # Ok::<(), ringdb::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct U64Add;

impl U64Add {
    fn decode(bytes: &[u8], what: &str) -> Result<u64, String> {
        <[u8; 8]>::try_from(bytes)
            .map(u64::from_le_bytes)
            .map_err(|_| format!("{what} of {} bytes is not a u64 (8 bytes)", bytes.len()))
    }

    fn sum(operands: &[Bytes]) -> Result<u64, String> {
        operands.iter().try_fold(0u64, |sum, operand| {
            Ok(sum.wrapping_add(Self::decode(operand, "operand")?))
        })
    }
}

impl MergeOperator for U64Add {
    fn name(&self) -> &str {
        "u64-add"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[Bytes]) -> Result<Vec<u8>, String> {
        let base = base.map_or(Ok(0), |base| Self::decode(base, "base value"))?;
        Ok(base.wrapping_add(Self::sum(operands)?).to_le_bytes().to_vec())
    }

    fn partial_merge(&self, _key: &[u8], operands: &[Bytes]) -> Option<Vec<u8>> {
        // NOTE: a malformed operand is kept as it is, so the read that
        // folds it reports the error.
        Self::sum(operands).ok().map(|sum| sum.to_le_bytes().to_vec())
    }
}

/// A list: merging appends each operand to the value, with `separator`
/// between two parts (none before the first part of a key with no base).
///
/// ```
/// use ringdb::merge::{Append, MergeOperator};
/// let append = Append { separator: b",".to_vec() };
/// let joined = append.full_merge(b"k", Some(b"a"), &["b".into(), "c".into()]).unwrap();
/// assert_eq!(joined, b"a,b,c");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Append {
    /// Bytes put between two parts.
    pub separator: Vec<u8>,
}

impl Append {
    fn join(&self, first: Option<&[u8]>, rest: &[Bytes]) -> Vec<u8> {
        let size = first.map_or(0, <[u8]>::len)
            + rest
                .iter()
                .map(|part| part.len() + self.separator.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        let mut parts = first.into_iter().chain(rest.iter().map(|part| part.as_ref()));
        if let Some(part) = parts.next() {
            out.extend_from_slice(part);
        }
        for part in parts {
            out.extend_from_slice(&self.separator);
            out.extend_from_slice(part);
        }
        out
    }
}

impl MergeOperator for Append {
    fn name(&self) -> &str {
        "append"
    }

    fn full_merge(&self, _key: &[u8], base: Option<&[u8]>, operands: &[Bytes]) -> Result<Vec<u8>, String> {
        Ok(self.join(base, operands))
    }

    fn partial_merge(&self, _key: &[u8], operands: &[Bytes]) -> Option<Vec<u8>> {
        Some(self.join(None, operands))
    }
}

/// What readers and compaction need to turn stored entries into values:
/// the merge operator and the clock that TTL expiry is judged by.
#[derive(Debug, Clone)]
pub(crate) struct Resolver {
    pub operator: Option<Arc<dyn MergeOperator>>,
    pub clock: Arc<dyn Clock>,
}

impl Resolver {
    /// The value a stored entry of a non-merge kind reads as at `now_ms`:
    /// `None` for a tombstone or an expired value. (An expiring value too
    /// short for its prefix, which every decoder rejects first, reads as
    /// absent.)
    #[inline]
    pub fn base_value(kind: ValueKind, stored: &Bytes, now_ms: u64) -> Option<Bytes> {
        match kind {
            ValueKind::Put => Some(stored.clone()),
            ValueKind::PutWithExpiry => crate::ttl::split(stored)
                .filter(|(expiry, _)| !crate::ttl::is_expired(*expiry, now_ms))
                .map(|(_, value)| value),
            ValueKind::Delete | ValueKind::Merge | ValueKind::RangeDelete => None,
        }
    }

    /// `operands` (oldest first) applied to `base` with the store's
    /// operator.
    ///
    /// # Errors
    /// [`Error::MergeFailed`] if no operator is configured or it fails.
    pub fn full_merge(&self, key: &[u8], base: Option<&[u8]>, operands: &[Bytes]) -> Result<Bytes> {
        debug_assert!(!operands.is_empty());
        let operator = self.operator.as_ref().ok_or_else(|| Error::MergeFailed {
            key: Bytes::copy_from_slice(key),
            reason: "the store holds merge operands but Options::merge_operator is not set".to_owned(),
        })?;
        operator
            .full_merge(key, base, operands)
            .map(Bytes::from)
            .map_err(|reason| Error::MergeFailed {
                key: Bytes::copy_from_slice(key),
                reason: format!("{}: {reason}", operator.name()),
            })
    }

    /// The time now, on the store's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64s(values: &[u64]) -> Vec<Bytes> {
        values
            .iter()
            .map(|v| Bytes::copy_from_slice(&v.to_le_bytes()))
            .collect()
    }

    #[test]
    fn u64_add_partial_merge_is_consistent_with_full_merge() {
        let ops = u64s(&[1, 2, 3, u64::MAX]);
        let full = U64Add.full_merge(b"k", Some(&10u64.to_le_bytes()), &ops).unwrap();
        let partial = Bytes::from(U64Add.partial_merge(b"k", &ops[..3]).unwrap());
        let split = U64Add
            .full_merge(b"k", Some(&10u64.to_le_bytes()), &[partial, ops[3].clone()])
            .unwrap();
        assert_eq!(full, split);
        assert_eq!(full, 15u64.to_le_bytes());
        assert!(U64Add.full_merge(b"k", Some(b"bad"), &ops).is_err());
        assert!(
            U64Add
                .full_merge(b"k", None, &[Bytes::from_static(b"x")])
                .is_err()
        );
        assert_eq!(
            U64Add.partial_merge(b"k", &[Bytes::from_static(b"x"), ops[0].clone()]),
            None
        );
    }

    #[test]
    fn append_joins_with_separators_and_partial_merges_associatively() {
        let append = Append {
            separator: b", ".to_vec(),
        };
        let ops: Vec<Bytes> = vec!["b".into(), "c".into(), "d".into()];
        assert_eq!(append.full_merge(b"k", None, &ops).unwrap(), b"b, c, d");
        assert_eq!(append.full_merge(b"k", Some(b""), &ops[..1]).unwrap(), b", b");
        let partial = Bytes::from(append.partial_merge(b"k", &ops[..2]).unwrap());
        assert_eq!(
            append
                .full_merge(b"k", Some(b"a"), &[partial, ops[2].clone()])
                .unwrap(),
            append.full_merge(b"k", Some(b"a"), &ops).unwrap()
        );
    }

    #[test]
    fn a_merge_without_an_operator_is_an_error() {
        let resolver = Resolver {
            operator: None,
            clock: Arc::new(crate::clock::SystemClock),
        };
        let error = resolver.full_merge(b"k", None, &u64s(&[1])).unwrap_err();
        assert!(matches!(error, Error::MergeFailed { .. }), "{error}");
    }
}
