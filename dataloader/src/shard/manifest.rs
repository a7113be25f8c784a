//! The JSON documents of a packed dataset: `manifest.json` (what the dataset holds, written
//! last) and one `shard-NNNNNN.index.json` per shard (where each sample's bytes are).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the manifest object under the dataset prefix.
pub const MANIFEST_NAME: &str = "manifest.json";

/// How the shard files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain tar.
    #[default]
    None,
    /// Tar where each sample's members form one independent zstd frame.
    Zstd,
}

impl Compression {
    /// File name extension of a shard (`tar` or `tar.zst`).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Zstd => "tar.zst",
        }
    }

    /// The name used in the manifest (`none` or `zstd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

/// Object name of shard number `n` (`shard-000012.tar.zst`).
pub fn shard_name(n: usize, compression: Compression) -> String {
    format!("shard-{n:06}.{}", compression.extension())
}

/// Object name of the index of shard number `n` (`shard-000012.index.json`).
pub fn index_name(n: usize) -> String {
    format!("shard-{n:06}.index.json")
}

/// Object name of shard `n` of pack block `block` (`shard-000003-001.tar`): blocks are
/// packed apart (by parallel parts), so their shards are named apart.
pub fn block_shard_name(block: u64, n: usize, compression: Compression) -> String {
    format!("shard-{block:06}-{n:03}.{}", compression.extension())
}

/// Object name of the index of shard `n` of block `block`.
pub fn block_index_name(block: u64, n: usize) -> String {
    format!("shard-{block:06}-{n:03}.index.json")
}

/// `manifest.json`: the whole dataset. Written after every shard and index exists, so a
/// manifest never names a missing shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Compression of every shard.
    pub compression: Compression,
    /// Tag names the training text uses, most frequent first.
    pub tags: Vec<String>,
    /// The shards, in order.
    pub shards: Vec<ShardEntry>,
    /// Number of samples over all shards.
    pub samples: u64,
    /// Photos left out while packing, by reason (`too_small`, `few_tags`, ...).
    #[serde(default)]
    pub skipped: BTreeMap<String, u64>,
    /// The program that wrote the dataset (`dataloader 0.1.0`).
    #[serde(default)]
    pub created_by: String,
    /// What was packed (input folder or list, metadata file).
    #[serde(default)]
    pub source: String,
}

impl Manifest {
    /// Total size of all shard objects in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }
}

/// One shard as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Object name of the shard (`shard-000000.tar.zst`), relative to the dataset prefix.
    pub name: String,
    /// Object name of its index (`shard-000000.index.json`).
    pub index: String,
    /// Number of samples in it.
    pub samples: u64,
    /// Size of the shard object in bytes.
    pub bytes: u64,
    /// SHA-256 of the shard object, lowercase hex.
    pub sha256: String,
}

/// `shard-NNNNNN.index.json`: where each sample of one shard is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShardIndex {
    /// Samples in shard order.
    pub samples: Vec<IndexEntry>,
}

/// One sample in a shard index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Sample key (member names are `KEY.jpg`, `KEY.exif.json`, `KEY.jpgidx`).
    pub key: String,
    /// Start of the sample's bytes in the shard object (its tar members or zstd frame).
    pub offset: u64,
    /// Length of those bytes.
    pub length: u64,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Number of EXIF tags stored with the photo.
    pub tags: u32,
    /// Where the photo's bytes are in the shard object, when they can be read by range
    /// (an uncompressed shard, and a JPEG with a scan index and a decode kit): the bytes
    /// before them, from `offset`, are the sample's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg: Option<JpegSpan>,
}

/// The photo's bytes inside a sample ([`IndexEntry::jpeg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JpegSpan {
    /// Start in the shard object.
    pub offset: u64,
    /// Length of the JPEG.
    pub length: u64,
}

impl IndexEntry {
    /// The byte range `[offset, offset + length)`.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.length
    }

    /// The sample's head: its bytes before the photo (when the photo is rangeable).
    pub fn head(&self) -> Option<std::ops::Range<u64>> {
        self.jpeg.map(|j| self.offset..j.offset)
    }
}

impl ShardIndex {
    /// Checks that the ranges are non-empty, in order, disjoint and inside a shard of
    /// `shard_bytes` bytes, and that there are `expected_samples` of them.
    pub fn validate(&self, shard_bytes: u64, expected_samples: u64) -> Result<(), String> {
        if self.samples.len() as u64 != expected_samples {
            return Err(format!(
                "index lists {} samples, the manifest {}",
                self.samples.len(),
                expected_samples
            ));
        }
        let mut end = 0u64;
        for s in &self.samples {
            let stop = s.offset.checked_add(s.length).ok_or("range overflows")?;
            if s.length == 0 || s.offset < end || stop > shard_bytes {
                return Err(format!(
                    "sample '{}' has range {}..{} (previous ends at {end}, shard has {shard_bytes} bytes)",
                    s.key, s.offset, stop
                ));
            }
            if let Some(j) = s.jpeg {
                let inside = j.offset > s.offset
                    && j.length > 0
                    && j.offset.checked_add(j.length).is_some_and(|e| e <= stop);
                if !inside {
                    return Err(format!(
                        "sample '{}' places its photo at {}+{}, outside its range {}..{stop}",
                        s.key, j.offset, j.length, s.offset
                    ));
                }
            }
            end = stop;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_json_uses_the_documented_field_names() {
        let m = Manifest {
            format_version: FORMAT_VERSION,
            compression: Compression::Zstd,
            tags: vec!["Model".into()],
            shards: vec![ShardEntry {
                name: shard_name(0, Compression::Zstd),
                index: index_name(0),
                samples: 2,
                bytes: 4096,
                sha256: "ab".into(),
            }],
            samples: 2,
            skipped: BTreeMap::from([("too_small".to_string(), 1)]),
            created_by: "dataloader 0.1.0".into(),
            source: "photos/".into(),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["compression"], "zstd");
        assert_eq!(v["shards"][0]["name"], "shard-000000.tar.zst");
        assert_eq!(v["shards"][0]["index"], "shard-000000.index.json");
        assert_eq!(v["skipped"]["too_small"], 1);
        let back: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn index_validation_rejects_overlaps_and_out_of_bounds_ranges() {
        let e = |key: &str, offset, length| IndexEntry {
            key: key.into(),
            offset,
            length,
            width: 1,
            height: 1,
            tags: 1,
            jpeg: None,
        };
        let ok = ShardIndex {
            samples: vec![e("a", 0, 10), e("b", 10, 5)],
        };
        assert!(ok.validate(20, 2).is_ok());
        assert!(ok.validate(14, 2).unwrap_err().contains("'b'"));
        assert!(ok.validate(20, 3).is_err());
        let overlap = ShardIndex {
            samples: vec![e("a", 0, 10), e("b", 9, 5)],
        };
        assert!(overlap.validate(20, 2).is_err());
        let mut photo = ok.clone();
        photo.samples[0].jpeg = Some(JpegSpan {
            offset: 4,
            length: 6,
        });
        assert!(photo.validate(20, 2).is_ok());
        assert_eq!(photo.samples[0].head(), Some(0..4));
        photo.samples[0].jpeg = Some(JpegSpan {
            offset: 4,
            length: 7,
        });
        assert!(photo.validate(20, 2).unwrap_err().contains("outside"));
    }
}
