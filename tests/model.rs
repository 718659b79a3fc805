//! Model test: random operations against a `BTreeMap`, under several option
//! sets, through reopens and power losses.
//!
//! Scenario: proptest generates a seed and a sequence of 20..120 operations
//! over a small key space (`k000`..`k039`, so overwrites, deletes of present
//! keys and range scans hit something): puts, deletes, range deletes
//! (`delete_range`, alone and in batches), merge operands (every
//! option set runs with the `Append` merge operator), puts with a per-write
//! TTL, and batches of puts, deletes, range deletes and merges, with short values (some empty) and now and
//! then a 1–3 KiB one; steps of the injected clock, so TTLs expire mid-run
//! (the model folds a key's base and operands as a read would, hiding an
//! expired base, snapshots included); gets; range scans in
//! both directions with included, excluded and unbounded bounds (empty and
//! inverted ranges too: an inverted range returns nothing); prefix scans;
//! checkpoints (each opened as a store of its own and checked against the
//! model); snapshots (up to three live, each with a copy of the model taken with
//! it) that are read, scanned and released; flushes, `compact_range` over
//! everything or a sub-range, syncs; reopens; and power losses
//! (`SimFs::crash_now`, then recovery with `DropAll`, `Random` and `KeepAll`
//! in turn). Each operation is awaited before the next starts, so the model
//! is exact: every read must equal the model's answer, and in the default
//! `SyncMode::Always` every acknowledged write was synced, so a power loss
//! changes nothing. After the sequence, full forward and reverse scans must
//! equal the model.
//!
//! The same sequence runs under every option set of [`option_sets`] on a
//! fresh simulated disk each (metamorphic: same operations, same answers).
//! Defaults, then tiny memtables, tables, blocks and levels (many flushes and
//! compactions across levels), then the tiny set with LZ4, no bloom filters
//! and no block cache.
//!
//! Cases: 1,000 unless `PROPTEST_CASES` says otherwise (for longer soaks).
//! Failures are not persisted; proptest prints the shrunk sequence, and the
//! message names the option set, the operation's index, the operation, the
//! expected and the actual answer.
//!
//! Two plain tests follow: a snapshot keeps its view across a flush and a
//! `compact_range` that would otherwise drop the versions it needs, and a
//! scan started before a compaction returns exactly the state as of its
//! start while the compaction replaces the tables it reads.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::time::Duration;

use ringdb::clock::{Clock, ManualClock};
use ringdb::io::sim::{SimFs, TearMode};
use ringdb::merge::Append;
use ringdb::{Compression, Db, Options, Scan, Snapshot, WriteBatch, WriteOptions};

/// Where every store of this file lives on its simulated disk.
const DIR: &str = "/db";
/// Keys are `k000`..`k039`.
const KEY_COUNT: u8 = 40;
/// Snapshots held at once; taking one more releases the oldest.
const MAX_LIVE_SNAPSHOTS: usize = 3;
/// Cases per run when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 1000;
/// Recovery modes, used in turn by successive power losses of one run.
const TEAR_MODES: [TearMode; 3] = [TearMode::DropAll, TearMode::Random, TearMode::KeepAll];

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// The model's state: per key, what a read folds (see [`Versions`]).
type State = BTreeMap<Vec<u8>, Versions>;
/// Separator of the `Append` merge operator every option set uses.
const MERGE_SEPARATOR: &[u8] = b"+";
/// The injected clock's time when a harness starts, in ms.
const CLOCK_START_MS: u64 = 1_000_000;
type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type MakeOptions = fn(Arc<SimFs>) -> Options;

// ---------------------------------------------------------------------------
// Option sets

/// The option sets every sequence runs under, by name.
fn option_sets() -> Vec<(&'static str, MakeOptions)> {
    vec![
        ("defaults", default_options as MakeOptions),
        ("tiny", tiny_options),
        ("tiny-lz4-nofilter-nocache-static", tiny_lz4_options),
    ]
}

/// Defaults, except 4 KiB WAL segments (rotated often, and cheap to
/// preallocate on the simulated disk).
fn default_options(sim: Arc<SimFs>) -> Options {
    Options::default().fs(sim).wal_segment_size_bytes(4096)
}

/// Everything tiny: a few hundred bytes flush a memtable, tables hold a few
/// blocks, level 1 a few tables, so sequences flush and compact across levels.
fn tiny_options(sim: Arc<SimFs>) -> Options {
    let mut options = default_options(sim)
        .write_buffer_size_bytes(1024)
        .target_file_size_bytes(2048)
        .max_bytes_for_level_base(8192)
        .l0_compaction_trigger(2);
    options.block_size_bytes = 256;
    options
}

/// `tiny_options` with LZ4 blocks, no bloom filters, no block cache, and
/// static level targets (level 1 sized by `max_bytes_for_level_base`, not
/// the data).
fn tiny_lz4_options(sim: Arc<SimFs>) -> Options {
    tiny_options(sim)
        .compression(Compression::Lz4)
        .bloom_bits_per_key(0)
        .block_cache_size_bytes(0)
        .dynamic_level_bytes(false)
}

// ---------------------------------------------------------------------------
// Operations

/// A value as generated: short bytes, or a large value described by its
/// length and a seed (so that a shrunk sequence prints readably).
#[derive(Clone, PartialEq, Eq)]
enum Value {
    Small(Vec<u8>),
    Large { len: usize, seed: u8 },
}

impl Value {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Small(bytes) => bytes.clone(),
            // Odd seeds: pseudo-random (incompressible); even: a short cycle
            // (LZ4 keeps it compressed).
            Value::Large { len, seed } if seed % 2 == 1 => {
                let mut state = u64::from(*seed) | 1;
                (0..*len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (state >> 56) as u8
                    })
                    .collect()
            }
            Value::Large { len, seed } => (0..*len).map(|i| seed.wrapping_add((i % 7) as u8)).collect(),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Small(bytes) => write!(f, "{:?}", Shown(bytes)),
            Value::Large { len, seed } => write!(f, "Large({len} bytes, seed {seed})"),
        }
    }
}

/// Bytes printed as an escaped string, abbreviated past 32 bytes.
struct Shown<'a>(&'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes.len() <= 32 {
            write!(f, "b\"{}\"", bytes.escape_ascii())
        } else {
            let sum = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            write!(
                f,
                "<{} bytes b\"{}\".. fnv {sum:016x}>",
                bytes.len(),
                bytes[..8].escape_ascii()
            )
        }
    }
}

/// Entries printed with [`Shown`] keys and values.
struct ShownEntries<'a>(&'a [(Vec<u8>, Vec<u8>)]);

impl fmt::Debug for ShownEntries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, v)| (Shown(k), Shown(v))))
            .finish()
    }
}

/// What the store holds for one key, as a read folds it: the newest put
/// (with its expiry, if it had a TTL) and the merge operands written since,
/// oldest first. A delete removes the key.
#[derive(Clone, Debug, Default)]
struct Versions {
    base: Option<Vec<u8>>,
    expiry_ms: Option<u64>,
    operands: Vec<Vec<u8>>,
}

impl Versions {
    /// The value a read at `now_ms` returns: the base unless expired, with
    /// the operands appended (`Append` with [`MERGE_SEPARATOR`]).
    fn value(&self, now_ms: u64) -> Option<Vec<u8>> {
        let live = self.expiry_ms.is_none_or(|expiry| now_ms < expiry);
        let base = self.base.clone().filter(|_| live);
        let mut parts = base.into_iter().chain(self.operands.iter().cloned());
        let mut value = parts.next()?;
        for part in parts {
            value.extend_from_slice(MERGE_SEPARATOR);
            value.extend_from_slice(&part);
        }
        Some(value)
    }
}

/// The plain key-value map a read at `now_ms` sees.
fn visible(state: &State, now_ms: u64) -> Model {
    state
        .iter()
        .filter_map(|(k, versions)| Some((k.clone(), versions.value(now_ms)?)))
        .collect()
}

/// One write of a batch.
#[derive(Clone, Debug)]
enum BatchEntry {
    Put(Value),
    Delete,
    Merge(Vec<u8>),
    /// A range delete from the entry's key to this end (excluded).
    DeleteRange(String),
}

#[derive(Clone, Debug)]
enum Op {
    Put(String, Value),
    Delete(String),
    /// `delete_range(start..end)`; an empty or inverted range deletes
    /// nothing.
    DeleteRange(String, String),
    Batch(Vec<(String, BatchEntry)>),
    /// A merge operand (short, no separator inside).
    Merge(String, Vec<u8>),
    /// A put with a per-write TTL, in ms.
    PutTtl(String, Value, u64),
    /// Moves the injected clock forward, in ms.
    AdvanceClock(u64),
    Get(String),
    Scan {
        start: Bound<String>,
        end: Bound<String>,
        reverse: bool,
    },
    ScanPrefix(String),
    /// Takes a snapshot (releasing the oldest if `MAX_LIVE_SNAPSHOTS` live).
    TakeSnapshot,
    /// Reads through live snapshot `index % live`; nothing if none is live.
    ReadSnapshot(usize, String),
    ScanSnapshot {
        index: usize,
        start: Bound<String>,
        end: Bound<String>,
        reverse: bool,
    },
    ReleaseSnapshot(usize),
    Flush,
    /// `None` compacts everything.
    CompactRange(Option<(Bound<String>, Bound<String>)>),
    Sync,
    /// Close, drop and open again on the same disk.
    Reopen,
    /// Power loss, then open on the recovered disk.
    Crash,
    /// `Db::checkpoint` into a fresh directory; the copy, opened as a
    /// store, must hold the model's state.
    Checkpoint,
}

fn key_name(index: u8) -> String {
    format!("k{index:03}")
}

fn key() -> impl Strategy<Value = String> {
    (0..KEY_COUNT).prop_map(key_name)
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Small(Vec::new())),
        16 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Value::Small),
        1 => (1024usize..3072, any::<u8>()).prop_map(|(len, seed)| Value::Large { len, seed }),
    ]
}

/// A key for a bound: a key of the key space (or just past it), one between
/// two keys, the empty key or a prefix of many keys.
fn bound_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0..KEY_COUNT + 2).prop_map(key_name),
        2 => (0..KEY_COUNT).prop_map(|i| format!("{}~", key_name(i))),
        1 => Just(String::new()),
        1 => prop::sample::select(vec!["k0", "k01", "k02", "k1", "k3", "l"]).prop_map(String::from),
    ]
}

fn bound() -> impl Strategy<Value = Bound<String>> {
    prop_oneof![
        3 => bound_key().prop_map(Bound::Included),
        3 => bound_key().prop_map(Bound::Excluded),
        1 => Just(Bound::Unbounded),
    ]
}

fn operand() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(b'a'..=b'z', 0..6)
}

fn batch_entry() -> impl Strategy<Value = BatchEntry> {
    prop_oneof![
        6 => value().prop_map(BatchEntry::Put),
        2 => Just(BatchEntry::Delete),
        2 => operand().prop_map(BatchEntry::Merge),
        1 => bound_key().prop_map(BatchEntry::DeleteRange),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let batch_entry = (key(), batch_entry());
    prop_oneof![
        24 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        8 => key().prop_map(Op::Delete),
        3 => (bound_key(), bound_key()).prop_map(|(start, end)| Op::DeleteRange(start, end)),
        8 => (key(), operand()).prop_map(|(k, v)| Op::Merge(k, v)),
        4 => (key(), value(), 1u64..50).prop_map(|(k, v, ttl)| Op::PutTtl(k, v, ttl)),
        3 => (1u64..40).prop_map(Op::AdvanceClock),
        6 => prop::collection::vec(batch_entry, 0..8).prop_map(Op::Batch),
        12 => key().prop_map(Op::Get),
        8 => (bound(), bound(), any::<bool>())
            .prop_map(|(start, end, reverse)| Op::Scan { start, end, reverse }),
        3 => prop::sample::select(vec!["", "k", "k0", "k01", "k03", "k04", "k1", "x"])
            .prop_map(|p| Op::ScanPrefix(p.to_string())),
        3 => Just(Op::TakeSnapshot),
        4 => (0..MAX_LIVE_SNAPSHOTS, key()).prop_map(|(i, k)| Op::ReadSnapshot(i, k)),
        3 => (0..MAX_LIVE_SNAPSHOTS, bound(), bound(), any::<bool>())
            .prop_map(|(index, start, end, reverse)| Op::ScanSnapshot { index, start, end, reverse }),
        2 => (0..MAX_LIVE_SNAPSHOTS).prop_map(Op::ReleaseSnapshot),
        3 => Just(Op::Flush),
        2 => prop::option::weighted(0.5, (bound(), bound())).prop_map(Op::CompactRange),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::Checkpoint),
    ]
}

/// Ops per generated sequence.
const SEQUENCE_LEN: std::ops::Range<usize> = 20..120;

fn case() -> impl Strategy<Value = (u64, Vec<Op>)> {
    (any::<u64>(), prop::collection::vec(op(), SEQUENCE_LEN))
}

// ---------------------------------------------------------------------------
// The model's answers

fn above_start(key: &[u8], start: &Bound<String>) -> bool {
    match start {
        Bound::Included(s) => key >= s.as_bytes(),
        Bound::Excluded(s) => key > s.as_bytes(),
        Bound::Unbounded => true,
    }
}

fn below_end(key: &[u8], end: &Bound<String>) -> bool {
    match end {
        Bound::Included(e) => key <= e.as_bytes(),
        Bound::Excluded(e) => key < e.as_bytes(),
        Bound::Unbounded => true,
    }
}

/// The model's entries in the range, filtered rather than `BTreeMap::range`
/// (which panics on inverted ranges): an inverted or empty range is empty.
fn model_scan(model: &Model, start: &Bound<String>, end: &Bound<String>, reverse: bool) -> Entries {
    let mut entries: Entries = model
        .iter()
        .filter(|(k, _)| above_start(k, start) && below_end(k, end))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if reverse {
        entries.reverse();
    }
    entries
}

fn model_prefix(model: &Model, prefix: &str) -> Entries {
    model
        .iter()
        .filter(|(k, _)| k.starts_with(prefix.as_bytes()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn byte_bound(bound: &Bound<String>) -> Bound<&[u8]> {
    bound.as_ref().map(|k| k.as_bytes())
}

fn owned(bound: &Bound<String>) -> Bound<Vec<u8>> {
    bound.as_ref().map(|k| k.as_bytes().to_vec())
}

async fn collect(scan: Scan) -> ringdb::Result<Entries> {
    scan.map_ok(|(k, v)| (k.to_vec(), v.to_vec())).try_collect().await
}

fn compare(expected: &Entries, actual: &Entries) -> Result<(), String> {
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, actual {:?}",
            ShownEntries(expected),
            ShownEntries(actual)
        ))
    }
}

// ---------------------------------------------------------------------------
// Driving one sequence under one option set

/// What the sequences of one option set exercised, summed over a run.
#[derive(Debug, Default, Clone, Copy)]
struct Coverage {
    flushes: u64,
    compactions: u64,
    trivial_moves: u64,
    reopens: u64,
    crashes: u64,
    merges: u64,
    ttl_puts: u64,
    checkpoints: u64,
    /// Range deletes that covered at least one live key.
    range_deletes: u64,
    /// Reads that found a key's value hidden by its expiry.
    expired_reads: u64,
}

impl Coverage {
    /// Adds the counters of a store about to be dropped (they restart at
    /// every open).
    fn add_stats(&mut self, stats: &ringdb::Stats) {
        self.flushes += stats.flushes;
        self.compactions += stats.compactions;
        self.trivial_moves += stats.trivial_moves;
    }

    fn add(&mut self, other: &Coverage) {
        self.flushes += other.flushes;
        self.compactions += other.compactions;
        self.trivial_moves += other.trivial_moves;
        self.reopens += other.reopens;
        self.crashes += other.crashes;
        self.merges += other.merges;
        self.checkpoints += other.checkpoints;
        self.range_deletes += other.range_deletes;
        self.ttl_puts += other.ttl_puts;
        self.expired_reads += other.expired_reads;
    }
}

/// One store under test with its model.
struct Harness {
    make_options: MakeOptions,
    sim: Arc<SimFs>,
    /// `None` only while reopening.
    db: Option<Db>,
    model: State,
    /// Live snapshots, oldest first, each with the model as of its creation.
    snapshots: Vec<(Snapshot, State)>,
    coverage: Coverage,
    /// The store's clock, kept across reopens.
    clock: Arc<ManualClock>,
}

/// `make_options` with what every option set shares: the `Append` merge
/// operator and the injected clock.
fn with_shared(make_options: MakeOptions, sim: &Arc<SimFs>, clock: &Arc<ManualClock>) -> Options {
    make_options(Arc::clone(sim))
        .merge_operator(Arc::new(Append {
            separator: MERGE_SEPARATOR.to_vec(),
        }))
        .clock(clock.clone())
}

fn failed(what: &str, error: ringdb::Error) -> String {
    format!("{what} failed: {error}")
}

impl Harness {
    async fn open(make_options: MakeOptions, seed: u64) -> Result<Harness, String> {
        let sim = SimFs::new(seed);
        let clock = Arc::new(ManualClock::new(CLOCK_START_MS));
        let db = Db::open(DIR, with_shared(make_options, &sim, &clock))
            .await
            .map_err(|e| failed("open", e))?;
        Ok(Harness {
            make_options,
            sim,
            db: Some(db),
            model: State::new(),
            snapshots: Vec::new(),
            coverage: Coverage::default(),
            clock,
        })
    }

    /// What a read of the latest state sees now.
    fn visible(&self) -> Model {
        visible(&self.model, self.clock.now_ms())
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("the store is open")
    }

    fn snapshot(&self, index: usize) -> Option<&(Snapshot, State)> {
        match self.snapshots.len() {
            0 => None,
            live => self.snapshots.get(index % live),
        }
    }

    async fn write(&mut self, batch: WriteBatch) -> Result<(), String> {
        self.db().write(batch).await.map_err(|e| failed("write", e))
    }

    /// Full scans in both directions against the model.
    async fn check_all(&self) -> Result<(), String> {
        let forward = collect(self.db().scan::<&[u8], _>(..))
            .await
            .map_err(|e| failed("full scan", e))?;
        let model = self.visible();
        compare(
            &model_scan(&model, &Bound::Unbounded, &Bound::Unbounded, false),
            &forward,
        )
        .map_err(|e| format!("full forward scan: {e}"))?;
        let reverse = collect(self.db().scan::<&[u8], _>(..).rev())
            .await
            .map_err(|e| failed("full reverse scan", e))?;
        compare(
            &model_scan(&model, &Bound::Unbounded, &Bound::Unbounded, true),
            &reverse,
        )
        .map_err(|e| format!("full reverse scan: {e}"))
    }

    async fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Put(..) | Op::PutTtl(..) | Op::Merge(..) | Op::Delete(_) | Op::DeleteRange(..) => {
                self.write_one(op).await
            }
            Op::Batch(entries) => self.write_batch(entries).await,
            Op::Get(_) | Op::Scan { .. } | Op::ScanPrefix(_) => self.read(op).await,
            Op::TakeSnapshot | Op::ReadSnapshot(..) | Op::ScanSnapshot { .. } | Op::ReleaseSnapshot(_) => {
                self.snapshot_op(op).await
            }
            Op::AdvanceClock(ms) => {
                self.clock.advance(Duration::from_millis(*ms));
                Ok(())
            }
            Op::Checkpoint => self.checkpoint().await,
            Op::Flush | Op::CompactRange(_) | Op::Sync | Op::Reopen | Op::Crash => self.maintain(op).await,
        }
    }

    /// A put, a put with a TTL, a merge or a delete, on the store and the
    /// model.
    async fn write_one(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Put(k, v) => {
                let bytes = v.bytes();
                self.db().put(k, &bytes).await.map_err(|e| failed("put", e))?;
                self.model.insert(k.as_bytes().to_vec(), put(bytes, None));
            }
            Op::PutTtl(k, v, ttl_ms) => {
                let bytes = v.bytes();
                let options = WriteOptions::with_ttl(Duration::from_millis(*ttl_ms));
                let mut batch = WriteBatch::new();
                batch.put(k, &bytes);
                self.db()
                    .write_opt(batch, options)
                    .await
                    .map_err(|e| failed("put with ttl", e))?;
                let expiry = self.clock.now_ms() + ttl_ms;
                self.model.insert(k.as_bytes().to_vec(), put(bytes, Some(expiry)));
                self.coverage.ttl_puts += 1;
            }
            Op::Merge(k, operand) => {
                self.db()
                    .merge(k, operand)
                    .await
                    .map_err(|e| failed("merge", e))?;
                merge(&mut self.model, k, operand);
                self.coverage.merges += 1;
            }
            Op::Delete(k) => {
                self.db().delete(k).await.map_err(|e| failed("delete", e))?;
                self.model.remove(k.as_bytes());
            }
            Op::DeleteRange(start, end) => {
                self.db()
                    .delete_range(start.as_bytes()..end.as_bytes())
                    .await
                    .map_err(|e| failed("delete_range", e))?;
                self.coverage.range_deletes += u64::from(delete_range(&mut self.model, start, end));
            }
            _ => unreachable!("not a single write: {op:?}"),
        }
        Ok(())
    }

    /// A batch, on the store and the model.
    async fn write_batch(&mut self, entries: &[(String, BatchEntry)]) -> Result<(), String> {
        let mut batch = WriteBatch::new();
        for (k, entry) in entries {
            match entry {
                BatchEntry::Put(v) => batch.put(k, v.bytes()),
                BatchEntry::Delete => batch.delete(k),
                BatchEntry::Merge(operand) => batch.merge(k, operand),
                BatchEntry::DeleteRange(end) => batch.delete_range(k, end),
            };
        }
        self.write(batch).await?;
        for (k, entry) in entries {
            match entry {
                BatchEntry::Put(v) => {
                    self.model.insert(k.as_bytes().to_vec(), put(v.bytes(), None));
                }
                BatchEntry::Delete => {
                    self.model.remove(k.as_bytes());
                }
                BatchEntry::Merge(operand) => {
                    merge(&mut self.model, k, operand);
                    self.coverage.merges += 1;
                }
                BatchEntry::DeleteRange(end) => {
                    self.coverage.range_deletes += u64::from(delete_range(&mut self.model, k, end));
                }
            }
        }
        Ok(())
    }

    /// A get or a scan of the latest state, checked against the model.
    async fn read(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Get(k) => {
                let actual = self.db().get(k).await.map_err(|e| failed("get", e))?;
                let versions = self.model.get(k.as_bytes());
                let expected = versions.and_then(|v| v.value(self.clock.now_ms()));
                if versions.is_some_and(|v| v.base.is_some() && v.value(0) != expected) {
                    self.coverage.expired_reads += 1;
                }
                check_get(expected.as_ref(), actual.as_deref())?;
            }
            Op::Scan { start, end, reverse } => {
                let mut scan = self.db().scan((owned(start), owned(end)));
                if *reverse {
                    scan = scan.rev();
                }
                let actual = collect(scan).await.map_err(|e| failed("scan", e))?;
                compare(&model_scan(&self.visible(), start, end, *reverse), &actual)?;
            }
            Op::ScanPrefix(prefix) => {
                let actual = collect(self.db().scan_prefix(prefix))
                    .await
                    .map_err(|e| failed("scan_prefix", e))?;
                compare(&model_prefix(&self.visible(), prefix), &actual)?;
            }
            _ => unreachable!("not a read: {op:?}"),
        }
        Ok(())
    }

    /// Takes, reads through or releases a snapshot.
    async fn snapshot_op(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::TakeSnapshot => {
                if self.snapshots.len() == MAX_LIVE_SNAPSHOTS {
                    self.snapshots.remove(0);
                }
                self.snapshots.push((self.db().snapshot(), self.model.clone()));
            }
            Op::ReadSnapshot(index, k) => {
                if let Some((snapshot, model)) = self.snapshot(*index) {
                    let actual = snapshot.get(k).await.map_err(|e| failed("snapshot get", e))?;
                    let expected = model.get(k.as_bytes()).and_then(|v| v.value(self.clock.now_ms()));
                    check_get(expected.as_ref(), actual.as_deref())?;
                }
            }
            Op::ScanSnapshot {
                index,
                start,
                end,
                reverse,
            } => {
                if let Some((snapshot, model)) = self.snapshot(*index) {
                    let mut scan = snapshot.scan((owned(start), owned(end)));
                    if *reverse {
                        scan = scan.rev();
                    }
                    let actual = collect(scan).await.map_err(|e| failed("snapshot scan", e))?;
                    let model = visible(model, self.clock.now_ms());
                    compare(&model_scan(&model, start, end, *reverse), &actual)?;
                }
            }
            Op::ReleaseSnapshot(index) => {
                if !self.snapshots.is_empty() {
                    let live = self.snapshots.len();
                    self.snapshots.remove(index % live);
                }
            }
            _ => unreachable!("not a snapshot op: {op:?}"),
        }
        Ok(())
    }

    /// A flush, a compaction, a sync, a reopen or a crash, each followed by
    /// the checks it calls for.
    async fn maintain(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Flush => {
                self.db().flush().await.map_err(|e| failed("flush", e))?;
                self.check_all().await?;
            }
            Op::CompactRange(range) => {
                let result = match range {
                    None => self.db().compact_range(..).await,
                    Some((start, end)) => {
                        self.db()
                            .compact_range((byte_bound(start), byte_bound(end)))
                            .await
                    }
                };
                result.map_err(|e| failed("compact_range", e))?;
                self.check_all().await?;
            }
            Op::Sync => self.db().sync().await.map_err(|e| failed("sync", e))?,
            Op::Reopen => {
                self.snapshots.clear();
                self.db().close().await.map_err(|e| failed("close", e))?;
                self.coverage.reopens += 1;
                self.reopen().await?;
            }
            Op::Crash => {
                self.snapshots.clear();
                self.sim.crash_now();
                let mode = TEAR_MODES[self.coverage.crashes as usize % TEAR_MODES.len()];
                self.coverage.crashes += 1;
                self.sim = self.sim.recover_with(mode);
                self.reopen()
                    .await
                    .map_err(|e| format!("after power loss ({mode:?}): {e}"))?;
            }
            _ => unreachable!("not a maintenance op: {op:?}"),
        }
        Ok(())
    }

    /// Checkpoints into a new directory, opens the copy beside the store and
    /// checks it holds the model's state (and takes writes of its own).
    async fn checkpoint(&mut self) -> Result<(), String> {
        let target = format!("/checkpoint-{}", self.coverage.checkpoints);
        self.coverage.checkpoints += 1;
        self.db()
            .checkpoint(&target)
            .await
            .map_err(|e| failed("checkpoint", e))?;
        let options = with_shared(self.make_options, &self.sim, &self.clock);
        let copy = Db::open(&target, options)
            .await
            .map_err(|e| failed("open checkpoint", e))?;
        let actual = collect(copy.scan::<&[u8], _>(..))
            .await
            .map_err(|e| failed("checkpoint scan", e))?;
        let expected = model_scan(&self.visible(), &Bound::Unbounded, &Bound::Unbounded, false);
        compare(&expected, &actual).map_err(|e| format!("checkpoint contents: {e}"))?;
        copy.put(b"k000", b"copy")
            .await
            .map_err(|e| failed("checkpoint put", e))?;
        copy.close().await.map_err(|e| failed("checkpoint close", e))
    }

    /// Drops the old handle, opens the store again on `self.sim` and checks
    /// it against the model.
    async fn reopen(&mut self) -> Result<(), String> {
        if let Some(db) = self.db.take() {
            self.coverage.add_stats(&db.stats());
        }
        let options = with_shared(self.make_options, &self.sim, &self.clock);
        self.db = Some(Db::open(DIR, options).await.map_err(|e| failed("reopen", e))?);
        self.check_all().await
    }

    /// Releases the snapshots, checks the final state and closes the store.
    async fn finish(mut self) -> Result<Coverage, String> {
        self.check_all().await?;
        self.snapshots.clear();
        let live = self.db().stats().snapshots;
        if live != 0 {
            return Err(format!(
                "stats().snapshots is {live} after every snapshot was dropped"
            ));
        }
        self.coverage.add_stats(&self.db().stats());
        self.db().close().await.map_err(|e| failed("close", e))?;
        Ok(self.coverage)
    }
}

/// The model's versions after a put (with its expiry, if any).
fn put(value: Vec<u8>, expiry_ms: Option<u64>) -> Versions {
    Versions {
        base: Some(value),
        expiry_ms,
        operands: Vec::new(),
    }
}

/// The model after a merge of `operand` at `key`.
fn merge(state: &mut State, key: &str, operand: &[u8]) {
    state
        .entry(key.as_bytes().to_vec())
        .or_default()
        .operands
        .push(operand.to_vec());
}

/// The model after a range delete of `start..end`: every key in the range
/// goes, versions and operands alike. True when one was there.
fn delete_range(state: &mut State, start: &str, end: &str) -> bool {
    let before = state.len();
    state.retain(|k, _| !(start.as_bytes() <= k.as_slice() && k.as_slice() < end.as_bytes()));
    state.len() < before
}

fn check_get(expected: Option<&Vec<u8>>, actual: Option<&[u8]>) -> Result<(), String> {
    if expected.map(Vec::as_slice) == actual {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, actual {:?}",
            expected.map(|v| Shown(v)),
            actual.map(Shown)
        ))
    }
}

/// Runs `ops` under one option set; an error names the op that failed.
async fn run_sequence(
    name: &str,
    make_options: MakeOptions,
    seed: u64,
    ops: &[Op],
) -> Result<Coverage, String> {
    let mut harness = Harness::open(make_options, seed)
        .await
        .map_err(|e| format!("option set {name}: {e}"))?;
    for (index, op) in ops.iter().enumerate() {
        harness
            .step(op)
            .await
            .map_err(|e| format!("option set {name}, op #{index} {op:?}: {e}"))?;
    }
    harness
        .finish()
        .await
        .map_err(|e| format!("option set {name}, after the last op (#{}): {e}", ops.len()))
}

/// Proptest's defaults (which read `PROPTEST_*` variables), with
/// `DEFAULT_CASES` unless `PROPTEST_CASES` is set, and no failure file.
fn config() -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn random_operations_match_a_btreemap_under_every_option_set() {
    let runtime = runtime();
    let config = config();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let coverage = std::sync::Mutex::new(BTreeMap::<&str, Coverage>::new());
    let result = runner.run(&case(), |(seed, ops)| {
        runtime.block_on(async {
            for (name, make_options) in option_sets() {
                let exercised = run_sequence(name, make_options, seed, &ops)
                    .await
                    .map_err(TestCaseError::fail)?;
                coverage.lock().unwrap().entry(name).or_default().add(&exercised);
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    // The run means little unless it went through what it is meant to.
    let coverage = coverage.into_inner().unwrap();
    eprintln!("{cases} cases: {coverage:#?}");
    if cases >= 100 {
        for (name, exercised) in &coverage {
            assert!(
                exercised.reopens > 0 && exercised.crashes > 0 && exercised.flushes > 0,
                "{name}: {exercised:?}"
            );
            assert!(
                exercised.merges > 0
                    && exercised.ttl_puts > 0
                    && exercised.expired_reads > 0
                    && exercised.checkpoints > 0
                    && exercised.range_deletes > 0,
                "{name}: {exercised:?}"
            );
            if name.starts_with("tiny") {
                assert!(
                    exercised.flushes > u64::from(cases) && exercised.compactions > u64::from(cases),
                    "{name}: {exercised:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Plain tests

fn table_files(sim: &SimFs) -> Vec<std::path::PathBuf> {
    let mut tables: Vec<_> = sim
        .list_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".sst"))
        .collect();
    tables.sort();
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_survives_flush_and_compaction_that_would_drop_its_versions() {
    let sim = SimFs::new(1);
    let db = Db::open(DIR, tiny_options(Arc::clone(&sim))).await.unwrap();
    db.put("k", "v1").await.unwrap();
    db.put("k3", "three").await.unwrap();
    db.flush().await.unwrap();
    let snapshot = db.snapshot();
    db.put("k", "v2").await.unwrap();
    db.delete("k3").await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert!(db.stats().compactions >= 1, "{:?}", db.stats());

    assert_eq!(snapshot.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(snapshot.get("k3").await.unwrap().as_deref(), Some(&b"three"[..]));
    let seen = collect(snapshot.scan::<&[u8], _>(..)).await.unwrap();
    assert_eq!(
        seen,
        vec![
            (b"k".to_vec(), b"v1".to_vec()),
            (b"k3".to_vec(), b"three".to_vec())
        ]
    );
    assert_eq!(db.stats().snapshots, 1);

    let latest: Entries = vec![(b"k".to_vec(), b"v2".to_vec())];
    assert_eq!(collect(db.scan::<&[u8], _>(..)).await.unwrap(), latest);
    drop(snapshot);
    assert_eq!(db.stats().snapshots, 0);
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert_eq!(db.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(db.get("k3").await.unwrap(), None);
    assert_eq!(collect(db.scan::<&[u8], _>(..)).await.unwrap(), latest);
    assert_eq!(collect(db.scan::<&[u8], _>(..).rev()).await.unwrap(), latest);
    db.close().await.unwrap();

    // And after reopening, the old versions are gone for good.
    let db = Db::open(DIR, tiny_options(sim)).await.unwrap();
    assert_eq!(collect(db.scan::<&[u8], _>(..)).await.unwrap(), latest);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_keeps_its_view_while_compaction_replaces_its_tables() {
    let sim = SimFs::new(2);
    let db = Db::open(DIR, tiny_options(Arc::clone(&sim))).await.unwrap();
    let mut expected = Model::new();
    for i in 0..200u32 {
        let (k, v) = (format!("key{i:04}"), format!("value-{i}-{}", "x".repeat(40)));
        db.put(&k, &v).await.unwrap();
        expected.insert(k.into_bytes(), v.into_bytes());
    }
    db.flush().await.unwrap();
    let tables_at_start = table_files(&sim);
    assert!(
        tables_at_start.len() >= 4,
        "want several tables: {tables_at_start:?}"
    );

    let expected: Entries = expected.into_iter().collect();
    let mut scan = db.scan::<&[u8], _>(..);
    let mut seen = Entries::new();
    for _ in 0..5 {
        let (k, v) = scan.next().await.unwrap().unwrap();
        seen.push((k.to_vec(), v.to_vec()));
    }

    // Overwrite every key, delete some, add more: every table overlaps the
    // new ones, so the compaction rewrites all of them.
    for i in 0..220u32 {
        let k = format!("key{i:04}");
        if i % 3 == 0 {
            db.delete(&k).await.unwrap();
        } else {
            db.put(&k, format!("new-{i}")).await.unwrap();
        }
    }
    let compactions_before = db.stats().compactions;
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert!(db.stats().compactions > compactions_before, "{:?}", db.stats());
    assert_eq!(db.get("key0000").await.unwrap(), None);
    assert_eq!(db.get("key0001").await.unwrap().as_deref(), Some(&b"new-1"[..]));

    while let Some(item) = scan.next().await {
        let (k, v) = item.unwrap();
        seen.push((k.to_vec(), v.to_vec()));
    }
    drop(scan);
    compare(&expected, &seen).unwrap();

    // Once the scan is gone the replaced tables go too.
    db.put("key9999", "last").await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    let remaining = table_files(&sim);
    let kept: Vec<_> = tables_at_start.iter().filter(|t| remaining.contains(t)).collect();
    assert!(kept.is_empty(), "tables the compaction replaced remain: {kept:?}");
    db.close().await.unwrap();
}
