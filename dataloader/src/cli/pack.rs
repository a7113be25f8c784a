//! `dataloader pack`: photos (a local folder or file list, JPEG objects under a URL, or
//! YFCC100M's metadata files and bucket) into webdataset-style tar shards under a URL, as
//! one process or as part I of N; and `dataloader merge-manifests`, which writes the
//! manifest once all parts have finished. Progress bar on a terminal, summary at the end.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use dataloader::exif::TagList;
use dataloader::pack::{self, Input, PackInput, PackOptions, TagListChoice, TagSource, YfccInput};
use dataloader::shard::{Compression, Manifest, WriterOptions};
use dataloader::yfcc::PhotoLayout;

use super::StoreArgs;

/// Arguments of `dataloader pack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A photo folder (searched recursively for *.jpg / *.jpeg), a text file with one
    /// photo path per line (relative paths are taken from the list's folder), or a URL
    /// (s3://bucket/prefix, ...) whose JPEG objects are packed. Not with --yfcc-dataset.
    #[arg(required_unless_present = "yfcc_dataset")]
    pub input: Option<String>,
    /// Where to write the dataset: a local folder, file://, s3://bucket/prefix, gs://, az://.
    #[arg(long, value_name = "URL")]
    pub out: String,
    /// Compress each sample as its own zstd frame (shards become .tar.zst; photos are
    /// then fetched whole, never by range).
    #[arg(long)]
    pub zstd: bool,
    /// Target shard size in MiB; a shard is closed before a photo would take it past this.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub shard_size_mb: u64,
    /// Photos with fewer EXIF tags are skipped.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub min_tags: usize,
    /// A YFCC100M EXIF metadata file for a local folder: tags come from it (matched by
    /// photo id = file name without extension) instead of the files' own EXIF.
    #[arg(long, value_name = "FILE", conflicts_with = "yfcc_dataset")]
    pub yfcc: Option<PathBuf>,
    /// YFCC100M's main metadata file (yfcc100m_dataset, plain or .bz2; path or URL).
    #[arg(long, value_name = "FILE", requires_all = ["yfcc_exif", "photos"])]
    pub yfcc_dataset: Option<String>,
    /// YFCC100M's EXIF expansion file (yfcc100m_exif, plain or .bz2; path or URL), listing
    /// the dataset file's photos in the same order.
    #[arg(long, value_name = "FILE", requires = "yfcc_dataset")]
    pub yfcc_exif: Option<String>,
    /// URL the YFCC100M photos lie under, as <hash[0:3]>/<hash[3:6]>/<hash>.jpg (the AWS
    /// mirror: s3://multimedia-commons/data/images).
    #[arg(long, value_name = "URL", requires = "yfcc_dataset")]
    pub photos: Option<String>,
    /// Where each YFCC100M photo lies under --photos: a template of {id}, {hash} and
    /// {hash[a:b]}. Default: the mirror's layout.
    #[arg(long, value_name = "TEMPLATE", default_value = dataloader::yfcc::layout::MIRROR, value_parser = PhotoLayout::parse)]
    pub photos_layout: PhotoLayout,
    /// Keep only YFCC100M photos under these licences (codes from the licence URL:
    /// by, by-sa, by-nd, by-nc, by-nc-sa, by-nc-nd), comma-separated. Default: all.
    #[arg(long, value_delimiter = ',', requires = "yfcc_dataset")]
    pub licence: Vec<String>,
    /// Tag list the training text uses, recorded in the manifest (TOML with `tags = [...]`,
    /// as `dataloader tags` writes). Default: the shipped configs/exif-tags.toml.
    #[arg(long, value_name = "FILE", conflicts_with = "tags_from_corpus")]
    pub tags: Option<PathBuf>,
    /// Compute the tag list from the packed photos instead (tags with a value in more
    /// than half of them).
    #[arg(long)]
    pub tags_from_corpus: bool,
    /// Pack only part I of N (0-based, e.g. 1/4): N machines pack together, then one runs
    /// `dataloader merge-manifests OUT`. Every part must get the same other arguments.
    #[arg(long, value_name = "I/N", value_parser = parse_part)]
    pub part: Option<(u32, u32)>,
    /// Photos per block, the unit of parts and reruns (a rerun keeps finished blocks).
    /// Must be the same for every part.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub block_size: u64,
    /// Photos prepared at once. Default: the number of cores.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Photos read from storage at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub fetch_concurrency: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `I/N` with `0 <= I < N`.
fn parse_part(s: &str) -> Result<(u32, u32), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("'{s}': give the part as I/N, e.g. 0/4"))?;
    let (i, n) = (
        i.trim().parse::<u32>().map_err(|e| format!("'{s}': {e}"))?,
        n.trim().parse::<u32>().map_err(|e| format!("'{s}': {e}"))?,
    );
    if n == 0 || i >= n {
        return Err(format!("'{s}': need 0 <= I < N"));
    }
    Ok((i, n))
}

/// Runs `dataloader pack`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.shard_size_mb > 0, "--shard-size-mb must be at least 1");
    let input = match (&args.input, &args.yfcc_dataset) {
        (None, Some(dataset)) => PackInput::Yfcc(YfccInput {
            dataset: dataset.clone(),
            exif: args.yfcc_exif.clone().context("--yfcc-exif is required")?,
            photos: args.photos.clone().context("--photos is required")?,
            layout: args.photos_layout.clone(),
            licences: args.licence.clone(),
        }),
        (Some(url), None) if url.contains("://") && !url.starts_with("file://") => {
            PackInput::Objects(url.clone())
        }
        (Some(path), None) => PackInput::Local(Input::from_path(Path::new(
            path.strip_prefix("file://").unwrap_or(path),
        ))?),
        (Some(_), Some(_)) => anyhow::bail!("give either INPUT or --yfcc-dataset, not both"),
        (None, None) => anyhow::bail!("give INPUT or --yfcc-dataset"),
    };
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
    opts.fetch_concurrency = args.fetch_concurrency.max(1);
    opts.block_size = args.block_size;
    opts.part = args.part.unwrap_or((0, 1));

    let bar = progress_bar("{bar:40} {pos}/{len} photos, {msg} [{elapsed_precise} < {eta}]")?;
    let progress = |p: &pack::PackProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(format!("{} packed, {}", p.packed, human_bytes(p.bytes)));
    };
    let summary = super::runtime()?
        .block_on(pack::pack(input.clone(), &opts, &progress))
        .with_context(|| format!("packing {} into {}", input.describe(), args.out))?;
    bar.finish_and_clear();

    let secs = summary.elapsed.as_secs_f64();
    let (part, parts) = opts.part;
    println!(
        "part {part}/{parts}: {} block(s) of {} packed, {} kept from an earlier run; {} photos in {:.1} s ({:.1} photos/s)",
        summary.blocks_packed,
        summary.blocks_total,
        summary.blocks_kept,
        summary.photos_packed,
        secs,
        summary.photos_packed as f64 / secs.max(1e-9),
    );
    match &summary.manifest {
        Some(m) => print_manifest(m, &args.out),
        None => println!(
            "when every part has finished: dataloader merge-manifests {}",
            args.out
        ),
    }
    Ok(())
}

/// Arguments of `dataloader merge-manifests`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The dataset URL every part packed into.
    pub url: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `dataloader merge-manifests`.
pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let m = super::runtime()?
        .block_on(pack::merge::merge(&args.url, &args.store.options()))
        .with_context(|| format!("merging the pack records at {}", args.url))?;
    print_manifest(&m, &args.url);
    Ok(())
}

fn print_manifest(m: &Manifest, url: &str) {
    println!(
        "manifest: {} photos in {} shard(s) ({}), {} -> {url}",
        m.samples,
        m.shards.len(),
        m.compression.as_str(),
        human_bytes(m.total_bytes()),
    );
    let skipped: u64 = m.skipped.values().sum();
    if skipped > 0 {
        let reasons: Vec<String> = m.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("skipped {skipped}: {}", reasons.join(", "));
    }
    println!("tag list: {} tags", m.tags.len());
}

fn progress_bar(template: &str) -> anyhow::Result<ProgressBar> {
    Ok(if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(template).context("progress bar template")?);
        bar
    } else {
        ProgressBar::hidden()
    })
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
