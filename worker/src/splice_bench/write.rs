//! The benchmark folder, the layout the evaluation reads:
//!
//! ```text
//! images/<name>.png, images/<name>.jpg   every image, lossless and JPEG
//! masks/<name>.png                       8-bit gray, 255 = pasted pixel (pastes only)
//! labels.csv                             image,mask,label,kind,target_camera,source_camera,quality
//! bench.json                             arguments, seed, counts, skips by reason, each image's provenance
//! ```
//!
//! `labels.csv` and `bench.json` are written last, so a folder that has them is complete.

use std::path::{Path, PathBuf};

use super::plan::Kind;

/// Folder of the images.
pub const IMAGES_DIR: &str = "images";
/// Folder of the masks.
pub const MASKS_DIR: &str = "masks";
/// The labels file.
pub const LABELS_FILE: &str = "labels.csv";
/// The description file.
pub const BENCH_FILE: &str = "bench.json";
/// The header of [`LABELS_FILE`].
pub const LABELS_HEADER: &str = "image,mask,label,kind,target_camera,source_camera,quality";

/// Why the folder cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The folder holds other files and overwriting was not asked for.
    #[error("{} is not empty: choose a new folder, or pass --overwrite to replace its benchmark", path.display())]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// A file or folder cannot be written.
    #[error("cannot write {}: {reason}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> WriteError + '_ {
    move |e| WriteError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Checks, before any work, that `out` is missing or empty, or that overwriting was
/// asked for.
pub fn check_free(out: &Path, overwrite: bool) -> Result<(), WriteError> {
    if overwrite || !out.is_dir() {
        return Ok(());
    }
    match std::fs::read_dir(out).map_err(io(out))?.next() {
        None => Ok(()),
        Some(_) => Err(WriteError::NotEmpty {
            path: out.to_path_buf(),
        }),
    }
}

/// Makes `out` ready: created if missing; a folder holding anything must be overwritten
/// explicitly, which removes only the benchmark's own entries (the two folders and two
/// files above).
pub fn prepare(out: &Path, overwrite: bool) -> Result<(), WriteError> {
    check_free(out, overwrite)?;
    if out.is_dir() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            for dir in [IMAGES_DIR, MASKS_DIR] {
                let p = out.join(dir);
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).map_err(io(&p))?;
                }
            }
            for file in [LABELS_FILE, BENCH_FILE] {
                let p = out.join(file);
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
    }
    for dir in [IMAGES_DIR, MASKS_DIR] {
        let p = out.join(dir);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    Ok(())
}

/// Writes `bytes` to `path`.
pub fn file(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    std::fs::write(path, bytes).map_err(io(path))
}

/// One line of `labels.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRow {
    /// The image, relative to the benchmark folder (`images/<name>.png`).
    pub image: String,
    /// Its mask, relative to the folder; none for untouched photos.
    pub mask: Option<String>,
    /// What was done to it.
    pub kind: Kind,
    /// Camera model of the photo the image is made from.
    pub target_camera: String,
    /// Camera model of the pasted region's photo, if any.
    pub source_camera: Option<String>,
    /// JPEG quality; none for the lossless variant.
    pub quality: Option<u8>,
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The text of `labels.csv`: the header, then one line per row, `\n` line ends.
pub fn labels_csv(rows: &[LabelRow]) -> String {
    let mut text = format!("{LABELS_HEADER}\n");
    for r in rows {
        let fields = [
            field(&r.image),
            field(r.mask.as_deref().unwrap_or("")),
            r.kind.label().to_string(),
            r.kind.as_str().to_string(),
            field(&r.target_camera),
            field(r.source_camera.as_deref().unwrap_or("")),
            r.quality.map(|q| q.to_string()).unwrap_or_default(),
        ];
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_the_header_and_quote_only_what_needs_it() {
        let rows = [
            LabelRow {
                image: "images/img_0000.jpg".into(),
                mask: Some("masks/img_0000.png".into()),
                kind: Kind::CrossCamera,
                target_camera: "canon eos 20d".into(),
                source_camera: Some("acme, \"pro\" 1".into()),
                quality: Some(90),
            },
            LabelRow {
                image: "images/img_0001.png".into(),
                mask: None,
                kind: Kind::Untouched,
                target_camera: "nikon d70".into(),
                source_camera: None,
                quality: None,
            },
        ];
        let text = labels_csv(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], LABELS_HEADER);
        assert_eq!(
            lines[1],
            "images/img_0000.jpg,masks/img_0000.png,spliced,cross_camera,canon eos 20d,\"acme, \"\"pro\"\" 1\",90"
        );
        assert_eq!(
            lines[2],
            "images/img_0001.png,,authentic,untouched,nikon d70,,"
        );
    }

    #[test]
    fn a_folder_with_other_files_is_kept_unless_overwriting_and_then_only_ours_go() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("bench");
        prepare(&out, false).unwrap();
        assert!(out.join(IMAGES_DIR).is_dir() && out.join(MASKS_DIR).is_dir());
        file(&out.join(IMAGES_DIR).join("old.png"), b"x").unwrap();
        file(&out.join(LABELS_FILE), b"x").unwrap();
        file(&out.join("notes.txt"), b"mine").unwrap();
        assert!(matches!(
            prepare(&out, false),
            Err(WriteError::NotEmpty { .. })
        ));
        assert!(out.join(LABELS_FILE).is_file());
        prepare(&out, true).unwrap();
        assert!(!out.join(IMAGES_DIR).join("old.png").exists());
        assert!(!out.join(LABELS_FILE).exists());
        assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    }
}
