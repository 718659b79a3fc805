//! `ringdb crash-writer`: the child process of the SIGKILL crash test.
//!
//! The parent (in `tests/`) starts this command, waits for the line `ready`,
//! lets it write for a while, SIGKILLs it, reopens the store and checks that
//! every acknowledged write survived and that no batch is half applied.
//!
//! Protocol (stdout, one line per event, each written whole and flushed
//! before the next step):
//! - `ready` once the store is open, before any write.
//! - `begin {t} {n} put {key} {value}` / `begin {t} {n} del {key}` /
//!   `begin {t} {n} batch {value} {deleted_key}` before task `t` starts its
//!   op number `n`;
//! - the same line with `ack` instead of `begin` after the op resolved `Ok`
//!   (in `SyncMode::Always`, so after the fdatasync covering it);
//! - `err {t} {n} {error}` if the op failed; the process then exits with
//!   status 3.
//! - `stats {direct} {held}` every [`STATS_INTERVAL`]: the store's durable
//!   WAL writes so far that went through `O_DIRECT` and that were held for
//!   more writers, so the parent knows which write paths the kills hit.
//!
//! Task `t` writes only keys `t{t:03}-k{0..16}` and `t{t:03}-b{0..4}`:
//! - 60% put `t{t:03}-k{r}` = `t{t:03}-n{n}`;
//! - 20% delete `t{t:03}-k{r}`;
//! - 20% one batch: put `t{t:03}-b0`..`t{t:03}-b3` = `t{t:03}-n{n}` and
//!   delete `t{t:03}-k{r}`.
//!
//! Invariants:
//! - Each task has at most one op in flight, so after a crash the parent
//!   knows each task's state up to its last `begin` line.
//! - A task prints `ack` only after the op's future resolved `Ok`.
//! - Lines never interleave: each is written with one `write_all` under the
//!   stdout lock and flushed before the lock is released.

use std::error::Error as StdError;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use ringdb::{Db, Options, SyncMode, WriteBatch};

use crate::bench::IoArg;
use crate::rng::SplitMix64;

/// Exit status when an op returns an error (part of the protocol).
const EXIT_OP_FAILED: i32 = 3;

/// Exit status when stdout is gone (the parent died or closed the pipe), so
/// acknowledgements can no longer be reported.
const EXIT_STDOUT_FAILED: i32 = 4;

/// How often the `stats` line is printed.
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// Keys `t{t:03}-k{r}` per task: `r` is drawn from `0..KEYS_PER_TASK`.
const KEYS_PER_TASK: u64 = 16;

/// Keys `t{t:03}-b{i}` every batch puts.
const BATCH_KEYS: usize = 4;

/// Options of `ringdb crash-writer`.
#[derive(Debug, Args)]
pub struct CrashWriterArgs {
    /// The store to write to (created if missing).
    #[arg(long)]
    dir: PathBuf,

    /// Concurrent writer tasks.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1000))]
    tasks: u32,

    /// Seed of the tasks' operation choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// WAL segment size in bytes (small, so that segments rotate).
    #[arg(long, default_value_t = 1024 * 1024)]
    segment_size: u64,

    /// I/O backend for ringdb.
    #[arg(long, value_enum, default_value = "auto")]
    io: IoArg,

    /// Memtable size in bytes at which it is frozen and flushed to a table
    /// (small, so that a run spans many flushes). Default: the library's.
    #[arg(long)]
    write_buffer_size: Option<u64>,
}

/// One operation of a task, with the fields its protocol lines show.
#[derive(Debug)]
enum Op {
    Put { key: String, value: String },
    Delete { key: String },
    Batch { value: String, deleted_key: String },
}

impl Op {
    /// Draws op number `n` of task `task`.
    fn choose(rng: &mut SplitMix64, task: u32, n: u64) -> Op {
        let roll = rng.below(100);
        let key = format!("t{task:03}-k{}", rng.below(KEYS_PER_TASK));
        let value = format!("t{task:03}-n{n}");
        match roll {
            0..60 => Op::Put { key, value },
            60..80 => Op::Delete { key },
            _ => Op::Batch {
                value,
                deleted_key: key,
            },
        }
    }

    /// The protocol line for this op (without the newline).
    fn line(&self, event: &str, task: u32, n: u64) -> String {
        match self {
            Op::Put { key, value } => format!("{event} {task} {n} put {key} {value}"),
            Op::Delete { key } => format!("{event} {task} {n} del {key}"),
            Op::Batch { value, deleted_key } => format!("{event} {task} {n} batch {value} {deleted_key}"),
        }
    }

    /// Applies the op to `db`.
    async fn apply(&self, db: &Db, task: u32) -> ringdb::Result<()> {
        match self {
            Op::Put { key, value } => db.put(key, value).await,
            Op::Delete { key } => db.delete(key).await,
            Op::Batch { value, deleted_key } => {
                let mut batch = WriteBatch::new();
                for i in 0..BATCH_KEYS {
                    batch.put(format!("t{task:03}-b{i}"), value);
                }
                batch.delete(deleted_key);
                db.write(batch).await
            }
        }
    }
}

/// Opens the store, prints `ready` and writes until killed. Returns only if
/// opening fails or a task panics.
pub async fn run(args: CrashWriterArgs) -> Result<(), Box<dyn StdError + Send + Sync>> {
    let mut options = Options::default()
        .sync_mode(SyncMode::Always)
        .wal_segment_size_bytes(args.segment_size)
        .io_backend(args.io.into());
    if let Some(size_bytes) = args.write_buffer_size {
        options = options.write_buffer_size_bytes(size_bytes);
    }
    let db = Db::open(&args.dir, options).await?;
    emit("ready");

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.tasks {
        let db = db.clone();
        let seed = args.seed;
        tasks.spawn(async move { write_forever(db, task, seed).await });
    }
    let stats_db = db.clone();
    tasks.spawn(async move {
        loop {
            tokio::time::sleep(STATS_INTERVAL).await;
            let stats = stats_db.stats();
            emit(&format!(
                "stats {} {}",
                stats.wal_direct_writes, stats.wal_held_writes
            ));
        }
    });
    // NOTE: tasks never return; the first one to panic ends the process.
    while let Some(result) = tasks.join_next().await {
        result?;
    }
    Ok(())
}

/// Task `task`'s endless sequence of ops, one at a time.
async fn write_forever(db: Db, task: u32, seed: u64) {
    let mut rng = SplitMix64::for_stream(seed, u64::from(task));
    for n in 0u64.. {
        let op = Op::choose(&mut rng, task, n);
        emit(&op.line("begin", task, n));
        match op.apply(&db, task).await {
            Ok(()) => emit(&op.line("ack", task, n)),
            Err(e) => {
                // NOTE: keep the line a line even if an error message spans several.
                let message = e.to_string().replace('\n', " ");
                emit(&format!("err {task} {n} {message}"));
                std::process::exit(EXIT_OP_FAILED);
            }
        }
    }
}

/// Writes `line` and a newline to stdout in one write, and flushes.
///
/// NOTE: this blocks the runtime worker for the duration of a pipe write; the
/// parent reads continuously, and the protocol requires the `ack` to be out
/// before the task's next `begin`, so there is nothing to gain from a
/// background printer.
fn emit(line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(buf.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // NOTE: with stdout gone no acknowledgement can reach the parent;
        // writing on would only produce unreportable writes.
        std::process::exit(EXIT_STDOUT_FAILED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_protocol() {
        let put = Op::Put {
            key: "t007-k3".into(),
            value: "t007-n12".into(),
        };
        assert_eq!(put.line("begin", 7, 12), "begin 7 12 put t007-k3 t007-n12");
        let del = Op::Delete {
            key: "t007-k3".into(),
        };
        assert_eq!(del.line("ack", 7, 13), "ack 7 13 del t007-k3");
        let batch = Op::Batch {
            value: "t007-n14".into(),
            deleted_key: "t007-k1".into(),
        };
        assert_eq!(batch.line("ack", 7, 14), "ack 7 14 batch t007-n14 t007-k1");
    }

    #[test]
    fn op_mix_is_roughly_60_20_20() {
        let mut rng = SplitMix64::new(1);
        let (mut puts, mut dels, mut batches) = (0, 0, 0);
        for n in 0..10_000 {
            match Op::choose(&mut rng, 1, n) {
                Op::Put { .. } => puts += 1,
                Op::Delete { .. } => dels += 1,
                Op::Batch { .. } => batches += 1,
            }
        }
        assert!((5700..6300).contains(&puts), "{puts}");
        assert!((1700..2300).contains(&dels), "{dels}");
        assert!((1700..2300).contains(&batches), "{batches}");
    }
}
