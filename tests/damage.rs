//! Damage a user's disk or hands do to a closed store, on the simulated
//! disk: swapped WAL segment names, a missing WAL segment, a missing
//! `CURRENT`, a manifest cut inside its last edit. Each is an
//! `Error::Corruption` naming the file that is wrong (or missing), or, where
//! the damage is harmless, a store that opens with all its data; open never
//! removes a table it cannot prove to be garbage. Also the small API
//! answers: an empty batch after close, the entry-count limit's message.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringdb::io::Fs as _;
use ringdb::io::sim::{SimFs, TearMode};
use ringdb::{Db, Error, Options, WriteBatch};

const SEGMENT_SIZE_BYTES: u64 = 4096;

fn options(sim: &Arc<SimFs>) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(SEGMENT_SIZE_BYTES)
}

fn key(i: usize) -> String {
    format!("key{i:04}")
}

fn value(i: usize) -> String {
    format!("value{i:04}-{}", "x".repeat(40))
}

async fn put_keys(db: &Db, keys: std::ops::Range<usize>) {
    for i in keys {
        db.put(key(i), value(i)).await.unwrap();
    }
}

/// Files of the store whose name ends with `suffix` (or starts with it, for
/// `MANIFEST-`), sorted.
fn files(sim: &SimFs, pattern: &str) -> Vec<PathBuf> {
    sim.list_files()
        .into_iter()
        .filter(|p| p.parent() == Some(Path::new("/db")))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(pattern) || name.starts_with(pattern)
        })
        .collect()
}

/// Every `.sst` file anywhere in the store (its `lost/` folder included).
fn all_tables(sim: &SimFs) -> Vec<String> {
    let mut names: Vec<String> = sim
        .list_files()
        .into_iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.contains(".sst"))
        .collect();
    names.sort();
    names
}

/// Offsets of the records of a WAL segment or manifest (up to zeros).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 0;
    while pos + 24 <= bytes.len() && bytes[pos..pos + 24].iter().any(|&b| b != 0) {
        offsets.push(pos);
        pos += 24 + u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    offsets
}

fn expect_corruption(result: ringdb::Result<Db>) -> (PathBuf, u64, String) {
    match result {
        Err(Error::Corruption { path, offset, reason }) => (path, offset, reason),
        Err(other) => panic!("expected corruption, got {other:?}"),
        Ok(_) => panic!("expected corruption, the store opened"),
    }
}

async fn assert_keys(db: &Db, keys: std::ops::Range<usize>) {
    for i in keys {
        assert_eq!(
            db.get(key(i)).await.unwrap().as_deref(),
            Some(value(i).as_bytes()),
            "key {i}"
        );
    }
}

/// A killed store with at least two WAL segments holding records.
async fn killed_store_with_segments(seed: u64) -> (Arc<SimFs>, Vec<PathBuf>) {
    let sim = SimFs::new(seed);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..200).await;
    sim.crash_now();
    drop(db);
    let sim = sim.recover_with(TearMode::KeepAll);
    let segments: Vec<PathBuf> = files(&sim, ".wal")
        .into_iter()
        .filter(|p| !record_offsets(&sim.read_file(p).unwrap()).is_empty())
        .collect();
    assert!(segments.len() >= 3, "{segments:?}");
    (sim, segments)
}

#[tokio::test]
async fn swapped_wal_segment_names_are_corruption() {
    let (sim, segments) = killed_store_with_segments(11).await;
    let (a, b) = (&segments[segments.len() - 2], &segments[segments.len() - 1]);
    let (bytes_a, bytes_b) = (sim.read_file(a).unwrap(), sim.read_file(b).unwrap());
    sim.write_file_durable(a, bytes_b);
    sim.write_file_durable(b, bytes_a);
    let (path, offset, reason) = expect_corruption(Db::open("/db", options(&sim)).await);
    assert_eq!(&path, a, "{reason}");
    assert_eq!(offset, 0, "{reason}");
    assert!(reason.contains("swapped"), "{reason}");
}

#[tokio::test]
async fn a_missing_older_wal_segment_is_reported_itself() {
    for victim in [0, 1] {
        let (sim, segments) = killed_store_with_segments(12).await;
        let missing = &segments[victim];
        sim.remove_file(missing).await.unwrap();
        sim.sync_dir(Path::new("/db")).await.unwrap();
        let (path, _, reason) = expect_corruption(Db::open("/db", options(&sim)).await);
        assert_eq!(&path, missing, "{reason}");
        assert!(reason.contains("missing"), "{reason}");
    }
}

#[tokio::test]
async fn a_missing_current_is_reported_against_current() {
    let sim = SimFs::new(13);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..50).await;
    db.flush().await.unwrap();
    db.close().await.unwrap();
    drop(db);
    sim.remove_file(Path::new("/db/CURRENT")).await.unwrap();
    let (path, _, reason) = expect_corruption(Db::open("/db", options(&sim)).await);
    assert_eq!(path, Path::new("/db/CURRENT"), "{reason}");
}

/// Cuts the live manifest inside its last edit and returns its path.
fn cut_last_manifest_edit(sim: &SimFs) -> PathBuf {
    let manifests = files(sim, "MANIFEST-");
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let manifest = manifests[0].clone();
    let bytes = sim.read_file(&manifest).unwrap();
    let offsets = record_offsets(&bytes);
    assert!(offsets.len() >= 2, "{offsets:?}");
    let last = *offsets.last().unwrap();
    assert!(sim.truncate_durable(&manifest, (last + 10) as u64));
    manifest
}

#[tokio::test]
async fn a_manifest_cut_inside_a_flush_edit_removes_nothing() {
    let sim = SimFs::new(14);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..100).await;
    db.flush().await.unwrap();
    // The flush's edit is the manifest's last; its WAL segments are gone.
    sim.crash_now();
    drop(db);
    let sim = sim.recover_with(TearMode::KeepAll);
    let tables = all_tables(&sim);
    assert!(!tables.is_empty());
    let manifest = cut_last_manifest_edit(&sim);
    for _ in 0..2 {
        let (path, _, reason) = expect_corruption(Db::open("/db", options(&sim)).await);
        assert_eq!(path, manifest, "{reason}");
        assert_eq!(all_tables(&sim), tables, "open removed a table");
        assert!(sim.read_file(&manifest).is_some(), "open removed the manifest");
    }
}

#[tokio::test]
async fn a_manifest_cut_inside_a_compaction_edit_removes_nothing() {
    let sim = SimFs::new(15);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    for round in 0..3 {
        put_keys(&db, round * 40..round * 40 + 40).await;
        db.flush().await.unwrap();
    }
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    sim.crash_now();
    drop(db);
    let sim = sim.recover_with(TearMode::KeepAll);
    let tables = all_tables(&sim);
    let manifest = cut_last_manifest_edit(&sim);
    // NOTE: the last edit may be a compaction whose inputs are gone (then
    // the manifest names a missing table) or a trivial move (harmless).
    match Db::open("/db", options(&sim)).await {
        Err(Error::Corruption { path, reason, .. }) => {
            assert_eq!(path, manifest, "{reason}");
            assert_eq!(all_tables(&sim), tables, "open removed a table");
        }
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(db) => {
            assert_keys(&db, 0..120).await;
            db.close().await.unwrap();
            let after = all_tables(&sim);
            assert!(
                tables.iter().all(|t| after.contains(t)),
                "{tables:?} -> {after:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_manifest_cut_inside_its_close_edit_opens_with_everything() {
    let sim = SimFs::new(16);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..60).await;
    db.flush().await.unwrap();
    put_keys(&db, 60..120).await;
    db.close().await.unwrap();
    drop(db);
    let manifest = cut_last_manifest_edit(&sim);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_keys(&db, 0..120).await;
    db.close().await.unwrap();
    // The manifest with the torn edit is kept aside, not deleted.
    let kept = Path::new("/db/lost").join(manifest.file_name().unwrap());
    assert!(sim.read_file(&kept).is_some(), "{:?}", sim.list_files());
}

#[tokio::test]
async fn an_empty_batch_after_close_is_closed() {
    let sim = SimFs::new(17);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    db.write(WriteBatch::new()).await.unwrap();
    db.close().await.unwrap();
    assert!(matches!(db.write(WriteBatch::new()).await, Err(Error::Closed)));
    assert!(matches!(db.put(b"k", b"v").await, Err(Error::Closed)));
}

#[tokio::test]
async fn too_many_entries_are_counted_as_entries() {
    let sim = SimFs::new(18);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    let mut batch = WriteBatch::new();
    for _ in 0..=ringdb::limits::MAX_BATCH_ENTRIES {
        batch.delete(b"");
    }
    let error = db.write(batch).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("entries") && !message.contains("bytes"),
        "{message}"
    );
    db.close().await.unwrap();
}
