//! A small, fixed random generator for data generation, shuffling and augmentation.
//!
//! The algorithm (splitmix64) is written here rather than taken from `rand` so that a seed
//! gives the same dataset, order and augmentations forever, whatever version of a
//! dependency is in the tree: reproducibility across upgrades is the point.

/// The splitmix64 generator (the one `../shared/bench/WORKLOADS.md` specifies).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator for one item of a stream: independent streams for different `parts`.
    pub(crate) fn derive(seed: u64, parts: &[u64]) -> SplitMix64 {
        SplitMix64::new(mix(seed, parts))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        finalize(self.state)
    }

    /// A uniform float in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in `[low, high)`.
    pub(crate) fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// A uniform integer in `[0, n)` (`n > 0`), without modulo bias worth caring about.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        // Lemire's multiply-shift: bias below 2^-64 * n.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A standard normal sample (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Two independent standard normal draws (Marsaglia's polar method: no trigonometry).
    pub(crate) fn normal_pair(&mut self) -> (f64, f64) {
        loop {
            let x = 2.0 * self.next_f64() - 1.0;
            let y = 2.0 * self.next_f64() - 1.0;
            let s = x * x + y * y;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                return (x * f, y * f);
            }
        }
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The splitmix64 output function.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a seed and a path of integers (epoch, sample index, ...) into one seed.
pub(crate) fn mix(seed: u64, parts: &[u64]) -> u64 {
    let mut h = finalize(seed ^ 0x6A09_E667_F3BC_C908);
    for &p in parts {
        h = finalize(h.wrapping_add(0x9E37_79B9_7F4A_7C15) ^ p.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_workloads_reference_outputs() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn derived_streams_differ_by_part_and_order() {
        assert_ne!(mix(1, &[0, 1]), mix(1, &[1, 0]));
        assert_ne!(mix(1, &[0]), mix(2, &[0]));
        assert_eq!(mix(7, &[3, 4]), mix(7, &[3, 4]));
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = SplitMix64::new(42);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / f64::from(n);
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn normal_pairs_have_unit_moments_and_no_correlation() {
        let mut rng = SplitMix64::new(7);
        let n = 100_000;
        let pairs: Vec<(f64, f64)> = (0..n).map(|_| rng.normal_pair()).collect();
        let xs: Vec<f64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        let cov = pairs.iter().map(|&(a, b)| a * b).sum::<f64>() / f64::from(n);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        assert!(cov.abs() < 0.02, "covariance {cov}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = SplitMix64::new(3);
        let mut v: Vec<usize> = (0..100).collect();
        rng.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}
