//! A least-recently-used map with weighted entries, the core of both the
//! block cache and the table cache.
//!
//! Recency is a tick stamped on each entry and queued in `order`; a lookup
//! re-stamps its entry and queues the new tick, leaving the old queue slot
//! stale. Eviction pops the queue front and skips stale slots (whose tick no
//! longer matches the entry's). When stale slots outnumber live entries the
//! queue is rebuilt from the map in tick order, so every operation is O(1)
//! amortized apart from that O(n log n) rebuild, which happens at most once
//! per n touches.
//!
//! Keys are hashed with [`IntegerHasher`], not std's SipHash: the caches'
//! keys are the store's own file numbers and block offsets, not input
//! anyone chooses, so a few multiplies do where SipHash was a large part of
//! a cache lookup's cost (see `docs/decisions/0013-cache-integer-hasher.md`).
//!
//! Ownership: not thread-safe by itself; each cache shard wraps one in a
//! `std::sync::Mutex`.
//!
//! Invariants:
//! - `usage` is the sum of the charges of the entries in `map`.
//! - After `insert` returns, `usage <= capacity`.
//! - Every entry in `map` has exactly one queue slot carrying its current
//!   tick; the queue holds at most `2 * map.len() + QUEUE_SLACK` slots.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::sst::bloom::fmix64;

/// Stale queue slots tolerated on top of `2 * len` before a rebuild.
const QUEUE_SLACK: usize = 64;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    charge: usize,
    tick: u64,
}

/// A hasher for small integer keys (file numbers, `(file number, block
/// offset)` pairs): FxHash's rotate-xor-multiply step per word (with the
/// golden-ratio multiplier), and MurmurHash3's finalizer so that every bit
/// of the key reaches the bits `HashMap` picks buckets and tags with.
///
/// NOTE: not keyed, so not resistant to chosen collisions. The keys are
/// numbers the store assigns (file numbers) or reads from a table it
/// wrote and verified (block offsets); collisions would slow a cache, not
/// break it.
#[derive(Debug, Default, Clone, Copy)]
pub struct IntegerHasher {
    state: u64,
}

impl IntegerHasher {
    /// `2^64 / golden ratio`, rounded to odd (Fibonacci hashing's multiplier).
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
}

impl Hasher for IntegerHasher {
    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(Self::MULTIPLIER);
    }

    #[inline]
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    #[inline]
    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    /// Any other key: eight bytes at a time, the last word zero-padded.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (to, from) in word.iter_mut().zip(chunk) {
                *to = *from;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        fmix64(self.state)
    }
}

/// A weighted LRU map.
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, Slot<V>, BuildHasherDefault<IntegerHasher>>,
    /// (key, tick) oldest first; slots whose tick is not the entry's are stale.
    order: VecDeque<(K, u64)>,
    next_tick: u64,
    usage: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map holding entries whose charges sum to at most `capacity`.
    pub fn new(capacity: usize) -> Self {
        Lru {
            map: HashMap::default(),
            order: VecDeque::new(),
            next_tick: 0,
            usage: 0,
            capacity,
        }
    }

    /// The value at `key`, marked most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let tick = self.next_tick;
        let slot = self.map.get_mut(key)?;
        self.next_tick += 1;
        slot.tick = tick;
        self.order.push_back((key.clone(), tick));
        self.compact_if_stale();
        self.map.get(key).map(|slot| &slot.value)
    }

    /// Inserts (or replaces) `key`, most recently used, then evicts least
    /// recently used entries until the charges fit. Returns the values that
    /// left the map (replaced or evicted, or `value` itself if its charge
    /// alone exceeds the capacity), so the caller can drop them outside its
    /// lock.
    pub fn insert(&mut self, key: K, value: V, charge: usize) -> Vec<V> {
        let mut removed = Vec::new();
        if charge > self.capacity {
            removed.extend(self.remove(&key));
            removed.push(value);
            return removed;
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        self.order.push_back((key.clone(), tick));
        if let Some(old) = self.map.insert(key, Slot { value, charge, tick }) {
            self.usage -= old.charge;
            removed.push(old.value);
        }
        self.usage += charge;
        while self.usage > self.capacity {
            let Some((key, tick)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&key).is_some_and(|slot| slot.tick == tick)
                && let Some(slot) = self.map.remove(&key)
            {
                self.usage -= slot.charge;
                removed.push(slot.value);
            }
        }
        debug_assert!(self.usage <= self.capacity);
        self.compact_if_stale();
        removed
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.usage -= slot.charge;
        self.compact_if_stale();
        Some(slot.value)
    }

    /// Sum of the charges of the entries.
    pub fn usage(&self) -> usize {
        self.usage
    }

    /// The most the charges may sum to.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries in the map.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Rebuilds the queue from the map when stale slots pile up.
    fn compact_if_stale(&mut self) {
        if self.order.len() <= 2 * self.map.len() + QUEUE_SLACK {
            return;
        }
        let mut live: Vec<(u64, K)> = self
            .map
            .iter()
            .map(|(key, slot)| (slot.tick, key.clone()))
            .collect();
        live.sort_unstable_by_key(|(tick, _)| *tick);
        self.order = live.into_iter().map(|(tick, key)| (key, tick)).collect();
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn integer_hasher_separates_cache_keys() {
        let build = BuildHasherDefault::<IntegerHasher>::default();
        // Block keys of a few tables, offsets a block apart: no two collide,
        // and the low bits (bucket) and top bits (tag) both vary.
        let mut hashes: Vec<u64> = (1..=8u64)
            .flat_map(|file| (0..1000u64).map(move |block| (file, block * 4096)))
            .map(|key| build.hash_one(key))
            .collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xfff).collect();
        let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(low.len() > 3000, "{} distinct low 12 bits", low.len());
        assert_eq!(top.len(), 128);
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), 8000);
        // The order of the words matters, and bytes hash like words.
        assert_ne!(build.hash_one((1u64, 2u64)), build.hash_one((2u64, 1u64)));
        let mut words = IntegerHasher::default();
        words.write_u64(7);
        let mut bytes = IntegerHasher::default();
        bytes.write(&7u64.to_le_bytes());
        assert_eq!(words.finish(), bytes.finish());
    }

    #[test]
    fn block_keys_hit_and_miss_with_the_integer_hasher() {
        let mut lru = Lru::new(1 << 20);
        for file in 1..=20u64 {
            for block in 0..50u64 {
                lru.insert((file, block * 4133), file * 1000 + block, 1);
            }
        }
        for file in 1..=20u64 {
            for block in 0..50u64 {
                assert_eq!(lru.get(&(file, block * 4133)), Some(&(file * 1000 + block)));
                assert_eq!(lru.get(&(file, block * 4133 + 1)), None);
            }
        }
        assert_eq!(lru.get(&(21, 0)), None);
        assert_eq!(lru.len(), 1000);
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = Lru::new(3);
        for key in 0..3 {
            assert!(lru.insert(key, key * 10, 1).is_empty());
        }
        assert_eq!(lru.get(&0), Some(&0)); // 1 is now the oldest
        assert_eq!(lru.insert(3, 30, 1), vec![10]);
        assert_eq!(lru.get(&1), None);
        assert_eq!(lru.insert(4, 40, 2), vec![20, 0]);
        assert_eq!(lru.len(), 2);
        assert_eq!(lru.usage(), 3);
        // Replacing returns the old value and keeps the charge exact.
        assert_eq!(lru.insert(4, 41, 1), vec![40]);
        assert_eq!(lru.usage(), 2);
        // Too large to hold at all.
        assert_eq!(lru.insert(9, 90, 4), vec![90]);
        assert_eq!(lru.remove(&3), Some(30));
        assert_eq!(lru.usage(), 1);
        assert_eq!(lru.capacity(), 3);
    }

    #[test]
    fn queue_stays_bounded_under_many_touches() {
        let mut lru = Lru::new(100);
        for key in 0..100 {
            lru.insert(key, key, 1);
        }
        for round in 0..10_000 {
            assert!(lru.get(&(round % 100)).is_some());
            assert!(lru.order.len() <= 2 * lru.len() + QUEUE_SLACK + 1);
        }
        // Order survived the rebuilds: touching 0..50 makes 50..100 oldest.
        for key in 0..50 {
            lru.get(&key);
        }
        let evicted = lru.insert(1000, 1000, 50);
        let mut evicted_sorted = evicted.clone();
        evicted_sorted.sort_unstable();
        assert_eq!(evicted_sorted, (50..100).collect::<Vec<_>>());
        assert_eq!(evicted, (50..100).collect::<Vec<_>>());
    }

    #[test]
    fn matches_a_naive_model() {
        let mut lru = Lru::new(20);
        let mut model: Vec<(u32, usize)> = Vec::new(); // oldest first
        let mut state = 12345u64;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = ((state >> 33) % 30) as u32;
            let charge = ((state >> 20) % 5) as usize + 1;
            if state.is_multiple_of(3) {
                let hit = lru.get(&key).is_some();
                let position = model.iter().position(|(k, _)| *k == key);
                assert_eq!(hit, position.is_some());
                if let Some(position) = position {
                    let entry = model.remove(position);
                    model.push(entry);
                }
            } else {
                lru.insert(key, key, charge);
                model.retain(|(k, _)| *k != key);
                model.push((key, charge));
                while model.iter().map(|(_, c)| c).sum::<usize>() > 20 {
                    model.remove(0);
                }
            }
            assert_eq!(lru.len(), model.len());
            assert_eq!(lru.usage(), model.iter().map(|(_, c)| c).sum::<usize>());
        }
    }
}
