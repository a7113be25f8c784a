//! Procedural scenes in linear light: a tinted gradient (sky to ground, or a wall), an
//! optional horizon edge, discs, rotated rectangles and striped panels with soft or hard
//! edges, each flat or textured with value noise at several scales, under a slowly varying
//! illumination. Rendered one row at a time, painter's order.

use super::hash::derive;
use super::noise::Fbm;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What kind of content photos show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SceneStyle {
    /// Gradients, shapes, edges, flat regions and textures at several scales.
    #[default]
    Natural,
    /// Smooth gradients and illumination only: useful for looking at sensor noise.
    Flat,
}

#[derive(Debug, Clone)]
enum Kind {
    Disc {
        cx: f32,
        cy: f32,
        r: f32,
    },
    /// Rotated rectangle: centre, unit axis, half sizes; `period` > 0 draws stripes
    /// across the axis in `colour` and `colour2`.
    Rect {
        cx: f32,
        cy: f32,
        ux: f32,
        uy: f32,
        hw: f32,
        hh: f32,
        period: f32,
    },
}

#[derive(Debug, Clone)]
struct Shape {
    kind: Kind,
    colour: [f32; 3],
    colour2: [f32; 3],
    texture: f32,
    /// Edge width in pixels (defocus).
    soft: f32,
    /// Bounding box, clipped to the image: x0, x1 (exclusive), y0, y1 (exclusive).
    bbox: [usize; 4],
}

/// A straight edge across the whole image (a horizon): the side where
/// `nx * x + ny * y > d` gets another colour and texture.
#[derive(Debug, Clone)]
struct Horizon {
    normal: (f32, f32),
    d: f32,
    colour: [f32; 3],
    texture: f32,
}

/// A scene ready to be rendered row by row.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    width: usize,
    top: [f32; 3],
    bottom: [f32; 3],
    /// Gradient direction scaled so that the projection runs over 0..1 across the image.
    grad: (f32, f32, f32),
    horizon: Option<Horizon>,
    background_texture: f32,
    shapes: Vec<Shape>,
    texture: Fbm,
    light: Fbm,
    light_amount: f32,
    tint: [Fbm; 2],
    tint_amount: f32,
}

/// Scratch buffers for rendering one row.
#[derive(Default)]
pub(crate) struct RowScratch {
    colour: Vec<[f32; 3]>,
    amount: Vec<f32>,
    texture: Vec<f32>,
    light: Vec<f32>,
    tint: [Vec<f32>; 2],
    cols: Vec<f32>,
}

/// A natural-looking colour in linear light: any hue, mostly moderate saturation.
fn colour(rng: &mut ChaCha8Rng, value: (f32, f32)) -> [f32; 3] {
    let h = rng.random::<f32>() * 6.0;
    let s = rng.random::<f32>().powf(1.5) * 0.8;
    let v = rng.random_range(value.0..value.1);
    let f = h.fract();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let rgb = match h as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    };
    rgb.map(|c| c.powf(2.2))
}

#[inline]
fn clamp01(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}

impl Scene {
    /// Draws a scene. `detail` scales texture and shape sizes (longer lenses show larger
    /// features).
    pub(crate) fn new(
        rng: &mut ChaCha8Rng,
        seed: u64,
        style: SceneStyle,
        width: usize,
        height: usize,
        detail: f32,
    ) -> Scene {
        let (w, h) = (width as f32, height as f32);
        let min_dim = w.min(h);
        let angle = rng.random_range(-0.4f32..0.4) + std::f32::consts::FRAC_PI_2;
        let (dx, dy) = (angle.cos(), angle.sin());
        let span = (dx * w).abs() + (dy * h).abs();
        let origin = (dx * w).min(0.0) + (dy * h).min(0.0);
        let grad = (dx / span, dy / span, -origin / span);
        let flat = style == SceneStyle::Flat;
        let (top, bottom) = if flat {
            (colour(rng, (0.35, 0.75)), colour(rng, (0.35, 0.75)))
        } else {
            (colour(rng, (0.3, 0.95)), colour(rng, (0.05, 0.7)))
        };
        let horizon = (!flat && rng.random_bool(0.6)).then(|| {
            let a = angle + rng.random_range(-0.15f32..0.15);
            let (nx, ny) = (a.cos(), a.sin());
            let cut = rng.random_range(0.3f32..0.75);
            let d = nx * w * 0.5 + ny * h * cut;
            Horizon {
                normal: (nx, ny),
                d,
                colour: colour(rng, (0.05, 0.6)),
                texture: rng.random_range(0.1f32..0.6),
            }
        });
        let mut shapes = Vec::new();
        if !flat {
            let n = rng.random_range(4..=36);
            for _ in 0..n {
                shapes.push(Self::shape(rng, w, h, min_dim * detail.sqrt()));
            }
        }
        let coarse = min_dim / 4.0;
        Scene {
            width,
            top,
            bottom,
            grad,
            horizon,
            background_texture: if flat || rng.random_bool(0.4) {
                0.0
            } else {
                rng.random_range(0.05..0.4)
            },
            shapes,
            texture: Fbm::new(
                derive(seed, 10),
                width,
                rng.random_range(1.5f32..3.0) * detail,
                coarse.max(8.0),
                rng.random_range(0.0f32..0.7),
            ),
            light: Fbm::new(derive(seed, 11), width, min_dim / 5.0, min_dim / 2.0, 1.0),
            light_amount: rng.random_range(0.1..0.5),
            tint: [
                Fbm::new(derive(seed, 12), width, min_dim / 3.0, min_dim / 3.0, 1.0),
                Fbm::new(derive(seed, 13), width, min_dim / 3.0, min_dim / 3.0, 1.0),
            ],
            tint_amount: rng.random_range(0.0..0.3),
        }
    }

    fn shape(rng: &mut ChaCha8Rng, w: f32, h: f32, size: f32) -> Shape {
        let (cx, cy) = (
            rng.random_range(-0.1..1.1) * w,
            rng.random_range(-0.1..1.1) * h,
        );
        // Log-uniform sizes from 1.5 % to 35 % of the (scaled) short side.
        let r = size * (0.015f32.ln() + rng.random::<f32>() * (0.35f32 / 0.015).ln()).exp();
        let soft = if rng.random_bool(0.5) {
            0.7
        } else {
            rng.random_range(1.0..6.0)
        };
        let kind = match rng.random_range(0..10) {
            0..=3 => Kind::Disc { cx, cy, r },
            k => {
                let a = rng.random::<f32>() * std::f32::consts::PI;
                let aspect = rng.random_range(0.2f32..1.0);
                let period = if k >= 8 {
                    rng.random_range(3.0f32..40.0)
                } else {
                    0.0
                };
                let (hw, hh) = (r, r * aspect);
                Kind::Rect {
                    cx,
                    cy,
                    ux: a.cos(),
                    uy: a.sin(),
                    hw,
                    hh,
                    period,
                }
            }
        };
        let extent = match kind {
            Kind::Disc { r, .. } => r,
            Kind::Rect { hw, hh, .. } => (hw * hw + hh * hh).sqrt(),
        } + soft;
        let clip = |v: f32, max: f32| v.clamp(0.0, max) as usize;
        let bbox = [
            clip(cx - extent, w),
            clip(cx + extent + 1.0, w),
            clip(cy - extent, h),
            clip(cy + extent + 1.0, h),
        ];
        let texture = if rng.random_bool(0.35) {
            0.0
        } else {
            rng.random_range(0.05..0.6)
        };
        let mut colour1 = colour(rng, (0.03, 0.95));
        if rng.random_bool(0.03) {
            colour1 = colour1.map(|c| c * 4.0); // a light source: clips in the sensor
        }
        Shape {
            kind,
            colour: colour1,
            colour2: colour(rng, (0.03, 0.9)),
            texture,
            soft,
            bbox,
        }
    }

    /// Renders row `y` as linear RGB radiance (about 0..1, light sources above).
    pub(crate) fn render_row(&self, y: usize, s: &mut RowScratch, out: &mut [[f32; 3]]) {
        let w = self.width;
        let fy = y as f32 + 0.5;
        s.colour.clear();
        s.amount.clear();
        let (gx, gy, g0) = self.grad;
        for x in 0..w {
            let t = clamp01(gx * (x as f32 + 0.5) + gy * fy + g0);
            let mut c = [0.0; 3];
            for (k, ck) in c.iter_mut().enumerate() {
                *ck = self.top[k] + (self.bottom[k] - self.top[k]) * t;
            }
            let mut amount = self.background_texture;
            if let Some(hz) = &self.horizon {
                let (nx, ny) = hz.normal;
                let cov = clamp01(nx * (x as f32 + 0.5) + ny * fy - hz.d + 0.5);
                for (k, ck) in c.iter_mut().enumerate() {
                    *ck += (hz.colour[k] - *ck) * cov;
                }
                amount += (hz.texture - amount) * cov;
            }
            s.colour.push(c);
            s.amount.push(amount);
        }
        for shape in &self.shapes {
            let [x0, x1, y0, y1] = shape.bbox;
            if y < y0 || y >= y1 {
                continue;
            }
            for x in x0..x1 {
                let px = x as f32 + 0.5;
                let (inside, c) = match shape.kind {
                    Kind::Disc { cx, cy, r } => (
                        r - ((px - cx) * (px - cx) + (fy - cy) * (fy - cy)).sqrt(),
                        shape.colour,
                    ),
                    Kind::Rect {
                        cx,
                        cy,
                        ux,
                        uy,
                        hw,
                        hh,
                        period,
                    } => {
                        let a = (px - cx) * ux + (fy - cy) * uy;
                        let b = (fy - cy) * ux - (px - cx) * uy;
                        let d = (hw - a.abs()).min(hh - b.abs());
                        if period > 0.0 {
                            // Distance to the nearest stripe boundary, signed.
                            let tri = (2.0 * (a / period).rem_euclid(1.0) - 1.0).abs();
                            let m = clamp01((tri - 0.5) * period * 0.5 + 0.5);
                            let mut c = shape.colour;
                            for (k, ck) in c.iter_mut().enumerate() {
                                *ck += (shape.colour2[k] - *ck) * m;
                            }
                            (d, c)
                        } else {
                            (d, shape.colour)
                        }
                    }
                };
                let cov = clamp01(inside / shape.soft + 0.5);
                if cov > 0.0 {
                    let dst = &mut s.colour[x];
                    for k in 0..3 {
                        dst[k] += (c[k] - dst[k]) * cov;
                    }
                    s.amount[x] += (shape.texture - s.amount[x]) * cov;
                }
            }
        }
        let [tint0, tint1] = &mut s.tint;
        for buf in [&mut s.texture, &mut s.light, tint0, tint1] {
            buf.clear();
            buf.resize(w, 0.0);
        }
        if s.amount.iter().any(|&a| a > 0.0) {
            self.texture.add_row(y, 1.0, &mut s.texture, &mut s.cols);
        }
        self.light
            .add_row(y, self.light_amount, &mut s.light, &mut s.cols);
        self.tint[0].add_row(y, self.tint_amount, &mut s.tint[0], &mut s.cols);
        self.tint[1].add_row(y, self.tint_amount, &mut s.tint[1], &mut s.cols);
        for (x, o) in out.iter_mut().enumerate().take(w) {
            let m = (1.0 + s.amount[x] * 2.0 * s.texture[x]).max(0.0) * (1.0 + s.light[x]);
            let c = s.colour[x];
            *o = [
                c[0] * m * (1.0 + s.tint[0][x]),
                c[1] * m,
                c[2] * m * (1.0 + s.tint[1][x]),
            ];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn render(style: SceneStyle, seed: u64) -> Vec<[f32; 3]> {
        let (w, h) = (160, 120);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scene = Scene::new(&mut rng, seed, style, w, h, 1.0);
        let mut img = vec![[0.0; 3]; w * h];
        let mut s = RowScratch::default();
        for (y, row) in img.chunks_mut(w).enumerate() {
            scene.render_row(y, &mut s, row);
        }
        img
    }

    /// Mean absolute difference between horizontally adjacent green values.
    fn roughness(img: &[[f32; 3]]) -> f32 {
        img.windows(2)
            .map(|p| (p[1][1] - p[0][1]).abs())
            .sum::<f32>()
            / img.len() as f32
    }

    #[test]
    fn natural_scenes_have_more_detail_than_flat_ones() {
        let natural: f32 = (0..4)
            .map(|s| roughness(&render(SceneStyle::Natural, s)))
            .sum();
        let flat: f32 = (0..4)
            .map(|s| roughness(&render(SceneStyle::Flat, s)))
            .sum();
        assert!(natural > 3.0 * flat, "natural {natural} flat {flat}");
    }

    #[test]
    fn radiance_is_finite_non_negative_and_seed_dependent() {
        let a = render(SceneStyle::Natural, 1);
        assert!(a.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
        assert_ne!(a, render(SceneStyle::Natural, 2));
        assert_eq!(a, render(SceneStyle::Natural, 1));
    }
}
