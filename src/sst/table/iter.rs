//! Iterating a table: an owned, async, two-level cursor (index block, then
//! one data block at a time).
//!
//! Ownership: a `TableIter` belongs to one reader (a scan, a compaction
//! input) and may move between threads (`Send`); it holds its `Arc<Table>`,
//! so the table stays open while it lives. Data blocks come through the
//! table's block cache.
//!
//! Invariants:
//! - When valid, `data` is positioned at an entry of the data block that
//!   `index` is positioned at, and `key()`/`value()` are that entry.
//! - Data blocks are never empty (the table reader refuses empty ones), so
//!   moving off the end of one block lands on an entry of the next.
//! - After an `Err` the iterator is invalid; a new seek may be tried.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::key::{InternalKey, SeqNo, Trailer, ValueKind};
use crate::sst::block::BlockIter;
use crate::sst::encoded_key;
use crate::sst::format::handle::BlockHandle;
use crate::sst::table::readahead::Readahead;
use crate::sst::table::reader::Table;

/// A cursor over one table's entries (all versions, tombstones included)
/// in internal-key order, both ways.
#[derive(Debug)]
pub struct TableIter {
    table: Arc<Table>,
    index: BlockIter,
    /// The data block at `index`, with its handle; `None` when invalid.
    data: Option<(BlockHandle, BlockIter)>,
    /// The cursor of the last block left, kept so the next block reuses its
    /// buffers instead of growing new ones.
    spare: Option<BlockIter>,
    /// Reads several blocks at once once the iterator walks the table.
    readahead: Readahead,
}

impl TableIter {
    /// An iterator over `table`, positioned nowhere (invalid).
    pub fn new(table: Arc<Table>) -> Self {
        TableIter {
            index: table.index_iter(),
            table,
            data: None,
            spare: None,
            readahead: Readahead::default(),
        }
    }

    /// The table iterated.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(|(_, data)| data.valid())
    }

    /// The current key, encoded (`user_key ++ trailer:u64 LE`); empty when
    /// invalid.
    #[inline]
    pub fn encoded_key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |(_, data)| data.key())
    }

    /// The current user key; empty when invalid.
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |(_, data)| data.user_key())
    }

    /// The current user key and trailer; empty and 0 when invalid.
    #[inline]
    pub fn user_key_and_trailer(&self) -> (&[u8], u64) {
        self.data
            .as_ref()
            .map_or((&[], 0), |(_, data)| (data.user_key(), data.trailer()))
    }

    /// The current key's trailer (`seqno << 8 | kind`); 0 when invalid.
    #[inline]
    pub fn trailer(&self) -> u64 {
        self.data.as_ref().map_or(0, |(_, data)| data.trailer())
    }

    /// The current key's seqno; 0 when invalid.
    pub fn seqno(&self) -> SeqNo {
        Trailer::from_raw(self.trailer()).seqno()
    }

    /// The current key's kind. REQUIRES: `valid()` (an invalid iterator's
    /// trailer 0 reads as `Delete`).
    pub fn kind(&self) -> ValueKind {
        Trailer::from_raw(self.trailer()).known_kind()
    }

    /// The current key as an `InternalKey` (copies the user key).
    /// REQUIRES: `valid()` (an invalid iterator yields an empty key).
    pub fn key(&self) -> InternalKey {
        InternalKey {
            user_key: Bytes::copy_from_slice(self.user_key()),
            trailer: self.trailer(),
        }
    }

    /// The current value: a slice of the cached block, no copy. Empty when
    /// invalid (and for tombstones).
    #[inline]
    pub fn value(&self) -> Bytes {
        self.data
            .as_ref()
            .map_or_else(Bytes::new, |(_, data)| data.value())
    }

    /// Positions at the table's first entry.
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] or [`crate::Error::Io`] from the block
    /// read; the iterator is then invalid.
    ///
    /// # Cancel safety
    /// Cancel safe, but the position is unspecified afterwards: seek again.
    pub async fn seek_to_first(&mut self) -> Result<()> {
        self.readahead.forward = true;
        self.leave_block();
        self.index
            .seek_to_first()
            .map_err(|reason| self.table.index_corruption(reason))?;
        self.load_block_then(|data| data.seek_to_first()).await
    }

    /// Positions at the table's last entry.
    ///
    /// # Errors
    /// As [`TableIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`TableIter::seek_to_first`].
    pub async fn seek_to_last(&mut self) -> Result<()> {
        self.readahead.forward = false;
        self.leave_block();
        self.index
            .seek_to_last()
            .map_err(|reason| self.table.index_corruption(reason))?;
        self.load_block_then(|data| data.seek_to_last()).await
    }

    /// Positions at the first entry at or after `target` in internal-key
    /// order (invalid if there is none). Use
    /// `InternalKey::seek_key` to start at the newest version visible at a
    /// snapshot.
    ///
    /// # Errors
    /// As [`TableIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`TableIter::seek_to_first`].
    pub async fn seek(&mut self, target: &InternalKey) -> Result<()> {
        self.readahead.forward = true;
        self.leave_block();
        let target = encoded_key::encode(target);
        self.index
            .seek(&target)
            .map_err(|reason| self.table.index_corruption(reason))?;
        self.load_block_then(|data| data.seek(&target)).await
    }

    /// Moves to the next entry if it is in the current block: `Some` with
    /// the step's result, or `None`, having moved nothing, when the current
    /// entry ends its block (the step needs a block load: use
    /// [`TableIter::next`]) or the iterator is invalid.
    ///
    /// NOTE: most steps stay in a block; this spares them the await (and
    /// the future) that a block load needs.
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] if the next entry is damaged; the
    /// iterator is then invalid.
    #[inline]
    pub fn next_in_block(&mut self) -> Option<Result<()>> {
        let (handle, data) = self.data.as_mut()?;
        if !data.has_next() {
            return None;
        }
        self.readahead.forward = true;
        let Err(reason) = data.next() else {
            return Some(Ok(()));
        };
        let handle = *handle;
        self.leave_block();
        Some(Err(self.table.block_corruption(handle, reason)))
    }

    /// The mirror image of [`TableIter::next_in_block`]: moves to the
    /// previous entry if it is in the current block.
    ///
    /// # Errors
    /// As [`TableIter::next_in_block`].
    #[inline]
    pub fn prev_in_block(&mut self) -> Option<Result<()>> {
        let (handle, data) = self.data.as_mut()?;
        if !data.has_prev() {
            return None;
        }
        self.readahead.forward = false;
        let Err(reason) = data.prev() else {
            return Some(Ok(()));
        };
        let handle = *handle;
        self.leave_block();
        Some(Err(self.table.block_corruption(handle, reason)))
    }

    /// Moves to the next entry (invalid after the last). No-op when invalid.
    ///
    /// # Errors
    /// As [`TableIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`TableIter::seek_to_first`].
    pub async fn next(&mut self) -> Result<()> {
        self.readahead.forward = true;
        let Some((handle, data)) = &mut self.data else {
            return Ok(());
        };
        let handle = *handle;
        if let Err(reason) = data.next() {
            self.leave_block();
            return Err(self.table.block_corruption(handle, reason));
        }
        if data.valid() {
            return Ok(());
        }
        self.leave_block();
        self.index
            .next()
            .map_err(|reason| self.table.index_corruption(reason))?;
        self.load_block_then(|data| data.seek_to_first()).await
    }

    /// Moves to the previous entry (invalid before the first). No-op when
    /// invalid.
    ///
    /// # Errors
    /// As [`TableIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`TableIter::seek_to_first`].
    pub async fn prev(&mut self) -> Result<()> {
        self.readahead.forward = false;
        let Some((handle, data)) = &mut self.data else {
            return Ok(());
        };
        let handle = *handle;
        if let Err(reason) = data.prev() {
            self.leave_block();
            return Err(self.table.block_corruption(handle, reason));
        }
        if data.valid() {
            return Ok(());
        }
        self.leave_block();
        self.index
            .prev()
            .map_err(|reason| self.table.index_corruption(reason))?;
        self.load_block_then(|data| data.seek_to_last()).await
    }

    /// Makes the iterator invalid, keeping the block cursor for the next
    /// block.
    fn leave_block(&mut self) {
        if let Some((_, data)) = self.data.take() {
            self.spare = Some(data);
        }
    }

    /// Loads the data block `index` points at (if it is valid) and places
    /// its cursor with `position`, which must find an entry: the index key
    /// of a block is its last key, and blocks are never empty.
    async fn load_block_then(
        &mut self,
        position: impl FnOnce(&mut BlockIter) -> Result<(), String>,
    ) -> Result<()> {
        debug_assert!(self.data.is_none());
        if !self.index.valid() {
            return Ok(());
        }
        let handle = self.table.block_handle(&self.index)?;
        let block = self
            .table
            .data_block_with(handle, Some(&mut self.readahead))
            .await?;
        let mut data = match self.spare.take() {
            Some(mut data) => {
                data.reset(block);
                data
            }
            None => block.iter(),
        };
        position(&mut data).map_err(|reason| self.table.block_corruption(handle, reason))?;
        if !data.valid() {
            return Err(self
                .table
                .block_corruption(handle, "holds no entry up to its index key".to_owned()));
        }
        self.data = Some((handle, data));
        Ok(())
    }
}
