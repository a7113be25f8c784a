//! `dataloader inspect`: a packed dataset's manifest summary and a few samples; with
//! `--verify`, every shard's size and SHA-256 and every sample range are checked.

use anyhow::Context;

use dataloader::shard::Dataset;

use super::pack::human_bytes;
use super::StoreArgs;

/// Arguments of `dataloader inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset URL (local folder, file://, s3://bucket/prefix, gs://, az://).
    pub url: String,
    /// Samples to print, from the start of the first shard.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub samples: usize,
    /// Read every shard whole: check its size and SHA-256 against the manifest and decode
    /// every sample. Fails if anything is off.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `dataloader inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let ds = args.store.open_dataset(&rt, &args.url)?;
    rt.block_on(inspect(&args, ds))
}

async fn inspect(args: &Args, ds: Dataset) -> anyhow::Result<()> {
    let m = ds.manifest();
    println!("dataset     {}", args.url);
    println!(
        "format      version {}, compression {}",
        m.format_version,
        m.compression.as_str()
    );
    println!("created by  {}", m.created_by);
    println!("source      {}", m.source);
    println!(
        "contents    {} samples in {} shard(s), {}",
        m.samples,
        m.shards.len(),
        human_bytes(m.total_bytes())
    );
    let skipped: Vec<String> = m.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "skipped     {}",
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    println!("tags        {} : {}", m.tags.len(), m.tags.join(", "));

    let mut shown = 0;
    'shards: for shard in 0..m.shards.len() {
        let index = ds.shard_index(shard).await?;
        for (i, e) in index.samples.iter().enumerate() {
            if shown >= args.samples {
                break 'shards;
            }
            match ds.fetch_sample(shard, i).await {
                Ok(s) => {
                    let first: Vec<String> = s
                        .tags
                        .iter()
                        .take(4)
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    println!(
                        "sample      {} : {}, {}x{}, {} tags{}: {}",
                        s.key,
                        human_bytes(s.jpeg.len() as u64),
                        e.width,
                        e.height,
                        s.tags.len(),
                        if s.jpeg_index.is_some() {
                            ", scan index"
                        } else {
                            ""
                        },
                        first.join("; ")
                    );
                }
                Err(err) if err.is_sample_error() => {
                    println!("sample      {} : UNREADABLE: {err}", e.key)
                }
                Err(err) => return Err(err).context("reading a sample"),
            }
            shown += 1;
        }
    }

    if args.verify {
        let mut failures = 0;
        for shard in 0..m.shards.len() {
            let c = ds.verify_shard(shard).await?;
            if c.is_ok() {
                println!(
                    "verify      {} ok ({} samples, {})",
                    c.name,
                    c.samples_checked,
                    human_bytes(c.bytes)
                );
                continue;
            }
            failures += 1;
            println!("verify      {} FAILED", c.name);
            if c.bytes != c.expected_bytes {
                println!(
                    "              size {} bytes, manifest says {}",
                    c.bytes, c.expected_bytes
                );
            }
            if c.sha256 != c.expected_sha256 {
                println!(
                    "              sha256 {}, manifest says {}",
                    c.sha256, c.expected_sha256
                );
            }
            if !c.trailer_ok {
                println!("              no end-of-archive blocks after the last sample");
            }
            for (key, err) in &c.bad_samples {
                println!("              sample {key}: {err}");
            }
        }
        anyhow::ensure!(
            failures == 0,
            "{failures} of {} shard(s) failed verification",
            m.shards.len()
        );
        println!("verify      all {} shard(s) ok", m.shards.len());
    }
    Ok(())
}
