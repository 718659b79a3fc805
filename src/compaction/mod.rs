//! Leveled compaction: what to compact ([`picker`]) and doing it ([`job`]).
//!
//! - [`targets`]: the byte target of each level and the base level that
//!   level 0 compacts into, static (×10 per level from level 1) or dynamic
//!   (derived from the size of the last level, upwards).
//! - [`picker`]: scores each level (level 0 by table count, levels 1 and
//!   below by bytes against their targets) and picks the tables of one
//!   compaction; also the picks of a manual `compact_range` and the
//!   pending-bytes estimate that throttles writers.
//! - [`job`]: merges the input tables into new output tables, dropping the
//!   versions no reader can see, split at a target size, yielding between
//!   blocks and optionally rate limited ([`rate_limiter`]).
//!
//! Ownership: the store's compaction task calls the picker on the current
//! version, runs one job at a time, then commits the outputs and deletions
//! with one manifest edit and deletes the replaced files. This module writes
//! only new table files; it never edits the manifest or deletes a file that
//! a version references.
//!
//! Invariants:
//! - A compaction's inputs are all of level 0's tables (when level 0 is the
//!   source), or whole tables of one level `n >= 1`, plus every table of
//!   the output level that overlaps them, so the outputs replace a
//!   contiguous, self-contained key range.
//! - Outputs are sorted, non-overlapping, and never split two versions of
//!   one user key between tables.
//! - For every user key and every live snapshot (and the latest state), the
//!   version a reader there saw before the job is the one it sees after.

pub mod job;
pub mod picker;
pub mod rate_limiter;
pub mod targets;

#[cfg(test)]
mod tests;

/// How the tree is kept in shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionOptions {
    /// Level 0 is compacted into the base level once it holds this many
    /// tables. Default: 4.
    pub l0_compaction_trigger: usize,
    /// Static targets: the byte budget of level 1. Dynamic targets: the
    /// smallest target a level above the last may have. Default: 256 MiB.
    pub max_bytes_for_level_base: u64,
    /// Each level gets this many times the budget of the level above.
    /// Default: 10.
    pub level_size_multiplier: u64,
    /// Derive the level targets from the size of the data (see
    /// [`targets`]) instead of from level 1 down. Default: `true`.
    pub dynamic_level_bytes: bool,
    /// A compaction closes an output table once it reaches this size (at a
    /// user-key boundary). Default: 64 MiB.
    pub target_file_size_bytes: u64,
    /// Most bytes per second that compaction jobs write; `None` for no
    /// limit. Default: `None`.
    pub rate_limit_bytes_per_sec: Option<u64>,
    /// How values are folded, expired and filtered. Default: no merge
    /// operator, the system clock, no filter.
    pub values: ValuePolicy,
}

/// What compaction does to values beyond dropping shadowed versions:
/// folding merge operands, dropping expired values, the user's filter.
#[derive(Debug, Clone)]
pub struct ValuePolicy {
    /// The merge operator and the clock.
    pub resolver: crate::merge::Resolver,
    /// The user's filter, if any.
    pub filter: Option<std::sync::Arc<dyn crate::compaction_filter::CompactionFilter>>,
}

impl Default for ValuePolicy {
    fn default() -> Self {
        ValuePolicy {
            resolver: crate::merge::Resolver {
                operator: None,
                clock: crate::clock::system(),
            },
            filter: None,
        }
    }
}

/// Two policies are equal when they share their operator, clock and
/// filter (`Arc`s compared by address).
impl PartialEq for ValuePolicy {
    fn eq(&self, other: &Self) -> bool {
        fn same<T: ?Sized>(a: Option<&std::sync::Arc<T>>, b: Option<&std::sync::Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        same(self.resolver.operator.as_ref(), other.resolver.operator.as_ref())
            && std::sync::Arc::ptr_eq(&self.resolver.clock, &other.resolver.clock)
            && same(self.filter.as_ref(), other.filter.as_ref())
    }
}

impl Eq for ValuePolicy {}

/// The compaction picker's and job's view of the store's options.
impl From<&crate::options::Options> for CompactionOptions {
    fn from(options: &crate::options::Options) -> Self {
        CompactionOptions {
            l0_compaction_trigger: options.l0_compaction_trigger,
            max_bytes_for_level_base: options.max_bytes_for_level_base,
            level_size_multiplier: options.level_size_multiplier,
            dynamic_level_bytes: options.dynamic_level_bytes,
            target_file_size_bytes: options.target_file_size_bytes,
            rate_limit_bytes_per_sec: options.compaction_rate_limit_bytes_per_sec,
            values: ValuePolicy {
                resolver: options.resolver(),
                filter: options.compaction_filter.clone(),
            },
        }
    }
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            l0_compaction_trigger: 4,
            max_bytes_for_level_base: 256 << 20,
            level_size_multiplier: 10,
            dynamic_level_bytes: true,
            target_file_size_bytes: 64 << 20,
            rate_limit_bytes_per_sec: None,
            values: ValuePolicy::default(),
        }
    }
}
