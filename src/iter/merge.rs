//! Merging sorted sources into one sorted stream of internal entries.
//!
//! Ownership: a `MergingIterator` owns its sources and belongs to one
//! reader (a `DbIter`, a compaction job).
//!
//! A merging iterator moves one way, fixed when it is built: forward
//! (`seek_to_first`/`seek`, then `next`) or reverse (`seek_to_last`/
//! `seek_for_prev`, then `prev`). No reader of ringdb turns around mid-way
//! (a reverse scan is built reverse), and a fixed direction spares the
//! re-positioning of every source that a direction switch needs.
//!
//! The valid sources are kept sorted by their entries (`order`). A step
//! moves only the first, so the others stay sorted and only the stepped
//! source's new place is looked for: one comparison while it keeps the
//! lead (long runs of one table, or one level, are common), else a binary
//! search among the others (a scan of every source compares n - 1 times
//! per step, a heap's sift about 2 log n times).
//!
//! Invariants:
//! - Forward: every valid source is positioned at its first entry after
//!   the entries already yielded; `order` holds the indexes of exactly the
//!   valid sources, by ascending entry, so the first holds the current
//!   entry. Reverse: the mirror image, by descending entry.
//! - Ties (the same internal key in two sources, which the tree never
//!   produces) go to the lower source index, so the order is deterministic.
//! - After an `Err`, the iterator is invalid until the next seek.

use std::cmp::Ordering;

use bytes::Bytes;
use futures::future::try_join_all;

use crate::error::Result;
use crate::iter::{Direction, Source, compare, trailer_kind, trailer_seqno};
use crate::key::{InternalKey, SeqNo, ValueKind};

/// Entries of many sources, in internal-key order (or its reverse): every
/// version, tombstones included.
#[derive(Debug)]
pub struct MergingIterator {
    sources: Vec<Source>,
    direction: Direction,
    /// Indexes of the valid sources, their entries in the iterator's
    /// direction; the first holds the current entry. Empty when invalid.
    order: Vec<usize>,
}

impl MergingIterator {
    /// A merge of `sources` moving in `direction`, positioned nowhere
    /// (invalid). Pass sources newest first: on a tie (never expected) the
    /// lower index is yielded first.
    pub fn new(sources: Vec<Source>, direction: Direction) -> Self {
        MergingIterator {
            order: Vec::with_capacity(sources.len()),
            sources,
            direction,
        }
    }

    /// The way the iterator moves.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        !self.order.is_empty()
    }

    #[inline]
    fn current_source(&self) -> Option<&Source> {
        self.order.first().and_then(|&index| self.sources.get(index))
    }

    /// The current user key; empty when invalid.
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        self.current_source().map_or(&[], Source::user_key)
    }

    /// The current user key and trailer; empty and 0 when invalid.
    #[inline]
    pub fn user_key_and_trailer(&self) -> (&[u8], u64) {
        self.current_source()
            .map_or((&[], 0), Source::user_key_and_trailer)
    }

    /// The current trailer (`seqno << 8 | kind`); 0 when invalid.
    #[inline]
    pub fn trailer(&self) -> u64 {
        self.current_source().map_or(0, Source::trailer)
    }

    /// The current seqno; 0 when invalid.
    pub fn seqno(&self) -> SeqNo {
        trailer_seqno(self.trailer())
    }

    /// The current kind. REQUIRES: `valid()`.
    pub fn kind(&self) -> ValueKind {
        trailer_kind(self.trailer())
    }

    /// The current value (shared, not copied); empty when invalid.
    #[inline]
    pub fn value(&self) -> Bytes {
        self.current_source().map_or_else(Bytes::new, Source::value)
    }

    /// The current key as an `InternalKey` (copies the user key).
    /// REQUIRES: `valid()`.
    #[cfg(test)]
    pub fn key(&self) -> InternalKey {
        InternalKey {
            user_key: Bytes::copy_from_slice(self.user_key()),
            trailer: self.trailer(),
        }
    }

    /// Positions at the first entry of all sources. REQUIRES: forward.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Corruption`] from a table
    /// read; the iterator is then invalid.
    ///
    /// # Cancel safety
    /// Cancel safe, but the position is unspecified afterwards: seek again.
    pub async fn seek_to_first(&mut self) -> Result<()> {
        debug_assert_eq!(self.direction, Direction::Forward);
        self.order.clear();
        // NOTE: sources are positioned concurrently, so the first block
        // reads of a scan overlap on the ring instead of queueing.
        try_join_all(self.sources.iter_mut().map(Source::seek_to_first)).await?;
        self.sort_sources();
        Ok(())
    }

    /// Positions at the first entry at or after `target`. REQUIRES:
    /// forward.
    ///
    /// # Errors
    /// As [`MergingIterator::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`MergingIterator::seek_to_first`].
    pub async fn seek(&mut self, target: &InternalKey) -> Result<()> {
        debug_assert_eq!(self.direction, Direction::Forward);
        self.order.clear();
        try_join_all(self.sources.iter_mut().map(|source| source.seek(target))).await?;
        self.sort_sources();
        Ok(())
    }

    /// Positions at the last entry of all sources. REQUIRES: reverse.
    ///
    /// # Errors
    /// As [`MergingIterator::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`MergingIterator::seek_to_first`].
    pub async fn seek_to_last(&mut self) -> Result<()> {
        debug_assert_eq!(self.direction, Direction::Reverse);
        self.order.clear();
        try_join_all(self.sources.iter_mut().map(Source::seek_to_last)).await?;
        self.sort_sources();
        Ok(())
    }

    /// Positions at the last entry at or before `target`. REQUIRES:
    /// reverse.
    ///
    /// # Errors
    /// As [`MergingIterator::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`MergingIterator::seek_to_first`].
    pub async fn seek_for_prev(&mut self, target: &InternalKey) -> Result<()> {
        debug_assert_eq!(self.direction, Direction::Reverse);
        self.order.clear();
        try_join_all(self.sources.iter_mut().map(|source| source.seek_for_prev(target))).await?;
        self.sort_sources();
        Ok(())
    }

    /// Moves to the next entry in internal-key order. REQUIRES: forward.
    /// No-op when invalid.
    ///
    /// # Errors
    /// As [`MergingIterator::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`MergingIterator::seek_to_first`].
    pub async fn next(&mut self) -> Result<()> {
        debug_assert_eq!(self.direction, Direction::Forward);
        self.step().await
    }

    /// Moves to the previous entry in internal-key order. REQUIRES:
    /// reverse. No-op when invalid.
    ///
    /// # Errors
    /// As [`MergingIterator::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`MergingIterator::seek_to_first`].
    pub async fn prev(&mut self) -> Result<()> {
        debug_assert_eq!(self.direction, Direction::Reverse);
        self.step().await
    }

    /// Moves one entry on in the iterator's direction if the current
    /// source can step without I/O (see [`Source::next_without_io`]):
    /// `Some` with the step's result, or `None`, having moved nothing, when
    /// it cannot (use `next`/`prev`) or the iterator is invalid.
    ///
    /// NOTE: a reader walking many entries calls this first and awaits
    /// `next`/`prev` only when it returns `None`, so most steps build no
    /// future at all.
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] if the entry stepped to is damaged; the
    /// iterator is then invalid.
    #[inline]
    pub fn step_without_io(&mut self) -> Option<Result<()>> {
        let index = *self.order.first()?;
        let source = self.sources.get_mut(index)?;
        let stepped = match self.direction {
            Direction::Forward => source.next_without_io(),
            Direction::Reverse => source.prev_without_io(),
        }?;
        if let Err(error) = stepped {
            self.order.clear();
            return Some(Err(error));
        }
        self.after_step();
        Some(Ok(()))
    }

    /// Advances the current source in the iterator's direction, then
    /// finds the new current source.
    async fn step(&mut self) -> Result<()> {
        if let Some(result) = self.step_without_io() {
            return result;
        }
        // Taken, so that an error or a cancellation leaves the iterator
        // invalid.
        let order = std::mem::take(&mut self.order);
        let Some(&index) = order.first() else {
            return Ok(());
        };
        let Some(source) = self.sources.get_mut(index) else {
            unreachable!("current source {index} out of range");
        };
        match self.direction {
            Direction::Forward => source.next().await?,
            Direction::Reverse => source.prev().await?,
        }
        self.order = order;
        self.after_step();
        Ok(())
    }

    /// Sets `order` from scratch, after a seek.
    fn sort_sources(&mut self) {
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend((0..self.sources.len()).filter(|&index| self.source(index).valid()));
        order.sort_unstable_by(|&a, &b| self.walk_order(a, b));
        self.order = order;
    }

    /// Puts the first source of `order`, which just moved, in its place.
    #[inline]
    fn after_step(&mut self) {
        let Some(&stepped) = self.order.first() else {
            unreachable!("a step moves the current source");
        };
        if !self.source(stepped).valid() {
            self.order.remove(0);
            return;
        }
        // The others did not move, so they are still in order: the stepped
        // source goes behind those that come before it.
        match self.order.get(1) {
            Some(&next) if self.comes_before(next, stepped) => {}
            _ => return,
        }
        // Binary search for the first source that comes after the stepped
        // one: `order[1..first_after]` come before it (`order[1]` does),
        // `order[end..]` after it.
        let (mut first_after, mut end) = (2, self.order.len());
        while first_after < end {
            let middle = first_after + (end - first_after) / 2;
            let Some(&other) = self.order.get(middle) else {
                unreachable!("{middle} out of {} sources", self.order.len());
            };
            if self.comes_before(other, stepped) {
                first_after = middle + 1;
            } else {
                end = middle;
            }
        }
        // The stepped source moves from the front to just before it.
        let Some(moved) = self.order.get_mut(..first_after) else {
            unreachable!("{first_after} out of {} sources", self.order.len());
        };
        moved.rotate_left(1);
        debug_assert!(
            self.order
                .windows(2)
                .all(|pair| matches!(pair, [a, b] if self.comes_before(*a, *b))),
            "merge order broken"
        );
    }

    /// Source `index`. REQUIRES: `index < sources.len()`.
    #[inline]
    fn source(&self, index: usize) -> &Source {
        match self.sources.get(index) {
            Some(source) => source,
            None => unreachable!("source {index} out of range"),
        }
    }

    /// True when the entry of source `a` comes before that of source `b` in
    /// the iterator's direction. REQUIRES: both valid.
    #[inline]
    fn comes_before(&self, a: usize, b: usize) -> bool {
        self.walk_order(a, b) == Ordering::Less
    }

    /// The order in which the entries of sources `a` and `b` come in the
    /// iterator's direction; a tie goes to the lower index. REQUIRES: both
    /// valid.
    // NOTE: forced inline: called once or twice per step of a scan.
    #[inline(always)]
    fn walk_order(&self, a: usize, b: usize) -> Ordering {
        let (a_user_key, a_trailer) = self.source(a).user_key_and_trailer();
        let (b_user_key, b_trailer) = self.source(b).user_key_and_trailer();
        let ordering = compare(a_user_key, a_trailer, b_user_key, b_trailer);
        let ordering = match self.direction {
            Direction::Forward => ordering,
            Direction::Reverse => ordering.reverse(),
        };
        ordering.then(a.cmp(&b))
    }
}
