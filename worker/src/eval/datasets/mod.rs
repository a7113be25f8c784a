//! The splice benchmarks, each in its own published folder layout, read into one list of
//! entries: an image path, its label (authentic or spliced) and, for a spliced image, its
//! ground-truth mask with the rule that turns it into booleans ([`MaskSpec`]).
//!
//! | kind | `path` | authentic | spliced (mask) |
//! |---|---|---|---|
//! | `columbia` | holds `4cam_auth/`, `4cam_splc/` | `4cam_auth/*.tif` | `4cam_splc/*.tif` (`4cam_splc/edgemask/<stem>_edgemask.jpg`) |
//! | `dso1` | `tifs-database/` | `DSO-1/normal-*.png` | `DSO-1/splicing-*.png` (`DSO-1-Fake-Images-Masks/<name>`) |
//! | `korus` | `data-images/` | `<camera>/pristine/*.TIF` | `<camera>/tampered-realistic/*.TIF` (`<camera>/ground-truth/<stem>.PNG`) |
//! | `in_the_wild` | `label_in_wild/` | none | `images/*.jpg` (`masks/<stem>.png`) |
//! | `casia1` | holds `Au/`, `Tp/` | `Au/*` | `Tp/Sp/Sp_D_*` (`CASIA 1.0 groundtruth/Sp/<stem>_gt.png`) |
//! | `casia2` | holds `Au/`, `Tp/` | `Au/*` | `Tp/Tp_D_*` (`CASIA 2 Groundtruth/<stem>_gt.png`) |
//! | `generic` | holds `labels.csv` | rows labelled `authentic` | rows labelled `spliced` (the row's mask) |
//!
//! Every mask becomes one boolean per pixel at the image's size, `true` = spliced
//! ([`load_mask`], [`Entry::mask_at`]); each layout's conversion (Columbia's edge-mask
//! colours, DSO-1's black-on-white masks, Korus' three grey levels, resizing where a
//! dataset's masks have another resolution) is documented on its reader in [`layouts`].
//! File names match case-insensitively; hidden files and non-image files are ignored;
//! copy-move images (CASIA) and files whose name gives no label are skipped and counted
//! in [`Listing::skipped`]. A spliced image without its mask is an error, or skipped and
//! counted with `on_missing_mask = "skip"`. Entries are sorted by image path.

mod dir;
mod error;
pub mod layouts;
mod mask;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::config::datasets::{DatasetConfig, DatasetKind, MissingMask};
pub use error::DatasetError;
pub use mask::{load_mask, MaskEncoding, MaskResize, MaskSpec};

/// Ground-truth label of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Taken by one camera, unedited.
    Authentic,
    /// Contains a region from another photo (or, in Korus' set, otherwise edited).
    Spliced,
}

/// One image of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The image file.
    pub image: PathBuf,
    /// Its label.
    pub label: Label,
    /// Its ground-truth mask: always present for a spliced image, never for an authentic one.
    pub mask: Option<MaskSpec>,
}

impl Entry {
    /// The ground truth at the image's size, row-major, `true` = spliced: the decoded mask,
    /// or all `false` for an authentic image.
    pub fn mask_at(&self, width: u32, height: u32) -> Result<Vec<bool>, DatasetError> {
        match &self.mask {
            Some(spec) => load_mask(spec, width, height),
            None => Ok(vec![false; width as usize * height as usize]),
        }
    }
}

/// Why a file was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A copy-move forgery (one camera only: not a splice).
    CopyMove,
    /// A spliced image whose mask is missing (with `on_missing_mask = "skip"`).
    MissingMask,
    /// An image whose name the layout cannot label.
    UnrecognisedName,
}

/// A file that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

/// A dataset read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The dataset's name (config `name`, or the kind).
    pub name: String,
    /// Its layout.
    pub kind: DatasetKind,
    /// The images, sorted by path.
    pub entries: Vec<Entry>,
    /// Files left out, sorted by path.
    pub skipped: Vec<Skipped>,
}

impl Listing {
    /// How many entries carry `label`.
    pub fn count(&self, label: Label) -> usize {
        self.entries.iter().filter(|e| e.label == label).count()
    }

    /// How many files were skipped, by reason.
    pub fn skipped_by_reason(&self) -> BTreeMap<SkipReason, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason).or_insert(0) += 1;
        }
        counts
    }
}

/// Reads the dataset `config` describes (validating the config first).
pub fn read_dataset(config: &DatasetConfig) -> Result<Listing, DatasetError> {
    let errors = config.validate("dataset");
    if !errors.is_empty() {
        return Err(DatasetError::Invalid(errors));
    }
    let mut c = Collector::new(config);
    let root = config.path.as_path();
    let hint = match config.kind {
        DatasetKind::Columbia => layouts::columbia::read(&mut c, root)?,
        DatasetKind::Dso1 => layouts::dso1::read(&mut c, root)?,
        DatasetKind::Korus => layouts::korus::read(&mut c, root)?,
        DatasetKind::InTheWild => layouts::in_the_wild::read(&mut c, root)?,
        DatasetKind::Casia1 => layouts::casia::read_v1(&mut c, root, config.masks.as_deref())?,
        DatasetKind::Casia2 => layouts::casia::read_v2(&mut c, root, config.masks.as_deref())?,
        DatasetKind::Generic => layouts::generic::read(&mut c, root)?,
    };
    let listing = c.finish(root, hint)?;
    tracing::info!(
        dataset = %listing.name,
        kind = listing.kind.as_str(),
        authentic = listing.count(Label::Authentic),
        spliced = listing.count(Label::Spliced),
        skipped = ?listing.skipped_by_reason(),
        "dataset read"
    );
    Ok(listing)
}

/// Gathers a layout's entries and applies the missing-mask policy.
pub(crate) struct Collector<'a> {
    config: &'a DatasetConfig,
    entries: Vec<Entry>,
    skipped: Vec<Skipped>,
}

impl<'a> Collector<'a> {
    fn new(config: &'a DatasetConfig) -> Self {
        Self {
            config,
            entries: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// The dataset's name, for errors.
    pub(crate) fn name(&self) -> &str {
        self.config.name()
    }

    pub(crate) fn authentic(&mut self, image: PathBuf) {
        self.entries.push(Entry {
            image,
            label: Label::Authentic,
            mask: None,
        });
    }

    /// A spliced image; `mask` is the mask found, or `Err(expected path)`.
    pub(crate) fn spliced(
        &mut self,
        image: PathBuf,
        mask: Result<PathBuf, PathBuf>,
        encoding: MaskEncoding,
        resize: MaskResize,
    ) -> Result<(), DatasetError> {
        match mask {
            Ok(path) => {
                self.entries.push(Entry {
                    image,
                    label: Label::Spliced,
                    mask: Some(MaskSpec {
                        path,
                        encoding,
                        resize,
                    }),
                });
                Ok(())
            }
            Err(expected) => match self.config.on_missing_mask {
                MissingMask::Skip => {
                    tracing::warn!(dataset = %self.name(), image = %image.display(),
                        expected = %expected.display(), "spliced image without mask skipped");
                    self.skip(image, SkipReason::MissingMask);
                    Ok(())
                }
                MissingMask::Error => Err(DatasetError::MissingMask {
                    dataset: self.name().to_string(),
                    image,
                    expected,
                }),
            },
        }
    }

    pub(crate) fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        self.skipped.push(Skipped { path, reason });
    }

    fn finish(mut self, root: &Path, hint: &'static str) -> Result<Listing, DatasetError> {
        if self.entries.is_empty() {
            return Err(DatasetError::NoImages {
                dataset: self.name().to_string(),
                path: root.to_path_buf(),
                hint,
            });
        }
        self.entries.sort_by(|a, b| a.image.cmp(&b.image));
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Listing {
            name: self.name().to_string(),
            kind: self.config.kind,
            entries: self.entries,
            skipped: self.skipped,
        })
    }
}
