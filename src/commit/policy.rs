//! The WAL task's decisions, as pure functions of what it observed.
//!
//! The task gathers an [`Observed`] (its in-flight operation, the run of
//! chunks at the front of its pending queue, the segment, the hold) and
//! asks [`plan`] what to do with that run; after each completed sync it
//! asks [`insert_mode`] where durable writers should insert into the
//! memtable next. Whether to hold a durable write for more writers is
//! [`super::hold`]'s, which keeps state across syncs.
//!
//! Nothing here does I/O or takes a lock, so every rule is unit-tested
//! below.

use crate::commit::queue::InsertMode;

/// What the WAL task sees when it considers the run of chunks at the front
/// of its pending queue.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Observed {
    /// Durability operations in flight (0, 1, or 2 `O_DSYNC` writes).
    pub inflight: usize,
    /// The oldest one in flight is an `O_DSYNC` write (not an fdatasync).
    pub inflight_is_dsync_write: bool,
    /// Writers the oldest one in flight covers.
    pub inflight_waiters: usize,
    /// Plain writes of the segment wait for an fdatasync.
    pub segment_dirty: bool,
    /// The run lies in the segment being written (not the next one).
    pub run_in_current_segment: bool,
    /// Bytes and writers of the run (as `take_run` will merge it).
    pub run_bytes: usize,
    pub run_waiters: usize,
    /// Writing the run would first need the prefill zeros synced.
    pub run_needs_prefill: bool,
    /// Holding for more writers is on, and how many a hold waits for.
    pub hold_active: bool,
    pub hold_expected: usize,
    /// The last operation covered many writers: write at once, sync after.
    pub pipelining: bool,
    /// [`crate::Options::wal_pipeline_min_writers`].
    pub pipeline_min_writers: usize,
    /// The segment has an `O_DIRECT` handle.
    pub direct_available: bool,
}

/// Which handle a durable write goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurableWrite {
    /// `O_DIRECT | O_DSYNC`, rewriting the last partly filled block: the
    /// kernel issues it from the submitting thread.
    Direct,
    /// `O_DSYNC` through the page cache.
    Dsync,
}

/// What to do with the run at the front of the pending queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// With one `O_DSYNC` write in flight, queue this run as a second one
    /// now, instead of letting it collect until the first completes.
    pub overlap: bool,
    /// The handle for a durable write of the run started now.
    pub handle: DurableWrite,
}

/// Few enough writers that latency, not throughput, is what they wait for.
fn few_writers(observed: &Observed) -> bool {
    // NOTE: not before the first operation completes (nothing is known of
    // the writers yet).
    (1..=observed.pipeline_min_writers / 2).contains(&observed.hold_expected)
}

/// The one decision about a run. See the rules on each field of [`Plan`].
pub(crate) fn plan(observed: &Observed) -> Plan {
    Plan {
        overlap: may_overlap(observed),
        handle: if observed.direct_available && observed.inflight == 0 && few_writers(observed) {
            DurableWrite::Direct
        } else {
            DurableWrite::Dsync
        },
    }
}

/// A second `O_DSYNC` write may follow the one in flight: the kernel's
/// io_uring worker runs writes to one file in order, so the disk goes from
/// one to the next with no round trip through the WAL task between them
/// (`docs/decisions/0004-wal-overlapped-second-write.md`). Only when it is
/// worth a flush of its own: at least as many writers as the one in flight
/// and, while holding is on, as a hold waits for (else the two would split
/// the writers in halves again). Never across a segment, over unsynced
/// plain writes, or where the prefill would need a sync first.
fn may_overlap(observed: &Observed) -> bool {
    observed.inflight == 1
        && observed.inflight_is_dsync_write
        && !observed.segment_dirty
        && observed.run_in_current_segment
        && observed.run_bytes > 0
        && !observed.run_needs_prefill
        && observed.run_waiters >= observed.inflight_waiters
        && (!observed.hold_active || observed.run_waiters >= observed.hold_expected)
}

/// Where durable writers insert into the memtable after a sync completed:
/// few held writers leave their inserts to the WAL task, which does them
/// while it holds anyway; with large groups (pipelining) writers insert
/// after the commit lock, to keep it short; in between, under it
/// (`docs/decisions/0007-inserts-left-to-wal-task.md`,
/// `docs/decisions/0008-inserts-after-commit-lock.md`).
pub(crate) fn insert_mode(observed: &Observed) -> InsertMode {
    if observed.hold_active && few_writers(observed) {
        InsertMode::LeftToWal
    } else if observed.pipelining {
        InsertMode::AfterLock
    } else {
        InsertMode::UnderLock
    }
}

#[cfg(test)]
mod tests {
    use super::{DurableWrite, Observed, insert_mode, plan};
    use crate::commit::queue::InsertMode;

    fn idle_disk(expected_writers: usize) -> Observed {
        Observed {
            run_in_current_segment: true,
            run_bytes: 4096,
            run_waiters: expected_writers,
            hold_expected: expected_writers,
            pipeline_min_writers: 32,
            direct_available: true,
            ..Observed::default()
        }
    }

    #[test]
    fn few_writers_on_an_idle_disk_write_directly() {
        let observed = idle_disk(4);
        assert_eq!(plan(&observed).handle, DurableWrite::Direct);
        assert!(!plan(&observed).overlap, "nothing in flight to overlap");
        let unknown = idle_disk(0);
        assert_eq!(
            plan(&unknown).handle,
            DurableWrite::Dsync,
            "before the first sync"
        );
        assert_eq!(
            plan(&idle_disk(16)).handle,
            DurableWrite::Direct,
            "half of 32 is few"
        );
        let many = idle_disk(17);
        assert_eq!(plan(&many).handle, DurableWrite::Dsync, "17 of 32 is not few");
        let no_direct = Observed {
            direct_available: false,
            ..idle_disk(4)
        };
        assert_eq!(plan(&no_direct).handle, DurableWrite::Dsync);
    }

    #[test]
    fn a_second_write_overlaps_only_when_it_covers_as_many_writers() {
        let running = Observed {
            inflight: 1,
            inflight_is_dsync_write: true,
            inflight_waiters: 8,
            ..idle_disk(8)
        };
        assert!(plan(&running).overlap);
        assert_eq!(
            plan(&running).handle,
            DurableWrite::Dsync,
            "never direct beside another"
        );
        for blocked in [
            Observed {
                run_waiters: 7,
                ..running
            },
            Observed {
                segment_dirty: true,
                ..running
            },
            Observed {
                inflight_is_dsync_write: false,
                ..running
            },
            Observed {
                run_in_current_segment: false,
                ..running
            },
            Observed {
                run_needs_prefill: true,
                ..running
            },
            Observed {
                inflight: 2,
                ..running
            },
            Observed {
                run_bytes: 0,
                ..running
            },
            Observed {
                hold_active: true,
                hold_expected: 12,
                ..running
            },
        ] {
            assert!(!plan(&blocked).overlap, "{blocked:?}");
        }
    }

    #[test]
    fn insert_mode_follows_the_group_size() {
        let held_few = Observed {
            hold_active: true,
            ..idle_disk(4)
        };
        assert_eq!(insert_mode(&held_few), InsertMode::LeftToWal);
        let pipelining = Observed {
            pipelining: true,
            ..idle_disk(200)
        };
        assert_eq!(insert_mode(&pipelining), InsertMode::AfterLock);
        assert_eq!(insert_mode(&idle_disk(16)), InsertMode::UnderLock);
        let held_many = Observed {
            hold_active: true,
            ..idle_disk(20)
        };
        assert_eq!(insert_mode(&held_many), InsertMode::UnderLock);
    }
}
