//! Bit flips in every kind of file of a closed store: tables, the manifest,
//! `CURRENT`, older WAL segments and the newest one.
//!
//! Scenario: a store on the simulated disk is written in two lives (the
//! first flushes tables with a tiny memtable, the second fills several
//! 4 KiB WAL segments), then closed cleanly, so every key it held is
//! known. For each flip, a fresh disk gets the closed store's files with
//! one bit flipped; then `ringdb::check_with_fs` runs, the store is
//! opened and every key read. Each flip must give one of:
//! - `corruption at open`: `Error::Corruption` naming the flipped file;
//! - `corruption at read`: the store opens and a read of an affected key
//!   returns `Error::Corruption` naming the flipped file (a data block);
//! - `harmless`: every key reads back right. Documented cases: a flip in
//!   the unwritten (zero-filled) part of a WAL segment, or in a byte no
//!   reader interprets (the preallocated tail);
//! - `CURRENT names a missing manifest`: a flip in the manifest number of
//!   `CURRENT` names another manifest, which does not exist: open fails
//!   with a not-found error naming that manifest; no data is touched.
//!
//! Never wrong data, never a panic, never a key the closed store held
//! silently missing. For tables, `check` must find every flip. Each test
//! prints its outcome counts. Under CI the flips are strided; set
//! `RINGDB_FULL_SWEEP=1` to flip every bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringdb::io::sim::SimFs;
use ringdb::{Db, Error, Options};

const DIR: &str = "/db";
const SEGMENT_SIZE_BYTES: u64 = 4096;

type Image = Vec<(PathBuf, Vec<u8>)>;
type Model = BTreeMap<String, String>;

fn full_sweep() -> bool {
    std::env::var("RINGDB_FULL_SWEEP").as_deref() == Ok("1")
}

fn options(sim: &Arc<SimFs>, write_buffer_size_bytes: u64) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(SEGMENT_SIZE_BYTES)
        .write_buffer_size_bytes(write_buffer_size_bytes)
        .target_file_size_bytes(4096)
}

fn value(i: usize, life: usize) -> String {
    format!("value-{life}-{i:04}-{}", "x".repeat(i % 37))
}

/// The closed store's files and every key it holds.
async fn closed_store() -> (Image, Model) {
    let sim = SimFs::new(3);
    let mut model = Model::new();
    // Life 1: a tiny memtable, so the writes end up in tables.
    let db = Db::open(DIR, options(&sim, 2048)).await.unwrap();
    for i in 0..300 {
        let key = format!("key{:04}", (i * 7) % 300);
        db.put(&key, value(i, 1)).await.unwrap();
        model.insert(key, value(i, 1));
        if i % 100 == 99 {
            // Range tombstones, so tables hold range-tombstone blocks.
            let (start, end) = (format!("key{:04}", i - 20), format!("key{:04}", i - 10));
            db.delete_range(start.as_str()..end.as_str()).await.unwrap();
            model.retain(|k, _| !(start <= *k && *k < end));
        }
    }
    db.flush().await.unwrap();
    db.close().await.unwrap();
    drop(db);
    // Life 2: a large memtable, so the writes stay in several WAL segments.
    let db = Db::open(DIR, options(&sim, 64 << 20)).await.unwrap();
    for i in 0..120 {
        let key = format!("key{:04}", (i * 13) % 400);
        db.put(&key, value(i, 2)).await.unwrap();
        model.insert(key, value(i, 2));
        if i == 60 {
            db.delete_range("key0200".."key0210").await.unwrap();
            model.retain(|k, _| !("key0200" <= k.as_str() && k.as_str() < "key0210"));
        }
    }
    db.close().await.unwrap();
    drop(db);
    let image = sim
        .list_files()
        .into_iter()
        .filter(|p| !p.ends_with("LOCK"))
        .map(|p| {
            let bytes = sim.read_file(&p).unwrap();
            (p, bytes)
        })
        .collect();
    (image, model)
}

fn disk_of(image: &Image, seed: u64) -> Arc<SimFs> {
    let sim = SimFs::new(seed);
    for (path, bytes) in image {
        sim.write_file_durable(path, bytes.clone());
    }
    sim
}

fn is_wal(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wal")
}

/// WAL segments in number order, with the length of their written part.
fn wal_segments(image: &Image) -> Vec<(PathBuf, usize)> {
    let mut segments: Vec<(PathBuf, usize)> = image
        .iter()
        .filter(|(p, _)| is_wal(p))
        .map(|(p, bytes)| (p.clone(), written_len(bytes)))
        .filter(|(_, len)| *len > 0)
        .collect();
    segments.sort();
    segments
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    CorruptionAtOpen,
    CorruptionAtRead,
    Harmless,
    CurrentNamesMissingManifest,
}

fn names(error: &Error, path: &Path) -> bool {
    matches!(error, Error::Corruption { path: p, .. } if p == path)
}

/// Flips one bit of `path` in a copy of the store and classifies what the
/// store does; `Err` is a broken promise.
async fn flip(image: &Image, model: &Model, path: &Path, offset: u64, bit: u8) -> Result<Outcome, String> {
    let sim = disk_of(image, offset);
    assert!(
        sim.flip_bit(path, offset, bit),
        "{} has no byte {offset}",
        path.display()
    );
    let db = match Db::open(DIR, options(&sim, 64 << 20)).await {
        Ok(db) => db,
        Err(e) if names(&e, path) => return Ok(Outcome::CorruptionAtOpen),
        Err(Error::Io {
            source,
            path: missing,
            ..
        }) if path.ends_with("CURRENT")
            && source.kind() == std::io::ErrorKind::NotFound
            && missing.to_string_lossy().contains("MANIFEST-") =>
        {
            return Ok(Outcome::CurrentNamesMissingManifest);
        }
        Err(e) => {
            return Err(format!(
                "open fails with an error that does not name the file: {e:?}"
            ));
        }
    };
    let mut outcome = Outcome::Harmless;
    let mut missing = Vec::new();
    for (key, expected) in model {
        match db.get(key).await {
            Ok(Some(got)) if got == expected.as_bytes() => {}
            Ok(Some(got)) => {
                return Err(format!(
                    "wrong data for {key}: {:?}, expected {expected}",
                    String::from_utf8_lossy(&got)
                ));
            }
            Ok(None) => missing.push(key.clone()),
            Err(e) if names(&e, path) => outcome = Outcome::CorruptionAtRead,
            Err(e) => return Err(format!("read of {key} fails naming another file: {e:?}")),
        }
    }
    let _ = db.close().await;
    if !missing.is_empty() {
        return Err(format!(
            "{} keys the closed store held are silently missing, first {}",
            missing.len(),
            missing[0]
        ));
    }
    Ok(outcome)
}

/// Flips the chosen bits of `path` and asserts every outcome is allowed;
/// prints the outcome counts under `kind`.
async fn sweep(
    kind: &str,
    image: &Image,
    model: &Model,
    path: &Path,
    flips: &[(u64, u8)],
) -> BTreeMap<Outcome, usize> {
    let mut counts = BTreeMap::new();
    let mut broken = Vec::new();
    for &(offset, bit) in flips {
        match flip(image, model, path, offset, bit).await {
            Ok(outcome) => *counts.entry(outcome).or_insert(0) += 1,
            Err(why) => broken.push(format!("{} byte {offset} bit {bit}: {why}", path.display())),
        }
    }
    println!(
        "{kind}: {} bits flipped in {}: {counts:?}",
        flips.len(),
        path.display()
    );
    assert!(
        broken.is_empty(),
        "{kind}: {} of {} flips broke a promise; first: {}",
        broken.len(),
        flips.len(),
        broken[0]
    );
    counts
}

/// Offsets to flip in `0..len`: every byte under a full sweep, else about
/// `budget` spread over the range (always the first and last bytes).
fn spread(len: usize, budget: usize) -> Vec<(u64, u8)> {
    let stride = if full_sweep() {
        1
    } else {
        len.div_ceil(budget).max(1)
    };
    let mut flips: Vec<(u64, u8)> = (0..len)
        .step_by(stride)
        .map(|i| (i as u64, (i % 8) as u8))
        .collect();
    if let Some(last) = len.checked_sub(1)
        && flips.last().map(|f| f.0) != Some(last as u64)
    {
        flips.push((last as u64, 7));
    }
    if full_sweep() {
        flips = (0..len)
            .flat_map(|i| (0..8).map(move |b| (i as u64, b)))
            .collect();
    }
    flips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_in_tables() {
    let (image, model) = closed_store().await;
    let tables: Vec<&(PathBuf, Vec<u8>)> = image
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    assert!(tables.len() >= 2, "the store must hold tables: {image:?}");
    let mut total = BTreeMap::new();
    let mut checked = 0;
    for (path, bytes) in tables.iter().take(3) {
        // `check` must find every flip in a table: every byte is covered
        // by a block trailer's or the footer's checksum. It is cheap, so
        // it runs at every byte (one bit each; every bit under a full sweep).
        for (offset, bit) in spread(bytes.len(), bytes.len()) {
            let sim = disk_of(&image, offset);
            assert!(sim.flip_bit(path, offset, bit));
            let report = ringdb::check_with_fs(sim, Path::new(DIR)).await.unwrap();
            assert!(
                report
                    .damage
                    .iter()
                    .any(|d| &d.path == path && d.offset < bytes.len() as u64),
                "check missed the flip at byte {offset} bit {bit} of {}: {report:?}",
                path.display()
            );
            checked += 1;
        }
        for (outcome, count) in sweep("table", &image, &model, path, &spread(bytes.len(), 150)).await {
            *total.entry(outcome).or_insert(0) += count;
        }
    }
    println!("table: check found all {checked} flips it was given");
    println!("table: outcomes {total:?}");
    assert!(
        !total.contains_key(&Outcome::Harmless),
        "every table byte is checksummed: {total:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_in_the_manifest() {
    let (image, model) = closed_store().await;
    let (path, bytes) = image
        .iter()
        .find(|(p, _)| p.to_string_lossy().contains("MANIFEST-"))
        .unwrap();
    let counts = sweep("manifest", &image, &model, path, &spread(bytes.len(), 300)).await;
    assert!(counts.contains_key(&Outcome::CorruptionAtOpen), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_in_current() {
    let (image, model) = closed_store().await;
    let (path, bytes) = image.iter().find(|(p, _)| p.ends_with("CURRENT")).unwrap();
    // CURRENT is small: every bit, always.
    let flips: Vec<(u64, u8)> = (0..bytes.len() as u64)
        .flat_map(|i| (0..8).map(move |b| (i, b)))
        .collect();
    let counts = sweep("CURRENT", &image, &model, path, &flips).await;
    assert!(!counts.contains_key(&Outcome::Harmless), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_in_older_wal_segments() {
    let (image, model) = closed_store().await;
    let segments = wal_segments(&image);
    assert!(
        segments.len() >= 3,
        "the store must leave several WAL segments: {segments:?}"
    );
    let mut flips = 0;
    for (path, written) in &segments[..segments.len() - 1] {
        let mut chosen = spread(*written, 120);
        // A few in the unwritten tail.
        chosen.extend([(*written as u64 + 3, 1), (SEGMENT_SIZE_BYTES - 1, 0)]);
        chosen.retain(|&(offset, _)| offset < SEGMENT_SIZE_BYTES);
        flips += chosen.len();
        sweep("older WAL segment", &image, &model, path, &chosen).await;
    }
    println!("older WAL segments: {flips} bits flipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flips_in_the_newest_wal_segment() {
    let (image, model) = closed_store().await;
    let segments = wal_segments(&image);
    let (path, written) = segments.last().unwrap();
    let mut chosen = spread(*written, 200);
    chosen.extend([(*written as u64 + 3, 1)]);
    sweep("newest WAL segment", &image, &model, path, &chosen).await;
}
