//! A table iterator's readahead: after a run of block-cache misses, data
//! blocks are read a window ([`READAHEAD_WINDOW_BYTES`]) at a time in the
//! iterator's direction of travel, and the next window is read while the
//! blocks of the current one are decoded.
//!
//! The next window starts where the current one ends (forward) or ends
//! where it starts (reverse). A block that straddles the two is copied
//! together from both; every other block is a slice of its window.
//!
//! NOTE: the next window's read is polled once when it is started, which
//! issues it (to the ring or the thread pool) at once; it is awaited only
//! when a block in it is wanted. Without this a scan that decodes faster
//! than the disk (or the page cache) delivers waits for every window in
//! turn.
//!
//! Ownership: one `Readahead` per table iterator. Its windows are shared
//! with the blocks sliced from them, and so with the block cache.
//!
//! Invariants:
//! - No window is read before [`READAHEAD_AFTER_MISSES`] misses, so a get
//!   or a short seek never pays for a window it does not use; and no window
//!   is read ahead before the walk has gone past a whole one, so a short
//!   scan does not pay for two.
//! - Windows lie inside the data region: it ends where the filter block
//!   starts (checked when the table is opened), so no window reads
//!   metadata.
//! - `next`, when set, is adjacent to `window`, on the side the iterator
//!   was walking towards when it was started.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::io::File;
use crate::sst::table::reader::{exact, read_exact};

/// Bytes read at once by an iterator's readahead.
pub(crate) const READAHEAD_WINDOW_BYTES: usize = 256 * 1024;
/// Block loads that missed the cache before an iterator reads ahead.
pub(crate) const READAHEAD_AFTER_MISSES: u32 = 2;

/// Where a table's data blocks are read from.
pub(crate) struct DataRegion<'a> {
    pub file: &'a Arc<dyn File>,
    pub path: &'a Path,
    /// Offset just past the last data block.
    pub end: u64,
}

/// Bytes read at one offset of the file.
#[derive(Debug)]
struct Window {
    start: u64,
    bytes: Bytes,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// `len` bytes at `offset` if the window holds them all: a slice, no
    /// copy.
    fn slice(&self, offset: u64, len: usize) -> Option<Bytes> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        let to = from.checked_add(len)?;
        (to <= self.bytes.len()).then(|| self.bytes.slice(from..to))
    }
}

/// A window whose read is under way.
struct PendingWindow {
    start: u64,
    end: u64,
    read: BoxFuture<'static, Result<Bytes>>,
}

impl fmt::Debug for PendingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingWindow")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// An iterator's readahead state.
#[derive(Debug, Default)]
pub(crate) struct Readahead {
    /// The window blocks are served from.
    window: Option<Window>,
    /// The read of the window after `window`.
    next: Option<PendingWindow>,
    /// Cache misses so far.
    misses: u32,
    /// Windows read on a miss so far.
    windows_read: u32,
    /// Whether the iterator walks towards the end of the file.
    pub forward: bool,
}

impl Readahead {
    /// The stored bytes of the block at `offset` (`len` bytes with its
    /// trailer), from the windows or, until enough misses, from the file.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Corruption`] (a short read)
    /// from the file.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled call loses at most the window being read.
    pub async fn read(&mut self, region: &DataRegion<'_>, offset: u64, len: usize) -> Result<Bytes> {
        if let Some(bytes) = self.window.as_ref().and_then(|window| window.slice(offset, len)) {
            return Ok(bytes);
        }
        let block_end = offset.saturating_add(len as u64);
        if let Some(next) = self.next.take()
            && next.start < block_end
            && offset < next.end
        {
            // The walk reached the next window.
            let bytes = next.read.await?;
            let previous = self.window.replace(Window {
                start: next.start,
                bytes,
            });
            let block = self.window.as_ref().and_then(|window| {
                window
                    .slice(offset, len)
                    .or_else(|| gather(&[previous.as_ref()?, window], offset, len))
            });
            if let Some(block) = block {
                self.start_next(region).await;
                return Ok(block);
            }
        }
        // Else the walk jumped elsewhere (a seek, a turn) and the next
        // window, if any, was dropped above; or the block is too large for
        // two windows to hold.
        self.misses += 1;
        if self.misses < READAHEAD_AFTER_MISSES {
            return read_exact(region.file, region.path, offset, len, "data block").await;
        }
        let window_len = READAHEAD_WINDOW_BYTES.max(len) as u64;
        let (start, end) = if self.forward {
            (
                offset,
                offset.saturating_add(window_len).min(region.end).max(block_end),
            )
        } else {
            (block_end.saturating_sub(window_len), block_end)
        };
        let bytes = read_exact(
            region.file,
            region.path,
            start,
            (end - start) as usize,
            "data blocks",
        )
        .await?;
        let window = Window { start, bytes };
        let Some(block) = window.slice(offset, len) else {
            unreachable!("a window of {start}..{end} misses the block at {offset}+{len}");
        };
        self.window = Some(window);
        self.windows_read += 1;
        // A second window read means a long walk (past a whole window, as
        // a table iterator seeks once per scan): worth reading ahead for.
        if self.windows_read > 1 {
            self.start_next(region).await;
        }
        Ok(block)
    }

    /// Issues the read of the window after the current one in the
    /// direction of travel, if there is one.
    async fn start_next(&mut self, region: &DataRegion<'_>) {
        let Some(window) = &self.window else {
            return;
        };
        let window_len = READAHEAD_WINDOW_BYTES as u64;
        let (start, end) = if self.forward {
            let start = window.end();
            (start, start.saturating_add(window_len).min(region.end))
        } else {
            (window.start.saturating_sub(window_len), window.start)
        };
        if start >= end {
            return;
        }
        let file = Arc::clone(region.file);
        let path = region.path.to_path_buf();
        let len = (end - start) as usize;
        let mut read: BoxFuture<'static, Result<Bytes>> = Box::pin(async move {
            let buf = file
                .read_ahead_at(len, start)
                .await
                .map_err(|e| Error::io("read sst", &path, e))?;
            exact(buf, &path, start, len, "data blocks")
        });
        // Issue the read now (see the module docs). A read that is done
        // at once (the simulated disk) keeps its result.
        if let Poll::Ready(result) = futures::poll!(read.as_mut()) {
            read = Box::pin(futures::future::ready(result));
        }
        self.next = Some(PendingWindow { start, end, read });
    }
}

/// The `len` bytes at `offset` copied together from `windows`, if between
/// them they hold every byte.
fn gather(windows: &[&Window], offset: u64, len: usize) -> Option<Bytes> {
    let end = offset.checked_add(len as u64)?;
    let mut out = Vec::with_capacity(len);
    let mut at = offset;
    while at < end {
        let window = windows
            .iter()
            .find(|window| window.start <= at && at < window.end())?;
        let from = usize::try_from(at - window.start).ok()?;
        let to = usize::try_from(end.min(window.end()) - window.start).ok()?;
        out.extend_from_slice(window.bytes.get(from..to)?);
        at = window.start + to as u64;
    }
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_joins_adjacent_windows_and_refuses_gaps() {
        let low = Window {
            start: 10,
            bytes: Bytes::from_static(b"abcdef"),
        };
        let high = Window {
            start: 16,
            bytes: Bytes::from_static(b"ghij"),
        };
        assert_eq!(gather(&[&low, &high], 14, 4).as_deref(), Some(&b"efgh"[..]));
        assert_eq!(
            gather(&[&high, &low], 10, 10).as_deref(),
            Some(&b"abcdefghij"[..])
        );
        assert_eq!(gather(&[&low, &high], 18, 3), None);
        assert_eq!(gather(&[&low], 14, 4), None);
        assert_eq!(gather(&[&low, &high], 9, 2), None);
        assert_eq!(low.slice(12, 4).as_deref(), Some(&b"cdef"[..]));
        assert_eq!(low.slice(12, 5), None);
    }
}
