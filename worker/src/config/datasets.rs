//! Which splice dataset to read (`crate::eval::datasets` reads it): a kind (the folder
//! layout) and a path, as a TOML table such as a splice suite's dataset (see
//! [`super::eval`]):
//!
//! ```toml
//! [eval.suites.splice.dataset]
//! kind = "columbia"            # columbia | dso1 | korus | in_the_wild | casia1 | casia2 | generic
//! path = "/data/columbia"      # the folder the layout expects (see DatasetKind)
//! name = "Columbia"            # optional: name in logs and results (default: the kind)
//! on_missing_mask = "error"    # optional: "error" (default) or "skip" (skipped and counted)
//! masks = "/data/casia2-gt"    # optional, CASIA only: the separately downloaded ground truth
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use infra::FieldError;

/// A splice benchmark's folder layout. Each reader's documentation gives the layout and
/// how its masks are converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// Columbia Uncompressed Image Splicing Detection (Hsu & Chang 2006):
    /// [`layouts::columbia`](crate::eval::datasets::layouts::columbia).
    Columbia,
    /// DSO-1 (Carvalho et al. 2013): [`layouts::dso1`](crate::eval::datasets::layouts::dso1).
    Dso1,
    /// Realistic Tampering (Korus & Huang 2016): [`layouts::korus`](crate::eval::datasets::layouts::korus).
    Korus,
    /// In-the-Wild splices (Huh et al. 2018):
    /// [`layouts::in_the_wild`](crate::eval::datasets::layouts::in_the_wild).
    InTheWild,
    /// CASIA v1.0 with the ground truth of Pham et al.:
    /// [`layouts::casia`](crate::eval::datasets::layouts::casia).
    Casia1,
    /// CASIA v2.0 with the ground truth of Pham et al.:
    /// [`layouts::casia`](crate::eval::datasets::layouts::casia).
    Casia2,
    /// Any dataset described by a `labels.csv`: [`layouts::generic`](crate::eval::datasets::layouts::generic).
    Generic,
}

impl DatasetKind {
    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Columbia => "columbia",
            DatasetKind::Dso1 => "dso1",
            DatasetKind::Korus => "korus",
            DatasetKind::InTheWild => "in_the_wild",
            DatasetKind::Casia1 => "casia1",
            DatasetKind::Casia2 => "casia2",
            DatasetKind::Generic => "generic",
        }
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = String;

    /// The config name (`columbia`, `dso1`, ...).
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            format!("unknown dataset kind {s:?}: use generic, columbia, dso1, korus, in_the_wild, casia1 or casia2")
        })
    }
}

/// What to do with a spliced image whose mask file is missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingMask {
    /// Stop with an error naming the image and the expected mask (default).
    #[default]
    Error,
    /// Leave the image out and count it in [`Listing::skipped`](crate::eval::datasets::Listing::skipped).
    Skip,
}

/// One dataset to evaluate on; unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The folder layout.
    pub kind: DatasetKind,
    /// The dataset's root folder, as its [`DatasetKind`] describes.
    pub path: PathBuf,
    /// Name in logs and results (default: the kind's name).
    #[serde(default)]
    pub name: Option<String>,
    /// CASIA only: the ground-truth folder, when it is not inside `path` under its usual
    /// name (default: looked up inside `path`).
    #[serde(default)]
    pub masks: Option<PathBuf>,
    /// What to do with a spliced image whose mask is missing (default: error).
    #[serde(default)]
    pub on_missing_mask: MissingMask,
}

impl DatasetConfig {
    /// A config with the defaults for `kind` at `path`.
    pub fn new(kind: DatasetKind, path: impl Into<PathBuf>) -> Self {
        Self {
            kind,
            path: path.into(),
            name: None,
            masks: None,
            on_missing_mask: MissingMask::Error,
        }
    }

    /// The name in logs and results.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// Every invalid field, named under `prefix` (e.g. `eval.suites[0].splice.dataset`).
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.path.as_os_str().is_empty() {
            errors.push(FieldError::new(
                format!("{prefix}.path"),
                "must name the dataset's folder",
            ));
        }
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            errors.push(FieldError::new(
                format!("{prefix}.name"),
                "must not be blank (leave it out to use the kind)",
            ));
        }
        let casia = matches!(self.kind, DatasetKind::Casia1 | DatasetKind::Casia2);
        if self.masks.is_some() && !casia {
            errors.push(FieldError::new(
                format!("{prefix}.masks"),
                format!(
                    "only CASIA (casia1, casia2) has a separate ground-truth folder; kind {} \
                     finds its masks inside `path`",
                    self.kind.as_str()
                ),
            ));
        }
        errors
    }
}
