//! The training text of a sample: its EXIF tag map written as `Name: value` pairs.
//!
//! A small local renderer, to be replaced by `exif::render_text` with the bundled tag list.

use crate::TagMap;

/// How the tags become one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFormat {
    /// Between two tags. Default: `", "` (the reference code's separator).
    pub separator: String,
    /// Write `Name: value` (true) or the value alone (false). Default: true.
    pub with_names: bool,
}

impl Default for TextFormat {
    fn default() -> Self {
        Self {
            separator: ", ".into(),
            with_names: true,
        }
    }
}

/// Tags never written into the text: GPS position and serial numbers are private.
fn is_private(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("gps") || lower.contains("serial number")
}

/// The text of `tags`: the tags of `tag_list` in that fixed order, those missing left out;
/// with an empty list, every tag in record order. Private tags are never written.
pub fn render_text(tags: &TagMap, tag_list: &[String], format: &TextFormat) -> String {
    let pick: Vec<(&str, &str)> = if tag_list.is_empty() {
        tags.iter().collect()
    } else {
        tag_list
            .iter()
            .filter_map(|n| tags.get(n).map(|v| (n.as_str(), v)))
            .collect()
    };
    let parts: Vec<String> = pick
        .into_iter()
        .filter(|(n, _)| !is_private(n))
        .map(|(n, v)| {
            if format.with_names {
                format!("{n}: {v}")
            } else {
                v.to_string()
            }
        })
        .collect();
    parts.join(&format.separator)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> TagMap {
        [
            ("Model", "D90"),
            ("Make", "NIKON"),
            ("GPS Latitude", "48 deg"),
            ("Body Serial Number", "123"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn follows_the_tag_list_order_and_skips_missing_and_private_tags() {
        let list: Vec<String> = ["Make", "Lens", "Model", "GPS Latitude"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            render_text(&tags(), &list, &TextFormat::default()),
            "Make: NIKON, Model: D90"
        );
        let values = TextFormat {
            separator: " ".into(),
            with_names: false,
        };
        assert_eq!(render_text(&tags(), &list, &values), "NIKON D90");
        assert_eq!(
            render_text(&tags(), &[], &TextFormat::default()),
            "Model: D90, Make: NIKON"
        );
    }
}
