//! The write-ahead log: segmented files of checksummed records.
//!
//! - [`format`]: the record layout, byte by byte (also in `docs/format.md`).
//! - [`reader`]: scanning a segment at recovery; untrusted input.
//! - [`segment`]: a segment being written: handles, preallocation, the
//!   last partly filled block.
//!
//! File mechanics only: this module imports nothing from the engine; the
//! WAL task that decides what to write and when is in `crate::commit`.

pub mod format;
pub mod reader;
pub mod segment;

// NOTE: the file-name rule lives in `crate::filename`; these two names stay
// for the modules (flush) that still import them from here.
pub(crate) use crate::filename::{wal_number as parse_segment_name, wal_path as segment_path};
