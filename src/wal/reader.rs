//! Scanning one WAL segment at recovery.
//!
//! The bytes are untrusted: every length is bounded before use, and any
//! defect ends the scan with [`SegmentEnd::Damaged`] naming the offset. The
//! caller (recovery) decides whether damage is a torn tail it may drop or
//! corruption it must report.

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
    /// End of the written part: the file ends, a zero header, or bytes left
    /// from the file's previous life (a valid record of another segment).
    Clean,
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
            // A valid record of an older life of this (recycled) file.
            break SegmentEnd::Clean;
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

        // A valid record of segment 2 after ours is stale, not data.
        buf.truncate(end_of_records);
        record(2, 13, 1, &mut buf);
        let scan = scan_segment(&Bytes::from(buf), 3);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.end, SegmentEnd::Clean);
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
