//! `worker eval compare`: models' `worker eval splice --json` results on the same
//! benchmarks, side by side with 95% bootstrap intervals over images and paired
//! differences from a baseline ([`worker::eval::compare`]), printed as Markdown tables.

use std::path::PathBuf;

use anyhow::Context;
use worker::eval::compare::{compare, Comparison, Interval, Metric, Run};
use worker::eval::splice::ImageResult;

/// Arguments of `worker eval compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// A model's results: NAME=FILE[,FILE...], one `worker eval splice --json` file per
    /// benchmark, the benchmarks in the same order for every model. Repeat per model.
    #[arg(long = "run", value_name = "NAME=FILES", required = true)]
    pub runs: Vec<String>,
    /// The run the others are compared with (paired differences).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Seed of the resamples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the comparison as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The part of a `worker eval splice --json` file read here.
#[derive(serde::Deserialize)]
struct SpliceResults {
    images: Option<Vec<ImageResult>>,
}

fn read_run(spec: &str) -> anyhow::Result<Run> {
    let (name, files) = spec
        .split_once('=')
        .filter(|(n, f)| !n.is_empty() && !f.is_empty())
        .with_context(|| format!("--run {spec}: write it as NAME=FILE[,FILE...]"))?;
    let benchmarks = files
        .split(',')
        .map(|file| {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            let results: SpliceResults = serde_json::from_str(&text)
                .with_context(|| format!("{file} is not a `worker eval splice --json` file"))?;
            results.images.with_context(|| {
                format!("{file} has no per-image scores: evaluate again with this version of `worker eval splice --json`")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Run {
        name: name.to_string(),
        benchmarks,
    })
}

fn cell(i: Option<&Interval>) -> String {
    i.map_or("-".into(), |i| {
        format!("{:.3} [{:.3}, {:.3}]", i.estimate, i.low, i.high)
    })
}

fn table(
    title: &str,
    rows: &std::collections::BTreeMap<String, std::collections::BTreeMap<Metric, Interval>>,
    order: &[String],
) {
    println!("{title}\n");
    let header: Vec<&str> = Metric::ALL.iter().map(|m| m.label()).collect();
    println!("| model | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(header.len()));
    for name in order.iter().filter(|n| rows.contains_key(*n)) {
        let cells: Vec<String> = Metric::ALL
            .iter()
            .map(|m| cell(rows[name].get(m)))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    println!();
}

/// Runs `worker eval compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    let runs: Vec<Run> = args
        .runs
        .iter()
        .map(|s| read_run(s))
        .collect::<anyhow::Result<_>>()?;
    let c: Comparison = compare(&runs, args.baseline.as_deref(), args.resamples, args.seed)?;
    let order: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let images: usize = runs[0].benchmarks.iter().map(Vec::len).sum();
    table(
        &format!(
            "Means over {} benchmark(s) ({images} images), 95% intervals from {} resamples of images:",
            runs[0].benchmarks.len(),
            c.resamples
        ),
        &c.runs,
        &order,
    );
    if let Some(base) = &c.baseline {
        table(
            &format!("Paired differences from {base}:"),
            &c.differences,
            &order,
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&c)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
