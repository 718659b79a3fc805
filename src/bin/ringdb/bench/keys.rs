//! Which keys the benchmarks write, and which keys a store holds.
//!
//! Keys are numbers written in zero-padded decimal ([`write_key`]). A write
//! workload is planned up front ([`WrittenKeys`]): its operations are split
//! into contiguous runs, one per task ([`TaskPlan`]), and each task draws its
//! key numbers from its own seeded generator stream, so the key of any
//! operation can be recomputed later without replaying the workload.
//!
//! [`LiveKeys`] is the bench's model of a store's contents: the set of key
//! numbers that hold a value, updated after each write workload from the
//! plan (puts insert, deletes remove). [`ScanCheck`] checks a whole-store
//! scan against it.
//!
//! Invariants:
//! - [`WrittenKeys::key_number`] and [`WrittenKeys::for_each_key`] return the
//!   very numbers the write tasks drew (one draw per random operation).
//! - [`LiveKeys::count`] is the number of set bits.

use std::sync::Arc;

use crate::rng::SplitMix64;

/// How a write workload picks its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyOrder {
    /// Each task writes its own contiguous run of key numbers, ascending.
    Sequential,
    /// Each task draws key numbers uniformly from the key space with its own
    /// seeded generator (so keys repeat, as in db_bench).
    Random,
}

/// One task's share of a workload: `ops` operations starting at key number
/// `first_key` (for sequential keys; it is also the workload-wide index of
/// the task's first operation) and drawing from generator `stream`.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskPlan {
    pub(super) stream: u64,
    pub(super) first_key: u64,
    pub(super) ops: u64,
}

/// Splits `ops` across `tasks` as evenly as possible, in key order.
pub(super) fn plan_tasks(ops: u64, tasks: usize) -> Vec<TaskPlan> {
    assert!(tasks > 0, "a workload needs at least one task");
    let tasks = tasks as u64;
    let (share, remainder) = (ops / tasks, ops % tasks);
    let mut first_key = 0;
    let plans: Vec<TaskPlan> = (0..tasks)
        .map(|stream| {
            let ops = share + u64::from(stream < remainder);
            let plan = TaskPlan {
                stream,
                first_key,
                ops,
            };
            first_key += ops;
            plan
        })
        .collect();
    debug_assert_eq!(plans.iter().map(|plan| plan.ops).sum::<u64>(), ops);
    plans
}

/// Which key numbers a write workload's operations wrote: operation `i` of
/// the workload (counting across its tasks, in plan order) wrote
/// [`WrittenKeys::key_number`]`(i)`.
#[derive(Debug, Clone)]
pub(super) struct WrittenKeys {
    order: KeyOrder,
    /// The seed whose streams the tasks draw from.
    seed: u64,
    /// Operations of the whole workload.
    pub(super) ops: u64,
    /// Random keys are drawn from `0..key_space`.
    pub(super) key_space: u64,
    /// The workload's tasks, ordered by `first_key`.
    pub(super) plans: Arc<[TaskPlan]>,
}

impl WrittenKeys {
    /// A fill of `ops` operations over the key space `0..ops`, drawing (if
    /// random) from `seed`.
    pub(super) fn fill(order: KeyOrder, seed: u64, ops: u64, tasks: usize) -> Self {
        WrittenKeys {
            order,
            seed,
            ops,
            key_space: ops.max(1),
            plans: plan_tasks(ops, tasks).into(),
        }
    }

    /// `ops` operations on random keys of `0..key_space`, drawn from `seed`:
    /// an overwrite or a delete over an existing store's key space.
    pub(super) fn random(seed: u64, ops: u64, key_space: u64, tasks: usize) -> Self {
        assert!(key_space > 0, "random keys need a non-empty key space");
        WrittenKeys {
            order: KeyOrder::Random,
            seed,
            ops,
            key_space,
            plans: plan_tasks(ops, tasks).into(),
        }
    }

    /// A generator for `plan`'s random keys, positioned at its first.
    pub(super) fn rng(&self, plan: &TaskPlan) -> SplitMix64 {
        SplitMix64::for_stream(self.seed, plan.stream)
    }

    /// The next key number of a task whose generator is `rng`, at operation
    /// `op` of the whole workload.
    pub(super) fn next_key_number(&self, rng: &mut SplitMix64, op: u64) -> u64 {
        match self.order {
            KeyOrder::Sequential => op,
            KeyOrder::Random => rng.below(self.key_space),
        }
    }

    /// The key number operation `op` (`< ops`) of the workload wrote,
    /// computed in O(log tasks) without replaying it.
    pub(super) fn key_number(&self, op: u64) -> u64 {
        assert!(op < self.ops, "operation {op} of a workload of {}", self.ops);
        let index = self.plans.partition_point(|plan| plan.first_key + plan.ops <= op);
        let Some(plan) = self.plans.get(index) else {
            unreachable!("the plans cover 0..ops");
        };
        let mut rng = self.rng(plan);
        // NOTE: a random workload draws exactly once per operation.
        rng.skip(op - plan.first_key);
        self.next_key_number(&mut rng, op)
    }

    /// Calls `f` with the key number of every operation, in plan order
    /// (O(ops), one draw per random operation).
    pub(super) fn for_each_key(&self, mut f: impl FnMut(u64)) {
        for plan in self.plans.iter() {
            let mut rng = self.rng(plan);
            for i in 0..plan.ops {
                f(self.next_key_number(&mut rng, plan.first_key + i));
            }
        }
    }
}

/// The key numbers of `0..key_space` that hold a value in a store: one bit
/// per number (a key space of 5 million takes 610 KiB).
#[derive(Debug, Clone)]
pub(super) struct LiveKeys {
    words: Vec<u64>,
    key_space: u64,
    count: u64,
}

impl LiveKeys {
    /// No live key in `0..key_space`.
    pub(super) fn new(key_space: u64) -> Self {
        let words = usize::try_from(key_space.div_ceil(64)).unwrap_or(usize::MAX);
        LiveKeys {
            words: vec![0; words],
            key_space,
            count: 0,
        }
    }

    /// The word holding `number`'s bit, and the bit's mask.
    fn locate(&self, number: u64) -> (usize, u64) {
        assert!(
            number < self.key_space,
            "key number {number} outside the key space 0..{}",
            self.key_space
        );
        ((number / 64) as usize, 1 << (number % 64))
    }

    /// Marks `number` live (a put).
    pub(super) fn insert(&mut self, number: u64) {
        let (index, mask) = self.locate(number);
        if let Some(word) = self.words.get_mut(index) {
            self.count += u64::from(*word & mask == 0);
            *word |= mask;
        }
    }

    /// Marks `number` absent (a delete).
    pub(super) fn remove(&mut self, number: u64) {
        let (index, mask) = self.locate(number);
        if let Some(word) = self.words.get_mut(index) {
            self.count -= u64::from(*word & mask != 0);
            *word &= !mask;
        }
    }

    /// Whether `number` is live; numbers outside the key space are not.
    pub(super) fn contains(&self, number: u64) -> bool {
        number < self.key_space && {
            let (index, mask) = self.locate(number);
            self.words.get(index).is_some_and(|word| word & mask != 0)
        }
    }

    /// How many key numbers are live.
    pub(super) fn count(&self) -> u64 {
        self.count
    }
}

/// Checks the entries of a whole-store scan (`readseq`, `readreverse`, and
/// the peers' equivalents) against the bench's model, every entry in full,
/// none sampled: its key is `key_size` decimal digits naming a live key, it
/// comes strictly after (before, in reverse) the previous one, and its
/// value has `value_size` bytes.
///
/// NOTE: cheap next to the scan it checks (about 120 instructions an entry,
/// where the scan itself takes 900 to 1,250, and a byte-wise check with the
/// previous key kept as `Bytes` took 300): the key is parsed eight digits at a time and ordered by its number, which
/// for keys of one width is their byte order, so no key is kept or compared
/// as bytes. Value bytes are not checked (the model does not know which
/// write of a key came last), only their length, as `readrandom` does.
pub(super) struct ScanCheck<'a> {
    live: &'a LiveKeys,
    key_size: usize,
    value_size: usize,
    reverse: bool,
    /// The previous entry's key number.
    previous: Option<u64>,
    /// Entries whose key is not live or out of order, or whose value is
    /// shorter than every write's (a mergerandom's appended operands make
    /// it longer).
    pub(super) unexpected: u64,
}

impl<'a> ScanCheck<'a> {
    pub(super) fn new(live: &'a LiveKeys, key_size: usize, value_size: usize, reverse: bool) -> Self {
        ScanCheck {
            live,
            key_size,
            value_size,
            reverse,
            previous: None,
            unexpected: 0,
        }
    }

    #[inline]
    pub(super) fn entry(&mut self, key: &[u8], value: &[u8]) {
        let number = parse_key(key).filter(|_| key.len() == self.key_size);
        let expected = number.is_some_and(|number| {
            let in_order = self.previous.is_none_or(|previous| {
                if self.reverse {
                    number < previous
                } else {
                    number > previous
                }
            });
            in_order && self.live.contains(number)
        }) && value.len() >= self.value_size;
        self.unexpected += u64::from(!expected);
        // NOTE: a key that does not parse leaves the previous number, so
        // the next entry is still checked against the last good one.
        if number.is_some() {
            self.previous = number;
        }
    }
}

/// Writes `number` in decimal into `key`, right-aligned and zero-padded.
///
/// NOTE: when `key` is shorter than the number's digits the high digits are
/// dropped (keys then repeat, and [`LiveKeys`] overcounts); with the default
/// 16-byte keys that needs more than 10^16 operations.
pub(super) fn write_key(key: &mut [u8], mut number: u64) {
    for byte in key.iter_mut().rev() {
        *byte = b'0' + (number % 10) as u8;
        number /= 10;
    }
}

/// The number a key written by [`write_key`] holds, or `None` if `key` is
/// not all decimal digits (or overflows `u64`).
///
/// NOTE: eight digits at a time ([`parse_eight_digits`]): `readseq` parses
/// every key it scans, and a digit at a time cost it more than the scan's
/// own key decoding.
pub(super) fn parse_key(key: &[u8]) -> Option<u64> {
    let (head, chunks) = key.split_at(key.len() % 8);
    let number = head.iter().try_fold(0u64, |number, &byte| {
        let digit = byte.checked_sub(b'0').filter(|&d| d < 10)?;
        number.checked_mul(10)?.checked_add(u64::from(digit))
    })?;
    chunks.chunks_exact(8).try_fold(number, |number, chunk| {
        let digits = parse_eight_digits(chunk.try_into().ok()?)?;
        number.checked_mul(100_000_000)?.checked_add(digits)
    })
}

/// The number eight ASCII decimal digits spell, most significant first, or
/// `None` if a byte is not a digit. Branch-free SWAR (Lemire's
/// `parse_eight_digits_unrolled`).
fn parse_eight_digits(digits: [u8; 8]) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let chunk = u64::from_le_bytes(digits);
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 to its
    // low nibble does not carry into it (no carry crosses a byte: 0xF + 6
    // only reaches the byte's own high nibble).
    let all_digits =
        chunk & HIGH_NIBBLES == ZEROS && chunk.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == ZEROS;
    if !all_digits {
        return None;
    }
    // Pairs, then quads, then the whole: each step merges neighbours (the
    // first byte is the most significant digit, and the lowest in a
    // little-endian load).
    let pairs = ((chunk & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(10 << 8 | 1)) >> 8;
    let quads = ((pairs & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 << 16 | 1)) >> 16;
    Some(((quads & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 << 32 | 1)) >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal_and_parse_back() {
        let mut key = [0u8; 8];
        write_key(&mut key, 1234);
        assert_eq!(&key, b"00001234");
        assert_eq!(parse_key(&key), Some(1234));
        let mut short = [0u8; 2];
        write_key(&mut short, 1234);
        assert_eq!(&short, b"34");
        assert_eq!(parse_key(b"12a4"), None);
        assert_eq!(parse_key(b"99999999999999999999999"), None);
    }

    /// The digit-at-a-time parse [`parse_key`] must agree with.
    fn parse_key_slowly(key: &[u8]) -> Option<u64> {
        key.iter().try_fold(0u64, |number, &byte| {
            let digit = byte.checked_sub(b'0').filter(|&d| d < 10)?;
            number.checked_mul(10)?.checked_add(u64::from(digit))
        })
    }

    #[test]
    fn parse_key_agrees_with_a_digit_at_a_time_parse() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let mut key = [0u8; 24];
        for round in 0..20_000u64 {
            let len = (round % 25) as usize;
            let key = &mut key[..len];
            write_key(key, rng.next_u64() >> (round % 64));
            if round % 3 == 0 && len > 0 {
                // One byte anywhere, digit or not (every byte value around
                // the digits, and some far from them).
                let at = (rng.next_u64() % len as u64) as usize;
                key[at] = (rng.next_u64() % 256) as u8;
            }
            assert_eq!(parse_key(key), parse_key_slowly(key), "{key:?}");
        }
        for byte in 0..=255u8 {
            let mut key = *b"1234567890123456";
            key[9] = byte;
            assert_eq!(parse_key(&key), parse_key_slowly(&key), "byte {byte}");
        }
        assert_eq!(parse_key(b""), Some(0));
        assert_eq!(parse_key(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_key(b"18446744073709551616"), None);
        assert_eq!(parse_key(b"000018446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn plans_cover_every_op_once_in_order() {
        let plans = plan_tasks(10, 3);
        assert_eq!(plans.iter().map(|p| p.ops).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(plans.iter().map(|p| p.first_key).collect::<Vec<_>>(), [0, 4, 7]);
        assert_eq!(plan_tasks(2, 4).iter().map(|p| p.ops).sum::<u64>(), 2);
    }

    #[test]
    fn written_keys_are_the_keys_the_write_tasks_draw() {
        for keys in [
            WrittenKeys::fill(KeyOrder::Random, 1, 1000, 3),
            WrittenKeys::fill(KeyOrder::Random, 1, 5, 8),
            WrittenKeys::fill(KeyOrder::Sequential, 1, 100, 7),
            WrittenKeys::random(2, 300, 50, 4),
        ] {
            let mut replayed = Vec::new();
            keys.for_each_key(|number| replayed.push(number));
            let mut op = 0;
            for plan in keys.plans.iter() {
                // The same draws as WriteTask::run.
                let mut rng = keys.rng(plan);
                for i in 0..plan.ops {
                    let drawn = keys.next_key_number(&mut rng, plan.first_key + i);
                    assert!(drawn < keys.key_space);
                    assert_eq!(keys.key_number(op), drawn, "{keys:?} op {op}");
                    assert_eq!(replayed[op as usize], drawn);
                    op += 1;
                }
            }
            assert_eq!(op, keys.ops);
            assert_eq!(replayed.len() as u64, keys.ops);
        }
    }

    #[test]
    fn live_keys_count_distinct_numbers() {
        let mut live = LiveKeys::new(130);
        for number in [0, 63, 64, 129, 64] {
            live.insert(number);
        }
        assert_eq!(live.count(), 4);
        assert!(live.contains(129) && live.contains(0) && !live.contains(1));
        assert!(!live.contains(130), "outside the key space");
        live.remove(64);
        live.remove(64);
        live.remove(5);
        assert_eq!(live.count(), 3);
        assert!(!live.contains(64));
    }

    fn key16(number: u64) -> [u8; 16] {
        let mut key = [0u8; 16];
        write_key(&mut key, number);
        key
    }

    #[test]
    fn scan_check_counts_every_wrong_entry() {
        let mut live = LiveKeys::new(1000);
        for number in [3, 10, 99, 100, 998] {
            live.insert(number);
        }
        let value = [0u8; 8];
        for reverse in [false, true] {
            let mut order = [3, 10, 99, 100, 998];
            if reverse {
                order.reverse();
            }
            let mut check = ScanCheck::new(&live, 16, 8, reverse);
            for number in order {
                check.entry(&key16(number), &value);
            }
            assert_eq!(check.unexpected, 0, "reverse {reverse}");

            let mut check = ScanCheck::new(&live, 16, 8, reverse);
            let (first, second) = (order[0], order[1]);
            check.entry(&key16(first), &value);
            check.entry(&key16(first), &value); // repeated
            check.entry(&key16(second), &value[..7]); // short value
            check.entry(&key16(first), &value); // out of order
            assert_eq!(check.unexpected, 3, "reverse {reverse}");
            check.entry(&key16(second), &value); // in order again after `first`
            assert_eq!(check.unexpected, 3, "reverse {reverse}");
            check.entry(&key16(500), &value); // not live
            check.entry(b"0000000000000x10", &value); // not a number
            check.entry(b"00000000000000010", &value); // one digit too many
            check.entry(&key16(1001), &value); // outside the key space
            assert_eq!(check.unexpected, 7, "reverse {reverse}");
        }
    }
}
