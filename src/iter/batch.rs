//! A batch of user entries read ahead by a scan: the keys copied end to end
//! into one buffer, the values shared with their blocks.
//!
//! NOTE: one buffer for all keys of a batch, frozen once, instead of one
//! allocation per key: a batch's keys outlive it, and hundreds of small
//! allocations that outlive their batch would all miss the allocator's
//! thread cache. The cost: a key the caller keeps holds the batch's key
//! buffer alive, as a value holds its block.
//!
//! Ownership: a `Batch` is filled by one `DbIter` and then turned into
//! [`BatchEntries`], which the scan hands out entry by entry.
//!
//! Invariants:
//! - `entries` hold, in order, the end of each key in `keys`: they never
//!   decrease and the last is `keys.len()`.

use bytes::Bytes;

use crate::limits::MAX_KEYS_RESERVED_BYTES;

/// Entries appended by [`super::DbIter::next_batch`].
#[derive(Debug, Default)]
pub struct Batch {
    /// The keys, end to end.
    keys: Vec<u8>,
    /// Per entry, where its key ends in `keys`, and its value.
    entries: Vec<(usize, Bytes)>,
    /// Bytes of the values.
    value_bytes: usize,
}

impl Batch {
    /// An empty batch with room for `entries` entries.
    pub fn with_capacity(entries: usize) -> Self {
        Batch {
            keys: Vec::new(),
            entries: Vec::with_capacity(entries),
            value_bytes: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True with no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the keys and values.
    pub fn size_bytes(&self) -> usize {
        self.keys.len() + self.value_bytes
    }

    /// Appends an entry, copying `key`.
    #[inline]
    pub fn push(&mut self, key: &[u8], value: Bytes) {
        if self.keys.is_empty() {
            // Room for as many keys as the batch has room for entries, if
            // they are about as long as the first: one allocation instead
            // of a dozen doublings.
            let guess = self.entries.capacity().saturating_mul(key.len());
            self.keys.reserve(guess.min(MAX_KEYS_RESERVED_BYTES));
        }
        self.keys.extend_from_slice(key);
        self.value_bytes += value.len();
        self.entries.push((self.keys.len(), value));
    }

    /// The entries, in order, as owned `(key, value)` pairs.
    pub fn into_entries(self) -> BatchEntries {
        BatchEntries {
            keys: Bytes::from(self.keys),
            key_start: 0,
            entries: self.entries.into_iter(),
        }
    }
}

/// The entries of a [`Batch`], each key a slice of the batch's key buffer.
#[derive(Debug, Default)]
pub struct BatchEntries {
    keys: Bytes,
    /// Where the next entry's key starts in `keys`.
    key_start: usize,
    entries: std::vec::IntoIter<(usize, Bytes)>,
}

impl Iterator for BatchEntries {
    type Item = (Bytes, Bytes);

    #[inline]
    fn next(&mut self) -> Option<(Bytes, Bytes)> {
        let (key_end, value) = self.entries.next()?;
        let key = self.keys.slice(self.key_start..key_end);
        self.key_start = key_end;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_whole_and_in_order() {
        let mut batch = Batch::with_capacity(4);
        assert!(batch.is_empty());
        let entries: Vec<(Bytes, Bytes)> = (0..300_usize)
            .map(|i| (Bytes::from(vec![i as u8; i % 7]), Bytes::from(format!("v{i}"))))
            .collect();
        for (key, value) in &entries {
            batch.push(key, value.clone());
        }
        assert_eq!(batch.len(), entries.len());
        let size: usize = entries.iter().map(|(key, value)| key.len() + value.len()).sum();
        assert_eq!(batch.size_bytes(), size);
        let got: Vec<(Bytes, Bytes)> = batch.into_entries().collect();
        assert_eq!(got, entries);
        assert_eq!(Batch::default().into_entries().next(), None);
    }
}
