//! Photos from simulated cameras, for tests, benchmarks and runs without a real photo
//! folder. Each photo is a procedural scene ([`SceneStyle`]) shot through one camera's
//! pipeline ([`Camera`]): lens vignetting, a Bayer mosaic with a fixed per-camera gain
//! pattern (PRNU) and ISO-dependent noise, demosaicing, white balance, colour matrix, tone
//! curve, sharpening, and a JPEG with the camera's quantisation tables, chroma subsampling
//! and restart interval. An EXIF block in APP1 names the camera and carries shot values
//! (ISO, exposure, aperture, focal length, ...) that agree with the pixels.
//!
//! Everything is a pure function of the options: the same options give byte-identical
//! files on any number of threads, and photo `i` does not depend on how many photos are
//! generated. Per-pixel randomness comes from counter-based hashes, per-photo choices from
//! ChaCha8 seeded with a hash of the seed and the photo index.

mod cameras;
mod catalogue;
mod demosaic;
mod develop;
mod encode;
mod hash;
mod metadata;
pub use metadata::civil_from_days;
mod noise;
mod scene;
mod sensor;
mod shot;

pub use cameras::{Camera, Cfa, Demosaic, QuantStyle, Subsampling};
pub use catalogue::cameras;
pub use encode::quant_tables;
pub use scene::SceneStyle;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Smallest width or height: one 124x124 training patch must fit.
pub const MIN_SIDE: u32 = 124;
/// Largest width or height a baseline JPEG can hold.
pub const MAX_SIDE: u32 = 65_535;
/// Largest photo in pixels (about 25 bytes per pixel are held while rendering).
pub const MAX_PIXELS: u64 = 120_000_000;
/// Name of the file listing each photo's camera, written beside the photos.
pub const CAMERAS_CSV: &str = "cameras.csv";

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file or the output folder could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The options cannot be satisfied; the message says which one and why.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A photo could not be encoded.
    #[error("cannot encode photo {index} ({camera}): {message}")]
    Encode {
        index: usize,
        camera: String,
        message: String,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of photos (at least 1).
    pub count: usize,
    /// Width of each photo in pixels ([`MIN_SIDE`]..=[`MAX_SIDE`]).
    pub width: u32,
    /// Height of each photo in pixels ([`MIN_SIDE`]..=[`MAX_SIDE`]).
    pub height: u32,
    /// Seed: the same options give byte-identical files.
    pub seed: u64,
    /// Cameras to use, by [`Camera::slug`] (e.g. `simcam-sc-100`); empty means all.
    /// Photo `i` is taken with camera `i mod n` of this list.
    pub cameras: Vec<String>,
    /// Scene content.
    pub scene: SceneStyle,
}

impl Default for SynthOptions {
    /// 12 photos of 1024x768 from all cameras, seed 0, natural scenes.
    fn default() -> Self {
        SynthOptions {
            count: 12,
            width: 1024,
            height: 768,
            seed: 0,
            cameras: Vec::new(),
            scene: SceneStyle::Natural,
        }
    }
}

impl SynthOptions {
    /// Checks the options and returns the cameras to cycle through.
    pub fn validate(&self) -> Result<Vec<&'static Camera>, SynthError> {
        let bad = |m: String| Err(SynthError::InvalidOption(m));
        if self.count == 0 {
            return bad("count must be at least 1".into());
        }
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&v) {
                return bad(format!(
                    "{name} {v} is out of range: photos must be {MIN_SIDE} to {MAX_SIDE} pixels \
                     on each side (a {MIN_SIDE}x{MIN_SIDE} patch must fit)"
                ));
            }
        }
        let pixels = u64::from(self.width) * u64::from(self.height);
        if pixels > MAX_PIXELS {
            return bad(format!(
                "{}x{} is {pixels} pixels, more than the {MAX_PIXELS} one photo may have",
                self.width, self.height
            ));
        }
        if self.cameras.is_empty() {
            return Ok(cameras().iter().collect());
        }
        self.cameras
            .iter()
            .map(|name| {
                cameras().iter().find(|c| c.slug() == *name).ok_or_else(|| {
                    let known: Vec<String> = cameras().iter().map(Camera::slug).collect();
                    SynthError::InvalidOption(format!(
                        "unknown camera {name:?}; known cameras: {}",
                        known.join(", ")
                    ))
                })
            })
            .collect()
    }
}

/// One rendered photo.
#[derive(Debug, Clone)]
pub struct SynthPhoto {
    /// Index within the run.
    pub index: usize,
    /// `<make>_<model>_<index>.jpg`, lower case with dashes.
    pub file_name: String,
    /// The camera that took it.
    pub camera: &'static Camera,
    /// The JPEG file, EXIF included.
    pub jpeg: Vec<u8>,
}

/// File name of photo `index` of a run of `count` taken with `camera`.
pub fn file_name(camera: &Camera, index: usize, count: usize) -> String {
    let digits = count.saturating_sub(1).to_string().len().max(4);
    format!(
        "{}_{}_{index:0digits$}.jpg",
        cameras::slugify(camera.make),
        cameras::slugify(camera.model)
    )
}

/// Renders photo `index` of the run described by `opts` (without writing anything).
pub fn render(index: usize, opts: &SynthOptions) -> Result<SynthPhoto, SynthError> {
    let selected = opts.validate()?;
    if index >= opts.count {
        return Err(SynthError::InvalidOption(format!(
            "photo index {index} is past the end of a run of {}",
            opts.count
        )));
    }
    let camera = selected[index % selected.len()];
    let photo_seed = hash::derive(opts.seed, index as u64);
    let jpeg = render_photo(camera, photo_seed, opts).map_err(|e| SynthError::Encode {
        index,
        camera: camera.slug(),
        message: e.to_string(),
    })?;
    Ok(SynthPhoto {
        index,
        file_name: file_name(camera, index, opts.count),
        camera,
        jpeg,
    })
}

/// The whole pipeline for one photo.
fn render_photo(
    camera: &Camera,
    photo_seed: u64,
    opts: &SynthOptions,
) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let (w, h) = (opts.width as usize, opts.height as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(photo_seed);
    let shot = shot::Shot::new(camera, &mut rng);
    let scene = scene::Scene::new(
        &mut rng,
        hash::derive(photo_seed, 4),
        opts.scene,
        w,
        h,
        shot.detail,
    );
    let awb_error = [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)];
    let sensor = sensor::Sensor::new(camera, &shot, photo_seed, w, h);

    let mut mosaic = demosaic::Padded::new(w, h);
    mosaic.rows_mut().enumerate().for_each_init(
        || (scene::RowScratch::default(), vec![[0.0f32; 3]; w]),
        |(scratch, radiance), (y, row)| {
            scene.render_row(y, scratch, radiance);
            sensor.expose_row(y, radiance, row);
        },
    );
    mosaic.fill_border();

    let develop = develop::Develop::new(camera, &shot, awb_error);
    let mut rgb = vec![[0.0f32; 3]; w * h];
    demosaic::demosaic(&mosaic, camera.cfa, camera.demosaic, &mut rgb, |row| {
        develop.apply_row(row)
    });
    drop(mosaic);
    let pixels = develop::sharpen_to_u8(&rgb, w, h, camera.sharpen, camera.sharpen_radius);
    drop(rgb);

    let exif = metadata::tiff_block(camera, &shot, opts.width, opts.height)?;
    Ok(encode::encode(
        &pixels,
        w as u16,
        h as u16,
        camera,
        shot.quality,
        &exif,
    )?)
}

/// Writes `opts.count` JPEG photos and [`CAMERAS_CSV`] into `out_dir` (created if
/// missing) and returns the photos' paths in index order.
pub fn generate(out_dir: &Path, opts: &SynthOptions) -> Result<Vec<PathBuf>, SynthError> {
    generate_with_progress(out_dir, opts, &|_| {})
}

/// [`generate`], calling `on_photo` with each photo's path once it is written (from
/// worker threads, in no particular order).
pub fn generate_with_progress(
    out_dir: &Path,
    opts: &SynthOptions,
    on_photo: &(dyn Fn(&Path) + Sync),
) -> Result<Vec<PathBuf>, SynthError> {
    opts.validate()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SynthError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    // Bounded batches: at most one photo per thread is held in memory at a time.
    let batch = rayon::current_num_threads().max(1);
    let indices: Vec<usize> = (0..opts.count).collect();
    let mut written = Vec::with_capacity(opts.count);
    for chunk in indices.chunks(batch) {
        let results: Vec<(PathBuf, &'static Camera)> = chunk
            .par_iter()
            .map(|&i| {
                let photo = render(i, opts)?;
                let path = out_dir.join(&photo.file_name);
                let tmp = path.with_extension("jpg.part");
                std::fs::write(&tmp, &photo.jpeg).map_err(io(&tmp))?;
                std::fs::rename(&tmp, &path).map_err(io(&path))?;
                tracing::debug!(path = %path.display(), bytes = photo.jpeg.len(), "photo written");
                on_photo(&path);
                Ok((path, photo.camera))
            })
            .collect::<Result<_, SynthError>>()?;
        written.extend(results);
    }
    let mut csv = String::from("file,make,model\n");
    for (path, cam) in &written {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        csv.push_str(&format!("{name},{},{}\n", cam.make, cam.model));
    }
    let csv_path = out_dir.join(CAMERAS_CSV);
    std::fs::write(&csv_path, csv).map_err(io(&csv_path))?;
    Ok(written.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthOptions {
        SynthOptions {
            count: 3,
            width: 160,
            height: 128,
            seed: 5,
            ..SynthOptions::default()
        }
    }

    fn invalid(opts: SynthOptions) -> String {
        match opts.validate() {
            Err(SynthError::InvalidOption(m)) => m,
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        assert!(invalid(SynthOptions {
            count: 0,
            ..small()
        })
        .contains("count"));
        let m = invalid(SynthOptions {
            width: 100,
            ..small()
        });
        assert!(m.contains("width 100") && m.contains("124"), "{m}");
        assert!(invalid(SynthOptions {
            height: 70_000,
            ..small()
        })
        .contains("height"));
        assert!(invalid(SynthOptions {
            width: 60_000,
            height: 60_000,
            ..small()
        })
        .contains("pixels"));
        let m = invalid(SynthOptions {
            cameras: vec!["nikon-d70".into()],
            ..small()
        });
        assert!(
            m.contains("nikon-d70") && m.contains("simcam-sc-100"),
            "{m}"
        );
        assert!(matches!(
            render(3, &small()),
            Err(SynthError::InvalidOption(_))
        ));
    }

    #[test]
    fn camera_selection_cycles_in_the_given_order() {
        let opts = SynthOptions {
            cameras: vec!["simlux-sl-7-pro".into(), "simcam-sc-100".into()],
            ..small()
        };
        let picked: Vec<&str> = opts.validate().unwrap().iter().map(|c| c.model).collect();
        assert_eq!(picked, ["SL-7 Pro", "SC-100"]);
        assert_eq!(render(2, &opts).unwrap().camera.model, "SL-7 Pro");
    }

    #[test]
    fn file_names_are_lowercase_dashed_and_padded() {
        let cam = &cameras()[1];
        assert_eq!(file_name(cam, 7, 10), "simcam_sc-5-pocket_0007.jpg");
        assert_eq!(file_name(cam, 7, 123_456), "simcam_sc-5-pocket_000007.jpg");
    }

    #[test]
    fn thread_count_does_not_change_the_bytes() {
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for i in 0..3 {
            let a = one.install(|| render(i, &small())).unwrap();
            let b = three.install(|| render(i, &small())).unwrap();
            assert!(
                a.jpeg == b.jpeg,
                "photo {i} differs between 1 and 3 threads"
            );
        }
    }

    #[test]
    fn a_photo_does_not_depend_on_the_run_length() {
        let short = render(1, &small()).unwrap();
        let long = render(
            1,
            &SynthOptions {
                count: 50,
                ..small()
            },
        )
        .unwrap();
        assert_eq!(short.jpeg, long.jpeg);
        assert_ne!(
            short.jpeg,
            render(1, &SynthOptions { seed: 6, ..small() })
                .unwrap()
                .jpeg
        );
    }
}
