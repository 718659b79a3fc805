//! The unit tests' deterministic generator (xorshift64*), shared so that
//! every test module draws from the same one.

/// A small deterministic generator (xorshift64*). Seed it odd (`seed | 1`):
/// zero is a fixed point.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `next() % bound`: `bound` must not be 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}
