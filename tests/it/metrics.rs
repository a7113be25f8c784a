//! Splice metrics against scikit-learn: pixel AP (as given and inverted) and detection AP
//! equal `sklearn.metrics.average_precision_score`, and cIoU equals an independent NumPy
//! search over every threshold (`tests/python/forensic_metrics_ref.py`), on random maps
//! and on adversarial ones (heavy ties, constant maps, one-pixel masks, signed zeros,
//! one-ulp gaps, extreme magnitudes).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use worker::eval::metrics::{detection_ap, localisation_scores, HigherMeans};

use crate::support::repo_root;

const TOL: f64 = 1e-6;

/// splitmix64: reproducible cases without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct PixelCase {
    what: String,
    width: usize,
    height: usize,
    map: Vec<f32>,
    mask: Vec<bool>,
}

/// A mask with both classes: each pixel spliced with probability `p`, then fixed up.
fn mask(rng: &mut Rng, n: usize, p: f64) -> Vec<bool> {
    let mut m: Vec<bool> = (0..n).map(|_| rng.unit() < p).collect();
    if m.iter().all(|&s| s) {
        m[rng.below(n as u64) as usize] = false;
    }
    if !m.iter().any(|&s| s) {
        m[rng.below(n as u64) as usize] = true;
    }
    m
}

fn pixel_cases() -> Vec<PixelCase> {
    let mut rng = Rng(20_240_613);
    let mut cases = Vec::new();
    let mut add = |what: &str, width: usize, height: usize, map: Vec<f32>, mask: Vec<bool>| {
        cases.push(PixelCase {
            what: what.to_string(),
            width,
            height,
            map,
            mask,
        })
    };
    for i in 0..12 {
        let (w, h) = (1 + rng.below(24) as usize, 2 + rng.below(20) as usize);
        let p = 0.05 + 0.9 * rng.unit();
        let m = mask(&mut rng, w * h, p);
        // Informative maps: spliced pixels drawn higher, with noise.
        let map = m
            .iter()
            .map(|&s| (rng.unit() + if s { 0.4 } else { 0.0 }) as f32)
            .collect();
        add(&format!("random {i}"), w, h, map, m);
    }
    for levels in [2u64, 3, 5] {
        let (w, h) = (17, 13);
        let m = mask(&mut rng, w * h, 0.3);
        let map = (0..w * h)
            .map(|_| rng.below(levels) as f32 / (levels - 1) as f32)
            .collect();
        add(&format!("{levels} levels (ties)"), w, h, map, m);
    }
    let m = mask(&mut rng, 48, 0.5);
    add("constant map", 8, 6, vec![0.25; 48], m);
    let mut one = vec![false; 20 * 15];
    one[137] = true;
    let map = (0..300).map(|_| rng.unit() as f32).collect();
    add("one spliced pixel", 20, 15, map, one);
    let mut all_but_one = vec![true; 20 * 15];
    all_but_one[42] = false;
    let map = (0..300).map(|_| rng.below(4) as f32).collect();
    add("one authentic pixel, ties", 20, 15, map, all_but_one);
    let m = mask(&mut rng, 40, 0.4);
    let zeros = (0..40)
        .map(|_| [0.0, -0.0, 1.0, -1.0][rng.below(4) as usize])
        .collect();
    add("signed zeros", 8, 5, zeros, m);
    let m = mask(&mut rng, 64, 0.5);
    let base = 0.3f32;
    let ulps = (0..64)
        .map(|_| f32::from_bits(base.to_bits() + rng.below(3) as u32))
        .collect();
    add("one-ulp gaps", 8, 8, ulps, m);
    let m = mask(&mut rng, 64, 0.5);
    let mags = (0..64)
        .map(|_| {
            let e = rng.below(60) as i32 - 30;
            let sign = if rng.below(2) == 0 { -1.0 } else { 1.0 };
            (sign * 10f64.powi(e)) as f32
        })
        .collect();
    add("magnitudes 1e-30..1e30", 8, 8, mags, m);
    let m = mask(&mut rng, 36, 0.3);
    let perfect = m.iter().map(|&s| if s { 1.0 } else { 0.0 }).collect();
    add("perfect map", 6, 6, perfect, m.clone());
    let inverse = m.iter().map(|&s| if s { 0.0 } else { 1.0 }).collect();
    add("inverse of a perfect map", 6, 6, inverse, m);
    cases
}

struct DetectionCase {
    what: String,
    scores: Vec<f64>,
    spliced: Vec<bool>,
    higher_means: HigherMeans,
}

fn detection_cases() -> Vec<DetectionCase> {
    let mut rng = Rng(7);
    let mut cases = Vec::new();
    for i in 0..6 {
        let n = 2 + rng.below(200) as usize;
        let spliced = mask(&mut rng, n, 0.5);
        let scores = spliced
            .iter()
            .map(|&s| rng.unit() + if s { 0.3 } else { 0.0 })
            .collect();
        let higher_means = if i % 2 == 0 {
            HigherMeans::Spliced
        } else {
            HigherMeans::Authentic
        };
        cases.push(DetectionCase {
            what: format!("random {i}"),
            scores,
            spliced,
            higher_means,
        });
    }
    let spliced = mask(&mut rng, 60, 0.5);
    let scores = (0..60).map(|_| rng.below(3) as f64).collect();
    cases.push(DetectionCase {
        what: "ties".into(),
        scores,
        spliced,
        higher_means: HigherMeans::Authentic,
    });
    // Consistency scores of the paper's form: sums of exp(A / 0.01), huge.
    let spliced = mask(&mut rng, 40, 0.5);
    let scores = spliced
        .iter()
        .map(|&s| (rng.unit() * 100.0 + if s { 0.0 } else { 20.0 }).exp() * 625.0)
        .collect();
    cases.push(DetectionCase {
        what: "exp-sum scale".into(),
        scores,
        spliced,
        higher_means: HigherMeans::Authentic,
    });
    cases
}

/// Runs the reference script; `None` when scikit-learn is missing outside CI.
fn reference(cases: &Value, dir: &Path) -> Option<Value> {
    let python = testkit::python_with("sklearn, numpy")?;
    let (input, output) = (dir.join("cases.json"), dir.join("sklearn.json"));
    std::fs::write(&input, serde_json::to_vec(cases).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(repo_root().join("tests/python/forensic_metrics_ref.py"))
        .args([&input, &output])
        .output()
        .expect("run forensic_metrics_ref.py");
    assert!(
        out.status.success(),
        "reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap())
}

#[test]
fn metrics_match_scikit_learn_and_an_exhaustive_threshold_search() {
    let pixel = pixel_cases();
    let detection = detection_cases();
    let cases = json!({
        "pixel": pixel.iter().map(|c| json!({
            "width": c.width,
            "height": c.height,
            "map_bits": c.map.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "mask": c.mask,
        })).collect::<Vec<_>>(),
        "detection": detection.iter().map(|c| json!({
            "score_bits": c.scores.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "spliced": c.spliced,
            "higher_means": match c.higher_means {
                HigherMeans::Spliced => "spliced",
                HigherMeans::Authentic => "authentic",
            },
        })).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let Some(expected) = reference(&cases, dir.path()) else {
        return;
    };
    let mut worst = 0f64;
    let mut check = |what: &str, ours: f64, theirs: &Value| {
        let theirs = theirs
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: no value"));
        let diff = (ours - theirs).abs();
        worst = worst.max(diff);
        assert!(diff <= TOL, "{what}: ours {ours}, reference {theirs}");
    };
    for (c, e) in pixel.iter().zip(expected["pixel"].as_array().unwrap()) {
        let s = localisation_scores(&c.map, &c.mask, c.width, c.height)
            .unwrap_or_else(|err| panic!("{}: {err}", c.what));
        check(&format!("{} ap", c.what), s.ap, &e["ap"]);
        check(
            &format!("{} ap inverted", c.what),
            s.ap_inverted,
            &e["ap_inverted"],
        );
        check(&format!("{} ciou", c.what), s.ciou, &e["ciou"]);
        check(
            &format!("{} ciou inverted", c.what),
            s.ciou_inverted,
            &e["ciou_inverted"],
        );
    }
    for (c, e) in detection
        .iter()
        .zip(expected["detection"].as_array().unwrap())
    {
        let r = detection_ap(&c.scores, &c.spliced, c.higher_means)
            .unwrap_or_else(|err| panic!("{}: {err}", c.what));
        check(&format!("detection {}", c.what), r.ap, &e["ap"]);
    }
    eprintln!(
        "{} pixel and {} detection cases: largest difference {worst:.2e}",
        pixel.len(),
        detection.len()
    );
}

#[test]
fn infinite_scores_rank_like_the_largest_finite_ones() {
    // scikit-learn refuses infinities; the metrics treat them as ordinary extremes, so
    // replacing them by finite values of the same rank changes nothing.
    let mask = [true, false, true, false, false, true];
    let with_inf = [
        f32::INFINITY,
        0.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.2,
        0.5,
    ];
    let finite = [f32::MAX, 0.5, f32::MAX, f32::MIN, 0.2, 0.5];
    let a = localisation_scores(&with_inf, &mask, 3, 2).unwrap();
    let b = localisation_scores(&finite, &mask, 3, 2).unwrap();
    assert_eq!(a, b);
    assert!(a.ap > 0.9 && a.ap < 1.0);
}
