//! Writing a table, front to back.
//!
//! ```text
//! table := data_block{n >= 0} filter_block [range_del_block] properties_block index_block footer
//! each block := payload type:u8 crc:u32        (see block::trailer)
//! data block  : block::builder layout, restart every DATA_RESTART_INTERVAL entries,
//!               key = encoded internal key, value = the value; closed once it
//!               reaches block_size_bytes; lz4-compressed if asked and it pays
//! filter block: bloom layout over the distinct user keys; never compressed
//! range_del   : (format version 3, only if the table holds range tombstones)
//!               block::builder layout, restart every entry, key = encoded
//!               internal key (start, seqno, RangeDelete), value = end;
//!               the tombstones cut into fragments (ranges disjoint or
//!               equal), sorted by key; never compressed
//! properties  : format::properties layout; never compressed
//! index block : block::builder layout, restart every entry,
//!               key = last encoded internal key of data block i,
//!               value = BlockHandle of data block i (varint64 offset, varint64 size);
//!               lz4-compressed if asked and it pays
//! footer      : format::footer layout (64 bytes)
//! ```
//!
//! Filter, range-tombstone block, properties and index are adjacent, in
//! that order, and the index ends where the footer begins. A table holds at
//! least one point entry or one range tombstone; with none of the first it
//! has no data block.
//!
//! Ownership: one flush or compaction task owns a builder and its file. The
//! caller names the file, fsyncs its directory and deletes it if building
//! fails; `finish` syncs the file's data.
//!
//! Invariants:
//! - Keys are added strictly increasing in internal-key order (asserted:
//!   anything else is a bug in the caller).
//! - `written` bytes of the file are on their way to disk; `out` holds the
//!   bytes after them. Writes are sequential and, but for the last, at
//!   least `WRITE_BUFFER_BYTES` long.
//! - After any error (or a cancelled write) the builder refuses further use.

use std::cmp::Ordering;
use std::io;
use std::mem;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::File;
use crate::key::{InternalKey, SeqNo, Trailer, ValueKind};
use crate::limits::MAX_KEY_SIZE_BYTES;
use crate::range_del::{RangeDels, RangeTombstone, last_covered_key};
use crate::sst::block::BlockBuilder;
pub use crate::sst::block::trailer::Compression;
use crate::sst::block::trailer::encode_block;
use crate::sst::bloom::BloomBuilder;
use crate::sst::format::footer::Footer;
use crate::sst::format::handle::BlockHandle;
use crate::sst::format::properties::TableProperties;
use crate::sst::{
    DATA_RESTART_INTERVAL, DEFAULT_BLOCK_SIZE_BYTES, DEFAULT_BLOOM_BITS_PER_KEY, FORMAT_VERSION,
    FORMAT_VERSION_1, FORMAT_VERSION_2, INDEX_RESTART_INTERVAL, MAX_BLOCK_SIZE_BYTES, MAX_BLOOM_BITS_PER_KEY,
    MAX_META_BLOCK_SIZE_BYTES, MAX_TARGET_BLOCK_SIZE_BYTES, WRITE_BUFFER_BYTES, encoded_key,
};

/// How tables are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Target size of an uncompressed data block: a block closes once it
    /// reaches this many bytes. Default: 4096. Range: 1 to
    /// `MAX_TARGET_BLOCK_SIZE_BYTES` (4 MiB).
    pub block_size_bytes: usize,
    /// Bloom filter bits per distinct user key; 0 writes no filter.
    /// Default: 10 (about 1% false positives). At most
    /// `MAX_BLOOM_BITS_PER_KEY` (32).
    pub bloom_bits_per_key: u32,
    /// Compression of data and index blocks. Default: [`Compression::None`].
    pub compression: Compression,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size_bytes: DEFAULT_BLOCK_SIZE_BYTES,
            bloom_bits_per_key: DEFAULT_BLOOM_BITS_PER_KEY,
            compression: Compression::None,
        }
    }
}

impl TableOptions {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        if self.block_size_bytes == 0 || self.block_size_bytes > MAX_TARGET_BLOCK_SIZE_BYTES {
            return Err(Error::InvalidOptions(format!(
                "block_size_bytes {} outside 1..={MAX_TARGET_BLOCK_SIZE_BYTES}",
                self.block_size_bytes
            )));
        }
        if self.bloom_bits_per_key > MAX_BLOOM_BITS_PER_KEY {
            return Err(Error::InvalidOptions(format!(
                "bloom_bits_per_key {} above {MAX_BLOOM_BITS_PER_KEY}",
                self.bloom_bits_per_key
            )));
        }
        Ok(())
    }
}

/// Writes one table.
#[derive(Debug)]
pub struct TableBuilder {
    file: Arc<dyn File>,
    path: PathBuf,
    options: TableOptions,
    /// Encoded bytes not yet handed to the file; they start at `written`.
    out: Vec<u8>,
    /// Bytes handed to the file so far.
    written: u64,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    bloom: BloomBuilder,
    /// The last key added, encoded.
    last_key: Vec<u8>,
    /// Reused for encoding the next key.
    key_buf: Vec<u8>,
    /// Reused for encoding block handles.
    handle_buf: Vec<u8>,
    /// Reused for compression.
    scratch: Vec<u8>,
    entry_count: u64,
    deletion_count: u64,
    /// The format version the table needs: version 1 until an entry of a
    /// kind added by version 2 arrives.
    format_version: u32,
    data_block_count: u64,
    smallest_key: Option<InternalKey>,
    smallest_seqno: SeqNo,
    largest_seqno: SeqNo,
    /// Set by a failed or cancelled write; every later call returns it.
    failed: Option<Error>,
    /// Range tombstones, written by `finish` in the range-tombstone block.
    range_tombstones: Vec<RangeTombstone>,
}

impl TableBuilder {
    /// A builder writing to `file` (new and empty), which lives at `path`.
    ///
    /// # Panics
    /// If `options` fail [`TableOptions::validate`] (validate them when the
    /// store opens).
    pub fn new(file: Arc<dyn File>, path: PathBuf, options: TableOptions) -> Self {
        if let Err(e) = options.validate() {
            panic!("TableBuilder::new: {e}");
        }
        TableBuilder {
            file,
            path,
            out: Vec::with_capacity(WRITE_BUFFER_BYTES + options.block_size_bytes),
            written: 0,
            data_block: BlockBuilder::new(DATA_RESTART_INTERVAL),
            index_block: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            bloom: BloomBuilder::new(options.bloom_bits_per_key),
            options,
            last_key: Vec::new(),
            key_buf: Vec::new(),
            handle_buf: Vec::new(),
            scratch: Vec::new(),
            entry_count: 0,
            deletion_count: 0,
            format_version: FORMAT_VERSION_1,
            data_block_count: 0,
            smallest_key: None,
            smallest_seqno: SeqNo::MAX,
            largest_seqno: 0,
            failed: None,
            range_tombstones: Vec::new(),
        }
    }

    /// Appends an entry. Output is buffered and written in large sequential
    /// writes as it accumulates.
    ///
    /// # Panics
    /// If `key` is not strictly after the previous key in internal-key
    /// order, its kind byte is not a `ValueKind`, or key or value exceed
    /// `MAX_KEY_SIZE_BYTES` / `MAX_VALUE_SIZE_BYTES`: all caller bugs.
    ///
    /// # Errors
    /// [`Error::Io`] if a write fails, or an earlier one did.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future during a write leaves the
    /// builder refusing further use; delete the file.
    pub async fn add(&mut self, key: &InternalKey, value: &[u8]) -> Result<()> {
        self.check_usable()?;
        assert!(
            key.user_key.len() <= MAX_KEY_SIZE_BYTES,
            "key of {} bytes exceeds MAX_KEY_SIZE_BYTES",
            key.user_key.len()
        );
        let kind = Trailer::from_raw(key.trailer)
            .kind()
            .unwrap_or_else(|unknown| panic!("key holds an {unknown}"));
        assert!(
            value.len() <= crate::batch::max_stored_value_bytes(kind),
            "value of {} bytes exceeds MAX_VALUE_SIZE_BYTES",
            value.len()
        );
        if !kind.is_version_1() {
            self.format_version = self.format_version.max(FORMAT_VERSION_2);
        }
        self.key_buf.clear();
        encoded_key::encode_into(key, &mut self.key_buf);
        let first = self.entry_count == 0;
        assert!(
            first || encoded_key::compare(&self.last_key, &self.key_buf) == Ordering::Less,
            "sst keys must be strictly increasing: {key:?} after {:?}",
            encoded_key::decode(&self.last_key)
        );
        if first || encoded_key::user_key(&self.last_key) != key.user_key.as_ref() {
            self.bloom.add(&key.user_key);
        }
        self.data_block.add(&self.key_buf, value);
        mem::swap(&mut self.last_key, &mut self.key_buf);
        if first {
            self.smallest_key = Some(key.clone());
        }
        self.entry_count += 1;
        if kind == ValueKind::Delete {
            self.deletion_count += 1;
        }
        self.smallest_seqno = self.smallest_seqno.min(key.seqno());
        self.largest_seqno = self.largest_seqno.max(key.seqno());
        if self.data_block.current_size_bytes() >= self.options.block_size_bytes {
            self.finish_data_block();
            self.write_out(false).await?;
        }
        Ok(())
    }

    /// Adds a range tombstone, in any order with the point entries; the
    /// table's key range grows to cover it.
    ///
    /// # Panics
    /// If the range is empty or a bound exceeds `MAX_KEY_SIZE_BYTES`:
    /// caller bugs.
    pub fn add_range_tombstone(&mut self, tombstone: RangeTombstone) {
        assert!(
            tombstone.start < tombstone.end
                && tombstone.end.len() <= MAX_KEY_SIZE_BYTES
                && tombstone.start.len() <= MAX_KEY_SIZE_BYTES,
            "bad range tombstone {tombstone:?}"
        );
        self.format_version = FORMAT_VERSION;
        self.smallest_seqno = self.smallest_seqno.min(tombstone.seqno);
        self.largest_seqno = self.largest_seqno.max(tombstone.seqno);
        self.range_tombstones.push(tombstone);
    }

    /// Range tombstones added so far.
    pub fn range_tombstone_count(&self) -> usize {
        self.range_tombstones.len()
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// Bytes the table occupies so far (written and buffered, not counting
    /// the open data block): what a compaction compares with its target
    /// file size.
    pub fn file_size_estimate_bytes(&self) -> u64 {
        self.written + self.out.len() as u64 + self.data_block.current_size_bytes() as u64
    }

    /// Writes the open data block, the filter, properties and index blocks
    /// and the footer, then `sync_data`s the file. Returns the table's
    /// properties, including its file size.
    ///
    /// # Panics
    /// If no entry was added: a table holds at least one.
    ///
    /// # Errors
    /// [`Error::Io`] if a write or the sync fails (or an earlier write did);
    /// [`Error::TooLarge`] if the filter or index block would exceed
    /// `MAX_META_BLOCK_SIZE_BYTES`.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped future leaves a partial file to delete.
    pub async fn finish(mut self) -> Result<TableProperties> {
        self.check_usable()?;
        self.finish_data_block();
        let (smallest_key, largest_key) = self.key_range();
        let data_size_bytes = self.offset();

        let filter = self.bloom.finish();
        check_meta_size("sst filter block", filter.len())?;
        let filter_handle = self.append_block(&filter, Compression::None);
        if !self.range_tombstones.is_empty() {
            let block = range_del_block(&mut self.range_tombstones);
            check_meta_size("sst range tombstone block", block.len())?;
            self.append_block(&block, Compression::None);
        }
        let range_del_count = self.range_tombstones.len() as u64;

        let index_raw_len = self.index_block.current_size_bytes();
        check_meta_size("sst index block", index_raw_len)?;
        let mut index_stored = Vec::new();
        let (index_size_bytes, _) = encode_block(
            self.index_block.finish(),
            self.options.compression,
            &mut self.scratch,
            &mut index_stored,
        );

        let mut properties = TableProperties {
            format_version: self.format_version,
            compression: self.options.compression,
            entry_count: self.entry_count,
            deletion_count: self.deletion_count,
            data_block_count: self.data_block_count,
            data_size_bytes,
            filter_size_bytes: filter_handle.size_bytes,
            index_size_bytes,
            smallest_key,
            largest_key,
            smallest_seqno: self.smallest_seqno,
            largest_seqno: self.largest_seqno,
            range_del_count,
            file_size_bytes: 0,
        };
        let properties_handle = self.append_block(&properties.encode(), Compression::None);

        let index_handle = BlockHandle {
            offset: self.offset(),
            size_bytes: index_size_bytes,
        };
        self.out.extend_from_slice(&index_stored);

        let footer = Footer {
            filter: filter_handle,
            properties: properties_handle,
            index: index_handle,
            format_version: self.format_version,
        };
        self.out.extend_from_slice(&footer.encode());
        let file_size_bytes = self.offset();
        self.write_out(true).await?;
        debug_assert_eq!(self.written, file_size_bytes);
        self.file
            .sync_data()
            .await
            .map_err(|e| Error::io("sync sst", self.path.clone(), e))?;
        properties.file_size_bytes = file_size_bytes;
        Ok(properties)
    }

    /// The table's first and last internal keys, over point entries and
    /// range tombstones: a tombstone spans from `(start, seqno)` to the
    /// last key it covers (see `range_del::last_covered_key`).
    ///
    /// # Panics
    /// If the table holds nothing.
    fn key_range(&mut self) -> (InternalKey, InternalKey) {
        let points = self
            .smallest_key
            .take()
            .zip(encoded_key::decode(&self.last_key).filter(|_| self.entry_count > 0));
        let tombstones = self.range_tombstones.iter();
        let first_tombstone = tombstones
            .clone()
            .map(|t| InternalKey::new(t.start.clone(), t.seqno, ValueKind::RangeDelete))
            .min();
        let last_tombstone = tombstones
            .map(|t| InternalKey::new(last_covered_key(&t.end), 0, ValueKind::RangeDelete))
            .max();
        match (points, first_tombstone.zip(last_tombstone)) {
            (Some((first, last)), Some((first_t, last_t))) => (first.min(first_t), last.max(last_t)),
            (Some(range), None) | (None, Some(range)) => range,
            (None, None) => panic!("an sst needs at least one entry or range tombstone"),
        }
    }

    /// File offset of the next byte appended to `out`.
    fn offset(&self) -> u64 {
        self.written + self.out.len() as u64
    }

    /// Returns the stored error of an earlier failure.
    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Appends `raw` as a stored block to `out`; returns its handle.
    fn append_block(&mut self, raw: &[u8], compression: Compression) -> BlockHandle {
        let offset = self.offset();
        let (size_bytes, _) = encode_block(raw, compression, &mut self.scratch, &mut self.out);
        BlockHandle { offset, size_bytes }
    }

    /// Closes the open data block (if any) into `out` and indexes it.
    fn finish_data_block(&mut self) {
        if self.data_block.is_empty() {
            return;
        }
        let offset = self.offset();
        let (size_bytes, _) = encode_block(
            self.data_block.finish(),
            self.options.compression,
            &mut self.scratch,
            &mut self.out,
        );
        assert!(
            size_bytes <= MAX_BLOCK_SIZE_BYTES as u64,
            "data block of {size_bytes} bytes exceeds MAX_BLOCK_SIZE_BYTES"
        );
        debug_assert_eq!(self.data_block.last_key(), self.last_key.as_slice());
        self.handle_buf.clear();
        BlockHandle { offset, size_bytes }.encode_into(&mut self.handle_buf);
        self.index_block.add(&self.last_key, &self.handle_buf);
        self.data_block.reset();
        self.data_block_count += 1;
    }

    /// Hands `out` to the file if it holds `WRITE_BUFFER_BYTES` (or
    /// anything, when `force`).
    async fn write_out(&mut self, force: bool) -> Result<()> {
        if self.out.is_empty() || (!force && self.out.len() < WRITE_BUFFER_BYTES) {
            return Ok(());
        }
        let buf = mem::take(&mut self.out);
        let len = buf.len() as u64;
        // NOTE: marked failed while the write is in flight, so a future
        // dropped mid-write leaves a builder that refuses further use rather
        // than one that would write later blocks at the wrong offset.
        self.failed = Some(Error::io(
            "write sst",
            self.path.clone(),
            io::Error::other("an earlier write of this table was cancelled"),
        ));
        match self.file.write_all_at(buf, self.written).await {
            Ok(mut buf) => {
                self.written += len;
                buf.clear();
                self.out = buf;
                self.failed = None;
                Ok(())
            }
            Err(e) => {
                let error = Error::io("write sst", self.path.clone(), e);
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }
}

/// The range-tombstone block of `tombstones`, stored as fragments: ranges
/// that are disjoint or equal, one entry per fragment and seqno, in
/// internal-key order. A reader then rebuilds exactly these fragments, so a
/// block whose ranges overlap otherwise is corruption (and cannot make a
/// reader's fragments grow with the square of its entries).
fn range_del_block(tombstones: &mut Vec<RangeTombstone>) -> Vec<u8> {
    *tombstones = RangeDels::new(std::mem::take(tombstones)).tombstones();
    let mut block = BlockBuilder::new(INDEX_RESTART_INTERVAL);
    for tombstone in tombstones.iter() {
        let key = InternalKey::new(tombstone.start.clone(), tombstone.seqno, ValueKind::RangeDelete);
        block.add(&encoded_key::encode(&key), &tombstone.end);
    }
    block.finish().to_vec()
}

/// `Err(TooLarge)` if a metadata block of `size_bytes` exceeds its limit.
fn check_meta_size(what: &'static str, size_bytes: usize) -> Result<()> {
    if size_bytes > MAX_META_BLOCK_SIZE_BYTES {
        return Err(Error::TooLarge {
            what,
            size_bytes,
            limit_bytes: MAX_META_BLOCK_SIZE_BYTES,
        });
    }
    Ok(())
}
