//! Any splice dataset, described by a `labels.csv` in its folder:
//!
//! ```text
//! # comment lines and blank lines are ignored
//! image,label,mask
//! photos/0001.jpg,authentic,
//! photos/0002.jpg,spliced,masks/0002.png
//! ```
//!
//! The header names the three columns, in any order. Fields are separated by commas and
//! trimmed; quoting is not supported (a path containing `,` or `"` is refused). Paths are
//! relative to the dataset folder (absolute paths are allowed). `label` is `authentic` or
//! `spliced`; a spliced image must name its mask, an authentic one must leave the field
//! empty. Every image must exist; a missing mask follows `on_missing_mask`.
//!
//! Masks: white splice on black, spliced where the grey level is above 127
//! ([`MaskEncoding::BrightAbove`]); masks must have the image's size.

use std::path::{Path, PathBuf};

use super::super::{Collector, DatasetError, MaskEncoding, MaskResize};

const HINT: &str = "the folder holding labels.csv (columns image,label,mask)";

/// The labels file's name.
pub const LABELS_FILE: &str = "labels.csv";

/// Lists the dataset that `root/labels.csv` describes.
pub(crate) fn read(c: &mut Collector<'_>, root: &Path) -> Result<&'static str, DatasetError> {
    let file = root.join(LABELS_FILE);
    if !root.is_dir() {
        return Err(DatasetError::MissingFolder {
            dataset: c.name().to_string(),
            path: root.to_path_buf(),
            hint: HINT,
        });
    }
    let text = std::fs::read_to_string(&file).map_err(|source| DatasetError::ReadLabels {
        path: file.clone(),
        source,
    })?;
    let err = |line: usize, reason: String| DatasetError::Labels {
        path: file.clone(),
        line,
        reason,
    };
    let mut columns: Option<[usize; 3]> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        if raw.contains('"') {
            return Err(err(line, "quoted fields are not supported".into()));
        }
        let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
        let Some([image_at, label_at, mask_at]) = columns else {
            columns = Some(header(&fields).map_err(|r| err(line, r))?);
            continue;
        };
        if fields.len() != 3 {
            return Err(err(
                line,
                format!("{} fields, expected 3 (image,label,mask)", fields.len()),
            ));
        }
        let (image, label, mask) = (fields[image_at], fields[label_at], fields[mask_at]);
        if image.is_empty() {
            return Err(err(line, "the image field is empty".into()));
        }
        let image_path = root.join(image);
        if !image_path.is_file() {
            return Err(err(
                line,
                format!("image {} not found", image_path.display()),
            ));
        }
        match (label, mask.is_empty()) {
            ("authentic", true) => c.authentic(image_path),
            ("authentic", false) => {
                return Err(err(
                    line,
                    "an authentic image has no mask: leave it empty".into(),
                ))
            }
            ("spliced", true) => {
                return Err(err(
                    line,
                    "a spliced image needs its mask in the mask field".into(),
                ))
            }
            ("spliced", false) => {
                let mask_path: PathBuf = root.join(mask);
                let found = if mask_path.is_file() {
                    Ok(mask_path)
                } else {
                    Err(mask_path)
                };
                c.spliced(
                    image_path,
                    found,
                    MaskEncoding::BrightAbove(127),
                    MaskResize::Exact,
                )?;
            }
            (other, _) => {
                return Err(err(
                    line,
                    format!("label {other:?}: expected authentic or spliced"),
                ))
            }
        }
    }
    if columns.is_none() {
        return Err(err(0, "no header line (image,label,mask)".into()));
    }
    Ok(HINT)
}

/// Column positions of image, label and mask.
fn header(fields: &[&str]) -> Result<[usize; 3], String> {
    let at = |name: &str| fields.iter().position(|f| *f == name);
    match (fields.len(), at("image"), at("label"), at("mask")) {
        (3, Some(i), Some(l), Some(m)) => Ok([i, l, m]),
        _ => Err(format!(
            "header {:?}: expected the columns image, label and mask",
            fields.join(",")
        )),
    }
}
