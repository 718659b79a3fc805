//! Shared test support: stores on every backend, and the crash-history checker.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use ringdb::io::sim::SimFs;
use ringdb::{Db, IoBackend, Options};

/// Waits until the simulated disk has started no mutating operation for
/// 20 ms; returns the count of operations so far. Tests that arm a fault
/// for "the next" operation call it first, so that the fault does not land
/// on background work (the WAL's spare segment, say).
pub async fn wait_until_idle(sim: &SimFs) -> u64 {
    let mut seen = sim.mutating_ops();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let now = sim.mutating_ops();
        if now == seen {
            return seen;
        }
        seen = now;
    }
}

/// A place to open a store: a real directory (io_uring or threads) or the sim.
pub struct TestStore {
    pub name: &'static str,
    pub dir: PathBuf,
    pub options: Options,
    pub sim: Option<Arc<SimFs>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestStore {
    pub fn uring() -> Self {
        Self::real("uring", IoBackend::Uring)
    }

    pub fn threads() -> Self {
        Self::real("threads", IoBackend::Threads)
    }

    fn real(name: &'static str, backend: IoBackend) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        TestStore {
            name,
            dir: tmp.path().join("db"),
            options: Options::default()
                .io_backend(backend)
                .wal_segment_size_bytes(256 * 1024),
            sim: None,
            _tmp: Some(tmp),
        }
    }

    pub fn sim(seed: u64) -> Self {
        let sim = SimFs::new(seed);
        TestStore {
            name: "sim",
            dir: PathBuf::from("/db"),
            options: Options::default()
                .fs(sim.clone())
                .wal_segment_size_bytes(64 * 1024),
            sim: Some(sim),
            _tmp: None,
        }
    }

    pub async fn open(&self) -> Db {
        Db::open(&self.dir, self.options.clone()).await.unwrap()
    }
}

/// The seed of the simulated disk that each backend test gets.
pub const SIM_SEED: u64 = 7;

impl TestStore {
    /// The simulated store a backend test gets.
    pub fn sim_default() -> Self {
        Self::sim(SIM_SEED)
    }
}

/// One test per backend from one body: the conformance tests of the I/O
/// backends.
///
/// ```ignore
/// backend_tests! {
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     async fn reopen_keeps_writes(store: TestStore) { /* ... */ }
/// }
/// ```
///
/// expands to a module `reopen_keeps_writes` with the tests `uring`,
/// `threads` and `sim`, each with the attributes given and with `store`
/// bound to a fresh [`TestStore`] of its backend. The parameter may be
/// `mut store: TestStore`, the function a plain `fn` (under `#[test]`), and
/// a test that needs several fresh stores of its backend takes
/// `new_store: fn() -> TestStore` instead.
#[macro_export]
macro_rules! backend_tests {
    ($(#[$meta:meta])* async fn $name:ident(mut $store:ident: TestStore) $body:block) => {
        $crate::backend_tests!(@expand [$(#[$meta])*] [async] $name [mut $store] [()] $body);
    };
    ($(#[$meta:meta])* async fn $name:ident($store:ident: TestStore) $body:block) => {
        $crate::backend_tests!(@expand [$(#[$meta])*] [async] $name [$store] [()] $body);
    };
    ($(#[$meta:meta])* async fn $name:ident($make:ident: fn() -> TestStore) $body:block) => {
        $crate::backend_tests!(
            @expand [$(#[$meta])*] [async] $name [$make: fn() -> $crate::common::TestStore] [] $body
        );
    };
    ($(#[$meta:meta])* fn $name:ident($store:ident: TestStore) $body:block) => {
        $crate::backend_tests!(@expand [$(#[$meta])*] [] $name [$store] [()] $body);
    };
    (@expand [$($attr:tt)*] [$($async:tt)?] $name:ident [$($binding:tt)+] [$($call:tt)?] $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $($attr)*
            $($async)? fn uring() {
                let $($binding)+ = $crate::common::TestStore::uring $($call)?;
                $body
            }

            $($attr)*
            $($async)? fn threads() {
                let $($binding)+ = $crate::common::TestStore::threads $($call)?;
                $body
            }

            $($attr)*
            $($async)? fn sim() {
                let $($binding)+ = $crate::common::TestStore::sim_default $($call)?;
                $body
            }
        }
    };
}

/// One write of a crash workload, as the writer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: String,
    },
    Del {
        key: String,
    },
    /// Puts `value` at the task's four batch keys and deletes `del`.
    Batch {
        value: String,
        del: String,
    },
}

/// The batch keys of task `t`.
pub fn batch_keys(task: usize) -> Vec<String> {
    (0..4).map(|i| format!("t{task:03}-b{i}")).collect()
}

/// Every key task `t` can touch.
pub fn task_keys(task: usize) -> Vec<String> {
    let mut keys: Vec<String> = (0..16).map(|r| format!("t{task:03}-k{r}")).collect();
    keys.extend(batch_keys(task));
    keys
}

/// The state of a task's keys: key -> value (absent = deleted or never set).
pub type State = BTreeMap<String, String>;

impl Op {
    pub fn apply(&self, task: usize, state: &mut State) {
        match self {
            Op::Put { key, value } => {
                state.insert(key.clone(), value.clone());
            }
            Op::Del { key } => {
                state.remove(key);
            }
            Op::Batch { value, del } => {
                for key in batch_keys(task) {
                    state.insert(key, value.clone());
                }
                state.remove(del);
            }
        }
    }

    /// Applies the op to `db` with the store's default sync mode.
    /// Runs the op as one write with `options` (e.g. a per-write sync mode).
    pub async fn run_opt(&self, task: usize, db: &Db, options: ringdb::WriteOptions) -> ringdb::Result<()> {
        let mut batch = ringdb::WriteBatch::new();
        match self {
            Op::Put { key, value } => {
                batch.put(key, value);
            }
            Op::Del { key } => {
                batch.delete(key);
            }
            Op::Batch { value, del } => {
                for key in batch_keys(task) {
                    batch.put(key, value);
                }
                batch.delete(del);
            }
        }
        db.write_opt(batch, options).await
    }

    pub async fn run(&self, task: usize, db: &Db) -> ringdb::Result<()> {
        match self {
            Op::Put { key, value } => db.put(key, value).await,
            Op::Del { key } => db.delete(key).await,
            Op::Batch { value, del } => {
                let mut batch = ringdb::WriteBatch::new();
                for key in batch_keys(task) {
                    batch.put(key, value);
                }
                batch.delete(del);
                db.write(batch).await
            }
        }
    }
}

/// A deterministic op generator (splitmix64), 60% puts, 20% deletes, 20% batches.
pub struct OpGen(u64);

impl OpGen {
    pub fn new(seed: u64) -> Self {
        OpGen(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn op(&mut self, task: usize, n: u64, tag: &str) -> Op {
        let r = self.next_u64() % 16;
        let key = format!("t{task:03}-k{r}");
        let value = format!("t{task:03}-{tag}n{n}");
        match self.next_u64() % 10 {
            0..=5 => Op::Put { key, value },
            6 | 7 => Op::Del { key },
            _ => Op::Batch { value, del: key },
        }
    }
}

/// What one task did in one run: its ops in order and how many were acked.
#[derive(Debug, Clone, Default)]
pub struct TaskLog {
    pub ops: Vec<Op>,
    pub acked: usize,
}

/// Reads the current state of task `t`'s keys from `db`.
pub async fn read_task_state(db: &Db, task: usize) -> State {
    let mut state = State::new();
    for key in task_keys(task) {
        if let Some(value) = db.get(&key).await.unwrap() {
            state.insert(key, String::from_utf8(value.to_vec()).unwrap());
        }
    }
    state
}

/// As [`check_task`] for a task whose acked ops were not all durable: the
/// recovered state must be the state after some prefix of its ops that
/// holds at least its first `durable_ops` ops (through its last acked
/// durable write) and at most one op past the acked ones.
pub fn check_task_prefix(
    task: usize,
    log: &TaskLog,
    durable_ops: usize,
    recovered: &State,
) -> Result<usize, String> {
    let limit = log.ops.len().min(log.acked + 1);
    let mut state = State::new();
    for done in 0..=limit {
        if done >= durable_ops && &state == recovered {
            return Ok(done);
        }
        if let Some(op) = log.ops.get(done) {
            op.apply(task, &mut state);
        }
    }
    Err(format!(
        "task {task}: recovered state is no prefix of its ops between {durable_ops} (its acked \
         durable writes) and {} ops.\nrecovered: {recovered:?}\nops: {:?}",
        log.acked + 1,
        log.ops.iter().take(log.acked + 1).collect::<Vec<_>>()
    ))
}

/// Checks a recovered task state against `base` plus the task's log: it must
/// be the state after exactly the acked prefix, or after one more op (the one
/// in flight at the crash). That proves every acknowledged write survived, no
/// batch was half applied, and nothing unacknowledged slipped in out of order.
pub fn check_task(task: usize, base: &State, log: &TaskLog, recovered: &State) -> Result<usize, String> {
    let mut state = base.clone();
    for op in log.ops.iter().take(log.acked) {
        op.apply(task, &mut state);
    }
    if &state == recovered {
        return Ok(log.acked);
    }
    if let Some(op) = log.ops.get(log.acked) {
        op.apply(task, &mut state);
        if &state == recovered {
            return Ok(log.acked + 1);
        }
    }
    Err(format!(
        "task {task}: recovered state matches neither the {} acked ops nor one more.\n\
         recovered: {recovered:?}\nops: {:?}",
        log.acked,
        log.ops.iter().take(log.acked + 1).collect::<Vec<_>>()
    ))
}
