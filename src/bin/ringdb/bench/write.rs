//! The write workloads of `ringdb bench`: the fills (`fillsync`, `fillseq`,
//! `fillrandom`), `overwrite` and `deleterandom`.
//!
//! - A fill opens a fresh store, runs its puts, and leaves the store behind.
//! - `overwrite` reopens an existing store and puts `--num` random keys of
//!   its key space (db_bench's overwrite: new values for keys that mostly
//!   exist), while a side task samples the number of level-0 tables every
//!   [`L0_SAMPLE_INTERVAL`] to catch the peak the flushes build up before
//!   compaction drains them.
//! - `deleterandom` reopens an existing store and deletes `--num` random keys
//!   of its key space (many of them absent, as in db_bench).
//! - `mergerandom` reopens an existing store and merges `--num` operands
//!   (values of `--value-size` bytes) into random keys of its key space
//!   with the `Append` operator every bench store has (db_bench's
//!   `mergerandom`): keys that had a value get a longer one, absent keys
//!   become live.
//! - `deleterange` reopens an existing store and writes `--num` / 1000 range
//!   deletes (at least one), each of the [`RANGE_DELETE_WIDTH`] key numbers
//!   from a random key of its key space (RocksDB's db_bench
//!   `--range_tombstone_width`): about 1% of the keys go, and the reads that
//!   follow pay for range tombstones in most tables they read.
//!
//! Every write workload here runs `SyncMode::Buffered` (but `fillsync`) and
//! ends its timed section with one `db.sync()`; afterwards, untimed, it
//! flushes the memtable, closes the store and reports the store's write
//! amplification (`Stats::write_amplification` of this open, final flush
//! included) and space amplification: the bytes of every file in the store
//! directory (tables, manifest, the WAL segment's zero-filled window) over
//! the bytes of the live data, live keys × (key size + value size);
//! `table_space_amp` is the same ratio for the tables alone.
//!
//! Invariants:
//! - Every operation records exactly one latency.
//! - The store's [`LiveKeys`] are updated from the workload's plan only
//!   after all its operations succeeded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringdb::{Db, Stats, SyncMode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::keys::{KeyOrder, LiveKeys, TaskPlan, WrittenKeys, write_key};
use super::{
    BENCH_SEED, BYTES_PER_MIB, BoxError, Config, FilledStore, ValuePool, Workload, context, fresh_subdir,
};
use crate::report::{Extra, Latencies, Report, cpu_per_op, histogram_of, process_cpu_time};

/// The seed of `overwrite`'s key choices (not the fill's, so it does not
/// retrace the fill's order).
const OVERWRITE_SEED: u64 = 0x5EED_0000_0E4E;

/// The seed of `deleterandom`'s key choices.
const DELETE_SEED: u64 = 0x5EED_0000_DE1E;

/// The seed of `mergerandom`'s key choices.
const MERGE_SEED: u64 = 0x5EED_0000_3E46;

/// The seed of `deleterange`'s range starts.
const DELETE_RANGE_SEED: u64 = 0x5EED_0000_DE4A;

/// Key numbers one `deleterange` range delete covers.
pub(super) const RANGE_DELETE_WIDTH: u64 = 10;

/// Fill keys per `deleterange` range delete.
const KEYS_PER_RANGE_DELETE: u64 = 1000;

/// How often `overwrite`'s side task samples the level-0 table count.
const L0_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// What one write operation does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    /// `db.put(key, value)`.
    Put,
    /// `db.delete(key)`.
    Delete,
    /// `db.delete_range(key..)` over [`RANGE_DELETE_WIDTH`] key numbers.
    DeleteRange,
    /// `db.merge(key, value)`.
    Merge,
}

/// Opens a fresh store for `workload` in `root`, fills it (see [`fill`])
/// and reports.
pub(super) async fn run_fill(
    config: &Config,
    root: &Path,
    workload: Workload,
    mode: SyncMode,
    ops: u64,
    order: KeyOrder,
) -> Result<(Report, FilledStore), BoxError> {
    let dir = fresh_subdir(root, workload.name())?;
    fill(config, dir, workload.name(), mode, ops, order).await
}

/// Opens a store in the empty directory `dir`, runs `ops` puts in `mode`,
/// flushes, closes, and reports as workload `name`. Buffered fills end with
/// a `db.sync()` inside the timed section.
pub(super) async fn fill(
    config: &Config,
    dir: PathBuf,
    name: &'static str,
    mode: SyncMode,
    ops: u64,
    order: KeyOrder,
) -> Result<(Report, FilledStore), BoxError> {
    let db = Db::open(&dir, config.options(mode))
        .await
        .map_err(context("open store"))?;
    let keys = WrittenKeys::fill(order, BENCH_SEED, ops, config.concurrency);
    let timed = timed_writes(&db, config, &keys, WriteKind::Put, mode).await?;
    // NOTE: a durable fill may stop at `--duration` short of its plan, so
    // its `live` below overstates the store; only fillsync fills durably,
    // and no later workload reads its store.
    let (flushed, size_bytes) = flush_and_close(&db, &dir).await?;
    let mut live = LiveKeys::new(keys.key_space);
    keys.for_each_key(|number| live.insert(number));
    let report = write_report(name, config, &timed, &flushed, size_bytes, &live);
    let store = FilledStore {
        dir,
        keys,
        live: Arc::new(live),
    };
    Ok((report, store))
}

/// `overwrite`: reopens `store` and puts `--num` random keys of its key
/// space with `--concurrency` tasks, sampling the level-0 table count.
pub(super) async fn run_overwrite(
    config: &Config,
    store: FilledStore,
) -> Result<(Report, FilledStore), BoxError> {
    let db = Db::open(&store.dir, config.options(SyncMode::Buffered))
        .await
        .map_err(context("reopen store"))?;
    let keys = WrittenKeys::random(
        OVERWRITE_SEED,
        config.num,
        store.keys.key_space,
        config.concurrency,
    );
    let sampler = L0Sampler::start(db.clone());
    let timed = timed_writes(&db, config, &keys, WriteKind::Put, SyncMode::Buffered).await;
    // NOTE: stop the sampler even when the writes failed, so it does not
    // outlive the workload.
    let max_l0_tables = sampler.finish().await?;
    let timed = timed?;
    let (flushed, size_bytes) = flush_and_close(&db, &store.dir).await?;
    let mut live = (*store.live).clone();
    keys.for_each_key(|number| live.insert(number));
    let mut report = write_report(
        Workload::Overwrite.name(),
        config,
        &timed,
        &flushed,
        size_bytes,
        &live,
    );
    report
        .extras
        .push(Extra::count("max_l0_tables", max_l0_tables as u64));
    report.extras.extend(tree_extras(&timed.before, &flushed, &live));
    Ok((
        report,
        FilledStore {
            live: Arc::new(live),
            ..store
        },
    ))
}

/// `deleterandom`: reopens `store` and deletes `--num` random keys of its key
/// space with `--concurrency` tasks.
pub(super) async fn run_delete_random(
    config: &Config,
    store: FilledStore,
) -> Result<(Report, FilledStore), BoxError> {
    let keys = WrittenKeys::random(DELETE_SEED, config.num, store.keys.key_space, config.concurrency);
    run_on_store(config, store, Workload::DeleteRandom, WriteKind::Delete, keys).await
}

/// `mergerandom`: see the module docs.
pub(super) async fn run_merge_random(
    config: &Config,
    store: FilledStore,
) -> Result<(Report, FilledStore), BoxError> {
    let keys = WrittenKeys::random(MERGE_SEED, config.num, store.keys.key_space, config.concurrency);
    run_on_store(config, store, Workload::MergeRandom, WriteKind::Merge, keys).await
}

/// `deleterange`: see the module docs.
pub(super) async fn run_delete_range(
    config: &Config,
    store: FilledStore,
) -> Result<(Report, FilledStore), BoxError> {
    let key_space = store.keys.key_space.saturating_sub(RANGE_DELETE_WIDTH).max(1);
    let keys = WrittenKeys::random(
        DELETE_RANGE_SEED,
        delete_range_ops(config),
        key_space,
        config.concurrency,
    );
    run_on_store(config, store, Workload::DeleteRange, WriteKind::DeleteRange, keys).await
}

/// Reopens `store`, runs `keys` as `kind` (buffered, then one sync),
/// flushes and closes it, and reports as `workload`, the store's live keys
/// updated by what the writes did.
async fn run_on_store(
    config: &Config,
    store: FilledStore,
    workload: Workload,
    kind: WriteKind,
    keys: WrittenKeys,
) -> Result<(Report, FilledStore), BoxError> {
    let db = Db::open(&store.dir, config.options(SyncMode::Buffered))
        .await
        .map_err(context("reopen store"))?;
    let timed = timed_writes(&db, config, &keys, kind, SyncMode::Buffered).await?;
    let (flushed, size_bytes) = flush_and_close(&db, &store.dir).await?;
    let mut live = (*store.live).clone();
    keys.for_each_key(|number| match kind {
        WriteKind::Put | WriteKind::Merge => live.insert(number),
        WriteKind::Delete => live.remove(number),
        WriteKind::DeleteRange => (number..number + RANGE_DELETE_WIDTH).for_each(|n| live.remove(n)),
    });
    let mut report = write_report(workload.name(), config, &timed, &flushed, size_bytes, &live);
    report.extras.extend(tree_extras(&timed.before, &flushed, &live));
    Ok((
        report,
        FilledStore {
            live: Arc::new(live),
            ..store
        },
    ))
}

/// The range deletes `deleterange` writes.
pub(super) fn delete_range_ops(config: &Config) -> u64 {
    (config.num / KEYS_PER_RANGE_DELETE).max(1)
}

/// What the timed section of a write workload measured.
pub(super) struct TimedWrites {
    pub(super) ops: u64,
    pub(super) elapsed: Duration,
    pub(super) latency_ns: Histogram<u64>,
    /// `db.stats()` just before the first operation.
    pub(super) before: Stats,
    /// `db.stats()` once the last operation (and the final sync) resolved.
    pub(super) after: Stats,
    /// Process CPU time (all threads) over the timed section.
    pub(super) cpu: Duration,
}

/// Runs `keys`' operations as `kind` on `db`, one task per plan; a buffered
/// workload (`mode`) then syncs inside the timed section.
async fn timed_writes(
    db: &Db,
    config: &Config,
    keys: &WrittenKeys,
    kind: WriteKind,
    mode: SyncMode,
) -> Result<TimedWrites, BoxError> {
    let values = Arc::new(ValuePool::new(config.value_size, BENCH_SEED));
    // NOTE: each task's `Latencies` are reserved before the clock starts,
    // and the histogram is built after it stops (see `Latencies`).
    let tasks: Vec<WriteTask> = keys
        .plans
        .iter()
        .map(|&plan| WriteTask {
            db: db.clone(),
            plan,
            keys: keys.clone(),
            kind,
            key_size: config.key_size,
            values: Arc::clone(&values),
            latency_ns: Latencies::with_capacity(plan.ops),
        })
        .collect();
    // NOTE: only durable writes stop at `--duration`: a buffered workload
    // writes every key of its plan, which the reads after it rely on.
    let limit = if mode.is_durable() {
        config.durable_duration
    } else {
        None
    };
    let before = db.stats();
    let cpu_start = process_cpu_time();
    let start = Instant::now();
    let deadline = limit.map(|limit| start + limit);
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|task| tokio::spawn(task.run(deadline)))
        .collect();
    let mut latencies = Vec::with_capacity(handles.len());
    for handle in handles {
        latencies.push(handle.await?.map_err(context("write"))?);
    }
    // NOTE: a buffered write resolves once it is queued; without this sync
    // the clock would stop before the data reached the OS, let alone the disk.
    if !mode.is_durable() {
        db.sync().await.map_err(context("sync"))?;
    }
    let elapsed = start.elapsed();
    let cpu = process_cpu_time().saturating_sub(cpu_start);
    let latency_ns = histogram_of(&latencies);
    let after = db.stats();
    if limit.is_none() {
        assert_eq!(
            latency_ns.len(),
            keys.ops,
            "every write recorded exactly one latency"
        );
    }
    Ok(TimedWrites {
        ops: latency_ns.len(),
        elapsed,
        latency_ns,
        before,
        after,
        cpu,
    })
}

/// Flushes the memtable and closes `db` (untimed); returns the stats after
/// the close and the bytes of every file in `dir`.
pub(super) async fn flush_and_close(db: &Db, dir: &Path) -> Result<(Stats, u64), BoxError> {
    // NOTE: the flush is outside the timed section: a workload's time is that
    // of its operations (which run while background flushes of full
    // memtables happen), not of writing out the last, partly filled memtable.
    db.flush().await.map_err(context("flush"))?;
    db.close().await.map_err(context("close store"))?;
    // NOTE: counted after the close, which waits for the flush task to
    // finish: `Db::flush` resolves once the memtable is swapped for its table,
    // before the flush task counts the flush and deletes the WAL segments.
    let flushed = db.stats();
    assert_eq!(
        flushed.immutable_memtables, 0,
        "db.flush() leaves no frozen memtable"
    );
    let size_bytes = super::store_size_bytes(dir).map_err(context("measure store size"))?;
    Ok((flushed, size_bytes))
}

/// The report every write workload prints: the common fields, then
/// `cpu_us_per_op, size_mib, flushes, l0_tables, stall_micros`,
/// `held_syncs` and `holds_ran_out`
/// (durable writes that waited for more writers, and the waits that ran
/// out), `direct_writes` (durable writes through `O_DIRECT`), `write_amp,
/// space_amp, table_space_amp` (the tables alone over the live data:
/// `space_amp` also counts the preallocated WAL segments, tens of MiB
/// whatever the data).
pub(super) fn write_report(
    name: &'static str,
    config: &Config,
    timed: &TimedWrites,
    flushed: &Stats,
    size_bytes: u64,
    live: &LiveKeys,
) -> Report {
    let (before, after) = (&timed.before, &timed.after);
    let syncs = after.wal_syncs - before.wal_syncs;
    let synced_batches = after.wal_synced_batches - before.wal_synced_batches;
    let live_bytes = live.count() as f64 * (config.key_size + config.value_size) as f64;
    let table_bytes: u64 = flushed.level_size_bytes.iter().sum();
    Report {
        workload: name,
        ops: timed.ops,
        elapsed: timed.elapsed,
        latency_ns: timed.latency_ns.clone(),
        syncs,
        avg_group_size: if syncs == 0 {
            0.0
        } else {
            synced_batches as f64 / syncs as f64
        },
        concurrency: config.concurrency,
        io_backend: after.io_backend,
        extras: vec![
            cpu_per_op(timed.cpu, timed.ops),
            Extra::decimal2("size_mib", size_bytes as f64 / BYTES_PER_MIB),
            Extra::count("flushes", flushed.flushes - before.flushes),
            Extra::count("l0_tables", flushed.level_tables.first().map_or(0, |&n| n as u64)),
            Extra::count("stall_micros", after.stall_micros - before.stall_micros),
            Extra::count("held_syncs", after.wal_held_writes - before.wal_held_writes),
            Extra::count(
                "holds_ran_out",
                after.wal_holds_ran_out - before.wal_holds_ran_out,
            ),
            Extra::count(
                "direct_writes",
                after.wal_direct_writes - before.wal_direct_writes,
            ),
            Extra::decimal2("write_amp", flushed.write_amplification),
            // NOTE: no live data (all deleted) gives infinity, printed as 0.
            Extra::decimal2("space_amp", size_bytes as f64 / live_bytes),
            Extra::decimal2("table_space_amp", table_bytes as f64 / live_bytes),
        ],
    }
}

/// The shape of the tree after a workload on a reopened store:
/// `level_tables`, `compactions` (and `trivial_moves`) since `before`, and
/// `live_keys`.
pub(super) fn tree_extras(before: &Stats, flushed: &Stats, live: &LiveKeys) -> [Extra; 4] {
    [
        Extra::text("level_tables", level_tables(&flushed.level_tables)),
        Extra::count("compactions", flushed.compactions - before.compactions),
        Extra::count("trivial_moves", flushed.trivial_moves - before.trivial_moves),
        Extra::count("live_keys", live.count()),
    ]
}

/// Tables per level as `"L0:2 L1:5 L2:40"`: level 0 always, then every
/// level down to the deepest that holds a table.
pub(super) fn level_tables(tables: &[usize]) -> String {
    let deepest = tables.iter().rposition(|&n| n > 0).unwrap_or(0);
    tables
        .iter()
        .take(deepest + 1)
        .enumerate()
        .map(|(level, n)| format!("L{level}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A side task that samples `db.stats().level_tables[0]` every
/// [`L0_SAMPLE_INTERVAL`] and keeps the highest count.
struct L0Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<usize>,
}

impl L0Sampler {
    /// Starts sampling `db` now.
    fn start(db: Db) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let l0_tables = |db: &Db| db.stats().level_tables.first().copied().unwrap_or(0);
            let mut interval = tokio::time::interval(L0_SAMPLE_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut max_tables = 0;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = interval.tick() => max_tables = max_tables.max(l0_tables(&db)),
                }
            }
            max_tables.max(l0_tables(&db))
        });
        L0Sampler { stop, task }
    }

    /// Takes a last sample and returns the highest level-0 table count seen.
    async fn finish(self) -> Result<usize, BoxError> {
        // NOTE: the task ends when the sender is dropped too; an error here
        // only means it already ended.
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

/// One task of a write workload.
struct WriteTask {
    db: Db,
    plan: TaskPlan,
    keys: WrittenKeys,
    kind: WriteKind,
    key_size: usize,
    values: Arc<ValuePool>,
    /// Where `run` records; empty, with room for the plan's writes.
    latency_ns: Latencies,
}

impl WriteTask {
    /// Issues the plan's writes one after another, stopping early at
    /// `deadline`; returns their latencies.
    async fn run(self, deadline: Option<Instant>) -> Result<Latencies, ringdb::Error> {
        let mut rng = self.keys.rng(&self.plan);
        let mut key = vec![0u8; self.key_size];
        let mut end = vec![0u8; self.key_size];
        let mut latency_ns = self.latency_ns;
        for i in 0..self.plan.ops {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
            let op = self.plan.first_key + i;
            let number = self.keys.next_key_number(&mut rng, op);
            write_key(&mut key, number);
            let start = Instant::now();
            match self.kind {
                WriteKind::Put => self.db.put(&key, self.values.value(op)).await?,
                WriteKind::Delete => self.db.delete(&key).await?,
                WriteKind::Merge => self.db.merge(&key, self.values.value(op)).await?,
                WriteKind::DeleteRange => {
                    write_key(&mut end, number + RANGE_DELETE_WIDTH);
                    self.db.delete_range(key.as_slice()..end.as_slice()).await?;
                }
            }
            latency_ns.record(start.elapsed());
        }
        Ok(latency_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_tables_are_compact() {
        assert_eq!(level_tables(&[2, 5, 40, 0, 0, 0, 0]), "L0:2 L1:5 L2:40");
        assert_eq!(level_tables(&[0, 0, 3, 0]), "L0:0 L1:0 L2:3");
        assert_eq!(level_tables(&[0; 7]), "L0:0");
        assert_eq!(level_tables(&[]), "");
    }
}
