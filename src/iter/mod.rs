//! Internal iterators: sorted streams of internal entries (every version,
//! tombstones included) from memtables and tables, merged, and the
//! user-level iterator that scans build on.
//!
//! - [`MemtableIter`]: a memtable, refilled in batches.
//! - `TableIter` (in `sst`): one table.
//! - [`LevelIter`]: the non-overlapping tables of one level `L >= 1`,
//!   opened lazily through the table cache.
//! - [`Source`]: one of the three, behind one set of inherent async methods.
//! - [`MergingIterator`]: many sources in internal-key order, one way.
//! - [`DbIter`]: user keys and values at a snapshot, within bounds, read
//!   a [`Batch`] at a time.
//!
//! Ownership: every iterator belongs to one reader (a scan, a compaction
//! job) and may move between threads (`Send`). Sources own what they read
//! (`Arc<Memtable>`, `Arc<Table>`, `Arc<TableCache>`), so an iterator can
//! live in a `'static` stream; the caller keeps the version it read from
//! alive (its files undeleted) for as long as the iterator lives.
//!
//! Invariants:
//! - A valid source's current entry is its entry at the position the last
//!   seek or step left it; `user_key()`/`trailer()`/`value()` borrow or
//!   share it, never copy the key.
//! - After an `Err` a source is invalid; a new seek may be tried.
//! - A merging iterator moves in the one [`Direction`] it was built with.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::error::Result;
use crate::key::{InternalKey, SeqNo, Trailer, ValueKind};
use crate::sst::TableIter;

mod batch;
mod db_iter;
mod level;
mod memtable;
mod merge;

#[cfg(test)]
mod tests;

pub use batch::{Batch, BatchEntries};
pub use db_iter::DbIter;
pub use level::LevelIter;
pub use memtable::MemtableIter;
pub use merge::MergingIterator;

/// The way a [`MergingIterator`] (and a [`DbIter`]) moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending internal-key order: `seek_to_first`/`seek`, then `next`.
    Forward,
    /// Descending internal-key order: `seek_to_last`/`seek_for_prev`, then
    /// `prev`.
    Reverse,
}

/// One sorted input of a merge.
///
/// NOTE: an enum with inherent async methods rather than an async trait
/// object, so a step costs no boxed future; three kinds of source are all
/// there are.
#[derive(Debug)]
pub enum Source {
    /// A memtable (mutable or frozen).
    Memtable(MemtableIter),
    /// One table (a level-0 table, or a compaction input).
    Table(TableIter),
    /// The tables of one level `L >= 1`.
    Level(LevelIter),
}

impl Source {
    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        match self {
            Source::Memtable(iter) => iter.valid(),
            Source::Table(iter) => iter.valid(),
            Source::Level(iter) => iter.valid(),
        }
    }

    /// The current user key; empty when invalid.
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        match self {
            Source::Memtable(iter) => iter.user_key(),
            Source::Table(iter) => iter.user_key(),
            Source::Level(iter) => iter.user_key(),
        }
    }

    /// The current user key and trailer; empty and 0 when invalid.
    #[inline]
    pub fn user_key_and_trailer(&self) -> (&[u8], u64) {
        match self {
            Source::Memtable(iter) => (iter.user_key(), iter.trailer()),
            Source::Table(iter) => iter.user_key_and_trailer(),
            Source::Level(iter) => iter.user_key_and_trailer(),
        }
    }

    /// The current trailer (`seqno << 8 | kind`); 0 when invalid.
    #[inline]
    pub fn trailer(&self) -> u64 {
        match self {
            Source::Memtable(iter) => iter.trailer(),
            Source::Table(iter) => iter.trailer(),
            Source::Level(iter) => iter.trailer(),
        }
    }

    /// The current value (shared, not copied); empty when invalid.
    #[inline]
    pub fn value(&self) -> Bytes {
        match self {
            Source::Memtable(iter) => iter.value(),
            Source::Table(iter) => iter.value(),
            Source::Level(iter) => iter.value(),
        }
    }

    /// Positions at the first entry.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Corruption`] from a table
    /// read; the source is then invalid.
    ///
    /// # Cancel safety
    /// Cancel safe, but the position is unspecified afterwards: seek again.
    pub async fn seek_to_first(&mut self) -> Result<()> {
        match self {
            Source::Memtable(iter) => {
                iter.seek_to_first();
                Ok(())
            }
            Source::Table(iter) => iter.seek_to_first().await,
            Source::Level(iter) => iter.seek_to_first().await,
        }
    }

    /// Positions at the last entry.
    ///
    /// # Errors
    /// As [`Source::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`Source::seek_to_first`].
    pub async fn seek_to_last(&mut self) -> Result<()> {
        match self {
            Source::Memtable(iter) => {
                iter.seek_to_last();
                Ok(())
            }
            Source::Table(iter) => iter.seek_to_last().await,
            Source::Level(iter) => iter.seek_to_last().await,
        }
    }

    /// Positions at the first entry at or after `target` (invalid if none).
    ///
    /// # Errors
    /// As [`Source::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`Source::seek_to_first`].
    pub async fn seek(&mut self, target: &InternalKey) -> Result<()> {
        match self {
            Source::Memtable(iter) => {
                iter.seek(target);
                Ok(())
            }
            Source::Table(iter) => iter.seek(target).await,
            Source::Level(iter) => iter.seek(target).await,
        }
    }

    /// Positions at the last entry at or before `target` (invalid if none).
    ///
    /// # Errors
    /// As [`Source::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`Source::seek_to_first`].
    pub async fn seek_for_prev(&mut self, target: &InternalKey) -> Result<()> {
        if let Source::Memtable(iter) = self {
            iter.seek_for_prev(target);
            return Ok(());
        }
        // NOTE: tables have no native seek-for-prev: the first entry at or
        // after `target`, then one step back if it is past `target` (or the
        // last entry if every entry is before `target`).
        self.seek(target).await?;
        if !self.valid() {
            return self.seek_to_last().await;
        }
        if compare_to(self.user_key(), self.trailer(), target) == Ordering::Greater {
            self.prev().await?;
        }
        Ok(())
    }

    /// Moves to the next entry if that needs no I/O: `Some` with the
    /// step's result, or `None`, having moved nothing, when it does (use
    /// [`Source::next`]) or the source is invalid. A memtable always
    /// steps; a table or level steps within its current data block.
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] if the next entry is damaged; the
    /// source is then invalid.
    #[inline]
    pub fn next_without_io(&mut self) -> Option<Result<()>> {
        match self {
            Source::Memtable(iter) => {
                iter.next();
                Some(Ok(()))
            }
            Source::Table(iter) => iter.next_in_block(),
            Source::Level(iter) => iter.next_in_block(),
        }
    }

    /// The mirror image of [`Source::next_without_io`].
    ///
    /// # Errors
    /// As [`Source::next_without_io`].
    #[inline]
    pub fn prev_without_io(&mut self) -> Option<Result<()>> {
        match self {
            Source::Memtable(iter) => {
                iter.prev();
                Some(Ok(()))
            }
            Source::Table(iter) => iter.prev_in_block(),
            Source::Level(iter) => iter.prev_in_block(),
        }
    }

    /// Moves to the next entry (invalid after the last). No-op when invalid.
    ///
    /// # Errors
    /// As [`Source::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`Source::seek_to_first`].
    pub async fn next(&mut self) -> Result<()> {
        match self {
            Source::Memtable(iter) => {
                iter.next();
                Ok(())
            }
            Source::Table(iter) => iter.next().await,
            Source::Level(iter) => iter.next().await,
        }
    }

    /// Moves to the previous entry (invalid before the first). No-op when
    /// invalid.
    ///
    /// # Errors
    /// As [`Source::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`Source::seek_to_first`].
    pub async fn prev(&mut self) -> Result<()> {
        match self {
            Source::Memtable(iter) => {
                iter.prev();
                Ok(())
            }
            Source::Table(iter) => iter.prev().await,
            Source::Level(iter) => iter.prev().await,
        }
    }
}

/// Internal-key order of two (user key, trailer) pairs: user key ascending,
/// then trailer descending.
#[inline]
pub(crate) fn compare(a_user_key: &[u8], a_trailer: u64, b_user_key: &[u8], b_trailer: u64) -> Ordering {
    a_user_key.cmp(b_user_key).then_with(|| b_trailer.cmp(&a_trailer))
}

/// Internal-key order of (user key, trailer) against an `InternalKey`.
pub(crate) fn compare_to(user_key: &[u8], trailer: u64, key: &InternalKey) -> Ordering {
    compare(user_key, trailer, &key.user_key, key.trailer)
}

/// The seqno of a trailer.
#[inline]
pub(crate) fn trailer_seqno(trailer: u64) -> SeqNo {
    Trailer::from_raw(trailer).seqno()
}

/// The kind of a trailer in memory (see [`Trailer::known_kind`]: readers
/// reject an unknown kind before it gets here).
#[inline]
pub(crate) fn trailer_kind(trailer: u64) -> ValueKind {
    Trailer::from_raw(trailer).known_kind()
}
