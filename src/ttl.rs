//! Time to live: the encoding of an expiring value and the expiry test.
//!
//! A write with a TTL (`Options::ttl`, `WriteOptions::ttl`) is stored as an
//! entry of kind `PutWithExpiry` whose stored value is
//!
//! ```text
//! stored_value := expiry_ms:u64le value:bytes
//! ```
//!
//! where `expiry_ms` is the write's time on the store's clock plus the TTL
//! (milliseconds since the Unix epoch, saturating). The entry reads as the
//! value while `now_ms < expiry_ms` and as a tombstone from `expiry_ms` on,
//! for every reader, snapshots included; compaction rewrites an expired
//! entry as a tombstone (or drops it where a tombstone may be dropped).
//!
//! NOTE: the expiry is absolute and written with the entry, so a per-write
//! TTL and the store's TTL share one encoding, and changing `Options::ttl`
//! at a reopen changes only later writes.
//!
//! Invariants:
//! - A stored value of kind `PutWithExpiry` is at least
//!   [`EXPIRY_SIZE_BYTES`] long (checked when read from disk; a shorter one
//!   is corruption).

use bytes::Bytes;

/// Bytes of the expiry prefix of a `PutWithExpiry` value.
pub const EXPIRY_SIZE_BYTES: usize = 8;

/// The expiry of `now_ms + ttl`, saturating.
pub fn expiry_ms(now_ms: u64, ttl: std::time::Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    now_ms.saturating_add(ttl_ms)
}

/// Splits a stored `PutWithExpiry` value into (expiry, value); `None` if
/// it is too short to hold the prefix.
pub fn split(stored: &Bytes) -> Option<(u64, Bytes)> {
    let prefix = stored.get(..EXPIRY_SIZE_BYTES)?;
    let expiry = u64::from_le_bytes(<[u8; EXPIRY_SIZE_BYTES]>::try_from(prefix).ok()?);
    Some((expiry, stored.slice(EXPIRY_SIZE_BYTES..)))
}

/// Builds a stored `PutWithExpiry` value.
pub fn encode(expiry_ms: u64, value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&expiry_ms.to_le_bytes());
    out.extend_from_slice(value);
}

/// True when an entry expiring at `expiry_ms` is expired at `now_ms`.
#[inline]
pub fn is_expired(expiry_ms: u64, now_ms: u64) -> bool {
    now_ms >= expiry_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_value_round_trips_and_expires_at_its_time() {
        let mut stored = Vec::new();
        encode(1_500, b"value", &mut stored);
        assert_eq!(stored.len(), EXPIRY_SIZE_BYTES + 5);
        let (expiry, value) = split(&Bytes::from(stored)).unwrap();
        assert_eq!((expiry, &value[..]), (1_500, &b"value"[..]));
        assert!(!is_expired(expiry, 1_499));
        assert!(is_expired(expiry, 1_500));
        assert!(split(&Bytes::from_static(b"short")).is_none());
        assert_eq!(
            expiry_ms(u64::MAX - 1, std::time::Duration::from_secs(1)),
            u64::MAX
        );
    }
}
