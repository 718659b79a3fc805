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
//! A step compares the stepped source only with `runner_up`, the best of
//! the others: while the current source keeps the smallest entry (long runs
//! of one table, or one level, are common) a step costs one comparison, and
//! only when the lead changes are all sources looked at.
//!
//! Invariants:
//! - Forward: every valid source is positioned at its first entry after
//!   the entries already yielded; `current` is the source with the
//!   smallest entry and `runner_up` the one with the smallest entry among
//!   the other valid sources (`None` if there is none). Reverse: the mirror
//!   image, largest entries.
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
    /// Index of the source holding the current entry; `None` when invalid.
    current: Option<usize>,
    /// Index of the valid source other than `current` whose entry comes
    /// next; meaningless when `current` is `None`.
    runner_up: Option<usize>,
}

impl MergingIterator {
    /// A merge of `sources` moving in `direction`, positioned nowhere
    /// (invalid). Pass sources newest first: on a tie (never expected) the
    /// lower index is yielded first.
    pub fn new(sources: Vec<Source>, direction: Direction) -> Self {
        MergingIterator {
            sources,
            direction,
            current: None,
            runner_up: None,
        }
    }

    /// The way the iterator moves.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.current.is_some()
    }

    #[inline]
    fn current_source(&self) -> Option<&Source> {
        self.current.and_then(|index| self.sources.get(index))
    }

    /// The current user key; empty when invalid.
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        self.current_source().map_or(&[], Source::user_key)
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
        self.current = None;
        // NOTE: sources are positioned concurrently, so the first block
        // reads of a scan overlap on the ring instead of queueing.
        try_join_all(self.sources.iter_mut().map(Source::seek_to_first)).await?;
        self.pick();
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
        self.current = None;
        try_join_all(self.sources.iter_mut().map(|source| source.seek(target))).await?;
        self.pick();
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
        self.current = None;
        try_join_all(self.sources.iter_mut().map(Source::seek_to_last)).await?;
        self.pick();
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
        self.current = None;
        try_join_all(self.sources.iter_mut().map(|source| source.seek_for_prev(target))).await?;
        self.pick();
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
        let index = self.current?;
        let source = self.sources.get_mut(index)?;
        let stepped = match self.direction {
            Direction::Forward => source.next_without_io(),
            Direction::Reverse => source.prev_without_io(),
        }?;
        if let Err(error) = stepped {
            self.current = None;
            return Some(Err(error));
        }
        self.after_step(index);
        Some(Ok(()))
    }

    /// Advances the current source in the iterator's direction, then
    /// finds the new current source.
    async fn step(&mut self) -> Result<()> {
        if let Some(result) = self.step_without_io() {
            return result;
        }
        let Some(index) = self.current.take() else {
            return Ok(());
        };
        let Some(source) = self.sources.get_mut(index) else {
            unreachable!("current source {index} out of range");
        };
        match self.direction {
            Direction::Forward => source.next().await?,
            Direction::Reverse => source.prev().await?,
        }
        self.after_step(index);
        Ok(())
    }

    /// Sets `current` and `runner_up` from scratch, after a seek.
    fn pick(&mut self) {
        self.current = self.best_except(None);
        self.runner_up = self.best_except(self.current);
    }

    /// Sets `current` and `runner_up` after source `stepped`, the current
    /// one, moved: the others have not, so `runner_up` still leads them.
    #[inline]
    fn after_step(&mut self, stepped: usize) {
        let Some(source) = self.sources.get(stepped) else {
            unreachable!("stepped source {stepped} out of range");
        };
        let stays = source.valid()
            && self
                .runner_up
                .is_none_or(|other| self.comes_before(stepped, other));
        if stays {
            self.current = Some(stepped);
        } else {
            self.current = self.runner_up;
            self.runner_up = self.best_except(self.current);
        }
    }

    /// The valid source, other than `except`, with the smallest entry
    /// (forward) or the largest (reverse).
    ///
    /// NOTE: a linear scan. Merges have a handful of sources (memtables,
    /// level-0 tables, one per deeper level: 2 to 20), and it runs only
    /// when the lead changes hands.
    fn best_except(&self, except: Option<usize>) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (index, source) in self.sources.iter().enumerate() {
            if Some(index) == except || !source.valid() {
                continue;
            }
            if best.is_none_or(|best| self.comes_before(index, best)) {
                best = Some(index);
            }
        }
        best
    }

    /// True when the entry of source `a` comes before that of source `b` in
    /// the iterator's direction (a tie goes to the lower index). REQUIRES:
    /// both valid.
    #[inline]
    fn comes_before(&self, a: usize, b: usize) -> bool {
        let (Some(source_a), Some(source_b)) = (self.sources.get(a), self.sources.get(b)) else {
            unreachable!("sources {a} and {b} out of range");
        };
        let ordering = compare(
            source_a.user_key(),
            source_a.trailer(),
            source_b.user_key(),
            source_b.trailer(),
        );
        let wanted = match self.direction {
            Direction::Forward => Ordering::Less,
            Direction::Reverse => Ordering::Greater,
        };
        ordering == wanted || (ordering == Ordering::Equal && a < b)
    }
}
