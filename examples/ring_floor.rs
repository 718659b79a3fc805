//! The floor under `fillsync` at one task: what one durable put costs for
//! each way a task can reach its disk, with no ringdb code in the way, next
//! to ringdb's own put.
//!
//! `ringdb bench` compares `fillsync` with one task against `rawsync`, a
//! loop of `pwrite` + `fdatasync` on the caller's own thread. ringdb's WAL
//! task and its foreground ring run on the caller's runtime, and the
//! ring's completions arrive through that runtime's reactor
//! (`docs/design.md`, threads; `docs/decisions/0010-foreground-io-driver.md`).
//! This program measures each piece on its own, in the same run and the
//! same directory:
//!
//! - `raw`: `pwrite` of one record + `fdatasync`, on one blocking thread
//!   (`ringdb bench`'s `rawsync`).
//! - `direct`: `pwrite` of one 4 KiB block through `O_DIRECT | O_DSYNC`, on
//!   one blocking thread: the write ringdb's WAL makes for one writer.
//! - `fg-direct`: that write submitted by a task of tokio's multi-threaded
//!   runtime to ringdb's foreground ring (`ringdb::io::ring::RingFs`), its
//!   completion delivered through the runtime's reactor: the floor of the
//!   current design.
//! - `ring-nop`, `ring-direct`: the previous design's floor, for
//!   comparison: a request over a tokio channel to a tokio-uring thread,
//!   which completes an io_uring NOP (or the `direct` write) and replies
//!   over a oneshot.
//! - `ringdb`: `db.put` in `SyncMode::Always` on a fresh store, from a
//!   spawned task.
//! - `fg-direct-main`, `ring-nop-main`, `ring-direct-main`, `ringdb-main`:
//!   the same loops run by the thread that called `block_on`
//!   (`#[tokio::main]`'s), which a wake reaches directly rather than
//!   through a runtime worker.
//!
//! Each round runs every mode once, in this order rotated by one place per
//! round; the program prints each round's p50s and then, per mode, the
//! median p50 over the rounds and its ratio to the first mode's (`raw`
//! unless MODES leaves it out).
//!
//! `cargo run --release --example ring_floor -- [OPS] [ROUNDS] [DIR] [MODES]`
//! (defaults: 5,000 operations per mode, 3 rounds, a fresh temporary
//! directory under the system's, on the same disk as `ringdb bench`'s, and
//! every mode; MODES is a comma-separated list).

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio_uring::buf::BoundedBuf;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The block `direct` and `ring-direct` write, and its alignment.
const BLOCK_BYTES: usize = 4096;
/// Bytes of one put's WAL record at `ringdb bench`'s defaults (16-byte
/// keys, 100-byte values, 24 bytes of framing), as `rawsync` writes.
const RECORD_BYTES: u64 = 140;

const MODES: [&str; 10] = [
    "raw",
    "direct",
    "fg-direct",
    "ring-nop",
    "ring-direct",
    "ringdb",
    "fg-direct-main",
    "ring-nop-main",
    "ring-direct-main",
    "ringdb-main",
];

/// A request to the ring thread: a NOP, or a block write at an offset.
struct Request {
    write_at: Option<u64>,
    reply: oneshot::Sender<std::io::Result<()>>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let ops: u64 = args.next().map_or(Ok(5_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let temp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    let chosen = args.next().unwrap_or_else(|| MODES.join(","));
    let modes: Vec<&str> = MODES
        .into_iter()
        .filter(|m| chosen.split(',').any(|c| c == *m))
        .collect();
    if modes.is_empty() {
        return Err(format!("no mode in {chosen:?}; modes: {}", MODES.join(",")).into());
    }

    let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 1..=rounds {
        let mut line = format!("round {round}:");
        // NOTE: each round starts one mode later, so that no mode always
        // runs right after the same other one (a run right after another
        // is often the slower, whichever it is).
        for mode in (0..modes.len()).map(|i| (i + round - 1) % modes.len()) {
            let name = modes[mode];
            let work = dir.join(format!("{name}-{round}"));
            std::fs::create_dir(&work)?;
            let latency_ns = match name {
                "raw" => blocking_loop(&work, ops, false).await?,
                "direct" => blocking_loop(&work, ops, true).await?,
                "fg-direct" => tokio::spawn(foreground_loop(work.clone(), ops)).await??,
                "fg-direct-main" => foreground_loop(work.clone(), ops).await?,
                "ring-nop" => tokio::spawn(ring_loop(work.clone(), ops, false)).await??,
                "ring-direct" => tokio::spawn(ring_loop(work.clone(), ops, true)).await??,
                "ringdb" => tokio::spawn(ringdb_loop(work.clone(), ops)).await??,
                "ring-nop-main" => ring_loop(work.clone(), ops, false).await?,
                "ring-direct-main" => ring_loop(work.clone(), ops, true).await?,
                _ => ringdb_loop(work.clone(), ops).await?,
            };
            std::fs::remove_dir_all(&work)?;
            let p50_us = latency_ns.value_at_quantile(0.5) as f64 / 1_000.0;
            line += &format!(" {name} {p50_us:.1} µs");
            p50s[mode].push(p50_us);
        }
        println!("{line}");
    }
    let medians: Vec<f64> = p50s.iter_mut().map(|p| median(p)).collect();
    println!("median p50 over {rounds} rounds of {ops} operations:");
    for (name, p50_us) in modes.iter().zip(&medians) {
        println!(
            "  {name:<16} {p50_us:>8.1} µs  {:.2}x {}",
            p50_us / medians[0],
            modes[0]
        );
    }
    Ok(())
}

/// `ops` writes on one blocking thread: a record + `fdatasync`, or (if
/// `direct`) a block through `O_DIRECT | O_DSYNC`.
async fn blocking_loop(dir: &Path, ops: u64, direct: bool) -> Result<Histogram<u64>, BoxError> {
    let path = dir.join("data");
    tokio::task::spawn_blocking(move || {
        let file = preallocated(&path, ops, direct)?;
        let mut block = AlignedBlock::new();
        let record = vec![0x5a; RECORD_BYTES as usize];
        let mut latency_ns = Histogram::<u64>::new(3)?;
        for op in 0..ops {
            let start = Instant::now();
            if direct {
                file.write_all_at(block.fill(op), block_offset(op))?;
            } else {
                file.write_all_at(&record, op * RECORD_BYTES)?;
                file.sync_data()?;
            }
            record_ns(&mut latency_ns, start.elapsed())?;
        }
        Ok(latency_ns)
    })
    .await?
}

/// `ops` round trips from this task to a tokio-uring thread: a NOP, or (if
/// `direct`) a block written through `O_DIRECT | O_DSYNC`.
async fn ring_loop(dir: PathBuf, ops: u64, direct: bool) -> Result<Histogram<u64>, BoxError> {
    let path = dir.join("data");
    // NOTE: preallocated and closed here; the ring thread reopens it.
    drop(preallocated(&path, ops, true)?);
    let (requests, mut receiver) = mpsc::channel::<Request>(16);
    let ring =
        std::thread::Builder::new()
            .name("ring-floor".to_owned())
            .spawn(move || -> std::io::Result<()> {
                tokio_uring::start(async move {
                    let file = tokio_uring::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
                        .open(&path)
                        .await?;
                    let mut block = AlignedBlock::new();
                    while let Some(request) = receiver.recv().await {
                        let result = match request.write_at {
                            None => tokio_uring::no_op().await,
                            Some(op) => {
                                block.fill(op);
                                let (result, slice) = file
                                    .write_all_at(
                                        block.vec.slice(block.start..block.start + BLOCK_BYTES),
                                        block_offset(op),
                                    )
                                    .await;
                                block.vec = slice.into_inner();
                                result
                            }
                        };
                        // NOTE: the caller waits for this reply; if it is gone, so is the run.
                        let _ = request.reply.send(result);
                    }
                    file.close().await
                })
            })?;
    let mut latency_ns = Histogram::<u64>::new(3)?;
    for op in 0..ops {
        let start = Instant::now();
        let (reply, result) = oneshot::channel();
        let write_at = direct.then_some(op);
        requests
            .send(Request { write_at, reply })
            .await
            .map_err(|_| "ring thread ended")?;
        result.await??;
        record_ns(&mut latency_ns, start.elapsed())?;
    }
    drop(requests);
    ring.join().map_err(|_| "ring thread panicked")??;
    Ok(latency_ns)
}

/// `ops` direct block writes submitted by this task to a foreground ring
/// whose completions come through this runtime's reactor.
async fn foreground_loop(dir: PathBuf, ops: u64) -> Result<Histogram<u64>, BoxError> {
    use ringdb::io::Fs;
    let path = dir.join("data");
    drop(preallocated(&path, ops, true)?);
    let fs = ringdb::io::ring::RingFs::new(tokio::runtime::Handle::current())?;
    let file = fs.open(&path, ringdb::io::OpenMode::ReadWriteDirect).await?;
    let mut block = vec![0u8; BLOCK_BYTES];
    let mut latency_ns = Histogram::<u64>::new(3)?;
    for op in 0..ops {
        if let Some(stamp) = block.get_mut(..8) {
            stamp.copy_from_slice(&op.to_le_bytes());
        }
        let start = Instant::now();
        block = file.write_all_at(block, block_offset(op)).await?;
        record_ns(&mut latency_ns, start.elapsed())?;
    }
    Ok(latency_ns)
}

/// `ops` durable puts of 16-byte keys and 100-byte values on a fresh store.
async fn ringdb_loop(dir: PathBuf, ops: u64) -> Result<Histogram<u64>, BoxError> {
    let db = ringdb::Db::open(&dir, ringdb::Options::default()).await?;
    let value = vec![0x5a; 100];
    let mut latency_ns = Histogram::<u64>::new(3)?;
    for op in 0..ops {
        let key = format!("key{op:013}");
        let start = Instant::now();
        db.put(key.as_bytes(), &value).await?;
        record_ns(&mut latency_ns, start.elapsed())?;
    }
    db.close().await?;
    Ok(latency_ns)
}

/// A file of zeros, written and synced, large enough for `ops` operations
/// of either kind; opened `O_DIRECT | O_DSYNC` if `direct`.
fn preallocated(path: &Path, ops: u64, direct: bool) -> std::io::Result<File> {
    let len = block_offset(ops) + BLOCK_BYTES as u64;
    let zeros = vec![0u8; 1 << 20];
    let file = File::options().write(true).create_new(true).open(path)?;
    let mut offset = 0;
    while offset < len {
        let chunk = (len - offset).min(zeros.len() as u64);
        file.write_all_at(&zeros[..chunk as usize], offset)?;
        offset += chunk;
    }
    file.sync_all()?;
    if !direct {
        return Ok(file);
    }
    File::options()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
}

/// Where operation `op`'s block goes: the block that its record would end
/// in, so a run rewrites each block as a WAL's tail is rewritten.
fn block_offset(op: u64) -> u64 {
    (op * RECORD_BYTES) / BLOCK_BYTES as u64 * BLOCK_BYTES as u64
}

/// A block-aligned `BLOCK_BYTES` window into an over-allocated vector.
struct AlignedBlock {
    vec: Vec<u8>,
    start: usize,
}

impl AlignedBlock {
    fn new() -> Self {
        let vec = vec![0u8; 2 * BLOCK_BYTES];
        let start = (BLOCK_BYTES - vec.as_ptr() as usize % BLOCK_BYTES) % BLOCK_BYTES;
        Self { vec, start }
    }

    /// Marks the block with `op` and returns it.
    fn fill(&mut self, op: u64) -> &[u8] {
        let block = &mut self.vec[self.start..self.start + BLOCK_BYTES];
        block[..8].copy_from_slice(&op.to_le_bytes());
        block
    }
}

fn record_ns(histogram: &mut Histogram<u64>, elapsed: Duration) -> Result<(), BoxError> {
    Ok(histogram.record(u64::try_from(elapsed.as_nanos())?)?)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
