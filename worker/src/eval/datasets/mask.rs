//! Ground-truth masks: decoding a dataset's mask image into one boolean per pixel of its
//! image (`true` = spliced), by the dataset's own colour convention.

use std::path::PathBuf;

use image::{DynamicImage, GenericImageView};

use super::DatasetError;

/// How a mask image marks spliced pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskEncoding {
    /// Spliced where the grey level (luma of RGB, 8 bits) is above the value: white (or any
    /// non-black with 0) on black.
    BrightAbove(u8),
    /// Spliced where the grey level is at most the value: black on white (DSO-1).
    DarkAtMost(u8),
    /// Columbia's colour edge masks (JPEG): the region from the first camera is red, the
    /// region from the second camera (the splice) green, each in a bright shade near the
    /// splicing boundary and a regular shade elsewhere. Spliced where the green channel
    /// exceeds the red one, which survives the JPEG compression of the masks.
    ColumbiaEdgemask,
}

/// What to do when a mask's size differs from its image's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskResize {
    /// A different size is an error ([`DatasetError::MaskSize`]).
    Exact,
    /// Resample to the image's size by nearest neighbour (pixel centres), for datasets
    /// whose masks are known to come at another resolution.
    Nearest,
}

/// A mask file and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSpec {
    /// The mask image.
    pub path: PathBuf,
    /// Its colour convention.
    pub encoding: MaskEncoding,
    /// Whether it may be resampled to its image's size.
    pub resize: MaskResize,
}

/// Decodes `spec` into `width * height` booleans (row-major, `true` = spliced) for an
/// image of that size.
pub fn load_mask(spec: &MaskSpec, width: u32, height: u32) -> Result<Vec<bool>, DatasetError> {
    let read_err = |source| DatasetError::MaskRead {
        path: spec.path.clone(),
        source,
    };
    let img = image::ImageReader::open(&spec.path)
        .map_err(read_err)?
        .with_guessed_format()
        .map_err(read_err)?
        .decode()
        .map_err(|source| DatasetError::MaskDecode {
            path: spec.path.clone(),
            source,
        })?;
    let (mw, mh) = img.dimensions();
    let size_err = || DatasetError::MaskSize {
        path: spec.path.clone(),
        mask_width: mw,
        mask_height: mh,
        width,
        height,
    };
    let flags = spliced_pixels(&img, spec.encoding);
    if (mw, mh) == (width, height) {
        return Ok(flags);
    }
    if spec.resize == MaskResize::Exact || mw == 0 || mh == 0 || width == 0 || height == 0 {
        return Err(size_err());
    }
    tracing::debug!(mask = %spec.path.display(), from = ?(mw, mh), to = ?(width, height),
        "mask resampled to its image's size");
    Ok(resample_nearest(&flags, mw, mh, width, height))
}

/// The spliced flags of a decoded mask at its own size.
pub(crate) fn spliced_pixels(img: &DynamicImage, encoding: MaskEncoding) -> Vec<bool> {
    match encoding {
        MaskEncoding::BrightAbove(t) => img.to_luma8().pixels().map(|p| p.0[0] > t).collect(),
        MaskEncoding::DarkAtMost(t) => img.to_luma8().pixels().map(|p| p.0[0] <= t).collect(),
        MaskEncoding::ColumbiaEdgemask => img.to_rgb8().pixels().map(|p| p.0[1] > p.0[0]).collect(),
    }
}

/// Nearest-neighbour resampling of a `w x h` grid to `tw x th` (pixel centres map to
/// pixel centres).
fn resample_nearest(flags: &[bool], w: u32, h: u32, tw: u32, th: u32) -> Vec<bool> {
    let src = |t: u32, from: u32, to: u32| {
        (((2 * u64::from(t) + 1) * u64::from(from)) / (2 * u64::from(to))).min(u64::from(from) - 1)
            as usize
    };
    let cols: Vec<usize> = (0..tw).map(|x| src(x, w, tw)).collect();
    let mut out = Vec::with_capacity(tw as usize * th as usize);
    for y in 0..th {
        let row = src(y, h, th) * w as usize;
        out.extend(cols.iter().map(|&x| flags[row + x]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_resampling_maps_centres() {
        // 2x1 -> 4x2: each source pixel covers two columns, both rows.
        let out = resample_nearest(&[true, false], 2, 1, 4, 2);
        assert_eq!(out, [true, true, false, false, true, true, false, false]);
        // 3x1 -> 2x1: centres 0.75 and 2.25 -> source pixels 0 and 2.
        assert_eq!(
            resample_nearest(&[true, false, false], 3, 1, 2, 1),
            [true, false]
        );
    }
}
