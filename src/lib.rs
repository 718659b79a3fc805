//! ringdb: an embedded, async-native LSM-tree key-value store whose disk I/O
//! goes through io_uring.
//!
//! ```
//! # futures::executor::block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = ringdb::Db::open(dir.path(), ringdb::Options::default()).await?;
//! db.put(b"user:1", b"alice").await?; // resolves after the fdatasync that covers it
//! let mut batch = ringdb::WriteBatch::new();
//! batch.put(b"a", b"1").delete(b"b");
//! db.write(batch).await?; // atomic, also across a crash
//! assert_eq!(db.get(b"a").await?.as_deref(), Some(&b"1"[..]));
//! db.close().await?;
//! # Ok::<(), ringdb::Error>(())
//! # }).unwrap();
//! ```
//!
//! Layout: [`db`] (the handle, the commit queue, recovery), `wal` (segments,
//! records, the group-commit task), `memtable`, [`io`] (the I/O trait and
//! its io_uring, thread-pool and simulated backends). See `docs/design.md`
//! for the architecture and `docs/format.md` for the on-disk formats.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod batch;
#[doc(hidden)]
pub mod bench_api;
mod check;
pub mod clock;
mod coding;
mod commit;
mod compaction;
mod compaction_filter;
pub mod db;
mod error;
mod filename;
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod inspect;
pub mod io;
mod iter;
mod key;
pub mod limits;
mod manifest;
mod memtable;
pub mod merge;
mod options;
mod prefetch;
mod range_del;
#[doc(hidden)]
pub mod sst;
#[cfg(test)]
mod test_rng;
mod ttl;
mod version;
mod wal;

/// The README's code blocks, compiled as doctests so that the usage it
/// shows stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use batch::WriteBatch;
pub use check::{CheckReport, Damage, check, check_with_fs};
pub use compaction_filter::{CompactionFilter, FilterDecision};
pub use db::{Db, KeyRange, Scan, Snapshot, Stats};
pub use error::{Error, Result};
pub use io::IoBackend;
pub use options::{Compression, Options, SyncMode, WriteOptions};
