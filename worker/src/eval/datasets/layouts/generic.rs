//! Any splice dataset, described by a `labels.csv` in its folder:
//!
//! ```text
//! # comment lines and blank lines are ignored
//! image,label,mask
//! photos/0001.jpg,authentic,
//! photos/0002.jpg,spliced,masks/0002.png
//! ```
//!
//! The header names the three columns, in any order; other columns (such as the camera
//! models `worker splice-bench make` records) are ignored. Fields are separated by commas
//! and trimmed; a field in double quotes may hold commas and doubled quotes. Paths are
//! relative to the dataset folder (absolute paths are allowed). `label` is `authentic` or
//! `spliced`; a spliced image must name its mask. A mask on an authentic row (a same-camera
//! paste keeps its region's mask) is no splice ground truth and is ignored. Every image
//! must exist; a missing mask follows `on_missing_mask`.
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
    let mut columns: Option<([usize; 3], usize)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let fields = split_fields(raw).map_err(|r| err(line, r))?;
        let fields: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        let Some(([image_at, label_at, mask_at], width)) = columns else {
            columns = Some((header(&fields).map_err(|r| err(line, r))?, fields.len()));
            continue;
        };
        if fields.len() != width {
            return Err(err(
                line,
                format!("{} fields, the header has {width}", fields.len()),
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
            ("authentic", _) => c.authentic(image_path),
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

/// The trimmed fields of a line; `"..."` fields may hold commas and `""` for a quote.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                if chars.next().is_some_and(|c| c != ' ') {
                    return Err("text after a closing quote".into());
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                field.push(c);
            }
        }
        fields.push(field.trim().to_string());
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

/// Column positions of image, label and mask.
fn header(fields: &[&str]) -> Result<[usize; 3], String> {
    let at = |name: &str| fields.iter().position(|f| *f == name);
    match (at("image"), at("label"), at("mask")) {
        (Some(i), Some(l), Some(m)) => Ok([i, l, m]),
        _ => Err(format!(
            "header {:?}: expected the columns image, label and mask",
            fields.join(",")
        )),
    }
}
