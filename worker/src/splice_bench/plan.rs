//! What the benchmark holds: a pure function of the photos (camera model and size of
//! each) and the options. It decides every image: its kind, its target photo, and for
//! pastes the source photo, the region's shape, size and the positions it is cut from and
//! pasted to.
//!
//! - `cross_camera` (spliced): the target is the next photo of a shuffled cycle over all
//!   photos; the source camera is drawn uniformly among the *other* camera models, then a
//!   photo of it uniformly.
//! - `same_camera` (authentic control): the target cycles over the photos whose camera
//!   model has at least two photos; the source is another photo of the *same* model.
//! - `untouched` (authentic control): the target cycles over all photos, nothing pasted.
//!
//! `count` cross-camera images, and as many authentic ones: half of them (rounded down)
//! same-camera pastes, the rest untouched (all untouched when no model has two photos).
//!
//! Regions: a rectangle, ellipse or polygon (equally likely), covering a share of the
//! target's area drawn uniformly from `[min_area, max_area]`, with a box aspect ratio
//! drawn log-uniformly from `[1/2, 2]`; the box is cut down to fit both photos if needed
//! (never below [`MIN_REGION_SIDE`]). Its place in the source and in the target are drawn
//! independently and uniformly, so the JPEG block grid and colour-filter phase of the
//! pasted pixels agree with the target's only by chance, for both paste kinds alike.
//! Pasting is pixel for pixel: no resampling.
//!
//! Images are named `img_NNNN` in a seeded shuffled order, so names say nothing of the
//! kind. Each kind draws from its own stream keyed by the seed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::random::Rng;
use super::region::{random_shape, Shape};

/// The smallest side of a region's box, in pixels.
pub const MIN_REGION_SIDE: u32 = 16;

const DOMAIN_CROSS: u64 = 0x5350_4c43_0000_0001;
const DOMAIN_SAME: u64 = 0x5350_4c43_0000_0002;
const DOMAIN_UNTOUCHED: u64 = 0x5350_4c43_0000_0003;
const DOMAIN_NAMES: u64 = 0x5350_4c43_0000_0004;

/// What the plan needs to know of a photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoInfo {
    /// Its camera model (see `dataloader::split::camera_model`).
    pub camera: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// The kind of a benchmark image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A region of a photo of another camera model: spliced.
    CrossCamera,
    /// A region of another photo of the same camera model: authentic (no camera
    /// inconsistency).
    SameCamera,
    /// The photo as it is: authentic.
    Untouched,
}

impl Kind {
    /// The name in `labels.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CrossCamera => "cross_camera",
            Kind::SameCamera => "same_camera",
            Kind::Untouched => "untouched",
        }
    }

    /// The label in `labels.csv`: `spliced` or `authentic`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::CrossCamera => "spliced",
            Kind::SameCamera | Kind::Untouched => "authentic",
        }
    }
}

/// A region cut from the source and pasted into the target at the same scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Region {
    /// Its shape within its box.
    pub shape: Shape,
    /// Box width in pixels.
    pub width: u32,
    /// Box height in pixels.
    pub height: u32,
    /// Left edge of the box in the source photo.
    pub source_x: u32,
    /// Top edge of the box in the source photo.
    pub source_y: u32,
    /// Left edge of the box in the target photo.
    pub target_x: u32,
    /// Top edge of the box in the target photo.
    pub target_y: u32,
}

/// A paste: which photo the region comes from, and the region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paste {
    /// Index of the source photo.
    pub source: usize,
    /// The region.
    pub region: Region,
}

/// One benchmark image (written as a lossless and a JPEG variant).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// File name without extension.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Index of the target photo.
    pub target: usize,
    /// What is pasted into it (none for untouched photos).
    pub paste: Option<Paste>,
}

/// What the plan is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Cross-camera images (and as many authentic ones).
    pub count: usize,
    /// Seed of every draw.
    pub seed: u64,
    /// Smallest region, as a share of the target's area.
    pub min_area: f64,
    /// Largest region, as a share of the target's area.
    pub max_area: f64,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Cross-camera pastes need two camera models.
    #[error("cross-camera splices need photos of at least 2 camera models; found {models} model(s) among {photos} photo(s)")]
    TooFewCameras {
        /// Photos given.
        photos: usize,
        /// Distinct camera models among them.
        models: usize,
    },
}

/// Visits a pool of photo indices in shuffled passes, reshuffling at the start of each
/// pass, so every photo serves as a target before any serves twice.
struct Cycle {
    pool: Vec<usize>,
    pos: usize,
}

impl Cycle {
    fn new(pool: Vec<usize>) -> Cycle {
        let pos = pool.len();
        Cycle { pool, pos }
    }

    fn next(&mut self, rng: &mut Rng) -> usize {
        if self.pos == self.pool.len() {
            rng.shuffle(&mut self.pool);
            self.pos = 0;
        }
        self.pos += 1;
        self.pool[self.pos - 1]
    }
}

/// Plans the benchmark over `photos` (see the module documentation). Items come sorted by
/// name.
pub fn plan(photos: &[PhotoInfo], opts: &PlanOptions) -> Result<Vec<Item>, PlanError> {
    let mut by_camera: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in photos.iter().enumerate() {
        by_camera.entry(p.camera.as_str()).or_default().push(i);
    }
    if by_camera.len() < 2 {
        return Err(PlanError::TooFewCameras {
            photos: photos.len(),
            models: by_camera.len(),
        });
    }
    let cameras: Vec<&str> = by_camera.keys().copied().collect();
    let shared: Vec<usize> = by_camera
        .values()
        .filter(|v| v.len() >= 2)
        .flatten()
        .copied()
        .collect();
    let same_count = if shared.is_empty() { 0 } else { opts.count / 2 };
    let mut items = Vec::with_capacity(2 * opts.count);

    let mut rng = Rng::new(DOMAIN_CROSS, &[opts.seed]);
    let mut targets = Cycle::new((0..photos.len()).collect());
    for _ in 0..opts.count {
        let target = targets.next(&mut rng);
        let own = photos[target].camera.as_str();
        let others: Vec<&str> = cameras.iter().copied().filter(|c| *c != own).collect();
        let pool = &by_camera[others[rng.index(others.len())]];
        let source = pool[rng.index(pool.len())];
        let region = place(&photos[source], &photos[target], opts, &mut rng);
        items.push((Kind::CrossCamera, target, Some(Paste { source, region })));
    }

    let mut rng = Rng::new(DOMAIN_SAME, &[opts.seed]);
    let mut targets = Cycle::new(shared);
    for _ in 0..same_count {
        let target = targets.next(&mut rng);
        let pool = &by_camera[photos[target].camera.as_str()];
        let pick = rng.index(pool.len() - 1);
        let source = pool.iter().copied().filter(|&i| i != target).nth(pick);
        let source = source.unwrap_or(target);
        let region = place(&photos[source], &photos[target], opts, &mut rng);
        items.push((Kind::SameCamera, target, Some(Paste { source, region })));
    }

    let mut rng = Rng::new(DOMAIN_UNTOUCHED, &[opts.seed]);
    let mut targets = Cycle::new((0..photos.len()).collect());
    for _ in 0..opts.count - same_count {
        items.push((Kind::Untouched, targets.next(&mut rng), None));
    }

    let mut numbers: Vec<usize> = (0..items.len()).collect();
    Rng::new(DOMAIN_NAMES, &[opts.seed]).shuffle(&mut numbers);
    let digits = items.len().saturating_sub(1).to_string().len().max(4);
    let mut named: Vec<Item> = items
        .into_iter()
        .zip(numbers)
        .map(|((kind, target, paste), n)| Item {
            name: format!("img_{n:0digits$}"),
            kind,
            target,
            paste,
        })
        .collect();
    named.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(named)
}

/// Draws a region for a paste from `source` into `target`.
fn place(source: &PhotoInfo, target: &PhotoInfo, opts: &PlanOptions, rng: &mut Rng) -> Region {
    let shape = random_shape(rng);
    let share = rng.range(opts.min_area, opts.max_area);
    let aspect = rng
        .range(-std::f64::consts::LN_2, std::f64::consts::LN_2)
        .exp();
    let box_area = share * f64::from(target.width) * f64::from(target.height) / shape.fill();
    let side = |len: f64, limit: u32| (len.round() as u32).max(MIN_REGION_SIDE).min(limit);
    let width = side((box_area * aspect).sqrt(), source.width.min(target.width));
    let height = side((box_area / aspect).sqrt(), source.height.min(target.height));
    let mut at =
        |outer: u32, inner: u32| rng.below(u64::from(outer.saturating_sub(inner)) + 1) as u32;
    Region {
        shape,
        width,
        height,
        source_x: at(source.width, width),
        source_y: at(source.height, height),
        target_x: at(target.width, width),
        target_y: at(target.height, height),
    }
}

#[cfg(test)]
mod tests;
