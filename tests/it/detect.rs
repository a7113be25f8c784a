//! Splice localisation against the reference code's algorithm in Python/numpy
//! (`tests/python/splice_localize_ref.py`) on the same embeddings: the vectorised overlap
//! voting gives the reference's per-pair loop's response maps, on a grid where the
//! reference's stride-sized cells are exact (patch side a multiple of the stride).

use std::process::Command;

use tch::Tensor;
use worker::detect::bench::{synthetic_embeddings, write_python_input};
use worker::detect::grid::vote;
use worker::detect::PatchGrid;

use crate::support;

#[test]
fn voted_response_maps_equal_the_reference_per_pair_loop() {
    // stride (496 - 124) / 12 = 31, and 124 = 4 x 31.
    let grid = PatchGrid::reference_layout(372, 496, 124, 12).unwrap();
    assert_eq!((grid.stride, grid.ys.len(), grid.xs.len()), (31, 9, 13));
    let emb = {
        let _rng = support::torch_rng();
        synthetic_embeddings(&grid, 32, 7)
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = write_python_input(dir.path(), &emb, &grid).unwrap();
    let out = Command::new(support::venv_python())
        .arg(support::repo_root().join("tests/python/splice_localize_ref.py"))
        .arg(&spec)
        .arg("--maps")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reference: Vec<f64> = v["pred_maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();

    // Ours: 1 - A voted over the second patch's cells, then over the first's.
    let e = emb.to_kind(tch::Kind::Double);
    let dissimilarity = 1.0 - e.matmul(&e.tr());
    let cells = grid.cells();
    let (cy, cx) = (cells.0.len() as i64, cells.1.len() as i64);
    assert_eq!(
        v["cells"],
        serde_json::json!([cy, cx]),
        "the same cells on both sides"
    );
    let by_second = vote(&dissimilarity, &grid, &cells).view([grid.len() as i64, cy * cx]);
    let both = vote(&by_second.tr().contiguous(), &grid, &cells); // [cy*cx (second), cy, cx (first)]
    let ours = both
        .view([cy, cx, cy, cx])
        .permute([2, 3, 0, 1])
        .contiguous();
    let ours: Vec<f64> = Vec::<f64>::try_from(ours.flatten(0, -1)).unwrap();
    assert_eq!(ours.len(), reference.len());
    let worst = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    // The reference adds 1e-4 to every vote count.
    assert!(worst < 1e-3, "largest difference {worst}");
    let spread = Tensor::from_slice(&reference).std(true).double_value(&[]);
    assert!(spread > 0.05, "the maps are not flat ({spread})");
}
