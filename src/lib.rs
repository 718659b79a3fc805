//! ringdb: an embedded, async-native LSM-tree key-value store whose disk I/O
//! goes through io_uring.
//!
//! See `docs/design.md` for the architecture and `docs/format.md` for the
//! on-disk formats.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod error;
pub mod io;
pub mod limits;
mod options;

pub use error::{Error, Result};
pub use options::{IoBackend, Options, SyncMode, WriteOptions};
