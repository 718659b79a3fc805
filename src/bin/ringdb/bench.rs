//! `ringdb bench`: db_bench-style benchmarks, and the disk's own limit.
//!
//! Workloads (names as in LevelDB/RocksDB `db_bench`):
//! - `rawsync` ([`rawsync`]): no ringdb at all, `pwrite` + `fdatasync` per
//!   record from one thread: the single-writer ceiling of the disk.
//! - `fillsync` ([`write`]): `SyncMode::Always` puts of random keys; every
//!   put waits for the fdatasync covering it.
//! - `fillseq` / `fillrandom` ([`write`]): `SyncMode::Buffered` puts of
//!   sequential / random keys, then one `db.sync()` inside the timed
//!   section, so the data has reached the OS and the disk when the clock
//!   stops.
//! - `overwrite` / `deleterandom` ([`write`]): buffered puts / deletes of
//!   random keys over an existing store's key space, ending like
//!   `fillrandom`; `overwrite` also samples the level-0 table count.
//! - `readrandom` / `readmissing` ([`read`]): gets of keys that exist / that
//!   do not, on a store that was filled, flushed, closed and reopened, so
//!   every key is in a table.
//! - `readseq` / `readreverse` / `seekrandom` ([`scan`]): one scan of the
//!   whole store forward / backward; many short scans from random keys.
//! - `readwhilewriting` ([`read_while_writing`]): `readrandom`'s gets while
//!   one writer puts at `--writes-per-sec`.
//!
//! Each fill opens a fresh store in its own subdirectory of the bench
//! directory. Every other workload works on the store the last workload of
//! this run left (db_bench's one database), or, if there was none, first
//! fills one itself (untimed `fillrandom` of `--num` keys). Every workload
//! leaves its store flushed and closed, and the bench keeps a model of which
//! keys it holds ([`keys::LiveKeys`]) that the reads and scans check their
//! answers against. Operations are split across `--concurrency` tokio tasks
//! that share the `Db` by clone; each task keeps its own latency histogram
//! and they are merged at the end.
//!
//! Invariants:
//! - A workload's `syncs`, `avg_group_size` and other counters are the
//!   difference of `Db::stats()` taken around its timed section, so what
//!   opening, flushing and closing the store do is not counted (but
//!   `write_amp` and the tree's shape are taken after the final flush).
//! - Keys and values come from fixed seeds: two runs write the same bytes.
//! - [`keys::WrittenKeys`] names exactly the keys a write workload's tasks
//!   wrote, so `readrandom` finds every key it asks for that is still live.

use std::error::Error as StdError;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ringdb::{Compression, IoBackend, Options, SyncMode};

use crate::report::Report;
use fixtures::{ValuePool, fresh_subdir, store_size_bytes};
use keys::{KeyOrder, LiveKeys, WrittenKeys};

mod fixtures;
mod keys;
mod rawsync;
mod read;
mod read_while_writing;
mod scan;
mod write;

/// Errors from a benchmark: ringdb's, the OS's, a task's panic.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The seed of every key and value generator in the benchmarks.
const BENCH_SEED: u64 = 0x5EED_0000_B0BC;

/// Most concurrent tasks a benchmark spawns.
const MAX_CONCURRENCY: usize = 65_536;

/// The bench's default block cache: 256 MiB (the library's is 64 MiB).
const DEFAULT_BENCH_CACHE_SIZE_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes in a MiB, for the reported store sizes.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// Seconds a durable workload runs at most by default: with the default
/// workloads, a run then takes about a minute on a disk whose sync takes a
/// millisecond.
const DEFAULT_DURABLE_SECS: u64 = 10;

/// db_bench's default `--seek_nexts`.
const DEFAULT_SEEK_NEXTS: u64 = 10;

/// Puts per second of readwhilewriting's writer. (db_bench's writer runs
/// unlimited unless `--benchmark_write_rate_limit` is set.)
const DEFAULT_WRITES_PER_SEC: u64 = 10_000;

/// A db_bench workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Raw `pwrite` + `fdatasync` loop on a plain file: the disk's limit.
    #[value(name = "rawsync")]
    RawSync,
    /// Durable (`SyncMode::Always`) puts of random keys.
    #[value(name = "fillsync")]
    FillSync,
    /// Buffered puts of sequential keys, then one sync.
    #[value(name = "fillseq")]
    FillSeq,
    /// Buffered puts of random keys, then one sync.
    #[value(name = "fillrandom")]
    FillRandom,
    /// Gets of random keys that exist, from tables.
    #[value(name = "readrandom")]
    ReadRandom,
    /// Gets of random keys that do not exist, inside the tables' key range.
    #[value(name = "readmissing")]
    ReadMissing,
    /// Buffered puts of random keys over an existing store, then one sync.
    #[value(name = "overwrite")]
    Overwrite,
    /// Buffered deletes of random keys of an existing store, then one sync.
    #[value(name = "deleterandom")]
    DeleteRandom,
    /// Buffered merge operands (`Append`) into random keys of an existing
    /// store, then one sync.
    #[value(name = "mergerandom")]
    MergeRandom,
    /// Buffered range deletes of random ranges of an existing store (about
    /// 1% of its keys), then one sync.
    #[value(name = "deleterange")]
    DeleteRange,
    /// One forward scan of the whole store.
    #[value(name = "readseq")]
    ReadSeq,
    /// One backward scan of the whole store.
    #[value(name = "readreverse")]
    ReadReverse,
    /// Short scans (a seek and `--seek-nexts` entries) from random keys.
    #[value(name = "seekrandom")]
    SeekRandom,
    /// Random gets while one writer puts at `--writes-per-sec`.
    #[value(name = "readwhilewriting")]
    ReadWhileWriting,
}

impl Workload {
    /// True for the workloads whose every operation waits for a sync, which
    /// `--duration` bounds.
    fn is_durable(self) -> bool {
        matches!(self, Workload::RawSync | Workload::FillSync)
    }

    fn name(self) -> &'static str {
        match self {
            Workload::RawSync => "rawsync",
            Workload::FillSync => "fillsync",
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::ReadRandom => "readrandom",
            Workload::ReadMissing => "readmissing",
            Workload::Overwrite => "overwrite",
            Workload::DeleteRandom => "deleterandom",
            Workload::DeleteRange => "deleterange",
            Workload::MergeRandom => "mergerandom",
            Workload::ReadSeq => "readseq",
            Workload::ReadReverse => "readreverse",
            Workload::SeekRandom => "seekrandom",
            Workload::ReadWhileWriting => "readwhilewriting",
        }
    }
}

/// Block compression of the tables (`ringdb::Compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// Blocks stored as they are.
    None,
    /// LZ4 block compression.
    Lz4,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Self {
        match arg {
            CompressionArg::None => Compression::None,
            CompressionArg::Lz4 => Compression::Lz4,
        }
    }
}

/// Which I/O backend ringdb uses (`ringdb::IoBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoArg {
    /// io_uring if the kernel allows it, else threads; `RINGDB_IO` overrides.
    Auto,
    /// io_uring; fails if it is unavailable.
    Uring,
    /// Plain pwrite/pread/fdatasync on a thread pool.
    Threads,
}

impl From<IoArg> for IoBackend {
    fn from(arg: IoArg) -> Self {
        match arg {
            IoArg::Auto => IoBackend::Auto,
            IoArg::Uring => IoBackend::Uring,
            IoArg::Threads => IoBackend::Threads,
        }
    }
}

/// Options of `ringdb bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Durable workloads (rawsync, fillsync) pay one disk sync per operation, or per \
group of concurrent operations, so they run --sync-num operations instead of \
--num, and stop early at --duration seconds. rawsync always runs one sequential loop whatever --concurrency says: it \
measures the single-writer limit of the disk. fillseq and fillrandom end with \
one db.sync() that is included in their time, and so do overwrite and \
deleterandom. Every write workload then flushes its memtable (untimed) and \
reports the store's size on disk, write_amp (table bytes written per byte \
flushed) and space_amp (bytes on disk per byte of live keys and values).

Every workload but the fills and rawsync reopens the store the last workload \
of the same run left (or fills one with fillrandom first, untimed), so every \
key is read from a table. readrandom reads keys the fill wrote; readmissing \
reads the same keys with a '.' appended, which no table holds but which sort \
inside the tables' key range, so the bloom filters must reject them. \
overwrite and deleterandom draw --num keys from the fill's key space; deleterange writes \
--num/1000 range deletes of 10 keys each from it; mergerandom merges --num values into its keys. readseq \
and readreverse scan the whole store once (ops = entries). seekrandom runs \
--reads scans, each of one seek and --seek-nexts more entries. \
readwhilewriting runs --reads gets with --concurrency readers while one \
writer puts at --writes-per-sec; the latencies are the readers'.

A run for people (not --json or --csv) draws a progress bar on stderr for each \
workload that runs longer than a second, when stderr is a terminal, and ends \
with a summary table: throughput, p50 and p99 per workload, and the durable \
workloads as a ratio to rawsync's throughput in the same run.")]
pub struct BenchArgs {
    /// Workloads to run, in order, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rawsync,fillsync,fillseq,fillrandom"
    )]
    benchmarks: Vec<Workload>,

    /// Operations for the buffered write workloads (fillseq, fillrandom,
    /// overwrite, deleterandom), and the keys 0..num a fill writes and the
    /// other workloads draw from.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,

    /// Gets or scans per read workload (readrandom, readmissing,
    /// seekrandom, readwhilewriting). Default: --num.
    #[arg(long)]
    reads: Option<u64>,

    /// Operations for the durable workloads (fillsync, rawsync). Smaller than
    /// --num because each durable operation costs a disk sync (shared by the
    /// writers of one group in fillsync).
    #[arg(long, default_value_t = 100_000)]
    sync_num: u64,

    /// Concurrent tokio tasks issuing operations (rawsync ignores it and runs
    /// one sequential loop: the single-writer disk limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY as u64))]
    concurrency: u64,

    /// Bytes per key (the key number in decimal, zero-padded).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=ringdb::limits::MAX_KEY_SIZE_BYTES as u64))]
    key_size: u64,

    /// Bytes per value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=ringdb::limits::MAX_VALUE_SIZE_BYTES as u64))]
    value_size: u64,

    /// Directory for the stores and the rawsync file (each workload uses a
    /// subdirectory named after it, emptied first, and left in place
    /// afterwards). Default: a fresh temporary directory, removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Print one JSON object per workload, one per line, and nothing else.
    #[arg(long, conflicts_with = "csv")]
    json: bool,

    /// Print a CSV header and one row per workload, and nothing else.
    #[arg(long)]
    csv: bool,

    /// Seconds a durable workload (rawsync, fillsync) runs at most: it
    /// stops at --sync-num operations or at this limit, whichever comes
    /// first, so a slow disk does not make the run take many minutes.
    /// 0: no limit.
    #[arg(long, default_value_t = DEFAULT_DURABLE_SECS)]
    duration: u64,

    /// I/O backend for ringdb.
    #[arg(long, value_enum, default_value = "auto")]
    io: IoArg,

    /// Block cache capacity in bytes. The library's default is 64 MiB; the
    /// bench uses 256 MiB so that the tables of a default run (1M keys,
    /// about 120 MiB) fit, and the read workloads measure the engine rather
    /// than the OS page cache behind each ring read.
    #[arg(long, default_value_t = DEFAULT_BENCH_CACHE_SIZE_BYTES)]
    cache_size: u64,

    /// Memtable size in bytes at which it is frozen and flushed to a table.
    /// Default: the library's (64 MiB).
    #[arg(long)]
    write_buffer_size: Option<u64>,

    /// Block compression of the tables.
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,

    /// Entries each seekrandom scan reads after the one it seeks to.
    #[arg(long, default_value_t = DEFAULT_SEEK_NEXTS)]
    seek_nexts: u64,

    /// Puts per second of readwhilewriting's writer (0: no writes).
    #[arg(long, default_value_t = DEFAULT_WRITES_PER_SEC)]
    writes_per_sec: u64,
}

/// The validated settings shared by every workload of one run.
#[derive(Debug, Clone)]
struct Config {
    num: u64,
    sync_num: u64,
    reads: u64,
    concurrency: usize,
    key_size: usize,
    value_size: usize,
    io_backend: IoBackend,
    block_cache_size_bytes: usize,
    write_buffer_size_bytes: u64,
    compression: Compression,
    seek_nexts: u64,
    writes_per_sec: u64,
    /// WAL segment size; `None` (always, from the command line) keeps the
    /// library's default.
    wal_segment_size_bytes: Option<u64>,
    /// Longest a durable workload runs (`--duration`); `None`: no limit.
    durable_duration: Option<Duration>,
}

impl Config {
    /// The store options every workload opens its store with.
    fn options(&self, mode: SyncMode) -> Options {
        // NOTE: every store has the operator, so that any workload can read
        // what a mergerandom left.
        let append = ringdb::merge::Append {
            separator: b",".to_vec(),
        };
        let options = Options::default()
            .merge_operator(std::sync::Arc::new(append))
            .sync_mode(mode)
            .io_backend(self.io_backend)
            .block_cache_size_bytes(self.block_cache_size_bytes)
            .write_buffer_size_bytes(self.write_buffer_size_bytes)
            .compression(self.compression);
        match self.wal_segment_size_bytes {
            Some(size_bytes) => options.wal_segment_size_bytes(size_bytes),
            None => options,
        }
    }
}

/// The store a workload left behind, flushed and closed, for the next.
#[derive(Debug, Clone)]
struct FilledStore {
    dir: PathBuf,
    /// The keys of the fill that created the store: the reads draw from
    /// them, and their key space is that of every later workload.
    keys: WrittenKeys,
    /// The keys the store holds, after every workload so far.
    live: Arc<LiveKeys>,
}

/// Runs the benchmarks `args` names and prints one line per workload.
pub async fn run(args: BenchArgs) -> Result<(), BoxError> {
    let config = Config::from_args(&args)?;
    let for_people = !args.json && !args.csv;
    // NOTE: the temporary directory lives until the end of this function, so
    // every workload's files are removed only after the last one has run.
    let temp_dir;
    let root = match &args.dir {
        Some(dir) => {
            fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp_dir = tempfile::tempdir()?;
            temp_dir.path().to_path_buf()
        }
    };
    if for_people {
        print_header(&config, &root);
    }
    if args.csv {
        println!("{}", crate::report::CSV_HEADER);
    }
    let mut filled = None;
    let mut reports = Vec::with_capacity(args.benchmarks.len());
    for &workload in &args.benchmarks {
        let bar = crate::progress::Bar::start(
            workload.name(),
            expected_ops(&config, workload),
            config.durable_duration.filter(|_| workload.is_durable()),
            for_people,
        );
        let report = run_workload(&config, &root, workload, &mut filled).await;
        drop(bar);
        let report = report.map_err(|e| format!("{}: {e}", workload.name()))?;
        if args.json {
            println!("{}", report.to_json());
        } else if args.csv {
            println!("{}", report.to_csv());
        } else {
            println!("{}", report.to_human());
        }
        reports.push(report);
    }
    if for_people {
        print!("{}", crate::report::summary_table(&reports));
    }
    Ok(())
}

impl Config {
    /// The configuration the command line asks for.
    fn from_args(args: &BenchArgs) -> Result<Config, BoxError> {
        Ok(Config {
            num: args.num,
            sync_num: args.sync_num,
            reads: args.reads.unwrap_or(args.num),
            concurrency: usize::try_from(args.concurrency)?,
            key_size: usize::try_from(args.key_size)?,
            value_size: usize::try_from(args.value_size)?,
            io_backend: args.io.into(),
            block_cache_size_bytes: usize::try_from(args.cache_size)?,
            write_buffer_size_bytes: args
                .write_buffer_size
                .unwrap_or(Options::default().write_buffer_size_bytes),
            compression: args.compression.into(),
            seek_nexts: args.seek_nexts,
            writes_per_sec: args.writes_per_sec,
            wal_segment_size_bytes: None,
            durable_duration: (args.duration > 0).then(|| Duration::from_secs(args.duration)),
        })
    }
}

/// The line that opens a run for people: the configuration and where the
/// store lives.
fn print_header(config: &Config, root: &std::path::Path) {
    println!(
        "ringdb bench: keys {} bytes, values {} bytes, num {}, sync-num {}, \
         reads {}, concurrency {}, io {:?}, cache {} MiB, write buffer {} MiB, \
         compression {:?}, seek-nexts {}, writes-per-sec {}, duration {}, cpus {}, dir {}",
        config.key_size,
        config.value_size,
        config.num,
        config.sync_num,
        config.reads,
        config.concurrency,
        config.io_backend,
        config.block_cache_size_bytes as f64 / BYTES_PER_MIB,
        config.write_buffer_size_bytes as f64 / BYTES_PER_MIB,
        config.compression,
        config.seek_nexts,
        config.writes_per_sec,
        config
            .durable_duration
            .map_or("unlimited".to_string(), |d| format!("{} s", d.as_secs())),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        root.display(),
    );
}

/// The operations `workload`'s timed section runs, for its progress bar;
/// `None` when only the store knows (a full scan).
fn expected_ops(config: &Config, workload: Workload) -> Option<u64> {
    match workload {
        Workload::RawSync | Workload::FillSync => Some(config.sync_num),
        Workload::FillSeq
        | Workload::FillRandom
        | Workload::Overwrite
        | Workload::DeleteRandom
        | Workload::MergeRandom => Some(config.num),
        Workload::ReadRandom | Workload::ReadMissing | Workload::SeekRandom | Workload::ReadWhileWriting => {
            Some(config.reads)
        }
        Workload::DeleteRange => Some(write::delete_range_ops(config)),
        Workload::ReadSeq | Workload::ReadReverse => None,
    }
}

/// Runs one workload in its own subdirectory of `root`, or, for a workload
/// that needs an existing store, on `filled`, the store the last workload
/// left (filling one first if there is none). Every workload but rawsync and
/// fillsync leaves its store in `filled`.
async fn run_workload(
    config: &Config,
    root: &Path,
    workload: Workload,
    filled: &mut Option<FilledStore>,
) -> Result<Report, BoxError> {
    let (report, store) = match workload {
        Workload::RawSync => return rawsync::run_rawsync(config, root).await,
        Workload::FillSync => {
            // NOTE: its store (--sync-num keys) is not one the reads use.
            let (report, _) = write::run_fill(
                config,
                root,
                workload,
                SyncMode::Always,
                config.sync_num,
                KeyOrder::Random,
            )
            .await?;
            return Ok(report);
        }
        Workload::FillSeq | Workload::FillRandom => {
            let order = if workload == Workload::FillSeq {
                KeyOrder::Sequential
            } else {
                KeyOrder::Random
            };
            write::run_fill(config, root, workload, SyncMode::Buffered, config.num, order).await?
        }
        Workload::ReadRandom | Workload::ReadMissing => {
            let store = existing_store(config, root, workload, filled).await?;
            (read::run_read(config, &store, workload).await?, store)
        }
        Workload::ReadSeq | Workload::ReadReverse => {
            let store = existing_store(config, root, workload, filled).await?;
            let reverse = workload == Workload::ReadReverse;
            (scan::run_read_sequential(config, &store, reverse).await?, store)
        }
        Workload::SeekRandom => {
            let store = existing_store(config, root, workload, filled).await?;
            (scan::run_seek_random(config, &store).await?, store)
        }
        Workload::Overwrite => {
            let store = existing_store(config, root, workload, filled).await?;
            write::run_overwrite(config, store).await?
        }
        Workload::DeleteRandom => {
            let store = existing_store(config, root, workload, filled).await?;
            write::run_delete_random(config, store).await?
        }
        Workload::DeleteRange => {
            let store = existing_store(config, root, workload, filled).await?;
            write::run_delete_range(config, store).await?
        }
        Workload::MergeRandom => {
            let store = existing_store(config, root, workload, filled).await?;
            write::run_merge_random(config, store).await?
        }
        Workload::ReadWhileWriting => {
            let store = existing_store(config, root, workload, filled).await?;
            read_while_writing::run(config, store).await?
        }
    };
    *filled = Some(store);
    Ok(report)
}

/// The store in `filled`, or else a new one in `workload`'s subdirectory of
/// `root`, made by an untimed `fillrandom` of `--num` keys (buffered, then
/// flushed and closed).
async fn existing_store(
    config: &Config,
    root: &Path,
    workload: Workload,
    filled: &mut Option<FilledStore>,
) -> Result<FilledStore, BoxError> {
    if let Some(store) = filled.take() {
        return Ok(store);
    }
    let dir = fresh_subdir(root, workload.name())?;
    let (_, store) = write::fill(
        config,
        dir,
        Workload::FillRandom.name(),
        SyncMode::Buffered,
        config.num,
        KeyOrder::Random,
    )
    .await
    .map_err(|e| format!("fillrandom before {}: {e}", workload.name()))?;
    Ok(store)
}

/// Prefixes an error with the step that failed.
fn context<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> BoxError {
    move |e| format!("{step}: {e}").into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExtraValue;
    use keys::write_key;
    use ringdb::Db;

    #[test]
    fn values_have_the_right_size_and_vary() {
        let pool = ValuePool::new(100, 1);
        assert_eq!(pool.value(0).len(), 100);
        assert_eq!(pool.value(u64::MAX).len(), 100);
        assert_ne!(pool.value(0), pool.value(1));
        assert!(pool.value(0).iter().any(|&b| b != 0));
    }

    fn small_config() -> Config {
        Config {
            num: 200,
            sync_num: 20,
            reads: 300,
            concurrency: 3,
            key_size: 16,
            value_size: 100,
            io_backend: IoBackend::Threads,
            block_cache_size_bytes: 1024 * 1024,
            // NOTE: small enough that a fill of 200 keys spans a few flushes.
            write_buffer_size_bytes: 8 * 1024,
            compression: Compression::None,
            seek_nexts: 4,
            // NOTE: fast enough that the writer puts during 300 gets.
            writes_per_sec: 100_000,
            // NOTE: every open zero-fills WAL segments; the default 64 MiB
            // would make the test's many opens write gigabytes.
            wal_segment_size_bytes: Some(256 * 1024),
            durable_duration: None,
        }
    }

    /// Checks the report of store workload `workload`, which left `live`
    /// keys of the `live_before` it found; `deleted` once a `deleterandom`
    /// ran before it.
    fn check_store_report(workload: Workload, report: &Report, live: u64, live_before: u64, deleted: bool) {
        use Workload::*;
        let json = report.to_json();
        match workload {
            FillSeq => assert_eq!(live, 200),
            Overwrite => {
                assert_eq!(report.ops, 200);
                // Overwriting keys the fill skipped adds them.
                assert!(live > live_before || live == 200, "{json}");
                assert_eq!(count(report, "live_keys"), live, "{json}");
                assert!(decimal(report, "write_amp") >= 1.0, "{json}");
                assert!(decimal(report, "space_amp") > 0.0, "{json}");
                assert!(count(report, "flushes") >= 1, "{json}");
                let levels = text(report, "level_tables");
                assert!(levels.starts_with("L0:"), "{json}");
                let tables: u64 = levels
                    .split(' ')
                    .map(|level| level.split_once(':').unwrap().1.parse::<u64>().unwrap())
                    .sum();
                assert!(tables >= 1, "{json}");
                // NOTE: the peak depends on when compaction ran;
                // writes stop long before level 0 gets this deep.
                assert!(count(report, "max_l0_tables") < 100, "{json}");
                assert!(json.contains(",\"level_tables\":\"L0:"), "{json}");
            }
            DeleteRandom => {
                assert_eq!(report.ops, 200);
                assert!(live < live_before, "{json}");
                assert_eq!(count(report, "live_keys"), live, "{json}");
                assert!(decimal(report, "write_amp") >= 1.0, "{json}");
            }
            ReadSeq | ReadReverse => {
                assert_eq!(report.ops, live, "exactly the live keys: {json}");
                assert_eq!(count(report, "expected"), live, "{json}");
                assert_eq!(count(report, "unexpected"), 0, "{json}");
                assert!(live > 0);
            }
            SeekRandom => {
                assert_eq!(report.ops, 300);
                let found = count(report, "found");
                assert_eq!(found, count(report, "expected"), "{json}");
                assert_eq!(found == 300, !deleted, "{json}");
                // Each seek reads its key (or the next) and up to
                // --seek-nexts more.
                let entries = count(report, "entries");
                assert!((300..=300 * 5).contains(&entries), "{json}");
            }
            ReadRandom => {
                assert_eq!(report.ops, 300);
                assert_eq!(count(report, "found"), count(report, "expected"), "{json}");
                assert_eq!(count(report, "found") < 300, deleted, "after a delete: {json}");
            }
            MergeRandom => {
                assert_eq!(report.ops, 200);
                assert!(live >= live_before, "{json}");
                assert_eq!(count(report, "live_keys"), live, "{json}");
            }
            DeleteRange => {
                // One range delete of 10 keys of the 200 the fill wrote.
                assert_eq!(report.ops, 1);
                assert_eq!(live + write::RANGE_DELETE_WIDTH, live_before, "{json}");
                assert_eq!(count(report, "live_keys"), live, "{json}");
            }
            ReadWhileWriting => {
                assert_eq!(report.ops, 300);
                assert!(count(report, "found") >= count(report, "expected"), "{json}");
                assert!(live >= live_before, "{json}");
                assert!(decimal(report, "writes_per_sec") <= 100_000.0, "{json}");
                if count(report, "writes") == 0 {
                    assert_eq!(live, live_before);
                }
            }
            other => panic!("{} is not in this test", other.name()),
        }
    }

    /// The count extra `name` of `report`.
    fn count(report: &Report, name: &str) -> u64 {
        match report.extra(name) {
            Some(ExtraValue::Count(n)) => n,
            other => panic!("{name}: {other:?} in {}", report.to_json()),
        }
    }

    /// The two-decimal extra `name` of `report`.
    fn decimal(report: &Report, name: &str) -> f64 {
        match report.extra(name) {
            Some(ExtraValue::Decimal2(x)) => x,
            other => panic!("{name}: {other:?} in {}", report.to_json()),
        }
    }

    /// The text extra `name` of `report`.
    fn text(report: &Report, name: &str) -> String {
        match report.extra(name) {
            Some(ExtraValue::Text(s)) => s,
            other => panic!("{name}: {other:?} in {}", report.to_json()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_and_leaves_data_in_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config();
        let raw = rawsync::run_rawsync(&config, dir.path()).await.unwrap();
        assert_eq!((raw.ops, raw.syncs), (20, 20));
        assert_eq!(raw.latency_ns.len(), 20);
        let (sync, _) = write::run_fill(
            &config,
            dir.path(),
            Workload::FillSync,
            SyncMode::Always,
            20,
            KeyOrder::Random,
        )
        .await
        .unwrap();
        assert_eq!(sync.ops, 20);
        assert!(sync.syncs >= 1 && sync.syncs <= 20, "{sync:?}");
        let (seq, seq_store) = write::run_fill(
            &config,
            dir.path(),
            Workload::FillSeq,
            SyncMode::Buffered,
            200,
            KeyOrder::Sequential,
        )
        .await
        .unwrap();
        assert!(seq.syncs >= 1, "the final db.sync() is counted");
        assert_eq!(seq_store.dir, dir.path().join("fillseq"));
        assert!(count(&seq, "flushes") >= 2, "{}", seq.to_json());
        assert!(matches!(seq.extra("size_mib"), Some(crate::report::ExtraValue::Decimal2(x)) if x > 0.0));
        assert!(store_size_bytes(&seq_store.dir).unwrap() > 200 * 100);
        assert_eq!(seq_store.live.count(), 200);
        assert!(decimal(&seq, "write_amp") >= 1.0, "{}", seq.to_json());
        // NOTE: the tables hold every key once, plus index, filters and the
        // WAL window, so the store is at least as big as its live data.
        assert!(decimal(&seq, "space_amp") >= 1.0, "{}", seq.to_json());

        let db = Db::open(
            dir.path().join("fillseq"),
            Options::default().io_backend(IoBackend::Threads),
        )
        .await
        .unwrap();
        let pool = ValuePool::new(100, BENCH_SEED);
        for i in [0u64, 66, 67, 199] {
            let mut key = [0u8; 16];
            write_key(&mut key, i);
            assert_eq!(
                db.get(key).await.unwrap().as_deref(),
                Some(pool.value(i)),
                "key {i}"
            );
        }
        assert_eq!(db.stats().memtable_size_bytes, 0, "the fill flushed everything");
        db.close().await.unwrap();

        reads_fill_or_reuse_a_store(&config).await;
        every_store_workload_keeps_the_model(&config).await;
    }

    /// With no fill before them, the reads fill their own store (and the
    /// second read reuses it); after a fill they reuse the fill's store.
    async fn reads_fill_or_reuse_a_store(config: &Config) {
        for benchmarks in [
            &[Workload::ReadRandom, Workload::ReadMissing][..],
            &[Workload::FillSeq, Workload::ReadRandom, Workload::ReadMissing],
            &[Workload::FillRandom, Workload::ReadMissing, Workload::ReadRandom],
        ] {
            let root = tempfile::tempdir().unwrap();
            let mut filled = None;
            for &workload in benchmarks {
                let report = run_workload(config, root.path(), workload, &mut filled)
                    .await
                    .unwrap();
                assert_eq!(report.workload, workload.name());
                let json = report.to_json();
                let store = filled.as_ref().unwrap();
                assert_eq!(store.dir, root.path().join(benchmarks[0].name()));
                if workload == Workload::ReadRandom {
                    assert_eq!(report.ops, 300);
                    assert_eq!(count(&report, "found"), 300, "{json}");
                    assert_eq!(count(&report, "expected"), 300, "{json}");
                    assert!(count(&report, "block_reads") >= 1, "{json}");
                }
                if workload == Workload::ReadMissing {
                    assert_eq!(report.ops, 300);
                    assert_eq!(count(&report, "found"), 0, "{json}");
                    // NOTE: not `block_reads == 0`: a 10-bits-per-key filter
                    // lets about 1% of absent keys through, and each of those
                    // fetches a block (read, or hit if an earlier one read
                    // it). The filter must answer all the other table
                    // lookups; 5% leaves room for chance over ~300 lookups.
                    let fetches = count(&report, "block_reads") + count(&report, "block_cache_hits");
                    let rejected = count(&report, "bloom_negatives");
                    assert!(rejected >= 100, "{json}");
                    assert!(fetches * 100 <= (rejected + fetches) * 5, "{json}");
                }
            }
        }
    }

    /// Runs the workloads that change or scan an existing store in two
    /// orders and checks each report against the bench's model of the
    /// store ([`LiveKeys`]), which is itself checked by the full scans.
    async fn every_store_workload_keeps_the_model(config: &Config) {
        use Workload::*;
        let mut fill_live = LiveKeys::new(200);
        WrittenKeys::fill(KeyOrder::Random, BENCH_SEED, 200, 3).for_each_key(|n| fill_live.insert(n));
        assert!(fill_live.count() < 200, "a random fill repeats keys");
        for benchmarks in [
            &[
                Overwrite,
                ReadSeq,
                ReadReverse,
                SeekRandom,
                DeleteRandom,
                ReadSeq,
                ReadReverse,
                ReadRandom,
                SeekRandom,
                ReadWhileWriting,
                ReadSeq,
            ][..],
            &[
                FillSeq,
                Overwrite,
                DeleteRandom,
                ReadReverse,
                ReadWhileWriting,
                ReadSeq,
            ],
            &[
                FillSeq,
                ReadRandom,
                DeleteRange,
                ReadRandom,
                ReadSeq,
                ReadReverse,
                SeekRandom,
            ],
        ] {
            let root = tempfile::tempdir().unwrap();
            let mut filled: Option<FilledStore> = None;
            let mut deleted = false;
            for &workload in benchmarks {
                let live_before = filled.as_ref().map_or(fill_live.count(), |s| s.live.count());
                let report = run_workload(config, root.path(), workload, &mut filled)
                    .await
                    .unwrap();
                assert_eq!(report.workload, workload.name());
                let store = filled.as_ref().unwrap();
                assert_eq!(store.dir, root.path().join(benchmarks[0].name()));
                let live = store.live.count();
                check_store_report(workload, &report, live, live_before, deleted);
                deleted |= matches!(workload, DeleteRandom | DeleteRange);
            }
        }
    }
}
