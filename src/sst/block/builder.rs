//! Encoding one block of sorted entries.
//!
//! ```text
//! block   := entry{n} restart:u32{r} restart_count:u32        (little-endian)
//! entry   := shared_len:varint32 unshared_len:varint32 value_len:varint32
//!            key_suffix:bytes[unshared_len] value:bytes[value_len]
//!   key   = previous_key[0..shared_len] ++ key_suffix
//! restart := offset of an entry whose shared_len is 0
//! ```
//!
//! Every `restart_interval`-th entry (the first one included) is a restart
//! point: it stores its whole key, and its offset is in the restart array,
//! so a reader can binary-search the restarts and then scan forward. An
//! empty block is a single restart at offset 0 and a count of 1.
//!
//! Ownership: owned by one table builder, reused block after block.
//!
//! Invariants:
//! - Keys are added in strictly increasing internal-key order (asserted in
//!   debug builds; the table builder asserts it always).
//! - `restarts` is non-empty, strictly increasing, starts at 0.
//! - The finished block is at most `u32::MAX` bytes (offsets fit a u32).

use std::cmp::Ordering;

use crate::coding::put_varint32;
use crate::sst::encoded_key;

/// Builds one block.
#[derive(Debug)]
pub struct BlockBuilder {
    /// Entries so far; after `finish`, the whole block.
    buf: Vec<u8>,
    /// Offsets of restart entries.
    restarts: Vec<u32>,
    /// Entries since the last restart.
    since_restart: usize,
    /// Entries per restart.
    restart_interval: usize,
    /// The last key added (whole, not its suffix).
    last_key: Vec<u8>,
    /// Entries in the block.
    entry_count: usize,
    /// True between `finish` and `reset`.
    finished: bool,
}

impl BlockBuilder {
    /// An empty builder placing a restart every `restart_interval` entries.
    pub fn new(restart_interval: usize) -> Self {
        assert!(restart_interval >= 1, "restart interval must be at least 1");
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            since_restart: 0,
            restart_interval,
            last_key: Vec::new(),
            entry_count: 0,
            finished: false,
        }
    }

    /// Appends an entry. `key` is an encoded internal key greater than the
    /// previous one.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        assert!(!self.finished, "add after finish without reset");
        debug_assert!(encoded_key::split(key).is_some(), "key without a trailer");
        debug_assert!(
            self.entry_count == 0 || encoded_key::compare(&self.last_key, key) == Ordering::Less,
            "block keys out of order"
        );
        let shared = if self.since_restart < self.restart_interval {
            self.last_key.iter().zip(key).take_while(|(a, b)| a == b).count()
        } else {
            self.restarts.push(self.offset_u32());
            self.since_restart = 0;
            0
        };
        let unshared = key.get(shared..).unwrap_or_default();
        put_varint32(&mut self.buf, shared as u32);
        put_varint32(&mut self.buf, unshared.len() as u32);
        put_varint32(&mut self.buf, to_u32(value.len()));
        self.buf.extend_from_slice(unshared);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(unshared);
        debug_assert_eq!(self.last_key, key);
        self.since_restart += 1;
        self.entry_count += 1;
    }

    /// Size of the block if it were finished now.
    pub fn current_size_bytes(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// True if nothing was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Entries added since the last reset.
    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the finished block. Call
    /// [`BlockBuilder::reset`] before adding again.
    pub fn finish(&mut self) -> &[u8] {
        assert!(!self.finished, "finish called twice");
        self.buf
            .extend(self.restarts.iter().flat_map(|restart| restart.to_le_bytes()));
        let count = to_u32(self.restarts.len());
        self.buf.extend_from_slice(&count.to_le_bytes());
        self.finished = true;
        assert!(u32::try_from(self.buf.len()).is_ok(), "block exceeds u32 offsets");
        &self.buf
    }

    /// Empties the builder for the next block, keeping its allocations.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.since_restart = 0;
        self.last_key.clear();
        self.entry_count = 0;
        self.finished = false;
    }

    fn offset_u32(&self) -> u32 {
        to_u32(self.buf.len())
    }
}

/// A length the block format stores in 32 bits; larger is a bug (blocks and
/// entries are bounded far below 4 GiB).
fn to_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or_else(|_| panic!("length {len} does not fit a block's u32"))
}
