//! The names of the files in a store directory, each rule in one place
//! (LevelDB's `db/filename.cc` is the model).
//!
//! ```text
//! NNNNNN.wal        WAL segment NNNNNN          (at least 6 digits, zero-padded)
//! NNNNNN.sst        table NNNNNN
//! MANIFEST-NNNNNN   manifest NNNNNN
//! CURRENT           names the live manifest: "MANIFEST-NNNNNN\n"
//! CURRENT.dbtmp     CURRENT being replaced (written, synced, renamed over CURRENT)
//! LOCK              held by the process that has the store open
//! lost/             tables and manifests open could not prove to be garbage;
//!                   a name already taken there gets a suffix: NAME.1, NAME.2, ...
//! ```
//!
//! Ownership: pure functions, no I/O; every module that builds or reads a
//! store file name goes through here.
//!
//! Invariants:
//! - [`parse`] accepts exactly the names the builders produce (and longer
//!   numbers: a number past 999,999 is written with more digits); anything
//!   else is `None`.
//! - Numbers are written with `{:06}`: the names are byte-identical to
//!   those of every earlier version of ringdb.

use std::path::{Path, PathBuf};

/// Name of the file naming the live manifest.
pub const CURRENT: &str = "CURRENT";
/// Temporary name `CURRENT` is written under before the rename.
pub const CURRENT_TEMP: &str = "CURRENT.dbtmp";
/// Name of the lock file.
pub const LOCK: &str = "LOCK";
/// The folder inside a store where open keeps tables (and a manifest) it
/// could not prove to be garbage.
pub const LOST_DIR: &str = "lost";

/// File name suffix of WAL segments.
const WAL_SUFFIX: &str = ".wal";
/// File name suffix of tables.
const TABLE_SUFFIX: &str = ".sst";
/// File name prefix of manifests.
const MANIFEST_PREFIX: &str = "MANIFEST-";

/// What a file name in a store directory stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A WAL segment (`NNNNNN.wal`), with its number.
    Wal(u64),
    /// A table (`NNNNNN.sst`), with its number.
    Table(u64),
    /// A manifest (`MANIFEST-NNNNNN`), with its number.
    Manifest(u64),
    /// `CURRENT`.
    Current,
    /// `CURRENT.dbtmp`.
    CurrentTemp,
    /// `LOCK`.
    Lock,
    /// The `lost/` folder.
    LostDir,
}

impl FileKind {
    /// The file name this kind stands for (the inverse of [`parse`]).
    pub fn name(self) -> String {
        match self {
            FileKind::Wal(number) => format!("{number:06}{WAL_SUFFIX}"),
            FileKind::Table(number) => format!("{number:06}{TABLE_SUFFIX}"),
            FileKind::Manifest(number) => format!("{MANIFEST_PREFIX}{number:06}"),
            FileKind::Current => CURRENT.to_owned(),
            FileKind::CurrentTemp => CURRENT_TEMP.to_owned(),
            FileKind::Lock => LOCK.to_owned(),
            FileKind::LostDir => LOST_DIR.to_owned(),
        }
    }

    /// The path of this file in `dir`.
    pub fn path(self, dir: &Path) -> PathBuf {
        dir.join(self.name())
    }
}

/// What `name` (a file name, no directory) stands for, or `None` if it is
/// none of the store's names.
pub fn parse(name: &str) -> Option<FileKind> {
    match name {
        CURRENT => return Some(FileKind::Current),
        CURRENT_TEMP => return Some(FileKind::CurrentTemp),
        LOCK => return Some(FileKind::Lock),
        LOST_DIR => return Some(FileKind::LostDir),
        _ => {}
    }
    if let Some(digits) = name.strip_suffix(WAL_SUFFIX) {
        return parse_number(digits).map(FileKind::Wal);
    }
    if let Some(digits) = name.strip_suffix(TABLE_SUFFIX) {
        return parse_number(digits).map(FileKind::Table);
    }
    if let Some(digits) = name.strip_prefix(MANIFEST_PREFIX) {
        return parse_number(digits).map(FileKind::Manifest);
    }
    None
}

/// A file number: one or more ASCII digits that fit a `u64`.
fn parse_number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment number `name` stands for, if it names a WAL segment.
pub fn wal_number(name: &str) -> Option<u64> {
    match parse(name) {
        Some(FileKind::Wal(number)) => Some(number),
        _ => None,
    }
}

/// The table number `name` stands for, if it names a table.
pub fn table_number(name: &str) -> Option<u64> {
    match parse(name) {
        Some(FileKind::Table(number)) => Some(number),
        _ => None,
    }
}

/// The manifest number `name` stands for, if it names a manifest.
pub fn manifest_number(name: &str) -> Option<u64> {
    match parse(name) {
        Some(FileKind::Manifest(number)) => Some(number),
        _ => None,
    }
}

/// The path of WAL segment `number` in `dir`: `dir/000042.wal`.
pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    FileKind::Wal(number).path(dir)
}

/// The path of table `number` in `dir`: `dir/000042.sst`.
pub fn table_path(dir: &Path, number: u64) -> PathBuf {
    FileKind::Table(number).path(dir)
}

/// The path of manifest `number` in `dir`: `dir/MANIFEST-000042`.
pub fn manifest_path(dir: &Path, number: u64) -> PathBuf {
    FileKind::Manifest(number).path(dir)
}

/// The bytes of a `CURRENT` file naming manifest `number`.
pub fn current_contents(number: u64) -> Vec<u8> {
    let mut contents = FileKind::Manifest(number).name().into_bytes();
    contents.push(b'\n');
    contents
}

/// The manifest number the contents of a `CURRENT` file name: the
/// manifest's file name and one newline, nothing else.
pub fn parse_current_contents(contents: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(contents).ok()?.strip_suffix('\n')?;
    manifest_number(text)
}

/// The name a file called `name` gets in `lost/` on its `attempt`-th try
/// (0 first): `name`, then `name.1`, `name.2`, ...
pub fn lost_name(name: &str, attempt: u32) -> String {
    if attempt == 0 {
        name.to_owned()
    } else {
        format!("{name}.{attempt}")
    }
}

/// The original name of a file in `lost/` (`000012.sst` for `000012.sst.3`):
/// the inverse of [`lost_name`].
pub fn lost_original(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((base, suffix)) if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_historical_ones() {
        let dir = Path::new("/db");
        assert_eq!(wal_path(dir, 42), Path::new("/db/000042.wal"));
        assert_eq!(table_path(dir, 42), Path::new("/db/000042.sst"));
        assert_eq!(manifest_path(dir, 7), Path::new("/db/MANIFEST-000007"));
        assert_eq!(table_path(dir, 1_234_567), Path::new("/db/1234567.sst"));
        assert_eq!(FileKind::Current.path(dir), Path::new("/db/CURRENT"));
        assert_eq!(FileKind::CurrentTemp.path(dir), Path::new("/db/CURRENT.dbtmp"));
        assert_eq!(FileKind::Lock.path(dir), Path::new("/db/LOCK"));
        assert_eq!(FileKind::LostDir.path(dir), Path::new("/db/lost"));
        assert_eq!(current_contents(3), b"MANIFEST-000003\n");
    }

    #[test]
    fn every_name_parses_back_to_its_kind() {
        for kind in [
            FileKind::Wal(0),
            FileKind::Wal(42),
            FileKind::Table(12_345_678),
            FileKind::Manifest(7),
            FileKind::Manifest(u64::MAX),
            FileKind::Current,
            FileKind::CurrentTemp,
            FileKind::Lock,
            FileKind::LostDir,
        ] {
            assert_eq!(parse(&kind.name()), Some(kind), "{}", kind.name());
        }
        assert_eq!(wal_number("000042.wal"), Some(42));
        assert_eq!(wal_number("12345678.wal"), Some(12_345_678));
        assert_eq!(table_number("1234567.sst"), Some(1_234_567));
        assert_eq!(table_number("000042.sst"), Some(42));
        assert_eq!(manifest_number("MANIFEST-000004"), Some(4));
        assert_eq!(table_number("000042.wal"), None);
        assert_eq!(wal_number("000042.sst"), None);
    }

    #[test]
    fn foreign_names_are_rejected() {
        for name in [
            "x.wal",
            "x.sst",
            ".wal",
            ".sst",
            "000042.wal.tmp",
            "000042.sst.3",
            "MANIFEST-",
            "MANIFEST-00x1",
            "MANIFEST",
            "CURRENT.tmp",
            "-1.sst",
            "+1.sst",
            "99999999999999999999999.sst",
            "",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }

    #[test]
    fn current_contents_round_trip_and_reject_anything_else() {
        assert_eq!(parse_current_contents(&current_contents(9)), Some(9));
        assert_eq!(parse_current_contents(b"MANIFEST-000009"), None);
        assert_eq!(parse_current_contents(b"MANIFEST-000009\n\n"), None);
        assert_eq!(parse_current_contents(b"000009.sst\n"), None);
        assert_eq!(parse_current_contents(&[0xff, b'\n']), None);
    }

    #[test]
    fn lost_names_map_back_to_their_file() {
        assert_eq!(lost_name("000012.sst", 0), "000012.sst");
        assert_eq!(lost_name("000012.sst", 3), "000012.sst.3");
        assert_eq!(lost_original("000012.sst"), "000012.sst");
        assert_eq!(lost_original("000012.sst.3"), "000012.sst");
        assert_eq!(lost_original("MANIFEST-000004"), "MANIFEST-000004");
        assert_eq!(lost_original("MANIFEST-000004.1"), "MANIFEST-000004");
    }
}
