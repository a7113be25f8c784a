//! Writing a dataset: samples stream into the current shard (a multipart upload, so memory
//! holds a few upload parts, never a whole shard), shards roll over at a target size, each
//! finished shard gets its index, and `manifest.json` is written last.

use std::collections::{BTreeMap, HashSet};

use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use super::manifest::{
    block_index_name, block_shard_name, index_name, shard_name, Compression, IndexEntry, JpegSpan,
    Manifest, ShardEntry, ShardIndex,
};
use super::manifest::{FORMAT_VERSION, MANIFEST_NAME};
use super::sample::{self, EncodedSample, SampleInput};
use super::ShardError;
use infra::store::{self, retry, RetryError, RetryPolicy, StoreOptions, StoreUrl};

/// How shards are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Compression of the shards. Default: none.
    pub compression: Compression,
    /// A shard is closed before a sample would take it past this size (a single larger
    /// sample gets a shard of its own). Default: 256 MiB.
    pub shard_size_bytes: u64,
    /// Size of one multipart upload part. Default: 8 MiB (S3 needs at least 5 MiB).
    pub part_size_bytes: usize,
    /// Parts uploaded concurrently; memory use is about this times the part size.
    /// Default: 4.
    pub upload_concurrency: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            compression: Compression::None,
            shard_size_bytes: 256 << 20,
            part_size_bytes: 8 << 20,
            upload_concurrency: 4,
        }
    }
}

/// What the manifest says about the dataset beyond its shards.
#[derive(Debug, Clone, Default)]
pub struct DatasetInfo {
    /// Tag names the training text uses, most frequent first.
    pub tags: Vec<String>,
    /// Photos left out, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// What was packed.
    pub source: String,
}

/// Writes a dataset under a URL prefix. Call [`DatasetWriter::finish`] to write the
/// manifest; without it (or after [`DatasetWriter::abort`]) no manifest exists and readers
/// refuse the prefix.
pub struct DatasetWriter {
    store: StoreUrl,
    retry: RetryPolicy,
    opts: WriterOptions,
    shards: Vec<ShardEntry>,
    current: Option<OpenShard>,
    old_manifest_gone: bool,
    /// The pack block whose shards this writer writes ([`DatasetWriter::for_block`]).
    block: Option<u64>,
    /// The indexes written, kept in block mode.
    indexes: Vec<ShardIndex>,
}

struct OpenShard {
    upload: WriteMultipart,
    hasher: Sha256,
    bytes: u64,
    index: Vec<IndexEntry>,
    keys: HashSet<String>,
}

impl DatasetWriter {
    /// Starts a dataset at `url` (a local directory is created). An existing
    /// `manifest.json` there is deleted before the first shard is written, so that no
    /// reader sees an old manifest next to half-rewritten shards.
    pub async fn create(
        url: &str,
        store_opts: &StoreOptions,
        opts: WriterOptions,
    ) -> Result<Self, ShardError> {
        if opts.shard_size_bytes == 0 || opts.part_size_bytes == 0 || opts.upload_concurrency == 0 {
            return Err(ShardError::Write {
                url: url.to_string(),
                reason: "shard size, part size and upload concurrency must be positive".into(),
            });
        }
        let store = store::open(url, store_opts)?;
        if let Some(dir) = &store.local_dir {
            std::fs::create_dir_all(dir).map_err(|e| ShardError::Write {
                url: url.to_string(),
                reason: format!("cannot create directory {}: {e}", dir.display()),
            })?;
        }
        Ok(Self {
            store,
            retry: store_opts.retry.clone(),
            opts,
            shards: Vec::new(),
            current: None,
            old_manifest_gone: false,
            block: None,
            indexes: Vec::new(),
        })
    }

    /// A writer of the shards of one pack block (named `shard-BBBBBB-NNN`), which leaves
    /// the manifest alone: [`DatasetWriter::finish_block`] returns the shards instead.
    pub async fn for_block(
        url: &str,
        store_opts: &StoreOptions,
        opts: WriterOptions,
        block: u64,
    ) -> Result<Self, ShardError> {
        let mut w = Self::create(url, store_opts, opts).await?;
        w.block = Some(block);
        w.old_manifest_gone = true;
        Ok(w)
    }

    fn shard_name(&self, n: usize) -> String {
        match self.block {
            Some(b) => block_shard_name(b, n, self.opts.compression),
            None => shard_name(n, self.opts.compression),
        }
    }

    fn index_name(&self, n: usize) -> String {
        match self.block {
            Some(b) => block_index_name(b, n),
            None => index_name(n),
        }
    }

    /// Deletes a manifest left by an earlier dataset at the URL, before the first object
    /// of this one is written.
    async fn remove_old_manifest(&mut self) -> Result<(), ShardError> {
        if self.old_manifest_gone {
            return Ok(());
        }
        // HEAD first: S3 reports success when deleting a key that does not exist.
        let path = self.store.child(MANIFEST_NAME);
        let url = self.store.display(MANIFEST_NAME);
        match retry(&self.retry, &format!("HEAD {url}"), || {
            self.store.store.head(&path)
        })
        .await
        {
            Ok(_) => {
                tracing::warn!(url = %self.store.url, "replacing the dataset already at this URL");
                let what = format!("DELETE {url}");
                match retry(&self.retry, &what, || self.store.store.delete(&path)).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        self.old_manifest_gone = true;
        Ok(())
    }

    /// Encodes and appends a sample (encoding runs on the calling task; see
    /// [`DatasetWriter::append_encoded`] to encode elsewhere).
    pub async fn append(&mut self, sample: &SampleInput) -> Result<(), ShardError> {
        let encoded = sample::encode(sample, self.opts.compression)?;
        self.append_encoded(encoded).await
    }

    /// Appends a sample encoded with [`sample::encode`] using this writer's compression.
    pub async fn append_encoded(&mut self, s: EncodedSample) -> Result<(), ShardError> {
        let len = s.bytes.len() as u64;
        if let Some(cur) = &self.current {
            if cur.bytes > 0 && cur.bytes + len > self.opts.shard_size_bytes {
                self.close_current().await?;
            }
        }
        if self.current.is_none() {
            self.remove_old_manifest().await?;
            self.current = Some(self.open_shard().await?);
        }
        let cur = self.current.as_mut().expect("opened above");
        if !cur.keys.insert(s.key.clone()) {
            return Err(ShardError::Write {
                url: self.store.url.clone(),
                reason: format!("key '{}' appears twice in one shard", s.key),
            });
        }
        cur.index.push(IndexEntry {
            key: s.key,
            offset: cur.bytes,
            length: len,
            width: s.width,
            height: s.height,
            tags: s.tags,
            jpeg: s.jpeg_at.map(|at| JpegSpan {
                offset: cur.bytes + at,
                length: s.jpeg_len,
            }),
        });
        cur.hasher.update(&s.bytes);
        cur.bytes += len;
        cur.upload.put(s.bytes);
        if let Err(source) = cur
            .upload
            .wait_for_capacity(self.opts.upload_concurrency)
            .await
        {
            let name = self.shard_name(self.shards.len());
            return Err(upload_error(
                format!("upload {}", self.store.display(&name)),
                source,
            ));
        }
        Ok(())
    }

    /// Shards finished so far.
    pub fn shards(&self) -> &[ShardEntry] {
        &self.shards
    }

    async fn open_shard(&self) -> Result<OpenShard, ShardError> {
        let name = self.shard_name(self.shards.len());
        let path = self.store.child(&name);
        let what = format!("start upload of {}", self.store.display(&name));
        let upload = retry(&self.retry, &what, || self.store.store.put_multipart(&path)).await?;
        Ok(OpenShard {
            upload: WriteMultipart::new_with_chunk_size(upload, self.opts.part_size_bytes),
            hasher: Sha256::new(),
            bytes: 0,
            index: Vec::new(),
            keys: HashSet::new(),
        })
    }

    async fn close_current(&mut self) -> Result<(), ShardError> {
        let Some(mut cur) = self.current.take() else {
            return Ok(());
        };
        let n = self.shards.len();
        let name = self.shard_name(n);
        let trailer =
            sample::end_of_archive(self.opts.compression).map_err(|e| ShardError::Write {
                url: self.store.url.clone(),
                reason: format!("cannot compress the end of {name}: {e}"),
            })?;
        cur.hasher.update(&trailer);
        cur.bytes += trailer.len() as u64;
        cur.upload.write(&trailer);
        let what = format!("upload {}", self.store.display(&name));
        cur.upload
            .finish()
            .await
            .map_err(|source| upload_error(what, source))?;
        let index = ShardIndex { samples: cur.index };
        let index_object = self.index_name(n);
        self.put_json(&index_object, &index).await?;
        let samples = index.samples.len() as u64;
        if self.block.is_some() {
            self.indexes.push(index);
        }
        self.shards.push(ShardEntry {
            name,
            index: index_object,
            samples,
            bytes: cur.bytes,
            sha256: hex::encode(cur.hasher.finalize()),
        });
        tracing::debug!(shard = n, bytes = cur.bytes, samples, "shard written");
        Ok(())
    }

    async fn put_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), ShardError> {
        put_json(&self.store, &self.retry, name, value).await
    }

    /// Closes the last shard of a block writer and returns the block's shards and their
    /// indexes (no manifest is written).
    pub async fn finish_block(mut self) -> Result<(Vec<ShardEntry>, Vec<ShardIndex>), ShardError> {
        self.close_current().await?;
        Ok((
            std::mem::take(&mut self.shards),
            std::mem::take(&mut self.indexes),
        ))
    }

    /// Closes the last shard and writes `manifest.json`; returns the manifest.
    pub async fn finish(mut self, info: DatasetInfo) -> Result<Manifest, ShardError> {
        self.close_current().await?;
        self.remove_old_manifest().await?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            compression: self.opts.compression,
            tags: info.tags,
            samples: self.shards.iter().map(|s| s.samples).sum(),
            shards: std::mem::take(&mut self.shards),
            skipped: info.skipped,
            created_by: format!("dataloader {}", env!("CARGO_PKG_VERSION")),
            source: info.source,
        };
        self.put_json(MANIFEST_NAME, &manifest).await?;
        Ok(manifest)
    }

    /// Abandons the dataset: aborts the shard being uploaded. Finished shards stay, but no
    /// manifest is written, so readers refuse the prefix.
    pub async fn abort(mut self) {
        if let Some(cur) = self.current.take() {
            if let Err(e) = cur.upload.abort().await {
                tracing::warn!(url = %self.store.url, error = %e, "aborting the shard upload failed");
            }
        }
    }
}

/// Writes `value` as pretty JSON to object `name` under `store` (retried).
pub(crate) async fn put_json<T: serde::Serialize>(
    store: &StoreUrl,
    policy: &RetryPolicy,
    name: &str,
    value: &T,
) -> Result<(), ShardError> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| ShardError::Write {
        url: store.url.clone(),
        reason: format!("cannot serialise {name}: {e}"),
    })?;
    let payload = PutPayload::from(body);
    let path = store.child(name);
    let what = format!("PUT {}", store.display(name));
    retry(policy, &what, || store.store.put(&path, payload.clone())).await?;
    Ok(())
}

fn upload_error(what: String, source: object_store::Error) -> ShardError {
    ShardError::Storage(RetryError {
        what,
        attempts: 1,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Dataset;
    use crate::TagMap;
    use bytes::Bytes;

    fn sample(i: usize) -> SampleInput {
        let mut tags = TagMap::new();
        tags.insert("Model", format!("camera {i}"));
        let mut jpeg = vec![0xFF, 0xD8];
        // Incompressible bytes, so zstd shards roll over too.
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
        jpeg.extend((0..3000 + i * 100).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        SampleInput {
            key: format!("photo_{i}"),
            jpeg: Bytes::from(jpeg),
            tags,
            jpeg_index: None,
            jpeg_kit: None,
            width: 300,
            height: 200,
        }
    }

    #[tokio::test]
    async fn shards_roll_over_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("ds").to_str().unwrap().to_string();
        let opts = StoreOptions::default();
        for compression in [Compression::None, Compression::Zstd] {
            let wopts = WriterOptions {
                compression,
                shard_size_bytes: 10_000,
                ..Default::default()
            };
            let mut w = DatasetWriter::create(&url, &opts, wopts).await.unwrap();
            let samples: Vec<_> = (0..7).map(sample).collect();
            for s in &samples {
                w.append(s).await.unwrap();
            }
            let m = w.finish(DatasetInfo::default()).await.unwrap();
            assert!(
                m.shards.len() >= 2,
                "expected several shards, got {}",
                m.shards.len()
            );
            assert_eq!(m.samples, 7);
            let ds = Dataset::open(&url, &opts).await.unwrap();
            assert_eq!(ds.manifest(), &m);
            let mut seen = 0;
            for (si, shard) in m.shards.iter().enumerate() {
                let index = ds.shard_index(si).await.unwrap();
                assert_eq!(index.samples.len() as u64, shard.samples);
                for j in 0..index.samples.len() {
                    let got = ds.fetch_sample(si, j).await.unwrap();
                    assert_eq!(got.jpeg, samples[seen].jpeg);
                    assert_eq!(got.tags, samples[seen].tags);
                    seen += 1;
                }
                assert!(ds.verify_shard(si).await.unwrap().is_ok());
            }
            assert_eq!(seen, 7);
        }
    }
}
