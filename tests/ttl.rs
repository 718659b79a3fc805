//! TTL and compaction filters through the public API, with an injected
//! clock: an expired value is invisible to every read (gets, scans both
//! ways, snapshots) from the moment it expires, stays invisible through
//! flush, compaction and reopen, and hides the older versions of its key;
//! a compaction filter changes only what no snapshot can see.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use ringdb::clock::ManualClock;
use ringdb::io::sim::SimFs;
use ringdb::{CompactionFilter, Db, FilterDecision, Options, WriteBatch, WriteOptions};

fn options(sim: &Arc<SimFs>, clock: &Arc<ManualClock>) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(64 * 1024)
        .clock(clock.clone())
}

async fn keys(db: &Db) -> Vec<String> {
    let rows: Vec<_> = db.scan::<&[u8], _>(..).try_collect().await.unwrap();
    let forward: Vec<String> = rows
        .into_iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    let rows: Vec<_> = db.scan::<&[u8], _>(..).rev().try_collect().await.unwrap();
    let mut reverse: Vec<String> = rows
        .into_iter()
        .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    reverse.reverse();
    assert_eq!(forward, reverse);
    forward
}

#[tokio::test]
async fn per_write_ttl_expires_at_its_time_everywhere() {
    let sim = SimFs::new(1);
    let clock = Arc::new(ManualClock::new(1_000_000));
    let db = Db::open("/db", options(&sim, &clock)).await.unwrap();
    db.put(b"old", b"older version").await.unwrap();
    db.put(b"keep", b"forever").await.unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put(b"old", b"short-lived")
        .put(b"temp", b"t")
        .delete(b"none");
    db.write_opt(batch, WriteOptions::with_ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    let snapshot = db.snapshot();
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(
        db.get(b"old").await.unwrap().as_deref(),
        Some(&b"short-lived"[..])
    );
    assert_eq!(keys(&db).await, ["keep", "old", "temp"]);
    clock.advance(Duration::from_millis(1));
    // Expired: hidden, and the older version of `old` stays hidden too.
    for round in ["memtable", "table", "compacted", "reopened"] {
        assert_eq!(db.get(b"old").await.unwrap(), None, "{round}");
        assert_eq!(db.get(b"temp").await.unwrap(), None, "{round}");
        assert_eq!(keys(&db).await, ["keep"], "{round}");
        if round != "reopened" {
            assert_eq!(snapshot.get(b"temp").await.unwrap(), None, "{round}: snapshot");
            assert_eq!(
                snapshot.get(b"keep").await.unwrap().as_deref(),
                Some(&b"forever"[..])
            );
        }
        match round {
            "memtable" => db.flush().await.unwrap(),
            "table" => db.compact_range::<std::ops::RangeFull>(..).await.unwrap(),
            _ => {}
        }
        if round == "compacted" {
            break;
        }
    }
    drop(snapshot);
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    db.close().await.unwrap();
    let db = Db::open("/db", options(&sim, &clock)).await.unwrap();
    assert_eq!(keys(&db).await, ["keep"]);
    db.close().await.unwrap();
}

#[tokio::test]
async fn store_ttl_applies_to_puts_and_compaction_drops_expired_values() {
    let sim = SimFs::new(2);
    let clock = Arc::new(ManualClock::new(5_000));
    let db = Db::open("/db", options(&sim, &clock).ttl(Some(Duration::from_secs(60))))
        .await
        .unwrap();
    for i in 0..200u32 {
        db.put(format!("k{i:03}"), vec![b'v'; 100]).await.unwrap();
    }
    // A per-write TTL overrides the store's.
    db.write_opt(
        {
            let mut batch = WriteBatch::new();
            batch.put(b"long", b"l");
            batch
        },
        WriteOptions::with_ttl(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    db.flush().await.unwrap();
    // A second table over the same range, so compaction merges rather than
    // moves the first one down (a trivial move rewrites nothing).
    db.put(b"k000", b"again").await.unwrap();
    db.put(b"k199", b"again").await.unwrap();
    db.flush().await.unwrap();
    let before = db.stats().level_size_bytes.iter().sum::<u64>();
    clock.advance(Duration::from_secs(60));
    assert_eq!(keys(&db).await, ["long"]);
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    let after = db.stats().level_size_bytes.iter().sum::<u64>();
    assert!(
        after < before / 4,
        "compaction kept expired values: {before} -> {after} bytes"
    );
    assert_eq!(keys(&db).await, ["long"]);
    clock.advance(Duration::from_secs(3600));
    assert!(keys(&db).await.is_empty());
    db.close().await.unwrap();
}

#[derive(Debug)]
struct Redact;

impl CompactionFilter for Redact {
    fn name(&self) -> &str {
        "redact"
    }

    fn filter(&self, _level: usize, key: &[u8], _value: &[u8]) -> FilterDecision {
        if key.starts_with(b"tmp:") {
            FilterDecision::Remove
        } else if key.starts_with(b"secret:") {
            FilterDecision::ChangeValue(b"***".to_vec())
        } else {
            FilterDecision::Keep
        }
    }
}

#[tokio::test]
async fn compaction_filter_changes_only_what_no_snapshot_sees() {
    let sim = SimFs::new(3);
    let clock = Arc::new(ManualClock::new(0));
    let opts = options(&sim, &clock).compaction_filter(Arc::new(Redact));
    let db = Db::open("/db", opts).await.unwrap();
    db.put(b"tmp:a", b"1").await.unwrap();
    db.put(b"secret:b", b"pw").await.unwrap();
    db.put(b"plain", b"p").await.unwrap();
    let snapshot = db.snapshot();
    db.put(b"tmp:c", b"3").await.unwrap();
    db.flush().await.unwrap();
    // Overlapping tables, so compaction merges rather than moves.
    db.put(b"a", b"first").await.unwrap();
    db.put(b"z", b"last").await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    // The snapshot sees the first three unfiltered; the latest state sees
    // `tmp:c` removed (it is newer than every snapshot).
    assert_eq!(snapshot.get(b"tmp:a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        snapshot.get(b"secret:b").await.unwrap().as_deref(),
        Some(&b"pw"[..])
    );
    assert_eq!(db.get(b"tmp:c").await.unwrap(), None);
    assert_eq!(db.get(b"secret:b").await.unwrap().as_deref(), Some(&b"pw"[..]));
    drop(snapshot);
    db.put(b"a", b"again").await.unwrap();
    db.put(b"z", b"again").await.unwrap();
    db.flush().await.unwrap();
    db.compact_range::<std::ops::RangeFull>(..).await.unwrap();
    assert_eq!(db.get(b"tmp:a").await.unwrap(), None);
    assert_eq!(db.get(b"secret:b").await.unwrap().as_deref(), Some(&b"***"[..]));
    assert_eq!(keys(&db).await, ["a", "plain", "secret:b", "z"]);
    db.close().await.unwrap();
}
