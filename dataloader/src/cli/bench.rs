//! `dataloader bench`: patches per second per core over the whole read path, optionally
//! beside the same path written the way the reference Python code does it.

use anyhow::{bail, Context};
use dataloader::bench::{self, Measurement};
use dataloader::order::RankPlan;
use dataloader::stream::{CropDecode, FetchMode, StreamOptions};
use dataloader::tokenize::TextTokenizer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// Arguments of `dataloader bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL of a packed dataset (`dataloader pack`).
    pub url: String,
    /// Batches to time, from the start of the stream.
    #[arg(long, default_value_t = 20)]
    pub batches: u64,
    /// Decode threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Samples fetched and decoded concurrently.
    #[arg(long, default_value_t = 64)]
    pub prefetch: usize,
    /// Seed of the order and the crops.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How crops are decoded; several modes (comma-separated) are measured one after the
    /// other on the same samples.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "indexed")]
    pub decode: Vec<CropDecode>,
    /// How samples are fetched; several modes (comma-separated) are measured one after
    /// the other, each with every --decode mode.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "auto")]
    pub fetch: Vec<FetchMode>,
    /// Crops per sample.
    #[arg(long, default_value_t = 1)]
    pub crops: u32,
    /// What one storage request costs in KiB of transfer (for --fetch auto and for
    /// joining nearby ranges).
    #[arg(long, default_value_t = dataloader::stream::fetch::DEFAULT_REQUEST_COST >> 10)]
    pub request_cost_kib: u64,
    /// Also run tests/python/bench_reference.py on the same (local) dataset and print the
    /// ratio.
    #[arg(long)]
    pub compare_python: bool,
    /// Python interpreter for --compare-python (default: the project's .venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The bert-base-uncased vocab.txt (default: $EXIFLANG_VOCAB or the project's .venv).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    #[command(flatten)]
    pub store: super::StoreArgs,
}

/// Runs `dataloader bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let dataset = args.store.open_dataset(&rt, &args.url)?;
    let tokenizer = Arc::new(TextTokenizer::discover(args.vocab.as_deref())?);
    let vocab = tokenizer.vocab_path().to_path_buf();
    let mut opts = StreamOptions::new(RankPlan::new(args.batch_size, 1, 0)?);
    opts.seed = args.seed;
    opts.decode_threads = args.threads;
    opts.prefetch = args.prefetch;
    let dataset = Arc::new(dataset);
    let len = dataset.manifest().samples;
    if len < args.batches * args.batch_size as u64 {
        bail!(
            "the dataset has {len} samples; {} batches of {} need {}: lower --batches or use more photos",
            args.batches,
            args.batch_size,
            args.batches * args.batch_size as u64
        );
    }
    opts.crops_per_sample = args.crops;
    opts.request_cost = args.request_cost_kib << 10;
    let mut per_core = Vec::new();
    for &fetch in &args.fetch {
        for &mode in &args.decode {
            let mut opts = opts.clone();
            opts.decode = mode;
            opts.fetch = fetch;
            let m = bench::measure(
                rt.handle(),
                dataset.clone(),
                tokenizer.clone(),
                opts,
                args.batches,
            )?;
            print_rust(&m, mode, fetch, args.threads);
            per_core.push((mode, m.patches_per_cpu_s()));
        }
    }

    if args.compare_python {
        let dir = local_dir(&args.url)?;
        let py = python_reference(&args, &dir, &vocab, args.batches)?;
        let (py_512, py_longest) = (
            py["patches_per_s"].as_f64().unwrap_or(0.0),
            py["patches_per_s_longest"].as_f64().unwrap_or(0.0),
        );
        println!("python reference (1 core): {py_512:.1} patches/s padded to 512, {py_longest:.1} patches/s padded to longest");
        println!("python stages (s): {}", py["seconds"]);
        for (mode, rust) in per_core {
            if let Some(rust) = rust {
                println!(
                    "ratio per core, decode {mode:?} (rust patches per CPU-second / python patches/s): {:.2}x vs padding to 512, {:.2}x vs padding to longest",
                    rust / py_512.max(1e-9),
                    rust / py_longest.max(1e-9)
                );
            }
        }
    }
    Ok(())
}

fn print_rust(m: &Measurement, mode: CropDecode, fetch: FetchMode, threads: usize) {
    println!("rust, fetch {fetch:?}, decode {mode:?}:");
    println!(
        "rust: {} patches of {} samples in {} batches, {:.2} s wall",
        m.patches,
        m.samples,
        m.batches,
        m.wall.as_secs_f64()
    );
    println!(
        "rust: {:.1} patches/s with {threads} decode thread(s), {:.1} patches/s per decode thread",
        m.patches_per_s(),
        m.patches_per_s() / threads as f64
    );
    match (m.cpu, m.patches_per_cpu_s()) {
        (Some(cpu), Some(p)) => println!(
            "rust: {:.2} CPU-s over all threads, {p:.1} patches per CPU-second (per core)",
            cpu.as_secs_f64()
        ),
        _ => println!("rust: CPU time not available on this platform"),
    }
    println!("rust: {}", super::stream::summary(&m.counters));
}

/// The folder of a local dataset URL (a path or file://).
fn local_dir(url: &str) -> anyhow::Result<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if url.contains("://") {
        bail!("--compare-python reads the shards from a local folder; '{url}' is remote: copy the dataset locally");
    }
    Ok(PathBuf::from(url))
}

/// Runs the Python reference and parses its JSON line.
fn python_reference(
    args: &Args,
    dir: &Path,
    vocab: &Path,
    batches: u64,
) -> anyhow::Result<serde_json::Value> {
    let script = find_up(Path::new("tests/python/bench_reference.py")).context(
        "tests/python/bench_reference.py not found above the working directory or the source tree",
    )?;
    let python = match &args.python {
        Some(p) => p.clone(),
        None => find_up(Path::new(".venv/bin/python")).unwrap_or_else(|| PathBuf::from("python3")),
    };
    eprintln!("running {} {}", python.display(), script.display());
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .args(["--vocab", &vocab.display().to_string()])
        .args([
            "--batch-size",
            &args.batch_size.to_string(),
            "--batches",
            &batches.to_string(),
        ])
        .args(["--seed", &args.seed.to_string()])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "the Python reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim())
        .with_context(|| format!("parsing the Python reference's output: {line}"))
}

/// `rel` under the working directory or one of its parents, or under the source tree.
fn find_up(rel: &Path) -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors())
        .map(|d| d.join(rel))
        .find(|p| p.exists())
}
