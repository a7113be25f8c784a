//! Listing a layout's folders: image files, and case-insensitive look-up of a file by
//! name (datasets mix `.TIF`/`.tif`, `.PNG`/`.png`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Collector, DatasetError};

/// Extensions read as images (lower case).
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp"];

/// The files of one folder.
pub(crate) struct Dir {
    path: PathBuf,
    /// Visible files, sorted.
    files: Vec<PathBuf>,
    by_lower_name: HashMap<String, PathBuf>,
}

impl Dir {
    /// Lists `path`; a missing folder is [`DatasetError::MissingFolder`] with `hint`.
    pub(crate) fn open(
        c: &Collector<'_>,
        path: &Path,
        hint: &'static str,
    ) -> Result<Dir, DatasetError> {
        if !path.is_dir() {
            return Err(DatasetError::MissingFolder {
                dataset: c.name().to_string(),
                path: path.to_path_buf(),
                hint,
            });
        }
        let read_err = |source| DatasetError::ReadDir {
            dataset: c.name().to_string(),
            path: path.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name();
            let visible = !name.to_string_lossy().starts_with('.');
            if visible && entry.path().is_file() {
                files.push(entry.path());
            }
        }
        files.sort();
        let by_lower_name = files.iter().map(|f| (lower_name(f), f.clone())).collect();
        Ok(Dir {
            path: path.to_path_buf(),
            files,
            by_lower_name,
        })
    }

    /// The image files, sorted.
    pub(crate) fn images(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.iter().filter(|f| is_image(f))
    }

    /// The file called `name` (any case), or `Err` with the path it would have.
    pub(crate) fn find(&self, name: &str) -> Result<PathBuf, PathBuf> {
        self.by_lower_name
            .get(&name.to_lowercase())
            .cloned()
            .ok_or_else(|| self.path.join(name))
    }
}

fn lower_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// Whether `path` has an image extension.
pub(crate) fn is_image(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// The file name without its extension.
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `root/name`, or `root/name/name` when an archive was unpacked into a folder of its own
/// name (`4cam_auth/4cam_auth/`).
pub(crate) fn nested(root: &Path, name: &str) -> PathBuf {
    let doubled = root.join(name).join(name);
    if doubled.is_dir() {
        doubled
    } else {
        root.join(name)
    }
}

/// `root` if it holds `marker`, else `root/wrapper` if that holds it (a dataset unpacked
/// inside its archive's folder), else `root` (the caller then reports what is missing).
pub(crate) fn unwrap_root(root: &Path, wrapper: &str, marker: &str) -> PathBuf {
    if !root.join(marker).exists() && root.join(wrapper).join(marker).exists() {
        root.join(wrapper)
    } else {
        root.to_path_buf()
    }
}
