//! A crash at every mutating step of `Db::open` never leaves a store that
//! cannot open, and never loses an acknowledged write.
//!
//! Scenario, on the simulated disk: a store holding tables and WAL
//! segments (every write acknowledged) is killed; a reference open counts
//! the mutating operations open makes (recovering the manifest, flushing
//! the replayed WAL, writing the new manifest and `CURRENT`, sweeping,
//! creating the new segment). Then for every one of them, a fresh copy of
//! the killed disk opens with a power loss armed at that operation; the
//! disk after the crash (kept whole, as after SIGKILL, or torn at random, as
//! after a power loss) must open and hold every key, and so must the store
//! after a second, clean reopen. The same runs on a store being created.

mod common;

use std::sync::Arc;

use ringdb::io::sim::{SimFs, TearMode};
use ringdb::{Db, Options};

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
    format!("value{i:04}-{}", "y".repeat(30))
}

async fn assert_keys(db: &Db, count: usize, context: &str) {
    for i in 0..count {
        assert_eq!(
            db.get(key(i)).await.unwrap().as_deref(),
            Some(value(i).as_bytes()),
            "key {i} after {context}"
        );
    }
}

/// The mutating operations of one open of a copy of `base`.
async fn open_ops(base: &SimFs) -> u64 {
    let sim = base.recover_with(TearMode::KeepAll);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    let ops = sim.mutating_ops();
    db.close().await.unwrap();
    ops
}

/// Crashes an open of a copy of `base` at every mutating operation and
/// checks that the store recovers with its first `count` keys. Returns how
/// many crash points were covered.
async fn crash_every_open_step(base: &SimFs, count: usize) -> u64 {
    let ops = open_ops(base).await;
    assert!(ops > 5, "open made only {ops} mutating operations");
    let mut failed_opens = 0;
    for op in 0..ops {
        for mode in [TearMode::KeepAll, TearMode::Random, TearMode::DropAll] {
            let context = format!("a crash at open operation {op} of {ops}, recovered as {mode:?}");
            let sim = base.recover_with(TearMode::KeepAll);
            sim.crash_at(op);
            // NOTE: the WAL task starts inside open and creates its spare
            // segment meanwhile; a crash at one of its operations lets open
            // return, and hits the running store instead.
            match Db::open("/db", options(&sim)).await {
                Err(_) => failed_opens += 1,
                Ok(db) => drop(db),
            }
            let sim = sim.recover_with(mode);
            let db = Db::open("/db", options(&sim))
                .await
                .unwrap_or_else(|e| panic!("the store does not open after {context}: {e}"));
            assert_keys(&db, count, &context).await;
            db.put(b"after", b"crash").await.unwrap();
            db.close().await.unwrap();
            drop(db);
            let db = Db::open("/db", options(&sim))
                .await
                .unwrap_or_else(|e| panic!("the store does not reopen after {context}: {e}"));
            assert_keys(&db, count, &context).await;
            assert_eq!(db.get(b"after").await.unwrap().as_deref(), Some(&b"crash"[..]));
            db.close().await.unwrap();
        }
    }
    // Most crash points hit open itself.
    assert!(
        failed_opens * 2 > ops * 3,
        "{failed_opens} failed opens of {ops} points"
    );
    ops
}

#[tokio::test]
async fn a_crash_at_any_step_of_open_leaves_a_store_that_opens() {
    let base = SimFs::new(21);
    let db = Db::open("/db", options(&base)).await.unwrap();
    for i in 0..120 {
        db.put(key(i), value(i)).await.unwrap();
        if i == 60 {
            db.flush().await.unwrap();
        }
    }
    base.crash_now();
    drop(db);
    let covered = crash_every_open_step(&base, 120).await;
    eprintln!("open_crash: {covered} crash points of a recovering open, 3 recoveries each");
}

#[tokio::test]
async fn a_crash_at_any_step_of_creating_a_store_leaves_one_that_opens() {
    let base = SimFs::new(22);
    let covered = crash_every_open_step(&base, 0).await;
    eprintln!("open_crash: {covered} crash points of a creating open, 3 recoveries each");
}
