//! YFCC100M EXIF metadata lines (the EXIF expansion, `yfcc100m_exif`):
//! `photo_id<TAB>key:value,key:value,...`.
//!
//! The format, from the dataset's Webscope README: one line per photo or video, in the
//! same order as the main metadata file; "each line refers to a photo/video and its
//! (comma-separated) set of Exif metadata items. Each item is represented by a key and its
//! (colon-separated) value, where the key further consists of two parts, a category and a
//! (period-separated) tag. The category, the tag and the value have all been URL-encoded."
//! A photo without EXIF is "the line only contains a photo/video identifier and a tab".
//! The README's example items: `Exif+SubIFD.Focal+Length:50.0+mm,Exif+SubIFD.Focal+Plane+Resolution+Unit:Inches`.
//! Code that reads the real file splits the same way (hellomuffin/exif-as-language
//! `dataProcess/yfcc_dataInfo.py`: split on `,` then `:`, then `unquote_plus`).
//!
//! Keys and values are URL-encoded (`+` for a space, `%2C` for a comma, ...). A key names
//! the metadata-extractor directory and tag, `Exif+SubIFD.Focal+Length`; only the
//! `Exif IFD0` and `Exif SubIFD` directories are kept, under the bare tag name, so that a
//! line gives the same [`TagMap`] as [`super::read_jpeg`] on the original file (unknown
//! tags are dropped on both paths).

use super::ExifError;
use crate::TagMap;
use std::borrow::Cow;

/// Directories whose tags a tag map holds.
const KEPT_DIRECTORIES: [&str; 2] = ["Exif IFD0", "Exif SubIFD"];

/// Parses one line of a YFCC100M EXIF metadata file (`photo_id<TAB>key:value,...` with
/// URL-encoded keys such as `Exif+SubIFD.Focal+Length`) into the photo id and its tag map,
/// the same map [`super::read_jpeg`] gives for the original file.
///
/// A photo without EXIF has nothing after the tab (an empty map). Errors name the
/// problem: a missing tab, an empty photo id, a pair without `:`, a key without a
/// directory, a broken `%` escape.
pub fn parse_yfcc_line(line: &str) -> Result<(String, TagMap), ExifError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let bad = |msg: String| ExifError::Malformed(format!("YFCC line: {msg}"));
    let Some((id, rest)) = line.split_once('\t') else {
        return Err(bad(format!(
            "no tab between the photo id and the tags in `{}`",
            preview(line)
        )));
    };
    let id = id.trim();
    if id.is_empty() {
        return Err(bad("empty photo id before the tab".to_string()));
    }
    let mut map = TagMap::new();
    if rest.trim().is_empty() {
        return Ok((id.to_string(), map));
    }
    for (n, pair) in rest.split(',').enumerate() {
        let Some((key, value)) = pair.split_once(':') else {
            return Err(bad(format!(
                "photo {id}: pair {} `{}` has no `:` between key and value",
                n + 1,
                preview(pair)
            )));
        };
        let key =
            decode(key).map_err(|e| bad(format!("photo {id}: key of pair {}: {e}", n + 1)))?;
        let Some((directory, name)) = key.split_once('.') else {
            return Err(bad(format!(
                "photo {id}: key `{}` of pair {} has no `Directory.` prefix",
                preview(&key),
                n + 1
            )));
        };
        if !KEPT_DIRECTORIES.contains(&directory) || name.starts_with("Unknown tag (") {
            continue;
        }
        let value = decode(value).map_err(|e| bad(format!("photo {id}: value of `{key}`: {e}")))?;
        map.insert(name, value);
    }
    Ok((id.to_string(), map))
}

/// URL-decodes a form-encoded component (`+` is a space); rejects broken `%` escapes.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(format!("broken `%` escape at byte {i} of `{}`", preview(s)));
            }
        }
    }
    let spaced: Cow<str> = if s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    Ok(percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned())
}

/// The start of a long string, for error messages.
fn preview(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_keys_and_values_and_keeps_ifd0_and_subifd_only() {
        let line = "6985418911\tExif+IFD0.Make:NIKON+CORPORATION,Exif+SubIFD.Focal+Length:18.0+mm,\
                    GPS.GPS+Latitude:12%C2%B0,Exif+SubIFD.Exposure+Program:Aperture+priority,\
                    Exif+IFD0.Image+Description:a%2Cb%3Ac,Exif+SubIFD.Unknown+tag+%280xa460%29:2,\
                    Exif+IFD0.Artist:";
        let (id, map) = parse_yfcc_line(line).unwrap();
        assert_eq!(id, "6985418911");
        let got: Vec<(&str, &str)> = map.iter().collect();
        assert_eq!(
            got,
            vec![
                ("Make", "NIKON CORPORATION"),
                ("Focal Length", "18.0 mm"),
                ("Exposure Program", "Aperture priority"),
                ("Image Description", "a,b:c"),
                ("Artist", ""),
            ]
        );
    }

    #[test]
    fn photo_without_exif_is_an_empty_map() {
        let (id, map) = parse_yfcc_line("42\t\n").unwrap();
        assert_eq!(id, "42");
        assert!(map.is_empty());
    }

    #[test]
    fn malformed_lines_name_the_problem() {
        let err = |l: &str| parse_yfcc_line(l).unwrap_err().to_string();
        assert!(err("42 Exif+IFD0.Make:Canon").contains("no tab"));
        assert!(err("\tExif+IFD0.Make:Canon").contains("empty photo id"));
        assert!(
            err("42\tExif+IFD0.Make").contains("pair 1")
                && err("42\tExif+IFD0.Make").contains("no `:`")
        );
        assert!(err("42\tMake:Canon").contains("no `Directory.` prefix"));
        assert!(err("42\tExif+IFD0.Make:Can%2").contains("broken `%` escape"));
    }
}
