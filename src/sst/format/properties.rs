//! The properties block: what a table holds, readable without scanning it.
//!
//! ```text
//! properties (little-endian; stored uncompressed, with a block trailer):
//!   offset  size  field
//!   0       4     format_version     u32   FORMAT_VERSION
//!   4       1     compression        u8    0 none, 1 lz4 (the builder's option)
//!   5       8     entry_count        u64   >= 1
//!   13      8     deletion_count     u64   <= entry_count
//!   21      8     data_block_count   u64   >= 1
//!   29      8     data_size_bytes    u64   all data blocks with their trailers
//!   37      8     filter_size_bytes  u64   stored filter block, no trailer
//!   45      8     index_size_bytes   u64   stored index block, no trailer
//!   53      8     smallest_seqno     u64
//!   61      8     largest_seqno      u64   >= smallest_seqno
//!   69      -     smallest_key_len varint32, smallest_key bytes (encoded internal key)
//!   -       -     largest_key_len  varint32, largest_key  bytes (encoded internal key)
//!   -       8     range_del_count    u64   format version 3 only: entries of the
//!                                          range-tombstone block
//! ```
//!
//! Nothing may follow. `entry_count` and `data_block_count` are at least 1,
//! or (with range tombstones) both 0. The keys span the point entries and
//! the ranges of the tombstones.
//!
//! Ownership: pure encoder and decoder.
//!
//! Invariants:
//! - A decoded block passes every range check above, its keys are valid
//!   encoded internal keys of at most `MAX_ENCODED_KEY_SIZE_BYTES`, and
//!   `smallest_key <= largest_key`.

use crate::coding::{get_u32_le, get_u64_le, get_varint32, put_varint32, rest, slice};
use crate::key::{InternalKey, SeqNo};
use crate::sst::block::trailer::Compression;
use crate::sst::{FORMAT_VERSION as FORMAT_VERSION_3, MAX_ENCODED_KEY_SIZE_BYTES, encoded_key};

/// Bytes before the two length-prefixed keys.
const FIXED_SIZE_BYTES: usize = 69;

/// Facts about one table, written into it by the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProperties {
    /// Format version the table was written in.
    pub format_version: u32,
    /// Compression the builder was asked for (blocks that did not shrink by
    /// at least an eighth are stored uncompressed all the same).
    pub compression: Compression,
    /// Entries (versions, tombstones included).
    pub entry_count: u64,
    /// Entries that are tombstones.
    pub deletion_count: u64,
    /// Data blocks.
    pub data_block_count: u64,
    /// Bytes of all data blocks, trailers included (the filter block's
    /// offset).
    pub data_size_bytes: u64,
    /// Bytes of the stored filter block, without its trailer.
    pub filter_size_bytes: u64,
    /// Bytes of the stored index block, without its trailer.
    pub index_size_bytes: u64,
    /// The first key of the table.
    pub smallest_key: InternalKey,
    /// The last key of the table.
    pub largest_key: InternalKey,
    /// Smallest seqno of any entry.
    pub smallest_seqno: SeqNo,
    /// Largest seqno of any entry.
    pub largest_seqno: SeqNo,
    /// Range tombstones in the range-tombstone block (format version 3).
    pub range_del_count: u64,
    /// Size of the whole file. Not stored in the properties block: the
    /// builder knows it when it finishes, the reader from its caller.
    pub file_size_bytes: u64,
}

impl TableProperties {
    /// The properties block's bytes (everything but `file_size_bytes`).
    pub fn encode(&self) -> Vec<u8> {
        let smallest = encoded_key::encode(&self.smallest_key);
        let largest = encoded_key::encode(&self.largest_key);
        let mut out = Vec::with_capacity(FIXED_SIZE_BYTES + 10 + smallest.len() + largest.len());
        out.extend_from_slice(&self.format_version.to_le_bytes());
        out.push(self.compression as u8);
        for value in [
            self.entry_count,
            self.deletion_count,
            self.data_block_count,
            self.data_size_bytes,
            self.filter_size_bytes,
            self.index_size_bytes,
            self.smallest_seqno,
            self.largest_seqno,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        debug_assert_eq!(out.len(), FIXED_SIZE_BYTES);
        for key in [&smallest, &largest] {
            debug_assert!(key.len() <= MAX_ENCODED_KEY_SIZE_BYTES);
            put_varint32(&mut out, key.len() as u32);
            out.extend_from_slice(key);
        }
        if self.format_version >= FORMAT_VERSION_3 {
            out.extend_from_slice(&self.range_del_count.to_le_bytes());
        }
        out
    }

    /// Decodes and range-checks a properties block; `file_size_bytes` is
    /// left 0 for the caller to fill in.
    pub fn decode(bytes: &[u8]) -> Result<TableProperties, String> {
        let u64_at =
            |at: usize| get_u64_le(bytes, at).ok_or_else(|| format!("properties truncated at byte {at}"));
        let format_version =
            get_u32_le(bytes, 0).ok_or_else(|| "properties truncated at byte 0".to_owned())?;
        let compression_byte = *bytes
            .get(4)
            .ok_or_else(|| "properties truncated at byte 4".to_owned())?;
        let compression = Compression::from_u8(compression_byte)
            .ok_or_else(|| format!("unknown compression {compression_byte} in properties"))?;
        let entry_count = u64_at(5)?;
        let deletion_count = u64_at(13)?;
        let data_block_count = u64_at(21)?;
        let data_size_bytes = u64_at(29)?;
        let filter_size_bytes = u64_at(37)?;
        let index_size_bytes = u64_at(45)?;
        let smallest_seqno = u64_at(53)?;
        let largest_seqno = u64_at(61)?;
        let mut pos = FIXED_SIZE_BYTES;
        let smallest_key = decode_key(bytes, &mut pos, "smallest")?;
        let largest_key = decode_key(bytes, &mut pos, "largest")?;
        let mut range_del_count = 0;
        if format_version >= FORMAT_VERSION_3 {
            range_del_count = u64_at(pos)?;
            pos += 8;
        }
        if pos != bytes.len() {
            return Err(format!(
                "{} stray bytes after the properties at byte {pos}",
                bytes.len() - pos
            ));
        }
        let holds_points = entry_count > 0 && data_block_count > 0;
        let tombstones_only = entry_count == 0 && data_block_count == 0 && range_del_count > 0;
        if !holds_points && !tombstones_only {
            return Err(format!(
                "properties claim {entry_count} entries in {data_block_count} data blocks \
                 and {range_del_count} range tombstones"
            ));
        }
        if deletion_count > entry_count || data_block_count > entry_count {
            return Err(format!(
                "properties claim {deletion_count} deletions and {data_block_count} blocks \
                 for {entry_count} entries"
            ));
        }
        if smallest_seqno > largest_seqno {
            return Err(format!(
                "properties seqno range {smallest_seqno}..={largest_seqno} is inverted"
            ));
        }
        if smallest_key > largest_key {
            return Err("properties key range is inverted".to_owned());
        }
        Ok(TableProperties {
            format_version,
            compression,
            entry_count,
            deletion_count,
            data_block_count,
            data_size_bytes,
            filter_size_bytes,
            index_size_bytes,
            smallest_key,
            largest_key,
            smallest_seqno,
            largest_seqno,
            range_del_count,
            file_size_bytes: 0,
        })
    }
}

/// Decodes one length-prefixed encoded key at `*pos`, advancing it.
fn decode_key(bytes: &[u8], pos: &mut usize, which: &str) -> Result<InternalKey, String> {
    let (len, used) = get_varint32(rest(bytes, *pos, "properties key")?)
        .ok_or_else(|| format!("bad {which} key length at byte {pos}"))?;
    let len = len as usize;
    if len > MAX_ENCODED_KEY_SIZE_BYTES {
        return Err(format!(
            "{which} key length {len} exceeds {MAX_ENCODED_KEY_SIZE_BYTES}"
        ));
    }
    let start = *pos + used;
    let key_bytes = slice(bytes, start, len, "properties key")
        .map_err(|_| format!("{which} key of {len} bytes runs past the properties"))?;
    let key = encoded_key::decode(key_bytes).ok_or_else(|| format!("{which} key is not an internal key"))?;
    *pos = start + len;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::key::ValueKind;
    use crate::sst::FORMAT_VERSION;

    fn properties() -> TableProperties {
        TableProperties {
            format_version: FORMAT_VERSION,
            compression: Compression::Lz4,
            entry_count: 100,
            deletion_count: 7,
            data_block_count: 3,
            data_size_bytes: 12_000,
            filter_size_bytes: 130,
            index_size_bytes: 90,
            smallest_key: InternalKey::new(Bytes::from_static(b"apple"), 9, ValueKind::Put),
            largest_key: InternalKey::new(Bytes::from_static(b"zebra"), 3, ValueKind::Delete),
            smallest_seqno: 1,
            largest_seqno: 100,
            range_del_count: 2,
            file_size_bytes: 0,
        }
    }

    #[test]
    fn properties_round_trip() {
        let encoded = properties().encode();
        assert_eq!(TableProperties::decode(&encoded), Ok(properties()));
    }

    #[test]
    fn truncations_and_bad_ranges_are_rejected() {
        let encoded = properties().encode();
        for cut in 0..encoded.len() {
            assert!(TableProperties::decode(&encoded[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(TableProperties::decode(&longer).is_err());
        let inverted = TableProperties {
            smallest_seqno: 200,
            ..properties()
        };
        assert!(TableProperties::decode(&inverted.encode()).is_err());
        let empty = TableProperties {
            entry_count: 0,
            deletion_count: 0,
            ..properties()
        };
        assert!(TableProperties::decode(&empty.encode()).is_err());
        let tombstones_only = TableProperties {
            entry_count: 0,
            deletion_count: 0,
            data_block_count: 0,
            ..properties()
        };
        assert_eq!(
            TableProperties::decode(&tombstones_only.encode()),
            Ok(tombstones_only.clone())
        );
        let nothing = TableProperties {
            range_del_count: 0,
            ..tombstones_only
        };
        assert!(TableProperties::decode(&nothing.encode()).is_err());
        let mut bad_compression = encoded;
        bad_compression[4] = 9;
        assert!(TableProperties::decode(&bad_compression).is_err());
    }
}
