//! The benchmark's randomness: ChaCha8 keyed by a domain constant and the seed (expanded
//! with SplitMix64), unbiased bounded integers by multiply-and-reject, uniform floats from
//! the top 53 bits, and Fisher-Yates. Written out here, rather than taken from `rand`'s
//! distributions, so that a benchmark is the same for a seed across platforms and crate
//! upgrades.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded random stream.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Rng {
    /// The stream of `domain` (a constant naming what the numbers are for) and `parts`
    /// (the seed and any indices).
    pub fn new(domain: u64, parts: &[u64]) -> Rng {
        let mut h = splitmix(domain);
        for &p in parts {
            h = splitmix(h ^ p);
        }
        let mut seed = [0u8; 32];
        for (i, chunk) in seed.chunks_mut(8).enumerate() {
            h = splitmix(h ^ i as u64);
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        Rng(ChaCha8Rng::from_seed(seed))
    }

    /// A uniform integer in `0..n` (`n` >= 1; 0 for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.0.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform index into a slice of `len` items (`len` >= 1).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Shuffles `items` uniformly (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_keyed_by_domain_and_parts() {
        let draw = |d, p: &[u64]| {
            let mut r = Rng::new(d, p);
            (0..8).map(|_| r.below(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1, &[7]), draw(1, &[7]));
        assert_ne!(draw(1, &[7]), draw(2, &[7]));
        assert_ne!(draw(1, &[7]), draw(1, &[8]));
    }

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut r = Rng::new(3, &[0]);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let v = r.below(5);
            assert!(v < 5);
            seen[v as usize] = true;
            let f = r.range(0.25, 0.5);
            assert!((0.25..0.5).contains(&f));
        }
        assert!(seen.iter().all(|&s| s));
        let mut items: Vec<u32> = (0..50).collect();
        r.shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(items, sorted);
    }
}
