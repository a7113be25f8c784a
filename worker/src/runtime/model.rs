//! Building the model a config describes on its device, and moving its weights in and out
//! of checkpoint bytes (safetensors).

use kernels::joint::JointModel;
use kernels::KernelsError;
use tch::nn;

use crate::config::{Config, Device};

use super::RuntimeError;

/// The libtorch device of a config's `train.device`, checked to exist.
pub fn torch_device(device: Device) -> Result<tch::Device, RuntimeError> {
    match device {
        Device::Cpu => Ok(tch::Device::Cpu),
        Device::Cuda(i) => {
            let count = tch::Cuda::device_count();
            if i64::from(i) >= count {
                let why = if cfg!(feature = "cuda") {
                    "check the NVIDIA driver (libcuda.so.1) is installed and the GPU is visible \
                     (nvidia-smi, CUDA_VISIBLE_DEVICES)"
                } else {
                    "this build uses the CPU libtorch: build with `--features cuda` for GPUs, \
                     or set train.device = \"cpu\""
                };
                return Err(RuntimeError::Device(format!(
                    "train.device asks for cuda:{i}, but libtorch sees {count} CUDA device(s): {why}"
                )));
            }
            let dev = tch::Device::Cuda(i as usize);
            // The first allocation creates the CUDA context: a GPU held by another process
            // (exclusive compute mode) or without memory left fails here, with a message.
            if let Err(e) = tch::Tensor::f_zeros([1], (tch::Kind::Float, dev)) {
                return Err(super::guard::torch_error(
                    dev,
                    "when first used (train.device)",
                    super::guard::tch_error_message(&e),
                ));
            }
            Ok(dev)
        }
    }
}

/// The model of `cfg` on `device`, initialised from `seed` (and the pretrained text weights
/// of `model_init`, frozen if asked), with its variable store.
pub fn build(
    cfg: &Config,
    device: tch::Device,
    seed: u64,
) -> Result<(nn::VarStore, JointModel), RuntimeError> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let model = JointModel::new(&vs.root(), &cfg.spec.model)?;
    let init = &cfg.spec.model_init;
    if let Some(path) = &init.text_weights_path {
        // The pooling head is not part of a pretrained encoder: it keeps its initialisation.
        let n = kernels::weights::load_safetensors_where(
            &vs,
            path,
            "text",
            &["bert.", "distilbert."],
            |name| !is_text_head(name),
        )?;
        tracing::info!(path = %path.display(), tensors = n, "loaded pretrained text tower");
    }
    if init.freeze_text {
        for (name, mut t) in vs.variables() {
            if name.starts_with("text.") && !is_text_head(&name) {
                let _ = t.requires_grad_(false);
            }
        }
    }
    Ok((vs, model))
}

fn is_text_head(name: &str) -> bool {
    name.starts_with("text.pool_norm.") || name.starts_with("text.proj.")
}

/// The model's variables (parameters and batch-norm statistics) as safetensors bytes.
pub fn weights_to_bytes(vs: &nn::VarStore) -> Result<Vec<u8>, RuntimeError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    let mut named: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (k, v.to_device(tch::Device::Cpu)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    tch::Tensor::write_safetensors(&named, &path).map_err(KernelsError::from)?;
    Ok(std::fs::read(&path)?)
}

/// Copies every variable of `vs` from safetensors `bytes` (all must be present).
pub fn weights_from_bytes(vs: &nn::VarStore, bytes: &[u8]) -> Result<usize, RuntimeError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, bytes)?;
    Ok(kernels::weights::load_safetensors(vs, &path, "", &[])?)
}

/// A model with a checkpoint's weights.
#[derive(Debug)]
pub struct LoadedModel {
    /// Its variables.
    pub vs: nn::VarStore,
    /// The model.
    pub model: JointModel,
    /// The checkpoint the weights came from.
    pub checkpoint: crate::checkpoint::CheckpointRef,
    /// The store holding it (evaluation results are written next to it).
    pub store: crate::checkpoint::CheckpointStore,
}

/// Builds `cfg`'s model on `device` with the weights of the checkpoint `reference`: a
/// checkpoint directory URL or path (its newest complete checkpoint) or one checkpoint's own
/// directory (`.../step-000000600`).
pub fn from_checkpoint(
    cfg: &Config,
    reference: &str,
    device: tch::Device,
    store: &infra::store::StoreOptions,
) -> Result<LoadedModel, RuntimeError> {
    use crate::checkpoint::CheckpointStore;
    let trimmed = reference.trim_end_matches('/');
    let (root, wanted) = match trimmed.rsplit_once('/') {
        Some((parent, last)) if last.starts_with("step-") => {
            let step = crate::checkpoint::parse_dir_name(last).ok_or_else(|| {
                crate::checkpoint::CheckpointError::NotFound {
                    url: reference.to_string(),
                }
            })?;
            (parent, Some(step))
        }
        _ => (trimmed, None),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let checkpoints = CheckpointStore::open(root, store)?;
    let all = rt.block_on(checkpoints.list())?;
    let found = match wanted {
        Some(step) => all.into_iter().find(|c| c.step == step),
        None => all.into_iter().last(),
    };
    let checkpoint = found.ok_or_else(|| crate::checkpoint::CheckpointError::NotFound {
        url: reference.to_string(),
    })?;
    let ck = rt.block_on(checkpoints.load(&checkpoint))?;
    let (vs, model) = build(cfg, device, cfg.spec.data.seed)?;
    weights_from_bytes(&vs, &ck.weights)?;
    Ok(LoadedModel {
        vs,
        model,
        checkpoint,
        store: checkpoints,
    })
}
