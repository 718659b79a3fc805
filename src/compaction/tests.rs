//! Picker on hand-built versions; jobs on the simulated disk against a
//! model of the drop rules written as "what each reader sees".

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::CompactionOptions;
use super::job::{self, JobContext, JobOutput, RateLimiter};
use super::picker::{self, Compaction};
use super::targets::LevelTargets;
use crate::filename::table_path;
use crate::io::sim::SimFs;
use crate::io::{Fs, OpenMode};
use crate::key::{InternalKey, MAX_SEQNO, SeqNo, ValueKind};
use crate::manifest::{NUM_LEVELS, TableMeta};
use crate::sst::{ReadStats, TableBuilder, TableCache, TableOptions};
use crate::test_rng::Rng;
use crate::version::Version;

// ---------------------------------------------------------------- picker

/// A table of `size` bytes over user keys `smallest..=largest`.
fn meta(number: u64, smallest: &str, largest: &str, size: u64) -> Arc<TableMeta> {
    Arc::new(TableMeta {
        number,
        size_bytes: size,
        smallest: InternalKey::new(Bytes::from(smallest.to_owned()), number * 10 + 1, ValueKind::Put),
        largest: InternalKey::new(Bytes::from(largest.to_owned()), number * 10, ValueKind::Put),
        smallest_seqno: number * 10,
        largest_seqno: number * 10 + 1,
        has_range_dels: false,
        open: crate::sst::PinnedTable::default(),
    })
}

fn version(levels: Vec<(usize, Vec<Arc<TableMeta>>)>) -> Version {
    let mut version = Version::default();
    for (level, tables) in levels {
        version.levels[level] = tables;
    }
    version
}

fn numbers(tables: &[Arc<TableMeta>]) -> Vec<u64> {
    tables.iter().map(|t| t.number).collect()
}

const MIB: u64 = 1 << 20;

/// LevelDB's static level targets: level 1 gets the base size.
fn static_options() -> CompactionOptions {
    CompactionOptions {
        dynamic_level_bytes: false,
        ..CompactionOptions::default()
    }
}

#[test]
fn level0_compacts_at_its_trigger_with_the_overlapping_level1_tables() {
    let options = static_options();
    let l1 = vec![
        meta(1, "a", "c", MIB),
        meta(2, "d", "f", MIB),
        meta(3, "m", "p", MIB),
    ];
    let l0 = vec![
        meta(13, "e", "g", MIB),
        meta(12, "b", "c", MIB),
        meta(11, "c", "e", MIB),
    ];
    let v = version(vec![(0, l0.clone()), (1, l1.clone())]);
    assert!(picker::pick(&v, &options).is_none());
    assert_eq!(
        picker::scores(&v, &options, &LevelTargets::new(&v, &options))[0],
        0.75
    );

    let mut l0 = l0;
    l0.insert(0, meta(14, "f", "h", MIB));
    let v = version(vec![(0, l0.clone()), (1, l1)]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (0, 1));
    assert_eq!(numbers(&c.inputs), vec![14, 13, 12, 11]);
    assert_eq!(numbers(&c.overlapping), vec![1, 2]);
    assert!(!c.is_trivial_move);
    assert!(c.is_bottommost);
    assert_eq!(c.input_size_bytes(), 6 * MIB);
    assert_eq!(c.all_tables().count(), 6);
    // L0 holds 4 MiB at its trigger and is merged into L1's 3 MiB: 7 MiB
    // are pending.
    assert_eq!(picker::pending_compaction_bytes(&v, &options), 7 * MIB);
}

#[test]
fn a_lone_table_with_no_overlap_below_moves_trivially() {
    let options = CompactionOptions {
        l0_compaction_trigger: 1,
        ..static_options()
    };
    let v = version(vec![
        (0, vec![meta(9, "k", "m", MIB)]),
        (1, vec![meta(1, "a", "c", MIB)]),
    ]);
    let c = picker::pick(&v, &options).unwrap();
    assert!(c.is_trivial_move);
    assert!(c.overlapping.is_empty());
    // Overlap below: a real compaction.
    let v = version(vec![
        (0, vec![meta(9, "b", "m", MIB)]),
        (1, vec![meta(1, "a", "c", MIB)]),
    ]);
    let c = picker::pick(&v, &options).unwrap();
    assert!(!c.is_trivial_move);
    assert_eq!(numbers(&c.overlapping), vec![1]);
    // Two level-0 tables that overlap nothing below: still all of L0, not
    // a move.
    let v = version(vec![(0, vec![meta(9, "k", "m", MIB), meta(8, "x", "z", MIB)])]);
    let c = picker::pick(&v, &options).unwrap();
    assert!(!c.is_trivial_move);
    assert_eq!(numbers(&c.inputs), vec![9, 8]);
}

#[test]
fn deeper_levels_compact_by_bytes_choosing_the_least_overlap() {
    let options = CompactionOptions {
        max_bytes_for_level_base: 10 * MIB,
        ..static_options()
    };
    // L1: 12 MiB over a 10 MiB budget. Table 1 overlaps 8 MiB of L2 per
    // 4 MiB, table 2 overlaps 1 MiB per 4 MiB, table 3 overlaps 3 per 4.
    let l1 = vec![
        meta(1, "a", "c", 4 * MIB),
        meta(2, "d", "f", 4 * MIB),
        meta(3, "g", "i", 4 * MIB),
    ];
    let l2 = vec![
        meta(21, "a", "b", 4 * MIB),
        meta(22, "c", "c", 4 * MIB),
        meta(23, "e", "e", MIB),
        meta(24, "h", "z", 3 * MIB),
    ];
    let l3 = vec![meta(31, "e", "e", MIB)];
    let v = version(vec![(1, l1.clone()), (2, l2.clone()), (3, l3)]);
    let targets = LevelTargets::new(&v, &options);
    assert_eq!(targets.base_level, 1);
    assert_eq!(targets.target_bytes(1), 10 * MIB);
    assert_eq!(targets.target_bytes(3), 1000 * MIB);
    let scores = picker::scores(&v, &options, &targets);
    assert_eq!(scores.len(), NUM_LEVELS);
    assert!((scores[1] - 1.2).abs() < 1e-9);
    assert_eq!(scores[NUM_LEVELS - 1], 0.0);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (1, 2));
    assert_eq!(numbers(&c.inputs), vec![2]);
    assert_eq!(numbers(&c.overlapping), vec![23]);
    // Level 3 holds "e": not bottommost.
    assert!(!c.is_bottommost);
    assert!(!c.is_trivial_move);
    // 2 MiB over budget; L2/L1 = 1: pending 2 MiB × 2.
    assert_eq!(picker::pending_compaction_bytes(&v, &options), 4 * MIB);

    // The highest score wins: L2 at 1.3 beats L1 at 1.2.
    let big_l2 = vec![meta(21, "a", "b", 130 * MIB)];
    let v = version(vec![(1, l1), (2, big_l2)]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (2, 3));
    assert!(c.is_trivial_move && c.is_bottommost);
}

#[test]
fn nothing_to_do_in_an_empty_or_small_tree() {
    for options in [static_options(), CompactionOptions::default()] {
        let empty = Version::default();
        assert!(picker::pick(&empty, &options).is_none());
        assert_eq!(picker::pending_compaction_bytes(&empty, &options), 0);
        assert!(
            picker::scores(&empty, &options, &LevelTargets::new(&empty, &options))
                .iter()
                .all(|s| *s == 0.0)
        );
        // The last level is never a source, however large.
        let v = version(vec![(NUM_LEVELS - 1, vec![meta(1, "a", "z", u64::MAX / 4)])]);
        assert!(picker::pick(&v, &options).is_none());
        assert_eq!(picker::pending_compaction_bytes(&v, &options), 0);
    }
}

#[test]
fn pick_range_takes_the_tables_in_range() {
    let l1 = vec![
        meta(1, "a", "c", MIB),
        meta(2, "d", "f", MIB),
        meta(3, "g", "i", MIB),
    ];
    let l2 = vec![meta(21, "b", "e", MIB), meta(22, "x", "z", MIB)];
    let l0 = vec![meta(12, "a", "b", MIB), meta(11, "y", "z", MIB)];
    let last = vec![meta(61, "a", "m", MIB), meta(62, "n", "z", MIB)];
    let v = version(vec![(0, l0), (1, l1), (2, l2), (NUM_LEVELS - 1, last)]);
    let b = |s: &'static str| s.as_bytes();

    let c = picker::pick_range(&v, 1, Bound::Included(b("c")), Bound::Excluded(b("g"))).unwrap();
    assert_eq!(numbers(&c.inputs), vec![1, 2]);
    assert_eq!(numbers(&c.overlapping), vec![21]);
    assert_eq!(c.output_level, 2);
    // The last level holds a..z below: not bottommost.
    assert!(!c.is_bottommost);
    // Excluded bounds at a table's edges leave it out.
    let c = picker::pick_range(&v, 1, Bound::Excluded(b("c")), Bound::Excluded(b("g"))).unwrap();
    assert_eq!(numbers(&c.inputs), vec![2]);
    assert!(picker::pick_range(&v, 1, Bound::Included(b("j")), Bound::Unbounded).is_none());
    assert!(picker::pick_range(&v, 3, Bound::Unbounded, Bound::Unbounded).is_none());

    // Level 0: one table in range takes them all.
    let c = picker::pick_range(&v, 0, Bound::Included(b("y")), Bound::Unbounded).unwrap();
    assert_eq!(numbers(&c.inputs), vec![12, 11]);
    assert_eq!(numbers(&c.overlapping), vec![1, 2, 3]);

    // The last level compacts into itself.
    let c = picker::pick_range(&v, NUM_LEVELS - 1, Bound::Unbounded, Bound::Included(b("b"))).unwrap();
    assert_eq!((c.level, c.output_level), (NUM_LEVELS - 1, NUM_LEVELS - 1));
    assert_eq!(numbers(&c.inputs), vec![61]);
    assert!(c.overlapping.is_empty() && c.is_bottommost && !c.is_trivial_move);
}

/// Tables of `size_mib` MiB each over `count` disjoint key ranges of
/// `"{prefix}00".."{prefix}99"`, numbered from `first`.
fn spread(first: u64, prefix: &str, count: u64, size_mib: u64) -> Vec<Arc<TableMeta>> {
    (0..count)
        .map(|i| {
            let (low, high) = (i * 100 / count, (i + 1) * 100 / count - 1);
            meta(
                first + i,
                &format!("{prefix}{low:02}"),
                &format!("{prefix}{high:02}"),
                size_mib * MIB,
            )
        })
        .collect()
}

/// Four level-0 tables over the whole `k00..k99` range.
fn full_level0() -> Vec<Arc<TableMeta>> {
    (0..4).map(|i| meta(904 - i, "k00", "k99", 40 * MIB)).collect()
}

const LAST: usize = NUM_LEVELS - 1;

#[test]
fn dynamic_targets_grow_up_from_the_last_level() {
    let options = CompactionOptions::default();
    assert!(options.dynamic_level_bytes, "dynamic by default");
    let targets = |v: &Version| LevelTargets::new(v, &options);
    let all = |t: &LevelTargets| {
        (1..NUM_LEVELS)
            .map(|l| t.target_bytes(l) / MIB)
            .collect::<Vec<_>>()
    };

    // Empty: level 0 goes straight to the last level.
    let t = targets(&Version::default());
    assert_eq!(t.base_level, LAST);
    assert_eq!(all(&t), vec![0; NUM_LEVELS - 1]);

    // 500 MiB: L5 would get 50 MiB, under the 256 MiB base: left empty.
    let t = targets(&version(vec![(LAST, spread(1, "k", 10, 50))]));
    assert_eq!(t.base_level, LAST);
    assert_eq!(all(&t), vec![0, 0, 0, 0, 0, 500]);

    // 3,000 MiB: L5 gets 300 MiB and becomes the base level while empty.
    let t = targets(&version(vec![(LAST, spread(1, "k", 10, 300))]));
    assert_eq!(t.base_level, LAST - 1);
    assert_eq!(all(&t), vec![0, 0, 0, 0, 300, 3000]);

    // 30,000 MiB: L5 gets 3,000 MiB and L4 300 MiB; L3 (30 MiB) would be
    // under the base. L4 is the base level.
    let v = version(vec![
        (LAST - 1, spread(11, "k", 10, 200)),
        (LAST, spread(1, "k", 10, 3000)),
    ]);
    let t = targets(&v);
    assert_eq!(t.base_level, LAST - 2);
    assert_eq!(all(&t), vec![0, 0, 0, 300, 3000, 30000]);

    // A store written with static targets: 2,000 MiB in L2. The last
    // level's target is the largest level's size; L2 stays the base level
    // (level 0 must not land below it) with target 0 until it is drained.
    let t = targets(&version(vec![(2, spread(1, "k", 10, 200))]));
    assert_eq!(t.base_level, 2);
    assert_eq!(all(&t), vec![0, 0, 0, 0, 0, 2000]);

    // Static targets ignore the data.
    let t = LevelTargets::new(&v, &static_options());
    assert_eq!(t.base_level, 1);
    assert_eq!(all(&t), vec![256, 2560, 25600, 256000, 2560000, 25600000]);
}

#[test]
fn dynamic_level0_compacts_into_the_base_level() {
    let options = CompactionOptions::default();
    // A small tree: level 0 merges into the last level, bottommost.
    let last = spread(1, "k", 10, 50);
    let v = version(vec![(0, full_level0()), (LAST, last.clone())]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (0, LAST));
    assert_eq!(numbers(&c.inputs), vec![904, 903, 902, 901]);
    assert_eq!(numbers(&c.overlapping), numbers(&last));
    assert!(c.is_bottommost && !c.is_trivial_move);
    // 160 MiB of L0 plus the 500 MiB it is merged into.
    assert_eq!(picker::pending_compaction_bytes(&v, &options), 660 * MIB);

    // A larger tree: into the empty L5, above the last level's keys.
    let v = version(vec![(0, full_level0()), (LAST, spread(1, "k", 10, 300))]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (0, LAST - 1));
    assert!(c.overlapping.is_empty());
    assert!(!c.is_bottommost && !c.is_trivial_move);
    // 160 MiB into an empty L5 whose target is 300 MiB: only L0 pending.
    assert_eq!(picker::pending_compaction_bytes(&v, &options), 160 * MIB);

    // One level-0 table with nothing below it moves to the base level as is.
    let options = CompactionOptions {
        l0_compaction_trigger: 1,
        ..CompactionOptions::default()
    };
    let v = version(vec![(0, vec![meta(9, "x", "z", MIB)]), (LAST, last)]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (0, LAST));
    assert!(c.is_trivial_move && c.is_bottommost);
}

#[test]
fn dynamic_scores_use_the_targets() {
    let options = CompactionOptions::default();
    // L5 at 200 MiB of its 300: nothing to do, nothing pending.
    let v = version(vec![
        (LAST - 1, spread(11, "k", 2, 100)),
        (LAST, spread(1, "k", 10, 300)),
    ]);
    assert!(picker::pick(&v, &options).is_none());
    assert_eq!(picker::pending_compaction_bytes(&v, &options), 0);

    // L5 at 400 MiB: score 4/3; the table with the least overlap goes down.
    let l5 = vec![
        meta(11, "k00", "k49", 200 * MIB),
        meta(12, "k50", "k54", 200 * MIB),
    ];
    let v = version(vec![(LAST - 1, l5), (LAST, spread(1, "k", 10, 300))]);
    let targets = LevelTargets::new(&v, &options);
    let scores = picker::scores(&v, &options, &targets);
    assert!((scores[LAST - 1] - 400.0 / 300.0).abs() < 1e-9);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (LAST - 1, LAST));
    assert_eq!(numbers(&c.inputs), vec![12]);
    assert_eq!(numbers(&c.overlapping), vec![6]);
    assert!(c.is_bottommost);
    // 100 MiB over, each byte rewriting 3,000/400 of L6 plus itself.
    assert_eq!(picker::pending_compaction_bytes(&v, &options), 850 * MIB);
}

#[test]
fn dynamic_drains_a_level_the_tree_no_longer_needs() {
    let options = CompactionOptions::default();
    // The tree shrank to 2,000 MiB: L5 (target 200 MiB, under the base)
    // should be empty. It stays the base level, and is drained before the
    // level-0 compaction that scores 1.
    let l5 = spread(11, "k", 2, 50);
    let v = version(vec![
        (0, full_level0()),
        (LAST - 1, l5.clone()),
        (LAST, spread(1, "k", 10, 200)),
    ]);
    let targets = LevelTargets::new(&v, &options);
    assert_eq!(
        (targets.base_level, targets.target_bytes(LAST - 1)),
        (LAST - 1, 0)
    );
    let scores = picker::scores(&v, &options, &targets);
    assert_eq!(scores[0], 1.0);
    assert!((scores[LAST - 1] - (1.0 + 100.0 / 256.0)).abs() < 1e-9);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (LAST - 1, LAST));
    // L0: 160 MiB plus L5's 100; then L5 is 260 MiB over its target of 0,
    // each byte rewriting 2,000/100 of L6 plus itself.
    assert_eq!(
        picker::pending_compaction_bytes(&v, &options),
        (160 + 100 + 260 * 21) * MIB
    );

    // Once L5 is empty, level 0 goes to the last level again.
    let v = version(vec![(0, full_level0()), (LAST, spread(1, "k", 10, 200))]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (0, LAST));

    // From a store with static targets, tables move down level by level,
    // without rewrite while the levels below are empty.
    let v = version(vec![(2, spread(1, "k", 4, 500))]);
    let c = picker::pick(&v, &options).unwrap();
    assert_eq!((c.level, c.output_level), (2, 3));
    assert!(c.is_trivial_move);
}

#[test]
fn pick_range_skips_empty_levels() {
    let b = |s: &'static str| s.as_bytes();
    // Level 0 straight to the last level.
    let v = version(vec![(0, full_level0()), (LAST, spread(1, "k", 10, 50))]);
    let c = picker::pick_range(&v, 0, Bound::Included(b("k10")), Bound::Unbounded).unwrap();
    assert_eq!((c.level, c.output_level), (0, LAST));
    assert_eq!(c.overlapping.len(), 10);
    assert!(c.is_bottommost);
    // L1 to L4, the next level that holds a table; not bottommost above L6.
    let v = version(vec![
        (1, vec![meta(1, "a", "c", MIB), meta(2, "d", "f", MIB)]),
        (4, vec![meta(41, "b", "e", MIB)]),
        (LAST, vec![meta(61, "a", "z", MIB)]),
    ]);
    let c = picker::pick_range(&v, 1, Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!((c.level, c.output_level), (1, 4));
    assert_eq!(numbers(&c.overlapping), vec![41]);
    assert!(!c.is_bottommost && !c.is_trivial_move);
    // Nothing below: to the last level, as a move for a single table.
    let v = version(vec![(2, vec![meta(1, "a", "c", MIB)])]);
    let c = picker::pick_range(&v, 2, Bound::Unbounded, Bound::Unbounded).unwrap();
    assert_eq!((c.level, c.output_level), (2, LAST));
    assert!(c.is_trivial_move && c.is_bottommost);
}

/// A tree that only grows, driven through the picker without a disk:
/// level-0 tables of `l0_table_bytes` over the whole key space
/// (`"0000".."9999"`) arrive one by one, and after each the picks run
/// until none is left. A merge outputs its input bytes (no key repeats)
/// as tables of `target_file_size_bytes` over the merged key range.
struct GrowingTree {
    options: CompactionOptions,
    version: Version,
    next_number: u64,
    ingested_bytes: u64,
    compaction_written_bytes: u64,
}

impl GrowingTree {
    fn new(options: CompactionOptions) -> Self {
        GrowingTree {
            options,
            version: Version::default(),
            next_number: 1,
            ingested_bytes: 0,
            compaction_written_bytes: 0,
        }
    }

    fn number(&mut self) -> u64 {
        self.next_number += 1;
        self.next_number
    }

    /// Flushes one level-0 table, then compacts until the picker is done.
    fn flush_and_settle(&mut self, l0_table_bytes: u64) {
        let table = meta(self.number(), "0000", "9999", l0_table_bytes);
        self.ingested_bytes += l0_table_bytes;
        self.apply(vec![(0, table)], vec![]);
        for _ in 0..10_000 {
            let Some(c) = picker::pick(&self.version, &self.options) else {
                return;
            };
            self.execute(&c);
        }
        panic!("the picker never settles");
    }

    fn execute(&mut self, c: &Compaction) {
        let mut deleted: Vec<(usize, u64)> = c.inputs.iter().map(|t| (c.level, t.number)).collect();
        deleted.extend(c.overlapping.iter().map(|t| (c.output_level, t.number)));
        if c.is_trivial_move {
            let added = c.inputs.iter().map(|t| (c.output_level, Arc::clone(t))).collect();
            return self.apply(added, deleted);
        }
        let key = |t: &Arc<TableMeta>, largest: bool| {
            let k = if largest { &t.largest } else { &t.smallest };
            std::str::from_utf8(k.user_key.as_ref())
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let low = c.all_tables().map(|t| key(t, false)).min().unwrap();
        let high = c.all_tables().map(|t| key(t, true)).max().unwrap();
        let total = c.input_size_bytes();
        let count = total
            .div_ceil(self.options.target_file_size_bytes)
            .clamp(1, high - low + 1);
        let width = (high - low + 1) / count;
        let mut added = Vec::new();
        for i in 0..count {
            let first = low + i * width;
            let last = if i + 1 == count { high } else { first + width - 1 };
            let table = meta(
                self.number(),
                &format!("{first:04}"),
                &format!("{last:04}"),
                total / count,
            );
            added.push((c.output_level, table));
        }
        self.compaction_written_bytes += total;
        self.apply(added, deleted);
    }

    fn apply(&mut self, added: Vec<(usize, Arc<TableMeta>)>, deleted: Vec<(usize, u64)>) {
        let edit = crate::manifest::VersionEdit {
            added,
            deleted,
            ..Default::default()
        };
        self.version = self.version.apply(&edit).unwrap();
    }

    fn write_amplification(&self) -> f64 {
        (self.ingested_bytes + self.compaction_written_bytes) as f64 / self.ingested_bytes as f64
    }

    /// Bytes of the levels between level 0 and the deepest non-empty level.
    fn upper_level_bytes(&self) -> (u64, u64) {
        let deepest = (1..NUM_LEVELS)
            .rev()
            .find(|&l| self.version.level_len(l) > 0)
            .unwrap_or(LAST);
        let upper = (1..deepest).map(|l| self.version.level_size_bytes(l)).sum();
        (upper, self.version.level_size_bytes(deepest))
    }
}

#[test]
fn as_the_tree_grows_the_base_level_moves_up_and_upper_levels_stay_small() {
    // Defaults scaled down 32x: 8 MiB base, level 0 compacts 4 x 2 MiB.
    let options = CompactionOptions {
        max_bytes_for_level_base: 8 * MIB,
        target_file_size_bytes: 2 * MIB,
        ..CompactionOptions::default()
    };
    let mut tree = GrowingTree::new(options.clone());
    let mut base_levels = vec![];
    // 2,000 MiB: a last level past 8 x 10 x 10 MiB needs two levels above.
    for _ in 0..1000 {
        tree.flush_and_settle(2 * MIB);
        let targets = LevelTargets::new(&tree.version, &options);
        if base_levels.last() != Some(&targets.base_level) {
            base_levels.push(targets.base_level);
        }
        // Settled: below the trigger, every level within its target (what
        // the writers' throttle sees too).
        assert!(tree.version.level_len(0) < options.l0_compaction_trigger);
        for level in 1..LAST {
            assert!(tree.version.level_size_bytes(level) <= targets.target_bytes(level));
        }
        assert_eq!(picker::pending_compaction_bytes(&tree.version, &options), 0);
        // Stale versions could hide in the upper levels: at most about a
        // ninth of the last level.
        let (upper, last) = tree.upper_level_bytes();
        assert!(upper * 9 <= last, "{upper} above {last}");
    }
    assert_eq!(base_levels, vec![LAST, LAST - 1, LAST - 2]);

    // Static targets, same flushes: level 1 takes 8 MiB, level 2 80 MiB,
    // and the upper levels at times hold many times the last.
    let mut fixed = GrowingTree::new(CompactionOptions {
        dynamic_level_bytes: false,
        ..options
    });
    let mut worst_upper_share: f64 = 0.0;
    for _ in 0..1000 {
        fixed.flush_and_settle(2 * MIB);
        let (upper, last) = fixed.upper_level_bytes();
        worst_upper_share = worst_upper_share.max(upper as f64 / last.max(1) as f64);
    }
    assert!(worst_upper_share > 10.0, "{worst_upper_share}");
    // Growth alone (no key repeats) costs both about the same rewrites:
    // 17.3 and 16.0 bytes written per byte flushed.
    let ratio = tree.write_amplification() / fixed.write_amplification();
    assert!((0.9..1.1).contains(&ratio), "{ratio}");
}

// ---------------------------------------------------------------- job

/// Every entry of some tables: user key → versions, newest first.
type Versions = BTreeMap<Bytes, Vec<(SeqNo, ValueKind, Bytes)>>;

struct Disk {
    fs: Arc<SimFs>,
    table_cache: Arc<TableCache>,
    next_number: Arc<AtomicU64>,
}

impl Disk {
    fn new(seed: u64) -> Disk {
        let fs = SimFs::new(seed);
        futures::executor::block_on(fs.create_dir_all(Path::new("/db"))).unwrap();
        let stats = Arc::new(ReadStats::new());
        let table_cache = Arc::new(TableCache::new(
            fs.clone(),
            PathBuf::from("/db"),
            100,
            None,
            stats,
        ));
        Disk {
            fs,
            table_cache,
            next_number: Arc::new(AtomicU64::new(100)),
        }
    }

    async fn write(&self, number: u64, entries: &[(InternalKey, Bytes)]) -> Arc<TableMeta> {
        let path = table_path(Path::new("/db"), number);
        let file = self.fs.open(&path, OpenMode::CreateNew).await.unwrap();
        let mut builder = TableBuilder::new(file, path, table_options());
        for (key, value) in entries {
            builder.add(key, value).await.unwrap();
        }
        let p = builder.finish().await.unwrap();
        Arc::new(TableMeta::from_properties(number, &p))
    }

    /// Every entry of `tables`, in order, checked sorted across tables.
    async fn read(&self, tables: &[Arc<TableMeta>]) -> Vec<InternalKey> {
        let mut out: Vec<InternalKey> = Vec::new();
        for meta in tables {
            let table = self.table_cache.get(meta).await.unwrap();
            let mut iter = table.iter();
            iter.seek_to_first().await.unwrap();
            while iter.valid() {
                out.push(iter.key());
                iter.next().await.unwrap();
            }
        }
        assert!(out.windows(2).all(|w| w[0] < w[1]), "outputs out of order");
        out
    }

    async fn run(
        &self,
        compaction: &Compaction,
        snapshots: &[SeqNo],
        options: &CompactionOptions,
        limiter: Option<&RateLimiter>,
    ) -> crate::error::Result<JobOutput> {
        let fs: Arc<dyn Fs> = self.fs.clone();
        let numbers = Arc::clone(&self.next_number);
        let allocate = move || numbers.fetch_add(1, Ordering::Relaxed);
        let ctx = JobContext {
            fs: &fs,
            dir: Path::new("/db"),
            table_cache: &self.table_cache,
            table_options: &table_options(),
            options,
            snapshots,
            allocate_file_number: &allocate,
            rate_limiter: limiter,
        };
        assert!(format!("{ctx:?}").contains("JobContext"));
        job::run(compaction, &ctx).await
    }
}

fn table_options() -> TableOptions {
    TableOptions {
        block_size_bytes: 256,
        ..TableOptions::default()
    }
}

/// What survives, by the readers' definition: the version each reader (at
/// each snapshot and at latest) sees, and, bottommost, without the oldest
/// kept tombstones (a tombstone with no older put kept hides nothing).
fn expected_survivors(versions: &Versions, snapshots: &[SeqNo], bottommost: bool) -> Vec<InternalKey> {
    let mut out = Vec::new();
    for (user_key, list) in versions {
        let mut kept: BTreeSet<SeqNo> = BTreeSet::new();
        for reader in snapshots.iter().copied().chain([MAX_SEQNO]) {
            if let Some((seqno, _, _)) = list.iter().find(|(seqno, _, _)| *seqno <= reader) {
                kept.insert(*seqno);
            }
        }
        let kind_of = |seqno: SeqNo| list.iter().find(|v| v.0 == seqno).unwrap().1;
        if bottommost {
            while let Some(&oldest) = kept.first() {
                if kind_of(oldest) != ValueKind::Delete {
                    break;
                }
                kept.remove(&oldest);
            }
        }
        for seqno in kept.into_iter().rev() {
            out.push(InternalKey::new(user_key.clone(), seqno, kind_of(seqno)));
        }
    }
    out
}

/// What a reader at `reader` gets for every key: `None` for deleted/absent.
fn reads(entries: &[InternalKey], reader: SeqNo) -> BTreeMap<Bytes, Option<SeqNo>> {
    let mut out = BTreeMap::new();
    for key in entries {
        if key.seqno() <= reader {
            out.entry(key.user_key.clone())
                .or_insert((key.kind() == ValueKind::Put).then_some(key.seqno()));
        }
    }
    out.retain(|_, v| v.is_some());
    out
}

/// Three overlapping level-0 tables and one level-1 table over 150 keys,
/// versions at seqnos 1..=2000 with a third of them tombstones; optionally
/// a level-2 table holding every key. Returns the compaction and the model.
async fn three_l0_and_one_l1(disk: &Disk, seed: u64, with_level2: bool) -> (Compaction, Versions) {
    let mut rng = Rng(seed | 1);
    let mut homes: [Vec<(InternalKey, Bytes)>; 4] = Default::default();
    let mut versions = Versions::new();
    // Level 1 gets the oldest seqnos, level 0 table i the later ranges.
    for seqno in 1..=2000u64 {
        let user_key = Bytes::from(format!("key{:04}", rng.below(150)));
        let kind = if rng.below(3) == 0 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let value = match kind {
            ValueKind::Delete => Bytes::new(),
            _ => Bytes::from(vec![b'v'; 40 + rng.below(40) as usize]),
        };
        let home = 3 - ((seqno - 1) / 500) as usize;
        homes[home].push((InternalKey::new(user_key.clone(), seqno, kind), value.clone()));
        versions
            .entry(user_key)
            .or_default()
            .insert(0, (seqno, kind, value));
    }
    for home in &mut homes {
        home.sort();
    }
    let mut l0 = Vec::new();
    for (index, home) in homes[..3].iter().enumerate() {
        l0.push(disk.write(index as u64 + 1, home).await);
    }
    let l1 = vec![disk.write(4, &homes[3]).await];
    let mut v = version(vec![(0, l0), (1, l1)]);
    if with_level2 {
        let old = [(
            InternalKey::new(Bytes::from("key0000"), 0, ValueKind::Put),
            Bytes::from("old"),
        )];
        v.levels[2] = vec![disk.write(5, &old).await];
    }
    let options = CompactionOptions {
        l0_compaction_trigger: 3,
        ..static_options()
    };
    let compaction = picker::pick(&v, &options).unwrap();
    assert_eq!((compaction.inputs.len(), compaction.overlapping.len()), (3, 1));
    assert_eq!(compaction.is_bottommost, !with_level2);
    (compaction, versions)
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn job_keeps_exactly_what_readers_can_see() {
    current_thread_runtime().block_on(async {
        for (seed, with_level2) in [(1, false), (2, true), (3, false)] {
            for snapshots in [vec![], vec![700], vec![3, 250, 999, 1000, 1501, 1999]] {
                let disk = Disk::new(seed);
                let (compaction, versions) = three_l0_and_one_l1(&disk, seed, with_level2).await;
                let options = CompactionOptions {
                    target_file_size_bytes: 2 * 1024,
                    ..CompactionOptions::default()
                };
                let output = disk.run(&compaction, &snapshots, &options, None).await.unwrap();
                let got = disk.read(&output.added).await;
                let expected = expected_survivors(&versions, &snapshots, compaction.is_bottommost);
                assert_eq!(got, expected, "seed {seed} snapshots {snapshots:?}");

                // Every reader reads the same before and after.
                let before: Vec<InternalKey> = versions
                    .iter()
                    .flat_map(|(k, list)| {
                        list.iter()
                            .map(|(s, kind, _)| InternalKey::new(k.clone(), *s, *kind))
                    })
                    .collect();
                for reader in snapshots.iter().copied().chain([MAX_SEQNO]) {
                    assert_eq!(reads(&got, reader), reads(&before, reader), "reader {reader}");
                }
                // Tombstones survive only where something below may need
                // hiding.
                let tombstones = got.iter().filter(|k| k.kind() == ValueKind::Delete).count();
                if compaction.is_bottommost {
                    assert_eq!(
                        tombstones,
                        expected.iter().filter(|k| k.kind() == ValueKind::Delete).count()
                    );
                } else {
                    assert!(tombstones > 0);
                }

                // Outputs: sorted, non-overlapping, split near the target.
                assert!(output.added.len() > 1, "{} outputs", output.added.len());
                for pair in output.added.windows(2) {
                    assert!(pair[0].largest.user_key < pair[1].smallest.user_key);
                    assert!(pair[0].size_bytes >= options.target_file_size_bytes);
                    assert!(pair[0].size_bytes < 2 * options.target_file_size_bytes);
                }
                assert_eq!(output.bytes_read, compaction.input_size_bytes());
                assert_eq!(
                    output.bytes_written,
                    output.added.iter().map(|t| t.size_bytes).sum::<u64>()
                );
            }
        }
    });
}

#[test]
fn without_snapshots_a_bottommost_job_keeps_one_put_per_key() {
    current_thread_runtime().block_on(async {
        let disk = Disk::new(4);
        let (compaction, versions) = three_l0_and_one_l1(&disk, 4, false).await;
        let output = disk
            .run(&compaction, &[], &CompactionOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(output.added.len(), 1);
        let got = disk.read(&output.added).await;
        let live = versions
            .values()
            .filter(|list| list[0].1 == ValueKind::Put)
            .count();
        assert_eq!(got.len(), live);
        assert!(got.iter().all(|k| k.kind() == ValueKind::Put));
    });
}

#[test]
fn a_job_dropping_everything_writes_nothing() {
    current_thread_runtime().block_on(async {
        let disk = Disk::new(5);
        let deletes: Vec<(InternalKey, Bytes)> = (0..50)
            .map(|i| {
                (
                    InternalKey::new(Bytes::from(format!("k{i:03}")), 100 + i, ValueKind::Delete),
                    Bytes::new(),
                )
            })
            .collect();
        let puts: Vec<(InternalKey, Bytes)> = (0..50)
            .map(|i| {
                (
                    InternalKey::new(Bytes::from(format!("k{i:03}")), i + 1, ValueKind::Put),
                    Bytes::from("v"),
                )
            })
            .collect();
        let v = version(vec![(
            0,
            vec![disk.write(2, &deletes).await, disk.write(1, &puts).await],
        )]);
        let compaction = picker::pick_range(&v, 0, Bound::Unbounded, Bound::Unbounded).unwrap();
        assert!(compaction.is_bottommost);
        let output = disk
            .run(&compaction, &[], &CompactionOptions::default(), None)
            .await
            .unwrap();
        assert!(output.added.is_empty());
        assert_eq!(output.bytes_written, 0);
        // A snapshot between puts and deletes keeps both.
        let output = disk
            .run(&compaction, &[60], &CompactionOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(disk.read(&output.added).await.len(), 100);
    });
}

#[test]
fn the_rate_limiter_slows_a_large_job() {
    current_thread_runtime().block_on(async {
        let disk = Disk::new(6);
        // Two level-0 tables of 200 distinct keys with 100-byte values:
        // about 50 KB of output, over twice the 20 KB burst of 200 KB/s.
        let entries = |first: u64| -> Vec<(InternalKey, Bytes)> {
            (first..first + 200)
                .map(|i| {
                    (
                        InternalKey::new(Bytes::from(format!("k{i:04}")), i + 1, ValueKind::Put),
                        Bytes::from(vec![b'v'; 100]),
                    )
                })
                .collect()
        };
        let v = version(vec![(
            0,
            vec![
                disk.write(2, &entries(200)).await,
                disk.write(1, &entries(0)).await,
            ],
        )]);
        let compaction = picker::pick_range(&v, 0, Bound::Unbounded, Bound::Unbounded).unwrap();
        let limiter = RateLimiter::new(200_000);
        let output = disk
            .run(&compaction, &[], &CompactionOptions::default(), Some(&limiter))
            .await
            .unwrap();
        assert!(output.bytes_written > 45_000, "{}", output.bytes_written);
        assert_eq!(disk.read(&output.added).await.len(), 400);
        assert!(limiter.sleeps() > 0);
        assert_eq!(limiter.bytes_acquired(), output.bytes_written);
    });
}

#[test]
fn a_failed_job_removes_its_outputs() {
    current_thread_runtime().block_on(async {
        let disk = Disk::new(7);
        let (compaction, _) = three_l0_and_one_l1(&disk, 7, false).await;
        let options = CompactionOptions {
            target_file_size_bytes: 2 * 1024,
            ..CompactionOptions::default()
        };
        let start = disk.fs.mutating_ops();
        let outputs = disk
            .run(&compaction, &[], &options, None)
            .await
            .unwrap()
            .added
            .len();
        let ops_per_run = disk.fs.mutating_ops() - start;
        assert!(outputs > 1 && ops_per_run >= outputs as u64 * 2);
        let before = disk.fs.list_files();
        // Fail each mutating operation of the job in turn.
        for offset in 0..ops_per_run {
            disk.fs.fail_at(disk.fs.mutating_ops() + offset);
            let result = disk.run(&compaction, &[], &options, None).await;
            assert!(
                matches!(result, Err(crate::error::Error::Io { .. })),
                "offset {offset}"
            );
            assert_eq!(disk.fs.list_files(), before, "offset {offset}");
        }
    });
}

/// The compaction task spawns jobs onto a runtime: the future is `Send`.
#[test]
fn job_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let disk = Disk::new(8);
    let fs: Arc<dyn Fs> = disk.fs.clone();
    let allocate = || 1u64;
    let options = CompactionOptions::default();
    let ctx = JobContext {
        fs: &fs,
        dir: Path::new("/db"),
        table_cache: &disk.table_cache,
        table_options: &table_options(),
        options: &options,
        snapshots: &[],
        allocate_file_number: &allocate,
        rate_limiter: None,
    };
    let compaction = Compaction {
        level: 0,
        output_level: 1,
        inputs: vec![meta(1, "a", "b", 1)],
        overlapping: Vec::new(),
        is_trivial_move: false,
        is_bottommost: true,
    };
    assert_send(&job::run(&compaction, &ctx));
}

/// Every entry of `tables` with its value.
async fn read_with_values(disk: &Disk, tables: &[Arc<TableMeta>]) -> Vec<(InternalKey, Bytes)> {
    let mut out = Vec::new();
    for meta in tables {
        let table = disk.table_cache.get(meta).await.unwrap();
        let mut iter = table.iter();
        iter.seek_to_first().await.unwrap();
        while iter.valid() {
            out.push((iter.key(), iter.value()));
            iter.next().await.unwrap();
        }
    }
    out
}

/// The merge and expiry rules of a job, entry by entry: operands fold onto
/// a base in their stripe, onto nothing at the bottom, shorten by partial
/// merge when a snapshot separates them from their base, never fold onto a live expiring value, and an
/// expired value becomes a tombstone (dropped at the bottom).
/// Table entries in internal-key order.
type Entries = Vec<(InternalKey, Bytes)>;

/// The runs of `merge_runs_fold_within_stripes_and_expired_values_go`:
/// the newer level-0 table's entries and the older one's.
fn merge_fold_inputs() -> (Entries, Entries) {
    let entry = |key: &'static str, seqno, kind, value: &[u8]| {
        (
            InternalKey::new(Bytes::from_static(key.as_bytes()), seqno, kind),
            Bytes::copy_from_slice(value),
        )
    };
    let expiring = |expiry: u64, value: &[u8]| {
        let mut stored = Vec::new();
        crate::ttl::encode(expiry, value, &mut stored);
        stored
    };
    let newer = vec![
        entry("a", 20, ValueKind::Merge, b"a3"),
        entry("a", 19, ValueKind::Merge, b"a2"),
        entry("b", 18, ValueKind::Merge, b"b2"),
        entry("c", 17, ValueKind::Merge, b"c2"),
        entry("d", 16, ValueKind::PutWithExpiry, &expiring(1_000, b"gone")),
        entry("e", 15, ValueKind::Merge, b"e1"),
        entry("f", 14, ValueKind::Merge, b"f1"),
        entry("f", 13, ValueKind::Put, b"f0"),
    ];
    let older = vec![
        entry("a", 5, ValueKind::Put, b"a0"),
        entry("b", 9, ValueKind::Merge, b"b1"),
        entry("b", 8, ValueKind::Merge, b"b0"),
        entry("c", 4, ValueKind::PutWithExpiry, &expiring(5_000, b"c0")),
        entry("d", 3, ValueKind::Put, b"d0"),
    ];
    (newer, older)
}

/// `got` as (user key, seqno, kind, value) with expiring values shown
/// without their expiry.
fn shown_with_values(got: &[(InternalKey, Bytes)]) -> Vec<(String, u64, ValueKind, String)> {
    got.iter()
        .map(|(k, v)| {
            let value = match k.kind() {
                ValueKind::PutWithExpiry => {
                    String::from_utf8_lossy(&crate::ttl::split(v).unwrap().1).into_owned()
                }
                _ => String::from_utf8_lossy(v).into_owned(),
            };
            (
                String::from_utf8_lossy(&k.user_key).into_owned(),
                k.seqno(),
                k.kind(),
                value,
            )
        })
        .collect()
}

#[test]
fn merge_runs_fold_within_stripes_and_expired_values_go() {
    use crate::clock::ManualClock;
    use crate::compaction::ValuePolicy;
    use crate::merge::{Append, Resolver};
    current_thread_runtime().block_on(async {
        let disk = Disk::new(8);
        let (newer, older) = merge_fold_inputs();
        let v = version(vec![(
            0,
            vec![disk.write(2, &newer).await, disk.write(1, &older).await],
        )]);
        let compaction = picker::pick_range(&v, 0, Bound::Unbounded, Bound::Unbounded).unwrap();
        assert!(compaction.is_bottommost);
        let options = CompactionOptions {
            values: ValuePolicy {
                resolver: Resolver {
                    operator: Some(Arc::new(Append {
                        separator: b",".to_vec(),
                    })),
                    clock: Arc::new(ManualClock::new(2_000)),
                },
                filter: None,
            },
            ..CompactionOptions::default()
        };
        // A snapshot at 10 separates b's operands: b2 stays alone in the
        // newest stripe; b1 and b0 reach the key's end at the bottom and
        // fold onto nothing.
        let output = disk.run(&compaction, &[10], &options, None).await.unwrap();
        let got = read_with_values(&disk, &output.added).await;
        let shown = shown_with_values(&got);
        let expected: Vec<(String, u64, ValueKind, String)> = [
            // Snapshot 10 sees a0 alone: the newer run cannot fold onto it
            // and shortens to one operand by partial merge.
            ("a", 20, ValueKind::Merge, "a2,a3"),
            ("a", 5, ValueKind::Put, "a0"),
            ("b", 18, ValueKind::Merge, "b2"),
            ("b", 9, ValueKind::Put, "b0,b1"),
            // Not folded onto a live expiring value.
            ("c", 17, ValueKind::Merge, "c2"),
            ("c", 4, ValueKind::PutWithExpiry, "c0"),
            // d@16 expired (at 1000, now 2000): a tombstone hiding d0 from
            // the latest state; d0 stays for snapshot 10.
            ("d", 16, ValueKind::Delete, ""),
            ("d", 3, ValueKind::Put, "d0"),
            // Folded onto nothing at the bottom.
            ("e", 15, ValueKind::Put, "e1"),
            // Folded onto the put of its stripe, which it shadows.
            ("f", 14, ValueKind::Put, "f0,f1"),
        ]
        .into_iter()
        .map(|(k, s, kind, v)| (k.to_owned(), s, kind, v.to_owned()))
        .collect();
        assert_eq!(shown, expected);
        // Not bottommost and without a snapshot, b's operands shorten to
        // one by partial merge instead.
        let mut not_bottom = compaction.clone();
        not_bottom.is_bottommost = false;
        let output = disk.run(&not_bottom, &[], &options, None).await.unwrap();
        let got = read_with_values(&disk, &output.added).await;
        let b: Vec<_> = got.iter().filter(|(k, _)| &k.user_key[..] == b"b").collect();
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].0.seqno(), b[0].0.kind(), &b[0].1[..]),
            (18, ValueKind::Merge, &b"b0,b1,b2"[..])
        );
    });
}
