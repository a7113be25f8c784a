//! The simulated cameras: each one is a distinct imaging pipeline (sensor, demosaicing,
//! colour processing, JPEG settings) plus the ranges its EXIF values are drawn from.
//! The makes all start with "Sim" so nobody mistakes these photos for real ones.

/// Colour filter array layout: the colours of the 2x2 tile, row by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cfa {
    /// R G / G B.
    Rggb,
    /// B G / G R.
    Bggr,
    /// G R / B G.
    Grbg,
    /// G B / R G.
    Gbrg,
}

impl Cfa {
    /// Channel (0 = R, 1 = G, 2 = B) sensed at the tile position `(x & 1) + 2 * (y & 1)`.
    pub fn channels(self) -> [usize; 4] {
        match self {
            Cfa::Rggb => [0, 1, 1, 2],
            Cfa::Bggr => [2, 1, 1, 0],
            Cfa::Grbg => [1, 0, 2, 1],
            Cfa::Gbrg => [1, 2, 0, 1],
        }
    }
}

/// How the missing colours of the mosaic are interpolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demosaic {
    /// Average of the nearest samples of each colour.
    Bilinear,
    /// Gradient-corrected linear filters (Malvar, He and Cutler, ICASSP 2004).
    Malvar,
    /// Green interpolated along the smoother direction (Hamilton and Adams), red and blue
    /// from colour differences.
    EdgeDirected,
}

/// JPEG chroma subsampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsampling {
    /// No subsampling (luma sampling factors 1x1).
    S444,
    /// Half horizontal chroma resolution (2x1).
    S422,
    /// Half horizontal and vertical chroma resolution (2x2).
    S420,
}

impl Subsampling {
    /// Luma sampling factors (horizontal, vertical) as written in the SOF segment.
    pub fn luma_factors(self) -> (u8, u8) {
        match self {
            Subsampling::S444 => (1, 1),
            Subsampling::S422 => (2, 1),
            Subsampling::S420 => (2, 2),
        }
    }
}

/// Shape of the base quantisation tables, before scaling by the JPEG quality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantStyle {
    /// The example tables of ITU-T T.81 Annex K (what libjpeg uses).
    AnnexK,
    /// Step growing with the radial frequency: `dc * (1 + slope * r^power)` for luma, with
    /// chroma steps `chroma` times larger; `r` is `sqrt(u^2 + v^2)` in 0..=9.9.
    Radial {
        dc: f32,
        slope: f32,
        power: f32,
        chroma: f32,
    },
}

/// One simulated camera: its pipeline parameters and its EXIF value ranges.
#[derive(Debug, Clone)]
pub struct Camera {
    /// EXIF Make.
    pub make: &'static str,
    /// EXIF Model.
    pub model: &'static str,
    /// Firmware strings for EXIF Software, oldest first (later photos get later ones).
    pub software: &'static [&'static str],
    /// Colour filter array layout.
    pub cfa: Cfa,
    /// Demosaicing method.
    pub demosaic: Demosaic,
    /// Bit depth of the raw samples.
    pub raw_bits: u8,
    /// Relative sensitivity of the R, G, B photosites.
    pub response: [f32; 3],
    /// Standard deviation of the fixed multiplicative pixel pattern (PRNU).
    pub prnu: f32,
    /// Standard deviation of the fixed per-column offset, in full-scale units.
    pub column_noise: f32,
    /// Shot-noise variance per unit of signal at ISO 100 (scales with ISO).
    pub shot_noise: f32,
    /// Read-noise standard deviation at ISO 100 (scales with ISO).
    pub read_noise: f32,
    /// Brightness lost in the corners (0 = none).
    pub vignetting: f32,
    /// Colour saturation of the colour matrix (1 = neutral).
    pub saturation: f32,
    /// Gamma of the tone curve; 0 means the sRGB curve.
    pub gamma: f32,
    /// Strength of the S-shaped contrast curve after gamma (0..1).
    pub contrast: f32,
    /// Output level of black (lifted blacks give a faded look).
    pub black_lift: f32,
    /// Unsharp-mask amount on luma.
    pub sharpen: f32,
    /// Unsharp-mask radius: 1 (3x3 blur) or 2 (5x5 blur).
    pub sharpen_radius: u8,
    /// JPEG qualities this camera uses (one per photo, drawn at random).
    pub qualities: &'static [u8],
    /// Base quantisation tables.
    pub quant: QuantStyle,
    /// Chroma subsampling.
    pub subsampling: Subsampling,
    /// JPEG restart interval in MCUs, if any.
    pub restart_interval: Option<u16>,
    /// Byte order of the EXIF block (TIFF "II" when true, "MM" otherwise).
    pub exif_little_endian: bool,
    /// ISO range (inclusive).
    pub iso: (u16, u16),
    /// Widest f-number at the shortest and at the longest focal length.
    pub max_aperture: (f32, f32),
    /// Narrowest f-number (equal to the widest for a fixed aperture).
    pub min_aperture: f32,
    /// Shortest and longest focal length in mm (equal for prime lenses).
    pub focal_mm: (f32, f32),
    /// Ratio of 35 mm equivalent to real focal length.
    pub crop_factor: f32,
    /// Shortest exposure time in seconds.
    pub fastest_shutter: f32,
    /// EXIF ExposureProgram values, drawn uniformly.
    pub exposure_programs: &'static [u16],
    /// EXIF MeteringMode values, drawn uniformly.
    pub metering_modes: &'static [u16],
    /// Exposure compensation choices in thirds of a stop, drawn uniformly.
    pub bias_thirds: &'static [i8],
    /// Whether the camera has a flash that fires in dim light.
    pub has_flash: bool,
    /// Probability that white balance is set by hand (to daylight).
    pub manual_wb: f32,
    /// Orientation tag values with their relative weights.
    pub orientations: &'static [(u16, u32)],
    /// X and Y resolution written in IFD0 (pixels per inch).
    pub dpi: u32,
    /// EXIF version, four ASCII digits.
    pub exif_version: &'static [u8; 4],
    /// YCbCrPositioning (1 centred, 2 co-sited).
    pub ycbcr_positioning: u16,
    /// First capture date of this camera, as seconds since 1970; photos fall in the three
    /// years after it.
    pub first_shot_unix: i64,
}

impl Camera {
    /// `<make>-<model>` in lower case with dashes: the name used in file names and in
    /// camera selections.
    pub fn slug(&self) -> String {
        slugify(&format!("{} {}", self.make, self.model))
    }

    /// A seed that depends only on the camera, for its fixed sensor patterns.
    pub(crate) fn sensor_seed(&self) -> u64 {
        // FNV-1a over make and model: stable across runs and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.make.bytes().chain([0]).chain(self.model.bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
        h
    }
}

/// Lower case, runs of anything but letters and digits replaced by one dash.
pub(crate) fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cfa_has_two_greens_and_one_red_and_blue() {
        for cfa in [Cfa::Rggb, Cfa::Bggr, Cfa::Grbg, Cfa::Gbrg] {
            let mut counts = [0; 3];
            for c in cfa.channels() {
                counts[c] += 1;
            }
            assert_eq!(counts, [1, 2, 1], "{cfa:?}");
        }
    }
}
