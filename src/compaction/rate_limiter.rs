//! A token bucket that paces compaction writes, in bytes per second.
//!
//! Ownership: one per store, shared by the compaction jobs (one runs at a
//! time, but the limiter does not rely on it). State sits behind a
//! `std::sync::Mutex` held only to do arithmetic, never across an await.
//!
//! A job calls [`RateLimiter::acquire`] with the bytes it just wrote; when
//! the bucket is in debt the call sleeps (`tokio::time::sleep`, so it needs
//! a tokio runtime with the time driver) until the debt is paid back. The
//! bucket holds at most [`BURST_SECONDS_DIVISOR`]⁻¹ of a second of credit,
//! so an idle limiter does not let a long burst through.
//!
//! Invariants:
//! - `tokens` never exceeds the burst capacity; it goes negative only by
//!   the bytes of one `acquire` call and is paid back by sleeping.
//! - `bytes_acquired` and `sleeps` only grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The bucket holds `1 / BURST_SECONDS_DIVISOR` seconds of bytes at most.
pub const BURST_SECONDS_DIVISOR: u64 = 10;

/// Paces writers to a byte rate.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: u64,
    burst_bytes: f64,
    state: Mutex<Bucket>,
    bytes_acquired: AtomicU64,
    sleeps: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    /// Credit in bytes; negative is debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled_at: Instant,
}

impl RateLimiter {
    /// A limiter allowing `bytes_per_sec` bytes per second (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        let bytes_per_sec = bytes_per_sec.max(1);
        let burst_bytes = (bytes_per_sec / BURST_SECONDS_DIVISOR).max(1) as f64;
        RateLimiter {
            bytes_per_sec,
            burst_bytes,
            state: Mutex::new(Bucket {
                tokens: burst_bytes,
                refilled_at: Instant::now(),
            }),
            bytes_acquired: AtomicU64::new(0),
            sleeps: AtomicU64::new(0),
        }
    }

    /// The configured rate.
    #[cfg(test)]
    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// Charges `bytes` to the bucket and, if that leaves it in debt, sleeps
    /// until the debt is repaid at the configured rate.
    ///
    /// # Panics
    /// If the debt needs a sleep outside a tokio runtime with time enabled.
    ///
    /// # Cancel safety
    /// Cancel safe: the bytes are charged before the sleep; a dropped call
    /// only skips the wait.
    pub async fn acquire(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.bytes_acquired.fetch_add(bytes, Ordering::Relaxed);
        let debt = {
            let mut bucket = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(bucket.refilled_at).as_secs_f64();
            bucket.refilled_at = now;
            bucket.tokens = (bucket.tokens + elapsed * self.bytes_per_sec as f64).min(self.burst_bytes);
            bucket.tokens -= bytes as f64;
            -bucket.tokens
        };
        if debt > 0.0 {
            self.sleeps.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs_f64(debt / self.bytes_per_sec as f64)).await;
        }
    }

    /// Bytes charged so far.
    #[cfg(test)]
    pub fn bytes_acquired(&self) -> u64 {
        self.bytes_acquired.load(Ordering::Relaxed)
    }

    /// Times an `acquire` had to sleep.
    #[cfg(test)]
    pub fn sleeps(&self) -> u64 {
        self.sleeps.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_only_when_in_debt() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let limiter = RateLimiter::new(1_000_000);
            assert_eq!(limiter.bytes_per_sec(), 1_000_000);
            // Within the burst (a tenth of a second's bytes): no sleep.
            limiter.acquire(50_000).await;
            limiter.acquire(0).await;
            assert_eq!(limiter.sleeps(), 0);
            // Twice the burst: in debt however long the first call took
            // (credit is capped at the burst), so a sleep of 0.1 to 0.15 s.
            limiter.acquire(200_000).await;
            assert_eq!(limiter.sleeps(), 1);
            assert_eq!(limiter.bytes_acquired(), 250_000);
        });
        // A zero rate is treated as one byte per second, never a division
        // by zero.
        assert_eq!(RateLimiter::new(0).bytes_per_sec(), 1);
    }
}
