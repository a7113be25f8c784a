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

#[cfg(test)]
mod tests {
    use super::*;
    use dataloader::order::Position;
    use kernels::config::{ModelConfig, Objective};
    use tch::{nn, Device};

    fn batch(texts: &[&str], rows: &[[u32; 4]]) -> Batch {
        Batch {
            index: 0,
            keys: texts.iter().map(|t| t.to_string()).collect(),
            positions: (0..texts.len() as u64).collect(),
            patch: 1,
            crops: 1,
            pixels: vec![0; texts.len() * 3],
            texts: texts.iter().map(|t| t.to_string()).collect(),
            input_ids: rows.iter().flatten().copied().collect(),
            attention_mask: rows.iter().flatten().map(|&i| u8::from(i != 0)).collect(),
            seq_len: 4,
            resume: Position {
                epoch: 0,
                consumed: 0,
            },
        }
    }

    #[test]
    fn each_distinct_text_is_encoded_once_and_rows_equal_a_direct_pass() {
        let cfg = ModelConfig::tiny(Objective::ImageText);
        let vs = nn::VarStore::new(Device::Cpu);
        // Drawing from the global generator while a seeded test draws would shift its draws.
        let model = {
            let _rng = crate::torch_rng_lock();
            JointModel::new(&vs.root(), &cfg).unwrap()
        };
        let a = [1, 5, 2, 0];
        let b = [1, 7, 9, 2];
        let first = batch(&["a", "b", "a"], &[a, b, a]);
        let mut cache = TextCache::new();
        let rows = cache.pooled(&model, &first, Device::Cpu).unwrap();
        assert_eq!(cache.counts(), (2, 1));
        let second = batch(&["b", "a"], &[b, a]);
        let again = cache.pooled(&model, &second, Device::Cpu).unwrap();
        assert_eq!(cache.counts(), (2, 3), "nothing new encoded");

        let (ids, mask) = tokens_to_tensors(&first.input_ids, &first.attention_mask, 4).unwrap();
        let direct = model
            .text
            .as_ref()
            .unwrap()
            .pooled(&ids, &mask, false)
            .unwrap();
        let diff = |x: &Tensor, y: &Tensor| f64::try_from((x - y).abs().max()).unwrap();
        assert!(diff(&rows, &direct) < 1e-6);
        assert!(diff(&again.get(0), &direct.get(1)) < 1e-6);
        assert!(diff(&again.get(1), &direct.get(0)) < 1e-6);
    }
}
