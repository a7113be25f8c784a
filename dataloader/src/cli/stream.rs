//! `dataloader stream`: stream one rank's batches of an epoch and print what was seen.

use dataloader::order::{RankPlan, TailPolicy};
use dataloader::stream::{Batch, BatchStream, CounterSnapshot, StreamOptions};
use dataloader::tokenize::TextTokenizer;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `dataloader stream`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL of a packed dataset (local path, file://, s3://, gs://, az://).
    pub url: String,
    /// Global batch size (split over the ranks).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// This rank.
    #[arg(long, default_value_t = 0)]
    pub rank: usize,
    /// Number of ranks.
    #[arg(long, default_value_t = 1)]
    pub world: usize,
    /// Seed of the order and the crops.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epoch.
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    /// Samples of the epoch already consumed globally (resume position).
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Stop after this many batches.
    #[arg(long)]
    pub max_batches: Option<u64>,
    #[command(flatten)]
    pub store: super::StoreArgs,
    /// The bert-base-uncased vocab.txt (default: $EXIFLANG_VOCAB or the project's .venv).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Shards per shuffling window.
    #[arg(long, default_value_t = 4)]
    pub window_shards: usize,
    /// Samples fetched and decoded concurrently.
    #[arg(long, default_value_t = 64)]
    pub prefetch: usize,
    /// Decode threads (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Crops taken from each photo (2 for CropCLR's positive pairs).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub crops: u32,
    /// What to do with the last incomplete global batch.
    #[arg(long, value_enum, default_value_t = TailPolicy::Drop)]
    pub tail: TailPolicy,
}

/// Runs `dataloader stream`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let dataset = args.store.open_dataset(&rt, &args.url)?;
    let tokenizer = TextTokenizer::discover(args.vocab.as_deref())?;
    let mut opts = StreamOptions::new(RankPlan::new(args.batch_size, args.world, args.rank)?);
    opts.seed = args.seed;
    opts.epoch = args.epoch;
    opts.start = args.start;
    opts.window_shards = args.window_shards;
    opts.prefetch = args.prefetch;
    opts.tail = args.tail;
    opts.crops_per_sample = args.crops;
    if let Some(t) = args.threads {
        opts.decode_threads = t;
    }
    let mut stream = BatchStream::start(rt.handle(), Arc::new(dataset), Arc::new(tokenizer), opts)?;
    let schedule = stream.schedule();
    let total = args
        .max_batches
        .map_or(schedule.batches, |m| m.min(schedule.batches));
    println!(
        "epoch {} of {} samples: {} global batches of {} from position {} ({} tail samples dropped); rank {}/{} reads {} batches",
        args.epoch, stream.epoch_len(), schedule.batches, args.batch_size, args.start, schedule.dropped, args.rank, args.world, total
    );
    let progress = progress_bar(total);
    let mut last = None;
    for _ in 0..total {
        let Some(batch) = stream.next_blocking() else {
            break;
        };
        let batch = batch?;
        progress.suspend(|| println!("{}", describe(&batch)));
        progress.inc(1);
        last = Some(batch.resume);
    }
    progress.finish_and_clear();
    println!("{}", summary(&stream.counters()));
    if let Some(p) = last {
        println!("resume with --epoch {} --start {}", p.epoch, p.consumed);
    }
    Ok(())
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} batches {per_sec} eta {eta}")
    {
        pb.set_style(style);
    }
    pb
}

/// One line per batch: shape, first keys, first text, token lengths.
pub fn describe(b: &Batch) -> String {
    let lengths: Vec<usize> = b
        .attention_mask
        .chunks(b.seq_len.max(1))
        .map(|m| m.iter().filter(|&&v| v == 1).count())
        .collect();
    let (min, max) = (
        lengths.iter().min().copied().unwrap_or(0),
        lengths.iter().max().copied().unwrap_or(0),
    );
    let mean = lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64;
    let keys: Vec<&str> = b.keys.iter().take(3).map(String::as_str).collect();
    let text: String = b
        .texts
        .first()
        .map_or(String::new(), |t| t.chars().take(100).collect());
    format!(
        "batch {}: pixels {}x{}x{}x{}x3, ids {}x{}, keys {:?}{}, tokens min/mean/max {}/{:.1}/{}, text {:?}",
        b.index,
        b.len(),
        b.crops,
        b.patch,
        b.patch,
        b.len(),
        b.seq_len,
        keys,
        if b.len() > 3 { " ..." } else { "" },
        min,
        mean,
        max,
        text
    )
}

/// The counters as a few lines.
pub fn summary(c: &CounterSnapshot) -> String {
    let skipped: Vec<String> = c.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
    format!(
        "{} samples in {} batches; skipped {} ({}); tail dropped {}; read {:.1} MB in {} requests for {} samples ({:.1} KB and {:.2} requests per sample, {} by range); waited {:.2} s for data",
        c.samples,
        c.batches,
        c.skipped_total(),
        if skipped.is_empty() { "none".into() } else { skipped.join(", ") },
        c.dropped_tail,
        c.bytes_read as f64 / 1e6,
        c.requests,
        c.fetched,
        c.bytes_read as f64 / 1e3 / c.fetched.max(1) as f64,
        c.requests as f64 / c.fetched.max(1) as f64,
        c.ranged,
        c.wait.as_secs_f64()
    )
}
