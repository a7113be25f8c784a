//! The model: image tower (ResNet), EXIF-text tower (BERT / DistilBERT), contrastive loss.
//!
//! Built on libtorch through `tch`. Each tower lives in its own module and names its
//! parameters exactly as the reference checkpoints do (torchvision for `resnet`, Hugging
//! Face for `bert` and `distilbert`), so real weights load by name (`weights`). `text`
//! adds the pooling and projection on top of a text encoder, `loss` the temperature and the
//! symmetric InfoNCE loss, and `joint` puts both towers together for the image-text
//! objective of "EXIF as Language" (and the CropCLR image-image baseline). `config` holds
//! the serde configuration and its validation. `autocast` gives bf16 autocast regions,
//! `sync_bn` synchronised batch norm and `grad_hooks` gradient-ready hooks (all C++ in
//! `csrc/`). The data pipeline (`dataloader`) does not depend on this crate;
//! `patches_to_tensor`/`preprocess` and `tokens_to_tensors` take its batch buffers.

#![warn(missing_docs)]

mod attention;
pub mod autocast;
pub mod bert;
pub mod config;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod distilbert;
pub mod error;
pub mod flops;
pub mod grad_hooks;
pub mod joint;
pub mod loss;
pub mod resnet;
mod scopes;
pub mod sync_bn;
pub mod text;
pub mod weights;

pub use config::{
    Block, ImageTowerConfig, ModelConfig, Objective, Pooling, Temperature, TextKind,
    TextTowerConfig,
};
pub use error::KernelsError;
pub use joint::JointModel;
pub use loss::{l2_normalize, symmetric_infonce, LogitScale};
pub use resnet::{patches_to_tensor, preprocess, ImageTower, CLIP_MEAN, CLIP_STD};
pub use text::{pool, tokens_to_tensors, TextTower};
pub use weights::load_safetensors;
