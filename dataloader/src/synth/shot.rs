//! The settings of one shot: scene light, the camera's automatic exposure (aperture,
//! shutter, ISO, flash), white balance, orientation, date and firmware. The pixels follow
//! from these values, so EXIF and image agree: high ISO means more noise, dim light means
//! warm tungsten colour, clipped exposure means a darker photo, longer lenses larger
//! features.

use super::cameras::Camera;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Standard ISO values (third stops).
const ISO_STOPS: [u16; 31] = [
    25, 32, 40, 50, 64, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600,
    2000, 2500, 3200, 4000, 5000, 6400, 8000, 10000, 12800, 16000, 20000, 25600,
];
/// Standard f-numbers (third stops).
const F_STOPS: [f32; 25] = [
    1.4, 1.6, 1.8, 2.0, 2.2, 2.5, 2.8, 3.2, 3.5, 4.0, 4.5, 5.0, 5.6, 6.3, 7.1, 8.0, 9.0, 10.0,
    11.0, 13.0, 14.0, 16.0, 18.0, 20.0, 22.0,
];
/// Standard exposure times as (numerator, denominator) seconds, fastest first.
const SHUTTER_STOPS: [(u32, u32); 40] = [
    (1, 8000),
    (1, 6400),
    (1, 5000),
    (1, 4000),
    (1, 3200),
    (1, 2500),
    (1, 2000),
    (1, 1600),
    (1, 1250),
    (1, 1000),
    (1, 800),
    (1, 640),
    (1, 500),
    (1, 400),
    (1, 320),
    (1, 250),
    (1, 200),
    (1, 160),
    (1, 125),
    (1, 100),
    (1, 80),
    (1, 60),
    (1, 50),
    (1, 40),
    (1, 30),
    (1, 25),
    (1, 20),
    (1, 15),
    (1, 13),
    (1, 10),
    (1, 8),
    (1, 6),
    (1, 5),
    (1, 4),
    (3, 10),
    (4, 10),
    (5, 10),
    (6, 10),
    (8, 10),
    (1, 1),
];

/// Colour of a black-body-like light of `kelvin`, relative to green.
pub(crate) fn illuminant(kelvin: f32) -> [f32; 3] {
    [
        (6500.0 / kelvin).powf(0.8),
        1.0,
        (kelvin / 6500.0).powf(0.9),
    ]
}

/// Everything about one exposure.
#[derive(Debug, Clone)]
pub(crate) struct Shot {
    pub(crate) iso: u16,
    pub(crate) exposure: (u32, u32),
    pub(crate) f_number: f32,
    pub(crate) focal_mm: f32,
    pub(crate) focal_35mm: u16,
    pub(crate) bias_thirds: i8,
    pub(crate) program: u16,
    pub(crate) metering: u16,
    /// EXIF Flash value.
    pub(crate) flash: u16,
    pub(crate) manual_wb: bool,
    pub(crate) orientation: u16,
    pub(crate) unix_time: i64,
    pub(crate) software: &'static str,
    pub(crate) quality: u8,
    /// Factor on scene radiance at the sensor (1 = correctly exposed).
    pub(crate) brightness: f32,
    /// Colour of the light on the scene.
    pub(crate) light: [f32; 3],
    /// Feature size relative to a 35 mm lens.
    pub(crate) detail: f32,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

fn nearest_iso(iso: f32, range: (u16, u16)) -> u16 {
    ISO_STOPS
        .iter()
        .copied()
        .filter(|&v| v >= range.0 && v <= range.1)
        .min_by(|&a, &b| {
            let da = (a as f32 / iso).ln().abs();
            let db = (b as f32 / iso).ln().abs();
            da.total_cmp(&db)
        })
        .unwrap_or(range.0)
}

fn nearest_shutter(t: f32, fastest: f32) -> (u32, u32) {
    SHUTTER_STOPS
        .iter()
        .copied()
        .filter(|&(n, d)| n as f32 / d as f32 >= fastest * 0.999)
        .min_by(|&a, &b| {
            let da = (a.0 as f32 / a.1 as f32 / t).ln().abs();
            let db = (b.0 as f32 / b.1 as f32 / t).ln().abs();
            da.total_cmp(&db)
        })
        .unwrap_or((1, 1))
}

impl Shot {
    /// Draws a shot for `camera`.
    pub(crate) fn new(camera: &Camera, rng: &mut ChaCha8Rng) -> Shot {
        // Light level as EV at ISO 100: 3 is a dim room, 15 bright sun.
        let ev: f32 = rng.random_range(3.0..15.0);
        let kelvin = if ev < 8.0 {
            rng.random_range(2700.0..4000.0)
        } else {
            rng.random_range(4500.0..7500.0)
        };
        let (f0, f1) = camera.focal_mm;
        let zoom = if f1 > f0 { rng.random::<f32>() } else { 0.0 };
        let focal_mm = (f0 * (f1 / f0).powf(zoom) * 10.0).round() / 10.0;
        let focal_35mm = (focal_mm * camera.crop_factor).round() as u16;
        let program = pick(rng, camera.exposure_programs);
        let bias_thirds = if program == 1 {
            0
        } else {
            pick(rng, camera.bias_thirds)
        };

        // Widest aperture at this focal length, then stopped down in bright light (program)
        // or by choice (aperture priority, manual).
        let wide = camera.max_aperture.0 + (camera.max_aperture.1 - camera.max_aperture.0) * zoom;
        let stops: Vec<f32> = F_STOPS
            .iter()
            .copied()
            .filter(|&n| n >= wide - 0.05 && n <= camera.min_aperture + 0.05)
            .collect();
        let f_number = match (stops.len(), program) {
            (0, _) => wide,
            (_, 1 | 3) => pick(rng, &stops),
            _ => {
                let k = (((ev - 10.0).max(0.0) * 1.5) as usize).min(stops.len() - 1);
                stops[k]
            }
        };

        let flash_fired = camera.has_flash && program != 1 && ev < 6.0 && rng.random_bool(0.8);
        let hand_limit = 1.0 / (focal_35mm as f32).max(30.0);
        let light_factor = 100.0 / 2f32.powf(ev); // t * ISO / N^2 for a correct exposure
        let (iso, t_wanted) = if flash_fired {
            let iso = nearest_iso(camera.iso.0 as f32 * 2.0, camera.iso);
            (iso, 1.0 / 60.0)
        } else {
            let n2 = f_number * f_number;
            let bias = 2f32.powf(bias_thirds as f32 / 3.0);
            let mut iso = camera.iso.0 as f32;
            let mut t = n2 * light_factor / iso * bias;
            if t > hand_limit {
                iso = (iso * t / hand_limit).min(camera.iso.1 as f32);
                t = n2 * light_factor / iso * bias;
            }
            if program == 1 {
                // Manual exposure: the photographer's guess, up to a stop off.
                t *= 2f32.powf(rng.random_range(-1.0..1.0));
            }
            (nearest_iso(iso, camera.iso), t.min(0.8))
        };
        let exposure = nearest_shutter(t_wanted, camera.fastest_shutter);
        let t = exposure.0 as f32 / exposure.1 as f32;
        let brightness = if flash_fired {
            rng.random_range(0.7..1.1)
        } else {
            t * iso as f32 / (f_number * f_number * light_factor)
        };
        let flash = match (camera.has_flash, flash_fired) {
            (false, _) => 0x20,
            (true, true) => 0x19,
            (true, false) if program == 1 => 0x10,
            (true, false) => 0x18,
        };

        // Capture time within three years of the camera's first photo; bright photos are
        // taken by day, dim ones mostly in the evening.
        let day = rng.random_range(0..3 * 365) as i64;
        let hour: f32 = if ev >= 10.0 {
            rng.random_range(9.0..17.0)
        } else if ev < 7.0 {
            rng.random_range(18.0..23.9)
        } else {
            rng.random_range(7.0..21.0)
        };
        let unix_time = camera.first_shot_unix + day * 86_400 + (hour * 3600.0) as i64;
        let sw = camera.software;
        let software = sw[((day as usize * sw.len()) / (3 * 365)).min(sw.len() - 1)];

        let total: u32 = camera.orientations.iter().map(|o| o.1).sum();
        let mut r = rng.random_range(0..total.max(1));
        let mut orientation = 1;
        for &(o, weight) in camera.orientations {
            if r < weight {
                orientation = o;
                break;
            }
            r -= weight;
        }
        Shot {
            iso,
            exposure,
            f_number,
            focal_mm,
            focal_35mm,
            bias_thirds,
            program,
            metering: pick(rng, camera.metering_modes),
            flash,
            manual_wb: rng.random::<f32>() < camera.manual_wb,
            orientation,
            unix_time,
            software,
            quality: pick(rng, camera.qualities),
            brightness,
            light: illuminant(kelvin),
            detail: (focal_35mm as f32 / 35.0).clamp(0.6, 2.5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::catalogue::cameras;
    use rand::SeedableRng;

    #[test]
    fn values_stay_in_each_cameras_ranges() {
        for cam in cameras() {
            let mut rng = ChaCha8Rng::seed_from_u64(4);
            for _ in 0..200 {
                let s = Shot::new(cam, &mut rng);
                assert!(
                    s.iso >= cam.iso.0 && s.iso <= cam.iso.1,
                    "{} iso {}",
                    cam.model,
                    s.iso
                );
                assert!(
                    s.f_number >= cam.max_aperture.0 - 0.2,
                    "{} f/{}",
                    cam.model,
                    s.f_number
                );
                assert!(
                    s.f_number <= cam.min_aperture + 0.2,
                    "{} f/{}",
                    cam.model,
                    s.f_number
                );
                let t = s.exposure.0 as f32 / s.exposure.1 as f32;
                assert!(
                    t >= cam.fastest_shutter * 0.99 && t <= 1.0,
                    "{} t {t}",
                    cam.model
                );
                assert!(cam.qualities.contains(&s.quality));
                assert!(cam.orientations.iter().any(|o| o.0 == s.orientation));
                assert!(cam.software.contains(&s.software));
                assert!(s.brightness > 0.0 && s.brightness.is_finite());
            }
        }
    }

    #[test]
    fn dim_scenes_get_higher_iso_than_bright_ones() {
        // Over many shots, ISO and brightness must follow the light: check that the
        // highest ISOs go with evening hours (dim light) more than with noon.
        let cam = &cameras()[2];
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let shots: Vec<Shot> = (0..400).map(|_| Shot::new(cam, &mut rng)).collect();
        let hour = |s: &Shot| (s.unix_time.rem_euclid(86_400)) / 3600;
        let mean_iso = |pred: &dyn Fn(&Shot) -> bool| {
            let v: Vec<f32> = shots
                .iter()
                .filter(|s| pred(s))
                .map(|s| s.iso as f32)
                .collect();
            v.iter().sum::<f32>() / v.len().max(1) as f32
        };
        let evening = mean_iso(&|s| hour(s) >= 18);
        let midday = mean_iso(&|s| (9..17).contains(&hour(s)));
        assert!(
            evening > 2.0 * midday,
            "evening ISO {evening}, midday ISO {midday}"
        );
    }
}
