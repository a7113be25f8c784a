//! The data side of a run: the packed dataset, the tokenizer and the stream settings a
//! training config asks for, and the async runtime the stream's reader runs on.

use std::sync::Arc;

use dataloader::exif::TagList;
use dataloader::order::{Position, RankPlan, TailPolicy};
use dataloader::shard::Dataset;
use dataloader::stream::{BatchStream, StreamOptions};
use dataloader::tokenize::TextTokenizer;
use infra::store::StoreOptions;

use crate::config::TrainConfig;

use super::RuntimeError;

/// An opened dataset with what streaming it needs.
#[derive(Debug)]
pub struct DataSource {
    /// Runs the stream's reader (fetches); decoding has its own threads.
    pub runtime: tokio::runtime::Runtime,
    /// The packed dataset.
    pub dataset: Arc<Dataset>,
    /// The tokenizer, cutting at `data.max_text_tokens`.
    pub tokenizer: Arc<TextTokenizer>,
    /// Stream settings from the config (the rank plan, epoch 0, start 0, one crop).
    pub base: StreamOptions,
}

impl DataSource {
    /// Opens the dataset at `url` (usually `data.url`) with the `[data]` settings of `spec`,
    /// for one rank's share (`plan`) of each global batch.
    pub fn open(
        spec: &TrainConfig,
        url: &str,
        plan: RankPlan,
        store: &StoreOptions,
    ) -> Result<Self, RuntimeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let dataset = Arc::new(runtime.block_on(Dataset::open(url, store))?);
        let data = &spec.data;
        let tokenizer = TextTokenizer::discover(data.vocab_path.as_deref())
            .and_then(|t| t.with_max_len(data.max_text_tokens as usize))
            .map_err(|e| RuntimeError::Text(e.to_string()))?;
        let tags = match &data.tags_path {
            Some(p) => Some(TagList::load(p).map_err(|e| RuntimeError::Text(e.to_string()))?),
            None => None,
        };
        let batch = plan.global_batch();
        let mut base = StreamOptions::new(plan);
        base.seed = data.seed;
        base.patch = data.patch_px;
        base.ready_batches = data.prefetch_batches.max(1) as usize;
        base.prefetch = (batch * 2).max(16);
        if let Some(t) = data.decode_threads {
            base.decode_threads = t as usize;
        }
        base.fetch = data.fetch;
        base.request_cost = data.request_cost_kib << 10;
        base.text = data.text_format.clone();
        base.tags = tags;
        base.tail = TailPolicy::Drop;
        Ok(Self {
            runtime,
            dataset,
            tokenizer: Arc::new(tokenizer),
            base,
        })
    }

    /// Samples in one epoch.
    pub fn epoch_len(&self) -> u64 {
        self.dataset
            .manifest()
            .shards
            .iter()
            .map(|s| s.samples)
            .sum()
    }

    /// A stream from `position` with `crops` crops per sample, otherwise as `base` (after
    /// `adjust`).
    pub fn stream(
        &self,
        position: Position,
        crops: u32,
        adjust: impl FnOnce(&mut StreamOptions),
    ) -> Result<BatchStream, RuntimeError> {
        let mut opts = self.base.clone();
        opts.resume_from(position);
        opts.crops_per_sample = crops;
        adjust(&mut opts);
        Ok(BatchStream::start(
            self.runtime.handle(),
            Arc::clone(&self.dataset),
            Arc::clone(&self.tokenizer),
            opts,
        )?)
    }
}
