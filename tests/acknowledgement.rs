//! A durable write is acknowledged only after the durable operation covering
//! it completes: its future, polled by hand (`tokio_test`), stays pending
//! and its value stays invisible while the simulated disk holds every
//! durable operation, and both change once the disk lets them go. A
//! buffered write behind it waits with it; one alone does not wait.

use std::time::{Duration, Instant};

use ringdb::io::sim::SimFs;
use ringdb::{Db, Options, SyncMode, WriteBatch, WriteOptions};
use tokio_test::task;

/// Far longer than any wait below takes on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// Waits, sleeping on the runtime while the WAL task runs, until `done`.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn batch(key: &str, value: &str) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    batch
}

fn buffered() -> WriteOptions {
    WriteOptions::with_sync_mode(SyncMode::Buffered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_and_syncs_resolve_only_after_the_disk_completes_them() {
    let sim = SimFs::new(91);
    let db = Db::open("/db", Options::default().fs(sim.clone())).await.unwrap();
    db.put("before", "0").await.unwrap();
    let writes_before = db.stats().wal_writes;

    sim.hold_durable_ops();
    // With no durable write waiting, a buffered write resolves at once,
    // whatever the disk is doing.
    let mut buffered_alone = task::spawn(db.write_opt(batch("b0", "0"), buffered()));
    assert!(matches!(buffered_alone.poll(), std::task::Poll::Ready(Ok(()))));
    assert_eq!(db.get("b0").await.unwrap().as_deref(), Some(&b"0"[..]));

    let mut first = task::spawn(db.put("k1", "v1"));
    let mut second = task::spawn(db.put("k2", "v2"));
    let mut sync = task::spawn(db.sync());
    // Behind a durable write that waits for its sync, a buffered write waits
    // too: its visibility would show the durable write before it is durable.
    let mut buffered_behind = task::spawn(db.write_opt(batch("b1", "1"), buffered()));
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    assert!(sync.poll().is_pending());
    assert!(buffered_behind.poll().is_pending());
    // Wait until the WAL task has written records and the disk holds a
    // durable operation.
    wait_for("a WAL write held by the disk", || {
        db.stats().wal_writes > writes_before && sim.held_durable_ops() > 0
    })
    .await;
    // NOTE: time for a wrong acknowledgement to arrive, had one been sent.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (name, woken) in [
        ("first", first.is_woken()),
        ("second", second.is_woken()),
        ("sync", sync.is_woken()),
        ("buffered", buffered_behind.is_woken()),
    ] {
        assert!(!woken, "{name} woke while every durable operation is held");
    }
    assert!(first.poll().is_pending());
    assert!(second.poll().is_pending());
    assert!(sync.poll().is_pending());
    assert!(buffered_behind.poll().is_pending());
    assert_eq!(db.get("k1").await.unwrap(), None, "visible before it is durable");
    assert_eq!(db.get("k2").await.unwrap(), None, "visible before it is durable");
    assert_eq!(
        db.get("b1").await.unwrap(),
        None,
        "visible before the write below it"
    );
    assert_eq!(db.get("before").await.unwrap().as_deref(), Some(&b"0"[..]));

    sim.release_durable_ops();
    wait_for("the acknowledgements", || {
        first.is_woken() && second.is_woken() && sync.is_woken() && buffered_behind.is_woken()
    })
    .await;
    assert!(matches!(first.poll(), std::task::Poll::Ready(Ok(()))));
    assert!(matches!(second.poll(), std::task::Poll::Ready(Ok(()))));
    assert!(matches!(sync.poll(), std::task::Poll::Ready(Ok(()))));
    assert!(matches!(buffered_behind.poll(), std::task::Poll::Ready(Ok(()))));
    assert_eq!(db.get("b1").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get("k1").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(db.get("k2").await.unwrap().as_deref(), Some(&b"v2"[..]));
    db.close().await.unwrap();
}
