//! `ringdb bench`: db_bench-style benchmarks, and the disk's own limit.
//!
//! Workloads (names as in LevelDB/RocksDB `db_bench`):
//! - `rawsync`: no ringdb at all. One thread overwrites a preallocated,
//!   synced file with `pwrite` + `fdatasync` per record of the size a ringdb
//!   WAL record of one put would have. This is the single-writer ceiling of
//!   the disk that `fillsync` with one task should approach, and that group
//!   commit should beat with many tasks.
//! - `fillsync`: `SyncMode::Always` puts of random keys; every put waits for
//!   the fdatasync covering it.
//! - `fillseq` / `fillrandom`: `SyncMode::Buffered` puts of sequential /
//!   random keys, then one `db.sync()` inside the timed section, so the data
//!   has reached the OS and the disk when the clock stops.
//! - `readrandom` / `readmissing` ([`read`]): gets of keys that exist / that
//!   do not, on a store that was filled, flushed, closed and reopened, so
//!   every key is in a table.
//!
//! Each fill opens a fresh store in its own subdirectory of the bench
//! directory; after its timed section it flushes the memtable to a table and
//! closes the store, and reports the store's size on disk. A read workload
//! reopens the store of the last `fillseq`/`fillrandom` of this run, or, if
//! there was none, first fills one itself (untimed). Operations are split
//! across `--concurrency` tokio tasks that share the `Db` by clone; each task
//! keeps its own latency histogram and they are merged at the end.
//!
//! Invariants:
//! - A workload's `syncs`, `avg_group_size` and other counters are the
//!   difference of `Db::stats()` taken around its timed section, so what
//!   opening, flushing and closing the store do is not counted.
//! - Keys and values come from fixed seeds: two runs write the same bytes.
//! - [`WrittenKeys`] names exactly the keys a fill's [`PutTask`]s wrote, so
//!   `readrandom` finds every key it asks for.

use std::error::Error as StdError;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use ringdb::{Compression, Db, IoBackend, Options, SyncMode};

use crate::report::{Extra, Report, new_latency_histogram, record_latency};
use crate::rng::SplitMix64;

mod read;

/// Errors from a benchmark: ringdb's, the OS's, a task's panic.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The seed of every key and value generator in the benchmarks.
const BENCH_SEED: u64 = 0x5EED_0000_B0BC;

/// Bytes a WAL record adds to a put's key and value (header, kind, varint
/// lengths): the size of each `rawsync` record is `key + value + this`.
const RAW_RECORD_OVERHEAD_BYTES: usize = 24;

/// Random bytes that values are sliced from, on top of one value's size.
const VALUE_POOL_BYTES: usize = 1024 * 1024;

/// Bytes written per call when `rawsync` zero-fills its file.
const RAW_PREALLOCATE_CHUNK_BYTES: usize = 1024 * 1024;

/// Most concurrent tasks a benchmark spawns.
const MAX_CONCURRENCY: usize = 65_536;

/// The bench's default block cache: 256 MiB (the library's is 64 MiB).
const DEFAULT_BENCH_CACHE_SIZE_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes in a MiB, for the reported store sizes.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

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
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::RawSync => "rawsync",
            Workload::FillSync => "fillsync",
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::ReadRandom => "readrandom",
            Workload::ReadMissing => "readmissing",
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
--num. rawsync always runs one sequential loop whatever --concurrency says: it \
measures the single-writer limit of the disk. fillseq and fillrandom end with \
one db.sync() that is included in their time. Every fill then flushes its \
memtable (untimed) and reports the store's size on disk.

readrandom and readmissing reopen the store of the last fillseq or fillrandom \
of the same run (or fill one with fillrandom first, untimed), so every key is \
read from a table. readrandom reads keys the fill wrote; readmissing reads the \
same keys with a '.' appended, which no table holds but which sort inside the \
tables' key range, so the bloom filters must reject them.")]
pub struct BenchArgs {
    /// Workloads to run, in order, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rawsync,fillsync,fillseq,fillrandom"
    )]
    benchmarks: Vec<Workload>,

    /// Operations for the buffered workloads (fillseq, fillrandom), and the
    /// keys 0..num the read workloads draw from.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,

    /// Gets per read workload (readrandom, readmissing). Default: --num.
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
    #[arg(long)]
    json: bool,

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
}

impl Config {
    /// The store options every workload opens its store with.
    fn options(&self, mode: SyncMode) -> Options {
        Options::default()
            .sync_mode(mode)
            .io_backend(self.io_backend)
            .block_cache_size_bytes(self.block_cache_size_bytes)
            .write_buffer_size_bytes(self.write_buffer_size_bytes)
            .compression(self.compression)
    }
}

/// A store a fill left behind, flushed and closed, for the read workloads.
#[derive(Debug, Clone)]
struct FilledStore {
    dir: PathBuf,
    keys: WrittenKeys,
}

/// Runs the benchmarks `args` names and prints one line per workload.
pub async fn run(args: BenchArgs) -> Result<(), BoxError> {
    let config = Config {
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
    };
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
    if !args.json {
        println!(
            "ringdb bench: keys {} bytes, values {} bytes, num {}, sync-num {}, \
             reads {}, concurrency {}, io {:?}, cache {} MiB, write buffer {} MiB, \
             compression {:?}, cpus {}, dir {}",
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
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            root.display(),
        );
    }
    let mut filled = None;
    for &workload in &args.benchmarks {
        let report = run_workload(&config, &root, workload, &mut filled)
            .await
            .map_err(|e| format!("{}: {e}", workload.name()))?;
        if args.json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.to_human());
        }
    }
    Ok(())
}

/// Runs one workload in its own subdirectory of `root` (a read workload
/// reuses `filled`, the store of the last fillseq/fillrandom, if any).
/// fillseq and fillrandom, and a read workload that had to fill a store
/// itself, leave their store in `filled`.
async fn run_workload(
    config: &Config,
    root: &Path,
    workload: Workload,
    filled: &mut Option<FilledStore>,
) -> Result<Report, BoxError> {
    let (report, store) = match workload {
        Workload::RawSync => return run_rawsync(config, root).await,
        Workload::FillSync => {
            // NOTE: its store (--sync-num keys) is not one the reads use.
            let (report, _) = run_fill(
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
        Workload::FillSeq => {
            run_fill(
                config,
                root,
                workload,
                SyncMode::Buffered,
                config.num,
                KeyOrder::Sequential,
            )
            .await?
        }
        Workload::FillRandom => {
            run_fill(
                config,
                root,
                workload,
                SyncMode::Buffered,
                config.num,
                KeyOrder::Random,
            )
            .await?
        }
        Workload::ReadRandom | Workload::ReadMissing => {
            let store = match filled.take() {
                Some(store) => store,
                None => read::fill_for_reads(config, root, workload).await?,
            };
            let report = read::run_read(config, &store, workload).await?;
            (report, store)
        }
    };
    *filled = Some(store);
    Ok(report)
}

/// Prefixes an error with the step that failed.
fn context<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> BoxError {
    move |e| format!("{step}: {e}").into()
}

/// How a put workload picks its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyOrder {
    /// Each task writes its own contiguous run of key numbers, ascending.
    Sequential,
    /// Each task draws key numbers uniformly from `0..ops` with its own
    /// seeded generator (so keys repeat, as in db_bench).
    Random,
}

/// One task's share of a workload: `ops` operations starting at key number
/// `first_key` (for sequential keys; it is also the workload-wide index of
/// the task's first operation) and drawing from generator `stream`.
#[derive(Debug, Clone, Copy)]
struct TaskPlan {
    stream: u64,
    first_key: u64,
    ops: u64,
}

/// Splits `ops` across `tasks` as evenly as possible, in key order.
fn plan_tasks(ops: u64, tasks: usize) -> Vec<TaskPlan> {
    let tasks = tasks as u64;
    let (share, remainder) = (ops / tasks, ops % tasks);
    let mut first_key = 0;
    let plans: Vec<TaskPlan> = (0..tasks)
        .map(|stream| {
            let ops = share + u64::from(stream < remainder);
            let plan = TaskPlan {
                stream,
                first_key,
                ops,
            };
            first_key += ops;
            plan
        })
        .collect();
    debug_assert_eq!(plans.iter().map(|plan| plan.ops).sum::<u64>(), ops);
    plans
}

/// Opens a fresh store for `workload` in `root`, fills it (see [`fill`])
/// and reports.
async fn run_fill(
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
async fn fill(
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
    let values = Arc::new(ValuePool::new(config.value_size, BENCH_SEED));
    let keys = WrittenKeys::new(order, ops, config.concurrency);
    let before = db.stats();

    let start = Instant::now();
    let mut handles = Vec::with_capacity(config.concurrency);
    for &plan in keys.plans.iter() {
        let task = PutTask {
            db: db.clone(),
            plan,
            keys: keys.clone(),
            key_size: config.key_size,
            values: Arc::clone(&values),
        };
        handles.push(tokio::spawn(task.run()));
    }
    let mut latency_ns = new_latency_histogram();
    for handle in handles {
        latency_ns.add(handle.await?.map_err(context("put"))?)?;
    }
    // NOTE: a buffered put resolves once it is queued; without this sync the
    // clock would stop before the data reached the OS, let alone the disk.
    if !mode.is_durable() {
        db.sync().await.map_err(context("sync"))?;
    }
    let elapsed = start.elapsed();
    let after = db.stats();

    // NOTE: the flush is outside the timed section: the fill's time is that of
    // its puts (which run while background flushes of full memtables happen),
    // not of writing out the last, partly filled memtable.
    db.flush().await.map_err(context("flush"))?;
    db.close().await.map_err(context("close store"))?;
    // NOTE: counted after the close, which waits for the flush task to
    // finish: `Db::flush` resolves once the memtable is swapped for its table,
    // before the flush task counts the flush and deletes the WAL segments.
    let flushed = db.stats();
    let size_bytes = store_size_bytes(&dir).map_err(context("measure store size"))?;
    assert_eq!(latency_ns.len(), ops, "every put recorded exactly one latency");
    assert_eq!(
        flushed.immutable_memtables, 0,
        "db.flush() leaves no frozen memtable"
    );
    let syncs = after.wal_syncs - before.wal_syncs;
    let synced_batches = after.wal_synced_batches - before.wal_synced_batches;
    let report = Report {
        workload: name,
        ops,
        elapsed,
        latency_ns,
        syncs,
        avg_group_size: if syncs == 0 {
            0.0
        } else {
            synced_batches as f64 / syncs as f64
        },
        concurrency: config.concurrency,
        io_backend: after.io_backend,
        extras: vec![
            Extra::decimal2("size_mib", size_bytes as f64 / BYTES_PER_MIB),
            Extra::count("flushes", flushed.flushes - before.flushes),
            Extra::count("l0_tables", flushed.level_tables.first().map_or(0, |&n| n as u64)),
            Extra::count("stall_micros", after.stall_micros - before.stall_micros),
        ],
    };
    Ok((report, FilledStore { dir, keys }))
}

/// Which key numbers a fill's operations wrote: operation `i` of the fill
/// (counting across its tasks, in plan order) wrote [`WrittenKeys::key_number`]`(i)`.
#[derive(Debug, Clone)]
struct WrittenKeys {
    order: KeyOrder,
    /// Operations of the whole fill.
    ops: u64,
    /// Random keys are drawn from `0..key_space`.
    key_space: u64,
    /// The fill's tasks, ordered by `first_key`.
    plans: Arc<[TaskPlan]>,
}

impl WrittenKeys {
    fn new(order: KeyOrder, ops: u64, tasks: usize) -> Self {
        WrittenKeys {
            order,
            ops,
            key_space: ops.max(1),
            plans: plan_tasks(ops, tasks).into(),
        }
    }

    /// A generator for `plan`'s random keys, positioned at its first.
    fn rng(plan: &TaskPlan) -> SplitMix64 {
        SplitMix64::for_stream(BENCH_SEED, plan.stream)
    }

    /// The next key number of a task whose generator is `rng`, at operation
    /// `op` of the whole fill.
    fn next_key_number(&self, rng: &mut SplitMix64, op: u64) -> u64 {
        match self.order {
            KeyOrder::Sequential => op,
            KeyOrder::Random => rng.below(self.key_space),
        }
    }

    /// The key number operation `op` (`< ops`) of the fill wrote, computed
    /// in O(log tasks) without replaying the fill.
    fn key_number(&self, op: u64) -> u64 {
        assert!(op < self.ops, "operation {op} of a fill of {}", self.ops);
        let index = self.plans.partition_point(|plan| plan.first_key + plan.ops <= op);
        let Some(plan) = self.plans.get(index) else {
            unreachable!("the plans cover 0..ops");
        };
        let mut rng = Self::rng(plan);
        // NOTE: a random fill draws exactly once per operation.
        rng.skip(op - plan.first_key);
        self.next_key_number(&mut rng, op)
    }
}

/// One task of a put workload.
struct PutTask {
    db: Db,
    plan: TaskPlan,
    keys: WrittenKeys,
    key_size: usize,
    values: Arc<ValuePool>,
}

impl PutTask {
    /// Issues the plan's puts one after another; returns their latencies.
    async fn run(self) -> Result<Histogram<u64>, ringdb::Error> {
        let mut rng = WrittenKeys::rng(&self.plan);
        let mut key = vec![0u8; self.key_size];
        let mut latency_ns = new_latency_histogram();
        for i in 0..self.plan.ops {
            let key_number = self.keys.next_key_number(&mut rng, self.plan.first_key + i);
            write_key(&mut key, key_number);
            let value = self.values.value(self.plan.first_key + i);
            let start = Instant::now();
            self.db.put(&key, value).await?;
            record_latency(&mut latency_ns, start.elapsed());
        }
        Ok(latency_ns)
    }
}

/// The disk's own limit: `sync_num` times (`pwrite` one record + `fdatasync`)
/// on a preallocated file, from one thread.
async fn run_rawsync(config: &Config, root: &Path) -> Result<Report, BoxError> {
    let dir = fresh_subdir(root, Workload::RawSync.name())?;
    let ops = config.sync_num;
    let record_size = config.key_size + config.value_size + RAW_RECORD_OVERHEAD_BYTES;
    // NOTE: plain blocking std I/O on purpose, so it runs on a blocking thread
    // rather than stalling a runtime worker.
    let (elapsed, latency_ns) =
        tokio::task::spawn_blocking(move || raw_sync_loop(&dir.join("raw.dat"), ops, record_size)).await??;
    Ok(Report {
        workload: Workload::RawSync.name(),
        ops,
        elapsed,
        latency_ns,
        syncs: ops,
        avg_group_size: 1.0,
        // NOTE: rawsync is one sequential loop whatever --concurrency says.
        concurrency: 1,
        io_backend: "std",
        extras: Vec::new(),
    })
}

/// Preallocates `path` to `ops * record_size` zero bytes, then times `ops`
/// record overwrites, each followed by an fdatasync.
fn raw_sync_loop(path: &Path, ops: u64, record_size: usize) -> Result<(Duration, Histogram<u64>), BoxError> {
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
    let start = Instant::now();
    for i in 0..ops {
        let op_start = Instant::now();
        file.write_all_at(records.value(i), i * record_size_u64)?;
        file.sync_data()?;
        record_latency(&mut latency_ns, op_start.elapsed());
    }
    Ok((start.elapsed(), latency_ns))
}

/// Cheap pseudo-random values: one random buffer made up front, of which
/// each value is a slice at a different offset.
#[derive(Debug)]
struct ValuePool {
    data: Vec<u8>,
    value_size: usize,
}

impl ValuePool {
    fn new(value_size: usize, seed: u64) -> Self {
        let mut data = vec![0u8; value_size + VALUE_POOL_BYTES];
        SplitMix64::new(seed).fill(&mut data);
        ValuePool { data, value_size }
    }

    /// The value of operation `i`.
    #[expect(
        clippy::indexing_slicing,
        reason = "offset + value_size <= data.len() by construction"
    )]
    fn value(&self, i: u64) -> &[u8] {
        // NOTE: a stride coprime to the pool size walks every offset before
        // repeating, so neighbouring values differ and do not compress away.
        const STRIDE: u64 = 7919;
        let offset = (i.wrapping_mul(STRIDE) % VALUE_POOL_BYTES as u64) as usize;
        &self.data[offset..offset + self.value_size]
    }
}

/// Writes `number` in decimal into `key`, right-aligned and zero-padded.
///
/// NOTE: when `key` is shorter than the number's digits the high digits are
/// dropped (keys then repeat); with the default 16-byte keys that needs more
/// than 10^16 operations.
fn write_key(key: &mut [u8], mut number: u64) {
    for byte in key.iter_mut().rev() {
        *byte = b'0' + (number % 10) as u8;
        number /= 10;
    }
}

/// The bytes of every file under `dir`: the store's size on disk, including
/// the current WAL segment's zero-filled window.
fn store_size_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            store_size_bytes(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}

/// Empties (or creates) `root/name` and returns its path.
fn fresh_subdir(root: &Path, name: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(name);
    // NOTE: like db_bench without --use_existing_db, a workload starts from an
    // empty store: whatever an earlier run left in its subdirectory goes.
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal() {
        let mut key = [0u8; 8];
        write_key(&mut key, 1234);
        assert_eq!(&key, b"00001234");
        let mut short = [0u8; 2];
        write_key(&mut short, 1234);
        assert_eq!(&short, b"34");
    }

    #[test]
    fn plans_cover_every_op_once_in_order() {
        let plans = plan_tasks(10, 3);
        assert_eq!(plans.iter().map(|p| p.ops).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(plans.iter().map(|p| p.first_key).collect::<Vec<_>>(), [0, 4, 7]);
        assert_eq!(plan_tasks(2, 4).iter().map(|p| p.ops).sum::<u64>(), 2);
    }

    #[test]
    fn written_keys_are_the_keys_the_put_tasks_draw() {
        for (order, ops, tasks) in [
            (KeyOrder::Random, 1000, 3),
            (KeyOrder::Random, 5, 8),
            (KeyOrder::Sequential, 100, 7),
        ] {
            let keys = WrittenKeys::new(order, ops, tasks);
            let mut op = 0;
            for plan in keys.plans.iter() {
                // The same draws as PutTask::run.
                let mut rng = WrittenKeys::rng(plan);
                for i in 0..plan.ops {
                    let drawn = keys.next_key_number(&mut rng, plan.first_key + i);
                    assert!(drawn < ops);
                    assert_eq!(keys.key_number(op), drawn, "{order:?} op {op}");
                    op += 1;
                }
            }
            assert_eq!(op, ops);
        }
    }

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
        }
    }

    /// The count extra `name` of `report`.
    fn count(report: &Report, name: &str) -> u64 {
        match report.extra(name) {
            Some(crate::report::ExtraValue::Count(n)) => n,
            other => panic!("{name}: {other:?} in {}", report.to_json()),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_workload_runs_and_leaves_data_in_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config();
        let raw = run_rawsync(&config, dir.path()).await.unwrap();
        assert_eq!((raw.ops, raw.syncs), (20, 20));
        assert_eq!(raw.latency_ns.len(), 20);
        let (sync, _) = run_fill(
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
        let (seq, seq_store) = run_fill(
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

        // With no fill before them, the reads fill their own store (and the
        // second read reuses it); after a fill they reuse the fill's store.
        for benchmarks in [
            &[Workload::ReadRandom, Workload::ReadMissing][..],
            &[Workload::FillSeq, Workload::ReadRandom, Workload::ReadMissing],
            &[Workload::FillRandom, Workload::ReadMissing, Workload::ReadRandom],
        ] {
            let root = tempfile::tempdir().unwrap();
            let mut filled = None;
            for &workload in benchmarks {
                let report = run_workload(&config, root.path(), workload, &mut filled)
                    .await
                    .unwrap();
                assert_eq!(report.workload, workload.name());
                let json = report.to_json();
                let store = filled.as_ref().unwrap();
                assert_eq!(store.dir, root.path().join(benchmarks[0].name()));
                if workload == Workload::ReadRandom {
                    assert_eq!(report.ops, 300);
                    assert_eq!(count(&report, "found"), 300, "{json}");
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
}
