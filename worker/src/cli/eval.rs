//! `worker eval retrieval|splice`: one measurement of a checkpoint, printed (`worker eval
//! compare` sets such measurements side by side: [`super::compare`]); `worker eval
//! agent`: runs the evaluation jobs a coordinator leases (the config's eval suites).

use std::path::PathBuf;

use anyhow::Context;
use dataloader::order::RankPlan;
use worker::eval::retrieval::{evaluate, RetrievalOptions};
use worker::runtime::data::DataSource;

use super::{load_checkpoint, load_config, load_optional_config, StoreArgs};

/// Evaluation commands.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Patch -> EXIF text and patch -> other-crop retrieval on held-out photos.
    Retrieval(RetrievalArgs),
    /// Zero-shot splice detection and localisation on a splice dataset.
    Splice(SpliceArgs),
    /// Compare models' `eval splice --json` results on the same benchmarks: 95% bootstrap
    /// intervals over images and paired differences from a baseline.
    Compare(super::compare::CompareArgs),
    /// Run the evaluation jobs a coordinator leases: the eval suites of the training
    /// config on the job's checkpoints; results go next to each checkpoint and to the
    /// coordinator's registry.
    Agent(AgentArgs),
}

/// Arguments of `worker eval agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    /// The coordinator and how to talk to it.
    pub coordinator: super::CoordinatorArgs,
    /// The job's training config (model shape and the `[eval]` suites).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Name in the coordinator's status. Default: the host name.
    #[arg(long)]
    pub agent_name: Option<String>,
    /// Exit once training is over and nothing is left to evaluate (default: keep
    /// waiting for work, as a long-running service).
    #[arg(long)]
    pub until_over: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `worker eval splice`.
#[derive(Debug, clap::Args)]
pub struct SpliceArgs {
    /// A training config: its checkpoint.url is the default checkpoint, and it describes
    /// the model of checkpoints that do not carry their own config (older ones).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A checkpoint directory (its newest) or a `step-N` directory; default the config's
    /// checkpoint.url, without --config the default model (models/default, $WORKER_MODEL).
    #[arg(long, value_name = "REF")]
    pub checkpoint: Option<String>,
    /// The dataset folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Its layout: generic (labels.csv, as `worker splice-bench make` writes), columbia,
    /// dso1, korus, in_the_wild, casia1, casia2.
    #[arg(long, default_value = "generic")]
    pub kind: String,
    /// About this many patches along the longest side.
    #[arg(long, default_value_t = 25)]
    pub per_side: u32,
    /// Only the first N images (sorted by path).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `worker eval retrieval`.
#[derive(Debug, clap::Args)]
pub struct RetrievalArgs {
    /// A training config: its checkpoint.url is the default checkpoint, and it describes
    /// the model of checkpoints that do not carry their own config (older ones).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Checkpoint directory URL (its newest complete checkpoint); default the config's
    /// checkpoint.url, without --config the default model.
    #[arg(long, value_name = "URL")]
    pub checkpoints: Option<String>,
    /// The packed dataset to measure on (e.g. photos of held-out camera models).
    #[arg(long, value_name = "URL")]
    pub data: String,
    /// Photos per batch: each query picks among this many candidates.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Passes over the data, each with other crops.
    #[arg(long, default_value_t = 4)]
    pub rounds: u64,
    /// Seed of the order and crops.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs an evaluation command.
pub fn run(cmd: EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Retrieval(a) => retrieval(a),
        EvalCommand::Splice(a) => splice(a),
        EvalCommand::Compare(a) => super::compare::run(a),
        EvalCommand::Agent(a) => agent(a),
    }
}

fn agent(args: AgentArgs) -> anyhow::Result<()> {
    use worker::eval::agent::{run, AgentOptions};
    let cfg = load_config(&args.config)?;
    if cfg.spec.eval.suites.is_empty() {
        let message = format!(
            "the training config {} has no [[eval.suites]]: there is nothing this agent could run",
            args.config.display()
        );
        // Started by a launch for whatever config it runs: nothing to do is not a failure.
        anyhow::ensure!(args.until_over, "{message}");
        tracing::warn!("{message}");
        return Ok(());
    }
    let opts = AgentOptions {
        coordinator: args.coordinator.endpoint()?,
        name: args
            .agent_name
            .unwrap_or_else(|| super::host_name("eval-agent")),
        until_over: args.until_over,
        store: args.store.options(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = rt.block_on(run(opts, std::sync::Arc::new(cfg)))?;
    println!(
        "evaluations: {} done, {} failed, {} lost to other agents",
        summary.done, summary.failed, summary.lost
    );
    Ok(())
}

fn splice(args: SpliceArgs) -> anyhow::Result<()> {
    use worker::eval::datasets::{read_dataset, DatasetConfig, DatasetKind};
    let cfg = load_optional_config(args.config.as_deref())?;
    let kind: DatasetKind = args.kind.parse().map_err(anyhow::Error::msg)?;
    let listing = read_dataset(&DatasetConfig::new(kind, &args.data))?;
    let loaded = load_checkpoint(cfg.as_ref(), args.checkpoint.as_deref(), None, &args.store)?;
    let device = loaded.vs.device();
    let params = worker::detect::DetectParams::for_model(
        &loaded.model,
        loaded.config.spec.data.patch_px,
        args.per_side,
    );
    let report =
        worker::eval::splice::evaluate(&loaded.model, device, &listing, &params, args.limit);
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
    println!(
        "checkpoint {} (step {}), {}: {} spliced, {} authentic, {} failed",
        loaded.checkpoint.url,
        loaded.checkpoint.step,
        report.dataset,
        report.spliced,
        report.authentic,
        report.failed.len()
    );
    for (name, l) in [
        ("mean shift", &report.mean_shift),
        ("ncut", &report.ncut),
        ("chance ms", &report.chance_mean_shift),
        ("chance ncut", &report.chance_ncut),
    ] {
        println!(
            "{name:<11} p-mAP {}  cIoU {}  (as given: mAP {}, cIoU {})",
            pct(l.p_map),
            pct(l.ciou_either),
            pct(l.map),
            pct(l.ciou)
        );
    }
    for (name, d) in [
        ("consistency", &report.detection_consistency),
        ("1 - A", &report.detection_mean_dissimilarity),
    ] {
        println!("detection AP ({name}): {}", pct(d.map(|d| d.ap)));
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        report.spliced + report.authentic > 0,
        "no image of {} could be evaluated",
        args.data.display()
    );
    Ok(())
}

fn retrieval(args: RetrievalArgs) -> anyhow::Result<()> {
    let cfg = load_optional_config(args.config.as_deref())?;
    let store_opts = args.store.options();
    let loaded = load_checkpoint(cfg.as_ref(), args.checkpoints.as_deref(), None, &args.store)?;
    let device = loaded.vs.device();
    let plan = RankPlan::new(args.batch.max(2), 1, 0)?;
    let data = DataSource::open(&loaded.config.spec, &args.data, plan, &store_opts)?;
    let (model, newest) = (loaded.model, loaded.checkpoint);
    let opts = RetrievalOptions {
        batch: args.batch,
        rounds: args.rounds,
        seed: args.seed,
    };
    let report = evaluate(&model, device, &data, &opts)?;
    let show = |name: &str, a: &worker::eval::retrieval::Accuracy| {
        println!(
            "{name:<15} top-1 {:.3}  chance {:.3}  ({} queries, batch {})",
            a.top1, a.chance, a.queries, args.batch
        )
    };
    println!("checkpoint {} (step {})", newest.url, newest.step);
    if let Some(t) = &report.patch_to_text {
        show("patch -> text", t);
    }
    show("patch -> patch", &report.patch_to_patch);
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
