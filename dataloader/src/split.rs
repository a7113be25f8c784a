//! Splitting photos by camera model into a training side and a held-out side, to measure
//! how well a model generalises to cameras training never saw.
//!
//! - [`camera_model`] names a photo's camera from its EXIF `Make` and `Model`, normalised so
//!   that spelling variants of one camera fall together (see its documentation).
//! - [`read_camera_models`] reads the camera of each photo file with the crate's own EXIF
//!   reader ([`crate::exif::read_jpeg`]); files whose EXIF cannot be read are skipped and
//!   counted by reason.
//! - [`assign`] is the pure part: group photos by model, shuffle the models with the seed,
//!   and move whole models to the held-out side until it holds at least the requested
//!   fraction of the photos. No model is ever on both sides.
//!
//! Randomness: the models are sorted by name, then shuffled by Fisher-Yates driven by
//! ChaCha8 keyed by `(DOMAIN_SPLIT, seed)` with unbiased bounded sampling, the same
//! generator as the epoch order ([`crate::order`]), so a split is stable across platforms
//! and crate upgrades and does not depend on the order the photos were listed in.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::order::{rng, shuffle};
use crate::TagMap;

/// The group of photos whose EXIF names no camera model.
pub const UNKNOWN_CAMERA: &str = "unknown camera";

const DOMAIN_SPLIT: u64 = 0x5350_4c49_5400_0005;

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// The held-out fraction is not strictly between 0 and 1.
    #[error("held-out fraction {0} must lie strictly between 0 and 1 (for instance 0.2)")]
    BadFraction(f64),
    /// One side would be empty: too few camera models for a split.
    #[error(
        "{photos} photo(s) of {models} camera model(s) cannot be split into two non-empty \
         sides at held-out fraction {fraction}: add photos of more cameras or lower the fraction"
    )]
    TooFewModels {
        /// Photos given.
        photos: usize,
        /// Distinct models among them.
        models: usize,
        /// The requested fraction.
        fraction: f64,
    },
    /// A file list cannot be written.
    #[error("cannot write the file list {}: {reason}", path.display())]
    WriteList {
        /// The list file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// One side of a split.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    /// The camera models on this side, sorted.
    pub models: Vec<String>,
    /// The photos on this side, sorted by path.
    pub photos: Vec<PathBuf>,
}

/// A split of photos by camera model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Photos of the models training sees.
    pub train: Side,
    /// Photos of the models kept out of training.
    pub holdout: Side,
}

/// The camera model a photo's EXIF `Make` and `Model` name, normalised: each is trimmed
/// (spaces and NUL padding), inner runs of white space become one space, and both are
/// lower-cased. When the model repeats the make (`Canon` / `Canon EOS 20D`) or the make's
/// first word (`NIKON CORPORATION` / `NIKON D70`), that prefix is dropped from the model
/// before joining, giving `canon eos 20d` and `nikon corporation d70`. A missing make
/// gives the model alone; a missing or empty model gives [`UNKNOWN_CAMERA`].
pub fn camera_model(make: Option<&str>, model: Option<&str>) -> String {
    let clean = |s: Option<&str>| -> String {
        s.unwrap_or("")
            .trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let (make, model) = (clean(make), clean(model));
    if model.is_empty() {
        return UNKNOWN_CAMERA.to_string();
    }
    if make.is_empty() {
        return model;
    }
    let first_word = make.split(' ').next().unwrap_or(&make);
    let rest = [make.as_str(), first_word]
        .iter()
        .find_map(|prefix| model.strip_prefix(prefix)?.strip_prefix(' '))
        .unwrap_or(&model);
    format!("{make} {rest}")
}

/// The camera model of a tag map (its `Make` and `Model` tags, see [`camera_model`]).
pub fn camera_model_of(tags: &TagMap) -> String {
    camera_model(tags.get("Make"), tags.get("Model"))
}

/// The cameras of a list of photo files.
#[derive(Debug, Clone, Default)]
pub struct ModelScan {
    /// Each readable photo with its camera model, in input order.
    pub photos: Vec<(PathBuf, String)>,
    /// Photos skipped, by reason (`unreadable`, `no_exif`, `malformed_exif`).
    pub skipped: BTreeMap<String, u64>,
}

/// Why a photo's camera could not be read: a skip reason and the error.
type Unread = (&'static str, String);

/// Reads the camera model of each photo (in parallel). A file that cannot be read or whose
/// EXIF is missing or malformed is skipped and counted; the first file of each reason is
/// logged with the error.
pub fn read_camera_models(paths: &[PathBuf]) -> ModelScan {
    let read = |p: &PathBuf| -> Result<String, Unread> {
        let bytes = std::fs::read(p).map_err(|e| ("unreadable", e.to_string()))?;
        let tags = crate::exif::read_jpeg(&bytes).map_err(|e| match e {
            crate::exif::ExifError::Missing => ("no_exif", e.to_string()),
            crate::exif::ExifError::Malformed(_) => ("malformed_exif", e.to_string()),
        })?;
        Ok(camera_model_of(&tags))
    };
    let results: Vec<(&PathBuf, Result<String, Unread>)> =
        paths.par_iter().map(|p| (p, read(p))).collect();
    let mut scan = ModelScan::default();
    for (path, result) in results {
        match result {
            Ok(model) => scan.photos.push((path.clone(), model)),
            Err((reason, detail)) => {
                let n = scan.skipped.entry(reason.to_string()).or_default();
                if *n == 0 {
                    tracing::warn!(path = %path.display(), reason, %detail, "photo skipped");
                }
                *n += 1;
            }
        }
    }
    scan
}

/// Checks that a held-out fraction lies strictly between 0 and 1.
pub fn check_fraction(holdout_fraction: f64) -> Result<(), SplitError> {
    if holdout_fraction > 0.0 && holdout_fraction < 1.0 {
        Ok(())
    } else {
        Err(SplitError::BadFraction(holdout_fraction))
    }
}

/// Splits `photos` (path, camera model) by model: the distinct models, sorted, are
/// shuffled with `seed` (see the module documentation) and taken in that order onto the
/// held-out side until it holds at least `holdout_fraction` of the photos; the rest are
/// the training side. Both sides must end up non-empty.
pub fn assign(
    photos: &[(PathBuf, String)],
    holdout_fraction: f64,
    seed: u64,
) -> Result<Split, SplitError> {
    check_fraction(holdout_fraction)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, model) in photos {
        *counts.entry(model.as_str()).or_default() += 1;
    }
    let mut models: Vec<&str> = counts.keys().copied().collect();
    shuffle(&mut models, &mut rng(DOMAIN_SPLIT, &[seed]));
    let want = holdout_fraction * photos.len() as f64;
    let mut held = HashSet::new();
    let mut held_photos = 0usize;
    for model in &models {
        if held_photos as f64 >= want {
            break;
        }
        held.insert(*model);
        held_photos += counts[model];
    }
    if held_photos == 0 || held_photos == photos.len() {
        return Err(SplitError::TooFewModels {
            photos: photos.len(),
            models: models.len(),
            fraction: holdout_fraction,
        });
    }
    let (mut train, mut holdout) = (Side::default(), Side::default());
    for (path, model) in photos {
        let side = if held.contains(model.as_str()) {
            &mut holdout
        } else {
            &mut train
        };
        side.photos.push(path.clone());
    }
    for (model, _) in counts {
        let side = if held.contains(model) {
            &mut holdout
        } else {
            &mut train
        };
        side.models.push(model.to_string());
    }
    train.photos.sort();
    holdout.photos.sort();
    Ok(Split { train, holdout })
}

/// Writes `photos` as a file list `pack` reads, one path per line: relative to the list's
/// folder for photos under it (so sample keys stay short and the folder can move), absolute
/// otherwise. A path the list format cannot hold (a line break in it, white space around
/// it, not UTF-8) is an error naming it.
pub fn write_list(path: &Path, photos: &[PathBuf]) -> Result<(), SplitError> {
    let fail = |reason: String| SplitError::WriteList {
        path: path.to_path_buf(),
        reason,
    };
    let base = std::path::absolute(path)
        .map_err(|e| fail(e.to_string()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut text = String::new();
    for p in photos {
        let abs = std::path::absolute(p).map_err(|e| fail(format!("{}: {e}", p.display())))?;
        let line = abs
            .strip_prefix(&base)
            .unwrap_or(&abs)
            .to_str()
            .filter(|s| !s.contains(['\n', '\r']) && s.trim() == *s)
            .ok_or_else(|| {
                fail(format!(
                    "{}: a file list cannot hold this path (line break, surrounding white \
                     space or not UTF-8); rename the file",
                    abs.display()
                ))
            })?;
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests;
