//! Entry points for the fuzz targets in `fuzz/` and for the integration
//! test that replays their corpus (`tests/decoders_fuzz.rs`). Not part of
//! the public API: hidden, unstable, and kept small.
//!
//! Each function takes arbitrary bytes, runs one decoder (or a store) over
//! them, and panics only where a property of ringdb is broken: a decoder
//! must return an error for bad bytes, never panic, never loop without
//! bound; a store on the simulated disk must answer like a `BTreeMap`.
//!
//! Invariants:
//! - Every function returns for every input, in time bounded by the
//!   input's length (the op-sequence target: by its op count limit).
//! - No function touches a real file: tables, WAL segments and manifests
//!   are written to a fresh [`SimFs`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::executor::block_on;

use crate::io::sim::{SimFs, TearMode};
use crate::io::{Fs, OpenMode};
use crate::key::{MAX_SEQNO, ValueKind};
use crate::sst::block::Block;
use crate::sst::block::trailer::decode_block;
use crate::sst::{ReadStats, Table, TableIter, encoded_key};
use crate::wal::format::{HEADER_SIZE_BYTES, RecordHeader};

/// Most steps an iteration takes over one decoded block or table: a bound
/// on the work per input that no honest block of `n` bytes can exceed
/// (every entry takes at least one byte).
fn step_limit(len: usize) -> usize {
    len.saturating_add(1)
}

/// Block decode and iteration: `data` as a decoded block (restart array
/// and entries), and, when it verifies, as a stored block with its
/// trailer: iterated forward, backward and sought, which must end without
/// a panic. Then a block built from keys taken from `data` must read back
/// exactly: forward, backward, and a seek to each key.
///
/// NOTE: the reader checks that restart points increase inside the entry
/// region, not that each falls on an entry boundary (that would cost a
/// walk of every block read). A block whose restart points miss entry
/// boundaries can only come from bytes that passed the block checksum,
/// that is from a writer bug; a seek in it may land on another entry, but
/// never reads out of bounds. So exact answers are asserted only for
/// blocks the builder made.
pub fn block(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    iterate_block(bytes.clone());
    if let Ok(decoded) = decode_block(bytes, crate::sst::MAX_BLOCK_SIZE_BYTES) {
        iterate_block(decoded);
    }
    built_block_reads_back(data);
}

/// Walks a block from untrusted bytes; only termination is asserted.
fn iterate_block(bytes: Bytes) {
    let limit = step_limit(bytes.len());
    let Ok(block) = Block::new(bytes.clone()) else {
        return;
    };
    let mut iter = block.iter();
    let mut forward = Vec::new();
    if iter.seek_to_first().is_ok() {
        while iter.valid() {
            assert!(forward.len() <= limit, "block iteration does not end");
            forward.push(iter.key().to_vec());
            let _ = iter.value();
            if iter.next().is_err() {
                break;
            }
        }
    }
    let mut steps = 0;
    if iter.seek_to_last().is_ok() {
        while iter.valid() {
            steps += 1;
            assert!(steps <= limit, "backward block iteration does not end");
            if iter.prev().is_err() {
                break;
            }
        }
    }
    for target in forward.iter().take(4) {
        let _ = iter.seek(target);
    }
    let _ = iter.seek(data_tail(&bytes));
}

/// Most keys [`built_block_reads_back`] puts in a block: enough for
/// several restart intervals, few enough to keep a fuzz run fast.
const MAX_BUILT_BLOCK_KEYS: usize = 64;

/// Builds a block of keys cut from `data` and reads it back exactly.
fn built_block_reads_back(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut keys: Vec<Vec<u8>> = rest
        .chunks(usize::from(first % 13) + 1)
        .take(MAX_BUILT_BLOCK_KEYS)
        .enumerate()
        .map(|(i, chunk)| encoded_key(chunk, (i as u64) & 0xff))
        .collect();
    keys.sort_by(|a, b| encoded_key::compare(a, b));
    keys.dedup_by(|a, b| encoded_key::compare(a, b).is_eq());
    if keys.is_empty() {
        return;
    }
    let mut builder = crate::sst::block::BlockBuilder::new(usize::from(first % 16) + 1);
    for (i, key) in keys.iter().enumerate() {
        builder.add(key, &i.to_le_bytes());
    }
    let block = Block::new(Bytes::copy_from_slice(builder.finish()))
        .unwrap_or_else(|reason| panic!("a built block does not decode: {reason}"));
    let mut iter = block.iter();
    let mut forward = Vec::new();
    let _ = iter.seek_to_first();
    while iter.valid() {
        forward.push(iter.key().to_vec());
        assert_eq!(iter.value_slice(), &(forward.len() - 1).to_le_bytes()[..]);
        let _ = iter.next();
    }
    assert_eq!(forward, keys, "a built block reads back other keys");
    let mut backward = Vec::new();
    let _ = iter.seek_to_last();
    while iter.valid() {
        backward.push(iter.key().to_vec());
        let _ = iter.prev();
    }
    backward.reverse();
    assert_eq!(backward, keys, "a built block reads back other keys backward");
    for key in &keys {
        assert!(iter.seek(key).is_ok());
        assert_eq!(iter.key(), key.as_slice(), "seek missed a key of a built block");
    }
}

/// The last 16 bytes of `bytes`: a seek target the input chooses.
fn data_tail(bytes: &[u8]) -> &[u8] {
    bytes.get(bytes.len().saturating_sub(16)..).unwrap_or_default()
}

/// Table open, point get and full scan (forward and backward) of `data`
/// as a table file.
pub fn table(data: &[u8]) {
    let fs = SimFs::new(0);
    let path = PathBuf::from("/fuzz/000001.sst");
    fs.write_file_durable(&path, data.to_vec());
    let limit = step_limit(data.len());
    block_on(async {
        let Ok(file) = fs.open(&path, OpenMode::Read).await else {
            return;
        };
        let stats = Arc::new(ReadStats::new());
        let opened = Table::open(file, path.clone(), 1, data.len() as u64, None, stats).await;
        let Ok(table) = opened else {
            return;
        };
        let table = Arc::new(table);
        let mut keys = Vec::new();
        let mut iter = TableIter::new(Arc::clone(&table));
        if iter.seek_to_first().await.is_ok() {
            while iter.valid() {
                assert!(keys.len() <= limit, "table scan does not end");
                keys.push(iter.user_key().to_vec());
                let _ = iter.value();
                if iter.next().await.is_err() {
                    break;
                }
            }
        }
        let mut steps = 0;
        if iter.seek_to_last().await.is_ok() {
            while iter.valid() {
                steps += 1;
                assert!(steps <= limit, "backward table scan does not end");
                if iter.prev().await.is_err() {
                    break;
                }
            }
        }
        for key in keys.iter().take(8) {
            let _ = table.get(key, MAX_SEQNO).await;
        }
        let _ = table.get(data_tail(data), MAX_SEQNO).await;
    });
}

/// Rewrites the crc of every record a scan of `data` (framed as in
/// `wal::format`) can walk to, so that a fuzzer reaches the payload
/// decoders instead of stopping at the checksum.
pub fn fix_record_crcs(data: &mut [u8]) {
    let mut pos = 0usize;
    while let Some(rest) = data.get(pos..) {
        let Some((_, header)) = RecordHeader::decode(rest) else {
            return;
        };
        let len = header.payload_len as usize;
        let Some(end) = pos
            .checked_add(HEADER_SIZE_BYTES)
            .and_then(|start| start.checked_add(len))
            .filter(|&end| end <= data.len() && len > 0)
        else {
            return;
        };
        let payload = data.get(pos + HEADER_SIZE_BYTES..end).unwrap_or_default();
        let mut framed = Vec::with_capacity(HEADER_SIZE_BYTES + len);
        header.encode(crc32c::crc32c(payload), payload, &mut framed);
        if let (Some(target), Some(crc)) = (data.get_mut(pos..pos + 4), framed.get(..4)) {
            target.copy_from_slice(crc);
        }
        pos = end;
    }
}

/// WAL segment replay: `data[1..]` as WAL segment number 1 (with every
/// record's crc fixed up when bit 0 of `data[0]` is set), scanned, and each
/// record's payload decoded as a write batch.
pub fn wal_segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut segment = rest.to_vec();
    if mode & 1 == 1 {
        fix_record_crcs(&mut segment);
    }
    let segment = Bytes::from(segment);
    let scan = crate::wal::reader::scan_segment(&segment, 1);
    let mut expected = scan.records.first().map(|record| record.first_seqno);
    for record in &scan.records {
        assert_eq!(Some(record.first_seqno), expected, "records do not continue");
        assert!(record.offset < segment.len() as u64);
        let count = crate::batch::decode_payload(&record.payload).map_or(0, |entries| entries.len());
        // A record counts as many seqnos as its payload says it holds.
        let stated = crate::wal::reader::payload_count(&record.payload).unwrap_or(0);
        if count > 0 {
            assert_eq!(count as u64, stated);
        }
        expected = record.first_seqno.checked_add(stated);
    }
}

/// Manifest replay and `CURRENT`: `data[1..]` as `MANIFEST-000001` (crcs
/// fixed up when bit 0 of `data[0]` is set) replayed into a version, and as
/// a `CURRENT` file; also the bytes as one version edit.
pub fn manifest(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = crate::manifest::VersionEdit::decode(rest);
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fix_record_crcs(&mut bytes);
    }
    let dir = Path::new("/fuzz");
    let sim = SimFs::new(0);
    sim.write_file_durable(&crate::filename::manifest_path(dir, 1), bytes);
    sim.write_file_durable(&crate::filename::FileKind::Current.path(dir), rest.to_vec());
    let fs: Arc<dyn Fs> = sim;
    block_on(async {
        let _ = crate::manifest::read_current(&fs, dir).await;
        let path = crate::filename::manifest_path(dir, 1);
        if let Ok(read) = crate::manifest::read_manifest_edits(&fs, dir, 1).await
            && let Ok(replayed) = crate::version::ReplayedManifest::replay(&read.edits, &path)
        {
            assert!(
                replayed
                    .version
                    .tables()
                    .all(|t| t.number < replayed.next_file_number)
            );
        }
    });
}

/// The write-batch payload decoder. A payload that decodes must decode to
/// the same entries after a round trip through [`crate::WriteBatch`].
pub fn batch(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    let Ok(entries) = crate::batch::decode_payload(&payload) else {
        return;
    };
    assert!(!entries.is_empty());
    let mut batch = crate::WriteBatch::new();
    for entry in &entries {
        match entry.kind {
            ValueKind::Delete => batch.push(ValueKind::Delete, &entry.key, None),
            kind => batch.push(kind, &entry.key, Some(&entry.value)),
        }
    }
    let Ok((encoded, count)) = batch.into_payload() else {
        // NOTE: a payload within the decoder's limits may still exceed the
        // batch limits (an 8 MiB value cannot appear in a fuzz input).
        return;
    };
    assert_eq!(count as usize, entries.len());
    let again = crate::batch::decode_payload(&encoded);
    assert_eq!(again.as_ref(), Ok(&entries), "round trip changed the batch");
}

/// Most operations one op-sequence input runs.
pub const MAX_OPS: usize = 200;

/// One decoded step of [`ops`].
#[derive(Debug, Clone)]
enum Step {
    Put(u8, Vec<u8>),
    Delete(u8),
    /// Deletes keys `start..start + len`.
    DeleteRange(u8, u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Get(u8),
    Scan,
    Flush,
    Reopen,
    Crash(TearMode),
}

/// Decodes the op sequence: each op is a tag byte and its arguments.
fn steps(data: &[u8]) -> Vec<Step> {
    let mut bytes = data.iter().copied();
    let mut steps = Vec::new();
    while let Some(tag) = bytes.next() {
        if steps.len() >= MAX_OPS {
            break;
        }
        let key = bytes.next().unwrap_or(0) % 32;
        let step = match tag % 16 {
            0..=5 => {
                let len = usize::from(bytes.next().unwrap_or(0)) * 8;
                Step::Put(key, vec![tag; len])
            }
            6 => Step::Delete(key),
            7 => Step::DeleteRange(key, 1 + bytes.next().unwrap_or(0) % 8),
            8 => {
                let count = 1 + usize::from(key % 4);
                let entries = (0..count)
                    .map(|i| {
                        let k = key.wrapping_add(i as u8 * 7) % 32;
                        if i % 3 == 2 {
                            (k, None)
                        } else {
                            (k, Some(vec![tag ^ i as u8; 40]))
                        }
                    })
                    .collect();
                Step::Batch(entries)
            }
            9 | 10 => Step::Get(key),
            11 => Step::Scan,
            12 => Step::Flush,
            13 => Step::Reopen,
            14 => Step::Crash(TearMode::DropAll),
            _ => Step::Crash(TearMode::Random),
        };
        steps.push(step);
    }
    steps
}

fn key_name(key: u8) -> Vec<u8> {
    format!("key{key:02}").into_bytes()
}

/// Options of the op-sequence store: small enough that a few hundred ops
/// rotate WAL segments, flush and compact.
fn ops_options(fs: &Arc<SimFs>) -> crate::Options {
    crate::Options::default()
        .fs(Arc::clone(fs) as Arc<dyn Fs>)
        .wal_segment_size_bytes(4096)
        .write_buffer_size_bytes(2048)
        .target_file_size_bytes(4096)
        .max_bytes_for_level_base(16 * 1024)
}

/// An operation sequence driving a store on the simulated disk against a
/// `BTreeMap` model, with flush, reopen and crash steps. Every write is
/// durable (`SyncMode::Always`) and awaited, so after a crash the store
/// must hold exactly the model. Returns how many steps ran.
pub fn ops(data: &[u8]) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let Ok(runtime) = runtime else {
        return 0;
    };
    let steps = steps(data);
    let count = steps.len();
    runtime.block_on(run_ops(steps));
    count
}

#[expect(
    clippy::too_many_lines,
    reason = "one interpreter loop, one arm per kind of step"
)]
async fn run_ops(steps: Vec<Step>) {
    let dir = Path::new("/db");
    let mut sim = SimFs::new(steps.len() as u64);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let open = |sim: &Arc<SimFs>| crate::Db::open(dir, ops_options(sim));
    let mut db = open(&sim).await.unwrap_or_else(|e| panic!("open: {e}"));
    for (index, step) in steps.into_iter().enumerate() {
        let context = |what: &str| format!("step {index} ({what})");
        match step {
            Step::Put(key, value) => {
                db.put(key_name(key), &value)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("put")));
                model.insert(key_name(key), value);
            }
            Step::Delete(key) => {
                db.delete(key_name(key))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("delete")));
                model.remove(&key_name(key));
            }
            Step::DeleteRange(start, len) => {
                let (start, end) = (key_name(start), key_name(start + len));
                db.delete_range(start.as_slice()..end.as_slice())
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("delete_range")));
                model.retain(|k, _| !(start <= *k && *k < end));
            }
            Step::Batch(entries) => {
                let mut batch = crate::WriteBatch::new();
                for (key, value) in &entries {
                    match value {
                        Some(value) => batch.put(key_name(*key), value),
                        None => batch.delete(key_name(*key)),
                    };
                }
                db.write(batch)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("batch")));
                for (key, value) in entries {
                    match value {
                        Some(value) => model.insert(key_name(key), value),
                        None => model.remove(&key_name(key)),
                    };
                }
            }
            Step::Get(key) => {
                let got = db
                    .get(key_name(key))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("get")));
                assert_eq!(
                    got.as_deref(),
                    model.get(&key_name(key)).map(Vec::as_slice),
                    "{}",
                    context("get")
                );
            }
            Step::Scan => assert_scan(&db, &model, &context("scan")).await,
            Step::Flush => db
                .flush()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", context("flush"))),
            Step::Reopen => {
                db.close()
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("close")));
                drop(db);
                db = open(&sim)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("reopen")));
            }
            Step::Crash(mode) => {
                drop(db);
                sim = sim.recover_with(mode);
                db = open(&sim)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", context("open after crash")));
                assert_scan(&db, &model, &context("scan after crash")).await;
            }
        }
    }
    assert_scan(&db, &model, "final scan").await;
    let _ = db.close().await;
}

async fn assert_scan(db: &crate::Db, model: &BTreeMap<Vec<u8>, Vec<u8>>, context: &str) {
    use futures::StreamExt;
    let rows: Vec<(Vec<u8>, Vec<u8>)> = db
        .scan::<&[u8], _>(..)
        .map(|row| row.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<crate::error::Result<_>>()
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let expected: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(rows, expected, "{context}: store and model disagree");
}

/// The encoded internal key of a put of `user_key` at `seqno`, for tests
/// that build blocks.
pub fn encoded_key(user_key: &[u8], seqno: u64) -> Vec<u8> {
    let key = crate::key::InternalKey::new(Bytes::copy_from_slice(user_key), seqno, ValueKind::Put);
    encoded_key::encode(&key)
}
