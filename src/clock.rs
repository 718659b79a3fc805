//! The store's clock: the time that TTL expiry is judged by.
//!
//! Ownership: one `Arc<dyn Clock>` per store (`Options::clock`), read by
//! writers (to stamp an expiry), readers (to hide expired values) and
//! compaction (to drop them). Tests inject a [`ManualClock`] so that
//! expiry needs no sleep.
//!
//! Invariants:
//! - Times are milliseconds since the Unix epoch.
//! - A clock should not go backwards: an entry hidden as expired must stay
//!   hidden, and compaction may already have dropped it. A clock that does
//!   go back makes reads of entries not yet compacted show them again.

use std::sync::atomic::{AtomicU64, Ordering};

/// A source of the current time for TTL expiry.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The system clock, shared: taking it costs no allocation.
pub(crate) fn system() -> std::sync::Arc<dyn Clock> {
    static SYSTEM: std::sync::LazyLock<std::sync::Arc<dyn Clock>> =
        std::sync::LazyLock::new(|| std::sync::Arc::new(SystemClock));
    std::sync::Arc::clone(&SYSTEM)
}

/// A clock that moves only when told to: for tests of TTL expiry.
///
/// ```
/// use ringdb::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(std::time::Duration::from_secs(2));
/// assert_eq!(clock.now_ms(), 3_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock {
            now_ms: AtomicU64::new(now_ms),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by_ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }

    /// Sets the time; it should not go backwards (see the module docs).
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
