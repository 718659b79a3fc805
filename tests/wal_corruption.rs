//! Damaged WAL bytes: corruption anywhere but the newest segment's tail is an
//! `Error::Corruption` naming the file and offset; after a crash, a torn
//! newest tail is dropped; after a clean close there is no torn tail, so any
//! damage is corruption; no flipped bit ever yields wrong data or a panic.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ringdb::io::sim::{SimFs, TearMode};
use ringdb::{Db, Error, Options};

const SEGMENT_SIZE_BYTES: u64 = 4096;

fn options(sim: &Arc<SimFs>) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(SEGMENT_SIZE_BYTES)
}

/// How a writing session ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Close,
    /// The process dies: nothing is lost, but no clean close is recorded.
    Kill,
}

/// Writes `count` keys sequentially (each durable), ends as told, and
/// returns the WAL segments in order.
async fn write_keys(sim: &Arc<SimFs>, count: usize, ending: Ending) -> Vec<PathBuf> {
    let db = Db::open("/db", options(sim)).await.unwrap();
    for i in 0..count {
        db.put(format!("key{i:04}"), format!("value{i:04}-{}", "x".repeat(40)))
            .await
            .unwrap();
    }
    match ending {
        Ending::Close => db.close().await.unwrap(),
        Ending::Kill => sim.crash_now(),
    }
    drop(db);
    let mut segments: Vec<PathBuf> = sim
        .list_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".wal"))
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
    pos
}

/// Asserts the store holds a prefix of key0000.. with the right values, and
/// returns its length.
async fn assert_prefix(db: &Db, count: usize) -> usize {
    let mut present = 0;
    for i in 0..count {
        if let Some(value) = db.get(format!("key{i:04}")).await.unwrap() {
            assert_eq!(
                value,
                format!("value{i:04}-{}", "x".repeat(40)).as_bytes(),
                "wrong data at {i}"
            );
            assert_eq!(present, i, "hole before key{i:04}");
            present += 1;
        }
    }
    present
}

#[tokio::test]
async fn damage_in_an_older_segment_is_corruption_naming_file_and_offset() {
    let sim = SimFs::new(1);
    let segments = write_keys(&sim, 200, Ending::Kill).await;
    assert!(segments.len() >= 3, "{segments:?}");
    let victim = &segments[0];
    assert!(sim.flip_bit(victim, 100, 3));
    let sim = sim.recover_with(TearMode::KeepAll);
    let err = Db::open("/db", options(&sim)).await.unwrap_err();
    match &err {
        Error::Corruption { path, offset, .. } => {
            assert_eq!(path, victim);
            assert!(*offset <= 100, "offset {offset} must point at the damaged record");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(err.to_string().contains(&victim.display().to_string()));
}

#[tokio::test]
async fn torn_tail_of_the_newest_segment_is_dropped_and_the_log_goes_on() {
    let sim = SimFs::new(2);
    let segments = write_keys(&sim, 50, Ending::Kill).await;
    let newest = segments
        .iter()
        .rev()
        .find(|p| written_len(&sim.read_file(p).unwrap()) > 0)
        .unwrap()
        .clone();
    let bytes = sim.read_file(&newest).unwrap();
    let end = written_len(&bytes);
    // Tear the last record: cut the file in its middle.
    assert!(sim.truncate_durable(&newest, (end - 30) as u64));
    let sim = sim.recover_with(TearMode::KeepAll);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_eq!(assert_prefix(&db, 50).await, 49);
    // New writes after the dropped tail, then another reopen: the damaged
    // older segment is accepted because the log continues right after it.
    db.put(b"after", b"tear").await.unwrap();
    db.close().await.unwrap();
    drop(db);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_eq!(assert_prefix(&db, 50).await, 49);
    assert_eq!(db.get(b"after").await.unwrap().as_deref(), Some(&b"tear"[..]));
    db.close().await.unwrap();
}

#[tokio::test]
async fn after_a_clean_close_a_cut_tail_is_corruption() {
    let sim = SimFs::new(2);
    let segments = write_keys(&sim, 50, Ending::Close).await;
    let newest = segments
        .iter()
        .rev()
        .find(|p| written_len(&sim.read_file(p).unwrap()) > 0)
        .unwrap()
        .clone();
    let end = written_len(&sim.read_file(&newest).unwrap());
    assert!(sim.truncate_durable(&newest, (end - 30) as u64));
    let sim = sim.recover_with(TearMode::KeepAll);
    match Db::open("/db", options(&sim)).await.unwrap_err() {
        Error::Corruption { path, offset, .. } => {
            assert_eq!(path, newest);
            assert!(offset < end as u64, "offset {offset}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Cut at a record boundary: every record left is intact, but the
    // manifest says the log went further.
    let sim = SimFs::new(4);
    let segments = write_keys(&sim, 50, Ending::Close).await;
    let newest = segments
        .iter()
        .rev()
        .find(|p| written_len(&sim.read_file(p).unwrap()) > 0)
        .unwrap()
        .clone();
    let bytes = sim.read_file(&newest).unwrap();
    let end = written_len(&bytes);
    let mut pos = 0;
    let mut last_start = 0;
    while pos < end {
        last_start = pos;
        pos += 24 + u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
    }
    assert!(sim.truncate_durable(&newest, last_start as u64));
    let sim = sim.recover_with(TearMode::KeepAll);
    match Db::open("/db", options(&sim)).await.unwrap_err() {
        Error::Corruption { path, reason, .. } => {
            assert_eq!(path, newest);
            assert!(reason.contains("closed cleanly"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn every_bit_flip_after_a_clean_close_is_corruption() {
    let base = SimFs::new(3);
    let segments = write_keys(&base, 60, Ending::Close).await;
    let mut flips = 0;
    for segment in &segments {
        let end = written_len(&base.read_file(segment).unwrap());
        for byte in 0..end {
            let sim = base.recover_with(TearMode::KeepAll);
            assert!(sim.flip_bit(segment, byte as u64, (byte % 8) as u8));
            match Db::open(Path::new("/db"), options(&sim)).await {
                Err(Error::Corruption { path, .. }) => assert_eq!(&path, segment),
                Ok(_) => panic!("a flipped bit at {}:{byte} went unnoticed", segment.display()),
                Err(other) => panic!("unexpected error {other:?}"),
            }
            flips += 1;
        }
    }
    assert!(flips > 1000, "{flips}");
}

#[tokio::test]
async fn every_bit_flip_gives_corruption_or_a_clean_prefix() {
    let base = SimFs::new(3);
    let segments = write_keys(&base, 60, Ending::Kill).await;
    let mut outcomes = (0, 0);
    for segment in &segments {
        let bytes = base.read_file(segment).unwrap();
        let end = written_len(&bytes);
        for byte in 0..end {
            let sim = base.recover_with(TearMode::KeepAll);
            let bit = (byte % 8) as u8;
            assert!(sim.flip_bit(segment, byte as u64, bit));
            match Db::open(Path::new("/db"), options(&sim)).await {
                Ok(db) => {
                    let present = assert_prefix(&db, 60).await;
                    // NOTE: after a crash, damage reads as a torn tail only
                    // in the last record: one followed by valid records is
                    // corruption.
                    assert_eq!(
                        present,
                        59,
                        "a flipped bit at {}:{byte} went unnoticed or dropped more than the last record",
                        segment.display()
                    );
                    outcomes.0 += 1;
                    db.close().await.unwrap();
                }
                Err(Error::Corruption { path, .. }) => {
                    assert_eq!(&path, segment);
                    outcomes.1 += 1;
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
    }
    // Both outcomes occur: flips in the last record read as a torn tail,
    // every other flip is corruption.
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}
