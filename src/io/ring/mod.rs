//! The foreground io_uring backend: files whose operations the calling task
//! submits to the store's own ring (`driver`), with no thread between the
//! task and its disk.
//!
//! It serves the WAL task (durable writes and syncs) and reads that miss the
//! caches (point gets, scans, table opens), which run as tasks of the store's
//! runtime or of any caller. Background work (flush, compaction, the
//! obsolete-file sweep) uses the tokio-uring backend ([`super::uring`]) on
//! ringdb's own thread instead, where throughput, not a wake, is what counts.
//!
//! Everything goes through the ring (openat, read, write, fdatasync, fsync,
//! statx, renameat, linkat, unlinkat, mkdirat) except what io_uring has no
//! operation for: listing a directory (`getdents`), the store's `flock`, and
//! closing a descriptor (a plain `close(2)` when its last in-flight operation
//! is done, see [`RingFile`]).
//!
//! Ownership: a [`RingFs`] and its files share one `Arc<Driver>`; each
//! `RingFile` owns its descriptor in an `Arc`, which every operation on it
//! also holds until its completion.
//!
//! Cancel safety: dropping a returned future before it first polls submits
//! nothing; dropping it later does not cancel the operation, so a write
//! either lands or not and the caller cannot tell which.

mod cq_flags;
pub(crate) mod driver;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use io_uring::{opcode, squeue, types};

use super::{AlignedCopy, File, FileLock, Fs, OpenMode};
use driver::{Driver, Resources};

/// The foreground io_uring filesystem of one store. See the module docs.
pub struct RingFs {
    driver: Arc<Driver>,
    /// The store's runtime: the reaper runs there, and so do spawned tasks.
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for RingFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingFs").finish_non_exhaustive()
    }
}

impl RingFs {
    /// Sets up a ring whose completions the runtime of `runtime` delivers.
    ///
    /// # Errors
    /// Fails when io_uring is unavailable (seccomp, `kernel.io_uring_disabled`).
    pub fn new(runtime: tokio::runtime::Handle) -> io::Result<RingFs> {
        let driver = Driver::start(&runtime)?;
        Ok(RingFs { driver, runtime })
    }
}

/// A path as the kernel takes it.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `open(2)` flags for `mode`.
fn open_flags(mode: OpenMode) -> i32 {
    let flags = match mode {
        OpenMode::Read => libc::O_RDONLY,
        OpenMode::ReadWrite => libc::O_RDWR,
        OpenMode::CreateReadWrite => libc::O_RDWR | libc::O_CREAT,
        OpenMode::CreateNew => libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        OpenMode::ReadWriteDsync => libc::O_RDWR | libc::O_DSYNC,
        OpenMode::ReadWriteDirect => libc::O_RDWR | libc::O_DSYNC | libc::O_DIRECT,
    };
    flags | libc::O_CLOEXEC
}

impl RingFs {
    /// openat through the ring; returns the new descriptor.
    async fn open_fd(&self, path: &Path, flags: i32) -> io::Result<OwnedFd> {
        let path = c_path(path)?;
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags)
            .mode(0o666)
            .build();
        let resources = Resources {
            path: Some(path),
            ..Resources::default()
        };
        let (result, _) = self.driver.run(entry, resources).await;
        let fd =
            i32::try_from(result?).map_err(|_| io::Error::other("openat returned an invalid descriptor"))?;
        // SAFETY: a successful openat returned a new descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A path operation (`entry` built over the paths in `resources`).
    async fn path_op(&self, entry: io_uring::squeue::Entry, resources: Resources) -> io::Result<()> {
        self.driver.run(entry, resources).await.0.map(drop)
    }

    /// An operation on two paths (`build` makes its entry from them).
    async fn two_path_op<B>(&self, from: &Path, to: &Path, build: B) -> io::Result<()>
    where
        B: FnOnce(*const libc::c_char, *const libc::c_char) -> io_uring::squeue::Entry,
    {
        let (from_c, to_c) = (c_path(from)?, c_path(to)?);
        let entry = build(from_c.as_ptr(), to_c.as_ptr());
        // NOTE: the second path rides in `buf`, which the kernel only reads;
        // moving a `CString`'s bytes into a `Vec` keeps their address.
        let resources = Resources {
            path: Some(from_c),
            buf: to_c.into_bytes_with_nul(),
            ..Resources::default()
        };
        self.path_op(entry, resources).await
    }

    async fn mkdir(&self, path: &Path) -> io::Result<()> {
        let c = c_path(path)?;
        let entry = opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), c.as_ptr())
            .mode(0o777)
            .build();
        self.path_op(
            entry,
            Resources {
                path: Some(c),
                ..Resources::default()
            },
        )
        .await
    }
}

#[async_trait]
impl Fs for RingFs {
    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let fd = self.open_fd(path, open_flags(mode)).await?;
        Ok(Arc::new(RingFile {
            driver: Arc::clone(&self.driver),
            fd: Arc::new(fd),
            path: path.to_path_buf(),
            direct: mode == OpenMode::ReadWriteDirect,
        }))
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.two_path_op(from, to, |from, to| {
            let cwd = types::Fd(libc::AT_FDCWD);
            opcode::RenameAt::new(cwd, from, cwd, to).build()
        })
        .await
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.two_path_op(from, to, |from, to| {
            let cwd = types::Fd(libc::AT_FDCWD);
            opcode::LinkAt::new(cwd, from, cwd, to).build()
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let c = c_path(path)?;
        let entry = opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), c.as_ptr()).build();
        self.path_op(
            entry,
            Resources {
                path: Some(c),
                ..Resources::default()
            },
        )
        .await
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        // Invariant: every ancestor in `missing` below the first one tried
        // did not exist when it was tried.
        let mut missing = Vec::new();
        let mut next = Some(path);
        while let Some(dir) = next {
            match self.mkdir(dir).await {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir.parent().is_some() => {
                    missing.push(dir);
                    next = dir.parent();
                }
                Err(e) => return Err(e),
            }
        }
        for dir in missing.into_iter().rev() {
            match self.mkdir(dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let fd = Arc::new(
            self.open_fd(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .await?,
        );
        let entry = opcode::Fsync::new(types::Fd(fd.as_raw_fd())).build();
        let resources = Resources {
            fd: Some(fd),
            ..Resources::default()
        };
        self.driver.run(entry, resources).await.0.map(drop)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        // NOTE: io_uring has no getdents: the plain system call, done once
        // at open and by the rare sweeps.
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    async fn lock_file(&self, path: &Path) -> io::Result<FileLock> {
        // NOTE: io_uring has no flock: the plain system call (non-blocking).
        super::lock_file_blocking(path)
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> io::Result<()> {
        drop(self.runtime.spawn(task));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "uring"
    }
}

/// A file of the foreground ring. Its descriptor is closed when the file
/// and every operation on it are gone.
pub struct RingFile {
    driver: Arc<Driver>,
    fd: Arc<OwnedFd>,
    path: PathBuf,
    /// Opened `O_DIRECT`: writes go from an aligned copy.
    direct: bool,
}

impl fmt::Debug for RingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingFile").field("path", &self.path).finish()
    }
}

impl RingFile {
    /// Reads up to `len` bytes at `offset`, each submission with `flags`.
    async fn read(&self, len: usize, offset: u64, flags: squeue::Flags) -> io::Result<Vec<u8>> {
        let mut resources = Resources {
            buf: super::read_buffers::take(len),
            ..Resources::default()
        };
        // Invariant: `buf` holds exactly the bytes read so far; the kernel
        // writes the next ones into its spare capacity (at least `len` in
        // all), so no byte is zeroed only to be overwritten.
        while resources.buf.len() < len {
            let filled = resources.buf.len();
            let at = offset
                .checked_add(filled as u64)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past u64::MAX"))?;
            let room = resources.buf.capacity() - filled;
            let want = u32::try_from((len - filled).min(room)).unwrap_or(u32::MAX);
            let ptr = resources.buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
            let entry = opcode::Read::new(types::Fd(self.fd.as_raw_fd()), ptr, want)
                .offset(at)
                .build()
                .flags(flags);
            resources.fd = Some(Arc::clone(&self.fd));
            let (result, back) = self.driver.run(entry, resources).await;
            resources = back;
            match result {
                Ok(0) => break,
                Ok(n) => {
                    let read = (n as usize).min(want as usize);
                    // SAFETY: the kernel wrote `read` bytes at `ptr`, the
                    // start of the spare capacity, and `read <= want <=
                    // room`, the spare capacity's length.
                    unsafe { resources.buf.set_len(filled + read) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(resources.buf)
    }

    /// Writes `resources.buf[from..to]` at `offset`, in as many writes as
    /// the kernel needs; returns the resources.
    async fn write_range(
        &self,
        mut resources: Resources,
        (from, to): (usize, usize),
        offset: u64,
    ) -> io::Result<Resources> {
        debug_assert!(from <= to && to <= resources.buf.len());
        let mut done = from;
        while done < to {
            let len = u32::try_from(to - done).unwrap_or(u32::MAX);
            let at = offset + (done - from) as u64;
            // SAFETY (pointer): `done < to <= buf.len()`; the buffer moves into
            // the slot with its heap memory in place.
            let ptr = resources.buf.as_ptr().wrapping_add(done);
            let entry = opcode::Write::new(types::Fd(self.fd.as_raw_fd()), ptr, len)
                .offset(at)
                .build();
            resources.fd = Some(Arc::clone(&self.fd));
            let (result, back) = self.driver.run(entry, resources).await;
            resources = back;
            match result {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(resources)
    }
}

#[async_trait]
impl File for RingFile {
    async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        if !self.direct {
            let len = buf.len();
            let resources = Resources {
                buf,
                ..Resources::default()
            };
            return self.write_range(resources, (0, len), offset).await.map(|r| r.buf);
        }
        if !super::direct_write_aligned(offset, buf.len()) {
            return Err(super::misaligned_direct_write());
        }
        let AlignedCopy { vec, range } = AlignedCopy::of(&buf);
        let resources = Resources {
            buf: vec,
            ..Resources::default()
        };
        self.write_range(resources, (range.start, range.end), offset)
            .await?;
        Ok(buf)
    }

    async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        self.read(len, offset, squeue::Flags::empty()).await
    }

    async fn read_ahead_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        // NOTE: IOSQE_ASYNC hands the read to an io-wq worker: its page
        // faults and copy run on another CPU while the scan decodes, instead
        // of inside this task's `io_uring_enter`
        // (docs/decisions/0020-ring-wakes-nobody-for-inline-completions.md).
        self.read(len, offset, squeue::Flags::ASYNC).await
    }

    async fn sync_data(&self) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(self.fd.as_raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        let resources = Resources {
            fd: Some(Arc::clone(&self.fd)),
            ..Resources::default()
        };
        self.driver.run(entry, resources).await.0.map(drop)
    }

    async fn size_bytes(&self) -> io::Result<u64> {
        // SAFETY: statx is plain old data; all zeros is a valid value.
        let mut statx: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
        let empty = CString::default();
        let entry = opcode::Statx::new(
            types::Fd(self.fd.as_raw_fd()),
            empty.as_ptr(),
            std::ptr::from_mut(statx.as_mut()).cast(),
        )
        .flags(libc::AT_EMPTY_PATH)
        .mask(libc::STATX_SIZE)
        .build();
        let resources = Resources {
            path: Some(empty),
            statx: Some(statx),
            fd: Some(Arc::clone(&self.fd)),
            ..Resources::default()
        };
        let (result, resources) = self.driver.run(entry, resources).await;
        result?;
        resources
            .statx
            .map(|statx| statx.stx_size)
            .ok_or_else(|| io::Error::other("statx buffer lost"))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// A runtime like a service's, for the ring's tests: two workers, every
/// driver enabled.
#[cfg(test)]
pub(crate) fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt;

    use super::RingFs;
    use crate::io::threads::conformance as c;
    use crate::io::{Fs, OpenMode};

    fn with_fs<F, Fut>(test: F)
    where
        F: FnOnce(Arc<dyn Fs>, std::path::PathBuf) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let runtime = super::test_runtime();
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn Fs> = Arc::new(RingFs::new(runtime.handle().clone()).unwrap());
        let path = dir.path().to_path_buf();
        runtime.block_on(test(fs, path));
    }

    #[test]
    fn conformance_write_read_len_sync() {
        with_fs(|fs, dir| async move { c::write_read_len_sync(fs.as_ref(), &dir).await });
    }

    #[test]
    fn conformance_open_errors() {
        with_fs(|fs, dir| async move { c::open_errors(fs.as_ref(), &dir).await });
    }

    #[test]
    fn conformance_directory_ops() {
        with_fs(|fs, dir| async move { c::directory_ops(fs.as_ref(), &dir).await });
    }

    #[test]
    fn conformance_dsync_and_direct_handles() {
        with_fs(|fs, dir| async move {
            c::dsync_handle(fs.as_ref(), &dir).await;
            c::direct_handle(fs.as_ref(), &dir).await;
        });
    }

    #[test]
    fn conformance_concurrent_writes() {
        with_fs(|fs, dir| async move {
            c::concurrent_writes(Arc::clone(&fs), &dir, 500, |write| {
                tokio::spawn(write).map(|joined| joined.unwrap()).boxed()
            })
            .await;
        });
    }

    #[test]
    fn conformance_futures_are_send() {
        with_fs(|fs, dir| async move { c::futures_are_send(fs, &dir).await });
    }

    /// A future dropped while its write is in flight leaves the buffer with
    /// the driver until the kernel is done; the slot goes then, and every
    /// block reads as either before or after its write.
    #[test]
    fn a_dropped_write_frees_its_slot_after_completion() {
        let runtime = super::test_runtime();
        let dir = tempfile::tempdir().unwrap();
        let fs = RingFs::new(runtime.handle().clone()).unwrap();
        let driver = Arc::clone(&fs.driver);
        runtime.block_on(async move {
            let path = dir.path().join("dropped");
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            for round in 0..100u64 {
                let mut write = Box::pin(file.write_all_at(vec![round as u8 + 1; 4096], round * 4096));
                // The first poll submits; then the future is dropped.
                let _ = futures::poll!(write.as_mut());
                drop(write);
            }
            for _ in 0..1000 {
                if driver.in_flight() == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert_eq!(driver.in_flight(), 0, "every abandoned slot was freed");
            let bytes = file.read_at(100 * 4096, 0).await.unwrap();
            for (round, block) in bytes.chunks(4096).enumerate() {
                let value = block[0];
                assert!(value == 0 || value == round as u8 + 1, "block {round}");
                assert!(block.iter().all(|&b| b == value), "block {round} is whole");
            }
        });
    }

    /// When the runtime whose reactor drives the ring shuts down, every
    /// later operation fails with a clear error instead of hanging.
    #[test]
    fn operations_fail_cleanly_after_the_runtime_shuts_down() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fs = RingFs::new(runtime.handle().clone()).unwrap();
        let path = dir.path().join("f");
        let file = runtime.block_on(fs.open(&path, OpenMode::CreateNew)).unwrap();
        runtime.block_on(file.write_all_at(b"hello".to_vec(), 0)).unwrap();
        drop(runtime);
        let result = futures::executor::block_on(file.write_all_at(b"again".to_vec(), 0));
        let error = result.unwrap_err();
        assert!(error.to_string().contains("runtime"), "{error}");
        let read = futures::executor::block_on(file.read_at(5, 0));
        assert!(read.is_err());
    }

    /// A read-ahead read (`IOSQE_ASYNC`, run by an io-wq worker) returns
    /// what a plain read returns, short at the end of the file.
    #[test]
    fn a_read_ahead_reads_what_a_read_reads() {
        with_fs(|fs, dir| async move {
            let path = dir.join("ahead");
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            file.write_all_at(bytes.clone(), 0).await.unwrap();
            for (offset, len) in [(0usize, 262_144usize), (4096, 100_000), (250_000, 262_144)] {
                let ahead = file.read_ahead_at(len, offset as u64).await.unwrap();
                let plain = file.read_at(len, offset as u64).await.unwrap();
                let end = (offset + len).min(bytes.len());
                assert_eq!(ahead, plain, "{offset}+{len}");
                assert_eq!(ahead, bytes[offset..end].to_vec(), "{offset}+{len}");
            }
        });
    }

    /// A read into a reused buffer holds only the bytes it read: a short
    /// read at the end of the file carries none of the buffer's old bytes.
    #[test]
    fn a_reused_read_buffer_carries_none_of_its_old_bytes() {
        with_fs(|fs, dir| async move {
            let path = dir.join("reuse");
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            file.write_all_at(vec![7u8; 5000], 0).await.unwrap();
            for _ in 0..4 {
                // `block_on` polls this future on the test's own thread, so
                // the read below takes the spare dropped here.
                let mut old = crate::io::read_buffers::take(4096);
                old.resize(4096, 0xab);
                let address = old.as_ptr();
                drop(crate::io::read_buffers::into_bytes(old));
                let tail = file.read_at(4096, 4000).await.unwrap();
                assert_eq!(tail.as_ptr(), address, "the read reused the spare");
                assert_eq!(tail, vec![7u8; 1000]);
                drop(crate::io::read_buffers::into_bytes(tail));
            }
        });
    }

    /// A read of a block in the page cache completes during submission and
    /// resolves on its first poll.
    #[test]
    fn a_cached_read_resolves_on_its_first_poll() {
        with_fs(|fs, dir| async move {
            let path = dir.join("cached");
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            file.write_all_at(vec![7u8; 8192], 0).await.unwrap();
            let _ = file.read_at(4096, 0).await.unwrap();
            let mut immediate = 0;
            for _ in 0..50 {
                let mut read = Box::pin(file.read_at(4096, 0));
                if let std::task::Poll::Ready(bytes) = futures::poll!(read.as_mut()) {
                    assert_eq!(bytes.unwrap(), vec![7u8; 4096]);
                    immediate += 1;
                } else {
                    assert_eq!(read.await.unwrap(), vec![7u8; 4096]);
                }
            }
            assert!(immediate > 0, "page-cache reads complete inline");
        });
    }
}
