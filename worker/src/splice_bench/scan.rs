//! The photos a benchmark can use: listed as `dataloader pack` lists them, with their
//! camera model (EXIF Make + Model, as `dataloader split` names it) and their size.
//! Photos are skipped and counted by reason: `unreadable`, `no_exif`, `malformed_exif`
//! (the EXIF reader's reasons), `no_camera_model` (EXIF names no model),
//! `undecodable` (the image data does not decode), `too_small` (a side under
//! [`MIN_PHOTO_SIDE`] pixels: smaller than one patch the model reads).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use dataloader::pack::{list_photos, Input, PackError};
use dataloader::split::{read_camera_models, UNKNOWN_CAMERA};
use rayon::prelude::*;

use super::composite;
use super::plan::PhotoInfo;

/// Photos with a side shorter than this are skipped (`too_small`).
pub const MIN_PHOTO_SIDE: u32 = 128;

/// A usable photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// Where it is.
    pub path: PathBuf,
    /// Its camera model and size.
    pub info: PhotoInfo,
    /// Whether it has been decoded in full once.
    pub verified: bool,
}

/// The usable photos of an input and what was skipped.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Photo files listed (distinct paths).
    pub listed: usize,
    /// The usable photos, sorted by path.
    pub photos: Vec<Photo>,
    /// Photos skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
}

impl Scan {
    fn skip(&mut self, reason: &str, path: &std::path::Path, detail: &str) {
        let n = self.skipped.entry(reason.to_string()).or_default();
        if *n == 0 {
            tracing::warn!(path = %path.display(), reason, %detail, "photo skipped (further ones are counted)");
        }
        *n += 1;
    }

    /// The plan's view of the photos.
    pub fn infos(&self) -> Vec<PhotoInfo> {
        self.photos.iter().map(|p| p.info.clone()).collect()
    }

    /// Distinct camera models among the usable photos.
    pub fn camera_models(&self) -> usize {
        let models: BTreeSet<&str> = self.photos.iter().map(|p| p.info.camera.as_str()).collect();
        models.len()
    }
}

/// Lists the photos of `input` (sorted by path, duplicates dropped, so the benchmark does
/// not depend on the order of a file list), reads their camera models and header sizes
/// in parallel, and skips what cannot be used.
pub fn scan(input: &Input) -> Result<Scan, PackError> {
    let paths: BTreeSet<PathBuf> = list_photos(input)?.into_iter().map(|i| i.path).collect();
    let paths: Vec<PathBuf> = paths.into_iter().collect();
    let models = read_camera_models(&paths);
    let mut scan = Scan {
        listed: paths.len(),
        skipped: models.skipped,
        ..Scan::default()
    };
    let sized: Vec<_> = models
        .photos
        .into_par_iter()
        .map(|(path, camera)| {
            let size = (camera != UNKNOWN_CAMERA).then(|| composite::dimensions(&path));
            (path, camera, size)
        })
        .collect();
    for (path, camera, size) in sized {
        match size {
            None => scan.skip("no_camera_model", &path, "EXIF has no Model tag"),
            Some(Err(e)) => scan.skip("undecodable", &path, &e.to_string()),
            Some(Ok((w, h))) if w.min(h) < MIN_PHOTO_SIDE => {
                scan.skip("too_small", &path, &format!("{w}x{h} pixels"))
            }
            Some(Ok((width, height))) => scan.photos.push(Photo {
                path,
                info: PhotoInfo {
                    camera,
                    width,
                    height,
                },
                verified: false,
            }),
        }
    }
    Ok(scan)
}

/// Decodes in full each photo of `used` (indices into `scan.photos`) not decoded before;
/// those that fail, or decode to another size than their header says, are skipped as
/// `undecodable` and removed. Returns whether any was removed (indices then change, and
/// the plan must be made again).
pub fn drop_undecodable(scan: &mut Scan, used: &BTreeSet<usize>) -> bool {
    let checks: Vec<(usize, Result<(), String>)> = used
        .par_iter()
        .filter(|&&i| !scan.photos[i].verified)
        .map(|&i| {
            let p = &scan.photos[i];
            let result = composite::decode(&p.path)
                .map_err(|e| e.to_string())
                .and_then(|img| {
                    if img.dimensions() == (p.info.width, p.info.height) {
                        Ok(())
                    } else {
                        Err(format!(
                            "decodes to {:?} but its header says {}x{}",
                            img.dimensions(),
                            p.info.width,
                            p.info.height
                        ))
                    }
                });
            (i, result)
        })
        .collect();
    let mut bad = BTreeSet::new();
    for (i, result) in checks {
        match result {
            Ok(()) => scan.photos[i].verified = true,
            Err(e) => {
                let path = scan.photos[i].path.clone();
                scan.skip("undecodable", &path, &e);
                bad.insert(i);
            }
        }
    }
    let mut i = 0;
    scan.photos.retain(|_| {
        i += 1;
        !bad.contains(&(i - 1))
    });
    !bad.is_empty()
}
