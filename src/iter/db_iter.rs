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
//!   that version is a put.
//! - `key_buf` holds the key of `pending` whenever it is not `Idle`.
//! - After an `Err`, every later call returns the same error.

use std::ops::Bound;

use bytes::{Bytes, BytesMut};

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

/// The user key the walk is in the middle of, named by `key_buf`.
#[derive(Debug)]
enum Pending {
    /// None: the merge's entry starts a new user key.
    Idle,
    /// Forward: the key is decided (yielded or hidden); its older versions
    /// are skipped.
    Skipping,
    /// Reverse: the key's versions are being walked, oldest first; the
    /// newest visible one so far, if any.
    Gathering(Option<(ValueKind, Bytes)>),
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
    /// Where yielded keys are copied: each is a slice of it.
    key_arena: BytesMut,
}

/// Bytes of each chunk that yielded keys are copied into.
///
/// NOTE: one allocation per chunk instead of one per key (a scan's batch
/// would otherwise make hundreds of small allocations that outlive it).
/// The cost: a key the caller keeps holds its whole chunk alive, as a
/// value holds its block.
const KEY_ARENA_CHUNK_BYTES: usize = 4096;

/// How much one [`DbIter::walk`] may append.
struct BatchLimit {
    max_entries: usize,
    max_bytes: usize,
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
        DbIter {
            merge: MergingIterator::new(sources, direction),
            snapshot,
            start,
            end,
            state: State::Unpositioned,
            pending: Pending::Idle,
            key_buf: Vec::new(),
            key_arena: BytesMut::new(),
        }
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
        let mut batch = Vec::with_capacity(1);
        self.next_batch(&mut batch, 1, usize::MAX).await?;
        Ok(batch.pop())
    }

    /// Appends the next entries to `batch`: at least one unless the walk
    /// is over (then none), at most `max_entries`, and no more once those
    /// appended hold `max_bytes` of keys and values.
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
        batch: &mut Vec<(Bytes, Bytes)>,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<()> {
        assert!(max_entries > 0, "a batch of no entries never ends the walk");
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
        let limit = BatchLimit {
            max_entries: before.saturating_add(max_entries),
            max_bytes,
        };
        let mut bytes = 0;
        loop {
            let walked = self.walk(batch, &limit, &mut bytes);
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

    /// Walks the merge from its current entry, appending to `batch` up to
    /// `limit` (`bytes` counts what was appended), until it stops.
    fn walk(
        &mut self,
        batch: &mut Vec<(Bytes, Bytes)>,
        limit: &BatchLimit,
        bytes: &mut usize,
    ) -> Result<Stop> {
        // NOTE: each round appends at most one entry, so checking here
        // keeps the batch within its limit.
        while batch.len() < limit.max_entries && *bytes < limit.max_bytes {
            let (entry, next) = match self.direction() {
                Direction::Forward => self.visit_forward(),
                Direction::Reverse => self.visit_reverse(),
            };
            if let Some((key, value)) = entry {
                *bytes += key.len() + value.len();
                batch.push((key, value));
            }
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

    /// Forward: considers the merge's current entry.
    #[inline]
    fn visit_forward(&mut self) -> Visit {
        if !self.merge.valid() {
            return (None, Next::End);
        }
        let user_key = self.merge.user_key();
        if matches!(self.pending, Pending::Skipping) && user_key == self.key_buf.as_slice() {
            // An older version of a decided key.
            return (None, Next::Step);
        }
        if past_end(user_key, &self.end) {
            return (None, Next::End);
        }
        let trailer = self.merge.trailer();
        if before_start(user_key, &self.start) || trailer_seqno(trailer) > self.snapshot {
            // Only the excluded start key or a version above the snapshot:
            // not yet the deciding version.
            return (None, Next::Step);
        }
        // The newest visible version of this user key decides it.
        self.key_buf.clear();
        self.key_buf.extend_from_slice(user_key);
        self.pending = Pending::Skipping;
        if trailer_kind(trailer) == ValueKind::Put {
            let key = copy_key(&mut self.key_arena, user_key);
            (Some((key, self.merge.value())), Next::Step)
        } else {
            // A tombstone: the key is hidden.
            (None, Next::Step)
        }
    }

    /// Reverse: considers the merge's current entry.
    #[inline]
    fn visit_reverse(&mut self) -> Visit {
        let ended = !self.merge.valid() || before_start(self.merge.user_key(), &self.start);
        if let Pending::Gathering(_) = self.pending {
            if ended || self.merge.user_key() != self.key_buf.as_slice() {
                // Every version of the gathered key is walked: decide it,
                // then (if the walk goes on) look at this entry again.
                let Pending::Gathering(newest_visible) = std::mem::replace(&mut self.pending, Pending::Idle)
                else {
                    unreachable!("pending was just matched as gathering");
                };
                let entry = match newest_visible {
                    Some((ValueKind::Put, value)) => {
                        Some((copy_key(&mut self.key_arena, &self.key_buf), value))
                    }
                    _ => None,
                };
                return (entry, if ended { Next::End } else { Next::Stay });
            }
        } else {
            if ended {
                return (None, Next::End);
            }
            let user_key = self.merge.user_key();
            if past_end(user_key, &self.end) {
                // Cannot happen after `seek_for_prev` to the end bound;
                // skipped for safety rather than yielded.
                debug_assert!(false, "reverse walk started past the end bound");
                return (None, Next::Step);
            }
            self.key_buf.clear();
            self.key_buf.extend_from_slice(user_key);
            self.pending = Pending::Gathering(None);
        }
        // A version of the gathered key; versions arrive oldest first, so
        // the last visible one wins.
        let trailer = self.merge.trailer();
        if trailer_seqno(trailer) <= self.snapshot
            && let Pending::Gathering(newest_visible) = &mut self.pending
        {
            *newest_visible = Some((trailer_kind(trailer), self.merge.value()));
        }
        (None, Next::Step)
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

/// The entry a visit yields, if any, and what the walk does next.
type Visit = (Option<(Bytes, Bytes)>, Next);

/// `key` copied into `arena` (a new chunk if it lacks room), as `Bytes`.
#[inline]
fn copy_key(arena: &mut BytesMut, key: &[u8]) -> Bytes {
    if arena.capacity() - arena.len() < key.len() {
        *arena = BytesMut::with_capacity(KEY_ARENA_CHUNK_BYTES.max(key.len()));
    }
    arena.extend_from_slice(key);
    let copy = arena.split().freeze();
    debug_assert_eq!(copy, key);
    copy
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that fill a chunk, cross into the next, and outgrow one, each
    /// come back whole and unchanged by later copies.
    #[test]
    fn copied_keys_stay_whole_across_chunks() {
        let mut arena = BytesMut::new();
        let keys: Vec<Vec<u8>> = (0..1_000_usize)
            .map(|i| vec![i as u8; (i * 37) % 100 + usize::from(i % 250 == 0) * KEY_ARENA_CHUNK_BYTES])
            .collect();
        let copies: Vec<Bytes> = keys.iter().map(|key| copy_key(&mut arena, key)).collect();
        for (key, copy) in keys.iter().zip(&copies) {
            assert_eq!(copy.as_ref(), key.as_slice());
        }
    }
}
