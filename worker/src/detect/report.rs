//! `worker detect --report DIR`: one self-contained HTML page (`DIR/index.html`, every
//! image inlined as a data URL, no script, nothing fetched when it is viewed) for an
//! analyst: each photo with its splice heat map, its mask and its scores, the most
//! suspicious first (highest mean dissimilarity `1 - A`: on the held-out-camera benchmark it
//! detects splices better than the consistency score, BENCHMARKS.md), the photos that could
//! not be analysed, and the settings of the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use image::{imageops::FilterType, GrayImage, RgbImage};

use super::output::{encode_jpeg, map_u16, mask_pixels, reduced_size, DetectRecord};
use super::{Analysis, DetectError};

/// Longest side of the images on the page.
const SIDE: u32 = 640;

/// One analysed photo as the page shows it.
#[derive(Debug, Clone)]
pub struct ReportPhoto {
    /// Its record (scores, files).
    pub record: DetectRecord,
    photo_jpeg: Vec<u8>,
    heatmap_jpeg: Vec<u8>,
    mask_png: Vec<u8>,
}

impl ReportPhoto {
    /// The page's reduced photo, heat map (the written map) and mask of one photo.
    pub fn new(record: DetectRecord, photo: &RgbImage, a: &Analysis) -> Result<Self, DetectError> {
        let failed = |reason: String| DetectError::Write {
            path: PathBuf::from(&record.image),
            reason: format!("report images: {reason}"),
        };
        let (w, h) = (photo.width(), photo.height());
        let (pw, ph) = reduced_size(w, h, SIDE);
        let small = image::imageops::resize(photo, pw, ph, FilterType::Triangle);
        let photo_jpeg = encode_jpeg(&small).map_err(failed)?;
        let map: Vec<f32> = map_u16(a).iter().map(|&v| f32::from(v) / 65535.0).collect();
        let heatmap_jpeg = super::output::heatmap_jpeg(photo, &map, SIDE).map_err(failed)?;
        let mask: Vec<u8> = mask_pixels(a, &a.mean_shift_mask)
            .iter()
            .map(|&m| if m { 255 } else { 0 })
            .collect();
        let mask = GrayImage::from_raw(w, h, mask).ok_or_else(|| failed("mask size".into()))?;
        let mask = image::imageops::resize(&mask, pw, ph, FilterType::Nearest);
        let mut mask_png = Vec::new();
        mask.write_to(
            &mut std::io::Cursor::new(&mut mask_png),
            image::ImageFormat::Png,
        )
        .map_err(|e| failed(e.to_string()))?;
        Ok(ReportPhoto {
            record,
            photo_jpeg,
            heatmap_jpeg,
            mask_png,
        })
    }
}

/// The time now in UTC, as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_date_time(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_date_time(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = dataloader::synth::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Text made safe to place in HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}\
h1{font-size:22px;margin:0 0 4px}p.lead{margin:0 0 16px;color:#555;max-width:70em}\
table.settings{border-collapse:collapse;margin-bottom:20px;font-size:13px}\
table.settings td{padding:2px 12px 2px 0;vertical-align:top}table.settings td:first-child{color:#666}\
section.photo{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin-bottom:16px}\
section.photo h2{font-size:16px;margin:0 0 6px;word-break:break-all}\
.scores{font-size:13px;color:#444;margin-bottom:8px}.scores b{color:#111}\
.images{display:flex;gap:8px;flex-wrap:wrap}figure{margin:0}\
figure img{max-width:100%;width:320px;height:auto;border:1px solid #ccc;background:#eee}\
figcaption{font-size:12px;color:#666}.skipped{color:#a40}";

/// The page: `photos` ordered most dissimilar (most suspicious) first, the `skipped`
/// photos with why, and the run's `settings` (name, value).
pub fn render(
    photos: &mut [ReportPhoto],
    skipped: &[(String, String)],
    settings: &[(String, String)],
) -> String {
    photos.sort_by(|a, b| {
        b.record
            .mean_dissimilarity
            .total_cmp(&a.record.mean_dissimilarity)
    });
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Splice detection: {} photo(s)</title><style>{STYLE}</style></head><body>\n\
         <h1>Splice detection: {} photo(s) analysed, {} skipped</h1>\n\
         <p class=\"lead\">Most suspicious first. Patches of one camera's photo agree with each \
         other; a region pasted from another camera's photo disagrees with the rest. \
         <b>Dissimilarity</b> (1 - A): how much the patches disagree on average (higher is more \
         suspicious; photos are ordered by it). <b>Consistency</b>: the paper's score of how \
         well they agree (higher is more likely authentic). Both rank photos within a run; \
         neither is a probability. The heat map shows, per \
         pixel, how far it sits from the photo's largest consistent region (yellow: far); the \
         mask (white) is the smaller region, the candidate splice. A photo from one camera \
         still gets a mask: read it together with the score.</p>\n",
        photos.len(),
        photos.len(),
        skipped.len()
    );
    html.push_str("<table class=\"settings\">\n");
    for (name, value) in settings {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    html.push_str("</table>\n");
    for (rank, p) in photos.iter().enumerate() {
        let r = &p.record;
        let _ = write!(
            html,
            "<section class=\"photo\" data-rank=\"{}\" data-dissimilarity=\"{}\">\n\
             <h2>{}. {}</h2>\n<div class=\"scores\">dissimilarity (1 - A) <b>{:.4}</b> \
             &middot; consistency {:.4} &middot; mask {:.1} % of the photo \
             &middot; {}x{} px, {} patches of {} px</div>\n<div class=\"images\">",
            rank + 1,
            r.mean_dissimilarity,
            rank + 1,
            escape(&r.image),
            r.mean_dissimilarity,
            r.consistency,
            100.0 * r.mask_fraction,
            r.width,
            r.height,
            r.grid.rows * r.grid.cols,
            r.grid.patch
        );
        for (caption, mime, bytes) in [
            ("photo", "image/jpeg", &p.photo_jpeg),
            ("heat map", "image/jpeg", &p.heatmap_jpeg),
            ("mask", "image/png", &p.mask_png),
        ] {
            let _ = write!(
                html,
                "<figure><img alt=\"{caption} of {}\" src=\"{}\"><figcaption>{caption}</figcaption></figure>",
                escape(&r.image),
                data_url(mime, bytes)
            );
        }
        html.push_str("</div></section>\n");
    }
    if !skipped.is_empty() {
        html.push_str("<h2>Not analysed</h2>\n<ul class=\"skipped\">\n");
        for (image, why) in skipped {
            let _ = writeln!(html, "<li>{}: {}</li>", escape(image), escape(why));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// Writes [`render`]'s page as `dir/index.html` (creating `dir`) and returns its path.
pub fn write(
    dir: &Path,
    photos: &mut [ReportPhoto],
    skipped: &[(String, String)],
    settings: &[(String, String)],
) -> Result<PathBuf, DetectError> {
    let path = dir.join("index.html");
    let failed = |e: std::io::Error| DetectError::Write {
        path: path.clone(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::write(&path, render(photos, skipped, settings)).map_err(failed)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::output::{FilesRecord, GridRecord};

    fn photo(name: &str, consistency: f64) -> ReportPhoto {
        let files = FilesRecord {
            map: String::new(),
            mask: String::new(),
            heatmap: String::new(),
            record: String::new(),
        };
        ReportPhoto {
            record: DetectRecord {
                image: name.into(),
                width: 100,
                height: 80,
                grid: GridRecord {
                    patch: 32,
                    stride: 16,
                    rows: 4,
                    cols: 5,
                    budgeted: false,
                },
                consistency,
                consistency_direction: "higher_is_authentic",
                mean_dissimilarity: 1.0 - consistency,
                mean_dissimilarity_direction: "higher_is_spliced",
                mask_fraction: 0.25,
                ncut_fraction: 0.25,
                files,
            },
            photo_jpeg: vec![1, 2, 3],
            heatmap_jpeg: vec![4, 5],
            mask_png: vec![6],
        }
    }

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date_time(1_796_602_245), "2026-12-07 00:10:45 UTC");
        assert_eq!(utc_date_time(4_107_542_399), "2100-02-28 23:59:59 UTC");
    }

    #[test]
    fn photos_come_most_dissimilar_first_with_inlined_images_and_escaped_names() {
        let mut photos = vec![
            photo("calm.jpg", 0.9),
            photo("<b>odd</b>.jpg", 0.2),
            photo("mid.jpg", 0.5),
        ];
        let html = render(
            &mut photos,
            &[("broken.jpg".into(), "cannot read the image".into())],
            &[("model".into(), "models/default & co".into())],
        );
        let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("&lt;b&gt;odd&lt;/b&gt;.jpg") < at("mid.jpg") && at("mid.jpg") < at("calm.jpg"));
        assert!(!html.contains("<b>odd</b>"), "file names are escaped");
        assert!(html.contains("models/default &amp; co"));
        assert!(html.contains("broken.jpg: cannot read the image"));
        assert_eq!(html.matches("<img ").count(), 9);
        assert_eq!(
            html.matches("src=\"data:image/").count(),
            9,
            "every image inlined"
        );
        assert!(html.contains("data:image/jpeg;base64,AQID"), "bytes 1 2 3");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script"));
    }
}
