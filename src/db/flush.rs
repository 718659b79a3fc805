//! The flush task: writes the oldest immutable memtable to a level-0 table.
//!
//! Runs on the background thread beside the compaction task, so encoding
//! blocks never delays the WAL task; its I/O goes through the I/O layer like
//! everything else.
//!
//! One flush:
//! 1. `Db::sync` semantics: wait until every write in the memtable is
//!    durable in the WAL, so a table never holds a write whose WAL sync
//!    could still fail.
//! 2. Write `NNNNNN.sst` (the builder syncs it), then sync the directory.
//! 3. Log one edit — add the table, advance the log number to the segment
//!    the next memtable starts in — and sync the manifest.
//! 4. Swap the super-version (memtable out, table in), then delete WAL
//!    segments below the log number.
//!
//! A table write that fails for lack of space (`Error::NoSpace`) does not
//! poison the store: like RocksDB's background-error recovery, it stops
//! writes ([`WriteStop`]), keeps reads going, and retries the same memtable
//! with a growing delay; the first table write that succeeds (a flush or a
//! compaction) resumes writes. A failed manifest write or WAL sync stays
//! final.
//!
//! Invariants:
//! - Memtables are flushed oldest first, so the log number only grows.
//! - A crash at any step leaves either the old state (the table is an
//!   orphan, swept at open) or the new one (obsolete segments are swept at
//!   open).
//! - Any other failure poisons the store: writes stop, reads go on.
//! - A half-made table is removed (or left to the sweep at open) and never
//!   referenced: only a complete, synced table enters a manifest edit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::store::Store;
use crate::db::tree::{ImmutableMemtable, Tree};
use crate::error::{Error, Result};
use crate::filename::{table_path, wal_number as parse_segment_name, wal_path as segment_path};
use crate::io::{Fs, OpenMode};
use crate::key::{InternalKey, SeqNo};
use crate::manifest::{TableMeta, VersionEdit};
use crate::memtable::Memtable;
use crate::range_del::RangeTombstone;
use crate::sst::{TableBuilder, TableOptions};
use bytes::Bytes;

/// How often the flush task looks for retired memtables no reader holds.
const RETIRED_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// First delay before a table write that found no space is retried; each
/// failure doubles it, up to [`NO_SPACE_RETRY_MAX`].
pub(crate) const NO_SPACE_RETRY_MIN: Duration = Duration::from_millis(50);

/// Longest delay between retries of a table write that found no space.
pub(crate) const NO_SPACE_RETRY_MAX: Duration = Duration::from_secs(2);

/// The stop a table write for lack of space puts on writes (see
/// `Error::NoSpace`): set by the flush or compaction task whose table write
/// failed, cleared by the next table write that succeeds; writers,
/// `Db::flush` and `Db::stats` read it.
#[derive(Debug, Default)]
pub(crate) struct WriteStop {
    stopped: AtomicBool,
    error: std::sync::Mutex<Option<Error>>,
    /// Table writes that failed for lack of space.
    pub failures: AtomicU64,
}

impl WriteStop {
    /// Stops writes with `error` (an `Error::NoSpace`) and wakes writers
    /// waiting for room, so they return it.
    pub fn stop(&self, error: Error, tree: &Tree) {
        debug_assert!(matches!(error, Error::NoSpace { .. }));
        tracing::warn!(%error, "a table write found no space; writes are stopped until a retry succeeds");
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
        self.stopped.store(true, Ordering::Release);
        self.failures.fetch_add(1, Ordering::Relaxed);
        tree.imm_room.notify_waiters();
    }

    /// Resumes writes after a table write succeeded; true if they were
    /// stopped.
    pub fn resume(&self) -> bool {
        if !self.stopped.swap(false, Ordering::AcqRel) {
            return false;
        }
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!("a retried table write succeeded; writes resume");
        true
    }

    /// The error writes fail with while stopped.
    pub fn error(&self) -> Option<Error> {
        if !self.stopped.load(Ordering::Acquire) {
            return None;
        }
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Counters the flush task keeps.
#[derive(Debug, Default)]
pub(crate) struct FlushStats {
    /// Memtables flushed.
    pub flushes: AtomicU64,
    /// Bytes of tables written by flushes.
    pub bytes_written: AtomicU64,
}

/// The flush task: the store context is all it needs.
pub(crate) struct Flusher {
    pub store: Arc<Store>,
}

impl Flusher {
    /// Flushes frozen memtables until shutdown or a failure.
    pub async fn run(self) {
        // NOTE: flushed memtables wait here until no reader holds them, and
        // are freed on this thread: freeing a full skiplist is slow, and
        // whichever writer or reader dropped the last reference (to an old
        // super-version) would otherwise pay for it.
        let mut retired: Vec<Arc<Memtable>> = Vec::new();
        let store = &self.store;
        let mut retry_delay = NO_SPACE_RETRY_MIN;
        loop {
            let wakeup = store.tree.flush_wakeup.notified();
            retired.retain(|memtable| Arc::strong_count(memtable) > 1);
            if store.shutdown.load(Ordering::Acquire) || store.queue.poisoned().is_some() {
                return;
            }
            let Some(imm) = store.tree.oldest_imm() else {
                if retired.is_empty() {
                    wakeup.await;
                } else {
                    let _ = tokio::time::timeout(RETIRED_CHECK_INTERVAL, wakeup).await;
                }
                continue;
            };
            match self.flush(&imm).await {
                Ok(()) => {
                    retry_delay = NO_SPACE_RETRY_MIN;
                    if store.write_stop.resume() {
                        store.tree.imm_room.notify_waiters();
                    }
                    retired.push(Arc::clone(&imm.memtable));
                }
                Err(error @ Error::NoSpace { .. }) => {
                    // NOTE: the same memtable is retried; shutdown wakes us.
                    store.write_stop.stop(error, &store.tree);
                    let _ = tokio::time::timeout(retry_delay, wakeup).await;
                    retry_delay = (retry_delay * 2).min(NO_SPACE_RETRY_MAX);
                }
                Err(error) => {
                    if store.shutdown.load(Ordering::Acquire) && matches!(error, Error::Closed) {
                        return;
                    }
                    tracing::error!(%error, "flush failed; the store refuses writes until reopened");
                    store.queue.poison(error);
                    return;
                }
            }
        }
    }

    async fn flush(&self, imm: &Arc<ImmutableMemtable>) -> Result<()> {
        let store = &self.store;
        let started = std::time::Instant::now();
        store.queue.request_sync()?.await.unwrap_or(Err(Error::Closed))?;
        let mut edit = VersionEdit {
            log_number: Some(imm.next_log_number),
            last_seqno: Some(imm.last_seqno),
            ..VersionEdit::default()
        };
        if !imm.memtable.is_empty() {
            // NOTE: the version set is locked only to take the number, not
            // while the table is built: a compaction that finishes
            // meanwhile must not wait for this flush to commit.
            let number = store.versions.lock().await.new_file_number();
            // NOTE: read after `request_sync` published every seqno of the
            // memtable: a snapshot not in the list is at or above them all.
            let snapshots = store.snapshots.seqnos();
            store.tree.raise_drop_horizon(store.queue.visible_seqno());
            let entries = shadowed_versions_dropped(imm.memtable.iter(), &snapshots);
            let properties = write_table(
                &store.background_fs,
                &store.dir,
                number,
                (entries, imm.memtable.range_tombstones()),
                &store.table_options,
            )
            .await
            .map_err(Error::table_write_stopped)?;
            store
                .flush_stats
                .bytes_written
                .fetch_add(properties.file_size_bytes, Ordering::Relaxed);
            edit.added
                .push((0, Arc::new(TableMeta::from_properties(number, &properties))));
        }
        let mut versions = store.versions.lock().await;
        let version = versions.log_and_apply(edit).await?;
        let log_number = versions.log_number;
        // NOTE: the manifest edit is durable, so the segments can go before
        // the swap; `finish_flush` wakes `Db::flush`, which must find the
        // flush complete, counters included.
        remove_obsolete_segments(&store.background_fs, &store.dir, log_number).await;
        store.flush_stats.flushes.fetch_add(1, Ordering::Relaxed);
        // NOTE: installed while the version set is still locked, so versions
        // reach readers (and the compaction picker) in the order they were
        // logged; a flush must never re-install a version older than a
        // compaction's.
        store.tree.finish_flush(imm, version);
        drop(versions);
        tracing::info!(
            last_seqno = imm.last_seqno,
            log_number,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flushed a memtable"
        );
        Ok(())
    }
}

/// Writes `entries` (in internal-key order) and range tombstones to table
/// `number`, synced, and syncs the directory. On error the half-made file is removed where it can
/// be (a crash leaves it to the sweep at open): no version references it.
pub(crate) async fn write_table(
    fs: &Arc<dyn Fs>,
    dir: &std::path::Path,
    number: u64,
    (entries, range_tombstones): (impl Iterator<Item = (InternalKey, Bytes)>, Vec<RangeTombstone>),
    table_options: &TableOptions,
) -> Result<crate::sst::TableProperties> {
    let path = table_path(dir, number);
    let file = fs
        .open(&path, OpenMode::CreateNew)
        .await
        .map_err(|e| Error::io("create table", &path, e))?;
    let written = async {
        let mut builder = TableBuilder::new(file, path.clone(), table_options.clone());
        for (key, value) in entries {
            builder.add(&key, &value).await?;
        }
        for tombstone in range_tombstones {
            builder.add_range_tombstone(tombstone);
        }
        let properties = builder.finish().await?;
        fs.sync_dir(dir)
            .await
            .map_err(|e| Error::io("sync directory", dir, e))?;
        Ok(properties)
    }
    .await;
    if written.is_err()
        && let Err(error) = fs.remove_file(&path).await
    {
        tracing::warn!(%error, path = %path.display(), "could not remove a half-made table");
    }
    written
}

/// The entries (in internal-key order) that some reader can still see: per
/// user key, the newest version of each snapshot stripe (as in compaction,
/// `compaction/job.rs`). Older versions in a stripe are hidden from every
/// reader, whether the newest is a put or a tombstone; tombstones stay,
/// since tables below may hold what they hide. RocksDB drops them at flush
/// the same way.
pub(crate) fn shadowed_versions_dropped<'a>(
    entries: impl Iterator<Item = (InternalKey, Bytes)> + 'a,
    snapshots: &'a [SeqNo],
) -> impl Iterator<Item = (InternalKey, Bytes)> + 'a {
    debug_assert!(snapshots.is_sorted());
    // The last kept version: its user key, stripe, and whether it is a
    // merge operand (which needs the older versions of its stripe too).
    let mut last: Option<(Bytes, usize, bool)> = None;
    entries.filter(move |(key, _)| {
        let stripe = snapshots.partition_point(|&snapshot| snapshot < key.seqno());
        let shadowed = last.as_ref().is_some_and(|(user_key, last_stripe, merge)| {
            *user_key == key.user_key && *last_stripe == stripe && !merge
        });
        if !shadowed {
            let merge = key.kind() == crate::key::ValueKind::Merge;
            last = Some((key.user_key.clone(), stripe, merge));
        }
        !shadowed
    })
}

/// Deletes WAL segments below `log_number`. Failures only leave files that
/// the next open sweeps, so they are logged, not returned.
pub(crate) async fn remove_obsolete_segments(fs: &Arc<dyn Fs>, dir: &std::path::Path, log_number: u64) {
    let names = match fs.list_dir(dir).await {
        Ok(names) => names,
        Err(error) => {
            tracing::warn!(%error, "could not list the store directory to remove old WAL segments");
            return;
        }
    };
    for number in names
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .filter(|&n| n < log_number)
    {
        let path = segment_path(dir, number);
        if let Err(error) = fs.remove_file(&path).await {
            tracing::warn!(%error, path = %path.display(), "could not remove a flushed WAL segment");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ValueKind;

    fn entry(key: &str, seqno: SeqNo, kind: ValueKind) -> (InternalKey, Bytes) {
        (
            InternalKey::new(Bytes::from(key.to_owned()), seqno, kind),
            Bytes::new(),
        )
    }

    fn kept(entries: Vec<(InternalKey, Bytes)>, snapshots: &[SeqNo]) -> Vec<(String, SeqNo)> {
        shadowed_versions_dropped(entries.into_iter(), snapshots)
            .map(|(key, _)| (String::from_utf8(key.user_key.to_vec()).unwrap(), key.seqno()))
            .collect()
    }

    #[test]
    fn keeps_the_newest_version_of_each_snapshot_stripe() {
        use ValueKind::{Delete, Put};
        // Internal-key order: user key ascending, seqno descending.
        let entries = vec![
            entry("a", 9, Put),
            entry("a", 7, Delete),
            entry("a", 5, Put),
            entry("a", 2, Put),
            entry("b", 8, Delete),
            entry("b", 3, Put),
            entry("c", 4, Put),
        ];
        // No snapshot: only the newest of each key, tombstones included.
        assert_eq!(
            kept(entries.clone(), &[]),
            vec![("a".into(), 9), ("b".into(), 8), ("c".into(), 4)]
        );
        // Snapshots at 5 and 7: stripes [0,5], (5,7], (7,inf).
        assert_eq!(
            kept(entries.clone(), &[5, 7]),
            vec![
                ("a".into(), 9),
                ("a".into(), 7),
                ("a".into(), 5),
                ("b".into(), 8),
                ("b".into(), 3),
                ("c".into(), 4)
            ]
        );
        // A snapshot at 6 sees a@5; one at 1 sees nothing of a (a@2 > 1).
        assert_eq!(
            kept(entries, &[1, 6]),
            vec![
                ("a".into(), 9),
                ("a".into(), 5),
                ("b".into(), 8),
                ("b".into(), 3),
                ("c".into(), 4)
            ]
        );
    }
}
