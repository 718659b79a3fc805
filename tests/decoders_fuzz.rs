//! The fuzz targets of `fuzz/` on stable, in every `cargo test`: each
//! target replays its checked-in corpus (`fuzz/corpus/<target>/`), then
//! runs a bounded number of fresh inputs: random bytes, and corpus files
//! with bits flipped, bytes changed, cut short or spliced. The entry points
//! are the ones the fuzzers call (`ringdb::fuzzing`), which panic when a
//! decoder panics, loops, or a store disagrees with its model.
//!
//! The fresh inputs come from a seed printed by each test;
//! `RINGDB_FUZZ_SEED=N` replays one, `RINGDB_FUZZ_CASES=N` runs more.
//! `RINGDB_WRITE_CORPUS=1` regenerates the seed corpus from real files of
//! a store on the simulated disk (`write_seed_corpus`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringdb::io::sim::SimFs;
use ringdb::{Db, Options};

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("corpus of {target}: {e}"))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn seed() -> u64 {
    std::env::var("RINGDB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

fn cases(default: usize) -> usize {
    std::env::var("RINGDB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A fresh input: random bytes, or a corpus file mutated.
fn mutate(rng: &mut Rng, corpus: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    if corpus.is_empty() || rng.below(8) == 0 {
        let len = rng.below(512);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut data = corpus[rng.below(corpus.len())].1.clone();
    let mutations = 1 + rng.below(4);
    for _ in 0..mutations {
        match rng.below(5) {
            0 | 1 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] ^= 1 << rng.below(8);
            }
            2 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] = rng.next() as u8;
            }
            3 => data.truncate(rng.below(data.len() + 1)),
            _ => {
                let other = &corpus[rng.below(corpus.len())].1;
                let from = rng.below(other.len() + 1);
                let at = rng.below(data.len() + 1);
                let piece: Vec<u8> = other[from..].iter().take(64).copied().collect();
                data.splice(at..at, piece);
            }
        }
    }
    data
}

/// Replays the corpus of `target`, then `fresh` new inputs; prints both counts.
fn run_target(target: &str, fresh: usize, entry: fn(&[u8])) {
    let corpus = corpus(target);
    assert!(!corpus.is_empty(), "{target}: the corpus is empty");
    for (path, bytes) in &corpus {
        let outcome = std::panic::catch_unwind(|| entry(bytes));
        assert!(outcome.is_ok(), "{target}: corpus file {} fails", path.display());
    }
    let seed = seed();
    let mut rng = Rng(seed);
    let fresh = cases(fresh);
    for case in 0..fresh {
        let input = mutate(&mut rng, &corpus);
        let outcome = std::panic::catch_unwind(|| entry(&input));
        assert!(
            outcome.is_ok(),
            "{target}: fresh input {case} of seed {seed} fails (RINGDB_FUZZ_SEED={seed}); input: {input:?}"
        );
    }
    println!(
        "{target}: {} corpus files and {fresh} fresh inputs (seed {seed}) passed",
        corpus.len()
    );
}

#[test]
fn block_target() {
    run_target("block", 5000, ringdb::fuzzing::block);
}

#[test]
fn table_target() {
    run_target("table", 5000, ringdb::fuzzing::table);
}

#[test]
fn wal_segment_target() {
    run_target("wal_segment", 20_000, ringdb::fuzzing::wal_segment);
}

#[test]
fn manifest_target() {
    run_target("manifest", 10_000, ringdb::fuzzing::manifest);
}

#[test]
fn batch_target() {
    run_target("batch", 20_000, ringdb::fuzzing::batch);
}

#[test]
fn ops_target() {
    fn ops(data: &[u8]) {
        ringdb::fuzzing::ops(data);
    }
    run_target("ops", 150, ops);
    // The long seed runs every kind of step, flushes and crashes included.
    let many = std::fs::read(corpus_dir("ops").join("seed-many")).unwrap();
    let started = std::time::Instant::now();
    let steps = ringdb::fuzzing::ops(&many);
    assert!(steps >= 100, "{steps} steps");
    println!("ops: seed-many ran {steps} steps in {:?}", started.elapsed());
}

/// The corpus must be small: a few dozen small files in all.
#[test]
fn corpus_is_small() {
    let targets = ["block", "table", "wal_segment", "manifest", "batch", "ops"];
    let files: Vec<(PathBuf, Vec<u8>)> = targets.iter().flat_map(|t| corpus(t)).collect();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(files.len() <= 60, "{} corpus files", files.len());
    assert!(bytes <= 256 * 1024, "{bytes} corpus bytes");
}

/// Regenerates the seed corpus from the files of a real store on the
/// simulated disk. Runs only with `RINGDB_WRITE_CORPUS=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_seed_corpus() {
    if std::env::var("RINGDB_WRITE_CORPUS").as_deref() != Ok("1") {
        println!("skipped: set RINGDB_WRITE_CORPUS=1 to regenerate fuzz/corpus");
        return;
    }
    let files = store_files().await;
    for (i, (_, bytes)) in named(&files, ".sst").take(2).enumerate() {
        write_seed("table", &format!("seed-{i}"), bytes);
    }
    write_block_seeds();
    write_wal_and_batch_seeds(&files);
    write_manifest_seeds(&files);
    write_ops_seeds();
}

/// The files of a store on the simulated disk with flushed tables, a
/// manifest and WAL segments, left open: its newest WAL segment holds the
/// last records.
async fn store_files() -> Vec<(PathBuf, Vec<u8>)> {
    let sim = SimFs::new(1);
    let options = Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(4096)
        .write_buffer_size_bytes(2048)
        .target_file_size_bytes(4096);
    let db = Db::open("/db", options.clone()).await.unwrap();
    // Held to the end, so compaction keeps the range tombstones written
    // after it, and tables hold range-tombstone blocks.
    let mut snapshot = None;
    for i in 0..60u32 {
        if i == 5 {
            snapshot = Some(db.snapshot());
        }
        let mut batch = ringdb::WriteBatch::new();
        batch.put(
            format!("key{i:03}"),
            format!("value{i}").repeat(1 + (i % 5) as usize),
        );
        if i % 7 == 0 {
            batch.delete(format!("key{:03}", i / 2));
        }
        if i % 11 == 0 {
            batch.delete_range(format!("key{:03}", i / 3), format!("key{:03}", i / 3 + 4));
        }
        db.write(batch).await.unwrap();
    }
    db.flush().await.unwrap();
    for i in 60..70u32 {
        db.put(format!("key{i:03}"), b"tail").await.unwrap();
    }
    db.delete_range("key061".."key063").await.unwrap();
    // A store left open: its newest WAL segment holds the last records.
    let files: Vec<(PathBuf, Vec<u8>)> = sim
        .list_files()
        .into_iter()
        .map(|p| {
            let bytes = sim.read_file(&p).unwrap();
            (p, bytes)
        })
        .collect();
    drop(snapshot);
    drop(db);
    files
}

/// Writes one seed of the corpus of fuzz target `target`.
fn write_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// The files whose names end with `suffix`.
fn named<'a>(
    files: &'a [(PathBuf, Vec<u8>)],
    suffix: &'a str,
) -> impl Iterator<Item = &'a (PathBuf, Vec<u8>)> {
    files
        .iter()
        .filter(move |(p, _)| p.to_string_lossy().ends_with(suffix))
}

fn write_block_seeds() {
    // Blocks built by the block builder: raw (restart interval 16 and 1,
    // as data and index blocks) and stored with their trailer, compressed.
    for (i, interval) in [16usize, 1].into_iter().enumerate() {
        let mut builder = ringdb::sst::block::BlockBuilder::new(interval);
        for k in 0..40u64 {
            let key = ringdb::fuzzing::encoded_key(format!("key{k:03}").as_bytes(), 100 - k);
            builder.add(&key, format!("v{k}").repeat((k % 4) as usize).as_bytes());
        }
        let raw = builder.finish().to_vec();
        write_seed("block", &format!("seed-raw-{i}"), &raw);
        let (mut scratch, mut stored) = (Vec::new(), Vec::new());
        ringdb::sst::block::trailer::encode_block(
            &raw,
            ringdb::sst::Compression::Lz4,
            &mut scratch,
            &mut stored,
        );
        write_seed("block", &format!("seed-stored-{i}"), &stored);
    }
}

fn write_wal_and_batch_seeds(files: &[(PathBuf, Vec<u8>)]) {
    for (i, (path, bytes)) in named(files, ".wal").take(3).enumerate() {
        // Segment number 1 is what the target scans as: renumber records.
        let number: u64 = path.file_stem().unwrap().to_string_lossy().parse().unwrap();
        let used = written_len(bytes);
        let mut seg = bytes[..used].to_vec();
        renumber(&mut seg, number, 1);
        let mut framed = vec![1u8];
        framed.extend_from_slice(&seg);
        write_seed("wal_segment", &format!("seed-{i}"), &framed);
        // Payloads of the first records as batch seeds.
        let mut pos = 0;
        let mut n = 0;
        while pos + 24 <= seg.len() && n < 3 {
            let len = u32::from_le_bytes(seg[pos + 4..pos + 8].try_into().unwrap()) as usize;
            write_seed("batch", &format!("seed-{i}-{n}"), &seg[pos + 24..pos + 24 + len]);
            pos += 24 + len;
            n += 1;
        }
    }
}

fn write_manifest_seeds(files: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in files
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("MANIFEST-"))
    {
        let number: u64 = path
            .to_string_lossy()
            .rsplit('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut manifest = bytes.clone();
        renumber(&mut manifest, number, 1);
        let mut framed = vec![1u8];
        framed.extend_from_slice(&manifest);
        write_seed("manifest", "seed-manifest", &framed);
        write_seed("manifest", "seed-current", b"\x00MANIFEST-000001\n");
    }
}

fn write_ops_seeds() {
    write_seed(
        "ops",
        "seed-mixed",
        &[
            0, 1, 40, 6, 1, 8, 3, 9, 1, 11, 0, 12, 0, 13, 0, 9, 3, 14, 0, 11, 0,
        ],
    );
    write_seed(
        "ops",
        "seed-crash",
        &[1, 2, 200, 2, 3, 200, 12, 0, 3, 4, 9, 15, 0, 9, 2, 11, 0],
    );
    let many: Vec<u8> = (0..120u8).flat_map(|i| [i % 16, i.wrapping_mul(7), 30]).collect();
    write_seed("ops", "seed-many", &many);
}

/// Length of the records in a segment: up to the first all-zero header.
fn written_len(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while pos + 24 <= bytes.len() && bytes[pos..pos + 24].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += 24 + len;
    }
    pos.min(bytes.len())
}

/// Rewrites the segment field of each record from `from` to `to` and
/// fixes its crc (by `ringdb::fuzzing::fix_record_crcs`).
fn renumber(bytes: &mut [u8], from: u64, to: u64) {
    let mut pos = 0;
    while pos + 24 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if len == 0 || u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap()) != from {
            break;
        }
        bytes[pos + 8..pos + 16].copy_from_slice(&to.to_le_bytes());
        pos += 24 + len;
    }
    ringdb::fuzzing::fix_record_crcs(bytes);
}

/// The seed corpus holds files that decode: the targets reach past the
/// checksums (a corpus of junk would fuzz nothing but the first check).
#[test]
fn seed_corpus_decodes() {
    let tables = corpus("table");
    let fs = SimFs::new(0);
    let mut opened = 0;
    futures::executor::block_on(async {
        use ringdb::io::{Fs, OpenMode};
        for (i, (_, bytes)) in tables.iter().enumerate() {
            let path = PathBuf::from(format!("/t/{i:06}.sst"));
            fs.write_file_durable(&path, bytes.clone());
            let file = fs.open(&path, OpenMode::Read).await.unwrap();
            let stats = Arc::new(ringdb::sst::ReadStats::new());
            if ringdb::sst::Table::open(file, path, 1, bytes.len() as u64, None, stats)
                .await
                .is_ok()
            {
                opened += 1;
            }
        }
    });
    assert!(opened >= 1, "no seed table opens");
}
