//! The completion ring's flags word, mapped so that the driver can turn the
//! ring's eventfd notifications off and on (`IORING_CQ_EVENTFD_DISABLED`,
//! what liburing's `io_uring_cq_eventfd_toggle` writes). The `io-uring`
//! crate reads this word but does not write it.
//!
//! The word lives in the ring's shared memory (`struct io_rings`), at the
//! offset the kernel reports in `io_uring_params.cq_off.flags`. That offset
//! is a field offset of a kernel struct, the same for every ring, so it is
//! learnt from a throwaway one-entry ring; the word is then reached through
//! a second mapping of the store's ring (`IORING_OFF_CQ_RING` maps the same
//! `io_rings` whether or not the kernel shares one mapping for both rings).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// `IORING_OFF_CQ_RING`: the mmap offset that selects the completion ring.
const IORING_OFF_CQ_RING: libc::off_t = 0x800_0000;

/// `IORING_CQ_EVENTFD_DISABLED`: no eventfd notification while set.
const IORING_CQ_EVENTFD_DISABLED: u32 = 1;

/// `struct io_sqring_offsets` of the kernel's uapi.
#[repr(C)]
#[derive(Default)]
struct SqRingOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_cqring_offsets` of the kernel's uapi.
#[repr(C)]
#[derive(Default)]
struct CqRingOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

/// `struct io_uring_params` of the kernel's uapi.
#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqRingOffsets,
    cq_off: CqRingOffsets,
}

/// The offset of the completion ring's flags word, learnt once per
/// process; `None` if the kernel has no such word (before 5.8) or no ring
/// can be made.
fn flags_offset() -> Option<usize> {
    static OFFSET: OnceLock<Option<usize>> = OnceLock::new();
    *OFFSET.get_or_init(probe_flags_offset)
}

/// The offset of the completion ring's flags word, from a throwaway ring.
fn probe_flags_offset() -> Option<usize> {
    let mut params = Params::default();
    // SAFETY: io_uring_setup writes into `params`, a live, correctly laid
    // out `io_uring_params`; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, &raw mut params) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    // NOTE: kernels without the word report 0, which is the ring's head.
    (params.cq_off.flags != 0).then_some(params.cq_off.flags as usize)
}

/// A mapping of one ring's completion flags word.
pub(crate) struct CqFlags {
    /// Start of the mapping (page-aligned), for `munmap`.
    map: NonNull<libc::c_void>,
    len: usize,
    /// The flags word, inside the mapping.
    word: NonNull<AtomicU32>,
}

// SAFETY: the mapping is shared memory accessed only through an atomic, and
// it is unmapped once, by the owner's drop.
unsafe impl Send for CqFlags {}
// SAFETY: as above: every access is an atomic operation.
unsafe impl Sync for CqFlags {}

impl CqFlags {
    /// Maps the flags word of the ring behind `ring_fd`; `Ok(None)` if the
    /// kernel has none (notifications then stay on).
    ///
    /// # Errors
    /// Fails if the mapping fails.
    pub fn map(ring_fd: RawFd) -> io::Result<Option<CqFlags>> {
        let Some(offset) = flags_offset() else {
            return Ok(None);
        };
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = (offset + size_of::<u32>()).next_multiple_of(page);
        // SAFETY: maps `len` bytes of the ring's shared memory; the kernel
        // checks the length against the ring's size, and the result is checked.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                ring_fd,
                IORING_OFF_CQ_RING,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(map) = NonNull::new(map) else {
            return Err(io::Error::other("mmap of the completion ring returned null"));
        };
        // SAFETY: `offset + 4 <= len`, and the kernel aligns the word to 4.
        let word = unsafe { map.byte_add(offset) }.cast::<AtomicU32>();
        Ok(Some(CqFlags { map, len, word }))
    }

    /// Turns the ring's eventfd notifications on or off. Turning them on is
    /// followed by a full fence: a completion the kernel posted while they
    /// were off is then visible to the caller's next look at the queue (the
    /// kernel orders its tail store before its read of this word the same
    /// way).
    pub fn set_notify(&self, on: bool) {
        // SAFETY: the word lives as long as the mapping, which `self` owns.
        let word = unsafe { self.word.as_ref() };
        if on {
            word.fetch_and(!IORING_CQ_EVENTFD_DISABLED, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
        } else {
            word.fetch_or(IORING_CQ_EVENTFD_DISABLED, Ordering::SeqCst);
        }
    }

    /// Whether notifications are on (for tests).
    #[cfg(test)]
    pub fn notify(&self) -> bool {
        // SAFETY: as in `set_notify`.
        unsafe { self.word.as_ref() }.load(Ordering::SeqCst) & IORING_CQ_EVENTFD_DISABLED == 0
    }
}

impl Drop for CqFlags {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `map`, once; nothing refers to
        // the word afterwards.
        unsafe { libc::munmap(self.map.as_ptr(), self.len) };
    }
}
