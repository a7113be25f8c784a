//! What the tests of every crate share: what a test does when something it needs is
//! missing ([`skip`]: fail under `CI=true`, skip elsewhere), the project's Python with the
//! modules a reference needs ([`python_with`]), where the real camera photos are
//! ([`cameras_dir`], [`camera_photos`]), a packed dataset of them ([`packed_photos`]), and
//! the tiny training config the training tests start from ([`tiny_config`]), and a real
//! S3-compatible server ([`s3::S3Server`]). A dev-dependency only.

pub mod s3;

use std::path::{Path, PathBuf};

use dataloader::pack::{pack, Input, PackOptions};
use dataloader::shard::WriterOptions;

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lies in the repository")
        .to_path_buf()
}

/// A test cannot run because something is missing (`why`, with what to do): under CI
/// (`CI=true`) that fails the test, since CI must run every test; elsewhere it prints
/// `skipping: why` and the caller returns.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; CI requires it");
    }
    eprintln!("skipping: {why}");
}

/// The project's Python virtual environment (`.venv`, made by `scripts/setup.sh`).
pub fn venv_python() -> PathBuf {
    repo_root().join(".venv/bin/python")
}

/// The project's Python ([`venv_python`]) when it can import
/// `modules` (comma-separated, e.g. `"sklearn, numpy"`); else [`skip`].
pub fn python_with(modules: &str) -> Option<PathBuf> {
    let python = venv_python();
    let probe = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output();
    match probe {
        Ok(o) if o.status.success() => Some(python),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().last().unwrap_or_default();
            skip(&format!(
                "Python at {} cannot import {modules} ({last}): run scripts/setup.sh",
                python.display()
            ));
            None
        }
        Err(e) => {
            skip(&format!(
                "no Python at {} ({e}): run scripts/setup.sh",
                python.display()
            ));
            None
        }
    }
}

/// The real camera photos (`images/`, `exif_dumps/`, `manifest.csv`), if present.
///
/// `CAMERAS_DIR` overrides the default `../shared/data/cameras` beside the repository.
/// A missing folder is a [`skip`].
pub fn cameras_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CAMERAS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data/cameras"));
    if dir.join("images").is_dir() {
        return Some(dir);
    }
    skip(&format!(
        "real camera photos not found at {} (set CAMERAS_DIR)",
        dir.display()
    ));
    None
}

/// Every camera photo (`*.jpg` of `images/`), sorted by name (so neighbours are often the
/// same camera, and a stride crosses many makes and models); `None` to skip.
pub fn camera_photos() -> Option<Vec<PathBuf>> {
    let dir = cameras_dir()?.join("images");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    Some(files)
}

/// Every `stride`-th camera photo packed (from a file list) into `dir/data`, with
/// `writer`'s shard settings (default: the packer's); its URL, or `None` to skip.
pub fn packed_photos(dir: &Path, stride: usize, writer: Option<WriterOptions>) -> Option<String> {
    let photos = camera_photos()?;
    let list = dir.join("photos.txt");
    let lines: Vec<String> = photos
        .iter()
        .step_by(stride)
        .map(|p| p.display().to_string())
        .collect();
    std::fs::write(&list, lines.join("\n")).unwrap();
    let out = dir.join("data").display().to_string();
    let mut opts = PackOptions::new(&out);
    if let Some(writer) = writer {
        opts.writer = writer;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(pack(&Input::FileList(list), &opts, &|_| ()))
        .unwrap();
    Some(out)
}

/// The tiny training config (TOML) the training tests start from: a 4-block ResNet of
/// width 4 and a one-layer text tower of width 16, 64 px patches, global batch 8, `steps`
/// steps, a checkpoint every 2 (the last 3 kept) at `ckpt`, over the dataset at `data`.
/// Tests that need more change fields of the parsed config.
pub fn tiny_config(data: &str, ckpt: &Path, steps: u64) -> String {
    format!(
        r#"
[data]
url = "{data}"
seed = 3
patch_px = 64
prefetch_batches = 2
decode_threads = 1
max_text_tokens = 64
[model]
embed_dim = 16
objective = "image_text"
[model.image]
block = "basic"
layers = [1, 1, 1, 1]
width = 4
[model.text]
kind = "distil_bert"
hidden_size = 16
num_layers = 1
num_heads = 2
intermediate_size = 32
pooling = "masked_mean"
[model.temperature]
mode = "learnable"
init = 14.285714
max = 100.0
[optim]
lr = 1e-3
betas = [0.9, 0.999]
eps = 1e-8
weight_decay = 0.0
warmup_steps = 1
[train]
batch_size = 8
max_steps = {steps}
precision = "fp32"
device = "cpu"
[checkpoint]
url = "{ckpt}"
every_steps = 2
keep_last = 3
"#,
        ckpt = ckpt.display()
    )
}
