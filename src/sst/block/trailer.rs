//! A block as stored on disk: its bytes, maybe compressed, and a trailer.
//!
//! ```text
//! stored_block := payload type:u8 crc:u32 LE
//!   crc      = masked crc32c( payload ++ type )
//!   type 0   : payload is the block itself
//!   type 1   : payload = uncompressed_len:varint32 lz4_block
//!              (an LZ4 *block*, no frame, no prepended size of its own;
//!               uncompressed_len <= the reader's limit for the block kind)
//! ```
//!
//! The handle of a block (offset, size) counts the payload only; the 5-byte
//! trailer follows it.
//!
//! Ownership: pure functions; the table builder encodes, the table reader
//! decodes.
//!
//! Invariants:
//! - The compressed form is stored only when it saves at least an eighth of
//!   the block (`stored <= raw - raw / 8`).
//! - A decoder verifies the crc before it looks at the payload, and bounds
//!   the uncompressed length before allocating it.

use bytes::Bytes;

use crate::coding::{get_u32_le, get_varint32, mask_crc, put_varint32, rest, unmask_crc};
use crate::sst::BLOCK_TRAILER_SIZE_BYTES;

pub use crate::options::Compression;

impl Compression {
    /// Decodes a compression type byte read from disk.
    pub fn from_u8(byte: u8) -> Option<Compression> {
        match byte {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            _ => None,
        }
    }
}

/// The masked crc32c a trailer stores for `payload` of type `kind`.
fn block_crc(payload: &[u8], kind: u8) -> u32 {
    mask_crc(crc32c::crc32c_append(crc32c::crc32c(payload), &[kind]))
}

/// Appends the stored form of `raw` (compressed if `compression` asks and
/// it pays) and its trailer to `dst`. `scratch` is reused between calls.
/// Returns the payload size (what the block's handle records) and the
/// compression actually used.
pub fn encode_block(
    raw: &[u8],
    compression: Compression,
    scratch: &mut Vec<u8>,
    dst: &mut Vec<u8>,
) -> (u64, Compression) {
    let payload: (&[u8], Compression) = match compression {
        Compression::None => (raw, Compression::None),
        Compression::Lz4 => {
            if compress_lz4(raw, scratch) {
                (scratch.as_slice(), Compression::Lz4)
            } else {
                (raw, Compression::None)
            }
        }
    };
    let (bytes, used) = payload;
    let kind = used as u8;
    dst.extend_from_slice(bytes);
    dst.push(kind);
    dst.extend_from_slice(&block_crc(bytes, kind).to_le_bytes());
    (bytes.len() as u64, used)
}

/// Compresses `raw` into `out` (`uncompressed_len ++ lz4 block`); true if
/// the result saves at least an eighth of `raw`.
fn compress_lz4(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(raw_len) = u32::try_from(raw.len()) else {
        return false;
    };
    out.clear();
    put_varint32(out, raw_len);
    let header_len = out.len();
    out.resize(
        header_len + lz4_flex::block::get_maximum_output_size(raw.len()),
        0,
    );
    let Some(body) = out.get_mut(header_len..) else {
        return false;
    };
    match lz4_flex::block::compress_into(raw, body) {
        Ok(written) => {
            out.truncate(header_len + written);
            out.len() <= raw.len() - raw.len() / 8
        }
        Err(_) => false,
    }
}

/// Verifies and decodes a stored block (payload and trailer, exactly),
/// returning the block's bytes: a slice of `stored` when uncompressed, a new
/// buffer when not. `max_size_bytes` bounds the uncompressed size.
pub fn decode_block(stored: Bytes, max_size_bytes: usize) -> Result<Bytes, String> {
    let Some(payload_len) = stored.len().checked_sub(BLOCK_TRAILER_SIZE_BYTES) else {
        return Err(format!(
            "block of {} bytes is shorter than its trailer",
            stored.len()
        ));
    };
    let kind = *stored
        .get(payload_len)
        .ok_or_else(|| "block trailer out of range".to_owned())?;
    let stored_crc =
        get_u32_le(&stored, payload_len + 1).ok_or_else(|| "block crc out of range".to_owned())?;
    let payload = stored
        .get(..payload_len)
        .ok_or_else(|| "block payload out of range".to_owned())?;
    let actual = block_crc(payload, kind);
    if stored_crc != actual {
        return Err(format!(
            "block checksum mismatch: stored {:#010x}, computed {:#010x}",
            unmask_crc(stored_crc),
            unmask_crc(actual)
        ));
    }
    match Compression::from_u8(kind) {
        Some(Compression::None) => {
            if payload_len > max_size_bytes {
                return Err(format!("block of {payload_len} bytes exceeds {max_size_bytes}"));
            }
            Ok(stored.slice(..payload_len))
        }
        Some(Compression::Lz4) => decompress_lz4(payload, max_size_bytes).map(Bytes::from),
        None => Err(format!("unknown block compression type {kind}")),
    }
}

/// Most bytes one compressed byte of an lz4 block can stand for: a match
/// length continues in bytes of 255 each.
const LZ4_MAX_EXPANSION: usize = 255;

/// Decompresses an `uncompressed_len ++ lz4 block` payload.
fn decompress_lz4(payload: &[u8], max_size_bytes: usize) -> Result<Vec<u8>, String> {
    let (len, used) =
        get_varint32(payload).ok_or_else(|| "bad uncompressed length of lz4 block".to_owned())?;
    let len = len as usize;
    if len > max_size_bytes {
        return Err(format!(
            "lz4 block claims {len} uncompressed bytes, more than {max_size_bytes}"
        ));
    }
    let body = rest(payload, used, "lz4 block body")?;
    // NOTE: an lz4 block expands at most LZ4_MAX_EXPANSION times, so a
    // claim beyond that is refused before the claimed length is allocated:
    // a few bytes must not cost a block-sized buffer.
    if len
        > body
            .len()
            .saturating_mul(LZ4_MAX_EXPANSION)
            .saturating_add(LZ4_MAX_EXPANSION)
    {
        return Err(format!(
            "lz4 block claims {len} uncompressed bytes from {} compressed",
            body.len()
        ));
    }
    let mut out = vec![0u8; len];
    match lz4_flex::block::decompress_into(body, &mut out) {
        Ok(written) if written == len => Ok(out),
        Ok(written) => Err(format!(
            "lz4 block decompressed to {written} bytes, expected {len}"
        )),
        Err(e) => Err(format!("lz4 block does not decompress: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion bound holds for the most compressible input, and a
    /// length claim past it is refused before anything is allocated.
    #[test]
    fn lz4_length_claims_are_bounded_by_the_compressed_size() {
        let raw = vec![0u8; 1 << 20];
        let mut body = vec![0u8; lz4_flex::block::get_maximum_output_size(raw.len())];
        let written = lz4_flex::block::compress_into(&raw, &mut body).unwrap();
        assert!(
            raw.len() <= written * LZ4_MAX_EXPANSION,
            "{written} bytes for 1 MiB"
        );
        let mut payload = Vec::new();
        crate::coding::put_varint32(&mut payload, raw.len() as u32);
        payload.extend_from_slice(&body[..written]);
        assert_eq!(decompress_lz4(&payload, 1 << 24).unwrap(), raw);
        // Ten bytes claiming 16 MiB.
        let mut claim = Vec::new();
        crate::coding::put_varint32(&mut claim, 1 << 24);
        claim.extend_from_slice(&[0x1f; 6]);
        let error = decompress_lz4(&claim, 1 << 24).unwrap_err();
        assert!(error.contains("compressed"), "{error}");
    }

    fn stored(raw: &[u8], compression: Compression) -> (Bytes, u64, Compression) {
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        let (size, used) = encode_block(raw, compression, &mut scratch, &mut out);
        assert_eq!(out.len() as u64, size + BLOCK_TRAILER_SIZE_BYTES as u64);
        (Bytes::from(out), size, used)
    }

    #[test]
    fn compressible_block_is_stored_compressed_and_round_trips() {
        let raw: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        let (bytes, size, used) = stored(&raw, Compression::Lz4);
        assert_eq!(used, Compression::Lz4);
        assert!(size < raw.len() as u64 / 2);
        assert_eq!(decode_block(bytes.clone(), raw.len()).unwrap(), raw);
        // A limit below the uncompressed size refuses the block.
        assert!(decode_block(bytes, raw.len() - 1).is_err());
    }

    #[test]
    fn incompressible_block_is_stored_raw() {
        let mut state = 0x1234_5678_u32;
        let raw: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let (bytes, size, used) = stored(&raw, Compression::Lz4);
        assert_eq!(used, Compression::None);
        assert_eq!(size, raw.len() as u64);
        assert_eq!(decode_block(bytes, raw.len()).unwrap(), raw);
    }

    #[test]
    fn every_bit_flip_fails_the_checksum() {
        let raw: Vec<u8> = b"hello hello hello hello hello block".repeat(4);
        for compression in [Compression::None, Compression::Lz4] {
            let (bytes, _, _) = stored(&raw, compression);
            for byte in 0..bytes.len() {
                for bit in 0..8 {
                    let mut flipped = bytes.to_vec();
                    flipped[byte] ^= 1 << bit;
                    assert!(decode_block(Bytes::from(flipped), 1 << 20).is_err());
                }
            }
            for cut in 0..bytes.len() {
                assert!(decode_block(bytes.slice(..cut), 1 << 20).is_err());
            }
        }
    }

    #[test]
    fn lz4_garbage_with_a_valid_crc_is_an_error() {
        // A payload that passes the checksum but does not decompress.
        for payload in [&[0x10u8, 0xff, 0xff, 0xff][..], &[0x80, 0x80], &[4, 0x4f, 1, 0]] {
            let mut stored = payload.to_vec();
            stored.push(1);
            stored.extend_from_slice(&block_crc(payload, 1).to_le_bytes());
            assert!(decode_block(Bytes::from(stored), 1 << 20).is_err());
        }
    }
}
