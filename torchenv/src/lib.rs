//! `torchenv`: which libtorch a binary that links it (the `worker`, the GPU test programs)
//! runs on. Such a binary cannot start until the dynamic loader finds libtorch, and the
//! libtorch of the machine it was built on is rarely where it runs (a GPU node of a cluster
//! has its own PyTorch, no network, no Rust). The `torchenv` binary looks for it, in order:
//!
//! 1. an explicit setting: `--libtorch DIR` or the `LIBTORCH` environment variable (a torch
//!    package's folder, or an unpacked libtorch archive); when given it must match;
//! 2. the PyTorch of the `python3` on the `PATH` (its `torch/` folder, with the NVIDIA
//!    libraries beside it in `site-packages/nvidia`);
//! 3. the libtorch the build linked (what the binary's rpath names on the build machine);
//!
//! takes the first whose version is the one the workspace was built against, and starts the
//! program with that libtorch (and NCCL under the name `cudarc` loads) on the loader's path.
//! When none matches it says which it found and which it needs, before anything else runs.
//! [`check_loaded`] is the same check from inside a running program.

mod nccl;
mod probe;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub use probe::{probe_dir, python_torch_dir, Probe};

include!("version_text.rs");

/// The libtorch version the workspace was built against (`2.11.0+cu130`).
pub const BUILT_FOR: &str = env!("TORCHENV_BUILT_FOR");
/// The libtorch folder the workspace was built against (on the build machine).
pub const BUILD_LIBTORCH: &str = env!("TORCHENV_BUILD_LIBTORCH");
/// The environment variable that names a libtorch folder explicitly.
pub const LIBTORCH_ENV: &str = "LIBTORCH";

/// Where a candidate libtorch came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--libtorch` or `LIBTORCH` (the name of the setting).
    Setting(&'static str),
    /// The torch package of this Python interpreter.
    Python(PathBuf),
    /// The libtorch the build linked.
    Build,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Setting(name) => write!(f, "{name}"),
            Source::Python(python) => write!(f, "the PyTorch of {}", python.display()),
            Source::Build => write!(f, "the build's libtorch"),
        }
    }
}

/// One place libtorch was looked for, and what was found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub source: Source,
    /// The folder (holding `lib/libtorch_cpu.so`); `None` when the source named none
    /// (`python3` without a torch package, no setting).
    pub dir: Option<PathBuf>,
    /// What the folder holds, or why there is nothing usable.
    pub probe: Result<Probe, String>,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(dir) = &self.dir {
            write!(f, " ({})", dir.display())?;
        }
        match &self.probe {
            Ok(p) => write!(f, ": libtorch {}{}", p.version, cuda_note(p)),
            Err(why) => write!(f, ": {why}"),
        }
    }
}

impl Candidate {
    /// What `dir` holds, found through `source`.
    fn at(source: Source, dir: PathBuf) -> Self {
        let probe = probe_dir(&dir);
        Candidate {
            source,
            dir: Some(dir),
            probe,
        }
    }

    /// `source` named no folder, for the reason `why`.
    fn absent(source: Source, why: impl Into<String>) -> Self {
        Candidate {
            source,
            dir: None,
            probe: Err(why.into()),
        }
    }
}

fn cuda_note(p: &Probe) -> &'static str {
    if p.cuda {
        " with CUDA"
    } else {
        " (CPU only)"
    }
}

/// The libtorch chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libtorch {
    pub source: Source,
    pub dir: PathBuf,
    pub probe: Probe,
}

/// No usable libtorch.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error(
        "this program was built against libtorch {built_for} and needs that version at run \
         time; found:\n{}\nSet LIBTORCH (or --libtorch) to a libtorch {built_for} folder \
         (a torch package's folder or an unpacked libtorch archive), or make `python3` one \
         with torch=={base} installed",
        list(.candidates),
        base = base_version(.built_for)
    )]
    NoMatch {
        built_for: String,
        candidates: Vec<Candidate>,
    },
    #[error(
        "libtorch {found} is loaded (from {}) but this program was built against libtorch \
         {built_for}: start it through `torchenv` or point LD_LIBRARY_PATH at a libtorch \
         {built_for}",
        dir.display()
    )]
    WrongLoaded {
        found: String,
        dir: PathBuf,
        built_for: String,
    },
    #[error("could not give NCCL the name libnccl.so in {}: {source}", dir.display())]
    NcclLink {
        dir: PathBuf,
        source: std::io::Error,
    },
}

fn list(candidates: &[Candidate]) -> String {
    let lines: Vec<String> = candidates.iter().map(|c| format!("  {c}")).collect();
    lines.join("\n")
}

/// `2.11.0` of `2.11.0+cu130`.
pub fn base_version(version: &str) -> &str {
    version.split_once('+').map_or(version, |(base, _)| base)
}

/// Whether a libtorch of version `found` can run a program built against `built_for`: the
/// same release (the build variant after `+`, such as the CUDA version, may differ).
pub fn compatible(found: &str, built_for: &str) -> bool {
    base_version(found) == base_version(built_for)
}

/// The decision: an explicit setting, when present, must match (it is never passed over);
/// otherwise the first candidate whose libtorch is compatible with `built_for`.
pub fn choose(candidates: Vec<Candidate>, built_for: &str) -> Result<Libtorch, LocateError> {
    let explicit = matches!(
        candidates.first(),
        Some(Candidate {
            source: Source::Setting(_),
            dir: Some(_),
            ..
        })
    );
    let considered = if explicit { 1 } else { candidates.len() };
    let found = candidates[..considered]
        .iter()
        .find_map(|c| match (&c.dir, &c.probe) {
            (Some(dir), Ok(p)) if compatible(&p.version, built_for) => Some(Libtorch {
                source: c.source.clone(),
                dir: dir.clone(),
                probe: p.clone(),
            }),
            _ => None,
        });
    found.ok_or(LocateError::NoMatch {
        built_for: built_for.to_string(),
        candidates,
    })
}

/// Every candidate, in the order of the module documentation. `setting` is `--libtorch`
/// when given; `python` the interpreter to ask (normally `python3`, found on the `PATH`).
pub fn candidates(setting: Option<PathBuf>, python: &Path) -> Vec<Candidate> {
    let explicit = match setting {
        Some(dir) => Some(("--libtorch", dir)),
        None => std::env::var_os(LIBTORCH_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| (LIBTORCH_ENV, PathBuf::from(v))),
    };
    let mut out = vec![match explicit {
        Some((name, dir)) => Candidate::at(Source::Setting(name), dir),
        None => Candidate::absent(Source::Setting(LIBTORCH_ENV), "not set"),
    }];
    let source = Source::Python(python.to_path_buf());
    out.push(match python_torch_dir(python) {
        Ok(dir) => Candidate::at(source, dir),
        Err(why) => Candidate::absent(source, why),
    });
    if !BUILD_LIBTORCH.is_empty() {
        out.push(Candidate::at(Source::Build, PathBuf::from(BUILD_LIBTORCH)));
    }
    out
}

/// The environment a program needs to run on `lib`: its `lib/` folder, and NCCL's folder
/// under the name `cudarc` loads (a link made in a cache folder when the package has only
/// `libnccl.so.2`), first on `LD_LIBRARY_PATH`; `LIBTORCH` naming it, so the programs it
/// starts in turn use the same one.
pub fn environment(lib: &Libtorch) -> Result<Vec<(&'static str, OsString)>, LocateError> {
    let mut path = vec![lib.dir.join("lib")];
    if let Some(dir) = nccl::loadable_dir(&lib.dir)? {
        path.push(dir);
    }
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        path.extend(std::env::split_paths(&old));
    }
    let joined = std::env::join_paths(path).unwrap_or_default();
    Ok(vec![
        ("LD_LIBRARY_PATH", joined),
        (LIBTORCH_ENV, lib.dir.clone().into_os_string()),
    ])
}

/// The libtorch this process has loaded (from `/proc/self/maps`): its folder and version;
/// `None` when none is loaded or its version cannot be read.
pub fn loaded() -> Option<(PathBuf, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let so = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))?;
    let dir = Path::new(so).parent()?.parent()?.to_path_buf();
    let version = probe_dir(&dir).ok()?.version;
    Some((dir, version))
}

/// Refuses to go on when the libtorch this process has loaded is not the one it was built
/// against; returns it (folder, version) when known.
pub fn check_loaded() -> Result<Option<(PathBuf, String)>, LocateError> {
    match loaded() {
        Some((dir, found)) if !compatible(&found, BUILT_FOR) => Err(LocateError::WrongLoaded {
            found,
            dir,
            built_for: BUILT_FOR.to_string(),
        }),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests;
