//! What a candidate folder holds (the version of its libtorch, whether it has CUDA), and
//! where a Python interpreter's torch package is, asked without importing torch.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A libtorch folder's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Its version, from `version.py` (a torch package) or `build-version` (an archive).
    pub version: String,
    /// Whether it carries `lib/libtorch_cuda.so`.
    pub cuda: bool,
}

/// The libtorch in `dir`, or why there is none usable.
pub fn probe_dir(dir: &Path) -> Result<Probe, String> {
    if !dir.is_dir() {
        return Err("missing".into());
    }
    if !dir.join("lib/libtorch_cpu.so").is_file() {
        return Err("no lib/libtorch_cpu.so in it".into());
    }
    let version = crate::version_of_dir(dir)
        .ok_or("neither version.py nor build-version says its version")?;
    Ok(Probe {
        version,
        cuda: dir.join("lib/libtorch_cuda.so").is_file(),
    })
}

/// The `torch` package folder of `python` (a path or a name looked up on the `PATH`), found
/// with `importlib.util.find_spec`, which does not import it. Its search path is the one
/// `import torch` would use (`PYTHONPATH` and user site-packages included, as clusters'
/// environment modules set them), less the current folder.
pub fn python_torch_dir(python: &Path) -> Result<PathBuf, String> {
    const ASK: &str = "import sys\n\
        sys.path = [p for p in sys.path if p not in ('', '.')]\n\
        import importlib.util as u\n\
        s = u.find_spec('torch')\n\
        print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let out = Command::new(python)
        .args(["-c", ASK])
        .output()
        .map_err(|e| format!("cannot run it ({e})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "it failed ({}): {}",
            out.status,
            err.lines().last().unwrap_or("")
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if dir.is_empty() {
        return Err("no torch package".into());
    }
    Ok(PathBuf::from(dir))
}
