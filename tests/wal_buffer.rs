//! Writes nobody waits for (`SyncMode::Buffered`) are held in the commit
//! queue and written together: after `Options::wal_buffer_delay`, once 64 KiB
//! collect, or with the next durable write. A process kill (the sim's
//! `KeepAll`: every completed write survives) shows what reached the OS.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ringdb::io::sim::{SimFs, TearMode};
use ringdb::{Db, Options, SyncMode};

fn options(sim: &std::sync::Arc<SimFs>, delay: Duration) -> Options {
    Options::default()
        .fs(sim.clone())
        .sync_mode(SyncMode::Buffered)
        .wal_buffer_delay(delay)
}

/// Waits (up to 10 s) until the store has issued at least `writes` WAL writes.
async fn wait_for_wal_writes(db: &Db, writes: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done = db.stats().wal_writes;
        if done >= writes || Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn count_present(sim: &std::sync::Arc<SimFs>, dir: &Path, keys: usize) -> usize {
    let killed = sim.recover_with(TearMode::KeepAll);
    let db = Db::open(dir, options(&killed, Duration::ZERO)).await.unwrap();
    let mut present = 0;
    for i in 0..keys {
        if let Some(value) = db.get(format!("k{i:05}")).await.unwrap() {
            assert_eq!(value.as_ref(), format!("v{i}").as_bytes(), "k{i:05}");
            present += 1;
        }
    }
    db.close().await.unwrap();
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_writes_reach_the_os_after_the_delay_without_a_sync() {
    let dir = Path::new("/db");
    let sim = SimFs::new(1);
    let db = Db::open(dir, options(&sim, Duration::from_millis(200)))
        .await
        .unwrap();
    let writes_before = db.stats().wal_writes;
    for i in 0..10 {
        db.put(format!("k{i:05}"), format!("v{i}")).await.unwrap();
    }
    // Ten small puts, one write: the first put started the delay, the others
    // joined it.
    let writes = wait_for_wal_writes(&db, writes_before + 1).await;
    assert!(writes > writes_before, "the delay passed but nothing was written");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(db.stats().wal_writes, writes_before + 1);
    assert_eq!(count_present(&sim, dir, 10).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_writes_are_held_until_the_buffer_fills() {
    let dir = Path::new("/db");
    let sim = SimFs::new(2);
    let db = Db::open(dir, options(&sim, Duration::from_secs(3600)))
        .await
        .unwrap();
    let writes_before = db.stats().wal_writes;
    // About 10 KiB: under the 64 KiB buffer, so with an hour's delay nothing
    // is written.
    for i in 0..100 {
        db.put(format!("k{i:05}"), format!("v{i}")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        db.stats().wal_writes,
        writes_before,
        "held writes were written early"
    );
    // Past 64 KiB the buffer goes out.
    let value = vec![b'x'; 1024];
    for i in 100..170 {
        db.put(format!("k{i:05}"), &value).await.unwrap();
    }
    let writes = wait_for_wal_writes(&db, writes_before + 1).await;
    assert!(writes > writes_before, "a full buffer was not written");
    assert_eq!(count_present(&sim, dir, 100).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_takes_held_writes_along() {
    let dir = Path::new("/db");
    let sim = SimFs::new(3);
    let db = Db::open(dir, options(&sim, Duration::from_secs(3600)))
        .await
        .unwrap();
    for i in 0..50 {
        db.put(format!("k{i:05}"), format!("v{i}")).await.unwrap();
    }
    db.sync().await.unwrap();
    // Power loss: only synced data survives.
    let lost_power = sim.recover_with(TearMode::DropAll);
    drop(db);
    let reopened = Db::open(dir, options(&lost_power, Duration::ZERO)).await.unwrap();
    for i in 0..50 {
        let value = reopened.get(format!("k{i:05}")).await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()), "k{i:05}");
    }
    reopened.close().await.unwrap();
}
