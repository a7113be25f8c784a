//! `worker bench step`: training-step time of a config's model on synthetic inputs, and
//! with `--compare-python` the same model and step in PyTorch, alternating in one run.
//! `worker bench detect`: splice localisation after the embeddings against the reference
//! code's algorithm in Python/numpy on the same embeddings.

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
    /// Time splice localisation after the embeddings (optionally against Python/numpy).
    Detect(DetectArgs),
}

/// Arguments of `worker bench detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Photo width.
    #[arg(long, default_value_t = 757)]
    pub width: u32,
    /// Photo height.
    #[arg(long, default_value_t = 568)]
    pub height: u32,
    /// Patch side.
    #[arg(long, default_value_t = 124)]
    pub patch: u32,
    /// About this many patches along the longest side.
    #[arg(long, default_value_t = 25)]
    pub per_side: u32,
    /// Embedding width (the paper's 768).
    #[arg(long, default_value_t = 768)]
    pub dim: i64,
    /// Timed runs of each side.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// libtorch intra-op threads (default 1, as numpy's loops use one core).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also time the reference algorithm (tests/python/splice_localize_ref.py).
    #[arg(long)]
    pub compare_python: bool,
    /// Python with numpy, scipy, scikit-learn and pillow.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// The Python side.
    #[arg(long, default_value = "tests/python/splice_localize_ref.py")]
    pub script: PathBuf,
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
    /// Also time PyTorch with every token row padded to this length (the reference code
    /// pads to 512); with --compare-python.
    #[arg(long)]
    pub python_pad_to: Option<i64>,
    /// Peak dense bf16 TFLOP/s of the GPU for model FLOPs utilisation (default: known for
    /// H100/H200/A100 by name); FLOPs per step are counted once by PyTorch.
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Also time the steps with the trainer's per-phase timing on (phase clock, time in
    /// collectives, FLOPs), alternating with steps without it, and print what it costs.
    #[arg(long)]
    pub phase_timing: bool,
}

/// One PyTorch measurement.
struct PythonRun {
    step_ms: Vec<f64>,
    params: i64,
    flops: Option<f64>,
    gpu: Option<String>,
}

/// Runs the PyTorch side once; `pad_to` pads the token rows, `flops` counts the FLOPs.
fn run_python(
    args: &StepArgs,
    cfg: &worker::config::Config,
    batch: i64,
    threads: usize,
    pad_to: Option<i64>,
    flops: bool,
) -> anyhow::Result<PythonRun> {
    let mut command = Command::new(&args.python);
    command
        .arg(&args.script)
        .args(["--config", &args.config.display().to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--seq-len", &args.seq_len.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--threads", &threads.to_string()]);
    if cfg.device.is_cuda() {
        command.args(["--device", "cuda"]);
    }
    if cfg.spec.train.precision == worker::config::Precision::Bf16 {
        command.arg("--bf16");
    }
    if let Some(n) = pad_to {
        command.args(["--pad-to", &n.to_string()]);
    }
    if flops {
        command.arg("--flops");
    }
    let out = command
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
    Ok(PythonRun {
        step_ms: v["step_ms"]
            .as_array()
            .context("no step_ms in the PyTorch output")?
            .iter()
            .filter_map(|x| x.as_f64())
            .collect(),
        params: v["params"].as_i64().unwrap_or(0),
        flops: v["flops_per_step"].as_f64(),
        gpu: v["gpu"].as_str().map(String::from),
    })
}

/// Runs a benchmark command.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Step(a) => step(a),
        BenchCommand::Detect(a) => detect(a),
    }
}

fn detect(args: DetectArgs) -> anyhow::Result<()> {
    use worker::detect::{bench, AnalysisParams, PatchGrid};
    tch::set_num_threads(args.threads.max(1) as i32);
    // The reference grid, so both sides analyse the same patches.
    let grid = PatchGrid::reference_layout(args.height, args.width, args.patch, args.per_side)?;
    let emb = bench::synthetic_embeddings(&grid, args.dim, 1);
    let params = AnalysisParams::default();
    let rust = bench::time_analysis(&emb, &grid, &params, args.rounds.max(1))?;
    println!(
        "{}x{} photo, {} patches ({} x {}, stride {}), dim {}, {} thread(s)",
        args.width,
        args.height,
        grid.len(),
        grid.ys.len(),
        grid.xs.len(),
        grid.stride,
        args.dim,
        args.threads
    );
    println!("rust/libtorch  median {:9.1} ms/photo", 1e3 * median(&rust));
    if !args.compare_python {
        return Ok(());
    }
    if !args.script.exists() {
        bail!(
            "{} not found: run from the repository root or pass --script",
            args.script.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let spec = bench::write_python_input(dir.path(), &emb, &grid)?;
    let out = Command::new(&args.python)
        .arg(&args.script)
        .arg(&spec)
        .args(["--rounds", &args.rounds.max(1).to_string()])
        .env("OMP_NUM_THREADS", args.threads.max(1).to_string())
        .env("OPENBLAS_NUM_THREADS", args.threads.max(1).to_string())
        .output()
        .with_context(|| format!("running {}", args.python.display()))?;
    if !out.status.success() {
        bail!(
            "the Python reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing the Python reference's output")?;
    let totals: Vec<f64> = v["times"]
        .as_array()
        .context("no times in the Python output")?
        .iter()
        .filter_map(|t| t["total"].as_f64())
        .collect();
    let first = &v["times"][0];
    println!(
        "python/numpy   median {:9.1} ms/photo  (vote {:.0} ms, mean shift {:.0} ms, ncut {:.0} ms)",
        1e3 * median(&totals),
        1e3 * first["vote"].as_f64().unwrap_or(f64::NAN),
        1e3 * first["mean_shift"].as_f64().unwrap_or(f64::NAN),
        1e3 * first["ncut"].as_f64().unwrap_or(f64::NAN),
    );
    println!("python / rust time: {:.1}", median(&totals) / median(&rust));
    Ok(())
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
    let (mut rust, mut python, mut padded) = (Vec::new(), Vec::new(), Vec::new());
    let mut with_timing = Vec::new();
    let (mut params, mut flops, mut gpu) = ((0, 0), None, None);
    for round in 0..args.rounds.max(1) {
        let r = time_steps(&cfg, batch, args.seq_len, args.steps, args.warmup, false)?;
        tracing::info!(round, median_ms = r.median_ms, "rust/libtorch");
        params.0 = r.params;
        rust.extend(r.step_ms);
        if args.phase_timing {
            let t = time_steps(&cfg, batch, args.seq_len, args.steps, args.warmup, true)?;
            tracing::info!(
                round,
                median_ms = t.median_ms,
                "rust/libtorch, phase timing on"
            );
            with_timing.extend(t.step_ms);
        }
        if args.compare_python {
            let p = run_python(&args, &cfg, batch, threads, None, round == 0)?;
            tracing::info!(round, median_ms = median(&p.step_ms), "pytorch");
            params.1 = p.params;
            flops = flops.or(p.flops);
            gpu = gpu.or(p.gpu);
            python.extend(p.step_ms);
            if let Some(n) = args.python_pad_to {
                let p = run_python(&args, &cfg, batch, threads, Some(n), false)?;
                tracing::info!(
                    round,
                    median_ms = median(&p.step_ms),
                    pad_to = n,
                    "pytorch, padded"
                );
                padded.extend(p.step_ms);
            }
        }
    }
    let device = if cfg.device.is_cuda() {
        format!("cuda ({})", gpu.as_deref().unwrap_or("GPU name unknown"))
    } else {
        format!("cpu, {threads} threads")
    };
    println!(
        "config {}  batch {batch}  seq_len {}  {device}  precision {:?}  steps {} x {} rounds",
        args.config.display(),
        args.seq_len,
        cfg.spec.train.precision,
        args.steps,
        args.rounds
    );
    let peak = args
        .peak_tflops
        .or_else(|| gpu.as_deref().and_then(kernels::flops::peak_bf16_tflops));
    let show = |name: &str, ms: &[f64], step_flops: Option<f64>| {
        let m = median(ms);
        let mfu = match (step_flops, peak) {
            (Some(f), Some(p)) => format!("  MFU {:.1}%", 100.0 * f / (m * 1e-3) / (p * 1e12)),
            _ => String::new(),
        };
        println!(
            "{name:<26} median {m:8.1} ms/step  {:8.1} pairs/s{mfu}",
            batch as f64 * 1e3 / m
        );
    };
    println!("rust/libtorch: {} trained parameters", params.0);
    // Both sides run the same model on rows of seq_len, so PyTorch's count holds for both.
    show("rust/libtorch", &rust, flops);
    if args.phase_timing {
        show("rust/libtorch, phase timing", &with_timing, flops);
        let (off, on) = (median(&rust), median(&with_timing));
        println!(
            "phase timing: {:+.3} ms/step ({:+.2}% of the step; medians of {} steps each, alternating rounds)",
            on - off,
            100.0 * (on - off) / off,
            rust.len()
        );
        let cost = worker::bench::phase_timing_cost(&cfg, args.seq_len, 200_000);
        println!(
            "phase timing work alone: {:.3} us/step ({:.5}% of the median step)",
            cost * 1e6,
            100.0 * cost / (off * 1e-3)
        );
    }
    if args.compare_python {
        show("pytorch", &python, flops);
        if let Some(n) = args.python_pad_to {
            show(&format!("pytorch, rows padded to {n}"), &padded, None);
        }
        if let Some(f) = flops {
            println!(
                "model FLOPs per step (counted by PyTorch at seq_len {}): {:.3e}",
                args.seq_len, f
            );
        }
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
