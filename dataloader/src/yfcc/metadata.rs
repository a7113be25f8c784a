//! Lines of YFCC100M's main metadata file (`yfcc100m_dataset`): one photo or video per
//! line, tab-separated, free text URL-encoded (`+` for a space, `%2C` for a comma, `%0A`
//! for a newline, so a line never breaks).
//!
//! Where the fields come from:
//! - The dataset's Webscope README, later release: one file `yfcc100m_dataset.bz2` with 25
//!   fields: line number, photo/video identifier, photo/video hash, user NSID, user
//!   nickname, date taken, date uploaded, capture device, title, description, user tags
//!   (comma-separated), machine tags (comma-separated), longitude, latitude, accuracy,
//!   page URL, download URL, licence name, licence URL, server id, farm id, secret, secret
//!   original, extension of the original, and the marker (0 = photo, 1 = video). "Fields
//!   that contain free-form text have been URL-encoded."
//! - The original Webscope release: ten files `yfcc100m_dataset-0.bz2` ... `-9.bz2`, 23
//!   fields (no line number, no hash; the hashes ship in `yfcc100m_hash`). Code that reads
//!   those files names the same 23 columns (e.g. linzhiqiu/continual-learning
//!   `flickr_parsing.py`, and the `yfcc100m_dataset` SQLite table of the AWS mirror as
//!   jfolz's `yfcc100m` package reads it).
//! - The hash is not of the photo's bytes or id: it is the MD5 of the download URL, each
//!   byte printed in hex without its leading zero (jfolz's `yfcc100m` `tools.py`; checked
//!   against the first 1,000 lines of the real file, where it matches every line, videos
//!   included). So hashes have 28 to 32 characters; [`url_hash`] computes one.
//!
//! Real lines (the first line of the file, and a video), `\t` for a tab:
//! ```text
//! 0\t6985418911\t4e2f7a26a1dfbf165a7e30bdabf7e72a\t39089491@N00\tnino63004\t2012-02-16 09:56:37.0\t1331840483\tCanon+PowerShot+ELPH+310+HS\tIMG_0520\t\tcanon,canon+powershot+hs+310,carnival+escatay,cruise,elph,hs+310,key+west+florida,powershot\t\t-81.804885\t24.550558\t12\thttp://www.flickr.com/photos/39089491@N00/6985418911/\thttp://farm8.staticflickr.com/7205/6985418911_df7747990d.jpg\tAttribution-NonCommercial-NoDerivs License\thttp://creativecommons.org/licenses/by-nc-nd/2.0/\t7205\t8\tdf7747990d\t692d7e0a7f\tjpg\t0
//! 771\t7843781152\t50a5ab9593d91d8659d0b65e9d81f27\t41533706@N03\tUiT+Norges+arktiske+universitet\t2012-08-23 03:43:48.0\t1345718628\t\tStine+Linn+Figenschau\tDeltaker+p%C3%A5+Forsker+Grand+Prix+2012\tforsker+grand+prix+2012\t\t\t\t\thttp://www.flickr.com/videos/41533706@N03/7843781152/\thttp://www.flickr.com/videos/41533706@N03/7843781152/play/orig/c257ebee2e\tAttribution-NonCommercial-ShareAlike License\thttp://creativecommons.org/licenses/by-nc-sa/2.0/\t8303\t9\tcca6aacbea\tc257ebee2e\tjpg\t1
//! ```
//! Empty fields are empty strings between tabs (no coordinates: three empty fields).

use md5::{Digest, Md5};

/// Fields of a line in the 25-field release.
pub const FIELDS: usize = 25;
/// Fields of a line in the original 23-field release (no line number, no hash).
pub const FIELDS_ORIGINAL: usize = 23;

/// What packing needs from one metadata line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The line number the file gives (25-field release only).
    pub line_number: Option<u64>,
    /// Photo/video identifier (Flickr id).
    pub id: String,
    /// The hash the mirror's object layout uses (given, or computed from the URL).
    pub hash: String,
    /// Capture device, decoded (`Canon PowerShot ELPH 310 HS`); may be empty.
    pub capture_device: String,
    /// Download URL.
    pub download_url: String,
    /// Licence name (`Attribution-NonCommercial-NoDerivs License`).
    pub licence_name: String,
    /// Licence URL (`http://creativecommons.org/licenses/by-nc-nd/2.0/`).
    pub licence_url: String,
    /// Whether the line is a video (marker 1).
    pub is_video: bool,
}

impl Record {
    /// The licence's short code from its URL (`by-nc-nd`), or its name when the URL is
    /// not a Creative Commons one.
    pub fn licence_code(&self) -> &str {
        self.licence_url
            .split("/licenses/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .filter(|c| !c.is_empty())
            .unwrap_or(&self.licence_name)
    }
}

/// Why a metadata line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("YFCC metadata line: {0}")]
pub struct MetadataError(pub String);

/// Parses one line of either release (told apart by the number of fields).
pub fn parse_line(line: &str) -> Result<Record, MetadataError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let f: Vec<&str> = line.split('\t').collect();
    let (line_number, id, hash, rest) = match f.len() {
        FIELDS => {
            let n = f[0].parse::<u64>().map_err(|_| {
                MetadataError(format!("line number `{}` is not a number", preview(f[0])))
            })?;
            (Some(n), f[1], Some(f[2]), &f[3..])
        }
        FIELDS_ORIGINAL => (None, f[0], None, &f[1..]),
        n => {
            return Err(MetadataError(format!(
                "{n} tab-separated fields, expected {FIELDS} (or {FIELDS_ORIGINAL} in the original release): `{}`",
                preview(line)
            )))
        }
    };
    // `rest` starts at the user NSID: 22 fields, the same in both releases.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MetadataError(format!(
            "photo identifier `{}` is not a number",
            preview(id)
        )));
    }
    let download_url = rest[13].to_string();
    let is_video = match rest[21] {
        "0" => false,
        "1" => true,
        m => {
            return Err(MetadataError(format!(
                "photo {id}: marker `{}` is neither 0 (photo) nor 1 (video)",
                preview(m)
            )))
        }
    };
    let hash = match hash {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => h.to_string(),
        Some(h) => {
            return Err(MetadataError(format!(
                "photo {id}: hash `{}` is not hexadecimal",
                preview(h)
            )))
        }
        None => url_hash(&download_url),
    };
    Ok(Record {
        line_number,
        id: id.to_string(),
        hash,
        capture_device: decode_form(rest[4]),
        download_url,
        licence_name: rest[14].to_string(),
        licence_url: rest[15].to_string(),
        is_video,
    })
}

/// The hash YFCC100M gives a photo: MD5 of its download URL, each byte printed as `%x`
/// (so a byte below 0x10 is one hex digit).
pub fn url_hash(download_url: &str) -> String {
    Md5::digest(download_url.as_bytes())
        .iter()
        .map(|b| format!("{b:x}"))
        .collect()
}

/// Decodes a URL-encoded free-text field (`+` is a space); a broken `%` escape is kept
/// as it is.
pub fn decode_form(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn preview(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The two real lines of the module documentation.
    pub(crate) const PHOTO: &str = "0\t6985418911\t4e2f7a26a1dfbf165a7e30bdabf7e72a\t39089491@N00\tnino63004\t2012-02-16 09:56:37.0\t1331840483\tCanon+PowerShot+ELPH+310+HS\tIMG_0520\t\tcanon,canon+powershot+hs+310,carnival+escatay,cruise,elph,hs+310,key+west+florida,powershot\t\t-81.804885\t24.550558\t12\thttp://www.flickr.com/photos/39089491@N00/6985418911/\thttp://farm8.staticflickr.com/7205/6985418911_df7747990d.jpg\tAttribution-NonCommercial-NoDerivs License\thttp://creativecommons.org/licenses/by-nc-nd/2.0/\t7205\t8\tdf7747990d\t692d7e0a7f\tjpg\t0";
    pub(crate) const VIDEO: &str = "771\t7843781152\t50a5ab9593d91d8659d0b65e9d81f27\t41533706@N03\tUiT+Norges+arktiske+universitet\t2012-08-23 03:43:48.0\t1345718628\t\tStine+Linn+Figenschau\tDeltaker+p%C3%A5+Forsker+Grand+Prix+2012\tforsker+grand+prix+2012\t\t\t\t\thttp://www.flickr.com/videos/41533706@N03/7843781152/\thttp://www.flickr.com/videos/41533706@N03/7843781152/play/orig/c257ebee2e\tAttribution-NonCommercial-ShareAlike License\thttp://creativecommons.org/licenses/by-nc-sa/2.0/\t8303\t9\tcca6aacbea\tc257ebee2e\tjpg\t1";

    #[test]
    fn real_lines_parse_and_their_hashes_are_the_md5_of_the_download_url() {
        let p = parse_line(PHOTO).unwrap();
        assert_eq!(p.line_number, Some(0));
        assert_eq!(p.id, "6985418911");
        assert_eq!(p.capture_device, "Canon PowerShot ELPH 310 HS");
        assert!(!p.is_video);
        assert_eq!(p.licence_code(), "by-nc-nd");
        assert_eq!(url_hash(&p.download_url), p.hash);
        let v = parse_line(VIDEO).unwrap();
        assert!(v.is_video);
        assert_eq!(v.capture_device, "");
        assert_eq!(v.licence_code(), "by-nc-sa");
        // 31 characters: a byte below 0x10 prints as one digit.
        assert_eq!(v.hash.len(), 31);
        assert_eq!(url_hash(&v.download_url), v.hash);
    }

    #[test]
    fn the_original_release_without_line_number_and_hash_gets_the_computed_hash() {
        let fields: Vec<&str> = PHOTO.split('\t').collect();
        let original = fields[1..2]
            .iter()
            .chain(&fields[3..])
            .copied()
            .collect::<Vec<_>>()
            .join("\t");
        let p = parse_line(&original).unwrap();
        assert_eq!(p.line_number, None);
        assert_eq!(p.hash, "4e2f7a26a1dfbf165a7e30bdabf7e72a");
        assert_eq!(p.download_url, parse_line(PHOTO).unwrap().download_url);
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let err = |l: &str| parse_line(l).unwrap_err().to_string();
        assert!(err("1\t2\t3").contains("3 tab-separated fields"));
        assert!(err(&PHOTO.replacen("0\t", "x\t", 1)).contains("line number"));
        assert!(err(&PHOTO.replace("6985418911\t4e2f", "69a\t4e2f")).contains("identifier"));
        assert!(err(&PHOTO.replace("\tjpg\t0", "\tjpg\t2")).contains("marker"));
        assert!(err(&PHOTO.replace("4e2f7a26a1dfbf165a7e30bdabf7e72a", "zz")).contains("hash"));
    }
}
