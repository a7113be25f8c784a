//! The model: image tower (ResNet), EXIF-text tower (DistilBERT / BERT), contrastive loss.
//!
//! Built on libtorch through `tch`. Parameter names follow the reference checkpoints
//! (torchvision, Hugging Face) so real weights load by name. Filled by the model work;
//! the data pipeline in `dataloader` does not depend on it.
