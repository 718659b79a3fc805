//! The first five minutes with ringdb: open a store, put, get, delete, an
//! atomic batch, a range scan, a prefix scan, close.
//!
//! `cargo run --release --example quickstart -- [DIR]` runs it on DIR
//! (default: a fresh temporary directory, removed afterwards). `--smoke`
//! is accepted for CI and changes nothing: the example is short.

use futures::TryStreamExt as _;
use ringdb::{Db, Options, WriteBatch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir_arg = std::env::args().skip(1).find(|a| a != "--smoke");
    let temp = tempfile::tempdir()?;
    let dir = dir_arg.map_or_else(|| temp.path().to_path_buf(), Into::into);

    // Opening creates the directory and an empty store if there is none.
    let db = Db::open(&dir, Options::default()).await?;

    // A put resolves once the WAL sync covering it has completed: the
    // write survives a crash from then on.
    db.put("user:1", "alice").await?;
    db.put("user:2", "bob").await?;
    db.put("order:7", "2 apples").await?;
    assert_eq!(db.get("user:1").await?.as_deref(), Some(&b"alice"[..]));

    db.delete("user:2").await?;
    assert_eq!(db.get("user:2").await?, None);

    // A batch is applied whole or not at all, also across a crash.
    let mut batch = WriteBatch::new();
    batch
        .put("user:3", "carol")
        .put("user:4", "dave")
        .delete("order:7");
    db.write(batch).await?;

    // Scans are streams of (key, value) in key order; `.rev()` reverses.
    let users: Vec<_> = db.scan_prefix("user:").try_collect().await?;
    for (key, value) in &users {
        println!(
            "{} = {}",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(value)
        );
    }
    let keys: Vec<_> = users.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, ["user:1", "user:3", "user:4"]);
    let last_two: Vec<_> = db.scan("user:2".."user:9").rev().try_collect().await?;
    assert_eq!(last_two.len(), 2);
    assert_eq!(last_two[0].0, "user:4");

    let stats = db.stats();
    println!(
        "{} WAL syncs for {} durable batches, io backend {}",
        stats.wal_syncs, stats.wal_synced_batches, stats.io_backend
    );

    // Close syncs what is buffered, stops ringdb's threads and releases the
    // store's lock.
    db.close().await?;
    println!("quickstart: ok");
    Ok(())
}
