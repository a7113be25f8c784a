//! EXIF as text: read a photo's tags (JPEG files, YFCC100M metadata lines), describe each
//! value the way metadata-extractor does, render the training text, count tag frequencies.
//!
//! - [`read_jpeg`] parses the EXIF segment with kamadak-exif and keeps the IFD0 and Exif
//!   sub-IFD tags (not GPS, thumbnail, interoperability or maker-note directories), named
//!   and described as metadata-extractor does (`names`, `describe`, with its number
//!   formatting in `javafmt` and its value conversions in `raw`).
//! - [`parse_yfcc_line`] reads the same map from a YFCC100M metadata line.
//! - [`text`] turns a map into the training text (tag list, format, privacy filter).
//! - [`frequency`] counts how often each tag appears over a corpus and picks the tag list.

mod describe;
pub mod frequency;
mod javafmt;
mod makernote;
mod names;
mod raw;
pub mod text;
mod yfcc;

use crate::TagMap;
use raw::Raw;

pub use names::tag_name;
pub use text::{render_text, TagList, TagOrder, TextFormat};
pub use yfcc::parse_yfcc_line;

/// Why a photo's EXIF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExifError {
    /// The file has no EXIF segment at all.
    #[error("no EXIF data in the file")]
    Missing,
    /// The EXIF segment exists but cannot be parsed.
    #[error("malformed EXIF: {0}")]
    Malformed(String),
}

/// IFD0 tags that metadata-extractor reads into other directories (embedded IPTC, ICC,
/// Photoshop, XMP and PrintIM blocks) or follows as pointers, and so never lists as
/// IFD0 / sub-IFD tags.
const NOT_LISTED: &[u16] = &[0x014a, 0x02bc, 0x8649, 0x8773, 0xc4a5];

/// The maker-note tag: a vendor blob. Listed (as an opaque value) only where the reference
/// lists it, when it does not decode the vendor's format; vendor directories themselves are
/// not decoded here.
const MAKERNOTE: u16 = 0x927c;

/// How many bytes of a maker note the vendor recognition looks at.
const MAKERNOTE_HEAD: usize = 14;

/// Embedded IPTC (read as its own directory when it starts with an IPTC marker).
const IPTC: u16 = 0x83bb;

/// Reads the EXIF of a JPEG file's bytes as a tag map (IFD0 and Exif sub-IFD tags with
/// metadata-extractor names and descriptions).
///
/// Tags unknown to metadata-extractor (`Unknown tag (0x....)`) are left out, and so is
/// a maker note that metadata-extractor decodes into a vendor directory (see `makernote`). A tag whose value has no description (wrong type,
/// for instance) maps to an empty string, as the reference prints it. IFD0 tags come first, then the sub-IFD's; a name
/// present in both keeps its IFD0 position and the sub-IFD value.
pub fn read_jpeg(bytes: &[u8]) -> Result<TagMap, ExifError> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return Err(ExifError::Malformed(
            "not a JPEG file (it does not start with the FF D8 start-of-image marker)".into(),
        ));
    }
    let exif = parse(bytes)?;
    let mut ifd0: Vec<(u16, Raw)> = Vec::new();
    let mut sub: Vec<(u16, Raw)> = Vec::new();
    for field in exif.fields() {
        if field.ifd_num != exif::In::PRIMARY {
            continue;
        }
        let in_sub = match field.tag.context() {
            exif::Context::Tiff => false,
            exif::Context::Exif => true,
            _ => continue,
        };
        let id = field.tag.number();
        if NOT_LISTED.contains(&id) {
            continue;
        }
        let Some(raw) = Raw::from_exif(&field.value) else {
            continue;
        };
        if id == IPTC && !in_sub && raw.byte_array().and_then(|b| b.first().copied()) == Some(0x1c)
        {
            continue;
        }
        if id == MAKERNOTE && in_sub && makernote_decoded(&exif, &ifd0, &field.value) {
            continue;
        }
        if in_sub {
            sub.push((id, raw));
        } else {
            ifd0.push((id, raw));
        }
    }
    Ok(to_tag_map(&[&ifd0, &sub]))
}

/// Whether the reference decodes this maker note (and so does not list it).
fn makernote_decoded(exif: &exif::Exif, ifd0: &[(u16, Raw)], value: &exif::Value) -> bool {
    let make = ifd0
        .iter()
        .find(|(id, _)| *id == 0x010f)
        .map(|(_, v)| v.string());
    let head: Vec<u8> = match value {
        // The reference reads the header from the EXIF block, past the note's own end if short.
        exif::Value::Undefined(_, offset) => {
            let buf = exif.buf();
            let start = (*offset as usize).min(buf.len());
            buf[start..(start + MAKERNOTE_HEAD).min(buf.len())].to_vec()
        }
        other => Raw::from_exif(other)
            .and_then(|r| r.byte_array())
            .unwrap_or_default(),
    };
    makernote::reference_decodes(make.as_deref(), &head, exif.little_endian())
}

/// Names and describes the tags of each directory, in order.
fn to_tag_map(dirs: &[&[(u16, Raw)]]) -> TagMap {
    let mut map = TagMap::new();
    for dir in dirs {
        for (id, _) in dir.iter() {
            if let Some(name) = names::tag_name(*id) {
                map.insert(name, describe::describe(dir, *id).unwrap_or_default());
            }
        }
    }
    map
}

/// Finds and parses the EXIF segment, keeping what parses when parts are damaged.
fn parse(bytes: &[u8]) -> Result<exif::Exif, ExifError> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let result = reader.read_from_container(&mut std::io::Cursor::new(bytes));
    match result {
        Ok(exif) => Ok(exif),
        Err(e) => match e.distill_partial_result(|errors| {
            for err in errors {
                tracing::debug!(error = %err, "EXIF partly damaged; keeping the readable tags");
            }
        }) {
            Ok(exif) => Ok(exif),
            Err(exif::Error::NotFound(_)) => Err(ExifError::Missing),
            Err(e) => Err(ExifError::Malformed(e.to_string())),
        },
    }
}

#[cfg(test)]
mod tests;
