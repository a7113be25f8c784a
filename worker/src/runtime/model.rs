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
    weights_to_bytes_as(vs, None)
}

/// [`weights_to_bytes`] with every floating-point variable stored as `kind` (e.g. half
/// precision for a shipped model; loading converts back to the model's precision).
pub fn weights_to_bytes_as(
    vs: &nn::VarStore,
    kind: Option<tch::Kind>,
) -> Result<Vec<u8>, RuntimeError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("model.safetensors");
    let mut named: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| {
            let v = v.to_device(tch::Device::Cpu);
            match kind {
                Some(kind) if v.is_floating_point() => (k, v.to_kind(kind)),
                _ => (k, v),
            }
        })
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
    /// The config the model was built from: the checkpoint's own when it carries one.
    pub config: Config,
    /// The checkpoint the weights came from.
    pub checkpoint: crate::checkpoint::CheckpointRef,
    /// Its training state.
    pub state: crate::checkpoint::TrainState,
    /// The store holding it (evaluation results are written next to it).
    pub store: crate::checkpoint::CheckpointStore,
}

/// The environment variable naming the model used when none is given.
pub const MODEL_ENV: &str = "WORKER_MODEL";

/// The model `worker detect`, `eval` and `probe` use when given neither a checkpoint nor a
/// config: `$WORKER_MODEL`, else the model shipped in the repository (`models/default`).
pub fn default_model() -> String {
    match std::env::var(MODEL_ENV) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(
                || "models/default".into(),
                |repo| repo.join("models/default"),
            )
            .display()
            .to_string(),
    }
}

/// The config a checkpoint's model is built from: the TOML the checkpoint carries (checked
/// against its marker's digest), else `given` (checkpoints written before configs were
/// kept); with both, the checkpoint's own wins and a different `given` is reported.
fn model_config(
    carried: Option<&[u8]>,
    given: Option<&Config>,
    checkpoint: &crate::checkpoint::CheckpointRef,
) -> Result<Config, RuntimeError> {
    let Some(text) = carried else {
        return given.cloned().ok_or_else(|| {
            RuntimeError::MissingConfig(format!(
                "{} holds no config.toml (it was written before checkpoints kept their config): pass --config with the training config it was trained with",
                checkpoint.url
            ))
        });
    };
    let origin = format!("{}/{}", checkpoint.url, crate::checkpoint::CONFIG_FILE);
    let corrupt = |reason: String| crate::checkpoint::CheckpointError::Corrupt {
        url: origin.clone(),
        reason,
    };
    let text = std::str::from_utf8(text).map_err(|e| corrupt(format!("not UTF-8: {e}")))?;
    let own = Config::from_toml_str(text, &origin).map_err(|e| corrupt(e.to_string()))?;
    if own.digest.as_str() != checkpoint.marker.config_digest {
        return Err(corrupt(format!(
            "its digest {} differs from the marker's {}",
            own.digest.as_str(),
            checkpoint.marker.config_digest
        ))
        .into());
    }
    if let Some(given) = given.filter(|g| g.digest != own.digest) {
        tracing::warn!(
            checkpoint = %checkpoint.url,
            given = given.digest.as_str(),
            own = own.digest.as_str(),
            "the checkpoint was trained with another config than the one given: the model is built from its own"
        );
    }
    Ok(own)
}

/// The model of the checkpoint `reference`, on `device` (default: the config's
/// `train.device`): a checkpoint directory URL or path (its newest complete checkpoint) or
/// one checkpoint's own directory (`.../step-000000600`). The model is built from the
/// config the checkpoint carries, else from `given` ([`model_config`]); only the weights,
/// the training state and the config are read.
pub fn from_checkpoint(
    given: Option<&Config>,
    reference: &str,
    device: Option<tch::Device>,
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
    let ck = rt.block_on(checkpoints.load_model(&checkpoint))?;
    let config = model_config(ck.config.as_deref(), given, &checkpoint)?;
    let device = match device {
        Some(d) => d,
        None => torch_device(config.device)?,
    };
    // No pretrained initialisation: the checkpoint's weights replace every variable.
    tch::manual_seed(config.spec.data.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = JointModel::new(&vs.root(), &config.spec.model)?;
    weights_from_bytes(&vs, &ck.weights)?;
    Ok(LoadedModel {
        vs,
        model,
        config,
        checkpoint,
        state: ck.state,
        store: checkpoints,
    })
}
