//! Photos from simulated cameras: determinism, decodability, EXIF read back by an
//! independent reader (kamadak-exif), camera traces in the JPEG structure, and the
//! per-camera sensor pattern in the pixels.

use dataloader::synth::{self, cameras, Camera, SceneStyle, SynthOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One photo per camera, small.
fn opts(seed: u64) -> SynthOptions {
    SynthOptions {
        count: cameras().len(),
        width: 260,
        height: 196,
        seed,
        ..SynthOptions::default()
    }
}

fn generate(opts: &SynthOptions) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = synth::generate(dir.path(), opts).expect("generate");
    (dir, paths)
}

/// `file -> (make, model)` from cameras.csv.
fn truth(dir: &Path) -> BTreeMap<String, (String, String)> {
    let csv = std::fs::read_to_string(dir.join(synth::CAMERAS_CSV)).expect("cameras.csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("file,make,model"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

fn camera_of(path: &Path) -> &'static Camera {
    let name = path.file_name().unwrap().to_string_lossy();
    cameras()
        .iter()
        .find(|c| {
            name.starts_with(&format!(
                "{}_",
                synth::file_name(c, 0, 1).rsplit_once('_').unwrap().0
            ))
        })
        .unwrap_or_else(|| panic!("no camera for {name}"))
}

#[test]
fn same_seed_gives_identical_files_other_seed_different_ones() {
    let (dir_a, a) = generate(&opts(7));
    let (dir_b, b) = generate(&opts(7));
    let (_dir_c, c) = generate(&opts(8));
    assert_eq!(a.len(), cameras().len());
    for ((pa, pb), pc) in a.iter().zip(&b).zip(&c) {
        assert_eq!(pa.file_name(), pb.file_name());
        let (ba, bb, bc) = (
            std::fs::read(pa).unwrap(),
            std::fs::read(pb).unwrap(),
            std::fs::read(pc).unwrap(),
        );
        assert!(
            ba == bb,
            "{} differs between two runs with the same seed",
            pa.display()
        );
        assert!(ba != bc, "{} is the same for seeds 7 and 8", pa.display());
    }
    assert_eq!(truth(dir_a.path()), truth(dir_b.path()));
}

#[test]
fn photos_decode_at_the_requested_size_and_exif_names_their_camera() {
    let o = SynthOptions {
        count: 8,
        width: 301,
        height: 124,
        ..opts(3)
    };
    let (dir, paths) = generate(&o);
    let truth = truth(dir.path());
    assert_eq!(truth.len(), 8);
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let img = image::load_from_memory(&bytes).expect("decodes");
        assert_eq!(
            (img.width(), img.height()),
            (301, 124),
            "{}",
            path.display()
        );
        // APP1 Exif right after SOI, as cameras write it.
        assert_eq!(&bytes[..4], &[0xFF, 0xD8, 0xFF, 0xE1]);
        assert_eq!(&bytes[6..12], b"Exif\0\0");

        let exif = exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(&bytes))
            .expect("EXIF reads back");
        let text = |tag| {
            exif.get_field(tag, exif::In::PRIMARY)
                .map(|f| f.display_value().to_string().trim_matches('"').to_string())
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (make, model) = &truth[&name];
        assert_eq!(text(exif::Tag::Make).as_ref(), Some(make), "{name}");
        assert_eq!(text(exif::Tag::Model).as_ref(), Some(model), "{name}");
        assert_eq!(
            (camera_of(path).make, camera_of(path).model),
            (make.as_str(), model.as_str())
        );
        assert_eq!(text(exif::Tag::PixelXDimension).as_deref(), Some("301"));
        assert_eq!(text(exif::Tag::PixelYDimension).as_deref(), Some("124"));
        // Tags of the Exif sub-IFD must be there, not only IFD0.
        for tag in [
            exif::Tag::ExposureTime,
            exif::Tag::FNumber,
            exif::Tag::PhotographicSensitivity,
            exif::Tag::DateTimeOriginal,
            exif::Tag::FocalLength,
            exif::Tag::FocalLengthIn35mmFilm,
        ] {
            assert!(text(tag).is_some(), "{name}: {tag} missing");
        }
        let n = exif
            .fields()
            .filter(|f| f.tag != exif::Tag::ExifIFDPointer)
            .count();
        assert!(n >= 12, "{name}: only {n} tags");
    }
}

#[test]
fn exif_values_vary_between_photos_of_one_camera() {
    let o = SynthOptions {
        count: 8,
        cameras: vec!["simlux-sl-7-pro".into()],
        ..opts(11)
    };
    let (_dir, paths) = generate(&o);
    let mut seen: BTreeMap<exif::Tag, BTreeSet<String>> = BTreeMap::new();
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let exif = exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(&bytes))
            .unwrap();
        for f in exif.fields() {
            seen.entry(f.tag)
                .or_default()
                .insert(f.display_value().to_string());
        }
    }
    for tag in [
        exif::Tag::ExposureTime,
        exif::Tag::PhotographicSensitivity,
        exif::Tag::DateTimeOriginal,
        exif::Tag::FocalLength,
    ] {
        assert!(seen[&tag].len() >= 3, "{tag} took only {:?}", seen[&tag]);
    }
    assert_eq!(seen[&exif::Tag::Model].len(), 1);
}

/// What the JPEG headers say: quantisation tables (natural order), luma sampling factors,
/// restart interval.
struct Headers {
    dqt: Vec<[u16; 64]>,
    luma_sampling: (u8, u8),
    restart: Option<u16>,
}

/// Zigzag position -> natural (row-major) index.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

fn headers(jpeg: &[u8]) -> Headers {
    let mut h = Headers {
        dqt: Vec::new(),
        luma_sampling: (0, 0),
        restart: None,
    };
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        assert_eq!(jpeg[i], 0xFF, "marker expected at {i}");
        let marker = jpeg[i + 1];
        let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
        let seg = &jpeg[i + 4..i + 2 + len];
        match marker {
            0xDB => {
                for t in seg.chunks(65) {
                    assert_eq!(t[0] >> 4, 0, "8-bit tables expected");
                    let mut q = [0u16; 64];
                    for (k, &v) in t[1..].iter().enumerate() {
                        q[ZIGZAG[k]] = v.into();
                    }
                    h.dqt.push(q);
                }
            }
            0xC0 => h.luma_sampling = (seg[7] >> 4, seg[7] & 15),
            0xDD => h.restart = Some(u16::from_be_bytes([seg[0], seg[1]])),
            0xDA => break,
            _ => {}
        }
        i += 2 + len;
    }
    h
}

#[test]
fn cameras_differ_in_quantisation_subsampling_and_restarts() {
    let (_dir, paths) = generate(&opts(5));
    let mut luma_tables = BTreeSet::new();
    let mut subsamplings = BTreeSet::new();
    for path in &paths {
        let cam = camera_of(path);
        let h = headers(&std::fs::read(path).unwrap());
        assert_eq!(h.dqt.len(), 2, "{}", cam.model);
        // The tables are the camera's own, at one of its qualities.
        assert!(
            cam.qualities
                .iter()
                .any(|&q| synth::quant_tables(cam.quant, q).to_vec() == h.dqt),
            "{}: tables are not the camera's",
            cam.model
        );
        assert_eq!(
            h.luma_sampling,
            cam.subsampling.luma_factors(),
            "{}",
            cam.model
        );
        assert_eq!(h.restart, cam.restart_interval, "{}", cam.model);
        luma_tables.insert(h.dqt[0]);
        subsamplings.insert(h.luma_sampling);
    }
    assert_eq!(
        luma_tables.len(),
        cameras().len(),
        "two cameras share a luma table"
    );
    assert_eq!(
        subsamplings.len(),
        3,
        "4:4:4, 4:2:2 and 4:2:0 should all occur"
    );
}

/// Green channel minus its 3x3 mean: the noise residual.
fn residual(path: &Path) -> Vec<f32> {
    let img = image::open(path).expect("decodes").to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let g: Vec<f32> = img.pixels().map(|p| p[1] as f32).collect();
    let mut r = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut s = 0.0;
            for dy in 0..3 {
                for dx in 0..3 {
                    s += g[(y + dy - 1) * w + x + dx - 1];
                }
            }
            r.push(g[y * w + x] - s / 9.0);
        }
    }
    r
}

fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() as f32;
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt()
}

fn iso(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(&bytes))
        .unwrap();
    let field = exif.get_field(exif::Tag::PhotographicSensitivity, exif::In::PRIMARY);
    field.and_then(|f| f.value.get_uint(0)).expect("ISO tag")
}

/// The fixed sensor pattern (PRNU) shows as correlated noise residuals between photos of
/// one camera and not across cameras. At high ISO temporal noise drowns it (as in real
/// cameras), so each camera's two lowest-ISO photos of four take part.
#[test]
fn noise_residuals_of_one_camera_correlate_more_than_across_cameras() {
    let o = SynthOptions {
        count: 4 * cameras().len(),
        width: 512,
        height: 384,
        scene: SceneStyle::Flat,
        ..opts(21)
    };
    let (_dir, paths) = generate(&o);
    let mut by_camera: BTreeMap<&str, Vec<(u32, &PathBuf)>> = BTreeMap::new();
    for p in &paths {
        by_camera
            .entry(camera_of(p).model)
            .or_default()
            .push((iso(p), p));
    }
    let mut res: Vec<(&str, Vec<f32>)> = Vec::new();
    for (cam, mut shots) in by_camera {
        shots.sort();
        res.extend(shots[..2].iter().map(|(_, p)| (cam, residual(p))));
    }
    let mut same: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    let mut cross = Vec::new();
    for (i, (ci, ri)) in res.iter().enumerate() {
        for (cj, rj) in &res[i + 1..] {
            let c = correlation(ri, rj);
            if ci == cj {
                same.entry(ci).or_default().push(c);
            } else {
                cross.push(c);
            }
        }
    }
    assert_eq!(
        same.len(),
        cameras().len(),
        "some camera has fewer than two low-ISO photos"
    );
    let rms_cross = (cross.iter().map(|c| c * c).sum::<f32>() / cross.len() as f32).sqrt();
    let max_cross = cross.iter().fold(0.0f32, |m, c| m.max(c.abs()));
    for (cam, cs) in &same {
        let mean = cs.iter().sum::<f32>() / cs.len() as f32;
        assert!(
            mean > 4.0 * rms_cross && mean > max_cross,
            "{cam}: mean same-camera correlation {mean} vs cross-camera rms {rms_cross}, max {max_cross}"
        );
    }
}

/// EXIF agrees with the pixels: photos the EXIF says were shot at four times the lowest
/// ISO or more are noisier than every photo at the lowest ISO.
#[test]
fn higher_iso_photos_are_noisier() {
    let o = SynthOptions {
        count: 12,
        width: 256,
        height: 192,
        cameras: vec!["simtron-st-action-2".into()],
        scene: SceneStyle::Flat,
        ..opts(4)
    };
    let (_dir, paths) = generate(&o);
    let shots: Vec<(u32, f32)> = paths
        .iter()
        .map(|p| {
            let r = residual(p);
            (
                iso(p),
                (r.iter().map(|v| v * v).sum::<f32>() / r.len() as f32).sqrt(),
            )
        })
        .collect();
    let min_iso = shots.iter().map(|s| s.0).min().unwrap();
    let base: Vec<f32> = shots
        .iter()
        .filter(|s| s.0 == min_iso)
        .map(|s| s.1)
        .collect();
    let high: Vec<f32> = shots
        .iter()
        .filter(|s| s.0 >= 4 * min_iso)
        .map(|s| s.1)
        .collect();
    assert!(!high.is_empty(), "no photo at 4x the lowest ISO: {shots:?}");
    let noisiest_base = base.iter().fold(0.0f32, |m, &v| m.max(v));
    for v in high {
        assert!(v > noisiest_base, "noise does not follow ISO: {shots:?}");
    }
}
