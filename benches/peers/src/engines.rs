//! The engines under comparison, each opened with the same settings where
//! they have one: no compression, 10 bloom bits per key, the same block
//! cache capacity, 64 MiB memtables (every engine's default).
//!
//! - ringdb: `SyncMode::Always` puts for the durable workloads, from tokio
//!   tasks (its API is async); `SyncMode::Buffered` puts and one `sync()`
//!   for the fills.
//! - RocksDB (rust-rocksdb): `WriteOptions::set_sync(true)` for durable puts
//!   (its WAL group commit covers concurrent writers), `sync=false` and one
//!   `flush_wal(true)` for the fills; from OS threads.
//! - fjall: `insert` then `keyspace.persist(PersistMode::SyncData)` for a
//!   durable put; journal persisted by hand (`manual_journal_persist`) and
//!   one `persist(SyncData)` at the end of a fill; from OS threads.
//! - raw: no store, a preallocated file; a durable put is a `pwrite` of a
//!   record of the size of ringdb's WAL record plus an `fdatasync`, each
//!   writer in its own region: what the disk gives when nobody groups syncs.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use crate::BoxError;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ringdb,
    #[cfg(feature = "rocksdb")]
    Rocksdb,
    Fjall,
    Raw,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ringdb => "ringdb",
            #[cfg(feature = "rocksdb")]
            Kind::Rocksdb => "rocksdb",
            Kind::Fjall => "fjall",
            Kind::Raw => "raw",
        }
    }

    pub fn parse(name: &str) -> Result<Kind, BoxError> {
        Ok(match name {
            "ringdb" => Kind::Ringdb,
            #[cfg(feature = "rocksdb")]
            "rocksdb" => Kind::Rocksdb,
            "fjall" => Kind::Fjall,
            "raw" => Kind::Raw,
            other => return Err(format!("unknown engine {other} (built without it?)").into()),
        })
    }
}

/// Bytes a WAL record adds to a put (ringdb's header and batch framing):
/// the raw loop writes records of key + value + this.
pub const RAW_RECORD_OVERHEAD_BYTES: usize = 24;
/// Bytes of the raw loop's file per writer region.
const RAW_REGION_BYTES: u64 = 4 << 20;
/// fjall's partition name.
const PARTITION: &str = "bench";

/// One open engine.
pub enum Engine {
    Ringdb(ringdb::Db),
    #[cfg(feature = "rocksdb")]
    Rocksdb(Arc<rocksdb::DB>),
    Fjall(fjall::Keyspace, fjall::PartitionHandle),
    Raw(Arc<File>, usize),
}

/// Opens `kind` in `dir` with a block cache of `cache_bytes`; `buffered`
/// opens ringdb with `SyncMode::Buffered` (the fills).
pub async fn open(
    kind: Kind,
    dir: &Path,
    cache_bytes: u64,
    writers: usize,
    record: usize,
    buffered: bool,
) -> Result<Engine, BoxError> {
    std::fs::create_dir_all(dir)?;
    Ok(match kind {
        Kind::Ringdb => {
            let mode = if buffered {
                ringdb::SyncMode::Buffered
            } else {
                ringdb::SyncMode::Always
            };
            let options = ringdb::Options::default()
                .sync_mode(mode)
                .block_cache_size_bytes(usize::try_from(cache_bytes)?)
                .bloom_bits_per_key(10)
                .compression(ringdb::Compression::None);
            Engine::Ringdb(ringdb::Db::open(dir, options).await?)
        }
        #[cfg(feature = "rocksdb")]
        Kind::Rocksdb => {
            let mut options = rocksdb::Options::default();
            options.create_if_missing(true);
            options.set_compression_type(rocksdb::DBCompressionType::None);
            let mut table = rocksdb::BlockBasedOptions::default();
            let cache = rocksdb::Cache::new_lru_cache(usize::try_from(cache_bytes)?);
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            options.set_block_based_table_factory(&table);
            Engine::Rocksdb(Arc::new(rocksdb::DB::open(&options, dir)?))
        }
        Kind::Fjall => {
            let keyspace = fjall::Config::new(dir)
                .cache_size(cache_bytes)
                .manual_journal_persist(true)
                .open()?;
            let options = fjall::PartitionCreateOptions::default()
                .compression(fjall::CompressionType::None)
                .bloom_filter_bits(Some(10))
                .manual_journal_persist(true);
            let partition = keyspace.open_partition(PARTITION, options)?;
            Engine::Fjall(keyspace, partition)
        }
        Kind::Raw => {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join("raw.dat"))?;
            // NOTE: zero-filled by writing and synced once, so the timed
            // fdatasyncs overwrite allocated blocks (as ringdb's WAL).
            let zeros = vec![0u8; 1 << 20];
            let size = RAW_REGION_BYTES * writers as u64;
            let mut offset = 0;
            while offset < size {
                file.write_all_at(&zeros, offset)?;
                offset += zeros.len() as u64;
            }
            file.sync_all()?;
            Engine::Raw(Arc::new(file), record)
        }
    })
}

impl Engine {
    /// A durable put from a thread (not ringdb, whose puts run in tasks).
    /// `slot` is the writer's index and `n` its put count, for the raw
    /// loop's offsets.
    pub fn put_durable_blocking(
        &self,
        key: &[u8],
        value: &[u8],
        slot: usize,
        n: u64,
    ) -> Result<(), BoxError> {
        match self {
            Engine::Ringdb(_) => Err("ringdb puts run in tasks".into()),
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => {
                let mut options = rocksdb::WriteOptions::default();
                options.set_sync(true);
                Ok(db.put_opt(key, value, &options)?)
            }
            Engine::Fjall(keyspace, partition) => {
                partition.insert(key, value)?;
                Ok(keyspace.persist(fjall::PersistMode::SyncData)?)
            }
            Engine::Raw(file, record) => {
                let mut buf = Vec::with_capacity(*record);
                buf.extend_from_slice(key);
                buf.extend_from_slice(value);
                buf.resize(*record, 0);
                let per_region = RAW_REGION_BYTES / *record as u64;
                let offset = slot as u64 * RAW_REGION_BYTES + (n % per_region) * *record as u64;
                file.write_all_at(&buf, offset)?;
                Ok(file.sync_data()?)
            }
        }
    }

    /// A buffered put (fills), from one thread; not for raw.
    pub fn put_buffered_blocking(&self, key: &[u8], value: &[u8]) -> Result<(), BoxError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => Ok(db.put(key, value)?),
            Engine::Fjall(_, partition) => Ok(partition.insert(key, value)?),
            _ => Err("not a blocking buffered engine".into()),
        }
    }

    /// Makes every buffered put durable.
    pub fn sync_blocking(&self) -> Result<(), BoxError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => Ok(db.flush_wal(true)?),
            Engine::Fjall(keyspace, _) => Ok(keyspace.persist(fjall::PersistMode::SyncData)?),
            _ => Err("not a blocking engine".into()),
        }
    }

    /// The value of `key`, from a thread.
    pub fn get_blocking(&self, key: &[u8]) -> Result<Option<usize>, BoxError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => Ok(db.get_pinned(key)?.map(|v| v.len())),
            Engine::Fjall(_, partition) => Ok(partition.get(key)?.map(|v| v.len())),
            _ => Err("not a blocking engine".into()),
        }
    }

    /// Iterates the whole store in key order; returns the entries seen.
    pub fn scan_all_blocking(&self) -> Result<u64, BoxError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => {
                let mut iter = db.raw_iterator();
                iter.seek_to_first();
                let mut n = 0;
                while iter.valid() {
                    std::hint::black_box(iter.value());
                    n += 1;
                    iter.next();
                }
                iter.status()?;
                Ok(n)
            }
            Engine::Fjall(_, partition) => {
                let mut n = 0;
                for item in partition.iter() {
                    std::hint::black_box(item?);
                    n += 1;
                }
                Ok(n)
            }
            _ => Err("not a blocking engine".into()),
        }
    }

    /// Seeks to `key` and reads `nexts` more entries; returns entries read.
    pub fn seek_blocking(&self, key: &[u8], nexts: usize) -> Result<usize, BoxError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => {
                let mut iter = db.raw_iterator();
                iter.seek(key);
                let mut n = 0;
                while iter.valid() && n <= nexts {
                    std::hint::black_box(iter.value());
                    n += 1;
                    iter.next();
                }
                iter.status()?;
                Ok(n)
            }
            Engine::Fjall(_, partition) => {
                let mut n = 0;
                for item in partition.range(key..).take(nexts + 1) {
                    std::hint::black_box(item?);
                    n += 1;
                }
                Ok(n)
            }
            _ => Err("not a blocking engine".into()),
        }
    }

    /// Writes the memtable out and closes the engine (untimed).
    pub async fn flush_and_close(self) -> Result<(), BoxError> {
        match self {
            Engine::Ringdb(db) => {
                db.flush().await?;
                db.close().await?;
            }
            #[cfg(feature = "rocksdb")]
            Engine::Rocksdb(db) => {
                db.flush()?;
                drop(db);
            }
            Engine::Fjall(keyspace, partition) => {
                keyspace.persist(fjall::PersistMode::SyncAll)?;
                partition.rotate_memtable_and_wait()?;
            }
            Engine::Raw(..) => {}
        }
        Ok(())
    }
}
