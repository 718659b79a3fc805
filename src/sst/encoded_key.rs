//! Internal keys as bytes, the form they take inside tables.
//!
//! ```text
//! encoded_key := user_key:bytes trailer:u64 LE      trailer = seqno << 8 | kind
//! ```
//!
//! Encoded keys are compared by [`compare`] (user key ascending, trailer
//! descending), never bytewise: the little-endian trailer does not sort as
//! bytes.
//!
//! Ownership: pure functions; no state.
//!
//! Invariants:
//! - An encoded key is at least [`TRAILER_SIZE_BYTES`] long; [`split`]
//!   returns `None` for anything shorter, and readers turn that into
//!   corruption before a key reaches [`compare`].
//! - `compare(encode(a), encode(b)) == a.cmp(&b)` for every pair of
//!   `InternalKey`s.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::coding::get_u64_le;
pub use crate::key::TRAILER_SIZE_BYTES;
use crate::key::{InternalKey, SeqNo, Trailer};

/// Appends `key` in its encoded form to `dst`.
pub fn encode_into(key: &InternalKey, dst: &mut Vec<u8>) {
    dst.extend_from_slice(&key.user_key);
    dst.extend_from_slice(&key.trailer.to_le_bytes());
}

/// `key` in its encoded form.
pub fn encode(key: &InternalKey) -> Vec<u8> {
    let mut dst = Vec::with_capacity(key.user_key.len() + TRAILER_SIZE_BYTES);
    encode_into(key, &mut dst);
    dst
}

/// The encoded form of `InternalKey::seek_key(user_key, snapshot)`, built
/// without copying `user_key` into a `Bytes` first.
pub fn encode_seek_key(user_key: &[u8], snapshot: SeqNo) -> Vec<u8> {
    let mut dst = Vec::with_capacity(user_key.len() + TRAILER_SIZE_BYTES);
    dst.extend_from_slice(user_key);
    dst.extend_from_slice(&Trailer::seek(snapshot).raw().to_le_bytes());
    dst
}

/// Splits an encoded key into user key and trailer; `None` if it is
/// shorter than the trailer.
#[inline]
pub fn split(encoded: &[u8]) -> Option<(&[u8], u64)> {
    let user_len = encoded.len().checked_sub(TRAILER_SIZE_BYTES)?;
    let (user_key, _) = encoded.split_at_checked(user_len)?;
    Some((user_key, get_u64_le(encoded, user_len)?))
}

/// The user key of an encoded key (all of it if it is too short to hold a
/// trailer, which readers have already rejected).
pub fn user_key(encoded: &[u8]) -> &[u8] {
    split(encoded).map_or(encoded, |(user_key, _)| user_key)
}

/// Decodes an encoded key whose kind byte is valid.
pub fn decode(encoded: &[u8]) -> Option<InternalKey> {
    let (user_key, trailer) = split(encoded)?;
    Trailer::from_raw(trailer).kind().ok()?;
    Some(InternalKey {
        user_key: Bytes::copy_from_slice(user_key),
        trailer,
    })
}

/// True when `encoded` is long enough and its kind byte names a
/// `ValueKind`: the check every key read from a block passes.
pub fn is_valid(encoded: &[u8]) -> bool {
    valid_trailer(encoded).is_some()
}

/// The trailer of `encoded` if it [`is_valid`].
#[inline]
pub fn valid_trailer(encoded: &[u8]) -> Option<u64> {
    let (_, trailer) = split(encoded)?;
    Trailer::from_raw(trailer).kind().ok().map(|_| trailer)
}

/// Internal-key order of two encoded keys: user key ascending, then
/// trailer (seqno, then kind) descending.
///
/// Keys too short to hold a trailer (which readers reject before comparing)
/// fall back to bytewise order rather than panic.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    match (split(a), split(b)) {
        (Some((a_user, a_trailer)), Some((b_user, b_trailer))) => {
            a_user.cmp(b_user).then_with(|| b_trailer.cmp(&a_trailer))
        }
        _ => {
            debug_assert!(false, "comparing a key shorter than its trailer");
            a.cmp(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{MAX_SEQNO, ValueKind};

    fn key(user_key: &'static [u8], seqno: SeqNo, kind: ValueKind) -> InternalKey {
        InternalKey::new(Bytes::from_static(user_key), seqno, kind)
    }

    #[test]
    fn encoded_order_matches_internal_key_order() {
        let keys = [
            key(b"", 0, ValueKind::Delete),
            key(b"", 7, ValueKind::Put),
            key(b"a", 1, ValueKind::Put),
            key(b"a", 1, ValueKind::Delete),
            key(b"a", 300, ValueKind::Put),
            key(b"ab", 2, ValueKind::Put),
            key(b"b", 0, ValueKind::Put),
            InternalKey::seek_key(Bytes::from_static(b"a"), 5),
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(compare(&encode(a), &encode(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn seek_key_encoding_matches_internal_key() {
        for snapshot in [0, 1, 77, MAX_SEQNO, SeqNo::MAX] {
            let seek = InternalKey::seek_key(Bytes::from_static(b"user"), snapshot);
            assert_eq!(encode_seek_key(b"user", snapshot), encode(&seek));
        }
    }

    #[test]
    fn decode_round_trips_and_rejects_bad_bytes() {
        let k = key(b"user", 42, ValueKind::Delete);
        let encoded = encode(&k);
        assert_eq!(decode(&encoded), Some(k.clone()));
        assert_eq!(split(&encoded), Some((&b"user"[..], k.trailer)));
        assert_eq!(user_key(&encoded), b"user");
        assert!(is_valid(&encoded));
        assert_eq!(split(&encoded[..7]), None);
        assert_eq!(decode(&[0u8; 7]), None);
        // Kind byte 0xff (a seek key) is not a stored kind.
        let seek = encode(&InternalKey::seek_key(Bytes::from_static(b"x"), 1));
        assert!(!is_valid(&seek));
        assert_eq!(decode(&seek), None);
    }
}
