//! NCCL under the name `cudarc` loads. The `nvidia-nccl` wheels beside a torch package ship
//! only `libnccl.so.2`; `cudarc` opens `libnccl.so`. When the package has no such link (and
//! the node's site-packages are not ours to change) the link is made in a cache folder of
//! our own, one per NCCL folder.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::LocateError;

/// A folder from which `libnccl.so` loads the NCCL beside the torch package in `torch_dir`;
/// `None` when there is no NCCL there (a CPU-only install, a libtorch archive).
pub fn loadable_dir(torch_dir: &Path) -> Result<Option<PathBuf>, LocateError> {
    let nccl = torch_dir.join("../nvidia/nccl/lib");
    if nccl.join("libnccl.so").exists() {
        return Ok(Some(nccl));
    }
    let real = nccl.join("libnccl.so.2");
    if !real.is_file() {
        return Ok(None);
    }
    let real = real.canonicalize().unwrap_or(real);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    real.hash(&mut hasher);
    let name = format!("nccl-{:016x}", hasher.finish());
    let mut failed = None;
    for root in cache_roots() {
        let dir = root.join(&name);
        match link_in(&dir, &real) {
            Ok(()) => return Ok(Some(dir)),
            Err(source) => failed = Some(LocateError::NcclLink { dir, source }),
        }
    }
    Err(failed.expect("at least one cache folder"))
}

/// `dir/libnccl.so` -> `real`, made unless it is there already.
fn link_in(dir: &Path, real: &Path) -> std::io::Result<()> {
    let link = dir.join("libnccl.so");
    std::fs::create_dir_all(dir)?;
    match std::fs::read_link(&link) {
        Ok(to) if to == real => return Ok(()),
        Ok(_) => std::fs::remove_file(&link)?,
        Err(_) => {}
    }
    match std::os::unix::fs::symlink(real, &link) {
        // Another process made it at the same moment.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// `$XDG_CACHE_HOME/torchenv` (else `~/.cache/torchenv`), then the temporary folder's, for
/// nodes whose home is read-only.
fn cache_roots() -> Vec<PathBuf> {
    let home_cache = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"));
    let user = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or(home_cache);
    user.into_iter()
        .chain([std::env::temp_dir()])
        .map(|root| root.join("torchenv"))
        .collect()
}
