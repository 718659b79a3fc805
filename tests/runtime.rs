//! Where a store runs: the store's runtime is the tokio runtime that opened
//! it, or a thread of ringdb's own when opened outside one.
//!
//! Scenarios: a store used from a runtime other than the one that opened it
//! and from `block_on`; a store opened outside any runtime; the runtime that
//! opened a store shuts down while handles remain (every call returns, with
//! a clear error where it needs that runtime, and a reopen finds every
//! acknowledged write).

mod common;

use common::TestStore;
use ringdb::{Db, Error};

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

backend_tests! {
    #[test]
    fn a_store_serves_other_runtimes_and_block_on(store: TestStore) {
        let opener = multi_thread_runtime();
        let db = opener.block_on(store.open());
        let other = multi_thread_runtime();
        other.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|task| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        for i in 0..20 {
                            db.put(format!("t{task}-{i}"), format!("v{i}")).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        futures::executor::block_on(async {
            db.put(b"from-block-on", b"yes").await.unwrap();
            db.flush().await.unwrap();
            assert_eq!(
                db.get(b"t15-19").await.unwrap().as_deref(),
                Some(&b"v19"[..]),
                "{}",
                store.name
            );
            assert_eq!(
                db.get(b"from-block-on").await.unwrap().as_deref(),
                Some(&b"yes"[..])
            );
        });
        opener.block_on(db.close()).unwrap();
    }
}

#[test]
fn a_store_opened_outside_a_runtime_works_from_anywhere() {
    let store = TestStore::uring();
    let db: Db = futures::executor::block_on(store.open());
    futures::executor::block_on(async {
        for i in 0..50 {
            db.put(format!("k{i}"), format!("v{i}")).await.unwrap();
        }
    });
    let runtime = multi_thread_runtime();
    runtime.block_on(async {
        assert_eq!(db.get(b"k49").await.unwrap().as_deref(), Some(&b"v49"[..]));
        db.put(b"from-tokio", b"1").await.unwrap();
    });
    futures::executor::block_on(db.close()).unwrap();
    drop(db);
    let db = futures::executor::block_on(store.open());
    assert_eq!(
        futures::executor::block_on(db.get(b"from-tokio"))
            .unwrap()
            .as_deref(),
        Some(&b"1"[..])
    );
    futures::executor::block_on(db.close()).unwrap();
}

#[test]
fn the_opening_runtime_shutting_down_fails_calls_cleanly_and_loses_nothing() {
    let store = TestStore::uring();
    let opener = multi_thread_runtime();
    let db = opener.block_on(store.open());
    opener.block_on(async {
        for i in 0..100 {
            db.put(format!("k{i:03}"), format!("v{i}")).await.unwrap();
        }
    });
    drop(opener);
    // A durable write needs the WAL task, which ran on that runtime.
    let error = futures::executor::block_on(db.put(b"late", b"x")).unwrap_err();
    match &error {
        Error::Poisoned { cause } => assert!(cause.to_string().contains("runtime"), "{error}"),
        other => panic!("expected a poisoned store naming the runtime, got {other}"),
    }
    // What is in memory still reads.
    assert_eq!(
        futures::executor::block_on(db.get(b"k099")).unwrap().as_deref(),
        Some(&b"v99"[..])
    );
    // Closing returns (with the cause), and releases the store.
    assert!(futures::executor::block_on(db.close()).is_err());
    drop(db);
    let runtime = multi_thread_runtime();
    runtime.block_on(async {
        let db = store.open().await;
        for i in 0..100 {
            let key = format!("k{i:03}");
            let expected = format!("v{i}");
            assert_eq!(
                db.get(&key).await.unwrap().as_deref(),
                Some(expected.as_bytes()),
                "{key}"
            );
        }
        assert_eq!(db.get(b"late").await.unwrap(), None);
        db.close().await.unwrap();
    });
}
