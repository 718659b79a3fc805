//! The compaction job: merge the input tables, keep what a reader can
//! still see, write sorted output tables.
//!
//! Drop rules. For each user key, versions arrive newest first. The live
//! snapshots `s1 < s2 < ... < sk` and "latest" cut seqnos into stripes:
//! `[0, s1]`, `(s1, s2]`, ..., `(sk, ∞)`. A reader at a snapshot (or at
//! latest) sees the newest version at or below it, which is the newest
//! version of its stripe or of a stripe below. So the job keeps the newest
//! version of each stripe and drops the rest. When the compaction is
//! bottommost (nothing older lies below it), a kept tombstone with no kept
//! put older than it hides nothing, so it is dropped too: every reader that
//! saw it sees no version at all instead, which reads the same.
//!
//! Merge operands, expiry and the filter (see `merge.rs`, `ttl.rs`,
//! `compaction_filter.rs`). When the newest version of a stripe is a merge
//! operand, the older operands of the same stripe join it (a run) down to
//! the stripe's first put or tombstone, the base. A run with a base is
//! folded into one put at the newest operand's seqno (the base is then
//! shadowed); a run that reaches the key's end folds onto no base when the
//! compaction is bottommost. Any other run (the next version is in a lower
//! stripe, or the end of a key that may have older versions below) is
//! written as operands, shortened to one by the operator's partial merge
//! where it offers one. A run is never folded onto an expiring value that
//! has not expired, since the folded put would not expire with it; and a
//! run the operator cannot fold (no operator, or it fails) is written as it
//! is, so the read reports the error instead of the compaction failing. An
//! expiring value found expired (on the store's clock) becomes a tombstone
//! at its seqno. The filter sees the values of the newest stripe only.
//!
//! NOTE: that tombstone rule generalises RocksDB's (drop a tombstone in
//! the oldest stripe): with snapshots `[10]` and versions `del@20, del@5`,
//! both go. Snapshots created while the job runs are at or above every
//! seqno in the inputs, so "latest" covers them.
//!
//! Ownership: the compaction task runs one job at a time on its runtime.
//! The job creates, writes and syncs its output files; the caller syncs the
//! directory, commits the manifest edit and deletes the inputs. A failed
//! job removes the files it created (best effort; the orphan sweep at open
//! catches the rest).
//!
//! Invariants:
//! - Outputs are written in internal-key order, each `finish`ed (synced)
//!   before the job returns, and no two outputs share a user key.
//! - An output closes only at a user-key boundary, once it reaches
//!   `target_file_size_bytes`.
//! - The job yields to its runtime every [`YIELD_EVERY_ENTRIES`] entries
//!   read, and charges the rate limiter for what it wrote at the same
//!   points.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::compaction::CompactionOptions;
use crate::compaction::picker::Compaction;
pub use crate::compaction::rate_limiter::RateLimiter;
use crate::compaction_filter::FilterDecision;
use crate::error::{Error, Result};
use crate::filename::table_path;
use crate::io::{Fs, OpenMode};
use crate::iter::{Direction, LevelIter, MergingIterator, Source};
use crate::key::{InternalKey, SeqNo, Trailer, ValueKind};
use crate::manifest::TableMeta;
use crate::range_del::{RangeDels, successor};
use crate::sst::{TableBuilder, TableCache, TableOptions};

/// Entries read between two yields to the runtime (about one 4 KiB block
/// of small entries), so a flush on the same thread is never stuck behind
/// a long merge.
pub const YIELD_EVERY_ENTRIES: u64 = 64;

/// What a job needs from the store.
pub struct JobContext<'a> {
    /// The filesystem the tables live on.
    pub fs: &'a Arc<dyn Fs>,
    /// The store directory; outputs are `dir/NNNNNN.sst`.
    pub dir: &'a Path,
    /// Opens the input tables.
    pub table_cache: &'a Arc<TableCache>,
    /// How output tables are built.
    pub table_options: &'a TableOptions,
    /// Target output size and the like.
    pub options: &'a CompactionOptions,
    /// Live snapshot seqnos, ascending.
    pub snapshots: &'a [SeqNo],
    /// Reserves a new table number (never reused, even if the job fails).
    pub allocate_file_number: &'a (dyn Fn() -> u64 + Send + Sync),
    /// Paces the job's writes, if set.
    pub rate_limiter: Option<&'a RateLimiter>,
}

impl std::fmt::Debug for JobContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("dir", &self.dir)
            .field("snapshots", &self.snapshots)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What a job produced.
#[derive(Debug, Default)]
pub struct JobOutput {
    /// The output tables, in key order, for `compaction.output_level`.
    pub added: Vec<Arc<TableMeta>>,
    /// Bytes of the input tables.
    pub bytes_read: u64,
    /// Bytes of the output tables.
    pub bytes_written: u64,
}

/// Runs `compaction`: merges its tables and writes the outputs.
///
/// A trivial move needs no job; run anyway, it rewrites the table.
///
/// # Errors
/// [`Error::Io`] or [`Error::Corruption`] from reading an input or writing
/// an output; the outputs created so far are removed.
///
/// # Cancel safety
/// Not cancel safe: a dropped job leaves partial output files, which no
/// version references and the orphan sweep at open removes.
pub async fn run(compaction: &Compaction, ctx: &JobContext<'_>) -> Result<JobOutput> {
    debug_assert!(ctx.snapshots.is_sorted(), "snapshots must be ascending");
    let range_dels = input_range_dels(compaction, ctx).await?;
    // NOTE: bottommost, a tombstone in the oldest stripe goes: every
    // version it covers is in that stripe too, and is dropped by it.
    let lowest_stripe_top = ctx.snapshots.first().copied().unwrap_or(crate::key::MAX_SEQNO);
    let output_range_dels = match compaction.is_bottommost {
        true => range_dels
            .clone()
            .retain_seqnos(|seqno| seqno > lowest_stripe_top),
        false => range_dels.clone(),
    };
    let mut writer = OutputWriter {
        ctx,
        open: None,
        created: Vec::new(),
        added: Vec::new(),
        bytes_written: 0,
        bytes_charged: 0,
        range_dels: output_range_dels,
        lower: None,
    };
    match merge(compaction, ctx, &range_dels, &mut writer).await {
        Ok(()) => {
            writer.pace().await;
            debug_assert!(writer.added.windows(2).all(|pair| match pair {
                [a, b] => a.largest.user_key < b.smallest.user_key,
                _ => true,
            }));
            Ok(JobOutput {
                added: writer.added,
                bytes_read: compaction.input_size_bytes(),
                bytes_written: writer.bytes_written,
            })
        }
        Err(error) => {
            writer.abandon().await;
            Err(error)
        }
    }
}

/// The sources of a compaction: level-0 inputs one by one (newest first),
/// deeper inputs as one level, then the overlapping output-level tables.
async fn sources(compaction: &Compaction, ctx: &JobContext<'_>) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    if compaction.level == 0 {
        for meta in &compaction.inputs {
            let table = ctx.table_cache.get(meta).await?;
            sources.push(Source::Table(table.iter()));
        }
    } else {
        sources.push(Source::Level(LevelIter::new(
            Arc::clone(ctx.table_cache),
            compaction.inputs.clone(),
        )));
    }
    if !compaction.overlapping.is_empty() {
        sources.push(Source::Level(LevelIter::new(
            Arc::clone(ctx.table_cache),
            compaction.overlapping.clone(),
        )));
    }
    Ok(sources)
}

/// The range tombstones of every input table.
async fn input_range_dels(compaction: &Compaction, ctx: &JobContext<'_>) -> Result<RangeDels> {
    let mut tombstones = Vec::new();
    let inputs = compaction.inputs.iter().chain(&compaction.overlapping);
    for meta in inputs.filter(|meta| meta.has_range_dels) {
        let table = ctx.table_cache.get(meta).await?;
        if let Some(dels) = table.range_dels() {
            tombstones.extend(dels.tombstones());
        }
    }
    Ok(RangeDels::new(tombstones))
}

/// The versions of one user key decided so far.
struct KeyState {
    user_key: Bytes,
    /// The stripe of the last version kept (stripes only go down).
    last_stripe: Option<usize>,
    /// Kept tombstones not yet written: dropped at the end of the key
    /// unless an older put is kept after them. Only used when bottommost;
    /// at most one per stripe.
    pending_tombstones: Vec<(u64, Bytes)>,
    /// The merge operands of the newest stripe's run, not yet written.
    run: Option<Run>,
}

/// A run of merge operands in one stripe, newest first, with trailers.
struct Run {
    stripe: usize,
    operands: Vec<(u64, Bytes)>,
}

/// What the drop rules need beyond the snapshots.
struct Rules<'a> {
    is_bottommost: bool,
    /// The stripe above every live snapshot (seen only by the latest state).
    latest_stripe: usize,
    output_level: usize,
    values: &'a crate::compaction::ValuePolicy,
    /// The time expiry is judged at, for the whole job.
    now_ms: u64,
}

/// Streams the merge through the drop rules into `writer`.
async fn merge(
    compaction: &Compaction,
    ctx: &JobContext<'_>,
    range_dels: &RangeDels,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    let mut merge = MergingIterator::new(sources(compaction, ctx).await?, Direction::Forward);
    merge.seek_to_first().await?;
    let rules = Rules {
        is_bottommost: compaction.is_bottommost,
        latest_stripe: ctx.snapshots.len(),
        output_level: compaction.output_level,
        values: &ctx.options.values,
        now_ms: ctx.options.values.resolver.now_ms(),
    };
    let mut key: Option<KeyState> = None;
    let mut entries_read: u64 = 0;
    while merge.valid() {
        let state = match &mut key {
            Some(state) if state.user_key.as_ref() == merge.user_key() => state,
            _ => {
                if let Some(done) = key.take() {
                    debug_assert!(done.user_key.as_ref() < merge.user_key());
                    finish_key(done, &rules, writer).await?;
                }
                key.insert(KeyState {
                    user_key: Bytes::copy_from_slice(merge.user_key()),
                    last_stripe: None,
                    pending_tombstones: Vec::new(),
                    run: None,
                })
            }
        };
        // The stripe of a seqno: the index of the first snapshot at or
        // above it, or `snapshots.len()` for "latest".
        let stripe = ctx
            .snapshots
            .partition_point(|&snapshot| snapshot < merge.seqno());
        // A version under a range tombstone of its own stripe is hidden
        // from every reader that could see it.
        let stripe_top = ctx
            .snapshots
            .get(stripe)
            .copied()
            .unwrap_or(crate::key::MAX_SEQNO);
        let covered =
            !range_dels.is_empty() && range_dels.covers_between(merge.user_key(), merge.seqno(), stripe_top);
        if !covered {
            let version = Version {
                kind: merge.kind(),
                stripe,
                trailer: merge.trailer(),
                value: merge.value(),
            };
            add_version(state, version, &rules, writer).await?;
        }
        merge.next().await?;
        entries_read += 1;
        if entries_read.is_multiple_of(YIELD_EVERY_ENTRIES) {
            writer.pace().await;
            tokio::task::yield_now().await;
        }
    }
    if let Some(done) = key.take() {
        finish_key(done, &rules, writer).await?;
    }
    writer.finish_last().await
}

/// One version of a key as the merge yields it.
struct Version {
    kind: ValueKind,
    stripe: usize,
    trailer: u64,
    value: Bytes,
}

/// `trailer` with its kind replaced by `kind`.
fn with_kind(trailer: u64, kind: ValueKind) -> u64 {
    Trailer::new(Trailer::from_raw(trailer).seqno(), kind).raw()
}

/// Applies the drop rules to the next (older) version of `state`'s key.
async fn add_version(
    state: &mut KeyState,
    version: Version,
    rules: &Rules<'_>,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    if let Some(run) = &mut state.run {
        if run.stripe == version.stripe {
            if version.kind == ValueKind::Merge {
                run.operands.push((version.trailer, version.value));
                return Ok(());
            }
            let run = state.run.take();
            return resolve_run(state, run, Some(version), rules, writer).await;
        }
        // The run's stripe ends without a base.
        let run = state.run.take();
        write_run(state, run, rules, writer).await?;
    }
    if state.last_stripe == Some(version.stripe) {
        // Shadowed by the newest version of its stripe.
        return Ok(());
    }
    debug_assert!(state.last_stripe.is_none_or(|last| version.stripe < last));
    state.last_stripe = Some(version.stripe);
    match version.kind {
        ValueKind::Delete => tombstone(state, version.trailer, version.value, rules, writer).await,
        ValueKind::Merge => {
            state.run = Some(Run {
                stripe: version.stripe,
                operands: vec![(version.trailer, version.value)],
            });
            Ok(())
        }
        ValueKind::Put | ValueKind::PutWithExpiry => write_value(state, version, rules, writer).await,
        // NOTE: never among a table's point entries (`Block::new_data`
        // rejects one); range tombstones reach the job as `range_dels`.
        ValueKind::RangeDelete => Ok(()),
    }
}

/// Keeps a tombstone: written at once, or (bottommost) held until an older
/// version is kept, and dropped if none is.
async fn tombstone(
    state: &mut KeyState,
    trailer: u64,
    value: Bytes,
    rules: &Rules<'_>,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    debug_assert_eq!(Trailer::from_raw(trailer).known_kind(), ValueKind::Delete);
    if rules.is_bottommost {
        state.pending_tombstones.push((trailer, value));
        Ok(())
    } else {
        writer.add(&state.user_key, trailer, &value).await
    }
}

/// Writes the tombstones held back so far: an older version is kept, which
/// they hide.
async fn write_pending_tombstones(state: &mut KeyState, writer: &mut OutputWriter<'_, '_>) -> Result<()> {
    for (trailer, value) in std::mem::take(&mut state.pending_tombstones) {
        writer.add(&state.user_key, trailer, &value).await?;
    }
    Ok(())
}

/// Keeps a put or an expiring put: an expired one becomes a tombstone; in
/// the newest stripe the filter decides.
async fn write_value(
    state: &mut KeyState,
    version: Version,
    rules: &Rules<'_>,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    let (expiry, value) = match version.kind {
        ValueKind::PutWithExpiry => match crate::ttl::split(&version.value) {
            Some((expiry, _)) if crate::ttl::is_expired(expiry, rules.now_ms) => {
                let trailer = with_kind(version.trailer, ValueKind::Delete);
                return tombstone(state, trailer, Bytes::new(), rules, writer).await;
            }
            Some((expiry, value)) => (Some(expiry), value),
            None => unreachable!("block decoders reject expiring values without an expiry"),
        },
        _ => (None, version.value.clone()),
    };
    let filter = rules
        .values
        .filter
        .as_ref()
        .filter(|_| version.stripe == rules.latest_stripe);
    let decision = filter.map_or(FilterDecision::Keep, |filter| {
        filter.filter(rules.output_level, &state.user_key, &value)
    });
    let stored = match decision {
        FilterDecision::Keep => version.value,
        FilterDecision::Remove => {
            let trailer = with_kind(version.trailer, ValueKind::Delete);
            return tombstone(state, trailer, Bytes::new(), rules, writer).await;
        }
        FilterDecision::ChangeValue(new) => match expiry {
            Some(expiry) => {
                let mut stored = Vec::with_capacity(crate::ttl::EXPIRY_SIZE_BYTES + new.len());
                crate::ttl::encode(expiry, &new, &mut stored);
                Bytes::from(stored)
            }
            None => Bytes::from(new),
        },
    };
    write_pending_tombstones(state, writer).await?;
    writer.add(&state.user_key, version.trailer, &stored).await
}

/// Ends a run of merge operands at `base` (a put, expiring put or
/// tombstone of the run's stripe) or, with `None`, at the key's end.
async fn resolve_run(
    state: &mut KeyState,
    run: Option<Run>,
    base: Option<Version>,
    rules: &Rules<'_>,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    let Some(mut run) = run else { return Ok(()) };
    let base_value = match &base {
        None if !rules.is_bottommost => return write_run(state, Some(run), rules, writer).await,
        None => None,
        Some(base) => match base.kind {
            ValueKind::PutWithExpiry => match crate::ttl::split(&base.value) {
                Some((expiry, _)) if !crate::ttl::is_expired(expiry, rules.now_ms) => {
                    // NOTE: never folded onto a live expiring value: the
                    // folded put would outlive it (see the module docs).
                    write_run(state, Some(run), rules, writer).await?;
                    return write_value(state, take_base(base), rules, writer).await;
                }
                _ => None,
            },
            kind => crate::merge::Resolver::base_value(kind, &base.value, rules.now_ms),
        },
    };
    run.operands.reverse();
    let operands: Vec<Bytes> = run.operands.iter().map(|(_, operand)| operand.clone()).collect();
    let folded = rules
        .values
        .resolver
        .full_merge(&state.user_key, base_value.as_deref(), &operands);
    run.operands.reverse();
    let Ok(folded) = folded else {
        // Kept as it is: the read reports the failure.
        write_run(state, Some(run), rules, writer).await?;
        return match base {
            Some(base) if base.kind == ValueKind::Delete => {
                tombstone(state, base.trailer, base.value, rules, writer).await
            }
            Some(base) => write_value(state, base, rules, writer).await,
            None => Ok(()),
        };
    };
    let newest = run.operands.first().map_or(0, |(trailer, _)| *trailer);
    let version = Version {
        kind: ValueKind::Put,
        stripe: run.stripe,
        trailer: with_kind(newest, ValueKind::Put),
        value: folded,
    };
    write_value(state, version, rules, writer).await
}

/// A copy of `base` to write (its value shares the block).
fn take_base(base: &Version) -> Version {
    Version {
        kind: base.kind,
        stripe: base.stripe,
        trailer: base.trailer,
        value: base.value.clone(),
    }
}

/// Writes a run of operands that cannot be folded onto a base: one operand
/// if the operator's partial merge offers it, else each as it is.
async fn write_run(
    state: &mut KeyState,
    run: Option<Run>,
    rules: &Rules<'_>,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    let Some(run) = run else { return Ok(()) };
    write_pending_tombstones(state, writer).await?;
    let operator = rules.values.resolver.operator.as_ref();
    if let (Some(operator), [(newest, _), _, ..]) = (operator, run.operands.as_slice()) {
        let oldest_first: Vec<Bytes> = run
            .operands
            .iter()
            .rev()
            .map(|(_, operand)| operand.clone())
            .collect();
        if let Some(merged) = operator.partial_merge(&state.user_key, &oldest_first) {
            return writer.add(&state.user_key, *newest, &merged).await;
        }
    }
    for (trailer, operand) in &run.operands {
        writer.add(&state.user_key, *trailer, operand).await?;
    }
    Ok(())
}

/// Ends a user key: a run still open ends at the key's end; tombstones
/// still pending have no older version kept, so (bottommost) they hide
/// nothing and are dropped.
async fn finish_key(mut state: KeyState, rules: &Rules<'_>, writer: &mut OutputWriter<'_, '_>) -> Result<()> {
    let run = state.run.take();
    resolve_run(&mut state, run, None, rules, writer).await?;
    debug_assert!(state.pending_tombstones.is_empty() || rules.is_bottommost);
    Ok(())
}

/// The output table being written, and its bookkeeping.
struct OpenTable {
    builder: TableBuilder,
    number: u64,
    /// The user key of the last entry added.
    last_user_key: Bytes,
}

/// Writes outputs, splitting them at the target size between user keys.
struct OutputWriter<'a, 'b> {
    ctx: &'a JobContext<'b>,
    open: Option<OpenTable>,
    /// Every file created, finished or not: removed if the job fails.
    created: Vec<PathBuf>,
    added: Vec<Arc<TableMeta>>,
    /// Bytes of the finished outputs.
    bytes_written: u64,
    /// Bytes charged to the rate limiter so far.
    bytes_charged: u64,
    /// The range tombstones to write, each output taking its part.
    range_dels: RangeDels,
    /// Where the next output's part of the tombstones starts: just after
    /// the last key of the previous output (`None`: the first output).
    lower: Option<Bytes>,
}

impl OutputWriter<'_, '_> {
    /// Adds one version; starts a new table first if the open one reached
    /// the target size and `user_key` starts a new key.
    async fn add(&mut self, user_key: &Bytes, trailer: u64, value: &[u8]) -> Result<()> {
        let full = self.open.as_ref().is_some_and(|open| {
            open.last_user_key != *user_key
                && open.builder.file_size_estimate_bytes() >= self.ctx.options.target_file_size_bytes
        });
        if full {
            self.finish_table(false).await?;
        }
        let open = match self.open.take() {
            Some(open) => self.open.insert(open),
            None => {
                let open = self.create_table(user_key.clone()).await?;
                self.open.insert(open)
            }
        };
        let key = InternalKey {
            user_key: user_key.clone(),
            trailer,
        };
        open.builder.add(&key, value).await?;
        open.last_user_key = user_key.clone();
        Ok(())
    }

    /// Creates the next output table.
    async fn create_table(&mut self, last_user_key: Bytes) -> Result<OpenTable> {
        let number = (self.ctx.allocate_file_number)();
        let path = table_path(self.ctx.dir, number);
        self.created.push(path.clone());
        let file = self
            .ctx
            .fs
            .open(&path, OpenMode::CreateNew)
            .await
            .map_err(|e| Error::io("create table", &path, e))?;
        let builder = TableBuilder::new(file, path, self.ctx.table_options.clone());
        Ok(OpenTable {
            builder,
            number,
            last_user_key,
        })
    }

    /// Finishes the outputs: the open table takes the rest of the range
    /// tombstones; with none open, a table of tombstones alone does.
    async fn finish_last(&mut self) -> Result<()> {
        if self.open.is_none() && self.range_dels.overlaps(self.lower.as_deref(), None) {
            let open = self.create_table(Bytes::new()).await?;
            self.open = Some(open);
        }
        self.finish_table(true).await
    }

    /// Finishes (and syncs) the open table, if any, and records it. It
    /// takes the range tombstones from `lower` up to its last key or (the
    /// `last` output) to their end.
    async fn finish_table(&mut self, last: bool) -> Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let upper = match last {
            true => None,
            false => Some(successor(&open.last_user_key)),
        };
        for tombstone in self.range_dels.clipped(self.lower.as_deref(), upper.as_deref()) {
            open.builder.add_range_tombstone(tombstone);
        }
        self.lower = upper;
        let properties = open.builder.finish().await?;
        self.bytes_written += properties.file_size_bytes;
        self.added
            .push(Arc::new(TableMeta::from_properties(open.number, &properties)));
        Ok(())
    }

    /// Charges the rate limiter for the bytes written since the last call.
    async fn pace(&mut self) {
        let Some(limiter) = self.ctx.rate_limiter else {
            return;
        };
        let open_bytes = self
            .open
            .as_ref()
            .map_or(0, |open| open.builder.file_size_estimate_bytes());
        let total = self.bytes_written + open_bytes;
        let delta = total.saturating_sub(self.bytes_charged);
        self.bytes_charged = self.bytes_charged.max(total);
        limiter.acquire(delta).await;
    }

    /// Drops the open table and removes every file the job created.
    async fn abandon(&mut self) {
        drop(self.open.take());
        for path in self.created.drain(..) {
            if let Err(error) = self.ctx.fs.remove_file(&path).await {
                tracing::warn!(%error, path = %path.display(), "could not remove a failed compaction's output");
            }
        }
        self.added.clear();
    }
}
