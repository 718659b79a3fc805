//! Range deletes through the public API: `delete_range` and
//! `WriteBatch::delete_range` hide every older version of every key in the
//! range from `get`, scans in both directions and snapshots, wherever the
//! tombstone and the versions live (memtable, level 0, deeper levels), across
//! a reopen; compaction drops what they cover, and (bottommost, no snapshot
//! needing it) the tombstone too.

mod common;

use std::sync::Arc;

use futures::TryStreamExt;
use ringdb::io::sim::SimFs;
use ringdb::merge::Append;
use ringdb::{Db, Options, WriteBatch};

fn key(i: u32) -> String {
    format!("k{i:04}")
}

async fn get(db: &Db, key: &str) -> Option<String> {
    db.get(key)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

async fn keys_forward(db: &Db) -> Vec<String> {
    let rows: Vec<_> = db.scan::<&[u8], _>(..).try_collect().await.unwrap();
    rows.into_iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect()
}

async fn keys_reverse(db: &Db) -> Vec<String> {
    let rows: Vec<_> = db.scan::<&[u8], _>(..).rev().try_collect().await.unwrap();
    let mut keys: Vec<String> = rows
        .into_iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    keys.reverse();
    keys
}

/// Keys `0..100` except `10..20` and `50..60`.
fn expected_after_deletes() -> Vec<String> {
    (0..100)
        .filter(|i| !(10..20).contains(i) && !(50..60).contains(i))
        .map(key)
        .collect()
}

async fn check_reads(db: &Db, stage: &str) {
    let expected = expected_after_deletes();
    assert_eq!(keys_forward(db).await, expected, "forward scan {stage}");
    assert_eq!(keys_reverse(db).await, expected, "reverse scan {stage}");
    for i in 0..100 {
        let want = expected.contains(&key(i)).then(|| format!("v{i}"));
        assert_eq!(get(db, &key(i)).await, want, "get {} {stage}", key(i));
    }
    // A scan starting inside a deleted range.
    let rows: Vec<_> = db.scan(key(12)..key(22)).try_collect().await.unwrap();
    let got: Vec<String> = rows
        .into_iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    assert_eq!(got, vec![key(20), key(21)], "bounded scan {stage}");
}

backend_tests! {
    #[tokio::test]
    async fn deleted_ranges_stay_deleted_through_flush_compaction_and_reopen(store: TestStore) {
        let db = store.open().await;
        for i in 0..100 {
            db.put(key(i), format!("v{i}")).await.unwrap();
        }
        // One range over keys in a table, one over keys still in the memtable.
        db.flush().await.unwrap();
        db.delete_range(key(10)..key(20)).await.unwrap();
        let mut batch = WriteBatch::new();
        batch.delete_range(key(50), key(60)).put(key(55), "back");
        db.write(batch).await.unwrap();
        // Within the batch, the put comes after the range delete: it stays.
        assert_eq!(get(&db, &key(55)).await.as_deref(), Some("back"));
        db.delete(key(55)).await.unwrap();
        check_reads(&db, "in the memtable").await;
        db.flush().await.unwrap();
        check_reads(&db, "after a flush").await;
        db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
        check_reads(&db, "after a full compaction").await;
        db.close().await.unwrap();
        drop(db);
        let db = store.open().await;
        check_reads(&db, "after a reopen").await;
        // Writes after the range delete are visible.
        db.put(key(15), "new").await.unwrap();
        assert_eq!(get(&db, &key(15)).await.as_deref(), Some("new"));
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_range_delete_survives_a_crash_through_the_wal() {
    let sim = SimFs::new(3);
    let db = Db::open("/db", Options::default().fs(sim.clone())).await.unwrap();
    for i in 0..100 {
        db.put(key(i), format!("v{i}")).await.unwrap();
    }
    db.delete_range(key(10)..key(20)).await.unwrap();
    db.delete_range(key(50)..key(60)).await.unwrap();
    // No close: the store reopens from its WAL after a power cut.
    let disk = sim.recover();
    drop(db);
    let db = Db::open("/db", Options::default().fs(disk)).await.unwrap();
    check_reads(&db, "after a crash").await;
    db.close().await.unwrap();
}

#[tokio::test]
async fn snapshots_see_what_was_there_before_the_range_delete() {
    let sim = SimFs::new(4);
    let db = Db::open("/db", Options::default().fs(sim.clone())).await.unwrap();
    for i in 0..10 {
        db.put(key(i), "old").await.unwrap();
    }
    let before = db.snapshot();
    db.delete_range(key(2)..key(8)).await.unwrap();
    let after = db.snapshot();
    db.put(key(5), "new").await.unwrap();
    for stage in ["memtable", "tables"] {
        assert_eq!(
            before.get(key(3)).await.unwrap().as_deref(),
            Some(&b"old"[..]),
            "{stage}"
        );
        assert_eq!(after.get(key(3)).await.unwrap(), None, "{stage}");
        assert_eq!(after.get(key(5)).await.unwrap(), None, "{stage}");
        assert_eq!(get(&db, &key(5)).await.as_deref(), Some("new"), "{stage}");
        let seen: Vec<_> = before.scan::<&[u8], _>(..).try_collect().await.unwrap();
        assert_eq!(seen.len(), 10, "{stage}");
        let seen: Vec<_> = after.scan::<&[u8], _>(..).rev().try_collect().await.unwrap();
        assert_eq!(seen.len(), 4, "{stage}");
        // Compaction must keep what the snapshots still see.
        db.flush().await.unwrap();
        db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    }
    drop(before);
    drop(after);
    db.close().await.unwrap();
}

/// Bottommost, with no snapshot, a full compaction drops the covered
/// versions and the tombstone with them: nothing is left of the range.
#[tokio::test]
async fn compaction_reclaims_the_deleted_range() {
    let sim = SimFs::new(5);
    let db = Db::open("/db", Options::default().fs(sim.clone())).await.unwrap();
    let value = vec![7u8; 1000];
    for i in 0..2000 {
        db.put(key(i), &value).await.unwrap();
    }
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    let full: u64 = db.stats().level_size_bytes.iter().sum();
    db.delete_range(key(0)..key(1990)).await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    let after: u64 = db.stats().level_size_bytes.iter().sum();
    assert!(after * 20 < full, "{after} bytes left of {full}");
    assert_eq!(keys_forward(&db).await.len(), 10);
    // A range delete over keys that were never there leaves no table.
    db.delete_range("x".."y").await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert_eq!(db.stats().level_tables.iter().sum::<usize>(), 1);
    db.close().await.unwrap();
}

/// Compaction outputs split at their target size each carry their part of
/// a tombstone, and reads stay right across the split.
#[tokio::test]
async fn split_compaction_outputs_share_a_range_tombstone() {
    let sim = SimFs::new(6);
    let options = Options::default()
        .fs(sim.clone())
        .target_file_size_bytes(64 * 1024)
        .write_buffer_size_bytes(256 * 1024);
    let db = Db::open("/db", options).await.unwrap();
    let value = vec![1u8; 500];
    let snapshot = db.snapshot();
    for i in 0..1000 {
        db.put(key(i), &value).await.unwrap();
    }
    // Kept by the snapshot, the covered versions stay, so outputs split
    // inside the deleted range.
    let snap_after_puts = db.snapshot();
    db.delete_range(key(100)..key(900)).await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert!(db.stats().level_tables.iter().sum::<usize>() > 2);
    let keys = keys_forward(&db).await;
    let expected: Vec<String> = (0..100).chain(900..1000).map(key).collect();
    assert_eq!(keys, expected);
    assert_eq!(keys_reverse(&db).await, expected);
    for i in (0..1000).step_by(7) {
        let want = !(100..900).contains(&i);
        assert_eq!(db.get(key(i)).await.unwrap().is_some(), want, "{}", key(i));
        assert!(snap_after_puts.get(key(i)).await.unwrap().is_some());
    }
    let seen: Vec<_> = snapshot.scan::<&[u8], _>(..).try_collect().await.unwrap();
    assert!(seen.is_empty());
    db.close().await.unwrap();
}

/// A merge operand after a range delete folds onto nothing; one before it
/// is deleted with the rest.
#[tokio::test]
async fn merges_fold_onto_nothing_below_a_range_delete() {
    let sim = SimFs::new(7);
    let options = Options::default()
        .fs(sim.clone())
        .merge_operator(Arc::new(Append {
            separator: b",".to_vec(),
        }));
    let db = Db::open("/db", options).await.unwrap();
    db.put("m", "base").await.unwrap();
    db.merge("m", "a").await.unwrap();
    db.delete_range("l".."n").await.unwrap();
    db.merge("m", "b").await.unwrap();
    db.merge("m", "c").await.unwrap();
    for stage in ["memtable", "tables", "compacted"] {
        assert_eq!(get(&db, "m").await.as_deref(), Some("b,c"), "{stage}");
        let rows: Vec<_> = db.scan::<&[u8], _>(..).rev().try_collect().await.unwrap();
        assert_eq!(rows.len(), 1, "{stage}");
        assert_eq!(&rows[0].1[..], b"b,c", "{stage}");
        match stage {
            "memtable" => db.flush().await.unwrap(),
            _ => db.compact_range::<std::ops::RangeFull>(..).await.unwrap(),
        }
    }
    db.close().await.unwrap();
}
