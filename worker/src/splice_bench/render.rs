//! Making and writing every planned image on the rayon pool: decode the target (and the
//! source), paste, encode both variants and the mask, write them. Progress: a bar on a
//! terminal, a log line at every tenth of the work.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::GrayImage;
use rayon::prelude::*;

use super::composite::{self, CompositeError};
use super::plan::Item;
use super::region::INSIDE;
use super::scan::Photo;
use super::write::{self, WriteError, IMAGES_DIR, MASKS_DIR};

/// Why an image cannot be made or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Making the image failed.
    #[error("image {name}: {source}")]
    Image {
        /// The image's name.
        name: String,
        /// What failed.
        source: CompositeError,
    },
    /// Writing it failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What came out of one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rendered {
    /// The share of the image's pixels that were pasted (none for untouched photos).
    pub mask_share: Option<f64>,
}

/// Makes and writes `items` (made from `photos`) under `out`, JPEG variants at
/// `quality`. Results come in item order.
pub fn render_all(
    items: &[Item],
    photos: &[Photo],
    out: &Path,
    quality: u8,
) -> Result<Vec<Rendered>, RenderError> {
    let bar = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(items.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} image {pos}/{len} eta {eta}")
        {
            pb.set_style(style);
        }
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let done = AtomicUsize::new(0);
    let tenth = items.len().div_ceil(10).max(1);
    let results = items
        .par_iter()
        .map(|item| {
            let r = render(item, photos, out, quality);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            bar.inc(1);
            if n.is_multiple_of(tenth) || n == items.len() {
                tracing::info!(done = n, total = items.len(), "benchmark images written");
            }
            r
        })
        .collect();
    bar.finish_and_clear();
    results
}

fn render(item: &Item, photos: &[Photo], out: &Path, quality: u8) -> Result<Rendered, RenderError> {
    let fail = |source: CompositeError| RenderError::Image {
        name: item.name.clone(),
        source,
    };
    let mut image = composite::decode(&photos[item.target].path).map_err(fail)?;
    let mut mask_share = None;
    if let Some(paste) = &item.paste {
        let source = composite::decode(&photos[paste.source].path).map_err(fail)?;
        let r = &paste.region;
        let local = r.shape.mask(r.width, r.height);
        let full: GrayImage = composite::paste(&mut image, &source, r, &local).map_err(fail)?;
        let inside = full.pixels().filter(|p| p.0[0] == INSIDE).count();
        mask_share = Some(inside as f64 / (f64::from(full.width()) * f64::from(full.height())));
        let mask = composite::png_gray(&full).map_err(fail)?;
        write::file(
            &out.join(MASKS_DIR).join(format!("{}.png", item.name)),
            &mask,
        )?;
    }
    let images = out.join(IMAGES_DIR);
    let png = composite::png_rgb(&image).map_err(fail)?;
    write::file(&images.join(format!("{}.png", item.name)), &png)?;
    let jpg = composite::jpeg(&image, quality).map_err(fail)?;
    write::file(&images.join(format!("{}.jpg", item.name)), &jpg)?;
    Ok(Rendered { mask_share })
}
