//! Read buffers that go back to their thread when the last `Bytes` over
//! them drops, for the next read to reuse.
//!
//! A point lookup that misses the block cache reads a block into a fresh
//! buffer, and the cache insert that follows evicts a block of about the
//! same size, whose buffer is freed. Both ends went to the allocator, and
//! freeing a buffer nobody had touched for a while was among the largest
//! costs of such a read (`docs/decisions/0021-cold-block-reads.md`).
//! Here the evicted block's buffer is kept and handed to the next read.
//!
//! Rules:
//! - A buffer is reused only by the thread that dropped it (a thread-local
//!   list, so no lock and no shared counter): the tasks that read blocks
//!   are the ones that evict them, on the same runtime threads.
//! - Only a thread that has read keeps spares: a thread that merely drops
//!   values it was handed (an embedder's own threads) frees them as usual,
//!   so it never holds memory nobody will take.
//! - Each thread keeps at most [`SPARE_BUFFERS_PER_THREAD`] buffers and
//!   [`SPARE_BYTES_PER_THREAD`] bytes; any other buffer is freed as usual.
//!   Spare memory is not charged to the block cache.
//! - Capacities are rounded up to [`CAPACITY_STEP_BYTES`], so blocks of
//!   slightly different sizes share buffers; a read takes a spare only if
//!   it wastes at most an eighth of it. The block cache charges a block's
//!   length, so that waste is memory it does not count.
//! - A buffer is handed out empty: only bytes a read wrote become part of
//!   it, so no read ever sees another block's bytes.

use std::cell::RefCell;

use bytes::Bytes;

/// Buffers a thread keeps for reuse.
pub const SPARE_BUFFERS_PER_THREAD: usize = 16;
/// Bytes of spare buffers a thread keeps.
pub const SPARE_BYTES_PER_THREAD: usize = 512 * 1024;
/// Capacities are multiples of this.
pub const CAPACITY_STEP_BYTES: usize = 256;

/// One thread's spare buffers.
#[derive(Default)]
struct Spare {
    /// The thread has taken a buffer: only then are spares kept.
    reads: bool,
    buffers: Vec<Vec<u8>>,
    /// Sum of the buffers' capacities.
    bytes: usize,
}

thread_local! {
    static SPARE: RefCell<Spare> = RefCell::new(Spare::default());
}

/// An empty buffer with room for `len` bytes: a spare of this thread that
/// fits, or a new one with its capacity rounded up.
pub fn take(len: usize) -> Vec<u8> {
    let spare = SPARE
        .try_with(|spare| {
            let mut spare = spare.borrow_mut();
            spare.reads = true;
            let fits = spare
                .buffers
                .iter()
                .rposition(|buf| buf.capacity() >= len && buf.capacity() - len <= buf.capacity() / 8)?;
            let buf = spare.buffers.swap_remove(fits);
            spare.bytes -= buf.capacity();
            Some(buf)
        })
        .ok()
        .flatten();
    let rounded = len.checked_next_multiple_of(CAPACITY_STEP_BYTES).unwrap_or(len);
    let mut buf = spare.unwrap_or_else(|| Vec::with_capacity(rounded));
    buf.clear();
    buf
}

/// `buf` as `Bytes` whose memory returns to the spare list of the thread
/// that drops the last clone.
pub fn into_bytes(buf: Vec<u8>) -> Bytes {
    if buf.capacity() > SPARE_BYTES_PER_THREAD {
        return Bytes::from(buf);
    }
    Bytes::from_owner(Returning(buf))
}

/// A buffer that goes back to a spare list when dropped.
struct Returning(Vec<u8>);

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        // NOTE: during thread teardown the list may be gone; the buffer is
        // then simply freed.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let room = spare.buffers.len() < SPARE_BUFFERS_PER_THREAD
                && spare.bytes + buf.capacity() <= SPARE_BYTES_PER_THREAD;
            if spare.reads && room {
                spare.bytes += buf.capacity();
                spare.buffers.push(buf);
            }
        });
    }
}

/// Spare buffers this thread holds now.
#[cfg(test)]
fn spare_count() -> usize {
    SPARE.with(|spare| spare.borrow().buffers.len())
}

/// Forgets this thread's spares and that it has read.
#[cfg(test)]
fn reset() {
    SPARE.with(|spare| *spare.borrow_mut() = Spare::default());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A taken buffer with `len` bytes read into it.
    fn filled(len: usize) -> Vec<u8> {
        let mut buf = take(len);
        buf.resize(len, 1);
        buf
    }

    #[test]
    fn a_dropped_buffer_is_reused_empty_by_the_next_read_of_its_size() {
        reset();
        let mut buf = take(4100);
        assert!(buf.is_empty());
        assert!(buf.capacity() >= 4100);
        assert_eq!(buf.capacity() % CAPACITY_STEP_BYTES, 0);
        buf.resize(4100, 0xab);
        let address = buf.as_ptr();
        let bytes = into_bytes(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(spare_count(), 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], &[0xab; 10]);
        drop(slice);
        assert_eq!(spare_count(), 1);

        let again = take(4000);
        assert_eq!(again.as_ptr(), address, "the spare is reused");
        assert!(again.is_empty(), "a reused buffer holds none of its old bytes");
        assert!(again.capacity() >= 4000);
        assert_eq!(spare_count(), 0);
    }

    #[test]
    fn a_spare_much_larger_or_smaller_than_the_read_is_not_used() {
        reset();
        drop(into_bytes(filled(64 * 1024)));
        assert_eq!(spare_count(), 1);
        let small = take(4096);
        assert!(
            small.capacity() < 64 * 1024,
            "a 64 KiB spare is not spent on 4 KiB"
        );
        let large = take(128 * 1024);
        assert!(large.capacity() >= 128 * 1024);
        assert_eq!(spare_count(), 1, "neither read took the spare");
    }

    #[test]
    fn a_thread_that_never_read_keeps_no_spares() {
        let bytes = into_bytes(filled(4096));
        let kept = std::thread::spawn(move || {
            drop(bytes);
            spare_count()
        })
        .join()
        .unwrap();
        assert_eq!(kept, 0, "the dropping thread never took a buffer");
    }

    #[test]
    fn spares_are_bounded_in_count_and_bytes() {
        reset();
        let many: Vec<Bytes> = (0..2 * SPARE_BUFFERS_PER_THREAD)
            .map(|_| into_bytes(filled(1000)))
            .collect();
        drop(many);
        assert_eq!(spare_count(), SPARE_BUFFERS_PER_THREAD);
        reset();
        let big: Vec<Bytes> = (0..8)
            .map(|_| into_bytes(filled(SPARE_BYTES_PER_THREAD / 3)))
            .collect();
        drop(big);
        let held: usize = SPARE.with(|spare| spare.borrow().buffers.iter().map(Vec::capacity).sum());
        assert!(held <= SPARE_BYTES_PER_THREAD);
        assert_eq!(held, SPARE.with(|spare| spare.borrow().bytes));
        assert_eq!(spare_count(), 2, "a third of the bound each, rounded up: two fit");
    }
}
