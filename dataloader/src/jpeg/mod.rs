//! JPEG decoding for training crops: decode only the part of the image a crop needs.
//!
//! A scan index (built once, at pack time) records where each stretch of MCUs starts in
//! the entropy-coded data, so a 124x124 crop of a 12 MP photo decodes a few MCUs instead of
//! the whole picture. Progressive and other unsupported JPEGs fall back to a full decode.

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

/// Width and height from the frame header, without decoding.
pub fn dimensions(_jpeg: &[u8]) -> Result<(u32, u32), JpegError> {
    Err(JpegError::Corrupt("not implemented yet".into()))
}

/// Builds the serialised scan index of a JPEG (stored beside the photo in a shard).
pub fn build_index(_jpeg: &[u8]) -> Result<Vec<u8>, JpegError> {
    Err(JpegError::Corrupt("not implemented yet".into()))
}

/// Decodes `rect` of the photo at full resolution; uses `index` when given and valid.
pub fn decode_crop(
    _jpeg: &[u8],
    _index: Option<&[u8]>,
    _rect: CropRect,
) -> Result<RgbImage, JpegError> {
    Err(JpegError::Corrupt("not implemented yet".into()))
}
