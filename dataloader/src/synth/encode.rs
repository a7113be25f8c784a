//! JPEG encoding with each camera's quantisation tables, chroma subsampling and restart
//! interval; the EXIF block goes into an APP1 segment right after SOI, where cameras put
//! it (the encoder's JFIF APP0 is dropped).

use super::cameras::{Camera, QuantStyle, Subsampling};
use jpeg_encoder::{ColorType, Encoder, QuantizationTableType, SamplingFactor};

/// ITU-T T.81 Annex K example luminance table, natural (row-major) order.
const ANNEX_K_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];
/// ITU-T T.81 Annex K example chrominance table, natural order.
const ANNEX_K_CHROMA: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// Luma and chroma quantisation tables (natural order) of `style` at `quality`, scaled
/// like libjpeg does (`5000 / q` below 50, `200 - 2q` above).
pub fn quant_tables(style: QuantStyle, quality: u8) -> [[u16; 64]; 2] {
    let base: [[f32; 64]; 2] = match style {
        QuantStyle::AnnexK => [ANNEX_K_LUMA.map(f32::from), ANNEX_K_CHROMA.map(f32::from)],
        QuantStyle::Radial {
            dc,
            slope,
            power,
            chroma,
        } => {
            let luma: [f32; 64] = std::array::from_fn(|i| {
                let (u, v) = ((i / 8) as f32, (i % 8) as f32);
                dc * (1.0 + slope * (u * u + v * v).sqrt().powf(power))
            });
            [luma, luma.map(|q| q * chroma)]
        }
    };
    let q = u32::from(quality.clamp(1, 100));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q } as f32;
    base.map(|t| t.map(|v| ((v * scale + 50.0) / 100.0).floor().clamp(1.0, 255.0) as u16))
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    #[error("JPEG encoder: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    #[error("EXIF block of {0} bytes does not fit in one APP1 segment")]
    ExifTooLarge(usize),
    #[error("encoder output does not start with SOI and APP0")]
    UnexpectedLayout,
}

/// Encodes 8-bit RGB as the camera's JPEG with `exif` (a TIFF block) in APP1.
pub(crate) fn encode(
    rgb: &[u8],
    width: u16,
    height: u16,
    camera: &Camera,
    quality: u8,
    exif: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    let [luma, chroma] = quant_tables(camera.quant, quality);
    let mut jpeg = Vec::with_capacity(rgb.len() / 4);
    let mut enc = Encoder::new(&mut jpeg, quality);
    enc.set_quantization_tables(
        QuantizationTableType::Custom(Box::new(luma)),
        QuantizationTableType::Custom(Box::new(chroma)),
    );
    enc.set_sampling_factor(match camera.subsampling {
        Subsampling::S444 => SamplingFactor::R_4_4_4,
        Subsampling::S422 => SamplingFactor::R_4_2_2,
        Subsampling::S420 => SamplingFactor::R_4_2_0,
    });
    if let Some(n) = camera.restart_interval {
        enc.set_restart_interval(n);
    }
    enc.encode(rgb, width, height, ColorType::Rgb)?;

    // SOI, then APP0 (JFIF) of declared length: skip both.
    if jpeg.len() < 6 || jpeg[..4] != [0xFF, 0xD8, 0xFF, 0xE0] {
        return Err(EncodeError::UnexpectedLayout);
    }
    let app0_end = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let seg_len = 2 + 6 + exif.len();
    if seg_len > usize::from(u16::MAX) {
        return Err(EncodeError::ExifTooLarge(exif.len()));
    }
    let mut out = Vec::with_capacity(jpeg.len() + seg_len + 2);
    out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1]);
    out.extend_from_slice(&(seg_len as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(exif);
    out.extend_from_slice(jpeg.get(app0_end..).ok_or(EncodeError::UnexpectedLayout)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::catalogue::cameras;

    #[test]
    fn annex_k_at_quality_50_is_the_table_itself() {
        let [l, c] = quant_tables(QuantStyle::AnnexK, 50);
        assert_eq!(l, ANNEX_K_LUMA);
        assert_eq!(c, ANNEX_K_CHROMA);
        let [l75, _] = quant_tables(QuantStyle::AnnexK, 75);
        assert_eq!(l75[0], 8); // (16 * 50 + 50) / 100
    }

    #[test]
    fn higher_quality_gives_finer_steps() {
        for cam in cameras() {
            let [lo, _] = quant_tables(cam.quant, 70);
            let [hi, _] = quant_tables(cam.quant, 95);
            assert!(hi.iter().zip(&lo).all(|(h, l)| h <= l), "{}", cam.model);
            assert!(
                hi.iter().sum::<u16>() < lo.iter().sum::<u16>(),
                "{}",
                cam.model
            );
        }
    }

    #[test]
    fn exif_lands_in_app1_right_after_soi_and_image_decodes() {
        let cam = &cameras()[1];
        let (w, h) = (40u16, 24u16);
        let rgb: Vec<u8> = (0..w as usize * h as usize * 3)
            .map(|i| (i * 7 % 256) as u8)
            .collect();
        let exif = b"II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();
        let jpeg = encode(&rgb, w, h, cam, 90, &exif).expect("encodes");
        assert_eq!(&jpeg[..4], &[0xFF, 0xD8, 0xFF, 0xE1]);
        assert_eq!(&jpeg[6..12], b"Exif\0\0");
        assert_eq!(&jpeg[12..12 + exif.len()], &exif[..]);
        assert!(
            !jpeg.windows(5).any(|w| w == b"JFIF\0"),
            "JFIF segment left in"
        );
        let img = image::load_from_memory(&jpeg).expect("decodes");
        assert_eq!((img.width(), img.height()), (40, 24));
    }
}
