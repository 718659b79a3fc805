//! A WAL segment being written: its handles, its preallocation and the
//! last partly filled block that direct writes rewrite.
//!
//! File mechanics only: which records go where, and when they must be
//! durable, is the commit pipeline's business (`crate::commit`).
//!
//! A segment is zero-filled (and synced) [`WAL_PREFILL_WINDOW_BYTES`] ahead
//! of its records, so durable writes overwrite allocated blocks and need not
//! journal a size change; preallocation stops, without an error, when the
//! disk is full.
//!
//! Invariants:
//! - `synced_to <= prefilled_to`, and both only grow.
//! - [`Tail`] always holds the records written since the last
//!   [`DIRECT_IO_ALIGN_BYTES`] boundary, and less than one block.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::filename::wal_path;
use crate::io::{File, Fs, OpenMode};
use crate::limits::{DIRECT_IO_ALIGN_BYTES, PREALLOCATE_CHUNK_BYTES, WAL_PREFILL_WINDOW_BYTES};

/// The segment the WAL task appends to.
#[derive(Debug)]
pub(crate) struct OpenSegment {
    pub(crate) number: u64,
    pub(crate) path: PathBuf,
    /// Plain handle: zero-fill, writes nobody waits for, fdatasync.
    pub(crate) file: Arc<dyn File>,
    /// `O_DSYNC` handle to the same file: durable writes of large groups.
    pub(crate) dsync_file: Arc<dyn File>,
    /// `O_DIRECT | O_DSYNC` handle, where the filesystem has one: durable
    /// writes of small groups.
    pub(crate) direct_file: Option<Arc<dyn File>>,
    /// The last, partly filled block, where the next record goes.
    pub(crate) tail: Tail,
    /// Bytes `[0, prefilled_to)` hold records or zeros.
    pub(crate) prefilled_to: u64,
    /// Bytes `[0, synced_to)` are durable (zeros or records); the prefill
    /// ahead of the records is synced before a durable write lands there.
    pub(crate) synced_to: u64,
    /// Records were written through the plain handle since the last sync
    /// started: a durable write must sync instead of relying on `O_DSYNC`.
    pub(crate) dirty: bool,
    /// Any record was ever written to it.
    pub(crate) has_records: bool,
    /// A zero-fill ran out of disk space: no more preallocation.
    pub(crate) prefill_disabled: bool,
}

/// Whether `error` says the disk (or the user's quota) is full.
pub(crate) fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

impl OpenSegment {
    /// Creates segment `number`, zero-fills its first `prefill_bytes`, and
    /// makes file and directory entry durable. With `direct`, durable writes
    /// go through an `O_DIRECT` handle where the filesystem has one.
    pub async fn create(
        fs: &Arc<dyn Fs>,
        dir: &std::path::Path,
        number: u64,
        size_bytes: u64,
        prefill_bytes: u64,
        direct: bool,
    ) -> Result<Self> {
        Self::create_until(
            fs,
            dir,
            number,
            (size_bytes, prefill_bytes),
            direct,
            &AtomicBool::new(false),
        )
        .await
    }

    /// As [`OpenSegment::create`], but the zero-fill stops early once `stop`
    /// is set (the segment is then only partly prefilled, which is safe).
    pub(crate) async fn create_until(
        fs: &Arc<dyn Fs>,
        dir: &std::path::Path,
        number: u64,
        (size_bytes, prefill_bytes): (u64, u64),
        direct: bool,
        stop: &AtomicBool,
    ) -> Result<Self> {
        let path = wal_path(dir, number);
        let file = fs
            .open(&path, OpenMode::CreateNew)
            .await
            .map_err(|e| Error::io("create wal segment", &path, e))?;
        let direct_file = match direct {
            true => match fs.open(&path, OpenMode::ReadWriteDirect).await {
                Ok(file) => Some(file),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(path = %path.display(), "no O_DIRECT here; durable WAL writes use O_DSYNC");
                    None
                }
                Err(e) => return Err(Error::io("open wal segment for direct writes", &path, e)),
            },
            false => None,
        };
        let dsync_file = fs
            .open(&path, OpenMode::ReadWriteDsync)
            .await
            .map_err(|e| Error::io("open wal segment for durable writes", &path, e))?;
        let mut segment = OpenSegment {
            number,
            path,
            file,
            dsync_file,
            direct_file,
            tail: Tail::default(),
            prefilled_to: 0,
            synced_to: 0,
            dirty: false,
            has_records: false,
            prefill_disabled: false,
        };
        segment.zero_fill(0, prefill_bytes.min(size_bytes), stop).await?;
        segment.sync_prefill().await?;
        fs.sync_dir(dir)
            .await
            .map_err(|e| Error::io("sync wal directory", dir, e))?;
        Ok(segment)
    }

    /// Before records are written up to `end`: if fewer than half a window
    /// of zeros would be left past them, zero-fills one window past `end`
    /// (capped at the segment size); with `sync`, also makes the zeros
    /// durable, so that a durable write there changes no file metadata.
    pub(crate) async fn prefill_ahead_of(&mut self, end: u64, size_bytes: u64, sync: bool) -> Result<()> {
        let (fill_to, sync_due) = self.prefill_due(end, size_bytes);
        if let Some(wanted) = fill_to {
            let start = self.prefilled_to;
            self.zero_fill(start, wanted, &AtomicBool::new(false)).await?;
        }
        if sync && (sync_due || fill_to.is_some()) && self.synced_to < self.prefilled_to {
            self.sync_prefill().await?;
        }
        Ok(())
    }

    /// What `prefill_ahead_of(end)` must do: zero-fill up to the returned
    /// offset, if any; and (for a durable write) sync the zeros, if true.
    pub(crate) fn prefill_due(&self, end: u64, size_bytes: u64) -> (Option<u64>, bool) {
        let wanted = (end + WAL_PREFILL_WINDOW_BYTES).min(size_bytes.max(end));
        let low_water = end + WAL_PREFILL_WINDOW_BYTES / 2;
        let fill_to = (!self.prefill_disabled && low_water > self.prefilled_to && self.prefilled_to < wanted)
            .then_some(wanted);
        let sync_due = low_water > self.synced_to && self.synced_to < self.prefilled_to;
        (fill_to, sync_due)
    }

    /// fdatasync of the plain handle after a zero-fill.
    pub(crate) async fn sync_prefill(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .await
            .map_err(|e| Error::io("sync wal segment prefill", &self.path, e))?;
        self.synced_to = self.prefilled_to;
        Ok(())
    }

    /// Writes zeros over `[start, end)` (stopping early once `stop` is set)
    /// and extends `prefilled_to` over what it wrote.
    async fn zero_fill(&mut self, start: u64, end: u64, stop: &AtomicBool) -> Result<()> {
        let mut offset = start;
        let mut zeros = Vec::new();
        while offset < end && !stop.load(Ordering::Acquire) {
            let len = (end - offset).min(PREALLOCATE_CHUNK_BYTES as u64) as usize;
            // NOTE: a write hands the buffer back unchanged: zero it once.
            if zeros.len() != len {
                zeros.clear();
                zeros.resize(len, 0);
            }
            zeros = match self.file.write_all_at(zeros, offset).await {
                Ok(zeros) => zeros,
                Err(e) if is_out_of_space(&e) => {
                    // NOTE: preallocation only saves metadata writes; on a
                    // full disk records go where the zeros would have, and a
                    // record that does not fit fails on its own.
                    tracing::warn!(path = %self.path.display(), "disk full: WAL preallocation stops");
                    self.prefill_disabled = true;
                    break;
                }
                Err(e) => return Err(Error::io("zero-fill wal segment", &self.path, e)),
            };
            offset += len as u64;
            // NOTE: let the WAL task (same thread) run between chunks; a
            // backend whose writes complete at once would otherwise hold the
            // thread for the whole fill.
            tokio::task::yield_now().await;
        }
        self.prefilled_to = self.prefilled_to.max(offset);
        Ok(())
    }
}

/// The records written since the last block boundary, which a direct write
/// must write again: `bytes` lie at `[start, start + bytes.len())`, and the
/// next record goes at the end.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub(crate) start: u64,
    pub(crate) bytes: Vec<u8>,
}

impl Tail {
    /// Where the next write goes.
    pub(crate) fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// Notes `written`, written at the end.
    pub(crate) fn note_written(&mut self, offset: u64, written: &[u8]) {
        debug_assert_eq!(self.end(), offset, "writes are contiguous");
        let end = offset + written.len() as u64;
        let block_start = end - end % DIRECT_IO_ALIGN_BYTES as u64;
        if block_start <= self.start {
            // Still inside the same block.
            self.bytes.extend_from_slice(written);
            return;
        }
        // NOTE: the tail is shorter than a block, so the first boundary past
        // `start` (and with it `block_start`) lies at or past `offset`: the
        // new last block begins inside `written`, and copying only that part
        // keeps a large plain write from being copied whole.
        let skip = usize::try_from(block_start - offset).unwrap_or(usize::MAX);
        self.bytes.clear();
        self.bytes
            .extend_from_slice(written.get(skip..).unwrap_or_default());
        self.start = block_start;
    }

    /// A write of whole blocks for the records `buf`, which go at the end:
    /// the tail, `buf`, and zeros up to the next block boundary, and the
    /// offset where they go. The zeros are what the prefill left there, so
    /// the file reads as after a plain write of `buf`. Notes `buf` as
    /// written.
    pub(crate) fn block_write(&mut self, offset: u64, buf: &[u8]) -> (Vec<u8>, u64) {
        let start = self.start;
        let mut out = Vec::with_capacity(self.bytes.len() + buf.len() + DIRECT_IO_ALIGN_BYTES);
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(buf);
        out.resize(out.len().next_multiple_of(DIRECT_IO_ALIGN_BYTES), 0);
        self.note_written(offset, buf);
        (out, start)
    }
}

#[cfg(test)]
mod tests {
    use super::{DIRECT_IO_ALIGN_BYTES, Tail};
    use crate::test_rng::Rng;

    /// Writes of random sizes, some plain (`note_written`) and some direct,
    /// applied to a model file: each direct write is aligned, and the file
    /// always reads as the records written so far followed by zeros.
    #[test]
    fn direct_writes_rewrite_the_tail_and_keep_the_file_as_written() {
        const ALIGN: usize = DIRECT_IO_ALIGN_BYTES;
        let mut rng = Rng(7);
        for round in 0..50 {
            let mut tail = Tail::default();
            let mut file = vec![0u8; 64 * ALIGN];
            let mut expected: Vec<u8> = Vec::new();
            while expected.len() < 40 * ALIGN {
                let len = match rng.below(4) {
                    0 => 1 + rng.below(40) as usize,
                    1 => 1 + rng.below(ALIGN as u64 * 3) as usize,
                    2 => ALIGN - expected.len() % ALIGN,
                    _ => 100 + rng.below(200) as usize,
                };
                let record: Vec<u8> = (0..len).map(|i| (round + i + expected.len()) as u8 | 1).collect();
                let offset = expected.len() as u64;
                if rng.below(3) == 0 {
                    tail.note_written(offset, &record);
                    file[offset as usize..offset as usize + len].copy_from_slice(&record);
                } else {
                    let (out, start) = tail.block_write(offset, &record);
                    assert_eq!(start % ALIGN as u64, 0, "aligned offset");
                    assert_eq!(out.len() % ALIGN, 0, "aligned length");
                    assert!(
                        start <= offset && start + ALIGN as u64 > offset,
                        "starts in the last block"
                    );
                    file[start as usize..start as usize + out.len()].copy_from_slice(&out);
                }
                expected.extend_from_slice(&record);
                assert_eq!(tail.end(), expected.len() as u64);
                assert!(tail.bytes.len() < ALIGN, "the tail is less than a block");
                assert_eq!(&file[..expected.len()], &expected[..], "round {round}");
                assert!(
                    file[expected.len()..].iter().all(|&b| b == 0),
                    "zeros after the records"
                );
            }
        }
    }
}
