//! Pooled states of a frozen text encoder, computed once per distinct EXIF text.
//!
//! With `model_init.freeze_text`, the encoder's output for a text never changes, and a
//! dataset has far fewer distinct texts than samples (photos of one camera with the same
//! settings share one). The cache keeps each text's pooled state `[H]` (before the
//! trainable head), computes the texts of a batch it has not seen in one no-gradient,
//! eval-mode pass, and hands training the stacked rows, so a step costs the image tower
//! plus a linear head instead of a transformer over every token.

use std::collections::HashMap;

use dataloader::stream::Batch;
use kernels::joint::JointModel;
use kernels::text::tokens_to_tensors;
use kernels::KernelsError;
use tch::Tensor;

/// Pooled states by text.
#[derive(Debug, Default)]
pub struct TextCache {
    rows: HashMap<String, Tensor>,
    computed: u64,
    hits: u64,
}

impl TextCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct texts held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no text is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Texts encoded so far, and lookups answered from the cache.
    pub fn counts(&self) -> (u64, u64) {
        (self.computed, self.hits)
    }

    /// The pooled states `[N, H]` of the batch's texts, on `device`.
    pub fn pooled(
        &mut self,
        model: &JointModel,
        batch: &Batch,
        device: tch::Device,
    ) -> Result<Tensor, KernelsError> {
        let tower = model.text.as_ref().ok_or(KernelsError::Input {
            what: "batch",
            reason: "this model has no text tower (objective crop_clr)".into(),
        })?;
        let mut missing: Vec<usize> = Vec::new();
        for (i, text) in batch.texts.iter().enumerate() {
            if !self.rows.contains_key(text) && !missing.iter().any(|&j| batch.texts[j] == *text) {
                missing.push(i);
            }
        }
        if !missing.is_empty() {
            let (ids, mask) =
                tokens_to_tensors(&batch.input_ids, &batch.attention_mask, batch.seq_len)?;
            let rows = Tensor::from_slice(&missing.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let (ids, mask) = (
                ids.index_select(0, &rows).to_device(device),
                mask.index_select(0, &rows).to_device(device),
            );
            let pooled = tch::no_grad(|| tower.pooled(&ids, &mask, false))?;
            for (k, &i) in missing.iter().enumerate() {
                self.rows
                    .insert(batch.texts[i].clone(), pooled.get(k as i64));
            }
            self.computed += missing.len() as u64;
        }
        self.hits += (batch.len() - missing.len()) as u64;
        let rows: Vec<Tensor> = batch
            .texts
            .iter()
            .map(|t| self.rows[t].shallow_clone())
            .collect();
        Ok(Tensor::stack(&rows, 0))
    }
}
