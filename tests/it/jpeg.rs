//! Partial JPEG decoding on real camera photos and on large encoded JPEGs: every crop is
//! exactly the same rectangle of the full decode, with and without a scan index; the full
//! decode is close to independent decoders (the `image` crate, PIL/libjpeg-turbo);
//! unsupported kinds fall back; stale indexes and corrupt files never give wrong pixels
//! or panics.

use std::path::PathBuf;

use dataloader::jpeg::{self, CropRect, JpegError, RgbImage};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use crate::support;

/// Small deterministic generator (tests must not depend on a seeded crate's algorithm).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

/// Sampling factors `(h, v)` of each component from the frame header.
fn sampling(jpeg: &[u8]) -> Vec<(u8, u8)> {
    let mut i = 2;
    while i + 4 < jpeg.len() {
        let (m, len) = (
            jpeg[i + 1],
            u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize,
        );
        if (0xC0..=0xCF).contains(&m) && m != 0xC4 && m != 0xC8 && m != 0xCC {
            let n = jpeg[i + 9] as usize;
            return (0..n)
                .map(|k| (jpeg[i + 11 + 3 * k] >> 4, jpeg[i + 11 + 3 * k] & 15))
                .collect();
        }
        i += 2 + len;
    }
    Vec::new()
}

/// Real photos: the first two of each sampling layout and every 25th photo.
fn real_photos() -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let paths = testkit::camera_photos()?;
    let mut seen: std::collections::HashMap<Vec<(u8, u8)>, usize> = Default::default();
    let mut chosen = Vec::new();
    for (i, p) in paths.into_iter().enumerate() {
        let bytes = std::fs::read(&p).expect("read a photo");
        let count = seen.entry(sampling(&bytes)).or_default();
        *count += 1;
        if *count <= 2 || i % 25 == 0 {
            chosen.push((p, bytes));
        }
    }
    assert!(chosen.len() >= 5, "too few camera photos: {}", chosen.len());
    Some(chosen)
}

/// Crops that hit edges, single pixels, odd offsets and the training size.
fn rects(w: u32, h: u32, rng: &mut Lcg, random: usize) -> Vec<CropRect> {
    let r = |x, y, width, height| CropRect {
        x,
        y,
        width,
        height,
    };
    let mut v = vec![
        r(0, 0, w.min(124), h.min(124)),
        r(w - w.min(124), h - h.min(124), w.min(124), h.min(124)),
        r(w - 1, h - 1, 1, 1),
        r(0, h / 2, w, 1),
        r(w / 3, 0, 1, h),
        r(1, 1, w - 2, h.min(17)),
    ];
    for _ in 0..random {
        let (cw, ch) = if rng.below(2) == 0 {
            (124.min(w), 124.min(h))
        } else {
            (1 + rng.below(w), 1 + rng.below(h))
        };
        v.push(r(rng.below(w - cw + 1), rng.below(h - ch + 1), cw, ch));
    }
    v
}

fn assert_crops_consistent(name: &str, jpeg: &[u8], full: &RgbImage, rects: &[CropRect]) {
    let index = jpeg::build_index(jpeg).unwrap_or_else(|e| panic!("{name}: index: {e}"));
    for &rect in rects {
        let want = full.crop(rect).unwrap();
        let with = jpeg::decode_crop(jpeg, Some(&index), rect)
            .unwrap_or_else(|e| panic!("{name} {rect:?}: {e}"));
        assert!(
            with == want,
            "{name}: crop {rect:?} with the index differs from the full decode"
        );
        let without = jpeg::decode_crop(jpeg, None, rect).unwrap();
        assert!(
            without == want,
            "{name}: crop {rect:?} without an index differs from the full decode"
        );
        // JPEG kinds decoded whole have no kit: readers fetch them whole.
        if jpeg::build_kit(jpeg).unwrap().is_some() {
            let (ranged, _) = ranged_decode(jpeg, &index, rect, 0);
            assert!(
                ranged == want,
                "{name}: crop {rect:?} from ranged bytes differs from the full decode"
            );
        }
    }
}

/// Decodes `rect` from the kit plus only the byte ranges the kit and index name (as a
/// ranged reader fetches them); returns the crop and the bytes fetched beyond the kit.
fn ranged_decode(jpeg: &[u8], index: &[u8], rect: CropRect, gap: u64) -> (RgbImage, u64) {
    let kit = jpeg::build_kit(jpeg)
        .expect("kit")
        .expect("a kit for a supported JPEG");
    let mut sparse = jpeg::SparseJpeg::from_kit(&kit).expect("kit reads back");
    assert_eq!(sparse.len(), jpeg.len() as u64);
    let ranges = sparse.ranges_for(index, &[rect], gap).expect("ranges");
    let mut fetched = 0;
    for r in &ranges {
        sparse
            .fill(r.start, &jpeg[r.start as usize..r.end as usize])
            .unwrap();
        fetched += r.end - r.start;
    }
    let img = sparse.decode(index, rect).expect("ranged decode");
    (img, fetched)
}

/// Mean and max absolute difference over all channels.
fn diff(a: &RgbImage, b: &[u8]) -> (f64, u8) {
    assert_eq!(a.data.len(), b.len());
    let (mut sum, mut max) = (0u64, 0u8);
    for (&x, &y) in a.data.iter().zip(b) {
        let d = x.abs_diff(y);
        sum += d as u64;
        max = max.max(d);
    }
    (sum as f64 / b.len() as f64, max)
}

fn image_crate_rgb(jpeg: &[u8]) -> Vec<u8> {
    image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .expect("image crate decodes")
        .into_rgb8()
        .into_raw()
}

#[test]
fn real_photo_crops_equal_the_full_decode_with_and_without_index() {
    let Some(photos) = real_photos() else { return };
    let mut rng = Lcg(7);
    for (path, jpeg) in &photos {
        let full = jpeg::decode_full(jpeg).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (w, h) = jpeg::dimensions(jpeg).unwrap();
        assert_eq!((full.width, full.height), (w, h));
        assert_crops_consistent(
            &path.display().to_string(),
            jpeg,
            &full,
            &rects(w, h, &mut rng, 6),
        );
    }
}

#[test]
fn real_photos_are_close_to_the_image_crate_decoder() {
    let Some(photos) = real_photos() else { return };
    let (mut worst_mean, mut worst_max) = (0f64, 0u8);
    for (path, jpeg) in &photos {
        let (mean, max) = diff(&jpeg::decode_full(jpeg).unwrap(), &image_crate_rgb(jpeg));
        eprintln!(
            "{}: vs image crate mean {mean:.3} max {max}",
            path.display()
        );
        assert!(
            mean < 1.0 && max <= 40,
            "{}: mean {mean:.3} max {max}",
            path.display()
        );
        worst_mean = worst_mean.max(mean);
        worst_max = worst_max.max(max);
    }
    eprintln!(
        "{} photos vs image crate: worst mean {worst_mean:.3}, worst max {worst_max}",
        photos.len()
    );
}

#[test]
fn real_photos_match_pil_libjpeg_turbo() {
    let Some(photos) = real_photos() else { return };
    let Some(python) = testkit::python_with("PIL") else {
        return;
    };
    let script = support::repo_root().join("tests/python/jpeg_decode_pil.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(photos.iter().map(|(p, _)| p))
        .output()
        .expect("run the PIL reference decoder");
    assert!(
        out.status.success(),
        "PIL decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rest = &out.stdout[..];
    let (mut total, mut worst_max) = (0f64, 0u8);
    for (path, jpeg) in &photos {
        let ours = jpeg::decode_full(jpeg).unwrap();
        let w = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let h = u32::from_le_bytes(rest[4..8].try_into().unwrap());
        assert_eq!((w, h), (ours.width, ours.height), "{}", path.display());
        let n = (w * h * 3) as usize;
        let (mean, max) = diff(&ours, &rest[8..8 + n]);
        rest = &rest[8 + n..];
        eprintln!("{}: vs PIL mean {mean:.4} max {max}", path.display());
        assert!(
            mean < 0.01 && max <= 1,
            "{}: mean {mean:.4} max {max}",
            path.display()
        );
        total += mean;
        worst_max = worst_max.max(max);
    }
    eprintln!(
        "{} photos vs PIL: average mean {:.4}, worst max {worst_max}",
        photos.len(),
        total / photos.len() as f64
    );
}

/// A synthetic photo-like texture: gradients, waves, flat patches and noise of varying
/// strength, so blocks range from DC-only to dense.
fn texture(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let region = ((x / 300) + (y / 200)) % 4;
            let noise = match region {
                0 => 0,
                1 => rng.below(8) as i32,
                2 => rng.below(40) as i32,
                _ => rng.below(120) as i32,
            };
            let wave = ((x as f32 * 0.05).sin() * 40.0 + (y as f32 * 0.031).cos() * 30.0) as i32;
            let base = [
                (x * 200 / w) as i32,
                (y * 200 / h) as i32,
                ((x + y) * 100 / (w + h)) as i32 + 60,
            ];
            for (c, b) in base.iter().enumerate() {
                px.push((b + wave * (c as i32 - 1) + noise).clamp(0, 255) as u8);
            }
        }
    }
    px
}

fn encode(
    w: usize,
    h: usize,
    sampling: Option<SamplingFactor>,
    restart: u16,
    progressive: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 92);
    if let Some(s) = sampling {
        enc.set_sampling_factor(s);
    }
    if restart > 0 {
        enc.set_restart_interval(restart);
    }
    enc.set_progressive(progressive);
    let (pixels, color) = if sampling.is_none() {
        (
            texture(w, h, 3).chunks(3).map(|p| p[1]).collect(),
            ColorType::Luma,
        )
    } else {
        (texture(w, h, 3), ColorType::Rgb)
    };
    enc.encode(&pixels, w as u16, h as u16, color)
        .expect("encode a test JPEG");
    out
}

#[test]
fn large_encoded_jpegs_in_every_layout_crop_consistently() {
    let cases: [(&str, usize, usize, Option<SamplingFactor>, u16); 8] = [
        ("12MP 4:2:0", 4000, 3000, Some(SamplingFactor::R_4_2_0), 0),
        (
            "4:2:0 restart 7",
            1503,
            1001,
            Some(SamplingFactor::R_4_2_0),
            7,
        ),
        (
            "4:4:4 restart 1",
            1201,
            777,
            Some(SamplingFactor::R_4_4_4),
            1,
        ),
        (
            "4:2:2 restart 64",
            1000,
            1203,
            Some(SamplingFactor::R_4_2_2),
            64,
        ),
        ("4:4:0", 999, 1000, Some(SamplingFactor::R_4_4_0), 0),
        (
            "4:1:1 restart 5",
            1037,
            500,
            Some(SamplingFactor::R_4_1_1),
            5,
        ),
        ("gray", 1299, 901, None, 0),
        ("gray restart 200", 1299, 901, None, 200),
    ];
    let mut rng = Lcg(11);
    for (name, w, h, s, restart) in cases {
        let jpeg = encode(w, h, s, restart, false);
        let full = jpeg::decode_full(&jpeg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_crops_consistent(name, &jpeg, &full, &rects(w as u32, h as u32, &mut rng, 12));
        let (mean, max) = diff(&full, &image_crate_rgb(&jpeg));
        eprintln!("{name}: vs image crate mean {mean:.3} max {max}");
        assert!(mean < 1.0 && max <= 40, "{name}: mean {mean:.3} max {max}");
    }
}

#[test]
fn progressive_jpegs_fall_back_to_a_full_decode() {
    let jpeg = encode(640, 480, Some(SamplingFactor::R_4_2_0), 0, true);
    let index = jpeg::build_index(&jpeg).unwrap();
    assert!(
        index.len() < 100,
        "a fallback index holds no entries ({} bytes)",
        index.len()
    );
    let want = RgbImage {
        width: 640,
        height: 480,
        data: image_crate_rgb(&jpeg),
    };
    let rect = CropRect {
        x: 101,
        y: 55,
        width: 124,
        height: 124,
    };
    assert_eq!(
        jpeg::decode_crop(&jpeg, Some(&index), rect).unwrap(),
        want.crop(rect).unwrap()
    );
    assert_eq!(
        jpeg::decode_crop(&jpeg, None, rect).unwrap(),
        want.crop(rect).unwrap()
    );
}

#[test]
fn stale_or_damaged_indexes_are_ignored_not_trusted() {
    let a = encode(800, 600, Some(SamplingFactor::R_4_2_0), 0, false);
    let mut b_pixels = texture(800, 600, 99);
    b_pixels.reverse();
    let mut b = Vec::new();
    Encoder::new(&mut b, 92)
        .encode(&b_pixels, 800, 600, ColorType::Rgb)
        .unwrap();
    assert_ne!(a, b, "the two test photos should differ");
    let index_a = jpeg::build_index(&a).unwrap();
    let mut damaged = jpeg::build_index(&b).unwrap();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    let full_b = jpeg::decode_full(&b).unwrap();
    for rect in [
        CropRect {
            x: 300,
            y: 200,
            width: 124,
            height: 124,
        },
        CropRect {
            x: 0,
            y: 476,
            width: 800,
            height: 124,
        },
    ] {
        let want = full_b.crop(rect).unwrap();
        assert_eq!(
            jpeg::decode_crop(&b, Some(&index_a), rect).unwrap(),
            want,
            "index of another photo"
        );
        assert_eq!(
            jpeg::decode_crop(&b, Some(&damaged), rect).unwrap(),
            want,
            "damaged index"
        );
        assert_eq!(
            jpeg::decode_crop(&b, Some(b"garbage"), rect).unwrap(),
            want,
            "not an index"
        );
    }
}

fn must_not_panic(name: &str, jpeg: &[u8], index: &[u8]) {
    let rect = CropRect {
        x: 0,
        y: 0,
        width: 124,
        height: 124,
    };
    let results = [
        jpeg::decode_crop(jpeg, Some(index), rect).map(|_| ()),
        jpeg::decode_crop(jpeg, None, rect).map(|_| ()),
        jpeg::build_index(jpeg).map(|_| ()),
    ];
    for r in results {
        match r {
            Ok(()) | Err(JpegError::Corrupt(_)) => {}
            Err(e) => panic!("{name}: unexpected error {e}"),
        }
    }
}

#[test]
fn truncated_and_bit_flipped_photos_give_errors_not_panics() {
    let Some(photos) = real_photos() else { return };
    let mut rng = Lcg(5);
    for (path, jpeg) in photos.iter().step_by(4) {
        let name = path.display().to_string();
        let index = jpeg::build_index(jpeg).unwrap();
        for _ in 0..25 {
            let cut = rng.below(jpeg.len() as u32) as usize;
            must_not_panic(&name, &jpeg[..cut], &index);
            // Missing entropy-coded data is an error, never a silently grey image.
            if cut < jpeg.len() * 9 / 10 {
                assert!(
                    jpeg::decode_full(&jpeg[..cut]).is_err(),
                    "{name}: cut at {cut} decoded"
                );
            }
            let mut flipped = jpeg.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(jpeg.len() as u32) as usize;
                flipped[at] ^= 1 << rng.below(8);
            }
            must_not_panic(&name, &flipped, &index);
        }
    }
    // Encoded files end right after their data: any cut into it is caught.
    let jpeg = encode(333, 222, Some(SamplingFactor::R_4_2_0), 3, false);
    for cut in (jpeg.len() - 300..jpeg.len() - 2).chain([jpeg.len() / 2]) {
        assert!(
            jpeg::decode_full(&jpeg[..cut]).is_err(),
            "cut at {cut} of {} decoded",
            jpeg.len()
        );
    }
}

#[test]
fn every_shared_photo_decodes_identically_from_ranged_bytes() {
    let Some(paths) = testkit::camera_photos() else {
        return;
    };
    let mut rng = Lcg(23);
    let (mut fetched, mut total, mut checked) = (0u64, 0u64, 0usize);
    for path in &paths {
        let name = path.display().to_string();
        let jpeg = std::fs::read(path).unwrap();
        let index = jpeg::build_index(&jpeg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = jpeg::dimensions(&jpeg).unwrap();
        if jpeg::build_kit(&jpeg).unwrap().is_none() {
            continue; // decoded whole: the reader fetches it whole
        }
        let full = jpeg::decode_full(&jpeg).unwrap();
        for _ in 0..2 {
            let (cw, ch) = (124.min(w), 124.min(h));
            let rect = CropRect {
                x: rng.below(w - cw + 1),
                y: rng.below(h - ch + 1),
                width: cw,
                height: ch,
            };
            let (img, bytes) = ranged_decode(&jpeg, &index, rect, 0);
            assert!(
                img == full.crop(rect).unwrap(),
                "{name}: ranged crop {rect:?} differs from the full decode"
            );
            fetched += bytes;
            total += jpeg.len() as u64;
        }
        checked += 1;
    }
    assert!(
        checked * 10 >= paths.len() * 9,
        "only {checked} of {} photos have a kit",
        paths.len()
    );
    eprintln!(
        "{checked} photos: a 124 px crop fetched {:.1}% of the file on average",
        100.0 * fetched as f64 / total as f64
    );
}

#[test]
fn a_12mp_crop_fetches_a_small_fraction_and_gaps_trade_requests_for_bytes() {
    let jpeg = encode(4000, 3000, Some(SamplingFactor::R_4_2_0), 0, false);
    let index = jpeg::build_index(&jpeg).unwrap();
    let kit = jpeg::build_kit(&jpeg).unwrap().unwrap();
    assert!(kit.len() < 2048, "kit of {} bytes", kit.len());
    let rect = CropRect {
        x: 1777,
        y: 1301,
        width: 124,
        height: 124,
    };
    let sparse = jpeg::SparseJpeg::from_kit(&kit).unwrap();
    let per_row = sparse.ranges_for(&index, &[rect], 0).unwrap();
    let joined = sparse.ranges_for(&index, &[rect], 1 << 20).unwrap();
    // 124 px at 16 px per MCU row: 9 rows (10 when the crop straddles one more).
    assert!((9..=10).contains(&per_row.len()), "{per_row:?}");
    assert_eq!(joined.len(), 1, "{joined:?}");
    let size = |rs: &[std::ops::Range<u64>]| rs.iter().map(|r| r.end - r.start).sum::<u64>();
    assert!(size(&per_row) < size(&joined));
    assert!(
        size(&joined) * 10 < jpeg.len() as u64,
        "joined rows {} of {} bytes",
        size(&joined),
        jpeg.len()
    );
    let (img, _) = ranged_decode(&jpeg, &index, rect, 1 << 20);
    assert!(img == jpeg::decode_crop(&jpeg, Some(&index), rect).unwrap());
}

#[test]
fn ranged_decoding_refuses_damaged_kits_and_foreign_indexes() {
    let a = encode(800, 600, Some(SamplingFactor::R_4_2_0), 0, false);
    let b = encode(800, 600, Some(SamplingFactor::R_4_2_0), 5, false);
    let kit = jpeg::build_kit(&a).unwrap().unwrap();
    for at in [0, 5, 12, kit.len() / 2, kit.len() - 1] {
        let mut bad = kit.clone();
        bad[at] ^= 0x08;
        assert!(
            jpeg::SparseJpeg::from_kit(&bad).is_err(),
            "flip at {at} accepted"
        );
    }
    assert!(jpeg::SparseJpeg::from_kit(&kit[..kit.len() - 1]).is_err());
    let rect = CropRect {
        x: 10,
        y: 10,
        width: 124,
        height: 124,
    };
    let sparse = jpeg::SparseJpeg::from_kit(&kit).unwrap();
    let foreign = jpeg::build_index(&b).unwrap();
    assert!(matches!(
        sparse.ranges_for(&foreign, &[rect], 0),
        Err(JpegError::Corrupt(_))
    ));
    // Without a usable index a sparse file is never decoded sequentially.
    assert!(matches!(
        sparse.decode(b"garbage", rect),
        Err(JpegError::Corrupt(_))
    ));
    let progressive = encode(640, 480, Some(SamplingFactor::R_4_2_0), 0, true);
    assert!(jpeg::build_kit(&progressive).unwrap().is_none());
}
