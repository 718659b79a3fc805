//! Range tombstones: what `delete_range(start..end)` writes, and the one
//! structure every reader asks whether a version is hidden by one.
//!
//! A range tombstone `[start, end)@t` hides every version `(k, s)` with
//! `start <= k < end` and `s < t`, from every reader whose snapshot is at or
//! above `t`. It is written as one batch entry of kind `RangeDelete` (key
//! `start`, value `end`), lives in a memtable beside the point entries, and
//! in a table's range-tombstone block (see `docs/format.md`).
//!
//! [`RangeDels`] cuts a set of tombstones at every start and end into
//! fragments that do not overlap, each with the seqnos of the tombstones
//! covering it, newest first. A reader then finds the fragment holding a
//! key by binary search; a source without range tombstones has no
//! `RangeDels` at all, so a point read where none exist costs nothing more.
//!
//! Invariants:
//! - Fragments are sorted, non-empty (`start < end`) and do not overlap;
//!   each holds at least one seqno, distinct and descending.
//! - The fragments cover exactly the union of the tombstones' ranges, and
//!   a key's seqnos are exactly those of the tombstones that cover it.

use bytes::Bytes;

use crate::key::SeqNo;

/// One range tombstone: `[start, end)` deleted at `seqno`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeTombstone {
    /// First key deleted.
    pub start: Bytes,
    /// First key after the range (excluded).
    pub end: Bytes,
    /// The seqno of the `delete_range`.
    pub seqno: SeqNo,
}

/// A piece of the key space covered by the same tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fragment {
    start: Bytes,
    end: Bytes,
    /// Distinct, descending.
    seqnos: Vec<SeqNo>,
}

/// Range tombstones cut into non-overlapping fragments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeDels {
    fragments: Vec<Fragment>,
}

impl RangeDels {
    /// Fragments `tombstones` (in any order; empty ranges are ignored).
    ///
    /// NOTE: `n` nested tombstones make `2n` fragments holding up to `n`
    /// seqnos each; RocksDB's fragmenter has the same worst case.
    pub fn new(tombstones: impl IntoIterator<Item = RangeTombstone>) -> Self {
        let mut tombstones: Vec<RangeTombstone> =
            tombstones.into_iter().filter(|t| t.start < t.end).collect();
        if tombstones.is_empty() {
            return RangeDels::default();
        }
        tombstones.sort_by(|a, b| a.start.cmp(&b.start));
        let mut bounds: Vec<Bytes> = tombstones
            .iter()
            .flat_map(|t| [t.start.clone(), t.end.clone()])
            .collect();
        bounds.sort();
        bounds.dedup();
        let mut fragments = Vec::new();
        let mut pending = tombstones.into_iter().peekable();
        // The tombstones that started at or before the current bound: (end, seqno).
        let mut active: Vec<(Bytes, SeqNo)> = Vec::new();
        for pair in bounds.windows(2) {
            let [low, high] = pair else { continue };
            while let Some(next) = pending.next_if(|t| t.start <= *low) {
                active.push((next.end, next.seqno));
            }
            active.retain(|(end, _)| end > low);
            if active.is_empty() {
                continue;
            }
            let mut seqnos: Vec<SeqNo> = active.iter().map(|(_, seqno)| *seqno).collect();
            seqnos.sort_unstable_by(|a, b| b.cmp(a));
            seqnos.dedup();
            fragments.push(Fragment {
                start: low.clone(),
                end: high.clone(),
                seqnos,
            });
        }
        RangeDels { fragments }
    }

    /// True when no tombstone is held.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    /// The fragment holding `key`, if any.
    fn fragment(&self, key: &[u8]) -> Option<&Fragment> {
        let index = self.fragments.partition_point(|f| f.end.as_ref() <= key);
        self.fragments.get(index).filter(|f| f.start.as_ref() <= key)
    }

    /// The newest seqno at most `snapshot` of a tombstone covering `key`,
    /// or 0 when none does: a version of `key` with a lower seqno is
    /// deleted for a reader at `snapshot`.
    pub fn max_covering(&self, key: &[u8], snapshot: SeqNo) -> SeqNo {
        self.fragment(key)
            .and_then(|f| f.seqnos.iter().find(|&&seqno| seqno <= snapshot))
            .copied()
            .unwrap_or(0)
    }

    /// True when a tombstone covering `key` has a seqno in
    /// `(above, at_most]`: what compaction asks of a version at `above`
    /// whose snapshot stripe ends at `at_most`.
    pub fn covers_between(&self, key: &[u8], above: SeqNo, at_most: SeqNo) -> bool {
        self.fragment(key)
            .is_some_and(|f| f.seqnos.iter().any(|&seqno| above < seqno && seqno <= at_most))
    }

    /// The same tombstones keeping only the seqnos `keep` accepts
    /// (fragments left with none go).
    pub fn retain_seqnos(mut self, mut keep: impl FnMut(SeqNo) -> bool) -> Self {
        for fragment in &mut self.fragments {
            fragment.seqnos.retain(|&seqno| keep(seqno));
        }
        self.fragments.retain(|f| !f.seqnos.is_empty());
        self
    }

    /// The tombstones as stored: one per fragment and seqno, in
    /// internal-key order (start ascending, then seqno descending), cut to
    /// `[lower, upper)` (`None`: not cut on that side).
    pub fn clipped(&self, lower: Option<&[u8]>, upper: Option<&[u8]>) -> Vec<RangeTombstone> {
        let mut out = Vec::new();
        for fragment in &self.fragments {
            let start = match lower {
                Some(lower) if fragment.start.as_ref() < lower => Bytes::copy_from_slice(lower),
                _ => fragment.start.clone(),
            };
            let end = match upper {
                Some(upper) if fragment.end.as_ref() > upper => Bytes::copy_from_slice(upper),
                _ => fragment.end.clone(),
            };
            if start >= end {
                continue;
            }
            out.extend(fragment.seqnos.iter().map(|&seqno| RangeTombstone {
                start: start.clone(),
                end: end.clone(),
                seqno,
            }));
        }
        out
    }

    /// Every tombstone as stored (see [`RangeDels::clipped`]).
    pub fn tombstones(&self) -> Vec<RangeTombstone> {
        self.clipped(None, None)
    }

    /// True when a fragment overlaps `[start, end]` (either side `None`:
    /// unbounded).
    pub fn overlaps(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> bool {
        self.fragments.iter().any(|f| {
            start.is_none_or(|start| f.end.as_ref() > start) && end.is_none_or(|end| f.start.as_ref() <= end)
        })
    }
}

/// The largest user key a tombstone ending at `end` (excluded) covers,
/// where one exists: `q` for an end `q ++ [0]`, the key just after `q`.
/// Otherwise the tombstone's end itself stands in (one key too many), as
/// the inclusive upper bound of a table's key range.
pub fn last_covered_key(end: &Bytes) -> Bytes {
    match end.split_last() {
        Some((0, head)) => end.slice(..head.len()),
        _ => end.clone(),
    }
}

/// The key just after `key`: `key ++ [0]`.
pub fn successor(key: &[u8]) -> Bytes {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    Bytes::from(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tomb(start: &str, end: &str, seqno: SeqNo) -> RangeTombstone {
        RangeTombstone {
            start: Bytes::copy_from_slice(start.as_bytes()),
            end: Bytes::copy_from_slice(end.as_bytes()),
            seqno,
        }
    }

    /// The fragments answer exactly what the tombstones would, for every
    /// key and snapshot of a small alphabet.
    #[test]
    fn fragments_answer_as_the_tombstones_do() {
        let mut rng = crate::test_rng::Rng(0x5eed_1234_u64 | 1);
        let keys: Vec<String> = ["", "a", "a\0", "b", "ba", "c", "d", "e", "f"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for _ in 0..300 {
            let count = rng.below(6) as usize;
            let tombstones: Vec<RangeTombstone> = (0..count)
                .map(|_| {
                    let a = &keys[rng.below(keys.len() as u64) as usize];
                    let b = &keys[rng.below(keys.len() as u64) as usize];
                    tomb(a, b, 1 + rng.below(8))
                })
                .collect();
            let dels = RangeDels::new(tombstones.clone());
            let pairs = dels.fragments.windows(2);
            assert!(pairs.into_iter().all(|w| w[0].end <= w[1].start), "{dels:?}");
            for key in &keys {
                for snapshot in 0..10 {
                    let expected = tombstones
                        .iter()
                        .filter(|t| t.start.as_ref() <= key.as_bytes() && key.as_bytes() < t.end.as_ref())
                        .map(|t| t.seqno)
                        .filter(|&s| s <= snapshot)
                        .max()
                        .unwrap_or(0);
                    assert_eq!(
                        dels.max_covering(key.as_bytes(), snapshot),
                        expected,
                        "{key:?}@{snapshot}"
                    );
                    for above in 0..snapshot {
                        let expected = tombstones.iter().any(|t| {
                            t.start.as_ref() <= key.as_bytes()
                                && key.as_bytes() < t.end.as_ref()
                                && above < t.seqno
                                && t.seqno <= snapshot
                        });
                        assert_eq!(dels.covers_between(key.as_bytes(), above, snapshot), expected);
                    }
                }
            }
            // Stored and read back, the fragments are the same.
            assert_eq!(RangeDels::new(dels.tombstones()), dels);
        }
    }

    #[test]
    fn clipping_cuts_at_both_sides_and_keeps_every_seqno() {
        let dels = RangeDels::new([tomb("a", "m", 5), tomb("c", "z", 7)]);
        let clipped = dels.clipped(Some(b"b"), Some(b"d"));
        assert_eq!(
            clipped,
            vec![tomb("b", "c", 5), tomb("c", "d", 7), tomb("c", "d", 5)]
        );
        assert!(dels.clipped(Some(b"z"), None).is_empty());
        let kept = dels.clone().retain_seqnos(|s| s > 5);
        assert_eq!(kept.tombstones(), vec![tomb("c", "m", 7), tomb("m", "z", 7)]);
        assert!(dels.overlaps(Some(b"y"), None));
        assert!(!dels.overlaps(Some(b"z"), None));
        assert!(!dels.overlaps(None, Some(b"9")));
        assert!(dels.overlaps(None, Some(b"a")));
        assert!(RangeDels::new([tomb("b", "b", 1), tomb("c", "a", 2)]).is_empty());
    }

    #[test]
    fn the_last_covered_key_is_exact_after_a_successor() {
        assert_eq!(last_covered_key(&successor(b"k")), Bytes::from_static(b"k"));
        assert_eq!(
            last_covered_key(&Bytes::from_static(b"k")),
            Bytes::from_static(b"k")
        );
        assert_eq!(last_covered_key(&Bytes::new()), Bytes::new());
    }
}
