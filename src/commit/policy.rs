//! The WAL task's choice of handle for a durable write, as a pure function
//! of what it observed.
//!
//! The task gathers an [`Observed`] (what is in flight, the segment, the
//! hold) and asks [`plan`] how to write the group at the front of its
//! pending queue. Whether to hold a durable write for more writers is
//! [`super::hold`]'s, which keeps state across syncs.
//!
//! Nothing here does I/O or takes a lock, so every rule is unit-tested
//! below.

/// What the WAL task sees when it is about to start a durable write.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Observed {
    /// Durability operations in flight (0 or 1).
    pub inflight: usize,
    /// How many writers a group is expected to cover (0 before the first
    /// sync completed).
    pub hold_expected: usize,
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

/// What to do with the group at the front of the pending queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The handle for a durable write of the group started now.
    pub handle: DurableWrite,
}

/// Few enough writers that latency, not throughput, is what they wait for.
fn few_writers(observed: &Observed) -> bool {
    // NOTE: not before the first operation completes (nothing is known of
    // the writers yet).
    (1..=observed.pipeline_min_writers / 2).contains(&observed.hold_expected)
}

/// The one decision about a group: direct only with nothing else in
/// flight and for few writers
/// (`docs/decisions/0003-wal-direct-writes.md`).
pub(crate) fn plan(observed: &Observed) -> Plan {
    Plan {
        handle: if observed.direct_available && observed.inflight == 0 && few_writers(observed) {
            DurableWrite::Direct
        } else {
            DurableWrite::Dsync
        },
    }
}

#[cfg(test)]
mod tests {
    use super::{DurableWrite, Observed, plan};

    fn idle_disk(expected_writers: usize) -> Observed {
        Observed {
            hold_expected: expected_writers,
            pipeline_min_writers: 32,
            direct_available: true,
            ..Observed::default()
        }
    }

    #[test]
    fn few_writers_on_an_idle_disk_write_directly() {
        assert_eq!(plan(&idle_disk(4)).handle, DurableWrite::Direct);
        assert_eq!(
            plan(&idle_disk(0)).handle,
            DurableWrite::Dsync,
            "before the first sync"
        );
        assert_eq!(
            plan(&idle_disk(16)).handle,
            DurableWrite::Direct,
            "half of 32 is few"
        );
        assert_eq!(
            plan(&idle_disk(17)).handle,
            DurableWrite::Dsync,
            "17 of 32 is not few"
        );
        let no_direct = Observed {
            direct_available: false,
            ..idle_disk(4)
        };
        assert_eq!(plan(&no_direct).handle, DurableWrite::Dsync);
        let busy = Observed {
            inflight: 1,
            ..idle_disk(4)
        };
        assert_eq!(plan(&busy).handle, DurableWrite::Dsync, "never beside another");
    }
}
