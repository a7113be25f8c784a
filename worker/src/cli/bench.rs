//! `worker bench step`: training-step time of a config's model on synthetic inputs, and
//! with `--compare-python` the same model and step in PyTorch, alternating in one run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use worker::bench::{median, time_steps};

use super::load_config;

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Time training steps (forward, backward, clipping, AdamW) without data loading.
    Step(StepArgs),
}

/// Arguments of `worker bench step`.
#[derive(Debug, clap::Args)]
pub struct StepArgs {
    /// Training config (TOML): the model, optimiser and device.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Pairs per step; default train.batch_size.
    #[arg(long)]
    pub batch: Option<i64>,
    /// Token row length (real texts are padded to the batch's longest).
    #[arg(long, default_value_t = 96)]
    pub seq_len: i64,
    /// Timed steps per round.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps first, per round.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Rounds; with --compare-python the implementations alternate.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// libtorch intra-op threads for both (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also time the same model in PyTorch (tests/python/bench_train_step.py).
    #[arg(long)]
    pub compare_python: bool,
    /// Python with torch, torchvision and transformers.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// The PyTorch side.
    #[arg(long, default_value = "tests/python/bench_train_step.py")]
    pub script: PathBuf,
}

/// Runs a benchmark command.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Step(a) => step(a),
    }
}

fn step(args: StepArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.config)?;
    let batch = args.batch.unwrap_or(i64::from(cfg.spec.train.batch_size));
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tch::set_num_threads(threads as i32);
    if args.compare_python && !args.script.exists() {
        bail!(
            "{} not found: run from the repository root or pass --script",
            args.script.display()
        );
    }
    let (mut rust, mut python) = (Vec::new(), Vec::new());
    let mut params = (0, 0);
    for round in 0..args.rounds.max(1) {
        let r = time_steps(&cfg, batch, args.seq_len, args.steps, args.warmup)?;
        tracing::info!(round, median_ms = r.median_ms, "rust/libtorch");
        params.0 = r.params;
        rust.extend(r.step_ms);
        if args.compare_python {
            let out = Command::new(&args.python)
                .arg(&args.script)
                .args(["--config", &args.config.display().to_string()])
                .args(["--batch", &batch.to_string()])
                .args(["--seq-len", &args.seq_len.to_string()])
                .args(["--steps", &args.steps.to_string()])
                .args(["--warmup", &args.warmup.to_string()])
                .args(["--threads", &threads.to_string()])
                .output()
                .with_context(|| format!("running {}", args.python.display()))?;
            if !out.status.success() {
                bail!(
                    "the PyTorch benchmark failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value = serde_json::from_str(line.trim())
                .with_context(|| format!("parsing the PyTorch benchmark's output {line:?}"))?;
            let ms: Vec<f64> = v["step_ms"]
                .as_array()
                .context("no step_ms in the PyTorch output")?
                .iter()
                .filter_map(|x| x.as_f64())
                .collect();
            params.1 = v["params"].as_i64().unwrap_or(0);
            tracing::info!(round, median_ms = median(&ms), "pytorch");
            python.extend(ms);
        }
    }
    println!(
        "config {}  batch {batch}  seq_len {}  threads {threads}  steps {} x {} rounds",
        args.config.display(),
        args.seq_len,
        args.steps,
        args.rounds
    );
    println!(
        "rust/libtorch  median {:8.1} ms/step  {:7.1} pairs/s  ({} parameters)",
        median(&rust),
        batch as f64 * 1e3 / median(&rust),
        params.0
    );
    if args.compare_python {
        println!(
            "pytorch        median {:8.1} ms/step  {:7.1} pairs/s  ({} parameters)",
            median(&python),
            batch as f64 * 1e3 / median(&python),
            params.1
        );
        println!(
            "pytorch / rust step time: {:.3}",
            median(&python) / median(&rust)
        );
        if params.0 != params.1 {
            bail!(
                "the two models differ: {} parameters here, {} in PyTorch",
                params.0,
                params.1
            );
        }
    }
    Ok(())
}
