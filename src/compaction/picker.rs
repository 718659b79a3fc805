//! The compaction picker: which tables to compact next.
//!
//! Scores: level 0 is `tables / l0_compaction_trigger`; level `n >= 1` is
//! `bytes / target`, with the targets of [`LevelTargets`] (static, or
//! dynamic: derived from the size of the data). A level whose target is 0
//! but that holds tables scores `1 + bytes / max_bytes_for_level_base`, so
//! it is drained. The level with the highest score at or above 1 is
//! compacted (the lower level on a tie); the last level is never a source.
//!
//! - Level 0 → base level (level 1 with static targets; with dynamic ones
//!   the highest level with a target, often the last): every level-0 table
//!   plus the base-level tables that overlap their combined user-key range.
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
//! - A compaction skips only empty levels: every level strictly between
//!   `level` and `output_level` holds no table, so no output lands below an
//!   older version of its key.
//! - `overlapping` holds every table of the output level whose user-key
//!   range meets the inputs' combined range, so outputs never overlap a
//!   table left in the output level.
//! - `is_trivial_move` implies exactly one input and no overlapping table.

use std::ops::Bound;
use std::sync::Arc;

use crate::compaction::CompactionOptions;
use crate::compaction::targets::LevelTargets;
use crate::manifest::{NUM_LEVELS, TableMeta};
use crate::version::Version;

/// One compaction: the tables it reads and where its output goes.
#[derive(Debug, Clone)]
pub struct Compaction {
    /// The level compacted from.
    pub level: usize,
    /// The level the outputs go to: the base level from level 0, `level +
    /// 1` from deeper levels; for a manual compaction, the next level below
    /// that holds a table (or the last level), or `level` itself for the
    /// last level.
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

/// The score of every level (`NUM_LEVELS` of them) against `targets` (the
/// [`LevelTargets`] of `version`); at or above 1 means the level needs
/// compaction. The last level's score is always 0: it is never a source.
pub fn scores(version: &Version, options: &CompactionOptions, targets: &LevelTargets) -> Vec<f64> {
    (0..NUM_LEVELS)
        .map(|level| {
            let size_bytes = version.level_size_bytes(level);
            let target_bytes = targets.target_bytes(level);
            if level + 1 == NUM_LEVELS {
                0.0
            } else if level == 0 {
                version.level_len(0) as f64 / options.l0_compaction_trigger.max(1) as f64
            } else if target_bytes == 0 {
                // NOTE: a level that should be empty but is not (the tree
                // shrank, or was written with static targets) is drained,
                // more urgently the more it holds.
                if size_bytes == 0 {
                    0.0
                } else {
                    1.0 + size_bytes as f64 / options.max_bytes_for_level_base.max(1) as f64
                }
            } else {
                size_bytes as f64 / target_bytes as f64
            }
        })
        .collect()
}

/// The compaction the tree needs most, if any level scores at least 1.
pub fn pick(version: &Version, options: &CompactionOptions) -> Option<Compaction> {
    let targets = LevelTargets::new(version, options);
    let mut best: Option<(usize, f64)> = None;
    for (level, score) in scores(version, options, &targets).into_iter().enumerate() {
        if score >= 1.0 && best.is_none_or(|(_, best)| score > best) {
            best = Some((level, score));
        }
    }
    let (level, _) = best?;
    debug_assert!(level + 1 < NUM_LEVELS);
    let tables = version.levels.get(level)?;
    if level == 0 {
        return Some(build(version, 0, targets.base_level, tables.clone()));
    }
    let inputs = vec![Arc::clone(min_overlap_table(version, level)?)];
    Some(build(version, level, level + 1, inputs))
}

/// The compaction of every table of `level` that overlaps the user-key
/// range `start..end`, into the next level below that holds a table (the
/// last level if none does); `None` if no table overlaps.
///
/// Level 0: if any table overlaps, every level-0 table is taken (see the
/// module invariants). The last level is compacted into itself, as RocksDB
/// does for its bottommost level: the tables are rewritten in place, which
/// purges overwritten versions and tombstones.
///
/// NOTE: skipping the empty levels (with dynamic targets, all the levels
/// above the base level) leaves the same tree as passing through each of
/// them, without rewriting the range once per level.
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
    let last = NUM_LEVELS - 1;
    let output_level = if level == last {
        last
    } else {
        ((level + 1)..NUM_LEVELS)
            .find(|&below| version.level_len(below) > 0)
            .unwrap_or(last)
    };
    Some(build(version, level, output_level, inputs))
}

/// Bytes compaction is behind: level 0 once it reaches its trigger (its
/// bytes, plus the base level they are merged into), then for each level
/// from the base level down, the bytes above its target (including what
/// the level above pushes into it) times the rewrite of the level below
/// they cause. RocksDB's estimate (`EstimateCompactionBytesNeeded`), with
/// the targets the picker scores by, so writers are throttled by the same
/// tree shape that compaction works towards.
pub fn pending_compaction_bytes(version: &Version, options: &CompactionOptions) -> u64 {
    let targets = LevelTargets::new(version, options);
    let mut pending: u64 = 0;
    let mut incoming: u64 = 0;
    if version.level_len(0) >= options.l0_compaction_trigger.max(1) {
        incoming = version.level_size_bytes(0);
        // NOTE: level-0 tables each span most of the key space, so their
        // compaction rewrites about the whole base level, as a deeper
        // level's excess rewrites its share of the level below.
        let base = version.level_size_bytes(targets.base_level);
        pending = incoming.saturating_add(base);
    }
    for level in targets.base_level..NUM_LEVELS - 1 {
        let own = version.level_size_bytes(level);
        let target = targets.target_bytes(level);
        if own == 0 && target == 0 {
            // NOTE: an empty level that should stay empty (below a level
            // being drained): what comes in passes through by trivial moves.
            continue;
        }
        let size = own.saturating_add(incoming);
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
    assert!(
        output_level == level || (level < output_level && output_level < NUM_LEVELS),
        "compaction from level {level} into level {output_level}"
    );
    assert!(
        ((level + 1)..output_level).all(|between| version.level_len(between) == 0),
        "a compaction skips only empty levels"
    );
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
    // NOTE: a table with range tombstones is rewritten on its way to the
    // bottom, where the rewrite drops tombstones that hide nothing.
    let is_trivial_move = output_level != level
        && inputs.len() == 1
        && overlapping.is_empty()
        && (level != 0 || version.level_len(0) == 1)
        && !(is_bottommost && inputs.iter().any(|table| table.has_range_dels));
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
