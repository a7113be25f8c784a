//! Colour filter array planes and the three demosaicing methods of the simulated cameras.
//! Planes carry a two-pixel mirrored border (reflect-101, which keeps the CFA parity), so
//! 5x5 filters need no bounds checks.

use super::cameras::{Cfa, Demosaic};
use rayon::prelude::*;

/// Border width of a [`Padded`] plane.
pub(crate) const PAD: usize = 2;

/// A single-channel plane with a mirrored border of [`PAD`] pixels.
#[derive(Debug, Clone)]
pub(crate) struct Padded {
    pub(crate) data: Vec<f32>,
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) stride: usize,
}

impl Padded {
    /// A zeroed plane.
    pub(crate) fn new(width: usize, height: usize) -> Padded {
        let stride = width + 2 * PAD;
        Padded {
            data: vec![0.0; stride * (height + 2 * PAD)],
            width,
            height,
            stride,
        }
    }

    /// Index of interior pixel (x, y).
    #[inline]
    pub(crate) fn index(&self, x: usize, y: usize) -> usize {
        (y + PAD) * self.stride + x + PAD
    }

    /// Interior rows, for filling in parallel.
    pub(crate) fn rows_mut(&mut self) -> impl IndexedParallelIterator<Item = &mut [f32]> {
        let (stride, w, h) = (self.stride, self.width, self.height);
        self.data[PAD * stride..(PAD + h) * stride]
            .par_chunks_mut(stride)
            .map(move |r| &mut r[PAD..PAD + w])
    }

    /// Fills the border by mirroring the interior (reflect-101: -1 -> 1, w -> w - 2).
    /// Planes must be at least 3 pixels in each direction.
    pub(crate) fn fill_border(&mut self) {
        let (w, h, s) = (self.width, self.height, self.stride);
        for y in PAD..PAD + h {
            let row = &mut self.data[y * s..(y + 1) * s];
            for k in 1..=PAD {
                row[PAD - k] = row[PAD + k];
                row[PAD + w - 1 + k] = row[PAD + w - 1 - k];
            }
        }
        for k in 1..=PAD {
            self.data
                .copy_within((PAD + k) * s..(PAD + k + 1) * s, (PAD - k) * s);
            let (src, dst) = (PAD + h - 1 - k, PAD + h - 1 + k);
            self.data.copy_within(src * s..(src + 1) * s, dst * s);
        }
    }
}

/// Taps of a linear filter: (offset in the padded plane, weight).
type Taps = Vec<(isize, f32)>;

/// For each CFA position and output channel, the taps that produce it.
struct Filters {
    taps: [[Taps; 3]; 4],
}

// Malvar-He-Cutler kernels (x8), rows are dy = -2..=2, columns dx = -2..=2.
const G_AT_RB: [[f32; 5]; 5] = [
    [0.0, 0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 2.0, 0.0, 0.0],
    [-1.0, 2.0, 4.0, 2.0, -1.0],
    [0.0, 0.0, 2.0, 0.0, 0.0],
    [0.0, 0.0, -1.0, 0.0, 0.0],
];
/// Red (blue) at a green site whose row holds red (blue); the transpose serves columns.
const RB_AT_G_ROW: [[f32; 5]; 5] = [
    [0.0, 0.0, 0.5, 0.0, 0.0],
    [0.0, -1.0, 0.0, -1.0, 0.0],
    [-1.0, 4.0, 5.0, 4.0, -1.0],
    [0.0, -1.0, 0.0, -1.0, 0.0],
    [0.0, 0.0, 0.5, 0.0, 0.0],
];
const RB_AT_BR: [[f32; 5]; 5] = [
    [0.0, 0.0, -1.5, 0.0, 0.0],
    [0.0, 2.0, 0.0, 2.0, 0.0],
    [-1.5, 0.0, 6.0, 0.0, -1.5],
    [0.0, 2.0, 0.0, 2.0, 0.0],
    [0.0, 0.0, -1.5, 0.0, 0.0],
];

fn colour_at(cfa: &[usize; 4], qx: usize, qy: usize, dx: isize, dy: isize) -> usize {
    let x = (qx as isize + dx).rem_euclid(2) as usize;
    let y = (qy as isize + dy).rem_euclid(2) as usize;
    cfa[x + 2 * y]
}

impl Filters {
    fn new(cfa: Cfa, malvar: bool, stride: usize) -> Filters {
        let ch = cfa.channels();
        let s = stride as isize;
        let taps = std::array::from_fn(|q| {
            let (qx, qy) = (q & 1, q >> 1);
            std::array::from_fn(|c| {
                if ch[q] == c {
                    return vec![(0, 1.0)];
                }
                if malvar {
                    let kernel = if c == 1 {
                        G_AT_RB
                    } else if ch[q] == 1 {
                        if colour_at(&ch, qx, qy, 1, 0) == c {
                            RB_AT_G_ROW
                        } else {
                            std::array::from_fn(|i| std::array::from_fn(|j| RB_AT_G_ROW[j][i]))
                        }
                    } else {
                        RB_AT_BR
                    };
                    let mut t = Vec::new();
                    for (i, row) in kernel.iter().enumerate() {
                        for (j, &k) in row.iter().enumerate() {
                            if k != 0.0 {
                                t.push(((i as isize - 2) * s + j as isize - 2, k / 8.0));
                            }
                        }
                    }
                    t
                } else {
                    let near: Vec<(isize, isize)> = (-1..=1)
                        .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                        .filter(|&(dx, dy)| colour_at(&ch, qx, qy, dx, dy) == c)
                        .collect();
                    let w = 1.0 / near.len() as f32;
                    near.iter().map(|&(dx, dy)| (dy * s + dx, w)).collect()
                }
            })
        });
        Filters { taps }
    }

    #[inline]
    fn apply(&self, data: &[f32], q: usize, c: usize, i: usize) -> f32 {
        self.taps[q][c]
            .iter()
            .map(|&(o, w)| data[(i as isize + o) as usize] * w)
            .sum()
    }
}

/// Demosaics a padded mosaic into `out` (row-major linear RGB), rows in parallel;
/// `finish` then runs on each row while it is still in cache.
pub(crate) fn demosaic<F>(m: &Padded, cfa: Cfa, method: Demosaic, out: &mut [[f32; 3]], finish: F)
where
    F: Fn(&mut [[f32; 3]]) + Sync,
{
    let ch = cfa.channels();
    let neighbours = Filters::new(cfa, false, m.stride);
    let green = (method == Demosaic::EdgeDirected).then(|| edge_directed_green(m, &ch));
    let filters = match method {
        Demosaic::Malvar => Filters::new(cfa, true, m.stride),
        _ => Filters::new(cfa, false, m.stride),
    };
    out.par_chunks_mut(m.width)
        .enumerate()
        .for_each(|(y, row)| {
            for (x, px) in row.iter_mut().enumerate() {
                let q = (x & 1) + 2 * (y & 1);
                let i = m.index(x, y);
                *px = match &green {
                    None => std::array::from_fn(|c| filters.apply(&m.data, q, c, i)),
                    Some(g) => std::array::from_fn(|c| {
                        if c == 1 {
                            g.data[i]
                        } else if ch[q] == c {
                            m.data[i]
                        } else {
                            // Interpolate the colour difference, not the colour.
                            g.data[i]
                                + neighbours.taps[q][c]
                                    .iter()
                                    .map(|&(o, w)| {
                                        let j = (i as isize + o) as usize;
                                        (m.data[j] - g.data[j]) * w
                                    })
                                    .sum::<f32>()
                        }
                    }),
                };
            }
            finish(row);
        });
}

/// Green everywhere: at red and blue sites, interpolated along the direction (horizontal
/// or vertical) with the smaller gradient, with a second-order correction from the site's
/// own colour.
fn edge_directed_green(m: &Padded, ch: &[usize; 4]) -> Padded {
    let mut g = Padded::new(m.width, m.height);
    let s = m.stride;
    g.rows_mut().enumerate().for_each(|(y, row)| {
        for (x, out) in row.iter_mut().enumerate() {
            let i = m.index(x, y);
            let d = &m.data;
            if ch[(x & 1) + 2 * (y & 1)] == 1 {
                *out = d[i];
                continue;
            }
            let lap_h = 2.0 * d[i] - d[i - 2] - d[i + 2];
            let lap_v = 2.0 * d[i] - d[i - 2 * s] - d[i + 2 * s];
            let grad_h = (d[i - 1] - d[i + 1]).abs() + lap_h.abs();
            let grad_v = (d[i - s] - d[i + s]).abs() + lap_v.abs();
            let est_h = (d[i - 1] + d[i + 1]) * 0.5 + lap_h * 0.25;
            let est_v = (d[i - s] + d[i + s]) * 0.5 + lap_v * 0.25;
            *out = if grad_h < grad_v {
                est_h
            } else if grad_v < grad_h {
                est_v
            } else {
                (est_h + est_v) * 0.5
            };
        }
    });
    g.fill_border();
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels this close to the edge see mirrored (non-linear) neighbourhoods.
    const MARGIN: usize = 3;

    /// Mosaics a colour field, demosaics it, returns the mean absolute error away from
    /// the mirrored borders.
    fn round_trip(
        cfa: Cfa,
        method: Demosaic,
        field: impl Fn(usize, usize) -> [f32; 3] + Sync,
    ) -> f32 {
        let (w, h) = (40, 30);
        let ch = cfa.channels();
        let mut m = Padded::new(w, h);
        m.rows_mut().enumerate().for_each(|(y, row)| {
            for (x, v) in row.iter_mut().enumerate() {
                *v = field(x, y)[ch[(x & 1) + 2 * (y & 1)]];
            }
        });
        m.fill_border();
        let mut out = vec![[0.0; 3]; w * h];
        demosaic(&m, cfa, method, &mut out, |_| {});
        let mut total = 0.0;
        for y in MARGIN..h - MARGIN {
            for x in MARGIN..w - MARGIN {
                let (got, want) = (out[y * w + x], field(x, y));
                total += (0..3).map(|c| (got[c] - want[c]).abs()).sum::<f32>();
            }
        }
        total / ((w - 2 * MARGIN) * (h - 2 * MARGIN) * 3) as f32
    }

    #[test]
    fn every_method_reproduces_flat_and_linear_colour_exactly_enough() {
        for cfa in [Cfa::Rggb, Cfa::Bggr, Cfa::Grbg, Cfa::Gbrg] {
            for method in [Demosaic::Bilinear, Demosaic::Malvar, Demosaic::EdgeDirected] {
                let flat = round_trip(cfa, method, |_, _| [0.2, 0.5, 0.7]);
                assert!(flat < 1e-5, "{cfa:?} {method:?} flat error {flat}");
                let ramp = round_trip(cfa, method, |x, y| {
                    [
                        0.1 + 0.01 * x as f32,
                        0.2 + 0.005 * y as f32,
                        0.3 + 0.002 * (x + y) as f32,
                    ]
                });
                assert!(ramp < 1e-5, "{cfa:?} {method:?} ramp error {ramp}");
            }
        }
    }

    #[test]
    fn methods_differ_on_edges() {
        let edge = |x: usize, y: usize| {
            if x + y / 2 < 20 {
                [0.8, 0.6, 0.2]
            } else {
                [0.1, 0.2, 0.4]
            }
        };
        let errors: Vec<f32> = [Demosaic::Bilinear, Demosaic::Malvar, Demosaic::EdgeDirected]
            .iter()
            .map(|&m| round_trip(Cfa::Rggb, m, edge))
            .collect();
        assert!(errors.iter().all(|&e| e > 0.0));
        assert!(errors[0] != errors[1] && errors[1] != errors[2] && errors[0] != errors[2]);
    }

    #[test]
    fn border_mirrors_keep_cfa_parity() {
        let mut p = Padded::new(4, 3);
        p.rows_mut().enumerate().for_each(|(y, row)| {
            for (x, v) in row.iter_mut().enumerate() {
                *v = (10 * y + x) as f32;
            }
        });
        p.fill_border();
        let at = |x: isize, y: isize| {
            p.data[((y + PAD as isize) * p.stride as isize + x + PAD as isize) as usize]
        };
        assert_eq!(at(-1, 0), 1.0);
        assert_eq!(at(-2, 0), 2.0);
        assert_eq!(at(4, 0), 2.0);
        assert_eq!(at(0, -1), 10.0);
        assert_eq!(at(1, 3), 11.0);
        assert_eq!(at(-2, -2), 22.0);
    }
}
