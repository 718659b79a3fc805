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
