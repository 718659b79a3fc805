//! Reopen time against `Options::max_wal_size_bytes`: how long `Db::open`
//! takes after a crash, with the WAL it has to replay.
//!
//! For each limit: a fresh store (a write buffer of 1 GiB, so only the limit
//! freezes memtables) takes DATA_MIB of random 16-byte keys and 1,000-byte
//! values in batches of 64 (`SyncMode::Buffered`, one `sync` at the end);
//! then `Db::checkpoint` copies it at once, flushes in flight or not. The
//! checkpoint is the store as a kill would leave it: the tables and the
//! live WAL, without a clean close. It is copied RUNS times (tables
//! hard-linked) and each copy is opened and timed (`Db::open`: replaying the WAL and writing it to a
//! table), then closed.
//!
//! The checkpoint's WAL ends at its last record, so the replay reads no
//! preallocated zeros, which a real kill leaves (at most a WAL segment's
//! worth past each memtable's last record); the files are in the page
//! cache, as they mostly are after a kill.
//!
//! `cargo run --release --example reopen_time -- [--runs N] DATA_MIB LIMIT_MIB...`
//! (a limit of `none` sets no limit) prints a markdown table: the limit,
//! the WAL bytes the reopen replays, and the median, fastest and slowest
//! reopen of the RUNS.

use std::path::Path;
use std::time::{Duration, Instant};

use ringdb::{Db, Options, SyncMode, WriteBatch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const VALUE_SIZE_BYTES: usize = 1000;
const BATCH_ENTRIES: usize = 64;
const BYTES_PER_MIB: u64 = 1024 * 1024;

fn options(limit_bytes: Option<u64>) -> Options {
    Options::default()
        .write_buffer_size_bytes(1 << 30)
        .max_wal_size_bytes(limit_bytes)
        .sync_mode(SyncMode::Buffered)
}

/// Writes `data_bytes` of entries (keys and values) into `db`.
async fn fill(db: &Db, data_bytes: u64) -> Result<(), BoxError> {
    // xorshift64: the same keys for every limit.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut written = 0;
    while written < data_bytes {
        let mut batch = WriteBatch::new();
        for _ in 0..BATCH_ENTRIES {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("{state:016x}");
            let value = vec![(state % 251) as u8; VALUE_SIZE_BYTES];
            batch.put(&key, &value);
            written += (key.len() + VALUE_SIZE_BYTES) as u64;
        }
        db.write(batch).await?;
    }
    db.sync().await?;
    Ok(())
}

/// Bytes of the `.wal` files in `dir`.
fn wal_bytes(dir: &Path) -> Result<u64, BoxError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "wal") {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Copies the store in `from` to `to`, hard-linking its tables (immutable;
/// an open of the copy only ever removes them).
fn copy_dir(from: &Path, to: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (path, target) = (entry.path(), to.join(entry.file_name()));
        if path.extension().is_some_and(|e| e == "sst") {
            std::fs::hard_link(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

/// One row: the WAL bytes the checkpoint replays and its reopen times,
/// sorted.
async fn measure(
    root: &Path,
    data_bytes: u64,
    limit_bytes: Option<u64>,
    runs: usize,
) -> Result<(u64, Vec<Duration>), BoxError> {
    let name = limit_bytes.map_or("none".to_string(), |b| b.to_string());
    let dir = root.join(format!("store-{name}"));
    let db = Db::open(&dir, options(limit_bytes)).await?;
    fill(&db, data_bytes).await?;
    let crashed = root.join(format!("crashed-{name}"));
    db.checkpoint(&crashed).await?;
    db.close().await?;
    let replayed = wal_bytes(&crashed)?;
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let copy = root.join(format!("copy-{name}-{run}"));
        copy_dir(&crashed, &copy)?;
        let started = Instant::now();
        let db = Db::open(&copy, options(limit_bytes)).await?;
        times.push(started.elapsed());
        db.close().await?;
        std::fs::remove_dir_all(&copy)?;
    }
    std::fs::remove_dir_all(&dir)?;
    std::fs::remove_dir_all(&crashed)?;
    times.sort();
    Ok((replayed, times))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5;
    if let Some(at) = args.iter().position(|a| a == "--runs") {
        runs = args.get(at + 1).ok_or("--runs takes a count")?.parse()?;
        args.drain(at..at + 2);
    }
    let (data_mib, limits) = match args.split_first() {
        Some((data, limits)) if !limits.is_empty() => (data.parse::<u64>()?, limits.to_vec()),
        _ => (128, ["none", "64", "16", "4"].map(String::from).to_vec()),
    };
    let root = tempfile::tempdir()?;
    println!("{data_mib} MiB written; reopen of a checkpoint taken right after, {runs} runs\n");
    println!(
        "| max_wal_size_bytes | WAL bytes replayed | reopen median (ms) | fastest (ms) | slowest (ms) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for limit in &limits {
        let limit_bytes = match limit.as_str() {
            "none" => None,
            mib => Some(mib.parse::<u64>()? * BYTES_PER_MIB),
        };
        let (replayed, times) = measure(root.path(), data_mib * BYTES_PER_MIB, limit_bytes, runs).await?;
        let (Some(fastest), Some(slowest)) = (times.first(), times.last()) else {
            return Err("--runs must be at least 1".into());
        };
        let median = times.get(times.len() / 2).unwrap_or(fastest);
        let shown = limit_bytes.map_or("none".to_string(), |b| format!("{b} ({limit} MiB)"));
        println!(
            "| {shown} | {replayed} | {:.1} | {:.1} | {:.1} |",
            millis(*median),
            millis(*fastest),
            millis(*slowest)
        );
    }
    Ok(())
}
