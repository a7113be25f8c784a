//! `dataloader pack`: photos (a folder, a file list, or a folder plus a YFCC100M metadata
//! file) into webdataset-style tar shards under a URL, with a progress bar on a terminal
//! and a summary at the end.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use dataloader::exif::TagList;
use dataloader::pack::{self, Input, PackOptions, TagListChoice, TagSource};
use dataloader::shard::{Compression, WriterOptions};

use super::StoreArgs;

/// Arguments of `dataloader pack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A photo folder (searched recursively for *.jpg / *.jpeg) or a text file with one
    /// photo path per line (relative paths are taken from the list's folder).
    pub input: PathBuf,
    /// Where to write the dataset: a local folder, file://, s3://bucket/prefix, gs://, az://.
    #[arg(long, value_name = "URL")]
    pub out: String,
    /// Compress each sample as its own zstd frame (shards become .tar.zst).
    #[arg(long)]
    pub zstd: bool,
    /// Target shard size in MiB; a shard is closed before a photo would take it past this.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub shard_size_mb: u64,
    /// Photos with fewer EXIF tags are skipped.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub min_tags: usize,
    /// YFCC100M EXIF metadata file: tags come from it (matched by photo id = file name
    /// without extension) instead of the files' own EXIF.
    #[arg(long, value_name = "FILE")]
    pub yfcc: Option<PathBuf>,
    /// Tag list the training text uses, recorded in the manifest (TOML with `tags = [...]`,
    /// as `dataloader tags` writes). Default: the shipped configs/exif-tags.toml.
    #[arg(long, value_name = "FILE", conflicts_with = "tags_from_corpus")]
    pub tags: Option<PathBuf>,
    /// Compute the tag list from the packed photos instead (tags with a value in more
    /// than half of them).
    #[arg(long)]
    pub tags_from_corpus: bool,
    /// Photos prepared at once. Default: the number of cores.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `dataloader pack`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.shard_size_mb > 0, "--shard-size-mb must be at least 1");
    let input = Input::from_path(&args.input)?;
    let mut opts = PackOptions::new(args.out.clone());
    opts.store = args.store.options();
    opts.writer = WriterOptions {
        compression: if args.zstd {
            Compression::Zstd
        } else {
            Compression::None
        },
        shard_size_bytes: args.shard_size_mb << 20,
        ..WriterOptions::default()
    };
    opts.min_tags = args.min_tags;
    if let Some(y) = &args.yfcc {
        opts.tags = TagSource::Yfcc(y.clone());
    }
    if let Some(t) = &args.tags {
        opts.tag_list = TagListChoice::Given(TagList::load(t)?);
    } else if args.tags_from_corpus {
        opts.tag_list = TagListChoice::FromCorpus;
    }
    if let Some(j) = args.jobs {
        opts.parallelism = j.max(1);
    }

    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} photos, {msg} [{elapsed_precise} < {eta}]",
            )
            .context("progress bar template")?,
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = |p: &pack::PackProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("{} packed, {}", p.packed, human_bytes(p.bytes)));
    };
    let summary = super::runtime()?
        .block_on(pack::pack(&input, &opts, &progress))
        .with_context(|| format!("packing {} into {}", args.input.display(), args.out))?;
    bar.finish_and_clear();

    let m = &summary.manifest;
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "packed {} photos into {} shard(s) ({}), {}, in {:.1} s ({:.1} photos/s) -> {}",
        m.samples,
        m.shards.len(),
        m.compression.as_str(),
        human_bytes(m.total_bytes()),
        secs,
        m.samples as f64 / secs.max(1e-9),
        args.out
    );
    let skipped: u64 = m.skipped.values().sum();
    if skipped > 0 {
        let reasons: Vec<String> = m.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("skipped {skipped}: {}", reasons.join(", "));
    }
    println!("tag list: {} tags", m.tags.len());
    Ok(())
}

/// `1234567` -> `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
