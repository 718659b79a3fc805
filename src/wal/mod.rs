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

use std::path::{Path, PathBuf};

/// File name suffix of WAL segments.
const SEGMENT_SUFFIX: &str = ".wal";

/// The path of segment `number` in `dir`: `dir/000042.wal`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:06}{SEGMENT_SUFFIX}"))
}

/// The segment number a file name stands for, if it names a segment.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let path = segment_path(Path::new("/db"), 42);
        assert_eq!(path, Path::new("/db/000042.wal"));
        assert_eq!(parse_segment_name("000042.wal"), Some(42));
        assert_eq!(parse_segment_name("12345678.wal"), Some(12_345_678));
        assert_eq!(parse_segment_name("x.wal"), None);
        assert_eq!(parse_segment_name(".wal"), None);
        assert_eq!(parse_segment_name("000042.wal.tmp"), None);
    }
}
