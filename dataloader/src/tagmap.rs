//! The tag map: one photo's EXIF as `tag name -> human-readable value`, in record order.
//!
//! Names and values follow the metadata-extractor library (`Exposure Time` -> `1/60 sec`),
//! which is also what YFCC100M's metadata file holds. Every reader (JPEG files, YFCC lines)
//! produces this type, shards store it as `KEY.exif.json`, and the text renderer reads it.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// EXIF tags of one photo, keyed by metadata-extractor tag name, in the order the
/// record lists them (IFD0 first, then the Exif sub-IFD).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TagMap(IndexMap<String, String>);

impl TagMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; a repeated name keeps its first position and the new value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map holds no tag.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, value)` pairs in record order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl FromIterator<(String, String)> for TagMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}
