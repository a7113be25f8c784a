//! From demosaiced raw RGB to 8-bit output: white balance gains, a saturation colour
//! matrix, the camera's tone curve, then unsharp masking of luma and rounding.

use super::cameras::Camera;
use super::shot::{illuminant, Shot};
use rayon::prelude::*;

/// Entries of the tone lookup table (linear interpolation between them).
const LUT_SIZE: usize = 4096;

/// Colour processing of one photo.
pub(crate) struct Develop {
    wb: [f32; 3],
    ccm: [[f32; 3]; 3],
    lut: Vec<f32>,
}

/// The sRGB transfer curve.
fn srgb(x: f32) -> f32 {
    if x <= 0.003_130_8 {
        12.92 * x
    } else {
        1.055 * x.powf(1.0 / 2.4) - 0.055
    }
}

/// The camera's tone curve on linear 0..=1.
pub(crate) fn tone(camera: &Camera, x: f32) -> f32 {
    let y = if camera.gamma > 0.0 {
        x.powf(1.0 / camera.gamma)
    } else {
        srgb(x)
    };
    let s = y * y * (3.0 - 2.0 * y);
    let y = y + (s - y) * camera.contrast;
    camera.black_lift + (1.0 - camera.black_lift) * y
}

impl Develop {
    /// Processing for `shot` on `camera`; `awb_error` (about +-1) perturbs automatic white
    /// balance a little, as real estimators do.
    pub(crate) fn new(camera: &Camera, shot: &Shot, awb_error: [f32; 2]) -> Develop {
        // Gains that make a grey surface grey: under the actual light (auto), or under
        // daylight when set by hand.
        let assumed = if shot.manual_wb {
            illuminant(5500.0)
        } else {
            shot.light
        };
        let raw = |c: usize| camera.response[c] * assumed[c];
        let mut wb = [raw(1) / raw(0), 1.0, raw(1) / raw(2)];
        if !shot.manual_wb {
            wb[0] *= 1.0 + 0.03 * awb_error[0];
            wb[2] *= 1.0 + 0.03 * awb_error[1];
        }
        // Saturation matrix: rows sum to one, so greys stay grey.
        let luma = [0.2126, 0.7152, 0.0722];
        let s = camera.saturation;
        let ccm = std::array::from_fn(|i| {
            std::array::from_fn(|j| if i == j { s } else { 0.0 } + (1.0 - s) * luma[j])
        });
        let lut = (0..=LUT_SIZE)
            .map(|i| tone(camera, i as f32 / LUT_SIZE as f32))
            .collect();
        Develop { wb, ccm, lut }
    }

    /// Turns a row of raw RGB into display-referred RGB in 0..=1, in place.
    pub(crate) fn apply_row(&self, row: &mut [[f32; 3]]) {
        for px in row {
            let v = [px[0] * self.wb[0], px[1] * self.wb[1], px[2] * self.wb[2]];
            for (c, out) in px.iter_mut().enumerate() {
                let m = &self.ccm[c];
                let lin = (m[0] * v[0] + m[1] * v[1] + m[2] * v[2]).clamp(0.0, 1.0);
                let f = lin * LUT_SIZE as f32;
                let i = (f as usize).min(LUT_SIZE - 1);
                let t = f - i as f32;
                *out = self.lut[i] + (self.lut[i + 1] - self.lut[i]) * t;
            }
        }
    }
}

/// Unsharp masking of luma (`amount` times luma minus its binomial blur of `radius` 1 or
/// 2, added to all three channels), then rounding to 8-bit RGB.
pub(crate) fn sharpen_to_u8(
    rgb: &[[f32; 3]],
    width: usize,
    height: usize,
    amount: f32,
    radius: u8,
) -> Vec<u8> {
    let kernel: &[f32] = if radius >= 2 {
        &[1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0]
    } else {
        &[0.25, 0.5, 0.25]
    };
    let r = kernel.len() / 2;
    let luma: Vec<f32> = rgb
        .par_iter()
        .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
        .collect();
    let mut out = vec![0u8; width * height * 3];
    out.par_chunks_mut(width * 3)
        .enumerate()
        .for_each_init(Vec::new, |tmp, (y, row)| {
            // Vertical pass into tmp, then horizontal pass per pixel; edges clamp.
            tmp.clear();
            tmp.resize(width, 0.0);
            for (k, &w) in kernel.iter().enumerate() {
                let yy = (y + k).saturating_sub(r).min(height - 1);
                for (t, &l) in tmp.iter_mut().zip(&luma[yy * width..(yy + 1) * width]) {
                    *t += w * l;
                }
            }
            for x in 0..width {
                let mut blur = 0.0;
                for (k, &w) in kernel.iter().enumerate() {
                    blur += w * tmp[(x + k).saturating_sub(r).min(width - 1)];
                }
                let delta = amount * (luma[y * width + x] - blur);
                let px = rgb[y * width + x];
                for c in 0..3 {
                    row[3 * x + c] = ((px[c] + delta) * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::catalogue::cameras;

    #[test]
    fn tone_curves_are_monotonic_and_span_the_range() {
        for cam in cameras() {
            let ys: Vec<f32> = (0..=100).map(|i| tone(cam, i as f32 / 100.0)).collect();
            assert!(ys.windows(2).all(|p| p[1] >= p[0]), "{}", cam.model);
            assert!((ys[0] - cam.black_lift).abs() < 1e-6 && (ys[100] - 1.0).abs() < 1e-4);
            assert!(ys[18] > 0.3, "{}: 18 % grey maps to {}", cam.model, ys[18]);
        }
    }

    #[test]
    fn sharpening_overshoots_at_edges_and_keeps_flat_areas() {
        let (w, h) = (16, 4);
        let rgb: Vec<[f32; 3]> = (0..w * h)
            .map(|i| if i % w < 8 { [0.2; 3] } else { [0.6; 3] })
            .collect();
        let plain = sharpen_to_u8(&rgb, w, h, 0.0, 1);
        let sharp = sharpen_to_u8(&rgb, w, h, 1.0, 1);
        assert_eq!(plain[0], 51);
        assert_eq!(sharp[0], plain[0], "flat area changed");
        assert!(sharp[3 * 7] < plain[3 * 7], "no undershoot before the edge");
        assert!(sharp[3 * 8] > plain[3 * 8], "no overshoot after the edge");
    }

    #[test]
    fn auto_white_balance_makes_grey_grey() {
        let cam = &cameras()[0];
        let mut shot = crate::synth::shot::Shot::new(cam, &mut rand::SeedableRng::seed_from_u64(3));
        shot.manual_wb = false;
        shot.light = illuminant(3000.0);
        let d = Develop::new(cam, &shot, [0.0, 0.0]);
        let grey = 0.2;
        let mut row = [std::array::from_fn(|c| {
            grey * cam.response[c] * shot.light[c]
        })];
        d.apply_row(&mut row);
        assert!(
            (row[0][0] - row[0][1]).abs() < 1e-3 && (row[0][2] - row[0][1]).abs() < 1e-3,
            "{row:?}"
        );
        shot.manual_wb = true;
        let d = Develop::new(cam, &shot, [0.0, 0.0]);
        let mut row = [std::array::from_fn(|c| {
            grey * cam.response[c] * shot.light[c]
        })];
        d.apply_row(&mut row);
        assert!(
            row[0][0] > row[0][2] + 0.05,
            "tungsten under daylight balance is not warm: {row:?}"
        );
    }
}
