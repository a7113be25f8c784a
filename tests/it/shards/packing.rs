//! What `pack` keeps and skips, and where the tags come from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use dataloader::exif::{self, ExifError};
use dataloader::pack::{self, Input, PackOptions, TagListChoice, TagSource};
use dataloader::shard::{Compression, Dataset};
use dataloader::TagMap;

use super::{
    assert_round_trip, camera_photos, photo_folder, stem, tags_for, test_options, write_jpeg,
};

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
        .manifest
        .expect("a single part writes the manifest");
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
async fn real_photos_are_packed_with_their_own_exif() {
    let Some(photos) = camera_photos(390) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    photo_folder(&dir, &photos);
    write_jpeg(&dir.join("zz_no_exif.jpg"), 200, 200);

    // What the EXIF reader says about each file decides whether it is kept.
    let min_tags = 10;
    let mut expected_skips: BTreeMap<String, u64> = BTreeMap::from([("no_exif".into(), 1)]);
    let (mut kept, mut kept_tags) = (Vec::new(), HashMap::new());
    for p in &photos {
        match exif::read_jpeg(&std::fs::read(p).unwrap()) {
            Ok(t) if t.iter().filter(|(_, v)| !v.trim().is_empty()).count() >= min_tags => {
                kept_tags.insert(stem(p), t);
                kept.push(p.clone());
            }
            Ok(_) => *expected_skips.entry("few_tags".into()).or_default() += 1,
            Err(ExifError::Missing) => *expected_skips.entry("no_exif".into()).or_default() += 1,
            Err(_) => *expected_skips.entry("bad_exif".into()).or_default() += 1,
        }
    }
    assert!(
        kept.len() > 300,
        "only {} photos have enough tags",
        kept.len()
    );
    // Photos with the bytes of one before them (in packing order) are packed once.
    kept.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    let (before, mut seen) = (kept.len(), HashSet::new());
    kept.retain(|p| seen.insert(std::fs::read(p).unwrap()));
    if kept.len() < before {
        expected_skips.insert("duplicate".into(), (before - kept.len()) as u64);
    }
    kept_tags.retain(|k, _| kept.iter().any(|p| stem(p) == *k));

    let out = tmp.path().join("ds");
    let mut opts = test_options(
        out.to_str().unwrap(),
        HashMap::new(),
        Compression::Zstd,
        16 << 20,
    );
    opts.tags = TagSource::Exif;
    opts.min_tags = min_tags;
    let m = pack::pack(&Input::Folder(dir), &opts, &|_| {})
        .await
        .unwrap()
        .manifest
        .expect("a single part writes the manifest");
    assert_eq!(m.skipped, expected_skips);
    assert_eq!(m.samples, kept.len() as u64);
    let ds = Dataset::open(out.to_str().unwrap(), &opts.store)
        .await
        .unwrap();
    assert_round_trip(&ds, &kept, &kept_tags).await;

    // The tag list: tags with a value in more than half of the packed photos, never a
    // private one.
    let present = |name: &str| {
        kept_tags
            .values()
            .filter(|t| t.get(name).is_some_and(|v| !v.trim().is_empty()))
            .count()
    };
    for name in &m.tags {
        assert!(
            2 * present(name) > kept.len(),
            "{name} listed but in only {} photos",
            present(name)
        );
        assert!(!exif::text::is_private(name), "private tag {name} listed");
    }
    for name in kept_tags.values().flat_map(|t| t.iter().map(|(k, _)| k)) {
        if 2 * present(name) > kept.len() && !exif::text::is_private(name) {
            assert!(
                m.tags.iter().any(|t| t == name),
                "{name} is common but not listed"
            );
        }
    }
    assert!(m.tags.iter().any(|t| t == "Model"), "{:?}", m.tags);
}

/// A YFCC100M metadata line for `id` holding `tags` as Exif IFD0 tags, form-encoded.
fn yfcc_line(id: &str, tags: &TagMap) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b' ' => "+".to_string(),
                b if b.is_ascii_alphanumeric() => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    let pairs: Vec<String> = tags
        .iter()
        .map(|(k, v)| format!("{}:{}", enc(&format!("Exif IFD0.{k}")), enc(v)))
        .collect();
    format!("{id}\t{}", pairs.join(","))
}

#[tokio::test]
async fn yfcc_metadata_supplies_the_tags_by_photo_id() {
    let Some(photos) = camera_photos(1) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    write_jpeg(&dir.join("1001.jpg"), 200, 160);
    write_jpeg(&dir.join("1002.jpg"), 200, 160);
    write_jpeg(&dir.join("sub/1003.jpg"), 200, 160);
    // A photo that still has EXIF: in YFCC mode its tags come from the metadata file.
    std::fs::copy(&photos[0], dir.join("sub/1004.jpg")).unwrap();
    let mut with_comma = tags_for("1001", 12);
    with_comma.insert("Image Description", "a, b: 100% (c)");
    let lines = [
        yfcc_line("9999", &tags_for("9999", 12)),
        yfcc_line("1001", &with_comma),
        yfcc_line("1002", &tags_for("1002", 3)),
        "1003\tnot a pair".to_string(),
        yfcc_line("1004", &tags_for("1004", 11)),
    ];
    let yfcc = tmp.path().join("yfcc_exif.txt");
    std::fs::write(&yfcc, lines.join("\n") + "\n").unwrap();

    let out = tmp.path().join("ds");
    let mut opts = test_options(
        out.to_str().unwrap(),
        HashMap::new(),
        Compression::None,
        1 << 30,
    );
    opts.tags = TagSource::Yfcc(yfcc);
    let m = pack::pack(&Input::Folder(dir.clone()), &opts, &|_| {})
        .await
        .unwrap()
        .manifest
        .expect("a single part writes the manifest");
    let expected: BTreeMap<String, u64> =
        BTreeMap::from([("few_tags".into(), 1), ("no_metadata".into(), 1)]);
    assert_eq!(m.skipped, expected);
    assert!(m.source.contains("yfcc_exif.txt"), "{}", m.source);
    let ds = Dataset::open(out.to_str().unwrap(), &opts.store)
        .await
        .unwrap();
    let index = ds.shard_index(0).await.unwrap();
    let keys: Vec<&str> = index.samples.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["1001", "sub/1004"]);
    let first = ds.fetch_sample(0, 0).await.unwrap();
    assert_eq!(first.tags, with_comma);
    assert_eq!(first.jpeg, std::fs::read(dir.join("1001.jpg")).unwrap());
    let second = ds.fetch_sample(0, 1).await.unwrap();
    assert_eq!(second.tags, tags_for("1004", 11));
    assert_eq!(
        second.jpeg,
        std::fs::read::<PathBuf>(dir.join("sub/1004.jpg")).unwrap()
    );
}

#[tokio::test]
async fn the_manifest_records_the_shipped_tag_list_unless_told_otherwise() {
    let Some(photos) = camera_photos(2) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let tags = photo_folder(&tmp.path().join("photos"), &photos);
    let input = Input::Folder(tmp.path().join("photos"));
    let pack_with = |choice: TagListChoice, name: &str| {
        let mut opts = test_options(
            tmp.path().join(name).to_str().unwrap(),
            tags.clone(),
            Compression::None,
            1 << 30,
        );
        opts.tag_list = choice;
        opts
    };
    let shipped = exif::TagList::bundled().names().to_vec();
    let defaults = PackOptions::new("unused");
    let m = pack::pack(&input, &pack_with(defaults.tag_list, "default"), &|_| {})
        .await
        .unwrap()
        .manifest
        .expect("a single part writes the manifest");
    assert_eq!(m.tags, shipped);
    let given = exif::TagList::new(["Model", "Make"]);
    let m = pack::pack(
        &input,
        &pack_with(TagListChoice::Given(given), "given"),
        &|_| {},
    )
    .await
    .unwrap()
    .manifest
    .expect("a single part writes the manifest");
    assert_eq!(m.tags, ["Model", "Make"]);
    let m = pack::pack(
        &input,
        &pack_with(TagListChoice::FromCorpus, "corpus"),
        &|_| {},
    )
    .await
    .unwrap()
    .manifest
    .expect("a single part writes the manifest");
    assert_ne!(
        m.tags, shipped,
        "the two photos' own tags are not the shipped list"
    );
    assert!(m.tags.iter().any(|t| t == "Tag 11"), "{:?}", m.tags);
}

#[tokio::test]
async fn parts_packed_one_after_the_other_merge_to_the_single_process_manifest() {
    let Some(photos) = camera_photos(30) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    let tags = photo_folder(&dir, &photos);
    let url = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let options = |out: &str, part| {
        let mut o = test_options(out, tags.clone(), Compression::None, 2 << 20);
        o.block_size = 7;
        o.part = part;
        o
    };
    let single = pack::pack(
        &Input::Folder(dir.clone()),
        &options(&url("one"), (0, 1)),
        &|_| {},
    )
    .await
    .unwrap()
    .manifest
    .expect("a single part writes the manifest");
    assert!(single.shards.len() >= 5, "{} shards", single.shards.len());

    let parts = url("parts");
    for i in 0..3 {
        let s = pack::pack(
            &Input::Folder(dir.clone()),
            &options(&parts, (i, 3)),
            &|_| {},
        )
        .await
        .unwrap();
        assert!(
            s.manifest.is_none(),
            "part {i} of 3 leaves the manifest to the merge"
        );
        if i < 2 {
            let err = pack::merge::merge(&parts, &options(&parts, (0, 1)).store)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(&format!("{}/3", i + 1)), "{err}");
        }
    }
    let merged = pack::merge::merge(&parts, &options(&parts, (0, 1)).store)
        .await
        .unwrap();
    assert_eq!(merged, single);

    // Packing the same URL again as one part keeps every block and ignores the stale
    // records of the three parts.
    let again = pack::pack(&Input::Folder(dir), &options(&parts, (0, 1)), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.blocks_packed, 0);
    assert_eq!(again.blocks_kept, again.blocks_total);
    assert_eq!(again.manifest.unwrap().shards, single.shards);
}
