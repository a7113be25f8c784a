//! Linear probes on real camera photos with a tiny randomly initialised model: the radial
//! probe's report has the right shape and bookkeeping (not a quality claim).

use kernels::config::{ModelConfig, Objective};
use kernels::joint::JointModel;
use worker::probe::radial::{radial_probe, RadialParams};
use worker::probe::ProbeOptions;

use crate::support;

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

    let model = {
        let _rng = support::torch_rng();
        tch::manual_seed(0);
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let model = JointModel::new(&vs.root(), &ModelConfig::tiny(Objective::ImageText)).unwrap();
        (vs, model)
    };
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
