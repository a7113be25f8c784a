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

const DAY: i64 = 86_400;

/// All simulated cameras, in a fixed order (photo `i` of a run uses camera `i mod n` of
/// the selection).
pub fn cameras() -> &'static [Camera] {
    &CAMERAS
}

static CAMERAS: [Camera; 6] = [
    Camera {
        make: "Simcam",
        model: "SC-100",
        software: &["SC-100 Ver.1.00", "SC-100 Ver.1.01", "SC-100 Ver.1.10"],
        cfa: Cfa::Rggb,
        demosaic: Demosaic::Malvar,
        raw_bits: 14,
        response: [0.55, 1.0, 0.72],
        prnu: 0.012,
        column_noise: 0.0,
        shot_noise: 4.0e-5,
        read_noise: 2.0e-4,
        vignetting: 0.15,
        saturation: 1.1,
        gamma: 0.0,
        contrast: 0.15,
        black_lift: 0.0,
        sharpen: 0.35,
        sharpen_radius: 2,
        qualities: &[96, 92],
        quant: QuantStyle::Radial {
            dc: 8.0,
            slope: 0.9,
            power: 1.4,
            chroma: 1.7,
        },
        subsampling: Subsampling::S422,
        restart_interval: None,
        exif_little_endian: false,
        iso: (100, 6400),
        max_aperture: (3.5, 5.6),
        min_aperture: 22.0,
        focal_mm: (18.0, 55.0),
        crop_factor: 1.5,
        fastest_shutter: 1.0 / 4000.0,
        exposure_programs: &[2, 2, 3, 1],
        metering_modes: &[5, 5, 2],
        bias_thirds: &[0, 0, 0, -1, 1, -2],
        has_flash: true,
        manual_wb: 0.2,
        orientations: &[(1, 85), (6, 10), (8, 5)],
        dpi: 300,
        exif_version: b"0230",
        ycbcr_positioning: 2,
        first_shot_unix: 16_861 * DAY, // 2016-03-01
    },
    Camera {
        make: "Simcam",
        model: "SC-5 Pocket",
        software: &["Firmware Version 1.0", "Firmware Version 1.1"],
        cfa: Cfa::Grbg,
        demosaic: Demosaic::Bilinear,
        raw_bits: 12,
        response: [0.6, 1.0, 0.65],
        prnu: 0.02,
        column_noise: 0.0008,
        shot_noise: 1.5e-4,
        read_noise: 6.0e-4,
        vignetting: 0.3,
        saturation: 1.25,
        gamma: 2.2,
        contrast: 0.3,
        black_lift: 0.0,
        sharpen: 1.0,
        sharpen_radius: 1,
        qualities: &[90, 85],
        quant: QuantStyle::AnnexK,
        subsampling: Subsampling::S420,
        restart_interval: Some(4),
        exif_little_endian: true,
        iso: (80, 3200),
        max_aperture: (2.8, 5.9),
        min_aperture: 8.0,
        focal_mm: (5.0, 25.0),
        crop_factor: 5.6,
        fastest_shutter: 1.0 / 2000.0,
        exposure_programs: &[2],
        metering_modes: &[5],
        bias_thirds: &[0, 0, 0, 0, -1, 1],
        has_flash: true,
        manual_wb: 0.05,
        orientations: &[(1, 90), (6, 6), (8, 4)],
        dpi: 180,
        exif_version: b"0220",
        ycbcr_positioning: 2,
        first_shot_unix: 15_492 * DAY, // 2012-06-01
    },
    Camera {
        make: "Simtron",
        model: "ST Phone 9",
        software: &["ST-OS 12.0.1", "ST-OS 12.1.3", "ST-OS 13.0", "ST-OS 13.2.1"],
        cfa: Cfa::Bggr,
        demosaic: Demosaic::EdgeDirected,
        raw_bits: 10,
        response: [0.5, 1.0, 0.8],
        prnu: 0.025,
        column_noise: 0.0,
        shot_noise: 2.0e-4,
        read_noise: 8.0e-4,
        vignetting: 0.35,
        saturation: 1.35,
        gamma: 2.0,
        contrast: 0.35,
        black_lift: 0.0,
        sharpen: 0.8,
        sharpen_radius: 1,
        qualities: &[95, 93, 91, 88],
        quant: QuantStyle::Radial {
            dc: 10.0,
            slope: 0.55,
            power: 1.8,
            chroma: 1.3,
        },
        subsampling: Subsampling::S420,
        restart_interval: None,
        exif_little_endian: true,
        iso: (50, 3200),
        max_aperture: (1.8, 1.8),
        min_aperture: 1.8,
        focal_mm: (4.2, 4.2),
        crop_factor: 6.2,
        fastest_shutter: 1.0 / 8000.0,
        exposure_programs: &[2],
        metering_modes: &[5, 2],
        bias_thirds: &[0],
        has_flash: true,
        manual_wb: 0.0,
        orientations: &[(6, 45), (1, 40), (8, 8), (3, 7)],
        dpi: 72,
        exif_version: b"0231",
        ycbcr_positioning: 1,
        first_shot_unix: 18_140 * DAY, // 2019-09-01
    },
    Camera {
        make: "Simtron",
        model: "ST Action 2",
        software: &["ACT2.01.07", "ACT2.02.00"],
        cfa: Cfa::Gbrg,
        demosaic: Demosaic::Bilinear,
        raw_bits: 10,
        response: [0.58, 1.0, 0.75],
        prnu: 0.03,
        column_noise: 0.0015,
        shot_noise: 2.5e-4,
        read_noise: 1.2e-3,
        vignetting: 0.5,
        saturation: 1.4,
        gamma: 2.2,
        contrast: 0.45,
        black_lift: 0.0,
        sharpen: 1.4,
        sharpen_radius: 1,
        qualities: &[80, 75],
        quant: QuantStyle::Radial {
            dc: 12.0,
            slope: 1.6,
            power: 1.1,
            chroma: 1.0,
        },
        subsampling: Subsampling::S420,
        restart_interval: Some(8),
        exif_little_endian: true,
        iso: (100, 6400),
        max_aperture: (2.8, 2.8),
        min_aperture: 2.8,
        focal_mm: (2.9, 2.9),
        crop_factor: 5.2,
        fastest_shutter: 1.0 / 8000.0,
        exposure_programs: &[2],
        metering_modes: &[2],
        bias_thirds: &[0],
        has_flash: false,
        manual_wb: 0.0,
        orientations: &[(1, 97), (3, 3)],
        dpi: 72,
        exif_version: b"0220",
        ycbcr_positioning: 1,
        first_shot_unix: 17_652 * DAY, // 2018-05-01
    },
    Camera {
        make: "Simlux",
        model: "SL-7 Pro",
        software: &["SL-7 Pro v2.0", "SL-7 Pro v2.1", "SL-7 Pro v3.0"],
        cfa: Cfa::Rggb,
        demosaic: Demosaic::Malvar,
        raw_bits: 14,
        response: [0.62, 1.0, 0.68],
        prnu: 0.008,
        column_noise: 0.0002,
        shot_noise: 2.0e-5,
        read_noise: 1.0e-4,
        vignetting: 0.1,
        saturation: 1.0,
        gamma: 0.0,
        contrast: 0.1,
        black_lift: 0.0,
        sharpen: 0.15,
        sharpen_radius: 2,
        qualities: &[98, 97],
        quant: QuantStyle::Radial {
            dc: 6.0,
            slope: 0.35,
            power: 2.0,
            chroma: 2.2,
        },
        subsampling: Subsampling::S444,
        restart_interval: None,
        exif_little_endian: false,
        iso: (100, 25600),
        max_aperture: (2.8, 2.8),
        min_aperture: 22.0,
        focal_mm: (24.0, 70.0),
        crop_factor: 1.0,
        fastest_shutter: 1.0 / 8000.0,
        exposure_programs: &[3, 3, 1, 2, 4],
        metering_modes: &[5, 3, 2],
        bias_thirds: &[0, 0, -1, 1, -2, 2, -3],
        has_flash: false,
        manual_wb: 0.3,
        orientations: &[(1, 80), (6, 12), (8, 8)],
        dpi: 300,
        exif_version: b"0232",
        ycbcr_positioning: 2,
        first_shot_unix: 18_659 * DAY, // 2021-02-01
    },
    Camera {
        make: "Simlux",
        model: "SL Retro 35",
        software: &["Retro35 1.00", "Retro35 1.20"],
        cfa: Cfa::Grbg,
        demosaic: Demosaic::EdgeDirected,
        raw_bits: 12,
        response: [0.52, 1.0, 0.78],
        prnu: 0.02,
        column_noise: 0.0004,
        shot_noise: 6.0e-5,
        read_noise: 3.0e-4,
        vignetting: 0.25,
        saturation: 0.85,
        gamma: 2.4,
        contrast: 0.2,
        black_lift: 0.04,
        sharpen: 0.5,
        sharpen_radius: 1,
        qualities: &[88],
        quant: QuantStyle::Radial {
            dc: 9.0,
            slope: 1.2,
            power: 1.0,
            chroma: 1.5,
        },
        subsampling: Subsampling::S422,
        restart_interval: None,
        exif_little_endian: true,
        iso: (200, 12800),
        max_aperture: (2.0, 2.0),
        min_aperture: 16.0,
        focal_mm: (23.0, 23.0),
        crop_factor: 1.5,
        fastest_shutter: 1.0 / 4000.0,
        exposure_programs: &[3, 2],
        metering_modes: &[5, 2],
        bias_thirds: &[0, 0, -1, 1, -2, 2],
        has_flash: true,
        manual_wb: 0.25,
        orientations: &[(1, 75), (6, 15), (8, 10)],
        dpi: 72,
        exif_version: b"0230",
        ycbcr_positioning: 2,
        first_shot_unix: 18_567 * DAY, // 2020-11-01
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique_lowercase_dashed() {
        let slugs: Vec<String> = cameras().iter().map(Camera::slug).collect();
        assert!(
            slugs.contains(&"simcam-sc-5-pocket".to_string()),
            "{slugs:?}"
        );
        let mut dedup = slugs.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), slugs.len());
    }

    #[test]
    fn sensor_seeds_differ_between_cameras() {
        let mut seeds: Vec<u64> = cameras().iter().map(Camera::sensor_seed).collect();
        seeds.sort();
        seeds.dedup();
        assert_eq!(seeds.len(), cameras().len());
    }

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
