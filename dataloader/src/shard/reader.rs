//! Reading a packed dataset: open its manifest, load (and cache) shard indexes, fetch one
//! sample with a byte-range GET, and verify whole shards against their recorded SHA-256.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::manifest::{
    Compression, IndexEntry, Manifest, ShardIndex, FORMAT_VERSION, MANIFEST_NAME,
};
use super::sample::{self, RawSample, SampleError, SampleHead};
use super::ShardError;
use infra::store::{self, retry, RetryError, RetryPolicy, StoreOptions, StoreUrl};

/// A packed dataset opened for reading. Cheap to share behind an `Arc`; shard indexes are
/// fetched on first use and cached.
#[derive(Debug)]
pub struct Dataset {
    store: StoreUrl,
    retry: RetryPolicy,
    manifest: Manifest,
    indexes: Vec<OnceCell<LoadedIndex>>,
}

/// A shard index with the actual size of its shard object.
#[derive(Debug, Clone)]
struct LoadedIndex {
    index: Arc<ShardIndex>,
    object_bytes: u64,
}

/// Result of checking one whole shard ([`Dataset::verify_shard`]).
#[derive(Debug, Clone)]
pub struct ShardCheck {
    /// Shard object name.
    pub name: String,
    /// Size read.
    pub bytes: u64,
    /// Size the manifest records.
    pub expected_bytes: u64,
    /// SHA-256 of what was read, lowercase hex.
    pub sha256: String,
    /// SHA-256 the manifest records.
    pub expected_sha256: String,
    /// Samples decoded and validated.
    pub samples_checked: usize,
    /// Samples that failed, with the reason.
    pub bad_samples: Vec<(String, SampleError)>,
    /// Whether the archive ends with its end-of-archive zero blocks after the last listed
    /// sample (unlisted duplicates may lie between).
    pub trailer_ok: bool,
}

impl ShardCheck {
    /// Whether size, checksum, every sample and the trailer are as recorded.
    pub fn is_ok(&self) -> bool {
        self.bytes == self.expected_bytes
            && self.sha256 == self.expected_sha256
            && self.bad_samples.is_empty()
            && self.trailer_ok
    }
}

impl Dataset {
    /// Opens the dataset at `url`: reads and checks `manifest.json`.
    pub async fn open(url: &str, opts: &StoreOptions) -> Result<Dataset, ShardError> {
        let store = store::open(url, opts)?;
        let path = store.child(MANIFEST_NAME);
        let manifest_url = store.display(MANIFEST_NAME);
        let what = format!("GET {manifest_url}");
        let got = retry(&opts.retry, &what, || async {
            store.store.get(&path).await?.bytes().await
        })
        .await;
        let bytes = match got {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(ShardError::NoManifest {
                    url: url.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let manifest = parse_manifest(&bytes, &manifest_url)?;
        let indexes = manifest.shards.iter().map(|_| OnceCell::new()).collect();
        Ok(Dataset {
            store,
            retry: opts.retry.clone(),
            manifest,
            indexes,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The URL the dataset was opened from.
    pub fn url(&self) -> &str {
        &self.store.url
    }

    /// The index of shard `shard`, fetched on first use and cached. Also checks the shard
    /// object exists (a missing one is a storage error) and notes its actual size.
    pub async fn shard_index(&self, shard: usize) -> Result<Arc<ShardIndex>, ShardError> {
        Ok(self.loaded(shard).await?.index.clone())
    }

    async fn loaded(&self, shard: usize) -> Result<&LoadedIndex, ShardError> {
        let cell = self
            .indexes
            .get(shard)
            .ok_or_else(|| ShardError::OutOfRange {
                what: "shard".into(),
                n: shard,
                len: self.indexes.len(),
            })?;
        cell.get_or_try_init(|| self.load_index(shard)).await
    }

    async fn load_index(&self, shard: usize) -> Result<LoadedIndex, ShardError> {
        let entry = &self.manifest.shards[shard];
        let index_url = self.store.display(&entry.index);
        let path = self.store.child(&entry.index);
        let bytes = retry(&self.retry, &format!("GET {index_url}"), || async {
            self.store.store.get(&path).await?.bytes().await
        })
        .await?;
        let bad = |reason: String| ShardError::BadIndex {
            url: index_url.clone(),
            reason,
        };
        let index: ShardIndex = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        index.validate(entry.bytes, entry.samples).map_err(bad)?;
        let shard_path = self.store.child(&entry.name);
        let shard_url = self.store.display(&entry.name);
        let meta = retry(&self.retry, &format!("HEAD {shard_url}"), || {
            self.store.store.head(&shard_path)
        })
        .await?;
        if meta.size != entry.bytes {
            tracing::warn!(
                shard = %shard_url,
                size = meta.size,
                expected = entry.bytes,
                "shard object size differs from the manifest; samples past its end are unreadable"
            );
        }
        Ok(LoadedIndex {
            index: Arc::new(index),
            object_bytes: meta.size,
        })
    }

    /// Fetches sample `sample` of shard `shard`: a byte-range GET (retried with backoff on
    /// transient errors), then decompression and validation of its members. Decoding runs
    /// on the calling task; use [`Dataset::fetch_sample_bytes`] and [`sample::decode`] to
    /// run it elsewhere.
    pub async fn fetch_sample(&self, shard: usize, sample: usize) -> Result<RawSample, ShardError> {
        let (key, bytes) = self.fetch_sample_bytes(shard, sample).await?;
        sample::decode(&key, bytes, self.manifest.compression).map_err(|source| {
            ShardError::Sample {
                shard: self.manifest.shards[shard].name.clone(),
                key,
                source,
            }
        })
    }

    /// The raw bytes of one sample as stored in the shard (tar members or a zstd frame),
    /// with its key.
    pub async fn fetch_sample_bytes(
        &self,
        shard: usize,
        sample: usize,
    ) -> Result<(String, Bytes), ShardError> {
        let (loaded, e) = self.entry(shard, sample).await?;
        let bytes = self.get_range(shard, loaded, &e.key, e.range()).await?;
        Ok((e.key.clone(), bytes))
    }

    /// The head of a sample whose photo can be read by range ([`IndexEntry::jpeg`]): its
    /// tags, scan index and decode kit, from one byte-range GET.
    pub async fn fetch_head(&self, shard: usize, sample: usize) -> Result<SampleHead, ShardError> {
        let (loaded, e) = self.entry(shard, sample).await?;
        let (Some(range), Some(jpeg)) = (e.head(), e.jpeg) else {
            return Err(self.not_rangeable(shard, &e.key, NO_RANGES.into()));
        };
        let bytes = self.get_range(shard, loaded, &e.key, range).await?;
        sample::decode_head(&e.key, bytes, jpeg.length).map_err(|source| ShardError::Sample {
            shard: self.manifest.shards[shard].name.clone(),
            key: e.key.clone(),
            source,
        })
    }

    /// Byte ranges of a sample's photo (offsets within the JPEG), fetched concurrently.
    pub async fn fetch_photo_ranges(
        &self,
        shard: usize,
        sample: usize,
        ranges: &[Range<u64>],
    ) -> Result<Vec<Bytes>, ShardError> {
        let (loaded, e) = self.entry(shard, sample).await?;
        let Some(jpeg) = e.jpeg else {
            return Err(self.not_rangeable(shard, &e.key, NO_RANGES.into()));
        };
        if let Some(r) = ranges
            .iter()
            .find(|r| r.start >= r.end || r.end > jpeg.length)
        {
            let reason = format!("range {r:?} of a {} byte photo", jpeg.length);
            return Err(self.not_rangeable(shard, &e.key, reason));
        }
        let gets = ranges.iter().map(|r| {
            let abs = jpeg.offset + r.start..jpeg.offset + r.end;
            self.get_range(shard, loaded, &e.key, abs)
        });
        futures::future::try_join_all(gets).await
    }

    fn not_rangeable(&self, shard: usize, key: &str, reason: String) -> ShardError {
        ShardError::NotRangeable {
            shard: self.manifest.shards[shard].name.clone(),
            key: key.to_string(),
            reason,
        }
    }

    async fn entry(
        &self,
        shard: usize,
        sample: usize,
    ) -> Result<(&LoadedIndex, &IndexEntry), ShardError> {
        let loaded = self.loaded(shard).await?;
        let e = loaded
            .index
            .samples
            .get(sample)
            .ok_or_else(|| ShardError::OutOfRange {
                what: format!("sample in shard {shard}"),
                n: sample,
                len: loaded.index.samples.len(),
            })?;
        Ok((loaded, e))
    }

    /// One byte-range GET of shard `shard` (retried), checked for length; `key` names the
    /// sample in errors.
    async fn get_range(
        &self,
        shard: usize,
        loaded: &LoadedIndex,
        key: &str,
        range: Range<u64>,
    ) -> Result<Bytes, ShardError> {
        let name = &self.manifest.shards[shard].name;
        let truncated = |available: u64| ShardError::Sample {
            shard: name.clone(),
            key: key.to_string(),
            source: SampleError::Truncated {
                needed: range.end,
                available,
            },
        };
        if range.end > loaded.object_bytes {
            return Err(truncated(loaded.object_bytes));
        }
        let path = self.store.child(name);
        let what = format!(
            "GET {} bytes {}..{}",
            self.store.display(name),
            range.start,
            range.end
        );
        let bytes = retry(&self.retry, &what, || {
            self.store.store.get_range(&path, range.clone())
        })
        .await?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(truncated(range.start + bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Reads shard `shard` whole (streaming, one sample in memory at a time), checks its
    /// size and SHA-256 against the manifest, and decodes every sample range.
    pub async fn verify_shard(&self, shard: usize) -> Result<ShardCheck, ShardError> {
        let index = self.shard_index(shard).await?;
        let entry = &self.manifest.shards[shard];
        let path = self.store.child(&entry.name);
        let what = format!("GET {}", self.store.display(&entry.name));
        let got = retry(&self.retry, &what, || self.store.store.get(&path)).await?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        let mut pos = 0u64;
        let mut next = 0usize;
        let mut cur: Vec<u8> = Vec::new();
        let mut trailer: Vec<u8> = Vec::new();
        let mut check = ShardCheck {
            name: entry.name.clone(),
            bytes: 0,
            expected_bytes: entry.bytes,
            sha256: String::new(),
            expected_sha256: entry.sha256.clone(),
            samples_checked: 0,
            bad_samples: Vec::new(),
            trailer_ok: false,
        };
        let compression = self.manifest.compression;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| RetryError {
                what: what.clone(),
                attempts: 1,
                source,
            })?;
            hasher.update(&chunk);
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let Some(e) = index.samples.get(next) else {
                    let room = TRAILER_MAX.saturating_sub(trailer.len()).min(rest.len());
                    trailer.extend_from_slice(&rest[..room]);
                    pos += rest.len() as u64;
                    break;
                };
                if pos < e.offset {
                    // Bytes between samples (none are written, but tolerate them).
                    let skip = ((e.offset - pos) as usize).min(rest.len());
                    rest = &rest[skip..];
                    pos += skip as u64;
                    continue;
                }
                let take = ((e.range().end - pos) as usize).min(rest.len());
                cur.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                pos += take as u64;
                if pos == e.range().end {
                    let bytes = Bytes::from(std::mem::take(&mut cur));
                    if let Err(err) = sample::decode(&e.key, bytes, compression) {
                        check.bad_samples.push((e.key.clone(), err));
                    }
                    check.samples_checked += 1;
                    next += 1;
                }
            }
        }
        for e in &index.samples[next..] {
            check.bad_samples.push((
                e.key.clone(),
                SampleError::Truncated {
                    needed: e.range().end,
                    available: pos,
                },
            ));
        }
        check.bytes = pos;
        check.sha256 = hex::encode(hasher.finalize());
        check.trailer_ok = next == index.samples.len() && is_end_of_archive(&trailer, compression);
        Ok(check)
    }
}

/// Why a sample has no photo ranges.
const NO_RANGES: &str =
    "its photo cannot be read by range (compressed shard, or packed without a decode kit): fetch it whole";

/// Most bytes after the last listed sample kept by [`Dataset::verify_shard`]: the end of
/// the archive, and any samples a merge left out of the index as duplicates.
const TRAILER_MAX: usize = 32 << 20;

/// Whether the bytes after the last listed sample end the archive: (decompressed) whole
/// tar blocks ending in the two zero blocks of a tar's end.
fn is_end_of_archive(trailer: &[u8], compression: Compression) -> bool {
    let tail = match compression {
        Compression::None => trailer.to_vec(),
        Compression::Zstd => match zstd::stream::decode_all(trailer) {
            Ok(z) => z,
            Err(_) => return false,
        },
    };
    tail.len() >= 1024 && tail.len() % 512 == 0 && tail[tail.len() - 1024..].iter().all(|b| *b == 0)
}

fn parse_manifest(bytes: &[u8], url: &str) -> Result<Manifest, ShardError> {
    let bad = |reason: String| ShardError::BadManifest {
        url: url.to_string(),
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| bad("no numeric format_version".into()))?;
    if version != FORMAT_VERSION as u64 {
        return Err(ShardError::UnsupportedVersion {
            url: url.to_string(),
            found: version.min(u32::MAX as u64) as u32,
        });
    }
    let m: Manifest = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    let sum: u64 = m.shards.iter().map(|s| s.samples).sum();
    if sum != m.samples {
        return Err(bad(format!(
            "shards hold {sum} samples, `samples` says {}",
            m.samples
        )));
    }
    Ok(m)
}

/// Compile-time check: the stream spawns reads on a multi-threaded runtime, so the
/// dataset must be shareable and its futures `Send`.
#[allow(dead_code)]
fn reads_can_run_on_spawned_tasks(ds: &Dataset, opts: &StoreOptions) {
    fn send<T: Send>(_: &T) {}
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Dataset>();
    send(&Dataset::open("", opts));
    send(&ds.shard_index(0));
    send(&ds.fetch_sample(0, 0));
    send(&ds.fetch_head(0, 0));
    send(&ds.fetch_photo_ranges(0, 0, &[]));
    send(&ds.verify_shard(0));
}
