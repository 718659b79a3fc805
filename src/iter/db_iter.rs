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
//! Invariants:
//! - Yielded user keys are strictly increasing (forward) or strictly
//!   decreasing (reverse), and lie within the bounds.
//! - A yielded value is the newest version with seqno <= snapshot, and
//!   that version is a put.
//! - After an `Err`, every later call returns the same error.

use std::ops::Bound;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::iter::{Direction, MergingIterator, Source, trailer_kind, trailer_seqno};
use crate::key::{InternalKey, MAX_SEQNO, SeqNo, ValueKind};

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

/// User keys and values at a snapshot, in key order (or its reverse).
#[derive(Debug)]
pub struct DbIter {
    merge: MergingIterator,
    snapshot: SeqNo,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    state: State,
    /// The user key being decided or skipped, reused across keys.
    key_buf: Vec<u8>,
}

impl DbIter {
    /// An iterator over `sources` (newest first) seeing the versions with
    /// seqno <= `snapshot`, between `start` and `end`, moving in
    /// `direction`. Nothing is read until the first
    /// [`DbIter::next_entry`].
    pub fn new(
        sources: Vec<Source>,
        snapshot: SeqNo,
        start: Bound<Bytes>,
        end: Bound<Bytes>,
        direction: Direction,
    ) -> Self {
        DbIter {
            merge: MergingIterator::new(sources, direction),
            snapshot,
            start,
            end,
            state: State::Unpositioned,
            key_buf: Vec::new(),
        }
    }

    /// The way the iterator moves.
    pub fn direction(&self) -> Direction {
        self.merge.direction()
    }

    /// The next (user key, value), or `None` past the last one.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Corruption`] from a table
    /// read. The iterator is then finished: every later call returns the
    /// same error.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped call leaves the position unspecified and
    /// may lose an entry; drop the iterator with it.
    pub async fn next_entry(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        match &self.state {
            State::Done => return Ok(None),
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
        let found = match self.direction() {
            Direction::Forward => self.next_forward().await,
            Direction::Reverse => self.next_reverse().await,
        };
        match found {
            Ok(Some(entry)) => Ok(Some(entry)),
            Ok(None) => {
                self.state = State::Done;
                Ok(None)
            }
            Err(error) => {
                self.state = State::Failed(error.clone());
                Err(error)
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

    /// Forward: the next user key whose newest visible version is a put.
    async fn next_forward(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            if !self.merge.valid() {
                return Ok(None);
            }
            let user_key = self.merge.user_key();
            if past_end(user_key, &self.end) {
                return Ok(None);
            }
            if before_start(user_key, &self.start) || trailer_seqno(self.merge.trailer()) > self.snapshot {
                // Only the excluded start key or a version above the
                // snapshot: not yet the deciding version.
                self.merge.next().await?;
                continue;
            }
            // The newest visible version of this user key decides it.
            let decided = (trailer_kind(self.merge.trailer()) == ValueKind::Put)
                .then(|| (Bytes::copy_from_slice(user_key), self.merge.value()));
            self.key_buf.clear();
            self.key_buf.extend_from_slice(user_key);
            self.merge.next().await?;
            while self.merge.valid() && self.merge.user_key() == self.key_buf.as_slice() {
                self.merge.next().await?;
            }
            if decided.is_some() {
                return Ok(decided);
            }
        }
    }

    /// Reverse: the previous user key whose newest visible version is a
    /// put.
    async fn next_reverse(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        loop {
            if !self.merge.valid() {
                return Ok(None);
            }
            let user_key = self.merge.user_key();
            if before_start(user_key, &self.start) {
                return Ok(None);
            }
            if past_end(user_key, &self.end) {
                // Cannot happen after `seek_for_prev` to the end bound;
                // skipped for safety rather than yielded.
                debug_assert!(false, "reverse walk started past the end bound");
                self.merge.prev().await?;
                continue;
            }
            self.key_buf.clear();
            self.key_buf.extend_from_slice(user_key);
            // Versions arrive oldest first: the last visible one wins.
            let mut newest_visible: Option<(ValueKind, Bytes)> = None;
            while self.merge.valid() && self.merge.user_key() == self.key_buf.as_slice() {
                let trailer = self.merge.trailer();
                if trailer_seqno(trailer) <= self.snapshot {
                    newest_visible = Some((trailer_kind(trailer), self.merge.value()));
                }
                self.merge.prev().await?;
            }
            if let Some((ValueKind::Put, value)) = newest_visible {
                return Ok(Some((Bytes::copy_from_slice(&self.key_buf), value)));
            }
        }
    }
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
