//! Loading weights by name from safetensors files (torchvision and Hugging Face checkpoints).
//!
//! Parameter paths in the model equal the checkpoint keys, so loading is a lookup: every
//! variable of the store under a given prefix must be present in the file, with the same
//! shape. Keys the model does not use (BERT's pooler, `num_batches_tracked`,
//! `position_ids`) are ignored.

use crate::error::KernelsError;
use std::collections::HashMap;
use std::path::Path;
use tch::{nn::VarStore, Tensor};

/// Copies the tensors of the safetensors file at `path` into the variables of `vs` whose
/// names start with `under` (`""` for all; otherwise `under` plus `.` is stripped before
/// the lookup). A key missing from the file is also tried with each of `alt_prefixes`
/// prepended (e.g. `"bert."` for checkpoints saved from `BertForPreTraining`).
///
/// Returns how many variables were loaded; fails naming the missing or mis-shaped ones.
pub fn load_safetensors(
    vs: &VarStore,
    path: &Path,
    under: &str,
    alt_prefixes: &[&str],
) -> Result<usize, KernelsError> {
    load_safetensors_where(vs, path, under, alt_prefixes, |_| true)
}

/// [`load_safetensors`] for the variables whose full name `wanted` accepts; the others
/// keep their values (e.g. a projection head a pretrained encoder file does not have).
pub fn load_safetensors_where(
    vs: &VarStore,
    path: &Path,
    under: &str,
    alt_prefixes: &[&str],
    wanted: impl Fn(&str) -> bool,
) -> Result<usize, KernelsError> {
    let named = Tensor::read_safetensors(path).map_err(|source| KernelsError::ReadWeights {
        path: path.to_path_buf(),
        source,
    })?;
    let file: HashMap<String, Tensor> = named.into_iter().collect();
    let mut missing = Vec::new();
    let mut loaded = 0;
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        if !wanted(&name) {
            continue;
        }
        let key = if under.is_empty() {
            name.as_str()
        } else {
            match name.strip_prefix(under).and_then(|k| k.strip_prefix('.')) {
                Some(k) => k,
                None => continue,
            }
        };
        let src = std::iter::once(key.to_string())
            .chain(alt_prefixes.iter().map(|p| format!("{p}{key}")))
            .find_map(|k| file.get(&k));
        let Some(src) = src else {
            missing.push(name.clone());
            continue;
        };
        if src.size() != var.size() {
            return Err(KernelsError::ShapeMismatch {
                path: path.to_path_buf(),
                name,
                found: src.size(),
                expected: var.size(),
            });
        }
        let mut var = var;
        tch::no_grad(|| -> Result<(), tch::TchError> {
            let src = src.f_to_kind(var.kind())?.f_to_device(var.device())?;
            var.f_copy_(&src)
        })?;
        loaded += 1;
    }
    if !missing.is_empty() {
        return Err(KernelsError::MissingWeights {
            path: path.to_path_buf(),
            count: missing.len(),
            examples: missing.into_iter().take(5).collect(),
        });
    }
    tracing::debug!(path = %path.display(), under, loaded, "loaded weights");
    Ok(loaded)
}
