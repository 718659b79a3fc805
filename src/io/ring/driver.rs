//! The foreground ring: one io_uring per store, driven by whichever task
//! needs the I/O, with completions delivered through the reactor of the
//! tokio runtime the store runs on.
//!
//! A task submits its operation itself (under the ring's lock, one
//! `io_uring_enter`), then looks at the completion queue at once: an
//! operation the kernel finished during submission (a read served from the
//! page cache) resolves in the same poll, with no wake. Otherwise the task
//! parks its waker in the operation's slot. The ring's eventfd
//! (`IORING_REGISTER_EVENTFD`) is watched with `AsyncFd` by one small reaper
//! task on the store's runtime; when it fires, the reaper drains the
//! completion queue and wakes exactly the tasks whose operations completed.
//!
//! NOTE: the ring is set up without `SINGLE_ISSUER`, `DEFER_TASKRUN` or
//! `COOP_TASKRUN`: tasks on any thread submit, and the completion of an
//! `O_DIRECT` write runs as task work on the thread that submitted it, which
//! must not wait for that thread's next ring entry
//! (`docs/decisions/0010-foreground-io-driver.md`).
//!
//! Ownership: the driver owns every resource an operation hands the kernel
//! (buffer, path, statx buffer, and a reference to the file descriptor) in
//! the operation's slot, from submission until its completion has been
//! reaped. A future dropped early leaves its slot `Abandoned`; the slot and
//! its resources are freed when the completion arrives, never before.
//!
//! Invariants:
//! - A slot is removed only after its completion was reaped (or after the
//!   ring was torn down with nothing in flight).
//! - At most [`MAX_FOREGROUND_RING_OPS`] operations are in flight: each holds
//!   a semaphore permit from before its submission until its completion, and
//!   a submitter waits for one asynchronously.
//! - Once the reaper is gone (the runtime shut down), no new operation is
//!   submitted and every waiting future resolves with an error; nothing
//!   hangs.
//! - No operation waits on an entry the kernel refused (`EAGAIN`, `EBUSY`):
//!   its task enters the queue again on every poll until the entry is in,
//!   and any other error of `io_uring_enter` fails the operation.

use std::ffi::CString;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use io_uring::{IoUring, squeue};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::cq_flags::CqFlags;
use crate::limits::{FOREGROUND_RING_ENTRIES, MAX_FOREGROUND_RING_OPS};

/// What an operation hands the kernel, kept alive until its completion.
#[derive(Default)]
pub(crate) struct Resources {
    /// A buffer the kernel reads from (write) or writes into (read).
    pub buf: Vec<u8>,
    /// A path the kernel reads (open); held, never read back.
    #[expect(dead_code, reason = "kept alive for the kernel, not read")]
    pub path: Option<CString>,
    /// A statx buffer the kernel writes into.
    pub statx: Option<Box<libc::statx>>,
    /// The file the operation works on: closed only after the completion.
    pub fd: Option<Arc<OwnedFd>>,
}

/// The outcome of one operation: the kernel's result (a count, a new file
/// descriptor, or an error) and the resources, handed back.
pub(crate) type Completion = (io::Result<u32>, Resources);

enum SlotState {
    /// Submitted; the waker of the task awaiting it, once it has polled.
    Waiting(Option<Waker>),
    /// Completed with the kernel's result, not yet taken.
    Done(i32),
    /// Its future was dropped; the slot goes when the completion comes.
    Abandoned,
}

struct Slot {
    state: SlotState,
    resources: Resources,
    _permit: OwnedSemaphorePermit,
    /// Still in the kernel after its submitter's look at the completion
    /// queue: its completion needs the eventfd.
    awaited: bool,
}

struct State {
    ring: IoUring,
    slots: Slab<Slot>,
    /// Slots with `awaited` set; the eventfd is on exactly while this is
    /// above zero.
    awaited: usize,
    /// The switch of the ring's eventfd notifications; `None` on a kernel
    /// without one (they stay on).
    cq_flags: Option<CqFlags>,
}

impl State {
    /// The completion of the operation in `key`, removing its slot, if it
    /// is done.
    fn take_done(&mut self, key: usize) -> Option<Completion> {
        let SlotState::Done(result) = self.slots.get(key)?.state else {
            return None;
        };
        let slot = self.slots.remove(key);
        Some((result_of(result), slot.resources))
    }

    /// Counts the operation in `key` as awaited after its submission took
    /// no completion for it; on the first, turns the eventfd on and looks
    /// at the queue again for completions posted while it was off.
    fn await_completion(&mut self, key: usize, wakers: &mut Vec<Waker>) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if !matches!(slot.state, SlotState::Waiting(_)) {
            return;
        }
        slot.awaited = true;
        self.awaited += 1;
        if self.awaited == 1
            && let Some(cq_flags) = &self.cq_flags
        {
            cq_flags.set_notify(true);
            drain(self, wakers);
        }
    }
}

/// One store's foreground ring. See the module docs.
pub(crate) struct Driver {
    state: Mutex<State>,
    permits: Arc<Semaphore>,
    /// The reaper has stopped (its runtime shut down): no completion will be
    /// delivered any more.
    dead: AtomicBool,
    /// The eventfd registered with the ring; written on drop to end the reaper.
    eventfd: OwnedFd,
    /// The ring's descriptor, for `io_uring_enter` outside the lock (the
    /// ring in `state` owns it and outlives every use).
    ring_fd: RawFd,
    /// Errors the next `io_uring_enter` calls return instead of entering,
    /// in order (for tests).
    #[cfg(test)]
    refusals: Mutex<std::collections::VecDeque<i32>>,
}

/// The error of an operation after the store's runtime has shut down.
pub(crate) fn runtime_gone() -> io::Error {
    io::Error::other("the tokio runtime that drove this store's I/O has shut down; reopen the store")
}

impl Driver {
    /// Sets up a ring and its eventfd, and spawns the reaper on the runtime
    /// of `handle`.
    ///
    /// # Errors
    /// Fails when io_uring is unavailable (seccomp, `kernel.io_uring_disabled`)
    /// or the eventfd cannot be made or registered.
    pub fn start(handle: &tokio::runtime::Handle) -> io::Result<Arc<Driver>> {
        let ring = IoUring::builder().build(FOREGROUND_RING_ENTRIES)?;
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        // NOTE: the switch only saves wakes: without it, notifications stay on.
        let cq_flags = CqFlags::map(ring.as_raw_fd()).unwrap_or_else(|error| {
            tracing::debug!(%error, "mapping the completion ring's flags");
            None
        });
        if let Some(cq_flags) = &cq_flags {
            cq_flags.set_notify(false);
        }
        let watched_fd = eventfd.try_clone()?;
        let ring_fd = ring.as_raw_fd();
        let driver = Arc::new(Driver {
            state: Mutex::new(State {
                ring,
                slots: Slab::new(),
                awaited: 0,
                cq_flags,
            }),
            permits: Arc::new(Semaphore::new(MAX_FOREGROUND_RING_OPS)),
            dead: AtomicBool::new(false),
            eventfd,
            ring_fd,
            #[cfg(test)]
            refusals: Mutex::default(),
        });
        let watched = {
            let _entered = handle.enter();
            // SAFETY: `watched_fd` is a descriptor the AsyncFd owns; nothing
            // else closes or replaces it while it is registered.
            unsafe { AsyncFd::register_with_interest(watched_fd, tokio::io::Interest::READABLE) }?
        };
        let weak = Arc::downgrade(&driver);
        // NOTE: the guard is made here, not in the task, so that it also
        // marks the driver dead if the task is dropped before its first poll.
        drop(handle.spawn(reap_loop(ReaperGuard(weak), watched)));
        Ok(driver)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // NOTE: nothing panics under this lock but a broken invariant; the
        // state stays consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits `entry` (whose pointers point into `resources`) and awaits
    /// its completion. Waits first, asynchronously, while the ring is full.
    ///
    /// Cancel safety: dropped before submission, nothing happens; dropped
    /// after, the operation runs to completion in the kernel and its
    /// resources are freed then.
    pub async fn run(self: &Arc<Self>, entry: squeue::Entry, resources: Resources) -> Completion {
        let permit = match Arc::clone(&self.permits).acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return (Err(runtime_gone()), resources),
        };
        let key = match self.submit(entry, resources, permit) {
            Ok(Submitted::Done(completion)) => return completion,
            Ok(Submitted::Pending(key)) => key,
            Err((error, resources)) => return (Err(error), resources),
        };
        OpFuture {
            driver: Arc::clone(self),
            key: Some(key),
        }
        .await
    }

    /// Puts the operation in a slot and hands it to the kernel; then takes
    /// whatever completed meanwhile. Returns the operation's completion if
    /// the kernel finished it during submission, else its slot.
    ///
    /// NOTE: `io_uring_enter` runs outside the lock: a read served from the
    /// page cache copies its data inside that call, and other tasks' threads
    /// must not sleep on the lock meanwhile (the kernel serialises
    /// submissions itself, and consumes queued entries only up to the tail
    /// published under the lock).
    fn submit(
        &self,
        entry: squeue::Entry,
        resources: Resources,
        permit: OwnedSemaphorePermit,
    ) -> Result<Submitted, (io::Error, Resources)> {
        if self.dead.load(Ordering::Acquire) {
            return Err((runtime_gone(), resources));
        }
        let (key, queued) = {
            let mut state = self.lock();
            let key = state.slots.insert(Slot {
                state: SlotState::Waiting(None),
                resources,
                _permit: permit,
                awaited: false,
            });
            let entry = entry.user_data(key as u64);
            // NOTE: the permits keep in-flight operations below the ring's
            // size, and every submission is flushed at once, so the queue has
            // room; a full one is flushed and tried again.
            // SAFETY: the entry's pointers point into the resources now held
            // by the slot, which lives until the completion is reaped.
            let pushed = unsafe { state.ring.submission().push(&entry) }.is_ok()
                || (state.ring.submit().is_ok() && unsafe { state.ring.submission().push(&entry) }.is_ok());
            if !pushed {
                let slot = state.slots.remove(key);
                return Err((
                    io::Error::other("the foreground ring's queue is full"),
                    slot.resources,
                ));
            }
            (key, state.ring.submission().len())
        };
        if let Err(error) = self.enter(queued) {
            // NOTE: a refused enter leaves the entry queued; the first poll
            // of the operation enters again (`poll_op`).
            tracing::debug!(%error, "io_uring_enter");
        }
        let mut wakers = Vec::new();
        let submitted = {
            let mut state = self.lock();
            drain(&mut state, &mut wakers);
            state.await_completion(key, &mut wakers);
            state
                .take_done(key)
                .map_or(Submitted::Pending(key), Submitted::Done)
        };
        for waker in wakers {
            waker.wake();
        }
        Ok(submitted)
    }

    /// Takes every completion and wakes its waiter: the reaper calls this
    /// when the eventfd fires.
    fn reap(&self) {
        let mut wakers = Vec::new();
        {
            let mut state = self.lock();
            let _ = self.enter_queued(&mut state);
            drain(&mut state, &mut wakers);
        }
        for waker in wakers {
            waker.wake();
        }
    }

    /// The reaper stopped: fail every waiting operation (their slots stay
    /// until the kernel completes them) and refuse new ones.
    fn mark_dead(&self) {
        self.dead.store(true, Ordering::Release);
        self.permits.close();
        let mut wakers = Vec::new();
        {
            let mut state = self.lock();
            drain(&mut state, &mut wakers);
            for (_, slot) in state.slots.iter_mut() {
                if let SlotState::Waiting(waker) = &mut slot.state {
                    wakers.extend(waker.take());
                }
            }
        }
        for waker in wakers {
            waker.wake();
        }
    }

    /// Hands the kernel the entries still queued, if any; whether there
    /// were any.
    fn enter_queued(&self, state: &mut State) -> io::Result<bool> {
        match state.ring.submission().len() {
            0 => Ok(false),
            queued => self.enter(queued).map(|()| true),
        }
    }

    /// `io_uring_enter` submitting up to `count` queued entries.
    fn enter(&self, count: usize) -> io::Result<()> {
        #[cfg(test)]
        if let Some(errno) = self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            return Err(io::Error::from_raw_os_error(errno));
        }
        enter(self.ring_fd, count)
    }

    /// Makes the next `io_uring_enter` calls fail with `errnos`, in order.
    #[cfg(test)]
    fn refuse_enters(&self, errnos: &[i32]) {
        self.refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(errnos);
    }

    fn poll_op(&self, key: usize, cx: &mut Context<'_>) -> Poll<Completion> {
        let mut wakers = Vec::new();
        let poll = self.poll_op_locked(key, cx, &mut wakers);
        for waker in wakers {
            waker.wake();
        }
        poll
    }

    fn poll_op_locked(&self, key: usize, cx: &mut Context<'_>, wakers: &mut Vec<Waker>) -> Poll<Completion> {
        let mut state = self.lock();
        if let Some(completion) = state.take_done(key) {
            return Poll::Ready(completion);
        }
        // NOTE: entries still queued were refused by the kernel (`EAGAIN`
        // when it is short of memory, `EBUSY`), or their task has yet to
        // enter them: no completion may come to enter refused ones again,
        // so a task that finds any enters them itself, under the lock on
        // this rare path, and polls again until they are in. Any other
        // error means the ring is unusable: the operation fails, and its
        // slot waits for a completion that may never come.
        let (entered, refused) = match self.enter_queued(&mut state) {
            Ok(entered) => (entered, false),
            Err(error) if matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => (true, true),
            Err(error) => {
                tracing::error!(%error, "io_uring_enter on the foreground ring");
                if let Some(slot) = state.slots.get_mut(key) {
                    slot.state = SlotState::Abandoned;
                }
                return Poll::Ready((Err(error), Resources::default()));
            }
        };
        if entered {
            drain(&mut state, wakers);
            if let Some(completion) = state.take_done(key) {
                return Poll::Ready(completion);
            }
        }
        let Some(slot) = state.slots.get_mut(key) else {
            debug_assert!(false, "a pending operation has a slot");
            return Poll::Ready((
                Err(io::Error::other("lost foreground ring slot")),
                Resources::default(),
            ));
        };
        match &mut slot.state {
            SlotState::Waiting(waker) => {
                if self.dead.load(Ordering::Acquire) {
                    // NOTE: the kernel may still use the resources: keep
                    // them in the slot and hand back empty ones.
                    slot.state = SlotState::Abandoned;
                    return Poll::Ready((Err(runtime_gone()), Resources::default()));
                }
                match waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                if refused {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            // NOTE: a done slot was taken above.
            SlotState::Done(_) | SlotState::Abandoned => {
                debug_assert!(false, "an abandoned slot is not polled");
                Poll::Ready((
                    Err(io::Error::other("abandoned operation polled")),
                    Resources::default(),
                ))
            }
        }
    }

    fn abandon(&self, key: usize) {
        let mut state = self.lock();
        let done = match state.slots.get_mut(key) {
            Some(slot) if matches!(slot.state, SlotState::Done(_)) => true,
            Some(slot) => {
                slot.state = SlotState::Abandoned;
                false
            }
            None => false,
        };
        if done {
            drop(state.slots.remove(key));
        }
    }

    /// Whether the ring's eventfd notifications are on (for tests).
    #[cfg(test)]
    fn notifying(&self) -> bool {
        self.lock().cq_flags.as_ref().is_none_or(CqFlags::notify)
    }

    /// Operations in flight (for tests).
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.lock().slots.len()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // NOTE: the kernel may still write into buffers of abandoned
        // operations: wait for every completion before the slots go.
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut wakers = Vec::new();
        // NOTE: completed slots need no wait (their futures are gone, or
        // they would hold the driver); only abandoned ones await the kernel.
        state
            .slots
            .retain(|_, slot| !matches!(slot.state, SlotState::Done(_)));
        while !state.slots.is_empty() {
            if let Err(error) = state.ring.submit_and_wait(1)
                && error.raw_os_error() != Some(libc::EINTR)
            {
                tracing::error!(%error, "waiting for the foreground ring to drain");
                // NOTE: freeing the buffers now could let the kernel write
                // into freed memory: leak them instead.
                std::mem::forget(std::mem::take(&mut state.slots));
                break;
            }
            drain(state, &mut wakers);
        }
        drop(wakers);
        // Ends the reaper: it wakes, finds the driver gone and returns.
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd.
        let _ = unsafe { libc::write(self.eventfd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// `io_uring_enter` submitting up to `count` queued entries of the ring
/// `ring_fd`, retrying on `EINTR`.
fn enter(ring_fd: RawFd, count: usize) -> io::Result<()> {
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    loop {
        // SAFETY: io_uring_enter with no wait and no argument reads only
        // the ring's own shared memory; the result is checked.
        let result = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                ring_fd,
                count,
                0u32,
                0u32,
                std::ptr::null::<libc::c_void>(),
                0usize,
            )
        };
        if result >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// What a submission gave: the completion, if the kernel finished the
/// operation meanwhile, or the slot to await.
enum Submitted {
    Done(Completion),
    Pending(usize),
}

/// Moves every completion into its slot, collecting the wakers to call
/// once the lock is released; turns the eventfd off when no awaited
/// operation is left.
fn drain(state: &mut State, wakers: &mut Vec<Waker>) {
    let State {
        ring,
        slots,
        awaited,
        cq_flags,
    } = state;
    let awaited_before = *awaited;
    for cqe in ring.completion() {
        let Ok(key) = usize::try_from(cqe.user_data()) else {
            continue;
        };
        let Some(slot) = slots.get_mut(key) else {
            debug_assert!(false, "a completion has a slot");
            continue;
        };
        if std::mem::take(&mut slot.awaited) {
            *awaited -= 1;
        }
        match std::mem::replace(&mut slot.state, SlotState::Done(cqe.result())) {
            SlotState::Waiting(waker) => wakers.extend(waker),
            SlotState::Abandoned => drop(slots.remove(key)),
            SlotState::Done(_) => debug_assert!(false, "one completion per operation"),
        }
    }
    if *awaited == 0
        && awaited_before > 0
        && let Some(cq_flags) = cq_flags
    {
        cq_flags.set_notify(false);
    }
}

fn result_of(result: i32) -> io::Result<u32> {
    match u32::try_from(result) {
        Ok(n) => Ok(n),
        Err(_) => Err(io::Error::from_raw_os_error(result.saturating_neg())),
    }
}

/// Awaits one submitted operation; abandons it when dropped first.
struct OpFuture {
    driver: Arc<Driver>,
    key: Option<usize>,
}

impl Future for OpFuture {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        let Some(key) = self.key else {
            return Poll::Ready((
                Err(io::Error::other("operation polled after completion")),
                Resources::default(),
            ));
        };
        let poll = self.driver.poll_op(key, cx);
        if poll.is_ready() {
            self.key = None;
        }
        poll
    }
}

impl Drop for OpFuture {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.driver.abandon(key);
        }
    }
}

/// Marks the driver dead when the reaper stops for any reason (its runtime
/// shut down, or the driver was dropped).
struct ReaperGuard(Weak<Driver>);

impl Drop for ReaperGuard {
    fn drop(&mut self) {
        if let Some(driver) = self.0.upgrade() {
            driver.mark_dead();
        }
    }
}

/// The reaper: waits on the eventfd through the runtime's reactor and
/// delivers completions.
async fn reap_loop(guard: ReaperGuard, eventfd: AsyncFd<OwnedFd>) {
    let driver = guard.0.clone();
    loop {
        let Ok(mut ready) = eventfd.readable().await else {
            return;
        };
        // NOTE: reset the counter before draining, so that a completion
        // posted after the drain fires the eventfd again.
        let mut counter = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer from our own eventfd.
        let read = unsafe { libc::read(eventfd.as_raw_fd(), counter.as_mut_ptr().cast(), counter.len()) };
        if read < 0 {
            ready.clear_ready();
        }
        let Some(driver) = driver.upgrade() else {
            return;
        };
        driver.reap();
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::Arc;
    use std::time::Duration;

    use io_uring::{opcode, types};

    use super::{Driver, Resources};

    /// A pipe's read and write ends.
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`; the result is checked.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned by nothing else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// A read of 5 bytes from `read_end`, with the resources it hands the
    /// kernel.
    fn read_of(read_end: OwnedFd) -> (io_uring::squeue::Entry, Resources) {
        let mut buf = vec![0u8; 5];
        let entry = opcode::Read::new(types::Fd(read_end.as_raw_fd()), buf.as_mut_ptr(), 5).build();
        let resources = Resources {
            buf,
            fd: Some(Arc::new(read_end)),
            ..Resources::default()
        };
        (entry, resources)
    }

    /// Writes 5 bytes of `byte` into the pipe of `write_end`.
    fn write_5(write_end: &OwnedFd, byte: u8) {
        let message = [byte; 5];
        // SAFETY: writes 5 bytes from a live buffer to our own pipe.
        let written = unsafe { libc::write(write_end.as_raw_fd(), message.as_ptr().cast(), 5) };
        assert_eq!(written, 5);
    }

    /// A read of `read_end`, whose pipe holds 5 bytes already, so that the
    /// kernel finishes it as soon as it is entered.
    fn ready_read(read_end: OwnedFd, write_end: &OwnedFd, byte: u8) -> (io_uring::squeue::Entry, Resources) {
        write_5(write_end, byte);
        read_of(read_end)
    }

    /// An `io_uring_enter` the kernel refuses for want of resources leaves
    /// the entry queued with nothing in flight to enter it again: the
    /// operation's own task enters it until it goes in, and the operation
    /// completes. An unexpected error fails the operation instead of
    /// retrying forever, and a later enter still takes its entry, whose
    /// slot then goes.
    #[test]
    fn refused_enters_are_retried_and_unexpected_errors_fail_the_operation() {
        let runtime = crate::io::ring::test_runtime();
        let driver = Driver::start(runtime.handle()).unwrap();
        runtime.block_on(async move {
            let (read_end, write_end) = pipe();
            let (entry, resources) = ready_read(read_end, &write_end, 7);
            driver.refuse_enters(&[libc::EAGAIN, libc::EBUSY, libc::EAGAIN]);
            let (result, resources) =
                tokio::time::timeout(Duration::from_secs(10), driver.run(entry, resources))
                    .await
                    .expect("a refused entry was never entered again");
            assert_eq!(result.unwrap(), 5);
            assert_eq!(resources.buf, vec![7; 5]);
            assert!(
                driver.refusals.lock().unwrap().is_empty(),
                "every refusal was met"
            );
            assert_eq!(driver.in_flight(), 0);

            let (read_end, write_end) = pipe();
            let (entry, resources) = ready_read(read_end, &write_end, 8);
            // NOTE: more refusals than this operation's own enters: the
            // reaper, woken by the first part's completion, may enter too,
            // and must neither take a refusal meant for the operation nor
            // enter its entry before the check below.
            driver.refuse_enters(&[libc::EINVAL; 8]);
            let (result, _) = tokio::time::timeout(Duration::from_secs(10), driver.run(entry, resources))
                .await
                .expect("an unexpected error ends the operation");
            assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EINVAL));
            assert_eq!(driver.in_flight(), 1, "its entry is still queued");
            driver.refusals.lock().unwrap().clear();

            let (read_end, write_end) = pipe();
            let (entry, resources) = ready_read(read_end, &write_end, 9);
            let (result, resources) = driver.run(entry, resources).await;
            assert_eq!(result.unwrap(), 5);
            assert_eq!(resources.buf, vec![9; 5]);
            assert_eq!(
                driver.in_flight(),
                0,
                "the next enter took the failed operation's entry, and its slot went"
            );
        });
    }

    /// An operation the kernel cannot finish during submission (a read of
    /// an empty pipe) turns the eventfd on; its completion, posted later
    /// from another thread's write, still wakes its task; then the eventfd
    /// is off again, so reads served during submission wake nobody.
    #[test]
    fn a_late_completion_wakes_its_task_and_notifications_turn_off_after() {
        let runtime = crate::io::ring::test_runtime();
        let driver = Driver::start(runtime.handle()).unwrap();
        let switchable = driver.lock().cq_flags.is_some();
        runtime.block_on(async move {
            for round in 0..20u8 {
                let (read_end, write_end) = pipe();
                let (entry, resources) = read_of(read_end);
                let mut read = Box::pin(driver.run(entry, resources));
                assert!(futures::poll!(read.as_mut()).is_pending(), "round {round}");
                if switchable {
                    assert!(
                        driver.notifying(),
                        "round {round}: an awaited operation needs the eventfd"
                    );
                }
                let writer = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    write_5(&write_end, round);
                });
                let (result, resources) = tokio::time::timeout(Duration::from_secs(10), read)
                    .await
                    .unwrap_or_else(|_| panic!("round {round}: the completion woke nobody"));
                writer.join().unwrap();
                assert_eq!(result.unwrap(), 5, "round {round}");
                assert_eq!(resources.buf, vec![round; 5], "round {round}");
                if switchable {
                    assert!(
                        !driver.notifying(),
                        "round {round}: nothing awaited, the eventfd is off"
                    );
                }
            }
        });
    }
}
