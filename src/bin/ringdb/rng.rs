//! A small, fixed-seed pseudo-random generator (SplitMix64).
//!
//! The benchmarks and the crash writer need reproducible, cheap randomness and
//! nothing cryptographic; a `rand` dependency would be all cost. SplitMix64
//! passes BigCrush, needs one `u64` of state and one multiply-xorshift chain
//! per draw.

/// SplitMix64 (Steele, Lea and Flood, 2014), the generator Java's
/// `SplittableRandom` and the seeding of xoshiro use.
///
/// Its state advances by a fixed constant per draw, so [`SplitMix64::skip`]
/// jumps over any number of draws in O(1): a reader can recompute the key a
/// writer drew at any position of its sequence without replaying it.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// What the state advances by per draw (the golden-ratio "gamma").
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator for stream `stream` of `seed`: tasks seeded this way draw
    /// unrelated sequences even for neighbouring stream numbers.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        // NOTE: mix the stream number through one SplitMix step rather than
        // adding it to the seed, so that (seed, stream + 1) and (seed + 1,
        // stream) do not share a sequence shifted by one draw.
        let mut mixer = SplitMix64::new(stream.wrapping_mul(GAMMA) ^ seed);
        SplitMix64::new(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Skips `draws` calls of [`SplitMix64::next_u64`] (so also of
    /// [`SplitMix64::below`], which draws once).
    pub fn skip(&mut self, draws: u64) {
        self.state = self.state.wrapping_add(draws.wrapping_mul(GAMMA));
    }

    /// A number uniformly drawn from `0..bound` (Lemire's multiply-shift;
    /// its bias is below 2^-32 for every bound a benchmark uses).
    ///
    /// `bound` must be non-zero.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "SplitMix64::below needs a non-zero bound");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            for (byte, random) in chunk.iter_mut().zip(self.next_u64().to_le_bytes()) {
                *byte = random;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut rng = SplitMix64::new(7);
                move |_| rng.next_u64()
            })
            .collect();
        let mut b = SplitMix64::new(7);
        assert!(a.iter().all(|&x| x == b.next_u64()));
        assert_ne!(
            SplitMix64::for_stream(7, 0).next_u64(),
            SplitMix64::for_stream(7, 1).next_u64()
        );
    }

    #[test]
    fn skip_lands_where_drawing_would() {
        let mut drawn = SplitMix64::for_stream(9, 3);
        let sequence: Vec<u64> = (0..50).map(|_| drawn.below(1000)).collect();
        for (n, &expected) in sequence.iter().enumerate() {
            let mut jumped = SplitMix64::for_stream(9, 3);
            jumped.skip(n as u64);
            assert_eq!(jumped.below(1000), expected, "draw {n}");
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        for bound in [1, 2, 3, 16, 100, u64::MAX] {
            for _ in 0..1000 {
                assert!(rng.below(bound) < bound);
            }
        }
    }

    #[test]
    fn fill_covers_odd_lengths() {
        let mut buf = [0u8; 13];
        SplitMix64::new(3).fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
