//! `WriteBatch`: several puts and deletes applied atomically.
//!
//! A batch is built directly in its on-disk form, the payload of one WAL
//! record (see `docs/format.md`):
//!
//! ```text
//! payload := count:u32le entry*count
//! entry   := kind:u8 key_len:varint32 key [value_len:varint32 value]   (value for every kind but Delete)
//! ```
//!
//! Kinds: 0 delete, 1 put, 2 merge operand, 3 put with expiry (the value is
//! `expiry_ms:u64le ++ value`, see `ttl.rs`), 4 range delete (the key is the
//! range's start, the value its excluded end, greater than the start).
//!
//! The seqno of entry `i` is the record's `first_seqno + i`.

use bytes::Bytes;

use crate::coding::{self, get_u32_le, get_varint32, put_varint32};
use crate::error::{Error, Result};
use crate::key::{UnknownKind, ValueKind};
use crate::limits::{MAX_BATCH_ENTRIES, MAX_BATCH_SIZE_BYTES, MAX_KEY_SIZE_BYTES, MAX_VALUE_SIZE_BYTES};
use crate::ttl::EXPIRY_SIZE_BYTES;

/// Bytes of the `count` field that opens a payload.
const COUNT_SIZE_BYTES: usize = 4;

/// An atomic group of writes: after a crash either all of them are in the
/// store or none is.
///
/// ```
/// let mut batch = ringdb::WriteBatch::new();
/// batch.put(b"a", b"1");
/// batch.delete(b"b");
/// assert_eq!(batch.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct WriteBatch {
    payload: Vec<u8>,
    count: u32,
    /// The first size limit a `put` or `delete` broke; `Db::write` returns it.
    too_large: Option<Error>,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::with_capacity(64)
    }

    /// An empty batch with room for `size_bytes` of encoded entries.
    pub fn with_capacity(size_bytes: usize) -> Self {
        let mut payload = Vec::with_capacity(COUNT_SIZE_BYTES + size_bytes);
        payload.extend_from_slice(&0u32.to_le_bytes());
        WriteBatch {
            payload,
            count: 0,
            too_large: None,
        }
    }

    /// Adds a put of `value` at `key`. Limits: keys up to
    /// [`MAX_KEY_SIZE_BYTES`], values up to [`MAX_VALUE_SIZE_BYTES`], batches up
    /// to [`MAX_BATCH_SIZE_BYTES`] encoded; a larger one makes `Db::write`
    /// return [`Error::TooLarge`].
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        self.push(ValueKind::Put, key.as_ref(), Some(value.as_ref()));
        self
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.push(ValueKind::Delete, key.as_ref(), None);
        self
    }

    /// Adds a delete of every key in `start..end` (`end` excluded): one
    /// range tombstone, atomic with the rest of the batch. An empty range
    /// (`start >= end`) adds nothing, as in RocksDB.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> &mut Self {
        let (start, end) = (start.as_ref(), end.as_ref());
        if start < end {
            if end.len() > MAX_KEY_SIZE_BYTES && self.too_large.is_none() {
                self.too_large = Some(too_large("key", end.len(), MAX_KEY_SIZE_BYTES));
            }
            self.push(ValueKind::RangeDelete, start, Some(end));
        }
        self
    }

    /// Adds a merge `operand` for `key`: reads fold it onto the older
    /// value with the store's `Options::merge_operator` (see
    /// [`crate::merge`]). Limits as for [`WriteBatch::put`].
    pub fn merge(&mut self, key: impl AsRef<[u8]>, operand: impl AsRef<[u8]>) -> &mut Self {
        self.push(ValueKind::Merge, key.as_ref(), Some(operand.as_ref()));
        self
    }

    /// The same batch with every put turned into a put that expires at
    /// `expiry_ms` on the store's clock (TTL, see `ttl.rs`); other entries
    /// are unchanged. A batch that broke a limit stays as it is.
    pub(crate) fn with_expiry(self, expiry_ms: u64) -> WriteBatch {
        if self.too_large.is_some() || self.count == 0 {
            return self;
        }
        let payload = Bytes::from(self.payload);
        let Ok(entries) = decode_payload(&payload) else {
            unreachable!("a batch built by WriteBatch decodes");
        };
        let mut out = WriteBatch::with_capacity(payload.len() + entries.len() * EXPIRY_SIZE_BYTES);
        let mut stored = Vec::new();
        for entry in entries {
            match entry.kind {
                ValueKind::Put => {
                    stored.clear();
                    crate::ttl::encode(expiry_ms, &entry.value, &mut stored);
                    out.push(ValueKind::PutWithExpiry, &entry.key, Some(&stored));
                }
                ValueKind::Delete => out.push(entry.kind, &entry.key, None),
                kind => out.push(kind, &entry.key, Some(&entry.value)),
            }
        }
        out
    }

    /// Number of writes in the batch (a range delete counts one).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the batch holds no writes.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size, in bytes.
    pub fn size_bytes(&self) -> usize {
        self.payload.len()
    }

    /// Removes every write.
    pub fn clear(&mut self) {
        self.payload.clear();
        self.payload.extend_from_slice(&0u32.to_le_bytes());
        self.count = 0;
        self.too_large = None;
    }

    pub(crate) fn push(&mut self, kind: ValueKind, key: &[u8], value: Option<&[u8]>) {
        if self.too_large.is_some() {
            return;
        }
        if key.len() > MAX_KEY_SIZE_BYTES {
            self.too_large = Some(too_large("key", key.len(), MAX_KEY_SIZE_BYTES));
            return;
        }
        let value_len = value.map_or(0, <[u8]>::len);
        if value_len > max_stored_value_bytes(kind) {
            self.too_large = Some(too_large("value", value_len, MAX_VALUE_SIZE_BYTES));
            return;
        }
        let entry_max_bytes = 1 + 5 + key.len() + 5 + value_len;
        if self.payload.len() + entry_max_bytes > MAX_BATCH_SIZE_BYTES {
            let size = self.payload.len() + entry_max_bytes;
            self.too_large = Some(too_large("batch", size, MAX_BATCH_SIZE_BYTES));
            return;
        }
        if self.count as usize >= MAX_BATCH_ENTRIES {
            let size = self.count as usize + 1;
            self.too_large = Some(too_large(Error::ENTRY_COUNT, size, MAX_BATCH_ENTRIES));
            return;
        }
        // NOTE: the length checks above bound both lengths far below u32::MAX.
        self.payload.push(kind as u8);
        put_varint32(&mut self.payload, key.len() as u32);
        self.payload.extend_from_slice(key);
        if let Some(value) = value {
            put_varint32(&mut self.payload, value.len() as u32);
            self.payload.extend_from_slice(value);
        }
        self.count += 1;
        if let Some(count_field) = self.payload.get_mut(..COUNT_SIZE_BYTES) {
            count_field.copy_from_slice(&self.count.to_le_bytes());
        }
    }

    /// The encoded payload, or the size limit the batch broke.
    pub(crate) fn into_payload(self) -> Result<(Bytes, u32)> {
        match self.too_large {
            Some(error) => Err(error),
            None => Ok((Bytes::from(self.payload), self.count)),
        }
    }
}

/// Most bytes the stored value of an entry of `kind` may hold: a user
/// value of [`MAX_VALUE_SIZE_BYTES`], plus the expiry prefix for an
/// expiring put.
pub(crate) fn max_stored_value_bytes(kind: ValueKind) -> usize {
    match kind {
        ValueKind::PutWithExpiry => MAX_VALUE_SIZE_BYTES + EXPIRY_SIZE_BYTES,
        _ => MAX_VALUE_SIZE_BYTES,
    }
}

fn too_large(what: &'static str, size_bytes: usize, limit_bytes: usize) -> Error {
    Error::TooLarge {
        what,
        size_bytes,
        limit_bytes,
    }
}

/// One decoded entry of a payload; key and value share the payload's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchEntry {
    pub kind: ValueKind,
    pub key: Bytes,
    pub value: Bytes,
}

/// Decodes a payload read from disk (or built by [`WriteBatch`]).
///
/// Returns a description of the first defect on bad input; the caller names
/// the file and offset.
pub(crate) fn decode_payload(payload: &Bytes) -> std::result::Result<Vec<BatchEntry>, String> {
    let count = get_u32_le(payload, 0).ok_or("payload shorter than its count")? as usize;
    if count == 0 || count > MAX_BATCH_ENTRIES {
        return Err(format!("batch entry count {count} out of range"));
    }
    // NOTE: each entry takes at least 2 bytes, which bounds the allocation by
    // the payload's real size, not by the count read from disk.
    let mut entries = Vec::with_capacity(count.min(payload.len() / 2));
    let mut pos = COUNT_SIZE_BYTES;
    let field = |pos: &mut usize, what: &str| -> std::result::Result<Bytes, String> {
        let rest =
            coding::rest(payload, *pos, "entry field").map_err(|_| format!("{what} length past the end"))?;
        let (len, used) = get_varint32(rest).ok_or_else(|| format!("bad {what} length"))?;
        let start = *pos + used;
        let field = coding::slice(payload, start, len as usize, "entry field")
            .map_err(|_| format!("{what} of {len} bytes runs past the payload"))?;
        *pos = start + field.len();
        Ok(payload.slice_ref(field))
    };
    for _ in 0..count {
        let kind_byte = *payload.get(pos).ok_or("entry past the end of the payload")?;
        let kind =
            ValueKind::decode(kind_byte).map_err(|UnknownKind(byte)| format!("bad entry kind {byte}"))?;
        pos += 1;
        let key = field(&mut pos, "key")?;
        if key.len() > MAX_KEY_SIZE_BYTES {
            return Err(format!("key of {} bytes exceeds the limit", key.len()));
        }
        let value = match kind.has_value() {
            true => field(&mut pos, "value")?,
            false => Bytes::new(),
        };
        if kind == ValueKind::PutWithExpiry && value.len() < EXPIRY_SIZE_BYTES {
            return Err(format!("expiring value of {} bytes has no expiry", value.len()));
        }
        if kind == ValueKind::RangeDelete && (value.len() > MAX_KEY_SIZE_BYTES || value <= key) {
            return Err("range delete whose end is not a key after its start".to_owned());
        }
        entries.push(BatchEntry { kind, key, value });
    }
    if pos != payload.len() {
        return Err(format!(
            "{} trailing bytes after {count} entries",
            payload.len() - pos
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let mut batch = WriteBatch::new();
        batch.put(b"k1", b"v1").delete(b"k2").put(b"", b"");
        let (payload, count) = batch.into_payload().unwrap();
        assert_eq!(count, 3);
        let entries = decode_payload(&payload).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0],
            BatchEntry {
                kind: ValueKind::Put,
                key: "k1".into(),
                value: "v1".into()
            }
        );
        assert_eq!(entries[1].kind, ValueKind::Delete);
        assert_eq!(&entries[1].key[..], b"k2");
        assert_eq!(&entries[2].key[..], b"");
    }

    #[test]
    fn merges_and_expiring_puts_round_trip() {
        let mut batch = WriteBatch::new();
        batch.put(b"p", b"v").merge(b"m", b"op").delete(b"d");
        let batch = batch.with_expiry(1234);
        let (payload, count) = batch.into_payload().unwrap();
        assert_eq!(count, 3);
        let entries = decode_payload(&payload).unwrap();
        assert_eq!(entries[0].kind, ValueKind::PutWithExpiry);
        assert_eq!(
            crate::ttl::split(&entries[0].value).unwrap(),
            (1234, Bytes::from("v"))
        );
        assert_eq!(
            (entries[1].kind, &entries[1].value[..]),
            (ValueKind::Merge, &b"op"[..])
        );
        assert_eq!(entries[2].kind, ValueKind::Delete);
        // An expiring value shorter than its prefix is rejected.
        let mut bad = WriteBatch::new();
        bad.push(ValueKind::PutWithExpiry, b"k", Some(b"1234567"));
        let (payload, _) = bad.into_payload().unwrap();
        assert!(decode_payload(&payload).unwrap_err().contains("no expiry"));
    }

    #[test]
    fn range_deletes_round_trip_and_bad_ones_are_rejected() {
        let mut batch = WriteBatch::new();
        batch
            .delete_range(b"a", b"c")
            .delete_range(b"z", b"b")
            .put(b"k", b"v");
        // The empty range `z..b` adds nothing.
        assert_eq!(batch.len(), 2);
        let (payload, _) = batch.clone().into_payload().unwrap();
        let entries = decode_payload(&payload).unwrap();
        assert_eq!(entries[0].kind, ValueKind::RangeDelete);
        assert_eq!(
            (&entries[0].key[..], &entries[0].value[..]),
            (&b"a"[..], &b"c"[..])
        );
        // TTL leaves a range delete as it is.
        let (payload, _) = batch.with_expiry(5).into_payload().unwrap();
        assert_eq!(decode_payload(&payload).unwrap()[0].kind, ValueKind::RangeDelete);
        // An end at or before the start, written by hand, is corruption.
        for (start, end) in [(&b"b"[..], &b"b"[..]), (b"c", b"a")] {
            let mut bad = WriteBatch::new();
            bad.push(ValueKind::RangeDelete, start, Some(end));
            let (payload, _) = bad.into_payload().unwrap();
            assert!(decode_payload(&payload).unwrap_err().contains("range delete"));
        }
        let mut long = WriteBatch::new();
        long.delete_range(b"a", vec![b'b'; MAX_KEY_SIZE_BYTES + 1]);
        assert!(matches!(
            long.into_payload(),
            Err(Error::TooLarge { what: "key", .. })
        ));
    }

    #[test]
    fn oversized_key_and_value_are_errors() {
        let mut batch = WriteBatch::new();
        batch.put(vec![0u8; MAX_KEY_SIZE_BYTES + 1], b"v");
        assert!(matches!(
            batch.into_payload(),
            Err(Error::TooLarge { what: "key", .. })
        ));
        let mut batch = WriteBatch::new();
        batch.put(b"k", vec![0u8; MAX_VALUE_SIZE_BYTES + 1]);
        assert!(matches!(
            batch.into_payload(),
            Err(Error::TooLarge { what: "value", .. })
        ));
        let mut batch = WriteBatch::new();
        batch.put(vec![0u8; MAX_KEY_SIZE_BYTES], vec![0u8; MAX_VALUE_SIZE_BYTES]);
        assert!(batch.into_payload().is_ok());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_or_decodes_within_bounds() {
        let mut batch = WriteBatch::new();
        batch
            .put(b"key", b"value")
            .delete(b"gone")
            .merge(b"m", b"operand")
            .put(b"k2", vec![7u8; 200]);
        let batch = batch.with_expiry(99);
        let (payload, _) = batch.into_payload().unwrap();
        for cut in 0..payload.len() {
            assert!(decode_payload(&payload.slice(..cut)).is_err(), "cut at {cut}");
        }
        for byte in 0..payload.len() {
            for bit in 0..8 {
                let mut bad = payload.to_vec();
                bad[byte] ^= 1 << bit;
                // Must not panic; whatever decodes stays inside the buffer.
                if let Ok(entries) = decode_payload(&Bytes::from(bad.clone())) {
                    let total: usize = entries.iter().map(|e| e.key.len() + e.value.len()).sum();
                    assert!(total <= bad.len());
                }
            }
        }
    }
}
