//! The sensor: scene radiance through lens vignetting and the colour filter array onto
//! photosites with a fixed per-camera gain pattern (PRNU) and column offsets, plus shot and
//! read noise that grow with ISO, quantised to the camera's raw bit depth and clipped at
//! full well. Output values are in 0..=1 of full scale.

use super::cameras::Camera;
use super::hash::{derive, gauss, hash2};
use super::shot::Shot;

/// Exposure parameters of one photo on one camera's sensor.
pub(crate) struct Sensor {
    cfa: [usize; 4],
    /// Radiance to signal, per channel: response x light colour x exposure.
    gain: [f32; 3],
    prnu_seed: u64,
    prnu: f32,
    /// Fixed offset of each column.
    column: Vec<f32>,
    noise_seed: u64,
    shot_var: f32,
    read_var: f32,
    levels: f32,
    centre: (f32, f32),
    inv_r2: f32,
    vignetting: f32,
}

impl Sensor {
    /// The sensor of `camera` for `shot`; `photo_seed` drives the temporal noise only.
    pub(crate) fn new(
        camera: &Camera,
        shot: &Shot,
        photo_seed: u64,
        width: usize,
        height: usize,
    ) -> Sensor {
        let sensor_seed = camera.sensor_seed();
        let column_seed = derive(sensor_seed, 2);
        let iso = shot.iso as f32 / 100.0;
        let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
        Sensor {
            cfa: camera.cfa.channels(),
            gain: std::array::from_fn(|c| camera.response[c] * shot.light[c] * shot.brightness),
            prnu_seed: derive(sensor_seed, 1),
            prnu: camera.prnu,
            column: (0..width as i64)
                .map(|x| camera.column_noise * gauss(hash2(column_seed, x, 0)))
                .collect(),
            noise_seed: derive(photo_seed, 3),
            shot_var: camera.shot_noise * iso,
            read_var: (camera.read_noise * iso).powi(2),
            levels: ((1u32 << camera.raw_bits) - 1) as f32,
            centre: (cx, cy),
            inv_r2: 1.0 / (cx * cx + cy * cy),
            vignetting: camera.vignetting,
        }
    }

    /// Raw values of row `y` from its radiance.
    pub(crate) fn expose_row(&self, y: usize, radiance: &[[f32; 3]], out: &mut [f32]) {
        let dy = y as f32 + 0.5 - self.centre.1;
        let (yi, par) = (y as i64, 2 * (y & 1));
        for (x, (o, rad)) in out.iter_mut().zip(radiance).enumerate() {
            let c = self.cfa[(x & 1) + par];
            let dx = x as f32 + 0.5 - self.centre.0;
            let r2 = (dx * dx + dy * dy) * self.inv_r2;
            let fixed = 1.0 + self.prnu * gauss(hash2(self.prnu_seed, x as i64, yi));
            let signal = (rad[c] * self.gain[c] * (1.0 - self.vignetting * r2) * fixed).max(0.0);
            let sigma = (self.shot_var * signal + self.read_var).sqrt();
            let v = signal + sigma * gauss(hash2(self.noise_seed, x as i64, yi)) + self.column[x];
            *o = ((v * self.levels).round() / self.levels).clamp(0.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::catalogue::cameras;
    use crate::synth::shot::Shot;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A 64x64 raw frame of a uniform grey surface, without vignetting.
    fn flat_frame(camera: &Camera, iso: u16, photo_seed: u64) -> Vec<f32> {
        let camera = &Camera {
            vignetting: 0.0,
            ..camera.clone()
        };
        let mut shot = Shot::new(camera, &mut ChaCha8Rng::seed_from_u64(1));
        shot.iso = iso;
        shot.light = [1.0; 3];
        shot.brightness = 1.0;
        let (w, h) = (64, 64);
        let s = Sensor::new(camera, &shot, photo_seed, w, h);
        let rad = vec![[0.3f32; 3]; w];
        let mut out = vec![0.0; w * h];
        for (y, row) in out.chunks_mut(w).enumerate() {
            s.expose_row(y, &rad, row);
        }
        out
    }

    fn std_dev(v: &[f32]) -> f32 {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt()
    }

    /// Indices of the green photosites of a 64-pixel-wide frame.
    fn green_sites(camera: &Camera, len: usize) -> Vec<usize> {
        let ch = camera.cfa.channels();
        (0..len)
            .filter(|&i| ch[((i % 64) & 1) + 2 * ((i / 64) & 1)] == 1)
            .collect()
    }

    fn greens(camera: &Camera, frame: &[f32]) -> Vec<f32> {
        green_sites(camera, frame.len())
            .into_iter()
            .map(|i| frame[i])
            .collect()
    }

    #[test]
    fn noise_grows_with_iso() {
        let cam = &cameras()[0];
        let low = std_dev(&greens(cam, &flat_frame(cam, 100, 5)));
        let high = std_dev(&greens(cam, &flat_frame(cam, 3200, 5)));
        assert!(high > 2.0 * low, "ISO 100 {low}, ISO 3200 {high}");
    }

    /// Pearson correlation over the green photosites.
    fn green_corr(camera: &Camera, a: &[f32], b: &[f32]) -> f32 {
        let idx = green_sites(camera, a.len());
        let mean = |v: &[f32]| idx.iter().map(|&i| v[i]).sum::<f32>() / idx.len() as f32;
        let (ma, mb) = (mean(a), mean(b));
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for &i in &idx {
            let (x, y) = (a[i] - ma, b[i] - mb);
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa * bb).sqrt()
    }

    #[test]
    fn fixed_pattern_repeats_across_photos_of_one_camera_only() {
        let cam = cameras()[3].clone();
        // Identical pipeline, other unit: only the sensor seed (from make and model) differs.
        let twin = Camera {
            model: "ST Action 2 (second unit)",
            ..cam.clone()
        };
        let (a, b) = (flat_frame(&cam, 100, 1), flat_frame(&cam, 100, 2));
        let other = flat_frame(&twin, 100, 3);
        let same = green_corr(&cam, &a, &b);
        let cross = green_corr(&cam, &a, &other);
        assert!(same > 0.2, "same camera correlation {same}");
        assert!(cross.abs() < 0.1, "other unit correlation {cross}");
    }
}
