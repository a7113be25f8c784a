//! Tag frequencies over a corpus and the tag list picked from them.
//!
//! The paper keeps the tags present in more than half of the images that have at least 10
//! tags (44 tags on YFCC100M); the list itself was not published, so it is computed here.
//! A tag counts as present when its value is not empty. Private tags (see
//! [`super::text::is_private`]) are counted but never selected.

use super::text::{is_private, TagList};
use crate::TagMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default minimum number of tags for an image to count.
pub const DEFAULT_MIN_TAGS: usize = 10;
/// Default fraction of counted images a tag must exceed to be selected.
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Accumulates per-tag counts image by image. Counters of parts of a corpus add up
/// ([`FrequencyCounter::merge`]); they serialise, so parts can be counted apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrequencyCounter {
    min_tags: usize,
    images_seen: usize,
    images_counted: usize,
    counts: BTreeMap<String, usize>,
}

impl FrequencyCounter {
    /// A counter that only counts images with at least `min_tags` present tags.
    pub fn new(min_tags: usize) -> Self {
        Self {
            min_tags,
            ..Self::default()
        }
    }

    /// Adds one image; returns whether it had enough tags to be counted.
    pub fn add(&mut self, map: &TagMap) -> bool {
        self.images_seen += 1;
        let present: Vec<&str> = map
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(n, _)| n)
            .collect();
        if present.len() < self.min_tags {
            return false;
        }
        self.images_counted += 1;
        for name in present {
            *self.counts.entry(name.to_string()).or_default() += 1;
        }
        true
    }

    /// Adds the counts of another part of the corpus (counted with the same minimum).
    pub fn merge(&mut self, other: &FrequencyCounter) {
        self.images_seen += other.images_seen;
        self.images_counted += other.images_counted;
        for (name, n) in &other.counts {
            *self.counts.entry(name.clone()).or_default() += n;
        }
    }

    /// Adds an image seen without any tags (no EXIF): it is seen but never counted.
    pub fn add_untagged(&mut self) {
        self.images_seen += 1;
    }

    /// The frequencies so far and the tags present in more than `threshold` of the
    /// counted images.
    pub fn report(&self, threshold: f64) -> TagFrequencies {
        let n = self.images_counted.max(1) as f64;
        let mut frequencies: Vec<TagFrequency> = self
            .counts
            .iter()
            .map(|(name, &count)| TagFrequency {
                name: name.clone(),
                count,
                fraction: round6(count as f64 / n),
                private: is_private(name),
            })
            .collect();
        frequencies.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        let tags = frequencies
            .iter()
            .filter(|f| !f.private && self.images_counted > 0 && f.count as f64 / n > threshold)
            .map(|f| f.name.clone())
            .collect();
        TagFrequencies {
            images_seen: self.images_seen,
            images_counted: self.images_counted,
            min_tags: self.min_tags,
            threshold,
            tags,
            frequencies,
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// How often one tag is present among the counted images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagFrequency {
    /// Tag name.
    pub name: String,
    /// Number of counted images where the tag has a value.
    pub count: usize,
    /// `count` over the number of counted images (6 decimals).
    pub fraction: f64,
    /// Whether the privacy filter keeps the tag out of the text.
    pub private: bool,
}

/// Result of a frequency count: what was counted, every tag's frequency and the selected
/// tag list (by descending frequency, ties by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagFrequencies {
    /// Images read.
    pub images_seen: usize,
    /// Images with at least `min_tags` tags, the denominator of the fractions.
    pub images_counted: usize,
    /// Minimum number of present tags for an image to count.
    pub min_tags: usize,
    /// A tag is selected when present in more than this fraction of counted images.
    pub threshold: f64,
    /// The selected tags, most frequent first.
    pub tags: Vec<String>,
    /// Every tag seen, most frequent first.
    pub frequencies: Vec<TagFrequency>,
}

impl TagFrequencies {
    /// The selected tags as a [`TagList`].
    pub fn tag_list(&self) -> TagList {
        TagList::new(self.tags.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(names: &[&str]) -> TagMap {
        names
            .iter()
            .map(|n| (n.to_string(), "v".to_string()))
            .collect()
    }

    #[test]
    fn only_images_with_enough_tags_count_and_selection_is_strictly_above_threshold() {
        let mut c = FrequencyCounter::new(3);
        assert!(c.add(&map(&["Make", "Model", "Flash", "Artist"])));
        assert!(c.add(&map(&["Make", "Model", "Flash"])));
        assert!(c.add(&map(&["Make", "Model", "ISO Speed Ratings", "Artist"])));
        assert!(c.add(&map(&["Make", "Flash", "Artist", "Orientation"])));
        // Too few tags: seen, not counted, its tags do not weigh.
        assert!(!c.add(&map(&["Orientation", "Software"])));
        c.add_untagged();
        let r = c.report(0.5);
        assert_eq!((r.images_seen, r.images_counted), (6, 4));
        // Make 4/4, Flash 3/4, Model 3/4, Artist 3/4 (private), ISO 1/4, Orientation 1/4.
        assert_eq!(r.tags, ["Make", "Flash", "Model"]);
        assert_eq!(r.frequencies[0].name, "Make");
        let artist = r.frequencies.iter().find(|f| f.name == "Artist").unwrap();
        assert!(artist.private && artist.count == 3);
        let orientation = r
            .frequencies
            .iter()
            .find(|f| f.name == "Orientation")
            .unwrap();
        assert_eq!(orientation.count, 1);
        assert_eq!(orientation.fraction, 0.25);
        // Exactly one half is not "more than half".
        let r = c.report(0.25);
        assert!(!r.tags.contains(&"Orientation".to_string()));
    }

    #[test]
    fn empty_values_do_not_count_as_tags() {
        let mut c = FrequencyCounter::new(2);
        let m: TagMap = [("Make", "Canon"), ("Model", " "), ("Flash", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(!c.add(&m));
    }
}
