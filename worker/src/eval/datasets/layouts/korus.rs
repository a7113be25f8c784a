//! Realistic Tampering Dataset (Korus & Huang, WIFS 2016 / TIFS 2017): 220 hand-made
//! forgeries and their originals, 1920x1080 TIFF, from four cameras.
//!
//! Layout: `path` is `data-images/` (a doubled `data-images/data-images/` is accepted),
//! holding one folder per camera (`Canon_60D`, `Nikon_D90`, `Nikon_D7000`, `Sony_A57`:
//! every sub-folder with a `pristine/` or `tampered-realistic/` folder counts), each with
//! `pristine/*.TIF` (authentic), `tampered-realistic/*.TIF` (forged) and
//! `ground-truth/<stem>.PNG`.
//!
//! Masks have three levels: black = authentic, white = changed content, grey = "collateral
//! damage" (pixels changed while blending the forgery in). Both white and grey count as
//! spliced (grey level above 0, [`MaskEncoding::BrightAbove`]), as the reference code's
//! evaluation counts them. Masks must have the image's size.

use std::path::Path;

use super::super::dir::{stem, unwrap_root, Dir};
use super::super::{Collector, DatasetError, MaskEncoding, MaskResize};

const HINT: &str = "the data-images folder holding one folder per camera (Canon_60D, ...), \
                    each with pristine/, tampered-realistic/ and ground-truth/";

/// Lists the Realistic Tampering dataset under `root`.
pub(crate) fn read(c: &mut Collector<'_>, root: &Path) -> Result<&'static str, DatasetError> {
    let root = unwrap_root(root, "data-images", "Canon_60D");
    if !root.is_dir() {
        return Err(DatasetError::MissingFolder {
            dataset: c.name().to_string(),
            path: root,
            hint: HINT,
        });
    }
    let listing = std::fs::read_dir(&root).map_err(|source| DatasetError::ReadDir {
        dataset: c.name().to_string(),
        path: root.clone(),
        source,
    })?;
    let mut cameras: Vec<_> = listing
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("pristine").is_dir() || p.join("tampered-realistic").is_dir())
        .collect();
    cameras.sort();
    if cameras.is_empty() {
        return Err(DatasetError::MissingFolder {
            dataset: c.name().to_string(),
            path: root.join("<camera>").join("tampered-realistic"),
            hint: HINT,
        });
    }
    for camera in cameras {
        let pristine = Dir::open(c, &camera.join("pristine"), HINT)?;
        let tampered = Dir::open(c, &camera.join("tampered-realistic"), HINT)?;
        let truth = Dir::open(c, &camera.join("ground-truth"), HINT)?;
        for image in pristine.images() {
            c.authentic(image.clone());
        }
        for image in tampered.images() {
            let mask = truth.find(&format!("{}.PNG", stem(image)));
            c.spliced(
                image.clone(),
                mask,
                MaskEncoding::BrightAbove(0),
                MaskResize::Exact,
            )?;
        }
    }
    Ok(HINT)
}
