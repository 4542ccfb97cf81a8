//! The generator's portable random numbers: ChaCha8 seeded from a u64, with the sampling done here
//! in plain integer and IEEE arithmetic, so a seed gives the same numbers on every machine and
//! with every version of `rand` (whose distributions do not promise value stability).

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng};

pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A stream for one purpose (`label`) of one seed, so changing how many numbers one part of
    /// the generator draws (say, the record fates) leaves the others (the orbits) unchanged.
    pub fn stream(seed: u64, label: &str) -> Self {
        let mut mixed = seed;
        for byte in label.bytes() {
            mixed = splitmix64(mixed ^ u64::from(byte));
        }
        Rng(ChaCha8Rng::seed_from_u64(splitmix64(mixed)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// How far into its stream this generator is, in 32-bit words: [`KeyedStreams::resume`] picks
    /// up from here.
    pub fn position(&self) -> u64 {
        self.0.get_word_pos() as u64
    }

    /// Uniform in [0, 1), with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform angle in [0, 2 pi).
    pub fn angle(&mut self) -> f64 {
        self.uniform(0.0, std::f64::consts::TAU)
    }

    /// Uniform in [0, n), n > 0, without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        let zone = u64::MAX - (u64::MAX - n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= zone {
                return x % n;
            }
        }
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn int_between(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        let span = (i128::from(hi) - i128::from(lo) + 1) as u128;
        if span > u128::from(u64::MAX) {
            return self.next_u64() as i64;
        }
        (i128::from(lo) + i128::from(self.below(span as u64))) as i64
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// One stream per key (an object) for one seed and label, each resumable from a saved position.
///
/// The sparse schedule draws an object's next gap only when the time-ordered merge reaches that
/// object, so objects take turns in an order no one knows in advance; a generator per object
/// would cost 300 bytes each, a saved position costs 8. The streams are ChaCha8's own (the
/// 64-bit stream number is the key), so they are independent and portable like every other.
pub struct KeyedStreams {
    base: ChaCha8Rng,
}

impl KeyedStreams {
    pub fn new(seed: u64, label: &str) -> Self {
        KeyedStreams { base: Rng::stream(seed, label).0 }
    }

    /// The stream of `key`, `position` words in (0 for its start).
    pub fn resume(&self, key: u64, position: u64) -> Rng {
        let mut rng = self.base.clone();
        rng.set_stream(key);
        rng.set_word_pos(u128::from(position));
        Rng(rng)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_a_fixed_sequence() {
        // Pinned: if this changes, every generated scenario changes.
        let mut rng = Rng::stream(42, "test");
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let mut again = Rng::stream(42, "test");
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], Rng::stream(43, "test").next_u64());
        assert_ne!(first[0], Rng::stream(42, "other").next_u64());
    }

    #[test]
    fn a_keyed_stream_resumes_where_it_stopped_and_keys_differ() {
        let streams = KeyedStreams::new(5, "keyed");
        let mut straight = streams.resume(3, 0);
        let expected: Vec<u64> = (0..7).map(|_| straight.next_u64()).collect();
        // The same numbers drawn in three sittings, with the position saved in between.
        let mut got = Vec::new();
        let mut position = 0;
        for take in [2, 4, 1] {
            let mut rng = streams.resume(3, position);
            got.extend((0..take).map(|_| rng.next_u64()));
            position = rng.position();
        }
        assert_eq!(got, expected);
        assert_ne!(streams.resume(4, 0).next_u64(), expected[0]);
        assert_ne!(KeyedStreams::new(6, "keyed").resume(3, 0).next_u64(), expected[0]);
    }

    #[test]
    fn ranges_are_respected() {
        let mut rng = Rng::stream(1, "ranges");
        for _ in 0..10_000 {
            let x = rng.int_between(-3, 3);
            assert!((-3..=3).contains(&x));
            let u = rng.uniform(2.0, 5.0);
            assert!((2.0..5.0).contains(&u));
        }
        assert_eq!(rng.int_between(7, 7), 7);
    }
}
