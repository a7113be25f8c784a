//! A batch as tensors on the training device ([`StepInputs`]: patches and texts, two crops
//! per photo, or both) and the embeddings of its sides ([`embed_sides`]), for training,
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
    /// Two crops of each photo and its text (both objectives at once).
    CropsAndText {
        /// First crops.
        a: Tensor,
        /// Second crops.
        b: Tensor,
        /// The texts.
        text: TextInput,
    },
}

impl StepInputs {
    /// Converts a pipeline batch for `objective` (CropCLR and both objectives need a
    /// stream with two crops per sample: [`Objective::crops_per_sample`]).
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
        if crops < i64::from(objective.crops_per_sample()) {
            return Err(KernelsError::Input {
                what: "batch",
                reason: format!(
                    "objective {objective:?} needs {} crops per sample (stream crops_per_sample), the batch has {crops}",
                    objective.crops_per_sample()
                ),
            });
        }
        let text = || -> Result<TextInput, KernelsError> {
            let (ids, mask) =
                tokens_to_tensors(&batch.input_ids, &batch.attention_mask, batch.seq_len)?;
            Ok(TextInput::Tokens {
                ids: ids.to_device(device),
                mask: mask.to_device(device),
            })
        };
        Ok(match objective {
            Objective::ImageText => StepInputs::ImageText {
                images: all.select(1, 0),
                text: text()?,
            },
            Objective::CropClr => StepInputs::CropPairs {
                a: all.select(1, 0),
                b: all.select(1, 1),
            },
            Objective::ImageTextCrop => StepInputs::CropsAndText {
                a: all.select(1, 0),
                b: all.select(1, 1),
                text: text()?,
            },
        })
    }

    /// Replaces the texts' tokens by pooled states of a frozen encoder (no effect on crop
    /// pairs).
    pub fn set_pooled_texts(&mut self, pooled: Tensor) {
        match self {
            StepInputs::ImageText { text, .. } | StepInputs::CropsAndText { text, .. } => {
                *text = TextInput::Pooled(pooled);
            }
            StepInputs::CropPairs { .. } => {}
        }
    }

    /// The device the tensors are on.
    pub fn device(&self) -> Device {
        match self {
            StepInputs::ImageText { images, .. } => images.device(),
            StepInputs::CropPairs { a, .. } | StepInputs::CropsAndText { a, .. } => a.device(),
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> i64 {
        match self {
            StepInputs::ImageText { images, .. } => images.size()[0],
            StepInputs::CropPairs { a, .. } | StepInputs::CropsAndText { a, .. } => a.size()[0],
        }
    }

    /// How many embedding sides the inputs have ([`embed_sides`]).
    pub fn sides(&self) -> usize {
        match self {
            StepInputs::ImageText { .. } | StepInputs::CropPairs { .. } => 2,
            StepInputs::CropsAndText { .. } => 3,
        }
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pairs `start..start + len`.
    pub fn slice(&self, start: i64, len: i64) -> StepInputs {
        let s = |t: &Tensor| t.narrow(0, start, len);
        let text = |text: &TextInput| match text {
            TextInput::Tokens { ids, mask } => TextInput::Tokens {
                ids: s(ids),
                mask: s(mask),
            },
            TextInput::Pooled(p) => TextInput::Pooled(s(p)),
        };
        match self {
            StepInputs::ImageText { images, text: t } => StepInputs::ImageText {
                images: s(images),
                text: text(t),
            },
            StepInputs::CropPairs { a, b } => StepInputs::CropPairs { a: s(a), b: s(b) },
            StepInputs::CropsAndText { a, b, text: t } => StepInputs::CropsAndText {
                a: s(a),
                b: s(b),
                text: text(t),
            },
        }
    }
}

/// The L2-normalised embeddings of every side of `inputs` (patches and texts; two crops;
/// two crops and texts), batch norms in mode `norm` (training when not `Running`: batch
/// statistics, dropout). Two crops go through the image tower in one pass, so batch-norm
/// statistics cover both.
pub fn embed_sides(
    model: &JointModel,
    inputs: &StepInputs,
    norm: NormMode,
) -> Result<Vec<Tensor>, KernelsError> {
    let train = !matches!(norm, NormMode::Running);
    let texts = |text: &TextInput| match text {
        TextInput::Tokens { ids, mask } => model.embed_texts(ids, mask, train),
        TextInput::Pooled(p) => model.embed_pooled_texts(p),
    };
    let crops = |a: &Tensor, b: &Tensor| -> Result<Vec<Tensor>, KernelsError> {
        let n = a.size()[0];
        let both = model.embed_images_with(&Tensor::cat(&[a, b], 0), norm)?;
        Ok(vec![both.narrow(0, 0, n), both.narrow(0, n, n)])
    };
    match inputs {
        StepInputs::ImageText { images, text } => {
            Ok(vec![model.embed_images_with(images, norm)?, texts(text)?])
        }
        StepInputs::CropPairs { a, b } => crops(a, b),
        StepInputs::CropsAndText { a, b, text } => {
            let mut sides = crops(a, b)?;
            sides.push(texts(text)?);
            Ok(sides)
        }
    }
}
