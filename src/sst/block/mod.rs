//! Blocks: sorted runs of prefix-compressed entries with restart points.
//!
//! - [`builder`]: `BlockBuilder`, which encodes entries (layout in its doc).
//! - [`reader`]: `Block` and `BlockIter`, which decode them from untrusted
//!   bytes: seek, next, prev, first, last.
//! - [`trailer`]: the stored form of a block: compression and checksum.
//! - `heads`: restart keys as integers, for blocks searched often (a
//!   table's index).
//!
//! Data blocks map encoded internal keys to values; index blocks map the
//! last encoded internal key of each data block to its `BlockHandle`.
//!
//! Ownership: a builder belongs to one table builder; a `Block` is an
//! immutable `Bytes` handle shared freely (the block cache holds the same
//! bytes); a `BlockIter` belongs to one reader.
//!
//! Invariants:
//! - Keys in a block are valid encoded internal keys, strictly increasing
//!   in internal-key order.
//! - A block reader never panics and never reads outside its `Bytes`.

pub mod builder;
mod heads;
pub mod reader;
pub mod trailer;

pub use builder::BlockBuilder;
pub use reader::{Block, BlockIter};
