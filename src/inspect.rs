//! Read-only views of single store files for the `ringdb dump` command
//! (RocksDB's `sst_dump` and `ldb` are the models): a table's properties and
//! entries, a WAL segment's records and their batches, a manifest's edits.
//!
//! Hidden from the docs: the views name internal structures (seqnos, kinds,
//! edits) whose shape may change with the format, and only the command uses
//! them. Each function reads through the I/O trait with the same decoders
//! recovery and reads use, so a damaged file gives the same
//! [`Error::Corruption`] (file and offset) the store would.
//!
//! Invariants:
//! - Nothing here writes: a file can be dumped while a store has it open.
//! - Bytes from disk are decoded by the library's own decoders only; a
//!   defect is reported, never skipped silently (a WAL segment's scan end
//!   is part of its dump).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::filename;
use crate::io::{Fs, OpenMode};
use crate::key::ValueKind;

/// Which kind of dumpable store file a path names, from its file name
/// (the names are `crate::filename`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A table (`NNNNNN.sst`), with its number.
    Table(u64),
    /// A WAL segment (`NNNNNN.wal`), with its number.
    WalSegment(u64),
    /// A manifest (`MANIFEST-NNNNNN`), with its number.
    Manifest(u64),
}

impl FileKind {
    /// The kind of file `path` names, or `None` if its name is none of
    /// the store's.
    pub fn of(path: &Path) -> Option<FileKind> {
        match filename::parse(path.file_name()?.to_str()?)? {
            filename::FileKind::Table(number) => Some(FileKind::Table(number)),
            filename::FileKind::Wal(number) => Some(FileKind::WalSegment(number)),
            filename::FileKind::Manifest(number) => Some(FileKind::Manifest(number)),
            _ => None,
        }
    }
}

/// One version of a key: a put, a tombstone, a merge operand, an
/// expiring put or a range tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The user key (a range tombstone's start).
    pub key: Bytes,
    /// The write's seqno.
    pub seqno: u64,
    /// What the write did: `put`, `delete`, `merge`, `put-ttl` (the value
    /// starts with its 8-byte expiry) or `delete-range` (the value is the
    /// range's end).
    pub kind: &'static str,
    /// The value (empty for a `delete`).
    pub value: Bytes,
}

/// The name [`Entry::kind`] gives `kind`.
fn kind_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Put => "put",
        ValueKind::Delete => "delete",
        ValueKind::Merge => "merge",
        ValueKind::PutWithExpiry => "put-ttl",
        ValueKind::RangeDelete => "delete-range",
    }
}

/// A table's properties and (up to a limit) its entries in order.
#[derive(Debug, Clone)]
pub struct TableDump {
    /// The properties block, one `name: value` line per property.
    pub properties: Vec<(&'static str, String)>,
    /// Entries in internal-key order, at most the limit asked for.
    pub entries: Vec<Entry>,
    /// The range tombstones, as cut into non-overlapping pieces.
    pub range_tombstones: Vec<Entry>,
    /// True when the table holds more entries than `entries`.
    pub truncated: bool,
}

/// One valid WAL record: a write batch.
#[derive(Debug, Clone)]
pub struct WalRecord {
    /// Offset of the record's header in the segment.
    pub offset: u64,
    /// Bytes of the batch payload.
    pub payload_size_bytes: usize,
    /// The batch's entries; seqnos count up from the record's first.
    pub entries: Vec<Entry>,
}

/// A WAL segment's valid records and where the scan stopped.
#[derive(Debug, Clone)]
pub struct WalDump {
    /// The valid records in file order.
    pub records: Vec<WalRecord>,
    /// `None` when the written part ended cleanly (end of file, zeros or a
    /// stale record); otherwise the offset and reason of the first invalid
    /// bytes. Recovery drops such a tail only in the newest segment.
    pub damage: Option<(u64, String)>,
}

/// One manifest edit in readable form.
#[derive(Debug, Clone)]
pub struct ManifestEdit {
    /// Position of the edit in the manifest (0: the snapshot edit that
    /// opens it).
    pub index: usize,
    /// `name: value` lines: log number, next file number, last seqno,
    /// tables added (`level`, number, size, key range) and deleted.
    pub lines: Vec<String>,
}

/// The file system the dumps read through: the thread-pool backend, which
/// works wherever the store's own would.
fn fs() -> Result<Arc<dyn Fs>> {
    crate::io::threads::ThreadsFs::new()
        .map(|fs| Arc::new(fs) as Arc<dyn Fs>)
        .map_err(|e| Error::io("start the io thread pool", PathBuf::new(), e))
}

/// The whole of `path`, refusing files over `limit_bytes`.
async fn read_file(fs: &Arc<dyn Fs>, path: &Path, limit_bytes: u64) -> Result<Bytes> {
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io("open", path, e))?;
    let size = file.size_bytes().await.map_err(|e| Error::io("stat", path, e))?;
    if size > limit_bytes {
        return Err(Error::TooLarge {
            what: "file to dump",
            size_bytes: usize::try_from(size).unwrap_or(usize::MAX),
            limit_bytes: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
        });
    }
    let data = crate::io::read_prefix(file.as_ref(), size)
        .await
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Bytes::from(data))
}

/// Largest WAL segment or manifest `dump` reads into memory.
pub const MAX_DUMP_FILE_SIZE_BYTES: u64 = 1 << 30;

/// Opens the table at `path` (verifying footer, filter, properties and
/// index) and reads up to `limit` entries from its start.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Corruption`] (file and
/// offset) if any block read is damaged.
pub async fn dump_table(path: &Path, limit: usize) -> Result<TableDump> {
    let fs = fs()?;
    let number = match FileKind::of(path) {
        Some(FileKind::Table(number)) => number,
        _ => 0,
    };
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io("open table", path, e))?;
    let size = file
        .size_bytes()
        .await
        .map_err(|e| Error::io("stat table", path, e))?;
    let stats = Arc::new(crate::sst::ReadStats::new());
    let table = Arc::new(crate::sst::Table::open(file, path.to_path_buf(), number, size, None, stats).await?);
    let properties = property_lines(table.properties());
    let mut iter = table.iter();
    iter.seek_to_first().await?;
    let mut entries = Vec::new();
    while iter.valid() && entries.len() < limit {
        let is_delete = iter.kind() == ValueKind::Delete;
        entries.push(Entry {
            key: Bytes::copy_from_slice(iter.user_key()),
            seqno: iter.seqno(),
            kind: kind_name(iter.kind()),
            value: if is_delete { Bytes::new() } else { iter.value() },
        });
        iter.next().await?;
    }
    let range_tombstones = table
        .range_dels()
        .map(|dels| dels.tombstones())
        .unwrap_or_default()
        .into_iter()
        .map(|tombstone| Entry {
            key: tombstone.start,
            seqno: tombstone.seqno,
            kind: kind_name(ValueKind::RangeDelete),
            value: tombstone.end,
        })
        .collect();
    Ok(TableDump {
        properties,
        entries,
        range_tombstones,
        truncated: iter.valid(),
    })
}

fn property_lines(p: &crate::sst::TableProperties) -> Vec<(&'static str, String)> {
    vec![
        ("format_version", p.format_version.to_string()),
        ("compression", format!("{:?}", p.compression)),
        ("entries", p.entry_count.to_string()),
        ("deletions", p.deletion_count.to_string()),
        ("data_blocks", p.data_block_count.to_string()),
        ("data_size_bytes", p.data_size_bytes.to_string()),
        ("filter_size_bytes", p.filter_size_bytes.to_string()),
        ("index_size_bytes", p.index_size_bytes.to_string()),
        ("file_size_bytes", p.file_size_bytes.to_string()),
        ("smallest_key", escape(&p.smallest_key.user_key)),
        ("largest_key", escape(&p.largest_key.user_key)),
        ("smallest_seqno", p.smallest_seqno.to_string()),
        ("largest_seqno", p.largest_seqno.to_string()),
        ("range_tombstones", p.range_del_count.to_string()),
    ]
}

/// Scans the WAL segment at `path` as recovery does and decodes each
/// record's batch.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::TooLarge`] past
/// [`MAX_DUMP_FILE_SIZE_BYTES`], [`Error::Corruption`] if a record whose
/// checksum holds carries a batch that does not decode.
pub async fn dump_wal(path: &Path) -> Result<WalDump> {
    let fs = fs()?;
    let number = match FileKind::of(path) {
        Some(FileKind::WalSegment(number)) => number,
        _ => 0,
    };
    let data = read_file(&fs, path, MAX_DUMP_FILE_SIZE_BYTES).await?;
    let scan = crate::wal::reader::scan_segment(&data, number);
    let mut records = Vec::with_capacity(scan.records.len());
    for record in &scan.records {
        let batch = crate::batch::decode_payload(&record.payload)
            .map_err(|reason| Error::corruption(path, record.offset, format!("bad batch: {reason}")))?;
        let entries = batch
            .into_iter()
            .zip(record.first_seqno..)
            .map(|(entry, seqno)| Entry {
                key: entry.key,
                seqno,
                kind: kind_name(entry.kind),
                value: entry.value,
            })
            .collect();
        records.push(WalRecord {
            offset: record.offset,
            payload_size_bytes: record.payload.len(),
            entries,
        });
    }
    let damage = match scan.end {
        crate::wal::reader::SegmentEnd::Clean => None,
        crate::wal::reader::SegmentEnd::Damaged { offset, reason } => Some((offset, reason)),
        crate::wal::reader::SegmentEnd::Foreign { offset, segment } => Some((
            offset,
            format!("a record of segment {segment}: this file was renamed or copied"),
        )),
    };
    Ok(WalDump { records, damage })
}

/// Reads every edit of the manifest at `path`, as recovery does.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Corruption`] if an
/// edit is damaged (a torn last edit is dropped, as at recovery).
pub async fn dump_manifest(path: &Path) -> Result<Vec<ManifestEdit>> {
    let fs = fs()?;
    let Some(FileKind::Manifest(number)) = FileKind::of(path) else {
        return Err(Error::InvalidOptions(format!(
            "{} is not named like a manifest (MANIFEST-NNNNNN)",
            path.display()
        )));
    };
    let dir: PathBuf = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let edits = crate::manifest::read_manifest_edits(&fs, &dir, number)
        .await?
        .edits;
    Ok(edits
        .iter()
        .enumerate()
        .map(|(index, edit)| ManifestEdit {
            index,
            lines: edit_lines(edit),
        })
        .collect())
}

fn edit_lines(edit: &crate::manifest::VersionEdit) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(n) = edit.log_number {
        lines.push(format!("log_number: {n}"));
    }
    if let Some(n) = edit.next_file_number {
        lines.push(format!("next_file_number: {n}"));
    }
    if let Some(n) = edit.last_seqno {
        lines.push(format!("last_seqno: {n}"));
    }
    for (level, table) in &edit.added {
        lines.push(format!(
            "add L{level} table {:06}: {} bytes, keys {} @{} .. {} @{}, seqnos {}..={}{}",
            table.number,
            table.size_bytes,
            escape(&table.smallest.user_key),
            table.smallest.seqno(),
            escape(&table.largest.user_key),
            table.largest.seqno(),
            table.smallest_seqno,
            table.largest_seqno,
            if table.has_range_dels {
                ", range tombstones"
            } else {
                ""
            },
        ));
    }
    for (level, number) in &edit.deleted {
        lines.push(format!("delete L{level} table {number:06}"));
    }
    lines
}

/// `bytes` as text: printable ASCII as it is (a backslash doubled), every
/// other byte as `\xNN`, so that `unescape` gives the bytes back.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The bytes an [`escape`]d text stands for (`\\`, `\xNN`, `\n`, `\t`,
/// `\0` and any other character as its UTF-8 bytes).
///
/// # Errors
/// A description of the first bad escape.
pub fn unescape(text: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("bad escape \\x{hex} in {text:?}: need two hex digits"))?;
                out.push(byte);
            }
            Some(other) => return Err(format!("unknown escape \\{other} in {text:?}")),
            None => return Err(format!("{text:?} ends in a lone backslash")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let text = escape(&all);
        assert!(text.is_ascii());
        assert_eq!(unescape(&text).unwrap(), all);
        assert_eq!(escape(b"user:1"), "user:1");
        assert_eq!(escape(b"a\\b\n"), "a\\\\b\\x0a");
        assert!(unescape("\\x4").is_err());
        assert!(unescape("\\q").is_err());
        assert!(unescape("a\\").is_err());
    }

    #[test]
    fn file_kinds_follow_the_names() {
        assert_eq!(
            FileKind::of(Path::new("/d/000012.sst")),
            Some(FileKind::Table(12))
        );
        assert_eq!(
            FileKind::of(Path::new("000003.wal")),
            Some(FileKind::WalSegment(3))
        );
        assert_eq!(
            FileKind::of(Path::new("d/MANIFEST-000007")),
            Some(FileKind::Manifest(7))
        );
        assert_eq!(FileKind::of(Path::new("d/LOCK")), None);
    }
}
