//! Behaviour of the public API, on every I/O backend: put, get, delete,
//! batches, reopen, sync modes, size limits, close, one open store per
//! directory.

mod common;

use common::TestStore;
use ringdb::{Error, SyncMode, WriteBatch, WriteOptions};

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_get_delete_and_reopen_on_every_backend(store: TestStore) {
        let db = store.open().await;
        db.put(b"k1", b"v1").await.unwrap();
        db.put(b"k2", b"v2").await.unwrap();
        db.put(b"k1", b"v1b").await.unwrap();
        db.delete(b"k2").await.unwrap();
        db.delete(b"never-written").await.unwrap();
        assert_eq!(
            db.get(b"k1").await.unwrap().as_deref(),
            Some(&b"v1b"[..]),
            "{}",
            store.name
        );
        assert_eq!(db.get(b"k2").await.unwrap(), None, "{}", store.name);
        assert_eq!(db.get(b"k3").await.unwrap(), None, "{}", store.name);
        let stats = db.stats();
        assert_eq!(stats.io_backend, store.name);
        assert!(stats.wal_syncs >= 1 && stats.wal_synced_batches == 5, "{stats:?}");
        db.close().await.unwrap();
        assert!(matches!(db.put(b"k", b"v").await, Err(Error::Closed)));
        // Reads keep working after close.
        assert_eq!(db.get(b"k1").await.unwrap().as_deref(), Some(&b"v1b"[..]));
        drop(db);

        let db = store.open().await;
        assert_eq!(
            db.get(b"k1").await.unwrap().as_deref(),
            Some(&b"v1b"[..]),
            "{} after reopen",
            store.name
        );
        assert_eq!(db.get(b"k2").await.unwrap(), None, "{} after reopen", store.name);
        // Seqnos continue after reopen: a new write wins over the recovered one.
        db.put(b"k1", b"v1c").await.unwrap();
        db.close().await.unwrap();
        drop(db);
        let db = store.open().await;
        assert_eq!(
            db.get(b"k1").await.unwrap().as_deref(),
            Some(&b"v1c"[..]),
            "{}",
            store.name
        );
        db.close().await.unwrap();
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_apply_atomically_and_in_order(store: TestStore) {
        let db = store.open().await;
        db.put(b"b", b"old").await.unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b"a", b"1").delete(b"b").put(b"c", b"3").put(b"a", b"2");
        assert_eq!(batch.len(), 4);
        db.write(batch).await.unwrap();
        db.write(WriteBatch::new()).await.unwrap(); // empty: a no-op
        for db in [db.clone(), {
            db.close().await.unwrap();
            drop(db);
            store.open().await
        }] {
            // The later put in the same batch wins.
            assert_eq!(
                db.get(b"a").await.unwrap().as_deref(),
                Some(&b"2"[..]),
                "{}",
                store.name
            );
            assert_eq!(db.get(b"b").await.unwrap(), None);
            assert_eq!(db.get(b"c").await.unwrap().as_deref(), Some(&b"3"[..]));
        }
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_writers_share_syncs_and_rotate_segments(store: TestStore) {
        let db = store.open().await;
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let value = vec![b'x'; 200 + i];
                        db.put(format!("t{t}-{i}"), &value).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let stats = db.stats();
        assert_eq!(stats.wal_synced_batches, 64 * 50, "{}: {stats:?}", store.name);
        // Group commit: fewer syncs than writes.
        assert!(stats.wal_syncs < 64 * 50, "{}: {stats:?}", store.name);
        db.close().await.unwrap();
        drop(db);
        let db = store.open().await;
        for t in 0..64 {
            for i in 0..50 {
                let value = db.get(format!("t{t}-{i}")).await.unwrap().unwrap();
                assert_eq!(value.len(), 200 + i, "{}", store.name);
            }
        }
        db.close().await.unwrap();
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn non_durable_modes_are_visible_at_once_and_durable_after_sync(new_store: fn() -> TestStore) {
        for mode in [
            SyncMode::Buffered,
            SyncMode::Interval(std::time::Duration::from_millis(5)),
        ] {
            let mut store = new_store();
            store.options = store.options.clone().sync_mode(mode);
            let db = store.open().await;
            for i in 0..100 {
                db.put(format!("k{i}"), format!("v{i}")).await.unwrap();
                // Read-your-writes, with no sync in between.
                assert_eq!(
                    db.get(format!("k{i}")).await.unwrap().unwrap(),
                    format!("v{i}").as_bytes()
                );
            }
            // Per-write override: this one waits for its sync.
            db.write_opt(
                {
                    let mut b = WriteBatch::new();
                    b.put(b"durable", b"yes");
                    b
                },
                WriteOptions::with_sync_mode(SyncMode::Always),
            )
            .await
            .unwrap();
            db.sync().await.unwrap();
            if let Some(sim) = &store.sim {
                // After sync, everything survives a power loss that drops all
                // unsynced data.
                let recovered = sim.recover_with(ringdb::io::sim::TearMode::DropAll);
                let db2 = ringdb::Db::open(&store.dir, ringdb::Options::default().fs(recovered))
                    .await
                    .unwrap();
                for i in 0..100 {
                    assert!(db2.get(format!("k{i}")).await.unwrap().is_some(), "{mode:?} k{i}");
                }
                assert!(db2.get(b"durable").await.unwrap().is_some());
                continue;
            }
            db.close().await.unwrap();
            drop(db);
            let db = store.open().await;
            assert_eq!(
                db.get(b"k99").await.unwrap().as_deref(),
                Some(&b"v99"[..]),
                "{}",
                store.name
            );
            db.close().await.unwrap();
        }
    }
}

#[tokio::test]
async fn oversized_keys_and_values_are_rejected_with_clear_errors() {
    let store = TestStore::sim(1);
    let db = store.open().await;
    let big_key = vec![0u8; ringdb::limits::MAX_KEY_SIZE_BYTES + 1];
    let err = db.put(&big_key, b"v").await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "key", .. }), "{err}");
    let big_value = vec![0u8; ringdb::limits::MAX_VALUE_SIZE_BYTES + 1];
    let err = db.put(b"k", &big_value).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "value", .. }), "{err}");
    assert!(err.to_string().contains("exceeds the limit"));
    // The largest allowed sizes work.
    let key = vec![1u8; ringdb::limits::MAX_KEY_SIZE_BYTES];
    let value = vec![2u8; ringdb::limits::MAX_VALUE_SIZE_BYTES];
    db.put(&key, &value).await.unwrap();
    assert_eq!(db.get(&key).await.unwrap().unwrap().len(), value.len());
}

#[test]
fn works_from_futures_block_on_without_tokio() {
    let store = TestStore::uring();
    futures::executor::block_on(async {
        let db = store.open().await;
        db.put(b"a", b"b").await.unwrap();
        assert_eq!(db.get(b"a").await.unwrap().as_deref(), Some(&b"b"[..]));
        db.sync().await.unwrap();
        db.close().await.unwrap();
    });
}

#[test]
fn public_futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    fn assert_db<T: Clone + Send + Sync + 'static>() {}
    assert_db::<ringdb::Db>();
    let store = TestStore::sim(3);
    futures::executor::block_on(async {
        let db = store.open().await;
        let key = b"borrowed".to_vec();
        let fut = db.put(&key, &key);
        assert_send_static(&fut);
        fut.await.unwrap();
        let open = ringdb::Db::open(store.dir.clone(), store.options.clone());
        assert_send_static(&open);
        drop(open);
        let fut = db.get(&key);
        assert_send_static(&fut);
        assert!(fut.await.unwrap().is_some());
        assert_send_static(&db.delete(&key));
        assert_send_static(&db.write(WriteBatch::new()));
        assert_send_static(&db.sync());
        assert_send_static(&db.flush());
        assert_send_static(&db.compact_range::<std::ops::RangeFull>(..));
        // The future owns what it needs: it outlives the handle and the key.
        let fut = {
            let handle = db.clone();
            let key = b"dropped".to_vec();
            handle.put(&key, &key)
        };
        fut.await.unwrap();
        assert!(db.get(b"dropped").await.unwrap().is_some());
        assert_send_static(&db.close());
    });
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_opens_once_at_a_time_on_every_backend(store: TestStore) {
        let db = store.open().await;
        db.put(b"k", b"v").await.unwrap();
        let second = ringdb::Db::open(&store.dir, store.options.clone()).await;
        match second {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::WouldBlock, "{}", store.name);
            }
            other => panic!("{}: a second open must fail, got {other:?}", store.name),
        }
        // The refused open changed nothing; close releases the lock.
        assert_eq!(db.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
        db.close().await.unwrap();
        let again = store.open().await;
        assert_eq!(
            again.get(b"k").await.unwrap().as_deref(),
            Some(&b"v"[..]),
            "{}",
            store.name
        );
        drop(again);
        // Dropping every handle without close releases it too, once the
        // store's own tasks have stopped (until then, opening is refused).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reopened = loop {
            match ringdb::Db::open(&store.dir, store.options.clone()).await {
                Ok(db) => break db,
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::WouldBlock
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(e) => panic!("{}: reopen after drop: {e:?}", store.name),
            }
        };
        assert_eq!(reopened.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
        reopened.close().await.unwrap();
    }
}

/// A child forked while a store is open shares its `LOCK` descriptor (and
/// with it the `flock`) until it execs or exits, whichever thread forked it.
/// Closing the store must release the lock all the same.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_releases_the_lock_while_a_forked_child_holds_a_copy() {
    let store = TestStore::uring();
    let db = store.open().await;
    db.put(b"k", b"v").await.unwrap();
    // SAFETY: the child only calls async-signal-safe functions (`pause`,
    // `_exit`) before the parent kills it.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        unsafe {
            libc::pause();
            libc::_exit(0);
        }
    }
    db.close().await.unwrap();
    drop(db);
    let reopened = ringdb::Db::open(&store.dir, store.options.clone()).await;
    // SAFETY: `child` is our own child process.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
    let reopened = reopened.expect("the closed store opens again while the child lives");
    assert_eq!(reopened.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    reopened.close().await.unwrap();
}
