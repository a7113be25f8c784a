//! The cross-camera splice benchmark made from real camera photos: folder layout, labels,
//! masks, pixel-exact pastes in the lossless variant, the photos' real camera models, and
//! determinism.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dataloader::pack::Input;
use dataloader::split::camera_model;
use image::RgbImage;
use serde_json::Value;
use worker::splice_bench::{make, BenchOptions, SpliceBenchError};

use crate::support;

/// Two photos of one camera, and three other cameras; one is 1024x960, one 1024x864, and
/// one camera's make holds a comma (`OLYMPUS OPTICAL CO.,LTD`), which labels.csv must quote.
const PHOTOS: [&str; 5] = [
    "apple_iphone-13-pro_01.jpg",
    "apple_iphone-13-pro_02.jpg",
    "nikon_e775_01.jpg",
    "olympus_c3000z_05.jpg",
    "hewlett-packard_photosmart-c200_01.jpg",
];

/// File name -> camera model named from `manifest.csv`'s make and model columns.
fn manifest_models(cameras: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(cameras.join("manifest.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        support::csv_line(lines.next().unwrap())[..3],
        ["file", "make", "model"]
    );
    lines
        .map(support::csv_line)
        .map(|f| (f[0].clone(), camera_model(Some(&f[1]), Some(&f[2]))))
        .collect()
}

fn decode(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Every file under `dir`, relative path -> bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "images", "masks"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Checks one pasted image against its photos: source pixels exactly inside the mask (and
/// only inside the region's box), target pixels exactly outside.
fn check_paste(png: &RgbImage, mask: &image::GrayImage, record: &Value) {
    let target = decode(Path::new(record["target"].as_str().unwrap()));
    let source = decode(Path::new(record["source"].as_str().unwrap()));
    let r = &record["region"];
    let get = |k: &str| r[k].as_u64().unwrap() as u32;
    let (w, h) = (get("width"), get("height"));
    let (sx, sy, tx, ty) = (
        get("source_x"),
        get("source_y"),
        get("target_x"),
        get("target_y"),
    );
    let mut inside = 0u64;
    for (x, y, m) in mask.enumerate_pixels() {
        match m.0[0] {
            255 => {
                inside += 1;
                assert!(x >= tx && x < tx + w && y >= ty && y < ty + h);
                let s = source.get_pixel(x - tx + sx, y - ty + sy);
                assert_eq!(png.get_pixel(x, y), s, "pasted pixel ({x}, {y})");
            }
            0 => assert_eq!(
                png.get_pixel(x, y),
                target.get_pixel(x, y),
                "pixel ({x}, {y})"
            ),
            v => panic!("mask value {v} at ({x}, {y})"),
        }
    }
    let share = inside as f64 / f64::from(png.width() * png.height());
    assert!((share - record["mask_share"].as_f64().unwrap()).abs() < 1e-12);
    assert!(share > 0.02, "region covers only {share} of the image");
}

#[test]
fn splice_benchmark_from_real_photos_has_exact_masks_labels_and_real_camera_models() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let models = manifest_models(&cameras);
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let mut list: Vec<String> = PHOTOS
        .iter()
        .map(|p| cameras.join("images").join(p).display().to_string())
        .collect();
    list.push(broken.display().to_string());
    list.push(dir.path().join("missing.jpg").display().to_string());
    let list_path = dir.path().join("holdout.txt");
    std::fs::write(&list_path, list.join("\n")).unwrap();

    let opts = BenchOptions {
        count: 3,
        seed: 7,
        ..BenchOptions::default()
    };
    let out = dir.path().join("bench");
    let report = make(&Input::FileList(list_path.clone()), &out, &opts).unwrap();
    assert_eq!(report.photos.usable, 5);
    assert_eq!(report.photos.camera_models, 4);
    assert_eq!(
        report.skipped.values().sum::<u64>(),
        2,
        "{:?}",
        report.skipped
    );
    assert_eq!(
        (
            report.counts.cross_camera,
            report.counts.same_camera,
            report.counts.untouched
        ),
        (3, 1, 2)
    );

    let bench: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    assert_eq!(bench["arguments"]["seed"], 7);
    assert_eq!(
        bench["skipped"],
        serde_json::to_value(&report.skipped).unwrap()
    );
    let records: HashMap<String, &Value> = bench["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r))
        .collect();

    let labels = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    let mut lines = labels.lines();
    assert_eq!(
        lines.next().unwrap(),
        "image,mask,label,kind,target_camera,source_camera,quality"
    );
    let rows: Vec<Vec<String>> = lines.map(support::csv_line).collect();
    assert_eq!(rows.len(), 12, "6 images, PNG and JPEG each");
    let mut kinds = BTreeMap::<String, usize>::new();
    for row in &rows {
        assert_eq!(row.len(), 7, "{row:?}");
        let (image, mask, label, kind) = (&row[0], &row[1], &row[2], &row[3]);
        let (target_camera, source_camera, quality) = (&row[4], &row[5], &row[6]);
        *kinds.entry(kind.clone()).or_default() += 1;
        let name = image
            .strip_prefix("images/")
            .and_then(|n| n.rsplit_once('.'))
            .map(|(n, _)| n.to_string())
            .unwrap();
        let record = records[&name];
        let target_file = file_name(record["target"].as_str().unwrap());
        assert_eq!(target_camera, &models[&target_file], "{image}");
        let expected_label = if kind == "cross_camera" {
            "spliced"
        } else {
            "authentic"
        };
        assert_eq!(label, expected_label, "{image}");
        let img = image::open(out.join(image)).unwrap();
        let (w, h) = image::image_dimensions(cameras.join("images").join(&target_file)).unwrap();
        assert_eq!((img.width(), img.height()), (w, h), "{image} vs its photo");
        match image.rsplit_once('.').unwrap().1 {
            "png" => assert_eq!(quality, ""),
            "jpg" => {
                assert_eq!(quality, "90");
                let png = decode(&out.join(format!("images/{name}.png")));
                let err: f64 = img
                    .to_rgb8()
                    .as_raw()
                    .iter()
                    .zip(png.as_raw())
                    .map(|(a, b)| f64::from(a.abs_diff(*b)))
                    .sum::<f64>()
                    / png.as_raw().len() as f64;
                assert!(err < 4.0, "{image}: mean error {err} against the PNG");
            }
            other => panic!("unexpected extension {other}"),
        }
        if kind == "untouched" {
            assert!(mask.is_empty() && source_camera.is_empty(), "{row:?}");
            if image.ends_with(".png") {
                let photo = decode(&cameras.join("images").join(&target_file));
                assert_eq!(img.to_rgb8(), photo, "{image}: untouched PNG differs");
            }
            continue;
        }
        let source_file = file_name(record["source"].as_str().unwrap());
        assert_eq!(source_camera, &models[&source_file], "{image}");
        match kind.as_str() {
            "cross_camera" => assert_ne!(source_camera, target_camera),
            "same_camera" => {
                assert_eq!(source_camera, target_camera);
                assert_ne!(source_file, target_file);
            }
            other => panic!("unexpected kind {other}"),
        }
        assert_eq!(mask, &format!("masks/{name}.png"));
        let m = image::open(out.join(mask)).unwrap();
        assert_eq!(m.color(), image::ColorType::L8, "{mask}");
        assert_eq!((m.width(), m.height()), (w, h), "{mask}");
        if image.ends_with(".png") {
            check_paste(&img.to_rgb8(), &m.to_luma8(), record);
        }
    }
    let expected: BTreeMap<String, usize> =
        [("cross_camera", 6), ("same_camera", 2), ("untouched", 4)]
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
    assert_eq!(kinds, expected);
    assert!(
        labels.contains("\"olympus optical co.,ltd c3000z\""),
        "a camera name with a comma must be quoted"
    );

    // The same input and seed give the same files; another seed gives other images.
    let again = dir.path().join("again");
    make(&Input::FileList(list_path.clone()), &again, &opts).unwrap();
    assert!(
        files(&out) == files(&again),
        "a second run wrote different files"
    );
    let other = dir.path().join("other");
    let other_opts = BenchOptions { seed: 8, ..opts };
    make(&Input::FileList(list_path), &other, &other_opts).unwrap();
    let images_of = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("bench.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["images"].clone()
    };
    assert_ne!(images_of(&other), images_of(&out));
}

#[test]
fn splice_benchmark_refuses_photos_of_a_single_camera_model() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("one-camera");
    std::fs::create_dir(&folder).unwrap();
    for p in &PHOTOS[..2] {
        std::fs::copy(cameras.join("images").join(p), folder.join(p)).unwrap();
    }
    let out = dir.path().join("bench");
    let err = make(&Input::Folder(folder), &out, &BenchOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SpliceBenchError::TooFewCameras {
                photos: 2,
                models: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("at least 2 camera models"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing is written when no benchmark can be made"
    );
}
