//! Version edits: the records of the manifest.
//!
//! ```text
//! edit  := field*
//! field := tag:varint32 body
//!   tag 1  log_number        varint64   WAL segments below it are flushed
//!   tag 2  next_file_number  varint64   next number for a table or manifest
//!   tag 3  last_seqno        varint64   highest seqno held by tables
//!   tag 4  add table         level:varint32 number:varint64 size:varint64
//!                            smallest:bytes largest:bytes
//!                            smallest_seqno:varint64 largest_seqno:varint64
//!   tag 5  delete table      level:varint32 number:varint64
//!   tag 6  closed_at_seqno   varint64   the store closed cleanly: its WAL
//!                                       holds every seqno up to this one
//!                                       and ends without damage
//!   tag 7  add table holding range tombstones: the body of tag 4
//! bytes := len:varint32 (internal key: user key ++ trailer:u64le)
//! ```
//!
//! Decoding takes untrusted bytes: unknown tags, truncation and impossible
//! values are errors, never panics.

use std::sync::Arc;

use bytes::Bytes;

use crate::coding::{self, get_u64_le, get_varint32, get_varint64, put_varint32, put_varint64};
use crate::key::{InternalKey, SeqNo, TRAILER_SIZE_BYTES, Trailer};
use crate::limits::MAX_KEY_SIZE_BYTES;

/// Number of levels in the tree.
pub const NUM_LEVELS: usize = 7;

const TAG_LOG_NUMBER: u32 = 1;
const TAG_NEXT_FILE_NUMBER: u32 = 2;
const TAG_LAST_SEQNO: u32 = 3;
const TAG_ADD_TABLE: u32 = 4;
const TAG_DELETE_TABLE: u32 = 5;
const TAG_CLOSED_AT_SEQNO: u32 = 6;
const TAG_ADD_TABLE_WITH_RANGE_DELS: u32 = 7;

/// What the manifest knows about one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// File number (`NNNNNN.sst`).
    pub number: u64,
    /// File size in bytes.
    pub size_bytes: u64,
    /// First internal key.
    pub smallest: InternalKey,
    /// Last internal key.
    pub largest: InternalKey,
    /// Lowest seqno in the table.
    pub smallest_seqno: SeqNo,
    /// Highest seqno in the table.
    pub largest_seqno: SeqNo,
    /// The table holds range tombstones: a scan opens it at the start to
    /// read them, as it cannot wait to reach the table's keys.
    pub has_range_dels: bool,
    /// The table's open handle once the table cache pins it; not part of
    /// the record (ignored by equality, not copied by `clone`).
    pub open: crate::sst::PinnedTable,
}

impl TableMeta {
    /// The manifest's record of table `number`, from its builder's output.
    pub fn from_properties(number: u64, properties: &crate::sst::TableProperties) -> Self {
        TableMeta {
            number,
            size_bytes: properties.file_size_bytes,
            smallest: properties.smallest_key.clone(),
            largest: properties.largest_key.clone(),
            smallest_seqno: properties.smallest_seqno,
            largest_seqno: properties.largest_seqno,
            has_range_dels: properties.range_del_count > 0,
            open: crate::sst::PinnedTable::default(),
        }
    }

    /// True when `user_key` lies within the table's key range.
    pub fn may_hold(&self, user_key: &[u8]) -> bool {
        self.smallest.user_key.as_ref() <= user_key && user_key <= self.largest.user_key.as_ref()
    }
}

/// One change to the set of tables and the log bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// WAL segments numbered below this hold only flushed data.
    pub log_number: Option<u64>,
    /// The next unused table/manifest number.
    pub next_file_number: Option<u64>,
    /// The highest seqno the tables hold.
    pub last_seqno: Option<SeqNo>,
    /// Tables added, with their level.
    pub added: Vec<(usize, Arc<TableMeta>)>,
    /// Tables removed: (level, number).
    pub deleted: Vec<(usize, u64)>,
    /// Written as the last edit of a clean close: the WAL holds every seqno
    /// up to this one and ends without damage, so recovery allows no torn
    /// tail.
    pub closed_at_seqno: Option<SeqNo>,
}

fn put_key(dst: &mut Vec<u8>, key: &InternalKey) {
    // NOTE: keys are bounded by MAX_KEY_SIZE_BYTES, far below u32::MAX.
    put_varint32(dst, (key.user_key.len() + 8) as u32);
    dst.extend_from_slice(&key.user_key);
    dst.extend_from_slice(&key.trailer.to_le_bytes());
}

impl VersionEdit {
    /// Encodes the edit.
    pub fn encode(&self) -> Vec<u8> {
        let mut dst = Vec::new();
        let tagged = |dst: &mut Vec<u8>, tag: u32, value: Option<u64>| {
            if let Some(value) = value {
                put_varint32(dst, tag);
                put_varint64(dst, value);
            }
        };
        tagged(&mut dst, TAG_LOG_NUMBER, self.log_number);
        tagged(&mut dst, TAG_NEXT_FILE_NUMBER, self.next_file_number);
        tagged(&mut dst, TAG_LAST_SEQNO, self.last_seqno);
        tagged(&mut dst, TAG_CLOSED_AT_SEQNO, self.closed_at_seqno);
        for (level, table) in &self.added {
            let tag = match table.has_range_dels {
                true => TAG_ADD_TABLE_WITH_RANGE_DELS,
                false => TAG_ADD_TABLE,
            };
            put_varint32(&mut dst, tag);
            put_varint32(&mut dst, *level as u32);
            put_varint64(&mut dst, table.number);
            put_varint64(&mut dst, table.size_bytes);
            put_key(&mut dst, &table.smallest);
            put_key(&mut dst, &table.largest);
            put_varint64(&mut dst, table.smallest_seqno);
            put_varint64(&mut dst, table.largest_seqno);
        }
        for (level, number) in &self.deleted {
            put_varint32(&mut dst, TAG_DELETE_TABLE);
            put_varint32(&mut dst, *level as u32);
            put_varint64(&mut dst, *number);
        }
        dst
    }

    /// Decodes an edit; the error says what is wrong.
    pub fn decode(src: &[u8]) -> Result<VersionEdit, String> {
        let mut reader = Reader { src, pos: 0 };
        let mut edit = VersionEdit::default();
        while !reader.done() {
            match reader.varint32("tag")? {
                TAG_LOG_NUMBER => edit.log_number = Some(reader.varint64("log number")?),
                TAG_NEXT_FILE_NUMBER => edit.next_file_number = Some(reader.varint64("next file number")?),
                TAG_LAST_SEQNO => edit.last_seqno = Some(reader.varint64("last seqno")?),
                TAG_CLOSED_AT_SEQNO => edit.closed_at_seqno = Some(reader.varint64("closed-at seqno")?),
                tag @ (TAG_ADD_TABLE | TAG_ADD_TABLE_WITH_RANGE_DELS) => {
                    let level = reader.level()?;
                    let table = TableMeta {
                        number: reader.varint64("table number")?,
                        size_bytes: reader.varint64("table size")?,
                        smallest: reader.key()?,
                        largest: reader.key()?,
                        smallest_seqno: reader.varint64("smallest seqno")?,
                        largest_seqno: reader.varint64("largest seqno")?,
                        has_range_dels: tag == TAG_ADD_TABLE_WITH_RANGE_DELS,
                        open: crate::sst::PinnedTable::default(),
                    };
                    if table.smallest > table.largest || table.smallest_seqno > table.largest_seqno {
                        return Err(format!("table {} has an inverted range", table.number));
                    }
                    edit.added.push((level, Arc::new(table)));
                }
                TAG_DELETE_TABLE => {
                    let level = reader.level()?;
                    edit.deleted.push((level, reader.varint64("table number")?));
                }
                tag => return Err(format!("unknown edit tag {tag}")),
            }
        }
        Ok(edit)
    }
}

struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn rest(&self) -> Result<&[u8], String> {
        Ok(coding::rest(self.src, self.pos, "edit field")?)
    }

    fn varint32(&mut self, what: &str) -> Result<u32, String> {
        let (value, used) = get_varint32(self.rest()?).ok_or_else(|| format!("bad {what}"))?;
        self.pos += used;
        Ok(value)
    }

    fn varint64(&mut self, what: &str) -> Result<u64, String> {
        let (value, used) = get_varint64(self.rest()?).ok_or_else(|| format!("bad {what}"))?;
        self.pos += used;
        Ok(value)
    }

    fn level(&mut self) -> Result<usize, String> {
        let level = self.varint32("level")? as usize;
        if level >= NUM_LEVELS {
            return Err(format!("level {level} out of range"));
        }
        Ok(level)
    }

    fn key(&mut self) -> Result<InternalKey, String> {
        let len = self.varint32("key length")? as usize;
        if !(TRAILER_SIZE_BYTES..=MAX_KEY_SIZE_BYTES + TRAILER_SIZE_BYTES).contains(&len) {
            return Err(format!("key length {len} out of range"));
        }
        let bytes = coding::slice(self.src, self.pos, len, "key").map_err(|_| "key runs past the edit")?;
        let user_len = len - TRAILER_SIZE_BYTES;
        let user_key = Bytes::copy_from_slice(coding::slice(bytes, 0, user_len, "user key")?);
        let trailer = get_u64_le(bytes, user_len).ok_or("key trailer missing")?;
        Trailer::from_raw(trailer)
            .kind()
            .map_err(|unknown| format!("key holds an {unknown}"))?;
        self.pos += len;
        Ok(InternalKey { user_key, trailer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ValueKind;

    fn sample() -> VersionEdit {
        let table = |number: u64| {
            Arc::new(TableMeta {
                number,
                size_bytes: 4096 * number,
                smallest: InternalKey::new(Bytes::from(format!("a{number}")), 5, ValueKind::Put),
                largest: InternalKey::new(Bytes::from(format!("z{number}")), 1, ValueKind::Delete),
                smallest_seqno: 1,
                largest_seqno: 5,
                has_range_dels: number.is_multiple_of(2),
                open: crate::sst::PinnedTable::default(),
            })
        };
        VersionEdit {
            log_number: Some(7),
            next_file_number: Some(12),
            last_seqno: Some(99),
            added: vec![(0, table(9)), (3, table(10))],
            deleted: vec![(0, 4), (1, 5)],
            closed_at_seqno: Some(98),
        }
    }

    #[test]
    fn edit_round_trips() {
        let edit = sample();
        assert_eq!(VersionEdit::decode(&edit.encode()).unwrap(), edit);
        assert_eq!(VersionEdit::decode(&[]).unwrap(), VersionEdit::default());
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        let bytes = sample().encode();
        for cut in 1..bytes.len() {
            // A cut can land on a field boundary and still decode, but never
            // to the original edit.
            if let Ok(edit) = VersionEdit::decode(&bytes[..cut]) {
                assert_ne!(edit, sample());
            }
        }
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[byte] ^= 1 << bit;
                let _ = VersionEdit::decode(&bad);
            }
        }
        assert!(
            VersionEdit::decode(&[99])
                .unwrap_err()
                .contains("unknown edit tag")
        );
        assert!(VersionEdit::decode(&[4, 9]).unwrap_err().contains("level"));
    }
}
