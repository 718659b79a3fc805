//! The compaction task: keeps the tree in shape.
//!
//! Runs on the background thread beside the flush task (one current-thread
//! tokio runtime); a job yields between blocks, so a flush is never stuck
//! behind a long compaction. Its I/O goes through the I/O layer.
//!
//! One compaction: pick (`compaction::picker`), run the merge
//! (`compaction::job`) or, for a trivial move, nothing; sync the directory;
//! commit outputs and deletions with one synced manifest edit; install the
//! version; hand the replaced tables to `ObsoleteTables`, which deletes each
//! file once no reader holds a version with it.
//!
//! Invariants:
//! - One compaction runs at a time (`running`), so two jobs never take the
//!   same input. Flush only adds level-0 tables, which no running job reads.
//! - A failure poisons the store, like a failed flush, except a table write
//!   that found no space (`Error::NoSpace`): the job's outputs are removed,
//!   writes stop (`WriteStop`), and the compaction is retried with a
//!   growing delay; the first table write that succeeds resumes writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::compaction::job::{self, JobContext, RateLimiter};
use crate::compaction::picker::{self, Compaction};
use crate::db::flush::{NO_SPACE_RETRY_MAX, NO_SPACE_RETRY_MIN};
use crate::db::obsolete::ObsoleteTables;
use crate::db::store::Store;
use crate::error::{Error, Result};
use crate::manifest::{TableMeta, VersionEdit};
use crate::version::Version;

/// Counters the compaction task keeps.
#[derive(Debug, Default)]
pub(crate) struct CompactionStats {
    /// Compactions committed (trivial moves included).
    pub compactions: AtomicU64,
    /// Of those, trivial moves (a table relinked one level down, no I/O).
    pub trivial_moves: AtomicU64,
    /// Bytes of tables read by compaction jobs.
    pub bytes_read: AtomicU64,
    /// Bytes of tables written by compaction jobs.
    pub bytes_written: AtomicU64,
}

/// The compaction task: the store context, and what only compaction
/// keeps.
pub(crate) struct Compactor {
    pub store: Arc<Store>,
    /// Tables replaced by a compaction, deleted once no reader holds them.
    pub obsolete: ObsoleteTables,
    /// Paces compaction writes (`Options::compaction_rate_limit_bytes_per_sec`).
    pub rate_limiter: Option<RateLimiter>,
    /// Held while one compaction picks and runs.
    pub running: Mutex<()>,
}

impl Compactor {
    /// The compaction task of `store`.
    pub fn new(store: Arc<Store>) -> Compactor {
        let rate_limiter = store
            .compaction_options
            .rate_limit_bytes_per_sec
            .map(RateLimiter::new);
        Compactor {
            store,
            obsolete: ObsoleteTables::default(),
            rate_limiter,
            running: Mutex::new(()),
        }
    }

    /// Compacts whenever the picker finds work, until shutdown or failure.
    pub async fn run(self: Arc<Self>) {
        let mut retry_delay = NO_SPACE_RETRY_MIN;
        loop {
            let wakeup = self.store.tree.compaction_wakeup.notified();
            if self.store.shutdown.load(Ordering::Acquire) || self.store.queue.poisoned().is_some() {
                return;
            }
            match self
                .compact_once(|version| picker::pick(version, &self.store.compaction_options))
                .await
            {
                Ok(true) => retry_delay = NO_SPACE_RETRY_MIN,
                Ok(false) => {
                    self.obsolete
                        .collect(
                            &self.store.background_fs,
                            &self.store.dir,
                            &self.store.table_cache,
                        )
                        .await;
                    wakeup.await;
                }
                Err(error @ Error::NoSpace { .. }) => {
                    // NOTE: shutdown and new flushes wake us early.
                    self.store.write_stop.stop(error, &self.store.tree);
                    let _ = tokio::time::timeout(retry_delay, wakeup).await;
                    retry_delay = (retry_delay * 2).min(NO_SPACE_RETRY_MAX);
                }
                Err(error) => {
                    self.fail(error);
                    return;
                }
            }
        }
    }

    /// Picks with `pick` from the current version and runs what it picked;
    /// false if it picked nothing. Picking and running happen under the one
    /// compaction lock, so no other compaction can take the inputs between.
    pub async fn compact_once(&self, pick: impl FnOnce(&Version) -> Option<Compaction>) -> Result<bool> {
        let _running = self.running.lock().await;
        let version = self.store.tree.current().version.clone();
        let Some(compaction) = pick(&version) else {
            return Ok(false);
        };
        drop(version);
        self.execute(compaction).await?;
        Ok(true)
    }

    /// Records a failed compaction: writes stop until reopen. A table write
    /// that found no space poisons nothing: its outputs are gone, and the
    /// caller (`Db::compact_range`) gets the error; the compaction task
    /// itself stops writes and retries (see `run`).
    pub fn fail(&self, error: Error) {
        if matches!(error, Error::NoSpace { .. }) {
            tracing::warn!(%error, "a compaction found no space for its output");
            self.store.write_stop.failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        tracing::error!(%error, "compaction failed; the store refuses writes until reopened");
        self.store.queue.poison(error);
    }

    /// Runs and commits one compaction. REQUIRES: `running` is held.
    async fn execute(&self, compaction: Compaction) -> Result<()> {
        let started = std::time::Instant::now();
        let mut edit = VersionEdit::default();
        let replaced: Vec<_> = compaction
            .inputs
            .iter()
            .chain(&compaction.overlapping)
            .cloned()
            .collect();
        for table in &compaction.inputs {
            edit.deleted.push((compaction.level, table.number));
        }
        for table in &compaction.overlapping {
            edit.deleted.push((compaction.output_level, table.number));
        }
        if compaction.is_trivial_move {
            for table in &compaction.inputs {
                edit.added.push((compaction.output_level, Arc::clone(table)));
            }
        } else {
            for table in self.run_job(&compaction).await? {
                edit.added.push((compaction.output_level, table));
            }
        }
        // NOTE: installed under the version-set lock (see db/flush.rs).
        let mut versions = self.store.versions.lock().await;
        let outputs = edit.added.len();
        let output_bytes: u64 = edit.added.iter().map(|(_, table)| table.size_bytes).sum();
        let version = versions.log_and_apply(edit).await?;
        self.store.tree.install_version(version);
        drop(versions);
        tracing::info!(
            level = compaction.level,
            output_level = compaction.output_level,
            inputs = replaced.len(),
            outputs,
            output_bytes,
            trivial_move = compaction.is_trivial_move,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted"
        );
        if !compaction.is_trivial_move && self.store.write_stop.resume() {
            self.store.tree.imm_room.notify_waiters();
        }
        self.store
            .compaction_stats
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        if compaction.is_trivial_move {
            self.store
                .compaction_stats
                .trivial_moves
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.obsolete.add(&replaced);
        }
        drop(replaced);
        drop(compaction);
        self.obsolete
            .collect(
                &self.store.background_fs,
                &self.store.dir,
                &self.store.table_cache,
            )
            .await;
        Ok(())
    }

    /// Runs the merge of a compaction that is not a trivial move, syncs
    /// the directory and counts the bytes; returns the output tables. On
    /// error no output is left behind (or the sweep at open removes it).
    async fn run_job(&self, compaction: &Compaction) -> Result<Vec<Arc<TableMeta>>> {
        let file_numbers = self.store.versions.lock().await.file_numbers();
        let allocate = move || file_numbers.fetch_add(1, Ordering::AcqRel);
        let snapshots = self.store.snapshots.seqnos();
        self.store
            .tree
            .raise_drop_horizon(self.store.queue.visible_seqno());
        let ctx = JobContext {
            fs: &self.store.background_fs,
            dir: &self.store.dir,
            table_cache: &self.store.table_cache,
            table_options: &self.store.table_options,
            options: &self.store.compaction_options,
            snapshots: &snapshots,
            allocate_file_number: &allocate,
            rate_limiter: self.rate_limiter.as_ref(),
        };
        let output = job::run(compaction, &ctx)
            .await
            .map_err(Error::table_write_stopped)?;
        if let Err(e) = self.store.background_fs.sync_dir(&self.store.dir).await {
            let error = Error::table_write_stopped(Error::io("sync directory", &self.store.dir, e));
            // NOTE: nothing references the outputs yet; they go.
            for table in &output.added {
                let path = crate::filename::table_path(&self.store.dir, table.number);
                if let Err(error) = self.store.background_fs.remove_file(&path).await {
                    tracing::warn!(%error, path = %path.display(), "could not remove a compaction output");
                }
            }
            return Err(error);
        }
        self.store
            .compaction_stats
            .bytes_read
            .fetch_add(output.bytes_read, Ordering::Relaxed);
        self.store
            .compaction_stats
            .bytes_written
            .fetch_add(output.bytes_written, Ordering::Relaxed);
        Ok(output.added)
    }
}

/// Counter values as `Stats` reports them.
pub(crate) fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
