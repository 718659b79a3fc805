//! The I/O layer: the only code in ringdb that touches files.
//!
//! [`Fs`] and [`File`] are async traits with three backends:
//! - [`uring`]: tokio-uring runtimes on threads ringdb owns (the default on
//!   Linux). Every line that names tokio-uring lives in that module.
//! - [`threads`]: plain `pwrite`/`pread`/`fdatasync` on a small thread pool;
//!   chosen when a probe finds io_uring unavailable, or on request.
//! - [`sim`]: an in-memory disk for tests, with durable and volatile images,
//!   crashes and injected errors.
//!
//! Buffers are owned: a write hands its `Vec<u8>` to the backend and gets it
//! back when the operation has completed, so a backend (and the kernel) owns
//! the buffer for exactly as long as the operation is in flight.
//!
//! Invariants every backend keeps:
//! - `write_all_at` resolves only after all bytes were accepted by the file
//!   (the page cache, or the sim's volatile image), or returns an error.
//! - `sync_data` resolves `Ok` only when every write that *completed* before
//!   it was called is durable. Ordering between operations in flight at the
//!   same time is not promised: callers await a write before syncing it.
//! - Directory entries (create, rename, remove) are durable only after
//!   `sync_dir` of their directory.
//! - Every returned future is `Send`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
pub use crate::limits::DIRECT_IO_ALIGN_BYTES;

pub(crate) mod read_buffers;
pub mod ring;
#[doc(hidden)]
pub mod sim;
pub mod threads;
pub mod uring;

/// Which I/O backend carries the store's disk I/O (`Options::io_backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring when the kernel allows it, else `Threads` with a logged
    /// warning. The environment variable `RINGDB_IO=threads` (or `uring`)
    /// overrides `Auto`.
    #[default]
    Auto,
    /// io_uring, through tokio-uring runtimes on threads ringdb owns. Opening
    /// fails if io_uring is unavailable.
    Uring,
    /// Plain `pwrite`/`pread`/`fdatasync` on a small thread pool.
    Threads,
}

/// An exclusive lock on a file (a store's `LOCK`), released when dropped.
pub struct FileLock {
    _held: Box<dyn Send + Sync>,
}

impl FileLock {
    /// A lock that `held` keeps until it is dropped.
    pub fn new(held: Box<dyn Send + Sync>) -> Self {
        FileLock { _held: held }
    }
}

impl fmt::Debug for FileLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileLock")
    }
}

/// The lock of the real filesystems: `flock(LOCK_EX | LOCK_NB)` on an open
/// descriptor (`File::try_lock`), so the kernel releases it when the file
/// is closed, or when the process dies (a SIGKILLed store leaves no stale
/// lock behind). Blocking system calls: run it off the async threads.
pub(crate) fn lock_file_blocking(path: &Path) -> io::Result<FileLock> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(FileLock::new(Box::new(Flocked(file)))),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A file this process holds an `flock` on; unlocks it when dropped.
///
/// NOTE: closing the descriptor alone is not enough: a child forked
/// meanwhile (by any thread of the process) shares the open file, and with
/// it the lock, until it execs. The explicit unlock releases it for every
/// copy. Seen in the SIGKILL tests, run side by side in one process: one
/// test's writer found its closed store still locked (1 run in 8).
struct Flocked(std::fs::File);

impl Drop for Flocked {
    fn drop(&mut self) {
        // NOTE: a failed unlock leaves the close below to release it.
        let _ = self.0.unlock();
    }
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file if missing, keep its contents if not.
    CreateReadWrite,
    /// Read and write; create the file, which must not exist yet.
    CreateNew,
    /// Read and write; the file must exist. Every write through this
    /// handle is durable when it completes (`O_DSYNC`): one operation where
    /// a write and an fdatasync of its bytes would take two. Writes through
    /// other handles are not covered.
    ReadWriteDsync,
    /// Read and write; the file must exist. `O_DIRECT | O_DSYNC`: every
    /// write through this handle bypasses the page cache and is durable
    /// when it completes, and the kernel issues it at once instead of
    /// handing it to a worker thread. The offset and length of each write
    /// must be multiples of [`DIRECT_IO_ALIGN_BYTES`] (else `EINVAL`); the
    /// backend copies the buffer into aligned memory. Opening fails with
    /// `EINVAL` where the filesystem has no `O_DIRECT` (tmpfs before Linux
    /// 6.6): callers fall back to [`OpenMode::ReadWriteDsync`]. Never read
    /// through it.
    ReadWriteDirect,
}

/// Whether a write at `offset` of `len` bytes is allowed through a
/// [`OpenMode::ReadWriteDirect`] handle.
pub fn direct_write_aligned(offset: u64, len: usize) -> bool {
    offset.is_multiple_of(DIRECT_IO_ALIGN_BYTES as u64) && len.is_multiple_of(DIRECT_IO_ALIGN_BYTES)
}

/// A copy of a buffer in memory aligned to [`DIRECT_IO_ALIGN_BYTES`], for
/// an `O_DIRECT` write: the copy is `vec[range]`.
pub(crate) struct AlignedCopy {
    pub vec: Vec<u8>,
    pub range: std::ops::Range<usize>,
}

impl AlignedCopy {
    pub fn of(buf: &[u8]) -> Self {
        let mut vec = vec![0u8; buf.len() + DIRECT_IO_ALIGN_BYTES];
        let misalignment = vec.as_ptr() as usize % DIRECT_IO_ALIGN_BYTES;
        let start = (DIRECT_IO_ALIGN_BYTES - misalignment) % DIRECT_IO_ALIGN_BYTES;
        let range = start..start + buf.len();
        // NOTE: `vec` has room for `buf` at any start below the alignment.
        if let Some(copy) = vec.get_mut(range.clone()) {
            copy.copy_from_slice(buf);
        }
        AlignedCopy { vec, range }
    }

    /// The aligned copy.
    pub fn bytes(&self) -> &[u8] {
        self.vec.get(self.range.clone()).unwrap_or_default()
    }
}

/// The error of a misaligned write through a direct handle, as the kernel
/// gives it.
pub(crate) fn misaligned_direct_write() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// The first `len` bytes of `file` (fewer if it ends first), read in
/// chunks of at most [`crate::limits::READ_CHUNK_BYTES`]: how ringdb reads a
/// file whole. The caller bounds `len` (by the file's size and its own
/// limit) before calling.
///
/// # Errors
/// The first failed read.
pub async fn read_prefix(file: &dyn File, len: u64) -> io::Result<Vec<u8>> {
    let chunk_bytes = crate::limits::READ_CHUNK_BYTES;
    let mut data = Vec::with_capacity(usize::try_from(len).map_or(chunk_bytes, |len| len.min(chunk_bytes)));
    while (data.len() as u64) < len {
        let left = len - data.len() as u64;
        let want = usize::try_from(left).map_or(chunk_bytes, |left| left.min(chunk_bytes));
        let chunk = file.read_at(want, data.len() as u64).await?;
        if chunk.is_empty() {
            // NOTE: the file shrank under us; the caller judges what it got.
            break;
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// An open file.
#[async_trait]
pub trait File: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`, growing the file if needed. Returns
    /// the buffer for reuse.
    async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>>;

    /// Reads up to `len` bytes at `offset`. The result is shorter than `len`
    /// only if the file ends first.
    async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>>;

    /// As [`File::read_at`], for a read issued ahead of its use (a scan's
    /// next readahead window): a backend may run it off the caller's thread,
    /// so that the copy overlaps the caller's work.
    async fn read_ahead_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        self.read_at(len, offset).await
    }

    /// fdatasync: makes the file's completed writes durable.
    async fn sync_data(&self) -> io::Result<()>;

    /// The file's current size in bytes.
    async fn size_bytes(&self) -> io::Result<u64>;

    /// The path the file was opened at (for error messages).
    fn path(&self) -> &Path;
}

/// A filesystem: opens files and changes directory entries.
#[async_trait]
pub trait Fs: Send + Sync + fmt::Debug {
    /// Opens `path` in `mode`.
    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>>;

    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Makes `to` a second name (a hard link) of the file at `from`. Fails
    /// if `to` exists, and where the filesystem has no hard links or `to`
    /// is on another one (callers then copy). Like any new entry, `to` is
    /// durable only after a `sync_dir` of its directory.
    async fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    async fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Creates a directory and its missing parents.
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// fsync of a directory: makes its entries (creates, renames, removes)
    /// durable.
    async fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Names (not paths) of the entries in a directory, in no set order.
    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Takes an exclusive lock on the file at `path` (created if missing)
    /// until the returned guard is dropped. Fails with
    /// [`io::ErrorKind::WouldBlock`] while anyone else holds it: another
    /// process, or another open store in this one.
    async fn lock_file(&self, path: &Path) -> io::Result<FileLock>;

    /// Runs a long-lived task of the store (the WAL writer) on a thread the
    /// backend owns. On io_uring that is the ring thread, so the task's
    /// submissions take no thread hop.
    fn spawn(&self, task: BoxFuture<'static, ()>) -> io::Result<()>;

    /// A short name for logs and benchmarks: `"uring"`, `"threads"`, `"sim"`.
    fn name(&self) -> &'static str;
}

/// The filesystems a store uses: `foreground` for the WAL task and for
/// reads that miss the caches, `background` for flush, compaction and the
/// obsolete-file sweep. The same one where a backend has only one.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Serves tasks on any thread; on io_uring, the store's own ring.
    pub foreground: Arc<dyn Fs>,
    /// Serves ringdb's background thread; on io_uring, tokio-uring's ring.
    pub background: Arc<dyn Fs>,
}

impl Backends {
    /// One filesystem for both.
    pub fn single(fs: Arc<dyn Fs>) -> Self {
        Backends {
            foreground: Arc::clone(&fs),
            background: fs,
        }
    }
}

/// Opens the filesystems that `backend` asks for: io_uring if it can be
/// set up, else the thread pool with a logged warning (for `Auto`).
/// `runtime` delivers the foreground ring's completions.
///
/// `RINGDB_IO=threads` or `RINGDB_IO=uring` in the environment overrides
/// [`IoBackend::Auto`].
pub fn open_backend(backend: IoBackend, runtime: &tokio::runtime::Handle) -> Result<Backends> {
    let backend = match (backend, std::env::var("RINGDB_IO").ok().as_deref()) {
        (IoBackend::Auto, Some("threads")) => IoBackend::Threads,
        (IoBackend::Auto, Some("uring")) => IoBackend::Uring,
        (other, _) => other,
    };
    let threads = || {
        threads::ThreadsFs::new()
            .map(|fs| Backends::single(Arc::new(fs)))
            .map_err(|e| Error::io("start the io thread pool", PathBuf::from("(threads backend)"), e))
    };
    match backend {
        IoBackend::Threads => threads(),
        IoBackend::Uring => open_uring(runtime)
            .map_err(|e| Error::io("set up io_uring", PathBuf::from("(io_uring backend)"), e)),
        IoBackend::Auto => match open_uring(runtime) {
            Ok(backends) => Ok(backends),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "io_uring is unavailable (seccomp or kernel.io_uring_disabled?); \
                     falling back to the threads I/O backend"
                );
                threads()
            }
        },
    }
}

/// The store's foreground ring and the background thread's tokio-uring ring.
fn open_uring(runtime: &tokio::runtime::Handle) -> io::Result<Backends> {
    let foreground = ring::RingFs::new(runtime.clone())?;
    let background = uring::UringFs::new()?;
    Ok(Backends {
        foreground: Arc::new(foreground),
        background: Arc::new(background),
    })
}
