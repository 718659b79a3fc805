//! Criterion microbenchmarks of the store's hot inner pieces: memtable
//! insert and get, data-block encode, decode and seek, bloom filter probe,
//! WAL record framing and write-batch decode.
//!
//! `cargo bench --bench micro` runs them (`-- memtable` filters by name).
//! Keys are 16 bytes (`key` + a zero-padded number), values 100 bytes, as
//! in `ringdb bench`. These measure code in isolation, on warm caches;
//! `ringdb bench` and `benches/peers` measure the store.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringdb::WriteBatch;
use ringdb::bench_api::{Memtable, batch_payload, decode_batch, encode_key, encode_wal_record};
use ringdb::sst::block::{Block, BlockBuilder};
use ringdb::sst::bloom::{BloomBuilder, BloomFilter};

/// Keys per memtable, block set and filter.
const KEYS: u64 = 10_000;
/// Entries between restart points, as the table builder's data blocks.
const RESTART_INTERVAL: usize = 16;
/// Target size of one data block, as the default `Options::block_size_bytes`.
const BLOCK_SIZE_BYTES: usize = 4096;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:013}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    (0..100u64).map(|j| (i.wrapping_mul(31) + j) as u8).collect()
}

/// A scattered order of 0..KEYS (a multiplicative permutation).
fn scattered(i: u64) -> u64 {
    (i * 7_919) % KEYS
}

fn memtable(c: &mut Criterion) {
    let mut group = c.benchmark_group("memtable");
    group.throughput(Throughput::Elements(KEYS));
    let entries: Vec<(Bytes, Bytes)> = (0..KEYS)
        .map(|i| (Bytes::from(key(scattered(i))), Bytes::from(value(i))))
        .collect();
    group.bench_function("insert_10k_random", |b| {
        b.iter_batched(
            Memtable::new,
            |table| {
                for (seqno, (k, v)) in entries.iter().enumerate() {
                    table.put(k.clone(), seqno as u64 + 1, v.clone());
                }
                table
            },
            BatchSize::LargeInput,
        )
    });
    let table = Memtable::new();
    for (seqno, (k, v)) in entries.iter().enumerate() {
        table.put(k.clone(), seqno as u64 + 1, v.clone());
    }
    group.bench_function("get_10k_random", |b| {
        b.iter(|| {
            for i in 0..KEYS {
                let k = &entries[scattered(i) as usize].0;
                black_box(table.get(k, u64::MAX >> 8));
            }
        })
    });
    group.finish();
}

/// The encoded data blocks of KEYS sorted entries, cut at the target size.
fn encode_blocks() -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut builder = BlockBuilder::new(RESTART_INTERVAL);
    for i in 0..KEYS {
        builder.add(&encode_key(&key(i), i + 1), &value(i));
        if builder.current_size_bytes() >= BLOCK_SIZE_BYTES {
            blocks.push(builder.finish().to_vec());
            builder.reset();
        }
    }
    if !builder.is_empty() {
        blocks.push(builder.finish().to_vec());
    }
    blocks
}

fn block(c: &mut Criterion) {
    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Elements(KEYS));
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
        .map(|i| (encode_key(&key(i), i + 1), value(i)))
        .collect();
    group.bench_function("encode_10k", |b| {
        let mut builder = BlockBuilder::new(RESTART_INTERVAL);
        b.iter(|| {
            let mut bytes = 0;
            for (k, v) in &encoded {
                builder.add(k, v);
                if builder.current_size_bytes() >= BLOCK_SIZE_BYTES {
                    bytes += builder.finish().len();
                    builder.reset();
                }
            }
            bytes += builder.finish().len();
            builder.reset();
            black_box(bytes)
        })
    });
    let blocks: Vec<Bytes> = encode_blocks().into_iter().map(Bytes::from).collect();
    group.bench_function("decode_and_iterate_10k", |b| {
        b.iter(|| {
            let mut entries = 0u64;
            for data in &blocks {
                let block = Block::new(data.clone()).expect("a block the builder wrote");
                let mut iter = block.iter();
                iter.seek_to_first().expect("valid block");
                while iter.valid() {
                    black_box(iter.value_slice());
                    entries += 1;
                    iter.next().expect("valid block");
                }
            }
            assert_eq!(entries, KEYS);
        })
    });
    let decoded: Vec<Block> = blocks
        .iter()
        .map(|data| Block::new(data.clone()).expect("a block the builder wrote"))
        .collect();
    let per_block = KEYS.div_ceil(decoded.len() as u64);
    let targets: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| encode_key(&key(scattered(i)), u64::MAX >> 8))
        .collect();
    group.bench_function("seek_10k_random", |b| {
        b.iter(|| {
            for (i, target) in targets.iter().enumerate() {
                let n = scattered(i as u64);
                let block = &decoded[((n / per_block) as usize).min(decoded.len() - 1)];
                let mut iter = block.iter();
                iter.seek(target).expect("valid block");
                black_box(iter.valid());
            }
        })
    });
    group.finish();
}

fn bloom(c: &mut Criterion) {
    let mut group = c.benchmark_group("bloom");
    group.throughput(Throughput::Elements(KEYS));
    let mut builder = BloomBuilder::new(10);
    for i in 0..KEYS {
        builder.add(&key(i));
    }
    let filter = BloomFilter::decode(Bytes::from(builder.finish())).expect("a filter the builder wrote");
    let present: Vec<Vec<u8>> = (0..KEYS).map(|i| key(scattered(i))).collect();
    let absent: Vec<Vec<u8>> = (KEYS..2 * KEYS).map(key).collect();
    group.bench_function("probe_10k_present", |b| {
        b.iter(|| present.iter().filter(|k| filter.may_contain(k)).count())
    });
    group.bench_function("probe_10k_absent", |b| {
        b.iter(|| absent.iter().filter(|k| filter.may_contain(k)).count())
    });
    group.finish();
}

fn wal_and_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal");
    let single = {
        let mut batch = WriteBatch::new();
        batch.put(key(1), value(1));
        batch_payload(batch).expect("a batch within the limits")
    };
    let hundred = {
        let mut batch = WriteBatch::new();
        for i in 0..100 {
            batch.put(key(i), value(i));
        }
        batch_payload(batch).expect("a batch within the limits")
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_record_1_put", |b| {
        let mut dst = Vec::with_capacity(4096);
        b.iter(|| {
            dst.clear();
            encode_wal_record(7, 42, &single, &mut dst);
            black_box(dst.len())
        })
    });
    group.bench_function("encode_batch_1_put", |b| {
        b.iter(|| {
            let mut batch = WriteBatch::new();
            batch.put(key(1), value(1));
            black_box(batch_payload(batch).expect("within the limits"))
        })
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("decode_batch_100_puts", |b| {
        b.iter(|| assert_eq!(decode_batch(&hundred), Ok(100)))
    });
    group.finish();
}

criterion_group!(benches, memtable, block, bloom, wal_and_batch);
criterion_main!(benches);
