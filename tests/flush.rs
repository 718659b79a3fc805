//! Memtables flush to tables: data survives reopen through the manifest,
//! deletes shadow flushed values, flushed WAL segments are removed, a get
//! of an absent key that the bloom filters reject reads no data block, and
//! damage in a table is corruption to a get or a scan, never wrong data;
//! a flush drops the versions no reader can see.

mod common;

use common::TestStore;

fn value_of(i: usize) -> String {
    format!("value-{i:05}-{}", "v".repeat(i % 50))
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopen_after_many_flushes_returns_everything_on_every_backend(mut store: TestStore) {
        store.options = store.options.clone().write_buffer_size_bytes(16 * 1024);
        let db = store.open().await;
        for i in 0..3000 {
            db.put(format!("key-{i:05}"), value_of(i)).await.unwrap();
        }
        for i in (0..3000).step_by(3) {
            db.delete(format!("key-{i:05}")).await.unwrap();
        }
        db.flush().await.unwrap();
        let stats = db.stats();
        assert!(stats.flushes >= 5, "{}: {stats:?}", store.name);
        // Compaction may already have merged level 0 into level 1.
        let tables: usize = stats.level_tables.iter().sum();
        assert!(tables >= 1, "{}: {stats:?}", store.name);
        assert_eq!(stats.immutable_memtables, 0);
        db.close().await.unwrap();
        drop(db);

        let db = store.open().await;
        for i in 0..3000 {
            let got = db.get(format!("key-{i:05}")).await.unwrap();
            if i % 3 == 0 {
                assert_eq!(got, None, "{}: key-{i:05} was deleted", store.name);
            } else {
                assert_eq!(
                    got.as_deref(),
                    Some(value_of(i).as_bytes()),
                    "{}: key-{i:05}",
                    store.name
                );
            }
        }
        // Newer writes shadow tables; they survive another reopen.
        db.put(b"key-00001", b"new").await.unwrap();
        db.close().await.unwrap();
        drop(db);
        let db = store.open().await;
        assert_eq!(db.get(b"key-00001").await.unwrap().as_deref(), Some(&b"new"[..]));
        db.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_wal_segments_are_removed() {
    let mut store = TestStore::sim(21);
    store.options = store
        .options
        .clone()
        .write_buffer_size_bytes(8 * 1024)
        .wal_segment_size_bytes(4096);
    let sim = store.sim.clone().unwrap();
    let db = store.open().await;
    for i in 0..2000 {
        db.put(format!("key-{i:05}"), value_of(i)).await.unwrap();
    }
    db.flush().await.unwrap();
    let wal_files = |sim: &ringdb::io::sim::SimFs| {
        sim.list_files()
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".wal"))
            .count()
    };
    let flushes = db.stats().flushes;
    assert!(flushes >= 5, "{flushes} flushes");
    // Thousands of records went through dozens of 4 KiB segments; only the
    // live one (and at most one more being rotated in) remains.
    assert!(wal_files(&sim) <= 2, "{} WAL segments left", wal_files(&sim));
    db.close().await.unwrap();
    // Everything was flushed, so the live segment and the spare hold no
    // record: a clean close gives their preallocated space back.
    assert_eq!(wal_files(&sim), 0);
    let db = store.open().await;
    assert_eq!(
        db.get(b"key-01999").await.unwrap().as_deref(),
        Some(value_of(1999).as_bytes())
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_keys_rejected_by_bloom_filters_read_no_data_block() {
    let mut store = TestStore::sim(22);
    store.options = store.options.clone().write_buffer_size_bytes(64 * 1024);
    let db = store.open().await;
    for i in 0..4000 {
        db.put(format!("key-{:05}", i * 2), value_of(i)).await.unwrap();
    }
    db.flush().await.unwrap();
    db.close().await.unwrap();
    drop(db);
    let db = store.open().await;
    let before = db.stats();
    let mut found = 0;
    // Odd numbers were never written; they lie inside every table's key range.
    for i in 0..4000 {
        found += usize::from(db.get(format!("key-{:05}", i * 2 + 1)).await.unwrap().is_some());
    }
    let after = db.stats();
    assert_eq!(found, 0);
    let negatives = after.bloom_negatives - before.bloom_negatives;
    let reads = after.block_reads - before.block_reads;
    // About 1% false positives per table at 10 bits per key: allow a few.
    assert!(negatives >= 3900, "bloom negatives {negatives}");
    assert!(reads <= 4000 / 20, "block reads {reads} for absent keys");
    // A present key does read a block.
    assert!(db.get(b"key-00002").await.unwrap().is_some());
    assert!(
        db.stats().block_reads > after.block_reads || db.stats().block_cache_hits > after.block_cache_hits
    );
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flipped_bit_in_a_table_is_corruption_or_correct_data() {
    use ringdb::io::sim::TearMode;
    let mut store = TestStore::sim(23);
    store.options = store.options.clone().block_cache_size_bytes(0);
    let sim = store.sim.clone().unwrap();
    let db = store.open().await;
    for i in 0..300 {
        db.put(format!("key-{i:05}"), value_of(i)).await.unwrap();
    }
    db.flush().await.unwrap();
    db.close().await.unwrap();
    drop(db);
    let table = sim
        .list_files()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".sst"))
        .unwrap();
    let size = sim.read_file(&table).unwrap().len();
    let (mut corruptions, mut clean) = (0, 0);
    for byte in 0..size {
        let disk = sim.recover_with(TearMode::KeepAll);
        assert!(disk.flip_bit(&table, byte as u64, (byte % 8) as u8));
        let db = ringdb::Db::open(&store.dir, store.options.clone().fs(disk))
            .await
            .unwrap();
        let mut saw_corruption = false;
        for i in 0..300 {
            match db.get(format!("key-{i:05}")).await {
                Ok(Some(value)) => assert_eq!(value, value_of(i).as_bytes(), "flip at byte {byte}"),
                Ok(None) => panic!("flip at byte {byte}: key-{i:05} silently missing"),
                Err(e) => {
                    assert!(e.is_corruption(), "flip at byte {byte}: {e:?}");
                    saw_corruption = true;
                }
            }
        }
        if saw_corruption {
            corruptions += 1
        } else {
            clean += 1
        }
        drop(db);
    }
    // Every byte of a table is covered by a checksum.
    assert_eq!(
        clean, 0,
        "{clean} flips went unnoticed, {corruptions} were caught"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_over_a_damaged_table_yields_the_entries_before_the_damage_then_one_error() {
    use futures::StreamExt;
    use ringdb::io::sim::TearMode;
    let mut store = TestStore::sim(29);
    store.options = store.options.clone().block_cache_size_bytes(0);
    let sim = store.sim.clone().unwrap();
    let db = store.open().await;
    let count = 300;
    for i in 0..count {
        db.put(format!("key-{i:05}"), value_of(i)).await.unwrap();
    }
    db.flush().await.unwrap();
    db.close().await.unwrap();
    drop(db);
    let table = sim
        .list_files()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".sst"))
        .unwrap();
    let size = sim.read_file(&table).unwrap().len();
    let mut most_before_error = 0;
    // Bytes in the first, second and third data block, more or less.
    for byte in [size / 8, size / 4, size * 3 / 8] {
        let disk = sim.recover_with(TearMode::KeepAll);
        assert!(disk.flip_bit(&table, byte as u64, 3));
        let db = ringdb::Db::open(&store.dir, store.options.clone().fs(disk))
            .await
            .unwrap();
        for reverse in [false, true] {
            let mut scan = db.scan::<&[u8], _>(..);
            if reverse {
                scan = scan.rev();
            }
            let mut expected = (0..count)
                .map(|i| (format!("key-{i:05}"), value_of(i)))
                .collect::<Vec<_>>();
            if reverse {
                expected.reverse();
            }
            let mut seen = 0;
            let error = loop {
                match scan.next().await {
                    Some(Ok((key, value))) => {
                        let (expected_key, expected_value) = &expected[seen];
                        assert_eq!(key, expected_key.as_bytes(), "flip at {byte}, reverse {reverse}");
                        assert_eq!(value, expected_value.as_bytes());
                        seen += 1;
                    }
                    Some(Err(error)) => break error,
                    None => panic!("flip at byte {byte} went unnoticed by a scan (reverse {reverse})"),
                }
            };
            assert!(error.is_corruption(), "{error:?}");
            assert!(scan.next().await.is_none(), "a scan ends after its error");
            most_before_error = most_before_error.max(seen);
        }
        db.close().await.unwrap();
    }
    // Some damage lay past a first batch of entries, which came out first.
    assert!(most_before_error > 16, "{most_before_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_keeps_only_versions_some_reader_can_see() {
    let store = TestStore::sim(21);
    let db = store.open().await;
    let value = |i: usize| format!("{i:04}").repeat(256); // 1 KiB
    db.put(b"k", value(0)).await.unwrap();
    let snapshot = db.snapshot();
    for i in 1..1000 {
        db.put(b"k", value(i)).await.unwrap();
    }
    db.flush().await.unwrap();
    // Two versions of 1 KiB (the snapshot's and the newest), not 1,000.
    let written = db.stats().flush_bytes_written;
    assert!(written < 8 * 1024, "flush wrote {written} bytes");
    assert_eq!(snapshot.get(b"k").await.unwrap().unwrap(), value(0).as_bytes());
    assert_eq!(db.get(b"k").await.unwrap().unwrap(), value(999).as_bytes());
    drop(snapshot);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_reads_as_of_its_creation_across_a_flush() {
    use futures::TryStreamExt;
    let store = TestStore::sim(22);
    let db = store.open().await;
    db.put(b"k", b"old").await.unwrap();
    // Created, not yet polled: it must read as of now, even after the flush
    // below keeps only the newest version of "k".
    let scan = db.scan::<&[u8], _>(..);
    db.put(b"k", b"new").await.unwrap();
    db.flush().await.unwrap();
    let rows: Vec<(bytes::Bytes, bytes::Bytes)> = scan.try_collect().await.unwrap();
    assert_eq!(rows, vec![(bytes::Bytes::from("k"), bytes::Bytes::from("old"))]);
    assert_eq!(db.get(b"k").await.unwrap().unwrap(), &b"new"[..]);
    db.close().await.unwrap();
}
