//! `readwhilewriting`: random gets while one writer puts at a fixed rate.
//!
//! The store the last workload left is reopened (`SyncMode::Buffered`).
//! `--concurrency` reader tasks run `--reads` gets of existing keys between
//! them, exactly as `readrandom` does ([`super::read::timed_gets`]), while
//! one writer task puts random keys of the store's key space at
//! `--writes-per-sec` until the readers are done. The report's latencies and
//! throughput are the readers'; the writer's puts and achieved rate are
//! extras. Afterwards, untimed, the memtable is flushed and the store closed.
//!
//! The writer paces itself against the clock, not per put: every
//! [`PACER_TICK`] it issues the puts due by then (`rate × elapsed` minus
//! those done), so a rate above the timer's resolution is kept on average,
//! and a writer held up by a stall catches up in one burst, as db_bench's
//! rate limiter does.
//!
//! Invariants:
//! - The writer only puts, so every key live at the start stays live: a get
//!   that misses a key that was live is a library bug, warned about on
//!   stderr (`found` below `expected`).
//! - The writer's keys are replayed from its seed into the store's
//!   [`LiveKeys`] after it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ringdb::{Db, SyncMode};

use super::keys::write_key;
use super::read::{TimedGets, timed_gets};
use super::write::flush_and_close;
use super::{BENCH_SEED, BoxError, Config, FilledStore, ValuePool, Workload, context};
use crate::report::{Extra, Report};
use crate::rng::SplitMix64;

/// The seed of the writer's key choices.
const WRITER_SEED: u64 = 0x5EED_0000_3817;

/// How often the writer wakes up to issue the puts that are due.
const PACER_TICK: Duration = Duration::from_millis(1);

/// Runs `readwhilewriting` on `store` and returns the report and the store
/// with the writer's keys added.
pub(super) async fn run(config: &Config, store: FilledStore) -> Result<(Report, FilledStore), BoxError> {
    let db = Db::open(&store.dir, config.options(SyncMode::Buffered))
        .await
        .map_err(context("reopen store"))?;
    let readers_done = Arc::new(AtomicBool::new(false));
    let writer = Writer {
        db: db.clone(),
        key_space: store.keys.key_space,
        key_size: config.key_size,
        writes_per_sec: config.writes_per_sec,
        values: ValuePool::new(config.value_size, BENCH_SEED),
        readers_done: Arc::clone(&readers_done),
    };
    let before = db.stats();
    let writer = tokio::spawn(writer.run());
    let gets = timed_gets(&db, config, &store, false).await;
    readers_done.store(true, Ordering::Release);
    let (writes, writer_elapsed) = writer.await?.map_err(context("writer put"))?;
    let gets = gets?;
    let after = db.stats();
    flush_and_close(&db, &store.dir).await?;

    if gets.found < gets.expected {
        eprintln!(
            "ringdb: warning: readwhilewriting: {} of {} gets found a value, but {} keys were live",
            gets.found, config.reads, gets.expected,
        );
    }
    let mut live = (*store.live).clone();
    let mut rng = SplitMix64::new(WRITER_SEED);
    for _ in 0..writes {
        live.insert(rng.below(store.keys.key_space));
    }
    let report = report(config, gets, (writes, writer_elapsed), &before, &after);
    Ok((
        report,
        FilledStore {
            live: Arc::new(live),
            ..store
        },
    ))
}

/// The report of a run: the readers' latencies and throughput, the
/// writer's puts and rate (`writer`: puts and time taken) as extras, and
/// the counters that changed from `before` to `after`.
fn report(
    config: &Config,
    gets: TimedGets,
    writer: (u64, Duration),
    before: &ringdb::Stats,
    after: &ringdb::Stats,
) -> Report {
    let (writes, writer_elapsed) = writer;
    let writer_secs = writer_elapsed.as_secs_f64();
    let syncs = after.wal_syncs - before.wal_syncs;
    let synced_batches = after.wal_synced_batches - before.wal_synced_batches;
    Report {
        workload: Workload::ReadWhileWriting.name(),
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
            Extra::count("expected", gets.expected),
            Extra::count("writes", writes),
            Extra::decimal2(
                "writes_per_sec",
                if writer_secs > 0.0 {
                    writes as f64 / writer_secs
                } else {
                    0.0
                },
            ),
            Extra::count("stall_micros", after.stall_micros - before.stall_micros),
            Extra::count("block_reads", after.block_reads - before.block_reads),
            Extra::count(
                "block_cache_hits",
                after.block_cache_hits - before.block_cache_hits,
            ),
        ],
    }
}

/// The one writer of `readwhilewriting`.
struct Writer {
    db: Db,
    key_space: u64,
    key_size: usize,
    writes_per_sec: u64,
    values: ValuePool,
    readers_done: Arc<AtomicBool>,
}

impl Writer {
    /// Puts random keys at `writes_per_sec` until the readers are done;
    /// returns the puts done and the time it ran.
    async fn run(self) -> Result<(u64, Duration), ringdb::Error> {
        assert!(self.key_space > 0, "the writer needs a key space");
        let mut rng = SplitMix64::new(WRITER_SEED);
        let mut key = vec![0u8; self.key_size];
        let mut interval = tokio::time::interval(PACER_TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let start = Instant::now();
        let mut writes: u64 = 0;
        while !self.readers_done.load(Ordering::Acquire) {
            interval.tick().await;
            let due = (self.writes_per_sec as f64 * start.elapsed().as_secs_f64()) as u64;
            while writes < due && !self.readers_done.load(Ordering::Acquire) {
                write_key(&mut key, rng.below(self.key_space));
                self.db.put(&key, self.values.value(writes)).await?;
                writes += 1;
            }
        }
        Ok((writes, start.elapsed()))
    }
}
