//! The radial-distortion probe: crops of real photos distorted by the one-parameter radial
//! model `r_d = r_u (1 + k1 r_u^2)` with `k1` uniform in a range, the classes being equal
//! bins of `k1`.
//!
//! Geometry. Coordinates are taken from pixel centres (`x + 0.5`), relative to the crop's
//! centre, divided by the crop's full diagonal (`side * sqrt 2`): a corner is at
//! `r = 1/2`. (With the half diagonal at 1, the model has no undistorted radius for the
//! corners once `k1 < -4/27`; on this scale every `k1 > -16/27` is invertible over the
//! whole crop, the paper's `[-0.4, 0]` included.) The output is the *distorted* image: for
//! each output pixel at `r_d`, Newton's method solves `r_u (1 + k1 r_u^2) = r_d` on the
//! monotone branch, and the photo is sampled bilinearly at `r_u` in the same direction.
//! The photo window read is larger than the crop (`source_side`), so no output pixel falls
//! outside the photo.

use std::path::PathBuf;

use image::RgbImage;
use kernels::resnet::ImageTower;

use super::{
    run_probe, split_photos, tower_features, ProbeError, ProbeOptions, ProbeResult, Rng, Skips,
};

/// Lowest `k1` the crop geometry can invert at its corners (exclusive).
pub const K1_LIMIT: f64 = -16.0 / 27.0;

/// Settings of the radial probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RadialParams {
    /// Side of the distorted crops (the paper: 512).
    pub crop: u32,
    /// Distorted crops per photo (each its own `k1` and position).
    pub per_photo: usize,
    /// Classes: equal bins of `k1` over `[k1_min, k1_max)`.
    pub bins: usize,
    /// Lower end of `k1`.
    pub k1_min: f64,
    /// Upper end of `k1`.
    pub k1_max: f64,
}

impl Default for RadialParams {
    fn default() -> Self {
        Self {
            crop: 256,
            per_photo: 4,
            bins: 20,
            k1_min: -0.4,
            k1_max: 0.0,
        }
    }
}

impl RadialParams {
    /// Checks the settings; the error names the bad one.
    pub fn validate(&self) -> Result<(), ProbeError> {
        let bad = |m: String| Err(ProbeError::Input(m));
        if self.crop < 8 {
            return bad(format!("crop must be at least 8 px, got {}", self.crop));
        }
        if self.bins < 2 || self.per_photo == 0 {
            return bad(format!(
                "bins must be >= 2 and per_photo >= 1, got {} and {}",
                self.bins, self.per_photo
            ));
        }
        if !(self.k1_min > K1_LIMIT && self.k1_min < self.k1_max && self.k1_max <= 1.0) {
            return bad(format!(
                "k1 range [{}, {}) must lie within ({K1_LIMIT:.4}, 1] and not be empty",
                self.k1_min, self.k1_max
            ));
        }
        Ok(())
    }

    /// The class of `k1`.
    pub fn bin(&self, k1: f64) -> usize {
        let t = (k1 - self.k1_min) / (self.k1_max - self.k1_min);
        ((t * self.bins as f64).floor().max(0.0) as usize).min(self.bins - 1)
    }
}

/// The undistorted radius whose distorted radius is `r_d` (`r_u + k1 r_u^3 = r_d`), on the
/// branch where the model increases; `None` when `r_d` is beyond that branch's reach.
pub fn undistort_radius(r_d: f64, k1: f64) -> Option<f64> {
    if k1 < 0.0 {
        let r_top = (-1.0 / (3.0 * k1)).sqrt();
        if r_d > r_top * (1.0 + k1 * r_top * r_top) {
            return None;
        }
    }
    // Newton from r_d: g is concave for k1 < 0 (convex for k1 > 0) with g(r_d) on the
    // near side of the root, so the iterates approach it monotonically.
    let mut r = r_d;
    for _ in 0..50 {
        let g = r + k1 * r * r * r - r_d;
        let step = g / (1.0 + 3.0 * k1 * r * r);
        r -= step;
        if step.abs() < 1e-13 {
            break;
        }
    }
    Some(r)
}

/// Side of the photo window a distorted crop of side `crop` reads, for `k1 >= k1_min`.
pub fn source_side(crop: u32, k1_min: f64) -> u32 {
    let k = k1_min.min(0.0);
    let ratio = undistort_radius(0.5, k).map_or(2.0, |r| r / 0.5);
    (f64::from(crop) * ratio).ceil() as u32 + 2
}

/// The distorted crop (side `crop`, HWC bytes) of the square photo window `source`, whose
/// centre is the crop's centre. `source` must be at least [`source_side`] wide.
pub fn distort(source: &RgbImage, crop: u32, k1: f64) -> Vec<u8> {
    let (sw, sh) = (source.width() as f64, source.height() as f64);
    let diag = f64::from(crop) * std::f64::consts::SQRT_2;
    let half = f64::from(crop) / 2.0;
    let mut out = Vec::with_capacity((crop * crop * 3) as usize);
    for y in 0..crop {
        for x in 0..crop {
            let xd = (f64::from(x) + 0.5 - half) / diag;
            let yd = (f64::from(y) + 0.5 - half) / diag;
            let r_d = (xd * xd + yd * yd).sqrt();
            let scale = if r_d > 0.0 {
                undistort_radius(r_d, k1).map_or(f64::NAN, |r_u| r_u / r_d)
            } else {
                1.0
            };
            // Back to the window's pixel-index coordinates (centre at side / 2 - 0.5).
            let sx = xd * scale * diag + sw / 2.0 - 0.5;
            let sy = yd * scale * diag + sh / 2.0 - 0.5;
            out.extend_from_slice(&bilinear(source, sx, sy));
        }
    }
    out
}

fn bilinear(img: &RgbImage, x: f64, y: f64) -> [u8; 3] {
    if !x.is_finite() || !y.is_finite() {
        return [0; 3];
    }
    let (w, h) = (img.width() as f64, img.height() as f64);
    let x = x.clamp(0.0, w - 1.0);
    let y = y.clamp(0.0, h - 1.0);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as u32, y0 as u32);
    let x1 = (x0 + 1).min(img.width() - 1);
    let y1 = (y0 + 1).min(img.height() - 1);
    let p = |xx, yy| img.get_pixel(xx, yy).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    let mut px = [0u8; 3];
    for ch in 0..3 {
        let top = f64::from(a[ch]) * (1.0 - fx) + f64::from(b[ch]) * fx;
        let bottom = f64::from(c[ch]) * (1.0 - fx) + f64::from(d[ch]) * fx;
        px[ch] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    px
}

/// The radial probe's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RadialReport {
    /// Settings.
    pub params: RadialParams,
    /// Photos that gave crops.
    pub photos_used: usize,
    /// Distorted crops embedded.
    pub crops: usize,
    /// Feature dimension of the tower.
    pub feature_dim: i64,
    /// Photos skipped, by reason.
    pub skipped: Skips,
    /// The probe.
    pub probe: ProbeResult,
}

/// Runs the radial probe over `photos` with `tower`'s frozen features.
pub fn radial_probe(
    tower: &ImageTower,
    device: tch::Device,
    photos: &[PathBuf],
    params: &RadialParams,
    opts: &ProbeOptions,
) -> Result<RadialReport, ProbeError> {
    params.validate()?;
    let side = source_side(params.crop, params.k1_min);
    let crop_bytes = (params.crop * params.crop * 3) as usize;
    let mut rng = Rng::new(opts.seed);
    let mut skipped = Skips::default();
    let (mut labels, mut photo_of, mut feats) = (Vec::new(), Vec::new(), Vec::new());
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0usize;
    let flush = |pending: &mut Vec<u8>, feats: &mut Vec<tch::Tensor>| -> Result<(), ProbeError> {
        if !pending.is_empty() {
            let n = pending.len() / crop_bytes;
            let f = tower_features(tower, device, pending, n, params.crop as usize, opts.batch)?;
            feats.push(f);
            pending.clear();
        }
        Ok(())
    };
    for (i, path) in photos.iter().enumerate() {
        let img = match image::open(path) {
            Ok(img) => img.into_rgb8(),
            Err(e) => {
                skipped.add(path, "unreadable", e.to_string());
                continue;
            }
        };
        if img.width() < side || img.height() < side {
            let detail = format!("{}x{}, needs {side}x{side}", img.width(), img.height());
            skipped.add(path, "too_small", detail);
            continue;
        }
        for _ in 0..params.per_photo {
            let k1 = params.k1_min + rng.unit() * (params.k1_max - params.k1_min);
            let x0 = rng.below((img.width() - side + 1) as usize) as u32;
            let y0 = rng.below((img.height() - side + 1) as usize) as u32;
            let window = image::imageops::crop_imm(&img, x0, y0, side, side).to_image();
            pending.extend(distort(&window, params.crop, k1));
            labels.push(params.bin(k1));
            photo_of.push(used);
        }
        used += 1;
        if pending.len() >= crop_bytes * opts.batch.max(1) {
            flush(&mut pending, &mut feats)?;
        }
        if (i + 1) % 50 == 0 {
            tracing::info!(
                photos = i + 1,
                of = photos.len(),
                crops = labels.len(),
                "radial probe: embedding"
            );
        }
    }
    flush(&mut pending, &mut feats)?;
    if used < 2 {
        return Err(ProbeError::TooFew {
            what: "radial probe".into(),
            found: used,
            need: 2,
        });
    }
    let features = tch::Tensor::cat(&feats, 0);
    let test = split_photos(used, opts.test_fraction, opts.seed);
    let width = (params.k1_max - params.k1_min) / params.bins as f64;
    let classes = (0..params.bins)
        .map(|b| {
            let lo = params.k1_min + width * b as f64;
            format!("k1 [{lo:.3}, {:.3})", lo + width)
        })
        .collect();
    let probe = run_probe(
        &features,
        &labels,
        &photo_of,
        &test,
        classes,
        &opts.classifier,
    )?;
    Ok(RadialReport {
        params: params.clone(),
        photos_used: used,
        crops: labels.len(),
        feature_dim: tower.feature_dim(),
        skipped,
        probe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undistorted_radius_satisfies_the_model() {
        for k1 in [-0.4, -0.25, -0.1, 0.0, 0.2] {
            for r_d in [0.0, 0.05, 0.2, 0.35, 0.5] {
                let r_u = undistort_radius(r_d, k1).unwrap();
                assert!(
                    (r_u * (1.0 + k1 * r_u * r_u) - r_d).abs() < 1e-10,
                    "k1 {k1} r_d {r_d}"
                );
                assert!(1.0 + 3.0 * k1 * r_u * r_u > 0.0, "on the monotone branch");
            }
        }
        // Beyond the branch's top (r_top = 1/sqrt(1.2) reaches 0.609 for k1 = -0.4).
        assert!(undistort_radius(0.62, -0.4).is_none());
    }

    #[test]
    fn a_dot_lands_where_the_formula_puts_it() {
        let (crop, k1) = (64u32, -0.35);
        let side = source_side(crop, -0.4);
        let mut src = RgbImage::new(side, side);
        // A 2x2 dot centred at window pixel coordinates (cx, cy) (between pixel centres).
        let (px, py) = (side / 2 + 23, side / 2 - 25);
        for (x, y) in [(px, py), (px + 1, py), (px, py + 1), (px + 1, py + 1)] {
            src.put_pixel(x, y, image::Rgb([255, 255, 255]));
        }
        let diag = f64::from(crop) * std::f64::consts::SQRT_2;
        let (cx, cy) = (f64::from(px) + 1.0, f64::from(py) + 1.0); // continuous coordinates
        let xu = (cx - f64::from(side) / 2.0) / diag;
        let yu = (cy - f64::from(side) / 2.0) / diag;
        let f = 1.0 + k1 * (xu * xu + yu * yu);
        let expect = (
            xu * f * diag + f64::from(crop) / 2.0,
            yu * f * diag + f64::from(crop) / 2.0,
        );
        let out = distort(&src, crop, k1);
        let (mut sx, mut sy, mut m) = (0.0, 0.0, 0.0);
        for y in 0..crop {
            for x in 0..crop {
                let v = f64::from(out[((y * crop + x) * 3) as usize]);
                sx += v * (f64::from(x) + 0.5);
                sy += v * (f64::from(y) + 0.5);
                m += v;
            }
        }
        assert!(m > 0.0, "the dot is visible");
        let got = (sx / m, sy / m);
        assert!(
            (got.0 - expect.0).abs() < 0.5 && (got.1 - expect.1).abs() < 0.5,
            "dot at {got:?}, formula says {expect:?}"
        );
        // It moved inwards (barrel): the undistorted position would be farther out.
        let undist = (
            xu * diag + f64::from(crop) / 2.0,
            yu * diag + f64::from(crop) / 2.0,
        );
        assert!((got.0 - undist.0).abs() > 0.5 || (got.1 - undist.1).abs() > 0.5);
    }

    #[test]
    fn lines_through_the_centre_stay_straight_and_others_bend() {
        let (crop, k1) = (64u32, -0.4);
        let side = source_side(crop, k1);
        // Column centroid of a horizontal band in the distorted crop, per output column.
        let centroids = |band_centre: f64| {
            let src = RgbImage::from_fn(side, side, |_, y| {
                let d = (f64::from(y) + 0.5 - band_centre).abs();
                image::Rgb([if d < 2.0 { 255 } else { 0 }; 3])
            });
            let out = distort(&src, crop, k1);
            (0..crop)
                .map(|x| {
                    let (mut s, mut m) = (0.0, 0.0);
                    for y in 0..crop {
                        let v = f64::from(out[((y * crop + x) * 3) as usize]);
                        s += v * (f64::from(y) + 0.5);
                        m += v;
                    }
                    assert!(m > 0.0, "column {x} sees the band");
                    s / m
                })
                .collect::<Vec<f64>>()
        };
        for c in centroids(f64::from(side) / 2.0) {
            assert!((c - f64::from(crop) / 2.0).abs() < 1e-3, "centroid {c}");
        }
        // A band 20 px above the centre bows towards the centre at the sides.
        let off = centroids(f64::from(side) / 2.0 - 20.0);
        let (mid, edge) = (off[(crop / 2) as usize], off[0]);
        assert!(edge > mid + 0.5, "edge {edge}, middle {mid}");
    }

    #[test]
    fn bins_cover_the_range_evenly() {
        let p = RadialParams::default();
        assert_eq!(p.bin(-0.4), 0);
        assert_eq!(p.bin(-0.381), 0);
        assert_eq!(p.bin(-0.379), 1);
        assert_eq!(p.bin(-1e-9), 19);
        assert_eq!(p.bin(0.0), 19);
        assert!(RadialParams {
            k1_min: -0.7,
            ..p.clone()
        }
        .validate()
        .is_err());
        assert!(p.validate().is_ok());
    }
}
