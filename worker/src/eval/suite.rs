//! One eval suite of the training config (`[eval]`, see `config::eval`) on one
//! checkpoint: the model is loaded from the checkpoint, the suite's measurement runs, the
//! whole report is written as `eval/<suite>.json` inside the checkpoint's directory, and
//! the headline numbers come back for the coordinator's checkpoint registry.
//!
//! Metric names. Splice suites: `mean_shift.p_map`, `mean_shift.ciou`, `ncut.p_map`,
//! `ncut.ciou` (cIoU: the better of the map and its inverse, as the reference code does;
//! the JSON also has the map as given), the same under `chance.` for random embeddings,
//! `detection_ap.consistency`, `detection_ap.mean_dissimilarity`, `detection_ap.chance`
//! (the spliced share), `images.spliced`, `images.authentic`, `images.failed`. Retrieval
//! suites: `patch_to_text.top1`, `patch_to_text.chance`, `patch_to_patch.top1`,
//! `patch_to_patch.chance`.

use dataloader::order::RankPlan;
use infra::store::StoreOptions;
use proto::domain::{EvalImage, EvalMetric};
use serde::Serialize;

use super::datasets::{read_dataset, DatasetError};
use super::retrieval::{self, RetrievalOptions};
use super::splice::{self, SpliceReport};
use crate::checkpoint::CheckpointError;
use crate::config::eval::SuiteKind;
use crate::config::Config;
use crate::detect::DetectParams;
use crate::runtime::data::DataSource;
use crate::runtime::model::{from_checkpoint, torch_device};
use crate::runtime::RuntimeError;

/// Why a suite could not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The training config has no suite of this name.
    #[error(
        "the training config has no eval suite {0:?}: run the agent with the job's training config"
    )]
    UnknownSuite(String),
    /// The checkpoint, the model or the packed data could not be used.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The splice dataset could not be listed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Not one image could be evaluated.
    #[error("no image of {dataset} could be evaluated ({failed} failed; first: {first})")]
    NothingEvaluated {
        /// The dataset's name.
        dataset: String,
        /// Images that failed.
        failed: usize,
        /// The first failure.
        first: String,
    },
    /// The result could not be written next to the checkpoint.
    #[error("cannot write the result next to the checkpoint: {0}")]
    Write(#[from] CheckpointError),
    /// The checkpoint asked for is not one of this config's checkpoints: an agent opens
    /// (with its credentials) and writes next to nothing else.
    #[error("refusing checkpoint {url}: it is not a step-N checkpoint under this config's checkpoint.url {root}")]
    OutsideCheckpointRoot {
        /// The checkpoint URL asked for.
        url: String,
        /// The config's checkpoint root.
        root: String,
    },
    /// The checkpoint was written under another config than the agent's.
    #[error("refusing checkpoint {url}: written with config digest {found}, this agent's config has {expected}")]
    DigestMismatch {
        /// The checkpoint.
        url: String,
        /// Its marker's digest.
        found: String,
        /// The agent's.
        expected: String,
    },
}

/// Whether `url` is a checkpoint of the checkpoint root `root`: `<root>/step-N`.
pub fn is_checkpoint_of(root: &str, url: &str) -> bool {
    let root = root.trim_end_matches('/');
    url.strip_prefix(root)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(crate::checkpoint::parse_dir_name)
        .is_some_and(|step| url == format!("{root}/{}", crate::checkpoint::dir_name(step)))
}

/// A suite's result: its numbers and where the whole report was written.
#[derive(Debug, Clone)]
pub struct SuiteOutcome {
    /// The headline numbers.
    pub metrics: Vec<EvalMetric>,
    /// URL of `eval/<suite>.json`.
    pub result_url: String,
    /// Pictures for the dashboard (splice heat maps).
    pub images: Vec<EvalImage>,
}

/// The file written next to the checkpoint.
#[derive(Serialize)]
struct ResultFile<'a, R: Serialize> {
    suite: &'a str,
    checkpoint_url: &'a str,
    checkpoint_step: u64,
    config_digest: &'a str,
    metrics: &'a [EvalMetric],
    report: &'a R,
}

/// Runs suite `name` of `cfg` on the checkpoint at `checkpoint_url`, which must be a
/// `step-N` checkpoint under `cfg`'s `checkpoint.url` written under `cfg`'s digest (checked
/// before anything is written). Blocks: run it off any async runtime.
pub fn run_suite(
    cfg: &Config,
    name: &str,
    checkpoint_url: &str,
    store: &StoreOptions,
) -> Result<SuiteOutcome, SuiteError> {
    let suite = cfg
        .spec
        .eval
        .suite(name)
        .ok_or_else(|| SuiteError::UnknownSuite(name.to_string()))?;
    let kind = suite
        .kind()
        .ok_or_else(|| SuiteError::UnknownSuite(name.to_string()))?;
    let root = &cfg.spec.checkpoint.url;
    if !is_checkpoint_of(root, checkpoint_url) {
        return Err(SuiteError::OutsideCheckpointRoot {
            url: checkpoint_url.to_string(),
            root: root.clone(),
        });
    }
    let device = torch_device(cfg.device)?;
    let loaded = from_checkpoint(Some(cfg), checkpoint_url, Some(device), store)?;
    let found = &loaded.checkpoint.marker.config_digest;
    if found != cfg.digest.as_str() {
        return Err(SuiteError::DigestMismatch {
            url: checkpoint_url.to_string(),
            found: found.clone(),
            expected: cfg.digest.as_str().to_string(),
        });
    }
    let mut images = Vec::new();
    let (metrics, report) = match kind {
        SuiteKind::Splice(s) => {
            let listing = read_dataset(&s.dataset)?;
            let params =
                DetectParams::for_model(&loaded.model, cfg.spec.data.patch_px, s.patches_per_side);
            let report = splice::evaluate(&loaded.model, device, &listing, &params, s.limit);
            if report.spliced + report.authentic == 0 {
                return Err(SuiteError::NothingEvaluated {
                    dataset: report.dataset.clone(),
                    failed: report.failed.len(),
                    first: report
                        .failed
                        .first()
                        .map_or("the dataset lists no image".into(), |(p, e)| {
                            format!("{p}: {e}")
                        }),
                });
            }
            images = report
                .examples
                .iter()
                .map(|(name, jpeg)| EvalImage {
                    name: name.clone(),
                    jpeg: jpeg.clone(),
                })
                .collect();
            (splice_metrics(&report), serde_json::to_value(&report))
        }
        SuiteKind::Retrieval(r) => {
            let plan = RankPlan::new(r.batch, 1, 0)
                .map_err(dataloader::stream::StreamError::from)
                .map_err(RuntimeError::from)?;
            let data = DataSource::open(&cfg.spec, &r.data, plan, store)?;
            let opts = RetrievalOptions {
                batch: r.batch,
                rounds: r.rounds,
                seed: r.seed,
            };
            let report = retrieval::evaluate(&loaded.model, device, &data, &opts)?;
            (retrieval_metrics(&report), serde_json::to_value(&report))
        }
    };
    let report = report.expect("reports always serialise");
    let file = ResultFile {
        suite: name,
        checkpoint_url: &loaded.checkpoint.url,
        checkpoint_step: loaded.checkpoint.step,
        config_digest: &loaded.checkpoint.marker.config_digest,
        metrics: &metrics,
        report: &report,
    };
    let body = serde_json::to_vec_pretty(&file).expect("results always serialise");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError::from)?;
    let result_url = rt.block_on(loaded.store.put_eval_result(
        &loaded.checkpoint,
        name,
        body.into(),
    ))?;
    Ok(SuiteOutcome {
        metrics,
        result_url,
        images,
    })
}

fn metric(name: &str, value: f64) -> EvalMetric {
    EvalMetric {
        name: name.to_string(),
        value,
    }
}

/// The headline numbers of a splice report (absent values are left out).
pub fn splice_metrics(r: &SpliceReport) -> Vec<EvalMetric> {
    let mut out = Vec::new();
    for (prefix, l) in [
        ("mean_shift", &r.mean_shift),
        ("ncut", &r.ncut),
        ("chance.mean_shift", &r.chance_mean_shift),
        ("chance.ncut", &r.chance_ncut),
    ] {
        for (what, value) in [("p_map", l.p_map), ("ciou", l.ciou_either)] {
            if let Some(v) = value {
                out.push(metric(&format!("{prefix}.{what}"), v));
            }
        }
    }
    for (what, d) in [
        ("consistency", &r.detection_consistency),
        ("mean_dissimilarity", &r.detection_mean_dissimilarity),
    ] {
        if let Some(d) = d {
            out.push(metric(&format!("detection_ap.{what}"), d.ap));
        }
    }
    let images = (r.spliced + r.authentic) as f64;
    if r.spliced > 0 && r.authentic > 0 {
        out.push(metric("detection_ap.chance", r.spliced as f64 / images));
    }
    out.push(metric("images.spliced", r.spliced as f64));
    out.push(metric("images.authentic", r.authentic as f64));
    out.push(metric("images.failed", r.failed.len() as f64));
    out
}

/// The headline numbers of a retrieval report.
pub fn retrieval_metrics(r: &retrieval::RetrievalReport) -> Vec<EvalMetric> {
    let mut out = Vec::new();
    if let Some(t) = &r.patch_to_text {
        out.push(metric("patch_to_text.top1", t.top1));
        out.push(metric("patch_to_text.chance", t.chance));
    }
    out.push(metric("patch_to_patch.top1", r.patch_to_patch.top1));
    out.push(metric("patch_to_patch.chance", r.patch_to_patch.chance));
    out
}

#[cfg(test)]
mod tests {
    use super::is_checkpoint_of;

    #[test]
    fn only_step_directories_right_under_the_root_are_checkpoints_of_it() {
        let root = "s3://bucket/runs/a/";
        assert!(is_checkpoint_of(root, "s3://bucket/runs/a/step-000000600"));
        for url in [
            "file:///etc",
            "s3://bucket/runs/a",
            "s3://bucket/runs/a/step-600",
            "s3://bucket/runs/a/step-000000600/",
            "s3://bucket/runs/a/../b/step-000000600",
            "s3://bucket/runs/ab/step-000000600",
            "s3://bucket/runs/a/x/step-000000600",
            "s3://other/runs/a/step-000000600",
            "s3://bucket/runs/a/step-000000600?versionId=1",
        ] {
            assert!(!is_checkpoint_of(root, url), "{url}");
        }
        assert!(is_checkpoint_of("work/ckpt", "work/ckpt/step-000000004"));
    }
}
