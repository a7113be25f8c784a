//! `worker bench detect`: the time of everything after the embeddings (affinity, scores,
//! voting, mean shift, normalised cuts, maps and masks at the photo's size) on synthetic
//! embeddings of a photo with a pasted block, and the reference code's algorithm in
//! Python/numpy (`tests/python/splice_localize_ref.py`) on the same embeddings.

use std::path::Path;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::analysis::{analyse, AnalysisParams};
use super::grid::PatchGrid;
use super::output::{map_u16, mask_pixels};
use super::DetectError;

/// L2-normalised embeddings `[N, dim]` of `grid`'s patches for a photo whose middle third
/// (both axes) came from another camera: two directions plus noise, from `seed`.
pub fn synthetic_embeddings(grid: &PatchGrid, dim: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    let (host, other) = (Tensor::randn([dim], opts), Tensor::randn([dim], opts));
    let (h3, w3) = (grid.height / 3, grid.width / 3);
    let rows: Vec<Tensor> = (0..grid.len())
        .map(|i| {
            let (y, x) = grid.origin(i);
            let spliced = (h3..2 * h3).contains(&y) && (w3..2 * w3).contains(&x);
            let base = if spliced { &other } else { &host };
            base + Tensor::randn([dim], opts) * 0.5
        })
        .collect();
    let e = Tensor::stack(&rows, 0);
    &e / e.norm_scalaropt_dim(2, [1], true)
}

/// Seconds per run of the analysis and the photo-sized outputs, `rounds` times.
pub fn time_analysis(
    embeddings: &Tensor,
    grid: &PatchGrid,
    params: &AnalysisParams,
    rounds: usize,
) -> Result<Vec<f64>, DetectError> {
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let a = analyse(embeddings, grid, params)?;
        let map = map_u16(&a);
        let mask = mask_pixels(&a, &a.mean_shift_mask);
        std::hint::black_box((map, mask));
        out.push(t.elapsed().as_secs_f64());
    }
    Ok(out)
}

/// Writes `embeddings` and the grid as the Python side's input (`spec.json` and raw
/// little-endian f32 in `dir`); returns the spec's path.
pub fn write_python_input(
    dir: &Path,
    embeddings: &Tensor,
    grid: &PatchGrid,
) -> std::io::Result<std::path::PathBuf> {
    let raw: Vec<f32> = Vec::<f32>::try_from(embeddings.flatten(0, -1))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_le_bytes()).collect();
    let data = dir.join("embeddings.f32");
    std::fs::write(&data, bytes)?;
    let spec = serde_json::json!({
        "height": grid.height,
        "width": grid.width,
        "patch": grid.patch,
        "stride": grid.stride,
        "rows": grid.ys.len(),
        "cols": grid.xs.len(),
        "dim": embeddings.size()[1],
        "embeddings": data,
    });
    let path = dir.join("spec.json");
    std::fs::write(&path, spec.to_string())?;
    Ok(path)
}
