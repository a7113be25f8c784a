//! EXIF reading against the reference: metadata-extractor's dumps of the real camera
//! photos, and YFCC100M-style lines built from those dumps.

use crate::support;
use dataloader::exif::read_jpeg;
use dataloader::TagMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One IFD0 / Exif SubIFD entry of a metadata-extractor dump.
struct DumpTag {
    directory: String,
    name: String,
    value: String,
}

/// Reads the `[Exif IFD0 - 0x....] Name = value` and `[Exif SubIFD - ...]` lines of a
/// dump, leaving out `Unknown tag (0x....)` entries. A value spread over several lines
/// (text with line breaks) is joined back with `\n`; blank lines after an entry belong to
/// its value unless they separate two directories (the last one then does).
fn parse_dump(text: &str) -> Vec<DumpTag> {
    let mut tags: Vec<DumpTag> = Vec::new();
    let mut open = false; // the last entry may still continue
    let mut blanks = 0;
    for line in text.split('\n') {
        if line.is_empty() {
            blanks += usize::from(open);
            continue;
        }
        let entry = line.strip_prefix('[').and_then(|rest| {
            let (head, entry) = rest.split_once("] ")?;
            let (directory, _id) = head.split_once(" - 0x")?;
            let (name, value) = entry.split_once(" = ")?;
            Some((directory, name, value))
        });
        match entry {
            Some((directory, name, value)) => {
                if open {
                    let last = tags.last_mut().expect("open entry");
                    let same_dir = last.directory == directory;
                    let in_value = if same_dir {
                        blanks
                    } else {
                        blanks.saturating_sub(1)
                    };
                    last.value.push_str(&"\n".repeat(in_value));
                }
                open = false;
                blanks = 0;
                if (directory == "Exif IFD0" || directory == "Exif SubIFD")
                    && !name.starts_with("Unknown tag (")
                {
                    tags.push(DumpTag {
                        directory: directory.into(),
                        name: name.into(),
                        value: value.into(),
                    });
                    open = true;
                }
            }
            None if open => {
                let last = tags.last_mut().expect("open entry");
                last.value.push_str(&"\n".repeat(blanks + 1));
                last.value.push_str(line);
                blanks = 0;
            }
            None => {}
        }
    }
    tags
}

/// Width and height from a JPEG's start-of-frame segment.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xff {
            return None;
        }
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if matches!(marker, 0xc0..=0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf) {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
            return Some((u32::from(w), u32::from(h)));
        }
        i += 2 + len;
    }
    None
}

/// `(image path, dump entries)` for every dump whose image exists.
fn dumps(cameras: &Path) -> Vec<(PathBuf, Vec<DumpTag>)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(cameras.join("exif_dumps"))
        .expect("exif_dumps folder")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for dump in entries {
        let Some(image_name) = dump
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".txt"))
        else {
            continue;
        };
        let image = cameras.join("images").join(image_name);
        if !image.is_file() {
            continue;
        }
        let bytes = std::fs::read(&dump).expect("read dump");
        out.push((image, parse_dump(&String::from_utf8_lossy(&bytes))));
    }
    out
}

/// Counts of agreeing (image, tag) pairs.
#[derive(Default)]
struct Agreement {
    total: usize,
    /// Our value equals the dump's.
    strict: usize,
    /// Also counting `Exif Image Width/Height` equal to the crop's real size: the photos
    /// are crops of the dumped originals, and the cropping rewrote those two tags.
    crop_aware: usize,
    /// Disagreements (crop-aware) per tag: count and the first example.
    diffs: BTreeMap<String, (usize, String)>,
}

impl Agreement {
    /// Adds one image; a tag missing from `ours` counts as a disagreement.
    fn add(&mut self, image: &Path, dump: &[DumpTag], ours: &TagMap, crop: Option<(u32, u32)>) {
        for t in dump {
            self.total += 1;
            let got = ours.get(&t.name);
            if got == Some(t.value.as_str()) {
                self.strict += 1;
                self.crop_aware += 1;
                continue;
            }
            let crop_value = match (t.name.as_str(), crop) {
                ("Exif Image Width", Some((w, _))) => Some(format!("{w} pixels")),
                ("Exif Image Height", Some((_, h))) => Some(format!("{h} pixels")),
                _ => None,
            };
            if crop_value.is_some() && got == crop_value.as_deref() {
                self.crop_aware += 1;
                continue;
            }
            let e = self
                .diffs
                .entry(t.name.clone())
                .or_insert((0, String::new()));
            if e.0 == 0 {
                let file = image.file_name().unwrap().to_string_lossy();
                e.1 = format!("{file}: reference {:?}, ours {:?}", t.value, got);
            }
            e.0 += 1;
        }
    }

    fn rate(&self, agree: usize) -> f64 {
        agree as f64 / self.total.max(1) as f64
    }

    fn print(&self, title: &str) {
        eprintln!(
            "{title}: strict {}/{} = {:.4}, crop-aware {}/{} = {:.4}",
            self.strict,
            self.total,
            self.rate(self.strict),
            self.crop_aware,
            self.total,
            self.rate(self.crop_aware)
        );
        let mut sorted: Vec<_> = self.diffs.iter().collect();
        sorted.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        for (name, (n, example)) in sorted {
            eprintln!("  {n:4}  {name}  e.g. {example}");
        }
    }
}

/// Our tag maps agree with metadata-extractor on at least 95% of the (image, tag) pairs
/// its dumps list for IFD0 and the Exif SubIFD.
#[test]
fn read_jpeg_agrees_with_metadata_extractor_dumps() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let dumps = dumps(&cameras);
    assert!(
        dumps.len() >= 300,
        "expected the ~331 dumps, found {}",
        dumps.len()
    );
    let mut agreement = Agreement::default();
    for (image, dump) in &dumps {
        let bytes = std::fs::read(image).expect("read image");
        let ours = read_jpeg(&bytes).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
        agreement.add(image, dump, &ours, jpeg_size(&bytes));
    }
    agreement.print("read_jpeg vs metadata-extractor");
    let rate = agreement.rate(agreement.crop_aware);
    assert!(rate >= 0.95, "agreement {rate:.4} below 0.95");
}
