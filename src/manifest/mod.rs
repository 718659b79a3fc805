//! The manifest: which tables make up the store, as a log of version edits.
//!
//! Files:
//! - `MANIFEST-NNNNNN`: records framed exactly like WAL records
//!   (`wal::format`), with `segment` = the manifest's number and
//!   `first_seqno` = the edit's index in the file (0, 1, 2, ...). Each edit
//!   is synced before anything that depends on it happens.
//! - `CURRENT`: the name of the live manifest and a newline. Replaced by
//!   writing `CURRENT.dbtmp`, syncing it, renaming it over `CURRENT` and
//!   syncing the directory.
//!
//! A store opens its manifest, replays it, and immediately rolls to a new
//! manifest holding one snapshot edit, so a manifest never grows without
//! bound across reopens; a running store rolls once its manifest passes
//! [`MAX_MANIFEST_SIZE_BYTES`](crate::limits::MAX_MANIFEST_SIZE_BYTES). Open first raises the next file number
//! above every manifest present, so a manifest left by an interrupted open
//! or roll never blocks the creation of the next one. A clean close
//! appends one last edit, `closed_at_seqno` (see `edit`).
//!
//! Invariants:
//! - Edits are applied in file order; a torn last edit (file ends inside
//!   it, only zeros follow, or one of its sectors reads as zeros and no
//!   valid edit follows) was never acknowledged and is dropped. Any other
//!   damage is `Error::Corruption`.
//! - A failed manifest write or sync is never retried: the caller poisons
//!   the store.

pub mod edit;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::filename::{self, FileKind, manifest_path};
use crate::io::{File, Fs, OpenMode};
use crate::limits::{MAX_CURRENT_SIZE_BYTES, TORN_WRITE_SECTOR_BYTES};
use crate::wal::format::RecordHeader;
use crate::wal::reader::{SegmentEnd, next_valid_record, scan_records};
pub use edit::{NUM_LEVELS, TableMeta, VersionEdit};

/// Reads a whole file of at most `max_size_bytes` (a larger one is
/// corruption, refused before anything is allocated).
async fn read_all(fs: &Arc<dyn Fs>, path: &Path, what: &'static str, max_size_bytes: u64) -> Result<Vec<u8>> {
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io(what, path, e))?;
    let size = file.size_bytes().await.map_err(|e| Error::io(what, path, e))?;
    if size > max_size_bytes {
        return Err(Error::corruption(
            path,
            0,
            format!("{size} bytes, more than {max_size_bytes} are possible"),
        ));
    }
    crate::io::read_prefix(file.as_ref(), size)
        .await
        .map_err(|e| Error::io(what, path, e))
}

/// The live manifest's number, from `CURRENT`; `None` if there is no `CURRENT`.
pub async fn read_current(fs: &Arc<dyn Fs>, dir: &Path) -> Result<Option<u64>> {
    let path = FileKind::Current.path(dir);
    let names = fs
        .list_dir(dir)
        .await
        .map_err(|e| Error::io("list directory", dir, e))?;
    if !names.iter().any(|n| n == filename::CURRENT) {
        return Ok(None);
    }
    // NOTE: `read_all` refuses a file over the limit, so the contents
    // parsed here are bounded.
    let bytes = read_all(fs, &path, "read CURRENT", MAX_CURRENT_SIZE_BYTES as u64).await?;
    match filename::parse_current_contents(&bytes) {
        Some(number) => Ok(Some(number)),
        None => Err(Error::corruption(path, 0, "CURRENT does not name a manifest")),
    }
}

/// The edits of one manifest, as recovery reads them.
#[derive(Debug)]
pub struct ManifestRead {
    /// Every intact edit, in file order.
    pub edits: Vec<VersionEdit>,
    /// Offset of a torn last edit that was dropped, if any: that edit may
    /// have been committed (and acted on) if the file was cut by something
    /// other than a crash, so open keeps what it might have referenced.
    pub torn_tail: Option<u64>,
}

/// Reads every edit of manifest `number`, and whether a torn last edit was
/// dropped.
pub async fn read_manifest_edits(fs: &Arc<dyn Fs>, dir: &Path, number: u64) -> Result<ManifestRead> {
    let path = manifest_path(dir, number);
    let data = Bytes::from(read_all(fs, &path, "read manifest", u64::MAX).await?);
    let scan = scan_records(&data, number, |_| Some(1));
    if let Some(first) = scan.records.first()
        && first.first_seqno != 0
    {
        return Err(Error::corruption(
            &path,
            first.offset,
            "manifest does not start at edit 0",
        ));
    }
    let mut torn_tail = None;
    match &scan.end {
        SegmentEnd::Clean => {}
        SegmentEnd::Foreign { offset, segment } => {
            return Err(Error::corruption(
                &path,
                *offset,
                format!("record of manifest {segment} in manifest {number}"),
            ));
        }
        SegmentEnd::Damaged { offset, reason } => {
            if !is_torn_last_edit(&data, number, *offset, reason) {
                return Err(Error::corruption(&path, *offset, reason.clone()));
            }
            tracing::warn!(path = %path.display(), offset, "dropping the torn last edit of the manifest");
            torn_tail = Some(*offset);
        }
    }
    if scan.records.is_empty() {
        return Err(Error::corruption(&path, 0, "manifest holds no edit"));
    }
    let edits = scan
        .records
        .iter()
        .map(|record| {
            VersionEdit::decode(&record.payload).map_err(|reason| {
                Error::corruption(&path, record.offset, format!("bad version edit: {reason}"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ManifestRead { edits, torn_tail })
}

/// Whether damage at `offset` of manifest `number` (found for `reason`)
/// has the shape of a torn last edit rather than corruption.
///
/// Each edit is synced before the next is written, so only the last can
/// be torn: the file ends inside it, zeros follow it, or (sectors landing
/// in any order) a sector of it never landed and still reads as zeros,
/// with no valid edit after it. An edit wrongly taken for torn is caught
/// by recovery: the tables or WAL seqnos it committed turn up missing.
pub(crate) fn is_torn_last_edit(data: &[u8], number: u64, offset: u64, reason: &str) -> bool {
    let rest = usize::try_from(offset)
        .ok()
        .and_then(|at| data.get(at..))
        .unwrap_or_default();
    reason.contains("past the end")
        || reason.contains("truncated")
        || rest.iter().all(|&b| b == 0)
        || (next_valid_record(data, number, offset).is_none() && has_unwritten_sector(data, offset))
}

/// Whether some sector-aligned piece of `data` from `offset` on is all
/// zeros: the mark a write leaves when one of its sectors never reached the
/// disk.
fn has_unwritten_sector(data: &[u8], offset: u64) -> bool {
    let Some(rest) = usize::try_from(offset).ok().and_then(|at| data.get(at..)) else {
        return false;
    };
    let first = TORN_WRITE_SECTOR_BYTES - (offset as usize % TORN_WRITE_SECTOR_BYTES);
    let (head, tail) = rest.split_at(first.min(rest.len()));
    std::iter::once(head)
        .chain(tail.chunks(TORN_WRITE_SECTOR_BYTES))
        .any(|piece| !piece.is_empty() && piece.iter().all(|&b| b == 0))
}

/// Appends edits to the live manifest.
#[derive(Debug)]
pub struct ManifestWriter {
    number: u64,
    path: PathBuf,
    file: Arc<dyn File>,
    offset: u64,
    next_edit: u64,
}

impl ManifestWriter {
    /// Creates manifest `number` holding `snapshot`, makes it durable, and
    /// points `CURRENT` at it (write temp, sync, rename, sync directory).
    pub async fn create(fs: &Arc<dyn Fs>, dir: &Path, number: u64, snapshot: &VersionEdit) -> Result<Self> {
        let path = manifest_path(dir, number);
        let file = fs
            .open(&path, OpenMode::CreateNew)
            .await
            .map_err(|e| Error::io("create manifest", &path, e))?;
        let mut writer = ManifestWriter {
            number,
            path,
            file,
            offset: 0,
            next_edit: 0,
        };
        writer.append(snapshot).await?;
        let temp = FileKind::CurrentTemp.path(dir);
        let current = fs
            .open(&temp, OpenMode::CreateReadWrite)
            .await
            .map_err(|e| Error::io("create CURRENT", &temp, e))?;
        let name = filename::current_contents(number);
        current
            .write_all_at(name, 0)
            .await
            .map_err(|e| Error::io("write CURRENT", &temp, e))?;
        current
            .sync_data()
            .await
            .map_err(|e| Error::io("sync CURRENT", &temp, e))?;
        drop(current);
        let target = FileKind::Current.path(dir);
        fs.rename(&temp, &target)
            .await
            .map_err(|e| Error::io("rename CURRENT", &target, e))?;
        fs.sync_dir(dir)
            .await
            .map_err(|e| Error::io("sync directory", dir, e))?;
        Ok(writer)
    }

    /// Appends `edit` and syncs it.
    pub async fn append(&mut self, edit: &VersionEdit) -> Result<()> {
        let payload = edit.encode();
        let header = RecordHeader {
            payload_len: payload.len() as u32,
            segment: self.number,
            first_seqno: self.next_edit,
        };
        let mut record = Vec::with_capacity(payload.len() + 24);
        header.encode(crc32c::crc32c(&payload), &payload, &mut record);
        let len = record.len() as u64;
        self.file
            .write_all_at(record, self.offset)
            .await
            .map_err(|e| Error::io("write manifest", &self.path, e))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| Error::io("sync manifest", &self.path, e))?;
        self.offset += len;
        self.next_edit += 1;
        Ok(())
    }

    /// This manifest's number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Bytes written so far.
    pub fn size_bytes(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: u64 = 7;

    /// Two edits of 1,500 non-zero bytes each; returns the file and the
    /// second edit's offset.
    fn two_edits() -> (Vec<u8>, u64) {
        let mut data = Vec::new();
        let mut second = 0;
        for index in 0..2u64 {
            second = data.len() as u64;
            let payload: Vec<u8> = (0..1500u32).map(|i| (i % 251 + 1) as u8).collect();
            let header = RecordHeader {
                payload_len: payload.len() as u32,
                segment: MANIFEST,
                first_seqno: index,
            };
            header.encode(crc32c::crc32c(&payload), &payload, &mut data);
        }
        (data, second)
    }

    fn damage_at(data: &[u8]) -> (u64, String) {
        match scan_records(&Bytes::copy_from_slice(data), MANIFEST, |_| Some(1)).end {
            SegmentEnd::Damaged { offset, reason } => (offset, reason),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn a_last_edit_missing_a_sector_is_torn() {
        let (mut data, second) = two_edits();
        let sector = (second as usize / TORN_WRITE_SECTOR_BYTES + 2) * TORN_WRITE_SECTOR_BYTES;
        data[sector..sector + TORN_WRITE_SECTOR_BYTES].fill(0);
        let (offset, reason) = damage_at(&data);
        assert_eq!(offset, second);
        assert!(is_torn_last_edit(&data, MANIFEST, offset, &reason));
    }

    #[test]
    fn a_flipped_bit_in_the_last_edit_is_not_torn() {
        let (mut data, second) = two_edits();
        data[second as usize + 700] ^= 0x10;
        let (offset, reason) = damage_at(&data);
        assert_eq!(offset, second);
        assert!(!is_torn_last_edit(&data, MANIFEST, offset, &reason));
    }

    #[test]
    fn a_missing_sector_followed_by_a_valid_edit_is_not_torn() {
        let (mut data, _) = two_edits();
        data[TORN_WRITE_SECTOR_BYTES..2 * TORN_WRITE_SECTOR_BYTES].fill(0);
        let (offset, reason) = damage_at(&data);
        assert_eq!(offset, 0);
        assert!(!is_torn_last_edit(&data, MANIFEST, offset, &reason));
    }

    #[test]
    fn a_last_edit_cut_short_is_torn() {
        let (data, second) = two_edits();
        let cut = &data[..second as usize + 900];
        let (offset, reason) = damage_at(cut);
        assert!(is_torn_last_edit(cut, MANIFEST, offset, &reason));
    }
}
