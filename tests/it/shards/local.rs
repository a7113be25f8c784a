//! Byte-exact round trips, standard tar readability and the manifest-last rule.

use std::collections::HashMap;
use std::path::Path;

use dataloader::pack::{self, Input};
use dataloader::shard::{Compression, Dataset, ShardError, WriterOptions};
use infra::store::StoreOptions;

use super::{
    assert_round_trip, camera_photos, pack_photo_folder, photo_folder, stem, tags_for, test_options,
};

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
        let m = summary
            .manifest
            .as_ref()
            .expect("a single part writes the manifest");
        assert_eq!(m.samples, 10);
        assert!(
            m.shards.len() >= 3,
            "{} shards for a quarter-size target",
            m.shards.len()
        );
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        // Every photo has the same 12 tag names: all selected, ties ordered by name.
        let mut names: Vec<String> = tags_for("x", 12)
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        names.sort();
        assert_eq!(m.tags, names);
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
    let py = testkit::python_with("zstandard")?;
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
        let m = pack::pack(&input, &opts, &|_| {})
            .await
            .unwrap()
            .manifest
            .expect("a single part writes the manifest");
        assert_eq!(m.shards.len(), 1);
        let Some(members) = python_list_members(&out.join(&m.shards[0].name)) else {
            return;
        };
        let mut expected = Vec::new();
        for p in &photos {
            let jpeg = std::fs::read(p).unwrap();
            let json = serde_json::to_vec(&tags[&stem(p)]).unwrap();
            let json = ("exif.json", json);
            let index = ("jpgidx", dataloader::jpeg::build_index(&jpeg).unwrap());
            let kit = (
                "jpgkit",
                dataloader::jpeg::build_kit(&jpeg).unwrap().unwrap(),
            );
            // The photo last: everything before it is the head a ranged reader fetches.
            for (suffix, bytes) in [json, index, kit, ("jpg", jpeg)] {
                expected.push((
                    format!("{}.{suffix}", stem(p)),
                    bytes.len() as u64,
                    sha256_hex(&bytes),
                ));
            }
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
            jpeg_kit: None,
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

#[tokio::test]
async fn repacking_replaces_the_dataset_and_a_failed_repack_keeps_it() {
    let Some(photos) = camera_photos(3) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let url = out.to_str().unwrap();
    let packed =
        pack_photo_folder(tmp.path(), &photos, url, (Compression::Zstd, 1 << 30), None).await;
    let (tags, opts) = (packed.tags, packed.opts);

    // Nothing packable: an error, and the dataset already there is left alone.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("broken.jpg"), b"not a photo").unwrap();
    let err = pack::pack(&Input::Folder(empty), &opts, &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("corrupt_jpeg"), "{err}");
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    assert_round_trip(&ds, &photos, &tags).await;

    // Two of the photos: the new manifest describes only them.
    std::fs::remove_file(
        tmp.path()
            .join("photos")
            .join(photos[0].file_name().unwrap()),
    )
    .unwrap();
    let m = pack::pack(&Input::Folder(tmp.path().join("photos")), &opts, &|_| {})
        .await
        .unwrap()
        .manifest
        .expect("a single part writes the manifest");
    assert_eq!(m.samples, 2);
    let ds = Dataset::open(url, &opts.store).await.unwrap();
    assert_round_trip(&ds, &photos[1..], &tags).await;
}
