//! Counter-based randomness for per-pixel work: every value is a pure function of a seed
//! and coordinates, so rows can be rendered in any order on any number of threads and
//! still give byte-identical photos.

/// Mixes 64 bits into 64 well-spread bits (the SplitMix64 finaliser).
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a seed and two coordinates.
#[inline]
pub(crate) fn hash2(seed: u64, x: i64, y: i64) -> u64 {
    mix(seed ^ mix((x as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (y as u64).rotate_left(32)))
}

/// Uniform value in [-1, 1) from a hash.
#[inline]
pub(crate) fn unit(h: u64) -> f32 {
    (h >> 40) as f32 * (2.0 / (1u64 << 24) as f32) - 1.0
}

/// Approximately standard-normal value from a hash (sum of four 16-bit uniforms,
/// rescaled to unit variance): cheap, and plenty for sensor noise.
#[inline]
pub(crate) fn gauss(h: u64) -> f32 {
    let s = (h & 0xFFFF) + ((h >> 16) & 0xFFFF) + ((h >> 32) & 0xFFFF) + (h >> 48);
    // Mean of the sum is 2 * 65535, variance 4 * 65536^2 / 12.
    (s as f32 - 131_070.0) * (3.0f32.sqrt() / 65_536.0)
}

/// Derives an independent sub-seed for a named purpose.
#[inline]
pub(crate) fn derive(seed: u64, purpose: u64) -> u64 {
    mix(seed ^ mix(purpose.wrapping_mul(0xA076_1D64_78BD_642F)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_has_zero_mean_and_unit_variance() {
        let n = 200_000;
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        for i in 0..n {
            let g = gauss(hash2(7, i, 3)) as f64;
            sum += g;
            sq += g * g;
        }
        let mean = sum / n as f64;
        let var = sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn unit_stays_in_range_and_covers_it() {
        let vals: Vec<f32> = (0..10_000).map(|i| unit(hash2(1, i, -i))).collect();
        assert!(vals.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(vals.iter().any(|&v| v < -0.99) && vals.iter().any(|&v| v > 0.99));
    }
}
