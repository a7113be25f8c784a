//! EXIF reading against the reference: metadata-extractor's dumps of the real camera
//! photos, and YFCC100M-style lines built from those dumps.

use crate::support;
use dataloader::exif::frequency::FrequencyCounter;
use dataloader::exif::{parse_yfcc_line, read_jpeg, TagList};
use dataloader::TagMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One IFD0 / Exif SubIFD entry of a metadata-extractor dump.
struct DumpTag {
    directory: String,
    name: String,
    value: String,
}

/// Reads the `[Directory - 0x....] Name = value` lines of a dump. A value spread over several lines
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

/// The entries a tag map should hold: IFD0 and Exif SubIFD, without `Unknown tag`s.
fn exif_entries(dump: &[DumpTag]) -> Vec<&DumpTag> {
    dump.iter()
        .filter(|t| t.directory == "Exif IFD0" || t.directory == "Exif SubIFD")
        .filter(|t| !t.name.starts_with("Unknown tag ("))
        .collect()
}

/// The tag map a dump describes: its IFD0 then SubIFD entries (a repeated name keeps its
/// first position and takes the later value).
fn dump_tag_map(dump: &[DumpTag]) -> TagMap {
    exif_entries(dump)
        .into_iter()
        .map(|t| (t.name.clone(), t.value.clone()))
        .collect()
}

/// Form-encodes a YFCC key or value: `+` for a space, `%XX` for anything but letters,
/// digits and `-._~`.
fn yfcc_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A YFCC100M metadata line holding every entry of a dump (all directories, as the
/// dataset's file does).
fn yfcc_line(photo_id: &str, dump: &[DumpTag]) -> String {
    let pairs: Vec<String> = dump
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                yfcc_encode(&format!("{}.{}", t.directory, t.name)),
                yfcc_encode(&t.value)
            )
        })
        .collect();
    format!("{photo_id}\t{}", pairs.join(","))
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
    /// Pairs that differ only because the cropping rewrote the image size.
    crop_rewritten: usize,
    /// Disagreements (crop-aware) per tag: count and the first example.
    diffs: BTreeMap<String, (usize, String)>,
}

impl Agreement {
    /// Adds one image; a tag missing from `ours` counts as a disagreement.
    fn add(&mut self, image: &Path, dump: &[&DumpTag], ours: &TagMap, crop: Option<(u32, u32)>) {
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
                self.crop_rewritten += 1;
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
        eprintln!(
            "  {:4}  Exif Image Width/Height: the crop's own size, not the original's",
            self.crop_rewritten
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
        agreement.add(image, &exif_entries(dump), &ours, jpeg_size(&bytes));
    }
    agreement.print("read_jpeg vs metadata-extractor");
    // Strict: every pair the dumps list, the crop-rewritten image sizes included.
    let strict = agreement.rate(agreement.strict);
    assert!(strict >= 0.95, "strict agreement {strict:.4} below 0.95");
    // Crop-aware: the files as they are; everything else must agree.
    let crop_aware = agreement.rate(agreement.crop_aware);
    assert!(
        crop_aware >= 0.99,
        "crop-aware agreement {crop_aware:.4} below 0.99"
    );
}

/// YFCC100M lines built from the dumps parse back to the dumps' tag maps (only IFD0 and
/// SubIFD kept, names without the directory), and read_jpeg on the photo agrees with the
/// line on the same pairs as with the dump.
#[test]
fn yfcc_lines_give_the_same_maps_as_the_dumps_and_as_read_jpeg() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let dumps = dumps(&cameras);
    assert!(!dumps.is_empty());
    let (mut vs_dump, mut vs_line) = (Agreement::default(), Agreement::default());
    for (n, (image, dump)) in dumps.iter().enumerate() {
        let id = format!("{}", 1_000_000 + n);
        let (got_id, from_line) = parse_yfcc_line(&yfcc_line(&id, dump))
            .unwrap_or_else(|e| panic!("{}: {e}", image.display()));
        assert_eq!(got_id, id);
        let expected = dump_tag_map(dump);
        let pairs = |m: &TagMap| {
            m.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&from_line), pairs(&expected), "{}", image.display());

        let bytes = std::fs::read(image).expect("read image");
        let ours = read_jpeg(&bytes).expect("read_jpeg");
        let crop = jpeg_size(&bytes);
        let expected_entries = dump_tags(&expected);
        vs_dump.add(
            image,
            &expected_entries.iter().collect::<Vec<_>>(),
            &ours,
            crop,
        );
        let line_entries = dump_tags(&from_line);
        vs_line.add(image, &line_entries.iter().collect::<Vec<_>>(), &ours, crop);
    }
    vs_line.print("read_jpeg vs YFCC lines");
    assert_eq!(
        (vs_line.total, vs_line.strict),
        (vs_dump.total, vs_dump.strict)
    );
    assert_eq!(vs_line.crop_aware, vs_dump.crop_aware);
    assert!(vs_line.rate(vs_line.strict) >= 0.95);
    // A photo without EXIF has an empty line.
    let (id, empty) = parse_yfcc_line("123\t").expect("empty line");
    assert!(id == "123" && empty.is_empty());
}

/// The shipped tag list (`configs/exif-tags.toml`) is the one the camera photos give with
/// the paper's rule: tags in more than half of the images with at least 10 tags.
#[test]
fn bundled_tag_list_is_what_the_camera_photos_give() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let mut counter = FrequencyCounter::new(10);
    let mut images: Vec<PathBuf> = std::fs::read_dir(cameras.join("images"))
        .expect("images folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    images.sort();
    for image in &images {
        let map = read_jpeg(&std::fs::read(image).expect("read image")).expect("EXIF");
        counter.add(&map);
    }
    let report = counter.report(0.5);
    assert_eq!(
        report.tags,
        TagList::bundled().names(),
        "configs/exif-tags.toml is stale: regenerate it with `dataloader tags <cameras>/images --out configs/exif-tags.toml`"
    );
    // The camera-identifying tags the method relies on are in it.
    for tag in [
        "Make",
        "Model",
        "Exposure Time",
        "F-Number",
        "Focal Length",
        "ISO Speed Ratings",
    ] {
        assert!(
            report.tags.iter().any(|t| t == tag),
            "{tag} missing from the list"
        );
    }
}

/// A tag map's entries as dump lines (directory `Exif`), for the agreement counter.
fn dump_tags(map: &TagMap) -> Vec<DumpTag> {
    map.iter()
        .map(|(k, v)| DumpTag {
            directory: "Exif".into(),
            name: k.into(),
            value: v.into(),
        })
        .collect()
}
