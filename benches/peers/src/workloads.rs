//! The workloads, run the same way on every engine; see `main.rs`.
//!
//! Every timed operation records its latency; an engine's answer to a read
//! is checked (a get must find its key), so an engine that does less work
//! cannot look faster.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::BoxError;
use crate::engines::{self, Engine, Kind, RAW_RECORD_OVERHEAD_BYTES};

pub const KEY_SIZE_BYTES: usize = 16;
pub const VALUE_SIZE_BYTES: usize = 100;
/// Entries each seekrandom scan reads after the one it seeks to.
const SEEK_NEXTS: usize = 10;
/// Readers of the concurrent readrandom.
const MANY_READERS: usize = 16;
/// A prime that does not divide any plausible `--num`: the fillrandom
/// permutation is `i -> (i * P + 7) mod num`.
const PERMUTATION_PRIME: u64 = 1_000_003;

/// What the workloads need to know.
pub struct Settings {
    pub num: u64,
    pub reads: u64,
    pub put_duration: Duration,
    pub writers: Vec<usize>,
    pub small_cache_bytes: u64,
    pub big_cache_bytes: u64,
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Cell {
    pub workload: String,
    /// Writers or readers.
    pub n: usize,
    pub engine: &'static str,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl Cell {
    fn new(workload: &str, n: usize, engine: Kind, elapsed: Duration, latencies: &[Vec<u64>]) -> Cell {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
        for &ns in latencies.iter().flatten() {
            histogram.saturating_record(ns.clamp(1, 60_000_000_000));
        }
        let ops = histogram.len();
        Cell {
            workload: workload.to_string(),
            n,
            engine: engine.name(),
            ops,
            ops_per_sec: ops as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: histogram.value_at_quantile(0.5) as f64 / 1000.0,
            p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{:<28} n={:<5} {:>12.0} ops/s  p50 {:>9.1} µs  p99 {:>9.1} µs  ({} ops)",
            self.workload, self.n, self.ops_per_sec, self.p50_us, self.p99_us, self.ops
        )
    }
}

/// Table order of the workloads.
pub fn workload_order(workload: &str) -> usize {
    [
        "durable put",
        "fillseq",
        "fillrandom",
        "readrandom (small cache)",
        "readrandom (big cache)",
        "readseq",
        "seekrandom",
    ]
    .iter()
    .position(|w| *w == workload)
    .unwrap_or(usize::MAX)
}

/// Medians over the rounds, per (workload, n, engine).
pub fn medians(cells: &[Cell]) -> BTreeMap<(String, usize, &'static str), Cell> {
    let mut groups: BTreeMap<(String, usize, &'static str), Vec<&Cell>> = BTreeMap::new();
    for cell in cells {
        groups
            .entry((cell.workload.clone(), cell.n, cell.engine))
            .or_default()
            .push(cell);
    }
    groups
        .into_iter()
        .map(|(key, group)| {
            let median = |f: fn(&Cell) -> f64| {
                let mut xs: Vec<f64> = group.iter().map(|c| f(c)).collect();
                xs.sort_by(|a, b| a.total_cmp(b));
                xs[xs.len() / 2]
            };
            let cell = Cell {
                ops_per_sec: median(|c| c.ops_per_sec),
                p50_us: median(|c| c.p50_us),
                p99_us: median(|c| c.p99_us),
                ..group[0].clone()
            };
            (key, cell)
        })
        .collect()
}

pub fn key(n: u64) -> [u8; KEY_SIZE_BYTES] {
    let mut key = [0u8; KEY_SIZE_BYTES];
    let digits = format!("{n:016}");
    key.copy_from_slice(&digits.as_bytes()[digits.len() - KEY_SIZE_BYTES..]);
    key
}

pub fn value(n: u64) -> [u8; VALUE_SIZE_BYTES] {
    let mut value = [0u8; VALUE_SIZE_BYTES];
    let mut state = n;
    for chunk in value.chunks_mut(8) {
        let bytes = splitmix64(&mut state).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    value
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random key number below `num`, from a writer's or reader's stream.
fn random_below(state: &mut u64, num: u64) -> u64 {
    splitmix64(state) % num.max(1)
}

/// Runs every workload on engine `kind` in `dir`; returns the cells.
pub fn run_engine(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    dir: &Path,
    s: &Settings,
) -> Result<Vec<Cell>, BoxError> {
    let mut cells = Vec::new();
    let max_writers = s.writers.iter().copied().max().unwrap_or(1);
    let record = KEY_SIZE_BYTES + VALUE_SIZE_BYTES + RAW_RECORD_OVERHEAD_BYTES;
    let engine = runtime.block_on(engines::open(
        kind,
        &dir.join("durable"),
        s.big_cache_bytes,
        max_writers,
        record,
        false,
    ))?;
    let engine = Arc::new(engine);
    for &writers in &s.writers {
        cells.push(durable_puts(runtime, kind, &engine, writers, s)?);
    }
    let engine = Arc::try_unwrap(engine).map_err(|_| "engine still shared")?;
    runtime.block_on(engine.flush_and_close())?;
    std::fs::remove_dir_all(dir.join("durable"))?;
    if kind == Kind::Raw {
        return Ok(cells);
    }

    for (name, permuted) in [("fillseq", false), ("fillrandom", true)] {
        let store = dir.join(name);
        let engine = runtime.block_on(engines::open(kind, &store, s.big_cache_bytes, 1, record, true))?;
        cells.push(fill(runtime, kind, &engine, name, permuted, s.num)?);
        runtime.block_on(engine.flush_and_close())?;
        if !permuted {
            std::fs::remove_dir_all(&store)?;
        }
    }
    let store = dir.join("fillrandom");
    for (label, cache) in [
        ("readrandom (small cache)", s.small_cache_bytes),
        ("readrandom (big cache)", s.big_cache_bytes),
    ] {
        let engine = Arc::new(runtime.block_on(engines::open(kind, &store, cache, 1, record, false))?);
        for readers in [1, MANY_READERS] {
            cells.push(read_random(runtime, kind, &engine, label, readers, s)?);
        }
        if cache == s.big_cache_bytes {
            cells.push(read_seq(runtime, kind, &engine, s.num)?);
            cells.push(seek_random(runtime, kind, &engine, s)?);
        }
        let engine = Arc::try_unwrap(engine).map_err(|_| "engine still shared")?;
        runtime.block_on(engine.flush_and_close())?;
    }
    Ok(cells)
}

/// `writers` writers put random keys durably for `s.put_duration`.
fn durable_puts(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    engine: &Arc<Engine>,
    writers: usize,
    s: &Settings,
) -> Result<Cell, BoxError> {
    let num = s.num;
    let start = Instant::now();
    let deadline = start + s.put_duration;
    let latencies: Vec<Vec<u64>> = if let Engine::Ringdb(db) = engine.as_ref() {
        runtime.block_on(async {
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        let mut state = 0xD0_0000 + w as u64;
                        let mut latencies = Vec::with_capacity(4096);
                        while Instant::now() < deadline {
                            let n = random_below(&mut state, num);
                            let t = Instant::now();
                            db.put(key(n), value(n)).await?;
                            latencies.push(t.elapsed().as_nanos() as u64);
                        }
                        Ok::<_, ringdb::Error>(latencies)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(writers);
            for task in tasks {
                all.push(task.await??);
            }
            Ok::<_, BoxError>(all)
        })?
    } else {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..writers)
                .map(|w| {
                    let engine = Arc::clone(engine);
                    std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn_scoped(scope, move || {
                            let mut state = 0xD0_0000 + w as u64;
                            let mut latencies = Vec::with_capacity(4096);
                            let mut i = 0;
                            while Instant::now() < deadline {
                                let n = random_below(&mut state, num);
                                let t = Instant::now();
                                engine.put_durable_blocking(&key(n), &value(n), w, i)?;
                                latencies.push(t.elapsed().as_nanos() as u64);
                                i += 1;
                            }
                            Ok::<_, BoxError>(latencies)
                        })
                })
                .collect::<Result<_, _>>()?;
            threads
                .into_iter()
                .map(|t| t.join().map_err(|_| BoxError::from("a writer panicked"))?)
                .collect::<Result<Vec<_>, BoxError>>()
        })?
    };
    Ok(Cell::new(
        "durable put",
        writers,
        kind,
        start.elapsed(),
        &latencies,
    ))
}

/// One writer puts `num` keys buffered (in key order, or permuted), then
/// syncs once; all timed.
fn fill(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    engine: &Engine,
    name: &str,
    permuted: bool,
    num: u64,
) -> Result<Cell, BoxError> {
    let order = move |i: u64| {
        if permuted {
            (i.wrapping_mul(PERMUTATION_PRIME) + 7) % num
        } else {
            i
        }
    };
    let mut latencies = Vec::with_capacity(num as usize);
    let start = Instant::now();
    if let Engine::Ringdb(db) = engine {
        runtime.block_on(async {
            // NOTE: the store was opened with `SyncMode::Buffered`.
            for i in 0..num {
                let n = order(i);
                let t = Instant::now();
                db.put(key(n), value(n)).await?;
                latencies.push(t.elapsed().as_nanos() as u64);
            }
            db.sync().await?;
            Ok::<_, BoxError>(())
        })?;
    } else {
        for i in 0..num {
            let n = order(i);
            let t = Instant::now();
            engine.put_buffered_blocking(&key(n), &value(n))?;
            latencies.push(t.elapsed().as_nanos() as u64);
        }
        engine.sync_blocking()?;
    }
    Ok(Cell::new(name, 1, kind, start.elapsed(), &[latencies]))
}

/// `readers` readers get `s.reads` random keys in all; each must be found.
fn read_random(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    engine: &Arc<Engine>,
    label: &str,
    readers: usize,
    s: &Settings,
) -> Result<Cell, BoxError> {
    let per_reader = s.reads / readers as u64;
    let num = s.num;
    let start = Instant::now();
    let latencies: Vec<Vec<u64>> = if let Engine::Ringdb(db) = engine.as_ref() {
        runtime.block_on(async {
            let tasks: Vec<_> = (0..readers)
                .map(|r| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        let mut state = 0xEE_0000 + r as u64;
                        let mut latencies = Vec::with_capacity(per_reader as usize);
                        for _ in 0..per_reader {
                            let n = random_below(&mut state, num);
                            let t = Instant::now();
                            let found = db.get(key(n)).await?;
                            latencies.push(t.elapsed().as_nanos() as u64);
                            if found.map(|v| v.len()) != Some(VALUE_SIZE_BYTES) {
                                return Err(BoxError::from(format!("ringdb lost key {n}")));
                            }
                        }
                        Ok(latencies)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for task in tasks {
                all.push(task.await??);
            }
            Ok::<_, BoxError>(all)
        })?
    } else {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..readers)
                .map(|r| {
                    let engine = Arc::clone(engine);
                    scope.spawn(move || {
                        let mut state = 0xEE_0000 + r as u64;
                        let mut latencies = Vec::with_capacity(per_reader as usize);
                        for _ in 0..per_reader {
                            let n = random_below(&mut state, num);
                            let t = Instant::now();
                            let found = engine.get_blocking(&key(n))?;
                            latencies.push(t.elapsed().as_nanos() as u64);
                            if found != Some(VALUE_SIZE_BYTES) {
                                return Err(BoxError::from(format!("{} lost key {n}", kind.name())));
                            }
                        }
                        Ok(latencies)
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().map_err(|_| BoxError::from("a reader panicked"))?)
                .collect::<Result<Vec<_>, BoxError>>()
        })?
    };
    Ok(Cell::new(label, readers, kind, start.elapsed(), &latencies))
}

/// One scan of the whole store; an operation is an entry. Must see `num`.
fn read_seq(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    engine: &Engine,
    num: u64,
) -> Result<Cell, BoxError> {
    use futures::StreamExt as _;
    let start = Instant::now();
    let entries = if let Engine::Ringdb(db) = engine {
        runtime.block_on(async {
            let mut scan = db.scan::<&[u8], _>(..);
            let mut n = 0u64;
            while let Some(item) = scan.next().await {
                std::hint::black_box(item?);
                n += 1;
            }
            Ok::<_, BoxError>(n)
        })?
    } else {
        engine.scan_all_blocking()?
    };
    let elapsed = start.elapsed();
    if entries != num {
        return Err(format!("{} scanned {entries} entries of {num}", kind.name()).into());
    }
    // NOTE: one latency per entry would cost a clock read per entry; the
    // mean stands in for every entry's latency.
    let per_entry = (elapsed.as_nanos() as u64 / entries.max(1)).max(1);
    Ok(Cell::new(
        "readseq",
        1,
        kind,
        elapsed,
        &[vec![per_entry; entries as usize]],
    ))
}

/// `reads / 10` seeks to random keys, each reading `SEEK_NEXTS` more.
fn seek_random(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    engine: &Engine,
    s: &Settings,
) -> Result<Cell, BoxError> {
    use futures::StreamExt as _;
    let seeks = s.reads / 10;
    let mut latencies = Vec::with_capacity(seeks as usize);
    let mut state = 0x5E_0000u64;
    let num = s.num;
    let check = |n: u64, read: usize| -> Result<(), BoxError> {
        let expected = (SEEK_NEXTS + 1).min((num - n) as usize);
        if read != expected {
            return Err(format!(
                "{} read {read} entries from key {n}, expected {expected}",
                kind.name()
            )
            .into());
        }
        Ok(())
    };
    let start = Instant::now();
    if let Engine::Ringdb(db) = engine {
        runtime.block_on(async {
            for _ in 0..seeks {
                let n = random_below(&mut state, num);
                let t = Instant::now();
                let mut scan = db.scan(key(n).to_vec()..).take(SEEK_NEXTS + 1);
                let mut read = 0usize;
                while let Some(item) = scan.next().await {
                    std::hint::black_box(item?);
                    read += 1;
                }
                latencies.push(t.elapsed().as_nanos() as u64);
                check(n, read)?;
            }
            Ok::<_, BoxError>(())
        })?;
    } else {
        for _ in 0..seeks {
            let n = random_below(&mut state, num);
            let t = Instant::now();
            let read = engine.seek_blocking(&key(n), SEEK_NEXTS)?;
            latencies.push(t.elapsed().as_nanos() as u64);
            check(n, read)?;
        }
    }
    Ok(Cell::new("seekrandom", 1, kind, start.elapsed(), &[latencies]))
}
