//! Linear probes on real camera photos with a tiny randomly initialised model: the radial
//! probe's report has the right shape and bookkeeping (not a quality claim).

use kernels::config::{ModelConfig, Objective};
use kernels::joint::JointModel;
use worker::probe::radial::{radial_probe, RadialParams};
use worker::probe::{ProbeError, ProbeOptions};

use crate::support;

/// A tiny randomly initialised model (seed 0).
fn tiny_model() -> (tch::nn::VarStore, JointModel) {
    let _rng = support::torch_rng();
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = JointModel::new(&vs.root(), &ModelConfig::tiny(Objective::ImageText)).unwrap();
    (vs, model)
}

#[test]
fn radial_probe_on_six_real_photos_reports_consistent_counts() {
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let mut photos: Vec<_> = std::fs::read_dir(cameras.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    photos.truncate(6);
    // One unreadable file among them: skipped and counted.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    photos.push(broken);

    let model = tiny_model();
    let params = RadialParams {
        crop: 48,
        per_photo: 3,
        bins: 5,
        ..RadialParams::default()
    };
    let opts = ProbeOptions {
        seed: 4,
        test_fraction: 0.34,
        batch: 8,
        ..ProbeOptions::default()
    };
    let report = radial_probe(&model.1.image, tch::Device::Cpu, &photos, &params, &opts).unwrap();

    assert_eq!(report.photos_used, 6);
    assert_eq!(report.skipped.total(), 1);
    assert_eq!(report.skipped.by_reason.get("unreadable"), Some(&1));
    assert_eq!(report.crops, 18);
    let p = &report.probe;
    assert_eq!(p.classes.len(), 5);
    assert_eq!((p.train_photos, p.test_photos), (4, 2));
    assert_eq!(p.train_counts.iter().sum::<usize>(), 4 * 3);
    assert_eq!(p.test_counts.iter().sum::<usize>(), 2 * 3);
    assert!((0.0..=1.0).contains(&p.accuracy));
    // Accuracy is a whole number of test crops.
    assert!(((p.accuracy * 6.0) - (p.accuracy * 6.0).round()).abs() < 1e-9);
    // The majority baseline: the training side's most frequent class (lowest on ties),
    // scored on the test side.
    let top = p.train_counts.iter().max().unwrap();
    let majority = p.train_counts.iter().position(|c| c == top).unwrap();
    assert_eq!(p.majority_baseline, p.test_counts[majority] as f64 / 6.0);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["probe"]["classes"].as_array().unwrap().len(), 5);
}

/// A generic splice dataset: small copies of real photos (authentic) and the same copies
/// painted over in red (spliced: a paste no tower can miss), each as PNG and JPEG under one
/// stem, and one broken file.
fn red_square_dataset(dir: &std::path::Path, cameras: &std::path::Path) -> usize {
    let mut photos: Vec<_> = std::fs::read_dir(cameras.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    let photos: Vec<_> = photos.into_iter().step_by(10).take(16).collect();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    let mut rows = vec!["image,label,mask".to_string()];
    for (i, path) in photos.iter().enumerate() {
        let img = image::open(path).unwrap().into_rgb8();
        let base = image::imageops::resize(&img, 160, 120, image::imageops::FilterType::Triangle);
        let mut spliced = base.clone();
        let mut mask = image::GrayImage::new(160, 120);
        // The whole image: whatever a random tower sees, these crops all look alike.
        for y in 0..120 {
            for x in 0..160 {
                spliced.put_pixel(x, y, image::Rgb([250, 10, 10]));
                mask.put_pixel(x, y, image::Luma([255]));
            }
        }
        mask.save(dir.join(format!("masks/s{i}.png"))).unwrap();
        for ext in ["png", "jpg"] {
            base.save(dir.join(format!("a{i}.{ext}"))).unwrap();
            spliced.save(dir.join(format!("s{i}.{ext}"))).unwrap();
            rows.push(format!("a{i}.{ext},authentic,"));
            rows.push(format!("s{i}.{ext},spliced,masks/s{i}.png"));
        }
    }
    std::fs::write(dir.join("broken.png"), b"not an image").unwrap();
    rows.push("broken.png,authentic,".into());
    std::fs::write(dir.join("labels.csv"), rows.join("\n")).unwrap();
    photos.len()
}

#[test]
fn splice_probe_keeps_copies_of_an_image_together_and_separates_painted_images() {
    use worker::eval::datasets::{read_dataset, DatasetConfig, DatasetKind};
    use worker::probe::splice::{splice_probe, CropMode, SpliceProbeParams};
    let Some(cameras) = support::cameras_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let photos = red_square_dataset(dir.path(), &cameras);
    let listing = read_dataset(&DatasetConfig::new(DatasetKind::Generic, dir.path())).unwrap();
    let model = tiny_model();
    let opts = ProbeOptions {
        seed: 1,
        test_fraction: 0.5,
        batch: 8,
        ..ProbeOptions::default()
    };
    let params = SpliceProbeParams {
        side: 64,
        mode: CropMode::Resize,
    };
    let r = splice_probe(&model.1.image, tch::Device::Cpu, &listing, &params, &opts).unwrap();
    assert_eq!(r.images_used, 4 * photos);
    assert_eq!(r.skipped.by_reason.get("unreadable"), Some(&1));
    assert_eq!(r.groups, 2 * photos, "a PNG and its JPEG are one group");
    let p = &r.probe;
    assert_eq!(p.classes, ["authentic", "spliced"]);
    assert_eq!(p.train_photos + p.test_photos, 2 * photos);
    assert_eq!(p.test_photos, photos);
    // Each group brings both of its copies to its side.
    assert_eq!(p.test_counts.iter().sum::<usize>(), 2 * p.test_photos);
    assert!(
        p.accuracy >= 0.9,
        "red images are easy to tell: {}",
        p.accuracy
    );

    // Centre crops at full resolution: 100 px fit the 160x120 images, 128 px do not.
    let centre = |side| SpliceProbeParams {
        side,
        mode: CropMode::Center,
    };
    let r = splice_probe(
        &model.1.image,
        tch::Device::Cpu,
        &listing,
        &centre(100),
        &opts,
    );
    assert_eq!(r.unwrap().images_used, 4 * photos);
    let err = splice_probe(
        &model.1.image,
        tch::Device::Cpu,
        &listing,
        &centre(128),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, ProbeError::TooFew { found: 0, .. }), "{err}");
}
