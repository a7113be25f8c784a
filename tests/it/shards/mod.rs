//! Shards on the local file system (and, through the helpers here, on S3): real camera
//! photos packed and read back byte-exact (`local`), inputs skipped and counted and tags
//! from EXIF or YFCC metadata (`packing`), corrupt, truncated or missing shards and bad URLs
//! reported as the right kind of error (`faults`), photos split by camera model into
//! training and held-out lists that pack (`split`).

mod faults;
mod local;
mod packing;
mod split;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dataloader::pack::{self, Input, PackOptions, TagListChoice, TagSource};
use dataloader::shard::{Compression, Dataset, Manifest, WriterOptions};
use dataloader::TagMap;
use infra::store::{RetryPolicy, StoreOptions};

use crate::support;

/// The first `n` real camera photos (sorted by name), or `None` to skip.
pub fn camera_photos(n: usize) -> Option<Vec<PathBuf>> {
    let mut files = testkit::camera_photos()?;
    assert!(
        files.len() >= n,
        "need {n} camera photos, found {}",
        files.len()
    );
    files.truncate(n);
    Some(files)
}

/// A hand-made tag map of `n` tags for photo id `id` (the EXIF reader is tested elsewhere).
pub fn tags_for(id: &str, n: usize) -> TagMap {
    let mut t = TagMap::new();
    t.insert("Make", id.split('_').next().unwrap_or("unknown"));
    t.insert("Model", id);
    for i in 2..n {
        t.insert(format!("Tag {i}"), format!("value {i} of {id}"));
    }
    t
}

/// Width and height of each camera photo by photo id, from the crop columns of
/// `manifest.csv` (read from the right: earlier columns may hold quoted commas).
fn photo_dimensions() -> HashMap<String, (u32, u32)> {
    let csv = support::cameras_dir().unwrap().join("manifest.csv");
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.rsplitn(4, ',').collect(); // exif_dump, crop_height, crop_width, rest
            let file = l.split(',').next().unwrap();
            (
                stem(Path::new(file)),
                (f[2].parse().unwrap(), f[1].parse().unwrap()),
            )
        })
        .collect()
}

pub fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Links `photos` into `dir` and returns their tag maps by photo id.
pub fn photo_folder(dir: &Path, photos: &[PathBuf]) -> HashMap<String, TagMap> {
    std::fs::create_dir_all(dir).unwrap();
    photos
        .iter()
        .map(|p| {
            std::os::unix::fs::symlink(p, dir.join(p.file_name().unwrap())).unwrap();
            (stem(p), tags_for(&stem(p), 12))
        })
        .collect()
}

/// Pack options for tests: given tags, small shards, fast retries.
pub fn test_options(
    out: &str,
    tags: HashMap<String, TagMap>,
    compression: Compression,
    shard_bytes: u64,
) -> PackOptions {
    let mut o = PackOptions::new(out);
    o.tags = TagSource::Given(tags);
    o.tag_list = TagListChoice::FromCorpus;
    o.writer = WriterOptions {
        compression,
        shard_size_bytes: shard_bytes,
        ..WriterOptions::default()
    };
    o.store.retry = RetryPolicy::fast(3);
    o
}

/// A folder of camera photos packed for a test: what went in and what came out.
pub struct PackedFolder {
    /// The photos' tags by photo id.
    pub tags: HashMap<String, TagMap>,
    /// The options it was packed with.
    pub opts: PackOptions,
    /// The dataset's manifest.
    pub manifest: Manifest,
}

/// Links `photos` into `dir/photos` and packs that folder to `url` with
/// [`test_options`] (`compression`, shards of `shard_bytes`) and `store`'s settings when
/// given.
pub async fn pack_photo_folder(
    dir: &Path,
    photos: &[PathBuf],
    url: &str,
    (compression, shard_bytes): (Compression, u64),
    store: Option<StoreOptions>,
) -> PackedFolder {
    let folder = dir.join("photos");
    let tags = photo_folder(&folder, photos);
    let mut opts = test_options(url, tags.clone(), compression, shard_bytes);
    if let Some(store) = store {
        opts.store = store;
    }
    let manifest = pack::pack(&Input::Folder(folder), &opts, &|_| {})
        .await
        .unwrap()
        .manifest
        .expect("a single part writes the manifest");
    PackedFolder {
        tags,
        opts,
        manifest,
    }
}

/// Reads every sample of `ds` and checks it equals the photo it came from.
pub async fn assert_round_trip(ds: &Dataset, photos: &[PathBuf], tags: &HashMap<String, TagMap>) {
    let by_key: HashMap<String, &PathBuf> = photos.iter().map(|p| (stem(p), p)).collect();
    let dims = photo_dimensions();
    let mut keys = Vec::new();
    for shard in 0..ds.manifest().shards.len() {
        let index = ds.shard_index(shard).await.unwrap();
        for (i, e) in index.samples.iter().enumerate() {
            let s = ds.fetch_sample(shard, i).await.unwrap();
            assert_eq!(s.key, e.key);
            let original = std::fs::read(by_key[&s.key]).unwrap();
            assert!(
                s.jpeg == original,
                "{}: JPEG bytes differ from the file",
                s.key
            );
            assert_eq!(&s.tags, &tags[&s.key], "{}: tags differ", s.key);
            // manifest.csv lacks a row for a few photos: the image crate's header reader
            // stands in for those.
            let want = dims
                .get(&s.key)
                .copied()
                .unwrap_or_else(|| image::image_dimensions(by_key[&s.key]).unwrap());
            assert_eq!((e.width, e.height), want, "{}: dimensions", s.key);
            assert_eq!(e.tags as usize, s.tags.len());
            keys.push(s.key);
        }
    }
    let mut expected: Vec<String> = photos.iter().map(|p| stem(p)).collect();
    expected.sort();
    assert_eq!(keys, expected, "every photo exactly once, in path order");
}

/// Writes a small JPEG of `w` x `h` pixels.
pub fn write_jpeg(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
    img.save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}
