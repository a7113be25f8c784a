//! Columbia Uncompressed Image Splicing Detection Evaluation Dataset (Hsu & Chang 2006).
//!
//! Layout: `4cam_auth/` (183 authentic images) and `4cam_splc/` (180 spliced images),
//! uncompressed TIFF (or BMP), named `<camera>_<index>_sub_<n>` and
//! `<camera1>_<camera2>_sub_<n>`; the ground truth is `4cam_splc/edgemask/<stem>_edgemask.jpg`
//! (variants such as `<stem>_edgemask_3.jpg` are not used). Either folder may be doubled
//! by unpacking (`4cam_auth/4cam_auth/`).
//!
//! Masks: the edge masks paint the region from the first camera red and the region from
//! the second camera green (a bright shade along the splicing boundary, a regular shade
//! elsewhere) and are JPEG-compressed, so no colour is exact: a pixel is spliced where its
//! green channel exceeds its red one ([`MaskEncoding::ColumbiaEdgemask`]). Masks must have
//! the image's size.

use std::path::Path;

use super::super::dir::{nested, stem, Dir};
use super::super::{Collector, DatasetError, MaskEncoding, MaskResize};

const HINT: &str =
    "the folder holding 4cam_auth/ and 4cam_splc/ (Columbia Uncompressed Image Splicing)";

/// Lists the Columbia dataset under `root`.
pub(crate) fn read(c: &mut Collector<'_>, root: &Path) -> Result<&'static str, DatasetError> {
    let auth = Dir::open(c, &nested(root, "4cam_auth"), HINT)?;
    let splc_path = nested(root, "4cam_splc");
    let splc = Dir::open(c, &splc_path, HINT)?;
    let masks = Dir::open(c, &splc_path.join("edgemask"), HINT)?;
    for image in auth.images() {
        c.authentic(image.clone());
    }
    for image in splc.images() {
        let mask = masks.find(&format!("{}_edgemask.jpg", stem(image)));
        c.spliced(
            image.clone(),
            mask,
            MaskEncoding::ColumbiaEdgemask,
            MaskResize::Exact,
        )?;
    }
    Ok(HINT)
}
