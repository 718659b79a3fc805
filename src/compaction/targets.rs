//! Level targets: how many bytes each level below 0 should hold, and the
//! base level, the one level 0 compacts into.
//!
//! Two modes, chosen by [`CompactionOptions::dynamic_level_bytes`]:
//!
//! - **Static** (LevelDB's): level `n >= 1` may hold
//!   `max_bytes_for_level_base * level_size_multiplier^(n-1)`, and level 0
//!   compacts into level 1.
//! - **Dynamic** (the idea of RocksDB's `level_compaction_dynamic_level_bytes`):
//!   targets are derived from the data, bottom up. The last level's target
//!   is the size of the largest level; each level above gets the target of
//!   the level below divided by the multiplier, as long as that is at least
//!   `max_bytes_for_level_base`. The levels above that get target 0: they
//!   should hold nothing. The highest level with a target is where level 0
//!   compacts to, unless a level above it still holds tables; then that
//!   level is the base level until it has been drained.
//!
//! NOTE: why dynamic. In a leveled tree the levels above the last hold the
//! newer versions of keys that the last level also holds, so the stale bytes
//! are about the bytes of the upper levels. With static targets the last
//! non-empty level is rarely `multiplier` times the level above it (500 MiB
//! in a default tree: 256 MiB in level 1, the rest in level 2), so up to
//! half the data can be stale. With dynamic targets every level is a
//! `multiplier`-th of the one below, so the upper levels hold at most about
//! `1 / (multiplier - 1)` of the last (11% at 10), level 0 aside.
//!
//! NOTE: unlike RocksDB, whose base level's target lies between
//! `base / multiplier` and `base` (and is then raised to `base`), a level
//! whose target would fall below `base` is left empty: the base level's
//! target is at least `base` (unless it is the last level). A tree smaller
//! than `base * multiplier` is level 0 plus the last level. Level 0
//! compactions rewrite a larger base level, but each byte they move lands
//! in its final level at once instead of being written into a small base
//! level first and rewritten into the next one.
//!
//! Ownership: a pure function of a `Version` and the options, computed by
//! the picker for each pick and for each version's pending-bytes estimate.
//!
//! Invariants:
//! - `1 <= base_level < NUM_LEVELS`, and every level in `1..base_level`
//!   holds no table: level 0's outputs may skip those levels without
//!   landing below an older version of a key.
//! - Static: every target of level 1 and below is at least 1.
//! - Dynamic: a level above the last has target 0 or at least
//!   `max_bytes_for_level_base`; targets grow by the multiplier (rounded
//!   down) from one non-zero level to the next.

use crate::compaction::CompactionOptions;
use crate::manifest::NUM_LEVELS;
use crate::version::Version;

/// The byte targets of one version's levels and its base level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelTargets {
    /// The level that level 0 compacts into.
    pub base_level: usize,
    /// Target bytes per level; level 0's (scored by table count) is 0. A
    /// level with target 0 should hold nothing: if it holds tables, they
    /// are moved down.
    target_bytes: [u64; NUM_LEVELS],
}

impl LevelTargets {
    /// The targets of `version` under `options`.
    pub fn new(version: &Version, options: &CompactionOptions) -> Self {
        let targets = if options.dynamic_level_bytes {
            Self::dynamic(version, options)
        } else {
            Self::fixed(options)
        };
        assert!(
            (1..NUM_LEVELS).contains(&targets.base_level),
            "base level {} out of range",
            targets.base_level
        );
        debug_assert!(
            (1..targets.base_level).all(|level| version.level_len(level) == 0),
            "no table lies between level 0 and the base level"
        );
        targets
    }

    /// The target bytes of `level`; 0 for level 0 and for a level that
    /// should be empty.
    pub fn target_bytes(&self, level: usize) -> u64 {
        self.target_bytes.get(level).copied().unwrap_or(0)
    }

    /// Static targets: `base * multiplier^(level-1)`, saturating, at
    /// least 1.
    fn fixed(options: &CompactionOptions) -> Self {
        let mut target_bytes = [0; NUM_LEVELS];
        let mut target = options.max_bytes_for_level_base.max(1);
        for slot in target_bytes.iter_mut().skip(1) {
            *slot = target;
            target = target.saturating_mul(options.level_size_multiplier);
        }
        LevelTargets {
            base_level: 1,
            target_bytes,
        }
    }

    /// Dynamic targets; see the module docs.
    fn dynamic(version: &Version, options: &CompactionOptions) -> Self {
        let last = NUM_LEVELS - 1;
        let base_bytes = options.max_bytes_for_level_base.max(1);
        let multiplier = options.level_size_multiplier.max(2);
        // NOTE: the largest level, not the last one: a store written with
        // static targets may hold most of its data in a level above the
        // last, and its size is what the last level will hold once the
        // upper levels have been moved down.
        let largest = (1..NUM_LEVELS)
            .map(|level| version.level_size_bytes(level))
            .max()
            .unwrap_or(0);
        let mut target_bytes = [0; NUM_LEVELS];
        let mut ideal_base = last;
        let mut target = largest;
        for (level, slot) in target_bytes.iter_mut().enumerate().skip(1).rev() {
            if level < last && target < base_bytes {
                break;
            }
            *slot = target;
            ideal_base = level;
            target /= multiplier;
        }
        // NOTE: a level above the ideal base that still holds tables (the
        // tree shrank, or was written with static targets) stays the base
        // level until it is drained: level 0's newer versions must not land
        // below it.
        let first_non_empty = (1..NUM_LEVELS)
            .find(|&level| version.level_len(level) > 0)
            .unwrap_or(last);
        LevelTargets {
            base_level: ideal_base.min(first_non_empty),
            target_bytes,
        }
    }
}
