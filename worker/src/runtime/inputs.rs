//! A batch as tensors on the training device ([`StepInputs`]: patches and texts, or two
//! crops per photo) and both sides' embeddings of it ([`embed_pair`]), for training,
//! evaluation and benchmarks alike.

use dataloader::stream::Batch;
use kernels::config::Objective;
use kernels::joint::JointModel;
use kernels::resnet::{patches_to_tensor, preprocess, NormMode};
use kernels::text::tokens_to_tensors;
use kernels::KernelsError;
use tch::{Device, Tensor};

/// The text side of an image-text batch.
#[derive(Debug)]
pub enum TextInput {
    /// Token ids and attention mask `[N, L]`: the whole text tower runs.
    Tokens {
        /// Token ids.
        ids: Tensor,
        /// Attention mask.
        mask: Tensor,
    },
    /// Pooled states of a frozen encoder `[N, H]` ([`super::text_cache`]): only the
    /// text head runs.
    Pooled(Tensor),
}

/// A batch as tensors on the training device.
#[derive(Debug)]
pub enum StepInputs {
    /// Patches `[N, 3, P, P]` (normalised) and their texts.
    ImageText {
        /// The patches.
        images: Tensor,
        /// The texts.
        text: TextInput,
    },
    /// Two crops of each photo, `[N, 3, P, P]` each.
    CropPairs {
        /// First crops.
        a: Tensor,
        /// Second crops.
        b: Tensor,
    },
}

impl StepInputs {
    /// Converts a pipeline batch for `objective` (CropCLR needs a stream with two crops
    /// per sample).
    pub fn from_batch(
        batch: &Batch,
        objective: Objective,
        device: Device,
    ) -> Result<Self, KernelsError> {
        let (n, side) = (batch.len() as i64, i64::from(batch.patch));
        let crops = i64::from(batch.crops);
        let pixels = patches_to_tensor(&batch.pixels, (n * crops) as usize, side as usize)?;
        // [N, crops, 3, P, P]: crop k of every sample.
        let all = preprocess(&pixels, device)?.view([n, crops, 3, side, side]);
        match objective {
            Objective::ImageText => {
                let (ids, mask) =
                    tokens_to_tensors(&batch.input_ids, &batch.attention_mask, batch.seq_len)?;
                Ok(StepInputs::ImageText {
                    images: all.select(1, 0),
                    text: TextInput::Tokens {
                        ids: ids.to_device(device),
                        mask: mask.to_device(device),
                    },
                })
            }
            Objective::CropClr if crops >= 2 => Ok(StepInputs::CropPairs {
                a: all.select(1, 0),
                b: all.select(1, 1),
            }),
            Objective::CropClr => Err(KernelsError::Input {
                what: "batch",
                reason: "CropCLR needs two crops per sample (stream crops_per_sample = 2)".into(),
            }),
        }
    }

    /// Replaces the texts' tokens by pooled states of a frozen encoder (no effect on crop
    /// pairs).
    pub fn set_pooled_texts(&mut self, pooled: Tensor) {
        if let StepInputs::ImageText { text, .. } = self {
            *text = TextInput::Pooled(pooled);
        }
    }

    /// The device the tensors are on.
    pub fn device(&self) -> Device {
        match self {
            StepInputs::ImageText { images, .. } => images.device(),
            StepInputs::CropPairs { a, .. } => a.device(),
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> i64 {
        match self {
            StepInputs::ImageText { images, .. } => images.size()[0],
            StepInputs::CropPairs { a, .. } => a.size()[0],
        }
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pairs `start..start + len`.
    pub fn slice(&self, start: i64, len: i64) -> StepInputs {
        let s = |t: &Tensor| t.narrow(0, start, len);
        match self {
            StepInputs::ImageText { images, text } => StepInputs::ImageText {
                images: s(images),
                text: match text {
                    TextInput::Tokens { ids, mask } => TextInput::Tokens {
                        ids: s(ids),
                        mask: s(mask),
                    },
                    TextInput::Pooled(p) => TextInput::Pooled(s(p)),
                },
            },
            StepInputs::CropPairs { a, b } => StepInputs::CropPairs { a: s(a), b: s(b) },
        }
    }
}

/// The two sides' L2-normalised embeddings of `inputs`, batch norms in mode `norm`
/// (training when not `Running`: batch statistics, dropout).
pub fn embed_pair(
    model: &JointModel,
    inputs: &StepInputs,
    norm: NormMode,
) -> Result<(Tensor, Tensor), KernelsError> {
    let train = !matches!(norm, NormMode::Running);
    match inputs {
        StepInputs::ImageText { images, text } => Ok((
            model.embed_images_with(images, norm)?,
            match text {
                TextInput::Tokens { ids, mask } => model.embed_texts(ids, mask, train)?,
                TextInput::Pooled(p) => model.embed_pooled_texts(p)?,
            },
        )),
        StepInputs::CropPairs { a, b } => {
            // One pass over both views, so batch-norm statistics cover both.
            let n = a.size()[0];
            let both = model.embed_images_with(&Tensor::cat(&[a, b], 0), norm)?;
            Ok((both.narrow(0, 0, n), both.narrow(0, n, n)))
        }
    }
}
