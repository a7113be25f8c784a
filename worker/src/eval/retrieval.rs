//! Zero-shot retrieval on a packed dataset (typically photos of camera models training
//! never saw): for every batch of `batch` photos, two crops per photo are embedded, and
//! - patch -> text: each first crop picks the EXIF text of the batch closest to it; it is
//!   right when the picked text equals its own photo's text (photos of one camera with one
//!   setting can share a text, so the chance level is the mean, over patches, of the
//!   fraction of the batch's texts equal to its own);
//! - patch -> patch: each first crop picks the closest second crop; right when it is a crop
//!   of the same photo (chance `1 / batch`). This needs no text tower, so it compares the
//!   image-text model with CropCLR.
//!
//! Crops come from the data pipeline's order, from `(seed, round, position)`; several
//! rounds give other crops of each photo.

use dataloader::order::{Position, RankPlan, TailPolicy};
use dataloader::stream::StreamError;
use kernels::joint::JointModel;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::runtime::data::DataSource;
use crate::runtime::inputs::StepInputs;
use crate::runtime::RuntimeError;

/// How to measure.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    /// Photos per batch (the candidates of each query).
    pub batch: usize,
    /// Passes over the dataset, each with other crops.
    pub rounds: u64,
    /// Seed of the order and crops.
    pub seed: u64,
}

/// Top-1 accuracy and its chance level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Accuracy {
    /// Queries answered.
    pub queries: u64,
    /// Fraction answered right.
    pub top1: f64,
    /// Expected fraction for a random pick.
    pub chance: f64,
}

/// The measurements.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetrievalReport {
    /// Batches evaluated.
    pub batches: u64,
    /// Patch -> EXIF text (absent for a model without a text tower).
    pub patch_to_text: Option<Accuracy>,
    /// Patch -> other crop of the same photo.
    pub patch_to_patch: Accuracy,
    /// Samples the pipeline skipped.
    pub skipped: u64,
}

#[derive(Default)]
struct Tally {
    queries: u64,
    right: f64,
    chance: f64,
}

impl Tally {
    fn accuracy(&self) -> Accuracy {
        let q = self.queries.max(1) as f64;
        Accuracy {
            queries: self.queries,
            top1: self.right / q,
            chance: self.chance / q,
        }
    }
}

/// Runs the retrieval measurements of `model` over `dataset`.
pub fn evaluate(
    model: &JointModel,
    device: tch::Device,
    data: &DataSource,
    opts: &RetrievalOptions,
) -> Result<RetrievalReport, RuntimeError> {
    let mut report = RetrievalReport::default();
    let (mut text, mut patch) = (Tally::default(), Tally::default());
    for round in 0..opts.rounds {
        let plan = RankPlan::new(opts.batch, 1, 0).map_err(StreamError::from)?;
        let start = Position {
            epoch: round,
            consumed: 0,
        };
        let mut stream = data.stream(start, 2, |o| {
            o.plan = plan;
            o.seed = opts.seed;
            o.tail = TailPolicy::Keep;
        })?;
        while let Some(batch) = stream.next_blocking() {
            let batch = batch?;
            let n = batch.len();
            if n < 2 {
                continue;
            }
            report.batches += 1;
            tch::no_grad(|| -> Result<(), RuntimeError> {
                let pairs =
                    StepInputs::from_batch(&batch, kernels::config::Objective::CropClr, device)?;
                let StepInputs::CropPairs { a, b } = pairs else {
                    unreachable!("CropClr inputs are crop pairs")
                };
                let ea = model.embed_images(&a, false);
                let eb = model.embed_images(&b, false);
                let picks = argmax_rows(&ea.matmul(&eb.tr()));
                for (i, &p) in picks.iter().enumerate() {
                    patch.queries += 1;
                    patch.right += f64::from(u8::from(p == i));
                    patch.chance += 1.0 / n as f64;
                }
                if model.text.is_some() {
                    let (ids, mask) = kernels::text::tokens_to_tensors(
                        &batch.input_ids,
                        &batch.attention_mask,
                        batch.seq_len,
                    )?;
                    let et = model.embed_texts(
                        &ids.to_device(device),
                        &mask.to_device(device),
                        false,
                    )?;
                    let picks = argmax_rows(&ea.matmul(&et.tr()));
                    for (i, &p) in picks.iter().enumerate() {
                        let same = batch.texts.iter().filter(|t| **t == batch.texts[i]).count();
                        text.queries += 1;
                        text.right += f64::from(u8::from(batch.texts[p] == batch.texts[i]));
                        text.chance += same as f64 / n as f64;
                    }
                }
                Ok(())
            })?;
        }
        report.skipped += stream.counters().skipped_total();
    }
    report.patch_to_patch = patch.accuracy();
    report.patch_to_text = model.text.is_some().then(|| text.accuracy());
    Ok(report)
}

fn argmax_rows(scores: &Tensor) -> Vec<usize> {
    let idx = scores
        .argmax(1, false)
        .to_kind(Kind::Int64)
        .to_device(tch::Device::Cpu);
    Vec::<i64>::try_from(&idx)
        .unwrap_or_default()
        .into_iter()
        .map(|i| i as usize)
        .collect()
}
