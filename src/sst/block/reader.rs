//! Decoding a block: [`Block`] checks its restart array, [`BlockIter`]
//! walks its entries (layout in [`super::builder`]).
//!
//! The bytes are untrusted in principle (a block's checksum was verified
//! before it gets here, but a decoder must not rely on that): every varint,
//! length and offset is checked, and any defect is `Err(reason)` naming the
//! byte offset inside the block. The caller adds the file and the block's
//! file offset.
//!
//! Entries are prefix-compressed, so they can only be decoded forward from
//! a restart point. A backward step decodes the whole restart interval
//! before the current entry once and keeps it (`prev_entries`), so a
//! reverse walk decodes each entry about once instead of re-reading the
//! interval at every step (RocksDB's block iterator does the same).
//!
//! Ownership: a `Block` is a cheap, immutable, shareable handle over
//! `Bytes`; a `BlockIter` owns a clone of it, its current key and its
//! cache of the entries before it.
//!
//! Invariants:
//! - `Block::new` accepts only a restart array that starts at 0, is
//!   strictly increasing and points before the array itself.
//! - A valid iterator's key is a valid encoded internal key and its value
//!   range lies inside the entry region; an invalid iterator has an empty
//!   key and value.
//! - The last of `prev_entries`, if its `value_end` is `current`, is the
//!   entry just before the current one (entries are contiguous).
//! - After an `Err` the iterator is invalid.
//! - Key order inside a block is not re-checked: the block checksum
//!   guards it, and a misordered block yields misordered entries, never a
//!   panic.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::coding::{get_u32_le, get_varint32, range};
use crate::key::{Trailer, ValueKind};
use crate::sst::block::heads::RestartHeads;
use crate::sst::{MAX_ENCODED_KEY_SIZE_BYTES, encoded_key};

/// Bytes of one restart offset or of the restart count.
const U32_SIZE_BYTES: usize = 4;

/// A decoded block: verified, decompressed bytes with a checked restart
/// array.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    /// Offset of the restart array: entries live in `data[..restarts_offset]`.
    restarts_offset: usize,
    /// Entries of the restart array, at least 1.
    restart_count: usize,
    /// Shortest value an entry of kind `PutWithExpiry` may have: the expiry
    /// prefix in a data block, 0 in an index block (whose values are
    /// handles).
    min_expiring_value_bytes: usize,
    /// A data block holds point entries only: a range tombstone in one is
    /// corruption (they live in the range-tombstone block).
    point_entries: bool,
    /// Set on blocks searched often enough to pay 8 bytes a restart (a
    /// table's index): seeks then binary-search these first.
    heads: Option<Arc<RestartHeads>>,
}

impl Block {
    /// Checks the restart array of a data block's `data`; its entries'
    /// values are then checked as values of their kind (an expiring value
    /// holds its expiry).
    pub fn new_data(data: Bytes) -> Result<Block, String> {
        let mut block = Self::new(data)?;
        block.min_expiring_value_bytes = crate::ttl::EXPIRY_SIZE_BYTES;
        block.point_entries = true;
        Ok(block)
    }

    /// Checks the restart array of `data`.
    pub fn new(data: Bytes) -> Result<Block, String> {
        let len = data.len();
        let count_offset = len
            .checked_sub(U32_SIZE_BYTES)
            .ok_or_else(|| format!("block of {len} bytes has no restart count"))?;
        let restart_count =
            get_u32_le(&data, count_offset).ok_or_else(|| "restart count out of range".to_owned())? as usize;
        if restart_count == 0 || restart_count > count_offset / U32_SIZE_BYTES {
            return Err(format!(
                "restart count {restart_count} impossible in a block of {len} bytes"
            ));
        }
        let restarts_offset = count_offset - U32_SIZE_BYTES * restart_count;
        let mut previous: Option<usize> = None;
        for index in 0..restart_count {
            let at = restarts_offset + U32_SIZE_BYTES * index;
            let restart =
                get_u32_le(&data, at).ok_or_else(|| format!("restart {index} out of range"))? as usize;
            let in_order = match previous {
                None => restart == 0,
                Some(previous) => restart > previous && restart < restarts_offset,
            };
            if !in_order {
                return Err(format!(
                    "restart {index} at block byte {at} is {restart}: not increasing from 0 \
                     below {restarts_offset}"
                ));
            }
            previous = Some(restart);
        }
        Ok(Block {
            data,
            restarts_offset,
            restart_count,
            min_expiring_value_bytes: 0,
            point_entries: false,
            heads: None,
        })
    }

    /// This block with its restart heads built (see [`RestartHeads`]), so
    /// that seeks compare whole keys only where heads tie. Checks every
    /// restart key.
    pub fn with_restart_heads(mut self) -> Result<Block, String> {
        // An empty block's one restart points at no entry.
        let restarts = if self.is_empty() { 0 } else { self.restart_count };
        let mut user_keys = Vec::with_capacity(restarts);
        for index in 0..restarts {
            user_keys.push(encoded_key::user_key(self.restart_key(index)?));
        }
        self.heads = Some(Arc::new(RestartHeads::new(&user_keys)));
        Ok(self)
    }

    /// An iterator over the entries, positioned nowhere (invalid).
    pub fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            current: self.restarts_offset,
            next_offset: self.restarts_offset,
            key: Vec::new(),
            trailer: 0,
            value_start: 0,
            value_end: 0,
            prev_entries: Vec::new(),
            prev_keys: Vec::new(),
        }
    }

    /// True if the block has no entries.
    pub fn is_empty(&self) -> bool {
        self.restarts_offset == 0
    }

    /// The block's length in bytes.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }

    /// The block's bytes, its restart array included.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Asks the CPU to start loading every cache line of the block, so the
    /// misses of a search overlap instead of following one another.
    pub fn prefetch(&self) {
        crate::prefetch::lines(&self.data);
    }

    /// Offset of restart point `index` (checked in `new`).
    fn restart_point(&self, index: usize) -> usize {
        get_u32_le(&self.data, self.restarts_offset + U32_SIZE_BYTES * index)
            .map_or(self.restarts_offset, |offset| offset as usize)
    }

    /// Index of the last restart point before `offset`. REQUIRES:
    /// `offset > 0` (restart 0 is at offset 0).
    fn restart_before(&self, offset: usize) -> usize {
        debug_assert!(offset > 0);
        // restart_point(left) < offset <= restart_point(right), where
        // `right == restart_count` stands for "past the last".
        let (mut left, mut right) = (0, self.restart_count);
        while right - left > 1 {
            let mid = left + (right - left) / 2;
            if self.restart_point(mid) < offset {
                left = mid;
            } else {
                right = mid;
            }
        }
        left
    }
}

/// An entry found by [`Block::seek_entry`]: read its value through the
/// block that found it.
#[derive(Debug, Clone, Copy)]
pub struct Entry(Decoded);

/// One decoded entry header.
struct EntryHeader {
    shared: usize,
    key_start: usize,
    key_end: usize,
    value_end: usize,
}

/// What decoding an entry yields besides its key: where its value lies
/// (it ends where the next entry starts) and its key's trailer.
#[derive(Debug, Clone, Copy)]
struct Decoded {
    value_start: usize,
    value_end: usize,
    trailer: u64,
}

impl Block {
    /// Decodes the header of the entry at `offset` and bounds its key and
    /// value by the entry region.
    // NOTE: forced inline: a scan decodes every entry through here, and as
    // a call (the compiler's choice) it cost a fifth of the decoding.
    #[inline(always)]
    fn entry_header(&self, offset: usize) -> Result<EntryHeader, String> {
        let limit = self.restarts_offset;
        let entries = range(&self.data, offset, limit, "block entry")?;
        // NOTE: keys and values under 128 bytes have three one-byte
        // varints; decoding them together is the common case of a scan
        // (LevelDB's `DecodeEntry` has the same fast path).
        let (shared, unshared, value_len, header_len) = match entries {
            [shared, unshared, value_len, ..] if (shared | unshared | value_len) & 0x80 == 0 => {
                (*shared as usize, *unshared as usize, *value_len as usize, 3)
            }
            _ => varint_header(entries).ok_or_else(|| entry_error(offset, "truncated or overlong varint"))?,
        };
        let key_start = offset + header_len;
        // Saturating: an overflow is past `limit` like any other bad length.
        let key_end = key_start.saturating_add(unshared);
        let value_end = key_end.saturating_add(value_len);
        if value_end > limit || shared.saturating_add(unshared) > MAX_ENCODED_KEY_SIZE_BYTES {
            return Err(header_error(offset, limit, shared, unshared, key_end, value_len));
        }
        Ok(EntryHeader {
            shared,
            key_start,
            key_end,
            value_end,
        })
    }

    /// Decodes the entry at `offset`, whose predecessor's whole key is in
    /// `key`, and leaves the entry's whole key in `key` (on `Err`, `key`
    /// holds anything).
    #[inline]
    fn decode_entry(&self, offset: usize, key: &mut Vec<u8>) -> Result<Decoded, String> {
        let header = self.entry_header(offset)?;
        if header.shared > key.len() {
            return Err(entry_error(
                offset,
                &format!(
                    "shares {} bytes of a {}-byte previous key",
                    header.shared,
                    key.len()
                ),
            ));
        }
        let suffix = range(&self.data, header.key_start, header.key_end, "entry key")?;
        key.truncate(header.shared);
        key.extend_from_slice(suffix);
        let Some(trailer) = encoded_key::valid_trailer(key) else {
            return Err(entry_error(offset, "has no valid internal key"));
        };
        let kind = Trailer::from_raw(trailer).known_kind();
        if self.point_entries && kind == ValueKind::RangeDelete {
            return Err(entry_error(offset, "holds a range tombstone among point entries"));
        }
        if kind == ValueKind::PutWithExpiry
            && header.value_end - header.key_end < self.min_expiring_value_bytes
        {
            return Err(entry_error(
                offset,
                "holds an expiring value shorter than its expiry",
            ));
        }

        Ok(Decoded {
            value_start: header.key_end,
            value_end: header.value_end,
            trailer,
        })
    }

    /// Index of the last restart whose key is before `target` (0 if none
    /// is): where a seek for `target` starts decoding.
    fn restart_for(&self, target: &[u8]) -> Result<usize, String> {
        if let Some(heads) = &self.heads {
            return self.restart_for_by_heads(heads, target);
        }
        let mut left = 0;
        let mut right = self.restart_count - 1;
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            if encoded_key::compare(self.restart_key(mid)?, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        Ok(left)
    }

    /// [`Block::restart_for`] through the heads: whole keys are compared
    /// only in the span of restarts whose heads equal the target's.
    fn restart_for_by_heads(&self, heads: &RestartHeads, target: &[u8]) -> Result<usize, String> {
        let span = heads.span(encoded_key::user_key(target));
        // The restarts before the span sort before `target`; count those
        // in the span that do too.
        let (mut before, mut end) = (span.start, span.end);
        while before < end {
            let mid = before + (end - before) / 2;
            if encoded_key::compare(self.restart_key(mid)?, target) == Ordering::Less {
                before = mid + 1;
            } else {
                end = mid;
            }
        }
        Ok(before.saturating_sub(1))
    }

    /// A point lookup: the first entry whose key is at or after `target`,
    /// with its whole key left in `key`; `None` if no entry is. It decodes
    /// what [`BlockIter::seek`] decodes, without an iterator (no clone of
    /// the block, no state for stepping back).
    pub fn seek_entry(&self, target: &[u8], key: &mut Vec<u8>) -> Result<Option<Entry>, String> {
        let mut offset = self.restart_point(self.restart_for(target)?);
        key.clear();
        while offset < self.restarts_offset {
            let decoded = self.decode_entry(offset, key)?;
            if encoded_key::compare(key, target) != Ordering::Less {
                return Ok(Some(Entry(decoded)));
            }
            offset = decoded.value_end;
        }
        Ok(None)
    }

    /// The value of `entry`, sharing the block's bytes.
    pub fn value(&self, entry: &Entry) -> Bytes {
        self.data.slice(entry.0.value_start..entry.0.value_end)
    }

    /// The value of `entry`, borrowed.
    pub fn value_slice(&self, entry: &Entry) -> &[u8] {
        // NOTE: `decode_entry` bounded the range by the entry region.
        self.data
            .get(entry.0.value_start..entry.0.value_end)
            .unwrap_or_default()
    }

    /// The whole key of the entry at restart point `index`.
    fn restart_key(&self, index: usize) -> Result<&[u8], String> {
        let offset = self.restart_point(index);
        let header = self.entry_header(offset)?;
        if header.shared != 0 {
            return Err(format!(
                "restart entry at block byte {offset} shares {} bytes with nothing",
                header.shared
            ));
        }
        let key = range(&self.data, header.key_start, header.key_end, "restart key")?;
        if !encoded_key::is_valid(key) {
            return Err(format!(
                "restart entry at block byte {offset} has no valid internal key"
            ));
        }
        Ok(key)
    }
}

/// The three varints of an entry header that does not take the one-byte
/// fast path, and their length; `None` if one is truncated or overlong.
fn varint_header(entries: &[u8]) -> Option<(usize, usize, usize, usize)> {
    let mut pos = 0;
    let mut field = || {
        let (value, used) = get_varint32(entries.get(pos..)?)?;
        pos += used;
        Some(value as usize)
    };
    let shared = field()?;
    let unshared = field()?;
    let value_len = field()?;
    Some((shared, unshared, value_len, pos))
}

/// The error for the entry at block byte `offset`.
#[cold]
fn entry_error(offset: usize, what: &str) -> String {
    format!("entry at block byte {offset}: {what}")
}

/// The error for an entry header whose lengths do not fit (see
/// `Block::entry_header`).
#[cold]
fn header_error(
    offset: usize,
    limit: usize,
    shared: usize,
    unshared: usize,
    key_end: usize,
    value_len: usize,
) -> String {
    let what = if key_end > limit {
        format!("key suffix of {unshared} bytes runs past the entries")
    } else if key_end.saturating_add(value_len) > limit {
        format!("value of {value_len} bytes runs past the entries")
    } else {
        format!(
            "key of {} bytes exceeds {MAX_ENCODED_KEY_SIZE_BYTES}",
            shared.saturating_add(unshared)
        )
    };
    entry_error(offset, &what)
}

/// An entry decoded by a backward step, kept for the next ones.
#[derive(Debug, Clone, Copy)]
struct PrevEntry {
    /// Offset of the entry.
    offset: usize,
    /// Its whole key: `prev_keys[key_start..key_end]`.
    key_start: usize,
    key_end: usize,
    decoded: Decoded,
}

/// A cursor over one block's entries, forward and backward.
#[derive(Debug, Clone)]
pub struct BlockIter {
    block: Block,
    /// Offset of the current entry; `restarts_offset` when invalid.
    current: usize,
    /// Offset just past the current entry (where `next` parses).
    next_offset: usize,
    /// The current entry's whole key.
    key: Vec<u8>,
    /// The trailer at the end of `key` (0 when invalid).
    trailer: u64,
    value_start: usize,
    value_end: usize,
    /// Entries of one restart interval, in block order, that come before
    /// the current entry; a backward step pops the last.
    prev_entries: Vec<PrevEntry>,
    /// The whole keys of `prev_entries`, end to end.
    prev_keys: Vec<u8>,
}

impl BlockIter {
    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.current < self.block.restarts_offset
    }

    /// Makes this a cursor over `block`, positioned nowhere (invalid),
    /// keeping the buffers it has grown.
    pub fn reset(&mut self, block: Block) {
        self.block = block;
        self.invalidate();
    }

    /// True when positioned at an entry that is not the block's last, so
    /// `next` stays in the block.
    #[inline]
    pub fn has_next(&self) -> bool {
        self.valid() && self.next_offset < self.block.restarts_offset
    }

    /// True when positioned at an entry that is not the block's first, so
    /// `prev` stays in the block.
    #[inline]
    pub fn has_prev(&self) -> bool {
        // The first entry is at offset 0 (restart 0).
        self.valid() && self.current > 0
    }

    /// The current encoded internal key (empty when invalid).
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current key's user key (empty when invalid).
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        let len = self.key.len().saturating_sub(encoded_key::TRAILER_SIZE_BYTES);
        self.key.get(..len).unwrap_or_default()
    }

    /// The current key's trailer (`seqno << 8 | kind`; 0 when invalid).
    #[inline]
    pub fn trailer(&self) -> u64 {
        self.trailer
    }

    /// The current value: a slice of the block, no copy (empty when
    /// invalid).
    #[inline]
    pub fn value(&self) -> Bytes {
        if self.value_start <= self.value_end && self.value_end <= self.block.data.len() {
            self.block.data.slice(self.value_start..self.value_end)
        } else {
            Bytes::new()
        }
    }

    /// The current value as a borrowed slice (empty when invalid).
    pub fn value_slice(&self) -> &[u8] {
        self.block
            .data
            .get(self.value_start..self.value_end)
            .unwrap_or_default()
    }

    /// Positions at the first entry (invalid if the block is empty).
    pub fn seek_to_first(&mut self) -> Result<(), String> {
        self.seek_to_restart(0);
        self.parse_next().map(drop)
    }

    /// Positions at the last entry (invalid if the block is empty).
    pub fn seek_to_last(&mut self) -> Result<(), String> {
        self.invalidate();
        // The last entry is the one that ends where the restart array
        // starts; decoding its interval also readies the steps back.
        self.step_back_from(self.block.restarts_offset)
    }

    /// Positions at the first entry whose key is at or after `target` (an
    /// encoded internal key) in internal-key order; invalid if none is.
    pub fn seek(&mut self, target: &[u8]) -> Result<(), String> {
        match self.block.restart_for(target) {
            Ok(restart) => self.seek_to_restart(restart),
            Err(reason) => return self.fail(reason),
        }
        while self.parse_next()? {
            if encoded_key::compare(&self.key, target) != Ordering::Less {
                break;
            }
        }
        Ok(())
    }

    /// Moves to the next entry (invalid past the last). No-op when invalid.
    #[expect(
        clippy::should_implement_trait,
        reason = "a fallible cursor step, not an Iterator; named like the table iterator's"
    )]
    #[inline]
    pub fn next(&mut self) -> Result<(), String> {
        if !self.valid() {
            return Ok(());
        }
        self.parse_next().map(drop)
    }

    /// Moves to the previous entry (invalid before the first). No-op when
    /// invalid.
    pub fn prev(&mut self) -> Result<(), String> {
        if !self.valid() {
            return Ok(());
        }
        self.step_back_from(self.current)
    }

    /// Positions at the entry that ends at `end` (an entry's offset, or
    /// `restarts_offset` for the last entry); invalid if `end` is 0.
    fn step_back_from(&mut self, end: usize) -> Result<(), String> {
        if end == 0 {
            self.invalidate();
            return Ok(());
        }
        let cached = self
            .prev_entries
            .last()
            .is_some_and(|entry| entry.decoded.value_end == end);
        if !cached && let Err(reason) = self.decode_interval_before(end) {
            return self.fail(reason);
        }
        let Some(entry) = self.prev_entries.pop() else {
            unreachable!("decode_interval_before leaves at least one entry");
        };
        let key = self
            .prev_keys
            .get(entry.key_start..entry.key_end)
            .unwrap_or_default();
        self.key.clear();
        self.key.extend_from_slice(key);
        self.current = entry.offset;
        self.set_decoded(entry.decoded);
        Ok(())
    }

    /// Fills `prev_entries` with the entries from the last restart point
    /// before `end` up to the one that ends at `end`. REQUIRES: `end > 0`.
    fn decode_interval_before(&mut self, end: usize) -> Result<(), String> {
        let restart = self.block.restart_before(end);
        self.prev_entries.clear();
        self.prev_keys.clear();
        // `self.key` serves as the decoding buffer: the step back that
        // follows overwrites it.
        self.key.clear();
        let mut offset = self.block.restart_point(restart);
        loop {
            let decoded = self.block.decode_entry(offset, &mut self.key)?;
            let key_start = self.prev_keys.len();
            self.prev_keys.extend_from_slice(&self.key);
            self.prev_entries.push(PrevEntry {
                offset,
                key_start,
                key_end: self.prev_keys.len(),
                decoded,
            });
            // Entries are non-empty, so `offset` grows and the loop ends.
            match decoded.value_end.cmp(&end) {
                Ordering::Less => offset = decoded.value_end,
                Ordering::Equal => return Ok(()),
                Ordering::Greater => {
                    return Err(format!(
                        "entry at block byte {offset} overlaps the entry at {end}"
                    ));
                }
            }
        }
    }

    /// Clears the key and places the next parse at restart `index`.
    fn seek_to_restart(&mut self, index: usize) {
        self.invalidate();
        self.next_offset = self.block.restart_point(index);
    }

    /// Makes the iterator invalid.
    fn invalidate(&mut self) {
        self.current = self.block.restarts_offset;
        self.next_offset = self.block.restarts_offset;
        self.key.clear();
        self.trailer = 0;
        self.value_start = 0;
        self.value_end = 0;
        self.prev_entries.clear();
        self.prev_keys.clear();
    }

    /// Makes the iterator invalid and returns `reason` as the error.
    fn fail(&mut self, reason: String) -> Result<(), String> {
        self.invalidate();
        Err(reason)
    }

    /// Decodes the entry at `next_offset`. `Ok(false)` (and invalid) at the
    /// end of the entries.
    #[inline]
    fn parse_next(&mut self) -> Result<bool, String> {
        let offset = self.next_offset;
        if offset >= self.block.restarts_offset {
            self.invalidate();
            return Ok(false);
        }
        match self.block.decode_entry(offset, &mut self.key) {
            Ok(decoded) => {
                self.current = offset;
                self.set_decoded(decoded);
                Ok(true)
            }
            Err(reason) => self.fail(reason).map(|()| false),
        }
    }

    /// Takes the trailer and value of the entry just decoded into `key`.
    #[inline]
    fn set_decoded(&mut self, decoded: Decoded) {
        self.trailer = decoded.trailer;
        self.next_offset = decoded.value_end;
        self.value_start = decoded.value_start;
        self.value_end = decoded.value_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::InternalKey;
    use crate::sst::block::BlockBuilder;
    use crate::sst::{DATA_RESTART_INTERVAL, encoded_key::encode};

    /// `count` entries: user keys `key{i/3:05}` with three versions each,
    /// the middle one a tombstone.
    fn entries(count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..count)
            .map(|i| {
                let user_key = format!("key{:05}", i / 3);
                let seqno = 1000 - (i % 3) as u64;
                let kind = if i % 3 == 1 {
                    ValueKind::Delete
                } else {
                    ValueKind::Put
                };
                let key = InternalKey::new(user_key.into(), seqno, kind);
                let value = format!("value-{i}").repeat(i % 4);
                (encode(&key), value.into_bytes())
            })
            .collect()
    }

    fn build(entries: &[(Vec<u8>, Vec<u8>)], restart_interval: usize) -> Block {
        let mut builder = BlockBuilder::new(restart_interval);
        for (key, value) in entries {
            builder.add(key, value);
        }
        let size = builder.current_size_bytes();
        let bytes = Bytes::copy_from_slice(builder.finish());
        assert_eq!(bytes.len(), size);
        Block::new(bytes).unwrap()
    }

    fn forward(block: &Block) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut iter = block.iter();
        iter.seek_to_first().unwrap();
        let mut out = Vec::new();
        while iter.valid() {
            out.push((iter.key().to_vec(), iter.value().to_vec()));
            iter.next().unwrap();
        }
        out
    }

    fn backward(block: &Block) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut iter = block.iter();
        iter.seek_to_last().unwrap();
        let mut out = Vec::new();
        while iter.valid() {
            out.push((iter.key().to_vec(), iter.value_slice().to_vec()));
            iter.prev().unwrap();
        }
        out.reverse();
        out
    }

    #[test]
    fn round_trip_forward_and_backward_at_restart_boundaries() {
        for count in [0, 1, 2, 15, 16, 17, 31, 32, 33, 100, 1000] {
            for interval in [1, 2, DATA_RESTART_INTERVAL] {
                let expected = entries(count);
                let block = build(&expected, interval);
                assert_eq!(block.is_empty(), count == 0);
                assert_eq!(forward(&block), expected, "count {count} interval {interval}");
                assert_eq!(backward(&block), expected, "count {count} interval {interval}");
            }
        }
    }

    #[test]
    fn seek_lands_on_every_key_and_between_keys() {
        let expected = entries(500);
        let block = build(&expected, DATA_RESTART_INTERVAL);
        let mut iter = block.iter();
        for (i, (key, value)) in expected.iter().enumerate() {
            iter.seek(key).unwrap();
            assert!(iter.valid());
            assert_eq!(iter.key(), key.as_slice());
            assert_eq!(iter.value(), value.as_slice());
            // prev then next comes back here.
            iter.prev().unwrap();
            if i == 0 {
                assert!(!iter.valid());
            } else {
                assert_eq!(iter.key(), expected[i - 1].0.as_slice());
                iter.next().unwrap();
                assert_eq!(iter.key(), key.as_slice());
            }
        }
        // Between keys: a seek key at a snapshot between two versions, and
        // a user key between two user keys.
        for user in 0..expected.len() / 3 {
            let user_key = format!("key{user:05}");
            let seek = encode(&InternalKey::seek_key(user_key.clone().into(), 999));
            iter.seek(&seek).unwrap();
            assert_eq!(iter.key(), expected[user * 3 + 1].0.as_slice());
            let after = encode(&InternalKey::new(
                format!("{user_key}!").into(),
                5,
                ValueKind::Put,
            ));
            iter.seek(&after).unwrap();
            match expected.get(user * 3 + 3) {
                Some((next, _)) => assert_eq!(iter.key(), next.as_slice()),
                None => assert!(!iter.valid()),
            }
        }
        // Before the first and after the last.
        iter.seek(&encode(&InternalKey::new("a".into(), 1, ValueKind::Put)))
            .unwrap();
        assert_eq!(iter.key(), expected[0].0.as_slice());
        iter.seek(&encode(&InternalKey::new("z".into(), 1, ValueKind::Put)))
            .unwrap();
        assert!(!iter.valid());
        assert!(iter.key().is_empty() && iter.value().is_empty());
        // next and prev on an invalid iterator do nothing.
        iter.next().unwrap();
        iter.prev().unwrap();
        assert!(!iter.valid());
    }

    /// `Block::seek_entry` finds what `BlockIter::seek` finds, for every
    /// key, between keys, before the first and after the last, at restart
    /// intervals 1 and 16.
    #[test]
    fn seek_entry_finds_what_an_iterator_seek_finds() {
        let expected = entries(500);
        for interval in [1, DATA_RESTART_INTERVAL] {
            let block = build(&expected, interval);
            let mut targets: Vec<Vec<u8>> = expected.iter().map(|(key, _)| key.clone()).collect();
            for user in 0..expected.len() / 3 {
                let user_key = format!("key{user:05}");
                targets.push(encode(&InternalKey::seek_key(user_key.clone().into(), 999)));
                targets.push(encode(&InternalKey::new(
                    format!("{user_key}!").into(),
                    5,
                    ValueKind::Put,
                )));
            }
            targets.push(encode(&InternalKey::new("a".into(), 1, ValueKind::Put)));
            targets.push(encode(&InternalKey::new("z".into(), 1, ValueKind::Put)));
            let mut iter = block.iter();
            let mut key = Vec::new();
            for target in &targets {
                iter.seek(target).unwrap();
                match block.seek_entry(target, &mut key).unwrap() {
                    Some(entry) => {
                        assert!(iter.valid(), "interval {interval}");
                        assert_eq!(key, iter.key(), "interval {interval}");
                        assert_eq!(block.value_slice(&entry), iter.value_slice());
                        assert_eq!(block.value(&entry), iter.value());
                    }
                    None => assert!(!iter.valid(), "interval {interval}"),
                }
            }
        }
    }

    /// Restart heads change no seek's answer: for keys sharing long
    /// prefixes, keys of every length, several versions of a key and
    /// targets anywhere, at restart intervals 1, 2 and 16.
    #[test]
    fn restart_heads_change_no_seek() {
        let mut rng = crate::test_rng::Rng(0x0dd_5eed_2468_ace1);
        for round in 0..40 {
            let symbols = 2 + rng.below(3);
            let random_key = |rng: &mut crate::test_rng::Rng| -> Vec<u8> {
                let mut key = b"tenant/".to_vec();
                key.extend((0..rng.below(20)).map(|_| b'a' + rng.below(symbols) as u8));
                key
            };
            let mut user_keys: Vec<Vec<u8>> = (0..rng.below(300)).map(|_| random_key(&mut rng)).collect();
            user_keys.sort();
            user_keys.dedup();
            let mut expected = Vec::new();
            for user_key in &user_keys {
                for version in 0..1 + rng.below(3) {
                    let key = InternalKey::new(user_key.clone().into(), 100 - version, ValueKind::Put);
                    expected.push((encode(&key), format!("v{round}").into_bytes()));
                }
            }
            let mut targets: Vec<Vec<u8>> = expected.iter().map(|(key, _)| key.clone()).collect();
            for _ in 0..200 {
                let user_key = random_key(&mut rng);
                let snapshot = 98 + rng.below(4);
                targets.push(encode(&InternalKey::seek_key(user_key.into(), snapshot)));
            }
            targets.push(encode(&InternalKey::seek_key(Bytes::new(), 100)));
            targets.push(encode(&InternalKey::seek_key(Bytes::from_static(b"tenant"), 100)));
            targets.push(encode(&InternalKey::seek_key(Bytes::from_static(b"zz"), 100)));
            for interval in [1, 2, DATA_RESTART_INTERVAL] {
                let plain = build(&expected, interval);
                let headed = plain.clone().with_restart_heads().unwrap();
                let (mut plain_key, mut headed_key) = (Vec::new(), Vec::new());
                let (mut plain_iter, mut headed_iter) = (plain.iter(), headed.iter());
                for target in &targets {
                    let want = plain
                        .seek_entry(target, &mut plain_key)
                        .unwrap()
                        .map(|e| plain.value(&e));
                    let got = headed
                        .seek_entry(target, &mut headed_key)
                        .unwrap()
                        .map(|e| headed.value(&e));
                    assert_eq!(got, want, "round {round} interval {interval} target {target:?}");
                    if want.is_some() {
                        assert_eq!(headed_key, plain_key, "round {round} interval {interval}");
                    }
                    plain_iter.seek(target).unwrap();
                    headed_iter.seek(target).unwrap();
                    assert_eq!(headed_iter.valid(), plain_iter.valid());
                    assert_eq!(
                        headed_iter.key(),
                        plain_iter.key(),
                        "round {round} interval {interval}"
                    );
                }
            }
        }
    }

    /// Backward steps reuse the entries a previous step decoded; a walk
    /// that turns around often, and re-seeks, must still see the model.
    #[test]
    fn random_walks_turning_around_match_the_model() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        for interval in [1, 2, 3, DATA_RESTART_INTERVAL] {
            let expected = entries(200);
            let block = build(&expected, interval);
            let mut iter = block.iter();
            // `position` is the model's index of the iterator's entry.
            let mut position: Option<usize> = None;
            for _ in 0..5_000 {
                match random(10) {
                    0 => {
                        iter.seek_to_last().unwrap();
                        position = Some(expected.len() - 1);
                    }
                    1 => {
                        let to = random(expected.len());
                        iter.seek(&expected[to].0).unwrap();
                        position = Some(to);
                    }
                    2..=5 => {
                        iter.prev().unwrap();
                        position = position.and_then(|at| at.checked_sub(1));
                    }
                    _ => {
                        iter.next().unwrap();
                        position = position.map(|at| at + 1).filter(|&at| at < expected.len());
                    }
                }
                match position {
                    Some(at) => {
                        assert!(iter.valid(), "interval {interval}: lost entry {at}");
                        assert_eq!(iter.key(), expected[at].0.as_slice());
                        assert_eq!(iter.value(), expected[at].1.as_slice());
                        assert_eq!(iter.has_next(), at + 1 < expected.len());
                        assert_eq!(iter.has_prev(), at > 0);
                    }
                    None => {
                        assert!(!iter.valid());
                        assert!(!iter.has_next() && !iter.has_prev());
                        // Walked off an end: start again somewhere.
                        iter.seek_to_first().unwrap();
                        position = Some(0);
                    }
                }
            }
        }
    }

    /// A cursor moved to another block forgets everything of the first
    /// (its key, its cached entries) but its buffers.
    #[test]
    fn a_reset_cursor_walks_its_new_block_only() {
        let first = entries(40);
        let second: Vec<(Vec<u8>, Vec<u8>)> = entries(70).into_iter().skip(40).collect();
        let mut iter = build(&first, 4).iter();
        iter.seek_to_last().unwrap();
        iter.prev().unwrap();
        assert_eq!(iter.key(), first[38].0.as_slice());
        let block = build(&second, 4);
        iter.reset(block.clone());
        assert!(!iter.valid() && iter.key().is_empty());
        iter.prev().unwrap();
        assert!(!iter.valid());
        iter.seek_to_last().unwrap();
        let mut backward = Vec::new();
        while iter.valid() {
            backward.push((iter.key().to_vec(), iter.value().to_vec()));
            iter.prev().unwrap();
        }
        backward.reverse();
        assert_eq!(backward, second);
        iter.reset(block);
        iter.seek_to_first().unwrap();
        let mut forward = Vec::new();
        while iter.valid() {
            forward.push((iter.key().to_vec(), iter.value().to_vec()));
            iter.next().unwrap();
        }
        assert_eq!(forward, second);
    }

    #[test]
    fn empty_block_is_never_valid() {
        let block = build(&[], DATA_RESTART_INTERVAL);
        let mut iter = block.iter();
        iter.seek_to_first().unwrap();
        assert!(!iter.valid());
        iter.seek_to_last().unwrap();
        assert!(!iter.valid());
        iter.seek(&encode(&InternalKey::new("a".into(), 1, ValueKind::Put)))
            .unwrap();
        assert!(!iter.valid());
    }

    /// Drives every operation over a possibly damaged block; returns how
    /// many entries a forward scan saw. Must never panic.
    fn exercise(bytes: Bytes, probes: &[Vec<u8>]) -> usize {
        let Ok(block) = Block::new(bytes) else {
            return 0;
        };
        let mut iter = block.iter();
        let mut seen = 0;
        if iter.seek_to_first().is_ok() {
            while iter.valid() && seen < 10_000 {
                seen += 1;
                let _ = iter.value();
                if iter.next().is_err() {
                    break;
                }
            }
        }
        if iter.seek_to_last().is_ok() {
            let mut steps = 0;
            while iter.valid() && steps < 10_000 {
                steps += 1;
                if iter.prev().is_err() {
                    break;
                }
            }
        }
        for probe in probes {
            if iter.seek(probe).is_ok() && iter.valid() {
                assert!(encoded_key::is_valid(iter.key()));
                let _ = iter.prev();
            }
        }
        seen
    }

    #[test]
    fn damaged_blocks_never_panic() {
        let expected = entries(60);
        let block = build(&expected, 4);
        let bytes = block.data.clone();
        let probes: Vec<Vec<u8>> = expected.iter().step_by(7).map(|(k, _)| k.clone()).collect();
        for cut in 0..bytes.len() {
            exercise(bytes.slice(..cut), &probes);
        }
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.to_vec();
                flipped[byte] ^= 1 << bit;
                exercise(Bytes::from(flipped), &probes);
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..600 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            exercise(Bytes::from(garbage), &probes);
        }
        assert_eq!(exercise(bytes, &probes), expected.len());
    }

    #[test]
    fn bad_restart_arrays_are_rejected() {
        assert!(Block::new(Bytes::from_static(&[1, 0, 0])).is_err());
        // Zero restarts.
        assert!(Block::new(Bytes::from_static(&[0, 0, 0, 0])).is_err());
        // More restarts than room.
        assert!(Block::new(Bytes::from_static(&[0, 0, 0, 0, 2, 0, 0, 0])).is_err());
        // First restart not 0.
        assert!(Block::new(Bytes::from_static(&[9, 9, 1, 0, 0, 0, 1, 0, 0, 0])).is_err());
        // A restart pointing into the restart array.
        assert!(Block::new(Bytes::from_static(&[9, 9, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0])).is_err());
    }
}
