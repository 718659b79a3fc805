//! Iterating one level `L >= 1`: its tables, end to end.
//!
//! Ownership: a `LevelIter` belongs to one reader. It holds the level's
//! table list (`Arc<TableMeta>`s of one version) and opens one table at a
//! time through the shared table cache, when the position first enters it.
//!
//! Invariants:
//! - `tables` are sorted by key and do not overlap (the version's
//!   invariant for levels 1 and below), so the concatenation of their
//!   entries is sorted.
//! - When `current` is `Some((i, iter))`, `iter` reads `tables[i]`; the
//!   level iterator is valid iff `iter` is.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::key::InternalKey;
use crate::manifest::TableMeta;
use crate::sst::{TableCache, TableIter};

/// A cursor over the entries of one level's tables, in internal-key order,
/// both ways.
#[derive(Debug)]
pub struct LevelIter {
    table_cache: Arc<TableCache>,
    tables: Vec<Arc<TableMeta>>,
    /// The open table and its index in `tables`.
    current: Option<(usize, TableIter)>,
}

impl LevelIter {
    /// An iterator over `tables` (sorted by key, non-overlapping), opened
    /// through `table_cache`; positioned nowhere (invalid).
    pub fn new(table_cache: Arc<TableCache>, tables: Vec<Arc<TableMeta>>) -> Self {
        debug_assert!(
            tables.windows(2).all(|pair| match pair {
                [a, b] => a.largest.user_key < b.smallest.user_key,
                _ => true,
            }),
            "level tables overlap or are out of order"
        );
        LevelIter {
            table_cache,
            tables,
            current: None,
        }
    }

    /// True when positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|(_, iter)| iter.valid())
    }

    /// The current user key; empty when invalid.
    #[inline]
    pub fn user_key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |(_, iter)| iter.user_key())
    }

    /// The current user key and trailer; empty and 0 when invalid.
    #[inline]
    pub fn user_key_and_trailer(&self) -> (&[u8], u64) {
        self.current
            .as_ref()
            .map_or((&[], 0), |(_, iter)| iter.user_key_and_trailer())
    }

    /// The current trailer; 0 when invalid.
    #[inline]
    pub fn trailer(&self) -> u64 {
        self.current.as_ref().map_or(0, |(_, iter)| iter.trailer())
    }

    /// The current value; empty when invalid.
    #[inline]
    pub fn value(&self) -> Bytes {
        self.current
            .as_ref()
            .map_or_else(Bytes::new, |(_, iter)| iter.value())
    }

    /// Positions at the level's first entry.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Corruption`] from opening or
    /// reading a table; the iterator is then invalid.
    ///
    /// # Cancel safety
    /// Cancel safe, but the position is unspecified afterwards: seek again.
    pub async fn seek_to_first(&mut self) -> Result<()> {
        self.enter_forward(0).await
    }

    /// Positions at the level's last entry.
    ///
    /// # Errors
    /// As [`LevelIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`LevelIter::seek_to_first`].
    pub async fn seek_to_last(&mut self) -> Result<()> {
        self.enter_reverse(self.tables.len()).await
    }

    /// Positions at the first entry at or after `target`.
    ///
    /// # Errors
    /// As [`LevelIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`LevelIter::seek_to_first`].
    pub async fn seek(&mut self, target: &InternalKey) -> Result<()> {
        // The first table whose last key is at or after the target holds
        // the answer (or, were it to hold none, the tables after it).
        let index = self.tables.partition_point(|table| table.largest < *target);
        if index >= self.tables.len() {
            self.current = None;
            return Ok(());
        }
        let iter = self.open(index).await?;
        iter.seek(target).await?;
        if self.valid() {
            return Ok(());
        }
        self.enter_forward(index + 1).await
    }

    /// Moves to the next entry if it is in the current table's current
    /// block (see `TableIter::next_in_block`): `Some` with the step's
    /// result, or `None`, having moved nothing, when the step needs a block
    /// load or another table (use [`LevelIter::next`]).
    ///
    /// # Errors
    /// [`crate::Error::Corruption`] if the next entry is damaged; the
    /// iterator is then invalid.
    #[inline]
    pub fn next_in_block(&mut self) -> Option<Result<()>> {
        let (_, iter) = self.current.as_mut()?;
        let result = iter.next_in_block()?;
        if result.is_err() {
            self.current = None;
        }
        Some(result)
    }

    /// The mirror image of [`LevelIter::next_in_block`].
    ///
    /// # Errors
    /// As [`LevelIter::next_in_block`].
    #[inline]
    pub fn prev_in_block(&mut self) -> Option<Result<()>> {
        let (_, iter) = self.current.as_mut()?;
        let result = iter.prev_in_block()?;
        if result.is_err() {
            self.current = None;
        }
        Some(result)
    }

    /// Moves to the next entry (invalid after the last). No-op when invalid.
    ///
    /// # Errors
    /// As [`LevelIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`LevelIter::seek_to_first`].
    pub async fn next(&mut self) -> Result<()> {
        let Some((index, iter)) = &mut self.current else {
            return Ok(());
        };
        let index = *index;
        if let Err(error) = iter.next().await {
            self.current = None;
            return Err(error);
        }
        if self.valid() {
            return Ok(());
        }
        self.enter_forward(index + 1).await
    }

    /// Moves to the previous entry (invalid before the first). No-op when
    /// invalid.
    ///
    /// # Errors
    /// As [`LevelIter::seek_to_first`].
    ///
    /// # Cancel safety
    /// As [`LevelIter::seek_to_first`].
    pub async fn prev(&mut self) -> Result<()> {
        let Some((index, iter)) = &mut self.current else {
            return Ok(());
        };
        let index = *index;
        if let Err(error) = iter.prev().await {
            self.current = None;
            return Err(error);
        }
        if self.valid() {
            return Ok(());
        }
        self.enter_reverse(index).await
    }

    /// Positions at the first entry of the first non-empty table at or
    /// after `index` (invalid if there is none).
    async fn enter_forward(&mut self, mut index: usize) -> Result<()> {
        while index < self.tables.len() {
            self.open(index).await?.seek_to_first().await?;
            if self.valid() {
                return Ok(());
            }
            index += 1;
        }
        self.current = None;
        Ok(())
    }

    /// Positions at the last entry of the last non-empty table before
    /// `index` (invalid if there is none).
    async fn enter_reverse(&mut self, mut index: usize) -> Result<()> {
        while index > 0 {
            index -= 1;
            self.open(index).await?.seek_to_last().await?;
            if self.valid() {
                return Ok(());
            }
        }
        self.current = None;
        Ok(())
    }

    /// Makes `tables[index]` the current table, opening it unless it
    /// already is, and returns its (unpositioned) iterator.
    async fn open(&mut self, index: usize) -> Result<&mut TableIter> {
        let reuse = matches!(&self.current, Some((current, _)) if *current == index);
        if !reuse {
            self.current = None;
            let Some(meta) = self.tables.get(index) else {
                unreachable!("LevelIter::open({index}) past {} tables", self.tables.len());
            };
            let table = self.table_cache.get(meta).await?;
            self.current = Some((index, TableIter::new(table)));
        }
        match &mut self.current {
            Some((_, iter)) => Ok(iter),
            None => unreachable!("the current table was just set"),
        }
    }
}
