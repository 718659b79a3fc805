//! Online checkpoints: a consistent copy of the store, made while writes go
//! on, that opens as a store of its own.
//!
//! `Db::checkpoint(target)`:
//! 1. Notes the visible seqno `S`, then syncs the WAL: every write
//!    acknowledged before the call has a seqno at or below `S` and is now
//!    durable.
//! 2. Locks the version set: no flush or compaction commits, and no WAL
//!    segment is deleted, until the copy is done (writes go on; a flush
//!    that finishes meanwhile waits to commit). The current version's
//!    tables, its log number and its last seqno are the checkpoint's.
//! 3. Links each table into `target` (a hard link; a copy where the
//!    filesystem refuses the link), and copies each WAL segment at or above
//!    the log number up to the end of its last record with a seqno at or
//!    below `S`: a prefix of whole, synced records, so the copy never holds
//!    a torn record or a write that was not durable when it was read.
//! 4. Syncs every copied file, writes a manifest holding the version (and
//!    `CURRENT`), and syncs the directory.
//!
//! The checkpoint thus holds every write with a seqno up to `S`, and
//! possibly none after it: opening it replays the copied WAL onto the
//! linked tables.
//!
//! Ownership: runs on the caller's task; it shares the version set's lock
//! with flush and compaction.
//!
//! Invariants:
//! - Tables are immutable, so a link (or a copy) of a table in the locked
//!   version is the table.
//! - The copied WAL records start at the version's last seqno + 1 (the log
//!   number's segment starts there) and are contiguous up to `S`.

use std::path::Path;
use std::sync::Arc;

use super::Shared;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::filename::{table_path, wal_number, wal_path};
use crate::io::{Fs, OpenMode};
use crate::key::SeqNo;
use crate::manifest::{ManifestWriter, VersionEdit};
use crate::wal::reader::scan_segment;

impl Db {
    /// Writes a consistent copy of the store into `dir` (which must be
    /// empty or absent) while writes go on: a store of its own, holding
    /// every write acknowledged before the call. Tables are hard-linked
    /// where the filesystem allows (copied otherwise); the live WAL is
    /// copied up to the last write made durable for the checkpoint.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = ringdb::Db::open(dir.path().join("db"), ringdb::Options::default()).await?;
    /// db.put(b"k", b"v").await?;
    /// db.checkpoint(dir.path().join("backup")).await?;
    /// db.close().await?;
    /// let copy = ringdb::Db::open(dir.path().join("backup"), ringdb::Options::default()).await?;
    /// assert_eq!(copy.get(b"k").await?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), ringdb::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] if `dir` holds files; [`Error::Io`] if a
    /// file cannot be read, linked or written (the partial checkpoint is
    /// left in `dir`, without `CURRENT`, so it does not open as a store);
    /// [`Error::Poisoned`] or [`Error::Closed`] if the WAL sync cannot be
    /// made.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped call leaves a partial checkpoint in `dir`
    /// (without `CURRENT` unless it had finished); remove it.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> impl Future<Output = Result<()>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let target = dir.as_ref().to_path_buf();
        async move { checkpoint(&shared, &target).await }
    }
}

async fn checkpoint(shared: &Shared, target: &Path) -> Result<()> {
    let fs = &shared.fs;
    fs.create_dir_all(target)
        .await
        .map_err(|e| Error::io("create checkpoint directory", target, e))?;
    let present = fs
        .list_dir(target)
        .await
        .map_err(|e| Error::io("list checkpoint directory", target, e))?;
    if !present.is_empty() {
        return Err(Error::InvalidOptions(format!(
            "checkpoint directory {} is not empty",
            target.display()
        )));
    }
    // NOTE: read before the sync: in a buffered mode, writes made visible
    // after it may not be durable yet.
    let synced_seqno = shared.queue.visible_seqno();
    shared.queue.request_sync()?.await.unwrap_or(Err(Error::Closed))?;

    let versions = shared.versions.lock().await;
    let version = versions.current();
    let edit = VersionEdit {
        log_number: Some(versions.log_number),
        last_seqno: Some(versions.last_seqno),
        next_file_number: None,
        added: version
            .levels
            .iter()
            .enumerate()
            .flat_map(|(level, tables)| tables.iter().map(move |t| (level, Arc::clone(t))))
            .collect(),
        deleted: Vec::new(),
        closed_at_seqno: None,
    };
    let manifest_number = versions.file_numbers().load(std::sync::atomic::Ordering::Acquire);
    for (_, table) in &edit.added {
        let (from, to) = (
            table_path(&shared.dir, table.number),
            table_path(target, table.number),
        );
        link_or_copy(fs, &from, &to).await?;
    }
    copy_wal(fs, &shared.dir, target, versions.log_number, synced_seqno).await?;
    drop(versions);

    let edit = VersionEdit {
        next_file_number: Some(manifest_number + 1),
        ..edit
    };
    ManifestWriter::create(fs, target, manifest_number, &edit).await?;
    Ok(())
}

/// Links `from` to `to`, or copies it (and syncs the copy) if the
/// filesystem refuses the link.
async fn link_or_copy(fs: &Arc<dyn Fs>, from: &Path, to: &Path) -> Result<()> {
    match fs.hard_link(from, to).await {
        Ok(()) => Ok(()),
        Err(error) => {
            tracing::debug!(%error, from = %from.display(), "hard link refused; copying");
            let data = read_prefix(fs, from, None).await?;
            write_synced(fs, to, data).await
        }
    }
}

/// Copies the WAL segments numbered `log_number` and up from `dir` to
/// `target`, each up to its last record with a seqno at or below
/// `synced_seqno`; segments with no such record are left out.
async fn copy_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    target: &Path,
    log_number: u64,
    synced_seqno: SeqNo,
) -> Result<()> {
    let names = fs
        .list_dir(dir)
        .await
        .map_err(|e| Error::io("list directory", dir, e))?;
    let mut segments: Vec<u64> = names
        .iter()
        .filter_map(|name| wal_number(name))
        .filter(|&number| number >= log_number)
        .collect();
    segments.sort_unstable();
    for number in segments {
        let from = wal_path(dir, number);
        let data = bytes::Bytes::from(read_prefix(fs, &from, None).await?);
        let scan = scan_segment(&data, number);
        let kept_end = scan
            .records
            .iter()
            .take_while(|record| record.first_seqno <= synced_seqno)
            .last()
            .map(|record| {
                record.offset as usize + crate::wal::format::HEADER_SIZE_BYTES + record.payload.len()
            });
        let Some(end) = kept_end else { continue };
        let prefix = crate::coding::slice(&data, 0, end, "synced records")
            .map_err(|e| Error::corruption(&from, e.offset as u64, e.to_string()))?
            .to_vec();
        write_synced(fs, &wal_path(target, number), prefix).await?;
    }
    Ok(())
}

/// The first `len` bytes of `path` (all of it with `None`), read in
/// chunks ([`crate::io::read_prefix`]).
async fn read_prefix(fs: &Arc<dyn Fs>, path: &Path, len: Option<u64>) -> Result<Vec<u8>> {
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io("open file to checkpoint", path, e))?;
    let size = file
        .size_bytes()
        .await
        .map_err(|e| Error::io("stat file to checkpoint", path, e))?;
    let len = len.map_or(size, |len| len.min(size));
    crate::io::read_prefix(file.as_ref(), len)
        .await
        .map_err(|e| Error::io("read file to checkpoint", path, e))
}

/// Writes `data` to a new file at `path` and syncs it.
async fn write_synced(fs: &Arc<dyn Fs>, path: &Path, data: Vec<u8>) -> Result<()> {
    let file = fs
        .open(path, OpenMode::CreateNew)
        .await
        .map_err(|e| Error::io("create checkpoint file", path, e))?;
    if !data.is_empty() {
        file.write_all_at(data, 0)
            .await
            .map_err(|e| Error::io("write checkpoint file", path, e))?;
    }
    file.sync_data()
        .await
        .map_err(|e| Error::io("sync checkpoint file", path, e))
}
