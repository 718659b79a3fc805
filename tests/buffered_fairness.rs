//! Non-durable writes are fair to other tasks: a buffered put never waits,
//! so without a yield a task writing in a loop would keep its thread.
//!
//! Scenario: 64 tasks on one thread (a current-thread tokio runtime, and
//! `futures`' `LocalPool`), each doing 200 buffered puts in a loop, on the
//! simulated disk. Every put takes the next number of one shared counter;
//! every task must make its first put, and each next one, within a bound
//! of puts by the others (counted, not timed).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ringdb::io::sim::SimFs;
use ringdb::{Db, Options, SyncMode};

const TASKS: u64 = 64;
const PUTS_PER_TASK: u64 = 200;

/// The most puts the other tasks may make between two of one task's: each
/// of the 63 others runs at most one yield interval (128 puts) per turn,
/// plus one put each for slack.
const MAX_GAP: u64 = TASKS * 128 + TASKS;

async fn open() -> Db {
    let sim = SimFs::new(41);
    let options = Options::default()
        .fs(sim.clone())
        .sync_mode(SyncMode::Buffered)
        .wal_segment_size_bytes(1024 * 1024);
    Db::open("/db", options).await.unwrap()
}

/// One task's loop of puts; returns the most puts the others made between
/// two of its own.
async fn put_loop(db: Db, counter: Arc<AtomicU64>, task: u64) -> u64 {
    let mut last = 0;
    let mut worst_gap = 0;
    for n in 0..PUTS_PER_TASK {
        db.put(format!("t{task:02}-{n:03}"), b"v").await.unwrap();
        let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
        worst_gap = worst_gap.max(now - last);
        last = now;
    }
    worst_gap
}

fn check(gaps: &[u64], bound: u64, executor: &str) {
    assert_eq!(gaps.len() as u64, TASKS);
    for (task, gap) in gaps.iter().enumerate() {
        assert!(
            *gap <= bound,
            "{executor}: task {task} waited {gap} puts of the others (bound {bound})"
        );
    }
    let worst = gaps.iter().max().copied().unwrap_or(0);
    eprintln!("buffered_fairness ({executor}): worst gap {worst} puts (bound {bound})");
}

#[test]
fn buffered_writers_on_one_tokio_thread_all_make_progress() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = open().await;
        let counter = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..TASKS)
            .map(|task| tokio::spawn(put_loop(db.clone(), Arc::clone(&counter), task)))
            .collect();
        let mut gaps = Vec::new();
        for handle in handles {
            gaps.push(handle.await.unwrap());
        }
        check(&gaps, MAX_GAP, "tokio");
        db.close().await.unwrap();
    });
}

#[test]
fn buffered_writers_on_another_executor_all_make_progress() {
    use futures::task::LocalSpawnExt;
    let mut pool = futures::executor::LocalPool::new();
    let spawner = pool.spawner();
    let db = pool.run_until(open());
    let counter = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..TASKS)
        .map(|task| {
            spawner
                .spawn_local_with_handle(put_loop(db.clone(), Arc::clone(&counter), task))
                .unwrap()
        })
        .collect();
    let gaps = pool.run_until(futures::future::join_all(handles));
    check(&gaps, MAX_GAP, "LocalPool");
    pool.run_until(db.close()).unwrap();
}
