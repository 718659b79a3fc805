//! Deleting tables that compaction replaced, once nobody reads them.
//!
//! A table leaves the current version when a compaction commits, but a
//! reader may still hold an older super-version (a scan, a snapshot read
//! in progress). Every version holds its tables' `Arc<TableMeta>`, so the
//! file can go exactly when the last `Arc` is gone: we keep a `Weak` and
//! delete the file once it no longer upgrades.
//!
//! Ownership: the compaction task adds and collects; nothing else deletes
//! tables while the store runs (open sweeps what a crash left).
//!
//! Invariants:
//! - A file is deleted only after its `TableMeta` is unreachable, so no
//!   version (and no reader) can still open it.

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use crate::filename::table_path;
use crate::io::Fs;
use crate::manifest::TableMeta;
use crate::sst::TableCache;

/// Tables no longer in the current version, waiting for their last reader.
#[derive(Debug, Default)]
pub(crate) struct ObsoleteTables {
    pending: Mutex<Vec<(Weak<TableMeta>, u64)>>,
}

impl ObsoleteTables {
    /// Records tables a committed compaction removed from the version.
    pub fn add(&self, tables: &[Arc<TableMeta>]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend(tables.iter().map(|t| (Arc::downgrade(t), t.number)));
    }

    /// Deletes the files of tables nobody references any more. Failures are
    /// logged: the next open sweeps any table no version holds.
    pub async fn collect(&self, fs: &Arc<dyn Fs>, dir: &Path, table_cache: &TableCache) -> usize {
        let doomed: Vec<u64> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let (dead, alive): (Vec<_>, Vec<_>) =
                pending.drain(..).partition(|(weak, _)| weak.strong_count() == 0);
            *pending = alive;
            dead.into_iter().map(|(_, number)| number).collect()
        };
        for &number in &doomed {
            table_cache.evict(number);
            let path = table_path(dir, number);
            if let Err(error) = fs.remove_file(&path).await {
                tracing::warn!(%error, path = %path.display(), "could not remove a compacted table");
            }
        }
        doomed.len()
    }
}
