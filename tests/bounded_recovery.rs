//! Bounded recovery: `Options::max_wal_size_bytes` caps the WAL a reopen
//! replays, however large the write buffer.
//!
//! Scenario, on every backend: a write buffer far larger than the data, a
//! small `max_wal_size_bytes`, and 16 writers making durable puts in
//! rounds. While they write, the WAL segment files in the directory (what
//! a reopen would read: the unflushed memtables' segments and the spare),
//! sampled every millisecond, stay within the documented bound; the store then crashes (a power loss
//! on the simulated disk, a drop without close on a real one) and reopens
//! with every acknowledged write. The control, on the simulated disk: the
//! same writes without the limit flush nothing and leave the WAL past the
//! bound.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::TestStore;
use ringdb::io::sim::SimFs;
use ringdb::{Db, Error, Options};

const SEGMENT_SIZE_BYTES: u64 = 64 * 1024;
const MAX_WAL_SIZE_BYTES: u64 = 512 * 1024;
const MAX_IMMUTABLE_MEMTABLES: u64 = 2;
const WRITERS: u64 = 16;
const PUTS_PER_WRITER_PER_ROUND: u64 = 16;
const ROUNDS: u64 = 16;
const VALUE_SIZE_BYTES: usize = 1000;
/// A put's WAL record (header, batch framing, key, value) is smaller.
const MAX_RECORD_BYTES: u64 = 1100;

/// Bytes of WAL segment files the store may hold: the bound on records of
/// `Options::max_wal_size_bytes` (the limit, a batch per memtable and one
/// per writer), spread over segments that each waste less than a record at
/// their end, plus the zeros preallocated past the last record of each
/// memtable and the spare segment (at most a segment each).
const MAX_WAL_FILE_BYTES: u64 = {
    let records = MAX_WAL_SIZE_BYTES + (MAX_IMMUTABLE_MEMTABLES + 1 + WRITERS) * MAX_RECORD_BYTES;
    records * SEGMENT_SIZE_BYTES / (SEGMENT_SIZE_BYTES - MAX_RECORD_BYTES)
        + (MAX_IMMUTABLE_MEMTABLES + 2) * SEGMENT_SIZE_BYTES
};

fn options(base: &Options, max_wal_size_bytes: Option<u64>) -> Options {
    base.clone()
        .wal_segment_size_bytes(SEGMENT_SIZE_BYTES)
        .write_buffer_size_bytes(1 << 30)
        .max_immutable_memtables(MAX_IMMUTABLE_MEMTABLES as usize)
        .max_wal_size_bytes(max_wal_size_bytes)
}

fn key(writer: u64, i: u64) -> String {
    format!("w{writer:02}-{i:04}")
}

fn value(writer: u64, i: u64) -> Vec<u8> {
    let mut value = vec![b'a' + (writer % 26) as u8; VALUE_SIZE_BYTES];
    value[..8].copy_from_slice(&i.to_be_bytes());
    value
}

/// Bytes of the `.wal` files in the directory `dir` of the simulated disk
/// `sim`, or of the real filesystem.
fn wal_file_bytes(sim: Option<&SimFs>, dir: &Path) -> u64 {
    let is_wal = |path: &Path| path.extension().is_some_and(|e| e == "wal");
    match sim {
        Some(sim) => sim
            .list_files()
            .iter()
            .filter(|p| p.parent() == Some(dir) && is_wal(p))
            .map(|p| sim.read_file(p).map_or(0, |b| b.len() as u64))
            .sum(),
        None => std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| is_wal(&e.path()))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum(),
    }
}

/// Runs the rounds of durable puts while a task samples the WAL files
/// every millisecond; returns the most WAL file bytes it saw.
async fn write_rounds(db: &Db, store: &TestStore) -> u64 {
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, sim, dir) = (Arc::clone(&done), store.sim.clone(), store.dir.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::Acquire) {
                most = most.max(wal_file_bytes(sim.as_deref(), &dir));
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            most.max(wal_file_bytes(sim.as_deref(), &dir))
        })
    };
    for round in 0..ROUNDS {
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let db = db.clone();
                tokio::spawn(async move {
                    let first = round * PUTS_PER_WRITER_PER_ROUND;
                    for i in first..first + PUTS_PER_WRITER_PER_ROUND {
                        db.put(key(writer, i), value(writer, i)).await.unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    }
    done.store(true, Ordering::Release);
    sampler.await.unwrap()
}

async fn assert_every_write(db: &Db, name: &str) {
    for writer in 0..WRITERS {
        for i in 0..ROUNDS * PUTS_PER_WRITER_PER_ROUND {
            let got = db.get(key(writer, i)).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(&value(writer, i)[..]),
                "{name}: {}",
                key(writer, i)
            );
        }
    }
}

/// Opens the store after a drop without close, once the dropped handle's
/// tasks have released the lock.
async fn reopen_after_drop(store: &TestStore, options: Options) -> Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Db::open(&store.dir, options.clone()).await {
            Ok(db) => return db,
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(e) => panic!("{}: reopen after drop: {e:?}", store.name),
        }
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_and_a_crash_keeps_every_acknowledged_write(store: TestStore) {
        let options = options(&store.options, Some(MAX_WAL_SIZE_BYTES));
        let db = Db::open(&store.dir, options.clone()).await.unwrap();
        let most = write_rounds(&db, &store).await;
        let written = db.stats().wal_bytes_written;
        assert!(written > 4 * MAX_WAL_FILE_BYTES, "{}: {written}", store.name);
        assert!(
            most <= MAX_WAL_FILE_BYTES,
            "{}: {most} bytes of WAL files, bound {MAX_WAL_FILE_BYTES}",
            store.name
        );
        // Only the WAL limit freezes memtables here: the buffer never fills.
        let flushes = db.stats().flushes;
        eprintln!(
            "{}: {written} bytes of WAL written, at most {most} in WAL files \
             (bound {MAX_WAL_FILE_BYTES}), {flushes} flushes",
            store.name
        );
        assert!(flushes >= written / MAX_WAL_SIZE_BYTES, "{}: {flushes}", store.name);

        let db = match &store.sim {
            Some(sim) => {
                sim.crash_now();
                drop(db);
                let recovered = sim.recover();
                Db::open(&store.dir, options.fs(recovered)).await.unwrap()
            }
            None => {
                drop(db);
                reopen_after_drop(&store, options).await
            }
        };
        assert_every_write(&db, store.name).await;
        db.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_limit_the_same_writes_leave_the_wal_past_the_bound() {
    let store = TestStore::sim_default();
    let db = Db::open(&store.dir, options(&store.options, None)).await.unwrap();
    let most = write_rounds(&db, &store).await;
    assert_eq!(db.stats().flushes, 0);
    assert!(most > 4 * MAX_WAL_FILE_BYTES, "{most}");
    db.close().await.unwrap();
}

#[test]
fn the_default_limit_is_set_and_the_builder_clears_it() {
    assert_eq!(Options::default().max_wal_size_bytes, Some(512 * 1024 * 1024));
    assert_eq!(
        Options::default().max_wal_size_bytes(None).max_wal_size_bytes,
        None
    );
}
