//! A failed WAL fdatasync or write is final: the writes it covered fail, the
//! store refuses further writes until reopened, reads go on, and the sync is
//! never retried. Runs on the simulated disk, which (like Linux) drops the
//! unsynced pages of a failed fsync.

mod common;

use std::path::Path;

use common::{TestStore, wait_until_idle};
use ringdb::io::sim::TearMode;
use ringdb::{Db, Error, Options};

fn is_eio(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EIO))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sync_fails_its_writes_and_poisons_the_store() {
    let store = TestStore::sim(11);
    let sim = store.sim.clone().unwrap();
    let db = store.open().await;
    for i in 0..10 {
        db.put(format!("acked{i}"), b"v").await.unwrap();
    }
    // NOTE: the spare segment is created (and synced) in the background;
    // the failed sync must be the doomed writes' own.
    wait_until_idle(&sim).await;
    sim.fail_next_sync(".wal");
    let writers: Vec<_> = (0..16)
        .map(|i| tokio::spawn(db.put(format!("doomed{i}"), b"v")))
        .collect();
    let mut io_errors = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Err(e) if is_eio(&e) => io_errors += 1,
            Err(Error::Poisoned { .. }) => {}
            other => panic!("a write covered by a failed sync must fail, got {other:?}"),
        }
    }
    assert!(io_errors >= 1, "the failed sync's own writes see its EIO");

    // Refused from now on, with a distinct error; no I/O is attempted.
    let ops_after_failure = sim.mutating_ops();
    for _ in 0..3 {
        let err = db.put(b"later", b"v").await.unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
        assert!(err.to_string().contains("reopen"), "{err}");
        assert!(matches!(db.sync().await, Err(Error::Poisoned { .. })));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(
        sim.mutating_ops(),
        ops_after_failure,
        "nothing is written or synced again: no retry"
    );

    // Reads go on.
    assert_eq!(db.get(b"acked3").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(matches!(db.close().await, Err(Error::Poisoned { .. })));
    drop(db);

    // Reopening (after a power loss that keeps only synced data) brings back
    // every acked write and accepts writes again.
    let recovered = sim.recover_with(TearMode::DropAll);
    let db = Db::open(Path::new("/db"), Options::default().fs(recovered))
        .await
        .unwrap();
    for i in 0..10 {
        assert!(db.get(format!("acked{i}")).await.unwrap().is_some(), "acked{i}");
    }
    db.put(b"later", b"v").await.unwrap();
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_wal_write_fails_the_write_and_poisons_the_store() {
    for errno in [libc::EIO, libc::ENOSPC] {
        let store = TestStore::sim(12);
        let sim = store.sim.clone().unwrap();
        let db = store.open().await;
        db.put(b"before", b"v").await.unwrap();
        // NOTE: the WAL creates its next segment in the background; wait
        // until the disk is idle, so that the next mutating operation is
        // this put's WAL write and not a write of that spare segment.
        let seen = wait_until_idle(&sim).await;
        sim.fail_at_with_errno(seen, errno);
        let err = db.put(b"failing", b"v").await.unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(errno)),
            "{err:?}"
        );
        assert!(matches!(
            db.put(b"after", b"v").await,
            Err(Error::Poisoned { .. })
        ));
        assert_eq!(db.get(b"before").await.unwrap().as_deref(), Some(&b"v"[..]));
        // The failed write was never acknowledged, so it is not visible either.
        assert_eq!(db.get(b"failing").await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio_at_every_operation_never_acks_a_lost_write() {
    // Inject EIO at each mutating operation of open + 40 durable puts in turn.
    let dry = TestStore::sim(13);
    let db = dry.open().await;
    for i in 0..40 {
        db.put(format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    db.close().await.unwrap();
    let total = dry.sim.as_ref().unwrap().mutating_ops();
    for fail_at in 0..total {
        let store = TestStore::sim(13);
        let sim = store.sim.clone().unwrap();
        sim.fail_at(fail_at);
        let mut acked = 0;
        if let Ok(db) = Db::open(&store.dir, store.options.clone()).await {
            for i in 0..40 {
                match db.put(format!("k{i}"), format!("v{i}")).await {
                    Ok(()) => acked += 1,
                    Err(e) => {
                        assert!(
                            is_eio(&e) || matches!(e, Error::Poisoned { .. }),
                            "op {fail_at}: {e:?}"
                        );
                        break;
                    }
                }
            }
            let _ = db.close().await;
        }
        // What was acked is durable, in order.
        let db = Db::open(
            &store.dir,
            Options::default().fs(sim.recover_with(TearMode::DropAll)),
        )
        .await
        .unwrap_or_else(|e| panic!("EIO at op {fail_at}: reopen failed: {e}"));
        for i in 0..acked {
            assert_eq!(
                db.get(format!("k{i}")).await.unwrap().as_deref(),
                Some(format!("v{i}").as_bytes()),
                "EIO at op {fail_at}: acked k{i} lost"
            );
        }
        db.close().await.unwrap();
    }
}
