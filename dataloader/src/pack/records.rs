//! What a pack run leaves beside the shards so that parts can pack apart, a rerun can keep
//! finished work, and a merge can write one manifest: a record per finished block
//! (`pack-block-BBBBBB.json`, written after its shards and indexes, so it only ever names
//! complete objects) and a record per finished part (`pack-part-I-of-N.json`).

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::exif::frequency::FrequencyCounter;
use crate::shard::{ShardEntry, ShardError, ShardIndex};
use infra::store::{self, retry, RetryPolicy, StoreOptions, StoreUrl};

/// Object name of block `b`'s record.
pub fn block_record_name(b: u64) -> String {
    format!("pack-block-{b:06}.json")
}

/// Object name of part `i` of `n`'s record.
pub fn part_record_name(i: u32, n: u32) -> String {
    format!("pack-part-{i}-of-{n}.json")
}

/// The settings that decide a block's bytes; a block packed under other settings is not
/// reused, and parts packed under different ones do not merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Compression of the shards (`none`, `zstd`).
    pub compression: String,
    /// Target shard size.
    pub shard_size_bytes: u64,
    /// Candidates per block.
    pub block_size: u64,
    /// Minimum number of tags.
    pub min_tags: usize,
    /// Where tags come from (`exif`, `yfcc`, `given`).
    pub tag_source: String,
}

/// One photo in a block record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSample {
    /// Sample key.
    pub key: String,
    /// SHA-256 of the photo's bytes (duplicates across blocks are found by it).
    pub sha256: String,
    /// Which of the block's shards holds it.
    pub shard: usize,
}

/// `pack-block-BBBBBB.json`: one finished block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Block number.
    pub block: u64,
    /// The settings it was packed with.
    pub settings: Settings,
    /// Digest of the block's candidates (keys and where their photos are): a rerun over
    /// other input does not reuse the block.
    pub candidates_digest: String,
    /// Its shards, in order, as written.
    pub shards: Vec<ShardEntry>,
    /// The index of each shard as written.
    pub indexes: Vec<ShardIndex>,
    /// Its photos in shard order.
    pub samples: Vec<PackedSample>,
    /// Lines and photos left out, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Tag counts of the packed photos.
    pub frequencies: FrequencyCounter,
}

/// `pack-part-I-of-N.json`: a part that packed all its blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartRecord {
    /// This part (0-based) and the number of parts.
    pub part: u32,
    /// Number of parts.
    pub parts: u32,
    /// Blocks over all parts (every part walks the whole input, so all agree).
    pub blocks: u64,
    /// The settings.
    pub settings: Settings,
    /// The tag list for the manifest; `None`: computed from the corpus at merge.
    pub tag_list: Option<Vec<String>>,
    /// What was packed, for the manifest.
    pub source: String,
}

/// Digest of a block's candidates: keys and photo locations, in order.
pub fn candidates_digest<'a>(items: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut h = Sha256::new();
    for (key, location) in items {
        h.update(key.as_bytes());
        h.update([0]);
        h.update(location.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// JSON documents and object checks under a dataset URL.
pub struct Documents {
    store: StoreUrl,
    retry: RetryPolicy,
}

impl Documents {
    /// Documents under `url`.
    pub fn open(url: &str, opts: &StoreOptions) -> Result<Self, ShardError> {
        Ok(Self {
            store: store::open(url, opts)?,
            retry: opts.retry.clone(),
        })
    }

    /// The dataset URL.
    pub fn url(&self) -> &str {
        &self.store.url
    }

    /// Object `name` parsed as JSON; `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ShardError> {
        let path = self.store.child(name);
        let what = format!("GET {}", self.store.display(name));
        let got: Result<Bytes, _> = retry(&self.retry, &what, || async {
            self.store.store.get(&path).await?.bytes().await
        })
        .await;
        let bytes = match got {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ShardError::Write {
                url: self.store.display(name),
                reason: format!("unreadable pack record: {e}"),
            })
    }

    /// Writes `value` as JSON to object `name`.
    pub async fn put<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ShardError> {
        crate::shard::writer::put_json(&self.store, &self.retry, name, value).await
    }

    /// The size of object `name`; `None` when it does not exist.
    pub async fn size(&self, name: &str) -> Result<Option<u64>, ShardError> {
        let path = self.store.child(name);
        let what = format!("HEAD {}", self.store.display(name));
        match retry(&self.retry, &what, || self.store.store.head(&path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes object `name` if it exists.
    pub async fn delete(&self, name: &str) -> Result<(), ShardError> {
        if self.size(name).await?.is_none() {
            return Ok(());
        }
        let path = self.store.child(name);
        let what = format!("DELETE {}", self.store.display(name));
        match retry(&self.retry, &what, || self.store.store.delete(&path)).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of the objects directly under the URL that start with `start`.
    pub async fn names_starting(&self, start: &str) -> Result<Vec<String>, ShardError> {
        let listed = self
            .store
            .store
            .list_with_delimiter(Some(&self.store.prefix))
            .await
            .map_err(|source| {
                ShardError::Storage(infra::store::RetryError {
                    what: format!("LIST {}", self.store.url),
                    attempts: 1,
                    source,
                })
            })?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .filter(|n| n.starts_with(start))
            .collect())
    }

    /// Whether every shard and index a block record names exists with the recorded size
    /// (shards) — the check that lets a rerun keep the block.
    pub async fn block_is_intact(&self, record: &BlockRecord) -> Result<bool, ShardError> {
        for s in &record.shards {
            if self.size(&s.name).await? != Some(s.bytes) || self.size(&s.index).await?.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
