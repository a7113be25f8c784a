//! DSO-1 (Carvalho et al., "Exposing digital image forgeries by illumination color
//! classification", TIFS 2013), from the `tifs-database` archive.
//!
//! Layout: `DSO-1/normal-NN.png` (100 authentic) and `DSO-1/splicing-NN.png` (100
//! spliced); the mask of `splicing-NN.png` is `DSO-1-Fake-Images-Masks/splicing-NN.png`.
//! `path` is the `tifs-database` folder (a doubled `tifs-database/tifs-database/` is
//! accepted). PNGs in `DSO-1/` whose name starts with neither prefix are skipped and
//! counted.
//!
//! Masks: black marks the splice on a white background, so a pixel is spliced where its
//! grey level is 0 ([`MaskEncoding::DarkAtMost`]); a mask at another resolution than its
//! image is resampled to it by nearest neighbour.

use std::path::Path;

use super::super::dir::{unwrap_root, Dir};
use super::super::{Collector, DatasetError, MaskEncoding, MaskResize, SkipReason};

const HINT: &str = "the tifs-database folder holding DSO-1/ and DSO-1-Fake-Images-Masks/";

/// Lists DSO-1 under `root`.
pub(crate) fn read(c: &mut Collector<'_>, root: &Path) -> Result<&'static str, DatasetError> {
    let root = unwrap_root(root, "tifs-database", "DSO-1");
    let images = Dir::open(c, &root.join("DSO-1"), HINT)?;
    let masks = Dir::open(c, &root.join("DSO-1-Fake-Images-Masks"), HINT)?;
    for image in images.images() {
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name.starts_with("normal") {
            c.authentic(image.clone());
        } else if name.starts_with("splicing") {
            let file_name = image.file_name().unwrap_or_default().to_string_lossy();
            let mask = masks.find(&file_name);
            c.spliced(
                image.clone(),
                mask,
                MaskEncoding::DarkAtMost(0),
                MaskResize::Nearest,
            )?;
        } else {
            c.skip(image.clone(), SkipReason::UnrecognisedName);
        }
    }
    Ok(HINT)
}
