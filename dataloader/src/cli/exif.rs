//! `dataloader exif`: print each photo's EXIF tag map and the text training would see
//! (bundled tag list, default format).

use anyhow::Context;
use dataloader::exif::{read_jpeg, render_text, TagList, TextFormat};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `dataloader exif`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one pretty JSON object per file (`file`, `tags`, `text`) instead of
    /// `Name: value` lines.
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
    let mut out = std::io::stdout().lock();
    let mut first = true;
    for path in &args.files {
        let result = std::fs::read(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .and_then(|bytes| {
                read_jpeg(&bytes)
                    .with_context(|| format!("cannot read the EXIF of {}", path.display()))
            });
        let map = match result {
            Ok(map) => map,
            Err(e) => {
                tracing::error!(file = %path.display(), "{e:#}");
                failed += 1;
                continue;
            }
        };
        let text = render_text(&map, &list, &format);
        if args.json {
            let doc = serde_json::json!({ "file": path.display().to_string(), "tags": map, "text": text });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            continue;
        }
        if !first {
            writeln!(out)?;
        }
        first = false;
        writeln!(out, "== {}", path.display())?;
        for (name, value) in map.iter() {
            writeln!(out, "{name}: {value}")?;
        }
        writeln!(
            out,
            "-- text ({} of {} listed tags):",
            count_rendered(&map, &list),
            list.len()
        )?;
        writeln!(out, "{text}")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_counted_and_fail_the_command_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let not_jpeg = dir.path().join("notes.jpg");
        std::fs::write(&not_jpeg, b"hello").unwrap();
        let no_exif = dir.path().join("plain.jpg");
        std::fs::write(&no_exif, [0xff, 0xd8, 0xff, 0xd9]).unwrap();
        let missing = dir.path().join("missing.jpg");
        let err = run(Args {
            json: true,
            files: vec![not_jpeg, no_exif, missing],
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "3 of 3 files could not be read");
    }
}
