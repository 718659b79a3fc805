//! Scanning one WAL segment at recovery.
//!
//! The bytes are untrusted: every length is bounded before use, and any
//! defect ends the scan with [`SegmentEnd::Damaged`] naming the offset. The
//! caller (recovery) decides whether damage is a torn tail it may drop or
//! corruption it must report, with the help of [`next_valid_record`] and
//! [`looks_torn`]. A valid record that names another segment
//! ([`SegmentEnd::Foreign`]) is never a torn tail: segment numbers are never
//! reused, so it can only be a file renamed or copied over this one.

use bytes::Bytes;

use crate::key::SeqNo;
use crate::limits::MAX_BATCH_SIZE_BYTES;
use crate::wal::format::{HEADER_SIZE_BYTES, RecordHeader};

/// One valid record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Offset of the record's header in the segment.
    pub offset: u64,
    /// Seqno of the payload's first entry.
    pub first_seqno: SeqNo,
    /// The batch payload (a slice of the segment's buffer).
    pub payload: Bytes,
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEnd {
    /// End of the written part: the file ends, or a zero header.
    Clean,
    /// A valid record at `offset` names segment `segment`, not this file's.
    Foreign {
        /// Offset of the record's header.
        offset: u64,
        /// The segment number the record names.
        segment: u64,
    },
    /// An invalid record starts at `offset`.
    Damaged {
        /// Offset of the first invalid byte sequence.
        offset: u64,
        /// What was wrong there.
        reason: String,
    },
}

/// The valid records of a segment, in order, and why the scan stopped.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    /// Records in file order; their seqnos are contiguous.
    pub records: Vec<Record>,
    /// Why the scan stopped.
    pub end: SegmentEnd,
}

/// Number of entries in a write-batch payload (its first four bytes).
pub fn payload_count(payload: &[u8]) -> Option<u64> {
    crate::coding::get_u32_le(payload, 0).map(u64::from)
}

/// Scans the bytes of WAL segment number `segment`.
pub fn scan_segment(data: &Bytes, segment: u64) -> SegmentScan {
    scan_records(data, segment, payload_count)
}

/// Scans records framed as in `wal::format` whose `first_seqno` advances by
/// `entries_of(payload)` from one record to the next: WAL segments (entries
/// of a batch) and the manifest (one per edit).
pub fn scan_records(data: &Bytes, segment: u64, entries_of: fn(&[u8]) -> Option<u64>) -> SegmentScan {
    let mut records = Vec::new();
    let mut pos: usize = 0;
    let mut next_seqno: Option<SeqNo> = None;
    let damaged = |offset: usize, reason: String| SegmentEnd::Damaged {
        offset: offset as u64,
        reason,
    };
    let end = loop {
        let Some(rest) = data.get(pos..) else {
            break SegmentEnd::Clean;
        };
        if rest.is_empty() {
            break SegmentEnd::Clean;
        }
        let header_bytes = rest.get(..HEADER_SIZE_BYTES).unwrap_or(rest);
        if header_bytes.iter().all(|&b| b == 0) {
            // NOTE: a short all-zero tail is unwritten preallocated space too.
            break SegmentEnd::Clean;
        }
        let Some((crc, header)) = RecordHeader::decode(rest) else {
            break damaged(pos, format!("truncated record header ({} bytes)", rest.len()));
        };
        let len = header.payload_len as usize;
        if len == 0 || len > MAX_BATCH_SIZE_BYTES {
            break damaged(pos, format!("record length {len} out of range"));
        }
        let payload_start = pos + HEADER_SIZE_BYTES;
        let Some(payload_end) = payload_start.checked_add(len).filter(|&end| end <= data.len()) else {
            break damaged(
                pos,
                format!("record of {len} bytes runs past the end of the file"),
            );
        };
        let payload = data.slice(payload_start..payload_end);
        if !header.verify(crc, &payload) {
            break damaged(pos, "record checksum mismatch".to_string());
        }
        if header.segment != segment {
            // NOTE: segment files are created new and never recycled, so a
            // valid record of another segment means the files were swapped
            // or copied: corruption, never the end of the log.
            break SegmentEnd::Foreign {
                offset: pos as u64,
                segment: header.segment,
            };
        }
        if let Some(expected) = next_seqno
            && header.first_seqno != expected
        {
            break damaged(
                pos,
                format!("seqno {} where {expected} was expected", header.first_seqno),
            );
        }
        let Some(count) = entries_of(&payload).filter(|&c| c > 0) else {
            break damaged(pos, "record payload has no entries".to_string());
        };
        next_seqno = header.first_seqno.checked_add(count);
        if next_seqno.is_none() {
            break damaged(pos, "seqno overflow".to_string());
        }
        records.push(Record {
            offset: pos as u64,
            first_seqno: header.first_seqno,
            payload,
        });
        pos = payload_end;
    };
    SegmentScan { records, end }
}

/// Whether a valid record of `segment` starts at `pos`: a bounded length,
/// a payload inside the file and a matching checksum.
fn valid_record_at(data: &[u8], pos: usize, segment: u64) -> bool {
    let Some(rest) = data.get(pos..) else {
        return false;
    };
    let Some((crc, header)) = RecordHeader::decode(rest) else {
        return false;
    };
    let len = header.payload_len as usize;
    if header.segment != segment || len == 0 || len > MAX_BATCH_SIZE_BYTES {
        return false;
    }
    rest.get(HEADER_SIZE_BYTES..HEADER_SIZE_BYTES + len)
        .is_some_and(|payload| header.verify(crc, payload))
}

/// The offset of the first valid record of `segment` that starts after
/// `damaged_at`, if any: valid records after damage show that the damage is
/// not simply the end of what was written.
///
/// Looks at every byte offset; the segment-number and length checks reject
/// almost every one before a checksum is computed.
pub fn next_valid_record(data: &[u8], segment: u64, damaged_at: u64) -> Option<u64> {
    let start = usize::try_from(damaged_at).ok()?.checked_add(1)?;
    let last = data.len().checked_sub(HEADER_SIZE_BYTES)?;
    (start..=last)
        .find(|&pos| valid_record_at(data, pos, segment))
        .map(|pos| pos as u64)
}

/// Whether damage at `damaged_at`, followed by a valid record at
/// `next_valid`, has the shape a torn write leaves: the written part of a
/// write ends early and the bytes it did not reach still hold the zeros the
/// segment was prefilled with, so the byte just before the next valid
/// record is zero. A flipped bit inside a record leaves that byte as the
/// writer wrote it (the last payload byte, rarely zero).
pub fn looks_torn(data: &[u8], damaged_at: u64, next_valid: u64) -> bool {
    next_valid > damaged_at
        && usize::try_from(next_valid - 1)
            .ok()
            .and_then(|at| data.get(at))
            .is_some_and(|&byte| byte == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WriteBatch;

    fn record(segment: u64, first_seqno: u64, entries: usize, dst: &mut Vec<u8>) {
        let mut batch = WriteBatch::new();
        for i in 0..entries {
            batch.put(format!("key{i}"), format!("value{first_seqno}"));
        }
        let (payload, _) = batch.into_payload().unwrap();
        let header = RecordHeader {
            payload_len: payload.len() as u32,
            segment,
            first_seqno,
        };
        header.encode(crc32c::crc32c(&payload), &payload, dst);
    }

    #[test]
    fn scans_records_until_zeros_or_stale_segment() {
        let mut buf = Vec::new();
        record(3, 10, 2, &mut buf);
        record(3, 12, 1, &mut buf);
        let end_of_records = buf.len();
        buf.extend_from_slice(&[0u8; 100]);
        let scan = scan_segment(&Bytes::from(buf.clone()), 3);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.records[1].first_seqno, 12);
        assert_eq!(scan.end, SegmentEnd::Clean);

        // A valid record of segment 2 after ours is foreign: segment
        // numbers are never reused, so this file was swapped or copied.
        buf.truncate(end_of_records);
        record(2, 13, 1, &mut buf);
        let scan = scan_segment(&Bytes::from(buf), 3);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(
            scan.end,
            SegmentEnd::Foreign {
                offset: end_of_records as u64,
                segment: 2
            }
        );
    }

    #[test]
    fn finds_valid_records_after_damage_and_tells_tears_from_flips() {
        let mut buf = Vec::new();
        record(4, 1, 1, &mut buf);
        let second = buf.len();
        record(4, 2, 1, &mut buf);
        let third = buf.len();
        record(4, 3, 1, &mut buf);
        buf.extend_from_slice(&[0u8; 64]);
        // A flipped bit in the second record: the third is found after it,
        // and the byte before it is the second's last payload byte.
        let mut flipped = buf.clone();
        flipped[second + 30] ^= 4;
        assert_eq!(next_valid_record(&flipped, 4, second as u64), Some(third as u64));
        assert!(!looks_torn(&flipped, second as u64, third as u64));
        // A torn second record: its end still holds zeros.
        let mut torn = buf.clone();
        torn[third - 5..third].fill(0);
        assert_eq!(next_valid_record(&torn, 4, second as u64), Some(third as u64));
        assert!(looks_torn(&torn, second as u64, third as u64));
        // Nothing valid after the last record; another segment's records
        // do not count.
        assert_eq!(next_valid_record(&buf, 4, third as u64), None);
        assert_eq!(next_valid_record(&buf, 5, 0), None);
    }

    #[test]
    fn seqno_gap_is_damage() {
        let mut buf = Vec::new();
        record(1, 1, 2, &mut buf);
        let second = buf.len();
        record(1, 4, 1, &mut buf);
        let scan = scan_segment(&Bytes::from(buf), 1);
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.end, SegmentEnd::Damaged { offset, .. } if offset == second as u64));
    }

    #[test]
    fn every_truncation_and_bit_flip_stops_cleanly_or_as_damage() {
        let mut buf = Vec::new();
        record(5, 1, 3, &mut buf);
        let first_len = buf.len();
        record(5, 4, 2, &mut buf);
        for cut in 0..buf.len() {
            let scan = scan_segment(&Bytes::from(buf[..cut].to_vec()), 5);
            let expected = usize::from(cut >= first_len);
            assert_eq!(scan.records.len(), expected, "cut at {cut}");
            if cut != 0 && cut != first_len {
                assert!(matches!(scan.end, SegmentEnd::Damaged { .. }), "cut at {cut}");
            }
        }
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                let scan = scan_segment(&Bytes::from(bad), 5);
                // The damaged record and everything after it are never returned.
                let damaged_record = usize::from(byte >= first_len);
                assert_eq!(scan.records.len(), damaged_record, "flip at {byte}.{bit}");
                assert!(
                    matches!(scan.end, SegmentEnd::Damaged { .. }),
                    "flip at {byte}.{bit}"
                );
            }
        }
    }
}
