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
    /// The last durable write went through the `O_DIRECT` handle.
    pub last_direct: bool,
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

/// Few enough writers for the direct handle: up to `pipeline_min_writers`
/// to switch to it, up to four times as many to stay on it. The gap keeps
/// a load near one bound from switching handles back and forth: a
/// page-cache write after a direct one reads the tail block back from the
/// disk.
fn few_writers(observed: &Observed) -> bool {
    let most = if observed.last_direct {
        4 * observed.pipeline_min_writers
    } else {
        observed.pipeline_min_writers
    };
    // NOTE: not before the first operation completes (nothing is known of
    // the writers yet).
    (1..=most).contains(&observed.hold_expected)
}

/// The one decision about a group: direct only with nothing else in
/// flight and for few writers
/// (`docs/decisions/0003-wal-direct-writes.md`,
/// `docs/decisions/0025-direct-writes-switch-with-a-gap.md`).
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
            plan(&idle_disk(32)).handle,
            DurableWrite::Direct,
            "32 of 32 is few"
        );
        assert_eq!(
            plan(&idle_disk(33)).handle,
            DurableWrite::Dsync,
            "33 is not few enough to switch to direct"
        );
        let on_direct = |writers| Observed {
            last_direct: true,
            ..idle_disk(writers)
        };
        assert_eq!(
            plan(&on_direct(128)).handle,
            DurableWrite::Direct,
            "a direct load stays direct up to four times 32"
        );
        assert_eq!(plan(&on_direct(129)).handle, DurableWrite::Dsync);
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
