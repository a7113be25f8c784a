//! The config digest: SHA-256 of a canonical serialisation of the fields that change what
//! training computes, so that a run refuses to resume from a checkpoint written under
//! another configuration.
//!
//! Left out, because they change where or how fast training runs but not its result:
//! the whole `[checkpoint]`, `[logging]` and `[eval]` sections, `data.prefetch_batches`,
//! `data.decode_threads`, `train.micro_batch_size` (the feature cache method gives the
//! same gradients for any split of the batch), `train.overlap_grad_reduce` and the index
//! of a CUDA device (`train.device` enters only as `cpu` or `cuda`). Everything else enters, the dataset
//! URL, file paths and `[model_init]` included; `[model]` enters as the model code's
//! configuration serialises (defaults written out). The serialisation is JSON with object keys sorted and
//! numbers as serde_json writes them (shortest round-trip form), prefixed by a version
//! line; changing it changes every digest.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Device, TrainConfig};

/// Version line of the canonical serialisation.
const CANONICAL_VERSION: &str = "exif-train-config-digest v2\n";

/// The digest of a configuration's training semantics, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigDigest(pub String);

impl std::fmt::Display for ConfigDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ConfigDigest {
    /// The digest of `c` (see the module documentation for what it covers).
    pub fn of(c: &TrainConfig) -> ConfigDigest {
        let mut h = Sha256::new();
        h.update(CANONICAL_VERSION.as_bytes());
        h.update(canonical_json(c).as_bytes());
        ConfigDigest(hex::encode(h.finalize()))
    }

    /// The digest as a hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The canonical text the digest is taken of.
pub fn canonical_json(c: &TrainConfig) -> String {
    let mut v = serde_json::to_value(c).expect("a config always serialises to JSON");
    if let Value::Object(root) = &mut v {
        root.remove("checkpoint");
        root.remove("logging");
        root.remove("eval");
        if let Some(Value::Object(data)) = root.get_mut("data") {
            data.remove("prefetch_batches");
            data.remove("decode_threads");
            data.remove("fetch");
            data.remove("request_cost_kib");
        }
        if let Some(Value::Object(train)) = root.get_mut("train") {
            train.remove("micro_batch_size");
            train.remove("overlap_grad_reduce");
            let kind = match Device::parse(&c.train.device) {
                Ok(Device::Cpu) => "cpu".to_string(),
                Ok(Device::Cuda(_)) => "cuda".to_string(),
                Err(_) => c.train.device.clone(),
            };
            train.insert("device".into(), Value::String(kind));
        }
    }
    let mut out = String::new();
    write_sorted(&v, &mut out);
    out
}

/// Writes `v` as compact JSON with the keys of every object in sorted order.
fn write_sorted(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_sorted(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
