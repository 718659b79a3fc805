//! Range scans: a `futures::Stream` of `(key, value)` over a `DbIter`.
//!
//! Ownership: a scan owns the super-version it started from, so every
//! memtable and table it reads stays alive (compaction defers deleting a
//! table until no super-version holds it, see `db/obsolete.rs`).
//!
//! A scan reads its entries in batches (`DbIter::next_batch`) and hands
//! them out one per poll: the futures and the iterator's set-up are paid
//! per batch, not per entry. Batches start small, so a short scan reads
//! little past what it takes, and double up to [`MAX_SCAN_BATCH_ENTRIES`].
//!
//! Invariants:
//! - A scan reads at one seqno, fixed when it is created (or the snapshot's),
//!   so it is a consistent view even while writes and compactions go on.
//! - Nothing is read before the first poll.
//! - A batch holds at most [`MAX_SCAN_BATCH_ENTRIES`] entries, and stops
//!   growing once its keys and values reach [`MAX_SCAN_BATCH_BYTES`].
//! - Entries read before an error are yielded before it.

use std::ops::Bound;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::Shared;
use super::tree::SuperVersion;
use crate::error::Result;
use crate::iter::{Batch, BatchEntries, DbIter, Direction, LevelIter, MemtableIter, Source};
use crate::key::SeqNo;
use crate::range_del::RangeDels;
use crate::sst::TableIter;

/// Entries in a scan's first batch.
const FIRST_SCAN_BATCH_ENTRIES: usize = 16;
/// Most entries a scan reads ahead of its consumer in one batch.
const MAX_SCAN_BATCH_ENTRIES: usize = 256;
/// A batch takes no more entries once its keys and values hold this many
/// bytes. Values are slices of blocks, so this also bounds the blocks a
/// batch can keep alive beyond the cache.
const MAX_SCAN_BATCH_BYTES: usize = 256 * 1024;

/// A stream of `(key, value)` pairs in key order (or reverse, after
/// [`Scan::rev`]) at one seqno. Created by [`crate::Db::scan`] and
/// [`crate::Snapshot::scan`].
///
/// Items are `Result`s: a table read can fail (`Error::Io`,
/// `Error::Corruption`); the stream ends after an error.
#[must_use = "a scan does nothing until polled"]
pub struct Scan {
    state: ScanState,
    /// Entries of the last batch not yet yielded.
    ready: BatchEntries,
}

enum ScanState {
    Pending {
        shared: Arc<Shared>,
        seqno: SeqNo,
        /// What `Db::scan` reads, loaded with its seqno (see
        /// `Tree::read_view`); `None` for a snapshot's scan, which loads
        /// it at the first poll.
        view: Option<Arc<SuperVersion>>,
        start: Bound<Bytes>,
        end: Bound<Bytes>,
        direction: Direction,
        /// Holds a `Snapshot` alive for `Snapshot::scan`.
        keep_alive: Option<Arc<dyn Send + Sync>>,
    },
    /// A stream of batches, none of them empty.
    Running(BoxStream<'static, Result<Batch>>),
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.state {
            ScanState::Pending { seqno, direction, .. } => f
                .debug_struct("Scan")
                .field("seqno", seqno)
                .field("direction", direction)
                .finish(),
            ScanState::Running(_) => f.debug_struct("Scan").finish_non_exhaustive(),
        }
    }
}

impl Scan {
    pub(super) fn new(
        shared: Arc<Shared>,
        seqno: SeqNo,
        view: Option<Arc<SuperVersion>>,
        start: Bound<Bytes>,
        end: Bound<Bytes>,
        keep_alive: Option<Arc<dyn Send + Sync>>,
    ) -> Self {
        Scan {
            ready: BatchEntries::default(),
            state: ScanState::Pending {
                shared,
                seqno,
                view,
                start,
                end,
                direction: Direction::Forward,
                keep_alive,
            },
        }
    }

    /// The same scan in descending key order. Call before the first poll;
    /// afterwards it changes nothing.
    pub fn rev(mut self) -> Self {
        if let ScanState::Pending { direction, .. } = &mut self.state {
            *direction = Direction::Reverse;
        }
        self
    }
}

/// The sources of a read of `current`, newest first.
pub(super) async fn sources(shared: &Shared, current: &SuperVersion) -> Result<Vec<Source>> {
    let mut sources = vec![Source::Memtable(MemtableIter::new(Arc::clone(&current.memtable)))];
    for imm in &current.imms {
        sources.push(Source::Memtable(MemtableIter::new(Arc::clone(&imm.memtable))));
    }
    let mut levels = current.version.levels.iter();
    if let Some(l0) = levels.next() {
        for meta in l0 {
            let table = shared.table_cache.get(meta).await?;
            sources.push(Source::Table(TableIter::new(table)));
        }
    }
    for tables in levels.filter(|tables| !tables.is_empty()) {
        sources.push(Source::Level(LevelIter::new(
            Arc::clone(&shared.table_cache),
            tables.clone(),
        )));
    }
    Ok(sources)
}

/// The range tombstones a read of `current` at `snapshot` between `start`
/// and `end` must honour (none above the snapshot), or `None` when there
/// are none: from the memtables, and from the tables that hold some and
/// overlap the bounds, opened now since a walk cannot wait to reach them.
pub(super) async fn range_dels(
    shared: &Shared,
    current: &SuperVersion,
    snapshot: SeqNo,
    start: &Bound<Bytes>,
    end: &Bound<Bytes>,
) -> Result<Option<RangeDels>> {
    let mut tombstones = Vec::new();
    let memtables = std::iter::once(&current.memtable).chain(current.imms.iter().map(|imm| &imm.memtable));
    for dels in memtables.filter_map(|memtable| memtable.range_dels()) {
        tombstones.extend(dels.tombstones());
    }
    let bound = |bound: &Bound<Bytes>| match bound {
        Bound::Included(key) | Bound::Excluded(key) => Some(key.clone()),
        Bound::Unbounded => None,
    };
    let (low, high) = (bound(start), bound(end));
    let overlapping = |meta: &&Arc<crate::manifest::TableMeta>| {
        meta.has_range_dels
            && low.as_ref().is_none_or(|low| meta.largest.user_key >= low)
            && high.as_ref().is_none_or(|high| meta.smallest.user_key <= high)
    };
    for meta in current.version.levels.iter().flatten().filter(overlapping) {
        let table = shared.table_cache.get(meta).await?;
        if let Some(dels) = table.range_dels() {
            tombstones.extend(dels.tombstones());
        }
    }
    tombstones.retain(|tombstone| tombstone.seqno <= snapshot);
    Ok((!tombstones.is_empty()).then(|| RangeDels::new(tombstones)))
}

impl Stream for Scan {
    type Item = Result<(Bytes, Bytes)>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(entry) = this.ready.next() {
                return Poll::Ready(Some(Ok(entry)));
            }
            if let ScanState::Pending { .. } = this.state {
                let placeholder = ScanState::Running(futures::stream::empty().boxed());
                if let ScanState::Pending {
                    shared,
                    seqno,
                    view,
                    start,
                    end,
                    direction,
                    keep_alive,
                } = std::mem::replace(&mut this.state, placeholder)
                {
                    this.state =
                        ScanState::Running(run(shared, seqno, view, start, end, direction, keep_alive));
                }
            }
            let ScanState::Running(batches) = &mut this.state else {
                return Poll::Ready(None);
            };
            match std::task::ready!(batches.poll_next_unpin(cx)) {
                Some(Ok(batch)) => this.ready = batch.into_entries(),
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }
}

/// The scan proper: load the super-version, build the iterator, then yield
/// batches until it ends or fails.
fn run(
    shared: Arc<Shared>,
    seqno: SeqNo,
    view: Option<Arc<SuperVersion>>,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    direction: Direction,
    keep_alive: Option<Arc<dyn Send + Sync>>,
) -> BoxStream<'static, Result<Batch>> {
    enum Phase {
        Start(Arc<Shared>, Option<Arc<SuperVersion>>, Bound<Bytes>, Bound<Bytes>),
        /// The iterator, what it reads, and the size of the next batch.
        Iterating(Box<DbIter>, Arc<SuperVersion>, usize),
        Done,
    }
    let first = Phase::Start(shared, view, start, end);
    futures::stream::unfold(first, move |phase| {
        let keep_alive = keep_alive.clone();
        async move {
            let _keep_alive = keep_alive;
            let (mut iter, current, batch_entries) = match phase {
                Phase::Start(shared, view, start, end) => {
                    let current = view.unwrap_or_else(|| shared.tree.current());
                    match db_iter(&shared, &current, seqno, start, end, direction).await {
                        Ok(iter) => (Box::new(iter), current, FIRST_SCAN_BATCH_ENTRIES),
                        Err(error) => return Some((Err(error), Phase::Done)),
                    }
                }
                Phase::Iterating(iter, current, batch_entries) => (iter, current, batch_entries),
                Phase::Done => return None,
            };
            debug_assert!((1..=MAX_SCAN_BATCH_ENTRIES).contains(&batch_entries));
            let mut batch = Batch::with_capacity(batch_entries);
            match iter
                .next_batch(&mut batch, batch_entries, MAX_SCAN_BATCH_BYTES)
                .await
            {
                Ok(()) if batch.is_empty() => None,
                Ok(()) => {
                    let next_entries = (batch_entries * 2).min(MAX_SCAN_BATCH_ENTRIES);
                    Some((Ok(batch), Phase::Iterating(iter, current, next_entries)))
                }
                Err(error) => Some((Err(error), Phase::Done)),
            }
        }
    })
    .boxed()
}

/// The value of `key` at `snapshot` in `current`, with its merge operands
/// folded: a scan of the one key, for a point read whose newest version is
/// a merge operand. It reads only the sources that may hold the key: every
/// memtable, and the tables whose key range holds it and whose bloom filter
/// does not rule it out (at most one per level below 0).
///
/// # Errors
/// As a scan's, and [`crate::Error::MergeFailed`] from the fold.
pub(super) async fn point_read(
    shared: &Shared,
    current: &SuperVersion,
    key: &Bytes,
    snapshot: SeqNo,
) -> Result<Option<Bytes>> {
    let mut sources = vec![Source::Memtable(MemtableIter::new(Arc::clone(&current.memtable)))];
    for imm in &current.imms {
        sources.push(Source::Memtable(MemtableIter::new(Arc::clone(&imm.memtable))));
    }
    // NOTE: newest first, as `lookup_at` reads them; deeper levels do not
    // overlap, so at most one of their tables holds the key.
    let tables = current
        .version
        .levels
        .iter()
        .flatten()
        .filter(|meta| meta.may_hold(key));
    for meta in tables {
        let table = shared.table_cache.get(meta).await?;
        if table.may_contain(key) {
            sources.push(Source::Table(TableIter::new(table)));
        }
    }
    let (start, end) = (Bound::Included(key.clone()), Bound::Included(key.clone()));
    let range_dels = range_dels(shared, current, snapshot, &start, &end).await?;
    let mut iter = DbIter::new(sources, snapshot, start, end, Direction::Forward)
        .with_resolver(shared.options.resolver())
        .with_range_dels(range_dels);
    let mut batch = Batch::with_capacity(1);
    iter.next_batch(&mut batch, 1, usize::MAX).await?;
    Ok(batch.into_entries().next().map(|(_, value)| value))
}

/// The user-level iterator over `current` at `snapshot` within the bounds,
/// with the store's merge operator, clock and range tombstones.
async fn db_iter(
    shared: &Shared,
    current: &SuperVersion,
    snapshot: SeqNo,
    start: Bound<Bytes>,
    end: Bound<Bytes>,
    direction: Direction,
) -> Result<DbIter> {
    let sources = sources(shared, current).await?;
    let range_dels = range_dels(shared, current, snapshot, &start, &end).await?;
    Ok(DbIter::new(sources, snapshot, start, end, direction)
        .with_resolver(shared.options.resolver())
        .with_range_dels(range_dels))
}

/// The smallest key above every key that starts with `prefix`, if any.
pub(super) fn prefix_end(prefix: &[u8]) -> Bound<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Bound::Excluded(Bytes::from(end));
        }
    }
    Bound::Unbounded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Bound::Excluded(Bytes::from_static(b"ac")));
        assert_eq!(prefix_end(b"a\xff"), Bound::Excluded(Bytes::from_static(b"b")));
        assert_eq!(prefix_end(b"\xff\xff"), Bound::Unbounded);
        assert_eq!(prefix_end(b""), Bound::Unbounded);
    }
}
