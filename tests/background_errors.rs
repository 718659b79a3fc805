//! A table write that finds no space does not poison the store: a flush
//! that fails for lack of space stops writes with `Error::NoSpace` (shown in
//! `stats()`), reads go on, no half-made table is left or referenced, and
//! writes resume by themselves once a retried flush succeeds, with no
//! reopen. A manual compaction that finds no space returns the error and
//! changes nothing. A failed WAL sync stays final.
//!
//! Scenario, on the simulated disk: the disk is made full for table files
//! (`SimFs::set_full(".sst")`), then freed (`SimFs::clear_full`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringdb::io::sim::SimFs;
use ringdb::{Db, Error, Options};

/// How long the test waits for the background retry (never a timing
/// assertion: the retry delay is at most 2 s).
const RESUME_DEADLINE: Duration = Duration::from_secs(60);

fn options(sim: &Arc<SimFs>) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(64 * 1024)
}

fn tables(sim: &SimFs) -> Vec<PathBuf> {
    sim.list_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".sst"))
        .collect()
}

async fn assert_keys(db: &Db, keys: std::ops::Range<usize>) {
    for i in keys {
        assert_eq!(
            db.get(format!("key{i:04}")).await.unwrap().as_deref(),
            Some(format!("value{i}").as_bytes()),
            "key {i}"
        );
    }
}

async fn put_keys(db: &Db, keys: std::ops::Range<usize>) {
    for i in keys {
        db.put(format!("key{i:04}"), format!("value{i}")).await.unwrap();
    }
}

#[tokio::test]
async fn a_flush_without_space_stops_writes_until_a_retry_succeeds() {
    let sim = SimFs::new(51);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..100).await;
    sim.set_full(".sst");
    assert!(matches!(db.flush().await, Err(Error::NoSpace { .. })));
    let stats = db.stats();
    assert!(stats.background_error.is_some(), "{stats:?}");
    assert!(stats.background_no_space_errors >= 1, "{stats:?}");
    // Writes stop with the same clear error; reads go on.
    match db.put(b"during", b"full").await {
        Err(error @ Error::NoSpace { .. }) => {
            assert!(error.to_string().contains("space"), "{error}");
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert_keys(&db, 0..100).await;
    assert!(
        tables(&sim).is_empty(),
        "a half-made table is left: {:?}",
        tables(&sim)
    );

    sim.clear_full();
    let started = Instant::now();
    while db.stats().background_error.is_some() {
        assert!(started.elapsed() < RESUME_DEADLINE, "writes never resumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put_keys(&db, 100..150).await;
    db.flush().await.unwrap();
    // The retried flush of the first memtable, then this one.
    assert_eq!(db.stats().flushes, 2);
    assert_keys(&db, 0..150).await;
    db.close().await.unwrap();
    drop(db);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_keys(&db, 0..150).await;
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_compaction_without_space_changes_nothing_and_poisons_nothing() {
    let sim = SimFs::new(52);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    for round in 0..3 {
        put_keys(&db, round * 50..round * 50 + 50).await;
        db.flush().await.unwrap();
    }
    let before = tables(&sim);
    sim.set_full(".sst");
    let result = db.compact_range::<std::ops::RangeFull>(..).await;
    assert!(matches!(result, Err(Error::NoSpace { .. })), "{result:?}");
    assert_eq!(tables(&sim), before, "a half-made output is left");
    assert!(db.stats().background_no_space_errors >= 1);
    // Nothing is poisoned: writes (to the WAL) and reads go on.
    put_keys(&db, 150..160).await;
    assert_keys(&db, 0..160).await;
    sim.clear_full();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert_eq!(db.stats().level_tables[0], 0);
    assert_keys(&db, 0..160).await;
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_wal_sync_stays_final() {
    let sim = SimFs::new(53);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..10).await;
    common::wait_until_idle(&sim).await;
    sim.fail_next_sync(".wal");
    assert!(db.put(b"k", b"v").await.is_err());
    assert!(matches!(db.put(b"k2", b"v").await, Err(Error::Poisoned { .. })));
    assert_keys(&db, 0..10).await;
}

#[tokio::test]
async fn a_store_opens_and_serves_reads_with_no_space_for_tables() {
    let sim = SimFs::new(54);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    put_keys(&db, 0..80).await;
    sim.crash_now();
    drop(db);
    let sim = sim.recover_with(ringdb::io::sim::TearMode::KeepAll);
    // Open would flush the replayed WAL to a table: there is no room.
    sim.set_full(".sst");
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_keys(&db, 0..80).await;
    assert!(
        tables(&sim).is_empty(),
        "a half-made table is left: {:?}",
        tables(&sim)
    );
    db.close().await.unwrap();
    drop(db);
    sim.clear_full();
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_keys(&db, 0..80).await;
    assert_eq!(
        tables(&sim).len(),
        1,
        "the replayed WAL is flushed once there is room"
    );
    db.close().await.unwrap();
}
