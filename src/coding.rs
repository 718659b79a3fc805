//! Little-endian fixed-width integers, LEB128 varints and the crc
//! masking every checksummed format (WAL records, manifests, table blocks
//! and footers) stores.
//!
//! Decoders take untrusted bytes: they return `None` on truncation or
//! overflow and never panic.

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
    fn crc_masking_round_trips_and_changes_the_crc() {
        for crc in [0, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(unmask_crc(mask_crc(crc)), crc);
            assert_ne!(mask_crc(crc), crc);
        }
        // The stored form of every table and WAL record: pinned.
        assert_eq!(mask_crc(0), MASK_DELTA);
    }
}
