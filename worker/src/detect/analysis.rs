//! Everything after the embeddings, as array operations: affinity, detection scores,
//! mean-shift and normalised-cut localisation, and the rule that names the splice.
//!
//! - Affinity `A = E Eᵀ` of the L2-normalised patch embeddings `E` `[N, D]`.
//! - Detection: the paper's consistency `sum_ij exp(A_ij / tau)`, as `log mean_ij exp(A_ij /
//!   tau)` (a mean, so photos of different sizes compare, and a log, so it stays readable;
//!   same order; high = one camera = likely authentic) and
//!   the reference code's `mean_ij (1 - A_ij)` (high = likely spliced).
//! - Mean shift over the rows of `A` (row `i`: "same camera as patch `i`" for every patch):
//!   flat kernel, bandwidth at a percentile of the pairwise row distances, a fixed number of
//!   iterations started from every row; the modes reached by the most rows are averaged
//!   into one row, the dominant camera's. Voted onto the cells it is the consistency map; a
//!   two-class threshold (Otsu) on its patch values splits the photo.
//! - Normalised cuts (Shi and Malik): the second eigenvector of `D^-1/2 W D^-1/2` with
//!   `W = exp(A / tau)`, split where the normalised cut is smallest.
//! - The splice is the smaller side of a split; maps are oriented so that high = spliced.

use tch::{Kind, Tensor};

use super::grid::{vote, AxisCells, PatchGrid};
use super::DetectError;

/// Parameters of the analysis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisParams {
    /// Temperature of the consistency score and of the normalised-cut affinity (the
    /// model's, `1 / logit_scale`).
    pub tau: f64,
    /// Mean-shift bandwidth as a percentile (0-100) of the pairwise row distances.
    pub bandwidth_percentile: f64,
    /// Mean-shift iterations.
    pub mean_shift_iters: usize,
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self {
            tau: 0.07,
            bandwidth_percentile: 10.0,
            mean_shift_iters: 5,
        }
    }
}

/// The result for one photo; maps are per cell (see [`super::grid`]), in [0, 1], high =
/// spliced.
#[derive(Debug)]
pub struct Analysis {
    /// `log mean exp(A / tau)`: high = consistent = likely authentic.
    pub consistency: f64,
    /// `mean (1 - A)`: high = likely spliced (the reference code's score).
    pub mean_dissimilarity: f64,
    /// Mean-shift splice map `[cells_y, cells_x]` (f64).
    pub mean_shift_map: Tensor,
    /// The splice according to mean shift, per cell (bool).
    pub mean_shift_mask: Tensor,
    /// Normalised-cut splice map `[cells_y, cells_x]` (f64).
    pub ncut_map: Tensor,
    /// The splice according to normalised cuts, per cell (bool).
    pub ncut_mask: Tensor,
    /// The cells the maps are on.
    pub cells: (AxisCells, AxisCells),
}

/// Analyses the L2-normalised embeddings `[N, D]` of `grid`'s patches.
pub fn analyse(
    embeddings: &Tensor,
    grid: &PatchGrid,
    p: &AnalysisParams,
) -> Result<Analysis, DetectError> {
    let n = embeddings.size()[0];
    if n as usize != grid.len() {
        return Err(DetectError::Params(format!(
            "{n} embeddings for a grid of {} patches",
            grid.len()
        )));
    }
    if p.tau.is_nan() || p.tau <= 0.0 || !(0.0..=100.0).contains(&p.bandwidth_percentile) {
        return Err(DetectError::Params(format!(
            "tau must be > 0 and the bandwidth percentile in [0, 100] (got {} and {})",
            p.tau, p.bandwidth_percentile
        )));
    }
    let e = embeddings.to_kind(Kind::Double);
    let a = e.matmul(&e.tr());
    let pairs = (n * n) as f64;
    let consistency = (&a / p.tau)
        .flatten(0, -1)
        .logsumexp([0], false)
        .double_value(&[])
        - pairs.ln();
    let mean_dissimilarity = 1.0 - a.mean(Kind::Double).double_value(&[]);
    let cells = grid.cells();

    // Mean shift: the dominant camera's row, high where a patch agrees with it.
    let mode = mean_shift_mode(&a, p);
    let agree = vote(&mode.unsqueeze(0), grid, &cells).squeeze_dim(0);
    let mean_shift_map = rescale(&(-&agree));
    let low = mode.lt(otsu_threshold(&mode));
    let ms_splice = smaller_side(&low);
    let mean_shift_mask = vote(&ms_splice.to_kind(Kind::Double).unsqueeze(0), grid, &cells)
        .squeeze_dim(0)
        .gt(0.5);

    // Normalised cuts.
    let (y, side) = normalized_cut(&a, p.tau);
    let ncut_splice = smaller_side(&side);
    // `side` holds the patches with the lowest y: the map is high on the splice.
    let oriented = if ncut_splice.equal(&side) { -y } else { y };
    let ncut_map = rescale(&vote(&oriented.unsqueeze(0), grid, &cells).squeeze_dim(0));
    let ncut_mask = vote(
        &ncut_splice.to_kind(Kind::Double).unsqueeze(0),
        grid,
        &cells,
    )
    .squeeze_dim(0)
    .gt(0.5);
    Ok(Analysis {
        consistency,
        mean_dissimilarity,
        mean_shift_map,
        mean_shift_mask,
        ncut_map,
        ncut_mask,
        cells,
    })
}

/// Linear map of `t` onto [0, 1] (all 0.5 when constant).
fn rescale(t: &Tensor) -> Tensor {
    let (lo, hi) = (t.min().double_value(&[]), t.max().double_value(&[]));
    if hi - lo < 1e-12 {
        return t.zeros_like() + 0.5;
    }
    (t - lo) / (hi - lo)
}

/// `side` if it holds at most half of the patches, else its complement.
fn smaller_side(side: &Tensor) -> Tensor {
    let count = side.sum(Kind::Int64).int64_value(&[]);
    if 2 * count <= side.size()[0] {
        side.shallow_clone()
    } else {
        side.logical_not()
    }
}

/// The dominant mode of the rows of `a` under flat-kernel mean shift.
pub fn mean_shift_mode(a: &Tensor, p: &AnalysisParams) -> Tensor {
    let n = a.size()[0];
    let dist = Tensor::cdist(a, a, 2.0, None::<i64>);
    let off_diagonal = dist.masked_select(&Tensor::eye(n, (Kind::Bool, a.device())).logical_not());
    let h = if off_diagonal.numel() == 0 {
        0.0
    } else {
        off_diagonal
            .quantile_scalar(p.bandwidth_percentile / 100.0, None::<i64>, false, "linear")
            .double_value(&[])
    };
    let mut seeds = a.shallow_clone();
    for _ in 0..p.mean_shift_iters {
        let w = Tensor::cdist(&seeds, a, 2.0, None::<i64>)
            .le(h)
            .to_kind(Kind::Double);
        // Every seed is within h of something only if h > 0; keep it where nothing is.
        let counts = w.sum_dim_intlist(1, true, Kind::Double);
        let moved = w.matmul(a) / counts.clamp_min(1.0);
        seeds = moved.where_self(&counts.gt(0.0), &seeds);
    }
    let density = Tensor::cdist(&seeds, a, 2.0, None::<i64>)
        .le(h)
        .sum_dim_intlist(1, false, Kind::Int64);
    let best = density.max();
    let at_best = density.eq_tensor(&best);
    seeds
        .index_select(0, &at_best.nonzero().squeeze_dim(1))
        .mean_dim(0, false, Kind::Double)
}

/// Otsu's threshold of the values of a 1-D tensor: the cut that maximises the variance
/// between the two classes.
pub fn otsu_threshold(v: &Tensor) -> f64 {
    let sorted = v.to_kind(Kind::Double).sort(0, false).0;
    let n = sorted.size()[0];
    if n < 2 {
        return f64::INFINITY;
    }
    let total = sorted.sum(Kind::Double);
    let prefix = sorted.cumsum(0, Kind::Double).narrow(0, 0, n - 1);
    let k = Tensor::arange_start(1, n, (Kind::Double, v.device()));
    let (m0, m1) = (&prefix / &k, (&total - &prefix) / (n as f64 - &k));
    let between = &k * (n as f64 - &k) * (&m0 - &m1).square();
    let best = between.argmax(0, false).int64_value(&[]);
    // Between the last value of the low class and the first of the high one.
    (sorted.double_value(&[best]) + sorted.double_value(&[best + 1])) / 2.0
}

/// Two-way normalised cut of the affinity `exp(A / tau)`: the relaxed indicator (second
/// eigenvector) and the side of each patch at the split with the smallest cut.
pub fn normalized_cut(a: &Tensor, tau: f64) -> (Tensor, Tensor) {
    let n = a.size()[0];
    // Subtracting the largest affinity scales W by a constant: same cut, no overflow.
    let w = ((a - a.max()) / tau).exp();
    let d = w.sum_dim_intlist(1, false, Kind::Double);
    let inv_sqrt = d.rsqrt();
    let m = &inv_sqrt.unsqueeze(1) * &w * inv_sqrt.unsqueeze(0);
    let (_, vectors) = m.linalg_eigh("L");
    if n < 2 {
        return (
            Tensor::zeros([n], (Kind::Double, a.device())),
            Tensor::zeros([n], (Kind::Bool, a.device())),
        );
    }
    let y = vectors.select(1, n - 2) * &inv_sqrt;
    // Ncut(k) of the first k patches in the order of y against the rest.
    let order = y.argsort(0, false);
    let wp = w.index_select(0, &order).index_select(1, &order);
    let dp = d.index_select(0, &order);
    let within = wp.tril(0).sum_dim_intlist(1, false, Kind::Double) * 2.0 - wp.diagonal(0, 0, 1);
    let inner = within.cumsum(0, Kind::Double).narrow(0, 0, n - 1);
    let assoc = dp.cumsum(0, Kind::Double).narrow(0, 0, n - 1);
    let volume = d.sum(Kind::Double);
    let cut = &assoc - &inner;
    let ncut = &cut / &assoc + &cut / (&volume - &assoc);
    let k = ncut.argmin(0, false).int64_value(&[]) + 1;
    let mut side = Tensor::zeros([n], (Kind::Bool, a.device()));
    let first = order.narrow(0, 0, k);
    side = side.index_fill(0, &first, 1);
    (y, side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Embeddings of a `rows x cols` grid where the patches in `spliced` come from another
    /// camera: two clusters with some noise.
    fn two_cameras(grid: &PatchGrid, spliced: impl Fn(u32, u32) -> bool) -> (Tensor, Tensor) {
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(5);
        let d = 16;
        let host = Tensor::randn([d], (Kind::Double, Device::Cpu));
        let other = Tensor::randn([d], (Kind::Double, Device::Cpu));
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for i in 0..grid.len() {
            let (y, x) = grid.origin(i);
            let s = spliced(y, x);
            truth.push(s);
            let base = if s { &other } else { &host };
            rows.push(base + Tensor::randn([d], (Kind::Double, Device::Cpu)) * 0.3);
        }
        let e = Tensor::stack(&rows, 0);
        let e = &e / e.norm_scalaropt_dim(2, [1], true);
        (e, Tensor::from_slice(&truth))
    }

    #[test]
    fn both_localisers_find_a_pasted_block_and_the_score_drops() {
        let grid = PatchGrid::new(300, 400, 32, 12).unwrap();
        let (clean, _) = two_cameras(&grid, |_, _| false);
        let inside = |y: u32, x: u32| (100..200).contains(&y) && (150..260).contains(&x);
        let (forged, truth) = two_cameras(&grid, inside);
        let p = AnalysisParams::default();
        let real = analyse(&clean, &grid, &p).unwrap();
        let fake = analyse(&forged, &grid, &p).unwrap();
        assert!(fake.consistency < real.consistency);
        assert!(fake.mean_dissimilarity > real.mean_dissimilarity);
        // At patch level the masks must be the planted block's patches.
        let (ms, nc) =
            (
                smaller_side(&mean_shift_mode(&forged.matmul(&forged.tr()), &p).lt(
                    otsu_threshold(&mean_shift_mode(&forged.matmul(&forged.tr()), &p)),
                )),
                smaller_side(&normalized_cut(&forged.matmul(&forged.tr()), p.tau).1),
            );
        assert!(ms.equal(&truth), "mean shift");
        assert!(nc.equal(&truth), "normalised cut");
        // Cell maps: high inside the block, low outside.
        let (cy, cx) = (&fake.cells.0, &fake.cells.1);
        let cell = |y: u32, x: u32| {
            let r = cy.bounds.iter().rposition(|&b| b <= y).unwrap() as i64;
            let c = cx.bounds.iter().rposition(|&b| b <= x).unwrap() as i64;
            (r, c)
        };
        for map in [&fake.mean_shift_map, &fake.ncut_map] {
            let (r, c) = cell(150, 200);
            let (r0, c0) = cell(10, 10);
            let (inside, outside) = (map.double_value(&[r, c]), map.double_value(&[r0, c0]));
            assert!(inside > 0.7 && outside < 0.2, "{inside} {outside}");
        }
        let (r, c) = cell(150, 200);
        assert!(fake.mean_shift_mask.int64_value(&[r, c]) == 1);
        assert!(fake.ncut_mask.int64_value(&[r, c]) == 1);
    }

    #[test]
    fn otsu_splits_two_groups_between_them() {
        let v = Tensor::from_slice(&[0.1f64, 0.12, 0.11, 0.9, 0.95, 0.13]);
        let t = otsu_threshold(&v);
        assert!(t > 0.13 && t < 0.9, "{t}");
    }

    #[test]
    fn mismatched_embeddings_and_bad_parameters_are_errors() {
        let grid = PatchGrid::new(64, 64, 32, 2).unwrap();
        let e = Tensor::ones([3, 4], (Kind::Float, Device::Cpu));
        assert!(analyse(&e, &grid, &AnalysisParams::default()).is_err());
        let e = Tensor::ones([grid.len() as i64, 4], (Kind::Float, Device::Cpu)) / 2.0;
        let bad = AnalysisParams {
            tau: 0.0,
            ..Default::default()
        };
        assert!(analyse(&e, &grid, &bad).is_err());
        // A photo with one camera everywhere (constant embeddings) still gives maps.
        let a = analyse(&e, &grid, &AnalysisParams::default()).unwrap();
        assert!(a.mean_shift_map.isfinite().all().int64_value(&[]) == 1);
    }
}
