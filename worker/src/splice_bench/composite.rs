//! Making one benchmark image: decoding photos, pasting a region pixel for pixel (the
//! target keeps its pixels outside the mask, takes the source's inside it, nothing is
//! blended or resampled), and encoding the two variants every image gets.
//!
//! Encoding is the same for every image, pasted or not, so compression is no tell: the
//! lossless variant is 8-bit RGB PNG; the JPEG variant is baseline JPEG from
//! `jpeg-encoder` with 4:2:0 chroma subsampling at every quality (the encoder would
//! otherwise switch to 4:4:4 from quality 90), its default (IJG / Annex K) tables scaled
//! to the quality, and no metadata. `jpeg-encoder` rather than `image`'s encoder because
//! it lets the subsampling be fixed explicitly, it is the encoder the simulated cameras
//! already use, and without its `simd` feature it runs one scalar code path, so the bytes
//! are the same on every machine.

use std::path::Path;

use image::{GrayImage, ImageEncoder, RgbImage};

use super::plan::Region;
use super::region::{INSIDE, OUTSIDE};

/// Why an image cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CompositeError {
    /// A photo cannot be read or decoded.
    #[error("cannot decode {}: {reason}", path.display())]
    Decode {
        /// The photo.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The region does not fit the photos (they changed since they were planned).
    #[error("the region {width}x{height} at source ({sx}, {sy}) / target ({tx}, {ty}) does not fit a {source_size:?} source and a {target_size:?} target")]
    DoesNotFit {
        /// Region width.
        width: u32,
        /// Region height.
        height: u32,
        /// Region left edge in the source.
        sx: u32,
        /// Region top edge in the source.
        sy: u32,
        /// Region left edge in the target.
        tx: u32,
        /// Region top edge in the target.
        ty: u32,
        /// Source size.
        source_size: (u32, u32),
        /// Target size.
        target_size: (u32, u32),
    },
    /// Encoding failed.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Decodes a photo file to 8-bit RGB in its stored orientation (EXIF orientation is not
/// applied: the sensor's pixel grid is what counts).
pub fn decode(path: &Path) -> Result<RgbImage, CompositeError> {
    let fail = |reason: String| CompositeError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| fail(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?;
    Ok(reader.decode().map_err(|e| fail(e.to_string()))?.to_rgb8())
}

/// The size of a photo from its header alone.
pub fn dimensions(path: &Path) -> Result<(u32, u32), CompositeError> {
    image::image_dimensions(path).map_err(|e| CompositeError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Pastes the pixels of `source` under `mask` (the region's box mask, see
/// [`super::region::Shape::mask`]) into `target` at the region's place. Returns the mask
/// over the whole target.
pub fn paste(
    target: &mut RgbImage,
    source: &RgbImage,
    region: &Region,
    mask: &GrayImage,
) -> Result<GrayImage, CompositeError> {
    let r = region;
    let fits = |img: &RgbImage, x: u32, y: u32| {
        x.checked_add(r.width).is_some_and(|e| e <= img.width())
            && y.checked_add(r.height).is_some_and(|e| e <= img.height())
    };
    if !fits(source, r.source_x, r.source_y)
        || !fits(target, r.target_x, r.target_y)
        || mask.dimensions() != (r.width, r.height)
    {
        return Err(CompositeError::DoesNotFit {
            width: r.width,
            height: r.height,
            sx: r.source_x,
            sy: r.source_y,
            tx: r.target_x,
            ty: r.target_y,
            source_size: source.dimensions(),
            target_size: target.dimensions(),
        });
    }
    let mut full = GrayImage::from_pixel(target.width(), target.height(), image::Luma([OUTSIDE]));
    for (x, y, m) in mask.enumerate_pixels() {
        if m.0[0] == INSIDE {
            let pixel = *source.get_pixel(r.source_x + x, r.source_y + y);
            target.put_pixel(r.target_x + x, r.target_y + y, pixel);
            full.put_pixel(r.target_x + x, r.target_y + y, image::Luma([INSIDE]));
        }
    }
    Ok(full)
}

/// Lossless PNG of an RGB image.
pub fn png_rgb(img: &RgbImage) -> Result<Vec<u8>, CompositeError> {
    png(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
}

/// 8-bit grayscale PNG of a mask.
pub fn png_gray(img: &GrayImage) -> Result<Vec<u8>, CompositeError> {
    png(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::L8,
    )
}

fn png(
    raw: &[u8],
    width: u32,
    height: u32,
    color: image::ExtendedColorType,
) -> Result<Vec<u8>, CompositeError> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(raw, width, height, color)
        .map_err(|e| CompositeError::Encode(e.to_string()))?;
    Ok(out)
}

/// The JPEG variant (see the module documentation for the settings).
pub fn jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, CompositeError> {
    let (w, h) = (u16::try_from(img.width()), u16::try_from(img.height()));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(CompositeError::Encode(format!(
            "{}x{} is larger than JPEG allows (65535 pixels a side)",
            img.width(),
            img.height()
        )));
    };
    let mut out = Vec::with_capacity(img.as_raw().len() / 8);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    enc.encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| CompositeError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::plan::Region;
    use super::super::random::Rng;
    use super::super::region::{random_polygon, Shape};
    use super::*;

    fn noise(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut rng = Rng::new(99, &[seed]);
        RgbImage::from_fn(w, h, |_, _| {
            image::Rgb([
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
            ])
        })
    }

    fn region(shape: Shape) -> Region {
        Region {
            shape,
            width: 37,
            height: 23,
            source_x: 5,
            source_y: 11,
            target_x: 40,
            target_y: 2,
        }
    }

    #[test]
    fn pasted_pixels_are_the_sources_inside_the_mask_and_the_targets_outside() {
        let (source, target) = (noise(60, 40, 1), noise(80, 30, 2));
        let mut rng = Rng::new(5, &[0]);
        for shape in [Shape::Rectangle, Shape::Ellipse, random_polygon(&mut rng)] {
            let r = region(shape);
            let local = r.shape.mask(r.width, r.height);
            let mut out = target.clone();
            let full = paste(&mut out, &source, &r, &local).unwrap();
            assert_eq!(full.dimensions(), target.dimensions());
            let mut inside = 0;
            for (x, y, m) in full.enumerate_pixels() {
                if m.0[0] == INSIDE {
                    inside += 1;
                    let (lx, ly) = (x - r.target_x, y - r.target_y);
                    assert!(lx < r.width && ly < r.height, "mask outside the box");
                    assert_eq!(local.get_pixel(lx, ly).0[0], INSIDE);
                    let s = source.get_pixel(r.source_x + lx, r.source_y + ly);
                    assert_eq!(out.get_pixel(x, y), s);
                } else {
                    assert_eq!(m.0[0], OUTSIDE);
                    assert_eq!(out.get_pixel(x, y), target.get_pixel(x, y));
                }
            }
            let local_inside = local.pixels().filter(|p| p.0[0] == INSIDE).count();
            assert_eq!(inside, local_inside);
            assert!(inside > 0);
        }
    }

    #[test]
    fn a_region_that_does_not_fit_is_an_error_not_a_panic() {
        let (source, mut target) = (noise(20, 20, 1), noise(80, 30, 2));
        let r = region(Shape::Rectangle);
        let mask = r.shape.mask(r.width, r.height);
        let before = target.clone();
        assert!(matches!(
            paste(&mut target, &source, &r, &mask),
            Err(CompositeError::DoesNotFit { .. })
        ));
        assert_eq!(target, before);
    }

    #[test]
    fn png_is_lossless_and_jpeg_is_a_close_4_2_0_copy() {
        let img = RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
        });
        let png = png_rgb(&img).unwrap();
        assert_eq!(image::load_from_memory(&png).unwrap().to_rgb8(), img);
        let mask = GrayImage::from_fn(9, 7, |x, _| image::Luma([if x % 2 == 0 { 255 } else { 0 }]));
        let decoded = image::load_from_memory(&png_gray(&mask).unwrap()).unwrap();
        assert_eq!(decoded.color(), image::ColorType::L8);
        assert_eq!(decoded.to_luma8(), mask);

        let jpg = jpeg(&img, 90).unwrap();
        let back = image::load_from_memory(&jpg).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), img.dimensions());
        let err: f64 = back
            .as_raw()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / img.as_raw().len() as f64;
        assert!(err < 3.0, "mean error {err}");
        // SOF0 component 1 (luma) samples 2x2: 4:2:0.
        let sof = jpg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        assert_eq!(jpg[sof + 9], 3, "three components");
        assert_eq!(jpg[sof + 11], 0x22, "luma sampling factors");
        assert_eq!(jpg[sof + 14], 0x11, "chroma sampling factors");
    }
}
