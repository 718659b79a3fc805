//! Little-endian fixed-width integers, LEB128 varints and the crc
//! masking every checksummed format (WAL records, manifests, table blocks
//! and footers) stores.
//!
//! Decoders take untrusted bytes: they return `None` on truncation or
//! overflow and never panic. A decoder takes a piece of its buffer through
//! [`slice`], [`range`] or [`rest`] only: a piece that does not fit is a
//! [`DecodeError`] carrying the offset (which the caller reports as
//! `Error::Corruption` with its file), never a silently empty slice.

use std::fmt;

/// Appends `value` as a LEB128 varint (at most 5 bytes).
pub fn put_varint32(dst: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        dst.push((value as u8) | 0x80);
        value >>= 7;
    }
    dst.push(value as u8);
}

/// Decodes a varint32 at the start of `src`: `(value, bytes used)`.
pub fn get_varint32(src: &[u8]) -> Option<(u32, usize)> {
    let mut value: u32 = 0;
    for (i, &byte) in src.iter().enumerate().take(5) {
        let bits = u32::from(byte & 0x7f);
        if i == 4 && bits > 0x0f {
            return None; // more than 32 bits
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Longest LEB128 encoding of a `u64`.
pub const MAX_VARINT64_SIZE_BYTES: usize = 10;
/// Appends `value` as a LEB128 varint (at most 10 bytes).
pub fn put_varint64(dst: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        dst.push((value as u8) | 0x80);
        value >>= 7;
    }
    dst.push(value as u8);
}

/// Decodes a varint64 at the start of `src`: `(value, bytes used)`; `None`
/// on truncation or more than 64 bits.
pub fn get_varint64(src: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().enumerate().take(MAX_VARINT64_SIZE_BYTES) {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT64_SIZE_BYTES - 1 && bits > 0x01 {
            return None; // more than 64 bits
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Added to a rotated crc by [`mask_crc`] (LevelDB's constant).
const MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a crc so that a record holding crcs of its own does not produce
/// a stretch of bytes with a trivially predictable checksum.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Inverse of [`mask_crc`].
pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

/// A piece of a buffer that runs past its end: what was being read, and
/// where, in the buffer being decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being read, e.g. `"lz4 block body"`.
    pub what: &'static str,
    /// Offset in the buffer where the piece starts.
    pub offset: usize,
    /// Bytes asked for (`usize::MAX` for "up to an end before the start").
    pub len: usize,
    /// Bytes in the buffer.
    pub buf_len: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let DecodeError {
            what,
            offset,
            len,
            buf_len,
        } = self;
        if *len == usize::MAX {
            write!(f, "{what} at byte {offset} ends before it starts")
        } else {
            write!(
                f,
                "{what} of {len} bytes at byte {offset} runs past the end ({buf_len} bytes)"
            )
        }
    }
}

impl From<DecodeError> for String {
    fn from(error: DecodeError) -> String {
        error.to_string()
    }
}

/// `buf[start..start + len]`, or the offset where it does not fit.
#[inline]
pub fn slice<'a>(
    buf: &'a [u8],
    start: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    start
        .checked_add(len)
        .and_then(|end| buf.get(start..end))
        .ok_or(DecodeError {
            what,
            offset: start,
            len,
            buf_len: buf.len(),
        })
}

/// `buf[start..end]`, or the offset where it does not fit.
#[inline]
pub fn range<'a>(
    buf: &'a [u8],
    start: usize,
    end: usize,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    match end.checked_sub(start) {
        Some(len) => slice(buf, start, len, what),
        None => Err(DecodeError {
            what,
            offset: start,
            len: usize::MAX,
            buf_len: buf.len(),
        }),
    }
}

/// `buf[start..]`, or the offset if `start` is past the end.
#[inline]
pub fn rest<'a>(buf: &'a [u8], start: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
    slice(buf, start, buf.len().saturating_sub(start), what)
}

/// Reads a little-endian u32 at `offset`.
pub fn get_u32_le(src: &[u8], offset: usize) -> Option<u32> {
    let bytes = src.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Reads a little-endian u64 at `offset`.
pub fn get_u64_le(src: &[u8], offset: usize) -> Option<u64> {
    let bytes = src.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_and_rejects_bad_input() {
        for value in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut buf = Vec::new();
            put_varint32(&mut buf, value);
            assert_eq!(get_varint32(&buf), Some((value, buf.len())));
            // Every strict prefix is truncated.
            for cut in 0..buf.len() {
                assert_eq!(get_varint32(&buf[..cut]), None);
            }
        }
        assert_eq!(get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x7f]), None);
        assert_eq!(get_varint32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), None);
        assert_eq!(get_u32_le(&[1, 0, 0], 0), None);
        assert_eq!(get_u64_le(&[1, 0, 0, 0, 0, 0, 0, 0], 0), Some(1));
    }

    #[test]
    fn checked_slices_fit_or_name_their_offset() {
        let buf = [1u8, 2, 3, 4, 5];
        assert_eq!(slice(&buf, 1, 3, "x"), Ok(&buf[1..4]));
        assert_eq!(slice(&buf, 5, 0, "x"), Ok(&buf[5..]));
        assert_eq!(range(&buf, 2, 5, "x"), Ok(&buf[2..]));
        assert_eq!(rest(&buf, 3, "x"), Ok(&buf[3..]));
        assert_eq!(rest(&buf, 5, "x"), Ok(&[][..]));
        let past = slice(&buf, 3, 3, "body").unwrap_err();
        assert_eq!(
            (past.what, past.offset, past.len, past.buf_len),
            ("body", 3, 3, 5)
        );
        assert_eq!(
            past.to_string(),
            "body of 3 bytes at byte 3 runs past the end (5 bytes)"
        );
        assert_eq!(slice(&buf, usize::MAX, 2, "x").unwrap_err().offset, usize::MAX);
        assert_eq!(rest(&buf, 6, "tail").unwrap_err().offset, 6);
        let backwards = range(&buf, 4, 2, "key").unwrap_err();
        assert_eq!(backwards.to_string(), "key at byte 4 ends before it starts");
    }

    #[test]
    fn crc_masking_round_trips_and_changes_the_crc() {
        for crc in [0, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(unmask_crc(mask_crc(crc)), crc);
            assert_ne!(mask_crc(crc), crc);
        }
        // The stored form of every table and WAL record: pinned.
        assert_eq!(mask_crc(0), MASK_DELTA);
    }
}
