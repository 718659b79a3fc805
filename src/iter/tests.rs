//! Iterators against a `BTreeMap` model: random versions of random keys
//! spread over a memtable, two level-0 tables and a level of three tables,
//! read back merged (every entry) and as user keys at several snapshots and
//! bounds, both ways.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::executor::block_on;

use super::*;
use crate::filename::table_path;
use crate::io::sim::SimFs;
use crate::io::{Fs, OpenMode};
use crate::key::{MAX_SEQNO, Trailer, ValueKind};
use crate::manifest::TableMeta;
use crate::memtable::Memtable;
use crate::sst::{ReadStats, TableBuilder, TableCache, TableOptions};
use crate::test_rng::Rng;

/// Every entry written, in internal-key order.
type Model = BTreeMap<InternalKey, Bytes>;

/// Where the entries live: one memtable, two level-0 tables, one level.
struct Tree {
    table_cache: Arc<TableCache>,
    memtable: Arc<Memtable>,
    l0: Vec<Arc<TableMeta>>,
    level: Vec<Arc<TableMeta>>,
}

impl Tree {
    /// Fresh sources over the whole tree, newest first. `empty_extra` adds
    /// an empty memtable and an empty level.
    async fn sources(&self, empty_extra: bool) -> Vec<Source> {
        let mut sources = vec![Source::Memtable(MemtableIter::new(Arc::clone(&self.memtable)))];
        for meta in &self.l0 {
            let table = self.table_cache.get(meta).await.unwrap();
            sources.push(Source::Table(table.iter()));
        }
        sources.push(Source::Level(LevelIter::new(
            Arc::clone(&self.table_cache),
            self.level.clone(),
        )));
        if empty_extra {
            sources.push(Source::Memtable(MemtableIter::new(Arc::new(Memtable::new()))));
            sources.push(Source::Level(LevelIter::new(
                Arc::clone(&self.table_cache),
                Vec::new(),
            )));
        }
        sources
    }
}

/// Writes `entries` (sorted) as table `number` of `/db`.
async fn write_table(fs: &Arc<SimFs>, number: u64, entries: &[(InternalKey, Bytes)]) -> Arc<TableMeta> {
    let path = table_path(Path::new("/db"), number);
    let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
    let options = TableOptions {
        block_size_bytes: 128,
        ..TableOptions::default()
    };
    let mut builder = TableBuilder::new(file, path, options);
    for (key, value) in entries {
        builder.add(key, value).await.unwrap();
    }
    let properties = builder.finish().await.unwrap();
    Arc::new(TableMeta::from_properties(number, &properties))
}

/// `ops` random puts and deletes over `keys` user keys at seqnos
/// `1..=ops`, spread at random over the tree's five homes.
fn build(seed: u64, keys: u64, ops: u64) -> (Tree, Model) {
    let mut rng = Rng(seed | 1);
    let mut model = Model::new();
    let mut homes: [Vec<(InternalKey, Bytes)>; 4] = Default::default();
    let memtable = Arc::new(Memtable::new());
    for seqno in 1..=ops {
        let user_key = Bytes::from(format!("k{:03}", rng.below(keys) * 2));
        let (kind, value) = if rng.below(4) == 0 {
            (ValueKind::Delete, Bytes::new())
        } else {
            (ValueKind::Put, Bytes::from(format!("v{seqno}")))
        };
        let key = InternalKey::new(user_key.clone(), seqno, kind);
        model.insert(key.clone(), value.clone());
        match rng.below(5) {
            0 => memtable.insert(user_key, seqno, kind, value),
            home => homes[home as usize - 1].push((key, value)),
        }
    }
    for home in &mut homes {
        home.sort();
    }
    block_on(async {
        let fs = SimFs::new(seed);
        fs.create_dir_all(Path::new("/db")).await.unwrap();
        let mut l0 = Vec::new();
        for (index, home) in homes[..2].iter().enumerate() {
            if !home.is_empty() {
                l0.push(write_table(&fs, index as u64 + 1, home).await);
            }
        }
        // The level: homes 2 and 3 merged, cut into three tables at user-key
        // boundaries.
        let mut run: Vec<(InternalKey, Bytes)> = homes[2].iter().chain(&homes[3]).cloned().collect();
        run.sort();
        let mut level = Vec::new();
        let mut start = 0;
        for part in 1..=3 {
            let mut end = (run.len() * part / 3).max(start);
            while end < run.len() && end > 0 && run[end].0.user_key == run[end - 1].0.user_key {
                end += 1;
            }
            if end > start {
                level.push(write_table(&fs, 10 + part as u64, &run[start..end]).await);
            }
            start = end;
        }
        let stats = Arc::new(ReadStats::new());
        let table_cache = Arc::new(TableCache::new(
            fs.clone(),
            PathBuf::from("/db"),
            100,
            None,
            stats,
        ));
        let tree = Tree {
            table_cache,
            memtable,
            l0,
            level,
        };
        (tree, model)
    })
}

/// What a scan at `snapshot` within the bounds must yield, ascending.
fn model_scan(
    model: &Model,
    snapshot: SeqNo,
    start: &Bound<Bytes>,
    end: &Bound<Bytes>,
) -> Vec<(Bytes, Bytes)> {
    let mut newest: BTreeMap<Bytes, (ValueKind, Bytes)> = BTreeMap::new();
    for (key, value) in model {
        if key.seqno() <= snapshot
            && std::ops::RangeBounds::contains(&(start.clone(), end.clone()), &key.user_key)
        {
            // Entries come newest first per key: keep the first seen.
            newest
                .entry(key.user_key.clone())
                .or_insert((key.kind(), value.clone()));
        }
    }
    newest
        .into_iter()
        .filter(|(_, (kind, _))| *kind == ValueKind::Put)
        .map(|(key, (_, value))| (key, value))
        .collect()
}

async fn collect(mut iter: DbIter) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    while let Some(entry) = iter.next_entry().await.unwrap() {
        out.push(entry);
    }
    // Finished stays finished.
    assert_eq!(iter.next_entry().await.unwrap(), None);
    out
}

fn bounds_to_check() -> Vec<(Bound<Bytes>, Bound<Bytes>)> {
    use Bound::{Excluded, Included, Unbounded};
    let key = |s: &'static str| Bytes::from_static(s.as_bytes());
    vec![
        (Unbounded, Unbounded),
        (Included(key("k010")), Unbounded),
        (Excluded(key("k010")), Unbounded),
        (Unbounded, Included(key("k050"))),
        (Unbounded, Excluded(key("k050"))),
        (Included(key("k011")), Excluded(key("k049"))),
        (Excluded(key("k020")), Included(key("k040"))),
        (Included(key("k020")), Included(key("k020"))),
        (Excluded(key("k020")), Excluded(key("k022"))),
        // Empty and inverted ranges.
        (Excluded(key("k020")), Excluded(key("k020"))),
        (Included(key("k040")), Included(key("k020"))),
        // Outside the data.
        (Included(key("a")), Excluded(key("b"))),
        (Excluded(key("z")), Unbounded),
        (Unbounded, Excluded(key("k000"))),
        (Unbounded, Included(key("k000"))),
        (Included(key("")), Included(key("zzz"))),
    ]
}

#[test]
fn db_iter_matches_the_model_at_every_snapshot_and_bound() {
    for seed in [1, 2, 3] {
        let ops = 600;
        let (tree, model) = build(seed, 40, ops);
        assert!(!tree.l0.is_empty() && tree.level.len() == 3);
        for snapshot in [0, 1, ops / 3, ops / 2, ops - 1, ops, MAX_SEQNO] {
            for (start, end) in bounds_to_check() {
                let expected = model_scan(&model, snapshot, &start, &end);
                for empty_extra in [false, true] {
                    let forward = DbIter::new(
                        block_on(tree.sources(empty_extra)),
                        snapshot,
                        start.clone(),
                        end.clone(),
                        Direction::Forward,
                    );
                    let got = block_on(collect(forward));
                    assert_eq!(
                        got, expected,
                        "forward seed {seed} snapshot {snapshot} {start:?}..{end:?}"
                    );
                    let reverse = DbIter::new(
                        block_on(tree.sources(empty_extra)),
                        snapshot,
                        start.clone(),
                        end.clone(),
                        Direction::Reverse,
                    );
                    let mut got = block_on(collect(reverse));
                    got.reverse();
                    assert_eq!(
                        got, expected,
                        "reverse seed {seed} snapshot {snapshot} {start:?}..{end:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn merging_iterator_yields_every_entry_and_lands_every_seek() {
    let (tree, model) = build(7, 30, 400);
    let entries: Vec<(u64, Bytes, Bytes)> = model
        .iter()
        .map(|(key, value)| (key.trailer, key.user_key.clone(), value.clone()))
        .collect();
    block_on(async {
        let mut merge = MergingIterator::new(tree.sources(true).await, Direction::Forward);
        assert!(!merge.valid());
        merge.seek_to_first().await.unwrap();
        let mut got = Vec::new();
        while merge.valid() {
            got.push((
                merge.trailer(),
                Bytes::copy_from_slice(merge.user_key()),
                merge.value(),
            ));
            merge.next().await.unwrap();
        }
        assert_eq!(got, entries);

        let mut merge = MergingIterator::new(tree.sources(true).await, Direction::Reverse);
        merge.seek_to_last().await.unwrap();
        let mut got = Vec::new();
        while merge.valid() {
            got.push((
                merge.trailer(),
                Bytes::copy_from_slice(merge.user_key()),
                merge.value(),
            ));
            merge.prev().await.unwrap();
        }
        got.reverse();
        assert_eq!(got, entries);

        // Seeks to every entry, and to keys between entries.
        let mut rng = Rng(99);
        let mut forward = MergingIterator::new(tree.sources(false).await, Direction::Forward);
        let mut reverse = MergingIterator::new(tree.sources(false).await, Direction::Reverse);
        for _ in 0..300 {
            let user_key = Bytes::from(format!("k{:03}", rng.below(62)));
            let target = InternalKey {
                user_key,
                trailer: Trailer::new(
                    rng.below(450),
                    if rng.below(2) == 0 {
                        ValueKind::Delete
                    } else {
                        ValueKind::Put
                    },
                )
                .raw(),
            };
            forward.seek(&target).await.unwrap();
            let expected = model.range(&target..).next().map(|(key, _)| key.clone());
            assert_eq!(
                forward.valid().then(|| forward.key()),
                expected,
                "seek {target:?}"
            );
            reverse.seek_for_prev(&target).await.unwrap();
            let expected = model.range(..=&target).next_back().map(|(key, _)| key.clone());
            assert_eq!(
                reverse.valid().then(|| reverse.key()),
                expected,
                "seek_for_prev {target:?}"
            );
            if let Some(expected) = expected {
                assert_eq!(reverse.seqno(), expected.seqno());
                assert_eq!(reverse.kind(), expected.kind());
            }
        }
    });
}

/// Many sources whose entries interleave at random (the merge's order is
/// re-sorted at every step), ties between equal keys included: the merge
/// yields every entry once, in order, lower source first on a tie.
#[test]
fn merging_many_interleaved_sources_keeps_order_and_ties() {
    let mut rng = Rng(0x5eed);
    let memtables: Vec<Arc<Memtable>> = (0..12).map(|_| Arc::new(Memtable::new())).collect();
    // (internal key, source index) for every entry.
    let mut expected: Vec<(InternalKey, usize)> = Vec::new();
    for seqno in 1..=3_000 {
        let user_key = Bytes::from(format!("k{:04}", rng.below(500)));
        let source = rng.below(memtables.len() as u64) as usize;
        // Now and then the same internal key in a second source: a tie.
        let tie = (rng.below(50) == 0).then(|| (source + 1 + rng.below(11) as usize) % memtables.len());
        for source in std::iter::once(source).chain(tie) {
            memtables[source].insert(
                user_key.clone(),
                seqno,
                ValueKind::Put,
                Bytes::from(format!("{source}")),
            );
            expected.push((InternalKey::new(user_key.clone(), seqno, ValueKind::Put), source));
        }
    }
    expected.sort();
    let sources = || {
        memtables
            .iter()
            .map(|memtable| Source::Memtable(MemtableIter::new(Arc::clone(memtable))))
            .collect::<Vec<_>>()
    };
    block_on(async {
        let mut merge = MergingIterator::new(sources(), Direction::Forward);
        merge.seek_to_first().await.unwrap();
        let mut got = Vec::new();
        while merge.valid() {
            let source: usize = std::str::from_utf8(&merge.value()).unwrap().parse().unwrap();
            got.push((merge.key(), source));
            merge.next().await.unwrap();
        }
        assert_eq!(got, expected);

        let mut merge = MergingIterator::new(sources(), Direction::Reverse);
        merge.seek_to_last().await.unwrap();
        let mut got = Vec::new();
        while merge.valid() {
            let source: usize = std::str::from_utf8(&merge.value()).unwrap().parse().unwrap();
            got.push((merge.key(), source));
            merge.prev().await.unwrap();
        }
        // Reverse walks ties lower source first too.
        let mut reversed = expected.clone();
        reversed
            .sort_by(|(a_key, a_source), (b_key, b_source)| b_key.cmp(a_key).then(a_source.cmp(b_source)));
        assert_eq!(got, reversed);
    });
}

#[test]
fn empty_sources_yield_nothing() {
    block_on(async {
        let sources = || vec![Source::Memtable(MemtableIter::new(Arc::new(Memtable::new())))];
        for direction in [Direction::Forward, Direction::Reverse] {
            let iter = DbIter::new(
                sources(),
                MAX_SEQNO,
                Bound::Unbounded,
                Bound::Unbounded,
                direction,
            );
            assert_eq!(iter.direction(), direction);
            assert!(collect(iter).await.is_empty());
            let iter = DbIter::new(
                Vec::new(),
                MAX_SEQNO,
                Bound::Unbounded,
                Bound::Unbounded,
                direction,
            );
            assert!(collect(iter).await.is_empty());
        }
    });
}

#[test]
fn a_missing_table_fails_the_scan_and_keeps_failing() {
    let (tree, _) = build(5, 10, 100);
    let mut broken = (*tree.level[0]).clone();
    broken.number = 999;
    let sources = vec![Source::Level(LevelIter::new(
        Arc::clone(&tree.table_cache),
        vec![Arc::new(broken)],
    ))];
    block_on(async {
        let mut iter = DbIter::new(
            sources,
            MAX_SEQNO,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        );
        assert!(matches!(
            iter.next_entry().await,
            Err(crate::error::Error::Io { .. })
        ));
        assert!(matches!(
            iter.next_entry().await,
            Err(crate::error::Error::Io { .. })
        ));
    });
}

/// Batches of any size, cut by entries or by bytes, add up to the walk
/// entry by entry; every batch but the last is non-empty and within its
/// limits.
#[test]
fn batches_add_up_to_the_whole_walk() {
    let (tree, model) = build(11, 40, 600);
    for (start, end) in bounds_to_check() {
        let expected = model_scan(&model, MAX_SEQNO, &start, &end);
        for direction in [Direction::Forward, Direction::Reverse] {
            for (max_entries, max_bytes) in [
                (1, usize::MAX),
                (2, usize::MAX),
                (7, usize::MAX),
                (1000, 1),
                (5, 20),
            ] {
                let mut iter = DbIter::new(
                    block_on(tree.sources(true)),
                    MAX_SEQNO,
                    start.clone(),
                    end.clone(),
                    direction,
                );
                let mut got = Vec::new();
                loop {
                    let mut batch = Batch::default();
                    block_on(iter.next_batch(&mut batch, max_entries, max_bytes)).unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    assert!(batch.len() <= max_entries);
                    let batch: Vec<(Bytes, Bytes)> = batch.into_entries().collect();
                    // Only the last entry may cross the byte limit.
                    let before_last: usize = batch[..batch.len() - 1]
                        .iter()
                        .map(|(key, value)| key.len() + value.len())
                        .sum();
                    assert!(before_last < max_bytes);
                    got.extend(batch);
                }
                if direction == Direction::Reverse {
                    got.reverse();
                }
                assert_eq!(
                    got, expected,
                    "{direction:?} {max_entries} entries {max_bytes} bytes {start:?}..{end:?}"
                );
            }
        }
    }
}

/// A table that cannot be read, after one that can: the entries before it
/// come out first, then the error, for good.
#[test]
fn a_batch_keeps_its_entries_and_the_error_comes_next() {
    let (tree, _) = build(5, 10, 100);
    assert!(tree.level.len() >= 2);
    let mut broken = (*tree.level[1]).clone();
    broken.number = 999;
    let sources = vec![Source::Level(LevelIter::new(
        Arc::clone(&tree.table_cache),
        vec![Arc::clone(&tree.level[0]), Arc::new(broken)],
    ))];
    block_on(async {
        let mut iter = DbIter::new(
            sources,
            MAX_SEQNO,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        );
        let mut batch = Batch::default();
        iter.next_batch(&mut batch, 1000, usize::MAX).await.unwrap();
        let batch: Vec<(Bytes, Bytes)> = batch.into_entries().collect();
        // Exactly what the readable table holds.
        let readable = DbIter::new(
            vec![Source::Level(LevelIter::new(
                Arc::clone(&tree.table_cache),
                vec![Arc::clone(&tree.level[0])],
            ))],
            MAX_SEQNO,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
        );
        let expected = collect(readable).await;
        assert!(!expected.is_empty());
        assert_eq!(batch, expected);
        for _ in 0..2 {
            let mut more = Batch::default();
            let result = iter.next_batch(&mut more, 1000, usize::MAX).await;
            assert!(matches!(result, Err(crate::error::Error::Io { .. })));
            assert!(more.is_empty());
        }
    });
}

/// Scans run inside `Send` futures (a `'static` stream on any runtime).
#[test]
fn iterator_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let mut iter = DbIter::new(
        Vec::new(),
        0,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Forward,
    );
    assert_send(&iter.next_entry());
    let mut batch = Batch::default();
    assert_send(&iter.next_batch(&mut batch, 1, 1));
    let mut merge = MergingIterator::new(Vec::new(), Direction::Reverse);
    assert_send(&merge.prev());
}
