//! The point-read workloads of `ringdb bench`: `readrandom` and
//! `readmissing`; their gets also serve `readwhilewriting`'s readers.
//!
//! Both run on a store a fill left flushed and closed: they reopen it (so
//! the memtable is empty and every key is in a table, and the block cache
//! starts cold), time `--reads` gets split over `--concurrency` tasks, and
//! close it again. Opening and closing are not timed.
//!
//! - `readrandom` gets keys the fill wrote: it draws an operation of the
//!   fill uniformly and recomputes the key that operation put
//!   ([`WrittenKeys::key_number`]). A random fill draws its keys with
//!   repetition (as db_bench does), so about a third of `0..num` is never
//!   written; drawing operations rather than numbers keeps every read a hit
//!   (unless a `deleterandom` ran since).
//! - `readmissing` gets keys that no fill writes, drawn as LevelDB's
//!   db_bench does: a written-format key with one byte (`.`) appended.
//!
//! Invariants:
//! - A get finds a value exactly when its key is in the store's
//!   [`LiveKeys`] (never for `readmissing`); the reports carry both `found`
//!   and `expected`, and a difference is also a warning on stderr.
//! - `block_reads`, `block_cache_hits` and `bloom_negatives` are deltas of
//!   `Db::stats()` around the timed section.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringdb::{Db, SyncMode};

use super::keys::{LiveKeys, WrittenKeys, plan_tasks, write_key};
use super::{BoxError, Config, FilledStore, Workload, context};
use crate::report::{Extra, Latencies, Report, histogram_of};
use crate::rng::SplitMix64;

/// The seed of the read workloads' key choices (not the fill's, so the reads
/// do not retrace the fill's order).
const READ_SEED: u64 = 0x5EED_0000_5EAD;

/// The byte `readmissing` appends to a written-format key.
///
/// NOTE: no written key has `key_size + 1` bytes, so these keys are absent;
/// and `key.` sorts right after `key` and before the next written key, so it
/// lies inside the key range of the tables that could hold `key` (every
/// table after a random fill, the one holding `key` after a sequential one):
/// the range check lets it through and the bloom filter is what must reject
/// it. Only `key.` for a table's largest key falls outside that table.
const MISSING_KEY_SUFFIX: u8 = b'.';

/// Reopens `store`, runs `--reads` gets of `workload`'s keys and reports.
pub(super) async fn run_read(
    config: &Config,
    store: &FilledStore,
    workload: Workload,
) -> Result<Report, BoxError> {
    let missing = match workload {
        Workload::ReadRandom => false,
        Workload::ReadMissing => true,
        other => unreachable!("{} is not a point-read workload", other.name()),
    };
    if missing && config.key_size >= ringdb::limits::MAX_KEY_SIZE_BYTES {
        return Err("readmissing appends a byte to each key: --key-size must be below the maximum".into());
    }
    // NOTE: reads never wait for a sync; the mode only matters for writes.
    let db = Db::open(&store.dir, config.options(SyncMode::Always))
        .await
        .map_err(context("reopen store"))?;
    let before = db.stats();
    let gets = timed_gets(&db, config, store, missing).await?;
    let after = db.stats();
    db.close().await.map_err(context("close store"))?;
    warn_if_unexpected(workload, gets.found, gets.expected, config.reads);

    let syncs = after.wal_syncs - before.wal_syncs;
    let synced_batches = after.wal_synced_batches - before.wal_synced_batches;
    Ok(Report {
        workload: workload.name(),
        ops: config.reads,
        elapsed: gets.elapsed,
        latency_ns: gets.latency_ns,
        syncs,
        avg_group_size: if syncs == 0 {
            0.0
        } else {
            synced_batches as f64 / syncs as f64
        },
        concurrency: config.concurrency,
        io_backend: after.io_backend,
        extras: vec![
            Extra::count("found", gets.found),
            Extra::count("block_reads", after.block_reads - before.block_reads),
            Extra::count(
                "block_cache_hits",
                after.block_cache_hits - before.block_cache_hits,
            ),
            Extra::count("bloom_negatives", after.bloom_negatives - before.bloom_negatives),
            Extra::count("expected", gets.expected),
        ],
    })
}

/// What the gets of a read workload measured.
pub(super) struct TimedGets {
    pub(super) elapsed: Duration,
    pub(super) latency_ns: Histogram<u64>,
    /// Gets that returned a value.
    pub(super) found: u64,
    /// Gets whose key was live when the workload started.
    pub(super) expected: u64,
}

/// Times `--reads` gets of `store`'s keys (or, if `missing`, of absent keys)
/// split over `--concurrency` tasks on the open `db`.
pub(super) async fn timed_gets(
    db: &Db,
    config: &Config,
    store: &FilledStore,
    missing: bool,
) -> Result<TimedGets, BoxError> {
    if store.keys.ops == 0 {
        return Err("the store holds no keys to read: --num is 0".into());
    }
    // NOTE: a get served from the memtable or the block cache never returns
    // `Pending`, so a task keeps its runtime worker until a get misses the
    // cache; with more tasks than workers, a get whose block read completed
    // waits for a worker, and that wait is in its latency (it is what an
    // application with as many tasks would see).
    // NOTE: the tasks and their `Latencies` are made before the clock
    // starts, and the histogram is built after it stops.
    let tasks: Vec<GetTask> = plan_tasks(config.reads, config.concurrency)
        .into_iter()
        .map(|plan| GetTask {
            db: db.clone(),
            stream: plan.stream,
            ops: plan.ops,
            keys: store.keys.clone(),
            live: Arc::clone(&store.live),
            missing,
            key_size: config.key_size,
            value_size: config.value_size,
            latency_ns: Latencies::with_capacity(plan.ops),
        })
        .collect();
    let start = Instant::now();
    let handles: Vec<_> = tasks.into_iter().map(|task| tokio::spawn(task.run())).collect();
    let mut latencies = Vec::with_capacity(handles.len());
    let (mut found, mut expected) = (0, 0);
    for handle in handles {
        let (task_latency_ns, task_found, task_expected) = handle.await??;
        latencies.push(task_latency_ns);
        found += task_found;
        expected += task_expected;
    }
    let elapsed = start.elapsed();
    let latency_ns = histogram_of(&latencies);
    assert_eq!(
        latency_ns.len(),
        config.reads,
        "every get recorded exactly one latency"
    );
    Ok(TimedGets {
        elapsed,
        latency_ns,
        found,
        expected,
    })
}

/// Prints a warning on stderr if `found` differs from `expected`.
pub(super) fn warn_if_unexpected(workload: Workload, found: u64, expected: u64, ops: u64) {
    if found != expected {
        eprintln!(
            "ringdb: warning: {}: {found} of {ops} gets found a value, but {expected} keys were live",
            workload.name(),
        );
    }
}

/// One task of a read workload.
struct GetTask {
    db: Db,
    /// The task's generator stream of [`READ_SEED`].
    stream: u64,
    ops: u64,
    keys: WrittenKeys,
    live: Arc<LiveKeys>,
    /// Read keys that do not exist (`readmissing`) instead of written ones.
    missing: bool,
    key_size: usize,
    value_size: usize,
    /// Where `run` records; empty, with room for the task's gets.
    latency_ns: Latencies,
}

impl GetTask {
    /// Issues the task's gets one after another; returns their latencies,
    /// how many found a value and how many should have.
    async fn run(self) -> Result<(Latencies, u64, u64), BoxError> {
        let mut rng = SplitMix64::for_stream(READ_SEED, self.stream);
        let mut key = vec![0u8; self.key_size + usize::from(self.missing)];
        if self.missing
            && let Some(last) = key.last_mut()
        {
            *last = MISSING_KEY_SUFFIX;
        }
        let number_width = self.key_size;
        let mut latency_ns = self.latency_ns;
        let (mut found, mut expected) = (0, 0);
        for _ in 0..self.ops {
            let key_number = if self.missing {
                rng.below(self.keys.key_space)
            } else {
                self.keys.key_number(rng.below(self.keys.ops))
            };
            expected += u64::from(!self.missing && self.live.contains(key_number));
            write_key(key.get_mut(..number_width).unwrap_or_default(), key_number);
            let start = Instant::now();
            let value = self.db.get(&key).await.map_err(context("get"))?;
            latency_ns.record(start.elapsed());
            if let Some(value) = value {
                // NOTE: longer after a mergerandom, whose operands append.
                if value.len() < self.value_size {
                    return Err(format!(
                        "key {key_number}: a value of {} bytes, but every write wrote {}",
                        value.len(),
                        self.value_size
                    )
                    .into());
                }
                found += 1;
            }
        }
        Ok((latency_ns, found, expected))
    }
}
