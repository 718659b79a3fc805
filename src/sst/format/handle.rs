//! Block handles: where a block sits in a table.
//!
//! ```text
//! handle := offset:varint64 size:varint64
//! ```
//!
//! `offset` is the file offset of the block's first byte; `size` counts the
//! stored block (compressed, if it is) without its 5-byte trailer. The
//! footer stores handles as fixed-width `u64` pairs instead (see
//! [`super::footer`]).
//!
//! Ownership: pure encoders and decoders.
//!
//! Invariants:
//! - A varint64 is at most [`MAX_VARINT64_SIZE_BYTES`] long; a handle at
//!   most [`MAX_HANDLE_SIZE_BYTES`].

pub use crate::coding::{MAX_VARINT64_SIZE_BYTES, get_varint64, put_varint64};

/// Longest encoded [`BlockHandle`].
pub const MAX_HANDLE_SIZE_BYTES: usize = 2 * MAX_VARINT64_SIZE_BYTES;

/// Offset and size of a block in a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// File offset of the block's first byte.
    pub offset: u64,
    /// Bytes of the stored block, without its trailer.
    pub size_bytes: u64,
}

impl BlockHandle {
    /// Appends the handle as two varint64s.
    pub fn encode_into(&self, dst: &mut Vec<u8>) {
        put_varint64(dst, self.offset);
        put_varint64(dst, self.size_bytes);
    }

    /// Decodes a handle at the start of `src`: `(handle, bytes used)`.
    pub fn decode(src: &[u8]) -> Option<(BlockHandle, usize)> {
        let (offset, used_offset) = get_varint64(src)?;
        let (size_bytes, used_size) = get_varint64(src.get(used_offset..)?)?;
        Some((BlockHandle { offset, size_bytes }, used_offset + used_size))
    }

    /// Decodes a handle that must fill `src` exactly (an index entry's value).
    pub fn decode_exact(src: &[u8]) -> Result<BlockHandle, String> {
        match BlockHandle::decode(src) {
            Some((handle, used)) if used == src.len() => Ok(handle),
            Some((_, used)) => Err(format!(
                "block handle of {used} bytes followed by {} stray bytes",
                src.len() - used
            )),
            None => Err(format!("undecodable block handle ({} bytes)", src.len())),
        }
    }

    /// The file offset just past the block's trailer, if it fits in a u64.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size_bytes)?
            .checked_add(crate::sst::BLOCK_TRAILER_SIZE_BYTES as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint64_round_trips_and_rejects_bad_input() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::from(u32::MAX) + 1, u64::MAX] {
            let mut buf = Vec::new();
            put_varint64(&mut buf, value);
            assert!(buf.len() <= MAX_VARINT64_SIZE_BYTES);
            assert_eq!(get_varint64(&buf), Some((value, buf.len())));
            for cut in 0..buf.len() {
                assert_eq!(get_varint64(&buf[..cut]), None);
            }
        }
        // 65 bits, and 11 bytes.
        assert_eq!(
            get_varint64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03]),
            None
        );
        assert_eq!(get_varint64(&[0x80; 11]), None);
    }

    #[test]
    fn handle_round_trips() {
        let handle = BlockHandle {
            offset: 123_456_789,
            size_bytes: 4096,
        };
        let mut buf = Vec::new();
        handle.encode_into(&mut buf);
        assert!(buf.len() <= MAX_HANDLE_SIZE_BYTES);
        assert_eq!(BlockHandle::decode(&buf), Some((handle, buf.len())));
        assert_eq!(BlockHandle::decode_exact(&buf), Ok(handle));
        buf.push(0);
        assert!(BlockHandle::decode_exact(&buf).is_err());
        assert!(BlockHandle::decode_exact(&buf[..2]).is_err());
        assert_eq!(handle.end_with_trailer(), Some(123_456_789 + 4096 + 5));
        let huge = BlockHandle {
            offset: u64::MAX,
            size_bytes: 1,
        };
        assert_eq!(huge.end_with_trailer(), None);
    }
}
