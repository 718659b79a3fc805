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
//! Ownership: not thread-safe by itself; each cache shard wraps one in a
//! `std::sync::Mutex`.
//!
//! Invariants:
//! - `usage` is the sum of the charges of the entries in `map`.
//! - After `insert` returns, `usage <= capacity`.
//! - Every entry in `map` has exactly one queue slot carrying its current
//!   tick; the queue holds at most `2 * map.len() + QUEUE_SLACK` slots.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Stale queue slots tolerated on top of `2 * len` before a rebuild.
const QUEUE_SLACK: usize = 64;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    charge: usize,
    tick: u64,
}

/// A weighted LRU map.
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, Slot<V>>,
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
            map: HashMap::new(),
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
            if self.map.get(&key).is_some_and(|slot| slot.tick == tick) {
                if let Some(slot) = self.map.remove(&key) {
                    self.usage -= slot.charge;
                    removed.push(slot.value);
                }
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
    use super::*;

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
            if state % 3 == 0 {
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
