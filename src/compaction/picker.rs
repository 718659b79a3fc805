//! The compaction picker: which tables to compact next.
//!
//! Scores: level 0 is `tables / l0_compaction_trigger`; level `n >= 1` is
//! `bytes / (max_bytes_for_level_base * level_size_multiplier^(n-1))`. The
//! level with the highest score at or above 1 is compacted (the lower level
//! on a tie); the last level is never a source.
//!
//! - Level 0 → 1: every level-0 table plus the level-1 tables that overlap
//!   their combined user-key range.
//! - Level `n` → `n+1`: the one table of level `n` whose overlap with level
//!   `n+1` is smallest relative to its own size, plus that overlap.
//!
//! Ownership: pure functions of a `Version`; the compaction task calls them
//! with the current version, and the store's write path calls
//! [`pending_compaction_bytes`] to throttle writers.
//!
//! Invariants:
//! - A pick from level 0 takes every level-0 table: level-0 tables overlap,
//!   and moving a newer one below an older one that stays would let the
//!   older version shadow the newer.
//! - `overlapping` holds every table of the output level whose user-key
//!   range meets the inputs' combined range, so outputs never overlap a
//!   table left in the output level.
//! - `is_trivial_move` implies exactly one input and no overlapping table.

use std::ops::Bound;
use std::sync::Arc;

use crate::compaction::CompactionOptions;
use crate::manifest::{NUM_LEVELS, TableMeta};
use crate::version::Version;

/// One compaction: the tables it reads and where its output goes.
#[derive(Debug, Clone)]
pub struct Compaction {
    /// The level compacted from.
    pub level: usize,
    /// The level the outputs go to: `level + 1`, or `level` itself for a
    /// manual compaction of the last level.
    pub output_level: usize,
    /// Tables of `level` to compact (level 0: newest first; otherwise
    /// sorted by key).
    pub inputs: Vec<Arc<TableMeta>>,
    /// Tables of `output_level` that overlap `inputs`, sorted by key; they
    /// are rewritten too. Empty when `output_level == level`.
    pub overlapping: Vec<Arc<TableMeta>>,
    /// True when the one input can be relinked to `output_level` without
    /// being rewritten: no job runs, the edit moves the table.
    pub is_trivial_move: bool,
    /// True when no level below `output_level` holds a table overlapping
    /// the compaction's key range: nothing older can hide behind a
    /// tombstone, so the job may drop tombstones no snapshot needs.
    pub is_bottommost: bool,
}

impl Compaction {
    /// Every table the compaction reads: inputs, then overlapping.
    pub fn all_tables(&self) -> impl Iterator<Item = &Arc<TableMeta>> {
        self.inputs.iter().chain(&self.overlapping)
    }

    /// Bytes of every table the compaction reads.
    pub fn input_size_bytes(&self) -> u64 {
        self.all_tables().map(|table| table.size_bytes).sum()
    }
}

/// The byte budget of `level >= 1`: `base * multiplier^(level-1)`,
/// saturating.
pub fn level_target_bytes(options: &CompactionOptions, level: usize) -> u64 {
    debug_assert!(level >= 1, "level 0 is scored by table count");
    let mut target = options.max_bytes_for_level_base;
    for _ in 1..level {
        target = target.saturating_mul(options.level_size_multiplier);
    }
    target.max(1)
}

/// The score of every level (`NUM_LEVELS` of them); at or above 1 means the
/// level needs compaction. The last level's score is always 0: it is never
/// a source.
pub fn scores(version: &Version, options: &CompactionOptions) -> Vec<f64> {
    (0..NUM_LEVELS)
        .map(|level| {
            if level + 1 == NUM_LEVELS {
                0.0
            } else if level == 0 {
                version.level_len(0) as f64 / options.l0_compaction_trigger.max(1) as f64
            } else {
                version.level_size_bytes(level) as f64 / level_target_bytes(options, level) as f64
            }
        })
        .collect()
}

/// The compaction the tree needs most, if any level scores at least 1.
pub fn pick(version: &Version, options: &CompactionOptions) -> Option<Compaction> {
    let mut best: Option<(usize, f64)> = None;
    for (level, score) in scores(version, options).into_iter().enumerate() {
        if score >= 1.0 && best.is_none_or(|(_, best)| score > best) {
            best = Some((level, score));
        }
    }
    let (level, _) = best?;
    debug_assert!(level + 1 < NUM_LEVELS);
    let tables = version.levels.get(level)?;
    let inputs = if level == 0 {
        tables.clone()
    } else {
        vec![Arc::clone(min_overlap_table(version, level)?)]
    };
    Some(build(version, level, level + 1, inputs))
}

/// The compaction of every table of `level` that overlaps the user-key
/// range `start..end`, into `level + 1`; `None` if no table overlaps.
///
/// Level 0: if any table overlaps, every level-0 table is taken (see the
/// module invariants). The last level is compacted into itself, as RocksDB
/// does for its bottommost level: the tables are rewritten in place, which
/// purges overwritten versions and tombstones.
pub fn pick_range(
    version: &Version,
    level: usize,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
) -> Option<Compaction> {
    let tables = version.levels.get(level)?;
    let touched = |table: &&Arc<TableMeta>| overlaps_range(table, start, end);
    if !tables.iter().any(|table| touched(&table)) {
        return None;
    }
    let inputs: Vec<Arc<TableMeta>> = if level == 0 {
        tables.clone()
    } else {
        tables.iter().filter(touched).cloned().collect()
    };
    let output_level = (level + 1).min(NUM_LEVELS - 1);
    Some(build(version, level, output_level, inputs))
}

/// Bytes compaction is behind: for each level, the bytes above its budget
/// (including what the level above pushes into it) times the rewrite of
/// the level below they cause, plus level 0 once it reaches its trigger.
/// RocksDB's estimate (`EstimateCompactionBytesNeeded`).
pub fn pending_compaction_bytes(version: &Version, options: &CompactionOptions) -> u64 {
    let mut pending: u64 = 0;
    let mut incoming: u64 = 0;
    if version.level_len(0) >= options.l0_compaction_trigger.max(1) {
        incoming = version.level_size_bytes(0);
        pending = pending.saturating_add(incoming);
    }
    for level in 1..NUM_LEVELS - 1 {
        let own = version.level_size_bytes(level);
        let size = own.saturating_add(incoming);
        let target = level_target_bytes(options, level);
        if size <= target {
            incoming = 0;
            continue;
        }
        let excess = size - target;
        // Each byte pushed down rewrites about `below / own` bytes of the
        // level below, plus itself.
        let below = version.level_size_bytes(level + 1);
        let fanout = if own == 0 { 0.0 } else { below as f64 / own as f64 };
        let cost = (excess as f64 * (fanout + 1.0)).min(u64::MAX as f64) as u64;
        pending = pending.saturating_add(cost);
        incoming = excess;
    }
    pending
}

/// Assembles a compaction of `inputs` (tables of `level`) into
/// `output_level`.
fn build(version: &Version, level: usize, output_level: usize, inputs: Vec<Arc<TableMeta>>) -> Compaction {
    assert!(!inputs.is_empty(), "a compaction has inputs");
    assert!(output_level == level || output_level == level + 1);
    let Some((smallest, largest)) = user_key_range(&inputs) else {
        unreachable!("inputs are not empty");
    };
    let overlapping = if output_level == level {
        Vec::new()
    } else {
        overlapping_tables(version, output_level, smallest, largest)
    };
    let (smallest, largest) =
        user_key_range(inputs.iter().chain(&overlapping)).unwrap_or((smallest, largest));
    let is_bottommost = ((output_level + 1)..NUM_LEVELS)
        .all(|below| overlapping_tables(version, below, smallest, largest).is_empty());
    let is_trivial_move = output_level != level
        && inputs.len() == 1
        && overlapping.is_empty()
        && (level != 0 || version.level_len(0) == 1);
    Compaction {
        level,
        output_level,
        inputs,
        overlapping,
        is_trivial_move,
        is_bottommost,
    }
}

/// The smallest and largest user keys of `tables`; `None` if empty.
fn user_key_range<'a>(tables: impl IntoIterator<Item = &'a Arc<TableMeta>>) -> Option<(&'a [u8], &'a [u8])> {
    tables.into_iter().fold(None, |range, table| {
        let (smallest, largest) = (table.smallest.user_key.as_ref(), table.largest.user_key.as_ref());
        Some(match range {
            None => (smallest, largest),
            Some((low, high)) => (low.min(smallest), high.max(largest)),
        })
    })
}

/// The tables of `level` whose user-key range meets `smallest..=largest`,
/// in the level's order.
fn overlapping_tables(
    version: &Version,
    level: usize,
    smallest: &[u8],
    largest: &[u8],
) -> Vec<Arc<TableMeta>> {
    let Some(tables) = version.levels.get(level) else {
        return Vec::new();
    };
    let meets = |table: &&Arc<TableMeta>| {
        table.smallest.user_key.as_ref() <= largest && smallest <= table.largest.user_key.as_ref()
    };
    if level == 0 {
        return tables.iter().filter(meets).cloned().collect();
    }
    // Sorted and non-overlapping: binary search to the first table ending
    // at or after `smallest`, then take tables while they start in range.
    let first = tables.partition_point(|table| table.largest.user_key.as_ref() < smallest);
    tables
        .iter()
        .skip(first)
        .take_while(|table| table.smallest.user_key.as_ref() <= largest)
        .cloned()
        .collect()
}

/// True when `table`'s user-key range meets `start..end`.
fn overlaps_range(table: &TableMeta, start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    let smallest = table.smallest.user_key.as_ref();
    let largest = table.largest.user_key.as_ref();
    let below_end = match end {
        Bound::Unbounded => true,
        Bound::Included(end) => smallest <= end,
        Bound::Excluded(end) => smallest < end,
    };
    let above_start = match start {
        Bound::Unbounded => true,
        Bound::Included(start) => start <= largest,
        Bound::Excluded(start) => start < largest,
    };
    below_end && above_start
}

/// The table of `level >= 1` whose overlap with `level + 1` is smallest
/// relative to its own size (the first such on a tie).
///
/// NOTE: RocksDB's default (`kMinOverlappingRatio`): of all the tables
/// that could go down, the one that rewrites the fewest bytes of the level
/// below per byte it moves, which keeps write amplification low without
/// the per-level cursor a round robin needs.
fn min_overlap_table(version: &Version, level: usize) -> Option<&Arc<TableMeta>> {
    let tables = version.levels.get(level)?;
    let ratio = |table: &TableMeta| -> u128 {
        let overlap: u64 = overlapping_tables(
            version,
            level + 1,
            table.smallest.user_key.as_ref(),
            table.largest.user_key.as_ref(),
        )
        .iter()
        .map(|below| below.size_bytes)
        .sum();
        (u128::from(overlap) << 20) / u128::from(table.size_bytes.max(1))
    };
    tables
        .iter()
        .map(|table| (ratio(table), table))
        .min_by_key(|(ratio, _)| *ratio)
        .map(|(_, table)| table)
}
