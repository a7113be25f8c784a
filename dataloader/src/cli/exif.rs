//! `dataloader exif`: print each photo's EXIF tag map and the text training would see
//! (bundled tag list, default format).

use anyhow::Context;
use dataloader::exif::{read_jpeg, render_text, TagList, TextFormat};
use std::path::PathBuf;

/// Arguments of `dataloader exif`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the tag map as pretty JSON instead of `Name: value` lines.
    #[arg(long)]
    json: bool,
    /// JPEG files to read.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Prints every readable file; reports each unreadable one on stderr and fails at the end
/// if any was.
pub fn run(args: Args) -> anyhow::Result<()> {
    let list = TagList::bundled();
    let format = TextFormat::default();
    let mut failed = 0usize;
    for (i, path) in args.files.iter().enumerate() {
        let result = std::fs::read(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .and_then(|bytes| {
                read_jpeg(&bytes)
                    .with_context(|| format!("cannot read the EXIF of {}", path.display()))
            });
        let map = match result {
            Ok(map) => map,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        if i > 0 {
            println!();
        }
        println!("== {}", path.display());
        if args.json {
            println!("{}", serde_json::to_string_pretty(&map)?);
        } else {
            for (name, value) in map.iter() {
                println!("{name}: {value}");
            }
        }
        println!(
            "-- text ({} of {} listed tags):",
            count_rendered(&map, &list),
            list.len()
        );
        println!("{}", render_text(&map, &list, &format));
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files could not be read", args.files.len());
    }
    Ok(())
}

/// How many tags of the list the text holds.
fn count_rendered(map: &dataloader::TagMap, list: &TagList) -> usize {
    list.names()
        .iter()
        .filter(|n| {
            !dataloader::exif::text::is_private(n)
                && map.get(n).is_some_and(|v| !v.trim().is_empty())
        })
        .count()
}
