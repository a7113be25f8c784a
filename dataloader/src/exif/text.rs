//! The training text: a tag map written as one string, `Name: value` per tag.
//!
//! Which tags appear is set by a [`TagList`] (the shipped one is `configs/exif-tags.toml`,
//! computed by `dataloader tags`); how they are written by a [`TextFormat`]. The paper's
//! format is the default: tags joined by a space, in the list's fixed order, with names,
//! values as they are. The reference code's variant joins with `", "`, keeps the record's
//! order and strips spaces from values ([`TextFormat::reference_code`]).
//!
//! Whatever the list says, [`is_private`] tags never reach the text: GPS, serial numbers,
//! owner and author names, copyright notices, user comments and titles, unique image ids,
//! maker-note blobs, thumbnail offsets, lengths and data.

use crate::TagMap;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// In which order the selected tags are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TagOrder {
    /// The tag list's order, the same for every photo (the paper).
    #[default]
    Fixed,
    /// The order the record lists the tags in (the reference code).
    Record,
}

/// How a tag map is written as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextFormat {
    /// Between two tags. Default `" "`.
    pub separator: String,
    /// Tag order. Default [`TagOrder::Fixed`].
    pub order: TagOrder,
    /// Write `Name: value` (true) or the value alone (false). Default true.
    pub with_names: bool,
    /// Remove the whitespace inside values (`NIKON D90` -> `NIKOND90`). Default false.
    pub strip_value_spaces: bool,
}

impl Default for TextFormat {
    fn default() -> Self {
        Self::paper()
    }
}

impl TextFormat {
    /// The paper's format: space separator, fixed order, names, values as they are.
    pub fn paper() -> Self {
        Self {
            separator: " ".into(),
            order: TagOrder::Fixed,
            with_names: true,
            strip_value_spaces: false,
        }
    }

    /// The public reference code's format: `", "` separator, record order, names, spaces
    /// stripped from values.
    pub fn reference_code() -> Self {
        Self {
            separator: ", ".into(),
            order: TagOrder::Record,
            with_names: true,
            strip_value_spaces: true,
        }
    }
}

/// Why a tag list could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TagListError {
    /// The file could not be read.
    #[error("cannot read tag list {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML with a `tags` array of strings.
    #[error("tag list {origin} is not valid: {message} (expected a TOML file with `tags = [\"Make\", ...]`)")]
    Invalid { origin: String, message: String },
}

/// The ordered list of tags used in the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagList {
    tags: Vec<String>,
}

/// The tag list computed from the project's camera corpus.
const BUNDLED: &str = include_str!("../../../configs/exif-tags.toml");

impl TagList {
    /// A list from names, in order; repeated names keep their first position.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        let mut seen = HashSet::new();
        let tags = names
            .into_iter()
            .map(Into::into)
            .filter(|n: &String| seen.insert(n.clone()))
            .collect();
        Self { tags }
    }

    /// The list shipped with the crate (`configs/exif-tags.toml`).
    pub fn bundled() -> Self {
        Self::from_toml_str(BUNDLED, "configs/exif-tags.toml")
            .expect("the bundled tag list is checked by a unit test")
    }

    /// Reads a TOML file holding `tags = [...]` (other keys, such as the frequencies that
    /// `dataloader tags` writes beside the list, are ignored).
    pub fn load(path: &Path) -> Result<Self, TagListError> {
        let text = std::fs::read_to_string(path).map_err(|source| TagListError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses TOML text holding `tags = [...]`; `origin` names the source in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, TagListError> {
        #[derive(Deserialize)]
        struct File {
            tags: Vec<String>,
        }
        let invalid = |message: String| TagListError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if let Some(empty) = file.tags.iter().position(|t| t.trim().is_empty()) {
            return Err(invalid(format!("entry {} of `tags` is empty", empty + 1)));
        }
        Ok(Self::new(file.tags))
    }

    /// The tag names, in order.
    pub fn names(&self) -> &[String] {
        &self.tags
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether the list holds no tag.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Whether `name` is in the list.
    pub fn contains(&self, name: &str) -> bool {
        self.tags.iter().any(|t| t == name)
    }
}

/// Whether a tag must never appear in the training text, whatever the tag list says.
///
/// Private: GPS tags (`GPS ...`), anything with "serial" in its name (body, lens, camera
/// serial numbers), people's names and rights (`Artist`, `Copyright`, `Camera Owner Name`,
/// `Owner Name`, `Windows XP Author`), free text written by the owner (`User Comment`,
/// `Windows XP Title/Comment/Keywords/Subject`), `Unique Image ID` (a per-photo identifier,
/// often derived from the body's serial), maker-note blobs, and thumbnail offsets, lengths
/// and data (file layout, and the thumbnail is a picture of the scene). `Thumbnail
/// Compression` and other camera settings stay: they describe the camera, not a person.
pub fn is_private(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "artist",
        "copyright",
        "camera owner name",
        "owner name",
        "user comment",
        "unique image id",
        "windows xp author",
        "windows xp title",
        "windows xp comment",
        "windows xp keywords",
        "windows xp subject",
    ];
    lower.starts_with("gps")
        || lower.contains("serial")
        || lower.contains("makernote")
        || lower.contains("maker note")
        || EXACT.contains(&lower.as_str())
        || (lower.contains("thumbnail")
            && (lower.contains("offset") || lower.contains("length") || lower.contains("data")))
}

/// Writes the tags of `map` that are in `list` as text, in `format`. Tags missing from the
/// map, tags with an empty value and [`is_private`] tags are left out.
pub fn render_text(map: &TagMap, list: &TagList, format: &TextFormat) -> String {
    let value_of = |name: &str| map.get(name).filter(|v| !v.trim().is_empty());
    let selected: Vec<(&str, &str)> = match format.order {
        TagOrder::Fixed => list
            .names()
            .iter()
            .filter_map(|n| value_of(n).map(|v| (n.as_str(), v)))
            .collect(),
        TagOrder::Record => map
            .iter()
            .filter(|(n, _)| list.contains(n) && value_of(n).is_some())
            .collect(),
    };
    let mut out = String::new();
    for (name, value) in selected.into_iter().filter(|(n, _)| !is_private(n)) {
        if !out.is_empty() {
            out.push_str(&format.separator);
        }
        if format.with_names {
            out.push_str(name);
            out.push_str(": ");
        }
        if format.strip_value_spaces {
            out.extend(value.chars().filter(|c| !c.is_whitespace()));
        } else {
            out.push_str(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> TagMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_format_is_the_papers() {
        let m = map(&[
            ("Model", "NIKON D90"),
            ("Make", "NIKON CORPORATION"),
            ("F-Number", "f/2.8"),
        ]);
        let list = TagList::new(["Make", "Model", "Exposure Time", "F-Number"]);
        assert_eq!(
            render_text(&m, &list, &TextFormat::default()),
            "Make: NIKON CORPORATION Model: NIKON D90 F-Number: f/2.8"
        );
    }

    #[test]
    fn reference_code_format_keeps_record_order_and_strips_spaces() {
        let m = map(&[
            ("Model", "NIKON D90"),
            ("Software", "Ver.1.00 "),
            ("Make", "NIKON CORPORATION"),
        ]);
        let list = TagList::new(["Make", "Model"]);
        assert_eq!(
            render_text(&m, &list, &TextFormat::reference_code()),
            "Model: NIKOND90, Make: NIKONCORPORATION"
        );
    }

    #[test]
    fn values_only_and_missing_or_empty_tags_are_left_out() {
        let m = map(&[
            ("Make", "Canon"),
            ("Lens Specification", ""),
            ("Flash", "Flash did not fire"),
        ]);
        let list = TagList::new(["Make", "Model", "Lens Specification", "Flash"]);
        let f = TextFormat {
            with_names: false,
            separator: "|".into(),
            ..TextFormat::default()
        };
        assert_eq!(render_text(&m, &list, &f), "Canon|Flash did not fire");
    }

    #[test]
    fn private_tags_never_reach_the_text_even_when_listed() {
        let private = [
            "GPS Latitude",
            "GPS Altitude",
            "Body Serial Number",
            "Lens Serial Number",
            "Camera Serial Number",
            "Serial Number",
            "Camera Owner Name",
            "Artist",
            "Copyright",
            "Windows XP Author",
            "User Comment",
            "Makernote",
            "Thumbnail Offset",
            "Thumbnail Length",
            "Thumbnail Data",
            "Unique Image ID",
        ];
        let mut pairs: Vec<(&str, &str)> = private.iter().map(|n| (*n, "secret")).collect();
        pairs.push(("Make", "Canon"));
        pairs.push(("Thumbnail Compression", "JPEG (old-style)"));
        let m = map(&pairs);
        let mut names: Vec<&str> = private.to_vec();
        names.extend(["Make", "Thumbnail Compression"]);
        let list = TagList::new(names);
        for format in [TextFormat::paper(), TextFormat::reference_code()] {
            let text = render_text(&m, &list, &format);
            assert!(!text.to_lowercase().contains("secret"), "{text}");
            assert!(
                text.contains("Canon") && text.contains("Thumbnail Compression"),
                "{text}"
            );
        }
    }

    #[test]
    fn format_deserialises_with_defaults_and_rejects_unknown_keys() {
        let f: TextFormat = toml::from_str("separator = \", \"\norder = \"record\"").unwrap();
        assert_eq!(
            f,
            TextFormat {
                separator: ", ".into(),
                order: TagOrder::Record,
                ..TextFormat::paper()
            }
        );
        assert!(toml::from_str::<TextFormat>("seperator = \",\"").is_err());
    }

    #[test]
    fn tag_list_loads_from_toml_and_reports_bad_files() {
        let list = TagList::from_toml_str(
            "threshold = 0.5\ntags = [\"Make\", \"Model\", \"Make\"]",
            "t",
        )
        .unwrap();
        assert_eq!(list.names(), ["Make", "Model"]);
        let err = TagList::from_toml_str("tag = []", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("my.toml") && err.contains("tags"), "{err}");
        let err = TagList::from_toml_str("tags = [\"\"]", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn bundled_list_parses_and_holds_no_private_tag() {
        let list = TagList::bundled();
        assert!(
            list.len() >= 10,
            "bundled list has only {} tags",
            list.len()
        );
        assert!(list.contains("Make") && list.contains("Model"));
        assert!(list.names().iter().all(|n| !is_private(n)));
    }
}
