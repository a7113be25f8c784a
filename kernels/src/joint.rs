//! The joint model: image tower, text tower and temperature, and its two objectives.
//!
//! "EXIF as Language: Learning Cross-Modal Associations Between Images and Camera Metadata"
//! (Zheng, Owens et al., CVPR 2023, <https://arxiv.org/abs/2301.04647>): an image patch and
//! its photo's EXIF text are a positive pair under the CLIP loss (`ImageText`). The CropCLR
//! baseline of the same paper contrasts two crops of one photo instead (`CropClr`, image
//! tower only, same loss on the two views' embeddings).
//!
//! Parameter layout: `image.*` (torchvision names + `image.proj`), `text.*` (Hugging Face
//! names + `text.pool_norm`, `text.proj`), `logit_scale` when learnable.

use crate::config::{ModelConfig, Objective};
use crate::error::KernelsError;
use crate::loss::{l2_normalize, symmetric_infonce, LogitScale};
use crate::resnet::{ImageTower, NormMode};
use crate::text::TextTower;
use tch::nn;
use tch::Tensor;

/// Both towers and the logit scale.
#[derive(Debug)]
pub struct JointModel {
    /// The image tower (`image.*`).
    pub image: ImageTower,
    /// The text tower (`text.*`); absent for CropCLR.
    pub text: Option<TextTower>,
    /// The temperature.
    pub logit_scale: LogitScale,
    objective: Objective,
}

impl JointModel {
    /// Validates `cfg` and builds the model under `p`.
    pub fn new(p: &nn::Path, cfg: &ModelConfig) -> Result<Self, KernelsError> {
        cfg.validate()?;
        let image = ImageTower::new(&(p / "image"), &cfg.image, cfg.embed_dim);
        let text = cfg
            .objective
            .uses_text()
            .then(|| TextTower::new(&(p / "text"), &cfg.text, cfg.embed_dim));
        Ok(Self {
            image,
            text,
            logit_scale: LogitScale::new(p, cfg.temperature),
            objective: cfg.objective,
        })
    }

    /// The objective this model was built for.
    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// L2-normalised image embeddings `[N, D]` of normalised NCHW patches.
    pub fn embed_images(&self, images: &Tensor, train: bool) -> Tensor {
        l2_normalize(&self.image.forward_t(images, train))
    }

    /// [`Self::embed_images`] with the batch norms in mode `norm` (e.g. synchronised over
    /// the ranks of a data-parallel job).
    pub fn embed_images_with(
        &self,
        images: &Tensor,
        norm: NormMode,
    ) -> Result<Tensor, KernelsError> {
        Ok(l2_normalize(&self.image.forward(images, norm)?))
    }

    /// L2-normalised text embeddings `[N, D]` (dropout, if configured, when `train`).
    pub fn embed_texts(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor, KernelsError> {
        Ok(l2_normalize(&self.text_tower()?.forward(
            input_ids,
            attention_mask,
            train,
        )?))
    }

    /// L2-normalised text embeddings `[N, D]` from pooled encoder states `[N, H]`
    /// ([`TextTower::pooled`]): only the text head runs.
    pub fn embed_pooled_texts(&self, pooled: &Tensor) -> Result<Tensor, KernelsError> {
        Ok(l2_normalize(&self.text_tower()?.head(pooled)))
    }

    fn text_tower(&self) -> Result<&TextTower, KernelsError> {
        self.text.as_ref().ok_or(KernelsError::Input {
            what: "input_ids",
            reason: "this model has no text tower (objective crop_clr)".into(),
        })
    }

    /// Image-text loss of a batch of patches and their EXIF texts (row i with row i).
    pub fn image_text_loss(
        &self,
        images: &Tensor,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Tensor, KernelsError> {
        let img = self.embed_images(images, train);
        let txt = self.embed_texts(input_ids, attention_mask, train)?;
        check_pairs(&img, &txt)?;
        Ok(symmetric_infonce(&img, &txt, &self.logit_scale.value()))
    }

    /// CropCLR loss: `view_a[i]` and `view_b[i]` are two crops of photo i. Both views go
    /// through the tower as one batch, so batch-norm statistics cover both.
    pub fn crop_clr_loss(
        &self,
        view_a: &Tensor,
        view_b: &Tensor,
        train: bool,
    ) -> Result<Tensor, KernelsError> {
        if view_a.size() != view_b.size() {
            return Err(KernelsError::Input {
                what: "view_b",
                reason: format!(
                    "shape {:?} differs from view_a {:?}",
                    view_b.size(),
                    view_a.size()
                ),
            });
        }
        let n = view_a.size()[0];
        let both = self.embed_images(&Tensor::cat(&[view_a, view_b], 0), train);
        let (a, b) = (both.narrow(0, 0, n), both.narrow(0, n, n));
        Ok(symmetric_infonce(&a, &b, &self.logit_scale.value()))
    }
}

fn check_pairs(img: &Tensor, txt: &Tensor) -> Result<(), KernelsError> {
    if img.size() != txt.size() {
        return Err(KernelsError::Input {
            what: "input_ids",
            reason: format!(
                "{:?} text embeddings for {:?} image embeddings; one text per patch",
                txt.size(),
                img.size()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use tch::{Device, Kind};

    fn pixels(n: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let t = Tensor::randint(256, [n, 32, 32, 3], (Kind::Uint8, Device::Cpu));
        crate::resnet::preprocess(&t, Device::Cpu).unwrap()
    }

    #[test]
    fn image_text_loss_reaches_both_towers_and_the_temperature() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = JointModel::new(&vs.root(), &ModelConfig::tiny(Objective::ImageText)).unwrap();
        let ids = Tensor::from_slice(&[1i64, 5, 2, 1, 7, 2, 1, 9, 0]).view([3, 3]);
        let mask = ids.ne(0).to_kind(Kind::Int64);
        let loss = model
            .image_text_loss(&pixels(3, 0), &ids, &mask, true)
            .unwrap();
        loss.backward();
        let vars = vs.variables();
        for name in [
            "image.layer1.0.conv1.weight",
            "image.proj.weight",
            "text.transformer.layer.0.attention.q_lin.weight",
            "text.proj.weight",
            "logit_scale",
        ] {
            let g = vars[name].grad();
            assert!(
                g.defined() && g.abs().sum(Kind::Double).double_value(&[]) > 0.0,
                "{name}"
            );
        }
        let wrong = model.image_text_loss(&pixels(2, 1), &ids, &mask, true);
        assert!(wrong.is_err(), "2 patches with 3 texts");
    }

    #[test]
    fn crop_clr_has_no_text_tower_and_trains_the_image_tower() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = JointModel::new(&vs.root(), &ModelConfig::tiny(Objective::CropClr)).unwrap();
        assert!(model.text.is_none());
        assert!(!vs.variables().keys().any(|k| k.starts_with("text.")));
        let loss = model
            .crop_clr_loss(&pixels(4, 2), &pixels(4, 3), true)
            .unwrap();
        loss.backward();
        let g = vs.variables()["image.conv1.weight"].grad();
        assert!(g.abs().sum(Kind::Double).double_value(&[]) > 0.0);
        assert!(model
            .crop_clr_loss(&pixels(4, 2), &pixels(3, 3), true)
            .is_err());
        let ids = Tensor::ones([1, 2], (Kind::Int64, Device::Cpu));
        assert!(model.embed_texts(&ids, &ids, false).is_err());
    }

    #[test]
    fn an_invalid_config_is_refused_before_building() {
        let mut cfg = ModelConfig::tiny(Objective::ImageText);
        cfg.text.num_heads = 3;
        let vs = nn::VarStore::new(Device::Cpu);
        let err = JointModel::new(&vs.root(), &cfg).unwrap_err();
        assert!(err.to_string().contains("text.num_heads"), "{err}");
        assert!(vs.variables().is_empty());
    }
}
