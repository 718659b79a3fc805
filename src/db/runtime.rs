//! The store's runtime: the tokio runtime whose reactor delivers the
//! foreground ring's completions and which runs the WAL task.
//!
//! A store opened from a task of a tokio runtime with I/O and timers enabled
//! (what `#[tokio::main]` builds) runs on that runtime: its tasks submit
//! their own I/O and are woken straight from the reactor. A store opened
//! anywhere else (`futures::executor::block_on`, another executor, a runtime
//! without I/O or timers) gets a runtime thread of its own, `ringdb-rt`,
//! which costs every durable write one more wake between threads.
//!
//! Ownership: [`StoreRuntime`] is held by the store's shared state and by
//! the WAL task; the own thread, if any, stops once both are gone.
//!
//! Every thread ringdb starts has a name of its own (at most 15 bytes, what
//! Linux keeps), so that a thread list or a profile tells them apart:
//! - `ringdb-rt`: the store's own runtime (above), only for a store opened
//!   outside a tokio runtime with I/O and timers: the WAL task and the
//!   foreground ring's reaper.
//! - `ringdb-bg`: the background thread, a current-thread tokio runtime
//!   running the flush and compaction tasks and the obsolete-file sweep
//!   (`db/open.rs`, `BackgroundThread`).
//! - `ringdb-uring`: the io_uring backend's tokio-uring ring thread, which
//!   serves the background thread's I/O (`io/uring.rs`).
//! - `ringdb-link`, `ringdb-list-dir`, `ringdb-lock`: short-lived helper
//!   threads of that backend for the calls io_uring has no operation for.
//! - `ringdb-io-N`: the threads backend's pool (`io/threads.rs`).
//! - `ringdb-task`: the threads backend's thread for a task given to
//!   `Fs::spawn` (the WAL task).
//! - `ringdb-sim-bg`: the same for the simulated disk (tests).

use std::io;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Where the store's foreground tasks run. See the module docs.
#[derive(Clone)]
pub(crate) struct StoreRuntime {
    /// Spawns onto the runtime.
    pub handle: Handle,
    /// `Some` when ringdb started the runtime's thread itself.
    _own_thread: Option<Arc<OwnThread>>,
}

impl std::fmt::Debug for StoreRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRuntime")
            .field("own_thread", &self._own_thread.is_some())
            .finish()
    }
}

/// Stops ringdb's own runtime thread when dropped.
struct OwnThread {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl StoreRuntime {
    /// The caller's runtime if it can host the store, else a new thread.
    ///
    /// # Errors
    /// Fails when a runtime thread is needed and cannot be started.
    pub fn for_caller() -> io::Result<StoreRuntime> {
        match Handle::try_current() {
            Ok(handle) if can_host(&handle) => Ok(StoreRuntime {
                handle,
                _own_thread: None,
            }),
            _ => Self::own_thread(),
        }
    }

    /// A current-thread runtime on a thread of ringdb's own.
    pub fn own_thread() -> io::Result<StoreRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("ringdb-rt".to_owned())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })?;
        Ok(StoreRuntime {
            handle,
            _own_thread: Some(Arc::new(OwnThread { stop: Some(stop) })),
        })
    }
}

/// Whether the runtime of `handle` has the timer and the I/O driver that
/// the WAL task and the ring's reaper need.
fn can_host(handle: &Handle) -> bool {
    // NOTE: tokio has no query for its drivers; making a sleep and
    // registering a descriptor panic without them, which is caught here.
    // The default panic hook still prints the panic once.
    let _entered = handle.enter();
    std::panic::catch_unwind(|| {
        drop(tokio::time::sleep(std::time::Duration::ZERO));
        let (reader, _writer) = std::io::pipe()?;
        // SAFETY: the AsyncFd owns `reader` and drops it right away.
        unsafe { tokio::io::unix::AsyncFd::register(reader) }
            .map(drop)
            .map_err(|e| e.into_parts().1)
    })
    .is_ok_and(|registered| registered.is_ok())
}

#[cfg(test)]
mod tests {
    use super::StoreRuntime;

    #[test]
    fn a_tokio_runtime_with_drivers_hosts_the_store() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(async { StoreRuntime::for_caller().unwrap() });
        assert!(store._own_thread.is_none());
    }

    #[test]
    fn without_a_runtime_or_its_drivers_the_store_gets_its_own_thread() {
        let store = futures::executor::block_on(async { StoreRuntime::for_caller().unwrap() });
        assert!(store._own_thread.is_some());
        let bare = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = bare.block_on(async { StoreRuntime::for_caller().unwrap() });
        assert!(store._own_thread.is_some());
        let spawned = store.handle.spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            std::thread::current().name().map(str::to_owned)
        });
        let name = futures::executor::block_on(spawned).unwrap();
        assert_eq!(name.as_deref(), Some("ringdb-rt"));
    }
}
