//! Merge operators through the public API: reads fold operands onto the
//! base in every read path (memtable, tables, snapshots, scans both ways),
//! compaction folds them without changing what any reader sees, and a
//! store holding operands refuses to read them without an operator.

use std::sync::Arc;

use futures::TryStreamExt;
use ringdb::io::sim::SimFs;
use ringdb::merge::{Append, U64Add};
use ringdb::{Db, Error, Options, WriteBatch};

fn options(sim: &Arc<SimFs>) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(64 * 1024)
        .merge_operator(Arc::new(Append {
            separator: b",".to_vec(),
        }))
}

fn u64_le(value: u64) -> [u8; 8] {
    value.to_le_bytes()
}

async fn scan_all(db: &Db) -> Vec<(String, String)> {
    let rows: Vec<_> = db.scan::<&[u8], _>(..).try_collect().await.unwrap();
    rows.into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

async fn scan_all_rev(db: &Db) -> Vec<(String, String)> {
    let rows: Vec<_> = db.scan::<&[u8], _>(..).rev().try_collect().await.unwrap();
    let mut rows: Vec<_> = rows
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

async fn get(db: &Db, key: &str) -> Option<String> {
    db.get(key)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[tokio::test]
async fn counter_adds_across_memtable_flush_and_compaction() {
    let sim = SimFs::new(1);
    let db = Db::open("/db", options(&sim).merge_operator(Arc::new(U64Add)))
        .await
        .unwrap();
    db.put(b"c", u64_le(10)).await.unwrap();
    for _ in 0..5 {
        db.merge(b"c", u64_le(1)).await.unwrap();
    }
    db.merge(b"fresh", u64_le(7)).await.unwrap();
    assert_eq!(db.get(b"c").await.unwrap().as_deref(), Some(&u64_le(15)[..]));
    db.flush().await.unwrap();
    db.merge(b"c", u64_le(100)).await.unwrap();
    assert_eq!(db.get(b"c").await.unwrap().as_deref(), Some(&u64_le(115)[..]));
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert_eq!(db.get(b"c").await.unwrap().as_deref(), Some(&u64_le(115)[..]));
    assert_eq!(db.get(b"fresh").await.unwrap().as_deref(), Some(&u64_le(7)[..]));
    db.close().await.unwrap();
}

#[tokio::test]
async fn append_reads_the_same_from_every_path_before_and_after_compaction() {
    let sim = SimFs::new(2);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    db.put(b"a", b"a0").await.unwrap();
    db.merge(b"a", b"a1").await.unwrap();
    db.merge(b"b", b"b1").await.unwrap();
    db.flush().await.unwrap();
    db.merge(b"b", b"b2").await.unwrap();
    db.delete(b"a").await.unwrap();
    db.merge(b"a", b"a2").await.unwrap();
    let snapshot = db.snapshot();
    let mut batch = WriteBatch::new();
    batch.merge(b"a", b"a3").merge(b"c", b"c1").put(b"d", b"d0");
    db.write(batch).await.unwrap();
    db.flush().await.unwrap();
    db.merge(b"d", b"d1").await.unwrap();

    let expected = vec![
        ("a".to_owned(), "a2,a3".to_owned()),
        ("b".to_owned(), "b1,b2".to_owned()),
        ("c".to_owned(), "c1".to_owned()),
        ("d".to_owned(), "d0,d1".to_owned()),
    ];
    let snapshot_expected = [("a", "a2"), ("b", "b1,b2")];
    for round in ["before compaction", "after compaction", "after reopen"] {
        assert_eq!(scan_all(&db).await, expected, "{round}");
        assert_eq!(scan_all_rev(&db).await, expected, "{round}");
        for (key, value) in &expected {
            assert_eq!(get(&db, key).await.as_deref(), Some(value.as_str()), "{round}");
        }
        if round != "after reopen" {
            for (key, value) in snapshot_expected {
                let got = snapshot.get(key).await.unwrap();
                assert_eq!(got.as_deref(), Some(value.as_bytes()), "{round}: snapshot {key}");
            }
            assert_eq!(snapshot.get(b"c").await.unwrap(), None, "{round}");
            let rows: Vec<_> = snapshot.scan::<&[u8], _>(..).try_collect().await.unwrap();
            assert_eq!(rows.len(), 2, "{round}");
        }
        if round == "before compaction" {
            db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
        } else if round == "after compaction" {
            drop(snapshot.clone());
            db.close().await.unwrap();
        }
        if round == "after compaction" {
            break;
        }
    }
    drop(snapshot);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_eq!(scan_all(&db).await, expected, "after reopen");
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert_eq!(
        scan_all(&db).await,
        expected,
        "after a compaction with no snapshot"
    );
    assert_eq!(scan_all_rev(&db).await, expected);
    db.close().await.unwrap();
}

#[tokio::test]
async fn reading_operands_without_an_operator_is_a_clear_error() {
    let sim = SimFs::new(3);
    let db = Db::open("/db", options(&sim)).await.unwrap();
    db.put(b"plain", b"v").await.unwrap();
    db.merge(b"m", b"x").await.unwrap();
    db.close().await.unwrap();
    drop(db);
    let mut bare = options(&sim);
    bare.merge_operator = None;
    let db = Db::open("/db", bare).await.unwrap();
    assert_eq!(db.get(b"plain").await.unwrap().as_deref(), Some(&b"v"[..]));
    let error = db.get(b"m").await.unwrap_err();
    assert!(matches!(error, Error::MergeFailed { .. }), "{error}");
    assert!(error.to_string().contains("merge_operator"), "{error}");
    let scanned: Result<Vec<_>, _> = db.scan::<&[u8], _>(..).try_collect().await;
    assert!(matches!(scanned, Err(Error::MergeFailed { .. })));
    // Compaction keeps what it cannot fold; the store stays writable.
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    db.put(b"after", b"ok").await.unwrap();
    db.close().await.unwrap();
    let db = Db::open("/db", options(&sim)).await.unwrap();
    assert_eq!(get(&db, "m").await.as_deref(), Some("x"));
    db.close().await.unwrap();
}

#[tokio::test]
async fn a_failing_operator_reports_the_key() {
    let sim = SimFs::new(4);
    let db = Db::open("/db", options(&sim).merge_operator(Arc::new(U64Add)))
        .await
        .unwrap();
    db.put(b"k", b"not a u64").await.unwrap();
    db.merge(b"k", u64_le(1)).await.unwrap();
    let error = db.get(b"k").await.unwrap_err();
    assert!(
        matches!(&error, Error::MergeFailed { key, .. } if &key[..] == b"k"),
        "{error}"
    );
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert!(matches!(db.get(b"k").await, Err(Error::MergeFailed { .. })));
    db.close().await.unwrap();
}

#[test]
fn merge_future_is_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    futures::executor::block_on(async {
        let sim = SimFs::new(5);
        let db = Db::open("/db", options(&sim)).await.unwrap();
        let fut = {
            let key = b"borrowed".to_vec();
            db.merge(&key, &key)
        };
        assert_send_static(&fut);
        fut.await.unwrap();
        assert_eq!(
            db.get(b"borrowed").await.unwrap().as_deref(),
            Some(&b"borrowed"[..])
        );
        db.close().await.unwrap();
    });
}
