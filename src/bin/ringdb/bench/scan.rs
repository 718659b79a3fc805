//! The scan workloads of `ringdb bench`: `readseq`, `readreverse` and
//! `seekrandom`.
//!
//! All three reopen the store the last write workload left flushed and
//! closed (cold block cache, empty memtable), time their scans, and close it
//! again; opening and closing are not timed.
//!
//! - `readseq` / `readreverse`: one scan of the whole store
//!   (`db.scan::<&[u8], _>(..)`, `.rev()` for the reverse), from one task.
//!   An operation is one entry; its latency is the time from the previous
//!   entry's yield to its own (db_bench's method: one clock read per
//!   entry). Every entry is checked, none sampled: its key must be a live
//!   key of the bench's model (`--key-size` digits), in strictly ascending
//!   (descending) order, its value of `--value-size` bytes (its bytes are
//!   not checked); the count must be the model's live key count. Together
//!   these mean the scan yielded exactly the live keys, each once, in
//!   order.
//! - `seekrandom`: `--reads` scans split over `--concurrency` tasks, each
//!   starting at a key drawn like `readrandom`'s (so one that exists) and
//!   reading the entry there plus up to `--seek-nexts` following ones
//!   (db_bench's Seek then `seek_nexts` × Next). An operation is one such
//!   scan, timed from its creation to its last entry.
//!
//! Invariants:
//! - A scan that yields a wrong entry or count is reported in the extras
//!   (`unexpected`, `found` against `expected`) and warned about on stderr,
//!   never silently counted as work.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use ringdb::{Db, Stats, SyncMode};

use super::keys::{LiveKeys, ScanCheck, WrittenKeys, plan_tasks, write_key};
use super::{BoxError, Config, FilledStore, Workload, context};
use crate::report::{Extra, Latencies, Report, histogram_of, new_latency_histogram, record_latency};
use crate::rng::SplitMix64;

/// The seed of `seekrandom`'s start keys (not `readrandom`'s, so the seeks
/// do not retrace the gets).
const SEEK_SEED: u64 = 0x5EED_0000_5EE4;

/// `readseq` (forward) or `readreverse` (`reverse`): reopens `store`, scans
/// it whole and reports entries per second.
pub(super) async fn run_read_sequential(
    config: &Config,
    store: &FilledStore,
    reverse: bool,
) -> Result<Report, BoxError> {
    let workload = if reverse {
        Workload::ReadReverse
    } else {
        Workload::ReadSeq
    };
    let db = Db::open(&store.dir, config.options(SyncMode::Always))
        .await
        .map_err(context("reopen store"))?;
    let before = db.stats();

    let mut scan = db.scan::<&[u8], _>(..);
    if reverse {
        scan = scan.rev();
    }
    let mut latency_ns = new_latency_histogram();
    let mut check = ScanCheck::new(&store.live, config.key_size, config.value_size, reverse);
    let start = Instant::now();
    // NOTE: one clock read per entry, as db_bench's `FinishedOps` does: an
    // entry's latency runs from the previous entry's yield to its own, so
    // it includes the check of the previous entry (a few ns), and the
    // clock is not read twice per entry of a scan that takes ~250 ns each.
    let mut last = start;
    loop {
        let Some(entry) = scan.next().await else {
            break;
        };
        let now = Instant::now();
        record_latency(&mut latency_ns, now - last);
        last = now;
        let (key, value) = entry.map_err(context("scan"))?;
        check.entry(&key, &value);
    }
    let elapsed = start.elapsed();
    let after = db.stats();
    drop(scan);
    db.close().await.map_err(context("close store"))?;

    let entries = latency_ns.len();
    let expected = store.live.count();
    if entries != expected || check.unexpected > 0 {
        eprintln!(
            "ringdb: warning: {}: {entries} entries, {expected} live keys, {} unexpected \
             entries (not live, out of order, or of the wrong size)",
            workload.name(),
            check.unexpected,
        );
    }
    Ok(Report {
        workload: workload.name(),
        ops: entries,
        elapsed,
        latency_ns,
        syncs: 0,
        avg_group_size: 0.0,
        // NOTE: one scan, from one task, whatever --concurrency says.
        concurrency: 1,
        io_backend: after.io_backend,
        extras: vec![
            Extra::count("expected", expected),
            Extra::count("unexpected", check.unexpected),
            Extra::count("block_reads", after.block_reads - before.block_reads),
            Extra::count(
                "block_cache_hits",
                after.block_cache_hits - before.block_cache_hits,
            ),
        ],
    })
}

/// `seekrandom`: reopens `store` and times `--reads` short scans from random
/// existing keys.
pub(super) async fn run_seek_random(config: &Config, store: &FilledStore) -> Result<Report, BoxError> {
    if store.keys.ops == 0 {
        return Err("the store holds no keys to seek to: --num is 0".into());
    }
    let db = Db::open(&store.dir, config.options(SyncMode::Always))
        .await
        .map_err(context("reopen store"))?;
    // NOTE: the tasks and their `Latencies` are made before the clock
    // starts, and the histogram is built after it stops.
    let tasks: Vec<SeekTask> = plan_tasks(config.reads, config.concurrency)
        .into_iter()
        .map(|plan| SeekTask {
            db: db.clone(),
            stream: plan.stream,
            ops: plan.ops,
            keys: store.keys.clone(),
            live: Arc::clone(&store.live),
            key_size: config.key_size,
            nexts: config.seek_nexts,
            latency_ns: Latencies::with_capacity(plan.ops),
        })
        .collect();
    let before: Stats = db.stats();
    let start = Instant::now();
    let handles: Vec<_> = tasks.into_iter().map(|task| tokio::spawn(task.run())).collect();
    let mut latencies = Vec::with_capacity(handles.len());
    let mut totals = SeekCounts::default();
    for handle in handles {
        let (task_latency_ns, counts) = handle.await??;
        latencies.push(task_latency_ns);
        totals.found += counts.found;
        totals.expected += counts.expected;
        totals.entries += counts.entries;
    }
    let elapsed = start.elapsed();
    let latency_ns = histogram_of(&latencies);
    let after = db.stats();
    db.close().await.map_err(context("close store"))?;
    assert_eq!(
        latency_ns.len(),
        config.reads,
        "every seek recorded exactly one latency"
    );
    if totals.found != totals.expected {
        eprintln!(
            "ringdb: warning: seekrandom: {} of {} seeks landed on their key, but {} keys were live",
            totals.found, config.reads, totals.expected,
        );
    }
    Ok(Report {
        workload: Workload::SeekRandom.name(),
        ops: config.reads,
        elapsed,
        latency_ns,
        syncs: 0,
        avg_group_size: 0.0,
        concurrency: config.concurrency,
        io_backend: after.io_backend,
        extras: vec![
            Extra::count("found", totals.found),
            Extra::count("expected", totals.expected),
            Extra::count("entries", totals.entries),
            Extra::count("block_reads", after.block_reads - before.block_reads),
            Extra::count(
                "block_cache_hits",
                after.block_cache_hits - before.block_cache_hits,
            ),
        ],
    })
}

/// What a seek task counted.
#[derive(Debug, Default)]
struct SeekCounts {
    /// Seeks whose first entry was the key sought.
    found: u64,
    /// Seeks whose key was live.
    expected: u64,
    /// Entries read by all seeks.
    entries: u64,
}

/// One task of `seekrandom`.
struct SeekTask {
    db: Db,
    /// The task's generator stream of [`SEEK_SEED`].
    stream: u64,
    ops: u64,
    keys: WrittenKeys,
    live: Arc<LiveKeys>,
    key_size: usize,
    /// Entries read after the first.
    nexts: u64,
    /// Where `run` records; empty, with room for the task's seeks.
    latency_ns: Latencies,
}

impl SeekTask {
    async fn run(self) -> Result<(Latencies, SeekCounts), BoxError> {
        let mut rng = SplitMix64::for_stream(SEEK_SEED, self.stream);
        let mut key = vec![0u8; self.key_size];
        let mut latency_ns = self.latency_ns;
        let mut counts = SeekCounts::default();
        for _ in 0..self.ops {
            let key_number = self.keys.key_number(rng.below(self.keys.ops));
            counts.expected += u64::from(self.live.contains(key_number));
            write_key(&mut key, key_number);
            let start = Instant::now();
            let mut scan = self.db.scan(key.as_slice()..);
            let mut read = 0;
            while read <= self.nexts {
                let Some(entry) = scan.next().await else {
                    break;
                };
                let (entry_key, _) = entry.map_err(context("scan"))?;
                if read == 0 && entry_key.as_ref() == key.as_slice() {
                    counts.found += 1;
                }
                read += 1;
            }
            latency_ns.record(start.elapsed());
            counts.entries += read;
        }
        Ok((latency_ns, counts))
    }
}
