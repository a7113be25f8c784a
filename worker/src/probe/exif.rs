//! The EXIF-value probe: for each tag of a tag list, the common values of the tag over the
//! photos (the `top` most frequent with at least `min_photos` photos each; photos with
//! other values or without the tag are left out of that tag's probe) are the classes, and
//! a probe per tag classifies features of random patches of each photo. Reported: each
//! tag's accuracy and majority baseline, and their means over the probed tags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dataloader::TagMap;
use kernels::resnet::ImageTower;

use super::{
    run_probe, split_photos, tower_features, ProbeError, ProbeOptions, ProbeResult, Rng, Skips,
};

/// Settings of the EXIF probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExifParams {
    /// Patch side (the training patch size).
    pub patch: u32,
    /// Random patches per photo.
    pub patches_per_photo: usize,
    /// At most this many values of a tag become classes.
    pub top: usize,
    /// A value needs at least this many photos to be a class.
    pub min_photos: usize,
    /// The tags to probe.
    pub tags: Vec<String>,
}

/// One tag's probe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TagProbe {
    /// The tag.
    pub tag: String,
    /// Photos with one of the class values.
    pub photos: usize,
    /// The probe (classes are the values).
    pub probe: ProbeResult,
}

/// The EXIF probe's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExifReport {
    /// Settings.
    pub params: ExifParams,
    /// Photos that gave patches.
    pub photos_used: usize,
    /// The probed tags.
    pub tags: Vec<TagProbe>,
    /// Tags not probed, with why.
    pub tags_skipped: Vec<(String, String)>,
    /// Mean accuracy over the probed tags.
    pub mean_accuracy: f64,
    /// Mean majority baseline over the probed tags.
    pub mean_majority_baseline: f64,
    /// Photos skipped, by reason.
    pub skipped: Skips,
}

/// Classes of one tag: its values with at least `min_photos` photos, most frequent first
/// (ties by value), at most `top`; and each photo's class (`None`: other value or absent).
pub fn value_classes(
    values: &[Option<&str>],
    top: usize,
    min_photos: usize,
) -> (Vec<String>, Vec<Option<usize>>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values.iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|&(_, c)| c >= min_photos)
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.truncate(top);
    let classes: Vec<String> = ranked.iter().map(|(v, _)| v.to_string()).collect();
    let labels = values
        .iter()
        .map(|v| v.and_then(|v| classes.iter().position(|c| c == v)))
        .collect();
    (classes, labels)
}

/// Runs the EXIF probe over `photos` with `tower`'s frozen features.
pub fn exif_probe(
    tower: &ImageTower,
    device: tch::Device,
    photos: &[PathBuf],
    params: &ExifParams,
    opts: &ProbeOptions,
) -> Result<ExifReport, ProbeError> {
    if params.patch < 8 || params.patches_per_photo == 0 || params.top < 2 || params.min_photos == 0
    {
        return Err(ProbeError::Input(format!(
            "patch >= 8, patches per photo >= 1, top >= 2 and min photos >= 1 needed, got {}, {}, {}, {}",
            params.patch, params.patches_per_photo, params.top, params.min_photos
        )));
    }
    let (p, n) = (params.patch, params.patches_per_photo);
    let mut rng = Rng::new(opts.seed);
    let mut skipped = Skips::default();
    let mut tagmaps: Vec<TagMap> = Vec::new();
    let mut feats = Vec::new();
    for (i, path) in photos.iter().enumerate() {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                skipped.add(path, "unreadable", e.to_string());
                continue;
            }
        };
        let tags = match dataloader::exif::read_jpeg(&bytes) {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                skipped.add(path, "no_exif", "no EXIF tags".into());
                continue;
            }
            Err(e) => {
                skipped.add(path, "no_exif", e.to_string());
                continue;
            }
        };
        let img = match image::load_from_memory(&bytes) {
            Ok(img) => img.into_rgb8(),
            Err(e) => {
                skipped.add(path, "undecodable", e.to_string());
                continue;
            }
        };
        if img.width() < p || img.height() < p {
            skipped.add(
                path,
                "too_small",
                format!("{}x{}", img.width(), img.height()),
            );
            continue;
        }
        let mut pixels = Vec::with_capacity((p * p * 3) as usize * n);
        for _ in 0..n {
            let x0 = rng.below((img.width() - p + 1) as usize) as u32;
            let y0 = rng.below((img.height() - p + 1) as usize) as u32;
            pixels.extend(
                image::imageops::crop_imm(&img, x0, y0, p, p)
                    .to_image()
                    .into_raw(),
            );
        }
        feats.push(tower_features(
            tower, device, &pixels, n, p as usize, opts.batch,
        )?);
        tagmaps.push(tags);
        if (i + 1) % 50 == 0 {
            tracing::info!(photos = i + 1, of = photos.len(), "exif probe: embedding");
        }
    }
    let used = tagmaps.len();
    if used < 2 {
        return Err(ProbeError::TooFew {
            what: "EXIF probe".into(),
            found: used,
            need: 2,
        });
    }
    let features = tch::Tensor::cat(&feats, 0);
    let test = split_photos(used, opts.test_fraction, opts.seed);
    let (mut probed, mut tags_skipped) = (Vec::new(), Vec::new());
    for tag in &params.tags {
        let values: Vec<Option<&str>> = tagmaps.iter().map(|t| t.get(tag)).collect();
        let (classes, photo_labels) = value_classes(&values, params.top, params.min_photos);
        if classes.len() < 2 {
            tags_skipped.push((
                tag.clone(),
                format!("{} common value(s), need 2", classes.len()),
            ));
            continue;
        }
        let (mut rows, mut labels, mut photo_of) = (Vec::new(), Vec::new(), Vec::new());
        for (ph, label) in photo_labels.iter().enumerate() {
            if let Some(l) = label {
                for k in 0..n {
                    rows.push((ph * n + k) as i64);
                    labels.push(*l);
                    photo_of.push(ph);
                }
            }
        }
        let x = features.index_select(0, &tch::Tensor::from_slice(&rows));
        match run_probe(&x, &labels, &photo_of, &test, classes, &opts.classifier) {
            Ok(probe) => {
                tracing::info!(
                    tag,
                    accuracy = probe.accuracy,
                    majority = probe.majority_baseline,
                    "exif probe"
                );
                probed.push(TagProbe {
                    tag: tag.clone(),
                    photos: labels.len() / n,
                    probe,
                });
            }
            Err(ProbeError::Input(why)) => tags_skipped.push((tag.clone(), why)),
            Err(e) => return Err(e),
        }
    }
    let mean = |f: fn(&TagProbe) -> f64| {
        if probed.is_empty() {
            0.0
        } else {
            probed.iter().map(f).sum::<f64>() / probed.len() as f64
        }
    };
    Ok(ExifReport {
        params: params.clone(),
        photos_used: used,
        mean_accuracy: mean(|t| t.probe.accuracy),
        mean_majority_baseline: mean(|t| t.probe.majority_baseline),
        tags: probed,
        tags_skipped,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_values_become_classes_most_frequent_first() {
        let v = [
            Some("b"),
            Some("a"),
            Some("b"),
            Some("c"),
            None,
            Some("a"),
            Some("b"),
            Some("d"),
            Some("c"),
            Some("a"),
        ];
        // a: 3, b: 3, c: 2, d: 1 -> min 2: a, b, c (ties by value); top 2: a, b.
        let (classes, labels) = value_classes(&v, 2, 2);
        assert_eq!(classes, ["a", "b"]);
        assert_eq!(labels[0], Some(1));
        assert_eq!(labels[1], Some(0));
        assert_eq!(labels[3], None, "c is beyond the top 2");
        assert_eq!(labels[4], None, "absent");
        let (classes, _) = value_classes(&v, 8, 3);
        assert_eq!(classes, ["a", "b"]);
    }
}
