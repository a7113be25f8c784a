//! What `worker detect` writes for a photo: the splice map as a 16-bit grayscale PNG at the
//! photo's size (0..65535 = 0..1, high = spliced), the binary splice mask (255 = spliced),
//! a heat map over a reduced copy of the photo for viewing, and a JSON record with the
//! scores, their direction and the files.

use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, RgbImage};
use serde::Serialize;
use tch::Tensor;

use super::grid::{AxisCells, PatchGrid};
use super::{Analysis, DetectError};

/// Longest side of the heat-map preview.
const PREVIEW_SIDE: u32 = 1600;

/// The JSON record of one photo.
#[derive(Debug, Clone, Serialize)]
pub struct DetectRecord {
    /// The photo.
    pub image: String,
    /// Its size.
    pub width: u32,
    /// Its size.
    pub height: u32,
    /// Patch grid: side, stride, rows, columns.
    pub grid: GridRecord,
    /// The paper's score, as `log mean exp(A / tau)`.
    pub consistency: f64,
    /// Always `higher_is_authentic` for `consistency`.
    pub consistency_direction: &'static str,
    /// The reference code's score, `mean (1 - A)`.
    pub mean_dissimilarity: f64,
    /// Always `higher_is_spliced` for `mean_dissimilarity`.
    pub mean_dissimilarity_direction: &'static str,
    /// Fraction of the photo in the mean-shift mask (the written mask).
    pub mask_fraction: f64,
    /// Fraction of the photo the normalised cut names as spliced.
    pub ncut_fraction: f64,
    /// The 16-bit map, the mask and the heat map.
    pub files: FilesRecord,
}

/// The patch grid in the record.
#[derive(Debug, Clone, Serialize)]
pub struct GridRecord {
    /// Patch side.
    pub patch: u32,
    /// Stride.
    pub stride: u32,
    /// Patch rows.
    pub rows: usize,
    /// Patch columns.
    pub cols: usize,
    /// The patch budget widened the stride past a patch side: pixels between patches
    /// took the values of the nearest patches.
    pub budgeted: bool,
}

/// Output files of one photo.
#[derive(Debug, Clone, Serialize)]
pub struct FilesRecord {
    /// 16-bit grayscale splice map at the photo's size.
    pub map: String,
    /// 8-bit binary mask at the photo's size.
    pub mask: String,
    /// Heat map over the photo (reduced to at most 1600 px).
    pub heatmap: String,
    /// This record.
    pub record: String,
}

/// A cell map `[cells_y, cells_x]` expanded to one value per pixel, row by row.
fn per_pixel<T: Copy>(cells: &(AxisCells, AxisCells), values: &[T]) -> Vec<T> {
    let (rows, cols) = (cells.0.cell_of_pixel(), cells.1.cell_of_pixel());
    let ncols = cells.1.len();
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &r in &rows {
        let line = &values[r as usize * ncols..(r as usize + 1) * ncols];
        out.extend(cols.iter().map(|&c| line[c as usize]));
    }
    out
}

fn to_vec_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.flatten(0, -1).to_kind(tch::Kind::Double)).unwrap_or_default()
}

/// A cell map `[cells_y, cells_x]` at the photo's size as floats, row by row.
pub fn map_pixels(a: &Analysis, map: &Tensor) -> Vec<f32> {
    let v: Vec<f32> = to_vec_f64(map).into_iter().map(|x| x as f32).collect();
    per_pixel(&a.cells, &v)
}

/// The splice map at the photo's size as 16-bit values.
pub fn map_u16(a: &Analysis) -> Vec<u16> {
    let v: Vec<u16> = to_vec_f64(&a.mean_shift_map)
        .into_iter()
        .map(|x| (x.clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    per_pixel(&a.cells, &v)
}

/// A cell mask at the photo's size (true = spliced).
pub fn mask_pixels(a: &Analysis, mask: &Tensor) -> Vec<bool> {
    let v: Vec<bool> = to_vec_f64(mask).into_iter().map(|x| x > 0.5).collect();
    per_pixel(&a.cells, &v)
}

/// Writes the outputs of `photo` (read from `source`) into `out_dir`, named after the
/// photo's file stem, and returns the record.
pub fn write_outputs(
    source: &Path,
    photo: &RgbImage,
    grid: &PatchGrid,
    a: &Analysis,
    out_dir: &Path,
) -> Result<DetectRecord, DetectError> {
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let path = |suffix: &str| out_dir.join(format!("{stem}.{suffix}"));
    let (w, h) = (photo.width(), photo.height());
    let write_err = |p: &PathBuf, e: String| DetectError::Write {
        path: p.clone(),
        reason: e,
    };

    let map = map_u16(a);
    let map_path = path("map16.png");
    ImageBuffer::<Luma<u16>, _>::from_raw(w, h, map.clone())
        .ok_or_else(|| write_err(&map_path, "map size mismatch".into()))?
        .save(&map_path)
        .map_err(|e| write_err(&map_path, e.to_string()))?;

    let mask = mask_pixels(a, &a.mean_shift_mask);
    let mask_path = path("mask.png");
    let mask_u8: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
    ImageBuffer::<Luma<u8>, _>::from_raw(w, h, mask_u8)
        .ok_or_else(|| write_err(&mask_path, "mask size mismatch".into()))?
        .save(&mask_path)
        .map_err(|e| write_err(&mask_path, e.to_string()))?;

    let heat_path = path("heatmap.png");
    heatmap(photo, &map, PREVIEW_SIDE)
        .save(&heat_path)
        .map_err(|e| write_err(&heat_path, e.to_string()))?;

    let fraction = |m: &[bool]| m.iter().filter(|&&x| x).count() as f64 / m.len().max(1) as f64;
    let record_path = path("json");
    let name = |p: &PathBuf| p.to_string_lossy().into_owned();
    let record = DetectRecord {
        image: source.to_string_lossy().into_owned(),
        width: w,
        height: h,
        grid: GridRecord {
            patch: grid.patch,
            stride: grid.stride,
            rows: grid.ys.len(),
            cols: grid.xs.len(),
            budgeted: grid.budgeted,
        },
        consistency: a.consistency,
        consistency_direction: "higher_is_authentic",
        mean_dissimilarity: a.mean_dissimilarity,
        mean_dissimilarity_direction: "higher_is_spliced",
        mask_fraction: fraction(&mask),
        ncut_fraction: fraction(&mask_pixels(a, &a.ncut_mask)),
        files: FilesRecord {
            map: name(&map_path),
            mask: name(&mask_path),
            heatmap: name(&heat_path),
            record: name(&record_path),
        },
    };
    let json = serde_json::to_string_pretty(&record)
        .map_err(|e| write_err(&record_path, e.to_string()))?;
    std::fs::write(&record_path, json).map_err(|e| write_err(&record_path, e.to_string()))?;
    Ok(record)
}

/// A small heat map of `map` (per pixel, 0..1) over `photo` as JPEG (quality 80), at most
/// `side` pixels a side: what the dashboard shows of a splice evaluation.
pub fn heatmap_jpeg(photo: &RgbImage, map: &[f32], side: u32) -> Result<Vec<u8>, String> {
    let map: Vec<u16> = map
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    encode_jpeg(&heatmap(photo, &map, side))
}

/// `image` as JPEG, quality 80.
pub fn encode_jpeg(image: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, 80);
    encoder
        .encode(
            image.as_raw(),
            image.width() as u16,
            image.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The size of `(w, h)` reduced to at most `side` pixels a side (never enlarged).
pub fn reduced_size(w: u32, h: u32, side: u32) -> (u32, u32) {
    let scale = (f64::from(side) / f64::from(w.max(h))).min(1.0);
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}

/// The photo, reduced to at most `side` pixels, half covered by the map in a
/// dark-blue -> red -> yellow colour scale.
fn heatmap(photo: &RgbImage, map: &[u16], side: u32) -> RgbImage {
    let (w, h) = (photo.width(), photo.height());
    let (pw, ph) = reduced_size(w, h, side);
    RgbImage::from_fn(pw, ph, |x, y| {
        let sx = ((u64::from(x) * u64::from(w)) / u64::from(pw)) as u32;
        let sy = ((u64::from(y) * u64::from(h)) / u64::from(ph)) as u32;
        let v = f64::from(map[(sy * w + sx) as usize]) / 65535.0;
        let c = colour(v);
        let p = photo.get_pixel(sx, sy).0;
        image::Rgb(std::array::from_fn(|k| {
            (0.5 * f64::from(p[k]) + 0.5 * c[k]).round() as u8
        }))
    })
}

fn colour(v: f64) -> [f64; 3] {
    const STOPS: [[f64; 3]; 4] = [
        [20.0, 20.0, 110.0],
        [150.0, 30.0, 120.0],
        [230.0, 60.0, 30.0],
        [255.0, 230.0, 60.0],
    ];
    let t = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    std::array::from_fn(|k| STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f)
}
