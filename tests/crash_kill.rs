//! SIGKILL crash test: a real writer process killed mid-write, over and over,
//! on one store.
//!
//! Scenario: one store directory lives through every cycle, so each recovery
//! starts from the files the previous recovery and kill left behind (a
//! recovered store's WAL, torn tails from earlier kills, many segments). Each
//! cycle spawns `ringdb crash-writer` on it with 192 tasks, durable writes
//! (`SyncMode::Always`) and 64 KiB WAL segments so they rotate; waits for
//! `ready`; lets it write for a seeded random 10..400 ms; SIGKILLs it; reads
//! every protocol line it wrote before dying (they are all in the pipe); then
//! opens the store in this process on the default backend and checks each
//! task's keys against the state read after the previous cycle plus that
//! task's log: every acked op must be there, and at most the one op in flight
//! at the kill on top, applied whole. So no acked write is lost, no batch is
//! half applied and nothing lands out of order, across many crash–recover
//! generations of the same files.
//!
//! Every third cycle starts the kill clock when the child is spawned instead
//! of when it is ready, with a delay drawn below the time the previous child
//! took from spawn to `ready`, so that kills land while the child opens the
//! store (recovery, the flush of what it replayed, the new
//! manifest, the sweep): a store killed during open must open again and hold
//! everything. The test checks that some kills did land before `ready`.
//!
//! A second test runs the same cycles with 8 writers: few enough that the
//! WAL writes each group through its `O_DIRECT` handle and holds groups for
//! returning writers, paths the 192 writers take only while they ramp up
//! (they write through the `O_DSYNC` handle).
//! The child reports how many direct writes it made, and the test checks
//! that the kills hit some (where the filesystem has `O_DIRECT`).
//!
//! `RINGDB_CRASH_CYCLES` sets the number of cycles (default 50; 25 for the
//! few-writers test) and
//! `RINGDB_CRASH_SEED` the seed of the writer seeds and kill delays (default
//! fixed, so a failure reproduces up to the kill timing). On a failure the
//! store directory is kept and its path printed.

#![cfg(unix)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Op, OpGen, State, TaskLog, check_task, read_task_state};
use ringdb::{Db, Options};

/// Writer tasks in the child; each owns its own keys. More than four times
/// the default `wal_pipeline_min_writers`, so that durable writes go
/// through the `O_DSYNC` handle once the first syncs have counted them.
const TASKS: usize = 192;

/// Writer tasks in the few-writers test: at most the default
/// `wal_pipeline_min_writers`, so that they take the direct-write path.
const FEW_TASKS: usize = 8;

/// WAL segment size of the child, small so that segments rotate.
const SEGMENT_SIZE_BYTES: u64 = 64 * 1024;

/// Cycles when `RINGDB_CRASH_CYCLES` is unset.
const DEFAULT_CYCLES: u64 = 50;

/// Cycles of the few-writers test when `RINGDB_CRASH_CYCLES` is unset.
const DEFAULT_FEW_CYCLES: u64 = 25;

/// Seed when `RINGDB_CRASH_SEED` is unset.
const DEFAULT_SEED: u64 = 0x00C0_FFEE;

/// The child writes for a delay drawn from this range of milliseconds.
const KILL_DELAY_MS: std::ops::Range<u64> = 10..400;

/// Before any child reported how long it took to get ready, a cycle that
/// kills during open draws its delay below this many milliseconds.
const FIRST_OPEN_KILL_BOUND_MS: u64 = 20;

/// Every this many cycles, one kills during open.
const OPEN_KILL_EVERY: u64 = 3;

/// How long the child may take to open (recover) the store and print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Fewest WAL segment files the store must hold after some kill: a segment
/// the child rotated away from, the one it wrote to and its spare. Proof
/// that segments rotated and recovery crossed more than one. (Each open
/// flushes what it replayed and removes those segments, so only one life's
/// segments are ever present.)
const MIN_WAL_SEGMENTS: usize = 3;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}")),
        Err(_) => default,
    }
}

/// Everything the child wrote to stdout, parsed.
#[derive(Debug)]
struct Transcript {
    logs: Vec<TaskLog>,
    ready: bool,
    /// `err ...` lines, verbatim.
    errors: Vec<String>,
    /// The last `stats` line: direct and held WAL writes so far.
    direct_writes: u64,
    held_writes: u64,
}

impl Transcript {
    fn new(tasks: usize) -> Self {
        Transcript {
            logs: vec![TaskLog::default(); tasks],
            ready: false,
            errors: Vec::new(),
            direct_writes: 0,
            held_writes: 0,
        }
    }

    /// Applies one protocol line (without its newline); `Err` on any line the
    /// protocol does not allow at this point.
    fn apply_line(&mut self, line: &str, ready: &mpsc::Sender<()>) -> Result<(), String> {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["ready"] if !self.ready => {
                self.ready = true;
                // NOTE: the receiver is gone if the parent timed out; the
                // transcript still records the line.
                let _ = ready.send(());
                Ok(())
            }
            ["err", ..] => {
                self.errors.push(line.to_owned());
                Ok(())
            }
            ["stats", direct, held] if self.ready => {
                self.direct_writes = direct.parse().map_err(|e| format!("bad direct count: {e}"))?;
                self.held_writes = held.parse().map_err(|e| format!("bad held count: {e}"))?;
                Ok(())
            }
            [event @ ("begin" | "ack"), task, n, op @ ..] if self.ready => {
                let task: usize = task.parse().map_err(|e| format!("bad task: {e}"))?;
                let n: usize = n.parse().map_err(|e| format!("bad op number: {e}"))?;
                let op = match op {
                    ["put", key, value] => Op::Put {
                        key: (*key).to_owned(),
                        value: (*value).to_owned(),
                    },
                    ["del", key] => Op::Del {
                        key: (*key).to_owned(),
                    },
                    ["batch", value, del] => Op::Batch {
                        value: (*value).to_owned(),
                        del: (*del).to_owned(),
                    },
                    _ => return Err("unknown op".to_owned()),
                };
                let log = self
                    .logs
                    .get_mut(task)
                    .ok_or_else(|| format!("task {task} out of range"))?;
                if *event == "begin" {
                    // At most one op in flight per task, numbered from 0.
                    if n != log.ops.len() || log.acked != log.ops.len() {
                        return Err(format!(
                            "begin of op {n} with {} begun and {} acked",
                            log.ops.len(),
                            log.acked
                        ));
                    }
                    log.ops.push(op);
                } else {
                    // The ack must be for the last begun op, not yet acked.
                    if n + 1 != log.ops.len() || log.acked != n || log.ops.get(n) != Some(&op) {
                        return Err(format!(
                            "ack of op {n} ({op:?}) with {} begun ({:?} last) and {} acked",
                            log.ops.len(),
                            log.ops.last(),
                            log.acked
                        ));
                    }
                    log.acked += 1;
                }
                Ok(())
            }
            _ => Err("not allowed here".to_owned()),
        }
    }
}

/// Reads the child's stdout to EOF. Signals `ready` on the `ready` line.
fn read_protocol(stdout: ChildStdout, tasks: usize, ready: mpsc::Sender<()>) -> Result<Transcript, String> {
    let mut transcript = Transcript::new(tasks);
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the child's stdout: {e}"))?;
        if read == 0 {
            break;
        }
        // NOTE: each line is one write of less than PIPE_BUF bytes, which a
        // pipe takes whole or not at all, so even a kill leaves no torn line.
        let Some(text) = line.strip_suffix('\n') else {
            return Err(format!("line {number} has no newline: {line:?}"));
        };
        transcript
            .apply_line(text, &ready)
            .map_err(|why| format!("line {number} {text:?}: {why}"))?;
    }
    Ok(transcript)
}

/// When the kill clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillClock {
    /// At the child's `ready`: the kill lands while it writes.
    Ready,
    /// At spawn: the kill may land while it opens the store.
    Spawn,
}

/// Runs the child on `dir` until `kill_delay` after `clock`, SIGKILLs it
/// and returns what it wrote, and how long it took from spawn to `ready`
/// (when the clock waited for it).
fn run_writer(
    dir: &Path,
    tasks: usize,
    writer_seed: u64,
    (clock, kill_delay): (KillClock, Duration),
) -> Result<(Transcript, Option<Duration>), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringdb"))
        .arg("crash-writer")
        .arg("--dir")
        .arg(dir)
        .args(["--tasks", &tasks.to_string()])
        .args(["--seed", &writer_seed.to_string()])
        .args(["--segment-size", &SEGMENT_SIZE_BYTES.to_string()])
        // NOTE: a 1 MiB memtable makes the child flush (tables, manifest
        // edits, WAL deletion) and compact between kills; with the 64 MiB
        // default the WAL is never truncated and every recovery replays all
        // of it (50 cycles: 42-97 s instead of about 13 s).
        .args(["--write-buffer-size", "1048576"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the crash writer: {e}"))?;
    let spawned = Instant::now();
    let mut ready_after = None;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = thread::spawn(move || read_protocol(stdout, tasks, ready_tx));

    // NOTE: whatever happens, kill and reap the child before joining the
    // reader: the reader only returns at EOF, i.e. once the child is gone.
    let ready = match clock {
        KillClock::Ready => {
            let ready = ready_rx.recv_timeout(READY_TIMEOUT);
            if ready.is_ok() {
                ready_after = Some(spawned.elapsed());
                thread::sleep(kill_delay);
            }
            ready
        }
        KillClock::Spawn => {
            thread::sleep(kill_delay);
            Ok(())
        }
    };
    child
        .kill()
        .map_err(|e| format!("killing the crash writer: {e}"))?;
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the crash writer: {e}"))?;
    let transcript = reader.join().expect("the reader thread panicked")?;

    if !transcript.errors.is_empty() {
        return Err(format!(
            "the crash writer reported errors ({status}): {:?}",
            transcript.errors
        ));
    }
    if let Err(e) = ready {
        return Err(format!(
            "the crash writer never printed `ready` ({e:?}, {status})"
        ));
    }
    if status.signal() != Some(libc::SIGKILL) {
        return Err(format!(
            "the crash writer ended on its own before the kill: {status}"
        ));
    }
    Ok((transcript, ready_after))
}

/// What one recovery saw.
struct Recovered {
    states: Vec<State>,
    io_backend: &'static str,
    open_time: Duration,
}

/// Opens the store in this process, reads every task's keys and closes it.
async fn recover(dir: &Path, tasks: usize) -> Result<Recovered, String> {
    let started = Instant::now();
    let db = Db::open(dir, Options::default())
        .await
        .map_err(|e| format!("the store does not open: {e}"))?;
    let open_time = started.elapsed();
    let mut states = Vec::with_capacity(tasks);
    for task in 0..tasks {
        states.push(read_task_state(&db, task).await);
    }
    let io_backend = db.stats().io_backend;
    db.close()
        .await
        .map_err(|e| format!("the recovered store does not close: {e}"))?;
    drop(db);
    Ok(Recovered {
        states,
        io_backend,
        open_time,
    })
}

/// Totals over all cycles.
#[derive(Debug, Default)]
struct Summary {
    cycles: u64,
    ops_begun: usize,
    ops_acked: usize,
    cycles_with_acks: u64,
    in_flight_applied: usize,
    in_flight_not_applied: usize,
    max_open_time: Duration,
    io_backend: &'static str,
    /// Most WAL segment files present after any one kill.
    max_wal_segments: usize,
    /// WAL segment files present at the end.
    wal_segments: usize,
    /// Cycles whose kill came before the child was ready (during open).
    kills_before_ready: u64,
    /// Direct and held WAL writes the children reported, over all cycles.
    direct_writes: u64,
    held_writes: u64,
}

fn wal_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count()
}

/// Checks every task of one cycle against its base state; returns the ops
/// acked, the tasks with an op in flight, and of those the ones whose op
/// was applied. `Err` describes the first failure.
fn check_cycle(
    context: &str,
    base: &[State],
    transcript: &Transcript,
    recovered: &Recovered,
    summary: &mut Summary,
) -> Result<(usize, usize, usize), String> {
    let mut acked = 0;
    let mut in_flight = 0;
    let mut in_flight_applied = 0;
    for (task, log) in transcript.logs.iter().enumerate() {
        let applied = check_task(task, &base[task], log, &recovered.states[task]).map_err(|why| {
            format!(
                "{context}: {why}\nbase: {:?}\n{} ops begun, {} acked",
                base[task],
                log.ops.len(),
                log.acked
            )
        })?;
        acked += log.acked;
        summary.ops_begun += log.ops.len();
        if log.ops.len() > log.acked {
            // NOTE: an in-flight op that changes nothing (a delete of an
            // absent key) counts as not applied; the two look the same.
            in_flight += 1;
            in_flight_applied += usize::from(applied > log.acked);
        }
    }
    Ok((acked, in_flight, in_flight_applied))
}

/// All cycles; `Err` describes the first failure.
fn run_cycles(dir: &Path, tasks: usize, cycles: u64, seed: u64) -> Result<Summary, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // NOTE: OpGen's generator is splitmix64; here it only draws seeds and delays.
    let mut rng = OpGen::new(seed);
    let mut summary = Summary::default();
    let mut open_kill_bound_ms = FIRST_OPEN_KILL_BOUND_MS;

    let fresh = runtime
        .block_on(recover(dir, tasks))
        .map_err(|e| format!("fresh store: {e}"))?;
    assert!(
        fresh.states.iter().all(State::is_empty),
        "a fresh store holds data"
    );
    summary.io_backend = fresh.io_backend;
    let mut base = fresh.states;

    for cycle in 0..cycles {
        let writer_seed = rng.next_u64();
        let (clock, delays) = match cycle % OPEN_KILL_EVERY == OPEN_KILL_EVERY - 1 {
            true => (KillClock::Spawn, 0..open_kill_bound_ms.max(1)),
            false => (KillClock::Ready, KILL_DELAY_MS),
        };
        let kill_delay_ms = delays.start + rng.next_u64() % (delays.end - delays.start);
        let context = format!(
            "cycle {cycle} (seed {seed}, writer seed {writer_seed}, kill {kill_delay_ms} ms after {clock:?})"
        );
        let cycle_started = Instant::now();
        let (transcript, ready_after) = run_writer(
            dir,
            tasks,
            writer_seed,
            (clock, Duration::from_millis(kill_delay_ms)),
        )
        .map_err(|e| format!("{context}: {e}"))?;
        if let Some(ready_after) = ready_after {
            open_kill_bound_ms = u64::try_from(ready_after.as_millis()).unwrap_or(u64::MAX);
        }
        summary.kills_before_ready += u64::from(!transcript.ready);
        let child_time = cycle_started.elapsed();
        // NOTE: counted before the recovery, which flushes what it replays
        // and removes the segments.
        let segments = wal_segments(dir);
        let recovered = runtime
            .block_on(recover(dir, tasks))
            .map_err(|e| format!("{context}: {e}"))?;

        let (acked, in_flight, in_flight_applied) =
            check_cycle(&context, &base, &transcript, &recovered, &mut summary)?;
        eprintln!(
            "crash_kill: cycle {cycle}: killed {kill_delay_ms} ms after {clock:?}{}, {acked} acked, \
             {in_flight_applied} of {in_flight} in flight applied; child ran {child_time:.0?}, \
             recovery open {:.0?}; {segments} WAL segments",
            if transcript.ready { "" } else { " (during open)" },
            recovered.open_time
        );
        summary.ops_acked += acked;
        summary.direct_writes += transcript.direct_writes;
        summary.held_writes += transcript.held_writes;
        summary.cycles_with_acks += u64::from(acked > 0);
        summary.in_flight_applied += in_flight_applied;
        summary.in_flight_not_applied += in_flight - in_flight_applied;
        summary.max_open_time = summary.max_open_time.max(recovered.open_time);
        summary.max_wal_segments = summary.max_wal_segments.max(segments);
        summary.cycles += 1;
        base = recovered.states;
    }
    summary.wal_segments = wal_segments(dir);
    Ok(summary)
}

/// Whether files in `dir` can be opened with `O_DIRECT` (tmpfs cannot).
fn supports_o_direct(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::create_dir_all(dir).unwrap();
    let probe = dir.join("o_direct_probe");
    let supported = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    supported
}

/// Runs `cycles` kill cycles with `tasks` writers on a fresh store, checks
/// what every cycle must show and returns the totals; removes the store
/// once every check passed.
fn kill_and_check(name: &str, tasks: usize, cycles: u64) -> (Summary, bool) {
    let seed = env_u64("RINGDB_CRASH_SEED", DEFAULT_SEED);
    // NOTE: the directory outlives any failure, panics included, so that the
    // store can be inspected; it is removed once every check has passed.
    let root = tempfile::tempdir().unwrap().keep();
    let dir = root.join("db");
    let o_direct = supports_o_direct(&root);
    eprintln!("{name}: store in {}", dir.display());
    let started = Instant::now();

    let summary = match run_cycles(&dir, tasks, cycles, seed) {
        Ok(summary) => summary,
        Err(why) => panic!("{why}\nstore kept in {}", dir.display()),
    };

    eprintln!(
        "{name}: {} cycles of {tasks} writers in {:.1?} on {} (seed {seed}): {} ops begun, {} acked; \
         in flight at the kill: {} applied, {} not applied; {} cycles with acked ops; \
         slowest recovery open {:.1?}; up to {} WAL segments after a kill, {} at the end; \
         {} kills during open; {} direct and {} held WAL writes",
        summary.cycles,
        started.elapsed(),
        summary.io_backend,
        summary.ops_begun,
        summary.ops_acked,
        summary.in_flight_applied,
        summary.in_flight_not_applied,
        summary.cycles_with_acks,
        summary.max_open_time,
        summary.max_wal_segments,
        summary.wal_segments,
        summary.kills_before_ready,
        summary.direct_writes,
        summary.held_writes,
    );
    assert!(summary.ops_acked > 0, "no op was ever acked");
    assert!(summary.cycles_with_acks > 0, "no cycle had acked ops");
    if summary.cycles >= OPEN_KILL_EVERY * 4 {
        assert!(summary.kills_before_ready > 0, "no kill landed during open");
    }
    // NOTE: the most segments after any kill, not the count at the end:
    // once memtables flush, the segments they cover are deleted.
    assert!(
        summary.max_wal_segments >= MIN_WAL_SEGMENTS,
        "WAL segments did not rotate: at most {} segment files after a kill",
        summary.max_wal_segments
    );
    std::fs::remove_dir_all(&root).unwrap();
    (summary, o_direct)
}

#[test]
fn sigkill_during_durable_writes_loses_no_acked_write() {
    let cycles = env_u64("RINGDB_CRASH_CYCLES", DEFAULT_CYCLES);
    kill_and_check("crash_kill", TASKS, cycles);
}

#[test]
fn sigkill_with_few_writers_loses_no_acked_direct_write() {
    let cycles = env_u64("RINGDB_CRASH_CYCLES", DEFAULT_FEW_CYCLES);
    let (summary, o_direct) = kill_and_check("crash_kill_few", FEW_TASKS, cycles);
    // NOTE: with few writers every durable write with nothing else in
    // flight goes direct; a filesystem without O_DIRECT falls back.
    if o_direct {
        assert!(
            summary.direct_writes > 0,
            "{FEW_TASKS} writers made no direct WAL write"
        );
    }
}
