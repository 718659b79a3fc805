//! Table round trips and damage: a `BTreeMap` model against builder,
//! reader and iterator, and every bit flip and truncation of small tables.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::executor::block_on;

use super::builder::{Compression, TableBuilder, TableOptions};
use super::reader::Table;
use crate::error::Error;
use crate::io::sim::SimFs;
use crate::io::{Fs, OpenMode};
use crate::key::Lookup;
use crate::key::{InternalKey, MAX_SEQNO, SeqNo, ValueKind};
use crate::sst::format::footer::Footer;
use crate::sst::format::properties::TableProperties;
use crate::sst::{BlockCache, FOOTER_SIZE_BYTES, ReadStats, TableIter, WRITE_BUFFER_BYTES};
use crate::test_rng::Rng;

/// The model: every entry of a table, in internal-key order.
type Model = BTreeMap<InternalKey, Bytes>;

/// `user_keys` keys `k{i:06}` (and the empty key) with 1 to 4 versions,
/// a fifth of them tombstones, some merge operands and expiring values, at
/// distinct seqnos in 1..=60_000.
fn model(user_keys: usize, value_len: u64, seed: u64) -> Model {
    let mut rng = Rng(seed | 1);
    let mut model = Model::new();
    let mut names: Vec<String> = (0..user_keys).map(|i| format!("k{:06}", i * 2)).collect();
    names.push(String::new());
    for name in names {
        let versions = 1 + rng.below(4);
        let mut seqnos: Vec<SeqNo> = Vec::new();
        for _ in 0..versions {
            let seqno = 1 + rng.below(60_000);
            if seqnos.contains(&seqno) {
                continue;
            }
            seqnos.push(seqno);
            // A fifth tombstones; of the rest, a tenth each merge operands
            // and expiring values (whose value starts with its expiry).
            let (kind, value) = if rng.below(5) == 0 {
                (ValueKind::Delete, Bytes::new())
            } else {
                let len = rng.below(value_len + 1) as usize;
                let mut value: Vec<u8> = (0..len).map(|j| (seqno as usize + j) as u8).collect();
                let kind = match rng.below(10) {
                    0 => ValueKind::Merge,
                    1 => {
                        let mut stored = Vec::new();
                        crate::ttl::encode(seqno * 1000, &value, &mut stored);
                        value = stored;
                        ValueKind::PutWithExpiry
                    }
                    _ => ValueKind::Put,
                };
                (kind, Bytes::from(value))
            };
            model.insert(InternalKey::new(Bytes::from(name.clone()), seqno, kind), value);
        }
    }
    model
}

/// What a table holding `model` must answer for `get(user_key, snapshot)`.
fn model_get(model: &Model, user_key: &[u8], snapshot: SeqNo) -> Lookup {
    let seek = InternalKey::seek_key(Bytes::copy_from_slice(user_key), snapshot);
    match model.range((Bound::Included(seek), Bound::Unbounded)).next() {
        Some((key, value)) if key.user_key == user_key => match key.kind() {
            ValueKind::Put => Lookup::Found(value.clone()),
            ValueKind::Delete | ValueKind::RangeDelete => Lookup::Deleted,
            ValueKind::PutWithExpiry => Lookup::Expiring(value.clone()),
            ValueKind::Merge => Lookup::Merge,
        },
        _ => Lookup::Missing,
    }
}

fn path() -> PathBuf {
    PathBuf::from("/db/000007.sst")
}

/// Builds a table of `model` at `path` on `fs`.
async fn write_table(fs: &SimFs, path: &Path, options: TableOptions, model: &Model) -> TableProperties {
    let _ = fs.create_dir_all(Path::new("/db")).await;
    let file = fs.open(path, OpenMode::CreateNew).await.unwrap();
    let mut builder = TableBuilder::new(file, path.to_path_buf(), options);
    for (key, value) in model {
        builder.add(key, value).await.unwrap();
    }
    assert_eq!(builder.entry_count(), model.len() as u64);
    builder.finish().await.unwrap()
}

async fn open(
    fs: &SimFs,
    path: &Path,
    file_size: u64,
    cache: Option<Arc<BlockCache>>,
    stats: Arc<ReadStats>,
) -> Result<Table, Error> {
    let file = fs.open(path, OpenMode::Read).await.unwrap();
    Table::open(file, path.to_path_buf(), 7, file_size, cache, stats).await
}

/// Every entry, forward.
async fn scan_forward(iter: &mut TableIter) -> Result<Vec<(InternalKey, Bytes)>, Error> {
    let mut out = Vec::new();
    iter.seek_to_first().await?;
    while iter.valid() {
        out.push((iter.key(), iter.value()));
        iter.next().await?;
    }
    Ok(out)
}

/// Every entry, backward, returned in forward order.
async fn scan_backward(iter: &mut TableIter) -> Result<Vec<(InternalKey, Bytes)>, Error> {
    let mut out = Vec::new();
    iter.seek_to_last().await?;
    while iter.valid() {
        out.push((iter.key(), iter.value()));
        iter.prev().await?;
    }
    out.reverse();
    Ok(out)
}

fn snapshots() -> [SeqNo; 6] {
    [0, 1, 100, 20_000, 45_000, MAX_SEQNO]
}

#[test]
#[expect(clippy::too_many_lines, reason = "one model test whose steps share the model")]
fn round_trip_gets_and_scans_match_the_model() {
    for (compression, cache) in [
        (Compression::None, false),
        (Compression::Lz4, true),
        (Compression::None, true),
    ] {
        block_on(async {
            let fs = SimFs::new(1);
            let model = model(4000, 120, 42);
            assert!(model.len() >= 10_000, "{} entries", model.len());
            let options = TableOptions {
                compression,
                ..TableOptions::default()
            };
            let properties = write_table(&fs, &path(), options, &model).await;
            assert_eq!(properties.entry_count, model.len() as u64);
            assert_eq!(
                properties.deletion_count,
                model.keys().filter(|k| k.kind() == ValueKind::Delete).count() as u64
            );
            assert_eq!(&properties.smallest_key, model.keys().next().unwrap());
            assert_eq!(&properties.largest_key, model.keys().next_back().unwrap());
            assert_eq!(
                properties.file_size_bytes,
                fs.read_file(&path()).unwrap().len() as u64
            );
            assert!(properties.data_block_count > 100);
            let cache = cache.then(|| Arc::new(BlockCache::new(1 << 20)));
            let stats = Arc::new(ReadStats::new());
            let table = Arc::new(
                open(&fs, &path(), properties.file_size_bytes, cache, stats)
                    .await
                    .unwrap(),
            );
            assert_eq!(table.properties(), &properties);
            let user_keys: Vec<Bytes> = model.keys().map(|k| k.user_key.clone()).collect();
            for user_key in &user_keys {
                assert!(table.may_contain(user_key));
                for snapshot in snapshots() {
                    assert_eq!(
                        table.get(user_key, snapshot).await.unwrap(),
                        model_get(&model, user_key, snapshot),
                        "{user_key:?} at {snapshot} ({compression:?})"
                    );
                }
            }
            // Absent keys, between and around the present ones.
            for i in (0..8001).step_by(37) {
                let absent = format!("k{i:06}!");
                assert_eq!(
                    table.get(absent.as_bytes(), MAX_SEQNO).await.unwrap(),
                    Lookup::Missing
                );
            }
            assert_eq!(table.get(b"zzz", MAX_SEQNO).await.unwrap(), Lookup::Missing);

            let expected: Vec<(InternalKey, Bytes)> =
                model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut iter = table.iter();
            assert_eq!(scan_forward(&mut iter).await.unwrap(), expected);
            assert_eq!(scan_backward(&mut iter).await.unwrap(), expected);

            // Seek to every key, then step both ways across block bounds.
            for (i, (key, value)) in expected.iter().enumerate().step_by(7) {
                iter.seek(key).await.unwrap();
                assert_eq!((iter.key(), iter.value()), (key.clone(), value.clone()));
                iter.prev().await.unwrap();
                if i == 0 {
                    assert!(!iter.valid());
                    continue;
                }
                assert_eq!(iter.key(), expected[i - 1].0);
                iter.next().await.unwrap();
                iter.next().await.unwrap();
                match expected.get(i + 1) {
                    Some((next, _)) => assert_eq!(&iter.key(), next),
                    None => assert!(!iter.valid()),
                }
            }
            // Seek keys at snapshots land where the model's range does.
            for user_key in user_keys.iter().step_by(11) {
                for snapshot in snapshots() {
                    let seek = InternalKey::seek_key(user_key.clone(), snapshot);
                    iter.seek(&seek).await.unwrap();
                    match model.range((Bound::Included(&seek), Bound::Unbounded)).next() {
                        Some((key, _)) => assert_eq!(&iter.key(), key),
                        None => assert!(!iter.valid()),
                    }
                }
            }
            iter.seek(&InternalKey::new(Bytes::from_static(b"zzz"), 1, ValueKind::Put))
                .await
                .unwrap();
            assert!(!iter.valid());
            assert!(iter.encoded_key().is_empty() && iter.value().is_empty());
        });
    }
}

/// Walks long enough to read many readahead windows (and blocks that
/// straddle two), both ways, turning around and seeking in between: every
/// step lands on the model's entry.
#[test]
fn long_walks_through_readahead_windows_match_the_model() {
    block_on(async {
        let fs = SimFs::new(3);
        let model = model(12_000, 120, 9);
        let properties = write_table(&fs, &path(), TableOptions::default(), &model).await;
        // Several windows of 256 KiB.
        assert!(properties.data_size_bytes > 1_500_000, "{properties:?}");
        let stats = Arc::new(ReadStats::new());
        let table = Arc::new(
            open(&fs, &path(), properties.file_size_bytes, None, stats)
                .await
                .unwrap(),
        );
        let expected: Vec<(InternalKey, Bytes)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut iter = table.iter();
        assert_eq!(scan_forward(&mut iter).await.unwrap(), expected);
        assert_eq!(scan_backward(&mut iter).await.unwrap(), expected);

        let mut rng = Rng(77);
        let mut iter = table.iter();
        for _ in 0..20 {
            let mut at = rng.below(expected.len() as u64) as usize;
            iter.seek(&expected[at].0).await.unwrap();
            for _ in 0..4 {
                let forward = rng.below(2) == 0;
                for _ in 0..rng.below(8_000) {
                    if forward {
                        iter.next().await.unwrap();
                        at += 1;
                    } else {
                        iter.prev().await.unwrap();
                        match at.checked_sub(1) {
                            Some(before) => at = before,
                            None => at = expected.len(),
                        }
                    }
                    match expected.get(at) {
                        Some((key, value)) => {
                            assert_eq!((iter.key(), iter.value()), (key.clone(), value.clone()));
                        }
                        None => {
                            assert!(!iter.valid());
                            break;
                        }
                    }
                }
                if !iter.valid() {
                    break;
                }
            }
        }
    });
}

#[test]
fn values_are_slices_of_the_cached_block() {
    block_on(async {
        let fs = SimFs::new(2);
        let model = model(50, 40, 7);
        let properties = write_table(&fs, &path(), TableOptions::default(), &model).await;
        let cache = Arc::new(BlockCache::new(1 << 20));
        let stats = Arc::new(ReadStats::new());
        let table = open(
            &fs,
            &path(),
            properties.file_size_bytes,
            Some(Arc::clone(&cache)),
            Arc::clone(&stats),
        )
        .await
        .unwrap();
        let (key, _) = model
            .iter()
            .find(|(k, v)| k.kind() == ValueKind::Put && !v.is_empty())
            .unwrap();
        let Lookup::Found(first) = table.get(&key.user_key, key.seqno()).await.unwrap() else {
            panic!("expected a value");
        };
        let Lookup::Found(second) = table.get(&key.user_key, key.seqno()).await.unwrap() else {
            panic!("expected a value");
        };
        assert_eq!(first, second);
        // Both are views of the one cached block, not copies.
        assert_eq!(first.as_ptr(), second.as_ptr());
        assert_eq!(ReadStats::load(&stats.block_reads), 1);
        assert_eq!(ReadStats::load(&stats.block_cache_misses), 1);
        assert_eq!(ReadStats::load(&stats.block_cache_hits), 1);
        assert_eq!(cache.len(), 1);
    });
}

#[test]
fn filter_negative_skips_the_block_read() {
    block_on(async {
        let fs = SimFs::new(3);
        let model = model(1000, 20, 9);
        let properties = write_table(&fs, &path(), TableOptions::default(), &model).await;
        let stats = Arc::new(ReadStats::new());
        let table = open(&fs, &path(), properties.file_size_bytes, None, Arc::clone(&stats))
            .await
            .unwrap();
        let absent = (0..)
            .map(|i| format!("absent-{i}"))
            .find(|key| !table.may_contain(key.as_bytes()))
            .unwrap();
        assert_eq!(
            table.get(absent.as_bytes(), MAX_SEQNO).await.unwrap(),
            Lookup::Missing
        );
        assert_eq!(ReadStats::load(&stats.bloom_negatives), 1);
        assert_eq!(ReadStats::load(&stats.block_reads), 0);
        // A present key reads exactly one block.
        let present = model.keys().next().unwrap();
        table.get(&present.user_key, MAX_SEQNO).await.unwrap();
        assert_eq!(ReadStats::load(&stats.block_reads), 1);
        assert_eq!(ReadStats::load(&stats.bloom_negatives), 1);
    });
}

#[test]
fn no_filter_table_answers_maybe_and_still_reads_right() {
    block_on(async {
        let fs = SimFs::new(4);
        let model = model(200, 20, 11);
        let options = TableOptions {
            bloom_bits_per_key: 0,
            ..TableOptions::default()
        };
        let properties = write_table(&fs, &path(), options, &model).await;
        assert_eq!(properties.filter_size_bytes, 0);
        let table = open(
            &fs,
            &path(),
            properties.file_size_bytes,
            None,
            Arc::new(ReadStats::new()),
        )
        .await
        .unwrap();
        assert!(table.may_contain(b"anything"));
        assert_eq!(table.get(b"anything", MAX_SEQNO).await.unwrap(), Lookup::Missing);
        for key in model.keys() {
            assert_eq!(
                table.get(&key.user_key, MAX_SEQNO).await.unwrap(),
                model_get(&model, &key.user_key, MAX_SEQNO)
            );
        }
    });
}

#[test]
fn large_values_get_blocks_of_their_own_and_writes_are_large() {
    block_on(async {
        let fs = SimFs::new(5);
        let mut model = Model::new();
        for i in 0..40u64 {
            let value = Bytes::from(vec![i as u8; 50_000 + i as usize]);
            model.insert(
                InternalKey::new(Bytes::from(format!("big{i:03}")), 100 + i, ValueKind::Put),
                value,
            );
        }
        fs.create_dir_all(Path::new("/db")).await.unwrap();
        let ops_before = fs.mutating_ops();
        let properties = write_table(&fs, &path(), TableOptions::default(), &model).await;
        assert_eq!(properties.data_block_count, 40);
        // One open, then writes of at least WRITE_BUFFER_BYTES each but the
        // last, then one sync (write_table's create_dir_all fails: exists).
        let writes = fs.mutating_ops() - ops_before - 3;
        let most = properties.file_size_bytes.div_ceil(WRITE_BUFFER_BYTES as u64);
        assert!(
            writes <= most,
            "{writes} writes for {} bytes",
            properties.file_size_bytes
        );
        let table = open(
            &fs,
            &path(),
            properties.file_size_bytes,
            None,
            Arc::new(ReadStats::new()),
        )
        .await
        .unwrap();
        for (key, value) in &model {
            assert_eq!(
                table.get(&key.user_key, MAX_SEQNO).await.unwrap(),
                Lookup::Found(value.clone())
            );
            assert_eq!(
                table.get(&key.user_key, key.seqno() - 1).await.unwrap(),
                Lookup::Missing
            );
        }
    });
}

/// The bytes of a small table (a few data blocks) and its model.
fn small_table(compression: Compression) -> (Vec<u8>, Model) {
    block_on(async {
        let fs = SimFs::new(6);
        let mut model = Model::new();
        for i in 0..36u64 {
            let kind = if i % 5 == 4 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let value = if kind == ValueKind::Put {
                Bytes::from(format!("value-{i}-").repeat(3))
            } else {
                Bytes::new()
            };
            model.insert(
                InternalKey::new(Bytes::from(format!("key{:03}", i / 2)), 1000 - i, kind),
                value,
            );
        }
        let options = TableOptions {
            block_size_bytes: 256,
            compression,
            ..TableOptions::default()
        };
        let properties = write_table(&fs, &path(), options, &model).await;
        assert!(properties.data_block_count >= 3, "{properties:?}");
        (fs.read_file(&path()).unwrap(), model)
    })
}

/// Opens `bytes` as a table and reads everything: every key at two
/// snapshots and a forward scan. Every error must be corruption and every
/// answer must be right. Returns whether some damage was reported, and
/// whether it was at open.
fn read_everything(bytes: Vec<u8>, file_size: u64, model: &Model) -> (bool, bool) {
    block_on(async {
        let fs = SimFs::new(8);
        fs.write_file_durable(&path(), bytes);
        let table = match open(&fs, &path(), file_size, None, Arc::new(ReadStats::new())).await {
            Ok(table) => Arc::new(table),
            Err(error) => {
                assert!(error.is_corruption(), "{error}");
                return (true, true);
            }
        };
        let mut damaged = false;
        for key in model.keys() {
            for snapshot in [key.seqno(), MAX_SEQNO] {
                match table.get(&key.user_key, snapshot).await {
                    Ok(found) => assert_eq!(found, model_get(model, &key.user_key, snapshot)),
                    Err(error) => {
                        assert!(error.is_corruption(), "{error}");
                        damaged = true;
                    }
                }
            }
        }
        match scan_forward(&mut table.iter()).await {
            Ok(entries) => {
                let expected: Vec<(InternalKey, Bytes)> =
                    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(entries, expected);
            }
            Err(error) => {
                assert!(error.is_corruption(), "{error}");
                damaged = true;
            }
        }
        (damaged, false)
    })
}

#[test]
fn every_bit_flip_is_corruption_never_wrong_data() {
    for compression in [Compression::None, Compression::Lz4] {
        let (bytes, model) = small_table(compression);
        assert_eq!(
            read_everything(bytes.clone(), bytes.len() as u64, &model),
            (false, false)
        );
        let footer_offset = bytes.len() - FOOTER_SIZE_BYTES;
        let footer = Footer::decode(&bytes[footer_offset..]).unwrap();
        let meta_start = footer.filter.offset as usize;
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[byte] ^= 1 << bit;
                let (damaged, at_open) = read_everything(flipped, bytes.len() as u64, &model);
                assert!(
                    damaged,
                    "flip of byte {byte} bit {bit} went unnoticed ({compression:?})"
                );
                // Filter (which could hide keys), properties, index and
                // footer are checked when the table opens.
                if byte >= meta_start {
                    assert!(at_open, "flip of byte {byte} bit {bit} not caught at open");
                }
            }
        }
    }
}

#[test]
fn flip_in_filter_is_caught_at_open() {
    let (bytes, model) = small_table(Compression::None);
    let footer = Footer::decode(&bytes[bytes.len() - FOOTER_SIZE_BYTES..]).unwrap();
    assert!(footer.filter.size_bytes > 0);
    let start = footer.filter.offset as usize;
    // Clearing a set bit of the filter could turn "maybe" into "no" for a
    // present key; the block checksum turns it into corruption instead.
    let set_bit = (0..footer.filter.size_bytes as usize * 8)
        .find(|bit| bytes[start + bit / 8] & (1 << (bit % 8)) != 0)
        .unwrap();
    let mut flipped = bytes.clone();
    flipped[start + set_bit / 8] ^= 1 << (set_bit % 8);
    assert_eq!(read_everything(flipped, bytes.len() as u64, &model), (true, true));
}

#[test]
fn every_truncation_is_corruption_at_open() {
    let (bytes, model) = small_table(Compression::Lz4);
    for len in 0..bytes.len() {
        let cut = bytes[..len].to_vec();
        // The manifest's size (the file is shorter), and the file's own.
        assert_eq!(
            read_everything(cut.clone(), bytes.len() as u64, &model),
            (true, true),
            "len {len}"
        );
        assert_eq!(
            read_everything(cut, len as u64, &model),
            (true, true),
            "len {len}"
        );
    }
    // A size larger than the file is a truncated file too.
    assert_eq!(
        read_everything(bytes.clone(), bytes.len() as u64 + 1, &model),
        (true, true)
    );
}

#[test]
fn corruption_names_the_file_and_the_block_offset() {
    let (bytes, model) = small_table(Compression::None);
    // Flip a byte in the middle of the first data block.
    let mut flipped = bytes.clone();
    flipped[20] ^= 0x10;
    block_on(async {
        let fs = SimFs::new(9);
        fs.write_file_durable(&path(), flipped);
        let table = open(&fs, &path(), bytes.len() as u64, None, Arc::new(ReadStats::new()))
            .await
            .unwrap();
        let first = model.keys().next().unwrap();
        match table.get(&first.user_key, MAX_SEQNO).await {
            Err(Error::Corruption {
                path: p,
                offset,
                reason,
            }) => {
                assert_eq!(p, path());
                assert_eq!(offset, 0, "{reason}");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    });
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let fs = SimFs::new(10);
    block_on(async {
        let model = model(10, 10, 3);
        let properties = write_table(&fs, &path(), TableOptions::default(), &model).await;
        let table = Arc::new(
            open(
                &fs,
                &path(),
                properties.file_size_bytes,
                None,
                Arc::new(ReadStats::new()),
            )
            .await
            .unwrap(),
        );
        let get = table.get(b"k", 1);
        assert_send(&get);
        drop(get);
        let mut iter = table.iter();
        assert_send(&iter);
        let next = iter.next();
        assert_send(&next);
        drop(next);
        let seek = iter.seek_to_first();
        assert_send(&seek);
        drop(seek);
        let file = fs
            .open(Path::new("/db/000008.sst"), OpenMode::CreateNew)
            .await
            .unwrap();
        let mut builder = TableBuilder::new(file, path(), TableOptions::default());
        let add = builder.add(model.keys().next().unwrap(), b"v");
        assert_send(&add);
        drop(add);
        assert_send(&builder.finish());
    });
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Table>();
    assert_send_sync::<BlockCache>();
    assert_send_sync::<crate::sst::TableCache>();
}

#[test]
#[should_panic(expected = "strictly increasing")]
fn out_of_order_keys_are_a_bug() {
    block_on(async {
        let fs = SimFs::new(11);
        fs.create_dir_all(Path::new("/db")).await.unwrap();
        let file = fs.open(&path(), OpenMode::CreateNew).await.unwrap();
        let mut builder = TableBuilder::new(file, path(), TableOptions::default());
        let a = InternalKey::new(Bytes::from_static(b"a"), 5, ValueKind::Put);
        let older_a = InternalKey::new(Bytes::from_static(b"a"), 6, ValueKind::Put);
        builder.add(&a, b"1").await.unwrap();
        builder.add(&older_a, b"2").await.unwrap();
    });
}

#[test]
fn failed_write_poisons_the_builder() {
    block_on(async {
        let fs = SimFs::new(12);
        fs.create_dir_all(Path::new("/db")).await.unwrap();
        let file = fs.open(&path(), OpenMode::CreateNew).await.unwrap();
        let mut builder = TableBuilder::new(file, path(), TableOptions::default());
        fs.fail_at(fs.mutating_ops());
        let big = Bytes::from(vec![7u8; WRITE_BUFFER_BYTES]);
        let key = InternalKey::new(Bytes::from_static(b"a"), 5, ValueKind::Put);
        let error = builder.add(&key, &big).await.unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error}");
        let next = InternalKey::new(Bytes::from_static(b"b"), 5, ValueKind::Put);
        assert!(matches!(builder.add(&next, b"x").await, Err(Error::Io { .. })));
        assert!(matches!(builder.finish().await, Err(Error::Io { .. })));
    });
}

/// Format versions: a table of puts and tombstones only is written as
/// version 1 (what builds before version 2 wrote and read) and still
/// opens; one with a merge operand or an expiring value is version 2; an
/// expiring value too short for its expiry is corruption.
#[test]
fn old_kinds_write_version_1_and_new_kinds_version_2() {
    use crate::sst::{FORMAT_VERSION_1, FORMAT_VERSION_2};
    block_on(async {
        let fs = SimFs::new(11);
        let key = |name: &'static str, seqno, kind| {
            InternalKey::new(Bytes::from_static(name.as_bytes()), seqno, kind)
        };
        let mut stored = Vec::new();
        crate::ttl::encode(77, b"v", &mut stored);
        let cases: [(Model, u32); 3] = [
            (
                Model::from([
                    (key("a", 2, ValueKind::Put), "x".into()),
                    (key("b", 1, ValueKind::Delete), Bytes::new()),
                ]),
                FORMAT_VERSION_1,
            ),
            (
                Model::from([(key("a", 2, ValueKind::Merge), "op".into())]),
                FORMAT_VERSION_2,
            ),
            (
                Model::from([(key("a", 2, ValueKind::PutWithExpiry), Bytes::from(stored.clone()))]),
                FORMAT_VERSION_2,
            ),
        ];
        for (number, (model, version)) in cases.into_iter().enumerate() {
            let path = PathBuf::from(format!("/db/00000{number}.sst"));
            let properties = write_table(&fs, &path, TableOptions::default(), &model).await;
            assert_eq!(properties.format_version, version);
            let table = open(
                &fs,
                &path,
                properties.file_size_bytes,
                None,
                Arc::new(ReadStats::new()),
            )
            .await
            .unwrap();
            let bytes = fs.read_file(&path).unwrap();
            let footer = Footer::decode(&bytes[bytes.len() - FOOTER_SIZE_BYTES..]).unwrap();
            assert_eq!(footer.format_version, version);
            for (key, value) in &model {
                let expected = model_get(&model, &key.user_key, MAX_SEQNO);
                assert_eq!(table.get(&key.user_key, MAX_SEQNO).await.unwrap(), expected);
                if key.kind() == ValueKind::PutWithExpiry {
                    assert_eq!(expected, Lookup::Expiring(value.clone()));
                }
            }
        }
        let short = Model::from([(
            key("a", 2, ValueKind::PutWithExpiry),
            Bytes::from_static(b"1234567"),
        )]);
        let path = PathBuf::from("/db/000009.sst");
        let properties = write_table(&fs, &path, TableOptions::default(), &short).await;
        let table = open(
            &fs,
            &path,
            properties.file_size_bytes,
            None,
            Arc::new(ReadStats::new()),
        )
        .await
        .unwrap();
        let error = table.get(b"a", MAX_SEQNO).await.unwrap_err();
        assert!(
            error.is_corruption() && error.to_string().contains("expiry"),
            "{error}"
        );
    });
}

/// Range tombstones round-trip through the range-tombstone block, widen
/// the table's key range, and make it format version 3; a table of
/// tombstones alone opens with no entries; every bit flip and truncation
/// of such a table is an error at open or at the first read, never wrong
/// tombstones.
#[test]
fn range_tombstones_round_trip_and_damage_is_caught() {
    use crate::range_del::{RangeDels, RangeTombstone};
    use crate::sst::FORMAT_VERSION;
    block_on(async {
        let fs = SimFs::new(12);
        let tomb = |start: &'static str, end: &'static str, seqno| RangeTombstone {
            start: Bytes::from_static(start.as_bytes()),
            end: Bytes::from_static(end.as_bytes()),
            seqno,
        };
        let tombstones = vec![tomb("b", "d", 9), tomb("a", "c", 5), tomb("x", "z\0", 7)];
        let expected = RangeDels::new(tombstones.clone());
        for with_points in [true, false] {
            let path = PathBuf::from(format!("/db/00001{}.sst", u8::from(with_points)));
            let _ = fs.create_dir_all(Path::new("/db")).await;
            let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
            let mut builder = TableBuilder::new(file, path.clone(), TableOptions::default());
            if with_points {
                let key = InternalKey::new(Bytes::from_static(b"m"), 3, ValueKind::Put);
                builder.add(&key, b"v").await.unwrap();
            }
            for tombstone in &tombstones {
                builder.add_range_tombstone(tombstone.clone());
            }
            let properties = builder.finish().await.unwrap();
            assert_eq!(properties.format_version, FORMAT_VERSION);
            // Stored as fragments: [a,b)@5 [b,c)@9 [b,c)@5 [c,d)@9 [x,z\0)@7.
            assert_eq!(properties.range_del_count, 5);
            assert_eq!(
                (properties.smallest_seqno, properties.largest_seqno),
                (if with_points { 3 } else { 5 }, 9)
            );
            assert_eq!(properties.smallest_key.user_key, Bytes::from_static(b"a"));
            // The end "z\0" covers up to "z" exactly.
            assert_eq!(properties.largest_key.user_key, Bytes::from_static(b"z"));
            let stats = Arc::new(ReadStats::new());
            let table = Arc::new(
                open(&fs, &path, properties.file_size_bytes, None, stats.clone())
                    .await
                    .unwrap(),
            );
            assert_eq!(table.range_dels().map(|d| d.as_ref()), Some(&expected));
            assert_eq!(table.range_dels().unwrap().max_covering(b"bb", 100), 9);
            let entries = scan_forward(&mut table.iter()).await.unwrap();
            assert_eq!(entries.len(), usize::from(with_points));
            let expected_get = if with_points {
                Lookup::Found("v".into())
            } else {
                Lookup::Missing
            };
            assert_eq!(table.get(b"m", MAX_SEQNO).await.unwrap(), expected_get);

            let bytes = fs.read_file(&path).unwrap();
            damage_is_caught(&fs, &bytes, &expected, usize::from(with_points)).await;
        }
    });
}

/// Every truncation of the table in `bytes` fails to open; every bit flip
/// fails to open or opens with `expected` tombstones and `points` entries
/// (or an error reading them).
async fn damage_is_caught(fs: &SimFs, bytes: &[u8], expected: &crate::range_del::RangeDels, points: usize) {
    let stats = Arc::new(ReadStats::new());
    for cut in 0..bytes.len() {
        let cut_path = PathBuf::from("/db/000099.sst");
        fs.write_file_durable(&cut_path, bytes[..cut].to_vec());
        assert!(
            open(fs, &cut_path, cut as u64, None, stats.clone())
                .await
                .is_err(),
            "cut {cut}"
        );
    }
    for byte in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut bad = bytes.to_vec();
            bad[byte] ^= 1 << bit;
            let bad_path = PathBuf::from("/db/000098.sst");
            fs.write_file_durable(&bad_path, bad.clone());
            let Ok(table) = open(fs, &bad_path, bad.len() as u64, None, stats.clone()).await else {
                continue;
            };
            let table = Arc::new(table);
            assert_eq!(
                table.range_dels().map(|d| d.as_ref()),
                Some(expected),
                "byte {byte} bit {bit}"
            );
            let read = scan_forward(&mut table.iter()).await;
            assert!(read.is_err() || read.unwrap().len() == points);
        }
    }
}

/// A range-tombstone block must hold fragments: sorted, equal or disjoint
/// ranges; anything else (which no writer produces) is refused before it
/// is fragmented.
#[test]
fn only_fragmented_range_tombstones_are_accepted() {
    use super::reader::check_fragmented;
    use crate::range_del::RangeTombstone;
    let tomb = |start: &'static str, end: &'static str, seqno| RangeTombstone {
        start: Bytes::from_static(start.as_bytes()),
        end: Bytes::from_static(end.as_bytes()),
        seqno,
    };
    assert!(
        check_fragmented(&[
            tomb("a", "b", 5),
            tomb("b", "c", 9),
            tomb("b", "c", 5),
            tomb("d", "e", 1)
        ])
        .is_ok()
    );
    assert!(check_fragmented(&[]).is_ok());
    for bad in [
        vec![tomb("a", "c", 5), tomb("b", "d", 9)],
        vec![tomb("b", "c", 5), tomb("a", "b", 9)],
        vec![tomb("a", "c", 5), tomb("a", "d", 4)],
        vec![tomb("a", "c", 5), tomb("a", "c", 5)],
        vec![tomb("a", "c", 5), tomb("a", "c", 6)],
    ] {
        assert!(check_fragmented(&bad).is_err(), "{bad:?}");
    }
}
