//! `ringdb check`: verifies a closed store without changing it.
//!
//! Reads `CURRENT`, the manifest it names, every table the manifest's
//! version references (footer, metadata blocks and every data block with
//! its checksum and entries) and every WAL segment recovery would replay,
//! and reports each damaged file with the offset of the damage.
//!
//! Ownership: a free function over an [`Fs`]; it holds no lock and opens
//! every file with [`OpenMode::Read`], so it can run on a copy of a store
//! or beside tools that only read. A store open for writing may change
//! files under it: check a closed store.
//!
//! Invariants:
//! - Nothing is opened for writing, created, renamed or removed.
//! - Every length read from disk is bounded before it is used (the
//!   decoders of the engine do the work; this module only walks them).
//! - Damage found is reported, never repaired; a torn tail that recovery
//!   would drop (the newest WAL segment's, or the manifest's last edit
//!   cut short) is a note, not damage, because a crash leaves one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::filename::{FileKind, manifest_path, table_path, wal_number, wal_path};
use crate::io::{Fs, OpenMode};
use crate::key::SeqNo;
use crate::manifest::{VersionEdit, read_current};
use crate::sst::{ReadStats, Table};
use crate::version::ReplayedManifest;
use crate::wal::format::{HEADER_SIZE_BYTES, RecordHeader};
use crate::wal::reader::{SegmentEnd, scan_records, scan_segment};

/// One damaged place in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The damaged file.
    pub path: PathBuf,
    /// Byte offset of the damaged structure (block, record, footer).
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at offset {}: {}",
            self.path.display(),
            self.offset,
            self.reason
        )
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// The manifest `CURRENT` names, if it could be read.
    pub manifest: Option<PathBuf>,
    /// Tables the manifest references.
    pub tables: usize,
    /// Data blocks verified (checksum, decompression, entries).
    pub data_blocks: u64,
    /// WAL segments scanned.
    pub wal_segments: usize,
    /// WAL records verified (checksum, batch payload).
    pub wal_records: u64,
    /// Every damaged place found.
    pub damage: Vec<Damage>,
    /// Harmless findings: torn tails a crash leaves, which recovery drops.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// True when no damage was found.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }

    fn damaged(&mut self, path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) {
        self.damage.push(Damage {
            path: path.into(),
            offset,
            reason: reason.into(),
        });
    }

    /// Records `error` as damage if it is corruption; returns other errors.
    fn absorb(&mut self, error: Error) -> Result<()> {
        match error {
            Error::Corruption { path, offset, reason } => {
                self.damaged(path, offset, reason);
                Ok(())
            }
            other => Err(other),
        }
    }
}

/// Checks the store in `dir` on the local filesystem (through the thread
/// pool backend, which needs no ring).
///
/// # Errors
/// [`Error::Io`] if a file cannot be listed, opened or read (a missing
/// table is damage, not an error). Damage is in the report, not an error.
///
/// # Cancel safety
/// Cancel safe: it only reads.
pub async fn check(dir: impl AsRef<Path>) -> Result<CheckReport> {
    let fs = crate::io::threads::ThreadsFs::new()
        .map_err(|e| Error::io("start the io thread pool", dir.as_ref(), e))?;
    check_with_fs(std::sync::Arc::new(fs), dir.as_ref()).await
}

/// [`check`] on any [`Fs`] (the simulated disk in tests).
///
/// # Errors
/// As [`check`].
///
/// # Cancel safety
/// Cancel safe: it only reads.
pub async fn check_with_fs(fs: Arc<dyn Fs>, dir: &Path) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    if let Err(e) = fs.list_dir(dir).await {
        if e.kind() == std::io::ErrorKind::NotFound {
            report.damaged(dir, 0, "no such directory");
            return Ok(report);
        }
        return Err(Error::io("list directory", dir, e));
    }
    let number = match read_current(&fs, dir).await {
        Ok(Some(number)) => number,
        Ok(None) => {
            report.damaged(
                FileKind::Current.path(dir),
                0,
                "missing: no store here, or CURRENT was lost",
            );
            return Ok(report);
        }
        Err(error) => {
            report.absorb(error)?;
            return Ok(report);
        }
    };
    let path = manifest_path(dir, number);
    report.manifest = Some(path.clone());
    let Some(replayed) = check_manifest(&fs, &path, number, &mut report).await? else {
        return Ok(report);
    };
    for table in replayed.version.tables() {
        report.tables += 1;
        check_table(&fs, dir, table.number, table.size_bytes, &mut report).await?;
    }
    check_wal(&fs, dir, &replayed, &mut report).await?;
    Ok(report)
}

/// Reads a whole file (bounded reads; its size is the file's real size).
async fn read_whole(fs: &Arc<dyn Fs>, path: &Path) -> Result<Bytes> {
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io("open for check", path, e))?;
    let len = file
        .size_bytes()
        .await
        .map_err(|e| Error::io("stat for check", path, e))?;
    let data = crate::io::read_prefix(file.as_ref(), len)
        .await
        .map_err(|e| Error::io("read for check", path, e))?;
    Ok(Bytes::from(data))
}

/// Verifies every edit of the manifest and replays them; `None` if the
/// manifest is too damaged to name the live tables.
async fn check_manifest(
    fs: &Arc<dyn Fs>,
    path: &Path,
    number: u64,
    report: &mut CheckReport,
) -> Result<Option<ReplayedManifest>> {
    let data = match read_whole(fs, path).await {
        Ok(data) => data,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            report.damaged(path, 0, "the manifest CURRENT names is missing");
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let scan = scan_records(&data, number, |_| Some(1));
    let mut edits = Vec::new();
    for (index, record) in scan.records.iter().enumerate() {
        if record.first_seqno != index as u64 {
            report.damaged(
                path,
                record.offset,
                format!("edit numbered {} at index {index}", record.first_seqno),
            );
            return Ok(None);
        }
        match VersionEdit::decode(&record.payload) {
            Ok(edit) => edits.push(edit),
            Err(reason) => {
                report.damaged(path, record.offset, format!("bad version edit: {reason}"));
                return Ok(None);
            }
        }
    }
    if let SegmentEnd::Damaged { offset, reason } = &scan.end {
        if crate::manifest::is_torn_last_edit(&data, number, *offset, reason) {
            report.notes.push(format!(
                "{}: torn last edit at offset {offset} ({reason}); recovery drops it",
                path.display()
            ));
        } else {
            report.damaged(path, *offset, reason.clone());
        }
    }
    if edits.is_empty() {
        report.damaged(path, 0, "manifest holds no edit");
        return Ok(None);
    }
    match ReplayedManifest::replay(&edits, path) {
        Ok(replayed) => Ok(Some(replayed)),
        Err(error) => {
            report.absorb(error)?;
            Ok(None)
        }
    }
}

/// Verifies one table: its size against the manifest's, footer and
/// metadata blocks (at open), then every data block.
async fn check_table(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    number: u64,
    expected_size: u64,
    report: &mut CheckReport,
) -> Result<()> {
    let path = table_path(dir, number);
    let file = match fs.open(&path, OpenMode::Read).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.damaged(&path, 0, "table the manifest references is missing");
            return Ok(());
        }
        Err(e) => return Err(Error::io("open table for check", &path, e)),
    };
    let size = file
        .size_bytes()
        .await
        .map_err(|e| Error::io("stat table for check", &path, e))?;
    if size != expected_size {
        report.damaged(
            &path,
            size.min(expected_size),
            format!("table is {size} bytes, the manifest says {expected_size}"),
        );
        return Ok(());
    }
    let table = match Table::open(file, path.clone(), number, size, None, Arc::new(ReadStats::new())).await {
        Ok(table) => table,
        Err(error) => return report.absorb(error),
    };
    let mut index = table.index_iter();
    if let Err(reason) = index.seek_to_first() {
        return report.absorb(table.index_corruption(reason));
    }
    while index.valid() {
        let handle = match table.block_handle(&index) {
            Ok(handle) => handle,
            Err(error) => return report.absorb(error),
        };
        report.data_blocks += 1;
        match table.data_block(handle).await {
            Ok(block) => {
                if let Err(reason) = walk_block(&block) {
                    report.absorb(table.block_corruption(handle, reason))?;
                }
            }
            Err(error) => report.absorb(error)?,
        }
        if let Err(reason) = index.next() {
            return report.absorb(table.index_corruption(reason));
        }
    }
    Ok(())
}

/// Decodes every entry of a block, checking keys are valid and increasing.
fn walk_block(block: &crate::sst::block::Block) -> std::result::Result<(), String> {
    let mut iter = block.iter();
    iter.seek_to_first()?;
    let mut previous: Option<Vec<u8>> = None;
    while iter.valid() {
        if !crate::sst::encoded_key::is_valid(iter.key()) {
            return Err("invalid internal key".to_owned());
        }
        if let Some(previous) = &previous
            && crate::sst::encoded_key::compare(previous, iter.key()).is_ge()
        {
            return Err("keys out of order".to_owned());
        }
        previous = Some(iter.key().to_vec());
        iter.next()?;
    }
    Ok(())
}

/// Whether a valid record of `segment` starts anywhere in `data` after
/// `from`: damage followed by good records is no torn tail.
fn valid_record_after(data: &Bytes, segment: u64, from: usize) -> bool {
    (from.saturating_add(1)..data.len()).any(|pos| {
        let Some(rest) = data.get(pos..) else {
            return false;
        };
        let Some((crc, header)) = RecordHeader::decode(rest) else {
            return false;
        };
        let len = header.payload_len as usize;
        if header.segment != segment || len == 0 || len > crate::limits::MAX_BATCH_SIZE_BYTES {
            return false;
        }
        rest.get(HEADER_SIZE_BYTES..HEADER_SIZE_BYTES.saturating_add(len))
            .is_some_and(|payload| header.verify(crc, payload))
    })
}

/// Scans every WAL segment recovery would replay: checksums, payloads and
/// seqno continuity.
async fn check_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    replayed: &ReplayedManifest,
    report: &mut CheckReport,
) -> Result<()> {
    let names = fs
        .list_dir(dir)
        .await
        .map_err(|e| Error::io("list directory", dir, e))?;
    let mut segments: Vec<u64> = names
        .iter()
        .filter_map(|name| wal_number(name))
        .filter(|&number| number >= replayed.log_number)
        .collect();
    segments.sort_unstable();
    // `None` after damage that leaves the next seqno unknown (a bad record
    // with good ones after it): the next segment is not held to one then.
    let mut expected: Option<SeqNo> = Some(replayed.last_seqno + 1);
    // Damage at the end of the previous segment holding records: harmless
    // only if the log goes on exactly after its last good record.
    let mut pending: Option<Damage> = None;
    for number in segments {
        let path = wal_path(dir, number);
        let data = read_whole(fs, &path).await?;
        report.wal_segments += 1;
        let scan = scan_segment(&data, number);
        if let Some(first) = scan.records.first() {
            match expected {
                Some(expected) if first.first_seqno != expected => {
                    let damage = pending.take().unwrap_or(Damage {
                        path: path.clone(),
                        offset: first.offset,
                        reason: format!("seqno {} where {expected} was expected", first.first_seqno),
                    });
                    report.damage.push(damage);
                }
                _ => {
                    if let Some(dropped) = pending.take() {
                        report
                            .notes
                            .push(format!("{dropped} (a torn tail an earlier recovery dropped)"));
                    }
                }
            }
        }
        for record in &scan.records {
            report.wal_records += 1;
            match crate::batch::decode_payload(&record.payload) {
                Ok(entries) => expected = record.first_seqno.checked_add(entries.len() as u64),
                Err(reason) => report.damaged(&path, record.offset, format!("bad batch payload: {reason}")),
            }
        }
        if let SegmentEnd::Damaged { offset, reason } = scan.end {
            let at = usize::try_from(offset).unwrap_or(usize::MAX);
            if valid_record_after(&data, number, at) {
                report.damaged(&path, offset, format!("{reason}, with valid records after it"));
                expected = None;
            } else if pending.is_none() || !scan.records.is_empty() {
                pending = Some(Damage { path, offset, reason });
            }
        }
    }
    if let Some(torn) = pending {
        report.notes.push(format!(
            "{torn} (torn tail of the newest WAL segment; recovery drops it)"
        ));
    }
    Ok(())
}
