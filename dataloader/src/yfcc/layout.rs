//! Where a YFCC100M photo lies under the photos URL: a template of its id and hash. The
//! default is the public mirror's layout, `{hash[0:3]}/{hash[3:6]}/{hash}.jpg` (the AWS
//! mirror keeps the photos under `data/images/` that way, e.g.
//! `s3://multimedia-commons/data/images/4e2/f7a/4e2f7a26a1dfbf165a7e30bdabf7e72a.jpg`;
//! jfolz's `yfcc100m` package and the public download scripts build the same keys). A
//! copy kept by photo id would be `{id}.jpg`.

use std::fmt;

/// The mirror's layout.
pub const MIRROR: &str = "{hash[0:3]}/{hash[3:6]}/{hash}.jpg";

/// A parsed layout template: text, `{id}`, `{hash}` and `{hash[a:b]}` (characters a to b
/// of the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoLayout {
    template: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Id,
    Hash(usize, Option<usize>),
}

impl Default for PhotoLayout {
    fn default() -> Self {
        Self::parse(MIRROR).expect("the mirror's layout parses")
    }
}

impl fmt::Display for PhotoLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

impl PhotoLayout {
    /// Parses a template; the error says what is wrong.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("layout `{template}`: `{{` without `}}`"))?;
            let field = &rest[open + 1..open + close];
            parts.push(match field {
                "id" => Part::Id,
                "hash" => Part::Hash(0, None),
                _ => {
                    let range = field
                        .strip_prefix("hash[")
                        .and_then(|r| r.strip_suffix(']'))
                        .and_then(|r| r.split_once(':'))
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                        .filter(|(a, b)| a < b);
                    match range {
                        Some((a, b)) => Part::Hash(a, Some(b)),
                        None => {
                            return Err(format!(
                                "layout `{template}`: unknown field `{{{field}}}` (use {{id}}, {{hash}} or {{hash[a:b]}})"
                            ))
                        }
                    }
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts
            .iter()
            .any(|p| matches!(p, Part::Id | Part::Hash(0, None)))
        {
            return Err(format!(
                "layout `{template}` names no photo: it needs {{id}} or {{hash}}"
            ));
        }
        Ok(Self {
            template: template.to_string(),
            parts,
        })
    }

    /// The path of the photo with this id and hash.
    pub fn path(&self, id: &str, hash: &str) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Id => out.push_str(id),
                Part::Hash(a, b) => {
                    let end = b.unwrap_or(hash.len()).min(hash.len());
                    out.push_str(&hash[(*a).min(end)..end]);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_layout_and_others_place_photos() {
        let h = "4e2f7a26a1dfbf165a7e30bdabf7e72a";
        assert_eq!(
            PhotoLayout::default().path("6985418911", h),
            "4e2/f7a/4e2f7a26a1dfbf165a7e30bdabf7e72a.jpg"
        );
        let by_id = PhotoLayout::parse("photos/{id}.jpg").unwrap();
        assert_eq!(by_id.path("6985418911", h), "photos/6985418911.jpg");
        for bad in [
            "{hash[3:1]}/{id}",
            "{name}.jpg",
            "{hash",
            "{hash[0:2]}/x.jpg",
        ] {
            assert!(PhotoLayout::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
