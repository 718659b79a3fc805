//! The footer: the fixed-size end of every table, where a reader starts.
//!
//! ```text
//! footer (64 bytes, little-endian), at file_size - 64:
//!   offset  size  field
//!   0       8     filter_offset       u64
//!   8       8     filter_size         u64   stored bytes, without the trailer
//!   16      8     properties_offset   u64
//!   24      8     properties_size     u64
//!   32      8     index_offset        u64
//!   40      8     index_size          u64
//!   48      4     format_version      u32   FORMAT_VERSION_1 (1) or FORMAT_VERSION (2)
//!   52      4     crc                 u32   masked crc32c of footer[0..52]
//!   56      8     magic               u64   TABLE_MAGIC
//! ```
//!
//! Ownership: pure encoder and decoder; the table builder writes the footer
//! last, the table reader reads it first.
//!
//! Invariants:
//! - The footer is exactly [`FOOTER_SIZE_BYTES`] long.
//! - A decoded footer has the right magic, a matching crc and version
//!   [`FORMAT_VERSION`]; the caller checks the handles against the file.

use crate::coding::{get_u32_le, get_u64_le, mask_crc, unmask_crc};
use crate::sst::format::handle::BlockHandle;
use crate::sst::{FOOTER_SIZE_BYTES, FORMAT_VERSION, FORMAT_VERSION_1, TABLE_MAGIC};

/// Offset of the crc field; the crc covers every byte before it.
const CRC_OFFSET: usize = 52;
/// Offset of the magic number.
const MAGIC_OFFSET: usize = 56;

/// Where a table's metadata blocks are, and its format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// The bloom filter block.
    pub filter: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
    /// The index block.
    pub index: BlockHandle,
    /// The table's format version.
    pub format_version: u32,
}

impl Footer {
    /// The footer's 64 bytes.
    pub fn encode(&self) -> [u8; FOOTER_SIZE_BYTES] {
        let mut out = [0u8; FOOTER_SIZE_BYTES];
        let fields = [
            self.filter.offset,
            self.filter.size_bytes,
            self.properties.offset,
            self.properties.size_bytes,
            self.index.offset,
            self.index.size_bytes,
        ];
        for (slot, value) in out.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        let (head, tail) = out.split_at_mut(CRC_OFFSET);
        if let Some(version) = head.get_mut(48..52) {
            version.copy_from_slice(&self.format_version.to_le_bytes());
        }
        let crc = mask_crc(crc32c::crc32c(head));
        if let Some(slot) = tail.get_mut(..4) {
            slot.copy_from_slice(&crc.to_le_bytes());
        }
        if let Some(slot) = tail.get_mut(4..12) {
            slot.copy_from_slice(&TABLE_MAGIC.to_le_bytes());
        }
        out
    }

    /// Decodes and verifies a footer: magic, then crc, then version.
    pub fn decode(bytes: &[u8]) -> Result<Footer, String> {
        if bytes.len() != FOOTER_SIZE_BYTES {
            return Err(format!(
                "footer is {} bytes, expected {FOOTER_SIZE_BYTES}",
                bytes.len()
            ));
        }
        let field = |at: usize| get_u64_le(bytes, at).ok_or_else(|| "footer field out of range".to_owned());
        let magic = field(MAGIC_OFFSET)?;
        if magic != TABLE_MAGIC {
            return Err(format!(
                "bad table magic {magic:#018x}, expected {TABLE_MAGIC:#018x}"
            ));
        }
        let stored_crc = get_u32_le(bytes, CRC_OFFSET).ok_or_else(|| "footer crc out of range".to_owned())?;
        let covered = bytes
            .get(..CRC_OFFSET)
            .ok_or_else(|| "footer too short".to_owned())?;
        let actual = crc32c::crc32c(covered);
        if unmask_crc(stored_crc) != actual {
            return Err(format!(
                "footer checksum mismatch: stored {:#010x}, computed {actual:#010x}",
                unmask_crc(stored_crc)
            ));
        }
        let format_version = get_u32_le(bytes, 48).ok_or_else(|| "footer version out of range".to_owned())?;
        if !(FORMAT_VERSION_1..=FORMAT_VERSION).contains(&format_version) {
            return Err(format!(
                "unsupported table format version {format_version} (this build reads \
                 {FORMAT_VERSION_1} ..= {FORMAT_VERSION})"
            ));
        }
        Ok(Footer {
            filter: BlockHandle {
                offset: field(0)?,
                size_bytes: field(8)?,
            },
            properties: BlockHandle {
                offset: field(16)?,
                size_bytes: field(24)?,
            },
            index: BlockHandle {
                offset: field(32)?,
                size_bytes: field(40)?,
            },
            format_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footer() -> Footer {
        Footer {
            filter: BlockHandle {
                offset: 1000,
                size_bytes: 20,
            },
            properties: BlockHandle {
                offset: 1025,
                size_bytes: 90,
            },
            index: BlockHandle {
                offset: 1120,
                size_bytes: 33,
            },
            format_version: FORMAT_VERSION,
        }
    }

    #[test]
    fn footer_round_trips() {
        let bytes = footer().encode();
        assert_eq!(Footer::decode(&bytes), Ok(footer()));
        assert_eq!(get_u64_le(&bytes, 56), Some(TABLE_MAGIC));
    }

    #[test]
    fn every_bit_flip_and_bad_length_is_rejected() {
        let bytes = footer().encode();
        for byte in 0..FOOTER_SIZE_BYTES {
            for bit in 0..8 {
                let mut flipped = bytes;
                flipped[byte] ^= 1 << bit;
                assert!(Footer::decode(&flipped).is_err(), "byte {byte} bit {bit}");
            }
        }
        assert!(Footer::decode(&bytes[1..]).is_err());
        assert!(Footer::decode(&[]).is_err());
    }

    #[test]
    fn other_versions_are_refused() {
        let other = Footer {
            format_version: FORMAT_VERSION + 1,
            ..footer()
        };
        let error = Footer::decode(&other.encode()).unwrap_err();
        assert!(error.contains("version"), "{error}");
        let zero = Footer {
            format_version: 0,
            ..footer()
        };
        assert!(Footer::decode(&zero.encode()).is_err());
        let old = Footer {
            format_version: FORMAT_VERSION_1,
            ..footer()
        };
        assert_eq!(
            Footer::decode(&old.encode()).unwrap().format_version,
            FORMAT_VERSION_1
        );
    }
}
