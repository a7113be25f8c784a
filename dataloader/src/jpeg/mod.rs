//! JPEG decoding for training crops: decode only the part of the image a crop needs.
//!
//! A 124x124 crop of a 12 MP photo touches a few dozen of its ~50,000 MCUs, but Huffman
//! coding is sequential: to reach an MCU a plain decoder must read every MCU before it.
//! A scan index ([`build_index`], built once when photos are packed and stored beside
//! them) records entry points into the entropy-coded data, at the start of every MCU row
//! and then every `k` MCUs (about every 256 pixels) along it. [`decode_crop`] jumps to
//! the entry points before the crop on each MCU row it covers, Huffman-decodes only from
//! there to the crop's right edge, and inverse-transforms, upsamples and colour-converts
//! only the crop's blocks (plus the neighbouring chroma samples upsampling reads).
//! Without an index it decodes sequentially up to the crop's last MCU row, skipping the
//! inverse transform outside the crop; restart markers, when the file has them, are found
//! by a byte scan and serve as entry points.
//!
//! Determinism: a crop is bit-for-bit the same rectangle of [`decode_full`], with or
//! without an index, so training crops and inference on whole images agree. Samples use
//! the accurate integer inverse DCT and libjpeg's triangular ("fancy") chroma upsampling
//! with the JFIF colour conversion, the defaults of libjpeg-turbo and so of PIL; see
//! `color` for the edge rules.
//!
//! Supported natively: baseline and extended sequential Huffman JPEGs with 8-bit samples,
//! one scan holding every component, grayscale or YCbCr with integral sampling factors
//! (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, ...), with or without restart markers.
//! Progressive, arithmetic-coded, lossless, 12-bit, CMYK/YCCK and RGB JPEGs are decoded
//! whole by the `image` crate and then cropped (their index only says so).
//!
//! The index is versioned and carries a fingerprint of its JPEG (frame, table and scan
//! headers, file length, samples of the scan data) and a checksum; an index that is
//! damaged, stale or for another photo is ignored with a warning and the crop is decoded
//! without it, so a wrong index never produces wrong pixels.
//!
//! EXIF orientation is deliberately ignored: pixels come out in the sensor's layout,
//! where the camera's traces (demosaicing, JPEG grid) live.

mod color;
mod hash;
mod huffman;
mod idct;
mod index;
mod kit;
mod markers;
mod scan;

use index::{Geometry, Index};
pub use kit::{build_kit, SparseJpeg};
use scan::{Failure, Scan};

/// Entry points are spaced about this many pixels apart along an MCU row.
const ENTRY_SPACING_PX: usize = 256;

/// Why a JPEG could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    /// Not a JPEG, or its structure is broken (truncated, bad markers, bad Huffman data).
    #[error("corrupt JPEG: {0}")]
    Corrupt(String),
    /// The crop does not fit inside the image.
    #[error("crop {crop:?} does not fit in a {width}x{height} image")]
    CropOutside {
        crop: CropRect,
        width: u32,
        height: u32,
    },
}

/// A rectangle in image pixels (top-left corner and size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Interleaved 8-bit RGB pixels, row-major (`height * width * 3` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// The `rect` part of this image (which must fit), as a new image.
    pub fn crop(&self, rect: CropRect) -> Result<RgbImage, JpegError> {
        check_rect(rect, self.width, self.height)?;
        let (w, x) = (self.width as usize * 3, rect.x as usize * 3);
        let row_len = rect.width as usize * 3;
        let data = (rect.y as usize..(rect.y + rect.height) as usize)
            .flat_map(|r| &self.data[r * w + x..r * w + x + row_len])
            .copied()
            .collect();
        Ok(RgbImage {
            width: rect.width,
            height: rect.height,
            data,
        })
    }
}

fn check_rect(crop: CropRect, width: u32, height: u32) -> Result<(), JpegError> {
    let fits = |at: u32, len: u32, total: u32| len > 0 && at as u64 + len as u64 <= total as u64;
    if fits(crop.x, crop.width, width) && fits(crop.y, crop.height, height) {
        Ok(())
    } else {
        Err(JpegError::CropOutside {
            crop,
            width,
            height,
        })
    }
}

/// Width and height from the frame header, without decoding.
pub fn dimensions(jpeg: &[u8]) -> Result<(u32, u32), JpegError> {
    let h = markers::parse(jpeg, true)?;
    Ok((h.width, h.height))
}

fn fallback_geometry(h: &markers::Header) -> Geometry {
    Geometry {
        width: h.width,
        height: h.height,
        mcus_x: 0,
        mcus_y: 0,
        ncomp: h.components.len(),
    }
}

/// Builds the serialised scan index of a JPEG (stored beside the photo in a shard).
///
/// Costs one Huffman pass over the scan (no inverse DCT). For a 12 MP 4:2:0 photo the
/// index is about 20 KB. For JPEGs decoded by the fallback it is a short record saying so.
pub fn build_index(jpeg: &[u8]) -> Result<Vec<u8>, JpegError> {
    let hdr = markers::parse(jpeg, false)?;
    let fingerprint = index::fingerprint(jpeg, &hdr);
    if hdr.unsupported().is_some() {
        return Ok(index::fallback_index(fallback_geometry(&hdr), fingerprint));
    }
    let scan = Scan::new(jpeg, &hdr)?;
    let k = ENTRY_SPACING_PX.div_ceil(scan.mcu_width()).max(1);
    let mut writer = index::IndexWriter::new(scan.geometry(), k);
    scan.build_entries(&mut writer)?;
    Ok(writer.finish(fingerprint))
}

/// Decodes `rect` of the photo at full resolution; uses `index` when given and valid.
pub fn decode_crop(
    jpeg: &[u8],
    index: Option<&[u8]>,
    rect: CropRect,
) -> Result<RgbImage, JpegError> {
    let hdr = markers::parse(jpeg, false)?;
    check_rect(rect, hdr.width, hdr.height)?;
    if let Some(reason) = hdr.unsupported() {
        tracing::trace!(%reason, "JPEG decoded whole by the fallback decoder");
        return fallback_decode(jpeg)?.crop(rect);
    }
    let scan = Scan::new(jpeg, &hdr)?;
    decode_with_index(jpeg, &hdr, &scan, index.unwrap_or_default(), rect, true)
}

/// Decodes `rect` of a supported JPEG through `index`. An index that does not fit is
/// ignored with a warning when `without_index` allows a sequential decode, and an error
/// otherwise (a sparse file holds only the bytes the index leads to).
fn decode_with_index(
    jpeg: &[u8],
    hdr: &markers::Header,
    scan: &Scan,
    index: &[u8],
    rect: CropRect,
    without_index: bool,
) -> Result<RgbImage, JpegError> {
    let view = match index::parse(index, index::fingerprint(jpeg, hdr), scan.geometry()) {
        _ if index.is_empty() && without_index => None,
        Ok(Index::Entries(view)) => Some(view),
        Ok(Index::Fallback) if without_index => {
            tracing::warn!("scan index marks a decodable JPEG for full decoding; ignoring it");
            None
        }
        Err(reason) if without_index => {
            tracing::warn!(%reason, "ignoring scan index; decoding without it");
            None
        }
        Ok(Index::Fallback) => {
            return Err(JpegError::Corrupt(
                "scan index says to decode the JPEG whole".into(),
            ))
        }
        Err(reason) => {
            return Err(JpegError::Corrupt(format!(
                "scan index unusable for a partly fetched JPEG: {reason}"
            )))
        }
    };
    let (x, y, w, h) = (
        rect.x as usize,
        rect.y as usize,
        rect.width as usize,
        rect.height as usize,
    );
    let planes = match scan.decode_planes(x, y, w, h, view.as_ref()) {
        Ok(planes) => planes,
        Err(Failure::Jpeg(e)) => return Err(e),
        Err(Failure::Index(reason)) if without_index => {
            tracing::warn!(%reason, "bad scan index entry; decoding without the index");
            match scan.decode_planes(x, y, w, h, None) {
                Ok(planes) => planes,
                Err(Failure::Jpeg(e)) => return Err(e),
                Err(Failure::Index(reason)) => return Err(JpegError::Corrupt(reason)),
            }
        }
        Err(Failure::Index(reason)) => return Err(JpegError::Corrupt(reason)),
    };
    let data = color::render(&planes, x, y, w, h);
    Ok(RgbImage {
        width: rect.width,
        height: rect.height,
        data,
    })
}

/// Decodes the whole photo (the same pixels every crop of it has).
pub fn decode_full(jpeg: &[u8]) -> Result<RgbImage, JpegError> {
    let (width, height) = dimensions(jpeg)?;
    decode_crop(
        jpeg,
        None,
        CropRect {
            x: 0,
            y: 0,
            width,
            height,
        },
    )
}

/// Whole-image decode with the `image` crate, for the JPEG kinds not handled here.
fn fallback_decode(jpeg: &[u8]) -> Result<RgbImage, JpegError> {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .map_err(|e| JpegError::Corrupt(format!("fallback decoder: {e}")))?
        .into_rgb8();
    let (width, height) = img.dimensions();
    Ok(RgbImage {
        width,
        height,
        data: img.into_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_decodes_to_mid_gray_and_crops_are_checked() {
        let j = markers::tests::minimal_baseline();
        assert_eq!(dimensions(&j).unwrap(), (16, 8));
        let full = decode_full(&j).unwrap();
        assert_eq!((full.width, full.height), (16, 8));
        assert!(full.data.iter().all(|&v| v == 128));
        let index = build_index(&j).unwrap();
        let rect = CropRect {
            x: 9,
            y: 2,
            width: 7,
            height: 6,
        };
        assert_eq!(
            decode_crop(&j, Some(&index), rect).unwrap(),
            full.crop(rect).unwrap()
        );
        for bad in [
            CropRect {
                x: 10,
                y: 0,
                width: 7,
                height: 1,
            },
            CropRect {
                x: 0,
                y: 8,
                width: 1,
                height: 1,
            },
            CropRect {
                x: 0,
                y: 0,
                width: 0,
                height: 1,
            },
            CropRect {
                x: u32::MAX,
                y: 0,
                width: 2,
                height: 1,
            },
        ] {
            assert!(
                matches!(
                    decode_crop(&j, None, bad),
                    Err(JpegError::CropOutside { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn not_a_jpeg_is_corrupt() {
        for data in [&b""[..], b"\x89PNG\r\n", b"\xFF\xD8\xFF\xD9"] {
            assert!(matches!(decode_full(data), Err(JpegError::Corrupt(_))));
            assert!(matches!(build_index(data), Err(JpegError::Corrupt(_))));
        }
    }
}
