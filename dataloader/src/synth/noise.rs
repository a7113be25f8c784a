//! Value noise summed over octaves (fractal Brownian motion), evaluated a row at a time:
//! the lattice values of a row are interpolated vertically once, then every pixel only
//! interpolates horizontally between two of them.

use super::hash::{derive, hash2, unit};

/// One octave: a random lattice with cells `spacing` pixels wide.
#[derive(Debug, Clone)]
struct Octave {
    spacing: f32,
    weight: f32,
    seed: u64,
    /// Offset of the lattice in pixels, so octaves do not line up at the origin.
    offset: (f32, f32),
    /// First lattice column used by the row.
    i0: i64,
    /// Per pixel: lattice column relative to `i0`, and smoothed weight of the next one.
    xi: Vec<u32>,
    xw: Vec<f32>,
}

/// A sum of value-noise octaves; values lie in [-1, 1].
#[derive(Debug, Clone)]
pub(crate) struct Fbm {
    octaves: Vec<Octave>,
}

#[inline]
fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

impl Fbm {
    /// Octaves from `finest` to `coarsest` pixels, each twice the previous; the amplitude
    /// of an octave grows as `spacing^roughness` (1 gives the 1/f spectrum of natural
    /// images, smaller values stress fine texture). Weights sum to 1.
    pub(crate) fn new(seed: u64, width: usize, finest: f32, coarsest: f32, roughness: f32) -> Fbm {
        let mut spacings = vec![finest.max(1.5)];
        while *spacings.last().unwrap_or(&coarsest) * 2.0 <= coarsest {
            let next = spacings[spacings.len() - 1] * 2.0;
            spacings.push(next);
        }
        let raw: Vec<f32> = spacings.iter().map(|s| s.powf(roughness)).collect();
        let total: f32 = raw.iter().sum();
        let octaves = spacings
            .iter()
            .zip(&raw)
            .enumerate()
            .map(|(k, (&spacing, &w))| {
                let seed = derive(seed, k as u64);
                let offset = (
                    (unit(derive(seed, 1)) + 1.0) * 1000.0,
                    (unit(derive(seed, 2)) + 1.0) * 1000.0,
                );
                let i0 = (offset.0 / spacing).floor() as i64;
                let (xi, xw) = (0..width)
                    .map(|x| {
                        let fx = (x as f32 + offset.0) / spacing;
                        let i = fx.floor();
                        ((i as i64 - i0) as u32, smooth(fx - i))
                    })
                    .unzip();
                Octave {
                    spacing,
                    weight: w / total,
                    seed,
                    offset,
                    i0,
                    xi,
                    xw,
                }
            })
            .collect();
        Fbm { octaves }
    }

    /// Adds `scale` times the noise of row `y` to `out` (one value per pixel); `cols` is
    /// scratch space.
    pub(crate) fn add_row(&self, y: usize, scale: f32, out: &mut [f32], cols: &mut Vec<f32>) {
        for o in &self.octaves {
            let fy = (y as f32 + o.offset.1) / o.spacing;
            let j = fy.floor();
            let wy = smooth(fy - j);
            let j = j as i64;
            let ncols = o.xi.last().map_or(0, |&i| i as usize + 2);
            cols.clear();
            cols.extend((0..ncols as i64).map(|k| {
                let a = unit(hash2(o.seed, o.i0 + k, j));
                let b = unit(hash2(o.seed, o.i0 + k, j + 1));
                a + (b - a) * wy
            }));
            let w = o.weight * scale;
            for ((v, &i), &t) in out.iter_mut().zip(&o.xi).zip(&o.xw) {
                let a = cols[i as usize];
                let b = cols[i as usize + 1];
                *v += w * (a + (b - a) * t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: &Fbm, w: usize, h: usize) -> Vec<f32> {
        let mut img = vec![0.0; w * h];
        let mut cols = Vec::new();
        for (y, row) in img.chunks_mut(w).enumerate() {
            f.add_row(y, 1.0, row, &mut cols);
        }
        img
    }

    #[test]
    fn values_are_bounded_and_vary() {
        let f = Fbm::new(3, 200, 2.0, 64.0, 0.8);
        let img = render(&f, 200, 100);
        assert!(img.iter().all(|v| v.abs() <= 1.0));
        let mean = img.iter().sum::<f32>() / img.len() as f32;
        let var = img.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / img.len() as f32;
        assert!(var > 0.005, "variance {var}");
    }

    #[test]
    fn coarse_noise_is_smoother_than_fine_noise() {
        let step = |img: &[f32]| {
            img.windows(2).map(|p| (p[1] - p[0]).abs()).sum::<f32>() / img.len() as f32
        };
        let fine = render(&Fbm::new(5, 300, 2.0, 4.0, 1.0), 300, 50);
        let coarse = render(&Fbm::new(5, 300, 64.0, 128.0, 1.0), 300, 50);
        assert!(
            step(&fine) > 5.0 * step(&coarse),
            "{} vs {}",
            step(&fine),
            step(&coarse)
        );
    }

    #[test]
    fn same_seed_same_rows_regardless_of_width() {
        let a = render(&Fbm::new(9, 64, 3.0, 48.0, 1.0), 64, 8);
        let b = render(&Fbm::new(9, 128, 3.0, 48.0, 1.0), 128, 8);
        for y in 0..8 {
            assert_eq!(&a[y * 64..(y + 1) * 64], &b[y * 128..y * 128 + 64]);
        }
    }
}
