//! Non-durable writes are fair to other tasks: a buffered put never waits,
//! so without a yield a task writing in a loop would keep its thread.
//!
//! Scenario: 64 tasks on a current-thread runtime, each doing 200 buffered
//! puts in a loop, on the simulated disk. Every put takes the next number
//! of one shared counter; every task must make its first put, and each next
//! one, within a bound of puts by the others (counted, not timed).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ringdb::io::sim::SimFs;
use ringdb::{Db, Options, SyncMode};

const TASKS: u64 = 64;
const PUTS_PER_TASK: u64 = 200;

/// The most puts the other tasks may make between two of one task's: each
/// of the 63 others runs at most a yield interval (32 puts) per turn, plus
/// one put each for slack.
const MAX_GAP: u64 = TASKS * 32 + TASKS;

#[test]
fn buffered_writers_on_one_thread_all_make_progress() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sim = SimFs::new(41);
        let options = Options::default()
            .fs(sim.clone())
            .sync_mode(SyncMode::Buffered)
            .wal_segment_size_bytes(1024 * 1024);
        let db = Db::open("/db", options).await.unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let (db, counter) = (db.clone(), Arc::clone(&counter));
            handles.push(tokio::spawn(async move {
                let mut last = 0;
                let mut worst_gap = 0;
                for n in 0..PUTS_PER_TASK {
                    db.put(format!("t{task:02}-{n:03}"), b"v").await.unwrap();
                    let now = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    worst_gap = worst_gap.max(now - last);
                    last = now;
                }
                worst_gap
            }));
        }
        let mut worst = 0;
        for (task, handle) in handles.into_iter().enumerate() {
            let gap = handle.await.unwrap();
            assert!(
                gap <= MAX_GAP,
                "task {task} waited {gap} puts of the others (bound {MAX_GAP})"
            );
            worst = worst.max(gap);
        }
        eprintln!("buffered_fairness: worst gap {worst} puts (bound {MAX_GAP})");
        db.close().await.unwrap();
    });
}
