//! The patch grid over a full-resolution photo, and the cells it cuts the photo into.
//!
//! Patches of side `patch` start every `stride` pixels along both axes, with `stride =
//! max(1, (longest side - patch) / per_side)` as in the reference code (about `per_side`
//! patches along the longest side; the paper uses 25), but never more than a patch side,
//! so patches leave no gaps. Unlike the reference, a last patch flush with the far edge is
//! added when the stride leaves a strip uncovered, so every pixel is analysed.
//!
//! The analysis after the embeddings is quadratic in patches (affinities) and cubic (the
//! normalised cut's eigendecomposition), so [`PatchGrid::budgeted`] bounds the patch count:
//! past the budget the stride grows beyond a patch side, and the pixels between patches take
//! the values of the nearest patches on each side (the record says so).
//!
//! Cells are the rectangles between consecutive patch edges: every pixel of a cell lies in
//! the same patches. A patch-level quantity averaged over the patches covering each pixel
//! (overlap voting) is then a cell-level computation, separable along the two axes:
//! `Ky · V · Kxᵀ / ((Ky·1)(Kx·1)ᵀ)`, with `K` the cell-by-patch coverage along each axis.

use tch::{Device, Kind, Tensor};

use super::DetectError;

/// Where the patches of one photo lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchGrid {
    /// Photo height in pixels.
    pub height: u32,
    /// Photo width in pixels.
    pub width: u32,
    /// Patch side in pixels.
    pub patch: u32,
    /// Distance between neighbouring patch origins (the last one may be closer).
    pub stride: u32,
    /// Top edges of the patch rows.
    pub ys: Vec<u32>,
    /// Left edges of the patch columns.
    pub xs: Vec<u32>,
    /// Whether a patch budget widened the stride past a patch side (gaps between
    /// patches, filled from their neighbours).
    pub budgeted: bool,
}

impl PatchGrid {
    /// The grid for a `height` x `width` photo with about `per_side` patches along its
    /// longest side.
    pub fn new(height: u32, width: u32, patch: u32, per_side: u32) -> Result<Self, DetectError> {
        Self::build(height, width, patch, per_side, true)
    }

    /// [`PatchGrid::new`] with at most `max_patches` patches: when the grid would hold
    /// more, the stride grows (past a patch side) until it does not.
    pub fn budgeted(
        height: u32,
        width: u32,
        patch: u32,
        per_side: u32,
        max_patches: usize,
    ) -> Result<Self, DetectError> {
        let mut grid = Self::new(height, width, patch, per_side)?;
        if grid.len() <= max_patches.max(1) {
            return Ok(grid);
        }
        // The count falls as the stride grows: the smallest stride within budget.
        let fits = |stride: u32| {
            origins(height, patch, stride, true).len() * origins(width, patch, stride, true).len()
                <= max_patches.max(1)
        };
        let (mut lo, mut hi) = (grid.stride, height.max(width));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        grid.stride = lo;
        grid.ys = origins(height, patch, lo, true);
        grid.xs = origins(width, patch, lo, true);
        grid.budgeted = lo > patch;
        Ok(grid)
    }

    /// The reference code's grid: the same stride, without the patch flush with the far
    /// edges (a strip narrower than the stride may stay unanalysed).
    pub fn reference_layout(
        height: u32,
        width: u32,
        patch: u32,
        per_side: u32,
    ) -> Result<Self, DetectError> {
        Self::build(height, width, patch, per_side, false)
    }

    fn build(
        height: u32,
        width: u32,
        patch: u32,
        per_side: u32,
        flush: bool,
    ) -> Result<Self, DetectError> {
        if patch == 0 || per_side == 0 {
            return Err(DetectError::Params(
                "patch size and patches per side must be at least 1".into(),
            ));
        }
        if height < patch || width < patch {
            return Err(DetectError::TooSmall {
                height,
                width,
                patch,
            });
        }
        // Never wider than a patch: patches must not leave gaps between them.
        let stride = ((height.max(width) - patch) / per_side).clamp(1, patch);
        Ok(Self {
            height,
            width,
            patch,
            stride,
            ys: origins(height, patch, stride, flush),
            xs: origins(width, patch, stride, flush),
            budgeted: false,
        })
    }

    /// Number of patches (raster order: row by row).
    pub fn len(&self) -> usize {
        self.ys.len() * self.xs.len()
    }

    /// Whether the grid has no patches (never, for a grid that was built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Origin `(y, x)` of patch `i` in raster order.
    pub fn origin(&self, i: usize) -> (u32, u32) {
        (self.ys[i / self.xs.len()], self.xs[i % self.xs.len()])
    }

    /// The cells along the vertical and horizontal axes.
    pub fn cells(&self) -> (AxisCells, AxisCells) {
        (
            AxisCells::new(&self.ys, self.patch, self.height),
            AxisCells::new(&self.xs, self.patch, self.width),
        )
    }
}

fn origins(extent: u32, patch: u32, stride: u32, flush: bool) -> Vec<u32> {
    let mut out: Vec<u32> = (0..=(extent - patch) / stride)
        .map(|k| k * stride)
        .collect();
    if flush && out.last().is_some_and(|&last| last + patch < extent) {
        out.push(extent - patch);
    }
    out
}

/// The cells along one axis: intervals between consecutive patch edges.
#[derive(Debug)]
pub struct AxisCells {
    /// Cell `k` spans pixels `bounds[k]..bounds[k + 1]`.
    pub bounds: Vec<u32>,
    /// `[cells, patches]`: 1 where the patch covers the cell (f64).
    pub coverage: Tensor,
}

impl AxisCells {
    fn new(origins: &[u32], patch: u32, extent: u32) -> Self {
        let mut bounds: Vec<u32> = origins
            .iter()
            .flat_map(|&o| [o, o + patch])
            .chain([0, extent])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let cells = bounds.len() - 1;
        let mut cover = vec![0f64; cells * origins.len()];
        for k in 0..cells {
            let row = &mut cover[k * origins.len()..(k + 1) * origins.len()];
            for (i, &o) in origins.iter().enumerate() {
                if o <= bounds[k] && bounds[k + 1] <= o + patch {
                    row[i] = 1.0;
                }
            }
            if row.iter().all(|&c| c == 0.0) {
                // A gap between patches (a budgeted grid): the nearest patch on each side.
                // (The reference layout's uncovered strip at the far edge stays uncovered.)
                let before = origins.iter().rposition(|&o| o + patch <= bounds[k]);
                let after = origins.iter().position(|&o| o >= bounds[k + 1]);
                if let (Some(before), Some(after)) = (before, after) {
                    row[before] = 1.0;
                    row[after] = 1.0;
                }
            }
        }
        let coverage = Tensor::from_slice(&cover)
            .view([cells as i64, origins.len() as i64])
            .to_kind(Kind::Double)
            .to_device(Device::Cpu);
        Self { bounds, coverage }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell of every pixel along the axis.
    pub fn cell_of_pixel(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(*self.bounds.last().unwrap_or(&0) as usize);
        for k in 0..self.len() {
            out.extend(std::iter::repeat_n(
                k as u32,
                (self.bounds[k + 1] - self.bounds[k]) as usize,
            ));
        }
        out
    }
}

/// Overlap voting: `values` `[B, N]` (patch-level, raster order) averaged over the patches
/// covering each cell, `[B, cells_y, cells_x]` (f64).
pub fn vote(values: &Tensor, grid: &PatchGrid, cells: &(AxisCells, AxisCells)) -> Tensor {
    let (ky, kx) = (&cells.0.coverage, &cells.1.coverage);
    let b = values.size()[0];
    let v = values
        .to_kind(Kind::Double)
        .view([b, grid.ys.len() as i64, grid.xs.len() as i64]);
    let num = ky.matmul(&v).matmul(&kx.tr());
    let counts = ky.sum_dim_intlist(1, false, Kind::Double).unsqueeze(1)
        * kx.sum_dim_intlist(1, false, Kind::Double).unsqueeze(0);
    num / counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_covers_every_pixel_and_ends_flush_with_the_edges() {
        let g = PatchGrid::new(568, 757, 124, 25).unwrap();
        assert_eq!(g.stride, (757 - 124) / 25);
        assert_eq!(*g.xs.last().unwrap() + 124, 757);
        assert_eq!(*g.ys.last().unwrap() + 124, 568);
        assert!(g
            .xs
            .windows(2)
            .all(|w| w[1] > w[0] && w[1] - w[0] <= g.stride));
        // About 25 along the longest side (26 origins plus the flush one at most).
        assert!((25..=27).contains(&g.xs.len()), "{}", g.xs.len());
        let (cy, cx) = g.cells();
        assert_eq!(cy.cell_of_pixel().len(), 568);
        assert_eq!(cx.cell_of_pixel().len(), 757);
        let covered = cx.coverage.sum_dim_intlist(1, false, Kind::Double);
        assert!(
            covered.min().double_value(&[]) >= 1.0,
            "every cell is covered"
        );
    }

    #[test]
    fn a_stride_wider_than_a_patch_is_narrowed_so_no_pixel_is_left_out() {
        let g = PatchGrid::new(1024, 1024, 64, 12).unwrap();
        assert_eq!(g.stride, 64);
        let (cy, _) = g.cells();
        let covered = cy.coverage.sum_dim_intlist(1, false, Kind::Double);
        assert!(covered.min().double_value(&[]) >= 1.0);
    }

    #[test]
    fn a_photo_smaller_than_a_patch_is_refused() {
        assert!(matches!(
            PatchGrid::new(100, 500, 124, 25),
            Err(DetectError::TooSmall { .. })
        ));
        let g = PatchGrid::new(124, 124, 124, 25).unwrap();
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn voting_equals_the_per_pixel_average_over_covering_patches() {
        let g = PatchGrid::new(40, 53, 16, 4).unwrap();
        let cells = g.cells();
        let values = Tensor::from_slice(
            &(0..g.len())
                .map(|i| (i * 37 % 11) as f64)
                .collect::<Vec<_>>(),
        )
        .unsqueeze(0);
        let map = vote(&values, &g, &cells);
        let (row_cell, col_cell) = (cells.0.cell_of_pixel(), cells.1.cell_of_pixel());
        for y in (0..40).step_by(3) {
            for x in (0..53).step_by(2) {
                let (mut sum, mut n) = (0.0, 0.0);
                for i in 0..g.len() {
                    let (oy, ox) = g.origin(i);
                    if (oy..oy + 16).contains(&y) && (ox..ox + 16).contains(&x) {
                        sum += values.double_value(&[0, i as i64]);
                        n += 1.0;
                    }
                }
                let got = map.double_value(&[
                    0,
                    row_cell[y as usize] as i64,
                    col_cell[x as usize] as i64,
                ]);
                assert!(
                    (got - sum / n).abs() < 1e-12,
                    "({y}, {x}): {got} vs {}",
                    sum / n
                );
            }
        }
    }

    #[test]
    fn a_budget_bounds_the_patches_of_a_huge_photo_and_every_pixel_still_gets_a_value() {
        // 200 MP at 124 px patches: about 13,000 patches at a stride of one patch side.
        let free = PatchGrid::new(12_500, 16_000, 124, 25).unwrap();
        assert!(free.len() > 12_000 && !free.budgeted, "{}", free.len());
        let g = PatchGrid::budgeted(12_500, 16_000, 124, 25, 4096).unwrap();
        assert!(g.len() <= 4096 && g.len() > 3000, "{}", g.len());
        assert!(g.budgeted && g.stride > 124, "stride {}", g.stride);
        assert_eq!(*g.xs.last().unwrap() + 124, 16_000);
        // Every cell, gaps included, takes a value; a constant map stays constant.
        let cells = g.cells();
        let v = Tensor::full([1, g.len() as i64], 0.25, (Kind::Double, Device::Cpu));
        let voted = vote(&v, &g, &cells);
        let (lo, hi) = (voted.min().double_value(&[]), voted.max().double_value(&[]));
        assert!(
            (lo - 0.25).abs() < 1e-12 && (hi - 0.25).abs() < 1e-12,
            "{lo} {hi}"
        );
        // Within the budget, the grid is the unbudgeted one.
        let small = PatchGrid::budgeted(568, 757, 124, 25, 4096).unwrap();
        assert_eq!(small, PatchGrid::new(568, 757, 124, 25).unwrap());
    }
}
