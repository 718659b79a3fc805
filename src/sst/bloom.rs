//! The per-table bloom filter over user keys.
//!
//! ```text
//! filter_block := bits:bytes[m / 8] probes:u8       (m = bit count, a multiple of 8)
//!              |  (empty)                            no filter: every key may be present
//! bit i (0 <= i < m) is  bits[i / 8] & (1 << (i % 8))
//!
//! h      = fmix64( fnv1a64(user_key) )
//!   fnv1a64: h = 0xcbf29ce484222325; for each byte b: h = (h ^ b) * 0x100000001b3 (mod 2^64)
//!   fmix64:  h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33;
//!            h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33            (MurmurHash3's finalizer)
//! h1     = h & 0xffffffff,  h2 = h >> 32
//! probe j (0 <= j < probes) sets / tests bit (h1 + j * h2) mod m   (computed in u64, no overflow)
//! ```
//!
//! The builder sizes the filter at `max(n * bits_per_key, MIN_BLOOM_BITS)`
//! bits rounded up to a byte, for `n` distinct user keys, with
//! `probes = clamp(round(bits_per_key * ln 2), 1, MAX_BLOOM_PROBES)`.
//!
//! Ownership: a [`BloomBuilder`] belongs to one table builder; a
//! [`BloomFilter`] is immutable and lives inside its `Table`.
//!
//! Invariants:
//! - No false negatives: every key added to the builder tests positive.
//! - A decoded filter has `1 <= probes <= MAX_BLOOM_PROBES` and at least
//!   one byte of bits, or is the empty "no filter".
//! - The block is checksummed like every block, so a flipped bit, which
//!   could hide a present key, is corruption at open instead.

use bytes::Bytes;

use crate::sst::{MAX_BLOOM_PROBES, MIN_BLOOM_BITS};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The filter's 64-bit hash of a user key (FNV-1a, then MurmurHash3's
/// 64-bit finalizer for avalanche).
pub fn bloom_hash(user_key: &[u8]) -> u64 {
    let mut h = FNV_OFFSET_BASIS;
    for &byte in user_key {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h)
}

/// MurmurHash3's 64-bit finalizer.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Probes per key for `bits_per_key`: `round(bits_per_key * ln 2)`, at least
/// 1, at most [`MAX_BLOOM_PROBES`].
pub fn probe_count(bits_per_key: u32) -> u8 {
    let probes = (f64::from(bits_per_key) * std::f64::consts::LN_2).round();
    (probes as u8).clamp(1, MAX_BLOOM_PROBES)
}

/// The bit positions of key hash `hash` in a filter of `bit_count` bits.
fn probe_positions(hash: u64, bit_count: u64, probes: u8) -> impl Iterator<Item = u64> {
    let h1 = hash & 0xffff_ffff;
    let h2 = hash >> 32;
    (0..u64::from(probes)).map(move |j| (h1 + j * h2) % bit_count)
}

/// Collects the hashes of a table's distinct user keys and encodes the
/// filter block.
#[derive(Debug)]
pub struct BloomBuilder {
    bits_per_key: u32,
    hashes: Vec<u64>,
}

impl BloomBuilder {
    /// A builder for `bits_per_key` bits per key; 0 builds the empty "no
    /// filter" block.
    pub fn new(bits_per_key: u32) -> Self {
        BloomBuilder {
            bits_per_key,
            hashes: Vec::new(),
        }
    }

    /// Adds a user key. The caller adds each distinct user key once
    /// (duplicates only cost bits).
    pub fn add(&mut self, user_key: &[u8]) {
        if self.bits_per_key > 0 {
            self.hashes.push(bloom_hash(user_key));
        }
    }

    /// Keys added.
    pub fn key_count(&self) -> usize {
        self.hashes.len()
    }

    /// The filter block's bytes.
    pub fn finish(&self) -> Vec<u8> {
        if self.bits_per_key == 0 {
            return Vec::new();
        }
        let wanted = (self.hashes.len() as u64).saturating_mul(u64::from(self.bits_per_key));
        let byte_count = wanted.max(MIN_BLOOM_BITS).div_ceil(8);
        let bit_count = byte_count * 8;
        let probes = probe_count(self.bits_per_key);
        let mut out = vec![0u8; usize::try_from(byte_count).unwrap_or(usize::MAX)];
        for &hash in &self.hashes {
            for position in probe_positions(hash, bit_count, probes) {
                if let Some(byte) = out.get_mut((position / 8) as usize) {
                    *byte |= 1 << (position % 8);
                }
            }
        }
        out.push(probes);
        out
    }
}

/// A decoded filter.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    /// The bit array (without the probe byte); empty for "no filter".
    bits: Bytes,
    bit_count: u64,
    probes: u8,
}

impl BloomFilter {
    /// Decodes a filter block (already checksum-verified).
    pub fn decode(block: Bytes) -> Result<BloomFilter, String> {
        let Some((&probes, _)) = block.split_last() else {
            return Ok(BloomFilter {
                bits: Bytes::new(),
                bit_count: 0,
                probes: 0,
            });
        };
        let byte_count = block.len() - 1;
        if byte_count == 0 {
            return Err("filter block has a probe count but no bits".to_owned());
        }
        if probes == 0 || probes > MAX_BLOOM_PROBES {
            return Err(format!(
                "filter probe count {probes} outside 1..={MAX_BLOOM_PROBES}"
            ));
        }
        Ok(BloomFilter {
            bits: block.slice(..byte_count),
            bit_count: byte_count as u64 * 8,
            probes,
        })
    }

    /// False only if `user_key` was certainly not added.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(bloom_hash(user_key))
    }

    /// [`BloomFilter::may_contain`] for a precomputed [`bloom_hash`].
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        if self.bit_count == 0 {
            return true;
        }
        probe_positions(hash, self.bit_count, self.probes).all(|position| {
            self.bits
                .get((position / 8) as usize)
                .is_some_and(|byte| byte & (1 << (position % 8)) != 0)
        })
    }

    /// Bytes of the bit array.
    pub fn size_bytes(&self) -> usize {
        self.bits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sst::DEFAULT_BLOOM_BITS_PER_KEY;

    fn filter(keys: impl Iterator<Item = Vec<u8>>, bits_per_key: u32) -> BloomFilter {
        let mut builder = BloomBuilder::new(bits_per_key);
        for key in keys {
            builder.add(&key);
        }
        BloomFilter::decode(Bytes::from(builder.finish())).unwrap()
    }

    #[test]
    fn hash_is_the_documented_one() {
        // FNV-1a 64 of "" is the offset basis; of "a" it is 0xaf63dc4c8601ec8c.
        assert_eq!(bloom_hash(b""), fmix64(FNV_OFFSET_BASIS));
        assert_eq!(bloom_hash(b"a"), fmix64(0xaf63_dc4c_8601_ec8c));
        assert_eq!(probe_count(10), 7);
        assert_eq!(probe_count(1), 1);
        assert_eq!(probe_count(0), 1);
        assert_eq!(probe_count(1000), MAX_BLOOM_PROBES);
    }

    #[test]
    fn no_false_negatives_and_false_positive_rate_near_theory() {
        let n = 100_000u64;
        for bits_per_key in [DEFAULT_BLOOM_BITS_PER_KEY, 5, 16] {
            let bloom = filter((0..n).map(|i| format!("user-key-{i}").into_bytes()), bits_per_key);
            for i in 0..n {
                assert!(bloom.may_contain(format!("user-key-{i}").as_bytes()));
            }
            let absent = 100_000u64;
            let false_positives = (0..absent)
                .filter(|i| bloom.may_contain(format!("absent-key-{i}").as_bytes()))
                .count();
            let rate = false_positives as f64 / absent as f64;
            let k = f64::from(probe_count(bits_per_key));
            let m = bloom.bit_count as f64;
            let theory = (1.0 - (-k * n as f64 / m).exp()).powf(k);
            assert!(
                rate <= 2.0 * theory && rate >= theory / 2.0,
                "bits/key {bits_per_key}: rate {rate} vs theory {theory}"
            );
        }
    }

    #[test]
    fn tiny_and_empty_filters() {
        let bloom = filter(std::iter::once(b"only".to_vec()), 10);
        assert!(bloom.may_contain(b"only"));
        assert_eq!(bloom.size_bytes() as u64 * 8, MIN_BLOOM_BITS);
        let none = filter(std::iter::once(b"x".to_vec()), 0);
        assert!(none.may_contain(b"anything"));
        assert_eq!(none.size_bytes(), 0);
    }

    #[test]
    fn bad_filter_blocks_are_rejected() {
        assert!(BloomFilter::decode(Bytes::from_static(&[7])).is_err());
        assert!(BloomFilter::decode(Bytes::from_static(&[0xff, 0])).is_err());
        assert!(BloomFilter::decode(Bytes::from_static(&[0xff, 31])).is_err());
        assert!(BloomFilter::decode(Bytes::from_static(&[0xff, 30])).is_ok());
    }
}
