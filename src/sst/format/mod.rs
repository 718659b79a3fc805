//! The table's fixed structures, byte by byte: block handles, the
//! properties block and the footer.
//!
//! - [`handle`]: `BlockHandle` (offset and size of a block) and varint64.
//! - [`properties`]: `TableProperties` and its block.
//! - [`footer`]: the fixed-size footer closing every table.
//!
//! Ownership: pure encoders and decoders; the table builder and reader call
//! them.
//!
//! Invariants:
//! - Every decoder takes untrusted bytes, never panics and returns a reason
//!   (`Err(String)`) that the caller turns into `Error::Corruption` naming
//!   the file and the offset of the structure.

pub mod footer;
pub mod handle;
pub mod properties;
