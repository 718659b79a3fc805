//! Online checkpoints: the copy opens as a store of its own and holds every
//! write acknowledged before the call, on every backend, while writers go
//! on, and after a power loss that follows the call; the original and the
//! copy are independent afterwards.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use ringdb::io::sim::{SimFs, TearMode};
use ringdb::merge::Append;
use ringdb::{Db, Error, Options};

async fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let rows: Vec<_> = db.scan::<&[u8], _>(..).try_collect().await.unwrap();
    rows.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

fn with_merge(options: Options) -> Options {
    options
        .merge_operator(Arc::new(Append {
            separator: b",".to_vec(),
        }))
        .write_buffer_size_bytes(4096)
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoint_opens_with_the_same_contents_on_every_backend(store: TestStore) {
        let options = with_merge(store.options.clone());
        let db = Db::open(&store.dir, options.clone()).await.unwrap();
        for i in 0..300u32 {
            db.put(format!("k{i:04}"), vec![b'v'; 50]).await.unwrap();
            if i % 7 == 0 {
                db.merge(format!("k{:04}", i / 2), format!("m{i}")).await.unwrap();
            }
            if i % 11 == 0 {
                db.delete(format!("k{:04}", i / 3)).await.unwrap();
            }
        }
        db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
        db.put(b"in-wal", b"only").await.unwrap();
        let expected = contents(&db).await;
        assert!(
            db.stats().flushes > 0,
            "{}: the data must span tables and the WAL",
            store.name
        );
        let target = store.dir.with_file_name("checkpoint");
        db.checkpoint(&target).await.unwrap();
        // Independent afterwards: later writes stay out of the copy.
        db.put(b"after", b"x").await.unwrap();
        let copy = Db::open(&target, options.clone()).await.unwrap();
        assert_eq!(contents(&copy).await, expected, "{}", store.name);
        copy.put(b"copy-only", b"y").await.unwrap();
        assert_eq!(db.get(b"copy-only").await.unwrap(), None);
        copy.close().await.unwrap();
        // A second checkpoint into the same directory is refused.
        let error = db.checkpoint(&target).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidOptions(_)),
            "{}: {error}",
            store.name
        );
        db.close().await.unwrap();
        let reopened = Db::open(&store.dir, options).await.unwrap();
        assert_eq!(reopened.get(b"after").await.unwrap().as_deref(), Some(&b"x"[..]));
        reopened.close().await.unwrap();
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoint_during_writes_holds_every_write_acked_before_the_call(store: TestStore) {
        let options = with_merge(store.options.clone());
        let db = Db::open(&store.dir, options.clone()).await.unwrap();
        const WRITERS: usize = 4;
        let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (db, acked, stop) = (db.clone(), Arc::clone(&acked), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        db.put(format!("w{w}-{n:06}"), vec![b'x'; 64]).await.unwrap();
                        db.merge(format!("w{w}-log"), n.to_string()).await.unwrap();
                        n += 1;
                        acked[w].store(n, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        while acked.iter().map(|a| a.load(Ordering::SeqCst)).min() < Some(50) {
            tokio::task::yield_now().await;
        }
        let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        let target = store.dir.with_file_name("checkpoint");
        db.checkpoint(&target).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        db.close().await.unwrap();
        let copy = Db::open(&target, options).await.unwrap();
        for (w, &acked_before) in before.iter().enumerate() {
            // Each writer's puts are a prefix of its sequence holding every
            // put acked before the call, and its merge log matches it.
            let puts: Vec<_> = copy
                .scan_prefix(format!("w{w}-0"))
                .try_collect::<Vec<_>>()
                .await
                .unwrap();
            let count = puts.len() as u64;
            assert!(
                count >= acked_before,
                "{}: writer {w}: {count} < {acked_before}",
                store.name
            );
            for (n, (key, _)) in puts.iter().enumerate() {
                assert_eq!(&key[..], format!("w{w}-{n:06}").as_bytes());
            }
            let log = copy.get(format!("w{w}-log")).await.unwrap().unwrap();
            let entries: Vec<String> = String::from_utf8(log.to_vec())
                .unwrap()
                .split(',')
                .map(str::to_owned)
                .collect();
            let expected: Vec<String> = (0..entries.len()).map(|n| n.to_string()).collect();
            assert_eq!(entries, expected, "{}: writer {w}", store.name);
            assert!(entries.len() as u64 >= acked_before && entries.len() as u64 <= count + 1);
        }
        copy.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_survives_a_power_loss_after_the_call() {
    let dir = Path::new("/db");
    let target = Path::new("/backup");
    for (seed, mode) in [
        (1, TearMode::DropAll),
        (2, TearMode::Random),
        (3, TearMode::KeepAll),
    ] {
        let sim = SimFs::new(seed);
        let options = with_merge(
            Options::default()
                .fs(sim.clone())
                .wal_segment_size_bytes(16 * 1024),
        );
        let db = Db::open(dir, options.clone()).await.unwrap();
        for i in 0..200u32 {
            db.put(format!("k{i:04}"), format!("v{i}")).await.unwrap();
            db.merge(b"log", format!("{i}")).await.unwrap();
        }
        let expected = contents(&db).await;
        db.checkpoint(target).await.unwrap();
        sim.crash_now();
        drop(db);
        let sim = sim.recover_with(mode);
        let copy = Db::open(target, with_merge(Options::default().fs(sim.clone())))
            .await
            .unwrap();
        assert_eq!(contents(&copy).await, expected, "{mode:?}");
        copy.close().await.unwrap();
    }
}

#[test]
fn checkpoint_future_is_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    futures::executor::block_on(async {
        let sim = SimFs::new(9);
        let db = Db::open("/db", Options::default().fs(sim.clone())).await.unwrap();
        db.put(b"k", b"v").await.unwrap();
        let fut = {
            let target = std::path::PathBuf::from("/backup");
            db.checkpoint(&target)
        };
        assert_send_static(&fut);
        fut.await.unwrap();
        db.close().await.unwrap();
        let copy = Db::open("/backup", Options::default().fs(sim)).await.unwrap();
        assert_eq!(copy.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
        copy.close().await.unwrap();
    });
}
