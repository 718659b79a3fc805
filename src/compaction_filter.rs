//! Compaction filters: user code that keeps, drops or rewrites values as
//! compaction rewrites them.
//!
//! The user's interface only, like `merge.rs`: `Options` holds a filter and
//! `compaction/` calls it, so it sits below both and imports neither.
//!
//! Which entries a filter sees: the values (puts, expiring puts, and the
//! puts that folding merge operands produces) that a compaction writes in
//! the newest snapshot stripe, that is with a seqno above every live
//! snapshot. An entry a live snapshot can see is never shown to the
//! filter, so a filter never changes what a snapshot reads. (RocksDB skips
//! filtering snapshot-visible entries for the same reason.) Tombstones and
//! merge operands are not shown either.
//!
//! A removed value becomes a tombstone at its seqno, so older versions of
//! the key stay hidden; where a tombstone may be dropped (bottommost, with
//! nothing older kept) it is. A rewritten value keeps its seqno and its
//! expiry.
//!
//! NOTE: a filter runs when compaction happens to reach an entry, so its
//! decisions show up at no particular time; reads before it see the
//! original values. It must be a pure function of its inputs if two
//! compactions of the same data are to agree.
//!
//! NOTE: the snapshots are those live when the job starts. A snapshot
//! taken while a filtering job runs reads at a seqno above the job's
//! inputs, so it reads the entries the filter sees: before the job commits
//! it reads an original value, after it the filtered one. Closing that gap
//! would need the commit to be atomic with snapshot creation (or the job
//! to be redone when a snapshot appears); it is left open, and a snapshot
//! that must never see a filter's change is taken before the writes it
//! reads are compacted, or the store runs without a filter.

/// What a [`CompactionFilter`] decides for one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// Keep the value as it is.
    Keep,
    /// Drop the value: the key reads as deleted.
    Remove,
    /// Replace the value with this one.
    ChangeValue(Vec<u8>),
}

/// Decides, during compaction, what happens to each value.
///
/// ```
/// use ringdb::{CompactionFilter, FilterDecision};
/// #[derive(Debug)]
/// struct DropTemp;
/// impl CompactionFilter for DropTemp {
///     fn name(&self) -> &str { "drop-temp" }
///     fn filter(&self, _level: usize, key: &[u8], _value: &[u8]) -> FilterDecision {
///         if key.starts_with(b"tmp:") { FilterDecision::Remove } else { FilterDecision::Keep }
///     }
/// }
/// let options = ringdb::Options::default().compaction_filter(std::sync::Arc::new(DropTemp));
/// # let _ = options;
/// ```
pub trait CompactionFilter: Send + Sync + std::fmt::Debug {
    /// A name for logs.
    fn name(&self) -> &str;

    /// The decision for `value` at `key`, written to `level`.
    fn filter(&self, level: usize, key: &[u8], value: &[u8]) -> FilterDecision;
}
