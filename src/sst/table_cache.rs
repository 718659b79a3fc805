//! The table cache: open tables, by file number.
//!
//! A table is opened once and then reached one of two ways:
//! - **Pinned**: the handle is kept in the table's manifest record
//!   ([`PinnedTable`], in `TableMeta::open`) until the last version holding
//!   that record is dropped. A read that holds a version reaches the table
//!   with no lock and no shared count touched. At most `capacity_tables`
//!   tables are pinned at once; a table opened past that is not.
//! - **Cached**: an LRU of at most `capacity_tables` handles by file number,
//!   for tables that are not pinned.
//!
//! So at most twice `capacity_tables` tables are open at once, and a store
//! of up to `capacity_tables` tables keeps each open from its first read to
//! its deletion, as RocksDB does with `max_open_files = -1`.
//!
//! Ownership: one per store, shared by every reader. Its LRU sits behind a
//! `std::sync::Mutex` held only for map operations, never across the open
//! (an await).
//!
//! Concurrency: two tasks asking for the same table that is not open yet
//! may both open it; the first to finish is cached and the other's handle
//! is dropped once its caller is done with it. That costs a duplicate open,
//! never a wrong answer (tables are immutable). Evicting a table only drops
//! the cache's handle: readers holding an `Arc<Table>` keep using it, and
//! the file closes when the last handle goes.
//!
//! Invariants:
//! - At most `capacity_tables` tables are held in the LRU (each is charged
//!   1), and `pinned` counts the live pins, at most `capacity_tables`.
//! - A table pinned by this cache is not in its LRU (though a reader that
//!   got it from the LRU just before may put it back when it races).
//! - A table is cached under the file number it was opened with, at
//!   `table_path(dir, file_number)`; a pinned handle is the one the cache
//!   opened for its record's file number.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::error::{Error, Result};
use crate::filename::table_path;
use crate::io::{Fs, OpenMode};
use crate::manifest::TableMeta;
use crate::sst::cache::BlockCache;
use crate::sst::lru::Lru;
use crate::sst::stats::ReadStats;
use crate::sst::table::reader::Table;

/// Open tables: pinned to their records, or least recently used evicted
/// first.
#[derive(Debug)]
pub struct TableCache {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    block_cache: Option<Arc<BlockCache>>,
    stats: Arc<ReadStats>,
    tables: Mutex<Lru<u64, Arc<Table>>>,
    capacity_tables: usize,
    /// Live pins, shared with each pin so that dropping one gives its
    /// place back.
    pinned: Arc<AtomicUsize>,
}

/// The open handle of one table, kept with its manifest record once the
/// table cache pins it (see the module doc).
#[derive(Default)]
pub struct PinnedTable(OnceLock<Pin>);

/// A pinned handle and the count it is part of.
struct Pin {
    table: Arc<Table>,
    pinned: Arc<AtomicUsize>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.pinned.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PinnedTable {
    /// The pinned handle, if the table has one.
    #[inline]
    pub fn get(&self) -> Option<&Arc<Table>> {
        self.0.get().map(|pin| &pin.table)
    }
}

/// A copy of a record does not share the original's open file: it starts
/// unpinned.
impl Clone for PinnedTable {
    fn clone(&self) -> Self {
        PinnedTable::default()
    }
}

/// Records are equal whatever is open.
impl PartialEq for PinnedTable {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PinnedTable {}

impl std::fmt::Debug for PinnedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() {
            "pinned"
        } else {
            "unpinned"
        })
    }
}

impl TableCache {
    /// A cache of at most `capacity_tables` open tables of `dir`, opened
    /// through `fs`, sharing `block_cache` and `stats`.
    pub fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        capacity_tables: usize,
        block_cache: Option<Arc<BlockCache>>,
        stats: Arc<ReadStats>,
    ) -> Self {
        TableCache {
            fs,
            dir,
            block_cache,
            stats,
            tables: Mutex::new(Lru::new(capacity_tables)),
            capacity_tables,
            pinned: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The open table `meta` records: its pinned handle, else the cached
    /// one, else a newly opened one; a handle not pinned yet is pinned to
    /// `meta` while fewer than `capacity_tables` are.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or read;
    /// [`Error::Corruption`] if it is not a valid table. Failures are not
    /// cached: the next call tries again.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped open leaves the cache as it was.
    pub async fn get(&self, meta: &TableMeta) -> Result<Arc<Table>> {
        if let Some(table) = meta.open.get() {
            return Ok(Arc::clone(table));
        }
        let table = self.cached(meta.number, meta.size_bytes).await?;
        let reserved = self
            .pinned
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pins| {
                (pins < self.capacity_tables).then_some(pins + 1)
            })
            .is_ok();
        if reserved {
            let pin = Pin {
                table: Arc::clone(&table),
                pinned: Arc::clone(&self.pinned),
            };
            // NOTE: if another reader pinned `meta` first, the rejected pin
            // is dropped here and gives its place back. A pinned table
            // leaves the LRU, whose places are for tables that are not.
            if meta.open.0.set(pin).is_ok() {
                let removed = self.lock().remove(&meta.number);
                drop(removed);
            }
        }
        Ok(table)
    }

    /// Tables pinned now.
    pub fn pinned(&self) -> usize {
        self.pinned.load(Ordering::Relaxed)
    }

    /// The open table `file_number` (of `file_size` bytes, as the manifest
    /// records) from the LRU, opening it if it is not there.
    async fn cached(&self, file_number: u64, file_size: u64) -> Result<Arc<Table>> {
        if let Some(table) = self.lock().get(&file_number).cloned() {
            debug_assert_eq!(
                table.file_size_bytes(),
                file_size,
                "table {file_number} size changed"
            );
            return Ok(table);
        }
        let path = table_path(&self.dir, file_number);
        let file = self
            .fs
            .open(&path, OpenMode::Read)
            .await
            .map_err(|e| Error::io("open sst", path.clone(), e))?;
        let table = Arc::new(
            Table::open(
                file,
                path,
                file_number,
                file_size,
                self.block_cache.clone(),
                Arc::clone(&self.stats),
            )
            .await?,
        );
        let mut tables = self.lock();
        // NOTE: another task may have opened the same table meanwhile; keep
        // theirs so every reader shares one handle.
        if let Some(existing) = tables.get(&file_number).cloned() {
            return Ok(existing);
        }
        let evicted = tables.insert(file_number, Arc::clone(&table), 1);
        drop(tables);
        drop(evicted);
        Ok(table)
    }

    /// Drops the cache's handle on table `file_number` (after a compaction
    /// deleted it, say).
    pub fn evict(&self, file_number: u64) {
        let removed = self.lock().remove(&file_number);
        drop(removed);
    }

    /// Tables held in the LRU now (pinned ones not counted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if no table is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Lru<u64, Arc<Table>>> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;
    use futures::executor::block_on;

    use super::*;
    use crate::io::sim::SimFs;
    use crate::key::{InternalKey, Lookup, MAX_SEQNO, ValueKind};
    use crate::sst::{TableBuilder, TableOptions};

    /// Writes table `number` holding one key, `t{number}`, in `/db`, and
    /// returns its record.
    async fn write(fs: &SimFs, number: u64) -> TableMeta {
        let path = table_path(Path::new("/db"), number);
        let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
        let mut builder = TableBuilder::new(file, path, TableOptions::default());
        let key = InternalKey::new(Bytes::from(format!("t{number}")), number, ValueKind::Put);
        builder.add(&key, b"v").await.unwrap();
        let properties = builder.finish().await.unwrap();
        TableMeta::from_properties(number, &properties)
    }

    async fn holds_its_key(table: &Table, number: u64) -> bool {
        let key = format!("t{number}");
        table.get(key.as_bytes(), MAX_SEQNO).await.unwrap() == Lookup::Found(Bytes::from_static(b"v"))
    }

    #[test]
    fn pins_at_most_capacity_tables_and_caches_the_rest() {
        block_on(async {
            let fs = SimFs::new(1);
            fs.create_dir_all(Path::new("/db")).await.unwrap();
            let mut metas = Vec::new();
            for number in 1..=5 {
                metas.push(write(&fs, number).await);
            }
            let stats = Arc::new(ReadStats::new());
            let cache = TableCache::new(fs.clone(), PathBuf::from("/db"), 2, None, stats);
            // The first two tables opened are pinned to their records.
            let first = cache.get(&metas[0]).await.unwrap();
            let again = cache.get(&metas[0]).await.unwrap();
            assert!(Arc::ptr_eq(&first, &again));
            assert!(Arc::ptr_eq(&first, metas[0].open.get().unwrap()));
            for (number, meta) in (1..=5).zip(&metas) {
                let table = cache.get(meta).await.unwrap();
                assert_eq!(table.file_number(), number);
                assert!(holds_its_key(&table, number).await);
                assert!(cache.len() <= 2);
            }
            assert_eq!(cache.pinned(), 2);
            assert!(metas[1].open.get().is_some());
            assert!(metas[2..].iter().all(|meta| meta.open.get().is_none()));
            // A copy of a record is the same record, not the same open file.
            let copy = metas[0].clone();
            assert_eq!(copy, metas[0]);
            assert!(copy.open.get().is_none());
            // Unpinned tables went through the LRU: table 3 was evicted,
            // and getting it again opens it anew.
            let third = cache.get(&metas[2]).await.unwrap();
            let _ = cache.get(&metas[3]).await.unwrap();
            let _ = cache.get(&metas[4]).await.unwrap();
            assert!(!Arc::ptr_eq(&third, &cache.get(&metas[2]).await.unwrap()));
            assert!(holds_its_key(&third, 3).await);
            // Dropping a pinned record gives its place back: the next table
            // opened is pinned.
            metas.remove(0);
            assert_eq!(cache.pinned(), 1);
            let _ = cache.get(&metas[1]).await.unwrap();
            assert!(metas[1].open.get().is_some());
            assert_eq!(cache.pinned(), 2);
            // The pinned handle held here outlives the record it was in.
            drop(metas);
            assert_eq!(cache.pinned(), 0);
            assert!(holds_its_key(&first, 1).await);
        });
    }

    #[test]
    fn failures_are_errors_and_are_not_cached() {
        block_on(async {
            let fs = SimFs::new(1);
            fs.create_dir_all(Path::new("/db")).await.unwrap();
            let meta = write(&fs, 2).await;
            let stats = Arc::new(ReadStats::new());
            let cache = TableCache::new(fs.clone(), PathBuf::from("/db"), 2, None, stats);
            // A missing table is an I/O error and is not cached.
            let mut missing = meta.clone();
            missing.number = 6;
            assert!(matches!(cache.get(&missing).await, Err(Error::Io { .. })));
            // A wrong size is corruption.
            let mut wrong_size = meta.clone();
            wrong_size.size_bytes += 1;
            assert!(cache.get(&wrong_size).await.unwrap_err().is_corruption());
            assert_eq!((cache.len(), cache.pinned()), (0, 0));
            assert!(missing.open.get().is_none() && wrong_size.open.get().is_none());
            // A pinned table leaves the LRU; evicting it drops nothing the
            // record holds.
            let table = cache.get(&meta).await.unwrap();
            assert_eq!((cache.len(), cache.pinned()), (0, 1));
            cache.evict(2);
            cache.evict(99);
            assert!(Arc::ptr_eq(&table, meta.open.get().unwrap()));
        });
    }
}
