//! The CPU work for one sample, run on the decode threads: pick its crops, decode those
//! parts of the JPEG at full resolution, render and tokenise its EXIF text.

use super::counters::SkipReason;
use crate::exif::{render_text, TagList, TextFormat};
use crate::jpeg::{self, CropRect, JpegError};
use crate::order::{dropped_tags, nth_crop_origin};
use crate::tokenize::TextTokenizer;

use super::CropDecode;
use crate::TagMap;
use std::sync::Arc;

/// A sample ready to go into a batch.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub key: String,
    pub position: u64,
    /// `crops x patch x patch x 3` bytes, HWC, crop after crop.
    pub pixels: Vec<u8>,
    pub text: String,
    pub ids: Vec<u32>,
}

/// Why a sample is skipped, with a detail for the log.
pub(crate) type Skip = (SkipReason, String);

/// What every sample of a stream shares: seed, epoch, patch size, text settings, tokenizer.
#[derive(Debug, Clone)]
pub(crate) struct Preparer {
    pub seed: u64,
    pub epoch: u64,
    pub patch: u32,
    /// Crops per sample (at least 1).
    pub crops: u32,
    pub tag_list: Arc<TagList>,
    pub format: TextFormat,
    /// Probability that a tag is left out of the text (see `StreamOptions::tag_dropout`).
    pub tag_dropout: f64,
    pub tokenizer: Arc<TextTokenizer>,
    pub decode: CropDecode,
}

/// The photo as fetched: the whole file, or the pieces of it its crops need.
pub(crate) enum Photo<'a> {
    Whole(&'a [u8]),
    Sparse(&'a jpeg::SparseJpeg),
}

/// The parts of a fetched sample the CPU work reads.
pub(crate) struct Input<'a> {
    pub key: &'a str,
    pub position: u64,
    pub photo: Photo<'a>,
    pub jpeg_index: Option<&'a [u8]>,
    pub tags: &'a TagMap,
    /// Width and height from the shard index, if known.
    pub size: Option<(u32, u32)>,
}

impl Preparer {
    /// The crops of the sample at `position`, a `width x height` photo.
    pub fn rects(&self, position: u64, width: u32, height: u32) -> Result<Vec<CropRect>, Skip> {
        (0..self.crops)
            .map(|k| {
                let (x, y) = nth_crop_origin(
                    self.seed, self.epoch, position, k, width, height, self.patch,
                )
                .ok_or_else(|| {
                    (
                        SkipReason::TooSmall,
                        format!("{width}x{height} photo, patch {}", self.patch),
                    )
                })?;
                Ok(CropRect {
                    x,
                    y,
                    width: self.patch,
                    height: self.patch,
                })
            })
            .collect()
    }

    /// The sample's text: its tags rendered, less the tags dropped at `position` (the
    /// whole text when dropping would leave it empty).
    pub fn text(&self, tags: &TagMap, position: u64) -> String {
        let whole = || render_text(tags, &self.tag_list, &self.format);
        if self.tag_dropout <= 0.0 {
            return whole();
        }
        let dropped = dropped_tags(
            self.seed,
            self.epoch,
            position,
            tags.len(),
            self.tag_dropout,
        );
        let kept: TagMap = tags
            .iter()
            .zip(dropped)
            .filter(|(_, drop)| !drop)
            .map(|((n, v), _)| (n.to_string(), v.to_string()))
            .collect();
        let text = render_text(&kept, &self.tag_list, &self.format);
        if text.is_empty() {
            whole()
        } else {
            text
        }
    }

    /// Crops, decodes, renders and tokenises one sample.
    pub fn prepare(&self, input: Input<'_>) -> Result<Prepared, Skip> {
        let (width, height) = match (input.size, &input.photo) {
            (Some(s), _) => s,
            (None, Photo::Whole(bytes)) => {
                jpeg::dimensions(bytes).map_err(|e| (SkipReason::CorruptJpeg, e.to_string()))?
            }
            (None, Photo::Sparse(_)) => {
                return Err((SkipReason::CorruptJpeg, "ranged read without a size".into()))
            }
        };
        let rects = self.rects(input.position, width, height)?;
        let pixels = decode_crops(self.decode, &input.photo, input.jpeg_index, &rects).map_err(
            |e| match e {
                JpegError::CropOutside { .. } => (
                    SkipReason::CorruptJpeg,
                    format!("index size {width}x{height} disagrees with the JPEG: {e}"),
                ),
                e => (SkipReason::CorruptJpeg, e.to_string()),
            },
        )?;
        let text = self.text(input.tags, input.position);
        let ids = self
            .tokenizer
            .encode(&text)
            .map_err(|e| (SkipReason::BadExif, e.to_string()))?;
        Ok(Prepared {
            key: input.key.to_string(),
            position: input.position,
            pixels,
            text,
            ids,
        })
    }
}

/// The pixels of every rect of the photo at full resolution, one after the other. The
/// whole-photo mode decodes the photo once for all of them; the others decode each rect.
/// A sparse photo is always decoded through its index.
fn decode_crops(
    how: CropDecode,
    photo: &Photo<'_>,
    index: Option<&[u8]>,
    rects: &[CropRect],
) -> Result<Vec<u8>, JpegError> {
    let full = match (how, photo) {
        (CropDecode::Whole, Photo::Whole(bytes)) => Some(jpeg::decode_full(bytes)?),
        _ => None,
    };
    let mut out = Vec::new();
    for &rect in rects {
        let img = match (&full, how, photo) {
            (Some(full), _, _) => full.crop(rect)?,
            (None, _, Photo::Sparse(sparse)) => sparse.decode(index.unwrap_or_default(), rect)?,
            (None, CropDecode::Sequential, Photo::Whole(bytes)) => {
                jpeg::decode_crop(bytes, None, rect)?
            }
            (None, _, Photo::Whole(bytes)) => jpeg::decode_crop(bytes, index, rect)?,
        };
        let img = checked(img, rect)?;
        if out.is_empty() {
            out.reserve(img.data.len() * rects.len());
        }
        out.extend_from_slice(&img.data);
    }
    Ok(out)
}

/// `img`, checked to have the size of `rect`.
fn checked(img: jpeg::RgbImage, rect: CropRect) -> Result<jpeg::RgbImage, JpegError> {
    let expected = (rect.width * rect.height * 3) as usize;
    if (img.width, img.height) != (rect.width, rect.height) || img.data.len() != expected {
        return Err(JpegError::Corrupt(format!(
            "decoder returned {}x{} for a {}x{} crop",
            img.width, img.height, rect.width, rect.height
        )));
    }
    Ok(img)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::order::crop_origin;
    use std::io::Write;

    /// A `w x h` JPEG of a smooth colour gradient.
    pub(crate) fn gradient_jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
        for y in 0..h as u32 {
            for x in 0..w as u32 {
                rgb.extend([
                    (x * 255 / w as u32) as u8,
                    (y * 255 / h as u32) as u8,
                    ((x + y) % 256) as u8,
                ]);
            }
        }
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    fn preparer(vocab: &std::path::Path) -> Preparer {
        Preparer {
            seed: 3,
            epoch: 1,
            patch: 124,
            crops: 1,
            tag_list: Arc::new(TagList::new(["Make"])),
            format: TextFormat::default(),
            tag_dropout: 0.0,
            tokenizer: Arc::new(TextTokenizer::from_vocab(vocab).unwrap()),
            decode: CropDecode::Indexed,
        }
    }

    fn vocab() -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nmake\n:\nnikon").unwrap();
        f
    }

    fn input<'a>(jpeg: &'a [u8], tags: &'a TagMap, size: Option<(u32, u32)>) -> Input<'a> {
        Input {
            key: "k",
            position: 17,
            photo: Photo::Whole(jpeg),
            jpeg_index: None,
            tags,
            size,
        }
    }

    #[test]
    fn tag_dropout_leaves_out_tags_at_its_rate_deterministically_and_never_everything() {
        let v = vocab();
        let names: Vec<String> = (0..10).map(|i| format!("Tag{i}")).collect();
        let tags: TagMap = names
            .iter()
            .map(|n| (n.clone(), format!("v{n}")))
            .chain([("Serial Number".to_string(), "123".to_string())])
            .collect();
        let mut p = preparer(v.path());
        p.tag_list = Arc::new(TagList::new(
            names.iter().cloned().chain(["Serial Number".into()]),
        ));
        let whole = p.text(&tags, 0);
        assert_eq!(
            whole.matches(": ").count(),
            10,
            "private tags never appear: {whole}"
        );
        p.tag_dropout = 0.3;
        let (mut kept, mut changed_next_epoch) = (0, 0);
        for position in 0..400 {
            let text = p.text(&tags, position);
            assert_eq!(
                text,
                p.text(&tags, position),
                "deterministic in the position"
            );
            let shown: Vec<&str> = text.split(' ').filter(|w| w.ends_with(':')).collect();
            assert!(!shown.is_empty(), "never an empty text");
            // What is left is in the whole text's order.
            let mut rest = whole.as_str();
            for name in &shown {
                let at = rest.find(name).expect("kept tags keep their order");
                rest = &rest[at + name.len()..];
            }
            kept += shown.len();
            let mut next = p.clone();
            next.epoch += 1;
            changed_next_epoch += usize::from(next.text(&tags, position) != text);
        }
        let rate = kept as f64 / 4000.0;
        assert!(
            (0.65..0.75).contains(&rate),
            "kept {rate} of the tags, want about 0.7"
        );
        assert!(
            changed_next_epoch > 300,
            "a new epoch draws anew ({changed_next_epoch}/400)"
        );
        p.tag_dropout = 0.9999;
        assert_eq!(p.text(&tags, 5), whole, "all dropped: the whole text");
    }

    #[test]
    fn crop_is_the_window_at_the_chosen_origin_of_the_full_image() {
        let v = vocab();
        let p = preparer(v.path());
        let jpeg = gradient_jpeg(300, 200);
        let tags: TagMap = [("Make".to_string(), "NIKON".to_string())]
            .into_iter()
            .collect();
        let got = p.prepare(input(&jpeg, &tags, None)).unwrap();
        // The same decoder's whole picture, cut at the origin the order module picks.
        let (x, y) = crop_origin(3, 1, 17, 300, 200, 124).unwrap();
        let rect = CropRect {
            x,
            y,
            width: 124,
            height: 124,
        };
        let want = jpeg::decode_full(&jpeg).unwrap().crop(rect).unwrap();
        assert!(
            got.pixels == want.data,
            "crop differs from the window at ({x}, {y})"
        );
        assert!(
            (x, y) != (0, 0),
            "the test should exercise a non-trivial origin"
        );
        assert_eq!(got.text, "Make: NIKON");
        assert_eq!(got.ids, vec![2, 4, 5, 6, 3]);
    }

    #[test]
    fn each_crop_is_the_window_at_its_own_origin_in_every_decode_mode() {
        let v = vocab();
        let mut p = preparer(v.path());
        p.crops = 3;
        let jpeg = gradient_jpeg(400, 260);
        let index = jpeg::build_index(&jpeg).unwrap();
        let tags = TagMap::new();
        let full = jpeg::decode_full(&jpeg).unwrap();
        let n = 124 * 124 * 3;
        let mut origins = Vec::new();
        for decode in [
            CropDecode::Indexed,
            CropDecode::Sequential,
            CropDecode::Whole,
        ] {
            p.decode = decode;
            let mut inp = input(&jpeg, &tags, None);
            inp.jpeg_index = Some(&index);
            let got = p.prepare(inp).unwrap();
            assert_eq!(got.pixels.len(), 3 * n, "{decode:?}");
            for k in 0..3u32 {
                let (x, y) = nth_crop_origin(3, 1, 17, k, 400, 260, 124).unwrap();
                let rect = CropRect {
                    x,
                    y,
                    width: 124,
                    height: 124,
                };
                let want = full.crop(rect).unwrap();
                let at = k as usize * n;
                assert!(
                    got.pixels[at..at + n] == want.data[..],
                    "{decode:?}: crop {k} differs from the window at ({x}, {y})"
                );
                origins.push((x, y));
            }
        }
        origins.truncate(3);
        origins.sort();
        origins.dedup();
        assert_eq!(
            origins.len(),
            3,
            "the three crops should sit at different origins"
        );
    }

    #[test]
    fn small_and_corrupt_photos_are_skipped_with_their_reason() {
        let v = vocab();
        let p = preparer(v.path());
        let tags = TagMap::new();
        let small = gradient_jpeg(200, 100);
        assert_eq!(
            p.prepare(input(&small, &tags, None)).unwrap_err().0,
            SkipReason::TooSmall
        );
        let mut broken = gradient_jpeg(300, 200);
        broken.truncate(100); // cut inside the header tables
        assert_eq!(
            p.prepare(input(&broken, &tags, None)).unwrap_err().0,
            SkipReason::CorruptJpeg
        );
        assert_eq!(
            p.prepare(input(b"not a jpeg", &tags, None)).unwrap_err().0,
            SkipReason::CorruptJpeg
        );
        // A size from the index that the JPEG does not have is caught, not trusted.
        let ok = gradient_jpeg(130, 130);
        assert_eq!(
            p.prepare(input(&ok, &tags, Some((4000, 3000))))
                .unwrap_err()
                .0,
            SkipReason::CorruptJpeg
        );
    }
}
