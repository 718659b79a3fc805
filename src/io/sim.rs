//! The simulated disk: an in-memory [`Fs`] that can lose power, tear writes
//! and fail chosen operations, deterministically for a given seed.
//!
//! [`SimFs`] owns every simulated directory and file. Each file (inode) keeps
//! a durable image, a volatile image and the ordered list of writes not yet
//! synced; each directory keeps a durable and a volatile set of entries and
//! the ordered list of entry operations (create, rename, remove) not yet
//! synced. All state sits behind one `std::sync::Mutex`, so any thread or
//! runtime may drive it; every operation completes on its first poll.
//!
//! Mutating operations (`write_all_at`, `sync_data`, `open` with a create
//! mode, `rename`, `remove_file`, `sync_dir`, `create_dir_all`) are numbered
//! from 0 in call order. A test runs a workload once, reads
//! [`SimFs::mutating_ops`], then reruns it with [`SimFs::crash_at`] or
//! [`SimFs::fail_at`] at every index. After a crash, [`SimFs::recover`]
//! builds a fresh disk holding what a real disk could hold after the power
//! loss.
//!
//! Invariants:
//! - Each directory's volatile entries are its durable entries with its
//!   pending entry ops applied in order (the test hooks that write durable
//!   state directly are meant for a quiescent disk and may break this).
//! - Each inode's volatile image is its durable image with its pending writes
//!   applied in order, except for writes a failed sync dropped: those stay
//!   readable in the volatile image but can never become durable.
//! - An inode's volatile image is never shorter than its durable image.
//! - Directories are durable from creation and never removed.
//! - Every mutating operation started before the crash takes exactly one
//!   index, whether it succeeds or fails.
//! - Once crashed, a `SimFs` stays crashed: every operation on it and on its
//!   file handles fails with "simulated power loss".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::{File, Fs, OpenMode};

/// Largest file the simulated disk holds, in bytes. A write past it fails
/// with `EFBIG` instead of allocating whatever offset a bug produced.
// NOTE: kept here rather than in `limits.rs` because it bounds only this test
// backend, not the store.
const MAX_SIM_FILE_BYTES: usize = 1 << 30;

/// The message of every error caused by the simulated power loss.
const POWER_LOSS_MESSAGE: &str = "simulated power loss";

/// Name of the thread [`Fs::spawn`] starts.
const SPAWN_THREAD_NAME: &str = "ringdb-sim-bg";

/// How [`SimFs::recover_with`] treats what was not durable at the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearMode {
    /// Only durable state survives: every unsynced write and every entry op
    /// not covered by a `sync_dir` is lost.
    DropAll,
    /// Every completed write and entry op survives, like a process kill: the
    /// new disk holds the volatile images and entries.
    KeepAll,
    /// What a power loss could leave: per directory a random prefix of its
    /// pending entry ops; per unsynced write, independently, the whole write,
    /// nothing, or a prefix of it (torn).
    Random,
    /// As [`TearMode::Random`], but a torn write keeps a prefix that ends on
    /// a multiple of `sector_bytes` in the file (a disk that writes whole
    /// sectors in order: 512 or 4096 bytes).
    Sectors(usize),
    /// As [`TearMode::Random`] for entry ops, but each sector
    /// (`sector_bytes`, aligned in the file) of each unsynced write is kept
    /// or dropped independently: a disk that reorders the sectors of one
    /// write.
    SectorsAnyOrder(usize),
}

/// One mutating operation as the disk saw it, in [`SimFs::op_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedOp {
    /// The op's index (see [`SimFs::mutating_ops`]).
    pub index: u64,
    /// `"create"`, `"write"`, `"sync"`, `"rename"`, `"remove"`, `"mkdir"`
    /// or `"sync_dir"`.
    pub kind: &'static str,
    /// The file or directory (for a rename, its source).
    pub path: PathBuf,
    /// Byte offset of a write (0 otherwise).
    pub offset: u64,
    /// Bytes of a write (0 otherwise).
    pub len: u64,
    /// `Some(errno)` if the op was failed on purpose; `Some(-1)` if it hit
    /// the armed power loss.
    pub failed: Option<i32>,
}

/// A fault armed by [`SimFs::fail_nth`].
#[derive(Debug, Clone)]
struct PathFault {
    kind: &'static str,
    path_contains: String,
    /// Matching ops still to let through before the one that fails.
    skip: u64,
    errno: i32,
}

/// The pseudo-errno of a [`PathFault`] that is a power loss (and of a
/// crashed op in the log).
const CRASH_ERRNO: i32 = -1;

/// Most ops the log keeps; later ones are counted but not logged.
const MAX_LOGGED_OPS: usize = 1 << 20;

/// A held `lock_file` lock of the sim; dropping it releases the path.
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        lock(&self.state).locks.remove(&self.path);
    }
}

/// The simulated disk. Cheap to share as `Arc<SimFs>` (or `Arc<dyn Fs>`).
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

/// A handle to one simulated inode; stays valid across rename and removal
/// of its path, like a POSIX file descriptor.
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    path: PathBuf,
    writable: bool,
    /// Opened with [`OpenMode::ReadWriteDsync`] or
    /// [`OpenMode::ReadWriteDirect`]: writes are durable at once.
    dsync: bool,
    /// Opened with [`OpenMode::ReadWriteDirect`]: misaligned writes fail.
    direct: bool,
}

type InodeId = u64;

/// A write not yet made durable.
#[derive(Debug, Clone)]
struct PendingWrite {
    offset: usize,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    volatile: Vec<u8>,
    /// Writes since the last sync, oldest first.
    pending: Vec<PendingWrite>,
}

impl Inode {
    /// A file whose contents are all durable.
    fn settled(image: Vec<u8>) -> Inode {
        Inode {
            durable: image.clone(),
            volatile: image,
            pending: Vec::new(),
        }
    }
}

/// A change to one directory's entries.
#[derive(Debug, Clone)]
enum EntryOp {
    Link {
        name: String,
        inode: InodeId,
    },
    Unlink {
        name: String,
    },
    /// A rename within one directory: one atomic op.
    Rename {
        from: String,
        to: String,
        inode: InodeId,
    },
}

impl EntryOp {
    fn apply(&self, entries: &mut BTreeMap<String, InodeId>) {
        match self {
            EntryOp::Link { name, inode } => {
                entries.insert(name.clone(), *inode);
            }
            EntryOp::Unlink { name } => {
                entries.remove(name);
            }
            EntryOp::Rename { from, to, inode } => {
                entries.remove(from);
                entries.insert(to.clone(), *inode);
            }
        }
    }
}

/// One directory's file entries (subdirectories live in `State::dirs`).
#[derive(Debug, Clone, Default)]
struct Dir {
    durable: BTreeMap<String, InodeId>,
    volatile: BTreeMap<String, InodeId>,
    /// Entry ops since the last `sync_dir`, oldest first.
    pending: Vec<EntryOp>,
}

impl Dir {
    /// A directory whose entries are all durable.
    fn settled(entries: BTreeMap<String, InodeId>) -> Dir {
        Dir {
            durable: entries.clone(),
            volatile: entries,
            pending: Vec::new(),
        }
    }
}

/// splitmix64: tiny, seedable, good enough to pick crash outcomes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound`; 0 when `bound` is 0.
    fn below(&mut self, bound: usize) -> usize {
        let wide = u128::from(self.next_u64()) * bound as u128;
        usize::try_from(wide >> 64).unwrap_or(0)
    }
}

struct State {
    seed: u64,
    rng: Rng,
    /// Index the next mutating op gets.
    next_op: u64,
    crashed: bool,
    crash_at: Option<u64>,
    /// Op index → errno it fails with.
    faults: BTreeMap<u64, i32>,
    /// Path suffixes whose next `sync_data` fails; each is used once.
    failing_syncs: Vec<String>,
    /// Path suffixes of files the disk has no room for: every write to
    /// them fails with `ENOSPC` until [`SimFs::clear_full`].
    full_suffixes: Vec<String>,
    /// `Some(max)`: every durable operation (`sync_data`, a write through
    /// an `O_DSYNC` handle) first waits a random time below `max`, so that
    /// several can be in flight at once and complete in any order.
    durable_op_delay: Option<std::time::Duration>,
    /// `true` while [`SimFs::hold_durable_ops`] holds every durable
    /// operation before it takes effect; each operation waiting at the
    /// gate holds one receiver.
    durable_gate: tokio::sync::watch::Sender<bool>,
    /// Paths locked by `lock_file` (held by a `SimLock`).
    locks: std::collections::BTreeSet<PathBuf>,
    /// Every mutating op started so far (up to [`MAX_LOGGED_OPS`]).
    op_log: Vec<LoggedOp>,
    /// Faults armed by kind and path: see [`SimFs::fail_nth`].
    path_faults: Vec<PathFault>,
    dirs: BTreeMap<PathBuf, Dir>,
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
}

fn power_loss() -> io::Error {
    io::Error::other(POWER_LOSS_MESSAGE)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory (sim)", path.display()),
    )
}

/// Splits `path` into its parent directory and its UTF-8 file name.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent();
    let name = path.file_name().and_then(|name| name.to_str());
    match (parent, name) {
        (Some(parent), Some(name)) => Ok((parent.to_path_buf(), name.to_owned())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path the sim can hold", path.display()),
        )),
    }
}

/// Writes `bytes` at `offset` of `image`, zero-filling any gap. An empty
/// write changes nothing (it does not extend the file).
/// What is left of `write` outside `[start, end)`: zero, one or two writes.
fn trim_pending(write: PendingWrite, start: usize, end: usize) -> Vec<PendingWrite> {
    let write_end = write.offset + write.bytes.len();
    if write_end <= start || write.offset >= end {
        return vec![write];
    }
    let mut kept = Vec::new();
    if write.offset < start {
        let bytes = write
            .bytes
            .get(..start - write.offset)
            .unwrap_or_default()
            .to_vec();
        kept.push(PendingWrite {
            offset: write.offset,
            bytes,
        });
    }
    if write_end > end {
        let bytes = write.bytes.get(end - write.offset..).unwrap_or_default().to_vec();
        kept.push(PendingWrite { offset: end, bytes });
    }
    kept
}

fn apply_write(image: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let end = offset.saturating_add(bytes.len());
    if image.len() < end {
        image.resize(end, 0);
    }
    if let Some(target) = image.get_mut(offset..end) {
        target.copy_from_slice(bytes);
    }
    debug_assert!(image.len() >= end);
}

impl State {
    /// A draw of the configured durable-operation delay, if any.
    fn durable_delay(&mut self) -> Option<std::time::Duration> {
        let max = self.durable_op_delay?;
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        let drawn = self.rng.below(usize::try_from(micros).unwrap_or(usize::MAX));
        Some(std::time::Duration::from_micros(drawn as u64))
    }

    fn new(seed: u64) -> State {
        let mut dirs = BTreeMap::new();
        // NOTE: the root and the empty path (the current directory, parent of
        // a relative name like "db") always exist, so `create_dir_all` and
        // `open` work with absolute and relative paths alike.
        dirs.insert(PathBuf::from("/"), Dir::default());
        dirs.insert(PathBuf::new(), Dir::default());
        State {
            seed,
            rng: Rng(seed),
            next_op: 0,
            crashed: false,
            crash_at: None,
            faults: BTreeMap::new(),
            failing_syncs: Vec::new(),
            full_suffixes: Vec::new(),
            durable_op_delay: None,
            durable_gate: tokio::sync::watch::Sender::new(false),
            locks: std::collections::BTreeSet::new(),
            op_log: Vec::new(),
            path_faults: Vec::new(),
            dirs,
            inodes: BTreeMap::new(),
            next_inode: 0,
        }
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.crashed { Err(power_loss()) } else { Ok(()) }
    }

    /// Starts a mutating op: gives it the next index, then crashes or fails
    /// it if a test asked for that.
    fn begin_mutation(&mut self, kind: &'static str, path: &Path, offset: u64, len: usize) -> io::Result<()> {
        self.check_alive()?;
        let index = self.next_op;
        self.next_op += 1;
        let failed = if self.crash_at == Some(index) {
            Some(CRASH_ERRNO)
        } else {
            self.faults.remove(&index).or_else(|| self.path_fault(kind, path))
        };
        if self.op_log.len() < MAX_LOGGED_OPS {
            self.op_log.push(LoggedOp {
                index,
                kind,
                path: path.to_path_buf(),
                offset,
                len: len as u64,
                failed,
            });
        }
        match failed {
            Some(CRASH_ERRNO) => {
                self.crashed = true;
                Err(power_loss())
            }
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// The errno of the armed path fault this op triggers, if any
    /// (disarming it); counts the op against the others that match.
    fn path_fault(&mut self, kind: &str, path: &Path) -> Option<i32> {
        let shown = path.to_string_lossy();
        let mut hit = None;
        self.path_faults.retain_mut(|fault| {
            if fault.kind != kind || !shown.contains(fault.path_contains.as_str()) {
                return true;
            }
            if fault.skip == 0 && hit.is_none() {
                hit = Some(fault.errno);
                return false;
            }
            fault.skip = fault.skip.saturating_sub(1);
            true
        });
        hit
    }

    /// The inode at `path` in the volatile namespace.
    fn lookup(&self, path: &Path) -> io::Result<InodeId> {
        if self.dirs.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let (dir, name) = split(path)?;
        self.dirs
            .get(&dir)
            .and_then(|dir| dir.volatile.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    /// Applies `op` to the volatile entries of `dir` and records it pending.
    fn record(&mut self, dir: &Path, op: EntryOp) -> io::Result<()> {
        let entry = self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))?;
        op.apply(&mut entry.volatile);
        entry.pending.push(op);
        Ok(())
    }

    fn inode_mut(&mut self, inode: InodeId) -> io::Result<&mut Inode> {
        // NOTE: a live SimFs never drops an inode, so a miss is a stale handle
        // from another SimFs's bug; report it rather than panic.
        self.inodes
            .get_mut(&inode)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    fn inode(&self, inode: InodeId) -> io::Result<&Inode> {
        self.inodes
            .get(&inode)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    fn new_inode(&mut self, image: Vec<u8>) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::settled(image));
        id
    }

    fn open(&mut self, path: &Path, mode: OpenMode) -> io::Result<InodeId> {
        // NOTE: an open with a create mode counts as mutating even when the
        // file already exists, so op numbering depends only on the calls.
        let creates = matches!(mode, OpenMode::CreateReadWrite | OpenMode::CreateNew);
        if creates {
            self.begin_mutation("create", path, 0, 0)?;
        } else {
            self.check_alive()?;
        }
        if self.dirs.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        let (dir, name) = split(path)?;
        let existing = self
            .dirs
            .get(&dir)
            .ok_or_else(|| not_found(path))?
            .volatile
            .get(&name)
            .copied();
        match (existing, mode) {
            (Some(_), OpenMode::CreateNew) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: file exists (sim)", path.display()),
            )),
            (Some(inode), _) => Ok(inode),
            (
                None,
                OpenMode::Read | OpenMode::ReadWrite | OpenMode::ReadWriteDsync | OpenMode::ReadWriteDirect,
            ) => Err(not_found(path)),
            (None, OpenMode::CreateReadWrite | OpenMode::CreateNew) => {
                let inode = self.new_inode(Vec::new());
                self.record(&dir, EntryOp::Link { name, inode })?;
                Ok(inode)
            }
        }
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.begin_mutation("rename", from, 0, 0)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let inode = self.lookup(from)?;
        if self.dirs.contains_key(to) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if !self.dirs.contains_key(&to_dir) {
            return Err(not_found(to));
        }
        if from == to {
            return Ok(());
        }
        if from_dir == to_dir {
            self.record(
                &from_dir,
                EntryOp::Rename {
                    from: from_name,
                    to: to_name,
                    inode,
                },
            )
        } else {
            // NOTE: ringdb renames only within one directory. A rename across
            // directories is recorded as two entry ops, one per directory,
            // so a crash may leave the file under both names or neither:
            // weaker than ext4's journal, never hiding a missing sync_dir.
            self.record(&from_dir, EntryOp::Unlink { name: from_name })?;
            self.record(&to_dir, EntryOp::Link { name: to_name, inode })
        }
    }

    /// A second entry for the inode at `from`: a pending entry op of the
    /// target directory, like a create.
    fn hard_link(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.begin_mutation("link", to, 0, 0)?;
        let inode = self.lookup(from)?;
        let (to_dir, to_name) = split(to)?;
        let exists = self.dirs.contains_key(to)
            || self
                .dirs
                .get(&to_dir)
                .is_some_and(|dir| dir.volatile.contains_key(&to_name));
        if exists {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        self.record(&to_dir, EntryOp::Link { name: to_name, inode })
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.begin_mutation("remove", path, 0, 0)?;
        self.lookup(path)?;
        let (dir, name) = split(path)?;
        self.record(&dir, EntryOp::Unlink { name })
    }

    /// Creates `path` and its missing parents, durable at once.
    fn make_dirs(&mut self, path: &Path) -> io::Result<()> {
        let mut missing: Vec<&Path> = path
            .ancestors()
            .filter(|dir| !self.dirs.contains_key(*dir))
            .collect();
        // Parents first.
        missing.reverse();
        for dir in missing {
            let (parent, name) = split(dir)?;
            let is_file = self
                .dirs
                .get(&parent)
                .is_some_and(|parent| parent.volatile.contains_key(&name));
            if is_file {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            self.dirs.insert(dir.to_path_buf(), Dir::default());
        }
        Ok(())
    }

    fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        self.begin_mutation("sync_dir", path, 0, 0)?;
        let dir = self.dirs.get_mut(path).ok_or_else(|| not_found(path))?;
        // NOTE: the volatile entries are the durable ones with every pending
        // op applied (see the invariants), so they are what becomes durable.
        dir.durable = dir.volatile.clone();
        dir.pending.clear();
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.check_alive()?;
        let dir = self.dirs.get(path).ok_or_else(|| not_found(path))?;
        let mut names: Vec<String> = dir.volatile.keys().cloned().collect();
        let subdirs = self
            .dirs
            .keys()
            .filter(|sub| sub.parent() == Some(path))
            .filter_map(|sub| sub.file_name().and_then(|name| name.to_str()).map(str::to_owned));
        names.extend(subdirs);
        Ok(names)
    }

    fn write(&mut self, inode: InodeId, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.begin_mutation("write", path, offset, bytes.len())?;
        let start = usize::try_from(offset)
            .ok()
            .filter(|start| {
                start
                    .checked_add(bytes.len())
                    .is_some_and(|end| end <= MAX_SIM_FILE_BYTES)
            })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        let file = self.inode_mut(inode)?;
        apply_write(&mut file.volatile, start, bytes);
        file.pending.push(PendingWrite {
            offset: start,
            bytes: bytes.to_vec(),
        });
        Ok(())
    }

    /// An `O_DSYNC` write: applied like [`State::write`], and its bytes (not
    /// the file's other pending writes) are durable when it returns. Its
    /// sync half fails like [`State::sync`] when the path was set to fail.
    fn write_durable(&mut self, inode: InodeId, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.write(inode, path, offset, bytes)?;
        let shown = path.to_string_lossy();
        let failing = self
            .failing_syncs
            .iter()
            .position(|suffix| shown.ends_with(suffix.as_str()));
        if let Some(position) = failing {
            self.failing_syncs.remove(position);
            // NOTE: like a failed fdatasync, the dirty data is forgotten.
            self.inode_mut(inode)?.pending.clear();
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let file = self.inode_mut(inode)?;
        // NOTE: `write` pushed this write last, having checked that its end
        // fits in usize. It becomes durable; older pending writes lose the
        // bytes it overwrote, so that no later sync or torn crash can put
        // them back over durable bytes.
        file.pending.pop();
        let start = offset as usize;
        let end = start + bytes.len();
        let older = std::mem::take(&mut file.pending);
        file.pending = older
            .into_iter()
            .flat_map(|write| trim_pending(write, start, end))
            .collect();
        apply_write(&mut file.durable, start, bytes);
        debug_assert!(file.durable.len() <= file.volatile.len());
        Ok(())
    }

    fn read(&self, inode: InodeId, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        self.check_alive()?;
        let image = &self.inode(inode)?.volatile;
        let tail = usize::try_from(offset)
            .ok()
            .and_then(|start| image.get(start..))
            .unwrap_or_default();
        Ok(tail.iter().take(len).copied().collect())
    }

    fn sync(&mut self, inode: InodeId, path: &Path) -> io::Result<()> {
        self.begin_mutation("sync", path, 0, 0)?;
        let shown = path.to_string_lossy();
        let failing = self
            .failing_syncs
            .iter()
            .position(|suffix| shown.ends_with(suffix.as_str()));
        if let Some(position) = failing {
            self.failing_syncs.remove(position);
            // NOTE: like Linux after a writeback error, the dirty data is
            // forgotten: it stays readable but no later sync writes it, which
            // is why a failed fsync must never be retried.
            self.inode_mut(inode)?.pending.clear();
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let file = self.inode_mut(inode)?;
        // NOTE: the size counts as data here (fdatasync flushes a size
        // change), so an appending write is durable after `sync_data` alone.
        for write in file.pending.drain(..) {
            apply_write(&mut file.durable, write.offset, &write.bytes);
        }
        debug_assert!(file.durable.len() <= file.volatile.len());
        Ok(())
    }

    /// The state a power loss at this moment could leave, as a fresh disk.
    fn recovered(&mut self, mode: TearMode) -> State {
        let mut dirs = BTreeMap::new();
        for (path, dir) in &self.dirs {
            let entries = match mode {
                TearMode::DropAll => dir.durable.clone(),
                TearMode::KeepAll => dir.volatile.clone(),
                TearMode::Random | TearMode::Sectors(_) | TearMode::SectorsAnyOrder(_) => {
                    let applied = self.rng.below(dir.pending.len() + 1);
                    let mut entries = dir.durable.clone();
                    dir.pending
                        .iter()
                        .take(applied)
                        .for_each(|op| op.apply(&mut entries));
                    entries
                }
            };
            dirs.insert(path.clone(), Dir::settled(entries));
        }
        let live: BTreeSet<InodeId> = dirs
            .values()
            .flat_map(|dir| dir.durable.values().copied())
            .collect();
        let mut inodes = BTreeMap::new();
        for id in live {
            let Some(file) = self.inodes.get(&id) else {
                continue;
            };
            let image = match mode {
                TearMode::DropAll => file.durable.clone(),
                // NOTE: the volatile image, not durable + pending: after a
                // failed sync a killed process's successor still reads the
                // dropped writes from the page cache.
                TearMode::KeepAll => file.volatile.clone(),
                TearMode::Random => {
                    let mut image = file.durable.clone();
                    for write in &file.pending {
                        let len = write.bytes.len();
                        let kept = match self.rng.below(3) {
                            0 => len,
                            1 => 0,
                            // Torn: a non-empty proper prefix (none for a 1-byte write).
                            _ if len >= 2 => 1 + self.rng.below(len - 1),
                            _ => 0,
                        };
                        if let Some(prefix) = write.bytes.get(..kept) {
                            apply_write(&mut image, write.offset, prefix);
                        }
                    }
                    image
                }
                TearMode::Sectors(sector_bytes) | TearMode::SectorsAnyOrder(sector_bytes) => {
                    let any_order = matches!(mode, TearMode::SectorsAnyOrder(_));
                    let mut image = file.durable.clone();
                    for write in &file.pending {
                        for (offset, piece) in
                            torn_sectors(&mut self.rng, write, sector_bytes.max(1), any_order)
                        {
                            apply_write(&mut image, offset, piece);
                        }
                    }
                    image
                }
            };
            inodes.insert(id, Inode::settled(image));
        }
        let mut recovered = State::new(self.rng.next_u64());
        recovered.dirs = dirs;
        recovered.inodes = inodes;
        recovered.next_inode = self.next_inode;
        recovered
    }

    /// The inode at `path`, for the test hooks (no crash check, no count).
    fn hook_lookup(&self, path: &Path) -> Option<InodeId> {
        self.lookup(path).ok()
    }
}

/// What a crash keeps of an unsynced `write` on a disk of
/// `sector_bytes` sectors: `(file offset, bytes)` pieces. In order: the
/// whole write, nothing, or its sectors up to a random one; in any
/// order: each sector (aligned in the file) kept or not.
fn torn_sectors<'w>(
    rng: &mut Rng,
    write: &'w PendingWrite,
    sector_bytes: usize,
    any_order: bool,
) -> Vec<(usize, &'w [u8])> {
    let end = write.offset + write.bytes.len();
    // Sector boundaries inside the write, in file offsets.
    let mut cuts = vec![write.offset];
    let mut next = (write.offset / sector_bytes + 1) * sector_bytes;
    while next < end {
        cuts.push(next);
        next += sector_bytes;
    }
    cuts.push(end);
    let sectors: Vec<(usize, &[u8])> = cuts
        .windows(2)
        .filter_map(|pair| match pair {
            [start, stop] => write
                .bytes
                .get(start - write.offset..stop - write.offset)
                .map(|bytes| (*start, bytes)),
            _ => None,
        })
        .collect();
    if any_order {
        return sectors.into_iter().filter(|_| rng.below(2) == 0).collect();
    }
    let kept = match rng.below(3) {
        0 => sectors.len(),
        1 => 0,
        _ => rng.below(sectors.len() + 1),
    };
    sectors.into_iter().take(kept).collect()
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimFs {
    /// A new, empty disk (only `/` exists) whose crash outcomes are drawn
    /// from `seed`.
    pub fn new(seed: u64) -> Arc<SimFs> {
        Arc::new(SimFs {
            state: Arc::new(Mutex::new(State::new(seed))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Makes every durable operation (fdatasync, `O_DSYNC` write) wait a
    /// random time below `max` before it takes effect, like a real disk's
    /// flush: operations then overlap and may complete out of order. Needs
    /// a tokio runtime with timers.
    pub fn set_durable_op_delay(&self, max: std::time::Duration) {
        self.lock().durable_op_delay = Some(max);
    }

    /// Holds every durable operation (fdatasync, `O_DSYNC` write) from
    /// now on before it takes effect, until [`Self::release_durable_ops`]:
    /// a test can then see what is, and is not, acknowledged while a sync
    /// has not completed.
    pub fn hold_durable_ops(&self) {
        self.lock().durable_gate.send_replace(true);
    }

    /// Lets the held durable operations, and all later ones, go on.
    pub fn release_durable_ops(&self) {
        self.lock().durable_gate.send_replace(false);
    }

    /// Durable operations waiting at the gate of
    /// [`Self::hold_durable_ops`] now.
    pub fn held_durable_ops(&self) -> usize {
        self.lock().durable_gate.receiver_count()
    }

    /// The seed this disk was created with (print it when a test fails).
    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// How many mutating operations have started, including failed ones and
    /// the one that hit the crash. The next one gets this index.
    pub fn mutating_ops(&self) -> u64 {
        self.lock().next_op
    }

    /// Arms a power loss at mutating operation `op_index`: it and every
    /// later operation of this disk fail. An index already passed crashes
    /// now. Replaces an earlier `crash_at`.
    pub fn crash_at(&self, op_index: u64) {
        let mut state = self.lock();
        if op_index < state.next_op {
            state.crashed = true;
        }
        state.crash_at = Some(op_index);
    }

    /// Loses power now: every later operation of this disk fails.
    pub fn crash_now(&self) {
        self.lock().crashed = true;
    }

    /// Whether this disk has lost power.
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// A new disk holding what this one could hold after a power loss, with
    /// torn and dropped writes chosen at random ([`TearMode::Random`]).
    /// Crashes this disk first if it has not crashed yet.
    pub fn recover(&self) -> Arc<SimFs> {
        self.recover_with(TearMode::Random)
    }

    /// A new disk (fresh op counter, no faults armed) holding what survives
    /// a power loss of this one under `mode`. Crashes this disk first if it
    /// has not crashed yet; it stays crashed, so a store still running on it
    /// cannot touch the new disk. Deterministic for this disk's seed and
    /// history; each call draws new outcomes.
    pub fn recover_with(&self, mode: TearMode) -> Arc<SimFs> {
        let mut state = self.lock();
        state.crashed = true;
        let recovered = state.recovered(mode);
        Arc::new(SimFs {
            state: Arc::new(Mutex::new(recovered)),
        })
    }

    /// Every mutating operation started so far, in index order (up to the
    /// first 2^20): with the same seed and the same calls, the same log.
    pub fn op_log(&self) -> Vec<LoggedOp> {
        self.lock().op_log.clone()
    }

    /// Makes the `n`th (from 0) future mutating op of `kind` (as in
    /// [`LoggedOp::kind`]) whose path contains `path_contains` fail with
    /// `errno`, without being performed. Unlike [`SimFs::fail_at`] this
    /// picks the same op however the store's threads interleave.
    pub fn fail_nth(&self, kind: &'static str, path_contains: &str, n: u64, errno: i32) {
        self.lock().path_faults.push(PathFault {
            kind,
            path_contains: path_contains.to_owned(),
            skip: n,
            errno,
        });
    }

    /// Arms a power loss at the `n`th (from 0) future mutating op of `kind`
    /// whose path contains `path_contains`: as [`SimFs::crash_at`], for
    /// the op [`SimFs::fail_nth`] would pick.
    pub fn crash_nth(&self, kind: &'static str, path_contains: &str, n: u64) {
        self.fail_nth(kind, path_contains, n, CRASH_ERRNO);
    }

    /// Makes mutating operation `op_index` fail with `EIO` without being
    /// performed; later operations proceed normally.
    pub fn fail_at(&self, op_index: u64) {
        self.fail_at_with_errno(op_index, libc::EIO);
    }

    /// Makes mutating operation `op_index` fail with `errno` (e.g.
    /// `libc::ENOSPC`) without being performed.
    pub fn fail_at_with_errno(&self, op_index: u64, errno: i32) {
        self.lock().faults.insert(op_index, errno);
    }

    /// Makes the next `sync_data` of a file whose path (as it was opened)
    /// ends with `path_suffix` (as a string) fail with `EIO`; the sync still
    /// takes its op index. Like Linux, the failed
    /// sync drops the file's unsynced writes: they stay readable, but no
    /// later sync makes them durable.
    pub fn fail_next_sync(&self, path_suffix: &str) {
        self.lock().failing_syncs.push(path_suffix.to_owned());
    }

    /// Fills the disk for files whose path (as opened) ends with
    /// `path_suffix`: every later write to one fails with `ENOSPC` and
    /// changes nothing, until [`SimFs::clear_full`].
    pub fn set_full(&self, path_suffix: &str) {
        self.lock().full_suffixes.push(path_suffix.to_owned());
    }

    /// Frees the space [`SimFs::set_full`] took: writes succeed again.
    pub fn clear_full(&self) {
        self.lock().full_suffixes.clear();
    }

    /// The volatile image of the file at `path`, if it exists. Test hook:
    /// works after a crash too.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.hook_lookup(path)?;
        state.inodes.get(&inode).map(|file| file.volatile.clone())
    }

    /// Creates or replaces the file at `path` (and its missing parent
    /// directories) with `bytes`, durable at once; open handles keep the old
    /// file. Test hook for a quiescent disk, e.g. between recover and reopen.
    ///
    /// # Panics
    ///
    /// If `path` is a directory or cannot name a file.
    pub fn write_file_durable(&self, path: &Path, bytes: Vec<u8>) {
        let mut state = self.lock();
        let created = split(path).and_then(|(dir, name)| {
            if state.dirs.contains_key(path) {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            }
            state.make_dirs(&dir)?;
            let inode = state.new_inode(bytes);
            let entry = state.dirs.get_mut(&dir).ok_or_else(|| not_found(&dir))?;
            entry.durable.insert(name.clone(), inode);
            entry.volatile.insert(name, inode);
            Ok(())
        });
        if let Err(e) = created {
            panic!("SimFs::write_file_durable({}): {e}", path.display());
        }
    }

    /// Flips bit `bit` (0..8) of byte `byte_offset` of the file at `path`,
    /// in the volatile and the durable image and in any unsynced write
    /// covering it, so the flip survives any recovery. Returns false (and
    /// changes nothing) if there is no such file, byte or bit.
    pub fn flip_bit(&self, path: &Path, byte_offset: u64, bit: u8) -> bool {
        let Some(mask) = 1u8.checked_shl(u32::from(bit)) else {
            return false;
        };
        let Ok(offset) = usize::try_from(byte_offset) else {
            return false;
        };
        let mut state = self.lock();
        let Some(inode) = state.hook_lookup(path) else {
            return false;
        };
        let Some(file) = state.inodes.get_mut(&inode) else {
            return false;
        };
        let Some(byte) = file.volatile.get_mut(offset) else {
            return false;
        };
        *byte ^= mask;
        if let Some(byte) = file.durable.get_mut(offset) {
            *byte ^= mask;
        }
        for write in &mut file.pending {
            if let Some(byte) = offset
                .checked_sub(write.offset)
                .and_then(|at| write.bytes.get_mut(at))
            {
                *byte ^= mask;
            }
        }
        true
    }

    /// Cuts the file at `path` to at most `len` bytes, in both images and in
    /// its unsynced writes (a torn tail on disk). Returns false if there is
    /// no such file.
    pub fn truncate_durable(&self, path: &Path, len: u64) -> bool {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut state = self.lock();
        let Some(inode) = state.hook_lookup(path) else {
            return false;
        };
        let Some(file) = state.inodes.get_mut(&inode) else {
            return false;
        };
        file.durable.truncate(len);
        file.volatile.truncate(len);
        file.pending.retain_mut(|write| {
            write.bytes.truncate(len.saturating_sub(write.offset));
            !write.bytes.is_empty()
        });
        true
    }

    /// Paths of every file in the volatile namespace, sorted.
    pub fn list_files(&self) -> Vec<PathBuf> {
        let state = self.lock();
        let mut files: Vec<PathBuf> = state
            .dirs
            .iter()
            .flat_map(|(dir, entries)| entries.volatile.keys().map(move |name| dir.join(name)))
            .collect();
        files.sort();
        files
    }
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimFs")
            .field("seed", &state.seed)
            .field("mutating_ops", &state.next_op)
            .field("crashed", &state.crashed)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("inode", &self.inode)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Fs for SimFs {
    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let inode = self.lock().open(path, mode)?;
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            inode,
            path: path.to_path_buf(),
            writable: mode != OpenMode::Read,
            dsync: matches!(mode, OpenMode::ReadWriteDsync | OpenMode::ReadWriteDirect),
            direct: mode == OpenMode::ReadWriteDirect,
        }))
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.lock().rename(from, to)
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.lock().hard_link(from, to)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.lock().remove_file(path)
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.begin_mutation("mkdir", path, 0, 0)?;
        // NOTE: directory creation is durable at once: ringdb creates its
        // directory once, before any file in it, and the sim does not model
        // the parent's entry for it.
        state.make_dirs(path)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.lock().sync_dir(path)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.lock().list_dir(path)
    }

    async fn lock_file(&self, path: &Path) -> io::Result<super::FileLock> {
        // NOTE: a lock belongs to the running process, not the disk: it
        // takes no op index, and the disk a crash leaves has none held.
        let mut state = self.lock();
        state.check_alive()?;
        if !state.locks.insert(path.to_path_buf()) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(super::FileLock::new(Box::new(SimLock {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
        })))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name(SPAWN_THREAD_NAME.to_owned())
            .spawn(move || runtime.block_on(task))?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "sim"
    }
}

impl SimFile {
    /// Waits while [`SimFs::hold_durable_ops`] holds durable operations.
    async fn pass_durable_gate(&self) {
        let mut gate = {
            let state = lock(&self.state);
            let gate = state.durable_gate.subscribe();
            if !*gate.borrow() {
                return;
            }
            gate
        };
        // NOTE: the sender lives in the state this handle shares, so the
        // wait ends only by a release.
        let _ = gate.wait_for(|held| !*held).await;
    }
}

#[async_trait]
impl File for SimFile {
    async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        if self.dsync && self.writable {
            self.pass_durable_gate().await;
            let delay = lock(&self.state).durable_delay();
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
        }
        let mut state = lock(&self.state);
        // NOTE: a write through a read-only handle is a caller bug refused
        // before it takes an op index, like the kernel's EBADF.
        if !self.writable {
            state.check_alive()?;
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // NOTE: as the kernel refuses a misaligned `O_DIRECT` write, so the
        // sim catches a WAL writer that would send one.
        if self.direct && !super::direct_write_aligned(offset, buf.len()) {
            state.check_alive()?;
            return Err(super::misaligned_direct_write());
        }
        let shown = self.path.to_string_lossy();
        if state
            .full_suffixes
            .iter()
            .any(|suffix| shown.ends_with(suffix.as_str()))
        {
            // NOTE: takes its op index like any failed mutating operation.
            state.begin_mutation("write", &self.path, offset, buf.len())?;
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        if self.dsync {
            state.write_durable(self.inode, &self.path, offset, &buf)?;
        } else {
            state.write(self.inode, &self.path, offset, &buf)?;
        }
        Ok(buf)
    }

    async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        lock(&self.state).read(self.inode, len, offset)
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.pass_durable_gate().await;
        let delay = lock(&self.state).durable_delay();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        lock(&self.state).sync(self.inode, &self.path)
    }

    async fn size_bytes(&self) -> io::Result<u64> {
        let state = lock(&self.state);
        state.check_alive()?;
        Ok(state.inode(self.inode)?.volatile.len() as u64)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use futures::executor::block_on;

    use super::*;

    fn path(text: &str) -> &Path {
        Path::new(text)
    }

    /// A disk with `/db` created (op 0).
    fn disk(seed: u64) -> Arc<SimFs> {
        let fs = SimFs::new(seed);
        block_on(fs.create_dir_all(path("/db"))).unwrap();
        fs
    }

    fn is_power_loss(error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::Other && error.to_string() == POWER_LOSS_MESSAGE
    }

    /// Creates `name` in `/db`, writes `bytes`, syncs the file and the dir.
    fn durable_file(fs: &SimFs, name: &str, bytes: &[u8]) -> Arc<dyn File> {
        block_on(async {
            let file = fs
                .open(&Path::new("/db").join(name), OpenMode::CreateNew)
                .await
                .unwrap();
            file.write_all_at(bytes.to_vec(), 0).await.unwrap();
            file.sync_data().await.unwrap();
            fs.sync_dir(path("/db")).await.unwrap();
            file
        })
    }

    #[test]
    fn write_then_read_back() {
        let fs = disk(1);
        block_on(async {
            let file = fs.open(path("/db/a"), OpenMode::CreateNew).await.unwrap();
            let buf = file.write_all_at(b"hello".to_vec(), 0).await.unwrap();
            assert_eq!(buf, b"hello");
            file.write_all_at(b"XY".to_vec(), 7).await.unwrap();
            assert_eq!(file.size_bytes().await.unwrap(), 9);
            assert_eq!(file.read_at(100, 0).await.unwrap(), b"hello\0\0XY");
            assert_eq!(file.read_at(3, 1).await.unwrap(), b"ell");
            assert!(file.read_at(4, 9).await.unwrap().is_empty());
            assert!(file.read_at(4, 50).await.unwrap().is_empty());
            // An empty write past the end does not extend the file.
            file.write_all_at(Vec::new(), 100).await.unwrap();
            assert_eq!(file.size_bytes().await.unwrap(), 9);
            let again = fs.open(path("/db/a"), OpenMode::Read).await.unwrap();
            assert_eq!(again.read_at(5, 0).await.unwrap(), b"hello");
            let denied = again.write_all_at(b"x".to_vec(), 0).await.unwrap_err();
            assert_eq!(denied.raw_os_error(), Some(libc::EBADF));
        });
        assert_eq!(fs.read_file(path("/db/a")).unwrap(), b"hello\0\0XY");
        assert_eq!(fs.name(), "sim");
    }

    #[test]
    fn open_modes_and_namespace() {
        let fs = disk(1);
        block_on(async {
            let missing = fs.open(path("/db/a"), OpenMode::Read).await.unwrap_err();
            assert_eq!(missing.kind(), io::ErrorKind::NotFound);
            let missing = fs.open(path("/db/a"), OpenMode::ReadWrite).await.unwrap_err();
            assert_eq!(missing.kind(), io::ErrorKind::NotFound);
            let no_parent = fs.open(path("/nope/a"), OpenMode::CreateNew).await.unwrap_err();
            assert_eq!(no_parent.kind(), io::ErrorKind::NotFound);
            fs.open(path("/db/a"), OpenMode::CreateNew).await.unwrap();
            let exists = fs.open(path("/db/a"), OpenMode::CreateNew).await.unwrap_err();
            assert_eq!(exists.kind(), io::ErrorKind::AlreadyExists);
            fs.open(path("/db/a"), OpenMode::CreateReadWrite).await.unwrap();
            fs.open(path("/db/b"), OpenMode::CreateReadWrite).await.unwrap();
            fs.create_dir_all(path("/db/sub/deeper")).await.unwrap();
            let mut names = fs.list_dir(path("/db")).await.unwrap();
            names.sort();
            assert_eq!(names, ["a", "b", "sub"]);
            fs.remove_file(path("/db/a")).await.unwrap();
            let gone = fs.remove_file(path("/db/a")).await.unwrap_err();
            assert_eq!(gone.kind(), io::ErrorKind::NotFound);
            let missing_dir = fs.list_dir(path("/other")).await.unwrap_err();
            assert_eq!(missing_dir.kind(), io::ErrorKind::NotFound);
        });
        assert_eq!(fs.list_files(), [PathBuf::from("/db/b")]);
    }

    #[test]
    fn sync_keeps_synced_data_and_drop_all_loses_the_rest() {
        let fs = disk(2);
        let file = durable_file(&fs, "wal", b"synced");
        block_on(file.write_all_at(b"-unsynced".to_vec(), 6)).unwrap();
        let after = fs.recover_with(TearMode::DropAll);
        assert!(fs.is_crashed());
        assert_eq!(after.read_file(path("/db/wal")).unwrap(), b"synced");
    }

    #[test]
    fn unsynced_create_vanishes_under_drop_all_and_survives_keep_all() {
        let build = || {
            let fs = disk(3);
            block_on(async {
                let file = fs.open(path("/db/new"), OpenMode::CreateNew).await.unwrap();
                file.write_all_at(b"data".to_vec(), 0).await.unwrap();
                file.sync_data().await.unwrap();
            });
            fs
        };
        let dropped = build().recover_with(TearMode::DropAll);
        assert_eq!(dropped.read_file(path("/db/new")), None);
        assert!(dropped.list_files().is_empty());
        let kept = build().recover_with(TearMode::KeepAll);
        assert_eq!(kept.read_file(path("/db/new")).unwrap(), b"data");
        // After sync_dir the entry is durable.
        let fs = build();
        block_on(fs.sync_dir(path("/db"))).unwrap();
        let synced = fs.recover_with(TearMode::DropAll);
        assert_eq!(synced.read_file(path("/db/new")).unwrap(), b"data");
    }

    #[test]
    fn rename_not_dir_synced_reverts_under_drop_all() {
        let build = || {
            let fs = disk(4);
            durable_file(&fs, "CURRENT", b"old");
            durable_file(&fs, "CURRENT.tmp", b"new");
            block_on(fs.rename(path("/db/CURRENT.tmp"), path("/db/CURRENT"))).unwrap();
            assert_eq!(fs.read_file(path("/db/CURRENT")).unwrap(), b"new");
            assert_eq!(fs.read_file(path("/db/CURRENT.tmp")), None);
            fs
        };
        let reverted = build().recover_with(TearMode::DropAll);
        assert_eq!(reverted.read_file(path("/db/CURRENT")).unwrap(), b"old");
        assert_eq!(reverted.read_file(path("/db/CURRENT.tmp")).unwrap(), b"new");
        let kept = build().recover_with(TearMode::KeepAll);
        assert_eq!(kept.read_file(path("/db/CURRENT")).unwrap(), b"new");
        assert_eq!(kept.read_file(path("/db/CURRENT.tmp")), None);
        let fs = build();
        block_on(fs.sync_dir(path("/db"))).unwrap();
        let synced = fs.recover_with(TearMode::DropAll);
        assert_eq!(synced.list_files(), [PathBuf::from("/db/CURRENT")]);
        assert_eq!(synced.read_file(path("/db/CURRENT")).unwrap(), b"new");
    }

    #[test]
    fn hard_link_shares_the_file_and_is_durable_after_sync_dir() {
        let build = || {
            let fs = disk(5);
            durable_file(&fs, "000001.sst", b"table");
            block_on(fs.create_dir_all(path("/copy"))).unwrap();
            block_on(fs.hard_link(path("/db/000001.sst"), path("/copy/000001.sst"))).unwrap();
            assert_eq!(fs.read_file(path("/copy/000001.sst")).unwrap(), b"table");
            let again = block_on(fs.hard_link(path("/db/000001.sst"), path("/copy/000001.sst")));
            assert_eq!(again.unwrap_err().raw_os_error(), Some(libc::EEXIST));
            let missing = block_on(fs.hard_link(path("/db/none"), path("/copy/none")));
            assert_eq!(missing.unwrap_err().kind(), io::ErrorKind::NotFound);
            fs
        };
        let dropped = build().recover_with(TearMode::DropAll);
        assert_eq!(dropped.read_file(path("/copy/000001.sst")), None);
        let fs = build();
        block_on(fs.sync_dir(path("/copy"))).unwrap();
        // Removing the original name leaves the link.
        block_on(fs.remove_file(path("/db/000001.sst"))).unwrap();
        block_on(fs.sync_dir(path("/db"))).unwrap();
        let synced = fs.recover_with(TearMode::DropAll);
        assert_eq!(synced.read_file(path("/copy/000001.sst")).unwrap(), b"table");
        assert_eq!(synced.read_file(path("/db/000001.sst")), None);
    }

    /// Ops: 0 create_dir_all, 1 open, 2 write, 3 sync, 4 write, 5 sync_dir.
    fn numbered_workload(fs: &SimFs) -> Vec<io::Result<()>> {
        block_on(async {
            let mut results = vec![fs.create_dir_all(path("/db")).await];
            let file = match fs.open(path("/db/f"), OpenMode::CreateNew).await {
                Ok(file) => file,
                Err(e) => {
                    results.push(Err(e));
                    return results;
                }
            };
            results.push(Ok(()));
            results.push(file.write_all_at(b"one".to_vec(), 0).await.map(|_| ()));
            results.push(file.sync_data().await);
            results.push(file.write_all_at(b"two".to_vec(), 3).await.map(|_| ()));
            results.push(fs.sync_dir(path("/db")).await);
            results
        })
    }

    #[test]
    fn ops_are_numbered_in_call_order() {
        let fs = SimFs::new(5);
        assert!(numbered_workload(&fs).iter().all(Result::is_ok));
        assert_eq!(fs.mutating_ops(), 6);
        // Reads do not count.
        block_on(fs.list_dir(path("/db"))).unwrap();
        block_on(fs.open(path("/db/f"), OpenMode::Read)).unwrap();
        assert_eq!(fs.mutating_ops(), 6);
    }

    #[test]
    fn op_log_names_every_mutating_op_and_repeats_for_a_seed() {
        let fs = SimFs::new(5);
        fs.fail_at(3);
        numbered_workload(&fs);
        let log = fs.op_log();
        let kinds: Vec<&str> = log.iter().map(|op| op.kind).collect();
        assert_eq!(kinds, ["mkdir", "create", "write", "sync", "write", "sync_dir"]);
        assert_eq!(
            log.iter().map(|op| op.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        assert_eq!((log[4].offset, log[4].len), (3, 3));
        assert_eq!(log[4].path, path("/db/f"));
        assert_eq!(log[3].failed, Some(libc::EIO));
        assert!(
            log.iter()
                .filter(|op| op.index != 3)
                .all(|op| op.failed.is_none())
        );
        let again = SimFs::new(5);
        again.fail_at(3);
        numbered_workload(&again);
        assert_eq!(again.op_log(), log);
        // A fault by kind and path picks the nth matching op.
        let by_path = SimFs::new(5);
        by_path.fail_nth("write", "/db/f", 1, libc::ENOSPC);
        let results = numbered_workload(&by_path);
        assert!(results[2].is_ok());
        assert_eq!(
            results[4].as_ref().unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert_eq!(by_path.op_log()[4].failed, Some(libc::ENOSPC));
        let crash_by_path = SimFs::new(5);
        crash_by_path.crash_nth("sync", "/db/f", 0);
        numbered_workload(&crash_by_path);
        assert!(crash_by_path.is_crashed());
        assert_eq!(crash_by_path.op_log().len(), 4);
        // A crash is logged as -1, and nothing after it.
        let crashed = SimFs::new(5);
        crashed.crash_at(2);
        numbered_workload(&crashed);
        let log = crashed.op_log();
        assert_eq!(log.len(), 3);
        assert_eq!(log[2].failed, Some(-1));
    }

    #[test]
    fn sector_tears_keep_whole_sectors() {
        const SECTOR: usize = 512;
        let (offset, len) = (100usize, 3 * SECTOR + 100);
        let mut shapes = BTreeSet::new();
        for seed in 0..64 {
            for any_order in [false, true] {
                let fs = disk(seed);
                let file = durable_file(&fs, "wal", b"");
                block_on(file.write_all_at(vec![7; len], offset as u64)).unwrap();
                let mode = if any_order {
                    TearMode::SectorsAnyOrder(SECTOR)
                } else {
                    TearMode::Sectors(SECTOR)
                };
                let image = fs.recover_with(mode).read_file(path("/db/wal")).unwrap();
                // Each sector of the write is all there or all zeros.
                let bounds = [offset, 512, 1024, 1536, offset + len];
                let kept: Vec<bool> = bounds
                    .windows(2)
                    .map(|w| {
                        let piece = image.get(w[0]..w[1].min(image.len())).unwrap_or_default();
                        let whole = piece.len() == w[1] - w[0] && piece.iter().all(|&b| b == 7);
                        assert!(whole || piece.iter().all(|&b| b == 0), "seed {seed}: torn sector");
                        whole
                    })
                    .collect();
                if !any_order {
                    // In order: a prefix of the sectors.
                    let first_lost = kept.iter().position(|k| !k).unwrap_or(kept.len());
                    assert!(kept[first_lost..].iter().all(|k| !k), "seed {seed}: {kept:?}");
                }
                shapes.insert((any_order, kept));
            }
        }
        assert!(shapes.len() > 6, "tears vary: {shapes:?}");
        assert!(
            shapes
                .iter()
                .any(|(any, kept)| *any && kept.windows(2).any(|w| !w[0] && w[1])),
            "any order keeps a later sector without an earlier one"
        );
    }

    #[test]
    fn crash_at_fails_that_op_and_everything_after() {
        for crash in 1..6 {
            let fs = SimFs::new(6);
            fs.crash_at(crash);
            let results = numbered_workload(&fs);
            let index = usize::try_from(crash).unwrap();
            assert!(
                results[..index].iter().all(Result::is_ok),
                "crash at {crash}: {results:?}"
            );
            assert!(is_power_loss(results[index].as_ref().unwrap_err()));
            assert!(
                results[index..]
                    .iter()
                    .all(|r| r.as_ref().is_err_and(is_power_loss))
            );
            assert!(fs.is_crashed());
            assert_eq!(fs.mutating_ops(), crash + 1);
            // Reads fail too.
            assert!(is_power_loss(&block_on(fs.list_dir(path("/db"))).unwrap_err()));
        }
        // Handles opened before the crash fail as well.
        let fs = disk(6);
        let file = durable_file(&fs, "f", b"abc");
        fs.crash_now();
        assert!(is_power_loss(&block_on(file.read_at(3, 0)).unwrap_err()));
        assert!(is_power_loss(&block_on(file.size_bytes()).unwrap_err()));
        assert!(is_power_loss(&block_on(file.sync_data()).unwrap_err()));
    }

    #[test]
    fn fail_at_fails_only_that_op_without_performing_it() {
        let fs = SimFs::new(7);
        fs.fail_at(2);
        let results = numbered_workload(&fs);
        assert_eq!(results[2].as_ref().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(
            results.iter().enumerate().all(|(i, r)| i == 2 || r.is_ok()),
            "{results:?}"
        );
        // The failed write at offset 0 never happened; the later one did.
        assert_eq!(fs.read_file(path("/db/f")).unwrap(), b"\0\0\0two");

        let fs = SimFs::new(7);
        fs.fail_at_with_errno(1, libc::ENOSPC);
        let results = numbered_workload(&fs);
        assert_eq!(
            results[1].as_ref().unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert_eq!(fs.read_file(path("/db/f")), None);
        assert!(!fs.is_crashed());
        // Later ops proceed.
        block_on(fs.open(path("/db/f"), OpenMode::CreateNew)).unwrap();
    }

    #[test]
    fn failed_sync_drops_the_unsynced_writes() {
        let fs = disk(8);
        let file = durable_file(&fs, "000001.log", b"kept");
        fs.fail_next_sync(".log");
        block_on(async {
            file.write_all_at(b"lost".to_vec(), 4).await.unwrap();
            let failed = file.sync_data().await.unwrap_err();
            assert_eq!(failed.raw_os_error(), Some(libc::EIO));
            // Still readable...
            assert_eq!(file.read_at(8, 0).await.unwrap(), b"keptlost");
            // ...and a retried sync "succeeds" without making them durable.
            file.sync_data().await.unwrap();
        });
        let after = fs.recover_with(TearMode::DropAll);
        assert_eq!(after.read_file(path("/db/000001.log")).unwrap(), b"kept");
        // Only the matching file's next sync fails.
        let other = durable_file(&after, "MANIFEST", b"m");
        after.fail_next_sync(".log");
        block_on(other.sync_data()).unwrap();
    }

    /// A direct handle's writes are durable at once, and a misaligned one is
    /// refused with `EINVAL` and changes nothing, as the kernel does.
    #[test]
    fn direct_writes_are_durable_and_must_be_aligned() {
        const ALIGN: usize = crate::io::DIRECT_IO_ALIGN_BYTES;
        let fs = disk(9);
        let plain = durable_file(&fs, "000001.log", &[0; 2 * ALIGN]);
        let direct = block_on(fs.open(path("/db/000001.log"), OpenMode::ReadWriteDirect)).unwrap();
        block_on(async {
            for (len, offset) in [(ALIGN, 1), (10, 0), (ALIGN + 10, ALIGN as u64)] {
                let error = direct.write_all_at(vec![7; len], offset).await.unwrap_err();
                assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "len {len} at {offset}");
            }
            direct.write_all_at(vec![9; ALIGN], ALIGN as u64).await.unwrap();
            plain.write_all_at(b"lost".to_vec(), 0).await.unwrap();
        });
        let image = fs
            .recover_with(TearMode::DropAll)
            .read_file(path("/db/000001.log"))
            .unwrap();
        assert_eq!(
            image[..ALIGN],
            vec![0; ALIGN][..],
            "misaligned writes changed nothing"
        );
        assert_eq!(image[ALIGN..], vec![9; ALIGN][..], "the direct write is durable");
    }

    #[test]
    fn dsync_writes_are_durable_and_only_their_bytes() {
        for mode in [TearMode::DropAll, TearMode::KeepAll, TearMode::Random] {
            let fs = disk(9);
            let plain = durable_file(&fs, "000001.log", b"");
            let dsync = block_on(fs.open(path("/db/000001.log"), OpenMode::ReadWriteDsync)).unwrap();
            block_on(async {
                // Unsynced zeros, then a durable record over part of them,
                // then an unsynced write elsewhere.
                plain.write_all_at(vec![0; 8], 0).await.unwrap();
                dsync.write_all_at(b"rec".to_vec(), 2).await.unwrap();
                plain.write_all_at(b"z".to_vec(), 9).await.unwrap();
            });
            let after = fs.recover_with(mode);
            let image = after.read_file(path("/db/000001.log")).unwrap();
            // The record survives every tear, never overwritten by the older
            // zeros; what is around it is zeros or the later byte.
            assert_eq!(image.get(2..5), Some(&b"rec"[..]), "{mode:?}: {image:?}");
            assert!(image.len() >= 5, "{mode:?}");
            assert!(
                image
                    .iter()
                    .enumerate()
                    .all(|(i, b)| (2..5).contains(&i) || *b == 0 || (i == 9 && *b == b'z')),
                "{mode:?}: {image:?}"
            );
            if mode == TearMode::DropAll {
                assert_eq!(image, b"\0\0rec", "only the dsync write was durable");
            }
        }
    }

    #[test]
    fn failed_dsync_write_is_a_failed_sync() {
        let fs = disk(10);
        durable_file(&fs, "000001.log", b"kept");
        let dsync = block_on(fs.open(path("/db/000001.log"), OpenMode::ReadWriteDsync)).unwrap();
        fs.fail_next_sync(".log");
        let failed = block_on(dsync.write_all_at(b"lost".to_vec(), 4)).unwrap_err();
        assert_eq!(failed.raw_os_error(), Some(libc::EIO));
        // A retried sync "succeeds" without making the bytes durable.
        block_on(dsync.sync_data()).unwrap();
        let after = fs.recover_with(TearMode::DropAll);
        assert_eq!(after.read_file(path("/db/000001.log")).unwrap(), b"kept");
    }

    /// A durable empty file, then eight unsynced 16-byte writes of byte
    /// `i + 1` at offset `16 * i`, then a Random recovery.
    fn torn_workload(seed: u64) -> Arc<SimFs> {
        let fs = disk(seed);
        let file = durable_file(&fs, "wal", b"");
        durable_file(&fs, "other", b"x");
        block_on(async {
            for i in 0..8u8 {
                file.write_all_at(vec![i + 1; 16], 16 * u64::from(i))
                    .await
                    .unwrap();
            }
            fs.open(path("/db/unsynced"), OpenMode::CreateNew).await.unwrap();
            fs.remove_file(path("/db/other")).await.unwrap();
        });
        fs.recover()
    }

    fn image(fs: &SimFs) -> Vec<(PathBuf, Vec<u8>)> {
        fs.list_files()
            .into_iter()
            .map(|p| (p.clone(), fs.read_file(&p).unwrap()))
            .collect()
    }

    #[test]
    fn random_recovery_is_deterministic_and_tears() {
        assert_eq!(image(&torn_workload(42)), image(&torn_workload(42)));
        let (mut whole, mut torn, mut dropped, mut images) = (0, 0, 0, BTreeSet::new());
        for seed in 0..64 {
            let after = torn_workload(seed);
            let wal = after.read_file(path("/db/wal")).unwrap();
            images.insert(image(&after));
            for i in 0..8u8 {
                let start = 16 * usize::from(i);
                let region = wal.get(start..wal.len().min(start + 16)).unwrap_or_default();
                let written = region.iter().take_while(|&&b| b == i + 1).count();
                assert!(
                    region[written..].iter().all(|&b| b == 0),
                    "seed {seed}: garbage in write {i}"
                );
                match written {
                    16 => whole += 1,
                    0 => dropped += 1,
                    _ => torn += 1,
                }
            }
        }
        assert!(whole > 0 && torn > 0 && dropped > 0, "{whole} {torn} {dropped}");
        assert!(images.len() > 1, "different seeds give different images");
    }

    #[test]
    fn random_recovery_applies_a_prefix_of_entry_ops() {
        let mut outcomes = BTreeSet::new();
        for seed in 0..32 {
            let fs = disk(seed);
            block_on(async {
                for name in ["a", "b", "c"] {
                    fs.open(&Path::new("/db").join(name), OpenMode::CreateNew)
                        .await
                        .unwrap();
                }
            });
            let names: Vec<PathBuf> = fs.recover().list_files();
            let expected: Vec<PathBuf> = ["/db/a", "/db/b", "/db/c"]
                .iter()
                .take(names.len())
                .map(PathBuf::from)
                .collect();
            assert_eq!(names, expected, "seed {seed}: not a prefix");
            outcomes.insert(names.len());
        }
        assert_eq!(outcomes.len(), 4, "every prefix length shows up: {outcomes:?}");
    }

    #[test]
    fn flip_bit_changes_exactly_one_bit() {
        let fs = disk(9);
        durable_file(&fs, "sst", &[0xA5; 32]);
        let before = fs.read_file(path("/db/sst")).unwrap();
        assert!(fs.flip_bit(path("/db/sst"), 10, 3));
        let after = fs.read_file(path("/db/sst")).unwrap();
        let changed: u32 = before.iter().zip(&after).map(|(a, b)| (a ^ b).count_ones()).sum();
        assert_eq!(changed, 1);
        assert_eq!(after[10], 0xA5 ^ 0b1000);
        assert!(!fs.flip_bit(path("/db/sst"), 32, 0));
        assert!(!fs.flip_bit(path("/db/sst"), 0, 8));
        assert!(!fs.flip_bit(path("/db/none"), 0, 0));
        // In the durable image too.
        let recovered = fs.recover_with(TearMode::DropAll);
        assert_eq!(recovered.read_file(path("/db/sst")).unwrap(), after);
    }

    #[test]
    fn test_hooks_write_and_truncate_durably() {
        let fs = SimFs::new(10);
        fs.write_file_durable(path("/db/CURRENT"), b"MANIFEST-000001\n".to_vec());
        assert!(fs.truncate_durable(path("/db/CURRENT"), 8));
        assert!(!fs.truncate_durable(path("/db/none"), 8));
        let after = fs.recover_with(TearMode::DropAll);
        assert_eq!(after.read_file(path("/db/CURRENT")).unwrap(), b"MANIFEST");
        assert_eq!(after.mutating_ops(), 0);
        assert!(!after.is_crashed());
        // The old disk stays crashed; the new one works.
        assert!(fs.is_crashed());
        assert!(block_on(fs.create_dir_all(path("/x"))).is_err());
        block_on(after.create_dir_all(path("/x"))).unwrap();
    }

    #[test]
    fn handle_survives_rename_and_remove() {
        let fs = disk(11);
        block_on(async {
            let file = fs.open(path("/db/tmp"), OpenMode::CreateNew).await.unwrap();
            fs.rename(path("/db/tmp"), path("/db/final")).await.unwrap();
            file.write_all_at(b"after rename".to_vec(), 0).await.unwrap();
            assert_eq!(fs.read_file(path("/db/final")).unwrap(), b"after rename");
            fs.remove_file(path("/db/final")).await.unwrap();
            assert_eq!(file.read_at(5, 0).await.unwrap(), b"after");
            file.sync_data().await.unwrap();
        });
        assert!(fs.list_files().is_empty());
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SimFs>();
        let fs = disk(12);
        let file = durable_file(&fs, "f", b"x");
        let dyn_fs: Arc<dyn Fs> = fs.clone();
        let p = path("/db/f");
        assert_send(&dyn_fs.open(p, OpenMode::Read));
        assert_send(&dyn_fs.rename(p, p));
        assert_send(&dyn_fs.remove_file(p));
        assert_send(&dyn_fs.create_dir_all(p));
        assert_send(&dyn_fs.sync_dir(p));
        assert_send(&dyn_fs.list_dir(p));
        assert_send(&file.write_all_at(Vec::new(), 0));
        assert_send(&file.read_at(1, 0));
        assert_send(&file.sync_data());
        assert_send(&file.size_bytes());
    }

    #[test]
    fn spawn_runs_on_its_own_thread_with_timers() {
        fn run<F: Future<Output = ()> + Send + 'static>(fs: &SimFs, task: F) {
            fs.spawn(Box::pin(task)).unwrap();
        }
        let fs = SimFs::new(13);
        let (sender, receiver) = std::sync::mpsc::channel();
        run(&fs, async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let name = std::thread::current().name().map(str::to_owned);
            sender.send(name).unwrap();
        });
        let name = receiver.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(name.as_deref(), Some(SPAWN_THREAD_NAME));
    }

    #[test]
    fn works_with_relative_paths() {
        let fs = SimFs::new(14);
        block_on(async {
            fs.create_dir_all(path("db")).await.unwrap();
            fs.open(path("db/a"), OpenMode::CreateNew).await.unwrap();
            fs.open(path("top"), OpenMode::CreateNew).await.unwrap();
            assert_eq!(fs.list_dir(path("db")).await.unwrap(), ["a"]);
        });
        assert_eq!(fs.list_files(), [PathBuf::from("db/a"), PathBuf::from("top")]);
    }
}
