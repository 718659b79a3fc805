//! Atomic batches: money moves between accounts with one `WriteBatch` per
//! transfer (debit and credit together), from many tasks at once, and the
//! total never changes: not while transfers run, not after a reopen.
//!
//! `cargo run --release --example batch -- [--smoke]`: 8 tasks of 200
//! transfers each (`--smoke`: 4 of 20).
//!
//! The transfers of one account are serialized by its task (each task owns
//! a disjoint set of accounts), so a read-modify-write is safe without
//! locks; the batch makes each transfer atomic against crashes and
//! readers.

use std::sync::Arc;

use futures::TryStreamExt as _;
use ringdb::{Db, Options, WriteBatch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ACCOUNTS_PER_TASK: u64 = 4;
const START_BALANCE: u64 = 1_000;

fn account(task: u64, n: u64) -> String {
    format!("acct:{task:03}:{n}")
}

async fn balance(db: &Db, key: &str) -> Result<u64, BoxError> {
    let value = db.get(key).await?.ok_or("missing account")?;
    Ok(std::str::from_utf8(&value)?.parse()?)
}

/// The sum of every account's balance, read through one scan (a
/// consistent view).
async fn total(db: &Db) -> Result<u64, BoxError> {
    let rows: Vec<_> = db.scan_prefix("acct:").try_collect().await?;
    rows.iter()
        .map(|(_, v)| Ok(std::str::from_utf8(v)?.parse::<u64>()?))
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (tasks, transfers) = if smoke { (4u64, 20u64) } else { (8, 200) };
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default()).await?;

    let mut open = WriteBatch::new();
    for task in 0..tasks {
        for n in 0..ACCOUNTS_PER_TASK {
            open.put(account(task, n), START_BALANCE.to_string());
        }
    }
    db.write(open).await?;
    let expected = tasks * ACCOUNTS_PER_TASK * START_BALANCE;

    let db = Arc::new(db);
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                for i in 0..transfers {
                    let from = account(task, i % ACCOUNTS_PER_TASK);
                    let to = account(task, (i + 1) % ACCOUNTS_PER_TASK);
                    let amount = 1 + i % 7;
                    let (a, b) = (balance(&db, &from).await?, balance(&db, &to).await?);
                    if a < amount {
                        continue;
                    }
                    let mut transfer = WriteBatch::new();
                    transfer
                        .put(&from, (a - amount).to_string())
                        .put(&to, (b + amount).to_string());
                    db.write(transfer).await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    // Readers see every transfer whole or not at all.
    while !workers.iter().all(|w| w.is_finished()) {
        assert_eq!(total(&db).await?, expected, "a scan saw half a transfer");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for worker in workers {
        worker.await??;
    }
    assert_eq!(total(&db).await?, expected);
    db.close().await?;

    // After a reopen (which replays the WAL), the books still balance.
    let db = Db::open(dir.path(), Options::default()).await?;
    assert_eq!(total(&db).await?, expected);
    println!(
        "batch: {} transfers across {} accounts, total {expected} before and after reopen: ok",
        tasks * transfers,
        tasks * ACCOUNTS_PER_TASK
    );
    db.close().await?;
    Ok(())
}
