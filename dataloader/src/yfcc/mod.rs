//! YFCC100M as its users have it: the main metadata file (`yfcc100m_dataset`, see
//! [`metadata`]), the EXIF expansion (`yfcc100m_exif`, see [`crate::exif::parse_yfcc_line`]),
//! both possibly bzip2-compressed and read as streams ([`lines`]), and the photos in a
//! bucket under the hash-derived layout of the public mirror (or another, see [`layout`]).
//!
//! [`Corpus`] walks the two files in step (the EXIF file lists the same photos in the same
//! order; it may also be a subsequence of the dataset file) and says, line by line, which
//! photos are worth fetching: videos, photos under a licence not asked for, photos without
//! an EXIF line or with fewer tags than the minimum are skipped and counted here, from the
//! metadata alone, before any photo is read.

pub mod layout;
pub mod lines;
pub mod metadata;

use crate::exif::parse_yfcc_line;
use crate::TagMap;
pub use layout::PhotoLayout;
pub use lines::{Lines, LinesError};
pub use metadata::{parse_line, url_hash, Record};

/// Which photos a corpus walk keeps.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Photos with fewer tags with a value are skipped.
    pub min_tags: usize,
    /// Licence codes to keep (`by`, `by-sa`, ... from the licence URL); empty: all.
    pub licences: Vec<String>,
}

/// What one line of the dataset file gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A photo to fetch and pack.
    Photo {
        /// Its metadata.
        record: Box<Record>,
        /// Its EXIF tags (from the EXIF file).
        tags: TagMap,
    },
    /// A line left out, with the reason's name (the pack skip counters' names).
    Skipped(&'static str),
}

/// Why a walk over the metadata failed.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] LinesError),
    /// The two files do not list the same photos in the same order.
    #[error("{exif} line {line} (photo {id}) matches no later line of {dataset}: the EXIF file must list the dataset file's photos in the same order, as the dataset ships them")]
    OutOfStep {
        /// The EXIF file.
        exif: String,
        /// The dataset file.
        dataset: String,
        /// The EXIF line number.
        line: u64,
        /// Its photo id.
        id: String,
    },
}

/// A walk over the dataset file and the EXIF file in step.
pub struct Corpus {
    dataset: Lines,
    exif: Lines,
    filter: Filter,
    /// An EXIF line read ahead that belongs to a later dataset line.
    pending: Option<(String, Result<TagMap, String>)>,
    exif_done: bool,
    /// Lines that did not parse so far (the first of each file is logged).
    pub bad_lines: u64,
}

impl Corpus {
    /// Walks `dataset` and `exif` together, keeping what `filter` allows.
    pub fn new(dataset: Lines, exif: Lines, filter: Filter) -> Self {
        Self {
            dataset,
            exif,
            filter,
            pending: None,
            exif_done: false,
            bad_lines: 0,
        }
    }

    /// The next dataset line's outcome; `None` after the last line.
    pub fn next_line(&mut self) -> Result<Option<Line>, CorpusError> {
        let Some(text) = self.dataset.next_line()? else {
            return match self.pending.take() {
                Some((id, _)) => Err(self.out_of_step(id)),
                None => Ok(None),
            };
        };
        let record = match metadata::parse_line(&text) {
            Ok(r) => r,
            Err(e) => {
                self.note_bad(self.dataset.name().to_string(), self.dataset.number(), &e);
                // Keep the files in step: consume this photo's EXIF line, found by the
                // id the line most likely holds.
                self.exif_for(&loose_id(&text))?;
                return Ok(Some(Line::Skipped("bad_metadata")));
            }
        };
        let tags = self.exif_for(&record.id)?;
        if record.is_video {
            return Ok(Some(Line::Skipped("video")));
        }
        if !self.filter.licences.is_empty()
            && !self
                .filter
                .licences
                .iter()
                .any(|l| l == record.licence_code())
        {
            return Ok(Some(Line::Skipped("licence")));
        }
        let tags = match tags {
            None => return Ok(Some(Line::Skipped("no_metadata"))),
            Some(Err(_)) => return Ok(Some(Line::Skipped("bad_exif"))),
            Some(Ok(t)) if t.is_empty() => return Ok(Some(Line::Skipped("no_exif"))),
            Some(Ok(t)) => t,
        };
        let present = tags.iter().filter(|(_, v)| !v.trim().is_empty()).count();
        if present < self.filter.min_tags {
            return Ok(Some(Line::Skipped("few_tags")));
        }
        Ok(Some(Line::Photo {
            record: Box::new(record),
            tags,
        }))
    }

    /// The EXIF line of photo `id`, if the EXIF file has one here.
    #[allow(clippy::type_complexity)]
    fn exif_for(&mut self, id: &str) -> Result<Option<Result<TagMap, String>>, CorpusError> {
        if self.pending.is_none() && !self.exif_done {
            match self.exif.next_line()? {
                None => self.exif_done = true,
                Some(line) => {
                    let parsed = parse_yfcc_line(&line).map_err(|e| e.to_string());
                    let line_id = match &parsed {
                        Ok((lid, _)) => lid.clone(),
                        Err(_) => line.split('\t').next().unwrap_or("").trim().to_string(),
                    };
                    if let Err(e) = &parsed {
                        let name = self.exif.name().to_string();
                        self.note_bad(name, self.exif.number(), e);
                    }
                    self.pending = Some((line_id, parsed.map(|(_, tags)| tags)));
                }
            }
        }
        match &self.pending {
            Some((pid, _)) if pid == id => Ok(self.pending.take().map(|(_, t)| t)),
            _ => Ok(None),
        }
    }

    fn out_of_step(&self, id: String) -> CorpusError {
        CorpusError::OutOfStep {
            exif: self.exif.name().to_string(),
            dataset: self.dataset.name().to_string(),
            line: self.exif.number(),
            id,
        }
    }

    fn note_bad(&mut self, file: String, line: u64, e: &dyn std::fmt::Display) {
        if self.bad_lines == 0 {
            tracing::warn!(%file, line, error = %e, "unreadable YFCC line (further ones are only counted)");
        }
        self.bad_lines += 1;
    }
}

/// The photo id of a line that does not parse: the second field after a numeric line
/// number, else the first.
fn loose_id(text: &str) -> String {
    let mut f = text.split('\t');
    let first = f.next().unwrap_or("");
    match f.next() {
        Some(second) if first.bytes().all(|b| b.is_ascii_digit()) && !second.is_empty() => {
            second.to_string()
        }
        _ => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::metadata::tests::{PHOTO, VIDEO};
    use super::*;

    fn lines(text: String) -> Lines {
        Lines::from_reader(Box::new(std::io::Cursor::new(text.into_bytes())), "mem")
    }

    fn photo_line(n: u64, id: &str, licence: &str) -> String {
        PHOTO
            .replacen("0\t6985418911", &format!("{n}\t{id}"), 1)
            .replace("by-nc-nd", licence)
    }

    fn exif_line(id: &str, tags: usize) -> String {
        let pairs: Vec<String> = (0..tags)
            .map(|i| format!("Exif+SubIFD.Tag+{i}:v{i}"))
            .collect();
        format!("{id}\t{}", pairs.join(","))
    }

    fn walk(
        dataset: Vec<String>,
        exif: Vec<String>,
        filter: Filter,
    ) -> Result<Vec<Line>, CorpusError> {
        let mut c = Corpus::new(lines(dataset.join("\n")), lines(exif.join("\n")), filter);
        let mut out = Vec::new();
        while let Some(l) = c.next_line()? {
            out.push(l);
        }
        Ok(out)
    }

    fn outcome(l: &Line) -> String {
        match l {
            Line::Photo { record, tags } => format!("{}:{}", record.id, tags.len()),
            Line::Skipped(r) => r.to_string(),
        }
    }

    #[test]
    fn lines_are_kept_or_skipped_for_the_right_reason() {
        let dataset = vec![
            photo_line(0, "11", "by"),
            VIDEO.to_string(),
            photo_line(2, "13", "by-nc"),
            photo_line(3, "14", "by"),
            photo_line(4, "15", "by"),
            "5\t16\ta line cut short".to_string(),
            photo_line(6, "17", "by-sa"),
        ];
        let exif = vec![
            exif_line("11", 12),
            exif_line("7843781152", 12),
            exif_line("13", 12),
            exif_line("14", 3),
            "15\t".to_string(),
            exif_line("16", 12),
            exif_line("17", 10),
        ];
        let filter = Filter {
            min_tags: 10,
            licences: vec!["by".into(), "by-sa".into()],
        };
        let got: Vec<String> = walk(dataset, exif, filter)
            .unwrap()
            .iter()
            .map(outcome)
            .collect();
        assert_eq!(
            got,
            [
                "11:12",
                "video",
                "licence",
                "few_tags",
                "no_exif",
                "bad_metadata",
                "17:10"
            ]
        );
    }

    #[test]
    fn an_exif_file_with_fewer_photos_stays_in_step_and_one_out_of_order_is_an_error() {
        let dataset = vec![
            photo_line(0, "1", "by"),
            photo_line(1, "2", "by"),
            photo_line(2, "3", "by"),
        ];
        let subset = vec![exif_line("1", 11), exif_line("3", 11)];
        let got: Vec<String> = walk(dataset.clone(), subset, Filter::default())
            .unwrap()
            .iter()
            .map(outcome)
            .collect();
        assert_eq!(got, ["1:11", "no_metadata", "3:11"]);
        let swapped = vec![exif_line("2", 11), exif_line("1", 11)];
        let err = walk(dataset, swapped, Filter::default()).unwrap_err();
        assert!(err.to_string().contains("same order"), "{err}");
    }
}
