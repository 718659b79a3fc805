//! `peer_fjall`: ringdb's `bench` workloads run against fjall 2.x, a pure-Rust
//! LSM-tree store, so ringdb's figures can be quoted as ratios against a peer
//! measured on the same machine in the same session.
//!
//! Built only with the `peer-fjall` feature (plain builds and CI never
//! compile fjall):
//!
//! ```text
//! cargo run --release --features peer-fjall --example peer_fjall -- \
//!     --benchmarks fillsync,fillrandom,readrandom,readseq \
//!     --num 1000000 --sync-num 100000 --concurrency 16 --json
//! ```
//!
//! and compared with the same flags given to `ringdb bench`. The keys, values
//! and key orders are ringdb's own: this file compiles the bench's generator
//! and key-plan modules (`src/bin/ringdb/rng.rs`, `bench/keys.rs`) and its
//! report module (`report.rs`), so both benches write the same bytes in the
//! same order, read the same keys, and print the same JSON fields (`workload,
//! ops, secs, ops_per_sec, p50_us, p99_us, p999_us, max_us, syncs,
//! avg_group_size, concurrency, io_backend`), followed here by
//! `"engine":"fjall"` and the workload's own fields.
//!
//! Workloads (each as ringdb's of the same name; `--concurrency` OS threads
//! stand for ringdb's tokio tasks, since fjall's API is synchronous, as
//! RocksDB's db_bench does):
//! - `fillsync`: `--sync-num` inserts of random keys into a fresh store, each
//!   made durable before it counts (ringdb: `SyncMode::Always` puts). With
//!   `--sync-path persist` (the default) a thread calls `insert` and then
//!   `keyspace.persist(PersistMode::SyncData)`; with `--sync-path batch` it
//!   commits a one-entry write batch whose durability is `SyncData` (the two
//!   cost the same at one thread, within this bench's noise). fjall has no
//!   group commit: every persist issues its own `fdatasync` while holding
//!   the journal's lock, so concurrent durable writers queue behind one
//!   another. With `persist`, other threads' inserts can slip in between a
//!   thread's insert and its persist, and that persist writes and syncs
//!   them too; their own persists then sync no new data (cheaper), but are
//!   still issued. `syncs` is the bench's persist calls (one per insert).
//! - `fillseq` / `fillrandom`: `--num` inserts of sequential / random keys
//!   into a fresh store, then one `keyspace.persist(PersistMode::SyncData)`
//!   inside the timed section (ringdb: `SyncMode::Buffered` puts, then one
//!   `db.sync()`). The partition journals with `manual_journal_persist`:
//!   inserts stay in the journal's buffer until it fills, which is the
//!   guarantee ringdb's buffered mode gives (a process crash may lose the
//!   last writes); fjall's default would add a `write(2)` per insert.
//! - `readrandom`: `--reads` gets (default `--num`) of keys the last fill
//!   wrote, drawn as ringdb draws them, on the reopened store; each must find
//!   a value of `--value-size` bytes (`found` must equal `expected`).
//! - `readseq` / `readreverse`: one iteration of the whole reopened store
//!   forward / backward from one thread; an operation is one entry, and the
//!   count must be the number of live keys (`expected`); keys out of order,
//!   not live, or values of the wrong size count as `unexpected` (every
//!   entry is checked, by the bench's own `ScanCheck`).
//!
//! As in ringdb's bench, each fill writes a fresh store in its own
//! subdirectory of `--dir`; afterwards, untimed, it flushes the memtable,
//! closes the store and reports its size on disk (`size_mib`: every file's
//! length, so it includes the 32 MiB fjall preallocates for its journal),
//! `space_amp` (that size over the bytes of the live keys and values),
//! `table_space_amp` (the tables alone over the same), and fjall's flush,
//! compaction and table counts since the store was opened. The reads
//! reopen the last fill's store (every key in a table, block cache cold),
//! or first fill one themselves with an untimed `fillrandom` of `--num`
//! keys. `fillsync`'s store is never read.
//!
//! fjall settings: the defaults (leveled compaction, 16 MiB memtables, 4 KiB
//! blocks, 10-bit bloom filters), except the cache (`--cache-size`, default
//! 256 MiB as ringdb's bench, where fjall's is 32 MiB), compression
//! (`--compression`, default none as ringdb's bench and library, where
//! fjall's is LZ4; the values are random bytes) and the manual journal
//! persist above.

use std::error::Error as StdError;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use fjall::{CompressionType, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use hdrhistogram::Histogram;

use fixtures::{ValuePool, fresh_subdir, store_size_bytes};
use keys::{KeyOrder, LiveKeys, ScanCheck, TaskPlan, WrittenKeys, plan_tasks, write_key};
use report::{Extra, Report, new_latency_histogram, record_latency};
use rng::SplitMix64;

// NOTE: ringdb's bench modules, compiled as they are, so that the keys,
// values and output cannot drift from the bench this one is compared with.
#[path = "../src/bin/ringdb/bench/fixtures.rs"]
mod fixtures;
#[path = "../src/bin/ringdb/bench/keys.rs"]
#[allow(dead_code, reason = "the peer runs a subset of ringdb's workloads")]
mod keys;
#[path = "../src/bin/ringdb/report.rs"]
mod report;
#[path = "../src/bin/ringdb/rng.rs"]
mod rng;

/// Errors from a benchmark: fjall's, the OS's, a thread's panic.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The seed of every key and value generator (ringdb's `BENCH_SEED`).
const BENCH_SEED: u64 = 0x5EED_0000_B0BC;

/// The seed of the reads' key choices (ringdb's `READ_SEED`).
const READ_SEED: u64 = 0x5EED_0000_5EAD;

/// The block cache ringdb's bench defaults to: 256 MiB.
const DEFAULT_CACHE_SIZE_BYTES: u64 = 256 * 1024 * 1024;

/// Most threads a benchmark starts.
const MAX_CONCURRENCY: u64 = 4096;

/// fjall's largest key.
const MAX_KEY_SIZE_BYTES: u64 = 65_536;

/// The partition every store keeps its keys in.
const PARTITION: &str = "bench";

/// Bytes in a MiB, for the reported store sizes.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// A workload, named as ringdb's (and db_bench's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Durable inserts of random keys.
    #[value(name = "fillsync")]
    FillSync,
    /// Buffered inserts of sequential keys, then one sync.
    #[value(name = "fillseq")]
    FillSeq,
    /// Buffered inserts of random keys, then one sync.
    #[value(name = "fillrandom")]
    FillRandom,
    /// Gets of random keys that exist, from tables.
    #[value(name = "readrandom")]
    ReadRandom,
    /// One forward iteration of the whole store.
    #[value(name = "readseq")]
    ReadSeq,
    /// One backward iteration of the whole store.
    #[value(name = "readreverse")]
    ReadReverse,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::FillSync => "fillsync",
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::ReadRandom => "readrandom",
            Workload::ReadSeq => "readseq",
            Workload::ReadReverse => "readreverse",
        }
    }
}

/// How `fillsync` makes each insert durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SyncPath {
    /// `partition.insert`, then `keyspace.persist(PersistMode::SyncData)`.
    Persist,
    /// A one-entry batch committed with durability `SyncData` (journal
    /// write, fdatasync and memtable insert under one hold of the journal
    /// lock).
    Batch,
}

/// Table block compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CompressionArg {
    /// Blocks stored as they are.
    None,
    /// LZ4 (fjall's default).
    Lz4,
}

/// ringdb's `bench` workloads on fjall.
#[derive(Debug, Parser)]
#[command(name = "peer_fjall")]
struct Args {
    /// Workloads to run, in order, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fillsync,fillrandom,readrandom,readseq"
    )]
    benchmarks: Vec<Workload>,

    /// Inserts of fillseq and fillrandom, and the keys 0..num a fill writes.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,

    /// Gets of readrandom. Default: --num.
    #[arg(long)]
    reads: Option<u64>,

    /// Inserts of fillsync (each costs a disk sync).
    #[arg(long, default_value_t = 100_000)]
    sync_num: u64,

    /// OS threads issuing operations (readseq and readreverse use one).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY))]
    concurrency: u64,

    /// Bytes per key (the key number in decimal, zero-padded).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=MAX_KEY_SIZE_BYTES))]
    key_size: u64,

    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: u64,

    /// Directory for the stores (one subdirectory per fill, emptied first and
    /// left in place). Default: a fresh temporary directory, removed at the
    /// end.
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Print one JSON object per workload, one per line, and nothing else.
    #[arg(long)]
    json: bool,

    /// fjall's cache capacity in bytes (`Config::cache_size`; fjall's
    /// default is 32 MiB, ringdb's bench uses 256 MiB).
    #[arg(long, default_value_t = DEFAULT_CACHE_SIZE_BYTES)]
    cache_size: u64,

    /// Memtable size in bytes at which it is sealed and flushed
    /// (`PartitionCreateOptions::max_memtable_size`). Default: fjall's
    /// (16 MiB).
    #[arg(long)]
    write_buffer_size: Option<u32>,

    /// Block compression of the tables (none, as ringdb's bench; fjall's
    /// default is lz4).
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,

    /// How fillsync makes each insert durable.
    #[arg(long, value_enum, default_value = "persist")]
    sync_path: SyncPath,
}

/// The validated settings shared by every workload of one run.
#[derive(Debug, Clone)]
struct Settings {
    num: u64,
    sync_num: u64,
    reads: u64,
    concurrency: usize,
    key_size: usize,
    value_size: usize,
    cache_size_bytes: u64,
    write_buffer_size_bytes: Option<u32>,
    compression: CompressionType,
    sync_path: SyncPath,
}

/// The store a fill left behind, flushed and closed, for the reads.
struct FilledStore {
    dir: PathBuf,
    /// The keys of the fill: the reads draw from them.
    keys: WrittenKeys,
    /// The keys the store holds.
    live: LiveKeys,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer_fjall: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmarks `args` names and prints one line per workload.
fn run(args: Args) -> Result<(), BoxError> {
    let settings = Settings {
        num: args.num,
        sync_num: args.sync_num,
        reads: args.reads.unwrap_or(args.num),
        concurrency: usize::try_from(args.concurrency)?,
        key_size: usize::try_from(args.key_size)?,
        value_size: usize::try_from(args.value_size)?,
        cache_size_bytes: args.cache_size,
        write_buffer_size_bytes: args.write_buffer_size,
        compression: match args.compression {
            CompressionArg::None => CompressionType::None,
            CompressionArg::Lz4 => CompressionType::Lz4,
        },
        sync_path: args.sync_path,
    };
    // NOTE: the temporary directory lives until the end of this function, so
    // the stores are removed only after the last workload has run.
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
        let memtable = match settings.write_buffer_size_bytes {
            Some(size_bytes) => format!("{} MiB", size_bytes / (1024 * 1024)),
            None => "fjall's default".to_string(),
        };
        println!(
            "peer_fjall: fjall 2, keys {} bytes, values {} bytes, num {}, sync-num {}, reads {}, \
             concurrency {}, cache {} MiB, memtable {}, compression {:?}, sync-path {:?}, cpus {}, dir {}",
            settings.key_size,
            settings.value_size,
            settings.num,
            settings.sync_num,
            settings.reads,
            settings.concurrency,
            settings.cache_size_bytes / (1024 * 1024),
            memtable,
            settings.compression,
            settings.sync_path,
            thread::available_parallelism().map_or(1, |n| n.get()),
            root.display(),
        );
    }
    let mut filled = None;
    for &workload in &args.benchmarks {
        let report = run_workload(&settings, &root, workload, &mut filled)
            .map_err(|e| format!("{}: {e}", workload.name()))?;
        if args.json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.to_human());
        }
    }
    Ok(())
}

/// Runs one workload; a fill leaves its store in `filled` (but fillsync),
/// a read uses the store there, filling one first if there is none.
fn run_workload(
    settings: &Settings,
    root: &Path,
    workload: Workload,
    filled: &mut Option<FilledStore>,
) -> Result<Report, BoxError> {
    match workload {
        Workload::FillSync => {
            // NOTE: its store (--sync-num keys) is not one the reads use.
            let dir = fresh_subdir(root, workload.name())?;
            let (report, _) = fill(settings, dir, workload, settings.sync_num, KeyOrder::Random)?;
            Ok(report)
        }
        Workload::FillSeq | Workload::FillRandom => {
            let order = if workload == Workload::FillSeq {
                KeyOrder::Sequential
            } else {
                KeyOrder::Random
            };
            let dir = fresh_subdir(root, workload.name())?;
            let (report, store) = fill(settings, dir, workload, settings.num, order)?;
            *filled = Some(store);
            Ok(report)
        }
        Workload::ReadRandom | Workload::ReadSeq | Workload::ReadReverse => {
            let store = match filled.take() {
                Some(store) => store,
                None => {
                    let dir = fresh_subdir(root, workload.name())?;
                    fill(
                        settings,
                        dir,
                        Workload::FillRandom,
                        settings.num,
                        KeyOrder::Random,
                    )
                    .map_err(|e| format!("fillrandom before {}: {e}", workload.name()))?
                    .1
                }
            };
            let report = match workload {
                Workload::ReadRandom => read_random(settings, &store),
                _ => read_sequential(settings, &store, workload == Workload::ReadReverse),
            };
            *filled = Some(store);
            report
        }
    }
}

/// Opens (or creates) the store in `dir` with the bench's settings.
fn open_store(settings: &Settings, dir: &Path) -> Result<(Keyspace, PartitionHandle), BoxError> {
    let keyspace = fjall::Config::new(dir)
        .cache_size(settings.cache_size_bytes)
        .open()?;
    let mut options = PartitionCreateOptions::default()
        .compression(settings.compression)
        .manual_journal_persist(true);
    if let Some(size_bytes) = settings.write_buffer_size_bytes {
        options = options.max_memtable_size(size_bytes);
    }
    let partition = keyspace.open_partition(PARTITION, options)?;
    Ok((keyspace, partition))
}

/// Opens a store in the empty directory `dir` and runs `ops` inserts of
/// `workload` (durable ones for fillsync, else buffered ones and one final
/// sync, timed); then, untimed, flushes the memtable, closes the store and
/// reports.
fn fill(
    settings: &Settings,
    dir: PathBuf,
    workload: Workload,
    ops: u64,
    order: KeyOrder,
) -> Result<(Report, FilledStore), BoxError> {
    let durable = (workload == Workload::FillSync).then_some(settings.sync_path);
    let (keyspace, partition) = open_store(settings, &dir)?;
    let keys = WrittenKeys::fill(order, BENCH_SEED, ops, settings.concurrency);
    let values = ValuePool::new(settings.value_size, BENCH_SEED);

    let start = Instant::now();
    let histograms = on_threads(keys.plans.iter().copied(), |plan| {
        let writer = Writer {
            keyspace: &keyspace,
            partition: &partition,
            keys: &keys,
            values: &values,
            key_size: settings.key_size,
            durable,
        };
        writer.run(plan)
    })?;
    // NOTE: buffered inserts sit in the journal's buffer; without this sync
    // the clock would stop before the data reached the OS, let alone the disk.
    let syncs = if durable.is_some() {
        ops
    } else {
        keyspace.persist(PersistMode::SyncData)?;
        1
    };
    let elapsed = start.elapsed();

    // NOTE: untimed, as ringdb's flush before close: the reads then find
    // every key in a table. `rotate_memtable_and_wait` is public but hidden
    // from fjall's docs; it seals the memtable and waits for its flush.
    partition.rotate_memtable_and_wait()?;
    let extras_after_flush = [
        Extra::count("flushes", keyspace.flushes_completed() as u64),
        Extra::count("compactions", keyspace.compactions_completed() as u64),
        Extra::count("tables", partition.segment_count() as u64),
    ];
    let table_bytes = partition.disk_space();
    drop(partition);
    drop(keyspace);
    let size_bytes = store_size_bytes(&dir)?;

    let latency_ns = merge(histograms)?;
    assert_eq!(latency_ns.len(), ops, "every insert recorded exactly one latency");
    let mut live = LiveKeys::new(keys.key_space);
    keys.for_each_key(|number| live.insert(number));
    let live_bytes = live.count() as f64 * (settings.key_size + settings.value_size) as f64;
    let mut extras = vec![
        Extra::text("engine", "fjall".to_string()),
        Extra::decimal2("size_mib", size_bytes as f64 / BYTES_PER_MIB),
    ];
    extras.extend(extras_after_flush);
    extras.push(Extra::decimal2("space_amp", size_bytes as f64 / live_bytes));
    extras.push(Extra::decimal2(
        "table_space_amp",
        table_bytes as f64 / live_bytes,
    ));
    let report = Report {
        workload: workload.name(),
        ops,
        elapsed,
        latency_ns,
        syncs,
        // NOTE: fjall does not group syncs: each covers one insert on average.
        avg_group_size: if syncs == 0 {
            0.0
        } else {
            ops as f64 / syncs as f64
        },
        concurrency: settings.concurrency,
        io_backend: "std",
        extras,
    };
    Ok((report, FilledStore { dir, keys, live }))
}

/// One thread of a fill.
struct Writer<'a> {
    keyspace: &'a Keyspace,
    partition: &'a PartitionHandle,
    keys: &'a WrittenKeys,
    values: &'a ValuePool,
    key_size: usize,
    /// How each insert is made durable, or `None` for buffered inserts.
    durable: Option<SyncPath>,
}

impl Writer<'_> {
    /// Issues `plan`'s inserts one after another; returns their latencies.
    fn run(&self, plan: TaskPlan) -> Result<Histogram<u64>, BoxError> {
        let mut rng = self.keys.rng(&plan);
        let mut key = vec![0u8; self.key_size];
        let mut latency_ns = new_latency_histogram();
        for i in 0..plan.ops {
            let op = plan.first_key + i;
            write_key(&mut key, self.keys.next_key_number(&mut rng, op));
            let value = self.values.value(op);
            let start = Instant::now();
            match self.durable {
                None => self.partition.insert(key.as_slice(), value)?,
                Some(SyncPath::Persist) => {
                    self.partition.insert(key.as_slice(), value)?;
                    self.keyspace.persist(PersistMode::SyncData)?;
                }
                Some(SyncPath::Batch) => {
                    let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncData));
                    batch.insert(self.partition, key.as_slice(), value);
                    batch.commit()?;
                }
            }
            record_latency(&mut latency_ns, start.elapsed());
        }
        Ok(latency_ns)
    }
}

/// `readrandom`: reopens `store` and times `--reads` gets of keys the fill
/// wrote, split over `--concurrency` threads.
fn read_random(settings: &Settings, store: &FilledStore) -> Result<Report, BoxError> {
    if store.keys.ops == 0 {
        return Err("the store holds no keys to read: --num is 0".into());
    }
    let (keyspace, partition) = open_store(settings, &store.dir)?;
    let start = Instant::now();
    let results = on_threads(plan_tasks(settings.reads, settings.concurrency), |plan| {
        get_task(settings, store, &partition, plan)
    })?;
    let elapsed = start.elapsed();
    drop(partition);
    drop(keyspace);

    let (mut found, mut expected) = (0, 0);
    let mut histograms = Vec::with_capacity(results.len());
    for (latency_ns, task_found, task_expected) in results {
        histograms.push(latency_ns);
        found += task_found;
        expected += task_expected;
    }
    let latency_ns = merge(histograms)?;
    assert_eq!(
        latency_ns.len(),
        settings.reads,
        "every get recorded exactly one latency"
    );
    if found != expected {
        eprintln!(
            "peer_fjall: warning: readrandom: {found} of {} gets found a value, but {expected} keys were live",
            settings.reads
        );
    }
    Ok(Report {
        workload: Workload::ReadRandom.name(),
        ops: settings.reads,
        elapsed,
        latency_ns,
        syncs: 0,
        avg_group_size: 0.0,
        concurrency: settings.concurrency,
        io_backend: "std",
        extras: vec![
            Extra::text("engine", "fjall".to_string()),
            Extra::count("found", found),
            Extra::count("expected", expected),
        ],
    })
}

/// One thread of `readrandom`: draws its keys as ringdb's `GetTask` does
/// (an operation of the fill, uniformly, and the key it wrote); returns the
/// latencies, how many gets found a value and how many should have.
fn get_task(
    settings: &Settings,
    store: &FilledStore,
    partition: &PartitionHandle,
    plan: TaskPlan,
) -> Result<(Histogram<u64>, u64, u64), BoxError> {
    let mut rng = SplitMix64::for_stream(READ_SEED, plan.stream);
    let mut key = vec![0u8; settings.key_size];
    let mut latency_ns = new_latency_histogram();
    let (mut found, mut expected) = (0, 0);
    for _ in 0..plan.ops {
        let key_number = store.keys.key_number(rng.below(store.keys.ops));
        expected += u64::from(store.live.contains(key_number));
        write_key(&mut key, key_number);
        let start = Instant::now();
        let value = partition.get(&key)?;
        record_latency(&mut latency_ns, start.elapsed());
        if let Some(value) = value {
            if value.len() != settings.value_size {
                return Err(format!(
                    "key {key_number}: a value of {} bytes, but every insert wrote {}",
                    value.len(),
                    settings.value_size
                )
                .into());
            }
            found += 1;
        }
    }
    Ok((latency_ns, found, expected))
}

/// `readseq` (forward) or `readreverse` (`reverse`): reopens `store`,
/// iterates it whole from one thread and reports entries per second.
fn read_sequential(settings: &Settings, store: &FilledStore, reverse: bool) -> Result<Report, BoxError> {
    let (workload, iteration) = if reverse {
        (Workload::ReadReverse, Iteration::Reverse)
    } else {
        (Workload::ReadSeq, Iteration::Forward)
    };
    let (keyspace, partition) = open_store(settings, &store.dir)?;
    let mut check = ScanCheck::new(&store.live, settings.key_size, settings.value_size, reverse);
    let start = Instant::now();
    let latency_ns = match iteration {
        Iteration::Forward => time_entries(partition.iter(), &mut check)?,
        Iteration::Reverse => time_entries(partition.iter().rev(), &mut check)?,
    };
    let elapsed = start.elapsed();
    drop(partition);
    drop(keyspace);

    let entries = latency_ns.len();
    let expected = store.live.count();
    if entries != expected || check.unexpected > 0 {
        eprintln!(
            "peer_fjall: warning: {}: {entries} entries, {expected} live keys, {} unexpected entries \
             (not live, out of order, or of the wrong size)",
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
        // NOTE: one iteration, from one thread, whatever --concurrency says.
        concurrency: 1,
        io_backend: "std",
        extras: vec![
            Extra::text("engine", "fjall".to_string()),
            Extra::count("expected", expected),
            Extra::count("unexpected", check.unexpected),
        ],
    })
}

/// The direction of a whole-store iteration.
enum Iteration {
    Forward,
    Reverse,
}

/// Drains `entries`, timing each `next()` (an operation is one entry, as in
/// ringdb's readseq) and checking each entry.
fn time_entries(
    mut entries: impl Iterator<Item = fjall::Result<fjall::KvPair>>,
    check: &mut ScanCheck<'_>,
) -> Result<Histogram<u64>, BoxError> {
    let mut latency_ns = new_latency_histogram();
    loop {
        let entry_start = Instant::now();
        let Some(entry) = entries.next() else {
            break;
        };
        record_latency(&mut latency_ns, entry_start.elapsed());
        let (key, value) = entry?;
        check.entry(&key, &value);
    }
    Ok(latency_ns)
}

/// Runs `work` once per item of `plans`, each on its own OS thread, and
/// returns the results in order.
fn on_threads<P: Send, T: Send>(
    plans: impl IntoIterator<Item = P>,
    work: impl Fn(P) -> Result<T, BoxError> + Sync,
) -> Result<Vec<T>, BoxError> {
    let work = &work;
    thread::scope(|scope| {
        let handles: Vec<_> = plans
            .into_iter()
            .map(|plan| scope.spawn(move || work(plan)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| BoxError::from("a benchmark thread panicked"))?
            })
            .collect()
    })
}

/// One histogram holding every sample of `histograms`.
fn merge(histograms: Vec<Histogram<u64>>) -> Result<Histogram<u64>, BoxError> {
    let mut merged = new_latency_histogram();
    for histogram in histograms {
        merged.add(histogram)?;
    }
    Ok(merged)
}
