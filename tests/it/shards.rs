//! Packing real camera photos into shards on the local file system and reading them back:
//! byte-exact round trips with and without zstd over several shards, shards that standard
//! tar tools read, the manifest written last, skipped inputs counted by reason, and
//! corrupt or missing shards reported as the right kind of error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dataloader::pack::{self, Input, PackOptions, TagSource};
use dataloader::shard::{Compression, Dataset, SampleError, ShardError, WriterOptions};
use dataloader::store::{RetryPolicy, StoreOptions};
use dataloader::TagMap;

use crate::support;

/// The first `n` real camera photos (sorted by name), or `None` to skip.
pub fn camera_photos(n: usize) -> Option<Vec<PathBuf>> {
    let dir = support::cameras_dir()?.join("images");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    assert!(files.len() >= n, "need {n} photos in {}", dir.display());
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

fn stem(p: &Path) -> String {
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
    o.writer = WriterOptions {
        compression,
        shard_size_bytes: shard_bytes,
        ..WriterOptions::default()
    };
    o.store.retry = RetryPolicy::fast(3);
    o
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
            assert_eq!((e.width, e.height), dims[&s.key], "{}: dimensions", s.key);
            assert_eq!(e.tags as usize, s.tags.len());
            keys.push(s.key);
        }
    }
    let mut expected: Vec<String> = photos.iter().map(|p| stem(p)).collect();
    expected.sort();
    assert_eq!(keys, expected, "every photo exactly once, in path order");
}

#[tokio::test]
async fn round_trip_local_with_and_without_zstd_over_several_shards() {
    let Some(photos) = camera_photos(10) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tags = photo_folder(&tmp.path().join("photos"), &photos);
    let total: u64 = photos.iter().map(|p| p.metadata().unwrap().len()).sum();
    for compression in [Compression::None, Compression::Zstd] {
        let out = tmp.path().join(format!("ds-{}", compression.as_str()));
        let opts = test_options(out.to_str().unwrap(), tags.clone(), compression, total / 4);
        let input = Input::from_path(&tmp.path().join("photos")).unwrap();
        let summary = pack::pack(&input, &opts, &|_| {}).await.unwrap();
        let m = &summary.manifest;
        assert_eq!(m.samples, 10);
        assert!(
            m.shards.len() >= 3,
            "{} shards for a quarter-size target",
            m.shards.len()
        );
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        assert_eq!(m.tags[..2], ["Make".to_string(), "Model".to_string()]);
        for s in &m.shards {
            assert!(s.name.ends_with(compression.extension()), "{}", s.name);
            assert_eq!(std::fs::metadata(out.join(&s.name)).unwrap().len(), s.bytes);
        }
        let ds = Dataset::open(out.to_str().unwrap(), &opts.store)
            .await
            .unwrap();
        assert_eq!(ds.manifest(), m);
        assert_round_trip(&ds, &photos, &tags).await;
        for shard in 0..m.shards.len() {
            let check = ds.verify_shard(shard).await.unwrap();
            assert!(check.is_ok(), "{check:?}");
        }
    }
}

/// Lists a shard's members with Python's tarfile (zstd through the `zstandard` module),
/// one `name size sha256` line per member.
fn python_list_members(shard: &Path) -> Option<Vec<(String, u64, String)>> {
    let py = support::venv_python();
    if !py.exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{} missing under CI",
            py.display()
        );
        eprintln!("skipping the tar check: no Python at {}", py.display());
        return None;
    }
    let script = r#"
import hashlib, io, sys, tarfile
path = sys.argv[1]
data = open(path, 'rb').read()
if path.endswith('.zst'):
    import zstandard
    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
with tarfile.open(fileobj=io.BytesIO(data), mode='r:') as tar:
    for m in tar.getmembers():
        body = tar.extractfile(m).read()
        print(m.name, m.size, hashlib.sha256(body).hexdigest())
"#;
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .arg(shard)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
            })
            .collect(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn shards_are_standard_tar_archives_with_webdataset_member_names() {
    let Some(photos) = camera_photos(4) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tags = photo_folder(&tmp.path().join("photos"), &photos);
    for compression in [Compression::None, Compression::Zstd] {
        let out = tmp.path().join(format!("ds-{}", compression.as_str()));
        let opts = test_options(out.to_str().unwrap(), tags.clone(), compression, 1 << 30);
        let input = Input::Folder(tmp.path().join("photos"));
        let m = pack::pack(&input, &opts, &|_| {}).await.unwrap().manifest;
        assert_eq!(m.shards.len(), 1);
        let Some(members) = python_list_members(&out.join(&m.shards[0].name)) else {
            return;
        };
        let mut expected = Vec::new();
        for p in &photos {
            let jpeg = std::fs::read(p).unwrap();
            let json = serde_json::to_vec(&tags[&stem(p)]).unwrap();
            expected.push((
                format!("{}.jpg", stem(p)),
                jpeg.len() as u64,
                sha256_hex(&jpeg),
            ));
            expected.push((
                format!("{}.exif.json", stem(p)),
                json.len() as u64,
                sha256_hex(&json),
            ));
        }
        assert_eq!(members, expected, "{compression:?}");
    }
}

#[tokio::test]
async fn manifest_is_written_last_and_an_unfinished_dataset_has_none() {
    let Some(photos) = camera_photos(3) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let url = tmp.path().join("ds");
    let url = url.to_str().unwrap();
    let opts = StoreOptions::default();
    let wopts = WriterOptions {
        shard_size_bytes: 1,
        ..WriterOptions::default()
    };
    let mut w = dataloader::shard::DatasetWriter::create(url, &opts, wopts.clone())
        .await
        .unwrap();
    for p in &photos {
        let sample = dataloader::shard::SampleInput {
            key: stem(p),
            jpeg: std::fs::read(p).unwrap().into(),
            tags: tags_for(&stem(p), 12),
            jpeg_index: None,
            width: 1024,
            height: 1024,
        };
        w.append(&sample).await.unwrap();
    }
    assert_eq!(
        w.shards().len(),
        2,
        "two shards closed, the third still open"
    );
    w.abort().await;
    assert!(Path::new(url).join("shard-000000.tar").exists());
    assert!(!Path::new(url).join("manifest.json").exists());
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(matches!(err, ShardError::NoManifest { .. }), "{err}");
    assert!(err.to_string().contains("dataloader pack"), "{err}");

    // A finished dataset: the manifest is not older than any shard or index.
    let tags: HashMap<_, _> = photos
        .iter()
        .map(|p| (stem(p), tags_for(&stem(p), 12)))
        .collect();
    let list = tmp.path().join("list.txt");
    let lines: Vec<String> = photos.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(&list, lines.join("\n")).unwrap();
    let opts = test_options(url, tags, Compression::None, 1);
    pack::pack(&Input::FileList(list), &opts, &|_| {})
        .await
        .unwrap();
    let mtime = |name: &str| {
        std::fs::metadata(Path::new(url).join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let manifest_time = mtime("manifest.json");
    for e in std::fs::read_dir(url).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            mtime(&name) <= manifest_time,
            "{name} is newer than the manifest"
        );
    }
}

/// Writes a small JPEG of `w` x `h` pixels.
fn write_jpeg(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
    img.save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}

#[tokio::test]
async fn corrupt_and_unsuitable_inputs_are_skipped_and_counted() {
    let Some(photos) = camera_photos(4) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    let mut tags = photo_folder(&dir, &photos[..2]);
    let good = std::fs::read(&photos[2]).unwrap();
    std::fs::write(dir.join("truncated.jpg"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.join("text.jpg"), "this is not a photo\n").unwrap();
    write_jpeg(&dir.join("tiny.jpg"), 64, 48);
    std::os::unix::fs::symlink(&photos[3], dir.join("few_tags.jpg")).unwrap();
    std::fs::copy(&photos[3], dir.join("no_metadata.jpg")).unwrap();
    for id in ["truncated", "text", "tiny"] {
        tags.insert(id.to_string(), tags_for(id, 12));
    }
    tags.insert("few_tags".to_string(), tags_for("few_tags", 5));
    let out = tmp.path().join("ds");
    let opts = test_options(
        out.to_str().unwrap(),
        tags.clone(),
        Compression::Zstd,
        1 << 30,
    );
    let m = pack::pack(&Input::Folder(dir), &opts, &|_| {})
        .await
        .unwrap()
        .manifest;
    let expected: BTreeMap<String, u64> = [
        ("corrupt_jpeg", 2),
        ("too_small", 1),
        ("few_tags", 1),
        ("no_metadata", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(m.skipped, expected);
    assert_eq!(m.samples, 2);
    let ds = Dataset::open(out.to_str().unwrap(), &opts.store)
        .await
        .unwrap();
    assert_round_trip(&ds, &photos[..2], &tags).await;
}

#[tokio::test]
async fn corrupt_or_truncated_shards_give_per_sample_errors() {
    let Some(photos) = camera_photos(3) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tags = photo_folder(&tmp.path().join("photos"), &photos);
    let out = tmp.path().join("ds");
    let url = out.to_str().unwrap();
    let opts = test_options(url, tags, Compression::Zstd, 1 << 30);
    pack::pack(&Input::Folder(tmp.path().join("photos")), &opts, &|_| {})
        .await
        .unwrap();
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    let index = ds.shard_index(0).await.unwrap();
    let shard_path = out.join(&ds.manifest().shards[0].name);

    // Flip one byte in the middle of the second sample's frame.
    let mut bytes = std::fs::read(&shard_path).unwrap();
    let original = bytes.clone();
    let mid = (index.samples[1].offset + index.samples[1].length / 2) as usize;
    bytes[mid] ^= 0xFF;
    std::fs::write(&shard_path, &bytes).unwrap();
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    assert!(ds.fetch_sample(0, 0).await.is_ok());
    let err = ds.fetch_sample(0, 1).await.unwrap_err();
    assert!(err.is_sample_error(), "{err}");
    assert!(
        matches!(
            err,
            ShardError::Sample {
                source: SampleError::Decompress(_),
                ..
            }
        ),
        "{err}"
    );
    let check = ds.verify_shard(0).await.unwrap();
    assert!(!check.is_ok());
    assert_ne!(check.sha256, check.expected_sha256);
    let bad: Vec<&str> = check.bad_samples.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(bad, [index.samples[1].key.as_str()]);

    // Cut the shard inside the last sample.
    let cut = (index.samples[2].offset + 100) as usize;
    std::fs::write(&shard_path, &original[..cut]).unwrap();
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    assert!(ds.fetch_sample(0, 1).await.is_ok());
    let err = ds.fetch_sample(0, 2).await.unwrap_err();
    assert!(
        matches!(
            err,
            ShardError::Sample {
                source: SampleError::Truncated { .. },
                ..
            }
        ),
        "{err}"
    );
    let check = ds.verify_shard(0).await.unwrap();
    assert_eq!(check.bytes, cut as u64);
    assert!(!check.trailer_ok);
    assert_eq!(check.bad_samples.len(), 1);
}

#[tokio::test]
async fn missing_shard_object_is_a_storage_error() {
    let Some(photos) = camera_photos(2) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tags = photo_folder(&tmp.path().join("photos"), &photos);
    let out = tmp.path().join("ds");
    let opts = test_options(out.to_str().unwrap(), tags, Compression::None, 1);
    let m = pack::pack(&Input::Folder(tmp.path().join("photos")), &opts, &|_| {})
        .await
        .unwrap()
        .manifest;
    assert_eq!(m.shards.len(), 2);
    std::fs::remove_file(out.join(&m.shards[1].name)).unwrap();
    let ds = Dataset::open(out.to_str().unwrap(), &opts.store)
        .await
        .unwrap();
    assert!(ds.fetch_sample(0, 0).await.is_ok());
    let err = ds.fetch_sample(1, 0).await.unwrap_err();
    assert!(!err.is_sample_error(), "{err}");
    assert!(
        matches!(&err, ShardError::Storage(e) if e.is_not_found()),
        "{err}"
    );
    assert!(err.to_string().contains(&m.shards[1].name), "{err}");
    let err = ds.fetch_sample(5, 0).await.unwrap_err();
    assert!(matches!(err, ShardError::OutOfRange { .. }), "{err}");
}

#[tokio::test]
async fn bad_urls_and_manifests_give_errors_naming_them() {
    let opts = StoreOptions::default();
    let err = Dataset::open("ftp://host/data", &opts).await.unwrap_err();
    assert!(
        err.to_string().contains("ftp://host/data") && err.to_string().contains("ftp"),
        "{err}"
    );
    let err = Dataset::open("s3://", &opts).await.unwrap_err();
    assert!(err.to_string().contains("s3://"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let url = tmp.path().to_str().unwrap();
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(matches!(err, ShardError::NoManifest { .. }), "{err}");
    assert!(err.to_string().contains(url), "{err}");

    std::fs::write(tmp.path().join("manifest.json"), r#"{"format_version": 2}"#).unwrap();
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(
        matches!(err, ShardError::UnsupportedVersion { found: 2, .. }),
        "{err}"
    );
    std::fs::write(tmp.path().join("manifest.json"), "not json").unwrap();
    let err = Dataset::open(url, &opts).await.unwrap_err();
    assert!(matches!(err, ShardError::BadManifest { .. }), "{err}");
}
