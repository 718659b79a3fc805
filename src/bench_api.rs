//! Entry points into internals for the criterion microbenchmarks
//! (`benches/micro.rs`), hidden from the docs: nothing here is API a user
//! may rely on.
//!
//! Each function is a thin wrapper over the code the store runs (the
//! memtable, the batch codec, the WAL record framing), so a benchmark
//! measures that code and not a copy. Tables' blocks and bloom filters are
//! reached through the hidden `sst` module directly.
//!
//! Invariants:
//! - No wrapper adds work to what it wraps beyond a conversion of its
//!   result (an `Option` for a lookup, a count for a decode).

use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::error::Result;
use crate::key::{InternalKey, ValueKind};

/// The store's memtable.
#[derive(Debug, Default)]
pub struct Memtable(crate::memtable::Memtable);

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Memtable(crate::memtable::Memtable::new())
    }

    /// Inserts a put of `key` at `seqno` (each (key, seqno) at most once).
    pub fn put(&self, key: Bytes, seqno: u64, value: Bytes) {
        self.0.insert(key, seqno, ValueKind::Put, value);
    }

    /// The newest value of `key` visible at `snapshot`, `None` for a
    /// tombstone or no version.
    pub fn get(&self, key: &Bytes, snapshot: u64) -> Option<Bytes> {
        match self.0.get(key, snapshot) {
            crate::key::Lookup::Found(value) => Some(value),
            _ => None,
        }
    }
}

/// The internal key a table stores for a put of `user_key` at `seqno`.
pub fn encode_key(user_key: &[u8], seqno: u64) -> Vec<u8> {
    let key = InternalKey::new(Bytes::copy_from_slice(user_key), seqno, ValueKind::Put);
    crate::sst::encoded_key::encode(&key)
}

/// The WAL payload of `batch`: what a commit encodes once per batch.
///
/// # Errors
/// [`crate::Error::TooLarge`] if the batch broke a size limit.
pub fn batch_payload(batch: WriteBatch) -> Result<Bytes> {
    Ok(batch.into_payload()?.0)
}

/// Decodes a WAL payload as recovery does; returns its entry count.
///
/// # Errors
/// The first defect, as recovery would report it.
pub fn decode_batch(payload: &Bytes) -> std::result::Result<usize, String> {
    crate::batch::decode_payload(payload).map(|entries| entries.len())
}

/// Appends one WAL record (header with checksum, then `payload`) to `dst`,
/// as the WAL writer frames each batch.
pub fn encode_wal_record(segment: u64, first_seqno: u64, payload: &[u8], dst: &mut Vec<u8>) {
    let header = crate::wal::format::RecordHeader {
        payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        segment,
        first_seqno,
    };
    header.encode(crc32c::crc32c(payload), payload, dst);
}
