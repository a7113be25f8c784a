//! Preparing one photo for a shard (CPU work, run off the async runtime): check its bytes
//! are a whole JPEG at least one patch large, get its tags, build its scan index and decode
//! kit, hash it, encode its tar members. Photos that cannot be used come back as a
//! [`Skip`] with a reason.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::shard::sample::{self, EncodedSample, SampleInput};
use crate::shard::Compression;
use crate::TagMap;

/// Side of the square training patch; smaller photos are skipped.
pub const PATCH_SIZE: u32 = 124;

/// Why a photo was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The file could not be read.
    Unreadable,
    /// Not a JPEG, or a broken or truncated one.
    CorruptJpeg,
    /// Narrower or lower than one patch.
    TooSmall,
    /// No EXIF segment.
    NoExif,
    /// An EXIF segment that does not parse.
    BadExif,
    /// Fewer tags than the minimum asked for.
    FewTags,
    /// No line for the photo in the metadata file.
    NoMetadata,
    /// The same bytes as a photo packed before it.
    Duplicate,
    /// No object at the photo's place in the bucket.
    Missing,
}

impl SkipReason {
    /// The name used in the manifest's `skipped` map.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unreadable => "unreadable",
            SkipReason::CorruptJpeg => "corrupt_jpeg",
            SkipReason::TooSmall => "too_small",
            SkipReason::NoExif => "no_exif",
            SkipReason::BadExif => "bad_exif",
            SkipReason::FewTags => "few_tags",
            SkipReason::NoMetadata => "no_metadata",
            SkipReason::Duplicate => "duplicate",
            SkipReason::Missing => "missing_photo",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A photo left out, with the reason and a detail for the log.
#[derive(Debug, Clone)]
pub struct Skip {
    /// Why.
    pub reason: SkipReason,
    /// The specifics (error message, size, tag count).
    pub detail: String,
}

fn skip(reason: SkipReason, detail: impl Into<String>) -> Skip {
    Skip {
        reason,
        detail: detail.into(),
    }
}

/// Where the tags of a photo come from.
#[derive(Debug, Clone)]
pub enum TagLookup {
    /// The EXIF in the JPEG file itself.
    Exif,
    /// A map from photo id (file name without extension) to tags.
    ById(HashMap<String, TagMap>),
}

/// A photo ready for the shard writer.
#[derive(Debug)]
pub struct Prepared {
    /// The encoded sample.
    pub encoded: EncodedSample,
    /// Its tags (counted for the manifest's tag list).
    pub tags: TagMap,
    /// SHA-256 of the photo's bytes, lowercase hex (duplicates are found by it).
    pub sha256: String,
}

/// Checks one photo's bytes and encodes it as a sample. `id` is the photo id tags are
/// looked up by (the file name without extension); `tags` given are used as they are.
/// `min_tags` counts tags with a non-empty value, as the tag-frequency count does.
pub fn prepare(
    jpeg: Vec<u8>,
    key: &str,
    id: &str,
    tags: Option<&TagMap>,
    lookup: &TagLookup,
    min_tags: usize,
    compression: Compression,
) -> Result<Prepared, Skip> {
    let (width, height) = dimensions(&jpeg).map_err(|e| skip(SkipReason::CorruptJpeg, e))?;
    check_structure(&jpeg).map_err(|e| skip(SkipReason::CorruptJpeg, e))?;
    if width < PATCH_SIZE || height < PATCH_SIZE {
        return Err(skip(
            SkipReason::TooSmall,
            format!("{width}x{height}, smaller than a {PATCH_SIZE}x{PATCH_SIZE} patch"),
        ));
    }
    let tags = match (tags, lookup) {
        (Some(tags), _) => tags.clone(),
        (None, TagLookup::Exif) => crate::exif::read_jpeg(&jpeg).map_err(|e| match e {
            crate::exif::ExifError::Missing => skip(SkipReason::NoExif, e.to_string()),
            other => skip(SkipReason::BadExif, other.to_string()),
        })?,
        (None, TagLookup::ById(map)) => map.get(id).cloned().ok_or_else(|| {
            skip(
                SkipReason::NoMetadata,
                format!("no metadata for photo id '{id}'"),
            )
        })?,
    };
    let present = tags.iter().filter(|(_, v)| !v.trim().is_empty()).count();
    if present < min_tags {
        return Err(skip(
            SkipReason::FewTags,
            format!("{present} tags with a value, fewer than {min_tags}"),
        ));
    }
    // A full entropy-decoding pass: it also catches damaged image data that the structural
    // check cannot see. JPEG kinds the partial decoder does not handle get a short record
    // telling readers to decode them whole.
    let jpeg_index = crate::jpeg::build_index(&jpeg)
        .map(Bytes::from)
        .map_err(|e| skip(SkipReason::CorruptJpeg, e.to_string()))?;
    let sha256 = hex::encode(Sha256::digest(&jpeg));
    let jpeg_kit = crate::jpeg::build_kit(&jpeg)
        .map_err(|e| skip(SkipReason::CorruptJpeg, e.to_string()))?
        .map(Bytes::from);
    let input = SampleInput {
        key: key.to_string(),
        jpeg: Bytes::from(jpeg),
        tags: tags.clone(),
        jpeg_index: Some(jpeg_index),
        jpeg_kit,
        width,
        height,
    };
    let encoded = sample::encode(&input, compression)
        .map_err(|e| skip(SkipReason::CorruptJpeg, e.to_string()))?;
    Ok(Prepared {
        encoded,
        tags,
        sha256,
    })
}

/// Width and height from the frame header.
fn dimensions(jpeg: &[u8]) -> Result<(u32, u32), String> {
    crate::jpeg::dimensions(jpeg).map_err(|e| e.to_string())
}

/// Cheap structural check that catches truncated files without decoding: the marker
/// segments up to the first scan are whole, and an end-of-image marker follows it (inside
/// entropy-coded data a 0xFF byte is never followed by 0xD9).
pub fn check_structure(jpeg: &[u8]) -> Result<(), String> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err("no start-of-image marker".into());
    }
    let mut pos = 2;
    loop {
        while jpeg.get(pos) == Some(&0xFF) && jpeg.get(pos + 1) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        let (Some(&0xFF), Some(&marker)) = (jpeg.get(pos), jpeg.get(pos + 1)) else {
            return Err(format!("truncated or broken marker segments at byte {pos}"));
        };
        pos += 2;
        match marker {
            0xD9 => return Err("end-of-image marker before any scan".into()),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = jpeg
            .get(pos..pos + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        else {
            return Err(format!("truncated segment header at byte {pos}"));
        };
        if len < 2 || pos + len > jpeg.len() {
            return Err(format!(
                "segment 0xFF{marker:02X} at byte {pos} runs past the end of the file"
            ));
        }
        pos += len;
        if marker == 0xDA {
            return if jpeg[pos..].windows(2).any(|w| w == [0xFF, 0xD9]) {
                Ok(())
            } else {
                Err("no end-of-image marker after the scan: the file is truncated".into())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn tiny_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn whole_jpeg_passes_and_truncated_fails_structure_check() {
        let j = tiny_jpeg(200, 160);
        assert!(check_structure(&j).is_ok());
        assert_eq!(dimensions(&j).unwrap(), (200, 160));
        let cut = &j[..j.len() * 2 / 3];
        assert!(check_structure(cut).unwrap_err().contains("truncated"));
        assert!(check_structure(&j[..20]).is_err());
        assert!(check_structure(b"hello, not a jpeg").is_err());
    }

    #[test]
    fn photos_are_skipped_with_the_right_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let big = tiny_jpeg(200, 160);
        let mut tags = TagMap::new();
        for i in 0..3 {
            tags.insert(format!("Tag {i}"), "v");
        }
        let lookup = TagLookup::ById(HashMap::from([("good".to_string(), tags)]));
        let reason = |p: &Path, min_tags| {
            let Ok(bytes) = std::fs::read(p) else {
                return SkipReason::Unreadable;
            };
            let id = crate::pack::input::photo_id(p);
            prepare(bytes, "k", &id, None, &lookup, min_tags, Compression::None)
                .map(|_| ())
                .unwrap_err()
                .reason
        };
        assert_eq!(
            reason(&write("text.jpg", b"just text"), 1),
            SkipReason::CorruptJpeg
        );
        assert_eq!(
            reason(&write("cut.jpg", &big[..big.len() / 2]), 1),
            SkipReason::CorruptJpeg
        );
        assert_eq!(
            reason(&write("small.jpg", &tiny_jpeg(100, 300)), 1),
            SkipReason::TooSmall
        );
        assert_eq!(reason(&write("other.jpg", &big), 1), SkipReason::NoMetadata);
        let good = write("good.jpg", &big);
        assert_eq!(reason(&good, 4), SkipReason::FewTags);
        let bytes = std::fs::read(&good).unwrap();
        let ok = prepare(
            bytes.clone(),
            "k",
            "good",
            None,
            &lookup,
            3,
            Compression::Zstd,
        )
        .unwrap();
        assert_eq!(
            (ok.encoded.width, ok.encoded.height, ok.encoded.tags),
            (200, 160, 3)
        );
        assert_eq!(ok.sha256, hex::encode(Sha256::digest(&bytes)));
        // Tags given with the photo win over the lookup.
        let given: TagMap = (0..5).map(|i| (format!("T{i}"), "v".to_string())).collect();
        let ok = prepare(
            bytes,
            "k",
            "nobody",
            Some(&given),
            &lookup,
            5,
            Compression::None,
        );
        assert_eq!(ok.unwrap().tags, given);
    }
}
