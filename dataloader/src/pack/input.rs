//! What to pack: the photos of a folder or a file list, each with a stable unique sample
//! key, and (for YFCC100M, whose images have their EXIF stripped) tag maps from a metadata
//! file, kept only for the photos being packed.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::PackError;
use crate::shard::sample::MAX_KEY_LEN;
use crate::TagMap;

/// Where the photos come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Every `*.jpg` / `*.jpeg` under a folder, recursively, in path order.
    Folder(PathBuf),
    /// A text file with one photo path per line (blank lines and `#` comments ignored;
    /// relative paths are taken from the list file's folder), in list order. Keys come
    /// from the paths below the folder all listed photos share.
    FileList(PathBuf),
}

impl Input {
    /// A folder if `path` is a directory, a file list if it is a file.
    pub fn from_path(path: &Path) -> Result<Input, PackError> {
        let meta = std::fs::metadata(path).map_err(|e| PackError::Input {
            path: path.to_path_buf(),
            reason: format!("{e}: give a photo folder or a text file listing photo paths"),
        })?;
        Ok(if meta.is_dir() {
            Input::Folder(path.to_path_buf())
        } else {
            Input::FileList(path.to_path_buf())
        })
    }

    /// A short description for the manifest's `source`.
    pub fn describe(&self) -> String {
        match self {
            Input::Folder(p) => format!("folder {}", p.display()),
            Input::FileList(p) => format!("file list {}", p.display()),
        }
    }
}

/// One photo to pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoItem {
    /// Where the file is.
    pub path: PathBuf,
    /// Its sample key.
    pub key: String,
}

/// Lists the photos of `input` with their keys (see [`make_key`]); keys are made unique
/// in listing order by numbered suffixes.
pub fn list_photos(input: &Input) -> Result<Vec<PhotoItem>, PackError> {
    let rel: Vec<(PathBuf, String)> = match input {
        Input::Folder(root) => {
            let mut files = Vec::new();
            walk(root, &mut files)?;
            files.sort();
            files
                .into_iter()
                .map(|p| {
                    let r = p
                        .strip_prefix(root)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned();
                    (p, r)
                })
                .collect()
        }
        Input::FileList(list) => {
            let text = std::fs::read_to_string(list).map_err(|e| PackError::Input {
                path: list.clone(),
                reason: format!("cannot read the file list: {e}"),
            })?;
            let base = list.parent().unwrap_or(Path::new("."));
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            let slashed: Vec<String> = lines.iter().map(|l| l.replace('\\', "/")).collect();
            let shared = shared_folder_len(&slashed);
            lines
                .into_iter()
                .zip(slashed)
                .map(|(l, r)| (base.join(l), r[shared..].to_string()))
                .collect()
        }
    };
    let mut seen = HashSet::with_capacity(rel.len());
    Ok(rel
        .into_iter()
        .map(|(path, r)| {
            let base = make_key(&r);
            let mut key = base.clone();
            let mut n = 2;
            while !seen.insert(key.clone()) {
                let suffix = format!("-{n}");
                let cut = base.len().min(MAX_KEY_LEN - suffix.len());
                key = format!("{}{suffix}", &base[..cut]);
                n += 1;
            }
            PhotoItem { path, key }
        })
        .collect())
}

/// Length in bytes of the leading folder (`a/b/`) that every path in `paths` starts with.
fn shared_folder_len(paths: &[String]) -> usize {
    let Some(first) = paths.first() else {
        return 0;
    };
    let mut len = first.rfind('/').map_or(0, |i| i + 1);
    for path in &paths[1..] {
        while len > 0 && !path.starts_with(&first[..len]) {
            len = first[..len - 1].rfind('/').map_or(0, |i| i + 1);
        }
    }
    len
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PackError> {
    let err = |e: std::io::Error| PackError::Input {
        path: dir.to_path_buf(),
        reason: format!("cannot list the folder: {e}"),
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path();
        let ty = entry.file_type().map_err(err)?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if is_jpeg_name(&path) && (ty.is_file() || path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_jpeg_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// The sample key of a photo at relative path `rel`: the path without its extension,
/// with every character other than ASCII letters, digits, `_` and `-` replaced by `_`
/// (path separators become `/`, empty components are dropped). Keys longer than the tar
/// header allows are cut and end in a hash of the full path, so they stay unique.
pub fn make_key(rel: &str) -> String {
    let rel = rel.replace('\\', "/");
    let stem = match rel.rfind('.') {
        Some(dot) if dot > rel.rfind('/').map_or(0, |s| s + 1) => &rel[..dot],
        _ => &rel[..],
    };
    let parts: Vec<String> = stem
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| {
            c.chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ch == '-' {
                        ch
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    let key = if parts.is_empty() {
        "_".to_string()
    } else {
        parts.join("/")
    };
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let hash = hex::encode(&Sha256::digest(rel.as_bytes())[..8]);
    let head = key[..MAX_KEY_LEN - hash.len() - 1].trim_end_matches('/');
    format!("{head}-{hash}")
}

/// The YFCC photo id of a file: its name without extension.
pub fn photo_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads a YFCC100M EXIF metadata file and keeps the tag maps of the photo ids in
/// `wanted` (memory grows with the photos packed, not with the file). Lines that do not
/// parse are counted and the first one logged.
pub fn read_yfcc(
    path: &Path,
    wanted: &HashSet<String>,
) -> Result<HashMap<String, TagMap>, PackError> {
    let file = std::fs::File::open(path).map_err(|e| PackError::Input {
        path: path.to_path_buf(),
        reason: format!("cannot open the YFCC metadata file: {e}"),
    })?;
    let mut out = HashMap::new();
    let mut bad = 0u64;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| PackError::Input {
            path: path.to_path_buf(),
            reason: format!("cannot read line {}: {e}", n + 1),
        })?;
        let id = line.split('\t').next().unwrap_or("").trim();
        if !wanted.contains(id) {
            continue;
        }
        match crate::exif::parse_yfcc_line(&line) {
            Ok((id, tags)) => {
                out.insert(id, tags);
            }
            Err(e) => {
                if bad == 0 {
                    tracing::warn!(file = %path.display(), line = n + 1, error = %e, "unparsable YFCC metadata line (further ones are counted)");
                }
                bad += 1;
            }
        }
    }
    if bad > 0 {
        tracing::warn!(file = %path.display(), lines = bad, "YFCC metadata lines skipped");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::sample::check_key;

    #[test]
    fn keys_drop_extension_and_sanitise() {
        assert_eq!(make_key("canon/IMG 0001.JPG"), "canon/IMG_0001");
        assert_eq!(make_key("a.b/c.d.jpeg"), "a_b/c_d");
        assert_eq!(make_key("./x//y.jpg"), "x/y");
        assert_eq!(make_key("../up.jpg"), "__/up");
        for rel in ["canon/IMG 0001.JPG", "ü/ñ.jpg", ".jpg", &"d/".repeat(80)] {
            let k = make_key(rel);
            assert!(
                check_key(&k).is_ok(),
                "{rel:?} -> {k:?}: {:?}",
                check_key(&k)
            );
        }
    }

    #[test]
    fn file_list_keys_start_below_the_folder_all_photos_share() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        let lines = "../../photos/cams/canon/a.jpg\n# a comment\n\n../../photos/cams/nikon/b.jpg\n../../photos/cams/canon/c.jpg\n";
        std::fs::write(&list, lines).unwrap();
        let items = list_photos(&Input::FileList(list.clone())).unwrap();
        let keys: Vec<_> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["canon/a", "nikon/b", "canon/c"]);
        assert_eq!(
            items[0].path,
            dir.path().join("../../photos/cams/canon/a.jpg")
        );
        // One folder: the file names; no shared folder: the paths as listed.
        std::fs::write(&list, "/x/cams/a.jpg\n/x/cams/b.jpg\n").unwrap();
        let keys: Vec<_> = list_photos(&Input::FileList(list.clone()))
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["a", "b"]);
        std::fs::write(&list, "x/a.jpg\ny/a.jpg\nxa/b.jpg\n").unwrap();
        let keys: Vec<_> = list_photos(&Input::FileList(list))
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["x/a", "y/a", "xa/b"]);
    }

    #[test]
    fn long_keys_are_cut_and_stay_distinct() {
        let a = format!("{}/a.jpg", "x".repeat(200));
        let b = format!("{}/b.jpg", "x".repeat(200));
        let (ka, kb) = (make_key(&a), make_key(&b));
        assert!(ka.len() <= MAX_KEY_LEN && kb.len() <= MAX_KEY_LEN);
        assert_ne!(ka, kb);
        assert!(check_key(&ka).is_ok());
    }

    #[test]
    fn folder_listing_is_sorted_recursive_and_keys_unique() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b")).unwrap();
        for f in [
            "b/z.jpg",
            "a.JPEG",
            "a.jpg",
            "a b.jpg",
            "notes.txt",
            "b/y.png",
        ] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let items = list_photos(&Input::Folder(root.to_path_buf())).unwrap();
        let keys: Vec<_> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["a_b", "a", "a-2", "b/z"]);
        assert!(items[1].path.ends_with("a.JPEG"));
    }

    #[test]
    fn file_list_paths_are_relative_to_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        std::fs::write(&list, "# photos\nsub/p1.jpg\n\n/abs/p2.jpg\n").unwrap();
        let items = list_photos(&Input::FileList(list)).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].path, dir.path().join("sub/p1.jpg"));
        assert_eq!(items[0].key, "sub/p1");
        assert_eq!(items[1].path, PathBuf::from("/abs/p2.jpg"));
        assert_eq!(items[1].key, "abs/p2");
    }
}
