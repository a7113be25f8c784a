//! In-the-Wild splices (Huh et al., "Fighting Fake News", ECCV 2018): 201 spliced images
//! collected online, with hand-made masks. There are no authentic images, so the set has
//! localisation scores but no detection score.
//!
//! Layout: `path` is `label_in_wild/` (a doubled `label_in_wild/label_in_wild/` is
//! accepted) holding `images/<id>.jpg` and `masks/<id>.png`.
//!
//! Masks: spliced where the grey level is above 0 ([`MaskEncoding::BrightAbove`]); masks
//! must have the image's size.

use std::path::Path;

use super::super::dir::{stem, unwrap_root, Dir};
use super::super::{Collector, DatasetError, MaskEncoding, MaskResize};

const HINT: &str = "the label_in_wild folder holding images/ and masks/";

/// Lists the In-the-Wild dataset under `root`.
pub(crate) fn read(c: &mut Collector<'_>, root: &Path) -> Result<&'static str, DatasetError> {
    let root = unwrap_root(root, "label_in_wild", "images");
    let images = Dir::open(c, &root.join("images"), HINT)?;
    let masks = Dir::open(c, &root.join("masks"), HINT)?;
    for image in images.images() {
        let mask = masks.find(&format!("{}.png", stem(image)));
        c.spliced(
            image.clone(),
            mask,
            MaskEncoding::BrightAbove(0),
            MaskResize::Exact,
        )?;
    }
    Ok(HINT)
}
