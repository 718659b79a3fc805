//! Holding a durable write for the writers the last one released.
//!
//! The disk runs one flush at a time. With a few writers that each await
//! their put and then put again (a closed loop: request handlers, the
//! fillsync bench), group commit without a hold settles into two groups
//! that alternate: while one group's write is on the disk, the writers the
//! previous write released collect, and they go out the moment the disk is
//! free. Each group holds about half the writers, so a flush covers half of
//! them. Holding the next write until the released writers are back merges
//! the two groups: one flush covers all of them
//! (`docs/decisions/0005-wal-group-hold.md`).
//!
//! The rule, kept cheap and bounded:
//! - Wait for as many writers as were resolved or waiting when the last
//!   durable operation completed (`expected`). A single writer never waits.
//! - Never longer than twice the last durable operation took, nor
//!   [`crate::Options::wal_max_group_hold`]: the hold pays when the writers
//!   come back faster than a second flush plus the round trips around it
//!   would take, so it is bounded by the disk's own speed.
//! - Never once the write is large ([`HOLD_BYTES_MAX`]); the group cap
//!   bounds it anyway.
//! - Never for as many writers as
//!   [`crate::Options::wal_pipeline_min_writers`]: a group that large
//!   fills while the disk works on the one before it.
//! - A hold pays only while the writers come back faster than a sync
//!   takes: a hold that lasts longer keeps the disk idle for longer than a
//!   second write queued behind the running one would have. Writers that
//!   do not come back at all (an open-loop load: each request puts once)
//!   make holds run out. After [`UNPAID_LIMIT`] holds in a row that ran
//!   out or lasted longer than the last sync, holding stops for the next
//!   [`OFF_WRITES`] durable writes, so such loads pay for a hold only now
//!   and then. In closed loops, holds fill well within a sync.
//!
//! RocksDB does not hold; MySQL (`binlog_group_commit_sync_delay`) and
//! PostgreSQL (`commit_delay`) hold for a fixed, configured time. This one
//! sets its own target and bound from what the last sync saw.

use std::time::Duration;

use tokio::time::Instant;

/// Bytes at which a durable write goes out without waiting for more.
pub const HOLD_BYTES_MAX: usize = 256 * 1024;
/// Holds in a row that may run out or fill slower than a sync before
/// holding pauses.
pub const UNPAID_LIMIT: u32 = 2;
/// Durable writes that go out without a hold once holding pauses.
pub const OFF_WRITES: u32 = 128;

/// The WAL task's hold state (see the module docs).
#[derive(Debug)]
pub(crate) struct GroupHold {
    /// The configured bound; zero turns holding off.
    max: Duration,
    /// Holds wait for fewer writers than this.
    writers_below: usize,
    /// Writers resolved or waiting when the last durable operation ended.
    expected: usize,
    /// How long the last durable operation took, at most `max`: a hold
    /// that lasts longer did not pay.
    took: Duration,
    /// How long the current hold may last: twice `took`, at most `max`.
    limit: Duration,
    /// When the current hold began.
    since: Option<Instant>,
    /// Holds in a row that ran out or lasted longer than `took`.
    unpaid_in_row: u32,
    /// Durable writes left to go out without a hold.
    off_for: u32,
}

impl GroupHold {
    /// Holds of at most `max` (zero: never hold), for fewer than
    /// `writers_below` writers.
    pub fn new(max: Duration, writers_below: usize) -> Self {
        GroupHold {
            max,
            writers_below,
            expected: 1,
            took: Duration::ZERO,
            limit: Duration::ZERO,
            since: None,
            unpaid_in_row: 0,
            off_for: 0,
        }
    }

    /// A durable operation completed after `took`: it resolved `resolved`
    /// writers, and `waiting` more wait in the queue or in flight.
    pub fn settled(&mut self, resolved: usize, waiting: usize, took: Duration) {
        self.expected = resolved + waiting;
        self.took = took.min(self.max);
        self.limit = (2 * took).min(self.max);
    }

    /// Whether the writers of the next durable write may wait for more:
    /// holding is on and more writers, but not too many, are expected.
    pub fn active(&self) -> bool {
        !self.max.is_zero() && self.off_for == 0 && 1 < self.expected && self.expected < self.writers_below
    }

    /// How many writers a durable write should cover before it goes out
    /// while holding is [`active`](Self::active).
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// Whether a durable write of `bytes` covering `waiters` writers waits
    /// at `now` (the disk being idle). Starts the hold on the first call.
    pub fn should_hold(&mut self, waiters: usize, bytes: usize, now: Instant) -> bool {
        if !self.active() || waiters >= self.expected || bytes >= HOLD_BYTES_MAX {
            return false;
        }
        let since = *self.since.get_or_insert(now);
        now < since + self.limit
    }

    /// When the current hold ends, if one runs.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.limit)
    }

    /// A durable write covering `waiters` writers goes out at `now`: ends
    /// the hold, if one ran, and returns whether it ran out before the
    /// expected writers came.
    pub fn released(&mut self, waiters: usize, now: Instant) -> Option<bool> {
        self.off_for = self.off_for.saturating_sub(1);
        let since = self.since.take()?;
        let ran_out = waiters < self.expected && now >= since + self.limit;
        let unpaid = ran_out || now > since + self.took;
        if !unpaid {
            self.unpaid_in_row = 0;
        } else {
            self.unpaid_in_row += 1;
            if self.unpaid_in_row >= UNPAID_LIMIT {
                self.unpaid_in_row = 0;
                self.off_for = OFF_WRITES;
            }
        }
        Some(ran_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_micros(200);
    const SYNC: Duration = Duration::from_micros(100);
    const WRITERS_BELOW: usize = 32;

    fn after(start: Instant, micros: u64) -> Instant {
        start + Duration::from_micros(micros)
    }

    #[test]
    fn a_single_writer_never_waits() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let now = Instant::now();
        assert!(!hold.should_hold(1, 100, now), "nothing settled yet");
        hold.settled(1, 0, SYNC);
        assert!(!hold.should_hold(1, 100, now));
        assert_eq!(hold.deadline(), None);
    }

    #[test]
    fn waits_for_the_writers_the_last_sync_saw_within_its_duration() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let start = Instant::now();
        // 8 resolved, 8 more were queued behind them: 16 writers.
        hold.settled(8, 8, SYNC);
        assert!(hold.should_hold(8, 1_000, start));
        assert_eq!(hold.deadline(), Some(after(start, 200)));
        assert!(hold.should_hold(15, 1_900, after(start, 160)));
        assert!(!hold.should_hold(16, 2_000, after(start, 170)), "all are back");
        assert!(!hold.should_hold(9, 1_100, after(start, 200)), "ran out");
        assert!(
            !hold.should_hold(9, HOLD_BYTES_MAX, after(start, 10)),
            "large enough"
        );
    }

    #[test]
    fn the_bound_is_the_smaller_of_the_sync_time_and_the_option() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let start = Instant::now();
        hold.settled(4, 0, Duration::from_millis(5));
        assert!(hold.should_hold(1, 100, start));
        assert_eq!(hold.deadline(), Some(after(start, 200)));
        let mut off = GroupHold::new(Duration::ZERO, WRITERS_BELOW);
        off.settled(4, 0, SYNC);
        assert!(!off.active());
        assert!(!off.should_hold(1, 100, start));
    }

    #[test]
    fn groups_as_large_as_wal_pipeline_min_writers_are_not_held() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let start = Instant::now();
        hold.settled(16, 15, SYNC);
        assert!(hold.active());
        assert!(hold.should_hold(16, 1_600, start));
        hold.settled(16, 16, SYNC);
        assert!(!hold.active());
        assert!(!hold.should_hold(16, 1_600, start));
    }

    #[test]
    fn holds_that_run_out_in_a_row_pause_holding() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let mut now = Instant::now();
        for _ in 0..UNPAID_LIMIT {
            hold.settled(4, 0, SYNC);
            assert!(hold.active());
            assert!(hold.should_hold(1, 100, now));
            now = after(now, 250);
            assert!(!hold.should_hold(1, 100, now));
            assert_eq!(hold.released(1, now), Some(true));
        }
        hold.settled(4, 0, SYNC);
        for _ in 0..OFF_WRITES {
            assert!(!hold.active());
            assert!(!hold.should_hold(1, 100, now));
            assert_eq!(hold.released(1, now), None);
        }
        assert!(hold.active(), "holding resumes after the pause");
        assert!(hold.should_hold(1, 100, now));
    }

    #[test]
    fn holds_that_fill_slower_than_a_sync_pause_holding() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let mut now = Instant::now();
        for _ in 0..UNPAID_LIMIT {
            hold.settled(4, 4, SYNC);
            assert!(hold.active());
            assert!(hold.should_hold(4, 400, now));
            now = after(now, 150);
            assert!(!hold.should_hold(8, 800, now), "all are back");
            assert_eq!(hold.released(8, now), Some(false), "did not run out");
        }
        hold.settled(4, 4, SYNC);
        assert!(!hold.active(), "but took longer than a sync, twice");
    }

    #[test]
    fn a_hold_that_fills_resets_the_run_of_holds_that_ran_out() {
        let mut hold = GroupHold::new(MAX, WRITERS_BELOW);
        let mut now = Instant::now();
        for round in 0..3 * UNPAID_LIMIT {
            hold.settled(4, 0, SYNC);
            assert!(hold.should_hold(1, 100, now));
            if round % 2 == 0 {
                now = after(now, 250);
                assert_eq!(hold.released(1, now), Some(true));
            } else {
                now = after(now, 50);
                assert!(!hold.should_hold(4, 400, now));
                assert_eq!(hold.released(4, now), Some(false));
            }
            assert!(hold.active(), "round {round}: only one ran out in a row");
        }
    }
}
