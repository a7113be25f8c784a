//! `worker detect` as a user runs it: a checkpoint trained by `worker train` for a few
//! steps, real photos (one with a region pasted from another camera's photo), and a file
//! that is no image. Checks the outputs' sizes, kinds and records, and that a bad file is
//! skipped with a message while the others are analysed.

mod common;

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
    let run = Command::new(WORKER)
        .args(["detect", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out_dir)
        .args(["--per-side", "12"])
        .arg(&spliced_path)
        .arg(&not_an_image)
        .arg(photo("canon_canon-eos-30d_01.jpg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
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
