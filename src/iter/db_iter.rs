//! The user-level iterator: the newest visible version of each user key at
//! a snapshot, tombstones hidden, within bounds, forward or reverse.
//!
//! Ownership: a `DbIter` belongs to one scan and owns its merge of sources.
//! The caller keeps the super-version it read from (memtables, version)
//! alive while it lives, so no table it reads is deleted under it.
//!
//! Forward, a user key's versions arrive newest first: the first one at or
//! below the snapshot decides the key, the rest are skipped. Reverse, they
//! arrive oldest first: every version of the key is walked, the last one at
//! or below the snapshot decides.
//!
//! Merge operands and expiring values (see `merge.rs`, `ttl.rs`): a
//! visible merge operand does not decide its key alone. Forward, the walk
//! gathers the operands that follow it down to the first put or tombstone
//! (the base) or the key's end, and folds them onto the base. Reverse, a
//! put or tombstone resets what was gathered and an operand is added to it,
//! so the fold at the key's end is the same. An expiring value reads as a
//! tombstone once expired, judged at one time (`now_ms`) fixed when the
//! iterator is built.
//!
//! Range tombstones (see `range_del.rs`) come apart from the sources, cut
//! into fragments: when the walk starts a user key it looks up the newest
//! tombstone covering it (`covering`), and every version of the key older
//! than that reads as a tombstone. Without range tombstones `covering` is 0
//! and the check costs one comparison per entry.
//!
//! The walk is a synchronous loop over the merge's entries ([`DbIter::walk`])
//! that keeps what it is in the middle of (the key being skipped or
//! gathered) in fields, so it can stop at any entry: when a batch is full,
//! and when the merge's next step needs I/O, which `next_batch` awaits
//! before walking on. Most steps need none, so most entries cost no future.
//!
//! Invariants:
//! - Yielded user keys are strictly increasing (forward) or strictly
//!   decreasing (reverse), and lie within the bounds.
//! - A yielded value is the newest version with seqno <= snapshot, and
//!   that version is a put (an expiring one not expired), or it is the fold
//!   of the merge operands down to the first put or tombstone below them.
//! - `key_buf` holds the key of `pending` whenever it is not `Idle`.
//! - After an `Err`, every later call returns the same error.

use std::ops::Bound;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::iter::{Batch, Direction, MergingIterator, Source, trailer_kind, trailer_seqno};
use crate::key::{InternalKey, MAX_SEQNO, SeqNo, ValueKind};
use crate::merge::Resolver;
use crate::range_del::RangeDels;

/// Where a `DbIter` is in its walk.
#[derive(Debug)]
enum State {
    /// Not yet positioned: the first call seeks to the starting bound.
    Unpositioned,
    /// The merge is positioned at the next entry to consider.
    Positioned,
    /// Past the last key within the bounds.
    Done,
    /// A read failed; the error is returned again on every call.
    Failed(Error),
}

/// The user key the walk is in the middle of, named by `key_buf`.
#[derive(Debug)]
enum Pending {
    /// None: the merge's entry starts a new user key.
    Idle,
    /// Forward: the key is decided (yielded or hidden); its older versions
    /// are skipped.
    Skipping,
    /// Forward: the newest visible version is a merge operand; the
    /// operands so far, newest first, while the walk looks for the base.
    Merging(Vec<Bytes>),
    /// Reverse: the key's versions are being walked, oldest first; what
    /// the visible ones so far read as.
    Gathering(Fold),
}

/// The visible versions of one key, oldest first, folded so far: the value
/// of the newest put (`None` after a tombstone, an expired value, or
/// nothing yet), and the merge operands newer than it, oldest first.
#[derive(Debug, Default)]
struct Fold {
    base: Option<Bytes>,
    operands: Vec<Bytes>,
}

/// Why [`DbIter::walk`] stopped.
enum Stop {
    /// The batch is full.
    Full,
    /// No key is left within the bounds.
    End,
    /// The merge must step and that needs I/O.
    NeedsIo,
}

/// User keys and values at a snapshot, in key order (or its reverse).
#[derive(Debug)]
pub struct DbIter {
    merge: MergingIterator,
    snapshot: SeqNo,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    state: State,
    pending: Pending,
    /// The user key of `pending`, reused across keys.
    key_buf: Vec<u8>,
    /// Folds merge operands; its clock judges expiry.
    resolver: Resolver,
    /// The time expiry is judged at, for the whole walk.
    now_ms: u64,
    /// The range tombstones at or below the snapshot, if any.
    range_dels: Option<RangeDels>,
    /// The newest range tombstone covering `key_buf` (0: none): versions
    /// of the key below it read as deleted.
    covering: SeqNo,
}

impl DbIter {
    /// An iterator over `sources` (newest first) seeing the versions with
    /// seqno <= `snapshot`, between `start` and `end`, moving in
    /// `direction`. Nothing is read until the first
    /// [`DbIter::next_batch`].
    pub fn new(
        sources: Vec<Source>,
        snapshot: SeqNo,
        start: Bound<Bytes>,
        end: Bound<Bytes>,
        direction: Direction,
    ) -> Self {
        let resolver = Resolver {
            operator: None,
            clock: crate::clock::system(),
        };
        DbIter {
            merge: MergingIterator::new(sources, direction),
            snapshot,
            start,
            end,
            state: State::Unpositioned,
            pending: Pending::Idle,
            key_buf: Vec::new(),
            now_ms: resolver.now_ms(),
            resolver,
            range_dels: None,
            covering: 0,
        }
    }

    /// The same iterator honouring `range_dels`, the range tombstones of
    /// its sources (those above the snapshot are ignored).
    pub fn with_range_dels(mut self, range_dels: Option<RangeDels>) -> Self {
        self.range_dels = range_dels.filter(|dels| !dels.is_empty());
        self
    }

    /// Starts a new user key, `key_buf`: finds the range tombstone covering it.
    #[inline]
    fn start_key(&mut self) {
        self.covering = match &self.range_dels {
            None => 0,
            Some(dels) => dels.max_covering(&self.key_buf, self.snapshot),
        };
    }

    /// The kind a version of `key_buf` reads as: a tombstone when a range
    /// tombstone newer than it covers the key.
    #[inline]
    fn kind_of(&self, trailer: u64) -> ValueKind {
        match trailer_seqno(trailer) < self.covering {
            true => ValueKind::Delete,
            false => trailer_kind(trailer),
        }
    }

    /// The same iterator folding merges with `resolver`'s operator and
    /// judging expiry by its clock, now (without one, a merge operand is
    /// an error and the system clock judges expiry).
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.now_ms = resolver.now_ms();
        self.resolver = resolver;
        self
    }

    /// The way the iterator moves.
    pub fn direction(&self) -> Direction {
        self.merge.direction()
    }

    /// The next (user key, value), or `None` past the last one: a batch of
    /// one, for tests that walk entry by entry.
    ///
    /// # Errors
    /// As [`DbIter::next_batch`].
    ///
    /// # Cancel safety
    /// As [`DbIter::next_batch`].
    #[cfg(test)]
    pub async fn next_entry(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        let mut batch = Batch::with_capacity(1);
        self.next_batch(&mut batch, 1, usize::MAX).await?;
        Ok(batch.into_entries().next())
    }

    /// Appends the next entries to `batch` until it holds `max_entries`
    /// entries or at least `max_bytes` of keys and values: at least one
    /// (unless the batch was full already) or none when the walk is over.
    ///
    /// NOTE: a scan fills a batch per poll, so the cost of a poll (and of
    /// the futures under it) is shared by the entries of the batch.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Corruption`] from a table
    /// read. The iterator is then finished: every later call returns the
    /// same error. An error met after entries were appended is held back:
    /// the call returns `Ok` with them, and the next call returns it.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped call leaves the position unspecified and
    /// may lose entries; drop the iterator with it.
    pub async fn next_batch(
        &mut self,
        batch: &mut Batch,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<()> {
        match &self.state {
            State::Done => return Ok(()),
            State::Failed(error) => return Err(error.clone()),
            State::Positioned => {}
            State::Unpositioned => {
                if let Err(error) = self.position().await {
                    self.state = State::Failed(error.clone());
                    return Err(error);
                }
                self.state = State::Positioned;
            }
        }
        let before = batch.len();
        loop {
            let walked = self.walk(batch, max_entries, max_bytes);
            let stepped = match walked {
                Ok(Stop::Full) => return Ok(()),
                Ok(Stop::End) => {
                    self.state = State::Done;
                    return Ok(());
                }
                Ok(Stop::NeedsIo) => match self.direction() {
                    Direction::Forward => self.merge.next().await,
                    Direction::Reverse => self.merge.prev().await,
                },
                Err(error) => Err(error),
            };
            if let Err(error) = stepped {
                self.state = State::Failed(error.clone());
                // Entries already appended go out first; the error follows
                // on the next call.
                return if batch.len() > before { Ok(()) } else { Err(error) };
            }
        }
    }

    /// Seeks the merge to the starting bound of the walk.
    async fn position(&mut self) -> Result<()> {
        match self.direction() {
            Direction::Forward => match &self.start {
                Bound::Unbounded => self.merge.seek_to_first().await,
                // The newest version visible at the snapshot, or later.
                Bound::Included(key) => {
                    let target = InternalKey::seek_key(key.clone(), self.snapshot.min(MAX_SEQNO));
                    self.merge.seek(&target).await
                }
                // The last possible version of `key`; what is left of it
                // (a version with trailer 0) is skipped by the bound check.
                Bound::Excluded(key) => {
                    let target = InternalKey {
                        user_key: key.clone(),
                        trailer: 0,
                    };
                    self.merge.seek(&target).await
                }
            },
            Direction::Reverse => match &self.end {
                Bound::Unbounded => self.merge.seek_to_last().await,
                // Trailer 0 sorts after every version of `key`.
                Bound::Included(key) => {
                    let target = InternalKey {
                        user_key: key.clone(),
                        trailer: 0,
                    };
                    self.merge.seek_for_prev(&target).await
                }
                // Trailer `u64::MAX` (kind 0xff, never stored) sorts before
                // every version of `key`.
                Bound::Excluded(key) => {
                    let target = InternalKey {
                        user_key: key.clone(),
                        trailer: u64::MAX,
                    };
                    self.merge.seek_for_prev(&target).await
                }
            },
        }
    }

    /// Walks the merge from its current entry, appending to `batch` while
    /// it is within its limits, until it stops.
    fn walk(&mut self, batch: &mut Batch, max_entries: usize, max_bytes: usize) -> Result<Stop> {
        // NOTE: each round appends at most one entry, so checking here
        // keeps the batch within `max_entries`; `max_bytes` may be passed by
        // the last entry.
        while batch.len() < max_entries && batch.size_bytes() < max_bytes {
            let next = match self.direction() {
                Direction::Forward => self.visit_forward(batch)?,
                Direction::Reverse => self.visit_reverse(batch)?,
            };
            match next {
                Next::Step => match self.merge.step_without_io() {
                    Some(result) => result?,
                    None => return Ok(Stop::NeedsIo),
                },
                Next::Stay => {}
                Next::End => return Ok(Stop::End),
            }
        }
        Ok(Stop::Full)
    }

    /// Forward: considers the merge's current entry, appending it to
    /// `batch` if it decides a key that is not deleted.
    #[inline]
    fn visit_forward(&mut self, batch: &mut Batch) -> Result<Next> {
        if let Pending::Merging(_) = self.pending {
            return self.visit_merging(batch);
        }
        if !self.merge.valid() {
            return Ok(Next::End);
        }
        let (user_key, trailer) = self.merge.user_key_and_trailer();
        if matches!(self.pending, Pending::Skipping) && user_key == self.key_buf.as_slice() {
            // An older version of a decided key.
            return Ok(Next::Step);
        }
        if past_end(user_key, &self.end) {
            return Ok(Next::End);
        }
        if before_start(user_key, &self.start) || trailer_seqno(trailer) > self.snapshot {
            // Only the excluded start key or a version above the snapshot:
            // not yet the deciding version.
            return Ok(Next::Step);
        }
        // The newest visible version of this user key decides it.
        self.key_buf.clear();
        self.key_buf.extend_from_slice(user_key);
        self.pending = Pending::Skipping;
        self.start_key();
        let (user_key, _) = self.merge.user_key_and_trailer();
        match self.kind_of(trailer) {
            ValueKind::Put => batch.push(user_key, self.merge.value()),
            ValueKind::PutWithExpiry => {
                let value = Resolver::base_value(ValueKind::PutWithExpiry, &self.merge.value(), self.now_ms);
                if let Some(value) = value {
                    batch.push(user_key, value);
                }
            }
            ValueKind::Merge => self.pending = Pending::Merging(vec![self.merge.value()]),
            // A tombstone: the key is hidden. (Range tombstones are never
            // among a source's entries; they reach the walk as `range_dels`.)
            ValueKind::Delete | ValueKind::RangeDelete => {}
        }
        Ok(Next::Step)
    }

    /// Forward, gathering the operands of `key_buf`: an older operand is
    /// gathered; a put or tombstone is the base, and the end of the key
    /// means no base. Either ends the key with the fold.
    #[cold]
    fn visit_merging(&mut self, batch: &mut Batch) -> Result<Next> {
        let (user_key, trailer) = self.merge.user_key_and_trailer();
        let same_key = self.merge.valid() && user_key == self.key_buf.as_slice();
        let kind = self.kind_of(trailer);
        if same_key && kind == ValueKind::Merge {
            if let Pending::Merging(operands) = &mut self.pending {
                operands.push(self.merge.value());
            }
            return Ok(Next::Step);
        }
        let base = match same_key {
            true => Resolver::base_value(kind, &self.merge.value(), self.now_ms),
            false => None,
        };
        let Pending::Merging(mut operands) = std::mem::replace(&mut self.pending, Pending::Skipping) else {
            unreachable!("pending was just matched as merging");
        };
        operands.reverse();
        let merged = self
            .resolver
            .full_merge(&self.key_buf, base.as_deref(), &operands)?;
        batch.push(&self.key_buf, merged);
        // The base is decided with the key; another key is looked at again.
        Ok(if same_key { Next::Step } else { Next::Stay })
    }

    /// Reverse: considers the merge's current entry; appends the key
    /// gathered so far to `batch` if this entry ends it and it is not
    /// deleted.
    #[inline]
    fn visit_reverse(&mut self, batch: &mut Batch) -> Result<Next> {
        let (user_key, trailer) = self.merge.user_key_and_trailer();
        let ended = !self.merge.valid() || before_start(user_key, &self.start);
        if let Pending::Gathering(_) = self.pending {
            if ended || user_key != self.key_buf.as_slice() {
                // Every version of the gathered key is walked: decide it,
                // then (if the walk goes on) look at this entry again.
                let Pending::Gathering(fold) = std::mem::replace(&mut self.pending, Pending::Idle) else {
                    unreachable!("pending was just matched as gathering");
                };
                if fold.operands.is_empty() {
                    if let Some(value) = fold.base {
                        batch.push(&self.key_buf, value);
                    }
                } else {
                    let merged =
                        self.resolver
                            .full_merge(&self.key_buf, fold.base.as_deref(), &fold.operands)?;
                    batch.push(&self.key_buf, merged);
                }
                return Ok(if ended { Next::End } else { Next::Stay });
            }
        } else {
            if ended {
                return Ok(Next::End);
            }
            if past_end(user_key, &self.end) {
                // Cannot happen after `seek_for_prev` to the end bound;
                // skipped for safety rather than yielded.
                debug_assert!(false, "reverse walk started past the end bound");
                return Ok(Next::Step);
            }
            self.key_buf.clear();
            self.key_buf.extend_from_slice(user_key);
            self.pending = Pending::Gathering(Fold::default());
            self.start_key();
        }
        // A version of the gathered key; versions arrive oldest first, so
        // a put or tombstone replaces everything before it and an operand
        // adds to it.
        let kind = self.kind_of(trailer);
        if trailer_seqno(trailer) <= self.snapshot
            && let Pending::Gathering(fold) = &mut self.pending
        {
            match kind {
                ValueKind::Merge => fold.operands.push(self.merge.value()),
                kind => {
                    fold.base = Resolver::base_value(kind, &self.merge.value(), self.now_ms);
                    fold.operands.clear();
                }
            }
        }
        Ok(Next::Step)
    }
}

/// What the walk does after looking at one entry.
enum Next {
    /// Step the merge on.
    Step,
    /// Look at the same entry again.
    Stay,
    /// The walk is over.
    End,
}

/// True when `user_key` comes before the lower bound `start`.
fn before_start(user_key: &[u8], start: &Bound<Bytes>) -> bool {
    match start {
        Bound::Unbounded => false,
        Bound::Included(start) => user_key < start.as_ref(),
        Bound::Excluded(start) => user_key <= start.as_ref(),
    }
}

/// True when `user_key` comes after the upper bound `end`.
fn past_end(user_key: &[u8], end: &Bound<Bytes>) -> bool {
    match end {
        Bound::Unbounded => false,
        Bound::Included(end) => user_key > end.as_ref(),
        Bound::Excluded(end) => user_key >= end.as_ref(),
    }
}
