//! Hints that start loading memory a search is about to read, so that its
//! cache misses overlap instead of following one another.
//!
//! A point lookup that hits the block cache reads a block nobody touched
//! for a while: its restart array, then a restart key, then the entries
//! after it, each load waiting for the one before. Asking for every line
//! first turns that chain into one wait
//! (`docs/decisions/0021-cold-block-reads.md`).
//!
//! The hints are no-ops on targets other than x86_64.

/// Bytes the CPU loads at once.
const CACHE_LINE_BYTES: usize = 64;

/// Asks the CPU to load the line holding `byte`.
#[inline(always)]
pub fn line(byte: &u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing architecturally and
    // never faults, and `byte` is a live reference.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            std::ptr::from_ref(byte).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = byte;
}

/// Asks the CPU to load every line of `bytes`.
pub fn lines(bytes: &[u8]) {
    for chunk in bytes.chunks(CACHE_LINE_BYTES) {
        if let Some(first) = chunk.first() {
            line(first);
        }
    }
}
