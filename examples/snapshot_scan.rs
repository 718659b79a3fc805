//! Snapshots: a consistent view for a long read (a report, a backup) while
//! writers keep changing the store.
//!
//! A writer bumps every counter of a "generation" by one, in one batch per
//! generation; a snapshot taken at any moment holds all counters at the
//! same generation, however long the scan of it takes and however many
//! generations the writer commits meanwhile. A flush and a compaction
//! during the scan do not change what the snapshot shows.
//!
//! `cargo run --release --example snapshot_scan -- [--smoke]`: 1,000
//! counters and 200 generations (`--smoke`: 100 and 20).

use futures::TryStreamExt as _;
use ringdb::{Db, Options, WriteBatch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn write_generation(db: &Db, counters: u32, generation: u64) -> Result<(), BoxError> {
    let mut batch = WriteBatch::new();
    for i in 0..counters {
        batch.put(format!("counter:{i:05}"), generation.to_string());
    }
    Ok(db.write(batch).await?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (counters, generations) = if smoke { (100u32, 20u64) } else { (1_000, 200) };
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default()).await?;
    write_generation(&db, counters, 0).await?;

    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for generation in 1..=generations {
                write_generation(&db, counters, generation).await?;
            }
            Ok::<_, BoxError>(())
        })
    };

    let mut checked = 0;
    loop {
        let done = writer.is_finished();
        let snapshot = db.snapshot();
        // Reads through the snapshot see its moment, even after a flush.
        db.flush().await?;
        let rows: Vec<_> = snapshot.scan("counter:".."counter;").try_collect().await?;
        assert_eq!(rows.len(), counters as usize);
        let first = &rows[0].1;
        assert!(
            rows.iter().all(|(_, v)| v == first),
            "a snapshot mixed two generations"
        );
        let last_key = format!("counter:{:05}", counters - 1);
        assert_eq!(snapshot.get(&last_key).await?.as_ref(), Some(first));
        checked += 1;
        if done {
            assert_eq!(
                first,
                &generations.to_string(),
                "the last snapshot sees the last generation"
            );
            break;
        }
    }
    writer.await??;
    db.compact_range(..).await?;
    let newest: Vec<_> = db.scan_prefix("counter:").try_collect().await?;
    assert!(newest.iter().all(|(_, v)| v == &generations.to_string()));
    db.close().await?;
    println!("snapshot_scan: {checked} snapshots of {counters} counters, each at one generation: ok");
    Ok(())
}
