//! Text tower: a transformer encoder (BERT or DistilBERT) and the pooling that turns its
//! token states into one EXIF-text embedding.
//!
//! Pooling follows the two sources the method names (see `Pooling`): the paper's
//! end-of-sequence token with a layer norm (`pool_norm`) and a linear projection (`proj`)
//! into the joint space, or the reference code's attention-masked mean of the last hidden
//! states with no projection (as sentence-transformers pools all-MiniLM-L6-v2). Encoder
//! parameters sit directly under the tower's path with Hugging Face names, so a `BertModel`
//! or `DistilBertModel` checkpoint loads into it by name.

use crate::bert::Bert;
use crate::config::{Pooling, TextKind, TextTowerConfig};
use crate::distilbert::DistilBert;
use crate::error::KernelsError;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The encoder kinds.
#[derive(Debug)]
pub enum Encoder {
    /// BERT.
    Bert(Bert),
    /// DistilBERT.
    DistilBert(DistilBert),
}

/// Encoder, pooling and (for token pooling) `pool_norm` + `proj`.
#[derive(Debug)]
pub struct TextTower {
    encoder: Encoder,
    pooling: Pooling,
    head: Option<(nn::LayerNorm, nn::Linear)>,
    vocab_size: i64,
    max_len: i64,
}

impl TextTower {
    /// Builds the tower under `p`; the projection (if the pooling has one) maps the hidden
    /// size to `embed_dim`. The config must have been validated.
    pub fn new(p: &nn::Path, cfg: &TextTowerConfig, embed_dim: i64) -> Self {
        let encoder = match cfg.kind {
            TextKind::Bert => Encoder::Bert(Bert::new(p, cfg)),
            TextKind::DistilBert => Encoder::DistilBert(DistilBert::new(p, cfg)),
        };
        let head = cfg.pooling.projects().then(|| {
            let h = cfg.hidden_size;
            (
                nn::layer_norm(p / "pool_norm", vec![h], Default::default()),
                nn::linear(p / "proj", h, embed_dim, Default::default()),
            )
        });
        Self {
            encoder,
            pooling: cfg.pooling,
            head,
            vocab_size: cfg.vocab_size,
            max_len: cfg.max_position_embeddings,
        }
    }

    /// Last hidden states `[N, L, H]` of token ids `[N, L]` (int64) and attention mask
    /// `[N, L]` (1 = token, 0 = padding); checks ids and length before running. Dropout
    /// (if configured) only when `train`.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor, KernelsError> {
        let size = input_ids.size();
        if size.len() != 2 || attention_mask.size() != size {
            return Err(KernelsError::Input {
                what: "input_ids",
                reason: format!(
                    "expected [N, L] ids and a mask of the same shape, got {size:?} and {:?}",
                    attention_mask.size()
                ),
            });
        }
        if size[1] > self.max_len {
            return Err(KernelsError::Input {
                what: "input_ids",
                reason: format!(
                    "{} tokens, the tower takes at most {}",
                    size[1], self.max_len
                ),
            });
        }
        if input_ids.numel() > 0 {
            let (lo, hi) = (
                input_ids.min().int64_value(&[]),
                input_ids.max().int64_value(&[]),
            );
            if lo < 0 || hi >= self.vocab_size {
                return Err(KernelsError::Input {
                    what: "input_ids",
                    reason: format!(
                        "ids in [{lo}, {hi}], the vocabulary has {} tokens",
                        self.vocab_size
                    ),
                });
            }
        }
        let ids = input_ids.to_kind(Kind::Int64);
        Ok(match &self.encoder {
            Encoder::Bert(m) => m.forward_t(&ids, attention_mask, train),
            Encoder::DistilBert(m) => m.forward_t(&ids, attention_mask, train),
        })
    }

    /// Pooled (and, for token pooling, normalised and projected) embedding `[N, D]`, not
    /// L2-normalised.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor, KernelsError> {
        Ok(self.head(&self.pooled(input_ids, attention_mask, train)?))
    }

    /// The part after pooling: `pool_norm` + `proj` for token pooling, nothing for the
    /// masked mean. With a frozen encoder, pooled states can be computed once per text and
    /// only this part runs in training.
    pub fn head(&self, pooled: &Tensor) -> Tensor {
        match &self.head {
            Some((norm, proj)) => proj.forward(&norm.forward(pooled)),
            None => pooled.shallow_clone(),
        }
    }

    /// Pooled encoder states `[N, H]` before the head.
    pub fn pooled(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor, KernelsError> {
        let hidden = self.hidden_states(input_ids, attention_mask, train)?;
        pool(&hidden, attention_mask, self.pooling)
    }
}

/// Pools `[N, L, H]` states to `[N, H]`: the first token, the last real token (mask sum
/// minus one), or the masked mean (sum over tokens / max(token count, 1e-9)).
pub fn pool(
    hidden: &Tensor,
    attention_mask: &Tensor,
    pooling: Pooling,
) -> Result<Tensor, KernelsError> {
    let size = hidden.size();
    let (n, l, h) = match size[..] {
        [n, l, h] => (n, l, h),
        _ => {
            return Err(KernelsError::Input {
                what: "hidden",
                reason: format!("expected [N, L, H] states, got {size:?}"),
            })
        }
    };
    if l == 0 {
        return Err(KernelsError::Input {
            what: "input_ids",
            reason: "empty token rows: every text has at least [CLS] and [SEP]".into(),
        });
    }
    if attention_mask.size() != [n, l] {
        return Err(KernelsError::Input {
            what: "attention_mask",
            reason: format!(
                "shape {:?} does not match hidden states {size:?}",
                attention_mask.size()
            ),
        });
    }
    Ok(match pooling {
        Pooling::Cls => hidden.select(1, 0),
        Pooling::EndToken => {
            let last = (attention_mask
                .to_kind(Kind::Int64)
                .sum_dim_intlist(1, false, Kind::Int64)
                - 1)
            .clamp_min(0);
            let index = last.view([n, 1, 1]).expand([n, 1, h], false);
            hidden.gather(1, &index, false).squeeze_dim(1)
        }
        Pooling::MaskedMean => {
            let m = attention_mask.to_kind(hidden.kind()).unsqueeze(-1);
            let sum = (hidden * &m).sum_dim_intlist(1, false, hidden.kind());
            sum / m.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1e-9)
        }
    })
}

/// Wraps the data pipeline's padded token rows (`n x seq_len` ids and 0/1 mask) in int64
/// tensors `[n, seq_len]`.
pub fn tokens_to_tensors(
    input_ids: &[u32],
    attention_mask: &[u8],
    seq_len: usize,
) -> Result<(Tensor, Tensor), KernelsError> {
    if seq_len == 0
        || !input_ids.len().is_multiple_of(seq_len)
        || attention_mask.len() != input_ids.len()
    {
        return Err(KernelsError::Input {
            what: "input_ids",
            reason: format!(
                "{} ids and {} mask values do not form rows of {seq_len}",
                input_ids.len(),
                attention_mask.len()
            ),
        });
    }
    let n = (input_ids.len() / seq_len) as i64;
    let ids: Vec<i64> = input_ids.iter().map(|&i| i64::from(i)).collect();
    let mask: Vec<i64> = attention_mask.iter().map(|&m| i64::from(m)).collect();
    Ok((
        Tensor::from_slice(&ids).view([n, seq_len as i64]),
        Tensor::from_slice(&mask).view([n, seq_len as i64]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn hidden_and_mask() -> (Tensor, Tensor) {
        // hidden[n, l, :] = [10 n + l, -(10 n + l)]
        let v: Vec<f32> = (0..2)
            .flat_map(|n| (0..4).flat_map(move |l| [(10 * n + l) as f32, -((10 * n + l) as f32)]))
            .collect();
        let hidden = Tensor::from_slice(&v).view([2, 4, 2]);
        let mask = Tensor::from_slice(&[1i64, 1, 1, 0, 1, 1, 0, 0]).view([2, 4]);
        (hidden, mask)
    }

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        Vec::<Vec<f32>>::try_from(t).unwrap()
    }

    #[test]
    fn end_token_is_the_last_real_token_and_cls_the_first() {
        let (h, m) = hidden_and_mask();
        assert_eq!(
            rows(&pool(&h, &m, Pooling::EndToken).unwrap()),
            [[2.0, -2.0], [11.0, -11.0]]
        );
        assert_eq!(
            rows(&pool(&h, &m, Pooling::Cls).unwrap()),
            [[0.0, 0.0], [10.0, -10.0]]
        );
    }

    #[test]
    fn masked_mean_ignores_padding() {
        let (h, m) = hidden_and_mask();
        assert_eq!(
            rows(&pool(&h, &m, Pooling::MaskedMean).unwrap()),
            [[1.0, -1.0], [10.5, -10.5]]
        );
    }

    #[test]
    fn token_rows_from_the_pipeline_and_bad_ids_are_errors_not_panics() {
        let (ids, mask) =
            tokens_to_tensors(&[101, 7, 102, 101, 102, 0], &[1, 1, 1, 1, 1, 0], 3).unwrap();
        assert_eq!(ids.size(), [2, 3]);
        assert_eq!(mask.int64_value(&[1, 2]), 0);
        assert!(tokens_to_tensors(&[1, 2, 3], &[1, 1], 3).is_err());

        let mut cfg = TextTowerConfig::minilm_l6(Pooling::MaskedMean);
        cfg.vocab_size = 100;
        cfg.num_layers = 1;
        let vs = nn::VarStore::new(Device::Cpu);
        let tower = TextTower::new(&vs.root(), &cfg, 384);
        let err = tower.forward(&ids, &mask, false).unwrap_err().to_string();
        assert!(err.contains("input_ids") && err.contains("100"), "{err}");
        let long = Tensor::zeros([1, 513], (Kind::Int64, Device::Cpu));
        assert!(tower.forward(&long, &long.ones_like(), false).is_err());
    }

    #[test]
    fn dropout_acts_only_in_training_and_only_when_configured() {
        for kind in [TextKind::Bert, TextKind::DistilBert] {
            let mut cfg = TextTowerConfig::minilm_l6(Pooling::MaskedMean);
            (cfg.kind, cfg.vocab_size, cfg.hidden_size) = (kind, 50, 16);
            (cfg.num_layers, cfg.num_heads, cfg.intermediate_size) = (2, 2, 32);
            cfg.dropout = 0.5;
            let vs = nn::VarStore::new(Device::Cpu);
            let tower = TextTower::new(&vs.root(), &cfg, 16);
            cfg.dropout = 0.0;
            let mut same = nn::VarStore::new(Device::Cpu);
            let plain = TextTower::new(&same.root(), &cfg, 16);
            same.copy(&vs).unwrap();
            let ids = Tensor::from_slice(&[1i64, 5, 7, 2, 1, 9, 2, 0]).view([2, 4]);
            let mask = ids.ne(0).to_kind(Kind::Int64);
            let run = |t: &TextTower, train: bool| t.forward(&ids, &mask, train).unwrap();
            let diff = |a: &Tensor, b: &Tensor| f64::try_from((a - b).abs().max()).unwrap();
            assert_eq!(
                diff(&run(&tower, false), &run(&plain, false)),
                0.0,
                "{kind:?}"
            );
            assert_eq!(
                diff(&run(&plain, true), &run(&plain, false)),
                0.0,
                "{kind:?}"
            );
            assert!(
                diff(&run(&tower, true), &run(&tower, false)) > 1e-3,
                "{kind:?}"
            );
        }
    }
}
