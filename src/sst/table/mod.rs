//! Whole tables: writing one, reading one, iterating one.
//!
//! - [`builder`]: `TableBuilder`, `TableOptions`; writes a table front to
//!   back in large sequential writes.
//! - [`reader`]: `Table`, an open table: footer, properties, index and
//!   filter in memory; point reads through the block cache.
//! - [`iter`]: `TableIter`, an owned async cursor over a table's entries.
//! - `readahead`: how a `TableIter` reads data blocks a window at a time,
//!   the next window while it decodes the current one.
//!
//! Ownership: a builder belongs to the one flush or compaction task writing
//! the table; a `Table` is shared as `Arc<Table>` by every reader (the
//! table cache keeps one per open file); an iterator belongs to its reader
//! and holds its table alive.
//!
//! Invariants:
//! - A finished table has at least one entry and its keys are strictly
//!   increasing in internal-key order.
//! - Everything read from the file is checksum-verified before use; any
//!   defect is `Error::Corruption` naming the file and the offset of the
//!   bad footer or block.

pub mod builder;
pub mod iter;
mod readahead;
pub mod reader;

#[cfg(test)]
mod tests;
