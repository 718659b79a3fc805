//! Many short lives of one store do not make it grow: after every restart
//! the WAL holds at most the segments of one life, and the store's bytes
//! stay bounded, whether each life ends with a close or a kill.
//!
//! Scenario, on the simulated disk: 40 lives; each opens the store,
//! overwrites the same 50 keys (so the data itself does not grow), and ends
//! with `close` or, every other life, a kill (all durable state kept, no
//! clean close recorded). After each life the test counts the WAL segment
//! files and the bytes of every file in the store, and checks every key.

mod common;

use std::path::Path;
use std::sync::Arc;

use ringdb::io::sim::{SimFs, TearMode};
use ringdb::{Db, Options};

const SEGMENT_SIZE_BYTES: u64 = 256 * 1024;
const LIVES: usize = 40;
const KEYS: usize = 50;

/// Most WAL segment files after a life: the one it wrote to and the spare
/// it prepared (a kill leaves both).
const MAX_WAL_SEGMENTS: usize = 2;

/// Most bytes the store may hold: the WAL segments plus a generous allowance
/// for tables (level 0 up to its compaction trigger) and the manifest.
const MAX_STORE_BYTES: u64 = MAX_WAL_SEGMENTS as u64 * SEGMENT_SIZE_BYTES + 512 * 1024;

fn options(sim: &Arc<SimFs>) -> Options {
    Options::default()
        .fs(sim.clone())
        .wal_segment_size_bytes(SEGMENT_SIZE_BYTES)
}

fn value(life: usize, i: usize) -> String {
    format!("life{life:03}-key{i:03}-{}", "z".repeat(60))
}

#[tokio::test]
async fn restarts_do_not_pile_up_wal_segments_or_bytes() {
    let mut sim = SimFs::new(31);
    let mut most_segments = 0;
    let mut most_bytes = 0;
    for life in 0..LIVES {
        let db = Db::open("/db", options(&sim)).await.unwrap();
        for i in 0..KEYS {
            assert_eq!(
                db.get(format!("key{i:03}")).await.unwrap().map(|v| v.to_vec()),
                life.checked_sub(1).map(|last| value(last, i).into_bytes()),
                "life {life}, key {i}"
            );
            db.put(format!("key{i:03}"), value(life, i)).await.unwrap();
        }
        if life % 2 == 0 {
            db.close().await.unwrap();
            drop(db);
        } else {
            sim.crash_now();
            drop(db);
            sim = sim.recover_with(TearMode::KeepAll);
        }
        let files = sim.list_files();
        let segments = files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".wal"))
            .count();
        let bytes: u64 = files
            .iter()
            .filter(|p| p.parent() == Some(Path::new("/db")))
            .map(|p| sim.read_file(p).map_or(0, |b| b.len() as u64))
            .sum();
        assert!(
            segments <= MAX_WAL_SEGMENTS,
            "life {life}: {segments} WAL segments: {files:?}"
        );
        assert!(bytes <= MAX_STORE_BYTES, "life {life}: {bytes} bytes: {files:?}");
        most_segments = most_segments.max(segments);
        most_bytes = most_bytes.max(bytes);
    }
    eprintln!("restarts: {LIVES} lives, at most {most_segments} WAL segments and {most_bytes} bytes");
}
