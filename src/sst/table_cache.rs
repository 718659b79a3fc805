//! The table cache: a bounded set of open tables, by file number.
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
//! - At most `capacity_tables` tables are held (each is charged 1).
//! - A table is cached under the file number it was opened with, at
//!   `table_path(dir, file_number)`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::filename::table_path;
use crate::io::{Fs, OpenMode};
use crate::sst::cache::BlockCache;
use crate::sst::lru::Lru;
use crate::sst::stats::ReadStats;
use crate::sst::table::reader::Table;

/// Open tables, least recently used evicted first.
#[derive(Debug)]
pub struct TableCache {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    block_cache: Option<Arc<BlockCache>>,
    stats: Arc<ReadStats>,
    tables: Mutex<Lru<u64, Arc<Table>>>,
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
        }
    }

    /// The open table `file_number` (of `file_size` bytes, as the manifest
    /// records), opening it if it is not cached.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or read;
    /// [`Error::Corruption`] if it is not a valid table. Failures are not
    /// cached: the next call tries again.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped open leaves the cache as it was.
    pub async fn get(&self, file_number: u64, file_size: u64) -> Result<Arc<Table>> {
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

    /// Tables held now.
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

    /// Writes table `number` holding one key, `t{number}`, in `/db`.
    async fn write(fs: &SimFs, number: u64) -> u64 {
        let path = table_path(Path::new("/db"), number);
        let file = fs.open(&path, OpenMode::CreateNew).await.unwrap();
        let mut builder = TableBuilder::new(file, path, TableOptions::default());
        let key = InternalKey::new(Bytes::from(format!("t{number}")), number, ValueKind::Put);
        builder.add(&key, b"v").await.unwrap();
        builder.finish().await.unwrap().file_size_bytes
    }

    #[test]
    fn holds_at_most_capacity_tables_and_shares_handles() {
        block_on(async {
            let fs = SimFs::new(1);
            fs.create_dir_all(Path::new("/db")).await.unwrap();
            let mut sizes = Vec::new();
            for number in 1..=5 {
                sizes.push(write(&fs, number).await);
            }
            let stats = Arc::new(ReadStats::new());
            let cache = TableCache::new(fs.clone(), PathBuf::from("/db"), 2, None, stats);
            let first = cache.get(1, sizes[0]).await.unwrap();
            let again = cache.get(1, sizes[0]).await.unwrap();
            assert!(Arc::ptr_eq(&first, &again));
            for (number, size) in (1..=5).zip(&sizes) {
                let table = cache.get(number, *size).await.unwrap();
                assert_eq!(table.file_number(), number);
                let key = format!("t{number}");
                assert_eq!(
                    table.get(key.as_bytes(), MAX_SEQNO).await.unwrap(),
                    Lookup::Found(Bytes::from_static(b"v"))
                );
                assert!(cache.len() <= 2);
            }
            // Table 1 was evicted, but the handle held here still works.
            assert_eq!(
                first.get(b"t1", MAX_SEQNO).await.unwrap(),
                Lookup::Found(Bytes::from_static(b"v"))
            );
            let reopened = cache.get(1, sizes[0]).await.unwrap();
            assert!(!Arc::ptr_eq(&first, &reopened));
            cache.evict(1);
            cache.evict(99);
            assert_eq!(cache.len(), 1);
            // A missing table is an I/O error and is not cached.
            assert!(matches!(cache.get(6, 100).await, Err(Error::Io { .. })));
            // A wrong size is corruption.
            assert!(cache.get(2, sizes[1] + 1).await.unwrap_err().is_corruption());
            assert_eq!(cache.len(), 1);
        });
    }
}
