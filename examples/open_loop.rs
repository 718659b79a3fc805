//! Durable puts from an open-loop load: each of 16 tasks sleeps a random
//! 0-3 ms, puts one key (`SyncMode::Always`), and records the put's latency.
//! Unlike `ringdb bench fillsync` (a closed loop: every task puts again the
//! moment its put resolves), writers here do not come back on cue, which is
//! the load the WAL's group hold must not slow down
//! (`docs/decisions/0005-wal-group-hold.md`).
//!
//! `cargo run --release --example open_loop -- [HOLD_MICROS] [OPS_PER_TASK]`
//! runs it with `Options::wal_max_group_hold` set to HOLD_MICROS (default
//! 200, the default hold; 0 turns holds off) and prints the latency
//! percentiles and the WAL's counters.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

const TASKS: u64 = 16;
const MAX_SLEEP_MICROS: u64 = 3_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let hold_micros: u64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let ops_per_task: u64 = args.next().map_or(Ok(400), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let options = ringdb::Options::default().wal_max_group_hold(Duration::from_micros(hold_micros));
    let db = ringdb::Db::open(dir.path(), options).await?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut latency_us = Histogram::<u64>::new(3)?;
                // xorshift64: a fixed, per-task sequence of sleeps.
                let mut state = task * 7_919 + 1;
                for op in 0..ops_per_task {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    tokio::time::sleep(Duration::from_micros(state % MAX_SLEEP_MICROS)).await;
                    let put_start = Instant::now();
                    db.put(format!("task{task}-op{op}").as_bytes(), b"value").await?;
                    latency_us.record(put_start.elapsed().as_micros() as u64)?;
                }
                Ok::<_, BoxError>(latency_us)
            })
        })
        .collect();
    let mut latency_us = Histogram::<u64>::new(3)?;
    for task in tasks {
        latency_us.add(task.await??)?;
    }
    let elapsed = start.elapsed();
    let stats = db.stats();
    db.close().await?;
    println!(
        "hold {hold_micros} µs: {} puts in {:.2} s; latency p50 {} µs, p90 {} µs, p99 {} µs; \
         syncs {}, average group {:.2}, held syncs {}, holds that ran out {}",
        latency_us.len(),
        elapsed.as_secs_f64(),
        latency_us.value_at_quantile(0.5),
        latency_us.value_at_quantile(0.9),
        latency_us.value_at_quantile(0.99),
        stats.wal_syncs,
        stats.wal_synced_batches as f64 / stats.wal_syncs.max(1) as f64,
        stats.wal_held_writes,
        stats.wal_holds_ran_out,
    );
    Ok(())
}
