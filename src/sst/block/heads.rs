//! Restart heads: a block's restart keys reduced to one `u64` each, so a
//! seek's binary search reads one small, contiguous array instead of
//! following a restart offset to a key at every step (two dependent cache
//! misses a step in a large index block).
//!
//! A head is the 8 user-key bytes after the prefix that every restart key
//! shares, big-endian and zero-padded. Heads never decrease along the
//! block, so they split the restarts into those certainly before a target,
//! a run whose head equals the target's, and those certainly after it;
//! only the equal run is searched with whole keys.
//!
//! Ownership: built once by [`super::Block::with_restart_heads`] and shared
//! by every clone of that block.
//!
//! Invariants:
//! - `heads.len()` is the block's restart count (0 for a block with no
//!   entries).
//! - Every restart key's user key starts with `prefix`.
//! - In a block whose keys are in order, `heads` never decreases; in a
//!   damaged block out of order, a seek may land anywhere (as the plain
//!   binary search would), never outside the block.

use std::ops::Range;

/// The restart keys of one block as fixed-width integers.
#[derive(Debug)]
pub(crate) struct RestartHeads {
    /// User-key bytes that every restart key starts with.
    prefix: Box<[u8]>,
    /// For restart `i`, the head of its user key.
    heads: Box<[u64]>,
    /// Every `GROUP`th head, `heads[GROUP * i]`: small enough to stay in
    /// the CPU's cache, so a search misses on one group of `heads` only.
    firsts: Box<[u64]>,
}

/// Heads per group: 8 heads fill one 64-byte cache line.
const GROUP: usize = 8;

impl RestartHeads {
    /// The heads of `user_keys`, the restart keys' user keys in order.
    pub fn new(user_keys: &[&[u8]]) -> RestartHeads {
        let first: &[u8] = user_keys.first().copied().unwrap_or_default();
        let prefix_len = user_keys
            .iter()
            .map(|key| common_prefix_len(first, key))
            .min()
            .unwrap_or(0);
        let prefix: Box<[u8]> = first.get(..prefix_len).unwrap_or_default().into();
        let heads: Box<[u64]> = user_keys.iter().map(|key| head(key, prefix_len)).collect();
        let firsts = heads.iter().step_by(GROUP).copied().collect();
        RestartHeads {
            prefix,
            heads,
            firsts,
        }
    }

    /// The restarts whose whole keys must decide where the user key
    /// `user_key` falls: those before the span certainly sort before it,
    /// those after certainly after it.
    pub fn span(&self, user_key: &[u8]) -> Range<usize> {
        let count = self.heads.len();
        // A user key that is a proper prefix of `prefix` compares Less, and
        // sorts before every restart key.
        let key_start = user_key.get(..self.prefix.len()).unwrap_or(user_key);
        match key_start.cmp(&self.prefix) {
            std::cmp::Ordering::Less => return 0..0,
            std::cmp::Ordering::Greater => return count..count,
            std::cmp::Ordering::Equal => {}
        }
        let target = head(user_key, self.prefix.len());
        // The first head at or after `target` is in the group before the
        // first group that starts at or after it.
        let start = match self.firsts.partition_point(|&h| h < target) {
            0 => 0,
            groups => {
                let group_start = GROUP * (groups - 1);
                let group = self.heads.get(group_start..).unwrap_or_default();
                let group = group.get(..GROUP).unwrap_or(group);
                group_start + group.partition_point(|&h| h < target)
            }
        };
        // Ties are few where keys differ early: look at one group's worth
        // before searching the rest, which would miss on lines far away.
        let rest = self.heads.get(start..).unwrap_or_default();
        let near = rest.iter().take(GROUP).take_while(|&&h| h == target).count();
        let ties = match near {
            GROUP => rest.partition_point(|&h| h == target),
            near => near,
        };
        start..start + ties
    }
}

/// Bytes `prefix_len..prefix_len + 8` of `user_key`, big-endian, with
/// missing bytes as zeros: a key before another never has a larger head.
fn head(user_key: &[u8], prefix_len: usize) -> u64 {
    let rest = user_key.get(prefix_len..).unwrap_or_default();
    let mut bytes = [0u8; 8];
    for (to, from) in bytes.iter_mut().zip(rest) {
        *to = *from;
    }
    u64::from_be_bytes(bytes)
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// The span holds exactly the keys equal in head, and everything
    /// before it sorts before the target and everything after it after.
    fn check(keys: &[Vec<u8>], target: &[u8]) {
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let heads = RestartHeads::new(&refs);
        let Range { start, end } = heads.span(target);
        assert!(
            start <= end && end <= keys.len(),
            "{start}..{end} of {}",
            keys.len()
        );
        for key in &keys[..start] {
            assert!(key.as_slice() < target, "{key:?} before span of {target:?}");
        }
        for key in &keys[end..] {
            assert!(key.as_slice() > target, "{key:?} after span of {target:?}");
        }
    }

    #[test]
    fn spans_bound_every_target_among_sorted_keys() {
        let mut rng = Rng(0x5eed_1234_5678_9abd);
        for round in 0..200 {
            // Few symbols and varied lengths make shared prefixes, equal
            // heads, keys shorter than the prefix and empty keys common.
            let alphabet = 1 + rng.below(4) as u8;
            let stem_len = rng.below(12) as usize;
            let stem: Vec<u8> = (0..stem_len)
                .map(|_| b'a' + rng.below(u64::from(alphabet)) as u8)
                .collect();
            let mut keys: Vec<Vec<u8>> = (0..1 + rng.below(40))
                .map(|_| {
                    let mut key = stem.clone();
                    key.extend((0..rng.below(14)).map(|_| b'a' + rng.below(u64::from(alphabet)) as u8));
                    key
                })
                .collect();
            keys.sort();
            keys.dedup();
            let mut targets = keys.clone();
            targets.extend((0..40).map(|_| {
                let len = rng.below(stem_len as u64 + 14) as usize;
                (0..len)
                    .map(|_| b'`' + rng.below(u64::from(alphabet) + 2) as u8)
                    .collect()
            }));
            targets.push(Vec::new());
            targets.push(stem.clone());
            targets.push(vec![0xff; 30]);
            for target in &targets {
                check(&keys, target);
            }
            assert_eq!(
                RestartHeads::new(&keys.iter().map(Vec::as_slice).collect::<Vec<_>>())
                    .heads
                    .len(),
                keys.len(),
                "round {round}"
            );
        }
    }

    #[test]
    fn distinct_heads_leave_at_most_one_key_to_compare() {
        let keys: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| format!("user:{:010}", i * 7).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let heads = RestartHeads::new(&refs);
        // The largest key is `user:0000006993`.
        assert_eq!(&*heads.prefix, b"user:000000");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(heads.span(key), i..i + 1);
            let mut after = key.clone();
            after.push(b'!');
            assert_eq!(heads.span(&after), i + 1..i + 1);
            check(&keys, &after);
        }
        assert_eq!(heads.span(b"user"), 0..0);
        assert_eq!(heads.span(b"zzz"), 1000..1000);
    }

    /// Keys that differ only after their head tie in runs longer than a
    /// group; the span must hold the whole run.
    #[test]
    fn long_runs_of_equal_heads_are_spanned_whole() {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for run in [b"AAAAAAAA", b"BBBBBBBB", b"CCCCCCCC"] {
            for i in 0..50 {
                keys.push([b"p/".as_slice(), run, format!("/{i:04}").as_bytes()].concat());
            }
        }
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let heads = RestartHeads::new(&refs);
        assert_eq!(heads.span(b"p/BBBBBBBB/0007"), 50..100);
        assert_eq!(heads.span(b"p/BBBBBBBB"), 50..100);
        assert_eq!(heads.span(b"p/BBBBBBBC"), 100..100);
        for key in &keys {
            check(&keys, key);
        }
    }

    #[test]
    fn no_keys_give_empty_spans() {
        let heads = RestartHeads::new(&[]);
        assert_eq!(heads.span(b"any"), 0..0);
    }
}
