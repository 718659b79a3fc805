//! The io_uring backend: one tokio-uring runtime on a thread ringdb owns.
//!
//! Every line of ringdb that names tokio-uring lives in this module.
//!
//! Callers on any executor talk to the ring thread over channels: each
//! `Request` carries owned data (path, buffer, offset, file id) and a
//! oneshot for the reply. The ring thread's dispatcher spawns one local task
//! per request, so many operations are in flight at once; tokio-uring hands
//! every operation created in the same tick to the kernel in one
//! `io_uring_enter`.
//!
//! Ownership:
//! - The ring thread (`ringdb-uring`) owns the tokio-uring runtime, the ring,
//!   every open `tokio_uring::fs::File` (in a registry keyed by file id, see
//!   `Ring`) and every buffer while its operation is in flight; tokio-uring
//!   keeps the buffer until the kernel has completed the operation, then the
//!   ring thread hands it back to the caller in the reply.
//! - [`UringFs`] and every `UringFile` share one `Handle`: the senders of
//!   the bounded request channel and of the unbounded control channel. A
//!   `UringFile` is only an id; dropping it sends `Control::Close`.
//! - Tasks given to [`Fs::spawn`] run on the ring thread itself, so their
//!   I/O takes no thread hop, only the in-thread channel.
//! - The ring thread ends when both channels are closed (every `Handle` is
//!   gone) and no task of its own (request, close or spawned) is left. A
//!   spawned task that never ends keeps the thread alive. Nothing ever joins
//!   the thread after a successful start, because the last handle may be
//!   dropped on the ring thread itself.
//!
//! Invariants:
//! - At most [`MAX_RING_QUEUE_REQUESTS`] requests wait in the channel, and at
//!   most [`MAX_RING_QUEUE_REQUESTS`] are being served by the ring thread.
//! - A registry entry exists from a successful open until its `Close` is
//!   served; a file id is never reused.
//! - No `RefCell` borrow of the registry is held across an `.await`.
//! - Everything but listing a directory goes through the ring: open, read,
//!   write, fdatasync, fsync, statx, rename, unlink, mkdir and close (except
//!   a close that races a cancelled operation, see `Ring::close`).
//!
//! Cancel safety: dropping a returned future before its request is in the
//! channel sends nothing; dropping it later does not cancel the operation,
//! so a write either lands or not and the caller cannot tell which.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_uring::buf::BoundedBuf;

use super::{File, Fs, OpenMode};
use crate::limits::{MAX_RING_QUEUE_REQUESTS, RING_ENTRIES};

/// How long [`UringFs::new`] waits for its probe operation to complete.
// NOTE: if io_uring_setup is allowed but io_uring_enter is not, tokio-uring
// ignores the failed submit and the probe would hang; this turns that into
// an error so that the caller can fall back to the threads backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an operation's result goes.
type Reply<T> = oneshot::Sender<io::Result<T>>;

/// An I/O request for the ring thread. Every variant owns its data.
enum Request {
    /// Open a file and register it.
    Open {
        path: PathBuf,
        mode: OpenMode,
        reply: Reply<UringFile>,
    },
    /// Write all of `buf` at `offset`; the reply returns `buf`. `direct`:
    /// the file is `O_DIRECT`, so the ring writes an aligned copy.
    Write {
        file_id: u64,
        buf: Vec<u8>,
        offset: u64,
        direct: bool,
        reply: Reply<Vec<u8>>,
    },
    /// Read up to `len` bytes at `offset`; short only at the end of the file.
    Read {
        file_id: u64,
        len: usize,
        offset: u64,
        reply: Reply<Vec<u8>>,
    },
    /// fdatasync.
    SyncData { file_id: u64, reply: Reply<()> },
    /// The file's size, from statx.
    Len { file_id: u64, reply: Reply<u64> },
    /// renameat.
    Rename {
        from: PathBuf,
        to: PathBuf,
        reply: Reply<()>,
    },
    /// unlinkat.
    RemoveFile { path: PathBuf, reply: Reply<()> },
    /// mkdirat, for the path and its missing parents.
    CreateDirAll { path: PathBuf, reply: Reply<()> },
    /// Open a directory, fsync it, close it.
    SyncDir { path: PathBuf, reply: Reply<()> },
    /// How many files the registry holds (tests only).
    #[cfg(test)]
    OpenFiles { reply: Reply<usize> },
}

/// A rare request that must never wait for queue space: it is sent from
/// `Drop` and from the sync [`Fs::spawn`].
enum Control {
    /// Run a task on the ring thread.
    Spawn(BoxFuture<'static, ()>),
    /// Remove a file from the registry and close it.
    Close { file_id: u64 },
}

/// The senders into one ring thread, shared by [`UringFs`] and its files.
#[derive(Debug)]
struct Handle {
    /// Bounded: I/O requests, with async backpressure.
    requests: mpsc::Sender<Request>,
    /// Unbounded: spawn and close, which are rare and cannot wait.
    controls: mpsc::UnboundedSender<Control>,
}

impl Handle {
    /// Sends the request that `make` builds and awaits its reply.
    async fn call<T, F>(&self, make: F) -> io::Result<T>
    where
        T: Send,
        F: FnOnce(Reply<T>) -> Request + Send,
    {
        let (reply, result) = oneshot::channel();
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| ring_stopped())?;
        result.await.map_err(|_| ring_stopped())?
    }
}

/// The error of an operation whose ring thread has stopped (or whose task on
/// it panicked) before replying.
fn ring_stopped() -> io::Error {
    io::Error::other("the ringdb-uring thread stopped before replying")
}

/// The filesystem of the io_uring backend. See the module docs.
pub struct UringFs {
    /// The channels into the ring thread.
    handle: Arc<Handle>,
}

impl fmt::Debug for UringFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringFs").finish_non_exhaustive()
    }
}

impl UringFs {
    /// Starts the ring thread and probes io_uring with real operations (open
    /// `/` as a directory, statx it, close it, and a mkdir of `/` that must
    /// fail with `EEXIST`, all through the ring).
    ///
    /// Blocks the calling thread until the probe has completed (at most
    /// about ten seconds, usually well under a millisecond).
    ///
    /// # Errors
    ///
    /// Fails if io_uring is unavailable (blocked by seccomp, or by
    /// `kernel.io_uring_disabled`), if the kernel lacks an operation this
    /// backend uses (before Linux 5.15), if the probe fails or times out, or if
    /// the thread cannot be spawned. The ring thread has exited by then.
    pub fn new() -> io::Result<UringFs> {
        let (requests, request_receiver) = mpsc::channel(MAX_RING_QUEUE_REQUESTS);
        let (controls, control_receiver) = mpsc::unbounded_channel();
        let handle = Arc::new(Handle { requests, controls });
        let weak_handle = Arc::downgrade(&handle);
        // NOTE: a std channel, because `new` is sync and may be called from
        // inside an async runtime, where tokio's blocking receives panic.
        let (started, start_result) = std::sync::mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name("ringdb-uring".to_owned())
            .spawn(move || {
                run_ring_thread(weak_handle, request_receiver, control_receiver, started);
            })?;
        match start_result.recv() {
            Ok(Ok(())) => Ok(UringFs { handle }),
            Ok(Err(e)) => {
                // The thread returns right after reporting a failure.
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                // The thread panicked while starting (tokio-uring panics on
                // some setup failures); the panic was already printed.
                let _ = thread.join();
                Err(io::Error::other(
                    "the ringdb-uring thread panicked while starting",
                ))
            }
        }
    }
}

/// The body of the ring thread.
fn run_ring_thread(
    handle: Weak<Handle>,
    requests: mpsc::Receiver<Request>,
    controls: mpsc::UnboundedReceiver<Control>,
    started: std::sync::mpsc::SyncSender<io::Result<()>>,
) {
    let mut builder = tokio_uring::builder();
    builder.entries(RING_ENTRIES);
    // NOTE: `Runtime::new` rather than `Builder::start`, which unwraps the
    // io_uring_setup error that the probe must return instead.
    let runtime = match tokio_uring::Runtime::new(&builder) {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    match runtime.block_on(async { tokio::time::timeout(PROBE_TIMEOUT, probe()).await }) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            // No operation is in flight, so the runtime drops cleanly.
            let _ = started.send(Err(e));
            return;
        }
        Err(_) => {
            let _ = started.send(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "io_uring probe did not complete (io_uring_enter blocked?)",
            )));
            // NOTE: the probe's operation never completed, and dropping the
            // runtime would wait for it forever (tokio-uring's driver waits
            // for every cancelled operation). Leak it: this happens at most
            // once per failed open, and the caller falls back to threads.
            std::mem::forget(runtime);
            return;
        }
    }
    if started.send(Ok(())).is_err() {
        return;
    }
    runtime.block_on(dispatch(handle, requests, controls));
}

/// Real operations through the ring: open `/`, statx it, close it, and try
/// to create `/`.
async fn probe() -> io::Result<()> {
    // NOTE: mkdirat (Linux 5.15) is the newest opcode this backend uses
    // (renameat and unlinkat came in 5.11, the rest earlier). An older kernel
    // answers EINVAL instead of EEXIST, and the caller falls back to threads
    // rather than failing later at its first create_dir_all.
    match tokio_uring::fs::create_dir("/").await {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
        Ok(()) => return Err(io::Error::other("io_uring probe: mkdir of / succeeded")),
    }
    let root = tokio_uring::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open("/")
        .await?;
    let statx = root.statx().await;
    let closed = root.close().await;
    let statx = statx?;
    closed?;
    if u32::from(statx.stx_mode) & libc::S_IFMT != libc::S_IFDIR {
        return Err(io::Error::other("io_uring probe: statx of / is not a directory"));
    }
    Ok(())
}

/// The ring thread's main task: serves both channels until they close, then
/// waits for every task of its own to finish.
async fn dispatch(
    handle: Weak<Handle>,
    mut requests: mpsc::Receiver<Request>,
    controls: mpsc::UnboundedReceiver<Control>,
) {
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    let ring = Rc::new(Ring {
        files: RefCell::new(HashMap::new()),
        next_file_id: Cell::new(0),
        handle,
        serving: Arc::new(Semaphore::new(MAX_RING_QUEUE_REQUESTS)),
        _alive: alive,
    });
    drop(tokio_uring::spawn(serve_controls(Rc::clone(&ring), controls)));
    loop {
        let Ok(permit) = Arc::clone(&ring.serving).acquire_owned().await else {
            break;
        };
        let Some(request) = requests.recv().await else {
            break;
        };
        let ring = Rc::clone(&ring);
        drop(tokio_uring::spawn(async move {
            ring.serve(request).await;
            drop(permit);
        }));
    }
    // NOTE: every task of this thread holds an `Rc<Ring>`, and the ring holds
    // `alive`, so `recv` returns `None` once the last task has finished.
    drop(ring);
    let _ = all_gone.recv().await;
}

/// Serves spawn and close requests until every handle is gone.
async fn serve_controls(ring: Rc<Ring>, mut controls: mpsc::UnboundedReceiver<Control>) {
    while let Some(control) = controls.recv().await {
        match control {
            Control::Spawn(task) => {
                let ring = Rc::clone(&ring);
                drop(tokio_uring::spawn(async move {
                    task.await;
                    drop(ring);
                }));
            }
            Control::Close { file_id } => ring.close(file_id),
        }
    }
}

/// State of the ring thread, shared by its tasks (hence `Rc`, never `Arc`:
/// it never leaves the thread).
struct Ring {
    /// The registry of open files, by id.
    files: RefCell<HashMap<u64, Rc<tokio_uring::fs::File>>>,
    /// The id the next opened file gets.
    next_file_id: Cell<u64>,
    /// The callers' handle, weak so that the ring thread does not keep its
    /// own channels open.
    handle: Weak<Handle>,
    /// One permit per request being served.
    // NOTE: limits.rs names one bound for the ring's queue; in-flight
    // requests are bounded by the same number, so the ring thread holds at
    // most twice that many buffers.
    serving: Arc<Semaphore>,
    /// Dropped with the last `Rc<Ring>`, which tells `dispatch` that no task
    /// is left.
    _alive: mpsc::Sender<()>,
}

impl Ring {
    /// Serves one request and sends its reply.
    async fn serve(self: &Rc<Self>, request: Request) {
        // NOTE: a failed reply means the caller's future was dropped. The
        // operation has happened all the same; an opened file in an unsent
        // reply is dropped with it, which closes it.
        match request {
            Request::Open { path, mode, reply } => {
                let _ = reply.send(self.open(path, mode).await);
            }
            Request::Write {
                file_id,
                buf,
                offset,
                direct,
                reply,
            } => {
                let result = if direct {
                    self.write_direct(file_id, buf, offset).await
                } else {
                    self.write_all_at(file_id, buf, offset).await
                };
                let _ = reply.send(result);
            }
            Request::Read {
                file_id,
                len,
                offset,
                reply,
            } => {
                let _ = reply.send(self.read_at(file_id, len, offset).await);
            }
            Request::SyncData { file_id, reply } => {
                let result = match self.file(file_id) {
                    Ok(file) => file.sync_data().await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Len { file_id, reply } => {
                let result = match self.file(file_id) {
                    Ok(file) => file.statx().await.map(|statx| statx.stx_size),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Request::Rename { from, to, reply } => {
                let _ = reply.send(tokio_uring::fs::rename(&from, &to).await);
            }
            Request::RemoveFile { path, reply } => {
                let _ = reply.send(tokio_uring::fs::remove_file(&path).await);
            }
            Request::CreateDirAll { path, reply } => {
                let _ = reply.send(tokio_uring::fs::create_dir_all(&path).await);
            }
            Request::SyncDir { path, reply } => {
                let _ = reply.send(sync_dir(&path).await);
            }
            #[cfg(test)]
            Request::OpenFiles { reply } => {
                let _ = reply.send(Ok(self.files.borrow().len()));
            }
        }
    }

    /// The open file `file_id`.
    fn file(&self, file_id: u64) -> io::Result<Rc<tokio_uring::fs::File>> {
        self.files.borrow().get(&file_id).cloned().ok_or_else(|| {
            // Only a request whose caller dropped its future can race with
            // the file's close.
            io::Error::other(format!("ringdb-uring: file {file_id} is closed"))
        })
    }

    /// Opens `path` and registers the file.
    async fn open(&self, path: PathBuf, mode: OpenMode) -> io::Result<UringFile> {
        let file = open_options(mode).open(&path).await?;
        let Some(handle) = self.handle.upgrade() else {
            // Every handle is gone, so nobody can use the file.
            let _ = file.close().await;
            return Err(ring_stopped());
        };
        let id = self.next_file_id.get();
        self.next_file_id.set(id.wrapping_add(1));
        let previous = self.files.borrow_mut().insert(id, Rc::new(file));
        assert!(previous.is_none(), "file id {id} reused");
        let direct = mode == OpenMode::ReadWriteDirect;
        Ok(UringFile {
            id,
            path,
            handle,
            direct,
        })
    }

    /// Writes all of `buf` at `offset`, then returns `buf`.
    async fn write_all_at(&self, file_id: u64, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        let file = self.file(file_id)?;
        let len = buf.len();
        // tokio-uring owns `buf` until the kernel has completed each write.
        let (result, buf) = file.write_all_at(buf, offset).await;
        result?;
        debug_assert_eq!(buf.len(), len, "the buffer comes back whole");
        Ok(buf)
    }

    /// Writes all of `buf` at `offset` through an `O_DIRECT` file, from an
    /// aligned copy (the caller checked offset and length), then returns
    /// `buf`.
    async fn write_direct(&self, file_id: u64, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        let file = self.file(file_id)?;
        let aligned = super::AlignedCopy::of(&buf);
        // NOTE: a slice of the aligned copy: tokio-uring owns the whole
        // `Vec` until the kernel has completed the write.
        let (result, _aligned) = file.write_all_at(aligned.vec.slice(aligned.range), offset).await;
        result?;
        Ok(buf)
    }

    /// Reads up to `len` bytes at `offset`; short only at the end of the file.
    async fn read_at(&self, file_id: u64, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let file = self.file(file_id)?;
        let mut buf = Vec::with_capacity(len);
        // Invariant: `buf.len()` bytes have been read.
        while buf.len() < len {
            let filled = buf.len();
            let at = offset
                .checked_add(filled as u64)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past u64::MAX"))?;
            // NOTE: a slice, because tokio-uring reads into the buffer's
            // whole capacity, which may exceed `len`.
            let (result, slice) = file.read_at(buf.slice(filled..len), at).await;
            buf = slice.into_inner();
            match result {
                Ok(0) => break,
                Ok(read) => debug_assert_eq!(buf.len(), filled + read, "kernel filled the slice"),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        debug_assert!(buf.len() <= len, "read more than asked for");
        Ok(buf)
    }

    /// Removes `file_id` from the registry and closes it.
    fn close(self: &Rc<Self>, file_id: u64) {
        let file = self.files.borrow_mut().remove(&file_id);
        debug_assert!(file.is_some(), "closing unknown file {file_id}");
        match file.map(Rc::try_unwrap) {
            Some(Ok(file)) => {
                let ring = Rc::clone(self);
                drop(tokio_uring::spawn(async move {
                    // NOTE: a failed close(2) is logged, not returned: the
                    // file's durability was settled by its last sync_data.
                    if let Err(e) = file.close().await {
                        tracing::warn!(error = %e, "closing a file through io_uring failed");
                    }
                    drop(ring);
                }));
            }
            // NOTE: an operation whose caller dropped its future is still in
            // flight; the last one to finish drops the file, which closes the
            // descriptor with a plain close(2) (tokio-uring's `Drop`).
            Some(Err(shared)) => drop(shared),
            None => {}
        }
    }
}

/// tokio-uring open options for `mode`.
fn open_options(mode: OpenMode) -> tokio_uring::fs::OpenOptions {
    let mut options = tokio_uring::fs::OpenOptions::new();
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

/// fsync of a directory, all through the ring: open, fsync, close.
async fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = tokio_uring::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .await?;
    let synced = dir.sync_all().await;
    let closed = dir.close().await;
    synced?;
    closed
}

#[async_trait]
impl Fs for UringFs {
    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let path = path.to_path_buf();
        let file = self
            .handle
            .call(|reply| Request::Open { path, mode, reply })
            .await?;
        Ok(Arc::new(file))
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        self.handle
            .call(|reply| Request::Rename { from, to, reply })
            .await
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        // NOTE: tokio-uring exposes no linkat, so the plain system call runs
        // on a short-lived helper thread, as for `list_dir`: it blocks
        // neither the caller's executor nor the ring thread. Links are made
        // only by checkpoints.
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        let (reply, result) = oneshot::channel();
        thread::Builder::new()
            .name("ringdb-link".to_owned())
            .spawn(move || {
                let _ = reply.send(std::fs::hard_link(&from, &to));
            })?;
        result
            .await
            .map_err(|_| io::Error::other("the ringdb-link thread panicked"))?
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        self.handle
            .call(|reply| Request::RemoveFile { path, reply })
            .await
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        self.handle
            .call(|reply| Request::CreateDirAll { path, reply })
            .await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        self.handle.call(|reply| Request::SyncDir { path, reply }).await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        // NOTE: io_uring has no getdents operation. The plain system call
        // runs on a short-lived helper thread, so that it blocks neither the
        // caller's executor nor the ring thread (and the WAL task on it).
        // Listing happens at open and in file GC, so a thread per call is
        // cheap enough.
        let path = path.to_path_buf();
        let (reply, result) = oneshot::channel();
        thread::Builder::new()
            .name("ringdb-list-dir".to_owned())
            .spawn(move || {
                let _ = reply.send(super::threads::read_dir_names(&path));
            })?;
        result
            .await
            .map_err(|_| io::Error::other("the ringdb-list-dir thread panicked"))?
    }

    async fn lock_file(&self, path: &Path) -> io::Result<super::FileLock> {
        // NOTE: io_uring has no flock either; as for `list_dir`, a helper
        // thread (once per open).
        let path = path.to_path_buf();
        let (reply, result) = oneshot::channel();
        thread::Builder::new()
            .name("ringdb-lock".to_owned())
            .spawn(move || {
                let _ = reply.send(super::lock_file_blocking(&path));
            })?;
        result
            .await
            .map_err(|_| io::Error::other("the ringdb-lock thread panicked"))?
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> io::Result<()> {
        // NOTE: the unbounded control channel never blocks, so this works
        // from sync code and from inside any runtime alike.
        self.handle
            .controls
            .send(Control::Spawn(task))
            .map_err(|_| ring_stopped())
    }

    fn name(&self) -> &'static str {
        "uring"
    }
}

/// An open file of the io_uring backend: an id into the ring thread's
/// registry. The file itself never leaves the ring thread.
struct UringFile {
    /// Key into the registry.
    id: u64,
    /// The path it was opened at.
    path: PathBuf,
    /// The channels into its ring thread.
    handle: Arc<Handle>,
    /// Opened with [`OpenMode::ReadWriteDirect`]: writes need aligned memory.
    direct: bool,
}

impl fmt::Debug for UringFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringFile")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for UringFile {
    fn drop(&mut self) {
        // NOTE: the control channel is unbounded, so this never blocks and
        // fails only when the ring thread is gone, and with it the registry,
        // whose drop has closed the file already.
        let _ = self.handle.controls.send(Control::Close { file_id: self.id });
    }
}

#[async_trait]
impl File for UringFile {
    async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        let (file_id, direct) = (self.id, self.direct);
        if direct && !super::direct_write_aligned(offset, buf.len()) {
            return Err(super::misaligned_direct_write());
        }
        self.handle
            .call(|reply| Request::Write {
                file_id,
                buf,
                offset,
                direct,
                reply,
            })
            .await
    }

    async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let file_id = self.id;
        self.handle
            .call(|reply| Request::Read {
                file_id,
                len,
                offset,
                reply,
            })
            .await
    }

    async fn sync_data(&self) -> io::Result<()> {
        let file_id = self.id;
        self.handle
            .call(|reply| Request::SyncData { file_id, reply })
            .await
    }

    async fn size_bytes(&self) -> io::Result<u64> {
        let file_id = self.id;
        self.handle.call(|reply| Request::Len { file_id, reply }).await
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::FutureExt;
    use tokio::sync::oneshot;

    use super::{Request, UringFs};
    use crate::io::threads::conformance;
    use crate::io::{Fs, OpenMode};

    fn uring() -> UringFs {
        UringFs::new().unwrap()
    }

    fn fs() -> Arc<dyn Fs> {
        Arc::new(uring())
    }

    /// How many files the ring thread's registry holds, once it has settled
    /// to `expected` (closes travel on another channel than this request).
    async fn wait_for_open_files(fs: &UringFs, expected: usize) -> usize {
        let mut open = usize::MAX;
        for _ in 0..200 {
            open = fs
                .handle
                .call(|reply| Request::OpenFiles { reply })
                .await
                .unwrap();
            if open == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        open
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
        conformance::concurrent_writes(fs(), dir.path(), 2_000, |write| {
            tokio::spawn(write).map(|joined| joined.unwrap()).boxed()
        })
        .await;
    }

    #[test]
    fn concurrent_writes_block_on() {
        let dir = tempfile::tempdir().unwrap();
        futures::executor::block_on(conformance::concurrent_writes(fs(), dir.path(), 2_000, |write| {
            write
        }));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_runs_task_on_the_ring_thread() {
        let dir = tempfile::tempdir().unwrap();
        let thread = conformance::spawn_runs_task(fs(), dir.path()).await;
        assert_eq!(thread, "ringdb-uring");
    }

    #[test]
    fn spawn_from_block_on() {
        let dir = tempfile::tempdir().unwrap();
        let thread = futures::executor::block_on(conformance::spawn_runs_task(fs(), dir.path()));
        assert_eq!(thread, "ringdb-uring");
    }

    #[tokio::test]
    async fn futures_are_send() {
        let dir = tempfile::tempdir().unwrap();
        conformance::futures_are_send(fs(), dir.path()).await;
    }

    #[tokio::test]
    async fn dropped_files_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let fs = uring();
        let mut files = Vec::new();
        for i in 0..10 {
            let path = dir.path().join(format!("f{i}"));
            files.push(fs.open(&path, OpenMode::CreateNew).await.unwrap());
        }
        assert_eq!(wait_for_open_files(&fs, 10).await, 10);
        let in_flight = files[0].write_all_at(vec![1; 1 << 20], 0);
        drop(in_flight); // dropped before it was sent
        files.truncate(3);
        assert_eq!(wait_for_open_files(&fs, 3).await, 3);
        drop(files);
        assert_eq!(wait_for_open_files(&fs, 0).await, 0);
    }

    #[tokio::test]
    async fn dropped_open_future_does_not_leak_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = uring();
        for i in 0..50 {
            let path = dir.path().join(format!("f{i}"));
            let open = fs.open(&path, OpenMode::CreateNew);
            // Poll once so that the request is sent, then drop the future.
            let mut open = Box::pin(open);
            let _ = futures::poll!(&mut open);
            drop(open);
        }
        assert_eq!(wait_for_open_files(&fs, 0).await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawned_task_outlives_the_fs_and_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs();
        let file = fs.open(&dir.path().join("f"), OpenMode::CreateNew).await.unwrap();
        let (reply, result) = oneshot::channel();
        let task_file = Arc::clone(&file);
        fs.spawn(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            task_file.write_all_at(b"late".to_vec(), 0).await.unwrap();
            task_file.sync_data().await.unwrap();
            reply.send(task_file.read_at(10, 0).await.unwrap()).unwrap();
        }))
        .unwrap();
        drop((fs, file));
        assert_eq!(result.await.unwrap(), b"late");
    }

    #[test]
    fn ring_thread_exits_after_the_last_handle_and_task() {
        let fs = fs();
        let (reply, result) = std::sync::mpsc::channel();
        fs.spawn(Box::pin(async move {
            reply.send(unsafe { libc::gettid() }).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }))
        .unwrap();
        let ring_thread = result.recv().unwrap();
        let task_dir = std::path::PathBuf::from(format!("/proc/self/task/{ring_thread}"));
        assert_eq!(
            std::fs::read_to_string(task_dir.join("comm")).unwrap().trim(),
            "ringdb-uring"
        );
        drop(fs);
        std::thread::sleep(Duration::from_millis(50));
        assert!(task_dir.exists(), "the spawned task still runs");
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !task_dir.exists()
        });
        assert!(gone, "the ring thread exits once its task is done");
    }

    #[tokio::test]
    async fn file_outlives_fs() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs();
        let file = fs.open(&dir.path().join("f"), OpenMode::CreateNew).await.unwrap();
        drop(fs);
        file.write_all_at(b"still works".to_vec(), 0).await.unwrap();
        assert_eq!(file.read_at(64, 0).await.unwrap(), b"still works");
    }

    #[test]
    fn new_inside_a_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let fs = runtime.block_on(async { UringFs::new() }).unwrap();
        assert_eq!(fs.name(), "uring");
    }

    #[test]
    fn large_read_and_write() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs();
        futures::executor::block_on(async {
            let file = fs
                .open(&dir.path().join("big"), OpenMode::CreateNew)
                .await
                .unwrap();
            let data = conformance::pattern(3, 9 << 20);
            file.write_all_at(data.clone(), 5).await.unwrap();
            let read = file.read_at(10 << 20, 5).await.unwrap();
            assert_eq!(read, data);
        });
    }
}
