//! WAL record framing.
//!
//! ```text
//! record := header payload
//! header (24 bytes, little-endian):
//!   0..4    crc          u32  masked crc32c of (payload ++ header[4..24])
//!   4..8    payload_len  u32  1..=MAX_BATCH_SIZE_BYTES
//!   8..16   segment      u64  number of the segment file holding the record
//!   16..24  first_seqno  u64  seqno of the payload's first entry
//! payload := a write batch (see `crate::batch`)
//! ```
//!
//! A header of 24 zero bytes marks the end of the written part of a
//! preallocated segment. The `segment` field ties each record to its file:
//! segment files are never recycled, so a valid record naming another
//! segment means files were swapped or copied, and recovery reports it as
//! corruption instead of replaying it.
//! The checksum covers the payload first so that it can be computed before
//! the commit lock is taken, then extended with the header fields inside it.

use crate::coding::{get_u32_le, get_u64_le, mask_crc, unmask_crc};
use crate::key::SeqNo;

/// Bytes in a record header.
pub const HEADER_SIZE_BYTES: usize = 24;

/// The header fields after the crc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Length of the payload in bytes.
    pub payload_len: u32,
    /// Segment number the record was written to.
    pub segment: u64,
    /// Seqno of the first entry.
    pub first_seqno: SeqNo,
}

impl RecordHeader {
    /// The 20 bytes after the crc.
    fn tail_bytes(&self) -> [u8; HEADER_SIZE_BYTES - 4] {
        let mut tail = [0u8; HEADER_SIZE_BYTES - 4];
        tail[0..4].copy_from_slice(&self.payload_len.to_le_bytes());
        tail[4..12].copy_from_slice(&self.segment.to_le_bytes());
        tail[12..20].copy_from_slice(&self.first_seqno.to_le_bytes());
        tail
    }

    /// Appends header and payload to `dst`, given `crc32c(payload)`.
    pub fn encode(&self, payload_crc: u32, payload: &[u8], dst: &mut Vec<u8>) {
        debug_assert_eq!(self.payload_len as usize, payload.len());
        let tail = self.tail_bytes();
        let crc = mask_crc(crc32c::crc32c_append(payload_crc, &tail));
        dst.extend_from_slice(&crc.to_le_bytes());
        dst.extend_from_slice(&tail);
        dst.extend_from_slice(payload);
    }

    /// Decodes a header: `None` if fewer than [`HEADER_SIZE_BYTES`] bytes.
    /// Returns the stored (masked) crc too.
    pub fn decode(bytes: &[u8]) -> Option<(u32, RecordHeader)> {
        Some((
            get_u32_le(bytes, 0)?,
            RecordHeader {
                payload_len: get_u32_le(bytes, 4)?,
                segment: get_u64_le(bytes, 8)?,
                first_seqno: get_u64_le(bytes, 16)?,
            },
        ))
    }

    /// True when `stored_crc` matches this header and `payload`.
    pub fn verify(&self, stored_crc: u32, payload: &[u8]) -> bool {
        let crc = crc32c::crc32c_append(crc32c::crc32c(payload), &self.tail_bytes());
        unmask_crc(stored_crc) == crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_crc_catches_changes() {
        let payload = b"hello payload";
        let header = RecordHeader {
            payload_len: payload.len() as u32,
            segment: 7,
            first_seqno: 99,
        };
        let mut buf = Vec::new();
        header.encode(crc32c::crc32c(payload), payload, &mut buf);
        assert_eq!(buf.len(), HEADER_SIZE_BYTES + payload.len());
        let (crc, decoded) = RecordHeader::decode(&buf).unwrap();
        assert_eq!(decoded, header);
        assert!(decoded.verify(crc, &buf[HEADER_SIZE_BYTES..]));
        let other = RecordHeader { segment: 8, ..header };
        assert!(!other.verify(crc, &buf[HEADER_SIZE_BYTES..]));
        assert!(!decoded.verify(crc, b"hello payloae"));
        assert!(RecordHeader::decode(&buf[..HEADER_SIZE_BYTES - 1]).is_none());
    }
}
