//! `dataloader tags`: per-tag frequencies over a corpus of JPEG photos (and optionally a
//! YFCC100M metadata file), written as TOML with the selected tag list.

use anyhow::Context;
use dataloader::exif::frequency::{
    FrequencyCounter, TagFrequencies, TagFrequency, DEFAULT_MIN_TAGS, DEFAULT_THRESHOLD,
};
use dataloader::exif::{parse_yfcc_line, read_jpeg, ExifError};
use dataloader::yfcc::Lines;
use dataloader::TagMap;
use infra::store::StoreOptions;
use rayon::prelude::*;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `dataloader tags`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders (searched recursively for .jpg/.jpeg) and JPEG files.
    inputs: Vec<PathBuf>,
    /// Where to write the TOML (frequencies and the selected `tags` list).
    #[arg(long)]
    out: PathBuf,
    /// Select the tags present in more than this fraction of the counted images.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// Only count images with at least this many tags.
    #[arg(long, default_value_t = DEFAULT_MIN_TAGS)]
    min_tags: usize,
    /// A YFCC100M EXIF metadata file (`photo_id<TAB>key:value,...` per line; plain or
    /// bzip2, a path or an s3:// URL) to count too, streamed in constant memory.
    #[arg(long)]
    yfcc: Option<String>,
    /// Describe the corpus in the output with this text instead of the input paths.
    #[arg(long)]
    source: Option<String>,
}

/// The TOML document written to `--out`.
#[derive(Serialize)]
struct Output<'a> {
    source: String,
    images_seen: usize,
    images_counted: usize,
    images_without_exif: usize,
    files_failed: usize,
    min_tags: usize,
    threshold: f64,
    tags: &'a [String],
    frequencies: &'a [TagFrequency],
}

/// What reading the corpus gave besides the counts.
#[derive(Default)]
struct Tally {
    jpeg_files: usize,
    yfcc_lines: usize,
    without_exif: usize,
    failed: usize,
}

/// Counts the corpus, writes the TOML and prints a summary.
pub fn run(args: Args) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.threshold) {
        anyhow::bail!("--threshold must be in [0, 1), got {}", args.threshold);
    }
    if args.inputs.is_empty() && args.yfcc.is_none() {
        anyhow::bail!("nothing to count: give JPEG folders/files and/or --yfcc FILE");
    }
    let mut counter = FrequencyCounter::new(args.min_tags);
    let mut tally = Tally::default();

    let files = jpeg_files(&args.inputs)?;
    tally.jpeg_files = files.len();
    let maps: Vec<(PathBuf, Result<TagMap, String>)> = files
        .into_par_iter()
        .map(|path| {
            let map = std::fs::read(&path)
                .map_err(|e| format!("cannot read: {e}"))
                .and_then(|bytes| match read_jpeg(&bytes) {
                    Ok(map) => Ok(map),
                    Err(ExifError::Missing) => Ok(TagMap::new()),
                    Err(e) => Err(e.to_string()),
                });
            (path, map)
        })
        .collect();
    for (path, map) in maps {
        match map {
            Ok(map) if map.is_empty() => {
                tally.without_exif += 1;
                counter.add_untagged();
            }
            Ok(map) => {
                counter.add(&map);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping photo");
                tally.failed += 1;
            }
        }
    }
    if let Some(yfcc) = &args.yfcc {
        count_yfcc(yfcc, &mut counter, &mut tally)?;
    }

    let report = counter.report(args.threshold);
    let source = args
        .source
        .clone()
        .unwrap_or_else(|| describe_source(&args, &tally));
    write_output(&args.out, &source, &report, &tally)?;
    print_summary(&mut std::io::stdout().lock(), &args.out, &report, &tally)
        .context("cannot print the summary")
}

/// Every `.jpg` / `.jpeg` file under the inputs, sorted.
fn jpeg_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let path = entry
                .with_context(|| format!("cannot list {}", dir.display()))?
                .path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if is_jpeg_name(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut out)?;
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            anyhow::bail!("input {} is neither a folder nor a file", input.display());
        }
    }
    out.sort();
    Ok(out)
}

fn is_jpeg_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// Counts every line of a YFCC100M metadata file; malformed lines are skipped and counted.
/// Counts a YFCC100M EXIF file line by line (plain or bzip2, a path or a URL): memory
/// holds one line and the per-tag counts, never the file.
fn count_yfcc(
    source: &str,
    counter: &mut FrequencyCounter,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let mut lines = Lines::open(source, &StoreOptions::default(), rt.handle())?;
    while let Some(line) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        tally.yfcc_lines += 1;
        match parse_yfcc_line(&line) {
            Ok((_, map)) if map.is_empty() => {
                tally.without_exif += 1;
                counter.add_untagged();
            }
            Ok((_, map)) => {
                counter.add(&map);
            }
            Err(e) => {
                tracing::warn!(file = source, line = lines.number(), error = %e, "skipping YFCC line");
                tally.failed += 1;
            }
        }
    }
    Ok(())
}

fn describe_source(args: &Args, tally: &Tally) -> String {
    let mut parts = Vec::new();
    if !args.inputs.is_empty() {
        let names: Vec<String> = args
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        parts.push(format!(
            "{} JPEG files under {}",
            tally.jpeg_files,
            names.join(", ")
        ));
    }
    if let Some(y) = &args.yfcc {
        parts.push(format!("{} YFCC100M lines from {}", tally.yfcc_lines, y));
    }
    parts.join(" + ")
}

fn write_output(
    out: &Path,
    source: &str,
    report: &TagFrequencies,
    tally: &Tally,
) -> anyhow::Result<()> {
    let doc = Output {
        source: source.to_string(),
        images_seen: report.images_seen,
        images_counted: report.images_counted,
        images_without_exif: tally.without_exif,
        files_failed: tally.failed,
        min_tags: report.min_tags,
        threshold: report.threshold,
        tags: &report.tags,
        frequencies: &report.frequencies,
    };
    let header = "# EXIF tag frequencies, written by `dataloader tags`.\n\
                  # `tags` is the list the training text uses: tags present in more than `threshold`\n\
                  # of the images with at least `min_tags` tags, most frequent first (ties by name),\n\
                  # private tags excluded. `frequencies` lists every tag seen.\n";
    let body = toml::to_string_pretty(&doc).context("cannot write the frequencies as TOML")?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, format!("{header}{body}"))
        .with_context(|| format!("cannot write {}", out.display()))
}

fn print_summary(
    w: &mut impl Write,
    out: &Path,
    report: &TagFrequencies,
    tally: &Tally,
) -> std::io::Result<()> {
    writeln!(
        w,
        "{} images seen ({} JPEG files, {} YFCC lines; {} without EXIF, {} failed), {} with at least {} tags counted",
        report.images_seen,
        tally.jpeg_files,
        tally.yfcc_lines,
        tally.without_exif,
        tally.failed,
        report.images_counted,
        report.min_tags
    )?;
    writeln!(
        w,
        "{} distinct tags; {} present in more than {} of the counted images (private ones excluded):",
        report.frequencies.len(),
        report.tags.len(),
        report.threshold
    )?;
    for f in report
        .frequencies
        .iter()
        .filter(|f| report.tags.contains(&f.name))
    {
        writeln!(w, "  {:6.3}  {}", f.fraction, f.name)?;
    }
    writeln!(w, "written to {}", out.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yfcc_corpus_gives_a_toml_with_counts_frequencies_and_the_selected_list() {
        let dir = tempfile::tempdir().unwrap();
        let yfcc = dir.path().join("yfcc.txt");
        let lines = [
            "1\tExif+IFD0.Make:Canon,Exif+IFD0.Model:EOS,Exif+SubIFD.F-Number:f%2F2.8,Exif+IFD0.Artist:Me",
            "2\tExif+IFD0.Make:Nikon,Exif+IFD0.Model:D90,Exif+IFD0.Artist:You,GPS.GPS+Latitude:1",
            "3\tExif+IFD0.Make:Sony,Exif+SubIFD.F-Number:f%2F4.0,Exif+IFD0.Artist:Them",
            "4\t",
            "this line is broken",
        ];
        std::fs::write(&yfcc, lines.join("\n")).unwrap();
        let out = dir.path().join("sub/tags.toml");
        run(Args {
            inputs: vec![],
            out: out.clone(),
            threshold: 0.5,
            min_tags: 2,
            yfcc: Some(yfcc.display().to_string()),
            source: None,
        })
        .unwrap();
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(doc["images_seen"].as_integer(), Some(4));
        assert_eq!(doc["images_counted"].as_integer(), Some(3));
        assert_eq!(doc["images_without_exif"].as_integer(), Some(1));
        assert_eq!(doc["files_failed"].as_integer(), Some(1));
        assert!(doc["source"].as_str().unwrap().contains("5 YFCC100M lines"));
        // Make 3/3, Artist 3/3 (private), F-Number 2/3, Model 2/3: by count, ties by name.
        let tags: Vec<&str> = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(tags, ["Make", "F-Number", "Model"]);
        let freqs = doc["frequencies"].as_array().unwrap();
        assert_eq!(freqs[0]["name"].as_str(), Some("Artist"));
        assert_eq!(freqs[0]["private"].as_bool(), Some(true));
        // And the file loads as a tag list.
        let list = dataloader::exif::TagList::load(&out).unwrap();
        assert_eq!(list.names(), tags);
    }

    #[test]
    fn bad_arguments_are_refused_with_the_reason() {
        let args = |threshold| Args {
            inputs: vec![],
            out: PathBuf::from("x.toml"),
            threshold,
            min_tags: 10,
            yfcc: None,
            source: None,
        };
        assert!(run(args(1.5))
            .unwrap_err()
            .to_string()
            .contains("--threshold"));
        assert!(run(args(0.5))
            .unwrap_err()
            .to_string()
            .contains("nothing to count"));
    }
}
