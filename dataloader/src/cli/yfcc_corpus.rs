//! `dataloader generate-yfcc`: a YFCC100M-style corpus for testing the packer at scale: photos from the simulated
//! cameras with their EXIF stripped (as the mirror's photos are), laid out under the
//! mirror's hash layout, and the two metadata files, bzip2-compressed, written line by
//! line in the real formats (25-field dataset lines, URL-encoded `Directory.Tag:value`
//! EXIF lines), all under one URL:
//!
//! ```text
//! <url>/yfcc100m_dataset.bz2
//! <url>/yfcc100m_exif.bz2
//! <url>/data/images/<h[0:3]>/<h[3:6]>/<h>.jpg
//! <url>/truth.json            what packing must find (ids packed, skips by reason)
//! ```
//!
//! Among the lines, on fixed schedules: videos (no photo object), photos with too few
//! tags and with no EXIF, photos whose object is missing or truncated, and duplicates (the
//! bytes of the first photo under a new id). Sizes cycle from 320x240 to 4000x3000. A
//! handful of distinct renders per size are made distinct photos by a comment segment
//! holding the photo's id, so large corpora cost little to make.

use std::collections::BTreeMap;
use std::io::Write;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use dataloader::synth::{self, SynthOptions};
use dataloader::yfcc::{url_hash, PhotoLayout};
use dataloader::TagMap;
use infra::store::{self, StoreOptions};

/// Photo sizes, cycled (weights by repetition: mostly small, some 12 MP).
const SIZES: [(u32, u32); 8] = [
    (320, 240),
    (640, 480),
    (320, 240),
    (1024, 768),
    (640, 480),
    (320, 240),
    (1600, 1200),
    (640, 480),
];
/// Every this many lines a 12 MP photo replaces the cycled size.
const TWELVE_MP_EVERY: usize = 97;
/// Distinct renders per size.
const RENDERS_PER_SIZE: usize = 4;

/// The licences of the real file (name, URL code).
const LICENCES: [(&str, &str); 6] = [
    ("Attribution-NonCommercial-ShareAlike License", "by-nc-sa"),
    ("Attribution-NonCommercial-NoDerivs License", "by-nc-nd"),
    ("Attribution License", "by"),
    ("Attribution-NonCommercial License", "by-nc"),
    ("Attribution-ShareAlike License", "by-sa"),
    ("Attribution-NoDerivs License", "by-nd"),
];

/// What line `i` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Photo,
    Video,
    FewTags,
    NoExif,
    Missing,
    Truncated,
    Duplicate,
}

fn kind(i: usize) -> Kind {
    match i {
        _ if i % 50 == 49 => Kind::Video,
        _ if i % 40 == 39 => Kind::FewTags,
        _ if i % 60 == 59 => Kind::NoExif,
        _ if i % 111 == 110 => Kind::Missing,
        _ if i % 150 == 74 => Kind::Truncated,
        _ if i % 30 == 29 => Kind::Duplicate,
        _ => Kind::Photo,
    }
}

/// What packing the corpus with at least 10 tags and every licence must give.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// Lines of the dataset file.
    pub lines: u64,
    /// Ids that must be packed, in file order.
    pub packed: Vec<String>,
    /// Lines left out, by the packer's reason names.
    pub skipped: BTreeMap<String, u64>,
    /// Photos by licence code (before any other filter).
    pub licences: BTreeMap<String, u64>,
}

/// Arguments of `dataloader generate-yfcc`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the corpus (a local folder, s3://bucket/prefix, ...).
    #[arg(long, value_name = "URL")]
    pub out: String,
    /// Lines of the dataset file (photos, videos and the rest).
    #[arg(long, default_value_t = 1000)]
    pub lines: usize,
    /// Seed: the same arguments give the same corpus.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub store: super::StoreArgs,
}

/// Runs `dataloader generate-yfcc`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let truth = super::runtime()?.block_on(generate(
        &args.out,
        args.lines,
        args.seed,
        &args.store.options(),
    ))?;
    let skipped: Vec<String> = truth
        .skipped
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!(
        "wrote {} lines ({} photos to pack; skips: {}) to {} in {:.1} s",
        truth.lines,
        truth.packed.len(),
        skipped.join(", "),
        args.out,
        started.elapsed().as_secs_f64()
    );
    println!("pack it with: dataloader pack --yfcc-dataset {0}/yfcc100m_dataset.bz2 --yfcc-exif {0}/yfcc100m_exif.bz2 --photos {0}/data/images --out URL", args.out);
    Ok(())
}

/// Writes a corpus of `lines` dataset lines under `url`; returns what packing must give.
pub async fn generate(
    url: &str,
    lines: usize,
    seed: u64,
    opts: &StoreOptions,
) -> anyhow::Result<Truth> {
    let s = store::open(url, opts)?;
    if let Some(dir) = &s.local_dir {
        std::fs::create_dir_all(dir)?;
    }
    let renders = render_pool(seed).await?;
    let layout = PhotoLayout::default();
    let mut dataset = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    let mut exif = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    let mut truth = Truth::default();
    let mut uploads: Vec<(String, Bytes)> = Vec::new();
    // Duplicates repeat the first photo's bytes: most land in later blocks than it.
    let mut first: Option<Bytes> = None;
    for i in 0..lines {
        let k = kind(i);
        let id = 5_000_000_000u64 + seed * 10_000_000 + i as u64 * 7;
        let (lcode_name, lcode) = LICENCES[i % LICENCES.len()];
        let secret = format!("{:010x}", id.wrapping_mul(0x9E37_79B9) & 0xFF_FFFF_FFFF);
        let (server, farm) = (1000 + i % 9000, 1 + i % 9);
        let download = format!("http://farm{farm}.staticflickr.com/{server}/{id}_{secret}.jpg");
        let hash = url_hash(&download);
        let size_class = if i % TWELVE_MP_EVERY == TWELVE_MP_EVERY - 1 {
            SIZES.len()
        } else {
            i % SIZES.len()
        };
        let (jpeg, tags) = &renders[size_class * RENDERS_PER_SIZE + i % RENDERS_PER_SIZE];
        let camera = format!(
            "{}+{}",
            encode(tags.get("Make").unwrap_or("")),
            encode(tags.get("Model").unwrap_or(""))
        );
        let fields = [
            i.to_string(),
            id.to_string(),
            hash.clone(),
            format!("{}@N0{}", 10_000_000 + i % 5000, i % 9),
            format!("user{}", i % 5000),
            format!("2012-0{}-1{} 09:56:37.0", 1 + i % 9, i % 10),
            (1_331_840_483 + i as u64 * 17).to_string(),
            camera,
            format!("IMG_{i:04}"),
            if i % 3 == 0 {
                "a+line%0Aand+a+comma%2C+too".to_string()
            } else {
                String::new()
            },
            "tag+one,tag%2Ctwo".to_string(),
            String::new(),
            if i % 4 == 0 {
                "-81.804885".into()
            } else {
                String::new()
            },
            if i % 4 == 0 {
                "24.550558".into()
            } else {
                String::new()
            },
            if i % 4 == 0 {
                "12".into()
            } else {
                String::new()
            },
            format!("http://www.flickr.com/photos/x/{id}/"),
            download,
            lcode_name.to_string(),
            format!("http://creativecommons.org/licenses/{lcode}/2.0/"),
            server.to_string(),
            farm.to_string(),
            secret.clone(),
            secret.chars().rev().collect(),
            "jpg".to_string(),
            u8::from(k == Kind::Video).to_string(),
        ];
        writeln!(dataset, "{}", fields.join("\t"))?;
        let exif_tags: Vec<(&str, &str)> = match k {
            Kind::NoExif | Kind::Video => Vec::new(),
            Kind::FewTags => tags.iter().take(3).collect(),
            _ => tags.iter().collect(),
        };
        writeln!(exif, "{id}\t{}", exif_pairs(&exif_tags))?;
        *truth.licences.entry(lcode.to_string()).or_default() += 1;
        let path = format!("data/images/{}", layout.path(&id.to_string(), &hash));
        let bytes = match k {
            Kind::Video => {
                *truth.skipped.entry("video".into()).or_default() += 1;
                continue;
            }
            Kind::FewTags => {
                *truth.skipped.entry("few_tags".into()).or_default() += 1;
                continue;
            }
            Kind::NoExif => {
                *truth.skipped.entry("no_exif".into()).or_default() += 1;
                continue;
            }
            Kind::Missing => {
                *truth.skipped.entry("missing_photo".into()).or_default() += 1;
                continue;
            }
            Kind::Truncated => {
                *truth.skipped.entry("corrupt_jpeg".into()).or_default() += 1;
                let whole = with_comment(jpeg, id);
                Bytes::from(whole[..whole.len() / 2].to_vec())
            }
            Kind::Duplicate => match &first {
                Some(p) => {
                    *truth.skipped.entry("duplicate".into()).or_default() += 1;
                    p.clone()
                }
                None => {
                    truth.packed.push(id.to_string());
                    Bytes::from(with_comment(jpeg, id))
                }
            },
            Kind::Photo => {
                truth.packed.push(id.to_string());
                let b = Bytes::from(with_comment(jpeg, id));
                first.get_or_insert_with(|| b.clone());
                b
            }
        };
        uploads.push((path, bytes));
        if uploads.len() >= 256 {
            upload(&s, std::mem::take(&mut uploads)).await?;
        }
    }
    upload(&s, uploads).await?;
    truth.lines = lines as u64;
    let docs = [
        ("yfcc100m_dataset.bz2", Bytes::from(dataset.finish()?)),
        ("yfcc100m_exif.bz2", Bytes::from(exif.finish()?)),
        (
            "truth.json",
            Bytes::from(serde_json::to_vec_pretty(&truth)?),
        ),
    ];
    upload(
        &s,
        docs.into_iter().map(|(n, b)| (n.to_string(), b)).collect(),
    )
    .await?;
    Ok(truth)
}

/// Distinct renders per size class (the last class is 12 MP), EXIF stripped, with their
/// tags.
async fn render_pool(seed: u64) -> anyhow::Result<Vec<(Vec<u8>, TagMap)>> {
    let classes: Vec<(u32, u32)> = SIZES.iter().copied().chain([(4000, 3000)]).collect();
    let jobs: Vec<(usize, (u32, u32))> = classes
        .iter()
        .flat_map(|&wh| (0..RENDERS_PER_SIZE).map(move |k| (k, wh)))
        .collect();
    tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|(k, (width, height))| {
                let opts = SynthOptions {
                    count: RENDERS_PER_SIZE,
                    width,
                    height,
                    seed: seed ^ u64::from(width) << 20 ^ u64::from(height),
                    ..SynthOptions::default()
                };
                let photo = synth::render(k, &opts)?;
                let tags = dataloader::exif::read_jpeg(&photo.jpeg)?;
                Ok((strip_app1(&photo.jpeg), tags))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await?
}

async fn upload(s: &store::StoreUrl, items: Vec<(String, Bytes)>) -> anyhow::Result<()> {
    futures::stream::iter(items)
        .map(|(rel, bytes)| async move {
            let full = if s.prefix.as_ref().is_empty() {
                rel.clone()
            } else {
                format!("{}/{rel}", s.prefix.as_ref())
            };
            let path = ObjectPath::parse(&full)?;
            s.store.put(&path, PutPayload::from(bytes)).await?;
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The EXIF line's pairs: IFD0 tags for the camera and image description, SubIFD for
/// the rest, keys and values URL-encoded (`+` for a space).
fn exif_pairs(tags: &[(&str, &str)]) -> String {
    const IFD0: [&str; 6] = [
        "Make",
        "Model",
        "Orientation",
        "Software",
        "X Resolution",
        "Y Resolution",
    ];
    tags.iter()
        .map(|(k, v)| {
            let dir = if IFD0.contains(k) {
                "Exif IFD0"
            } else {
                "Exif SubIFD"
            };
            format!("{}:{}", encode(&format!("{dir}.{k}")), encode(v))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// URL-encodes like the dataset files: `+` for a space, `%XX` for anything but letters,
/// digits and `.-_`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The JPEG without its APP1 (EXIF/XMP) segments.
fn strip_app1(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF && jpeg[pos + 1] != 0xDA {
        let len = u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
        if jpeg[pos + 1] != 0xE1 {
            out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
        }
        pos += 2 + len;
    }
    out.extend_from_slice(&jpeg[pos..]);
    out
}

/// The JPEG with a comment segment holding `id` after its start marker: distinct bytes,
/// the same pixels.
fn with_comment(jpeg: &[u8], id: u64) -> Vec<u8> {
    let text = format!("yfcc-style test photo {id}");
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_lines_read_back_as_written() {
        let tags = [
            ("Make", "NIKON CORPORATION"),
            ("Focal Length", "18.0 mm"),
            ("Note", "a,b:c"),
        ];
        let line = format!("42\t{}", exif_pairs(&tags));
        let (id, map) = dataloader::exif::parse_yfcc_line(&line).unwrap();
        assert_eq!(id, "42");
        assert_eq!(map.iter().collect::<Vec<_>>(), tags.to_vec());
        let kinds: Vec<Kind> = (0..300).map(kind).collect();
        for k in [
            Kind::Video,
            Kind::FewTags,
            Kind::NoExif,
            Kind::Missing,
            Kind::Truncated,
            Kind::Duplicate,
        ] {
            assert!(kinds.contains(&k), "{k:?} never generated in 300 lines");
        }
    }
}
