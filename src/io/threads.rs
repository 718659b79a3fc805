//! The `threads` I/O backend: plain `pwrite`/`pread`/`fdatasync` system calls
//! on a small pool of std threads.
//!
//! ringdb falls back to this backend (with a logged warning) when io_uring is
//! blocked by seccomp or `kernel.io_uring_disabled`, and uses it on request.
//!
//! Ownership:
//! - The pool's [`IO_POOL_THREADS`] threads (`ringdb-io-N`) share the
//!   receiving end of one job queue. A job owns everything it touches (an
//!   `Arc` of the std file, its buffer, its path) and the oneshot it replies
//!   on, so a worker borrows nothing from the caller.
//! - [`ThreadsFs`] and every file it opened hold the sending end. The workers
//!   exit once the last of them is dropped and the queue is drained; nothing
//!   joins them, so dropping a handle never blocks.
//! - Each [`Fs::spawn`] task (the WAL task) gets its own thread
//!   ([`SPAWN_THREAD_NAME`], `ringdb-task`), which owns a
//!   current-thread tokio runtime (timers enabled) and ends with the task.
//!
//! Invariants:
//! - At most [`MAX_RING_QUEUE_REQUESTS`] jobs are queued or running at once.
//!   A caller awaits a permit (async backpressure); no caller thread ever
//!   blocks on the queue.
//! - A job replies exactly once, unless it panics; then its reply sender is
//!   dropped, the caller gets an error and the worker lives on.
//! - A read is short only at the end of the file.
//!
//! Cancel safety: dropping a returned future after its job was queued does not
//! cancel the job. A write then either lands or not; the caller cannot tell.

use std::fmt;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, oneshot};

use super::{File, Fs, OpenMode};
use crate::limits::{IO_POOL_THREADS, MAX_RING_QUEUE_REQUESTS};

/// The name of the thread each [`Fs::spawn`] task runs on: distinct from
/// the pool's `ringdb-io-N` and from the store's background thread
/// (`ringdb-bg`), so that a thread list tells them apart.
pub const SPAWN_THREAD_NAME: &str = "ringdb-task";

/// A unit of blocking work for a pool thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The filesystem of the `threads` backend. See the module docs.
#[derive(Debug)]
pub struct ThreadsFs {
    /// The pool every operation runs on.
    pool: Arc<Pool>,
}

impl ThreadsFs {
    /// Starts the pool of [`IO_POOL_THREADS`] threads.
    ///
    /// # Errors
    ///
    /// Fails if a thread cannot be spawned; the threads already started then
    /// exit on their own.
    pub fn new() -> io::Result<ThreadsFs> {
        Ok(ThreadsFs { pool: Pool::start()? })
    }
}

/// The job queue and the permits that bound it.
#[derive(Debug)]
struct Pool {
    /// Sending end of the job queue; the workers hold the receiving end.
    jobs: mpsc::Sender<Job>,
    /// One permit per job queued or running.
    // NOTE: limits.rs names no separate bound for this pool's queue; it is
    // the same kind of bound as the ring's request queue, so it reuses it.
    permits: Arc<Semaphore>,
}

impl Pool {
    /// Spawns the workers.
    fn start() -> io::Result<Arc<Pool>> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..IO_POOL_THREADS {
            let receiver = Arc::clone(&receiver);
            // NOTE: on failure `jobs` is dropped on return, so the workers
            // already spawned see a closed queue and exit.
            thread::Builder::new()
                .name(format!("ringdb-io-{index}"))
                .spawn(move || work(&receiver))?;
        }
        Ok(Arc::new(Pool {
            jobs,
            permits: Arc::new(Semaphore::new(MAX_RING_QUEUE_REQUESTS)),
        }))
    }

    /// Runs `job` on a pool thread and returns its result.
    async fn run<T, F>(&self, job: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| pool_stopped())?;
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // NOTE: the caller may have gone away (its future was dropped);
            // the job has run all the same, so there is nothing to undo.
            let _ = reply.send(job());
            drop(permit);
        });
        self.jobs.send(job).map_err(|_| pool_stopped())?;
        result.await.map_err(|_| pool_stopped())?
    }
}

/// A worker: runs jobs until the queue is closed and drained.
fn work(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            // NOTE: no job runs while the lock is held, so it cannot be
            // poisoned by a panicking job; recover from poison all the same.
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            receiver.recv()
        };
        let Ok(job) = job else {
            return;
        };
        if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("an I/O job panicked; its caller gets an error");
        }
    }
}

/// The error of an operation whose pool has stopped or whose job panicked.
fn pool_stopped() -> io::Error {
    io::Error::other("the ringdb I/O thread pool stopped before replying")
}

/// The std open options for `mode`.
fn open_options(mode: OpenMode) -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    match mode {
        OpenMode::Read => options.read(true),
        OpenMode::ReadWrite => options.read(true).write(true),
        OpenMode::CreateReadWrite => options.read(true).write(true).create(true),
        OpenMode::CreateNew => options.read(true).write(true).create_new(true),
        OpenMode::ReadWriteDsync => options.read(true).write(true).custom_flags(libc::O_DSYNC),
        OpenMode::ReadWriteDirect => options
            .read(true)
            .write(true)
            .custom_flags(libc::O_DSYNC | libc::O_DIRECT),
    };
    options
}

/// Reads up to `len` bytes at `offset`; short only at the end of the file.
fn read_full_at(file: &std::fs::File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0_u8; len];
    let mut filled = 0_usize;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        let at = offset
            .checked_add(filled as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past u64::MAX"))?;
        match file.read_at(rest, at) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    debug_assert!(filled <= len, "read more than asked for");
    buf.truncate(filled);
    Ok(buf)
}

/// Names of the entries of the directory at `path`: a plain `getdents`
/// system call, which blocks the calling thread.
///
/// The io_uring backend shares this, because io_uring has no such operation.
pub(super) fn read_dir_names(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)? {
        // NOTE: a name that is not UTF-8 cannot be one of ringdb's own files;
        // it is passed on lossily (and so ignored) rather than failing open.
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

#[async_trait]
impl Fs for ThreadsFs {
    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let path = path.to_path_buf();
        let job_path = path.clone();
        let file = self.pool.run(move || open_options(mode).open(&job_path)).await?;
        Ok(Arc::new(ThreadsFile {
            file: Arc::new(file),
            path,
            pool: Arc::clone(&self.pool),
            direct: mode == OpenMode::ReadWriteDirect,
        }))
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        self.pool.run(move || std::fs::rename(&from, &to)).await
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        self.pool.run(move || std::fs::hard_link(&from, &to)).await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        self.pool.run(move || std::fs::remove_file(&path)).await
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        self.pool.run(move || std::fs::create_dir_all(&path)).await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        self.pool
            .run(move || std::fs::File::open(&path)?.sync_all())
            .await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let path = path.to_path_buf();
        self.pool.run(move || read_dir_names(&path)).await
    }

    async fn lock_file(&self, path: &Path) -> io::Result<super::FileLock> {
        let path = path.to_path_buf();
        self.pool.run(move || super::lock_file_blocking(&path)).await
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> io::Result<()> {
        // NOTE: the runtime is built on the new thread (so that it is also
        // dropped there, never inside a caller's async context) and reports
        // back, so that a failure to build it is this call's error.
        let (started, start_result) = mpsc::sync_channel::<io::Result<()>>(1);
        thread::Builder::new()
            .name(SPAWN_THREAD_NAME.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = started.send(Ok(()));
                        runtime.block_on(task);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })?;
        start_result
            .recv()
            .map_err(|_| io::Error::other(format!("the {SPAWN_THREAD_NAME} thread stopped while starting")))?
    }

    fn name(&self) -> &'static str {
        "threads"
    }
}

/// An open file of the `threads` backend.
struct ThreadsFile {
    /// The std file, shared with the jobs in flight on it.
    file: Arc<std::fs::File>,
    /// The path it was opened at.
    path: PathBuf,
    /// The pool its operations run on.
    pool: Arc<Pool>,
    /// Opened with [`OpenMode::ReadWriteDirect`]: writes need aligned memory.
    direct: bool,
}

impl fmt::Debug for ThreadsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadsFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl File for ThreadsFile {
    async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        let file = Arc::clone(&self.file);
        let direct = self.direct;
        if direct && !super::direct_write_aligned(offset, buf.len()) {
            return Err(super::misaligned_direct_write());
        }
        self.pool
            .run(move || {
                if direct {
                    file.write_all_at(super::AlignedCopy::of(&buf).bytes(), offset)?;
                } else {
                    file.write_all_at(&buf, offset)?;
                }
                Ok(buf)
            })
            .await
    }

    async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let file = Arc::clone(&self.file);
        let buf = self.pool.run(move || read_full_at(&file, len, offset)).await?;
        debug_assert!(buf.len() <= len, "read returned more than asked for");
        Ok(buf)
    }

    async fn sync_data(&self) -> io::Result<()> {
        let file = Arc::clone(&self.file);
        self.pool.run(move || file.sync_data()).await
    }

    async fn size_bytes(&self) -> io::Result<u64> {
        let file = Arc::clone(&self.file);
        self.pool.run(move || Ok(file.metadata()?.len())).await
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Behaviour every real-disk backend must show; run by the tests of this
/// module and of [`super::uring`].
#[cfg(test)]
pub(super) mod conformance {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use futures::future::join_all;
    use tokio::sync::oneshot;

    use crate::io::{Fs, OpenMode};

    /// Compile-time check that a value (a future) is `Send`.
    pub fn assert_send<T: Send>(_: &T) {}

    /// A block of `len` bytes that differs for every `seed`.
    pub fn pattern(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seed * 31 + i * 7) as u8).collect()
    }

    /// A second, `O_DSYNC` handle to an existing file writes what the
    /// first reads; it cannot create a file.
    pub async fn dsync_handle(fs: &dyn Fs, dir: &Path) {
        let path = dir.join("d.data");
        let missing = fs.open(&path, OpenMode::ReadWriteDsync).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let plain = fs.open(&path, OpenMode::CreateNew).await.unwrap();
        plain.write_all_at(vec![0; 8192], 0).await.unwrap();
        let dsync = fs.open(&path, OpenMode::ReadWriteDsync).await.unwrap();
        let data = pattern(3, 300);
        dsync.write_all_at(data.clone(), 100).await.unwrap();
        assert_eq!(plain.read_at(300, 100).await.unwrap(), data);
        assert_eq!(plain.size_bytes().await.unwrap(), 8192);
    }

    /// A second, `O_DIRECT | O_DSYNC` handle to an existing file writes
    /// whole aligned blocks from any buffer that the first reads, and refuses
    /// misaligned writes with `EINVAL`. Returns early (passes) only where
    /// the filesystem of `dir` has no `O_DIRECT`.
    pub async fn direct_handle(fs: &dyn Fs, dir: &Path) {
        const ALIGN: usize = crate::io::DIRECT_IO_ALIGN_BYTES;
        let path = dir.join("direct.data");
        let missing = fs.open(&path, OpenMode::ReadWriteDirect).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let plain = fs.open(&path, OpenMode::CreateNew).await.unwrap();
        plain.write_all_at(vec![0; 4 * ALIGN], 0).await.unwrap();
        plain.sync_data().await.unwrap();
        let direct = match fs.open(&path, OpenMode::ReadWriteDirect).await {
            Ok(direct) => direct,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!("{}: no O_DIRECT on this filesystem", dir.display());
                return;
            }
            Err(e) => panic!("open O_DIRECT: {e}"),
        };
        // NOTE: a Vec's memory is rarely page aligned; the backend copies it.
        let data = pattern(5, 2 * ALIGN);
        let returned = direct.write_all_at(data.clone(), ALIGN as u64).await.unwrap();
        assert_eq!(returned, data, "the buffer comes back unchanged");
        assert_eq!(plain.read_at(2 * ALIGN, ALIGN as u64).await.unwrap(), data);
        assert_eq!(plain.read_at(ALIGN, 0).await.unwrap(), vec![0; ALIGN]);
        for (len, offset) in [(ALIGN, 100), (100, 0), (ALIGN + 1, ALIGN as u64)] {
            let error = direct.write_all_at(vec![1; len], offset).await.unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "len {len} at {offset}");
        }
        assert_eq!(
            plain.read_at(4 * ALIGN, 0).await.unwrap()[ALIGN..3 * ALIGN],
            data[..]
        );
        assert_eq!(plain.size_bytes().await.unwrap(), 4 * ALIGN as u64);
    }

    /// Create, write, read back, read past the end, len, sync_data.
    pub async fn write_read_len_sync(fs: &dyn Fs, dir: &Path) {
        let path = dir.join("a.data");
        let file = fs.open(&path, OpenMode::CreateReadWrite).await.unwrap();
        assert_eq!(file.path(), path.as_path());
        assert_eq!(file.size_bytes().await.unwrap(), 0);

        let data = pattern(1, 10_000);
        let returned = file.write_all_at(data.clone(), 0).await.unwrap();
        assert_eq!(returned, data, "the buffer comes back unchanged");
        assert_eq!(file.size_bytes().await.unwrap(), 10_000);
        file.sync_data().await.unwrap();

        assert_eq!(file.read_at(10_000, 0).await.unwrap(), data);
        assert_eq!(file.read_at(100, 500).await.unwrap(), data[500..600]);
        // Past the end: short, then empty.
        assert_eq!(file.read_at(100, 9_950).await.unwrap(), data[9_950..]);
        assert!(file.read_at(100, 20_000).await.unwrap().is_empty());
        assert!(file.read_at(0, 0).await.unwrap().is_empty());

        // A write past the end grows the file and leaves a zero-filled hole.
        file.write_all_at(vec![9; 10], 12_000).await.unwrap();
        assert_eq!(file.size_bytes().await.unwrap(), 12_010);
        assert_eq!(file.read_at(4, 11_998).await.unwrap(), [0, 0, 9, 9]);
        file.write_all_at(Vec::new(), 0).await.unwrap();
        drop(file);

        // Reopen read-only: the data is there.
        let file = fs.open(&path, OpenMode::Read).await.unwrap();
        assert_eq!(file.read_at(10_000, 0).await.unwrap(), data);
        assert!(file.write_all_at(vec![1], 0).await.is_err(), "read-only file");

        // CreateReadWrite keeps the contents; ReadWrite needs the file.
        let file = fs.open(&path, OpenMode::CreateReadWrite).await.unwrap();
        assert_eq!(file.size_bytes().await.unwrap(), 12_010);
        let file = fs.open(&path, OpenMode::ReadWrite).await.unwrap();
        assert_eq!(file.size_bytes().await.unwrap(), 12_010);
    }

    /// Error kinds of opens that must fail.
    pub async fn open_errors(fs: &dyn Fs, dir: &Path) {
        let path = dir.join("exists");
        drop(fs.open(&path, OpenMode::CreateNew).await.unwrap());
        let error = fs.open(&path, OpenMode::CreateNew).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);

        let missing = dir.join("missing");
        for mode in [OpenMode::Read, OpenMode::ReadWrite] {
            let error = fs.open(&missing, mode).await.unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{mode:?}");
        }
        let error = fs.remove_file(&missing).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        let error = fs.list_dir(&missing).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        let error = fs.sync_dir(&missing).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }

    /// rename (replacing), remove_file, create_dir_all, list_dir, sync_dir.
    pub async fn directory_ops(fs: &dyn Fs, dir: &Path) {
        let sub = dir.join("x/y/z");
        fs.create_dir_all(&sub).await.unwrap();
        fs.create_dir_all(&sub).await.unwrap(); // exists already: fine
        assert!(sub.is_dir());

        let from = sub.join("from");
        let to = sub.join("to");
        let file = fs.open(&from, OpenMode::CreateNew).await.unwrap();
        file.write_all_at(b"new".to_vec(), 0).await.unwrap();
        let old = fs.open(&to, OpenMode::CreateNew).await.unwrap();
        old.write_all_at(b"old contents".to_vec(), 0).await.unwrap();
        drop((file, old));

        fs.rename(&from, &to).await.unwrap();
        fs.sync_dir(&sub).await.unwrap();
        assert!(!from.exists());
        let to_file = fs.open(&to, OpenMode::Read).await.unwrap();
        assert_eq!(to_file.read_at(100, 0).await.unwrap(), b"new");

        fs.open(&sub.join("other"), OpenMode::CreateNew).await.unwrap();
        let mut names = fs.list_dir(&sub).await.unwrap();
        names.sort();
        assert_eq!(names, ["other", "to"]);
        assert_eq!(fs.list_dir(&dir.join("x")).await.unwrap(), ["y"]);

        fs.remove_file(&to).await.unwrap();
        fs.sync_dir(&sub).await.unwrap();
        assert_eq!(fs.list_dir(&sub).await.unwrap(), ["other"]);
        // An open file survives the removal of its name.
        assert_eq!(to_file.read_at(100, 0).await.unwrap(), b"new");
    }

    /// `count` concurrent writes at distinct offsets through one file, then
    /// one sync and a read of the whole.
    pub async fn concurrent_writes<S>(fs: Arc<dyn Fs>, dir: &Path, count: usize, spawn: S)
    where
        S: Fn(futures::future::BoxFuture<'static, ()>) -> futures::future::BoxFuture<'static, ()>,
    {
        const BLOCK: usize = 4096;
        let file = fs
            .open(&dir.join("concurrent"), OpenMode::CreateNew)
            .await
            .unwrap();
        let writes = (0..count).map(|i| {
            let file = Arc::clone(&file);
            let write = async move {
                let offset = (i * BLOCK) as u64;
                file.write_all_at(pattern(i, BLOCK), offset).await.unwrap();
            };
            assert_send(&write);
            spawn(Box::pin(write))
        });
        join_all(writes).await;
        file.sync_data().await.unwrap();
        assert_eq!(file.size_bytes().await.unwrap(), (count * BLOCK) as u64);
        let all = file.read_at(count * BLOCK + 1, 0).await.unwrap();
        for (i, block) in all.chunks(BLOCK).enumerate() {
            assert_eq!(block, pattern(i, BLOCK), "block {i}");
        }
    }

    /// A spawned task can sleep on tokio's timer and use the filesystem; it
    /// reports the name of the thread it ran on.
    pub async fn spawn_runs_task(fs: Arc<dyn Fs>, dir: &Path) -> String {
        let (reply, result) = oneshot::channel();
        let task_fs = Arc::clone(&fs);
        let path = dir.join("from-task");
        let task = async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let file = task_fs.open(&path, OpenMode::CreateNew).await.unwrap();
            file.write_all_at(b"task".to_vec(), 0).await.unwrap();
            file.sync_data().await.unwrap();
            let name = std::thread::current().name().unwrap_or("").to_owned();
            reply.send(name).unwrap();
        };
        fs.spawn(Box::pin(task)).unwrap();
        let thread_name = result.await.unwrap();
        assert_eq!(std::fs::read(dir.join("from-task")).unwrap(), b"task");
        thread_name
    }

    /// Every future the traits return is `Send`.
    pub async fn futures_are_send(fs: Arc<dyn Fs>, dir: &Path) {
        let path = dir.join("send");
        let open = fs.open(&path, OpenMode::CreateNew);
        assert_send(&open);
        let file = open.await.unwrap();
        let write = file.write_all_at(vec![1, 2, 3], 0);
        assert_send(&write);
        write.await.unwrap();
        let read = file.read_at(3, 0);
        assert_send(&read);
        assert_eq!(read.await.unwrap(), [1, 2, 3]);
        let sync = file.sync_data();
        assert_send(&sync);
        sync.await.unwrap();
        let len = file.size_bytes();
        assert_send(&len);
        assert_eq!(len.await.unwrap(), 3);

        let renamed = dir.join("send2");
        let rename = fs.rename(&path, &renamed);
        assert_send(&rename);
        rename.await.unwrap();
        let list = fs.list_dir(dir);
        assert_send(&list);
        assert!(list.await.unwrap().contains(&"send2".to_owned()));
        let sync_dir = fs.sync_dir(dir);
        assert_send(&sync_dir);
        sync_dir.await.unwrap();
        let sub = dir.join("d");
        let mkdir = fs.create_dir_all(&sub);
        assert_send(&mkdir);
        mkdir.await.unwrap();
        let remove = fs.remove_file(&renamed);
        assert_send(&remove);
        remove.await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use super::conformance;
    use super::{SPAWN_THREAD_NAME, ThreadsFs};
    use crate::io::Fs;

    fn fs() -> Arc<dyn Fs> {
        Arc::new(ThreadsFs::new().unwrap())
    }

    #[tokio::test]
    async fn write_read_len_sync() {
        let dir = tempfile::tempdir().unwrap();
        conformance::write_read_len_sync(&*fs(), dir.path()).await;
    }

    #[tokio::test]
    async fn direct_handle() {
        let dir = tempfile::tempdir().unwrap();
        conformance::direct_handle(&*fs(), dir.path()).await;
    }

    #[tokio::test]
    async fn dsync_handle() {
        let dir = tempfile::tempdir().unwrap();
        conformance::dsync_handle(&*fs(), dir.path()).await;
    }

    #[tokio::test]
    async fn open_errors() {
        let dir = tempfile::tempdir().unwrap();
        conformance::open_errors(&*fs(), dir.path()).await;
    }

    #[tokio::test]
    async fn directory_ops() {
        let dir = tempfile::tempdir().unwrap();
        conformance::directory_ops(&*fs(), dir.path()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_multi_thread_runtime() {
        let dir = tempfile::tempdir().unwrap();
        conformance::concurrent_writes(fs(), dir.path(), 500, |write| {
            tokio::spawn(write).map(|joined| joined.unwrap()).boxed()
        })
        .await;
    }

    #[test]
    fn concurrent_writes_block_on() {
        let dir = tempfile::tempdir().unwrap();
        futures::executor::block_on(conformance::concurrent_writes(fs(), dir.path(), 500, |write| {
            write
        }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_runs_task_on_its_own_thread() {
        let dir = tempfile::tempdir().unwrap();
        let thread = conformance::spawn_runs_task(fs(), dir.path()).await;
        assert_eq!(thread, SPAWN_THREAD_NAME);
    }

    #[test]
    fn spawn_from_block_on() {
        let dir = tempfile::tempdir().unwrap();
        let thread = futures::executor::block_on(conformance::spawn_runs_task(fs(), dir.path()));
        assert_eq!(thread, SPAWN_THREAD_NAME);
    }

    #[tokio::test]
    async fn futures_are_send() {
        let dir = tempfile::tempdir().unwrap();
        conformance::futures_are_send(fs(), dir.path()).await;
    }

    #[tokio::test]
    async fn file_outlives_fs() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs();
        let file = fs
            .open(&dir.path().join("f"), crate::io::OpenMode::CreateNew)
            .await
            .unwrap();
        drop(fs);
        file.write_all_at(b"still works".to_vec(), 0).await.unwrap();
        assert_eq!(file.read_at(64, 0).await.unwrap(), b"still works");
    }

    #[test]
    fn pool_threads_are_named() {
        let fs = ThreadsFs::new().unwrap();
        let name = futures::executor::block_on(
            fs.pool
                .run(|| Ok(std::thread::current().name().map(str::to_owned))),
        )
        .unwrap();
        assert!(name.unwrap().starts_with("ringdb-io-"));
    }

    #[test]
    fn panicking_job_is_an_error_and_the_pool_lives_on() {
        let fs = ThreadsFs::new().unwrap();
        for _ in 0..super::IO_POOL_THREADS * 2 {
            let result = futures::executor::block_on(
                fs.pool
                    .run(|| -> std::io::Result<()> { panic!("injected panic in an I/O job") }),
            );
            assert!(result.is_err());
        }
        let result = futures::executor::block_on(fs.pool.run(|| Ok(7)));
        assert_eq!(result.unwrap(), 7);
    }
}
