//! An open table: point reads and block loading.
//!
//! Opening reads the footer (last 64 bytes), then the filter, range
//! tombstone, properties and index blocks in one read (they are adjacent),
//! verifies every
//! checksum and cross-checks them, and keeps them in memory. A point read
//! then costs at most one data block read: filter, index (in memory), one
//! data block through the block cache.
//!
//! Ownership: shared as `Arc<Table>` by every task reading the table (the
//! table cache holds one per open file). Immutable after open apart from
//! the shared block cache and stats; `get` takes `&self` and many run at
//! once.
//!
//! Invariants:
//! - The footer's handles lie inside the file: filter, range-tombstone
//!   block (format version 3, when the properties count tombstones),
//!   properties, index and footer are adjacent, and data blocks (whose
//!   handles come from the index) lie before the filter.
//! - Only verified, decompressed blocks enter the block cache.
//! - Every defect found is `Error::Corruption` with this table's path and
//!   the file offset of the footer or of the block that is bad.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::io::File;
use crate::key::{Lookup, SeqNo, Trailer, ValueKind};
use crate::range_del::{RangeDels, RangeTombstone};
use crate::sst::block::trailer::decode_block;
use crate::sst::block::{Block, BlockIter};
use crate::sst::bloom::BloomFilter;
use crate::sst::cache::BlockCache;
use crate::sst::format::footer::Footer;
use crate::sst::format::handle::BlockHandle;
use crate::sst::format::properties::TableProperties;
use crate::sst::stats::ReadStats;
use crate::sst::table::iter::TableIter;
use crate::sst::table::readahead::{DataRegion, Readahead};
use crate::sst::{
    BLOCK_TRAILER_SIZE_BYTES, FOOTER_SIZE_BYTES, MAX_BLOCK_SIZE_BYTES, MAX_META_BLOCK_SIZE_BYTES, encoded_key,
};

/// An open, verified table.
#[derive(Debug)]
pub struct Table {
    file: Arc<dyn File>,
    path: PathBuf,
    file_number: u64,
    file_size: u64,
    footer: Footer,
    properties: TableProperties,
    index: Block,
    filter: BloomFilter,
    /// Read and checked at open; `None` when the table has none.
    range_dels: Option<Arc<RangeDels>>,
    block_cache: Option<Arc<BlockCache>>,
    stats: Arc<ReadStats>,
}

impl Table {
    /// Opens the table in `file` (at `path`, number `file_number`, of
    /// `file_size` bytes as the manifest records it): reads and verifies
    /// footer, filter, properties and index.
    ///
    /// # Errors
    /// [`Error::Corruption`] (naming `path` and the offset of the bad
    /// footer or block) if anything read is damaged, truncated or
    /// inconsistent; [`Error::Io`] if a read fails.
    ///
    /// # Cancel safety
    /// Cancel safe: opening changes nothing.
    #[expect(
        clippy::too_many_lines,
        reason = "reads and checks footer, index, filter and properties in file order"
    )]
    pub async fn open(
        file: Arc<dyn File>,
        path: PathBuf,
        file_number: u64,
        file_size: u64,
        block_cache: Option<Arc<BlockCache>>,
        stats: Arc<ReadStats>,
    ) -> Result<Table> {
        let corrupt = |offset: u64, reason: String| Error::corruption(path.clone(), offset, reason);
        let Some(footer_offset) = file_size.checked_sub(FOOTER_SIZE_BYTES as u64) else {
            return Err(corrupt(
                0,
                format!("table of {file_size} bytes is shorter than its {FOOTER_SIZE_BYTES}-byte footer"),
            ));
        };
        let footer_bytes = read_exact(&file, &path, footer_offset, FOOTER_SIZE_BYTES, "footer").await?;
        let footer = Footer::decode(&footer_bytes).map_err(|reason| corrupt(footer_offset, reason))?;

        // The metadata blocks are adjacent and end at the footer; the
        // range-tombstone block, if any, fills the gap after the filter.
        let adjacent = [
            (footer.properties, footer.index.offset, "properties"),
            (footer.index, footer_offset, "index"),
        ];
        for (handle, next_offset, what) in adjacent {
            if handle.size_bytes > MAX_META_BLOCK_SIZE_BYTES as u64
                || handle.end_with_trailer() != Some(next_offset)
            {
                return Err(corrupt(
                    footer_offset,
                    format!(
                        "footer's {what} handle {}+{} does not end at {next_offset}",
                        handle.offset, handle.size_bytes
                    ),
                ));
            }
        }
        let filter_end = footer
            .filter
            .end_with_trailer()
            .filter(|&end| {
                end <= footer.properties.offset
                    && footer.filter.size_bytes <= MAX_META_BLOCK_SIZE_BYTES as u64
            })
            .ok_or_else(|| {
                corrupt(
                    footer_offset,
                    format!(
                        "footer's filter handle {}+{} does not end by the properties",
                        footer.filter.offset, footer.filter.size_bytes
                    ),
                )
            })?;
        let meta_len = footer_offset
            .checked_sub(footer.filter.offset)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or_else(|| corrupt(footer_offset, "metadata region out of range".to_owned()))?;
        let meta = read_exact(&file, &path, footer.filter.offset, meta_len, "metadata blocks").await?;
        let block_of = |handle: BlockHandle, what: &str| -> Result<Bytes> {
            let outside = || corrupt(handle.offset, format!("{what} block outside the metadata read"));
            let start =
                usize::try_from(handle.offset.saturating_sub(footer.filter.offset)).map_err(|_| outside())?;
            let end = usize::try_from(handle.size_bytes)
                .ok()
                .and_then(|size| start.checked_add(size)?.checked_add(BLOCK_TRAILER_SIZE_BYTES))
                .filter(|&end| end <= meta.len())
                .ok_or_else(outside)?;
            let stored = meta.slice(start..end);
            decode_block(stored, MAX_META_BLOCK_SIZE_BYTES)
                .map_err(|reason| corrupt(handle.offset, format!("{what} block: {reason}")))
        };

        let filter = BloomFilter::decode(block_of(footer.filter, "filter")?)
            .map_err(|reason| corrupt(footer.filter.offset, format!("filter block: {reason}")))?;
        let properties_offset = footer.properties.offset;
        let mut properties = TableProperties::decode(&block_of(footer.properties, "properties")?)
            .map_err(|reason| corrupt(properties_offset, format!("properties block: {reason}")))?;
        // NOTE: every point read binary-searches the index, so it gets
        // restart heads (8 bytes a data block).
        let index = Block::new(block_of(footer.index, "index")?)
            .and_then(Block::with_restart_heads)
            .map_err(|reason| corrupt(footer.index.offset, format!("index block: {reason}")))?;
        if index.is_empty() != (properties.data_block_count == 0) {
            return Err(corrupt(
                footer.index.offset,
                format!(
                    "index block is empty: {}, with {} data blocks",
                    index.is_empty(),
                    properties.data_block_count
                ),
            ));
        }
        let range_dels = match (properties.range_del_count, footer.properties.offset - filter_end) {
            (0, 0) => None,
            (count, gap) if count > 0 && gap > BLOCK_TRAILER_SIZE_BYTES as u64 => {
                let handle = BlockHandle {
                    offset: filter_end,
                    size_bytes: gap - BLOCK_TRAILER_SIZE_BYTES as u64,
                };
                let block = Block::new(block_of(handle, "range tombstone")?)
                    .map_err(|reason| corrupt(handle.offset, format!("range tombstone block: {reason}")))?;
                let dels = decode_range_dels(&block, count)
                    .map_err(|reason| corrupt(handle.offset, format!("range tombstone block: {reason}")))?;
                Some(Arc::new(dels))
            }
            (count, gap) => {
                return Err(corrupt(
                    filter_end,
                    format!("{gap} bytes between filter and properties for {count} range tombstones"),
                ));
            }
        };
        let consistent = properties.format_version == footer.format_version
            && properties.data_size_bytes == footer.filter.offset
            && properties.filter_size_bytes == footer.filter.size_bytes
            && properties.index_size_bytes == footer.index.size_bytes;
        if !consistent {
            return Err(corrupt(
                properties_offset,
                "properties disagree with the footer".to_owned(),
            ));
        }
        properties.file_size_bytes = file_size;
        Ok(Table {
            file,
            path,
            file_number,
            file_size,
            footer,
            properties,
            index,
            filter,
            range_dels,
            block_cache,
            stats,
        })
    }

    /// The table's range tombstones, fragmented; `None` when it has none.
    pub fn range_dels(&self) -> Option<&Arc<RangeDels>> {
        self.range_dels.as_ref()
    }

    /// False only if the table certainly holds no version of `user_key`
    /// (the bloom filter says so).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.may_contain(user_key)
    }

    /// What the table's builder recorded, with `file_size_bytes` set.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// The table's file number.
    pub fn file_number(&self) -> u64 {
        self.file_number
    }

    /// The table's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table's size in bytes.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size
    }

    /// The newest version of `user_key` with a seqno at most `snapshot`:
    /// the filter first (no block read if it says absent), then the index,
    /// then one data block through the block cache. A found value is a
    /// slice of the cached block, not a copy.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the index or the data block is damaged;
    /// [`Error::Io`] if the block read fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a get changes nothing but the cache and the counters.
    pub async fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Result<Lookup> {
        Ok(self.get_with_seqno(user_key, snapshot).await?.0)
    }

    /// As [`Table::get`], with the seqno of the version found (0 when
    /// `Missing`). Range tombstones are not consulted (see
    /// [`Table::range_dels`]).
    ///
    /// # Errors
    /// As [`Table::get`].
    ///
    /// # Cancel safety
    /// As [`Table::get`].
    pub async fn get_with_seqno(&self, user_key: &[u8], snapshot: SeqNo) -> Result<(Lookup, SeqNo)> {
        if !self.filter.may_contain(user_key) {
            ReadStats::bump(&self.stats.bloom_negatives);
            return Ok((Lookup::Missing, 0));
        }
        let target = encoded_key::encode_seek_key(user_key, snapshot);
        // NOTE: point lookups seek the blocks in place (`Block::seek_entry`)
        // rather than through iterators: an iterator clones the block's
        // `Bytes`, and the index block's count is shared by every reader.
        let mut key = Vec::with_capacity(target.len());
        let Some(index_entry) = self
            .index
            .seek_entry(&target, &mut key)
            .map_err(|reason| self.index_corruption(reason))?
        else {
            return Ok((Lookup::Missing, 0));
        };
        let handle = self.handle_in_data_region(self.index.value_slice(&index_entry))?;
        let block = self.data_block(handle).await?;
        let Some(entry) = block
            .seek_entry(&target, &mut key)
            .map_err(|reason| self.block_corruption(handle, reason))?
        else {
            return Err(self.block_corruption(handle, "holds no key up to its index key".to_owned()));
        };
        let Some((found_user_key, trailer)) = encoded_key::split(&key) else {
            unreachable!("block decoding yields only valid encoded keys");
        };
        if found_user_key != user_key {
            return Ok((Lookup::Missing, 0));
        }
        let trailer = Trailer::from_raw(trailer);
        debug_assert!(trailer.seqno() <= snapshot);
        // NOTE: the block decoder checked the kind (`encoded_key::valid_trailer`).
        let lookup = match trailer.known_kind() {
            ValueKind::Put => Lookup::Found(block.value(&entry)),
            // NOTE: a data block holding a range tombstone fails to decode
            // (`Block::new_data`).
            ValueKind::Delete | ValueKind::RangeDelete => Lookup::Deleted,
            ValueKind::PutWithExpiry => Lookup::Expiring(block.value(&entry)),
            ValueKind::Merge => Lookup::Merge,
        };
        Ok((lookup, trailer.seqno()))
    }

    /// An iterator over the table, positioned nowhere.
    pub fn iter(self: &Arc<Self>) -> TableIter {
        TableIter::new(Arc::clone(self))
    }

    /// A fresh iterator over the index block.
    pub(crate) fn index_iter(&self) -> BlockIter {
        self.index.iter()
    }

    /// Decodes the data block handle at an index iterator's position and
    /// checks it lies in the data region.
    pub(crate) fn block_handle(&self, index: &BlockIter) -> Result<BlockHandle> {
        self.handle_in_data_region(index.value_slice())
    }

    /// Decodes an index entry's value as a data block handle and checks it
    /// lies in the data region.
    fn handle_in_data_region(&self, value: &[u8]) -> Result<BlockHandle> {
        let handle = BlockHandle::decode_exact(value).map_err(|reason| self.index_corruption(reason))?;
        let inside = handle.size_bytes <= MAX_BLOCK_SIZE_BYTES as u64
            && handle
                .end_with_trailer()
                .is_some_and(|end| end <= self.footer.filter.offset);
        if !inside {
            return Err(self.index_corruption(format!(
                "data block handle {}+{} outside the data region",
                handle.offset, handle.size_bytes
            )));
        }
        Ok(handle)
    }

    /// The data block at `handle`, from the block cache or the file (and
    /// then cached).
    pub(crate) async fn data_block(&self, handle: BlockHandle) -> Result<Block> {
        self.data_block_with(handle, None).await
    }

    /// As [`Table::data_block`], for an iterator walking the table: after a
    /// run of misses, `readahead` reads a window of blocks in the direction
    /// of travel with one I/O and serves the next blocks from it.
    pub(crate) async fn data_block_with(
        &self,
        handle: BlockHandle,
        readahead: Option<&mut Readahead>,
    ) -> Result<Block> {
        if let Some(cache) = &self.block_cache {
            if let Some(block) = cache.get(self.file_number, handle.offset) {
                ReadStats::bump(&self.stats.block_cache_hits);
                return Ok(block);
            }
            ReadStats::bump(&self.stats.block_cache_misses);
        }
        let len = handle.size_bytes as usize + BLOCK_TRAILER_SIZE_BYTES;
        let stored = match readahead {
            Some(readahead) => self.read_ahead(handle, len, readahead).await?,
            None => read_exact(&self.file, &self.path, handle.offset, len, "data block").await?,
        };
        ReadStats::bump(&self.stats.block_reads);
        let bytes = decode_block(stored, MAX_BLOCK_SIZE_BYTES)
            .map_err(|reason| self.block_corruption(handle, reason))?;
        let block = Block::new_data(bytes).map_err(|reason| self.block_corruption(handle, reason))?;
        if block.is_empty() {
            return Err(self.block_corruption(handle, "has no entries".to_owned()));
        }
        if let Some(cache) = &self.block_cache {
            cache.insert(self.file_number, handle.offset, block.clone());
        }
        Ok(block)
    }

    /// The stored bytes of one block, through the iterator's readahead.
    async fn read_ahead(&self, handle: BlockHandle, len: usize, readahead: &mut Readahead) -> Result<Bytes> {
        let region = DataRegion {
            file: &self.file,
            path: &self.path,
            // Data blocks end where the filter block starts (checked at open).
            end: self.footer.filter.offset,
        };
        readahead.read(&region, handle.offset, len).await
    }

    /// Corruption in the index block.
    pub(crate) fn index_corruption(&self, reason: String) -> Error {
        Error::corruption(
            self.path.clone(),
            self.footer.index.offset,
            format!("index block: {reason}"),
        )
    }

    /// Corruption in the data block at `handle`.
    pub(crate) fn block_corruption(&self, handle: BlockHandle, reason: String) -> Error {
        Error::corruption(self.path.clone(), handle.offset, format!("data block: {reason}"))
    }
}

/// Reads exactly `len` bytes at `offset`; a short read is corruption (the
/// file is shorter than its footer or index says).
pub(crate) async fn read_exact(
    file: &Arc<dyn File>,
    path: &Path,
    offset: u64,
    len: usize,
    what: &str,
) -> Result<Bytes> {
    let buf = file
        .read_at(len, offset)
        .await
        .map_err(|e| Error::io("read sst", path, e))?;
    exact(buf, path, offset, len, what)
}

/// `buf`, read at `offset`, if it holds all `len` bytes asked for; a short
/// read is corruption (the file is shorter than its footer or index says).
pub(crate) fn exact(buf: Vec<u8>, path: &Path, offset: u64, len: usize, what: &str) -> Result<Bytes> {
    if buf.len() != len {
        return Err(Error::corruption(
            path,
            offset,
            format!("{what} truncated: read {} of {len} bytes", buf.len()),
        ));
    }
    Ok(crate::io::read_buffers::into_bytes(buf))
}

/// The tombstones of a range-tombstone block: `count` entries, each a key
/// `(start, seqno, RangeDelete)` and a value `end` after `start`.
fn decode_range_dels(block: &Block, count: u64) -> std::result::Result<RangeDels, String> {
    let mut tombstones = Vec::new();
    let mut entries = block.iter();
    entries.seek_to_first()?;
    while entries.valid() {
        let (start, trailer) = encoded_key::split(entries.key()).ok_or("entry without an internal key")?;
        let trailer = Trailer::from_raw(trailer);
        let end = entries.value();
        if trailer.kind() != Ok(ValueKind::RangeDelete) {
            return Err(format!("entry of kind {:#04x}", trailer.kind_byte()));
        }
        if end.as_ref() <= start || end.len() > crate::limits::MAX_KEY_SIZE_BYTES {
            return Err("a tombstone whose end is not a key after its start".to_owned());
        }
        tombstones.push(RangeTombstone {
            start: Bytes::copy_from_slice(start),
            end,
            seqno: trailer.seqno(),
        });
        entries.next()?;
    }
    if tombstones.len() as u64 != count {
        return Err(format!(
            "{} tombstones, the properties say {count}",
            tombstones.len()
        ));
    }
    check_fragmented(&tombstones)?;
    Ok(RangeDels::new(tombstones))
}

/// Checks that `tombstones` (in block order) are fragments, as every
/// writer stores them: sorted by start, each range equal to or disjoint from
/// the next. Fragmenting them again then makes no more pieces than there
/// are entries, whatever the bytes.
pub(super) fn check_fragmented(tombstones: &[RangeTombstone]) -> std::result::Result<(), String> {
    for pair in tombstones.windows(2) {
        let [a, b] = pair else { continue };
        let in_order = match a.start == b.start {
            true => a.end == b.end && a.seqno > b.seqno,
            false => a.start < b.start && a.end <= b.start,
        };
        if !in_order {
            return Err("range tombstones out of order or overlapping".to_owned());
        }
    }
    Ok(())
}
