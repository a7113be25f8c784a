//! Splitting the real camera photos by camera model, and packing the held-out side.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use dataloader::pack::{self, Input, PackOptions};
use dataloader::split::{assign, read_camera_models, write_list};

use super::stem;
use crate::support;

/// File name -> (make, model), trimmed and lower-cased, from `manifest.csv`.
fn manifest_cameras(cameras: &Path) -> HashMap<String, (String, String)> {
    let text = std::fs::read_to_string(cameras.join("manifest.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        support::csv_line(lines.next().unwrap())[..3].to_vec(),
        ["file", "make", "model"]
    );
    lines
        .map(|l| support::csv_line(l)[..3].to_vec())
        .map(|f| {
            let norm = |s: &str| s.trim().to_lowercase();
            (f[0].clone(), (norm(&f[1]), norm(&f[2])))
        })
        .collect()
}

#[test]
fn held_out_cameras_never_appear_in_training_and_the_held_out_list_packs() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let images = cameras.join("images");
    let paths: Vec<PathBuf> = pack::list_photos(&Input::Folder(images.clone()))
        .unwrap()
        .into_iter()
        .map(|i| i.path)
        .collect();
    let scan = read_camera_models(&paths);
    let skipped: u64 = scan.skipped.values().sum();
    assert_eq!(scan.photos.len() as u64 + skipped, paths.len() as u64);
    assert!(
        scan.photos.len() >= 300,
        "only {} photos read",
        scan.photos.len()
    );
    let split = assign(&scan.photos, 0.2, 0).unwrap();
    assert_eq!(
        split,
        assign(&scan.photos, 0.2, 0).unwrap(),
        "not deterministic"
    );
    let held = split.holdout.photos.len();
    assert!(held as f64 >= 0.2 * scan.photos.len() as f64);
    assert_eq!(held + split.train.photos.len(), scan.photos.len());

    // Disjoint by camera, with the cameras read from the manifest, not from EXIF.
    let by_file = manifest_cameras(&cameras);
    let side_cameras = |photos: &[PathBuf]| -> HashSet<(String, String)> {
        photos
            .iter()
            .filter_map(|p| by_file.get(p.file_name()?.to_str()?).cloned())
            .collect()
    };
    let (train, holdout) = (
        side_cameras(&split.train.photos),
        side_cameras(&split.holdout.photos),
    );
    assert!(
        train.len() >= 20 && holdout.len() >= 3,
        "{} / {}",
        train.len(),
        holdout.len()
    );
    let both: Vec<_> = train.intersection(&holdout).collect();
    assert!(both.is_empty(), "cameras on both sides: {both:?}");

    // The held-out list is `pack` input as written.
    let dir = tempfile::tempdir().unwrap();
    let (train_list, holdout_list) = (dir.path().join("train.txt"), dir.path().join("held.txt"));
    write_list(&train_list, &split.train.photos).unwrap();
    write_list(&holdout_list, &split.holdout.photos).unwrap();
    let held_listed = pack::list_photos(&Input::from_path(&holdout_list).unwrap()).unwrap();
    assert_eq!(held_listed.len(), held);
    let listed = pack::list_photos(&Input::from_path(&train_list).unwrap()).unwrap();
    let train_paths: Vec<PathBuf> = listed.into_iter().map(|i| i.path).collect();
    assert_eq!(train_paths, split.train.photos);
    let out = dir.path().join("held-out");
    let mut opts = PackOptions::new(out.to_str().unwrap());
    opts.parallelism = 2;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let summary = rt
        .block_on(pack::pack(&Input::FileList(holdout_list), &opts, &|_| {}))
        .unwrap();
    let m = summary
        .manifest
        .as_ref()
        .expect("a single part writes the manifest");
    assert_eq!(m.samples + m.skipped.values().sum::<u64>(), held as u64);
    assert!(m.samples as f64 >= 0.8 * held as f64, "{m:?}");
    let held_stems: HashSet<String> = split.holdout.photos.iter().map(|p| stem(p)).collect();
    let ds = rt
        .block_on(dataloader::shard::Dataset::open(
            out.to_str().unwrap(),
            &Default::default(),
        ))
        .unwrap();
    for shard in 0..m.shards.len() {
        let index = rt.block_on(ds.shard_index(shard)).unwrap();
        for e in &index.samples {
            // Keys of long paths are cut and hashed: go back to the listed photo.
            let photo = &held_listed.iter().find(|p| p.key == e.key).unwrap().path;
            assert!(
                held_stems.contains(&stem(photo)),
                "packed {} is not held out",
                e.key
            );
        }
    }
}
