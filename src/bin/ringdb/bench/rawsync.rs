//! `rawsync`: the disk's own limit, with no ringdb at all.
//!
//! One thread overwrites a preallocated, synced file with `pwrite` +
//! `fdatasync` per record of the size a ringdb WAL record of one put would
//! have. This is the single-writer ceiling of the disk that `fillsync` with
//! one task should approach, and that group commit should beat with many
//! tasks.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{BENCH_SEED, BoxError, Config, ValuePool, Workload, fresh_subdir};
use crate::report::{Report, cpu_per_op, new_latency_histogram, process_cpu_time, record_latency};

/// Bytes a WAL record adds to a put's key and value (header, kind, varint
/// lengths): the size of each `rawsync` record is `key + value + this`.
const RAW_RECORD_OVERHEAD_BYTES: usize = 24;

/// Bytes written per call when `rawsync` zero-fills its file.
const RAW_PREALLOCATE_CHUNK_BYTES: usize = 1024 * 1024;

/// The disk's own limit: `sync_num` times (`pwrite` one record + `fdatasync`)
/// on a preallocated file, from one thread.
pub(super) async fn run_rawsync(config: &Config, root: &Path) -> Result<Report, BoxError> {
    let dir = fresh_subdir(root, Workload::RawSync.name())?;
    let ops = config.sync_num;
    let record_size = config.key_size + config.value_size + RAW_RECORD_OVERHEAD_BYTES;
    // NOTE: plain blocking std I/O on purpose, so it runs on a blocking thread
    // rather than stalling a runtime worker.
    let limit = config.durable_duration;
    let (elapsed, cpu, latency_ns) =
        tokio::task::spawn_blocking(move || raw_sync_loop(&dir.join("raw.dat"), ops, record_size, limit))
            .await??;
    let done = latency_ns.len();
    Ok(Report {
        workload: Workload::RawSync.name(),
        ops: done,
        elapsed,
        latency_ns,
        syncs: done,
        avg_group_size: 1.0,
        // NOTE: rawsync is one sequential loop whatever --concurrency says.
        concurrency: 1,
        io_backend: "std",
        extras: vec![cpu_per_op(cpu, done)],
    })
}

/// Preallocates `path` to `ops * record_size` zero bytes, then times `ops`
/// record overwrites, each followed by an fdatasync, stopping early once
/// `limit` has passed; returns the wall and process CPU time of the loop.
fn raw_sync_loop(
    path: &Path,
    ops: u64,
    record_size: usize,
    limit: Option<Duration>,
) -> Result<(Duration, Duration, Histogram<u64>), BoxError> {
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let record_size_u64 = u64::try_from(record_size)?;
    let file_size_bytes = ops
        .checked_mul(record_size_u64)
        .ok_or("--sync-num * record size overflows u64")?;

    // NOTE: zero-fill by writing (not fallocate, which leaves unwritten
    // extents whose conversion costs a journal commit per sync) and fsync
    // once, so the timed fdatasyncs overwrite allocated blocks and never need
    // to journal a size change, like ringdb's preallocated WAL segments.
    let zeros = vec![0u8; RAW_PREALLOCATE_CHUNK_BYTES];
    let mut offset = 0u64;
    while offset < file_size_bytes {
        let len = (file_size_bytes - offset).min(RAW_PREALLOCATE_CHUNK_BYTES as u64);
        file.write_all_at(zeros.get(..len as usize).unwrap_or(&zeros), offset)?;
        offset += len;
    }
    file.sync_all()?;

    let records = ValuePool::new(record_size, BENCH_SEED);
    let mut latency_ns = new_latency_histogram();
    let cpu_start = process_cpu_time();
    let start = Instant::now();
    let deadline = limit.map(|limit| start + limit);
    for i in 0..ops {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let op_start = Instant::now();
        file.write_all_at(records.value(i), i * record_size_u64)?;
        file.sync_data()?;
        record_latency(&mut latency_ns, op_start.elapsed());
    }
    let elapsed = start.elapsed();
    Ok((elapsed, process_cpu_time().saturating_sub(cpu_start), latency_ns))
}
