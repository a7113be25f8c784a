//! `worker detect` as a user runs it: a checkpoint trained by `worker train` for a few
//! steps, real photos (one with a region pasted from another camera's photo), and a file
//! that is no image. Checks the outputs' sizes, kinds and records, that a bad file is
//! skipped with a message while the others are analysed, the HTML report (in headless
//! Chromium where it is installed), that a checkpoint needs no --config (an old one
//! without its config does), and that an exported half-precision model detects alike.

mod common;

use std::path::Path;
use std::process::Command;

use common::{packed_photos, write_config, WORKER};

/// A camera photo by file name (`CAMERAS_DIR`, as the packed data; present, as
/// `packed_photos` found them).
fn photo(name: &str) -> std::path::PathBuf {
    testkit::cameras_dir()
        .expect("the camera photos were packed")
        .join("images")
        .join(name)
}

#[test]
fn detect_writes_maps_masks_and_records_at_the_photos_size_and_skips_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, 4);
    common::train(&cfg);

    // A splice: the middle of a Canon photo pasted into an iPhone photo.
    let host = image::open(photo("apple_iphone-13-pro_01.jpg"))
        .unwrap()
        .into_rgb8();
    let donor = image::open(photo("canon_canon-eos-30d_01.jpg"))
        .unwrap()
        .into_rgb8();
    let mut spliced = host.clone();
    for y in 300..600 {
        for x in 350..700 {
            spliced.put_pixel(x, y, *donor.get_pixel(x, y));
        }
    }
    let spliced_path = dir.path().join("spliced.png");
    spliced.save(&spliced_path).unwrap();
    let not_an_image = dir.path().join("notes.jpg");
    std::fs::write(&not_an_image, b"not a photo").unwrap();

    let out_dir = dir.path().join("out");
    let checkpoints = dir.path().join("ckpt");
    let report_dir = dir.path().join("report");
    // No --config: the checkpoint carries the config it was trained with.
    let run = Command::new(WORKER)
        .args(["detect", "--checkpoint"])
        .arg(&checkpoints)
        .arg("--out")
        .arg(&out_dir)
        .arg("--report")
        .arg(&report_dir)
        .args(["--per-side", "12"])
        .arg(&spliced_path)
        .arg(&not_an_image)
        .arg(photo("canon_canon-eos-30d_01.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stderr.contains("notes.jpg") && stderr.contains("1 of 3"),
        "{stderr}"
    );

    for (stem, (w, h)) in [
        ("spliced", spliced.dimensions()),
        ("canon_canon-eos-30d_01", donor.dimensions()),
    ] {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        assert_eq!(record["width"], w);
        assert_eq!(record["height"], h);
        assert_eq!(record["consistency_direction"], "higher_is_authentic");
        assert!(record["consistency"].as_f64().unwrap().is_finite());
        // The terminal line gives both scores of the record, the report's ranking one first.
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("{stem}.")))
            .unwrap_or_else(|| panic!("no line for {stem}: {stdout}"));
        let expected = format!(
            "dissimilarity {:.4} (higher is suspicious), consistency {:.4} (higher is authentic)",
            record["mean_dissimilarity"].as_f64().unwrap(),
            record["consistency"].as_f64().unwrap()
        );
        assert!(line.contains(&expected), "{line}\nwanted: {expected}");
        let fraction = record["mask_fraction"].as_f64().unwrap();
        assert!(
            (0.0..=0.5).contains(&fraction),
            "the splice is the smaller side: {fraction}"
        );

        let map = image::open(out_dir.join(format!("{stem}.map16.png"))).unwrap();
        assert_eq!(map.color(), image::ColorType::L16);
        assert_eq!((map.width(), map.height()), (w, h));
        let values = map.into_luma16();
        let (lo, hi) = values
            .pixels()
            .fold((u16::MAX, 0), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
        assert_eq!((lo, hi), (0, 65535), "the map spans its range");

        let mask = image::open(out_dir.join(format!("{stem}.mask.png")))
            .unwrap()
            .into_luma8();
        assert_eq!(mask.dimensions(), (w, h));
        assert!(mask.pixels().all(|p| p[0] == 0 || p[0] == 255));
        let marked = mask.pixels().filter(|p| p[0] == 255).count() as f64 / (w * h) as f64;
        assert!(
            (marked - fraction).abs() < 1e-9,
            "the record's fraction is the mask's"
        );

        let heat = image::open(out_dir.join(format!("{stem}.heatmap.png"))).unwrap();
        assert!(heat.width().max(heat.height()) <= 1600);
    }

    check_report(&report_dir.join("index.html"), &out_dir);

    // Only bad input: a non-zero exit that says so.
    let run = Command::new(WORKER)
        .args(["detect", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out_dir)
        .arg(&not_an_image)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("none of the 1 photo(s)"));
}

/// The report lists both photos, most dissimilar first (by the records' mean
/// dissimilarity), with the bad file as skipped; in Chromium it renders with every image
/// decoded and nothing fetched.
fn check_report(page: &Path, out_dir: &Path) {
    let html = std::fs::read_to_string(page).unwrap();
    let dissimilarity = |stem: &str| {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_dir.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        record["mean_dissimilarity"].as_f64().unwrap()
    };
    let (spliced, canon) = (
        dissimilarity("spliced"),
        dissimilarity("canon_canon-eos-30d_01"),
    );
    let (first, second) = if spliced >= canon {
        ("spliced.png", "canon_canon-eos-30d_01.jpg")
    } else {
        ("canon_canon-eos-30d_01.jpg", "spliced.png")
    };
    let at = |s: &str| {
        html.find(s)
            .unwrap_or_else(|| panic!("{s} not in the report"))
    };
    assert!(at(first) < at(second), "most dissimilar first");
    assert!(html.contains("notes.jpg: cannot read the image"));
    assert_eq!(html.matches("<section class=\"photo\"").count(), 2);

    let Some(python) = common::browser_python() else {
        return;
    };
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("detect-report.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/report_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(page)
        .arg(&screenshot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{seen}\nscreenshot: {}", screenshot.display());
    assert_eq!(seen["images"], 6, "photo, heat map and mask of two photos");
    assert_eq!(
        seen["images_loaded"], 6,
        "every image decodes in the browser"
    );
    assert_eq!(seen["fetched"], serde_json::json!([]), "nothing fetched");
    let photos = seen["photos"].as_array().unwrap();
    assert!(photos[0]["heading"].as_str().unwrap().contains(first));
    assert!(photos[0]["dissimilarity"].as_f64() >= photos[1]["dissimilarity"].as_f64());
    assert_eq!(seen["skipped"].as_array().unwrap().len(), 1);
    assert!(
        seen["page_height"].as_u64().unwrap() > 600,
        "the page has its content laid out"
    );
}

/// The consistency `worker detect` records for `photo` with the model at `checkpoint`
/// (and `--config` when given); the command's output when it fails.
fn consistency_with(
    checkpoint: &Path,
    config: Option<&Path>,
    photo: &Path,
    out_dir: &Path,
) -> Result<f64, String> {
    let mut cmd = Command::new(WORKER);
    cmd.args(["detect", "--per-side", "10", "--checkpoint"])
        .arg(checkpoint)
        .arg("--out")
        .arg(out_dir)
        .arg(photo);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let run = cmd.output().unwrap();
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).into_owned());
    }
    let stem = photo.file_stem().unwrap().to_string_lossy();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join(format!("{stem}.json"))).unwrap())
            .unwrap();
    Ok(record["consistency"].as_f64().unwrap())
}

#[test]
fn exported_half_precision_models_and_old_checkpoints_load_without_surprises() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = packed_photos(dir.path()) else {
        return;
    };
    let cfg = write_config(dir.path(), &data, 3);
    common::train(&cfg);
    let checkpoints = dir.path().join("ckpt");
    let photo = photo("apple_iphone-13-pro_01.jpg");
    let original = consistency_with(&checkpoints, None, &photo, &dir.path().join("a")).unwrap();

    // Exported in half precision: a model-only checkpoint half the size that detects alike.
    let exported = dir.path().join("exported");
    let run = Command::new(WORKER)
        .args(["export", "--half", "--checkpoint"])
        .arg(&checkpoints)
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let step_dir = |root: &Path| {
        std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("step-")
            })
            .unwrap()
    };
    let size = |root: &Path| {
        std::fs::metadata(step_dir(root).join("model.safetensors"))
            .unwrap()
            .len()
    };
    let (full, half) = (size(&checkpoints), size(&exported));
    assert!(
        half < full * 6 / 10,
        "half precision: {half} bytes against {full}"
    );
    assert!(!step_dir(&exported).join("optimizer.bin").exists());
    let from_half = consistency_with(&exported, None, &photo, &dir.path().join("b")).unwrap();
    assert!(
        (from_half - original).abs() <= 1e-2 * original.abs().max(1.0),
        "half precision changed the score: {from_half} against {original}"
    );

    // A checkpoint written before checkpoints kept their config: its marker lists no
    // config.toml. Without --config it is refused with what to do; with it, it loads.
    let step = step_dir(&checkpoints);
    let marker_path = step.join("COMPLETE.json");
    let mut marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker_path).unwrap()).unwrap();
    marker["files"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "config.toml");
    std::fs::write(&marker_path, serde_json::to_vec(&marker).unwrap()).unwrap();
    std::fs::remove_file(step.join("config.toml")).unwrap();
    let err = consistency_with(&checkpoints, None, &photo, &dir.path().join("c")).unwrap_err();
    assert!(err.contains("pass --config"), "{err}");
    let with_config =
        consistency_with(&checkpoints, Some(&cfg), &photo, &dir.path().join("d")).unwrap();
    assert_eq!(with_config, original);
}

#[test]
fn the_shipped_model_detects_with_no_model_argument() {
    let Some(cameras) = testkit::cameras_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Command::new(WORKER)
        .env_remove("WORKER_MODEL")
        .args(["detect", "--per-side", "10", "--out"])
        .arg(dir.path())
        .arg(cameras.join("images/canon_canon-eos-30d_01.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("models/default"),
        "the shipped model was used: {stderr}"
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("canon_canon-eos-30d_01.json")).unwrap(),
    )
    .unwrap();
    assert!(record["consistency"].as_f64().unwrap().is_finite());
}
