//! CASIA v1.0 and v2.0 (Dong et al., ChinaSIP 2013), with the ground-truth masks published
//! separately by Pham et al. (`namtpham/casia1groundtruth`, `namtpham/casia2groundtruth`).
//!
//! Layout v1.0: `Au/` (800 authentic JPEGs, `Au_<cat>_NNNN.jpg`), `Tp/Sp/` and `Tp/CM/`
//! (tampered, `Sp_D_...jpg` = spliced from a different image, `Sp_S_...jpg` = copy-move
//! within the same image); masks `CASIA 1.0 groundtruth/Sp/<stem>_gt.png`.
//! Layout v2.0: `Au/` (authentic JPEG/TIFF/BMP), `Tp/` (`Tp_D_...` spliced, `Tp_S_...`
//! copy-move); masks `CASIA 2 Groundtruth/<stem>_gt.png` (also found as
//! `CASIA2.0_Groundtruth/` or `CASIA 2.0 Groundtruth/`). For either version the config's
//! `masks` names the ground-truth folder when it lives elsewhere (for v1.0 either the
//! `CASIA 1.0 groundtruth` folder or its `Sp/`).
//!
//! Labels come from the file name, not the folder (the original release misfiled some):
//! copy-move images are one camera only, so they are skipped and counted, as are names with
//! neither prefix. Pham et al. list a few tampered images without a mask (and renamed
//! files): `on_missing_mask = "skip"` leaves those out.
//!
//! Masks: white splice on black, spliced where the grey level is above 127
//! ([`MaskEncoding::BrightAbove`]); a mask at another resolution than its image is
//! resampled to it by nearest neighbour.

use std::path::{Path, PathBuf};

use super::super::dir::{stem, Dir};
use super::super::{Collector, DatasetError, MaskEncoding, MaskResize, SkipReason};

const HINT_V1: &str = "the CASIA 1.0 folder holding Au/ and Tp/ (with Tp/Sp/); the ground \
                       truth in `CASIA 1.0 groundtruth/Sp/` inside it, or named by `masks`";
const HINT_V2: &str = "the CASIA 2.0 folder holding Au/ and Tp/; the ground truth in \
                       `CASIA 2 Groundtruth/` inside it, or named by `masks`";
const V2_MASK_FOLDERS: [&str; 3] = [
    "CASIA 2 Groundtruth",
    "CASIA2.0_Groundtruth",
    "CASIA 2.0 Groundtruth",
];

/// Lists CASIA v1.0 under `root`; `masks` overrides the ground-truth folder.
pub(crate) fn read_v1(
    c: &mut Collector<'_>,
    root: &Path,
    masks: Option<&Path>,
) -> Result<&'static str, DatasetError> {
    let au = Dir::open(c, &root.join("Au"), HINT_V1)?;
    let mut tampered = vec![Dir::open(c, &root.join("Tp").join("Sp"), HINT_V1)?];
    let copy_move = root.join("Tp").join("CM");
    if copy_move.is_dir() {
        tampered.push(Dir::open(c, &copy_move, HINT_V1)?);
    }
    let truth = match masks {
        Some(m) if m.join("Sp").is_dir() => m.join("Sp"),
        Some(m) => m.to_path_buf(),
        None => root.join("CASIA 1.0 groundtruth").join("Sp"),
    };
    let truth = Dir::open(c, &truth, HINT_V1)?;
    for image in au.images() {
        c.authentic(image.clone());
    }
    for dir in &tampered {
        add_tampered(c, dir, &truth, "sp_d_", "sp_s_")?;
    }
    Ok(HINT_V1)
}

/// Lists CASIA v2.0 under `root`; `masks` overrides the ground-truth folder.
pub(crate) fn read_v2(
    c: &mut Collector<'_>,
    root: &Path,
    masks: Option<&Path>,
) -> Result<&'static str, DatasetError> {
    let au = Dir::open(c, &root.join("Au"), HINT_V2)?;
    let tp = Dir::open(c, &root.join("Tp"), HINT_V2)?;
    let truth: PathBuf = match masks {
        Some(m) => m.to_path_buf(),
        None => V2_MASK_FOLDERS
            .iter()
            .map(|name| root.join(name))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| root.join(V2_MASK_FOLDERS[0])),
    };
    let truth = Dir::open(c, &truth, HINT_V2)?;
    for image in au.images() {
        c.authentic(image.clone());
    }
    add_tampered(c, &tp, &truth, "tp_d_", "tp_s_")?;
    Ok(HINT_V2)
}

/// Adds the images of `dir`: `splice` prefix -> spliced, `copy_move` prefix -> skipped.
fn add_tampered(
    c: &mut Collector<'_>,
    dir: &Dir,
    truth: &Dir,
    splice: &str,
    copy_move: &str,
) -> Result<(), DatasetError> {
    for image in dir.images() {
        let name = stem(image);
        let lower = name.to_lowercase();
        if lower.starts_with(splice) {
            let mask = truth.find(&format!("{name}_gt.png"));
            c.spliced(
                image.clone(),
                mask,
                MaskEncoding::BrightAbove(127),
                MaskResize::Nearest,
            )?;
        } else if lower.starts_with(copy_move) {
            c.skip(image.clone(), SkipReason::CopyMove);
        } else {
            c.skip(image.clone(), SkipReason::UnrecognisedName);
        }
    }
    Ok(())
}
