//! `worker detect`: zero-shot splice detection and localisation of photos with a
//! checkpoint's image tower; per photo a 16-bit splice map, a mask, a heat map and a JSON
//! record (see `worker::detect::output`).

use std::path::PathBuf;

use anyhow::Context;
use worker::detect::report::{self, ReportPhoto};
use worker::detect::{self, output, AnalysisParams, DetectParams};
use worker::runtime::model::LoadedModel;

use super::{load_checkpoint, load_optional_config, StoreArgs};

/// Arguments of `worker detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A training config: its checkpoint.url is the default checkpoint, and it describes
    /// the model of checkpoints that do not carry their own config (older ones).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A checkpoint directory URL or path (its newest complete checkpoint), or one
    /// checkpoint's `step-N` directory. Default: the config's checkpoint.url, and without
    /// --config the model shipped with the project (models/default, or $WORKER_MODEL).
    #[arg(long, value_name = "REF")]
    pub checkpoint: Option<String>,
    /// Where the outputs go (created if missing).
    #[arg(long, value_name = "DIR", default_value = "detect-out")]
    pub out: PathBuf,
    /// About this many patches along the longest side (the paper uses 25).
    #[arg(long, default_value_t = 25)]
    pub per_side: u32,
    /// Patches per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Mean-shift bandwidth as a percentile of the pairwise distances.
    #[arg(long, default_value_t = 10.0)]
    pub bandwidth_percentile: f64,
    /// Mean-shift iterations.
    #[arg(long, default_value_t = 5)]
    pub mean_shift_iters: usize,
    /// Largest photo accepted, in megapixels (about 10 bytes of memory per pixel).
    #[arg(long, default_value_t = 200)]
    pub max_megapixels: u64,
    /// Most patches analysed per photo (the analysis is cubic in patches): larger photos
    /// get patches spread past a patch side, said in the record (`grid.budgeted`).
    #[arg(long, default_value_t = 4096)]
    pub max_patches: usize,
    /// Also write one self-contained HTML page of the results here (DIR/index.html):
    /// each photo with its heat map, mask and scores, most suspicious first.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// The photos.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `worker detect`; fails if no photo could be analysed.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = load_optional_config(args.config.as_deref())?;
    let loaded = load_checkpoint(cfg.as_ref(), args.checkpoint.as_deref(), None, &args.store)?;
    let device = loaded.vs.device();
    let base = DetectParams::for_model(
        &loaded.model,
        loaded.config.spec.data.patch_px,
        args.per_side,
    );
    let params = DetectParams {
        batch: args.batch,
        max_pixels: args.max_megapixels.saturating_mul(1_000_000),
        max_patches: args.max_patches,
        analysis: AnalysisParams {
            bandwidth_percentile: args.bandwidth_percentile,
            mean_shift_iters: args.mean_shift_iters,
            ..base.analysis
        },
        ..base
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output folder {}", args.out.display()))?;
    let (mut done, mut skipped, mut pages) = (0usize, Vec::new(), Vec::new());
    for path in &args.images {
        let t = std::time::Instant::now();
        let result = detect::load_photo(path, params.max_pixels).and_then(|photo| {
            let (grid, analysis) = detect::detect(&loaded.model, &photo, &params, device)?;
            let record = output::write_outputs(path, &photo, &grid, &analysis, &args.out)?;
            if args.report.is_some() {
                pages.push(ReportPhoto::new(record.clone(), &photo, &analysis)?);
            }
            Ok(record)
        });
        match result {
            Ok(r) => {
                done += 1;
                println!(
                    "{}: dissimilarity {:.4} (higher is suspicious), consistency {:.4} (higher is authentic), mask {:.1} % of the photo -> {}",
                    path.display(),
                    r.mean_dissimilarity,
                    r.consistency,
                    100.0 * r.mask_fraction,
                    r.files.record
                );
                tracing::info!(image = %path.display(), seconds = t.elapsed().as_secs_f64(), "analysed");
            }
            Err(e) => {
                tracing::error!(image = %path.display(), error = %e, "skipped");
                eprintln!("{}: skipped: {e}", path.display());
                skipped.push((path.display().to_string(), e.to_string()));
            }
        }
    }
    if let Some(dir) = &args.report {
        let settings = settings(&args, &loaded, &params);
        let page = report::write(dir, &mut pages, &skipped, &settings)?;
        println!("report: {}", page.display());
    }
    anyhow::ensure!(
        done > 0,
        "none of the {} photo(s) could be analysed (see the errors above)",
        skipped.len()
    );
    if !skipped.is_empty() {
        eprintln!(
            "{} of {} photo(s) skipped",
            skipped.len(),
            args.images.len()
        );
    }
    Ok(())
}

/// The run's settings as the report lists them.
fn settings(args: &Args, loaded: &LoadedModel, params: &DetectParams) -> Vec<(String, String)> {
    let a = &params.analysis;
    [
        ("model", loaded.checkpoint.url.clone()),
        ("training step", loaded.checkpoint.step.to_string()),
        ("config digest", loaded.config.digest.as_str().to_string()),
        (
            "patch",
            format!(
                "{} px, about {} per side (at most {} per photo)",
                params.patch, params.per_side, params.max_patches
            ),
        ),
        (
            "mean shift",
            format!(
                "bandwidth at percentile {} of the distances, {} iterations",
                a.bandwidth_percentile, a.mean_shift_iters
            ),
        ),
        ("temperature", format!("{:.4} (the model's)", a.tau)),
        ("outputs", args.out.display().to_string()),
        ("written", report::utc_now()),
        ("worker", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
