//! Opening a store: replaying WAL segments into a memtable.
//!
//! Rules (see `docs/design.md`, "Recovery"):
//! - Segments are replayed in number order; seqnos must continue without a
//!   gap from one record to the next, across segments too.
//! - A segment whose scan ends in damage is tolerated only if it is the last
//!   segment holding records (a torn tail, which can only hold
//!   unacknowledged writes), or if the next segment with records continues
//!   exactly at the seqno after the damaged segment's last good record (a
//!   torn tail dropped by an earlier recovery, after which the log went on).
//!   Anything else is `Error::Corruption` naming the file and offset.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::decode_payload;
use crate::io::{Fs, OpenMode};
use crate::key::SeqNo;
use crate::limits::WAL_READ_CHUNK_BYTES;
use crate::memtable::Memtable;
use crate::wal::reader::{SegmentEnd, scan_segment};
use crate::wal::{parse_segment_name, segment_path};
use crate::{Error, Result};

/// What replaying the WAL found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The seqno the next write gets.
    pub next_seqno: SeqNo,
    /// Highest segment number present (0 if none).
    pub max_segment: u64,
    /// Segments that hold no records, or only flushed ones: removable.
    pub empty_segments: Vec<u64>,
    /// Batches replayed.
    pub records: u64,
}

/// Damage at the end of a segment, not yet known to be a harmless torn tail.
struct PendingDamage {
    path: PathBuf,
    offset: u64,
    reason: String,
}

impl PendingDamage {
    fn into_error(self) -> Error {
        Error::corruption(self.path, self.offset, self.reason)
    }
}

/// Reads a whole file through the I/O layer, in bounded reads.
async fn read_whole(fs: &Arc<dyn Fs>, path: &Path) -> Result<Bytes> {
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io("open wal segment", path, e))?;
    let len = file
        .size_bytes()
        .await
        .map_err(|e| Error::io("stat wal segment", path, e))?;
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while (data.len() as u64) < len {
        let want = ((len - data.len() as u64) as usize).min(WAL_READ_CHUNK_BYTES);
        let chunk = file
            .read_at(want, data.len() as u64)
            .await
            .map_err(|e| Error::io("read wal segment", path, e))?;
        if chunk.is_empty() {
            break; // the file shrank under us; scan what we have
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(data))
}

/// Replays every WAL segment in `dir` into `memtable`.
///
/// `first_seqno` is the seqno the oldest record must start at.
///
/// Segments below `log_number` hold only flushed data and are skipped (and
/// reported as removable); `first_seqno` is the seqno the oldest replayed
/// record must start at (one past the highest seqno in tables).
pub(crate) async fn replay_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    log_number: u64,
    first_seqno: SeqNo,
    memtable: &Memtable,
) -> Result<Recovered> {
    let names = fs
        .list_dir(dir)
        .await
        .map_err(|e| Error::io("list directory", dir, e))?;
    let mut segments: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    segments.sort_unstable();
    let obsolete_segments: Vec<u64> = segments.iter().copied().filter(|&n| n < log_number).collect();
    segments.retain(|&n| n >= log_number);

    let mut recovered = Recovered {
        next_seqno: 1,
        max_segment: segments
            .last()
            .copied()
            .unwrap_or(0)
            .max(log_number.saturating_sub(1)),
        empty_segments: obsolete_segments,
        records: 0,
    };
    // NOTE: the log's first seqno is known (1 for a new store), never inferred
    // from the first record found: damage to the oldest records must not
    // pass for a log that starts later.
    let mut expected: SeqNo = first_seqno;
    let mut pending_damage: Option<PendingDamage> = None;
    for number in segments {
        let path = segment_path(dir, number);
        let data = read_whole(fs, &path).await?;
        let scan = scan_segment(&data, number);
        if scan.records.is_empty() {
            recovered.empty_segments.push(number);
        }
        if let Some(first) = scan.records.first() {
            if first.first_seqno != expected {
                return Err(pending_damage.map_or_else(
                    || {
                        Error::corruption(
                            &path,
                            first.offset,
                            format!("seqno {} where {expected} was expected", first.first_seqno),
                        )
                    },
                    PendingDamage::into_error,
                ));
            }
            // The log went on after any earlier damage: it was a dropped torn tail.
            pending_damage = None;
        }
        for record in &scan.records {
            let entries = decode_payload(&record.payload).map_err(|reason| {
                Error::corruption(&path, record.offset, format!("bad batch payload: {reason}"))
            })?;
            for (seqno, entry) in (record.first_seqno..).zip(entries) {
                memtable.insert(entry.key, seqno, entry.kind, entry.value);
                expected = seqno + 1;
            }
            recovered.records += 1;
        }
        if let SegmentEnd::Damaged { offset, reason } = scan.end
            && (pending_damage.is_none() || !scan.records.is_empty())
        {
            pending_damage = Some(PendingDamage { path, offset, reason });
        }
    }
    if let Some(damage) = pending_damage {
        tracing::warn!(
            path = %damage.path.display(),
            offset = damage.offset,
            reason = %damage.reason,
            "dropping the torn tail of the newest WAL segment"
        );
    }
    recovered.next_seqno = expected;
    Ok(recovered)
}
