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
use crate::error::{Error, Result};
use crate::io::{Fs, OpenMode};
use crate::iter::{Direction, LevelIter, MergingIterator, Source};
use crate::key::{InternalKey, SeqNo, ValueKind};
use crate::manifest::TableMeta;
use crate::sst::{TableBuilder, TableCache, TableOptions, table_path};

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
    let mut writer = OutputWriter {
        ctx,
        open: None,
        created: Vec::new(),
        added: Vec::new(),
        bytes_written: 0,
        bytes_charged: 0,
    };
    match merge(compaction, ctx, &mut writer).await {
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
            let table = ctx.table_cache.get(meta.number, meta.size_bytes).await?;
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

/// The versions of one user key decided so far.
struct KeyState {
    user_key: Bytes,
    /// The stripe of the last version kept (stripes only go down).
    last_stripe: Option<usize>,
    /// Kept tombstones not yet written: dropped at the end of the key
    /// unless an older put is kept after them. Only used when bottommost;
    /// at most one per stripe.
    pending_tombstones: Vec<(u64, Bytes)>,
}

/// Streams the merge through the drop rules into `writer`.
async fn merge(
    compaction: &Compaction,
    ctx: &JobContext<'_>,
    writer: &mut OutputWriter<'_, '_>,
) -> Result<()> {
    let mut merge = MergingIterator::new(sources(compaction, ctx).await?, Direction::Forward);
    merge.seek_to_first().await?;
    let mut key: Option<KeyState> = None;
    let mut entries_read: u64 = 0;
    while merge.valid() {
        let state = match &mut key {
            Some(state) if state.user_key.as_ref() == merge.user_key() => state,
            _ => {
                if let Some(done) = key.take() {
                    debug_assert!(done.user_key.as_ref() < merge.user_key());
                    finish_key(done, compaction.is_bottommost);
                }
                key.insert(KeyState {
                    user_key: Bytes::copy_from_slice(merge.user_key()),
                    last_stripe: None,
                    pending_tombstones: Vec::new(),
                })
            }
        };
        let trailer = merge.trailer();
        // The stripe of a seqno: the index of the first snapshot at or
        // above it, or `snapshots.len()` for "latest".
        let stripe = ctx
            .snapshots
            .partition_point(|&snapshot| snapshot < merge.seqno());
        if state.last_stripe != Some(stripe) {
            debug_assert!(state.last_stripe.is_none_or(|last| stripe < last));
            state.last_stripe = Some(stripe);
            match merge.kind() {
                ValueKind::Delete if compaction.is_bottommost => {
                    state.pending_tombstones.push((trailer, merge.value()));
                }
                ValueKind::Delete => writer.add(&state.user_key, trailer, &merge.value()).await?,
                ValueKind::Put => {
                    for (trailer, value) in std::mem::take(&mut state.pending_tombstones) {
                        writer.add(&state.user_key, trailer, &value).await?;
                    }
                    writer.add(&state.user_key, trailer, &merge.value()).await?;
                }
            }
        }
        merge.next().await?;
        entries_read += 1;
        if entries_read.is_multiple_of(YIELD_EVERY_ENTRIES) {
            writer.pace().await;
            tokio::task::yield_now().await;
        }
    }
    if let Some(done) = key.take() {
        finish_key(done, compaction.is_bottommost);
    }
    writer.finish_table().await
}

/// Ends a user key: tombstones still pending have no older put kept, so
/// (bottommost) they hide nothing and are dropped.
fn finish_key(state: KeyState, is_bottommost: bool) {
    debug_assert!(state.pending_tombstones.is_empty() || is_bottommost);
    drop(state);
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
            self.finish_table().await?;
        }
        let open = match &mut self.open {
            Some(open) => open,
            None => {
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
                self.open.insert(OpenTable {
                    builder,
                    number,
                    last_user_key: user_key.clone(),
                })
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

    /// Finishes (and syncs) the open table, if any, and records it.
    async fn finish_table(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
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
